//! The cluster's clients: producers writing the input topics with a daily profile and seeded noise,
//! and catch-up consumer groups that obey their gate (their output topics are written in
//! `storage`).

use super::Cluster;
use super::inputs::record_time;
use super::storage::{Partition, Source, Topic, backlog_records};
use crate::observation::{PartitionOffsets, RecordTime, TimestampKind};
use crate::policy::{Gate, RateUnit};
use crate::sim::scenario::Scenario;
use crate::units::Dur;

#[derive(Clone, Debug)]
pub(super) struct Group {
    pub(super) name: String,
    pub(super) topic: usize,
    pub(super) max_rate: f64,
    pub(super) committed: Vec<f64>,
    pub(super) gate: Gate,
    /// Records consumed during the last step, per second.
    pub(super) rate: f64,
    /// Records deleted by input retention before the group consumed them.
    pub(super) lost: f64,
}

/// Bytes per simulated record counter unit are floats; offsets are reported rounded down.
fn offset(records: f64) -> i64 {
    records.floor() as i64
}

/// The scenario's groups, open and caught up: committed at the log end of every partition.
pub(super) fn groups(scenario: &Scenario, topics: &[Topic], parts: &[Partition]) -> Vec<Group> {
    let mut groups: Vec<Group> = scenario
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
                lost: 0.0,
            }
        })
        .collect();
    for g in &mut groups {
        for (i, p) in topics[g.topic].partitions.clone().enumerate() {
            g.committed[i] = parts[p].log_end;
        }
    }
    groups
}

impl Cluster {
    /// Adds the backlogs that appear at `at` (see [`crate::sim::scenario::BacklogSpec`]): at time 0
    /// every group's committed offsets are set that far behind the log end; later they move that far
    /// back from where they are, never below the log start.
    pub fn inject_backlogs(&mut self, scenario: &Scenario, at: Dur) {
        for (g, spec) in self.groups.iter_mut().zip(&scenario.groups) {
            let size = spec.backlog_at(at);
            if size == Dur(0) {
                continue;
            }
            let topic = &self.topics[g.topic];
            let records = backlog_records(topic, size);
            for (i, p) in topic.partitions.clone().enumerate() {
                let part = &self.parts[p];
                g.committed[i] = if at == Dur(0) {
                    (part.log_end - records * part.weight).max(0.0)
                } else {
                    (g.committed[i] - records * part.weight).max(part.log_start)
                };
            }
        }
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
            .map(|(i, p)| {
                let part = &self.parts[p];
                let committed = offset(g.committed[i]);
                let next_record = (topic.input && part.log_end - g.committed[i] >= 1.0)
                    .then(|| record_time(part, g.committed[i], self.now))
                    .flatten()
                    .map(|at| RecordTime {
                        offset: committed,
                        at,
                        kind: TimestampKind::CreateTime,
                    });
                PartitionOffsets {
                    topic: topic.name.clone(),
                    partition: i as i32,
                    committed: Some(committed),
                    log_end: offset(part.log_end),
                    log_start: topic.input.then(|| offset(part.log_start)),
                    next_record,
                }
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

    /// Bytes per second a producer writes now; the noise is redrawn once a simulated minute.
    pub(super) fn producer_rate(&mut self, source: &Source) -> f64 {
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

    /// Every group consumes for `dt` seconds as fast as its gate allows (without limit when
    /// `caught_up`), spreading what it takes over its partitions by their lag. Returns the bytes each
    /// group consumed, in group order.
    pub(super) fn consume(&mut self, caught_up: bool, dt: f64) -> Vec<f64> {
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
        consumed_bytes
    }
}
