//! `ControllerState`: what the engine remembers between ticks. Plain data, serializable, so the
//! runtime can persist it and a restart continues where it left off.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

pub use catchup_proto::observation::OriginalRetention;

use crate::observation::BrokerId;
use crate::units::Timestamp;

/// Engine memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Recent disk samples per broker (percent), newest last.
    pub disks: BTreeMap<BrokerId, VecDeque<DiskPoint>>,
    /// The shared throttle.
    pub throttle: ThrottleState,
    /// Per catch-up group.
    pub groups: BTreeMap<String, GroupTrack>,
    /// Since when every group has been below its drain threshold.
    pub drained_since: Option<Timestamp>,
    /// Per managed topic.
    pub topics: BTreeMap<String, TopicTrack>,
    /// Time of the previous tick.
    pub last_tick: Option<Timestamp>,
    /// The disk observer's memory: the gate's share history and each broker's learned growth.
    #[serde(default)]
    pub observer: ObserverState,
    /// What the restore forecast remembers since the backlog drained.
    #[serde(default)]
    pub restore: RestoreWatch,
}

/// The restore forecast's memory of the drained cluster (cleared while a backlog is being caught up).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreWatch {
    /// Per broker, its disk level (the observer's upper bound, percent) once the lowered window has
    /// turned over after the drain, one point per 10 minutes, the last 24 h, newest last.
    pub levels: BTreeMap<BrokerId, VecDeque<DiskPoint>>,
    /// The highest measured share of full speed the groups consumed at since the drain.
    pub share_peak: f64,
    /// The catch-up groups' producers' total rate (records/s), one point per 10 minutes, the last
    /// 24 h, newest last; kept through backlogs (the producers' daily cycle does not stop for them).
    #[serde(default)]
    pub produce: VecDeque<DiskPoint>,
    /// Since when the backlog has not been drained (cleared once it is).
    #[serde(default)]
    pub backlog_since: Option<Timestamp>,
    /// The widest lowered window (ms) while `levels` were recorded, and since when: a topic lowered
    /// again below it makes those levels a wider window's, so they are forgotten and recorded
    /// again once the narrower window has turned over.
    #[serde(default)]
    pub levels_window: Option<(i64, Timestamp)>,
}

/// One disk sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskPoint {
    /// Sample time.
    pub at: Timestamp,
    /// Used percent.
    pub percent: f64,
}

/// The throttle state shared by every catch-up group (each group's rate is in its `GroupTrack`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottleState {
    /// Whether the groups are paused by the control law.
    pub paused: bool,
    /// When the current pause or throttle began.
    pub since: Option<Timestamp>,
    /// When the fraction was last cut; a further cut waits until samples from a third of the forecast
    /// window after it are in, so the trend can show the effect of the cut.
    pub last_cut_at: Option<Timestamp>,
}

/// Rates, reference and throttle of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupTrack {
    /// 1.0 = open; below 1.0 = throttled to that share of the reference rate.
    pub fraction: f64,
    /// Previous offsets sample: time, sum of committed, sum of log-end.
    pub last: Option<(Timestamp, i64, i64)>,
    /// Smoothed consume rate, records/s.
    pub consume_rate: Option<f64>,
    /// Smoothed produce rate, records/s.
    pub produce_rate: Option<f64>,
    /// Highest consume rate seen while the gate was open, or above this rate while held: the
    /// group's full speed, as far as measured.
    pub reference_rate: Option<f64>,
    /// Whether the gate was open during the interval that ended with `last`.
    pub was_open: bool,
    /// Per input partition (`topic:partition`) whose committed offset is below its log start:
    /// the log start up to which its lost records are already counted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lost_through: BTreeMap<String, i64>,
    /// Input records lost per topic since counting began.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub records_lost: BTreeMap<String, i64>,
    /// When a loss was last counted.
    #[serde(default)]
    pub last_loss_at: Option<Timestamp>,
    /// Consume rates measured (records/s), at most one point per 30 s, newest last: what the disk
    /// readings have seen (the slow start's history).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub consumed: VecDeque<(Timestamp, f64)>,
    /// The rate (records/s) the slow start held the last decision's gate at, if it did.
    #[serde(default)]
    pub held_at: Option<f64>,
}

impl Default for GroupTrack {
    fn default() -> Self {
        GroupTrack {
            fraction: 1.0,
            last: None,
            consume_rate: None,
            produce_rate: None,
            reference_rate: None,
            was_open: true,
            lost_through: BTreeMap::new(),
            records_lost: BTreeMap::new(),
            last_loss_at: None,
            consumed: VecDeque::new(),
            held_at: None,
        }
    }
}

/// What the engine knows about one managed topic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicTrack {
    /// Captured on the first lowering; kept until the topic is back at it.
    pub original: Option<OriginalRetention>,
    /// The lowered value last decided (`None` = original).
    pub lowered_ms: Option<i64>,
    /// The value decided before that (still valid while the actuator catches up).
    pub previous_ms: Option<i64>,
    /// Time of the last step down or up.
    pub last_step_at: Option<Timestamp>,
    /// Until then the window is refilling after a restore (growth expected, not alarming).
    pub refill_until: Option<Timestamp>,
    /// How often a restore had to be undone because the refill would cross the pause line;
    /// each doubles the wait before the next restore (hysteresis against flapping).
    #[serde(default)]
    pub restore_setbacks: u32,
    /// The topic was restored since the backlog drained: until the next backlog, lowering again
    /// needs a forecast crossing the pause line, not the throttle start (hysteresis).
    #[serde(default)]
    pub restored_in_event: bool,
    /// Set when someone else changed the topic: the engine no longer touches it.
    pub hands_off: Option<String>,
}

/// What the observer remembers between ticks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObserverState {
    /// The groups' measured and allowed share of full speed, one point per tick, newest last.
    #[serde(default)]
    pub shares: VecDeque<SharePoint>,
    /// Whether any broker has ever had a fresh disk reading; until then the groups run at their
    /// minimum rate, never open.
    #[serde(default)]
    pub fresh_seen: bool,
    /// Per broker.
    #[serde(default)]
    pub brokers: BTreeMap<BrokerId, BrokerModel>,
}

/// The groups' share of their full speed at one tick.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharePoint {
    /// Tick time.
    pub at: Timestamp,
    /// Consumed, as measured (0 to 1).
    pub measured: f64,
    /// The most the gate in force let through, capped by what the groups could consume (0 to 1).
    pub allowed: f64,
}

/// One broker's learned growth model and its running upper bound.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerModel {
    /// Forgetting weights and sums of the fit: Σw, Σw·s, Σw·g, Σw·s², Σw·s·g (g in %/s).
    pub sums: [f64; 5],
    /// Time of the newest point added.
    pub fitted_at: Option<Timestamp>,
    /// The highest growth per unit of share seen (%/s at full speed, baseline not subtracted).
    pub peak_per_share: f64,
    /// The steepest step between two consecutive fresh samples per unit of share (%/s at full
    /// speed, producers' inflow not subtracted), fading with the fit's half-life: deletion comes
    /// in bursts at retention checks, so between them a broker's disk grows at its gross write
    /// rate, which the trend (net of deletion) hides.
    #[serde(default)]
    pub peak_step_per_share: f64,
    /// Time of the newest step taken into `peak_step_per_share`.
    #[serde(default)]
    pub stepped_at: Option<Timestamp>,
    /// The upper bound carried from the last tick: the sample it starts from, the tick, the bound.
    pub bound: Option<(Timestamp, Timestamp, f64)>,
}
