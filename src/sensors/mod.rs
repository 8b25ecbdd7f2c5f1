//! Sensors: what the controller can see of the cluster.
//!
//! Each sensor is a trait so the production adapters (Kafka admin API, CloudWatch, Prometheus) and the
//! simulator (`crate::sim`) are interchangeable behind the same control loop. Every reading carries its
//! own sample time; a sensor that fails returns a [`SensorError`] and the loop keeps the last reading,
//! which then ages into staleness instead of being mistaken for a fresh zero.

pub mod config_source;
pub mod file;
mod observation;
pub mod prometheus;

use std::future::Future;

pub use observation::{
    BrokerCopyLag, BrokerDisk, BrokerId, ConfigSource, ConfigValue, DiskSource, GroupOffsets,
    LOCAL_RETENTION_INHERIT, Observation, PartitionOffsets, SensorFault, TopicConfigs,
};

/// Why a sensor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The source answered but has no data (for example no datapoints yet).
    #[error("{sensor}: no data: {reason}")]
    NoData {
        /// Sensor name.
        sensor: &'static str,
        /// What is missing.
        reason: String,
    },
    /// The source could not be reached or refused the request.
    #[error("{sensor}: unavailable: {reason}")]
    Unavailable {
        /// Sensor name.
        sensor: &'static str,
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
                sensor: "members",
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

/// The disk source a configuration names.
#[derive(Clone, Debug)]
pub enum AnyDiskSource {
    /// A JSON file.
    File(file::FileDiskSource),
    /// Prometheus.
    Prometheus(prometheus::PrometheusDiskSource),
}

impl AnyDiskSource {
    /// The source for `config`, each read answering within `timeout`.
    pub fn from_config(
        config: &crate::config::DiskConfig,
        timeout: std::time::Duration,
    ) -> AnyDiskSource {
        match config {
            crate::config::DiskConfig::File { path } => {
                AnyDiskSource::File(file::FileDiskSource::new(path.clone()))
            }
            crate::config::DiskConfig::Prometheus(p) => {
                AnyDiskSource::Prometheus(prometheus::PrometheusDiskSource::new(p.clone(), timeout))
            }
        }
    }
}

impl DiskSensor for AnyDiskSource {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        match self {
            AnyDiskSource::File(s) => s.read_disks().await,
            AnyDiskSource::Prometheus(s) => s.read_disks().await,
        }
    }
}

impl CopyLagSensor for AnyDiskSource {
    async fn read_copy_lag(&self) -> Result<Vec<BrokerCopyLag>, SensorError> {
        match self {
            AnyDiskSource::File(s) => s.read_copy_lag().await,
            AnyDiskSource::Prometheus(s) => s.read_copy_lag().await,
        }
    }
}
