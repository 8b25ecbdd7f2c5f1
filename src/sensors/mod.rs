//! Sensors: what the controller can see of the cluster.
//!
//! Each sensor is a trait so the production adapters (Kafka admin API, CloudWatch, Prometheus) and the
//! simulator (`crate::sim`) are interchangeable behind the same control loop. Every reading carries its
//! own sample time; a sensor that fails returns a [`SensorError`] and the loop keeps the last reading,
//! which then ages into staleness instead of being mistaken for a fresh zero.
//!
//! The sensors that read a list of things (copy lag per broker, lag per group, configs per topic)
//! answer item by item in [`Readings`]: one deleted or mistyped managed topic, or one group whose
//! offsets cannot be fetched, is named in its own fault while every other topic and group is read,
//! so one bad name never blinds the controller to the rest. A [`SensorError`] stays what it was: the
//! whole sensor failed (broker or CloudWatch unreachable, access denied to the call).

pub mod disk;
pub mod lag;
pub mod time_lag;
pub mod topic_config;

use std::future::Future;

pub use catchup_proto::observation::{
    BrokerCopyLag, BrokerDisk, BrokerId, ConfigSource, ConfigValue, DiskSource, GroupOffsets,
    JournalPhase, LOCAL_RETENTION_INHERIT, Limitation, Observation, OriginalRetention,
    PartitionOffsets, RetentionRecord, SensorFault, SensorKind, TopicConfigs,
};

/// Why a sensor could not be read.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SensorError {
    /// The source answered but has no data (for example no datapoints yet).
    #[error("{sensor}: no data: {reason}")]
    NoData {
        /// Which sensor.
        sensor: SensorKind,
        /// What is missing.
        reason: String,
    },
    /// The source could not be reached or refused the request.
    #[error("{sensor}: unavailable: {reason}")]
    Unavailable {
        /// Which sensor.
        sensor: SensorKind,
        /// What went wrong.
        reason: String,
    },
}

/// One topic, group or broker a sensor could not read while it read the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemFault {
    /// The topic, group or broker id, as [`SensorFault::target`] carries it.
    pub target: String,
    /// What went wrong and what to do, naming the item.
    pub reason: String,
}

/// What a sensor read item by item: every topic, group or broker it could read, and each one it
/// could not, by name. The whole sensor failing is a [`SensorError`] instead.
#[derive(Clone, Debug, PartialEq)]
pub struct Readings<T> {
    /// The items read.
    pub read: Vec<T>,
    /// The items that could not be read, each with why.
    pub failed: Vec<ItemFault>,
}

impl<T> Readings<T> {
    /// Every item read, none failed.
    pub fn all(read: Vec<T>) -> Readings<T> {
        Readings {
            read,
            failed: Vec::new(),
        }
    }

    /// Records that `target` could not be read, and why.
    pub fn fail(&mut self, target: impl Into<String>, reason: impl Into<String>) {
        self.failed.push(ItemFault {
            target: target.into(),
            reason: reason.into(),
        });
    }
}

impl<T> Default for Readings<T> {
    fn default() -> Self {
        Readings::all(Vec::new())
    }
}

/// Local disk use per broker.
pub trait DiskSensor: Send + Sync {
    /// The newest reading of every broker's log volume.
    fn read_disks(&self) -> impl Future<Output = Result<Vec<BrokerDisk>, SensorError>> + Send;
}

/// Tiered-storage copy lag per broker.
///
/// A broker whose copy lag is missing, negative or not a finite number has **no** reading, and is
/// named in [`Readings::failed`] (target: its id) with why; it is never read as 0 bytes. Apache
/// Kafka's `RemoteCopyLagBytes` is not emitted while uploads fail (KAFKA-19995) and can be negative
/// after a leader change, so "no value" and "below zero" mean "unknown", and an unknown copy lag
/// blocks lowering retention (invariant 5). Its old value is not carried forward either: the
/// metric vanishing is the sign that uploads may have stopped.
pub trait CopyLagSensor: Send + Sync {
    /// The newest copy-lag reading of every broker that has a valid one; the others by id.
    fn read_copy_lag(
        &self,
    ) -> impl Future<Output = Result<Readings<BrokerCopyLag>, SensorError>> + Send;
}

/// Committed and log-end offsets of consumer groups.
pub trait LagSensor: Send + Sync {
    /// Offsets of every partition each of `groups` consumes; a group whose offsets could not be
    /// fetched (its OffsetFetch failed) is named in [`Readings::failed`] and the others are read.
    fn read_offsets(
        &self,
        groups: &[String],
    ) -> impl Future<Output = Result<Readings<GroupOffsets>, SensorError>> + Send;

    /// The number of members of each of `groups`, for sharing a gate's rate. By default the source
    /// cannot say.
    fn read_members(
        &self,
        groups: &[String],
    ) -> impl Future<Output = Result<Vec<(String, u32)>, SensorError>> + Send {
        let _ = groups;
        async {
            Err(SensorError::NoData {
                sensor: crate::sensors::SensorKind::Members,
                reason: "this cluster does not report group membership".into(),
            })
        }
    }
}

/// Current configs of topics, with each value's source.
pub trait TopicConfigSensor: Send + Sync {
    /// Configs of each of `topics`; a topic that could not be described (deleted, mistyped, not
    /// authorized) is named in [`Readings::failed`] and the others are read.
    fn read_topic_configs(
        &self,
        topics: &[String],
    ) -> impl Future<Output = Result<Readings<TopicConfigs>, SensorError>> + Send;
}

/// What the cluster is and what it cannot do (for status and `catchup observe`).
pub trait ClusterFacts: Send + Sync {
    /// What is missing and which actions it disables (static facts; sensor failures are added by
    /// the runtime each tick).
    fn limitations(&self) -> Vec<Limitation> {
        Vec::new()
    }

    /// A description of the cluster (kind, discovery results), if there is more to say than the
    /// observation.
    fn describe(&self) -> Option<serde_json::Value> {
        None
    }
}

/// The limitations a tick's sensor failures impose (invariants 5 and 6 enforce them in the engine;
/// this says so in status). A fault of one topic, group or broker names it in its reason. What it
/// disables is then narrower in the engine, which acts on the others: a topic's configs hold back
/// changes to that topic only, a group's offsets that group's rate (and every restore, since the
/// backlog cannot be shown drained); a broker's unknown copy lag blocks every lowering.
pub fn limitations_of(faults: &[SensorFault]) -> Vec<Limitation> {
    faults
        .iter()
        .map(|f| {
            let disables: &[&str] = match f.sensor {
                SensorKind::Disk => &["lower_retention", "restore_retention", "raise_rate"],
                SensorKind::CopyLag => &["lower_retention"],
                SensorKind::Lag => &["raise_rate", "restore_retention"],
                SensorKind::TopicConfigs | SensorKind::Members | SensorKind::State => {
                    &["lower_retention", "restore_retention"]
                }
                SensorKind::InputTopics => &["input_deadline", "extend_retention"],
            };
            Limitation {
                missing: format!("{}: {}", f.sensor, f.reason),
                disables: disables.iter().map(|s| s.to_string()).collect(),
            }
        })
        .collect()
}
