//! Copy stalls in the optimal bound. Kafka deletes a tiered segment locally only once its
//! partition's leader has uploaded it, on every replica alike, so while a broker's copy is stalled
//! nothing the partitions it leads receive leaves any disk. On broker `b`, between the stall's start `a`
//! (or the event's `from`, if later) and `z`:
//!
//! - what the producers wrote to those partitions on `b` before `a` and had uploaded still ages out
//!   of their window, but nothing written since `a` does: a producer topic with window `W` holds
//!   there at least `max(W, z - a)` of data, so `H_b` (which counts `W`) shrinks by
//!   `P_b * max(0, z - a - W)`, `P_b` its lowest rate into those partitions on `b`;
//! - and the outputs those partitions receive on `b` in `[a, z]` all stay: they are at most what is
//!   left, whatever the outputs' local retention says.
//!
//! Per broker, summed over the groups weighted by the stalled output bytes per record on `b`:
//! the records consumed from `from` to `t` are those consumed in the stall (bounded as above) plus
//! those consumed outside it (at most full speed over `t - from - (z - a)`). Each stall event is
//! checked on its own (sound for overlapping ones too); the upload backlog a stall leaves behind,
//! which keeps the disks full for a while after it ends, is not counted (the bound stays
//! optimistic).

use super::{Limits, Need, shares_on_brokers};
use crate::sim::scenario::{EventKind, Scenario};

/// One copy-stall event, as the bound uses it.
pub(super) struct Stall {
    /// Start, seconds after catch-up start (`-inf` for one in force from the start).
    from: f64,
    /// End, seconds after catch-up start.
    until: f64,
    /// Whether each broker's copy is stalled.
    stalled: Vec<bool>,
    /// Bytes per record consumed by each group that land on each broker in partitions a stalled
    /// broker leads (tiered outputs only).
    per_record: Vec<Vec<f64>>,
    /// Per tiered producer topic: the window `H_b` counts it at (seconds), and the bytes/s it
    /// writes to each broker in partitions a stalled broker leads, at its lowest rate.
    produced: Vec<(f64, Vec<f64>)>,
}

/// The scenario's copy-stall events.
/// `traffic`: each topic's partitions (leader, replicas, share of its traffic); `window_of`: the
/// window `H_b` counts a producer topic at.
pub(super) fn stalls(
    s: &Scenario,
    traffic: &[Vec<(usize, Vec<usize>, f64)>],
    window_of: impl Fn(usize) -> f64,
) -> Vec<Stall> {
    let n = s.cluster.brokers;
    s.events
        .iter()
        .filter(|e| e.kind == EventKind::CopyStall)
        .map(|e| {
            let stalled: Vec<bool> = (1..=n)
                .map(|id| e.brokers.is_empty() || e.brokers.contains(&id))
                .collect();
            let mut stall = Stall {
                from: e.start().map_or(f64::NEG_INFINITY, |d| d.secs_f64()),
                until: e.until.secs_f64(),
                stalled,
                per_record: vec![vec![0.0; n]; s.groups.len()],
                produced: Vec::new(),
            };
            for (k, t) in s
                .topics
                .iter()
                .enumerate()
                .filter(|(_, t)| t.remote_storage)
            {
                let stuck = shares_on_brokers(&traffic[k], n, |leader| stall.stalled[leader]);
                if let Some(prod) = &t.producer {
                    let lowest = prod.rate.0 * (1.0 - prod.diurnal_amplitude) * (1.0 - prod.noise);
                    let rates = stuck.iter().map(|share| lowest * share).collect();
                    stall.produced.push((window_of(k), rates));
                } else if let Some(out) = &t.output_of {
                    let Some(g) = s.groups.iter().position(|g| g.name == out.group) else {
                        continue;
                    };
                    let Some(input) = s.topics.iter().find(|i| i.name == s.groups[g].topic) else {
                        continue;
                    };
                    let bytes = input.record_bytes.0 as f64 * out.amplification;
                    for (sum, share) in stall.per_record[g].iter_mut().zip(&stuck) {
                        *sum += bytes * share;
                    }
                }
            }
            stall
        })
        .collect()
}

/// Seconds of `[from, t]` during which broker `b`'s copy is stalled (overlapping stalls counted
/// once).
pub(super) fn stalled_seconds(stalls: &[Stall], b: usize, from: f64, t: f64) -> f64 {
    let mut spans: Vec<(f64, f64)> = stalls
        .iter()
        .filter(|s| s.stalled[b])
        .map(|s| (s.from.max(from), s.until.min(t)))
        .filter(|(a, z)| z > a)
        .collect();
    spans.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut total, mut reached) = (0.0, f64::NEG_INFINITY);
    for (a, z) in spans {
        let a = a.max(reached);
        if z > a {
            total += z - a;
            reached = z;
        }
    }
    total
}

impl Stall {
    /// Whether the groups can consume `need` (records, per group as in `limits.needs`) between
    /// `from` and `t` with this stall in the way.
    pub(super) fn allows(&self, limits: &Limits, need: &[f64], from: f64, t: f64) -> bool {
        let (a, z) = (self.from.max(from), self.until.min(t));
        if z <= a {
            return true;
        }
        let outside = (t - from) - (z - a);
        (0..limits.headroom.len()).all(|b| {
            let weight = |n: &Need| self.per_record[n.group][b];
            let stuck: f64 = limits
                .needs
                .iter()
                .zip(need)
                .map(|(n, need)| need * weight(n))
                .sum();
            let at_full_speed_outside: f64 = limits
                .needs
                .iter()
                .map(|n| n.max_rate * outside * weight(n))
                .sum();
            // A producer topic's data of the stall's partitions at `z`: its window (counted in
            // `H_b`) or all it wrote since `a` (not uploaded), whichever is longer.
            let kept: f64 = self
                .produced
                .iter()
                .map(|(window, rates)| rates[b] * ((z - a) - window).max(0.0))
                .sum();
            let room = (limits.headroom[b] - kept).max(0.0);
            stuck <= at_full_speed_outside + room
        })
    }
}
