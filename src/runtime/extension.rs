//! The control loop's extension work: raising an allow-listed input topic's `retention.ms` where
//! the engine took a fresh step, and restoring it, through the extension guard's last hop and the
//! journal; every write, refusal and dry run in the audit log (`retention.extend`).

use super::controller::json;
use super::reconcile::ExtensionStep;
use super::tick::Runtime;
use super::{ClusterIo, Entry};
use crate::actuators::Unconsumed;
use crate::policy::{ExtensionDecision, ExtensionTarget};
use crate::sensors::Observation;
use crate::store::Outcome;
use crate::units::Timestamp;

impl<K: ClusterIo> Runtime<K> {
    /// Carries out one input topic's extension step and audits it: every write, and a dry run or
    /// a refusal when the target is new. A restore carries this tick's evidence of what the
    /// catch-up groups have not consumed, which the guard checks again at the last hop.
    pub(super) async fn change_extension(
        &mut self,
        topic: &str,
        target: &ExtensionTarget,
        d: &ExtensionDecision,
        step: ExtensionStep,
        obs: &Observation,
        now: Timestamp,
    ) {
        let new_target = self.audited_extensions.get(topic) != Some(target);
        self.audited_extensions
            .insert(topic.to_string(), target.clone());
        let reason = d.reasons.join("; ");
        let (after, outcome, record) = match step {
            ExtensionStep::WouldApply { change } => (json(&change), Outcome::DryRun, new_target),
            ExtensionStep::Refused { reason } => {
                (json(target), Outcome::Refused(reason), new_target)
            }
            ExtensionStep::Apply { change } => {
                let unconsumed = Unconsumed::observed(topic, obs, &self.ctl.policy, now);
                let result = self
                    .cluster
                    .extend_retention(topic, target, &reason, &unconsumed, now)
                    .await;
                let (after, outcome) = self.written(result, change, json(target)).await;
                (after, outcome, true)
            }
        };
        if record {
            let _ = self
                .ctl
                .audit_async(Entry {
                    actor: "controller",
                    action: "retention.extend",
                    target: topic,
                    reason: &reason,
                    before: json(&d.current_ms),
                    after,
                    outcome,
                })
                .await;
        }
    }
}
