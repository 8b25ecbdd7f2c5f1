//! Sensors: what the controller can see of the cluster.
//!
//! Each sensor is a trait so the production adapters (Kafka admin API, CloudWatch, Prometheus) and the
//! simulator (`crate::sim`) are interchangeable behind the same control loop. Every reading carries its
//! own sample time; a sensor that fails returns a [`SensorError`] and the loop keeps the last reading,
//! which then ages into staleness instead of being mistaken for a fresh zero.

pub mod disk;
pub mod lag;
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

/// Local disk use per broker.
pub trait DiskSensor: Send + Sync {
    /// The newest reading of every broker's log volume.
    fn read_disks(&self) -> impl Future<Output = Result<Vec<BrokerDisk>, SensorError>> + Send;
}

/// Tiered-storage copy lag per broker.
pub trait CopyLagSensor: Send + Sync {
    /// The newest copy-lag reading of every broker.
    fn read_copy_lag(&self)
    -> impl Future<Output = Result<Vec<BrokerCopyLag>, SensorError>> + Send;
}

/// Committed and log-end offsets of consumer groups.
pub trait LagSensor: Send + Sync {
    /// Offsets of every partition each of `groups` consumes.
    fn read_offsets(
        &self,
        groups: &[String],
    ) -> impl Future<Output = Result<Vec<GroupOffsets>, SensorError>> + Send;

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
    /// Configs of each of `topics`.
    fn read_topic_configs(
        &self,
        topics: &[String],
    ) -> impl Future<Output = Result<Vec<TopicConfigs>, SensorError>> + Send;
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
/// this says so in status).
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
            };
            Limitation {
                missing: format!("{}: {}", f.sensor, f.reason),
                disables: disables.iter().map(|s| s.to_string()).collect(),
            }
        })
        .collect()
}
