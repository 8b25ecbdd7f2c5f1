//! Step 4, gates: each catch-up group's gate from the control law's verdict and its rates, then the
//! manual overrides, which win.

use std::collections::BTreeMap;

use super::drain::DrainView;
use super::inputs::{GroupInput, InputView};
use super::slow_start;
use super::throttle::LawView;
use super::{Tick, alert};
use crate::policy::AlertCode;
use crate::policy::config::{GroupPolicy, OnConflict, Policy, Priority};
use crate::policy::decision::{
    Gate, GroupDecision, Origin, Override, OverrideAction, OverrideScope, Severity,
};
use crate::policy::state::{ControllerState, GroupTrack};
use crate::units::Timestamp;

/// A gate and why.
struct Verdict {
    /// The gate.
    gate: Gate,
    /// Why, in the order reasoned.
    reasons: Vec<String>,
}

/// What the gates need besides the law: each group's input deadline, the disk's own deadline
/// (the soonest time to the ceiling) for a conflict's page, and how far the disks have been read.
pub(super) struct Deadlines<'a> {
    /// Per group.
    pub(super) inputs: &'a InputView,
    /// Seconds until the first broker reaches the ceiling at its trend, when rising.
    pub(super) disk_secs: Option<f64>,
    /// The newest time every broker's disk has been read up to (`slow_start::seen_until`).
    pub(super) seen: Option<Timestamp>,
}

/// Every group's decision: the control law's, or an override's (alerting when an override keeps a
/// group running against the law). The law never holds a group below the rate its input deadline
/// needs, except at the pause line, where the policy's `on_conflict` chooses.
pub(super) fn group_decisions(
    st: &mut ControllerState,
    law: &LawView,
    drain: &DrainView,
    deadlines: &Deadlines,
    tick: &mut Tick,
) -> BTreeMap<String, GroupDecision> {
    let (p, now) = (tick.policy, tick.now);
    let mut out = BTreeMap::new();
    let none = GroupInput::default();
    for g in &p.groups {
        let track = st.groups.entry(g.name.clone()).or_default();
        let lag = drain.lag.get(&g.name).copied().flatten();
        let reference = g.max_rate.or(track.reference_rate);
        let input = deadlines.inputs.groups.get(&g.name).unwrap_or(&none);
        let floor = Floor::of(g, track, input.floor);
        let mut held = None;
        let mut verdict = if g.exempt {
            Verdict {
                gate: Gate::Open,
                reasons: vec!["exempt: never gated by the control law".into()],
            }
        } else if g.priority == Priority::Live {
            live_gate(g, law, input, tick)
        } else if law.paused {
            at_pause_line(g, law, &floor, input, deadlines.disk_secs, tick)
        } else {
            let fraction = track.fraction.max(floor.fraction.unwrap_or(0.0));
            let mut v = auto_gate(g, fraction, reference, p, &law.reasons);
            if let Some(why) = floor.raises(track.fraction) {
                v.reasons.push(why);
            }
            // The input deadline's floor wins over the slow start, as over the rest of the law.
            let cap = slow_start::cap(g, track, lag, deadlines.seen, p)
                .map(|c| c.max(floor.rate.unwrap_or(0.0)));
            held = slow_down(&mut v, cap, p);
            v
        };
        let mut origin = Origin::Auto;
        if let Some(manual) = overridden(g, law, tick) {
            verdict = manual;
            origin = Origin::Override;
            held = None;
        }
        track.held_at = held;
        track.was_open = verdict.gate == Gate::Open;
        out.insert(
            g.name.clone(),
            GroupDecision {
                gate: verdict.gate,
                reasons: verdict.reasons,
                expires_at: now + p.throttle.decision_ttl,
                origin,
                lag,
                consume_rate: track.consume_rate,
                produce_rate: track.produce_rate,
                drain_eta_secs: drain_eta(lag, track),
                time_lag_secs: input.time_lag_secs,
                input: input.deadline.clone(),
            },
        );
    }
    out
}

/// Holds a gate that would let a group through faster than `cap` (records/s) at `cap`: the slow
/// start (`slow_start`). Returns the rate it held the gate at, if it did.
fn slow_down(v: &mut Verdict, cap: Option<f64>, p: &Policy) -> Option<f64> {
    let cap = cap?;
    let unit = match &v.gate {
        Gate::Open => crate::policy::RateUnit::Records,
        Gate::Throttled { rate, unit, .. } if *rate > cap => *unit,
        _ => return None,
    };
    v.gate = Gate::Throttled {
        rate: cap,
        burst: burst(cap, p),
        unit,
    };
    v.reasons.push(format!(
        "slow start: at most {cap:.0} records/s (twice the highest rate the newest disk readings have seen, never below the minimum)"
    ));
    Some(cap)
}

/// The rate a group's input deadline needs, as a share of its full speed.
struct Floor {
    /// Records/s, when the deadline binds.
    rate: Option<f64>,
    /// The same as a fraction of the group's full speed, when that is known.
    fraction: Option<f64>,
}

impl Floor {
    fn of(g: &GroupPolicy, track: &GroupTrack, rate: Option<f64>) -> Floor {
        let rate = rate.filter(|r| *r > 0.0);
        let full = match g.unit {
            crate::policy::RateUnit::Records => g.max_rate.or(track.reference_rate),
            crate::policy::RateUnit::Bytes => track.reference_rate,
        };
        let fraction = rate.zip(full).map(|(r, f)| (r / f).min(1.0));
        Floor { rate, fraction }
    }

    /// Why the gate is above the law's share, when the floor raised it.
    fn raises(&self, law: f64) -> Option<String> {
        let (rate, fraction) = (self.rate?, self.fraction?);
        (fraction > law).then(|| {
            format!(
                "held at {:.0}% of full speed, not the law's {:.0}%: its input deadline needs {rate:.0} records/s",
                fraction * 100.0,
                law * 100.0
            )
        })
    }
}

/// The gate of a `live` group: open, paused only when the law pauses with every lower lane already
/// paused and a broker still at the pause limit. Its time lag is watched against
/// `throttle.max_live_lag`.
fn live_gate(g: &GroupPolicy, law: &LawView, input: &GroupInput, tick: &mut Tick) -> Verdict {
    let max = tick.policy.throttle.max_live_lag;
    if let Some(lag) = input.time_lag_secs.filter(|s| *s > max.secs_f64()) {
        tick.alerts.push(alert(
            Severity::Warning,
            AlertCode::LiveLagHigh,
            format!(
                "live group {}: its oldest unconsumed record is {} old, more than max_live_lag ({max})",
                g.name,
                crate::units::Dur((lag * 1000.0) as u64)
            ),
        ));
    }
    match &law.live_pause {
        Some(why) => Verdict {
            gate: Gate::Paused,
            reasons: [law.reasons.clone(), vec![why.clone()]].concat(),
        },
        None => Verdict {
            gate: Gate::Open,
            reasons: vec![if law.paused {
                "live lane: the lower lanes pause first; live pauses only if a broker stays at the pause limit".into()
            } else {
                "live lane: never cut by the throttle".into()
            }],
        },
    }
}

/// The gate of a group at the pause line: paused, unless its input deadline binds and the policy
/// protects the input, in which case it runs at the rate the deadline needs. A binding deadline
/// pages at once with both deadlines, whichever side wins.
fn at_pause_line(
    g: &GroupPolicy,
    law: &LawView,
    floor: &Floor,
    input: &GroupInput,
    disk_secs: Option<f64>,
    tick: &mut Tick,
) -> Verdict {
    let paused = Verdict {
        gate: Gate::Paused,
        reasons: law.reasons.clone(),
    };
    let Some(rate) = floor.rate else {
        return paused;
    };
    let p = tick.policy;
    let deadline = input.deadline.as_ref();
    let disk = disk_secs.map_or("has no rising trend but is at the pause line".into(), |s| {
        format!(
            "reaches the ceiling in {}",
            crate::units::Dur((s * 1000.0) as u64)
        )
    });
    let input_eta = deadline
        .and_then(|d| d.headroom_secs)
        .map_or("an unknown time".into(), |s| {
            crate::units::Dur((s.max(0.0) * 1000.0) as u64).to_string()
        });
    let (verdict, choice) = match p.input.on_conflict {
        OnConflict::ProtectDisk => (paused, "protect_disk: paused"),
        OnConflict::ProtectInput => {
            let gate = match g.unit {
                crate::policy::RateUnit::Records => Some(rate),
                crate::policy::RateUnit::Bytes => {
                    floor.fraction.zip(g.max_rate).map(|(f, m)| f * m)
                }
            };
            match gate {
                Some(r) => {
                    let mut reasons = law.reasons.clone();
                    reasons.push(format!(
                        "kept at {rate:.0} records/s, the rate its input deadline needs (on_conflict = protect_input)"
                    ));
                    (
                        Verdict {
                            gate: Gate::Throttled {
                                rate: r,
                                burst: burst(r, p),
                                unit: g.unit,
                            },
                            reasons,
                        },
                        "protect_input: kept running at the deadline's rate",
                    )
                }
                None => (
                    paused,
                    "protect_input, but its full speed in bytes is unknown: paused",
                ),
            }
        }
    };
    tick.alerts.push(alert(
        Severity::Critical,
        AlertCode::DeadlineConflict,
        format!(
            "group {}: the disk needs it paused (a broker {disk}) but its input deadline needs {rate:.0} records/s (its oldest unconsumed record{} may be deleted in {input_eta}); on_conflict = {choice}",
            g.name,
            deadline
                .and_then(|d| d.topic.as_ref().zip(d.partition))
                .map_or(String::new(), |(t, p)| format!(" on {t}:{p}")),
        ),
    ));
    verdict
}

/// The gate a manual override sets for group `g`, if one applies (one that only holds retention sets
/// no gate).
fn overridden(g: &GroupPolicy, law: &LawView, tick: &mut Tick) -> Option<Verdict> {
    let p = tick.policy;
    let o = winning_override(tick.overrides, g, tick.now)?;
    let manual = match &o.action {
        OverrideAction::Pause => Gate::Paused,
        OverrideAction::Resume => Gate::Open,
        OverrideAction::FixedRate { rate } => Gate::Throttled {
            rate: *rate,
            burst: burst(*rate, p),
            unit: g.unit,
        },
        OverrideAction::HoldRetention => return None,
    };
    if law.paused && manual != Gate::Paused {
        tick.alerts.push(alert(
            Severity::Warning,
            AlertCode::OverrideConflict,
            format!(
                "group {}: {} keeps it running although the control law would pause it",
                g.name,
                o.describe()
            ),
        ));
    }
    let mut reasons = vec![o.describe()];
    reasons.extend(
        law.reasons
            .iter()
            .map(|r| format!("control law would say: {r}")),
    );
    Some(Verdict {
        gate: manual,
        reasons,
    })
}

/// Seconds until the group's lag is gone at the current consume and produce rates; `None` while it is
/// not shrinking or not measured.
fn drain_eta(lag: Option<i64>, track: &GroupTrack) -> Option<f64> {
    match (lag, track.consume_rate, track.produce_rate) {
        (Some(l), Some(c), Some(pr)) if c > pr => Some(l as f64 / (c - pr)),
        _ => None,
    }
}

/// The gate of a group the control law does not pause: open at full speed, else its share of the
/// reference rate (never below the minimum), `min_rate` or paused while no reference is known.
fn auto_gate(
    g: &GroupPolicy,
    fraction: f64,
    reference: Option<f64>,
    p: &Policy,
    reasons: &[String],
) -> Verdict {
    if fraction >= 1.0 {
        return Verdict {
            gate: Gate::Open,
            reasons: reasons.to_vec(),
        };
    }
    let Some(reference) = reference else {
        return match g.min_rate {
            Some(min) => Verdict {
                gate: Gate::Throttled {
                    rate: min,
                    burst: burst(min, p),
                    unit: g.unit,
                },
                reasons: [
                    reasons,
                    &["no full-speed rate measured yet: using min_rate".to_string()],
                ]
                .concat(),
            },
            None => Verdict {
                gate: Gate::Paused,
                reasons: [
                    reasons,
                    &[
                        "no full-speed rate measured yet and no min_rate configured: paused"
                            .to_string(),
                    ],
                ]
                .concat(),
            },
        };
    };
    let min = g.min_rate.unwrap_or(reference * p.throttle.min_fraction);
    let rate = (reference * fraction).max(min);
    let mut why = reasons.to_vec();
    why.push(format!(
        "{:.0}% of full speed ({reference:.0}/s), minimum {min:.0}/s",
        fraction * 100.0
    ));
    Verdict {
        gate: Gate::Throttled {
            rate,
            burst: burst(rate, p),
            unit: g.unit,
        },
        reasons: why,
    }
}

/// The burst of a gate at `rate`: `throttle.burst` seconds of it, at least one unit.
fn burst(rate: f64, p: &Policy) -> f64 {
    (rate * p.throttle.burst.secs_f64()).max(1.0)
}

/// The override that applies to group `g`: a group-specific one before an all-groups one, newest
/// first; an exempt group takes only one that names it.
pub(crate) fn winning_override<'a>(
    overrides: &'a [Override],
    g: &GroupPolicy,
    now: Timestamp,
) -> Option<&'a Override> {
    overrides
        .iter()
        .filter(|o| o.covers_group(&g.name, now) && o.action != OverrideAction::HoldRetention)
        .filter(|o| !g.exempt || matches!(o.scope, OverrideScope::Group(_)))
        .max_by_key(|o| (matches!(o.scope, OverrideScope::Group(_)), o.created_at))
}
