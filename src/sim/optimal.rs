//! The optimal bound: a lower bound on the catch-up duration that no controller can beat without
//! crossing the ceiling, computed from the scenario's capacities alone.
//!
//! Any controller is limited twice:
//! 1. **Consumer speed.** Group `g` consumes at most `C_g` records/s, so by time `T` it has consumed at
//!    most `C_g * T`.
//! 2. **Disk.** On broker `b`, the space under the ceiling left for the catch-up's outputs is
//!    `H_b = ceiling * capacity - static - (producer-written topics at their smallest footprint:
//!    lowest producer rate times local window, the floor for managed topics)`. An output topic keeps
//!    at least its newest `F` of data locally, where `F` is its floor if managed, else its local
//!    retention; with `F` the smallest such window, the output bytes written to `b` in any window
//!    of length `F` are at most `H_b`. So by time `T` at most `H_b * (T / F + 1)` bytes can have been
//!    written to `b`, and consumption is bounded by that divided by the bytes per consumed record that
//!    land on `b` (amplification times record size times `b`'s share of the output's replicas).
//!
//!    Only data present is subtracted: a producer topic holds at time 0 at most what the warm-up
//!    wrote (`min(window, warm-up)`), never a window longer than the run so far.
//! 3. **Upload.** Kafka deletes only uploaded data, and each broker uploads at most `upload_rate`
//!    (the partitions it leads); one uploaded byte frees at most every replica of it. Summed over the
//!    cluster, the brokers hold by `T` at least `static + written(T) - RF * brokers * upload_rate * T`
//!    (every byte present at time 0 counted as deletable, RF the largest replication factor), which
//!    must stay under the ceiling on every broker.
//!
//! The group is drained when it has consumed its backlogs (every backlog event, summed) plus
//! everything produced meanwhile, less the drain threshold, and not before its last backlog event.
//! What appears at a backlog event can only be consumed after it, so the three limits apply again
//! from each event time `a` on: the backlogs appearing at or after `a` plus what is produced from
//! `a` to `T` must fit in `T - a` (a later backlog is taken as re-readable in full: validation
//! keeps it shorter than its input's retention). The bound is the first `T` at which every group
//! can have done so under all
//! limits. It ignores everything that only makes real control slower (segment granularity, the
//! retention-check interval, metric delay, the outputs' data already on disk at time 0), so it is
//! optimistic and a real controller's ratio to it is at least 1.
//!
//! Infeasible (no bound, with the reason): the producers alone, at their lowest, fill a broker to
//! the ceiling; or no schedule drains within ten times the scenario's duration.

use super::cluster::{broker_shares, warmup};
use super::scenario::Scenario;
use crate::policy::Policy;

/// Lower bound on the catch-up duration in seconds, or `None` when no controller can drain within ten
/// times the scenario's duration without crossing the ceiling.
pub fn optimal_seconds(s: &Scenario, p: &Policy) -> Option<f64> {
    optimal_bound(s, p).ok()
}

/// [`optimal_seconds`], or why the scenario is infeasible.
pub fn optimal_bound(s: &Scenario, p: &Policy) -> Result<f64, String> {
    let n = s.cluster.brokers;
    let warm = warmup(s).secs_f64();
    let upload = s.cluster.upload_rate.0;
    let ceiling = p.disk.ceiling_percent / 100.0 * s.cluster.disk_capacity.0 as f64;
    let window_of = |k: usize| -> f64 {
        let t = &s.topics[k];
        let local = t.local_retention.unwrap_or(t.retention).secs_f64();
        if p.manages(&t.name) {
            (p.floor_ms(&t.name) as f64 / 1000.0).min(local)
        } else {
            local
        }
    };

    let mut headroom = vec![ceiling - s.cluster.static_used.0 as f64; n];
    // Bytes/s the producers write to each broker at their lowest (uploads must keep up with them too).
    let mut produced = vec![0.0; n];
    // Bytes landing on each broker per record consumed by each group, and the smallest output window.
    let mut per_record = vec![vec![0.0; n]; s.groups.len()];
    let mut window = f64::INFINITY;
    for (k, t) in s.topics.iter().enumerate() {
        let shares = broker_shares(s, k);
        if let Some(prod) = &t.producer {
            let lowest = prod.rate.0 * (1.0 - prod.diurnal_amplitude) * (1.0 - prod.noise);
            for b in 0..n {
                headroom[b] -= lowest * window_of(k).min(warm) * shares[b];
                produced[b] += lowest * shares[b];
            }
        } else if let Some(out) = &t.output_of {
            let Some(g) = s.groups.iter().position(|g| g.name == out.group) else {
                continue;
            };
            let Some(input) = s.topics.iter().find(|i| i.name == s.groups[g].topic) else {
                continue;
            };
            window = window.min(window_of(k));
            for b in 0..n {
                per_record[g][b] += input.record_bytes.0 as f64 * out.amplification * shares[b];
            }
        }
    }
    if let Some(b) = headroom.iter().position(|h| *h <= 0.0) {
        return Err(format!(
            "the producers alone, at their lowest rate and with managed topics at their floor, fill broker {} to the {}% ceiling",
            b + 1,
            p.disk.ceiling_percent
        ));
    }

    // Records each group must consume by time T: backlogs + production - threshold.
    let needs: Vec<Need> = s
        .groups
        .iter()
        .filter_map(|g| {
            let input = s.topics.iter().find(|t| t.name == g.topic)?;
            let prod = input.producer.as_ref()?;
            let rec = input.record_bytes.0 as f64;
            let threshold =
                p.groups
                    .iter()
                    .find(|pg| pg.name == g.name)
                    .map_or(p.drain.lag_threshold, |pg| p.lag_threshold(pg)) as f64;
            Some(Need {
                max_rate: g.max_rate,
                arrivals: g
                    .backlog_events()
                    .iter()
                    .map(|(at, size)| (at.secs_f64(), prod.rate.0 * size.secs_f64() / rec))
                    .collect(),
                threshold,
                // Production at its least (noise all the way down) keeps the bound a lower bound.
                records_per_sec: prod.rate.0 * (1.0 - prod.noise) / rec,
                amplitude: prod.diurnal_amplitude,
                peak: prod.peak_at.secs_f64(),
            })
        })
        .collect();

    let limit = s.duration.secs_f64() * 10.0;
    let rf = s
        .topics
        .iter()
        .map(|tp| tp.replication_factor)
        .max()
        .unwrap_or(1) as f64;
    let cluster_room = (0..n)
        .map(|_| ceiling - s.cluster.static_used.0 as f64)
        .sum::<f64>();
    let cluster_free = (rf * n as f64 * upload - produced.iter().sum::<f64>()).max(0.0);
    // Whether every group can consume, between `from` and `t`, the backlogs appearing from `from` on
    // and everything produced meanwhile, under the three limits.
    let feasible_from = |from: f64, t: f64| -> bool {
        let span = t - from;
        let need: Vec<f64> = needs.iter().map(|n| n.between(from, t)).collect();
        let fast_enough = needs
            .iter()
            .zip(&need)
            .all(|(n, need)| *need <= n.max_rate * span);
        let fits = (0..n).all(|b| {
            let written: f64 = need
                .iter()
                .enumerate()
                .map(|(g, need)| need * per_record[g][b])
                .sum();
            written <= headroom[b] * (span / window + 1.0)
        });
        let written_all: f64 = need
            .iter()
            .enumerate()
            .map(|(g, need)| need * per_record[g].iter().sum::<f64>())
            .sum();
        let uploads_keep_up = written_all <= cluster_room + cluster_free * span;
        fast_enough && fits && uploads_keep_up
    };
    // No group is drained before its last backlog has appeared, and what appears at each backlog
    // event can only be consumed after it.
    let events: Vec<f64> = s.backlog_times().iter().map(|d| d.secs_f64()).collect();
    let last_backlog = events.last().copied().unwrap_or(0.0);
    let feasible =
        |t: f64| -> bool { t >= last_backlog && events.iter().all(|&from| feasible_from(from, t)) };
    let mut t = 0.0;
    while t <= limit {
        if feasible(t) {
            // Refine within the last coarse step.
            let mut lo = (t - 60.0).max(0.0);
            let mut hi = t;
            while hi - lo > 1.0 {
                let mid = (lo + hi) / 2.0;
                if feasible(mid) { hi = mid } else { lo = mid }
            }
            return Ok(hi);
        }
        t += 60.0;
    }
    Err(format!(
        "no schedule drains within ten times the scenario's duration ({}) without crossing the ceiling",
        crate::units::Dur((limit * 1000.0) as u64)
    ))
}

/// What one group must consume to count as drained.
struct Need {
    max_rate: f64,
    /// Backlog events: (seconds after catch-up start, records).
    arrivals: Vec<(f64, f64)>,
    /// The drain threshold, records.
    threshold: f64,
    records_per_sec: f64,
    amplitude: f64,
    peak: f64,
}

impl Need {
    /// Records to consume between `from` and `t` seconds: the backlogs appearing at or after `from`,
    /// less the threshold, plus the integral of the producer's daily profile,
    /// `rate * (1 + amplitude * cos(2 pi (t - peak) / day))`, from `from` to `t`.
    fn between(&self, from: f64, t: f64) -> f64 {
        let w = std::f64::consts::TAU / 86_400.0;
        let backlogs: f64 = self
            .arrivals
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, records)| records)
            .sum();
        let produced = self.records_per_sec
            * ((t - from)
                + self.amplitude / w
                    * ((w * (t - self.peak)).sin() - (w * (from - self.peak)).sin()));
        (backlogs - self.threshold + produced).max(0.0)
    }
}
