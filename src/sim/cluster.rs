//! The physics of a tiered-storage Kafka cluster, deterministic and fluid at the step level.
//!
//! Modelled: partitions with replicas spread round-robin over brokers (leaders rotate per topic, as
//! Kafka's default assignment does); segments that roll by size and age; closed segments uploaded in
//! order by each partition's leader at a bounded per-broker throughput (so copy lag can build);
//! deletion of uploaded segments whose newest record is older than `local.retention.ms`, run every
//! retention-check interval; producers with a daily profile and seeded noise; catch-up consumers that
//! obey their gate and write output topics at an amplification factor; and a CloudWatch-like metric
//! (period averages, stamped with the period start, visible after a delay).
//!
//! Not modelled: per-record timestamps (records carry the time they were written, i.e. CreateTime
//! set by the pipeline when it writes), replica lag, leader movement, remote reads. A broker whose
//! disk reaches 100% is marked failed and stays pinned at 100%: it is reported, never clipped silently.

use std::collections::{BTreeMap, VecDeque};

use super::scenario::{EventKind, Scenario};
use crate::policy::Gate;
use crate::policy::RateUnit;
use crate::sensors::{ConfigSource, ConfigValue, LOCAL_RETENTION_INHERIT, PartitionOffsets};
use crate::units::{Dur, Timestamp};

/// A small, fast, seedable PRNG (SplitMix64): its stream is fixed here, so runs stay reproducible
/// across dependency upgrades.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next raw value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[derive(Clone, Debug)]
struct Segment {
    id: u64,
    bytes: f64,
    created: Timestamp,
    newest: Timestamp,
}

#[derive(Clone, Debug)]
struct Partition {
    leader: usize,
    replicas: Vec<usize>,
    weight: f64,
    /// Size at which the first segment rolls (later ones roll at `segment.bytes`).
    first_roll: f64,
    active: Segment,
    closed: VecDeque<Segment>,
    /// Segments with an id below this are in remote storage.
    uploaded_below: u64,
    next_id: u64,
    local_bytes: f64,
    log_end: f64,
}

/// Where a topic's writes come from.
#[derive(Clone, Debug)]
enum Source {
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
struct Topic {
    name: String,
    partitions: std::ops::Range<usize>,
    record_bytes: f64,
    remote: bool,
    configs: BTreeMap<String, ConfigValue>,
    source: Source,
}

#[derive(Clone, Debug)]
struct Group {
    name: String,
    topic: usize,
    max_rate: f64,
    committed: Vec<f64>,
    gate: Gate,
    /// Records consumed during the last step, per second.
    rate: f64,
}

#[derive(Clone, Debug)]
struct Broker {
    used: f64,
    failed_at: Option<Timestamp>,
    uploads: VecDeque<(usize, u64, f64)>,
    copy_lag: f64,
    disk_sum: f64,
    lag_sum: f64,
}

/// One published datapoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Datapoint {
    /// Period start (CloudWatch's timestamp).
    pub at: Timestamp,
    /// Average over the period.
    pub value: f64,
    /// When it becomes visible.
    pub visible_at: Timestamp,
}

/// A simulated cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    now: Timestamp,
    step: Dur,
    capacity: f64,
    static_used: f64,
    upload_rate: f64,
    check_interval: Dur,
    next_check: Timestamp,
    segment_bytes: f64,
    segment_ms: Dur,
    period: Dur,
    delay: Dur,
    period_start: Timestamp,
    brokers: Vec<Broker>,
    topics: Vec<Topic>,
    parts: Vec<Partition>,
    groups: Vec<Group>,
    events: Vec<(EventKind, Timestamp, Timestamp, Vec<usize>)>,
    rng: SplitMix64,
    noise_minute: i64,
    noise: f64,
    /// Published datapoints per broker: disk percent and copy-lag bytes.
    disk_points: Vec<VecDeque<Datapoint>>,
    lag_points: Vec<VecDeque<Datapoint>>,
}

/// Bytes per simulated record counter unit are floats; offsets are reported rounded down.
fn offset(records: f64) -> i64 {
    records.floor() as i64
}

impl Cluster {
    /// Builds the cluster of `scenario` at time `start` (negative: warm-up before catch-up starts).
    /// Every group starts caught up; [`Cluster::inject_backlogs`] adds the backlog.
    pub fn new(scenario: &Scenario, start: Timestamp) -> Cluster {
        let n = scenario.cluster.brokers;
        let mut rng = SplitMix64::new(scenario.seed);
        let segment_bytes = scenario.cluster.segment_bytes.0 as f64;
        let mut topics = Vec::new();
        let mut parts = Vec::new();
        for (k, spec) in scenario.topics.iter().enumerate() {
            let first = parts.len();
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
                });
            }
            let total: f64 = parts[first..].iter().map(|p| p.weight).sum();
            for p in &mut parts[first..] {
                p.weight /= total;
            }
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
            let source = match (&spec.producer, &spec.output_of) {
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
            };
            topics.push(Topic {
                name: spec.name.clone(),
                partitions: first..parts.len(),
                record_bytes: spec.record_bytes.0 as f64,
                remote: spec.remote_storage,
                configs,
                source,
            });
        }
        let groups: Vec<Group> = scenario
            .groups
            .iter()
            .map(|g| {
                let topic = scenario
                    .topics
                    .iter()
                    .position(|t| t.name == g.topic)
                    .unwrap_or(0);
                Group {
                    name: g.name.clone(),
                    topic,
                    max_rate: g.max_rate,
                    committed: vec![0.0; topics[topic].partitions.len()],
                    gate: Gate::Open,
                    rate: 0.0,
                }
            })
            .collect();
        // Input partitions start with the backlog's worth of history (produced before the warm-up), so
        // committed offsets can fall that far behind without going below zero.
        for spec in &scenario.groups {
            let Some(topic) = topics.iter().find(|t: &&Topic| t.name == spec.topic) else {
                continue;
            };
            let records = backlog_records(topic, spec.backlog);
            for p in topic.partitions.clone() {
                parts[p].log_end = parts[p].log_end.max((records * parts[p].weight).ceil());
            }
        }
        let mut groups: Vec<Group> = groups;
        for g in &mut groups {
            for (i, p) in topics[g.topic].partitions.clone().enumerate() {
                g.committed[i] = parts[p].log_end;
            }
        }
        let events = scenario
            .events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    Timestamp(e.at.0 as i64),
                    Timestamp(e.until.0 as i64),
                    e.brokers.iter().map(|b| b - 1).collect(),
                )
            })
            .collect();
        let broker = Broker {
            used: scenario.cluster.static_used.0 as f64,
            failed_at: None,
            uploads: VecDeque::new(),
            copy_lag: 0.0,
            disk_sum: 0.0,
            lag_sum: 0.0,
        };
        Cluster {
            now: start,
            step: scenario.step,
            capacity: scenario.cluster.disk_capacity.0 as f64,
            static_used: scenario.cluster.static_used.0 as f64,
            upload_rate: scenario.cluster.upload_rate.0,
            check_interval: scenario.cluster.retention_check_interval,
            next_check: start + scenario.cluster.retention_check_interval,
            segment_bytes: scenario.cluster.segment_bytes.0 as f64,
            segment_ms: scenario.cluster.segment_ms,
            period: scenario.metrics.period,
            delay: scenario.metrics.delay,
            period_start: start,
            brokers: vec![broker; n],
            topics,
            parts,
            groups,
            events,
            rng,
            noise_minute: i64::MIN,
            noise: 0.0,
            disk_points: vec![VecDeque::new(); n],
            lag_points: vec![VecDeque::new(); n],
        }
    }

    /// Sets every group's committed offsets `backlog` behind the log end (a duration of the input's
    /// mean production).
    pub fn inject_backlogs(&mut self, scenario: &Scenario) {
        for (g, spec) in self.groups.iter_mut().zip(&scenario.groups) {
            let topic = &self.topics[g.topic];
            let records = backlog_records(topic, spec.backlog);
            for (i, p) in topic.partitions.clone().enumerate() {
                let part = &self.parts[p];
                g.committed[i] = (part.log_end - records * part.weight).max(0.0);
            }
        }
    }

    /// Current simulated time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Broker count.
    pub fn broker_count(&self) -> usize {
        self.brokers.len()
    }

    /// Log volume size.
    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// True disk use of broker index `b`, percent (100 once failed).
    pub fn disk_percent(&self, b: usize) -> f64 {
        self.brokers[b].used * 100.0 / self.capacity
    }

    /// When broker index `b` failed, if it did.
    pub fn failed_at(&self, b: usize) -> Option<Timestamp> {
        self.brokers[b].failed_at
    }

    /// True copy lag of broker index `b`, bytes.
    pub fn copy_lag(&self, b: usize) -> f64 {
        self.brokers[b].copy_lag
    }

    /// Newest visible disk datapoint of broker index `b`.
    pub fn visible_disk(&self, b: usize) -> Option<Datapoint> {
        self.disk_points[b]
            .iter()
            .rev()
            .find(|d| d.visible_at <= self.now)
            .copied()
    }

    /// Newest visible copy-lag datapoint of broker index `b`.
    pub fn visible_copy_lag(&self, b: usize) -> Option<Datapoint> {
        self.lag_points[b]
            .iter()
            .rev()
            .find(|d| d.visible_at <= self.now)
            .copied()
    }

    /// Group names in scenario order.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }

    /// Committed and log-end offsets of every partition a group consumes.
    pub fn group_offsets(&self, group: &str) -> Option<Vec<PartitionOffsets>> {
        let g = self.groups.iter().find(|g| g.name == group)?;
        let topic = &self.topics[g.topic];
        let parts = topic
            .partitions
            .clone()
            .enumerate()
            .map(|(i, p)| PartitionOffsets {
                topic: topic.name.clone(),
                partition: i as i32,
                committed: Some(offset(g.committed[i])),
                log_end: offset(self.parts[p].log_end),
                log_start: None,
            })
            .collect();
        Some(parts)
    }

    /// Total lag of a group in records.
    pub fn group_lag(&self, group: &str) -> Option<f64> {
        let g = self.groups.iter().find(|g| g.name == group)?;
        let topic = &self.topics[g.topic];
        Some(
            topic
                .partitions
                .clone()
                .enumerate()
                .map(|(i, p)| (self.parts[p].log_end - g.committed[i]).max(0.0))
                .sum(),
        )
    }

    /// Records per second a group consumed in the last step.
    pub fn group_rate(&self, group: &str) -> Option<f64> {
        self.groups.iter().find(|g| g.name == group).map(|g| g.rate)
    }

    /// The gate a group obeys.
    pub fn gate(&self, group: &str) -> Option<&Gate> {
        self.groups
            .iter()
            .find(|g| g.name == group)
            .map(|g| &g.gate)
    }

    /// Sets the gate a group obeys.
    pub fn set_gate(&mut self, group: &str, gate: Gate) -> bool {
        match self.groups.iter_mut().find(|g| g.name == group) {
            Some(g) => {
                g.gate = gate;
                true
            }
            None => false,
        }
    }

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

    fn event_active(&self, kind: EventKind, broker: usize, at: Timestamp) -> bool {
        self.events.iter().any(|(k, from, to, brokers)| {
            *k == kind
                && at >= *from
                && at < *to
                && (brokers.is_empty() || brokers.contains(&broker))
        })
    }

    fn producer_rate(&mut self, source: &Source) -> f64 {
        let Source::Producer {
            rate,
            amplitude,
            peak_at,
            noise,
        } = *source
        else {
            return 0.0;
        };
        let minute = self.now.0.div_euclid(60_000);
        if minute != self.noise_minute {
            self.noise_minute = minute;
            self.noise = self.rng.symmetric();
        }
        let phase = (self.now.0 - peak_at.0 as i64) as f64 / 86_400_000.0 * std::f64::consts::TAU;
        rate * (1.0 + amplitude * phase.cos()) * (1.0 + noise * self.noise)
    }

    /// Advances the cluster by one step. During warm-up (`caught_up`), groups consume exactly what is
    /// produced, ignoring their gates.
    pub fn step(&mut self, caught_up: bool) {
        let dt = self.step.secs_f64();
        let now = self.now;
        // 1. Producers write the input topics; 2. consumers read (what was just produced included);
        // 3. the consumers' outputs are written.
        let no_output = vec![0.0; self.groups.len()];
        self.write_topics(true, &no_output);
        let mut consumed_bytes = vec![0.0; self.groups.len()];
        for (gi, g) in self.groups.iter_mut().enumerate() {
            let topic = &self.topics[g.topic];
            let lag: f64 = topic
                .partitions
                .clone()
                .enumerate()
                .map(|(i, p)| (self.parts[p].log_end - g.committed[i]).max(0.0))
                .sum();
            let allowed = if caught_up {
                f64::INFINITY
            } else {
                match &g.gate {
                    Gate::Open => g.max_rate,
                    Gate::Paused => 0.0,
                    Gate::Throttled {
                        rate,
                        unit: RateUnit::Records,
                        ..
                    } => rate.min(g.max_rate),
                    Gate::Throttled {
                        rate,
                        unit: RateUnit::Bytes,
                        ..
                    } => (rate / topic.record_bytes).min(g.max_rate),
                }
            };
            let take = (allowed * dt).min(lag);
            if take > 0.0 && lag > 0.0 {
                for (i, p) in topic.partitions.clone().enumerate() {
                    let part_lag = (self.parts[p].log_end - g.committed[i]).max(0.0);
                    g.committed[i] += part_lag * take / lag;
                }
            }
            g.rate = take / dt;
            consumed_bytes[gi] = take * topic.record_bytes;
        }
        self.write_topics(false, &consumed_bytes);
        // 3. Tiered-storage uploads.
        for b in 0..self.brokers.len() {
            if self.event_active(EventKind::CopyStall, b, now) {
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
        // 4. Local retention.
        if now >= self.next_check {
            self.next_check = now + self.check_interval;
            self.enforce_retention();
        }
        // 5. Failures and metrics.
        self.now = now + self.step;
        for b in &mut self.brokers {
            if b.used >= self.capacity && b.failed_at.is_none() {
                b.failed_at = Some(self.now);
            }
            let reported = if b.failed_at.is_some() {
                self.capacity
            } else {
                b.used
            };
            b.disk_sum += reported * 100.0 / self.capacity * dt;
            b.lag_sum += b.copy_lag * dt;
        }
        if self.now.since(self.period_start) >= self.period {
            self.publish();
        }
    }

    /// Appends to the producer-written topics (`producers`) or to the output topics, rolling segments.
    fn write_topics(&mut self, producers: bool, consumed_bytes: &[f64]) {
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
                    part.closed.push_back(closed);
                }
            }
        }
    }

    fn enforce_retention(&mut self) {
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

    fn publish(&mut self) {
        let span = self.now.since(self.period_start).secs_f64();
        let at = self.period_start;
        let visible_at = self.now + self.delay;
        for b in 0..self.brokers.len() {
            let outage = self.event_active(EventKind::MetricsOutage, b, at);
            let broker = &mut self.brokers[b];
            let (disk, lag) = (broker.disk_sum / span, broker.lag_sum / span);
            broker.disk_sum = 0.0;
            broker.lag_sum = 0.0;
            if outage {
                continue;
            }
            for (points, value) in [
                (&mut self.disk_points[b], disk),
                (&mut self.lag_points[b], lag),
            ] {
                points.push_back(Datapoint {
                    at,
                    value,
                    visible_at,
                });
                if points.len() > 64 {
                    points.pop_front();
                }
            }
        }
        self.period_start = self.now;
    }

    /// Space used on every volume by things the scenario does not model.
    pub fn static_used(&self) -> f64 {
        self.static_used
    }
}

/// Partition placement of topic `k`: (leader index, replica indices, share of the topic's traffic) per
/// partition. Leaders rotate per topic and replicas follow the leader round-robin, as Kafka's default
/// assignment does; partitions with a replica on the `skew` broker carry `weight` times the traffic.
pub fn layout(scenario: &Scenario, k: usize) -> Vec<(usize, Vec<usize>, f64)> {
    let n = scenario.cluster.brokers.max(1);
    let spec = &scenario.topics[k];
    let mut out: Vec<(usize, Vec<usize>, f64)> = (0..spec.partitions)
        .map(|p| {
            let leader = (p + k) % n;
            let replicas: Vec<usize> = (0..spec.replication_factor.min(n))
                .map(|j| (leader + j) % n)
                .collect();
            let hot = spec
                .skew
                .as_ref()
                .filter(|s| replicas.contains(&(s.broker - 1)));
            (leader, replicas, hot.map_or(1.0, |s| s.weight))
        })
        .collect();
    let total: f64 = out.iter().map(|p| p.2).sum();
    for p in &mut out {
        p.2 /= total;
    }
    out
}

/// Share of topic `k`'s bytes stored on each broker (replicas counted: the shares sum to the
/// replication factor).
pub fn broker_shares(scenario: &Scenario, k: usize) -> Vec<f64> {
    let mut shares = vec![0.0; scenario.cluster.brokers];
    for (_, replicas, weight) in layout(scenario, k) {
        for r in replicas {
            shares[r] += weight;
        }
    }
    shares
}

/// A backlog of `backlog` of the topic's mean production, in records.
fn backlog_records(topic: &Topic, backlog: Dur) -> f64 {
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
