//! `Observation`: one snapshot of everything the sensors saw, each reading with its own sample time.
//!
//! A reading is never "current" by assumption: the engine compares every `sampled_at` with `now` and the
//! policy's maximum age, so a sensor that stopped reporting is seen as stale rather than as zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::topic::{
    ConfigSource, ConfigValue, JournalPhase, LOCAL_RETENTION_INHERIT, OriginalRetention,
    RetentionRecord, TopicConfigs,
};
use crate::units::Timestamp;

/// A broker id as Kafka reports it.
pub type BrokerId = i32;

/// What a sensor reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// Broker disk use.
    Disk,
    /// Tiered-storage copy lag.
    CopyLag,
    /// Consumer-group offsets.
    Lag,
    /// Configs of the managed topics.
    TopicConfigs,
    /// Configs of the catch-up groups' input topics (their retention deadline).
    InputTopics,
    /// Members of the catch-up groups (for sharing a gate's rate).
    Members,
    /// The state directory.
    State,
}

impl SensorKind {
    /// The sensors every tick reads, in order.
    pub const TICK: [SensorKind; 5] = [
        SensorKind::Disk,
        SensorKind::CopyLag,
        SensorKind::Lag,
        SensorKind::TopicConfigs,
        SensorKind::InputTopics,
    ];

    /// The name as the API, logs and metrics write it (`copy_lag`).
    pub fn as_str(self) -> &'static str {
        match self {
            SensorKind::Disk => "disk",
            SensorKind::CopyLag => "copy_lag",
            SensorKind::Lag => "lag",
            SensorKind::TopicConfigs => "topic_configs",
            SensorKind::InputTopics => "input_topics",
            SensorKind::Members => "members",
            SensorKind::State => "state",
        }
    }
}

impl PartialEq<&str> for SensorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for SensorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a disk reading came from (shown in status so on-call knows what to trust).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskSource {
    /// The built-in simulator.
    Simulator,
    /// CloudWatch `KafkaDataLogsDiskUsed`.
    CloudWatch,
    /// A Prometheus-compatible query.
    Prometheus,
    /// A file or HTTP test source.
    Static,
}

/// Local disk use of one broker (the volume that holds the log directories).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerDisk {
    /// Broker id.
    pub broker: BrokerId,
    /// Bytes used on the log volume.
    pub used_bytes: u64,
    /// Capacity of the log volume in bytes.
    pub capacity_bytes: u64,
    /// When the value was measured (for CloudWatch: the start of the datapoint's period).
    pub sampled_at: Timestamp,
    /// Which sensor produced it.
    pub source: DiskSource,
}

impl BrokerDisk {
    /// Used share of the volume in percent.
    pub fn used_percent(&self) -> f64 {
        if self.capacity_bytes == 0 {
            100.0
        } else {
            self.used_bytes as f64 * 100.0 / self.capacity_bytes as f64
        }
    }
}

/// Bytes of closed log segments on a broker that are not yet copied to remote storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerCopyLag {
    /// Broker id.
    pub broker: BrokerId,
    /// Bytes waiting to be uploaded (Kafka's `RemoteCopyLagBytes`).
    pub bytes: u64,
    /// When the value was measured.
    pub sampled_at: Timestamp,
}

/// Offsets of one partition as seen by one consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// The group's committed offset; `None` when the group has never committed on this partition.
    pub committed: Option<i64>,
    /// The partition's log-end offset (high watermark).
    pub log_end: i64,
    /// The partition's log-start offset, when read.
    #[serde(default)]
    pub log_start: Option<i64>,
    /// The oldest record the group has not consumed (at the committed offset, or the first one
    /// after it), when read: what its time lag and its input deadline are measured from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_record: Option<RecordTime>,
}

/// A record's timestamp, as Kafka stored it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordTime {
    /// The record's offset.
    pub offset: i64,
    /// Its timestamp, ms since the Unix epoch.
    pub at: Timestamp,
    /// Whose clock: the producer's (`create_time`) or the broker's (`log_append_time`).
    pub kind: TimestampKind,
}

/// Where a record's timestamp comes from (the topic's `message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TimestampKind {
    /// Set by the producer: its clock may be wrong, even far in the future.
    CreateTime,
    /// Set by the broker when it appended the record.
    LogAppendTime,
}

/// How far a producer's clock may run ahead before a record's time is not believed: a record
/// stamped later than this after its reading is of unknown age (never a time lag of 0).
pub const FUTURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;

impl PartitionOffsets {
    /// Records deleted before the group consumed them: the committed offset is below the log
    /// start (Kafka deleted them by retention or DeleteRecords; the consumer resumes at the log
    /// start). `None` when not known.
    pub fn lost(&self) -> Option<i64> {
        let (c, s) = (self.committed?, self.log_start?);
        (c < s).then_some(s - c)
    }

    /// Age at `now` of the oldest record the group has not consumed: 0 when it has consumed
    /// everything, `None` when unknown (not read, or stamped too far in the future to believe).
    pub fn time_lag_ms(&self, now: Timestamp) -> Option<i64> {
        if self.lag() == Some(0) {
            return Some(0);
        }
        let r = self.next_record?;
        if r.at.0 > now.0 + FUTURE_TOLERANCE_MS {
            return None;
        }
        Some((now.0 - r.at.0).max(0))
    }

    /// Records between the committed offset and the log end; `None` when nothing is committed.
    /// A committed offset past the log end (a truncated or recreated partition) counts as zero lag;
    /// one before the log start (the data was deleted) counts from the log start, where the consumer
    /// will resume.
    pub fn lag(&self) -> Option<i64> {
        self.committed
            .map(|c| (self.log_end - c.max(self.log_start.unwrap_or(c))).max(0))
    }
}

/// Committed and log-end offsets of every partition a catch-up group consumes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupOffsets {
    /// Consumer group id.
    pub group: String,
    /// One entry per partition.
    pub partitions: Vec<PartitionOffsets>,
    /// When the offsets were read.
    pub sampled_at: Timestamp,
    /// Partitions whose offsets could not be read (`topic-partition: reason`); their lag is unknown.
    #[serde(default)]
    pub unavailable: Vec<String>,
}

impl GroupOffsets {
    /// Total lag in records, or `None` if any partition has no committed offset (the lag is then unknown:
    /// it depends on the consumer's `auto.offset.reset`), could not be read, or the group has no
    /// committed partition at all.
    pub fn total_lag(&self) -> Option<i64> {
        // No partition at all (the group never committed): unknown, not drained.
        if !self.unavailable.is_empty() || self.partitions.is_empty() {
            return None;
        }
        self.partitions.iter().map(PartitionOffsets::lag).sum()
    }

    /// The largest time lag of its partitions at `now`, ms; `None` when a lagging partition's is
    /// unknown (a partial answer would understate it).
    pub fn time_lag_ms(&self, now: Timestamp) -> Option<i64> {
        self.partitions
            .iter()
            .map(|p| p.time_lag_ms(now))
            .try_fold(0i64, |m, t| t.map(|t| m.max(t)))
    }

    /// Sum of committed offsets over partitions that have one (for consume-rate estimates).
    pub fn committed_sum(&self) -> i64 {
        self.partitions.iter().filter_map(|p| p.committed).sum()
    }

    /// Sum of log-end offsets (for produce-rate estimates).
    pub fn log_end_sum(&self) -> i64 {
        self.partitions.iter().map(|p| p.log_end).sum()
    }
}

/// Everything the sensors reported for one control tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Latest disk reading per broker.
    pub disks: Vec<BrokerDisk>,
    /// Latest tiered-storage copy lag per broker.
    pub copy_lag: Vec<BrokerCopyLag>,
    /// Offsets per catch-up group.
    pub groups: Vec<GroupOffsets>,
    /// Configs per managed topic.
    pub topics: Vec<TopicConfigs>,
    /// Configs per input topic of the catch-up groups (every topic they have committed offsets
    /// on): their retention is the deadline of the records the groups have not consumed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<TopicConfigs>,
    /// Sensors that failed this tick, as a whole or for one topic, group or broker (`target`), with
    /// the reason (the last readings of a failed sensor, topic or group may still be present, aged;
    /// a broker whose copy lag is unknown has none).
    pub sensor_errors: Vec<SensorFault>,
    /// What the retention journal (the one record of originals) holds for each managed topic it
    /// has changed, settled against this tick's configs. `None` where there is no journal (the
    /// engine then keeps its own memory); an empty list means nothing of the controller's is on
    /// any topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Vec<RetentionRecord>>,
    /// What the journal holds for each input topic whose `retention.ms` it has extended, settled
    /// against this tick's input configs (empty without a journal or without extensions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<RetentionRecord>,
}

/// Something the controller cannot see or do on this cluster, and the actions it disables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limitation {
    /// What is missing, in words on-call can act on.
    pub missing: String,
    /// Actions disabled by it: `lower_retention`, `restore_retention`, `raise_rate`,
    /// `throttle_on_disk`, or `all`; empty when it is a warning only.
    pub disables: Vec<String>,
}

impl std::fmt::Display for Limitation {
    /// `what is missing [disables a, b]`, or `[warning only]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.disables.is_empty() {
            write!(f, "{} [warning only]", self.missing)
        } else {
            write!(
                f,
                "{} [disables {}]",
                self.missing,
                self.disables.join(", ")
            )
        }
    }
}

/// A sensor that could not be read: as a whole (`target` absent), or for one topic, group or broker
/// while it read the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SensorFault {
    /// Which sensor.
    pub sensor: SensorKind,
    /// The one topic (topic configs), group (lag) or broker id (copy lag) that could not be read;
    /// absent when the whole sensor failed (unreachable, timed out), so a sensor-wide fault keeps
    /// its JSON of before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What went wrong, naming the topic, group or broker when there is one.
    pub reason: String,
}

impl SensorFault {
    /// The whole sensor failed.
    pub fn whole(sensor: SensorKind, reason: impl Into<String>) -> SensorFault {
        SensorFault {
            sensor,
            target: None,
            reason: reason.into(),
        }
    }

    /// One topic, group or broker of the sensor could not be read; the others were.
    pub fn item(
        sensor: SensorKind,
        target: impl Into<String>,
        reason: impl Into<String>,
    ) -> SensorFault {
        SensorFault {
            sensor,
            target: Some(target.into()),
            reason: reason.into(),
        }
    }

    /// Whether the whole sensor failed (not only one of its items).
    pub fn is_whole(&self) -> bool {
        self.target.is_none()
    }
}

impl Observation {
    /// Every topic the catch-up groups have offsets on (their inputs), sorted, each once.
    pub fn input_topics(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<&str> = self
            .groups
            .iter()
            .flat_map(|g| g.partitions.iter().map(|p| p.topic.as_str()))
            .collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// Test and example fixture: an empty observation to extend with the `with_*` builders.
    pub fn test() -> Observation {
        Observation::default()
    }

    /// Adds a disk reading at `percent` of a 1 TB volume, sampled at `at`.
    pub fn with_disk(mut self, broker: BrokerId, percent: f64, at: Timestamp) -> Observation {
        let capacity = 1_000_000_000_000u64;
        self.disks.retain(|d| d.broker != broker);
        self.disks.push(BrokerDisk {
            broker,
            used_bytes: (capacity as f64 * percent / 100.0) as u64,
            capacity_bytes: capacity,
            sampled_at: at,
            source: DiskSource::Static,
        });
        self
    }

    /// Adds a copy-lag reading.
    pub fn with_copy_lag(mut self, broker: BrokerId, bytes: u64, at: Timestamp) -> Observation {
        self.copy_lag.retain(|d| d.broker != broker);
        self.copy_lag.push(BrokerCopyLag {
            broker,
            bytes,
            sampled_at: at,
        });
        self
    }

    /// Adds a group whose single partition of topic `input` lags by `lag` records.
    pub fn with_lag(mut self, group: &str, committed: i64, lag: i64, at: Timestamp) -> Observation {
        self.groups.retain(|g| g.group != group);
        self.groups.push(GroupOffsets {
            group: group.to_string(),
            partitions: vec![PartitionOffsets {
                topic: "input".into(),
                partition: 0,
                committed: Some(committed),
                log_end: committed + lag,
                log_start: None,
                next_record: None,
            }],
            sampled_at: at,
            unavailable: Vec::new(),
        });
        self
    }

    /// Adds a tiered topic with `local.retention.ms` set on the topic (or inherited when `local_ms` is `None`).
    pub fn with_topic(
        mut self,
        topic: &str,
        local_ms: Option<i64>,
        retention_ms: i64,
        at: Timestamp,
    ) -> Observation {
        let mut configs = BTreeMap::new();
        let set = |v: String| ConfigValue {
            value: Some(v),
            source: ConfigSource::Topic,
        };
        configs.insert("remote.storage.enable".into(), set("true".into()));
        configs.insert("retention.ms".into(), set(retention_ms.to_string()));
        configs.insert(
            "local.retention.ms".into(),
            match local_ms {
                Some(v) => set(v.to_string()),
                None => ConfigValue {
                    value: Some(LOCAL_RETENTION_INHERIT.to_string()),
                    source: ConfigSource::Inherited,
                },
            },
        );
        self.topics.retain(|t| t.topic != topic);
        self.topics.push(TopicConfigs {
            topic: topic.to_string(),
            configs,
            sampled_at: at,
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(committed: Option<i64>, log_start: Option<i64>, log_end: i64) -> PartitionOffsets {
        PartitionOffsets {
            topic: "t".into(),
            partition: 0,
            committed,
            log_end,
            log_start,
            next_record: None,
        }
    }

    #[test]
    fn lag_handles_missing_stale_and_future_commits() {
        assert_eq!(p(Some(40), Some(0), 100).lag(), Some(60));
        assert_eq!(
            p(None, Some(0), 100).lag(),
            None,
            "no commit: unknown, not zero"
        );
        assert_eq!(
            p(Some(150), Some(0), 100).lag(),
            Some(0),
            "past the log end (truncated or recreated)"
        );
        assert_eq!(
            p(Some(10), Some(70), 100).lag(),
            Some(30),
            "before the log start: counted from where the consumer resumes"
        );
        let g = GroupOffsets {
            group: "g".into(),
            partitions: vec![p(Some(40), None, 100), p(Some(0), None, 5)],
            sampled_at: Timestamp(0),
            unavailable: vec![],
        };
        assert_eq!(g.total_lag(), Some(65));
        let unavailable = GroupOffsets {
            unavailable: vec!["t-1: leader not available".into()],
            ..g
        };
        assert_eq!(
            unavailable.total_lag(),
            None,
            "a partition that could not be read makes the total unknown"
        );
    }

    #[test]
    fn a_sensor_wide_fault_keeps_its_json_and_an_item_fault_names_its_target() {
        let whole = SensorFault::whole(SensorKind::Lag, "metadata: broker down");
        assert_eq!(
            serde_json::to_string(&whole).unwrap(),
            r#"{"sensor":"lag","reason":"metadata: broker down"}"#
        );
        let old: SensorFault =
            serde_json::from_str(r#"{"sensor":"lag","reason":"metadata: broker down"}"#).unwrap();
        assert_eq!(old, whole);
        assert!(old.is_whole());
        let item = SensorFault::item(SensorKind::TopicConfigs, "out-2", "topic out-2: gone");
        assert_eq!(
            serde_json::to_string(&item).unwrap(),
            r#"{"sensor":"topic_configs","target":"out-2","reason":"topic out-2: gone"}"#
        );
        assert!(!item.is_whole());
    }
}
