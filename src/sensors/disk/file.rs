//! A disk and copy-lag source read from a JSON file: for tests, for clusters whose disk metrics are
//! exported by some other tool, and for drills. The file:
//!
//! ```json
//! {"sampled_at": 1795300000000,
//!  "brokers": [{"broker": 1, "used_bytes": 700, "capacity_bytes": 1000, "copy_lag_bytes": 0}]}
//! ```
//!
//! `sampled_at` (milliseconds since the epoch) is optional: without it the file's modification time
//! is the sample time, so a file nobody updates goes stale like any other sensor.

use std::path::PathBuf;

use serde::Deserialize;

use crate::sensors::{
    BrokerCopyLag, BrokerDisk, CopyLagSensor, DiskSensor, DiskSource, SensorError, SensorKind,
};
use crate::units::Timestamp;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReading {
    #[serde(default)]
    sampled_at: Option<i64>,
    brokers: Vec<FileBroker>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBroker {
    broker: i32,
    used_bytes: u64,
    capacity_bytes: u64,
    #[serde(default)]
    copy_lag_bytes: Option<u64>,
}

/// Reads disk use and copy lag from a JSON file.
#[derive(Clone, Debug)]
pub struct FileDiskSource {
    path: PathBuf,
}

impl FileDiskSource {
    /// A source reading `path`.
    pub fn new(path: PathBuf) -> Self {
        FileDiskSource { path }
    }

    fn read(&self, sensor: SensorKind) -> Result<(Timestamp, Vec<FileBroker>), SensorError> {
        let unavailable = |reason: String| SensorError::Unavailable {
            sensor,
            reason: format!("{}: {reason}", self.path.display()),
        };
        let text = std::fs::read_to_string(&self.path).map_err(|e| unavailable(e.to_string()))?;
        let reading: FileReading = serde_json::from_str(&text)
            .map_err(|e| unavailable(format!("not a disk reading: {e}")))?;
        let at = match reading.sampled_at {
            Some(ms) => Timestamp(ms),
            None => {
                let modified = std::fs::metadata(&self.path)
                    .and_then(|m| m.modified())
                    .map_err(|e| unavailable(e.to_string()))?;
                let ms = modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                Timestamp(ms)
            }
        };
        Ok((at, reading.brokers))
    }
}

impl DiskSensor for FileDiskSource {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        let (at, brokers) = self.read(SensorKind::Disk)?;
        Ok(brokers
            .into_iter()
            .map(|b| BrokerDisk {
                broker: b.broker,
                used_bytes: b.used_bytes,
                capacity_bytes: b.capacity_bytes,
                sampled_at: at,
                source: DiskSource::Static,
            })
            .collect())
    }
}

impl CopyLagSensor for FileDiskSource {
    async fn read_copy_lag(&self) -> Result<Vec<BrokerCopyLag>, SensorError> {
        let (at, brokers) = self.read(SensorKind::CopyLag)?;
        Ok(brokers
            .into_iter()
            .filter_map(|b| {
                Some(BrokerCopyLag {
                    broker: b.broker,
                    bytes: b.copy_lag_bytes?,
                    sampled_at: at,
                })
            })
            .collect())
    }
}
