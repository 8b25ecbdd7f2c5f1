//! The optimal bound: a lower bound on the catch-up duration that no controller can beat without
//! crossing the ceiling, computed from the scenario's capacities alone (and its partitions' traffic
//! shares as the cluster lays them out, key skew included: a broker's share is what it truly takes).
//!
//! Any controller is limited four times:
//! 1. **Consumer speed.** Group `g` consumes at most `C_g` records/s, so by time `T` it has consumed at
//!    most `C_g * T`.
//! 2. **Disk.** On broker `b`, the space under the ceiling left for the catch-up's outputs is
//!    `H_b = ceiling * capacity - static - (producer-written topics at their smallest footprint:
//!    lowest producer rate times local window, the floor for managed topics)`. An output topic keeps
//!    at least its newest `F` of data locally, where `F` is its floor if managed, else its local
//!    retention; with `F` the smallest such window, the output bytes written to `b` in any window
//!    of length `F` are at most `H_b`, and at most `R_b * F`, `R_b` what the groups at full speed
//!    write to `b` per second. Cutting `[0, T]` into a first piece of `T mod F` and whole windows
//!    after it, at most `min(R_b (T mod F), H_b - pre_b) + floor(T / F) * min(R_b F, H_b)` bytes can
//!    have been written to `b` by `T`, where `pre_b` is what the warm-up wrote to `b` in the
//!    window's part before time 0 (still on disk while it is younger than `F`). Consumption is
//!    bounded by that divided by the bytes per consumed record that land on `b` (amplification
//!    times record size times `b`'s share of the output's replicas).
//!
//!    Only data present is subtracted: a producer topic holds at time 0 at most what the warm-up
//!    wrote (`min(window, warm-up)`), never a window longer than the run so far.
//! 3. **Upload.** Kafka deletes only uploaded data, and each broker uploads at most `upload_rate`
//!    (the partitions it leads), nothing while its copy is stalled; one uploaded byte frees at most
//!    every replica of it. Summed over the cluster, the brokers hold by `T` at least `static +
//!    written(T) - RF * upload_rate * (broker-seconds not stalled)` of tiered data (every byte
//!    present at time 0 counted as deletable, RF the largest replication factor), which must stay
//!    under the ceiling on every broker.
//! 4. **Copy stalls** (`stalls`). While the broker that leads a partition is stalled, nothing that
//!    partition receives is deleted on any replica, so on each broker the outputs the stall's
//!    partitions receive during it, and the producers' writes there beyond their window, add up on
//!    top of `H_b`'s footprint.
//!
//! The group is drained when it has consumed its backlogs (every backlog event, summed) plus
//! everything produced meanwhile, less the drain threshold, and not before its last backlog event.
//! What appears at a backlog event can only be consumed after it, so the limits apply again
//! from each event time `a` on: the backlogs appearing at or after `a` plus what is produced from
//! `a` to `T` must fit in `T - a` (a later backlog is taken as re-readable in full: validation
//! keeps it shorter than its input's retention). The bound is the first `T` at which every group
//! can have done so under all limits. It ignores everything that only makes real control slower
//! (segment granularity, the retention-check interval, metric delay, the outputs' data on disk at
//! time 0 beyond the newest `F`, the upload backlog a stall leaves behind), so it is optimistic and
//! a real controller's ratio to it is at least 1.
//!
//! Infeasible (no bound, with the reason): the producers alone, at their lowest, fill a broker to
//! the ceiling; or no schedule drains within ten times the scenario's duration.

mod stalls;

use self::stalls::Stall;
use super::cluster::{partition_traffic, warmup};
use super::scenario::Scenario;
use crate::policy::Policy;

/// Lower bound on the catch-up duration in seconds, or `None` when no controller can drain within ten
/// times the scenario's duration without crossing the ceiling.
pub fn optimal_seconds(s: &Scenario, p: &Policy) -> Option<f64> {
    optimal_bound(s, p).ok()
}

/// [`optimal_seconds`], or why the scenario is infeasible.
pub fn optimal_bound(s: &Scenario, p: &Policy) -> Result<f64, String> {
    let limits = Limits::new(s, p)?;
    let limit = s.duration.secs_f64() * 10.0;
    // No group is drained before its last backlog has appeared, and what appears at each backlog
    // event can only be consumed after it.
    let events: Vec<f64> = s.backlog_times().iter().map(|d| d.secs_f64()).collect();
    let last_backlog = events.last().copied().unwrap_or(0.0);
    let feasible = |t: f64| -> bool {
        t >= last_backlog && events.iter().all(|&from| limits.feasible_from(from, t))
    };
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

/// The scenario's capacities, as the limits use them.
struct Limits {
    needs: Vec<Need>,
    /// Room under the ceiling for the outputs on each broker (`H_b`).
    headroom: Vec<f64>,
    /// Bytes landing on each broker per record consumed by each group (indexed by group).
    per_record: Vec<Vec<f64>>,
    /// The same, of tiered output topics only (what only uploads can free).
    per_record_tiered: Vec<Vec<f64>>,
    /// Output bytes/s on each broker with every group at full speed (`R_b`).
    full_speed: Vec<f64>,
    /// Output bytes/s on each broker during the warm-up, at the producers' lowest rate.
    warmup_output: Vec<f64>,
    /// The warm-up's length, seconds.
    warm: f64,
    /// The smallest output window `F`, seconds (infinite without outputs).
    window: f64,
    /// Room under the ceiling summed over the brokers.
    cluster_room: f64,
    /// Bytes/s one broker's uploads free at most: RF times the upload rate.
    frees_per_upload_second: f64,
    /// Bytes/s the producers write to tiered topics, summed over the brokers, at their lowest.
    produced_tiered: f64,
    stalls: Vec<Stall>,
}

impl Limits {
    fn new(s: &Scenario, p: &Policy) -> Result<Limits, String> {
        let n = s.cluster.brokers;
        let warm = warmup(s).secs_f64();
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
        let mut produced_tiered = 0.0;
        let mut per_record = vec![vec![0.0; n]; s.groups.len()];
        let mut per_record_tiered = vec![vec![0.0; n]; s.groups.len()];
        let mut window = f64::INFINITY;
        let traffic = partition_traffic(s);
        for (k, t) in s.topics.iter().enumerate() {
            let shares = shares_on_brokers(&traffic[k], n, |_| true);
            if let Some(prod) = &t.producer {
                let lowest = prod.rate.0 * (1.0 - prod.diurnal_amplitude) * (1.0 - prod.noise);
                for b in 0..n {
                    headroom[b] -= lowest * window_of(k).min(warm) * shares[b];
                    if t.remote_storage {
                        produced_tiered += lowest * shares[b];
                    }
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
                    let bytes = input.record_bytes.0 as f64 * out.amplification * shares[b];
                    per_record[g][b] += bytes;
                    if t.remote_storage {
                        per_record_tiered[g][b] += bytes;
                    }
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
        let needs = needs(s, p);
        let rate_on = |b: usize, rate: &dyn Fn(&Need) -> f64| -> f64 {
            needs
                .iter()
                .map(|nd| rate(nd) * per_record[nd.group][b])
                .sum()
        };
        let full_speed = (0..n).map(|b| rate_on(b, &|nd| nd.max_rate)).collect();
        let warmup_output = (0..n).map(|b| rate_on(b, &Need::lowest_rate)).collect();
        let rf = s
            .topics
            .iter()
            .map(|tp| tp.replication_factor)
            .max()
            .unwrap_or(1) as f64;
        Ok(Limits {
            stalls: stalls::stalls(s, &traffic, |k| window_of(k).min(warm)),
            needs,
            cluster_room: (ceiling - s.cluster.static_used.0 as f64) * n as f64,
            headroom,
            per_record,
            per_record_tiered,
            full_speed,
            warmup_output,
            warm,
            window,
            frees_per_upload_second: rf * s.cluster.upload_rate.0,
            produced_tiered,
        })
    }

    /// Whether every group can consume, between `from` and `t`, the backlogs appearing from `from`
    /// on and everything produced meanwhile, under the limits.
    fn feasible_from(&self, from: f64, t: f64) -> bool {
        let span = t - from;
        let need: Vec<f64> = self.needs.iter().map(|n| n.between(from, t)).collect();
        let fast_enough = self
            .needs
            .iter()
            .zip(&need)
            .all(|(n, need)| *need <= n.max_rate * span);
        let written = |table: &Vec<Vec<f64>>, b: usize| -> f64 {
            self.needs
                .iter()
                .zip(&need)
                .map(|(n, need)| need * table[n.group][b])
                .sum()
        };
        let fits = (0..self.headroom.len())
            .all(|b| written(&self.per_record, b) <= self.window_cap(b, from, span));
        let written_all: f64 = (0..self.headroom.len())
            .map(|b| written(&self.per_record_tiered, b))
            .sum();
        let upload_seconds: f64 = (0..self.headroom.len())
            .map(|b| span - stalls::stalled_seconds(&self.stalls, b, from, t))
            .sum();
        let freed =
            (self.frees_per_upload_second * upload_seconds - self.produced_tiered * span).max(0.0);
        let uploads_keep_up = written_all <= self.cluster_room + freed;
        fast_enough
            && fits
            && uploads_keep_up
            && self
                .stalls
                .iter()
                .all(|stall| stall.allows(self, &need, from, t))
    }

    /// The most output bytes broker `b` can take in the `span` seconds from `from`: a first piece
    /// of `span mod F`, then whole windows of `F`, each holding at most `min(R_b * length, H_b)`;
    /// from time 0 the first piece's window also holds what the warm-up wrote before 0.
    fn window_cap(&self, b: usize, from: f64, span: f64) -> f64 {
        let (f, h, r) = (self.window, self.headroom[b], self.full_speed[b]);
        if !f.is_finite() {
            return f64::INFINITY;
        }
        let whole = (span / f).floor();
        let first = span - whole * f;
        let before_zero = if from == 0.0 {
            self.warmup_output[b] * (f - first).min(self.warm)
        } else {
            0.0
        };
        whole * (r * f).min(h) + (r * first).min(h - before_zero).max(0.0)
    }
}

/// Share of a topic's bytes on each of `n` brokers (replicas counted: the shares sum to the
/// replication factor), of its partitions whose leader `counts`.
fn shares_on_brokers(
    partitions: &[(usize, Vec<usize>, f64)],
    n: usize,
    counts: impl Fn(usize) -> bool,
) -> Vec<f64> {
    let mut shares = vec![0.0; n];
    for (leader, replicas, weight) in partitions {
        if counts(*leader) {
            for &r in replicas {
                shares[r] += weight;
            }
        }
    }
    shares
}

/// What every group that reads a producer-written input must consume to count as drained.
fn needs(s: &Scenario, p: &Policy) -> Vec<Need> {
    s.groups
        .iter()
        .enumerate()
        .filter_map(|(group, g)| {
            let input = s.topics.iter().find(|t| t.name == g.topic)?;
            let prod = input.producer.as_ref()?;
            let rec = input.record_bytes.0 as f64;
            let threshold =
                p.groups
                    .iter()
                    .find(|pg| pg.name == g.name)
                    .map_or(p.drain.lag_threshold, |pg| p.lag_threshold(pg)) as f64;
            Some(Need {
                group,
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
        .collect()
}

/// What one group must consume to count as drained.
struct Need {
    /// The group's index in the scenario.
    group: usize,
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

    /// The producer's lowest rate, records/s: what the group consumed at least, per second, while
    /// it was caught up in the warm-up.
    fn lowest_rate(&self) -> f64 {
        self.records_per_sec * (1.0 - self.amplitude)
    }
}

#[cfg(test)]
mod tests;
