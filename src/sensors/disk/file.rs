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
//!
//! `copy_lag_bytes` is read broker by broker: a broker without it, or with a value that is negative,
//! `null` or not a number, has no copy-lag reading and a fault naming it (never a 0, see
//! [the module above](super)); its disk use and every other broker are read all the same.

use std::path::PathBuf;

use serde::Deserialize;

use super::{copy_lag_bytes, unknown_copy_lag};
use crate::sensors::{
    BrokerCopyLag, BrokerDisk, CopyLagSensor, DiskSensor, DiskSource, Readings, SensorError,
    SensorKind,
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
    /// Any JSON value, checked per broker: a bad copy lag must not hide the disk reading.
    #[serde(default)]
    copy_lag_bytes: Option<serde_json::Value>,
}

impl FileBroker {
    /// This broker's copy lag in bytes, or why there is none.
    fn copy_lag(&self) -> Result<u64, String> {
        match &self.copy_lag_bytes {
            None | Some(serde_json::Value::Null) => Err("the file gives no copy_lag_bytes".into()),
            Some(serde_json::Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(bytes), _) => Ok(bytes),
                (None, Some(v)) => copy_lag_bytes(v).map_err(|why| format!("copy_lag_bytes {why}")),
                (None, None) => Err(format!("copy_lag_bytes {n} is not a number of bytes")),
            },
            Some(other) => Err(format!("copy_lag_bytes {other} is not a number of bytes")),
        }
    }
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
        let text = crate::config_file::read_capped(&self.path, crate::config_file::FILE_CAP)
            .map_err(|e| unavailable(e.to_string()))?;
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
        let skew = crate::units::Dur::from_secs(super::prometheus::FUTURE_SKEW_SECS);
        if at > crate::clock::wall_now() + skew {
            return Err(unavailable(format!(
                "sampled_at {at} is in the future: a clock is wrong, and a reading from the future would never go stale"
            )));
        }
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
    async fn read_copy_lag(&self) -> Result<Readings<BrokerCopyLag>, SensorError> {
        let (at, brokers) = self.read(SensorKind::CopyLag)?;
        let mut out = Readings::default();
        for b in brokers {
            match b.copy_lag() {
                Ok(bytes) => out.read.push(BrokerCopyLag {
                    broker: b.broker,
                    bytes,
                    sampled_at: at,
                }),
                Err(why) => out.fail(
                    b.broker.to_string(),
                    unknown_copy_lag(b.broker, format!("{}: {why}", self.path.display())),
                ),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_negative_or_non_numeric_copy_lag_is_unknown_never_zero() {
        let path =
            std::env::temp_dir().join(format!("catchup-file-copy-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"sampled_at": 1000, "brokers": [
                {"broker": 1, "used_bytes": 700, "capacity_bytes": 1000, "copy_lag_bytes": 5},
                {"broker": 2, "used_bytes": 700, "capacity_bytes": 1000, "copy_lag_bytes": -3},
                {"broker": 3, "used_bytes": 700, "capacity_bytes": 1000, "copy_lag_bytes": "NaN"},
                {"broker": 4, "used_bytes": 700, "capacity_bytes": 1000},
                {"broker": 5, "used_bytes": 700, "capacity_bytes": 1000, "copy_lag_bytes": null},
                {"broker": 6, "used_bytes": 700, "capacity_bytes": 1000, "copy_lag_bytes": -0.5},
                {"broker": 7, "used_bytes": 700, "capacity_bytes": 1000, "copy_lag_bytes": 2.0}
            ]}"#,
        )
        .unwrap();
        let source = FileDiskSource::new(path.clone());
        let copy = source.read_copy_lag().await.unwrap();
        let disks = source.read_disks().await.unwrap();
        std::fs::remove_file(&path).unwrap();
        let read: Vec<(i32, u64)> = copy.read.iter().map(|c| (c.broker, c.bytes)).collect();
        assert_eq!(
            read,
            [(1, 5), (7, 2)],
            "no reading, and no 0, for the others"
        );
        let failed: Vec<&str> = copy.failed.iter().map(|f| f.target.as_str()).collect();
        assert_eq!(failed, ["2", "3", "4", "5", "6"]);
        let why: Vec<&str> = copy.failed.iter().map(|f| f.reason.as_str()).collect();
        assert!(
            why[0].starts_with("broker 2: copy lag unknown: ") && why[0].contains("-3 is negative"),
            "{}",
            why[0]
        );
        assert!(why[1].contains("\"NaN\" is not a number"), "{}", why[1]);
        assert!(why[2].contains("gives no copy_lag_bytes"), "{}", why[2]);
        assert!(why[3].contains("gives no copy_lag_bytes"), "{}", why[3]);
        assert!(why[4].contains("-0.5 is negative"), "{}", why[4]);
        assert_eq!(
            disks.len(),
            7,
            "a bad copy lag does not hide the disk reading"
        );
    }

    #[tokio::test]
    async fn a_sample_dated_in_the_future_is_a_fault_not_a_fresh_reading() {
        let path =
            std::env::temp_dir().join(format!("catchup-file-future-{}.json", std::process::id()));
        let future = crate::clock::wall_now().0 + 3_600_000;
        std::fs::write(
            &path,
            format!(
                r#"{{"sampled_at": {future}, "brokers": [{{"broker": 1, "used_bytes": 700, "capacity_bytes": 1000}}]}}"#
            ),
        )
        .unwrap();
        let err = FileDiskSource::new(path.clone()).read_disks().await;
        std::fs::remove_file(&path).unwrap();
        let err = err.expect_err("a future sample is refused");
        assert!(err.to_string().contains("in the future"), "{err}");
    }
}
