//! What `/v1/status` shows: the last tick's observation and decision, the mode, the overrides in
//! force, the managed topics with their originals, and what limits the controller.

use serde::Serialize;

use crate::config::Mode;
use crate::policy::{ControllerState, Decision, Override, Policy, RetentionTarget};
use crate::sensors::{ConfigSource, Limitation, Observation, SensorFault};

/// A managed topic as status shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ManagedTopic {
    /// Topic.
    pub topic: String,
    /// Effective local retention the cluster reports, ms.
    pub current_ms: Option<i64>,
    /// Before the controller's first change, ms.
    pub original_ms: Option<i64>,
    /// Whether the original was set on the topic (`topic`) or inherited.
    pub original_source: Option<String>,
    /// What the engine wants.
    #[schema(value_type = Object)]
    pub target: RetentionTarget,
}

/// What `/v1/status` returns.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// Current mode.
    pub mode: Mode,
    /// Whether a tick with fresh disk and lag data has completed (see [`ready_after`]).
    pub ready: bool,
    /// Ticks completed since start.
    pub ticks: u64,
    /// What the sensors saw in the last tick.
    #[schema(value_type = Object)]
    pub observation: Option<Observation>,
    /// What the engine decided in the last tick, with reasons.
    #[schema(value_type = Object)]
    pub decision: Option<Decision>,
    /// Overrides in force.
    #[schema(value_type = Vec<Object>)]
    pub overrides: Vec<Override>,
    /// Managed topics with original and current retention.
    pub topics: Vec<ManagedTopic>,
    /// Sensors that failed in the last tick.
    #[schema(value_type = Vec<Object>)]
    pub sensor_errors: Vec<SensorFault>,
    /// What the controller cannot see or do right now, and which actions that disables: facts of
    /// the cluster (MSK discovery: storage mode, monitoring level, ...) and this tick's sensor
    /// failures.
    pub limitations: Vec<Limitation>,
    /// The cluster as discovered (for MSK: name, state, storage mode, monitoring, brokers, volume).
    #[schema(value_type = Object)]
    pub cluster: Option<serde_json::Value>,
}

impl Status {
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
        }
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
                original_source: original.map(|o| match o.source {
                    ConfigSource::Topic => "topic".to_string(),
                    ConfigSource::Inherited => "inherited".to_string(),
                }),
                target: d.map_or(RetentionTarget::Original, |d| d.target.clone()),
                topic,
            }
        })
        .collect()
}
