//! Step 3, the throttle law: pause on the hard limit, cut the rate in proportion to the forecast
//! excess, give it back additively when there is room. See `docs/policy.md`, "The throttle".

use super::disks::{BrokerLevel, DiskView};
use super::{Tick, alert, trend};
use crate::policy::AlertCode;
use crate::policy::config::{DiskPolicy, Policy, Priority, StaleMode};
use crate::policy::decision::Severity;
use crate::policy::state::{ControllerState, ThrottleState};
use crate::units::{Dur, Timestamp};

/// The control law's verdict for every group (before overrides).
pub(super) struct LawView {
    /// The groups are paused.
    pub(super) paused: bool,
    /// Why, in the order reasoned.
    pub(super) reasons: Vec<String>,
    /// Why `live` groups pause too: the law pauses, every lower lane was already paused, and a
    /// broker is at the pause limit all the same. `None` keeps them open.
    pub(super) live_pause: Option<String>,
}

/// The lanes the throttle steers, lowest first: each lane's gated groups below `live` (a `live`
/// group is never cut; an `exempt` one never gated).
fn lanes(p: &Policy) -> Vec<(Priority, Vec<&str>)> {
    let mut lanes = std::collections::BTreeMap::<Priority, Vec<&str>>::new();
    for g in p
        .groups
        .iter()
        .filter(|g| g.gated() && g.priority < Priority::Live)
    {
        lanes.entry(g.priority).or_default().push(&g.name);
    }
    lanes.into_iter().collect()
}

/// Every steered group's track (see [`lanes`]), to set a rate on.
fn steered<'a>(
    st: &'a mut ControllerState,
    p: &Policy,
) -> impl Iterator<Item = &'a mut crate::policy::state::GroupTrack> {
    let names: Vec<String> = lanes(p)
        .into_iter()
        .flat_map(|(_, n)| n.into_iter().map(str::to_string))
        .collect();
    st.groups
        .iter_mut()
        .filter(move |(name, _)| names.contains(name))
        .map(|(_, t)| t)
}

/// Sets `st.throttle` and every group's fraction.
pub(super) fn steer_throttle(
    st: &mut ControllerState,
    disks: &DiskView,
    tick: &mut Tick,
) -> LawView {
    let survey = Survey::of(disks, tick.policy);
    let was_paused = st.throttle.paused;
    let mut reasons = Vec::new();
    if !survey.pause.is_empty() {
        hold_paused(&mut st.throttle, tick.now);
        reasons.extend(survey.pause);
    } else if st.throttle.paused {
        reasons.push(resume_or_stay(st, disks, tick));
    } else if let Some(cut) = survey.cut {
        reasons.push(apply_cut(st, disks, cut, tick));
    } else if survey.room {
        reasons.push(give_back(st, disks, survey.give, tick));
    } else {
        reasons.extend(survey.notes);
    }
    if !disks.all_fresh {
        reasons.push(apply_stale_mode(st, tick));
    }
    if !st.observer.fresh_seen {
        for track in steered(st, tick.policy) {
            track.fraction = track.fraction.min(tick.policy.throttle.min_fraction);
        }
        reasons.push(
            "no fresh disk reading yet: minimum rate until the first one (never open blind)".into(),
        );
    }
    let th = &st.throttle;
    if th.paused {
        tick.alerts.push(alert(
            Severity::Warning,
            AlertCode::GroupsPaused,
            format!(
                "catch-up groups paused since {}",
                th.since.unwrap_or(tick.now)
            ),
        ));
    }
    let live_pause = (th.paused && (was_paused || lanes(tick.policy).is_empty()))
        .then(|| live_pause_reason(disks, tick.policy))
        .flatten();
    LawView {
        paused: th.paused,
        reasons,
        live_pause,
    }
}

/// Why `live` groups pause: a broker (its upper bound, when stale) at the pause limit although
/// every lower lane is paused. Checked on the level, not the forecast: the trend still carries the
/// lower lanes' writes for a while after they pause.
fn live_pause_reason(disks: &DiskView, p: &Policy) -> Option<String> {
    let limit = p.disk.pause_percent;
    let worst = disks
        .fresh
        .iter()
        .chain(&disks.stale)
        .filter(|b| b.percent >= limit)
        .max_by(|a, b| a.percent.total_cmp(&b.percent))?;
    Some(format!(
        "broker {} at {:.1}%, at the pause limit of {limit}% with every lower lane paused: live groups pause too",
        worst.broker, worst.percent
    ))
}

/// What the brokers ask of the throttle, gathered over every broker before any of it is applied.
struct Survey {
    /// Why the groups must pause; empty when none needs to.
    pause: Vec<String>,
    /// The deepest cut any broker asks for.
    cut: Option<Cut>,
    /// Every broker is fresh and none is at or forecast to reach the throttle start: the rate may rise.
    room: bool,
    /// Brokers at or forecast to reach the throttle start but already on course for the target.
    notes: Vec<String>,
    /// How much of the additive increase to give: all of it when the forecast is at or below the
    /// target, tapering to none at the throttle start, so the rate settles instead of overshooting.
    give: f64,
}

/// A rate cut one broker asks for.
struct Cut {
    /// The factor to scale the groups' rate by, below 1.
    factor: f64,
    /// Why, naming the broker.
    why: String,
    /// Asked for by a broker whose reading is stale: no sample will show the cut, so it is not
    /// waited for (the bound it rests on already assumes the worst at the gate in force).
    blind: bool,
}

impl Survey {
    /// Surveys every broker, fresh and stale.
    fn of(disks: &DiskView, p: &Policy) -> Survey {
        let mut survey = Survey {
            pause: Vec::new(),
            cut: None,
            room: disks.all_fresh,
            notes: Vec::new(),
            give: if disks.all_fresh { 1.0f64 } else { 0.0 },
        };
        // Stale brokers take part with their last trend extrapolated: they can cut or pause (safe),
        // never raise (`room` is false unless every broker is fresh).
        for b in disks.fresh.iter().chain(&disks.stale) {
            survey.take(b, p);
        }
        survey
    }

    /// Adds what one broker asks for.
    fn take(&mut self, b: &BrokerLevel, p: &Policy) {
        let d = &p.disk;
        let horizon = p.forecast.throttle_horizon.secs_f64();
        let (broker, level) = (b.broker, b.percent);
        let g = b.slope.unwrap_or(0.0);
        if let Some(why) = pause_reason(b, p) {
            self.pause.push(why);
        }
        let ahead = level + g * horizon;
        let span = d.throttle_start_percent - d.target_percent;
        self.give = self
            .give
            .min(((d.throttle_start_percent - ahead.max(level)) / span).clamp(0.0, 1.0));
        if level >= d.throttle_start_percent || ahead >= d.throttle_start_percent {
            self.room = false;
            let wanted = (d.target_percent - level) / horizon;
            if g > wanted {
                let factor = cut_factor(level, g, wanted, d);
                if self.cut.as_ref().is_none_or(|c| factor < c.factor) {
                    self.cut = Some(Cut {
                        factor,
                        why: cut_reason(b, ahead, wanted, p),
                        blind: b.stale,
                    });
                }
            } else {
                self.notes.push(format!(
                    "broker {broker} at {level:.1}% is on course for the {}% target",
                    d.target_percent
                ));
            }
        }
    }
}

/// Why a broker makes the groups pause: at the pause limit, or forecast to reach the ceiling within
/// the pause lead.
fn pause_reason(b: &BrokerLevel, p: &Policy) -> Option<String> {
    let d = &p.disk;
    let lead = p.forecast.pause_lead.secs_f64();
    let (broker, level) = (b.broker, b.percent);
    let g = b.slope.unwrap_or(0.0);
    if level >= d.pause_percent {
        Some(format!(
            "broker {broker} at {level:.1}%, at or above the pause limit of {}%",
            d.pause_percent
        ))
    } else if b.stale && g > 0.0 && level + g * lead >= d.pause_percent {
        Some(format!(
            "broker {broker}: disk reading stale, upper bound {level:.1}% rising up to {:.1}%/h at this gate: \
             would reach the pause limit of {}% within {}",
            g * 3600.0,
            d.pause_percent,
            p.forecast.pause_lead
        ))
    } else if g > 0.0 && level + g * lead >= d.ceiling_percent {
        Some(format!(
            "broker {broker} at {level:.1}% rising {:.1}%/h: forecast to reach the ceiling of {}% within {}",
            g * 3600.0,
            d.ceiling_percent,
            p.forecast.pause_lead
        ))
    } else {
        None
    }
}

/// The factor a broker at `level` growing `g` %/s asks the rate to be scaled by, when it should grow
/// at most `wanted` %/s.
fn cut_factor(level: f64, g: f64, wanted: f64, d: &DiskPolicy) -> f64 {
    if wanted > 0.0 && g > 0.0 {
        // Writes grow the disk at least as fast as it grows (deletion only subtracts), so
        // scaling the rate by wanted/g brings growth down to at most `wanted`.
        wanted / g
    } else {
        // Above the target the disk must shrink, and how much a cut shrinks it depends on
        // deletion, which the trend cannot show: cut in proportion to the excess, harder
        // the closer the pause limit.
        let excess = (level - d.target_percent) / (d.pause_percent - d.target_percent);
        (1.0 - 0.5 * excess).clamp(0.5, 0.95)
    }
}

/// Why a broker forecast `ahead` % at the throttle horizon asks for a cut.
fn cut_reason(b: &BrokerLevel, ahead: f64, wanted: f64, p: &Policy) -> String {
    let d = &p.disk;
    let (broker, level) = (b.broker, b.percent);
    format!(
        "broker {broker} at {level:.1}% {}, forecast {ahead:.1}% in {} (throttle starts at {}%): \
         growth must fall to {:.1}%/h to settle at the {}% target",
        trend(b.slope),
        p.forecast.throttle_horizon,
        d.throttle_start_percent,
        wanted * 3600.0,
        d.target_percent
    )
}

/// Pauses the groups, keeping the start of a pause already under way.
fn hold_paused(th: &mut ThrottleState, now: Timestamp) {
    if !th.paused {
        th.paused = true;
        th.since = Some(now);
    }
}

/// While paused with no broker asking to pause: resumes at the minimum rate once every broker is
/// fresh, below the throttle start and not rising towards the pause limit; stays paused otherwise.
fn resume_or_stay(st: &mut ControllerState, disks: &DiskView, tick: &Tick) -> String {
    let (p, now) = (tick.policy, tick.now);
    let d = &p.disk;
    let horizon = p.forecast.throttle_horizon.secs_f64();
    let clear = disks.all_fresh
        && disks.fresh.iter().all(|b| {
            b.percent < d.throttle_start_percent
                && b.percent + b.slope.unwrap_or(0.0) * horizon < d.pause_percent
        });
    if clear {
        let th = &mut st.throttle;
        th.paused = false;
        th.since = Some(now);
        th.last_cut_at = Some(now);
        for track in steered(st, p) {
            track.fraction = p.throttle.min_fraction;
        }
        format!(
            "resumed at the minimum rate: every broker is below {}% and not forecast to reach the pause limit",
            d.throttle_start_percent
        )
    } else {
        format!(
            "staying paused until every broker is fresh, below {}% and not rising towards the pause limit",
            d.throttle_start_percent
        )
    }
}

/// Cuts every group's rate, unless the disk samples do not show the last cut yet.
fn apply_cut(st: &mut ControllerState, disks: &DiskView, cut: Cut, tick: &Tick) -> String {
    let (p, now) = (tick.policy, tick.now);
    let Cut { factor, why, blind } = cut;
    let th = &mut st.throttle;
    let seen = match (th.last_cut_at, disks.newest_common_sample) {
        _ if blind => true,
        (None, _) => true,
        (Some(cut_at), Some(sample)) => sample > cut_at + Dur(p.forecast.window.0 / 3),
        (Some(_), None) => false,
    };
    if !seen {
        return format!("holding the rate until a disk sample shows the last cut: {why}");
    }
    th.last_cut_at = Some(now);
    th.since.get_or_insert(now);
    // The lowest lane with a group above its minimum takes the cut; a lane at its minimum passes
    // the next one up (one lane: every steered group, as without lanes).
    let lanes = lanes(p);
    let min = p.throttle.min_fraction;
    let above_min = |n: &&str| st.groups.get(*n).is_none_or(|t| t.fraction > min + 1e-9);
    let Some((lane, names)) = lanes
        .iter()
        .find(|(_, names)| names.iter().any(above_min))
        .or(lanes.last())
    else {
        return format!("no group the throttle may cut (live or exempt only): {why}");
    };
    for name in names {
        if let Some(track) = st.groups.get_mut(*name) {
            let achieved = match (track.consume_rate, track.reference_rate) {
                (Some(c), Some(r)) if r > 0.0 => (c / r).min(1.0),
                _ => 1.0,
            };
            track.fraction = (track.fraction.min(achieved) * factor).max(min);
        }
    }
    let whose = if lanes.len() > 1 {
        format!("the {} lane's rate", lane.as_str())
    } else {
        "rate".to_string()
    };
    format!(
        "{whose} cut to {:.0}% of its current value: {why}",
        factor * 100.0
    )
}

/// Gives every throttled group `give` of the additive increase for the time since the last tick.
fn give_back(st: &mut ControllerState, disks: &DiskView, give: f64, tick: &Tick) -> String {
    let p = tick.policy;
    let d = &p.disk;
    let dt_min = st
        .last_tick
        .map_or(0.0, |t| tick.now.since(t).secs_f64().min(300.0) / 60.0);
    let mut raised = false;
    // The highest lane below full speed gets the rate back; lower lanes wait until it is open.
    for (_, names) in lanes(p).iter().rev() {
        for name in names {
            if let Some(track) = st.groups.get_mut(*name)
                && track.fraction < 1.0
                && give > 0.0
            {
                track.fraction =
                    (track.fraction + p.throttle.increase_per_minute * give * dt_min).min(1.0);
                raised = true;
            }
        }
        if raised {
            break;
        }
    }
    if raised {
        format!(
            "every broker has room below {}% within {}: giving rate back",
            d.throttle_start_percent, p.forecast.throttle_horizon
        )
    } else {
        st.throttle.since = None;
        let worst = disks
            .fresh
            .iter()
            .map(|b| b.percent)
            .fold(f64::NAN, f64::max);
        format!(
            "every broker has room (highest {worst:.1}%, throttle starts at {}%)",
            d.throttle_start_percent
        )
    }
}

/// Applies `throttle.stale_mode` while some disk reading is stale or missing.
fn apply_stale_mode(st: &mut ControllerState, tick: &Tick) -> String {
    let p = tick.policy;
    match p.throttle.stale_mode {
        StaleMode::Hold => "disk data stale: holding the rate, no increase".into(),
        StaleMode::MinRate => {
            for track in steered(st, p) {
                track.fraction = p.throttle.min_fraction;
            }
            "disk data stale: minimum rate (stale_mode = min_rate)".into()
        }
        StaleMode::Pause => {
            hold_paused(&mut st.throttle, tick.now);
            "disk data stale: paused (stale_mode = pause)".into()
        }
    }
}
