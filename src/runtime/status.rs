//! What `/v1/status` shows: the last tick's observation and decision, the mode, the overrides in
//! force, the managed topics with their originals, and what limits the controller.

pub use catchup_proto::status::{ManagedTopic, Status};

use crate::config::Mode;
use crate::policy::{ControllerState, Decision, Override, Policy, RetentionTarget};

/// The status before the first tick.
pub fn initial(mode: Mode, overrides: Vec<Override>) -> Status {
    Status {
        mode,
        ready: false,
        ticks: 0,
        observation: None,
        decision: None,
        overrides,
        topics: Vec::new(),
        sensor_errors: Vec::new(),
        limitations: Vec::new(),
        cluster: None,
        ha: None,
    }
}

/// Every managed topic of `policy` with its original (from the engine's state) and what the
/// decision wants.
pub fn managed_topics(
    policy: &Policy,
    state: &ControllerState,
    decision: &Decision,
) -> Vec<ManagedTopic> {
    policy
        .managed_topics()
        .into_iter()
        .map(|topic| {
            let d = decision.topics.get(&topic);
            let original = state.topics.get(&topic).and_then(|t| t.original.as_ref());
            ManagedTopic {
                current_ms: d.and_then(|d| d.current_ms),
                original_ms: d.and_then(|d| d.original_ms),
                original_source: original.map(|o| o.source),
                target: d.map_or(RetentionTarget::Original, |d| d.target.clone()),
                topic,
            }
        })
        .collect()
}
