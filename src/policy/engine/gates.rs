//! Step 4, gates: each catch-up group's gate from the control law's verdict and its rates, then the
//! manual overrides, which win.

use std::collections::BTreeMap;

use super::drain::DrainView;
use super::throttle::LawView;
use super::{Tick, alert};
use crate::policy::AlertCode;
use crate::policy::config::{GroupPolicy, Policy};
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

/// Every group's decision: the control law's, or an override's (alerting when an override keeps a
/// group running against the law).
pub(super) fn group_decisions(
    st: &mut ControllerState,
    law: &LawView,
    drain: &DrainView,
    tick: &mut Tick,
) -> BTreeMap<String, GroupDecision> {
    let (p, now) = (tick.policy, tick.now);
    let mut out = BTreeMap::new();
    for g in &p.groups {
        let track = st.groups.entry(g.name.clone()).or_default();
        let reference = g.max_rate.or(track.reference_rate);
        let mut verdict = if law.paused {
            Verdict {
                gate: Gate::Paused,
                reasons: law.reasons.clone(),
            }
        } else {
            auto_gate(g, track.fraction, reference, p, &law.reasons)
        };
        let mut origin = Origin::Auto;
        if let Some(manual) = overridden(g, law, tick) {
            verdict = manual;
            origin = Origin::Override;
        }
        track.was_open = verdict.gate == Gate::Open;
        let lag = drain.lag.get(&g.name).copied().flatten();
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
            },
        );
    }
    out
}

/// The gate a manual override sets for group `g`, if one applies (one that only holds retention sets
/// no gate).
fn overridden(g: &GroupPolicy, law: &LawView, tick: &mut Tick) -> Option<Verdict> {
    let p = tick.policy;
    let o = winning_override(tick.overrides, &g.name, tick.now)?;
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

/// The override that applies to `group`: a group-specific one before an all-groups one, newest first.
fn winning_override<'a>(
    overrides: &'a [Override],
    group: &str,
    now: Timestamp,
) -> Option<&'a Override> {
    overrides
        .iter()
        .filter(|o| o.covers_group(group, now) && o.action != OverrideAction::HoldRetention)
        .max_by_key(|o| (matches!(o.scope, OverrideScope::Group(_)), o.created_at))
}
