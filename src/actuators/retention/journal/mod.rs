//! The retention journal: the one record of originals, and the crash-safe path of every change of a
//! topic's `local.retention.ms` (DESIGN.md invariants 2, 3, 4 and 9).
//!
//! Every write goes through [`Journaled::apply`]:
//!
//! 1. **settle** — the topic's configs are read and the open entry brought up to date (below);
//! 2. **approve** — the retention guard's last hop ([`guard::approve`]) on those configs;
//! 3. **intent** — before the first change of an episode the original value and source are recorded,
//!    then the intended operation as a pending write; saved durably *before* the cluster is touched;
//! 4. **applied** — IncrementalAlterConfigs of that one key was acknowledged;
//! 5. **verified** — read back: the key holds the controller's value (or **restored**, when that is
//!    the original: the entry is closed).
//!
//! **Settling** ([`Entry::settle`]) judges what the cluster shows against what the journal knows,
//! every tick and before every write, never only at start-up: a value the controller wrote, or may
//! still be writing (a pending write: an alter that timed out, a crash before the acknowledgement),
//! is its own; the original value means someone put it back (the entry closes); anything else is
//! drift: someone else changed the managed key, and the controller never touches the topic again
//! until a person takes the new value as the original ([`Journaled::adopt`]). A change of another
//! config is recorded and never drift: the guard re-reads every config before each write.
//!
//! The engine follows the journal ([`crate::observation::Observation::retention`]): its originals come
//! from here, so a crash between a write and the engine's `state.json` loses nothing.
//!
//! Format (version 2): `{"version": 2, "topics": {TOPIC: Entry}}`, see [`Entry`]; version 1 is
//! read and upgraded.

mod entry;

use std::future::Future;
use std::sync::Mutex;

pub use entry::{Entry, Finding, Journal, PENDING_FOR, Pending, VERSION, capture, key_value};

use super::extend::{self, Unconsumed};
use super::guard::{self, Approved, Evidence, ManagedKey, RetentionChange, RetentionRefusal};
use crate::observation::{JournalPhase, OriginalRetention, RetentionRecord, TopicConfigs};
use crate::policy::{ExtensionTarget, Policy, RetentionTarget};
use crate::store::{StateDir, StoreError};
use crate::units::Timestamp;

/// The journal file name in the state directory.
pub const JOURNAL: &str = "retention-journal.json";

/// Reads and writes topic configs: a real cluster, the simulator, or a model in tests.
pub trait ConfigAdmin: Send + Sync {
    /// Every config of `topic`, with its source, read now (`now` stamps it).
    fn describe(
        &self,
        topic: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<TopicConfigs, String>> + Send;

    /// IncrementalAlterConfigs of the managed key, as the guard approved it.
    fn alter(&self, approved: &Approved) -> impl Future<Output = Result<(), String>> + Send;
}

/// Where the journal is kept.
pub trait JournalStore: Send + Sync {
    /// The journal (empty when none was written yet).
    fn load(&self) -> Result<Journal, StoreError>;
    /// Writes it durably.
    fn save(&self, journal: &Journal) -> Result<(), StoreError>;
}

impl JournalStore for StateDir {
    fn load(&self) -> Result<Journal, StoreError> {
        Ok(self
            .load::<Journal>(JOURNAL)?
            .map_or_else(Journal::new, Journal::upgrade))
    }

    fn save(&self, journal: &Journal) -> Result<(), StoreError> {
        crate::blocking::off_async(|| StateDir::save(self, JOURNAL, journal))
    }
}

/// A journal in memory (the simulator, tests): as durable as the process.
#[derive(Debug, Default)]
pub struct MemoryJournal(Mutex<Journal>);

impl JournalStore for MemoryJournal {
    fn load(&self) -> Result<Journal, StoreError> {
        let j = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(if j.version == 0 { Journal::new() } else { j })
    }

    fn save(&self, journal: &Journal) -> Result<(), StoreError> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = journal.clone();
        Ok(())
    }
}

/// Why a retention change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The guard or the journal refused it.
    #[error("topic {topic}: refused: {reason}")]
    Refused {
        /// Topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// The cluster failed (the write may or may not have landed: the journal keeps it pending).
    #[error("topic {topic}: {reason}")]
    Cluster {
        /// Topic.
        topic: String,
        /// What failed.
        reason: String,
    },
    /// The journal could not be read or written: nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Something settling found on one topic's key, for the audit log.
pub type Found = (String, ManagedKey, Finding);

/// What settling the journal found: its records (for the engine and status) and what changed.
#[derive(Debug, Default)]
pub struct Settled {
    /// Managed topics' local retention.
    pub records: Vec<RetentionRecord>,
    /// Input topics' extended retention.
    pub extensions: Vec<RetentionRecord>,
    /// What changed, per topic and key.
    pub found: Vec<Found>,
}

/// What a write did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The operation sent (`None`: the topic was already at the target).
    pub change: Option<RetentionChange>,
    /// What settling found on the way (outside changes, landed writes), for the audit log.
    pub findings: Vec<Found>,
}

/// What taking a person's value as the new original did.
#[derive(Debug)]
pub struct Adopted {
    /// The original before (the controller's record).
    pub before: crate::observation::OriginalRetention,
    /// The new original (the topic's value now).
    pub after: crate::observation::OriginalRetention,
}

/// Test-only fault injection: with `CATCHUP_CRASH_AT` set to `after-intent`, `after-alter` or
/// `after-verify`, the process dies at once at that point, as a `kill -9` would, so tests can
/// prove recovery.
pub fn crash_point(point: &str) {
    if std::env::var("CATCHUP_CRASH_AT").is_ok_and(|p| p == point) {
        std::process::abort();
    }
}

/// The journaled retention actuator over `admin`, keeping its journal in `store`, guarded by
/// `policy`.
pub struct Journaled<'a, A: ConfigAdmin, S: JournalStore> {
    admin: &'a A,
    store: &'a S,
    policy: &'a Policy,
}

impl<'a, A: ConfigAdmin, S: JournalStore> Journaled<'a, A, S> {
    /// The actuator.
    pub fn new(admin: &'a A, store: &'a S, policy: &'a Policy) -> Self {
        Journaled {
            admin,
            store,
            policy,
        }
    }

    /// The journal.
    pub fn journal(&self) -> Result<Journal, StoreError> {
        self.store.load()
    }

    /// Settles every open entry against `observed` (this tick's configs of managed and input
    /// topics; a topic missing from it is left as it is) and saves what changed; the records for
    /// the engine and what was found.
    pub fn settle(&self, observed: &[TopicConfigs], now: Timestamp) -> Result<Settled, StoreError> {
        let mut journal = self.store.load()?;
        let before = journal.clone();
        let mut found = Vec::new();
        for key in [ManagedKey::LocalRetentionMs, ManagedKey::RetentionMs] {
            let open = journal
                .entries_mut(key)
                .iter_mut()
                .filter(|(_, e)| e.phase.is_open());
            for (topic, e) in open {
                if let Some(configs) = observed.iter().find(|c| &c.topic == topic) {
                    found.extend(
                        e.settle(configs, now)
                            .into_iter()
                            .map(|f| (topic.clone(), key, f)),
                    );
                }
            }
        }
        if journal != before {
            self.store.save(&journal)?;
        }
        Ok(Settled {
            records: journal.records(),
            extensions: journal.extension_records(),
            found,
        })
    }

    async fn read(&self, topic: &str, now: Timestamp) -> Result<TopicConfigs, RetentionError> {
        self.admin
            .describe(topic, now)
            .await
            .map_err(|reason| RetentionError::Cluster {
                topic: topic.into(),
                reason,
            })
    }

    /// Moves `topic`'s `local.retention.ms` to `target` through the guard's last hop and the
    /// journal (the steps in the module documentation); `evidence` is the copy lag that a lowering
    /// needs.
    pub async fn apply(
        &self,
        topic: &str,
        target: &RetentionTarget,
        reason: &str,
        evidence: &Evidence<'_>,
        now: Timestamp,
    ) -> Result<Applied, RetentionError> {
        let approve = |original: &OriginalRetention, configs: &TopicConfigs| {
            guard::approve(
                topic,
                target,
                Some(original),
                configs,
                self.policy,
                evidence,
            )
        };
        self.write(topic, ManagedKey::LocalRetentionMs, approve, reason, now)
            .await
    }

    /// Moves an input topic's `retention.ms` to `target` through the extension guard's last hop
    /// ([`extend::approve_extension`]) and the journal, exactly as [`Journaled::apply`] does for
    /// local retention; `unconsumed` is what a restore needs.
    pub async fn extend(
        &self,
        topic: &str,
        target: &ExtensionTarget,
        reason: &str,
        unconsumed: &Unconsumed,
        now: Timestamp,
    ) -> Result<Applied, RetentionError> {
        let approve = |original: &OriginalRetention, configs: &TopicConfigs| {
            extend::approve_extension(
                topic,
                target,
                Some(original),
                configs,
                self.policy,
                unconsumed,
            )
        };
        self.write(topic, ManagedKey::RetentionMs, approve, reason, now)
            .await
    }

    /// One journaled write of `key` of `topic`: settle, approve, intent, alter, read back.
    async fn write(
        &self,
        topic: &str,
        key: ManagedKey,
        approve: impl FnOnce(
            &OriginalRetention,
            &TopicConfigs,
        ) -> Result<Option<Approved>, RetentionRefusal>,
        reason: &str,
        now: Timestamp,
    ) -> Result<Applied, RetentionError> {
        let refused = |reason: String| RetentionError::Refused {
            topic: topic.into(),
            reason,
        };
        let mut journal = self.store.load()?;
        let before = self.read(topic, now).await?;
        let mut out = Applied::default();
        let open = match journal
            .entries_mut(key)
            .get_mut(topic)
            .filter(|e| e.phase.is_open())
        {
            Some(e) => {
                let found = e.settle(&before, now);
                out.findings
                    .extend(found.into_iter().map(|f| (topic.to_string(), key, f)));
                if e.phase == JournalPhase::Drifted {
                    let why = e.reason.clone();
                    self.store.save(&journal)?;
                    return Err(refused(why));
                }
                journal
                    .entries(key)
                    .get(topic)
                    .filter(|e| e.phase.is_open())
                    .cloned()
            }
            None => None,
        };
        let original = open
            .as_ref()
            .map_or_else(|| capture(key, &before), |e| e.original.clone());
        let approved = match approve(&original, &before) {
            Ok(Some(a)) => a,
            Ok(None) => {
                self.store.save(&journal)?;
                return Ok(out);
            }
            Err(r) => {
                self.store.save(&journal)?;
                return Err(refused(r.reason));
            }
        };
        let change = approved.change().clone();
        // Intent, durably, before the cluster is touched.
        let mut pending = open.as_ref().map(|e| e.pending.clone()).unwrap_or_default();
        pending.push(Pending {
            value: change.leaves().map(str::to_string),
            since: now,
        });
        let entry = Entry {
            key,
            original,
            snapshot: before.configs.clone(),
            change: change.clone(),
            phase: JournalPhase::Intent,
            last_value: open.map_or_else(|| key_value(key, &before.configs), |e| e.last_value),
            pending,
            at: now,
            reason: reason.into(),
        };
        journal.entries_mut(key).insert(topic.into(), entry);
        self.store.save(&journal)?;
        crash_point("after-intent");
        self.admin.alter(&approved).await.map_err(|reason| RetentionError::Cluster {
            topic: topic.into(),
            reason: format!("{reason} (the write may still land: the journal keeps it pending and the next read settles it)"),
        })?;
        // The alter landed: the change is made whatever happens to the journal from here on. A
        // save that fails now (a full disk, or in HA a leader deposed since its intent) leaves
        // the entry at its intent with the value pending, which the next read of the topic
        // settles as the controller's own write; the action is not reported as failed.
        if let Some(e) = journal.entries_mut(key).get_mut(topic) {
            e.phase = JournalPhase::Applied;
        }
        let saved = self.store.save(&journal);
        if let Err(e) = &saved {
            tracing::warn!(topic, error = %e, "the alter landed but the journal could not record it: it stays pending until the next read settles it");
        }
        crash_point("after-alter");
        // Read back; a failed read leaves the entry applied, settled on the next read.
        if saved.is_ok()
            && let Ok(after) = self.read(topic, now).await
            && let Some(e) = journal.entries_mut(key).get_mut(topic)
        {
            let found = e.settle(&after, now);
            out.findings
                .extend(found.into_iter().map(|f| (topic.to_string(), key, f)));
            if let Err(e) = self.store.save(&journal) {
                tracing::warn!(topic, error = %e, "the journal could not record the read-back: the next read settles it");
            }
        }
        crash_point("after-verify");
        out.change = Some(change);
        Ok(out)
    }

    /// Takes `topic`'s value now as its original and closes its entry (clearing drift): a person
    /// decided the value; the controller follows from here. The managed topic's local retention
    /// when the journal has it open, else the input topic's extended retention; refused when the
    /// journal has nothing open for the topic (there is nothing to adopt).
    pub async fn adopt(
        &self,
        topic: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Adopted, RetentionError> {
        let mut journal = self.store.load()?;
        let key = [ManagedKey::LocalRetentionMs, ManagedKey::RetentionMs]
            .into_iter()
            .find(|k| {
                journal
                    .entries(*k)
                    .get(topic)
                    .is_some_and(|e| e.phase.is_open())
            });
        let Some(key) = key else {
            return Err(RetentionError::Refused {
                topic: topic.into(),
                reason: "the journal has nothing open for this topic: nothing of the controller's is on it, so there is nothing to adopt".into(),
            });
        };
        let configs = self.read(topic, now).await?;
        let Some(e) = journal.entries_mut(key).get_mut(topic) else {
            return Err(RetentionError::Refused {
                topic: topic.into(),
                reason: "the journal's entry for this topic is gone".into(),
            });
        };
        let before = e.original.clone();
        let after = capture(key, &configs);
        e.original = after.clone();
        e.snapshot = configs.configs.clone();
        e.last_value = key_value(key, &configs.configs);
        e.pending.clear();
        e.phase = JournalPhase::Restored;
        e.at = now;
        e.reason = format!("adopted: {reason}");
        self.store.save(&journal)?;
        Ok(Adopted { before, after })
    }
}

#[cfg(test)]
pub(crate) mod tests;
