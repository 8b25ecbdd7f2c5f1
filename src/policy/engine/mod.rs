//! `decide`: the pure control law. See `docs/policy.md` for the prose version.
//!
//! Order of reasoning in one tick:
//! 1. groups: lag, consume and produce rates, whether the backlog has drained;
//! 2. disks: record new samples, fit a trend per broker, and let the observer estimate each disk now
//!    with an upper bound that knows the gate (`policy::observer`); the law decides on the bound;
//!    then the groups' inputs: time lag, the retention deadline of the oldest unconsumed record, the
//!    rate it needs, losses;
//! 3. throttle: pause on the hard limit, cut the rate in proportion to the forecast excess, give it
//!    back additively when there is room;
//! 4. retention: lower managed topics stepwise on a long-horizon forecast (at most three steps to the
//!    floor), restore in one write once drained;
//! 5. overrides win over 3 and 4; the law never holds a group below its deadline's rate except
//!    at the pause line, where `input.on_conflict` chooses;
//! 6. extension: raise `retention.ms` of allow-listed tiered input topics ahead of their groups'
//!    deadlines, restore it once they are past.
//!
//! Each step has its own module, in that order: [`drain`], [`disks`], [`inputs`], [`throttle`], then [`gates`]
//! (each group's gate, overrides applied), [`retention`] (with [`copy_lag`]: whether lowering is
//! allowed at all, and [`restore`]: whether restoring is safe) and [`extend`].

mod copy_lag;
mod disks;
mod drain;
mod extend;
mod gates;
mod inputs;
mod restore;
mod retention;
mod slow_start;
mod throttle;

pub use copy_lag::copy_lag_blocks;
pub(crate) use gates::winning_override;

use super::config::Policy;
use super::decision::{Alert, AlertCode, Decision, Override, Severity};
use super::state::ControllerState;
use crate::observation::Observation;
use crate::units::Timestamp;

/// Decides what every gate and every managed topic should be, given what the sensors saw.
///
/// Pure and deterministic: no I/O, no clock; the same arguments always give the same result.
/// `state` is the previous tick's returned state (`ControllerState::default()` at first start).
pub fn decide(
    obs: &Observation,
    policy: &Policy,
    state: &ControllerState,
    overrides: &[Override],
    now: Timestamp,
) -> (Decision, ControllerState) {
    let mut st = state.clone();
    let mut tick = Tick {
        policy,
        now,
        overrides,
        journal: obs.retention.is_some(),
        alerts: Vec::new(),
    };
    let drain = drain::assess_groups(&mut st, obs, &mut tick);
    let disks = disks::assess_disks(&mut st, obs, &drain, &mut tick);
    let seen = slow_start::seen_until(&st);
    for track in st.groups.values_mut() {
        slow_start::prune(track, now, seen, policy.forecast.window);
    }
    let inputs = inputs::assess_inputs(&mut st, obs, &mut tick);
    let law = throttle::steer_throttle(&mut st, &disks, &mut tick);
    let deadlines = gates::Deadlines {
        inputs: &inputs,
        disk_secs: disks
            .forecasts
            .iter()
            .filter_map(|b| b.time_to_ceiling_secs)
            .min_by(f64::total_cmp),
        seen,
    };
    let groups = gates::group_decisions(&mut st, &law, &drain, &deadlines, &mut tick);
    let topics = retention::retention_decisions(&mut st, obs, &disks, drain.drained, &mut tick);
    let extensions = extend::extension_decisions(&st, obs, &mut tick);
    st.last_tick = Some(now);
    let mut alerts = tick.alerts;
    alerts.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.code.cmp(&b.code))
    });
    let decision = Decision {
        at: now,
        groups,
        topics,
        brokers: disks.forecasts,
        drained: drain.drained,
        alerts,
        extensions,
        losses: inputs.losses,
    };
    (decision, st)
}

/// What every step of one tick shares: its inputs besides the observation and the state, and the
/// alerts raised so far.
struct Tick<'a> {
    /// The policy in force.
    policy: &'a Policy,
    /// The time of this tick.
    now: Timestamp,
    /// The manual overrides in force.
    overrides: &'a [Override],
    /// Whether the observation carries the retention journal (which then judges drift).
    journal: bool,
    /// Alerts in the order raised; `decide` sorts them once at the end (stably, so this order
    /// survives among alerts of the same severity and code).
    alerts: Vec<Alert>,
}

/// A trend in words.
fn trend(slope: Option<f64>) -> String {
    match slope {
        None => "with no trend yet (too few recent samples)".into(),
        Some(s) if s >= 0.0 => format!("rising {:.1}%/h", s * 3600.0),
        Some(s) => format!("falling {:.1}%/h", -s * 3600.0),
    }
}

/// An alert with `code` (one of `metrics::ALERT_CODES`, which a test checks against every call).
fn alert(severity: Severity, code: AlertCode, message: impl Into<String>) -> Alert {
    Alert {
        severity,
        code,
        message: message.into(),
    }
}
