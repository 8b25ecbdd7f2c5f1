//! The observer alone, then the engine on a small simulated broker: blind, never open before the
//! first fresh reading, and a resume that reads as rising.

use super::*;
use crate::observation::Observation;
use crate::policy::{ControllerState, Decision, Gate, GroupPolicy, Policy, RateUnit, decide};

const MIN: i64 = 60_000;

#[test]
fn the_fit_separates_consuming_from_the_brokers_own_growth() {
    let mut m = BrokerModel::default();
    // g = -0.001 + 0.011·s, sampled at three shares.
    for (i, s) in [0.0, 1.0, 0.5, 0.2, 0.8].into_iter().enumerate() {
        m.learn(Timestamp(i as i64 * MIN), s, -0.001 + 0.011 * s);
    }
    let g = m.growth().unwrap();
    assert!((g.a - 0.011).abs() < 1e-9, "{g:?}");
    assert!((g.b + 0.001).abs() < 1e-9, "{g:?}");
    assert!(g.a_high >= g.a * MARGIN - 1e-12);
    // A repeated or older point is ignored.
    let before = m.clone();
    m.learn(Timestamp(0), 1.0, 1.0);
    assert_eq!(m, before);
}

#[test]
fn a_stale_bound_grows_at_the_worst_the_gate_allows_and_a_cut_does_not_lower_it() {
    let mut m = BrokerModel::default();
    let last = DiskPoint {
        at: Timestamp(0),
        percent: 60.0,
    };
    let blind = 36.0 / 3600.0; // 36 %/h at full speed
    let at = |now: i64, allowed: f64| Inputs {
        last,
        trend: Some(0.0),
        fresh: false,
        window_share: Some(1.0),
        share_now: allowed,
        allowed,
        allowed_since_sample: allowed,
        blind_growth: blind,
        now: Timestamp(now),
    };
    let e = estimate(&mut m, &at(10 * MIN, 1.0));
    assert!((e.upper - 66.0).abs() < 1e-9, "{e:?}"); // 10 minutes at 36 %/h
    // Cut to a tenth: the bound keeps what it accrued and grows ten times slower.
    let e = estimate(&mut m, &at(20 * MIN, 0.1));
    assert!((e.upper - 66.6).abs() < 1e-9, "{e:?}");
    assert!(e.upper >= e.percent);
}

/// One broker whose disk grows `own` %/s plus `full` %/s at full speed (100,000 records/s), read
/// once a minute with a 2-minute delay until `blind_from`, and one catch-up group that consumes
/// exactly what its gate allows.
struct Broker {
    policy: Policy,
    state: ControllerState,
    now: Timestamp,
    disk: f64,
    own: f64,
    full: f64,
    committed: i64,
    lag: i64,
    samples: Vec<(Timestamp, f64)>,
    blind_from: Option<Timestamp>,
    /// Deleted at every retention check (each 5 minutes), %/h.
    purge: f64,
}

impl Broker {
    fn new(disk: f64, own_per_hour: f64, full_per_hour: f64) -> Broker {
        let mut policy = Policy::default();
        policy.groups.push(GroupPolicy {
            name: "ingest".into(),
            unit: RateUnit::Records,
            max_rate: Some(100_000.0),
            min_rate: None,
            lag_threshold: None,
            priority: Default::default(),
            exempt: false,
        });
        Broker {
            policy,
            state: ControllerState::default(),
            now: Timestamp(0),
            disk,
            own: own_per_hour / 3600.0,
            full: full_per_hour / 3600.0,
            committed: 0,
            lag: 1_000_000_000,
            samples: Vec::new(),
            blind_from: None,
            purge: 0.0,
        }
    }

    fn tick(&mut self, gate: &Gate) -> Decision {
        let rate = match gate {
            Gate::Open => 100_000.0,
            Gate::Throttled { rate, .. } => rate.min(100_000.0),
            Gate::Paused => 0.0,
        };
        self.samples.push((self.now, self.disk));
        self.now = self.now + crate::units::Dur::from_mins(1);
        self.disk += 60.0 * (self.own + self.full * rate / 100_000.0);
        if self.now.0 % (5 * MIN) == 0 {
            self.disk -= self.purge / 12.0;
        }
        self.committed += (rate * 60.0) as i64;
        let mut obs = Observation::test().with_lag("ingest", self.committed, self.lag, self.now);
        let visible = self.now - crate::units::Dur::from_mins(2);
        let visible = self.blind_from.map_or(visible, |b| visible.min(b));
        if let Some(&(at, percent)) = self.samples.iter().rev().find(|(at, _)| *at <= visible) {
            obs = obs.with_disk(1, percent, at);
        }
        let (d, st) = decide(&obs, &self.policy, &self.state, &[], self.now);
        self.state = st;
        d
    }
}

#[test]
fn a_step_between_samples_counts_at_half_speed_or_more_and_fades() {
    let mut m = BrokerModel::default();
    let at = |min: i64, percent: f64| DiskPoint {
        at: Timestamp(min * MIN),
        percent,
    };
    // 1 % in a minute at 80 % of full speed: 75 %/h at full speed.
    m.learn_step(at(0, 50.0), at(1, 51.0), 0.8);
    assert!((m.peak_step_per_share * 3600.0 - 75.0).abs() < 1e-9);
    // At a fifth of full speed the producers' own inflow would swamp it: not counted, but the
    // peak fades with time.
    m.learn_step(at(1, 51.0), at(6 * 60 + 1, 60.0), 0.2);
    assert!(
        (m.peak_step_per_share * 3600.0 - 37.5).abs() < 1e-6,
        "{m:?}"
    );
    // An older or repeated step is ignored.
    let before = m.clone();
    m.learn_step(at(0, 50.0), at(1, 99.0), 1.0);
    assert_eq!(m, before);
    // The model's worst growth per share is at least the step's.
    m.learn(Timestamp(400 * MIN), 1.0, 1.0 / 3600.0);
    assert!(m.growth().unwrap().a_high * 3600.0 >= 37.5 - 1e-6);
}

#[test]
fn blind_the_bound_grows_at_the_gross_rate_seen_between_retention_checks() {
    // Full speed writes 60 %/h; retention checks every 5 minutes delete 55 %/h of it, so the
    // trend reads 5 %/h. Blind, the bound must assume the 60 %/h, not the trend, and not the
    // policy's 40 %/h.
    let mut b = Broker::new(50.0, 0.0, 60.0);
    b.purge = 55.0;
    let mut gate = Gate::Open;
    for _ in 0..60 {
        gate = b.tick(&gate).groups["ingest"].gate.clone();
    }
    assert_eq!(gate, Gate::Open);
    b.blind_from = Some(b.now);
    let mut upper_trend = 0.0f64;
    for _ in 0..8 {
        let d = b.tick(&gate);
        upper_trend = upper_trend.max(d.brokers[0].upper_trend_percent_per_hour.unwrap());
    }
    assert!(
        upper_trend >= 59.0,
        "blind bound grows only {upper_trend} %/h"
    );
}

#[test]
fn blind_at_full_speed_pauses_before_the_upper_bound_reaches_the_pause_line() {
    // Consuming at full speed fills 10 %/h while the metric is read; the moment it goes silent a
    // denser output makes it 36 %/h (the policy's worst is 40 %/h).
    let mut b = Broker::new(50.0, -2.0, 10.0);
    let mut gate = Gate::Open;
    for _ in 0..60 {
        gate = b.tick(&gate).groups["ingest"].gate.clone();
    }
    b.blind_from = Some(b.now);
    b.full = 36.0 / 3600.0;
    let mut paused_at = None;
    for _ in 0..240 {
        let d = b.tick(&gate);
        gate = d.groups["ingest"].gate.clone();
        let f = &d.brokers[0];
        let upper = f.upper_percent.unwrap();
        assert!(upper + 1e-9 >= f.estimate_percent.unwrap());
        assert!(d.topics.is_empty(), "no topic is managed here");
        if gate == Gate::Paused && paused_at.is_none() {
            paused_at = Some(b.now);
            assert!(
                upper < b.policy.disk.pause_percent,
                "paused only after the bound reached the pause line: {upper}"
            );
        }
        if paused_at.is_some() {
            assert_eq!(gate, Gate::Paused, "no resume while blind");
        }
        assert!(
            b.disk < b.policy.disk.pause_percent,
            "the real disk crossed the pause line blind: {}",
            b.disk
        );
    }
    assert!(paused_at.is_some(), "never paused while blind");
}

#[test]
fn never_open_before_the_first_fresh_reading() {
    let mut b = Broker::new(50.0, 0.0, 10.0);
    b.blind_from = Some(Timestamp(-1));
    let mut gate = Gate::Open;
    for _ in 0..30 {
        let d = b.tick(&gate);
        gate = d.groups["ingest"].gate.clone();
        assert_ne!(gate, Gate::Open, "{:?}", d.groups["ingest"].reasons);
    }
    // The first fresh reading lets it give rate back.
    b.blind_from = None;
    for _ in 0..30 {
        gate = b.tick(&gate).groups["ingest"].gate.clone();
    }
    assert_eq!(gate, Gate::Open);
}

#[test]
fn a_resume_reads_as_rising_not_as_the_falling_pause_before_it() {
    // Full speed fills 30 %/h, the brokers alone drain 6 %/h.
    let mut b = Broker::new(40.0, -6.0, 30.0);
    let mut gate = Gate::Open;
    for _ in 0..60 {
        gate = b.tick(&gate).groups["ingest"].gate.clone();
    }
    // The consumers stop for 40 minutes: the trend turns to falling, and with nothing consumed in
    // the window the slow start lets them resume at the minimum rate (10,000/s, a tenth).
    let mut d = b.tick(&Gate::Paused);
    for _ in 0..39 {
        d = b.tick(&Gate::Paused);
    }
    gate = d.groups["ingest"].gate.clone();
    assert!(
        matches!(gate, Gate::Throttled { rate, .. } if (rate - 10_000.0).abs() < 1e-6),
        "{gate:?}"
    );
    // As the gate comes back the disk turns to rising while the trend still reads the pause:
    // every tick, the bound grows at least as fast as the disk does at the gate in force.
    let mut rising_over_falling_trend = false;
    for _ in 0..20 {
        let d = b.tick(&gate);
        let share = match gate {
            Gate::Open => 1.0,
            Gate::Throttled { rate, .. } => rate.min(100_000.0) / 100_000.0,
            Gate::Paused => 0.0,
        };
        let f = &d.brokers[0];
        let real = -6.0 + 30.0 * share;
        let (trend, upper) = (
            f.trend_percent_per_hour.unwrap(),
            f.upper_trend_percent_per_hour.unwrap(),
        );
        assert!(
            upper + 1e-9 >= real,
            "bound {upper} %/h under the real {real} %/h: {f:?}"
        );
        rising_over_falling_trend |= trend < 0.0 && real > 0.0;
        gate = d.groups["ingest"].gate.clone();
    }
    assert!(
        rising_over_falling_trend,
        "the disk never rose under a falling trend"
    );
}

#[test]
fn a_fill_faster_than_the_metric_delay_ramps_up_without_crossing_the_ceiling() {
    // Consumers ran at a tenth of full speed; full speed would fill 600 %/h (10 % a minute), and
    // readings arrive two minutes late: opening at once would cross the ceiling before any reading
    // showed the climb. The slow start doubles the rate at most once per reading that has seen it.
    let mut b = Broker::new(50.0, 0.0, 600.0);
    b.purge = 600.0 * 0.1; // what the tenth writes ages out again
    let tenth = Gate::Throttled {
        rate: 10_000.0,
        burst: 10_000.0,
        unit: RateUnit::Records,
    };
    for _ in 0..30 {
        b.tick(&tenth);
    }
    let mut gate = b.tick(&tenth).groups["ingest"].gate.clone();
    let mut highest: f64 = 0.0;
    for _ in 0..120 {
        let d = b.tick(&gate);
        gate = d.groups["ingest"].gate.clone();
        highest = highest.max(b.disk);
        assert!(
            b.disk < b.policy.disk.ceiling_percent,
            "crossed the ceiling at {:.1}% ({:?})",
            b.disk,
            d.groups["ingest"].reasons
        );
    }
    assert!(highest > 55.0, "never ramped up: {highest}");
}
