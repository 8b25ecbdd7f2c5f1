//! The policy file: what the controller may do and where its limits are.
//!
//! The `///` comments on these fields are the policy reference (`docs/policy.md` is generated from the
//! same text by hand and must be kept in step). Every section may be omitted; the defaults are the
//! conservative values of `policies/default.toml`. Unknown fields are rejected.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config_file::{self, FileError, Problems};
pub use catchup_proto::decision::RateUnit;

use crate::units::{Bytes, Dur};

/// A complete policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Disk thresholds, in percent of each broker's log volume.
    #[serde(default)]
    pub disk: DiskPolicy,
    /// How disk use is forecast from recent samples.
    #[serde(default)]
    pub forecast: ForecastPolicy,
    /// How catch-up consumers are throttled and paused.
    #[serde(default)]
    pub throttle: ThrottlePolicy,
    /// When the backlog counts as drained.
    #[serde(default)]
    pub drain: DrainPolicy,
    /// How `local.retention.ms` of managed topics is lowered and restored.
    #[serde(default)]
    pub retention: RetentionPolicy,
    /// How old a reading may be before it is ignored.
    #[serde(default)]
    pub staleness: StalenessPolicy,
    /// The catch-up groups' input topics: the retention deadline of their oldest unconsumed
    /// records, and (opt-in) extending `retention.ms` instead of losing them.
    #[serde(default)]
    pub input: InputPolicy,
    /// The catch-up consumer groups the controller may throttle or pause, named explicitly.
    #[serde(default)]
    pub groups: Vec<GroupPolicy>,
}

/// Disk thresholds. They must be ordered `restore_below <= target < throttle_start < pause < ceiling`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskPolicy {
    /// The line no broker may cross. The controller acts early enough to stay under it; crossing it
    /// raises an alert. Default 85 (the level at which the 2025-11 incident paged on-call).
    pub ceiling_percent: f64,
    /// Hard limit: at or above this, or when the forecast reaches the ceiling within
    /// `forecast.pause_lead`, catch-up groups are paused. Default 80.
    pub pause_percent: f64,
    /// Throttling starts when a broker is above this or forecast to cross it within
    /// `forecast.throttle_horizon`. Default 75.
    pub throttle_start_percent: f64,
    /// The level the throttle steers towards while it is engaged. Default 70.
    pub target_percent: f64,
    /// Kept for compatibility and still checked for order; no longer the restore condition: retention
    /// is restored once drained while the 24 h restore forecast stays under `pause_percent`
    /// (docs/policy.md, *Retention rules*). Default 65.
    pub restore_below_percent: f64,
}

impl Default for DiskPolicy {
    fn default() -> Self {
        DiskPolicy {
            ceiling_percent: 85.0,
            pause_percent: 80.0,
            throttle_start_percent: 75.0,
            target_percent: 70.0,
            restore_below_percent: 65.0,
        }
    }
}

/// Forecasting: a least-squares line through each broker's recent disk samples, extrapolated from the
/// sample time (which lags `now` by the metric's delay) into the future.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastPolicy {
    /// Samples newer than this (relative to the newest) feed the trend line. Kafka deletes segments in
    /// bursts every retention-check interval (default 5m), so disk use is a sawtooth; a window of six
    /// such periods keeps the sawtooth out of the trend (its bias falls with the square of the number
    /// of periods). Default 30m.
    pub window: Dur,
    /// Fewer samples than this in the window, or samples spanning less than half of it: no trend, the
    /// level alone is used. Default 5.
    pub min_samples: usize,
    /// The throttle acts on the forecast this far ahead. Default 15m.
    pub throttle_horizon: Dur,
    /// Pause when the forecast reaches the ceiling within this (and, while a broker's disk reading
    /// is stale, when its upper bound reaches the pause limit within this). Default 5m.
    pub pause_lead: Dur,
    /// The worst disk growth at full catch-up speed that the observer assumes while a broker's
    /// disk reading is stale (or after it learned less), percent per hour; scaled by the share of
    /// full speed the gate lets through. Set it from the brokers' write throughput over the volume
    /// size if catch-up can fill faster. Between 1 and 1000. Default 40.
    pub blind_growth_percent_per_hour: f64,
}

impl Default for ForecastPolicy {
    fn default() -> Self {
        ForecastPolicy {
            window: Dur::from_mins(30),
            min_samples: 5,
            throttle_horizon: Dur::from_mins(15),
            pause_lead: Dur::from_mins(5),
            blind_growth_percent_per_hour: 40.0,
        }
    }
}

/// What the throttle does when disk data is stale or missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleMode {
    /// Never raise the rate until data is fresh again; a stale broker's last trend is extrapolated and
    /// may still cut the rate or pause (default). A metrics outage neither halts a healthy catch-up nor
    /// lets a rising disk fill blind.
    Hold,
    /// Drop every catch-up group to its minimum rate.
    MinRate,
    /// Pause every catch-up group.
    Pause,
}

/// Throttle behaviour (the control law is described in `docs/policy.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottlePolicy {
    /// Additive increase: how much of a group's reference rate is given back per minute while the
    /// forecast has room. Between 0 and 1. Default 0.1 (full speed again after 10 minutes).
    pub increase_per_minute: f64,
    /// A group's rate never goes below this fraction of its reference rate unless paused (used when the
    /// group sets no `min_rate`). Between 0 and 1. Default 0.1.
    pub min_fraction: f64,
    /// Burst a throttled gate allows, in seconds of its rate. Default 1s.
    pub burst: Dur,
    /// How long a throttle decision is valid; consumers fall back to their configured default when the
    /// controller has not renewed it by then. Default 2m.
    pub decision_ttl: Dur,
    /// What to do with the throttle while disk data is stale: `hold`, `min_rate` or `pause`. Default `hold`.
    pub stale_mode: StaleMode,
    /// Consumers whose decision expired while the controller is unreachable keep the last decision
    /// this long: a paused group stays paused, a throttled one keeps its rate. Long enough to ride out
    /// a controller restart; short enough that a crash-looping controller cannot halt ingestion for
    /// good. Default 15m.
    pub fallback_hold: Dur,
    /// After `fallback_hold`, consumers resume at the group's minimum rate (or keep their throttled
    /// rate, if higher) and double it every `fallback_ramp` until they run open: never full speed at
    /// once onto a disk the controller last saw near its ceiling. Default 5m.
    pub fallback_ramp: Dur,
    /// A `live` group whose oldest unconsumed record is older than this raises `live_lag_high`.
    /// Between 1s and 7d. Default 5m.
    pub max_live_lag: Dur,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            increase_per_minute: 0.1,
            min_fraction: 0.1,
            burst: Dur::from_secs(1),
            decision_ttl: Dur::from_mins(2),
            stale_mode: StaleMode::Hold,
            fallback_hold: Dur::from_mins(15),
            fallback_ramp: Dur::from_mins(5),
            max_live_lag: Dur::from_mins(5),
        }
    }
}

/// When the backlog counts as drained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrainPolicy {
    /// A group is drained when its total lag (records) is below this. Per-group `lag_threshold`
    /// overrides it. Default 100000.
    pub lag_threshold: i64,
    /// Every group must stay drained this long before retention is restored. Default 15m.
    pub dwell: Dur,
}

impl Default for DrainPolicy {
    fn default() -> Self {
        DrainPolicy {
            lag_threshold: 100_000,
            dwell: Dur::from_mins(15),
        }
    }
}

/// Retention lowering and restoring for managed topics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPolicy {
    /// Managed topics: the only topics whose `local.retention.ms` may ever be changed. Each must have
    /// `remote.storage.enable=true` on the cluster.
    pub topics: Vec<TopicPolicy>,
    /// Local retention is never set below this. Must not exceed any managed topic's original local
    /// retention (checked against the cluster or scenario). Default 1h.
    pub floor: Dur,
    /// Each lowering step multiplies the current local retention by this (between 0 and 1), or by
    /// less where three such steps would not reach the floor from the original. Default 0.5.
    pub step_factor: f64,
    /// At most one lowering step per this interval, so the effect of a step (after Kafka's
    /// retention check, default 5m, and the metric delay) is seen before the next. Default 10m.
    pub step_interval: Dur,
    /// Lower retention when a broker is forecast to cross `disk.throttle_start_percent` within this.
    /// Retention acts on a longer horizon than the throttle, so space is freed before consumers slow.
    /// Default 2h.
    pub lead_time: Dur,
    /// The restore (one write back to the original) comes at least this long after the last
    /// lowering step; each setback doubles it. Default 15m.
    pub restore_step_interval: Dur,
    /// Do not lower retention while any broker's tiered-storage copy lag is above this: Kafka deletes
    /// only segments already copied, so lowering would free nothing. Default 20GiB.
    pub max_copy_lag: Bytes,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            topics: Vec::new(),
            floor: Dur::from_hours(1),
            step_factor: 0.5,
            step_interval: Dur::from_mins(10),
            lead_time: Dur::from_hours(2),
            restore_step_interval: Dur::from_mins(15),
            max_copy_lag: Bytes(20 << 30),
        }
    }
}

/// One managed topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicPolicy {
    /// Topic name.
    pub name: String,
    /// A floor for this topic, overriding `retention.floor`.
    #[serde(default)]
    pub floor: Option<Dur>,
}

/// Maximum reading ages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StalenessPolicy {
    /// Disk readings older than this are stale: no config change, throttle per `throttle.stale_mode`.
    /// CloudWatch stamps a 1-minute datapoint with the start of its period and publishes it a minute or
    /// more later, so keep this above 3m. Default 5m.
    pub max_disk_age: Dur,
    /// Copy-lag readings older than this block retention lowering. Default 10m.
    pub max_copy_lag_age: Dur,
    /// Offsets older than this: the backlog is not considered drained. Default 2m.
    pub max_lag_age: Dur,
    /// Topic configs older than this: no retention change for that topic. Default 5m.
    pub max_config_age: Dur,
}

impl Default for StalenessPolicy {
    fn default() -> Self {
        StalenessPolicy {
            max_disk_age: Dur::from_mins(5),
            max_copy_lag_age: Dur::from_mins(10),
            max_lag_age: Dur::from_mins(2),
            max_config_age: Dur::from_mins(5),
        }
    }
}

/// Which side wins when protecting the broker disks and meeting an input deadline conflict (a
/// group the disk needs paused would otherwise lose input records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Pause anyway (the default): a full broker takes every topic on it down, loses in-flight
    /// writes and needs hands to recover, while an expired input record loses that record alone
    /// and is counted; the page gives on-call both deadlines to act on.
    #[default]
    ProtectDisk,
    /// Keep the group at the rate its deadline needs even at the pause line; the disk keeps its
    /// ceiling alert and the page.
    ProtectInput,
}

/// The input deadline (DESIGN.md invariant 10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputPolicy {
    /// Kept between a group's oldest unconsumed record and its deletion: the required rate keeps
    /// this much, the deadline alert fires before it is spent. At most a quarter of the input
    /// topic's `retention.ms` is used. Default 6h.
    pub margin: Dur,
    /// When the disk and an input deadline conflict: `protect_disk` (default) or
    /// `protect_input`. Either way catchup pages at once with both deadlines.
    pub on_conflict: OnConflict,
    /// Input topics whose `retention.ms` catchup may raise (tiered topics only, never above
    /// `max_retention`, only ever up, restored exactly) so a held backlog does not age out.
    pub extend: Vec<ExtendPolicy>,
}

impl Default for InputPolicy {
    fn default() -> Self {
        InputPolicy {
            margin: Dur::from_hours(6),
            on_conflict: OnConflict::ProtectDisk,
            extend: Vec::new(),
        }
    }
}

/// An input topic whose total retention catchup may extend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendPolicy {
    /// Topic name (must have `remote.storage.enable=true` on the cluster: raising `retention.ms`
    /// then grows only the remote store; on a non-tiered topic it would fill the disk, so it is
    /// refused).
    pub topic: String,
    /// `retention.ms` is never raised above this.
    pub max_retention: Dur,
}

/// One catch-up consumer group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPolicy {
    /// Consumer group id.
    pub name: String,
    /// Unit of the gate's rate: `records` or `bytes`. Default `records`.
    #[serde(default)]
    pub unit: RateUnit,
    /// The group's full speed, the reference the throttle scales. When absent, the highest consume rate
    /// measured while the gate was open is used.
    #[serde(default)]
    pub max_rate: Option<f64>,
    /// Never throttle below this (unless paused). When absent, `throttle.min_fraction` of the reference.
    #[serde(default)]
    pub min_rate: Option<f64>,
    /// Drained when total lag is below this many records; default `drain.lag_threshold`.
    #[serde(default)]
    pub lag_threshold: Option<i64>,
    /// The group's lane: `live`, `catchup` (default) or `backfill`. The throttle cuts the lowest
    /// lane first and gives rate back to the highest first; a `live` group is never cut, and is
    /// paused only at the pause line after every lower group is paused (docs/policy.md, "Lanes").
    #[serde(default)]
    pub priority: Priority,
    /// Never gated by the control law: its gate stays open (an override naming this group still
    /// applies; an all-groups one does not). For consumers that must never wait.
    #[serde(default)]
    pub exempt: bool,
}

impl GroupPolicy {
    /// A `catchup`-lane group named `name`, every other field at its default.
    pub fn named(name: impl Into<String>) -> GroupPolicy {
        GroupPolicy {
            name: name.into(),
            unit: RateUnit::default(),
            max_rate: None,
            min_rate: None,
            lag_threshold: None,
            priority: Default::default(),
            exempt: false,
        }
    }

    /// Whether the control law gates this group at all.
    pub fn gated(&self) -> bool {
        !self.exempt
    }
}

/// A group's lane, lowest first: the throttle cuts `backfill` before `catchup`, and never cuts
/// `live`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Re-reading history: cut first, given rate back last.
    Backfill,
    /// A backlog to drain (the default).
    #[default]
    Catchup,
    /// Fresh events that must not wait: never cut; paused only at the pause line, after every lower
    /// group is paused. Its time lag is watched against `throttle.max_live_lag`.
    Live,
}

impl Priority {
    /// As written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Backfill => "backfill",
            Priority::Catchup => "catchup",
            Priority::Live => "live",
        }
    }
}

/// The top-level sections of a policy file.
const SECTIONS: [&str; 8] = [
    "disk",
    "forecast",
    "throttle",
    "drain",
    "retention",
    "staleness",
    "input",
    "groups",
];

impl Policy {
    /// Loads and validates a policy file, reporting every problem found.
    pub fn load(file: &Path) -> Result<Policy, FileError> {
        let table = config_file::read_table(file)?;
        Policy::from_table(file, table)
    }

    /// Parses and validates policy text (`file` is used in messages).
    pub fn parse(file: &Path, text: &str) -> Result<Policy, FileError> {
        Policy::from_table(file, config_file::parse_table(file, text)?)
    }

    /// Takes every section out of `table`, then validates the whole; a section that already has a
    /// problem (its values fell back to defaults) is not cross-checked as well.
    fn from_table(file: &Path, mut table: toml::Table) -> Result<Policy, FileError> {
        let mut problems = Problems::default();
        let policy = Policy {
            disk: config_file::take_section(&mut table, "disk", &mut problems),
            forecast: config_file::take_section(&mut table, "forecast", &mut problems),
            throttle: config_file::take_section(&mut table, "throttle", &mut problems),
            drain: config_file::take_section(&mut table, "drain", &mut problems),
            retention: config_file::take_section(&mut table, "retention", &mut problems),
            staleness: config_file::take_section(&mut table, "staleness", &mut problems),
            input: config_file::take_section(&mut table, "input", &mut problems),
            groups: config_file::take_section(&mut table, "groups", &mut problems),
        };
        config_file::reject_unknown(&table, &SECTIONS, &mut problems);
        let broken = problems.sections_with_problems();
        let mut semantic = Problems::default();
        policy.validate(&mut semantic);
        problems.extend_except(semantic, &broken);
        problems.into_result(file)?;
        Ok(policy)
    }

    /// The floor of `topic` in ms (its own, else the policy's).
    pub fn floor_ms(&self, topic: &str) -> i64 {
        let floor = self
            .retention
            .topics
            .iter()
            .find(|t| t.name == topic)
            .and_then(|t| t.floor);
        floor.unwrap_or(self.retention.floor).0 as i64
    }

    /// Whether `topic` is a managed topic.
    pub fn manages(&self, topic: &str) -> bool {
        self.retention.topics.iter().any(|t| t.name == topic)
    }

    /// The names of the managed topics.
    pub fn managed_topics(&self) -> Vec<String> {
        self.retention
            .topics
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    /// The input topic `topic`'s extension, if the policy allows one.
    pub fn extension(&self, topic: &str) -> Option<&ExtendPolicy> {
        self.input.extend.iter().find(|e| e.topic == topic)
    }

    /// The margin kept before an input deadline of a topic whose `retention.ms` is
    /// `retention_ms`: the policy's, at most a quarter of the retention.
    pub fn input_margin_ms(&self, retention_ms: i64) -> i64 {
        (self.input.margin.0 as i64).min(retention_ms / 4)
    }

    /// The names of the catch-up groups.
    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// The drain threshold of `group` in records.
    pub fn lag_threshold(&self, group: &GroupPolicy) -> i64 {
        group.lag_threshold.unwrap_or(self.drain.lag_threshold)
    }
}
