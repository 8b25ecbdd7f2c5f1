//! Broker disk use and tiered-storage copy lag: the sources a configuration can name
//! ([`DiskConfig`]) and the one the runtime reads ([`AnyDiskSource`]).
//!
//! - [`cloudwatch`]: MSK's `KafkaDataLogsDiskUsed` and `RemoteCopyLagBytes` (the MSK default);
//! - [`prometheus`]: instant queries, for example of a node exporter's filesystem metrics;
//! - [`file`](mod@file): a JSON file written by something else.

pub mod cloudwatch;
pub mod file;
pub mod prometheus;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{BrokerCopyLag, BrokerDisk, CopyLagSensor, DiskSensor, Limitation, SensorError};

/// Disk and copy-lag sources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum DiskConfig {
    /// A JSON file (see `catchup::sensors::disk::file`); its modification time is the sample time unless
    /// it says otherwise.
    File {
        /// The file.
        path: PathBuf,
    },
    /// Prometheus instant queries (see `catchup::sensors::disk::prometheus`): `url`, `used_bytes_query`,
    /// `capacity_bytes_query`, `broker_label`, optional `brokers` map. Gives no copy lag, so
    /// retention is never lowered with it alone (invariant 5).
    Prometheus(prometheus::PrometheusConfig),
    /// CloudWatch `KafkaDataLogsDiskUsed` and `RemoteCopyLagBytes` (see `catchup::sensors::disk::cloudwatch`):
    /// optional `period`, `lookback`, `refresh`, `endpoint_url`. Needs `cluster.kind = "msk"`, whose
    /// discovery gives the cluster name, brokers and volume size; the default disk source there.
    Cloudwatch(cloudwatch::CloudWatchConfig),
}

/// The disk source a configuration names.
#[derive(Clone, Debug)]
pub enum AnyDiskSource {
    /// A JSON file.
    File(file::FileDiskSource),
    /// Prometheus.
    Prometheus(prometheus::PrometheusDiskSource),
    /// CloudWatch (MSK).
    CloudWatch(std::sync::Arc<cloudwatch::CloudWatchSource>),
}

impl DiskConfig {
    /// The source this configuration names, each read answering within `timeout`. CloudWatch
    /// needs what MSK discovery finds (the cluster name, brokers and volume size): build it with
    /// [`cloudwatch::CloudWatchConfig::build`] and wrap it in [`AnyDiskSource::CloudWatch`].
    pub fn build(&self, timeout: std::time::Duration) -> Result<AnyDiskSource, String> {
        Ok(match self {
            DiskConfig::File { path } => {
                AnyDiskSource::File(file::FileDiskSource::new(path.clone()))
            }
            DiskConfig::Prometheus(p) => {
                AnyDiskSource::Prometheus(prometheus::PrometheusDiskSource::new(p.clone(), timeout))
            }
            DiskConfig::Cloudwatch(_) => {
                return Err("cloudwatch needs cluster.kind = \"msk\"".into());
            }
        })
    }
}

impl AnyDiskSource {
    /// What this source cannot give.
    pub fn limitations(&self) -> Vec<Limitation> {
        match self {
            AnyDiskSource::Prometheus(_) => vec![Limitation {
                missing:
                    "copy lag: the Prometheus disk source gives none, so retention is never lowered"
                        .into(),
                disables: vec!["lower_retention".into()],
            }],
            AnyDiskSource::File(_) | AnyDiskSource::CloudWatch(_) => Vec::new(),
        }
    }
}

impl DiskSensor for AnyDiskSource {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        match self {
            AnyDiskSource::File(s) => s.read_disks().await,
            AnyDiskSource::Prometheus(s) => s.read_disks().await,
            AnyDiskSource::CloudWatch(s) => s.read_disks().await,
        }
    }
}

impl CopyLagSensor for AnyDiskSource {
    async fn read_copy_lag(&self) -> Result<Vec<BrokerCopyLag>, SensorError> {
        match self {
            AnyDiskSource::File(s) => s.read_copy_lag().await,
            AnyDiskSource::Prometheus(s) => s.read_copy_lag().await,
            AnyDiskSource::CloudWatch(s) => s.read_copy_lag().await,
        }
    }
}
