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
//! Input topics keep every segment until total retention deletes it (by its newest record, as
//! Kafka does), moving the log start; a group behind it loses those records (`inputs`).
//!
//! Not modelled: per-record timestamps (records carry the time they were written, i.e. CreateTime
//! set by the pipeline when it writes; within a segment they are spread evenly), replica lag, leader movement, remote reads. A broker whose
//! disk reaches 100% is marked failed and stays pinned at 100%: it is reported, never clipped silently.
//!
//! The cluster's state and its step are here; the rest by concern: `storage` (segments, uploads,
//! retention), `clients` (producers and gated consumers), `metrics` (failures and delayed
//! datapoints), `placement` (partitions over brokers) and `rng` (the seeded generator).

mod clients;
mod inputs;
mod metrics;
mod placement;
mod rng;
mod storage;

use std::collections::VecDeque;

use self::clients::Group;
use self::storage::{Partition, Source, Topic};
use super::scenario::{EventKind, Scenario};
use crate::units::{Dur, Timestamp};

pub use self::metrics::Datapoint;
pub use self::placement::{broker_shares, layout};
pub use self::rng::SplitMix64;

#[derive(Clone, Debug)]
struct Broker {
    used: f64,
    failed_at: Option<Timestamp>,
    uploads: VecDeque<(usize, u64, f64)>,
    copy_lag: f64,
    disk_sum: f64,
    lag_sum: f64,
}

/// Each topic's partitions as the cluster of `scenario` lays them out: (leader, replicas, share of
/// the topic's traffic), the shares with the seeded key skew of [`Cluster::new`], so they sum to one
/// per topic and the optimal bound sees the traffic each broker truly takes.
pub fn partition_traffic(scenario: &Scenario) -> Vec<Vec<(usize, Vec<usize>, f64)>> {
    let cluster = Cluster::new(scenario, Timestamp(0));
    cluster
        .topics
        .iter()
        .map(|t| {
            cluster.parts[t.partitions.clone()]
                .iter()
                .map(|p| (p.leader, p.replicas.clone(), p.weight))
                .collect()
        })
        .collect()
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
            parts.extend(storage::partitions(
                scenario,
                k,
                start,
                segment_bytes,
                &mut rng,
            ));
            topics.push(Topic {
                name: spec.name.clone(),
                partitions: first..parts.len(),
                record_bytes: spec.record_bytes.0 as f64,
                remote: spec.remote_storage,
                configs: storage::initial_configs(spec),
                source: Source::of(spec, scenario),
                input: scenario.groups.iter().any(|g| g.topic == spec.name),
            });
        }
        storage::add_history(scenario, &topics, &mut parts, start);
        let groups = clients::groups(scenario, &topics, &parts);
        let events = scenario
            .events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    // From the start: before the warm-up begins.
                    e.start()
                        .map_or(Timestamp(i64::MIN), |at| Timestamp(at.0 as i64)),
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
        if self.brokers[b].failed_at.is_some() {
            return 100.0;
        }
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

    /// Space used on every volume by things the scenario does not model.
    pub fn static_used(&self) -> f64 {
        self.static_used
    }

    fn event_active(&self, kind: impl Fn(EventKind) -> bool, broker: usize, at: Timestamp) -> bool {
        self.events.iter().any(|(k, from, to, brokers)| {
            kind(*k) && at >= *from && at < *to && (brokers.is_empty() || brokers.contains(&broker))
        })
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
        let consumed_bytes = self.consume(caught_up, dt);
        self.write_topics(false, &consumed_bytes);
        // 4. Tiered-storage uploads.
        self.upload(now, dt);
        // 5. Local retention.
        if now >= self.next_check {
            self.next_check = now + self.check_interval;
            self.enforce_retention();
        }
        // 6. Failures and metrics.
        self.now = now + self.step;
        self.account(dt);
        if self.now.since(self.period_start) >= self.period {
            self.publish();
        }
    }
}

/// How long the cluster warms up at normal load before catch-up starts: twice the longest local
/// window (segments must fill, close, upload and age out before deletion reaches a steady state),
/// capped at a day, so disks start at their normal level.
pub fn warmup(scenario: &Scenario) -> Dur {
    let longest = scenario
        .topics
        .iter()
        .map(|t| t.local_retention.unwrap_or(t.retention))
        .max()
        .unwrap_or_default();
    Dur((longest.0 * 2).min(Dur::from_hours(24).0)).max(Dur::from_hours(1))
}
