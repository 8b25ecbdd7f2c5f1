//! What `/v1/status` returns, and the controller's mode.

use serde::{Deserialize, Serialize};

use crate::decision::{Decision, Override, RetentionTarget};
use crate::observation::{ConfigSource, Limitation, Observation, SensorFault};

/// What the controller is allowed to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Decide and act: gates and retention changes.
    #[default]
    Active,
    /// Decide and record what would be done; change nothing (gates stay open).
    DryRun,
    /// Read sensors and report status only; no decisions are published.
    Observe,
}

impl Mode {
    /// The name as written in files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Active => "active",
            Mode::DryRun => "dry-run",
            Mode::Observe => "observe",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "active" => Ok(Mode::Active),
            "dry-run" => Ok(Mode::DryRun),
            "observe" => Ok(Mode::Observe),
            other => Err(format!(
                "{other:?} is not a mode: use active, dry-run or observe"
            )),
        }
    }
}

/// A managed topic as status shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManagedTopic {
    /// Topic.
    pub topic: String,
    /// Effective local retention the cluster reports, ms.
    pub current_ms: Option<i64>,
    /// Before the controller's first change, ms.
    pub original_ms: Option<i64>,
    /// Whether the original was set on the topic (`topic`) or inherited.
    pub original_source: Option<ConfigSource>,
    /// What the engine wants.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub target: RetentionTarget,
}

/// What `/v1/status` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Status {
    /// Current mode.
    pub mode: Mode,
    /// Whether a tick with fresh disk and lag data has completed.
    pub ready: bool,
    /// Ticks completed since start.
    pub ticks: u64,
    /// What the sensors saw in the last tick.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub observation: Option<Observation>,
    /// What the engine decided in the last tick, with reasons.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub decision: Option<Decision>,
    /// Overrides in force.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub overrides: Vec<Override>,
    /// Managed topics with original and current retention.
    pub topics: Vec<ManagedTopic>,
    /// Sensors that failed in the last tick, as a whole or for one topic, group or broker.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub sensor_errors: Vec<SensorFault>,
    /// What the controller cannot see or do right now, and which actions that disables: facts of
    /// the cluster (MSK discovery: storage mode, monitoring level, ...) and this tick's sensor
    /// failures.
    pub limitations: Vec<Limitation>,
    /// The cluster as discovered (for MSK: name, state, storage mode, monitoring, brokers, volume).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub cluster: Option<serde_json::Value>,
    /// High availability (only with `[ha]`): this instance's role, the epoch, the leader and the
    /// live members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaStatus>,
}

/// An instance's place in its HA deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HaRole {
    /// Reads the cluster sensors, decides and writes topic configs, in its epoch.
    Leader,
    /// Serves the gate from the leader's decisions; never writes topic configs.
    #[default]
    Follower,
}

impl HaRole {
    /// As the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HaRole::Leader => "leader",
            HaRole::Follower => "follower",
        }
    }
}

/// `ha` in `GET /v1/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HaStatus {
    /// `leader` or `follower`.
    pub role: HaRole,
    /// The newest epoch this instance has seen (a leader's own): only grows.
    pub epoch: u64,
    /// The leading instance's id, when one is known.
    pub leader: Option<String>,
    /// Live instances of the deployment (this one included).
    pub members: u32,
    /// This instance's id.
    pub instance: String,
    /// Records of the state topic this instance had not yet read at its last read.
    pub state_lag: i64,
}
