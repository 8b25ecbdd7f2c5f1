//! Topics and partitions on the brokers' disks: segments that roll by size and age, closed segments
//! uploaded in order by each partition's leader at a bounded per-broker throughput, and deletion of
//! uploaded segments older than `local.retention.ms` at every retention check.

use std::collections::{BTreeMap, VecDeque};

use super::Cluster;
use super::placement::layout;
use super::rng::SplitMix64;
use crate::sensors::{ConfigSource, ConfigValue, LOCAL_RETENTION_INHERIT};
use crate::sim::scenario::{EventKind, Scenario, TopicSpec};
use crate::units::{Dur, Timestamp};

#[derive(Clone, Debug)]
pub(super) struct Segment {
    pub(super) id: u64,
    pub(super) bytes: f64,
    pub(super) created: Timestamp,
    pub(super) newest: Timestamp,
}

#[derive(Clone, Debug)]
pub(super) struct Partition {
    pub(super) leader: usize,
    pub(super) replicas: Vec<usize>,
    pub(super) weight: f64,
    /// Size at which the first segment rolls (later ones roll at `segment.bytes`).
    pub(super) first_roll: f64,
    pub(super) active: Segment,
    pub(super) closed: VecDeque<Segment>,
    /// Segments with an id below this are in remote storage.
    pub(super) uploaded_below: u64,
    pub(super) next_id: u64,
    pub(super) local_bytes: f64,
    pub(super) log_end: f64,
    /// Input topics only: every segment not yet deleted by total retention, local or remote, as
    /// (end offset, newest timestamp), oldest first (see `inputs`).
    pub(super) kept: VecDeque<(f64, Timestamp)>,
    /// Input topics only: the log start offset (below it, records are deleted).
    pub(super) log_start: f64,
}

/// Where a topic's writes come from.
#[derive(Clone, Debug)]
pub(super) enum Source {
    Producer {
        rate: f64,
        amplitude: f64,
        peak_at: Dur,
        noise: f64,
    },
    Output {
        group: usize,
        amplification: f64,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Topic {
    pub(super) name: String,
    pub(super) partitions: std::ops::Range<usize>,
    pub(super) record_bytes: f64,
    pub(super) remote: bool,
    pub(super) configs: BTreeMap<String, ConfigValue>,
    pub(super) source: Source,
    /// A catch-up group reads it: its segments are kept in `Partition::kept` until total
    /// retention deletes them, moving the log start.
    pub(super) input: bool,
}

/// The partitions of topic `k`, empty, their traffic shares summing to one.
pub(super) fn partitions(
    scenario: &Scenario,
    k: usize,
    start: Timestamp,
    segment_bytes: f64,
    rng: &mut SplitMix64,
) -> Vec<Partition> {
    let mut parts = Vec::new();
    for (leader, replicas, weight) in layout(scenario, k) {
        // Partitions of one topic neither start their segments in step nor take exactly the same
        // traffic (key skew): without this their segments roll and age out together, and disk use
        // shows a sawtooth no real cluster has.
        let first_roll = (0.05 + 0.95 * (rng.symmetric() + 1.0) / 2.0) * segment_bytes;
        parts.push(Partition {
            leader,
            replicas,
            weight: weight * (1.0 + 0.1 * rng.symmetric()),
            active: Segment {
                id: 0,
                bytes: 0.0,
                created: start,
                newest: start,
            },
            first_roll,
            closed: VecDeque::new(),
            uploaded_below: 0,
            next_id: 1,
            local_bytes: 0.0,
            log_end: 0.0,
            kept: VecDeque::new(),
            log_start: 0.0,
        });
    }
    let total: f64 = parts.iter().map(|p| p.weight).sum();
    for p in &mut parts {
        p.weight /= total;
    }
    parts
}

/// The configs a topic of `spec` starts with, sources as a describe would report them.
pub(super) fn initial_configs(spec: &TopicSpec) -> BTreeMap<String, ConfigValue> {
    let mut configs = BTreeMap::new();
    let topic_set = |v: String| ConfigValue {
        value: Some(v),
        source: ConfigSource::Topic,
    };
    configs.insert(
        "retention.ms".to_string(),
        topic_set(spec.retention.0.to_string()),
    );
    configs.insert(
        "remote.storage.enable".to_string(),
        topic_set(spec.remote_storage.to_string()),
    );
    configs.insert(
        "cleanup.policy".to_string(),
        ConfigValue {
            value: Some("delete".into()),
            source: ConfigSource::Inherited,
        },
    );
    configs.insert(
        "local.retention.ms".to_string(),
        match spec.local_retention {
            Some(d) => topic_set(d.0.to_string()),
            None => ConfigValue {
                value: Some(LOCAL_RETENTION_INHERIT.to_string()),
                source: ConfigSource::Inherited,
            },
        },
    );
    configs
}

impl Source {
    /// A producer, the output of a scenario group, or (neither given) a producer writing nothing.
    pub(super) fn of(spec: &TopicSpec, scenario: &Scenario) -> Source {
        match (&spec.producer, &spec.output_of) {
            (Some(p), _) => Source::Producer {
                rate: p.rate.0,
                amplitude: p.diurnal_amplitude,
                peak_at: p.peak_at,
                noise: p.noise,
            },
            (None, Some(o)) => Source::Output {
                group: scenario
                    .groups
                    .iter()
                    .position(|g| g.name == o.group)
                    .unwrap_or(0),
                amplification: o.amplification,
            },
            (None, None) => Source::Producer {
                rate: 0.0,
                amplitude: 0.0,
                peak_at: Dur(0),
                noise: 0.0,
            },
        }
    }
}

/// Input partitions start with the backlogs' worth of history (every backlog event of the group
/// summed, produced before the warm-up), so committed offsets can fall that far behind without
/// going below zero.
/// That history was written evenly over the backlog's span before `start`, in hourly segments
/// (so input retention can delete it by age like any other segment).
pub(super) fn add_history(
    scenario: &Scenario,
    topics: &[Topic],
    parts: &mut [Partition],
    start: Timestamp,
) {
    for spec in &scenario.groups {
        let Some(topic) = topics.iter().find(|t: &&Topic| t.name == spec.topic) else {
            continue;
        };
        let records = backlog_records(topic, spec.total_backlog());
        for p in topic.partitions.clone() {
            parts[p].log_end = parts[p].log_end.max((records * parts[p].weight).ceil());
        }
    }
    for topic in topics.iter().filter(|t| t.input) {
        let span = scenario
            .groups
            .iter()
            .filter(|g| g.topic == topic.name)
            .map(|g| g.total_backlog())
            .max()
            .unwrap_or_default();
        let hours = span.0.div_ceil(3_600_000).max(1);
        for p in topic.partitions.clone() {
            let end = parts[p].log_end;
            parts[p].kept = (1..=hours)
                .map(|h| {
                    let at = start.0 - span.0 as i64 + (span.0 * h / hours) as i64;
                    (end * h as f64 / hours as f64, Timestamp(at))
                })
                .collect();
        }
    }
}

impl Cluster {
    /// Configs of a topic.
    pub fn topic_configs(&self, topic: &str) -> Option<&BTreeMap<String, ConfigValue>> {
        self.topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| &t.configs)
    }

    /// Mutable configs of a topic (the retention actuator's way in).
    pub fn topic_configs_mut(&mut self, topic: &str) -> Option<&mut BTreeMap<String, ConfigValue>> {
        self.topics
            .iter_mut()
            .find(|t| t.name == topic)
            .map(|t| &mut t.configs)
    }

    /// Effective local retention of a topic in ms (`None` = unlimited).
    pub fn effective_local_retention(&self, topic: &str) -> Option<i64> {
        let t = self.topics.iter().find(|t| t.name == topic)?;
        local_retention_ms(t)
    }

    /// Appends to the producer-written topics (`producers`) or to the output topics, rolling segments.
    pub(super) fn write_topics(&mut self, producers: bool, consumed_bytes: &[f64]) {
        let dt = self.step.secs_f64();
        let now = self.now;
        for k in 0..self.topics.len() {
            let source = self.topics[k].source.clone();
            let bytes = match source {
                Source::Producer { .. } if producers => self.producer_rate(&source) * dt,
                Source::Output {
                    group,
                    amplification,
                } if !producers => consumed_bytes[group] * amplification,
                _ => continue,
            };
            if bytes <= 0.0 {
                continue;
            }
            let record_bytes = self.topics[k].record_bytes;
            for p in self.topics[k].partitions.clone() {
                let part = &mut self.parts[p];
                let b = bytes * part.weight;
                part.active.bytes += b;
                part.active.newest = now;
                part.local_bytes += b;
                part.log_end += b / record_bytes;
                for &r in &part.replicas {
                    self.brokers[r].used += b;
                }
                let roll_at = if part.active.id == 0 {
                    part.first_roll
                } else {
                    self.segment_bytes
                };
                if part.active.bytes >= roll_at || now.since(part.active.created) >= self.segment_ms
                {
                    let id = part.next_id;
                    part.next_id += 1;
                    let closed = std::mem::replace(
                        &mut part.active,
                        Segment {
                            id,
                            bytes: 0.0,
                            created: now,
                            newest: now,
                        },
                    );
                    if self.topics[k].remote {
                        self.brokers[part.leader]
                            .uploads
                            .push_back((p, closed.id, closed.bytes));
                        self.brokers[part.leader].copy_lag += closed.bytes;
                    }
                    if self.topics[k].input {
                        part.kept.push_back((part.log_end, closed.newest));
                    }
                    part.closed.push_back(closed);
                }
            }
        }
    }

    /// Every broker not in a copy stall uploads queued segments, oldest first, for up to `dt`
    /// seconds of its upload throughput.
    pub(super) fn upload(&mut self, now: Timestamp, dt: f64) {
        for b in 0..self.brokers.len() {
            if self.event_active(|k| k == EventKind::CopyStall, b, now) {
                continue;
            }
            let mut budget = self.upload_rate * dt;
            let broker = &mut self.brokers[b];
            while budget > 0.0 {
                let Some(front) = broker.uploads.front_mut() else {
                    break;
                };
                let done = front.2.min(budget);
                front.2 -= done;
                budget -= done;
                broker.copy_lag -= done;
                if front.2 <= 1e-6 {
                    let (p, id, _) = *front;
                    broker.uploads.pop_front();
                    self.parts[p].uploaded_below = self.parts[p].uploaded_below.max(id + 1);
                }
            }
            if broker.uploads.is_empty() {
                broker.copy_lag = 0.0;
            }
        }
    }

    /// Deletes closed segments past their topic's retention (local retention on tiered topics, once
    /// uploaded; total retention otherwise), and input records past total retention (`inputs`).
    pub(super) fn enforce_retention(&mut self) {
        self.expire_inputs();
        let now = self.now;
        for k in 0..self.topics.len() {
            let topic = &self.topics[k];
            let local = local_retention_ms(topic);
            let total = topic
                .configs
                .get("retention.ms")
                .and_then(|c| c.value.as_deref()?.parse::<i64>().ok())
                .filter(|v| *v >= 0);
            let (limit, needs_upload) = if topic.remote {
                (local, true)
            } else {
                (total, false)
            };
            let Some(limit) = limit else { continue };
            let cutoff = Timestamp(now.0 - limit);
            for p in topic.partitions.clone() {
                let part = &mut self.parts[p];
                while let Some(front) = part.closed.front() {
                    let uploaded = !needs_upload || front.id < part.uploaded_below;
                    if !(uploaded && front.newest < cutoff) {
                        break;
                    }
                    let bytes = front.bytes;
                    part.closed.pop_front();
                    part.local_bytes -= bytes;
                    for &r in &part.replicas {
                        self.brokers[r].used -= bytes;
                    }
                }
            }
        }
    }
}

/// A backlog of `backlog` of the topic's mean production, in records.
pub(super) fn backlog_records(topic: &Topic, backlog: Dur) -> f64 {
    match topic.source {
        Source::Producer { rate, .. } => rate * backlog.secs_f64() / topic.record_bytes,
        Source::Output { .. } => 0.0,
    }
}

fn local_retention_ms(t: &Topic) -> Option<i64> {
    let int = |k: &str| {
        t.configs
            .get(k)
            .and_then(|c| c.value.as_deref()?.parse::<i64>().ok())
    };
    let total = int("retention.ms").filter(|v| *v >= 0);
    match int("local.retention.ms") {
        Some(v) if v >= 0 => Some(v),
        _ => total,
    }
}
