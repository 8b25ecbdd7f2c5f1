//! The on-call runbook's retention commands (`catchup retention status|lower|restore`): the same
//! guard and journal as the controller, every step audited with the person's name.

use serde::Serialize;

use super::guard::RetentionChange;
use super::journal::{Journal, KafkaRetention, Phase, RetentionError};
use crate::kafka::TopicAdmin;
use crate::policy::state::OriginalRetention;
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
    /// Effective local retention now, ms.
    pub current_ms: Option<i64>,
    /// The key's raw value now.
    pub current_value: Option<String>,
    /// The raw value before the first change.
    pub original_value: Option<String>,
    /// Set on the topic or inherited.
    pub original_source: crate::sensors::ConfigSource,
    /// The effective original, ms.
    pub original_ms: Option<i64>,
    /// The journal's phase.
    pub phase: Phase,
    /// Why the last change was made.
    pub reason: String,
}

/// The runbook's retention commands on one cluster and state directory, acting at `now`.
pub struct Runbook<'a> {
    admin: &'a TopicAdmin,
    store: &'a StateDir,
    actuator: KafkaRetention<'a>,
    now: Timestamp,
}

impl<'a> Runbook<'a> {
    /// Commands through `admin`, journaled in `store`, guarded by `policy`.
    pub fn new(
        admin: &'a TopicAdmin,
        store: &'a StateDir,
        policy: &'a Policy,
        now: Timestamp,
    ) -> Runbook<'a> {
        Runbook {
            admin,
            store,
            actuator: KafkaRetention::new(admin, store, policy),
            now,
        }
    }

    /// Finishes or undoes every change a crash left half-done; per topic, its phase now.
    pub async fn reconcile(&self) -> Result<Vec<(String, Phase)>, RetentionError> {
        self.actuator.reconcile(self.now).await
    }

    /// Every topic of the journal, with its original and its value now.
    pub async fn status(&self) -> Result<Vec<TopicRow>, RetentionError> {
        let journal = self.actuator.journal()?;
        let topics: Vec<String> = journal.topics.keys().cloned().collect();
        let configs = crate::sensors::topic_config::read(self.admin, &topics, self.now)
            .await
            .map_err(|e| RetentionError::Cluster {
                topic: topics.join(","),
                reason: e.to_string(),
            })?;
        // Every journaled topic is shown or the status fails naming the ones it could not read.
        if !configs.failed.is_empty() {
            return Err(RetentionError::Cluster {
                topic: configs
                    .failed
                    .iter()
                    .map(|f| f.target.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                reason: configs
                    .failed
                    .iter()
                    .map(|f| f.reason.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        Ok(configs
            .read
            .iter()
            .filter_map(|t| {
                let e = journal.topics.get(&t.topic)?;
                let OriginalRetention {
                    value,
                    source,
                    effective_ms,
                } = e.original.clone();
                Some(TopicRow {
                    topic: t.topic.clone(),
                    current_ms: t.effective_local_retention_ms(),
                    current_value: t
                        .configs
                        .get("local.retention.ms")
                        .and_then(|c| c.value.clone()),
                    original_value: value,
                    original_source: source,
                    original_ms: effective_ms,
                    phase: e.phase,
                    reason: e.reason.clone(),
                })
            })
            .collect())
    }

    /// Lowers `topic` to `ms` through the guard and the journal, audited as `actor`.
    pub async fn lower(
        &self,
        topic: &str,
        ms: i64,
        reason: &str,
        actor: &str,
    ) -> Result<Option<RetentionChange>, RetentionError> {
        let target = RetentionTarget::Lowered { ms };
        let result = self.actuator.apply(topic, &target, reason, self.now).await;
        self.audit(actor, topic, reason, &result);
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
            None => self
                .actuator
                .journal()?
                .topics
                .iter()
                .filter(|(_, e)| e.phase != Phase::Restored)
                .map(|(t, _)| t.clone())
                .collect(),
        };
        let mut out = Vec::new();
        for t in topics {
            let result = self
                .actuator
                .apply(&t, &RetentionTarget::Original, reason, self.now)
                .await;
            self.audit(actor, &t, reason, &result);
            out.push((t, result));
        }
        Ok(out)
    }

    /// Records a command's outcome in the audit log (a failure to write it is not the command's).
    fn audit(
        &self,
        actor: &str,
        topic: &str,
        reason: &str,
        result: &Result<Option<RetentionChange>, RetentionError>,
    ) {
        let (outcome, after) = match result {
            Ok(change) => (
                Outcome::Applied,
                serde_json::to_value(change).unwrap_or_default(),
            ),
            Err(e) => (Outcome::Refused(e.to_string()), serde_json::Value::Null),
        };
        let _ = self.store.audit(AuditRecord {
            id: 0,
            at: self.now,
            actor: actor.into(),
            action: "retention".into(),
            target: topic.into(),
            reason: reason.into(),
            before: serde_json::Value::Null,
            after,
            outcome,
        });
    }
}
