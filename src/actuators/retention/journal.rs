//! The crash-safe retention actuator for a real cluster (DESIGN.md invariants 1-5).
//!
//! Every change of a topic's `local.retention.ms` goes through [`guard::plan`]
//! (allow-list, deny-list, floor, `retention.ms`, `remote.storage.enable`) and this journal:
//!
//! 1. **intent** — before the first change of a topic, its original value and source and a snapshot of
//!    every config are recorded; then the intended operation. Written atomically and fsynced
//!    (`retention-journal.json` in the state directory) *before* the cluster is touched.
//! 2. **applied** — IncrementalAlterConfigs (SET or DELETE of that one key) succeeded.
//! 3. **verified** — the configs were read back: the key has the intended value and every other config
//!    equals the snapshot.
//! 4. **restored** — the topic is back at its original; the entry is closed.
//!
//! On start ([`KafkaRetention::reconcile`]) a topic left at `intent` or `applied` is read back: if the
//! cluster shows the intended value the change is verified (finished); if it shows the last value the
//! journal knew, the change never happened and the intent is dropped (undone). Anything else is
//! somebody else's change: the topic is marked drifted and never touched again by the controller
//! (invariant 4) until `catchup retention restore` or a person clears it.
//!
//! Journal format (version 1): `{"version": 1, "topics": {TOPIC: Entry}}`, see [`Entry`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::guard::{self, RetentionChange};
use crate::kafka::TopicAdmin;
use crate::kafka::ffi::AlterOp;
use crate::policy::state::OriginalRetention;
use crate::policy::{Policy, RetentionTarget};
use crate::sensors::{ConfigSource, ConfigValue, TopicConfigs};
use crate::store::{StateDir, StoreError};
use crate::units::Timestamp;

/// The journal file name in the state directory.
pub const JOURNAL: &str = "retention-journal.json";

/// Phase of a topic's latest change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Recorded, not yet sent.
    Intent,
    /// Sent and acknowledged.
    Applied,
    /// Read back and checked.
    Verified,
    /// Back at the original; nothing of ours is left.
    Restored,
    /// Someone else changed the key; hands off.
    Drifted,
}

/// One managed topic in the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The value and source of `local.retention.ms` before the first change.
    pub original: OriginalRetention,
    /// Every config of the topic before the first change.
    pub snapshot: BTreeMap<String, ConfigValue>,
    /// The latest operation.
    pub change: RetentionChange,
    /// Its phase.
    pub phase: Phase,
    /// The value of the key the controller last verified (`None`: the key was absent / inherited).
    pub last_value: Option<String>,
    /// When the phase was recorded.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
}

/// The journal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version (1).
    pub version: u32,
    /// Per topic.
    pub topics: BTreeMap<String, Entry>,
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
    /// The cluster failed.
    #[error("topic {topic}: {reason}")]
    Cluster {
        /// Topic.
        topic: String,
        /// What failed.
        reason: String,
    },
    /// The journal could not be written: nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const KEY: &str = "local.retention.ms";

fn key_value(configs: &BTreeMap<String, ConfigValue>) -> Option<String> {
    configs
        .get(KEY)
        .filter(|c| c.source == ConfigSource::Topic)
        .and_then(|c| c.value.clone())
}

/// What the change leaves as the key's topic-level value.
fn intended_value(change: &RetentionChange) -> Option<String> {
    match change {
        RetentionChange::Set { value, .. } => Some(value.clone()),
        RetentionChange::Delete { .. } => None,
    }
}

/// Whether every config but the managed key is as in the snapshot.
fn others_unchanged(
    snapshot: &BTreeMap<String, ConfigValue>,
    now: &BTreeMap<String, ConfigValue>,
) -> Result<(), String> {
    let strip = |m: &BTreeMap<String, ConfigValue>| -> BTreeMap<String, ConfigValue> {
        m.iter()
            .filter(|(k, _)| *k != KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let (before, after) = (strip(snapshot), strip(now));
    if before == after {
        return Ok(());
    }
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| {
            format!(
                "{k}: {:?} -> {:?}",
                before.get(k).and_then(|v| v.value.clone()),
                after.get(k).and_then(|v| v.value.clone())
            )
        })
        .collect();
    Err(format!("other configs changed: {}", changed.join(", ")))
}

/// The retention actuator on a real cluster.
pub struct KafkaRetention<'a> {
    admin: &'a TopicAdmin,
    store: &'a StateDir,
    policy: &'a Policy,
}

impl<'a> KafkaRetention<'a> {
    /// An actuator writing its journal to `store`, guarded by `policy`.
    pub fn new(admin: &'a TopicAdmin, store: &'a StateDir, policy: &'a Policy) -> Self {
        KafkaRetention {
            admin,
            store,
            policy,
        }
    }

    /// The journal (empty when none was written yet).
    pub fn journal(&self) -> Result<Journal, StoreError> {
        Ok(self.store.load::<Journal>(JOURNAL)?.unwrap_or(Journal {
            version: 1,
            topics: BTreeMap::new(),
        }))
    }

    fn save(&self, journal: &Journal) -> Result<(), StoreError> {
        self.store.save(JOURNAL, journal)
    }

    async fn read(&self, topic: &str, now: Timestamp) -> Result<TopicConfigs, RetentionError> {
        let mut all = crate::sensors::topic_config::read(self.admin, &[topic.to_string()], now)
            .await
            .map_err(|e| RetentionError::Cluster {
                topic: topic.into(),
                reason: e.to_string(),
            })?;
        if let Some(failed) = all.failed.pop() {
            return Err(RetentionError::Cluster {
                topic: topic.into(),
                reason: failed.reason,
            });
        }
        all.read.pop().ok_or_else(|| RetentionError::Cluster {
            topic: topic.into(),
            reason: "no configs returned".into(),
        })
    }

    /// Moves `topic` to `target` through the guard and the journal; returns the change made, if any.
    pub async fn apply(
        &self,
        topic: &str,
        target: &RetentionTarget,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<RetentionChange>, RetentionError> {
        let mut journal = self.journal()?;
        let before = self.read(topic, now).await?;
        let entry = journal.topics.get(topic).cloned();
        if let Some(e) = &entry {
            if e.phase == Phase::Drifted {
                return Err(RetentionError::Refused { topic: topic.into(), reason: "local.retention.ms was changed by someone else; the controller no longer touches this topic (restore it by hand, then clear the journal entry)".into() });
            }
            if e.phase != Phase::Restored && key_value(&before.configs) != e.last_value {
                let mut drifted = e.clone();
                drifted.phase = Phase::Drifted;
                drifted.at = now;
                journal.topics.insert(topic.into(), drifted);
                self.save(&journal)?;
                return Err(RetentionError::Refused {
                    topic: topic.into(),
                    reason: format!(
                        "local.retention.ms is {:?} but the controller last set {:?}: changed by someone else; not touching it again",
                        key_value(&before.configs),
                        e.last_value
                    ),
                });
            }
        }
        let open = entry.filter(|e| e.phase != Phase::Restored);
        let original = match &open {
            Some(e) => e.original.clone(),
            None => {
                let raw = before.configs.get(KEY);
                OriginalRetention {
                    value: raw.and_then(|c| c.value.clone()),
                    source: raw.map_or(ConfigSource::Inherited, |c| c.source),
                    effective_ms: before.effective_local_retention_ms(),
                }
            }
        };
        let change =
            guard::plan(topic, target, Some(&original), &before, self.policy).map_err(|r| {
                RetentionError::Refused {
                    topic: topic.into(),
                    reason: r.reason,
                }
            })?;
        let Some(change) = change else {
            return Ok(None);
        };
        let snapshot = match &open {
            Some(e) => e.snapshot.clone(),
            None => before.configs.clone(),
        };
        // 1. intent, durably, before the cluster is touched.
        let mut e = Entry {
            original,
            snapshot,
            change: change.clone(),
            phase: Phase::Intent,
            last_value: key_value(&before.configs),
            at: now,
            reason: reason.into(),
        };
        journal.topics.insert(topic.into(), e.clone());
        self.save(&journal)?;
        crash_point("after-intent");
        // 2. the one incremental operation.
        let op = match &change {
            RetentionChange::Set { value, .. } => AlterOp::Set(value.clone()),
            RetentionChange::Delete { .. } => AlterOp::Delete,
        };
        self.admin
            .alter(topic, change.key(), &op)
            .map_err(|err| RetentionError::Cluster {
                topic: topic.into(),
                reason: err.to_string(),
            })?;
        e.phase = Phase::Applied;
        journal.topics.insert(topic.into(), e.clone());
        self.save(&journal)?;
        crash_point("after-alter");
        // 3. verify.
        self.verify(topic, &mut journal, now).await?;
        Ok(Some(change))
    }

    /// Reads `topic` back and moves its entry from intent/applied to verified (or restored), or to
    /// drifted when the cluster shows something else.
    async fn verify(
        &self,
        topic: &str,
        journal: &mut Journal,
        now: Timestamp,
    ) -> Result<(), RetentionError> {
        let Some(mut e) = journal.topics.get(topic).cloned() else {
            return Ok(());
        };
        let after = self.read(topic, now).await?;
        let got = key_value(&after.configs);
        let intended = intended_value(&e.change);
        if got == intended {
            others_unchanged(&e.snapshot, &after.configs).map_err(|reason| {
                RetentionError::Cluster {
                    topic: topic.into(),
                    reason,
                }
            })?;
            let back_to_original = match e.original.source {
                ConfigSource::Topic => got == e.original.value,
                ConfigSource::Inherited => got.is_none(),
            };
            e.phase = if back_to_original {
                Phase::Restored
            } else {
                Phase::Verified
            };
            e.last_value = got.clone();
        } else if e.phase == Phase::Intent && got == e.last_value {
            // The alter never happened: undo the intent.
            e.phase = if e.last_value == key_value(&e.snapshot) {
                Phase::Restored
            } else {
                Phase::Verified
            };
        } else {
            e.phase = Phase::Drifted;
        }
        e.at = now;
        let drifted = e.phase == Phase::Drifted;
        journal.topics.insert(topic.into(), e);
        self.save(journal)?;
        if drifted {
            return Err(RetentionError::Refused {
                topic: topic.into(),
                reason: format!(
                    "read back {got:?}, expected {intended:?}: someone else changed it; hands off"
                ),
            });
        }
        Ok(())
    }

    /// Finishes or undoes every change a crash left at intent or applied.
    pub async fn reconcile(&self, now: Timestamp) -> Result<Vec<(String, Phase)>, RetentionError> {
        let mut journal = self.journal()?;
        let pending: Vec<String> = journal
            .topics
            .iter()
            .filter(|(_, e)| matches!(e.phase, Phase::Intent | Phase::Applied))
            .map(|(t, _)| t.clone())
            .collect();
        let mut out = Vec::new();
        for topic in pending {
            let _ = self.verify(&topic, &mut journal, now).await;
            out.push((topic.clone(), journal.topics[&topic].phase));
        }
        Ok(out)
    }
}

/// Test-only fault injection: with `CATCHUP_CRASH_AT=after-intent` or `after-alter` the process dies
/// at once at that point, as a `kill -9` would, so tests can prove recovery.
fn crash_point(point: &str) {
    if std::env::var("CATCHUP_CRASH_AT").is_ok_and(|p| p == point) {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cv(v: &str, source: ConfigSource) -> ConfigValue {
        ConfigValue {
            value: Some(v.into()),
            source,
        }
    }

    #[test]
    fn only_the_managed_key_may_differ_from_the_snapshot() {
        let mut snapshot = BTreeMap::new();
        snapshot.insert(
            "retention.ms".to_string(),
            cv("604800000", ConfigSource::Topic),
        );
        snapshot.insert(KEY.to_string(), cv("14400000", ConfigSource::Topic));
        let mut now = snapshot.clone();
        now.insert(KEY.to_string(), cv("3600000", ConfigSource::Topic));
        assert!(others_unchanged(&snapshot, &now).is_ok());
        now.insert(
            "cleanup.policy".to_string(),
            cv("compact", ConfigSource::Topic),
        );
        let err = others_unchanged(&snapshot, &now).unwrap_err();
        assert!(err.contains("cleanup.policy"), "{err}");
    }

    #[test]
    fn the_journal_format_is_versioned_json() {
        let j = Journal {
            version: 1,
            topics: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"version":1,"topics":{}}"#
        );
    }
}
