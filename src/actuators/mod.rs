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

use crate::policy::GroupDecision;
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

/// Changes `local.retention.ms` of a managed topic (IncrementalAlterConfigs SET or DELETE of that key only).
pub trait RetentionActuator: Send + Sync {
    /// Applies a change that [`retention::plan`] produced.
    fn apply_retention(
        &self,
        topic: &str,
        change: &RetentionChange,
    ) -> impl Future<Output = Result<(), ActuatorError>> + Send;
}
