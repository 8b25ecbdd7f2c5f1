//! The on-call runbook's retention commands (`catchup retention status|lower|restore|adopt`): the
//! same guard, last hop and journal as the controller, every step audited with the person's name.
//! They run here only when no controller holds the state directory; with one running, the CLI asks
//! its API instead, so there is one writer.

use serde::Serialize;

use super::guard::{Evidence, ManagedKey, RetentionChange};
use super::journal::{Adopted, ConfigAdmin, Journal, JournalStore, Journaled, RetentionError};
use crate::observation::{JournalPhase, OriginalRetention};
use crate::policy::{Policy, RetentionTarget, TopicPolicy};
use crate::store::{AuditRecord, Outcome, StateDir, StoreError};
use crate::units::Timestamp;

/// A policy for the runbook: `given` when it names managed topics, else one that manages exactly
/// the topics of the journal and `topic` (with the default floor).
pub fn policy_for(given: Policy, journal: &Journal, topic: Option<&str>) -> Policy {
    let mut policy = given;
    if policy.retention.topics.is_empty() {
        let mut names: Vec<String> = journal.topics.keys().cloned().collect();
        names.extend(topic.map(str::to_string));
        names.sort();
        names.dedup();
        policy.retention.topics = names
            .into_iter()
            .map(|name| TopicPolicy { name, floor: None })
            .collect();
    }
    policy
}

/// A journaled topic as `catchup retention status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TopicRow {
    /// Topic.
    pub topic: String,
    /// The key the controller changed: `local.retention.ms` of a managed topic, or `retention.ms`
    /// of an extended input topic.
    pub key: ManagedKey,
    /// Its effective value now, ms.
    pub current_ms: Option<i64>,
    /// The key's raw value now.
    pub current_value: Option<String>,
    /// The raw value before the first change.
    pub original_value: Option<String>,
    /// Set on the topic or inherited.
    pub original_source: crate::observation::ConfigSource,
    /// The effective original, ms.
    pub original_ms: Option<i64>,
    /// The journal's phase.
    pub phase: JournalPhase,
    /// Why the last change was made.
    pub reason: String,
}

/// The runbook's retention commands on one cluster and state directory, acting at `now`.
pub struct Runbook<'a, A: ConfigAdmin> {
    admin: &'a A,
    store: &'a StateDir,
    actuator: Journaled<'a, A, StateDir>,
    now: Timestamp,
}

impl<'a, A: ConfigAdmin> Runbook<'a, A> {
    /// Commands through `admin`, journaled in `store`, guarded by `policy`.
    pub fn new(admin: &'a A, store: &'a StateDir, policy: &'a Policy, now: Timestamp) -> Self {
        Runbook {
            admin,
            store,
            actuator: Journaled::new(admin, store, policy),
            now,
        }
    }

    /// Reads every topic of the journal and settles its entry: a change a crash left half-done
    /// is finished or found undone, someone else's change is found; per topic, its phase now.
    pub async fn settle(&self) -> Result<Vec<(String, JournalPhase)>, RetentionError> {
        let journal = JournalStore::load(self.store)?;
        let mut observed = Vec::new();
        let mut topics: Vec<&String> = journal
            .topics
            .keys()
            .chain(journal.extensions.keys())
            .collect();
        topics.sort();
        topics.dedup();
        for topic in topics {
            if let Ok(c) = self.admin.describe(topic, self.now).await {
                observed.push(c);
            }
        }
        let settled = self.actuator.settle(&observed, self.now)?;
        Ok(settled
            .records
            .into_iter()
            .chain(settled.extensions)
            .map(|r| (r.topic, r.phase))
            .collect())
    }

    /// Every topic of the journal, with its original and its value now.
    pub async fn status(&self) -> Result<Vec<TopicRow>, RetentionError> {
        let journal = JournalStore::load(self.store)?;
        let mut rows = Vec::new();
        for key in [ManagedKey::LocalRetentionMs, ManagedKey::RetentionMs] {
            for (topic, e) in journal.entries(key) {
                let t = self
                    .admin
                    .describe(topic, self.now)
                    .await
                    .map_err(|reason| RetentionError::Cluster {
                        topic: topic.clone(),
                        reason,
                    })?;
                let OriginalRetention {
                    value,
                    source,
                    effective_ms,
                } = e.original.clone();
                let current_ms = match key {
                    ManagedKey::RetentionMs => t.retention_ms(),
                    _ => t.effective_local_retention_ms(),
                };
                rows.push(TopicRow {
                    topic: topic.clone(),
                    key,
                    current_ms,
                    current_value: t.configs.get(key.name()).and_then(|c| c.value.clone()),
                    original_value: value,
                    original_source: source,
                    original_ms: effective_ms,
                    phase: e.phase,
                    reason: e.reason.clone(),
                });
            }
        }
        Ok(rows)
    }

    /// Lowers `topic` to `ms` through the guard's last hop (with `evidence` of the copy lag) and
    /// the journal, audited as `actor`.
    pub async fn lower(
        &self,
        topic: &str,
        ms: i64,
        reason: &str,
        actor: &str,
        evidence: &Evidence<'_>,
    ) -> Result<Option<RetentionChange>, RetentionError> {
        let target = RetentionTarget::Lowered { ms };
        let result = self
            .actuator
            .apply(topic, &target, reason, evidence, self.now)
            .await
            .map(|a| a.change);
        self.audit(actor, "retention", topic, reason, &result);
        result
    }

    /// Brings `topic` (or, with `None`, every topic the journal has not restored) back to its exact
    /// original, each audited as `actor`; per topic, what happened.
    pub async fn restore(
        &self,
        topic: Option<&str>,
        reason: &str,
        actor: &str,
    ) -> Result<Vec<(String, Result<Option<RetentionChange>, RetentionError>)>, StoreError> {
        let topics: Vec<String> = match topic {
            Some(t) => vec![t.to_string()],
            None => JournalStore::load(self.store)?
                .topics
                .iter()
                .filter(|(_, e)| e.phase.is_open())
                .map(|(t, _)| t.clone())
                .collect(),
        };
        // Restoring needs no copy-lag proof: raising local retention deletes nothing.
        let none = Evidence {
            brokers: &[],
            copy_lag: &[],
            now: self.now,
        };
        let mut out = Vec::new();
        for t in topics {
            let result = self
                .actuator
                .apply(&t, &RetentionTarget::Original, reason, &none, self.now)
                .await
                .map(|a| a.change);
            self.audit(actor, "retention", &t, reason, &result);
            out.push((t, result));
        }
        Ok(out)
    }

    /// Takes `topic`'s value now as its original (clearing drift), audited as `actor`.
    pub async fn adopt(
        &self,
        topic: &str,
        reason: &str,
        actor: &str,
    ) -> Result<Adopted, RetentionError> {
        let result = self.actuator.adopt(topic, reason, self.now).await;
        let outcome = match &result {
            Ok(_) => Outcome::Applied,
            Err(e) => Outcome::Refused(e.to_string()),
        };
        let (before, after) = match &result {
            Ok(a) => (json(&a.before), json(&a.after)),
            Err(_) => (serde_json::Value::Null, serde_json::Value::Null),
        };
        self.record(
            actor,
            "retention.adopt",
            topic,
            reason,
            before,
            after,
            outcome,
        );
        result
    }

    /// Records a command's outcome in the audit log (a failure to write it is not the command's).
    fn audit(
        &self,
        actor: &str,
        action: &str,
        topic: &str,
        reason: &str,
        result: &Result<Option<RetentionChange>, RetentionError>,
    ) {
        let (outcome, after) = match result {
            Ok(change) => (Outcome::Applied, json(change)),
            Err(e) => (Outcome::Refused(e.to_string()), serde_json::Value::Null),
        };
        self.record(
            actor,
            action,
            topic,
            reason,
            serde_json::Value::Null,
            after,
            outcome,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        actor: &str,
        action: &str,
        topic: &str,
        reason: &str,
        before: serde_json::Value,
        after: serde_json::Value,
        outcome: Outcome,
    ) {
        let _ = self.store.audit(AuditRecord {
            id: 0,
            at: self.now,
            actor: actor.into(),
            action: action.into(),
            target: topic.into(),
            reason: reason.into(),
            before,
            after,
            outcome,
            epoch: None,
        });
    }
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
