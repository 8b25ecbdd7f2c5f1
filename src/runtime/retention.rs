//! The control loop's retention work: settling the journal against the cluster every tick,
//! writing retention where the engine took a fresh step, and the operator's restore and adopt.
//! Every write goes through the cluster's retention actuator (the guard's last hop and the
//! journal); every write and every finding of the journal is in the audit log.

use tracing::warn;

use super::controller::{Authorized, json};
use super::reconcile::RetentionStep;
use super::tick::Runtime;
use super::{ClusterIo, Entry};
use crate::actuators::retention::journal::Found;
use crate::actuators::{Evidence, Finding};
use crate::policy::{Decision, OverrideAction, OverrideScope, RetentionTarget, TopicDecision};
use crate::sensors::{Observation, OriginalRetention};
use crate::store::Outcome;
use crate::units::{Dur, Timestamp};

impl<K: ClusterIo> Runtime<K> {
    /// Settles the retention journal against this tick's configs and hands the engine what it
    /// holds (`obs.retention`); records what it found. A journal that cannot be read stops
    /// retention actions, with the exact problem in status; the gate goes on.
    pub(super) async fn settle_journal(&mut self, obs: &mut Observation, now: Timestamp) {
        if !self.ctl.config.retention_actions {
            return;
        }
        let observed = [obs.topics.as_slice(), obs.inputs.as_slice()].concat();
        match self.cluster.settle_journal(&observed, now).await {
            Ok(settled) => {
                if self.journal_problem.take().is_some() {
                    tracing::info!(
                        "the retention journal is readable again: retention actions resume"
                    );
                }
                obs.retention = Some(settled.records);
                obs.extensions = settled.extensions;
                for found in &settled.found {
                    self.record_finding(found).await;
                }
            }
            Err(e) if self.ha.is_some() => {
                let why = format!(
                    "the retention journal in the HA state topic cannot be used ({e}): retention actions stop until it can; the gate goes on. \
                     Recover: make the state topic readable and writable by this instance (ACLs, the broker), or let another instance lead; never delete the topic: it holds the originals"
                );
                if self.journal_problem.as_ref() != Some(&why) {
                    warn!(error = %e, "retention journal unusable: retention actions stop");
                }
                self.journal_problem = Some(why);
            }
            Err(e) => {
                let why = format!(
                    "the retention journal cannot be used ({e}): retention actions stop until it can; the gate goes on. \
                     Recover: fix the file by hand or put back its previous version (retention-journal.json.bak in the state directory), \
                     check with `catchup retention status --state-dir DIR`; never delete it: it holds the originals"
                );
                if self.journal_problem.as_ref() != Some(&why) {
                    warn!(error = %e, "retention journal unusable: retention actions stop");
                }
                self.journal_problem = Some(why);
            }
        }
    }

    /// One audit record for something the journal found on a topic's key.
    pub(super) async fn record_finding(&self, (topic, key, finding): &Found) {
        let (action, actor, reason, outcome) = match finding {
            Finding::Landed(v) => (
                "retention.settled",
                "controller",
                format!("a write of the controller's landed: {key} {v:?}"),
                Outcome::Applied,
            ),
            Finding::Expired(v) => (
                "retention.settled",
                "controller",
                format!("a write of the controller's ({v:?}) never landed; forgotten"),
                Outcome::Failed("never landed".into()),
            ),
            Finding::RestoredBySomeoneElse => (
                "retention.restored_outside",
                "someone else",
                format!(
                    "{key} is back at its original, set by someone else: nothing of the controller's is left"
                ),
                Outcome::Applied,
            ),
            Finding::Drift(why) => (
                "retention.drift",
                "someone else",
                why.clone(),
                Outcome::Refused("hands off until adopted".into()),
            ),
            Finding::OutsideChange(what) => (
                "config.outside_change",
                "someone else",
                what.clone(),
                Outcome::Applied,
            ),
        };
        let _ = self
            .ctl
            .audit_async(Entry {
                actor,
                action,
                target: topic,
                reason: &reason,
                before: serde_json::Value::Null,
                after: serde_json::Value::Null,
                outcome,
            })
            .await;
    }

    /// Carries out one topic's retention step (a fresh decision of this tick) and audits it: every
    /// write, and a dry run or a refusal when the target is new. The write goes through the
    /// actuator's last hop with this tick's copy lag as evidence.
    pub(super) async fn change_retention(
        &mut self,
        topic: &str,
        d: &TopicDecision,
        step: RetentionStep,
        obs: &Observation,
        now: Timestamp,
    ) {
        let new_target = self.audited_targets.get(topic) != Some(&d.target);
        let reason = d.reasons.join("; ");
        let (after, outcome, record) = match step {
            RetentionStep::WouldApply { change } => (json(&change), Outcome::DryRun, new_target),
            RetentionStep::Apply { change, .. } => {
                let brokers: Vec<_> = obs.disks.iter().map(|b| b.broker).collect();
                let evidence = Evidence {
                    brokers: &brokers,
                    copy_lag: &obs.copy_lag,
                    now,
                };
                let result = self
                    .cluster
                    .apply_retention(topic, &d.target, &reason, &evidence, now)
                    .await;
                let (after, outcome) = self.written(result, change, json(&d.target)).await;
                (after, outcome, true)
            }
            RetentionStep::Refused { target, reason } => {
                (json(&target), Outcome::Refused(reason), new_target)
            }
        };
        if record {
            let _ = self
                .ctl
                .audit_async_at(
                    Entry {
                        actor: "controller",
                        action: "retention",
                        target: topic,
                        reason: &reason,
                        before: json(&d.current_ms),
                        after,
                        outcome,
                    },
                    now,
                )
                .await;
        }
    }

    /// What a write through the retention actuator did, for its audit record: the operation and
    /// `applied` (findings on the way recorded too), the target and the rule on a refusal, the
    /// operation and the error on a failure.
    pub(super) async fn written(
        &self,
        result: Result<crate::actuators::Applied, crate::actuators::ActuatorError>,
        change: crate::actuators::RetentionChange,
        target: serde_json::Value,
    ) -> (serde_json::Value, Outcome) {
        match result {
            Ok(applied) => {
                for found in &applied.findings {
                    self.record_finding(found).await;
                }
                (json(&applied.change.unwrap_or(change)), Outcome::Applied)
            }
            Err(crate::actuators::ActuatorError::Refused(r)) => {
                (target, Outcome::Refused(r.reason))
            }
            Err(e) => (json(&change), Outcome::Failed(e.to_string())),
        }
    }

    /// Remembers each readable topic's target, so a dry run or a refusal is audited once per target.
    pub(super) fn note_targets(&mut self, decision: &Decision, obs: &Observation) {
        for (topic, d) in &decision.topics {
            if obs.topics.iter().any(|t| &t.topic == topic) {
                self.audited_targets.insert(topic.clone(), d.target.clone());
            }
        }
    }

    /// Brings every managed topic (or just `only`) back to its original now and holds it there for
    /// `hold`; per topic, what happened.
    pub(super) async fn restore(
        &mut self,
        who: &Authorized,
        reason: &str,
        hold: Dur,
        only: Option<&str>,
    ) -> Vec<(String, String)> {
        let topics: Vec<String> = self
            .ctl
            .policy
            .managed_topics()
            .into_iter()
            .filter(|t| only.is_none_or(|o| o == t))
            .collect();
        if !self.ctl.config.retention_actions {
            let why = "not restored: this instance does not own retention (retention_actions = false); ask the instance that does";
            return topics.into_iter().map(|t| (t, why.to_string())).collect();
        }
        let mut results = Vec::new();
        for topic in topics {
            let outcome = self.restore_topic(who, reason, &topic).await;
            // Held whatever the outcome, so the control loop does not undo what on-call asked for.
            let (who, scope) = (who.clone(), OverrideScope::Topic(topic.clone()));
            let why = format!("after restore: {reason}");
            let held = self
                .ctl
                .blocking(move |c| {
                    c.add_override(&who, scope, OverrideAction::HoldRetention, why, hold)
                })
                .await;
            if let Err(e) = held {
                warn!(error = %e, "could not record the hold override");
            }
            results.push((topic, outcome));
        }
        if let Err(e) = self.save_state().await {
            warn!(error = %e, "could not persist engine state");
        }
        results
    }

    /// Restores one topic through the actuator (the journal's original), auditing it.
    async fn restore_topic(&mut self, who: &Authorized, reason: &str, topic: &str) -> String {
        let now = self.ctl.clock.now();
        // Restoring needs no copy-lag proof: raising local retention deletes nothing.
        let none = Evidence {
            brokers: &[],
            copy_lag: &[],
            now,
        };
        let result = self
            .cluster
            .apply_retention(topic, &RetentionTarget::Original, reason, &none, now)
            .await;
        let (outcome, after, text) = match result {
            Ok(applied) => {
                for found in &applied.findings {
                    self.record_finding(found).await;
                }
                match applied.change {
                    None => return "already at its original".to_string(),
                    Some(change) => {
                        if let Some(t) = self.state.topics.get_mut(topic) {
                            t.previous_ms = t.lowered_ms.take();
                        }
                        (Outcome::Applied, json(&change), "restored".to_string())
                    }
                }
            }
            Err(crate::actuators::ActuatorError::Refused(r)) => {
                let text = format!("refused: {}", r.reason);
                (Outcome::Refused(r.reason), serde_json::Value::Null, text)
            }
            Err(e) => (
                Outcome::Failed(e.to_string()),
                serde_json::Value::Null,
                format!("failed: {e}"),
            ),
        };
        let _ = self
            .ctl
            .audit_async_at(
                Entry {
                    actor: who.actor(),
                    action: "restore",
                    target: topic,
                    reason,
                    before: serde_json::Value::Null,
                    after,
                    outcome,
                },
                now,
            )
            .await;
        text
    }

    /// Takes `topic`'s value now as its original (a person's decision; clears drift), audited.
    pub(super) async fn adopt(
        &mut self,
        who: &Authorized,
        topic: &str,
        reason: &str,
    ) -> Result<(OriginalRetention, OriginalRetention), String> {
        if !self.ctl.policy.manages(topic) {
            return Err(format!("{topic:?} is not a managed topic of the policy"));
        }
        let now = self.ctl.clock.now();
        let result = self.cluster.adopt_retention(topic, reason, now).await;
        let (before, after, outcome) = match &result {
            Ok(a) => (json(&a.before), json(&a.after), Outcome::Applied),
            Err(e) => (
                serde_json::Value::Null,
                serde_json::Value::Null,
                Outcome::Refused(e.to_string()),
            ),
        };
        let _ = self
            .ctl
            .audit_async(Entry {
                actor: who.actor(),
                action: "retention.adopt",
                target: topic,
                reason,
                before,
                after,
                outcome,
            })
            .await;
        result
            .map(|a| (a.before, a.after))
            .map_err(|e| e.to_string())
    }
}
