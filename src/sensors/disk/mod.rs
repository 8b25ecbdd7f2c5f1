//! Broker disk use and tiered-storage copy lag: the sources a configuration can name
//! ([`DiskConfig`]) and the one the runtime reads ([`AnyDiskSource`]).
//!
//! - [`cloudwatch`]: MSK's `KafkaDataLogsDiskUsed` and `RemoteCopyLagBytes` (the MSK default);
//! - [`prometheus`]: instant queries, for example of a node exporter's filesystem metrics;
//! - [`file`](mod@file): a JSON file written by something else.
//!
//! # Copy lag: missing or negative is unknown, never 0
//!
//! Lowering local retention frees space only once Kafka has copied the segments to remote storage,
//! so the engine lowers only when every broker has a fresh copy-lag reading under the policy's
//! `retention.max_copy_lag` (invariant 5). Apache Kafka's `RemoteCopyLagBytes` cannot be taken at
//! face value:
//!
//! - it is not emitted at all while uploads fail (KAFKA-19995): a missing value is the moment
//!   uploads may have stopped, not a quiet broker;
//! - it can be negative after a leader change (the new leader's accounting starts from segments
//!   the old one had counted);
//! - on an idle partition it shows one phantom segment (KAFKA-20977): a small positive value that
//!   never drains, which `retention.max_copy_lag` (default 20 GiB) tolerates as any lag under it;
//! - KIP-1241's `remote.copy.lag.ms` / `remote.copy.lag.bytes` delay uploads on purpose, so lag up
//!   to those bounds is normal; it counts against `retention.max_copy_lag` like any other.
//!
//! So every source here turns a broker's missing, negative, NaN or non-numeric value into **no
//! reading** for that broker plus a fault naming it and why ([`copy_lag_bytes`],
//! [`unknown_copy_lag`]); the engine then sees "no tiered-storage copy-lag reading for broker N"
//! and does not lower. No source ever clamps such a value to 0.

pub mod cloudwatch;
pub mod file;
pub mod prometheus;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::policy::validate::DiskFreshness;
use crate::units::Dur;

use super::{
    BrokerCopyLag, BrokerDisk, BrokerId, CopyLagSensor, DiskSensor, Limitation, Readings,
    SensorError,
};

/// A copy-lag value in bytes, or why it is no reading: negative (Kafka's `RemoteCopyLagBytes` after
/// a leader change), NaN or infinite. None of them is ever read as 0.
pub fn copy_lag_bytes(value: f64) -> Result<u64, String> {
    if !value.is_finite() {
        Err(format!("{value} is not a number of bytes"))
    } else if value < 0.0 {
        Err(format!(
            "{value} is negative (Kafka's RemoteCopyLagBytes goes below zero after a leader change)"
        ))
    } else {
        Ok(value as u64)
    }
}

/// The reason of a broker's unknown copy lag: which broker, `why`, and what it means.
pub fn unknown_copy_lag(broker: BrokerId, why: impl std::fmt::Display) -> String {
    format!(
        "broker {broker}: copy lag unknown: {why}; retention is not lowered until the broker reports a copy lag of 0 or more"
    )
}

/// Disk and copy-lag sources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum DiskConfig {
    /// A JSON file (see `catchup::sensors::disk::file`); its modification time is the sample time unless
    /// it says otherwise.
    File {
        /// The file.
        path: PathBuf,
        /// How often the file is rewritten with a new sample. Default 1m.
        #[serde(default = "default_file_period")]
        period: Dur,
        /// How long after it is taken a sample reaches the file. Default 0s.
        #[serde(default)]
        delay: Dur,
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

fn default_file_period() -> Dur {
    Dur(60_000)
}

impl DiskConfig {
    /// How old this source's newest sample can be, from the period and delay it states.
    pub fn freshness(&self) -> DiskFreshness {
        match self {
            DiskConfig::File { period, delay, .. } => DiskFreshness::sample_time(
                ("cluster.disk.period", *period),
                ("cluster.disk.delay", *delay),
            ),
            DiskConfig::Prometheus(p) => DiskFreshness::sample_time(
                ("cluster.disk.scrape_interval", p.scrape_interval),
                ("cluster.disk.delay", p.delay),
            ),
            DiskConfig::Cloudwatch(c) => DiskFreshness::period_start(
                ("cluster.disk.period", c.period),
                ("cluster.disk.delay", c.delay),
                Some(("cluster.disk.refresh", c.refresh)),
            ),
        }
    }
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
            DiskConfig::File { path, .. } => {
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
    async fn read_copy_lag(&self) -> Result<Readings<BrokerCopyLag>, SensorError> {
        match self {
            AnyDiskSource::File(s) => s.read_copy_lag().await,
            AnyDiskSource::Prometheus(s) => s.read_copy_lag().await,
            AnyDiskSource::CloudWatch(s) => s.read_copy_lag().await,
        }
    }
}
