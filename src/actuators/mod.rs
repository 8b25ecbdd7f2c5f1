//! Actuators: how a `Decision` reaches the world.
//!
//! - the consumer gate (a token bucket per catch-up group that consumers obey);
//! - topic retention, through [`retention`]'s guard, which every path that changes a topic config must
//!   pass (DESIGN.md invariants 1, 2 and 5 are enforced there, in code, not in policy).
//!
//! Both are traits so the simulator and the real cluster adapters are interchangeable.

pub mod gate;
pub mod retention;

use std::future::Future;

use crate::observation::TopicConfigs;
use crate::policy::{ExtensionTarget, GroupDecision, RetentionTarget};
use crate::units::Timestamp;
pub use retention::extend::Unconsumed;
pub use retention::guard::Evidence;
pub use retention::journal::{Adopted, Applied, Finding, RetentionError, Settled};
pub use retention::{RetentionChange, RetentionRefusal};

/// Why an actuator could not apply a change.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// The guard refused the change (it would break a safety invariant).
    #[error(transparent)]
    Refused(#[from] RetentionRefusal),
    /// The cluster could not be reached or rejected the request.
    #[error("{target}: {reason}")]
    Failed {
        /// Topic or group.
        target: String,
        /// What went wrong.
        reason: String,
    },
}

/// Publishes the desired gate state of a catch-up group to its consumers.
pub trait GateActuator: Send + Sync {
    /// Makes `decision` the group's gate state.
    fn set_gate(
        &self,
        group: &str,
        decision: &GroupDecision,
    ) -> impl Future<Output = Result<(), ActuatorError>> + Send;
}

/// Changes `local.retention.ms` of managed topics: through the retention guard's last hop and the
/// write-ahead journal only (IncrementalAlterConfigs SET or DELETE of that key).
pub trait RetentionActuator: Send + Sync {
    /// Settles the journal against this tick's configs (`observed`); its records and findings.
    fn settle_journal(
        &self,
        observed: &[TopicConfigs],
        now: Timestamp,
    ) -> impl Future<Output = Result<Settled, ActuatorError>> + Send;

    /// Moves `topic` to `target`; `evidence` is the copy lag a lowering needs.
    fn apply_retention(
        &self,
        topic: &str,
        target: &RetentionTarget,
        reason: &str,
        evidence: &Evidence<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Applied, ActuatorError>> + Send;

    /// Moves an input topic's `retention.ms` to `target` through the extension guard and the
    /// journal; `unconsumed` is what a restore needs. A cluster that cannot change input topics
    /// refuses.
    fn extend_retention(
        &self,
        topic: &str,
        target: &ExtensionTarget,
        reason: &str,
        unconsumed: &Unconsumed,
        now: Timestamp,
    ) -> impl Future<Output = Result<Applied, ActuatorError>> + Send {
        let _ = (target, reason, unconsumed, now);
        let refused = ActuatorError::Refused(RetentionRefusal {
            topic: topic.to_string(),
            reason: "this cluster cannot change input topics' retention".into(),
        });
        async move { Err(refused) }
    }

    /// Takes `topic`'s value now as its original (a person's decision; clears drift).
    fn adopt_retention(
        &self,
        topic: &str,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Adopted, ActuatorError>> + Send;
}

impl From<RetentionError> for ActuatorError {
    fn from(e: RetentionError) -> ActuatorError {
        match e {
            RetentionError::Refused { topic, reason } => {
                ActuatorError::Refused(RetentionRefusal { topic, reason })
            }
            RetentionError::Cluster { topic, reason } => ActuatorError::Failed {
                target: topic,
                reason,
            },
            RetentionError::Store(e) => ActuatorError::Failed {
                target: "retention journal".into(),
                reason: e.to_string(),
            },
        }
    }
}
