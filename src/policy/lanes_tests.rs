//! Lanes: the throttle cuts the lowest lane first and gives rate back to the highest first; a
//! `live` group is never cut and pauses only after every lower group; an `exempt` group is never
//! gated by the law.

use super::*;
use crate::observation::{Observation, RecordTime, TimestampKind};
use crate::policy::config::Priority;
use crate::units::{Dur, Timestamp};

const DAY: i64 = 24 * 3_600_000;

fn group(name: &str, priority: Priority, exempt: bool) -> GroupPolicy {
    GroupPolicy {
        max_rate: Some(100_000.0),
        priority,
        exempt,
        ..GroupPolicy::named(name)
    }
}

fn policy() -> Policy {
    Policy {
        groups: vec![
            group("live", Priority::Live, false),
            group("ingest", Priority::Catchup, false),
            group("backfill", Priority::Backfill, false),
            group("side", Priority::Catchup, true),
        ],
        ..Policy::default()
    }
}

/// Ticks one minute apart on three brokers at one level, every group lagging and consuming what
/// its last gate let through (full speed 100,000/s).
struct Lanes {
    policy: Policy,
    state: ControllerState,
    now: Timestamp,
    committed: std::collections::BTreeMap<String, i64>,
}

impl Lanes {
    fn new() -> Lanes {
        Lanes {
            policy: policy(),
            state: ControllerState::default(),
            now: Timestamp(10 * DAY),
            committed: Default::default(),
        }
    }

    fn observation(&self, disk: f64) -> Observation {
        let at = self.now - Dur::from_mins(2);
        let mut obs = Observation::test();
        for b in 1..=3 {
            obs = obs.with_disk(b, disk, at).with_copy_lag(b, 0, at);
        }
        for g in ["live", "ingest", "backfill", "side"] {
            let committed = self.committed.get(g).copied().unwrap_or(1_000_000);
            obs = obs.with_lag(g, committed, 10_000_000, self.now);
        }
        obs
    }

    fn tick_obs(&mut self, obs: &Observation, overrides: &[Override]) -> Decision {
        let (d, st) = decide(obs, &self.policy, &self.state, overrides, self.now);
        self.state = st;
        for (name, g) in &d.groups {
            let rate = match g.gate {
                Gate::Open => 100_000.0,
                Gate::Throttled { rate, .. } => rate.min(100_000.0),
                Gate::Paused => 0.0,
            };
            *self.committed.entry(name.clone()).or_insert(1_000_000) += (rate * 60.0) as i64;
        }
        self.now = self.now + Dur::from_mins(1);
        d
    }

    fn tick(&mut self, disk: f64) -> Decision {
        let obs = self.observation(disk);
        self.tick_obs(&obs, &[])
    }
}

fn pause(id: &str, scope: OverrideScope, now: Timestamp) -> Override {
    Override {
        id: id.into(),
        scope,
        action: OverrideAction::Pause,
        reason: "test".into(),
        actor: "alice".into(),
        created_at: now,
        expires_at: now + Dur::from_hours(1),
    }
}

fn gate<'a>(d: &'a Decision, g: &str) -> &'a Gate {
    &d.groups[g].gate
}

fn throttled(g: &Gate) -> bool {
    matches!(g, Gate::Throttled { .. })
}

#[test]
fn at_the_pause_line_the_lower_lanes_pause_first_and_live_only_after_them() {
    let mut l = Lanes::new();
    l.tick(60.0);
    let d = l.tick(81.0);
    assert_eq!(gate(&d, "ingest"), &Gate::Paused);
    assert_eq!(gate(&d, "backfill"), &Gate::Paused);
    assert_eq!(
        gate(&d, "live"),
        &Gate::Open,
        "{:?}",
        d.groups["live"].reasons
    );
    assert_eq!(gate(&d, "side"), &Gate::Open, "exempt");
    // Every lower group paused since the last tick and a broker still at the pause limit.
    let d = l.tick(81.0);
    assert_eq!(
        gate(&d, "live"),
        &Gate::Paused,
        "{:?}",
        d.groups["live"].reasons
    );
    assert!(
        d.groups["live"]
            .reasons
            .iter()
            .any(|r| r.contains("every lower lane paused")),
        "{:?}",
        d.groups["live"].reasons
    );
    assert_eq!(gate(&d, "side"), &Gate::Open, "exempt");
    // Below the pause limit (the law still holds the lower lanes): live opens again.
    let d = l.tick(78.0);
    assert_eq!(gate(&d, "ingest"), &Gate::Paused);
    assert_eq!(gate(&d, "live"), &Gate::Open);
}

#[test]
fn cuts_go_to_the_lowest_lane_and_rate_comes_back_to_the_highest_first() {
    let mut l = Lanes::new();
    // A disk rising 0.5 %/min: forecast past the throttle start within the horizon.
    let mut level = 55.0;
    let mut first_cut = None;
    for _ in 0..40 {
        let d = l.tick(level);
        if first_cut.is_none() && (throttled(gate(&d, "backfill")) || throttled(gate(&d, "ingest")))
        {
            first_cut = Some(d);
        }
        level += 0.5;
        if level > 74.0 {
            break;
        }
    }
    let d = first_cut.expect("a rising disk cuts");
    assert!(
        throttled(gate(&d, "backfill")),
        "{:?}",
        d.groups["backfill"]
    );
    assert_eq!(
        gate(&d, "ingest"),
        &Gate::Open,
        "the catchup lane waits for backfill's minimum"
    );
    assert_eq!(gate(&d, "live"), &Gate::Open, "live is never cut");
    assert_eq!(gate(&d, "side"), &Gate::Open, "exempt");

    // Backfill at its minimum: the next cut goes to the catchup lane.
    l.state
        .groups
        .get_mut("backfill")
        .expect("tracked")
        .fraction = l.policy.throttle.min_fraction;
    l.state.throttle.last_cut_at = None;
    let d = l.tick(level);
    assert!(throttled(gate(&d, "ingest")), "{:?}", d.groups["ingest"]);
    assert_eq!(gate(&d, "live"), &Gate::Open);

    // Room again: the catchup lane gets its rate back before backfill gets any.
    let backfill = l.state.groups["backfill"].fraction;
    for _ in 0..40 {
        l.tick(50.0);
    }
    let (ingest, after) = (
        l.state.groups["ingest"].fraction,
        l.state.groups["backfill"].fraction,
    );
    assert!(ingest >= 1.0, "catchup lane open first: {ingest}");
    assert!(after > backfill, "then backfill: {backfill} -> {after}");
    let mut l2 = Lanes::new();
    l2.state = l.state.clone();
    l2.state.groups.get_mut("ingest").expect("tracked").fraction = 0.5;
    l2.state
        .groups
        .get_mut("backfill")
        .expect("tracked")
        .fraction = 0.2;
    l2.now = l.now;
    l2.tick(50.0);
    assert_eq!(
        l2.state.groups["backfill"].fraction, 0.2,
        "backfill waits while catchup is below full"
    );
    assert!(l2.state.groups["ingest"].fraction > 0.5);
}

#[test]
fn an_exempt_group_takes_only_overrides_that_name_it() {
    let mut l = Lanes::new();
    let obs = l.observation(60.0);
    let all = pause("o1", OverrideScope::AllGroups, l.now);
    let d = l.tick_obs(&obs, std::slice::from_ref(&all));
    assert_eq!(gate(&d, "ingest"), &Gate::Paused);
    assert_eq!(
        gate(&d, "side"),
        &Gate::Open,
        "an all-groups pause leaves an exempt group alone"
    );
    let named = pause("o2", OverrideScope::Group("side".into()), l.now);
    let d = l.tick_obs(&obs, &[all, named]);
    assert_eq!(
        gate(&d, "side"),
        &Gate::Paused,
        "an override naming it applies"
    );
}

#[test]
fn a_live_group_behind_by_more_than_max_live_lag_raises_an_alert() {
    let mut l = Lanes::new();
    let mut obs = l.observation(60.0);
    let old = RecordTime {
        offset: 1_000_000,
        at: l.now - Dur::from_mins(20),
        kind: TimestampKind::LogAppendTime,
    };
    for g in obs
        .groups
        .iter_mut()
        .filter(|g| g.group == "live" || g.group == "ingest")
    {
        g.partitions[0].next_record = Some(old);
    }
    let d = l.tick_obs(&obs, &[]);
    let alerts: Vec<_> = d
        .alerts
        .iter()
        .filter(|a| a.code == AlertCode::LiveLagHigh)
        .collect();
    assert_eq!(alerts.len(), 1, "{:?}", d.alerts);
    assert!(
        alerts[0].message.contains("live group live"),
        "{}",
        alerts[0].message
    );
}
