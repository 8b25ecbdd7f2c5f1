//! What the engine outputs (`Decision`) and what people feed it besides observations (`Override`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::observation::BrokerId;
use crate::units::Timestamp;

/// Unit of a gate's rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RateUnit {
    /// Records per second (the default: lag is counted in records, so the reference rate can be measured).
    #[default]
    Records,
    /// Bytes per second (requires `max_rate` and `min_rate`, since offsets do not measure bytes).
    Bytes,
}

/// The state of a gate, without its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    /// No limit.
    Open,
    /// A token bucket.
    Throttled,
    /// Consume nothing.
    Paused,
}

impl GateState {
    /// Every state, in order.
    pub const ALL: [GateState; 3] = [GateState::Open, GateState::Throttled, GateState::Paused];

    /// `open`, `throttled` or `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::Open => "open",
            GateState::Throttled => "throttled",
            GateState::Paused => "paused",
        }
    }
}

impl PartialEq<&str> for GateState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for GateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The desired state of a catch-up group's gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Gate {
    /// No limit.
    Open,
    /// A token bucket: `rate` per second, up to `burst` at once.
    Throttled {
        /// Sustained rate in `unit`/s.
        rate: f64,
        /// Bucket size in `unit`.
        burst: f64,
        /// Records or bytes.
        unit: RateUnit,
    },
    /// Consume nothing.
    Paused,
}

impl Gate {
    /// The state without its parameters.
    pub fn state(&self) -> GateState {
        match self {
            Gate::Open => GateState::Open,
            Gate::Throttled { .. } => GateState::Throttled,
            Gate::Paused => GateState::Paused,
        }
    }

    /// Short name: `open`, `throttled` or `paused`.
    pub fn name(&self) -> &'static str {
        self.state().as_str()
    }
}

/// Who made a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The control law.
    Auto,
    /// A manual override.
    Override,
}

/// The decision for one catch-up group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupDecision {
    /// What the gate should do.
    pub gate: Gate,
    /// Why, in words an on-call engineer can check.
    pub reasons: Vec<String>,
    /// Consumers fall back to their default after this unless the decision is renewed.
    pub expires_at: Timestamp,
    /// Control law or override.
    pub origin: Origin,
    /// Total lag in records, when known.
    pub lag: Option<i64>,
    /// Measured consume rate, records/s.
    pub consume_rate: Option<f64>,
    /// Measured produce rate into the consumed partitions, records/s.
    pub produce_rate: Option<f64>,
    /// Seconds until drained at the current net rate, when it is shrinking.
    pub drain_eta_secs: Option<f64>,
    /// Age of the oldest record the group has not consumed, seconds (the largest over its
    /// partitions); `None` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_lag_secs: Option<f64>,
    /// Where the group stands against its input topics' retention, when any of them deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputDeadline>,
}

/// When Kafka may delete the oldest record a group has not consumed, and the consume rate that
/// stays ahead of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputDeadline {
    /// The topic of the partition whose deadline binds (the least slack); `None` when no
    /// partition's deadline is known.
    pub topic: Option<String>,
    /// That partition.
    pub partition: Option<i32>,
    /// When that record may be deleted: its timestamp plus the topic's `retention.ms` (Kafka
    /// deletes a whole segment once its newest record is that old, so this errs early, never late).
    /// `None` when no partition's deadline is known.
    pub deadline: Option<Timestamp>,
    /// Seconds from now to `deadline` (negative once passed).
    pub headroom_secs: Option<f64>,
    /// The margin kept before the deadline (`input.margin`, at most a quarter of the retention).
    pub margin_secs: f64,
    /// The consume rate, records/s, that keeps every partition's oldest record ahead of its
    /// deadline by the margin until the backlog is gone; `None` when not yet measurable.
    pub required_rate: Option<f64>,
    /// How much longer the group may be held (even paused) and still stay ahead of the deadline
    /// by running at full speed afterwards, seconds; 0 when it must run now. `None` when unknown.
    pub slack_secs: Option<f64>,
    /// Records of this group deleted before it consumed them, since the controller began counting
    /// (persisted across restarts).
    pub records_lost: i64,
    /// What the deadline does not cover: topics with `retention.bytes` set (sizes per partition are
    /// not read), topics whose configs or record times are unknown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untracked: Vec<String>,
}

/// Records a group lost this tick: its committed offset is below the partition's log start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLoss {
    /// The consumer group.
    pub group: String,
    /// The input topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset.
    pub committed: i64,
    /// The partition's log start (everything below it is deleted).
    pub log_start: i64,
    /// Records newly counted as lost this tick.
    pub records: i64,
}

/// The desired `local.retention.ms` of one managed topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum RetentionTarget {
    /// The topic's original setting: SET the original value back, or DELETE the topic-level key when
    /// the original was inherited. Nothing to do if the topic was never changed.
    Original,
    /// A lowered value in ms (never below the floor, never above `retention.ms`).
    Lowered {
        /// New `local.retention.ms`.
        ms: i64,
    },
    /// Do not touch the topic (someone else changed it, or it is not eligible).
    HandsOff,
}

/// The decision for one managed topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicDecision {
    /// What `local.retention.ms` should be.
    pub target: RetentionTarget,
    /// Whether the engine took a new step this tick (down or up): retention is written only on
    /// such a fresh decision, never re-applied from a held target.
    #[serde(default)]
    pub changed: bool,
    /// Effective local retention the cluster reports now, ms.
    pub current_ms: Option<i64>,
    /// Effective local retention before the controller's first change, ms.
    pub original_ms: Option<i64>,
    /// Why.
    pub reasons: Vec<String>,
}

/// The desired `retention.ms` of an input topic the policy allow-lists for extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum ExtensionTarget {
    /// The topic's original `retention.ms` (SET it back, or DELETE the key when inherited).
    Original,
    /// Raised to this many ms (never lower than now, never above the policy's cap).
    Extended {
        /// New `retention.ms`.
        ms: i64,
    },
    /// Do not touch the topic (someone else changed it, or it is not eligible).
    HandsOff,
}

/// The decision for one input topic allow-listed for extension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtensionDecision {
    /// What `retention.ms` should be.
    pub target: ExtensionTarget,
    /// Whether the cluster needs a write to get there (it is not at the target and no write of
    /// the controller's is pending).
    #[serde(default)]
    pub changed: bool,
    /// `retention.ms` the cluster reports now.
    pub current_ms: Option<i64>,
    /// `retention.ms` before the controller's first change.
    pub original_ms: Option<i64>,
    /// Why.
    pub reasons: Vec<String>,
}

/// Severity of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

/// The stable, machine-readable kind of an alert (the `code` label of `catchup_alerts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertCode {
    /// A broker is above the ceiling.
    DiskAboveCeiling,
    /// No disk reading from any broker yet.
    DiskNoData,
    /// A broker's newest disk reading is older than `staleness.max_disk_age`.
    DiskStale,
    /// Someone else changed a managed topic's local retention.
    DriftDetected,
    /// The broker cannot say how many members share a gate.
    GateShareFallback,
    /// The catch-up groups are paused.
    GroupsPaused,
    /// A group's offsets could not be read.
    LagMissing,
    /// A group's offsets are older than `staleness.max_lag_age`.
    LagStale,
    /// A manual override keeps a group running against the control law.
    OverrideConflict,
    /// Every managed topic is at its floor.
    RetentionAtFloor,
    /// Lowering retention is needed but blocked.
    RetentionBlocked,
    /// A managed topic's configs are missing or stale.
    TopicConfigStale,
    /// A catch-up group's oldest unconsumed record nears (or passed) its input topic's deletion.
    InputDeadline,
    /// A catch-up group lost input records: deleted before it consumed them.
    InputDataLost,
    /// Protecting the disk and meeting an input deadline conflict: the policy's `on_conflict` chose.
    DeadlineConflict,
    /// A managed topic does not have tiered storage enabled.
    TopicNotTiered,
    /// A `live` group's oldest unconsumed record is older than `throttle.max_live_lag`.
    LiveLagHigh,
}

impl AlertCode {
    /// Every code, so metrics can export each from the start.
    pub const ALL: [AlertCode; 17] = [
        AlertCode::DiskAboveCeiling,
        AlertCode::DiskNoData,
        AlertCode::DiskStale,
        AlertCode::DriftDetected,
        AlertCode::GateShareFallback,
        AlertCode::GroupsPaused,
        AlertCode::LagMissing,
        AlertCode::LagStale,
        AlertCode::OverrideConflict,
        AlertCode::RetentionAtFloor,
        AlertCode::RetentionBlocked,
        AlertCode::TopicConfigStale,
        AlertCode::TopicNotTiered,
        AlertCode::InputDeadline,
        AlertCode::InputDataLost,
        AlertCode::DeadlineConflict,
        AlertCode::LiveLagHigh,
    ];

    /// The code as written in the API and metrics (`disk_stale`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertCode::DiskAboveCeiling => "disk_above_ceiling",
            AlertCode::DiskNoData => "disk_no_data",
            AlertCode::DiskStale => "disk_stale",
            AlertCode::DriftDetected => "drift_detected",
            AlertCode::GateShareFallback => "gate_share_fallback",
            AlertCode::GroupsPaused => "groups_paused",
            AlertCode::LagMissing => "lag_missing",
            AlertCode::LagStale => "lag_stale",
            AlertCode::OverrideConflict => "override_conflict",
            AlertCode::RetentionAtFloor => "retention_at_floor",
            AlertCode::RetentionBlocked => "retention_blocked",
            AlertCode::TopicConfigStale => "topic_config_stale",
            AlertCode::TopicNotTiered => "topic_not_tiered",
            AlertCode::InputDeadline => "input_deadline",
            AlertCode::InputDataLost => "input_data_lost",
            AlertCode::DeadlineConflict => "deadline_conflict",
            AlertCode::LiveLagHigh => "live_lag_high",
        }
    }
}

impl PartialEq<&str> for AlertCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for AlertCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a person should know about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// How urgent.
    pub severity: Severity,
    /// Stable machine-readable code, e.g. `disk_stale` or `retention_at_floor`.
    pub code: AlertCode,
    /// What happened and what it means.
    pub message: String,
}

/// Forecast of one broker's disk, as the engine saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerForecast {
    /// Broker id.
    pub broker: BrokerId,
    /// Newest sample, percent.
    pub sampled_percent: f64,
    /// Age of that sample, seconds.
    pub age_secs: f64,
    /// Whether the sample is older than `staleness.max_disk_age`.
    pub stale: bool,
    /// Trend in percent per hour (`None` with too few samples).
    pub trend_percent_per_hour: Option<f64>,
    /// Estimate for now: the sample extrapolated over its age along the trend, corrected for the
    /// gate's changes since (the observer's estimate).
    pub now_percent: f64,
    /// Seconds until the upper bound reaches the ceiling at the gate in force (`None` when not
    /// rising).
    pub time_to_ceiling_secs: Option<f64>,
    /// The observer's estimate for now, percent (the same as `now_percent`; absent from older
    /// controllers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_percent: Option<f64>,
    /// The upper bound of that estimate, percent: what the control law decides on. It grows with
    /// the data's age at the worst growth physically possible at the gate in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_percent: Option<f64>,
    /// How fast the upper bound grows at the gate in force, percent per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_trend_percent_per_hour: Option<f64>,
}

/// Everything the engine decided in one tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When.
    pub at: Timestamp,
    /// Per catch-up group.
    pub groups: BTreeMap<String, GroupDecision>,
    /// Per managed topic.
    pub topics: BTreeMap<String, TopicDecision>,
    /// Per broker.
    pub brokers: Vec<BrokerForecast>,
    /// Whether every catch-up group has been drained for the dwell time.
    pub drained: bool,
    /// Things a person should know.
    pub alerts: Vec<Alert>,
    /// Per input topic allow-listed for extension (`[[input.extend]]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, ExtensionDecision>,
    /// Input records the catch-up groups lost this tick (audited and counted by the runtime).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<InputLoss>,
}

/// What a manual override applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(
    tag = "kind",
    content = "name",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum OverrideScope {
    /// One catch-up group.
    Group(String),
    /// Every catch-up group.
    AllGroups,
    /// One managed topic.
    Topic(String),
}

/// What a manual override does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum OverrideAction {
    /// Pause the group(s).
    Pause,
    /// Open the group(s), whatever the control law says.
    Resume,
    /// Hold the group(s) at a fixed rate.
    FixedRate {
        /// Rate in the group's unit per second (above 0).
        #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0.0, maximum = 1e15))]
        rate: f64,
    },
    /// Keep the topic's local retention as it is now: no lowering, no restoring.
    HoldRetention,
}

/// A manual override: it wins over the control law until it expires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// Identifier.
    pub id: String,
    /// What it applies to.
    pub scope: OverrideScope,
    /// What it does.
    pub action: OverrideAction,
    /// Why (required).
    pub reason: String,
    /// Who.
    pub actor: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops applying.
    pub expires_at: Timestamp,
}

impl Override {
    /// Whether the override applies to `group` at `now`.
    pub fn covers_group(&self, group: &str, now: Timestamp) -> bool {
        now < self.expires_at
            && match &self.scope {
                OverrideScope::Group(g) => g == group,
                OverrideScope::AllGroups => true,
                OverrideScope::Topic(_) => false,
            }
    }

    /// Whether the override applies to `topic` at `now`.
    pub fn covers_topic(&self, topic: &str, now: Timestamp) -> bool {
        now < self.expires_at && matches!(&self.scope, OverrideScope::Topic(t) if t == topic)
    }

    /// One-line description for reasons and audit.
    pub fn describe(&self) -> String {
        let what = match &self.action {
            OverrideAction::Pause => "pause".to_string(),
            OverrideAction::Resume => "resume".to_string(),
            OverrideAction::FixedRate { rate } => format!("fixed rate {rate}/s"),
            OverrideAction::HoldRetention => "hold retention".to_string(),
        };
        format!(
            "manual override {} ({what}) by {}: {:?}, expires {}",
            self.id, self.actor, self.reason, self.expires_at
        )
    }
}
