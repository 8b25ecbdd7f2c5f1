//! The input deadline's metrics: time lag per group (and per topic and partition where
//! cardinality allows), the deadline, slack and required rate, and input records lost.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::GroupLabel;
use crate::policy::Decision;
use crate::sensors::Observation;

/// A group's partitions get their own time-lag series only up to this many (a group reading
/// thousands of partitions keeps its per-topic and per-group maxima).
pub const PARTITION_SERIES_MAX: usize = 100;

/// Label set with a group and a topic.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupTopicLabel {
    /// Consumer group.
    pub group: String,
    /// Input topic.
    pub topic: String,
}

/// Label set with a group, a topic and a partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    /// Consumer group.
    pub group: String,
    /// Input topic.
    pub topic: String,
    /// Partition.
    pub partition: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The input metrics.
#[derive(Default)]
pub struct InputMetrics {
    /// Age of a group's oldest unconsumed record, seconds (the largest over its partitions).
    pub time_lag: Family<GroupLabel, FloatGauge>,
    /// The same per input topic.
    pub topic_time_lag: Family<GroupTopicLabel, FloatGauge>,
    /// The same per partition, for groups of at most [`PARTITION_SERIES_MAX`] partitions.
    pub partition_time_lag: Family<PartitionLabel, FloatGauge>,
    /// Seconds until the group's oldest unconsumed record may be deleted (negative once passed).
    pub deadline: Family<GroupLabel, FloatGauge>,
    /// Seconds the group may still be held before it must run at full speed.
    pub slack: Family<GroupLabel, FloatGauge>,
    /// Records/s the group must consume to stay ahead of its deadline by the margin.
    pub required_rate: Family<GroupLabel, FloatGauge>,
    /// Input records deleted before the group consumed them.
    pub lost: Family<GroupTopicLabel, Counter>,
}

impl InputMetrics {
    /// Registers every input metric in `r` (prefix `catchup_`).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "group_time_lag_seconds",
            "Age of a catch-up group's oldest unconsumed record (largest over its partitions)",
            self.time_lag.clone(),
        );
        r.register(
            "topic_time_lag_seconds",
            "Age of a catch-up group's oldest unconsumed record of one input topic",
            self.topic_time_lag.clone(),
        );
        r.register(
            "partition_time_lag_seconds",
            "Age of a catch-up group's oldest unconsumed record of one partition (groups of at most 100 partitions)",
            self.partition_time_lag.clone(),
        );
        r.register(
            "group_input_deadline_seconds",
            "Seconds until a catch-up group's oldest unconsumed record may be deleted by retention",
            self.deadline.clone(),
        );
        r.register(
            "group_input_slack_seconds",
            "Seconds a catch-up group may still be held before it must run at full speed to meet its input deadline",
            self.slack.clone(),
        );
        r.register(
            "group_input_required_rate",
            "Records/s a catch-up group must consume to stay ahead of its input deadline by the margin",
            self.required_rate.clone(),
        );
        r.register(
            "input_records_lost",
            "Input records deleted before the catch-up group consumed them",
            self.lost.clone(),
        );
    }

    /// Updates the series from a tick: an unknown value removes its series (absent, never 0).
    pub fn observe(&self, obs: &Observation, decision: &Decision) {
        let now = decision.at;
        for g in &obs.groups {
            let label = GroupLabel {
                group: g.group.clone(),
            };
            set(
                &self.time_lag,
                &label,
                g.time_lag_ms(now).map(|ms| ms as f64 / 1e3),
            );
            let mut topics: std::collections::BTreeMap<&str, Option<i64>> = Default::default();
            for p in &g.partitions {
                let t = p.time_lag_ms(now);
                let e = topics.entry(p.topic.as_str()).or_insert(Some(0));
                *e = e.zip(t).map(|(a, b)| a.max(b));
                if g.partitions.len() <= PARTITION_SERIES_MAX {
                    let label = PartitionLabel {
                        group: g.group.clone(),
                        topic: p.topic.clone(),
                        partition: p.partition.to_string(),
                    };
                    set(
                        &self.partition_time_lag,
                        &label,
                        t.map(|ms| ms as f64 / 1e3),
                    );
                }
            }
            for (topic, t) in topics {
                let label = GroupTopicLabel {
                    group: g.group.clone(),
                    topic: topic.to_string(),
                };
                set(&self.topic_time_lag, &label, t.map(|ms| ms as f64 / 1e3));
            }
        }
        for (group, d) in &decision.groups {
            let label = GroupLabel {
                group: group.clone(),
            };
            let input = d.input.as_ref();
            set(&self.deadline, &label, input.and_then(|i| i.headroom_secs));
            set(&self.slack, &label, input.and_then(|i| i.slack_secs));
            set(
                &self.required_rate,
                &label,
                input.and_then(|i| i.required_rate),
            );
        }
        for l in &decision.losses {
            self.lost
                .get_or_create(&GroupTopicLabel {
                    group: l.group.clone(),
                    topic: l.topic.clone(),
                })
                .inc_by(l.records.max(0) as u64);
        }
    }
}

/// Sets the series `label` of `family` to `value`, or removes it when unknown.
fn set<L>(family: &Family<L, FloatGauge>, label: &L, value: Option<f64>)
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug,
{
    match value {
        Some(v) => {
            family.get_or_create(label).set(v);
        }
        None => {
            family.remove(label);
        }
    }
}
