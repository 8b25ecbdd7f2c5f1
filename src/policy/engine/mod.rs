//! `decide`: the pure control law. See `docs/policy.md` for the prose version.
//!
//! Order of reasoning in one tick:
//! 1. disks: record new samples, fit a trend per broker, extrapolate to now;
//! 2. groups: lag, consume and produce rates, whether the backlog has drained;
//! 3. throttle: pause on the hard limit, cut the rate in proportion to the forecast excess, give it
//!    back additively when there is room;
//! 4. retention: lower managed topics stepwise on a long-horizon forecast, restore once drained;
//! 5. overrides win over 3 and 4.

use std::collections::BTreeMap;

use super::config::{GroupPolicy, Policy, StaleMode};
use super::decision::{
    Alert, AlertCode, BrokerForecast, Decision, Gate, GroupDecision, Origin, Override,
    OverrideAction, RetentionTarget, Severity, TopicDecision,
};
use super::forecast;
use super::state::{ControllerState, DiskPoint, OriginalRetention, TopicTrack};
use crate::sensors::{BrokerId, Observation, TopicConfigs};
use crate::units::{Dur, Timestamp};

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
    let mut alerts = Vec::new();
    let disks = assess_disks(&mut st, obs, policy, now, &mut alerts);
    let drain = assess_groups(&mut st, obs, policy, now, &mut alerts);
    let law = steer_throttle(&mut st, &disks, policy, now, &mut alerts);
    let groups = group_decisions(&mut st, &law, &drain, policy, overrides, now, &mut alerts);
    let topics = retention_decisions(
        &mut st,
        obs,
        &disks,
        drain.drained,
        policy,
        overrides,
        now,
        &mut alerts,
    );
    st.last_tick = Some(now);
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
    };
    (decision, st)
}

/// What the engine makes of the disk readings.
struct DiskView {
    forecasts: Vec<BrokerForecast>,
    /// Fresh brokers: id, estimated percent now, trend in percent per second.
    fresh: Vec<(BrokerId, f64, Option<f64>)>,
    /// Stale brokers: id, last sample extrapolated along its last trend to now, that trend.
    stale: Vec<(BrokerId, f64, Option<f64>)>,
    /// Every known broker has a fresh reading (and at least one is known).
    all_fresh: bool,
    /// The oldest "newest sample" among fresh brokers: a cut made before it has been seen in the data.
    newest_common_sample: Option<Timestamp>,
}

fn assess_disks(
    st: &mut ControllerState,
    obs: &Observation,
    p: &Policy,
    now: Timestamp,
    alerts: &mut Vec<Alert>,
) -> DiskView {
    let keep = Dur(p.forecast.window.0.max(p.staleness.max_disk_age.0) * 2);
    for d in &obs.disks {
        let history = st.disks.entry(d.broker).or_default();
        forecast::record(
            history,
            DiskPoint {
                at: d.sampled_at,
                percent: d.used_percent(),
            },
            keep,
        );
    }
    let mut view = DiskView {
        forecasts: Vec::new(),
        fresh: Vec::new(),
        stale: Vec::new(),
        all_fresh: !st.disks.is_empty(),
        newest_common_sample: None,
    };
    if st.disks.is_empty() {
        alerts.push(alert(
            Severity::Critical,
            "disk_no_data",
            "no disk reading from any broker yet: no config change, throttle held",
        ));
    }
    for (&broker, history) in &st.disks {
        let Some(last) = history.back() else { continue };
        let age = now.since(last.at);
        let stale = age > p.staleness.max_disk_age;
        let slope = forecast::slope(history, p.forecast.window, p.forecast.min_samples);
        let now_percent = forecast::extrapolate(last.percent, last.at, slope, now);
        let ttc = slope
            .filter(|s| *s > 0.0)
            .map(|s| ((p.disk.ceiling_percent - now_percent) / s).max(0.0));
        view.forecasts.push(BrokerForecast {
            broker,
            sampled_percent: last.percent,
            age_secs: age.secs_f64(),
            stale,
            trend_percent_per_hour: slope.map(|s| s * 3600.0),
            now_percent,
            time_to_ceiling_secs: ttc,
        });
        if stale {
            view.all_fresh = false;
            view.stale.push((broker, now_percent, slope));
            alerts.push(alert(
                Severity::Warning,
                "disk_stale",
                format!("broker {broker}: newest disk reading is {age} old (max {}): no config change on it", p.staleness.max_disk_age),
            ));
            continue;
        }
        if last.percent >= p.disk.ceiling_percent {
            alerts.push(alert(
                Severity::Critical,
                "disk_above_ceiling",
                format!(
                    "broker {broker} at {:.1}%, above the ceiling of {}%",
                    last.percent, p.disk.ceiling_percent
                ),
            ));
        }
        view.fresh.push((broker, now_percent, slope));
        view.newest_common_sample = Some(
            view.newest_common_sample
                .map_or(last.at, |t: Timestamp| t.min(last.at)),
        );
    }
    view
}

/// Drain status of the catch-up groups.
struct DrainView {
    lag: BTreeMap<String, Option<i64>>,
    drained: bool,
}

fn assess_groups(
    st: &mut ControllerState,
    obs: &Observation,
    p: &Policy,
    now: Timestamp,
    alerts: &mut Vec<Alert>,
) -> DrainView {
    let mut lag = BTreeMap::new();
    let mut all_below = true;
    for g in &p.groups {
        let track = st.groups.entry(g.name.clone()).or_default();
        let Some(offsets) = obs.groups.iter().find(|o| o.group == g.name) else {
            alerts.push(alert(
                Severity::Warning,
                "lag_missing",
                format!("group {}: no offsets read", g.name),
            ));
            all_below = false;
            lag.insert(g.name.clone(), None);
            continue;
        };
        let (committed, log_end) = (offsets.committed_sum(), offsets.log_end_sum());
        match track.last {
            Some((at, c0, e0)) if offsets.sampled_at > at => {
                let dt = offsets.sampled_at.since(at).secs_f64();
                let (dc, de) = (committed - c0, log_end - e0);
                if dc >= 0 && de >= 0 {
                    let consume = dc as f64 / dt;
                    let produce = de as f64 / dt;
                    track.consume_rate = Some(smooth(track.consume_rate, consume));
                    track.produce_rate = Some(smooth(track.produce_rate, produce));
                    if track.was_open {
                        track.reference_rate =
                            Some(track.reference_rate.map_or(consume, |r| r.max(consume)));
                    }
                } else {
                    // Offsets went backwards (partitions recreated or reassigned): start over.
                    track.consume_rate = None;
                    track.produce_rate = None;
                }
                track.last = Some((offsets.sampled_at, committed, log_end));
            }
            None => track.last = Some((offsets.sampled_at, committed, log_end)),
            Some(_) => {}
        }
        let fresh = now.since(offsets.sampled_at) <= p.staleness.max_lag_age;
        let total = offsets.total_lag();
        if !fresh {
            alerts.push(alert(
                Severity::Warning,
                "lag_stale",
                format!(
                    "group {}: offsets are {} old: not counted as drained",
                    g.name,
                    now.since(offsets.sampled_at)
                ),
            ));
        }
        all_below &= fresh && total.is_some_and(|l| l < p.lag_threshold(g));
        lag.insert(g.name.clone(), total);
    }
    if all_below {
        st.drained_since.get_or_insert(now);
    } else {
        st.drained_since = None;
    }
    let drained = st
        .drained_since
        .is_some_and(|since| now.since(since) >= p.drain.dwell);
    DrainView { lag, drained }
}

fn smooth(previous: Option<f64>, sample: f64) -> f64 {
    previous.map_or(sample, |p| 0.5 * p + 0.5 * sample)
}

/// The control law's verdict for every group (before overrides).
struct LawView {
    paused: bool,
    reasons: Vec<String>,
}

/// Sets `st.throttle` and every group's fraction. See `docs/policy.md`, "The throttle".
fn steer_throttle(
    st: &mut ControllerState,
    disks: &DiskView,
    p: &Policy,
    now: Timestamp,
    alerts: &mut Vec<Alert>,
) -> LawView {
    let d = &p.disk;
    let horizon = p.forecast.throttle_horizon.secs_f64();
    let lead = p.forecast.pause_lead.secs_f64();
    let mut pause = Vec::new();
    let mut cut: Option<(f64, String)> = None;
    let mut room = disks.all_fresh;
    let mut notes = Vec::new();
    // How much of the additive increase to give: all of it when the forecast is at or below the target,
    // tapering to none at the throttle start, so the rate settles instead of overshooting.
    let mut give = if disks.all_fresh { 1.0f64 } else { 0.0 };
    // Stale brokers take part with their last trend extrapolated: they can cut or pause (safe), never
    // raise (`room` is false unless every broker is fresh).
    for &(broker, level, slope) in disks.fresh.iter().chain(&disks.stale) {
        let g = slope.unwrap_or(0.0);
        if level >= d.pause_percent {
            pause.push(format!(
                "broker {broker} at {level:.1}%, at or above the pause limit of {}%",
                d.pause_percent
            ));
        } else if g > 0.0 && level + g * lead >= d.ceiling_percent {
            pause.push(format!(
                "broker {broker} at {level:.1}% rising {:.1}%/h: forecast to reach the ceiling of {}% within {}",
                g * 3600.0,
                d.ceiling_percent,
                p.forecast.pause_lead
            ));
        }
        let ahead = level + g * horizon;
        let span = d.throttle_start_percent - d.target_percent;
        give = give.min(((d.throttle_start_percent - ahead.max(level)) / span).clamp(0.0, 1.0));
        if level >= d.throttle_start_percent || ahead >= d.throttle_start_percent {
            room = false;
            let wanted = (d.target_percent - level) / horizon;
            if g > wanted {
                let factor = if wanted > 0.0 && g > 0.0 {
                    // Writes grow the disk at least as fast as it grows (deletion only subtracts), so
                    // scaling the rate by wanted/g brings growth down to at most `wanted`.
                    wanted / g
                } else {
                    // Above the target the disk must shrink, and how much a cut shrinks it depends on
                    // deletion, which the trend cannot show: cut in proportion to the excess, harder
                    // the closer the pause limit.
                    let excess = (level - d.target_percent) / (d.pause_percent - d.target_percent);
                    (1.0 - 0.5 * excess).clamp(0.5, 0.95)
                };
                if cut.as_ref().is_none_or(|(f, _)| factor < *f) {
                    cut = Some((
                        factor,
                        format!(
                            "broker {broker} at {level:.1}% {}, forecast {ahead:.1}% in {} (throttle starts at {}%): \
                             growth must fall to {:.1}%/h to settle at the {}% target",
                            trend(slope),
                            p.forecast.throttle_horizon,
                            d.throttle_start_percent,
                            wanted * 3600.0,
                            d.target_percent
                        ),
                    ));
                }
            } else {
                notes.push(format!(
                    "broker {broker} at {level:.1}% is on course for the {}% target",
                    d.target_percent
                ));
            }
        }
    }

    let stale = !disks.all_fresh;
    let dt_min = st
        .last_tick
        .map_or(0.0, |t| now.since(t).secs_f64().min(300.0) / 60.0);
    let th = &mut st.throttle;
    let mut reasons = Vec::new();
    if !pause.is_empty() {
        if !th.paused {
            th.paused = true;
            th.since = Some(now);
        }
        reasons.extend(pause);
    } else if th.paused {
        let clear = disks.all_fresh
            && disks.fresh.iter().all(|&(_, level, slope)| {
                level < d.throttle_start_percent
                    && level + slope.unwrap_or(0.0) * horizon < d.pause_percent
            });
        if clear {
            th.paused = false;
            th.since = Some(now);
            th.last_cut_at = Some(now);
            for track in st.groups.values_mut() {
                track.fraction = p.throttle.min_fraction;
            }
            reasons.push(format!(
                "resumed at the minimum rate: every broker is below {}% and not forecast to reach the pause limit",
                d.throttle_start_percent
            ));
        } else {
            reasons.push(format!(
                "staying paused until every broker is fresh, below {}% and not rising towards the pause limit",
                d.throttle_start_percent
            ));
        }
    } else if let Some((factor, why)) = cut {
        let seen = match (th.last_cut_at, disks.newest_common_sample) {
            (None, _) => true,
            (Some(cut_at), Some(sample)) => sample > cut_at + Dur(p.forecast.window.0 / 3),
            (Some(_), None) => false,
        };
        if seen {
            th.last_cut_at = Some(now);
            th.since.get_or_insert(now);
            for track in st.groups.values_mut() {
                let achieved = match (track.consume_rate, track.reference_rate) {
                    (Some(c), Some(r)) if r > 0.0 => (c / r).min(1.0),
                    _ => 1.0,
                };
                track.fraction =
                    (track.fraction.min(achieved) * factor).max(p.throttle.min_fraction);
            }
            reasons.push(format!(
                "rate cut to {:.0}% of its current value: {why}",
                factor * 100.0
            ));
        } else {
            reasons.push(format!(
                "holding the rate until a disk sample shows the last cut: {why}"
            ));
        }
    } else if room {
        let mut raised = false;
        for track in st.groups.values_mut() {
            if track.fraction < 1.0 && give > 0.0 {
                track.fraction =
                    (track.fraction + p.throttle.increase_per_minute * give * dt_min).min(1.0);
                raised = true;
            }
        }
        if raised {
            reasons.push(format!(
                "every broker has room below {}% within {}: giving rate back",
                d.throttle_start_percent, p.forecast.throttle_horizon
            ));
        } else {
            th.since = None;
            let worst = disks.fresh.iter().map(|f| f.1).fold(f64::NAN, f64::max);
            reasons.push(format!(
                "every broker has room (highest {worst:.1}%, throttle starts at {}%)",
                d.throttle_start_percent
            ));
        }
    } else {
        reasons.extend(notes);
    }

    if stale {
        match p.throttle.stale_mode {
            StaleMode::Hold => {
                reasons.push("disk data stale: holding the rate, no increase".into())
            }
            StaleMode::MinRate => {
                for track in st.groups.values_mut() {
                    track.fraction = p.throttle.min_fraction;
                }
                reasons.push("disk data stale: minimum rate (stale_mode = min_rate)".into());
            }
            StaleMode::Pause => {
                if !th.paused {
                    th.paused = true;
                    th.since = Some(now);
                }
                reasons.push("disk data stale: paused (stale_mode = pause)".into());
            }
        }
    }
    if th.paused {
        alerts.push(alert(
            Severity::Warning,
            "groups_paused",
            format!("catch-up groups paused since {}", th.since.unwrap_or(now)),
        ));
    }
    LawView {
        paused: th.paused,
        reasons,
    }
}

#[allow(clippy::too_many_arguments)]
fn group_decisions(
    st: &mut ControllerState,
    law: &LawView,
    drain: &DrainView,
    p: &Policy,
    overrides: &[Override],
    now: Timestamp,
    alerts: &mut Vec<Alert>,
) -> BTreeMap<String, GroupDecision> {
    let mut out = BTreeMap::new();
    for g in &p.groups {
        let track = st.groups.entry(g.name.clone()).or_default();
        let reference = g.max_rate.or(track.reference_rate);
        let (mut gate, mut reasons) = if law.paused {
            (Gate::Paused, law.reasons.clone())
        } else {
            auto_gate(g, track.fraction, reference, p, &law.reasons)
        };
        let mut origin = Origin::Auto;
        if let Some(o) = winning_override(overrides, &g.name, now) {
            let overridden = match &o.action {
                OverrideAction::Pause => Some(Gate::Paused),
                OverrideAction::Resume => Some(Gate::Open),
                OverrideAction::FixedRate { rate } => Some(Gate::Throttled {
                    rate: *rate,
                    burst: burst(*rate, p),
                    unit: g.unit,
                }),
                OverrideAction::HoldRetention => None,
            };
            if let Some(manual) = overridden {
                if law.paused && manual != Gate::Paused {
                    alerts.push(alert(
                        Severity::Warning,
                        "override_conflict",
                        format!(
                            "group {}: {} keeps it running although the control law would pause it",
                            g.name,
                            o.describe()
                        ),
                    ));
                }
                reasons = vec![o.describe()];
                reasons.extend(
                    law.reasons
                        .iter()
                        .map(|r| format!("control law would say: {r}")),
                );
                gate = manual;
                origin = Origin::Override;
            }
        }
        track.was_open = gate == Gate::Open;
        let lag = drain.lag.get(&g.name).copied().flatten();
        let eta = match (lag, track.consume_rate, track.produce_rate) {
            (Some(l), Some(c), Some(pr)) if c > pr => Some(l as f64 / (c - pr)),
            _ => None,
        };
        out.insert(
            g.name.clone(),
            GroupDecision {
                gate,
                reasons,
                expires_at: now + p.throttle.decision_ttl,
                origin,
                lag,
                consume_rate: track.consume_rate,
                produce_rate: track.produce_rate,
                drain_eta_secs: eta,
            },
        );
    }
    out
}

fn auto_gate(
    g: &GroupPolicy,
    fraction: f64,
    reference: Option<f64>,
    p: &Policy,
    reasons: &[String],
) -> (Gate, Vec<String>) {
    if fraction >= 1.0 {
        return (Gate::Open, reasons.to_vec());
    }
    let Some(reference) = reference else {
        return match g.min_rate {
            Some(min) => (
                Gate::Throttled {
                    rate: min,
                    burst: burst(min, p),
                    unit: g.unit,
                },
                [
                    reasons,
                    &["no full-speed rate measured yet: using min_rate".to_string()],
                ]
                .concat(),
            ),
            None => (
                Gate::Paused,
                [
                    reasons,
                    &[
                        "no full-speed rate measured yet and no min_rate configured: paused"
                            .to_string(),
                    ],
                ]
                .concat(),
            ),
        };
    };
    let min = g.min_rate.unwrap_or(reference * p.throttle.min_fraction);
    let rate = (reference * fraction).max(min);
    let mut why = reasons.to_vec();
    why.push(format!(
        "{:.0}% of full speed ({reference:.0}/s), minimum {min:.0}/s",
        fraction * 100.0
    ));
    (
        Gate::Throttled {
            rate,
            burst: burst(rate, p),
            unit: g.unit,
        },
        why,
    )
}

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
        .max_by_key(|o| {
            (
                matches!(o.scope, super::decision::OverrideScope::Group(_)),
                o.created_at,
            )
        })
}

/// Why retention may not be lowered right now, if it may not.
fn lowering_blocked(
    obs: &Observation,
    disks: &DiskView,
    p: &Policy,
    now: Timestamp,
) -> Option<String> {
    if !disks.all_fresh {
        return Some("disk data is stale or missing: no config change".into());
    }
    for f in &disks.forecasts {
        let Some(c) = obs.copy_lag.iter().find(|c| c.broker == f.broker) else {
            return Some(format!(
                "no tiered-storage copy-lag reading for broker {}: cannot prove lowering frees space",
                f.broker
            ));
        };
        if now.since(c.sampled_at) > p.staleness.max_copy_lag_age {
            return Some(format!(
                "copy-lag reading of broker {} is {} old",
                c.broker,
                now.since(c.sampled_at)
            ));
        }
        if c.bytes > p.retention.max_copy_lag.0 {
            return Some(format!(
                "broker {} has {} not yet copied to remote storage (limit {}): lowering would free nothing",
                c.broker,
                crate::units::human_bytes(c.bytes as f64),
                p.retention.max_copy_lag
            ));
        }
    }
    None
}

/// Whether some broker is forecast to cross the throttle start within the retention lead time (or,
/// while a window refills after a restore step, within what is left of the refill).
fn retention_pressure(disks: &DiskView, p: &Policy, refill_left: Dur) -> Option<String> {
    let lead = if refill_left.0 > 0 {
        refill_left.min(p.retention.lead_time)
    } else {
        p.retention.lead_time
    };
    let horizon = lead.secs_f64();
    disks.fresh.iter().find_map(|&(broker, level, slope)| {
        let g = slope.unwrap_or(0.0);
        if level >= p.disk.throttle_start_percent {
            Some(format!(
                "broker {broker} at {level:.1}%, above the throttle start of {}%",
                p.disk.throttle_start_percent
            ))
        } else if g > 0.0 && level + g * horizon >= p.disk.throttle_start_percent {
            Some(format!(
                "broker {broker} at {level:.1}% rising {:.1}%/h: forecast to cross {}% within {}",
                g * 3600.0,
                p.disk.throttle_start_percent,
                lead
            ))
        } else {
            None
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn retention_decisions(
    st: &mut ControllerState,
    obs: &Observation,
    disks: &DiskView,
    drained: bool,
    p: &Policy,
    overrides: &[Override],
    now: Timestamp,
    alerts: &mut Vec<Alert>,
) -> BTreeMap<String, TopicDecision> {
    let blocked = lowering_blocked(obs, disks, p, now);
    // Raising local retention from R to R' stops deletion of managed data until the oldest data left
    // is older than R': the disk grows by the managed topics' write rate until then, then levels off. A straight-line forecast over the
    // whole lead time would read that as a surge and lower again, so while refilling the forecast looks
    // no further than the refill's end.
    let refill_left = st
        .topics
        .values()
        .filter_map(|t| t.refill_until)
        .map(|until| until.since(now))
        .max()
        .unwrap_or_default();
    let pressure = retention_pressure(disks, p, refill_left);
    let healthy = disks.all_fresh
        && disks
            .fresh
            .iter()
            .all(|&(_, level, _)| level < p.disk.restore_below_percent);
    let mut out = BTreeMap::new();
    let mut at_floor = Vec::new();
    for topic in &p.retention.topics {
        let name = &topic.name;
        let track = st.topics.entry(name.clone()).or_default();
        let configs = obs.topics.iter().find(|t| &t.topic == name);
        let current_ms = configs.and_then(TopicConfigs::effective_local_retention_ms);
        let hold_target =
            track
                .lowered_ms
                .map_or(RetentionTarget::Original, |ms| RetentionTarget::Lowered {
                    ms,
                });
        let original_ms =
            track
                .original
                .as_ref()
                .and_then(|o| o.effective_ms)
                .or(if track.original.is_none() {
                    current_ms
                } else {
                    None
                });
        let mut decision = TopicDecision {
            target: hold_target.clone(),
            current_ms,
            original_ms,
            reasons: Vec::new(),
        };

        if let Some(why) = &track.hands_off {
            decision.target = RetentionTarget::HandsOff;
            decision.reasons.push(why.clone());
            out.insert(name.clone(), decision);
            continue;
        }
        let Some(configs) =
            configs.filter(|c| now.since(c.sampled_at) <= p.staleness.max_config_age)
        else {
            decision
                .reasons
                .push("topic configs missing or stale: no change".into());
            alerts.push(alert(
                Severity::Warning,
                "topic_config_stale",
                format!("topic {name}: configs missing or stale"),
            ));
            out.insert(name.clone(), decision);
            continue;
        };
        if let Some(why) = detect_drift(track, configs) {
            alerts.push(alert(
                Severity::Critical,
                "drift_detected",
                format!("topic {name}: {why}"),
            ));
            track.hands_off = Some(why.clone());
            decision.target = RetentionTarget::HandsOff;
            decision.reasons.push(why);
            out.insert(name.clone(), decision);
            continue;
        }
        if !configs.remote_storage_enabled() {
            let why = "remote.storage.enable is not true: lowering local retention would delete data that exists nowhere else; refusing";
            alerts.push(alert(
                Severity::Warning,
                "topic_not_tiered",
                format!("topic {name}: {why}"),
            ));
            decision.target = if track.lowered_ms.is_some() {
                hold_target
            } else {
                RetentionTarget::HandsOff
            };
            decision.reasons.push(why.into());
            out.insert(name.clone(), decision);
            continue;
        }
        if let Some(o) = overrides
            .iter()
            .filter(|o| o.covers_topic(name, now))
            .max_by_key(|o| o.created_at)
        {
            decision.reasons.push(o.describe());
            out.insert(name.clone(), decision);
            continue;
        }

        let floor = p.floor_ms(name);
        let total = configs.retention_ms();
        let since_step = track.last_step_at.map(|t| now.since(t));
        match (&pressure, &blocked, current_ms) {
            (Some(why), None, Some(current)) => {
                let mut next = ((current as f64) * p.retention.step_factor).floor() as i64;
                next = next.max(floor);
                if let Some(total) = total {
                    next = next.min(total);
                }
                if since_step.is_some_and(|s| s < p.retention.step_interval) {
                    decision.reasons.push(format!(
                        "{why}; waiting for the last step to take effect ({} of {})",
                        since_step.unwrap_or_default(),
                        p.retention.step_interval
                    ));
                } else if next >= current {
                    let note = if original_ms.is_some_and(|o| o <= floor)
                        && track.original.is_none()
                    {
                        format!(
                            "original local retention {} is at or below the floor {}: never lowered",
                            Dur(current as u64),
                            Dur(floor as u64)
                        )
                    } else {
                        format!("at the floor of {}", Dur(floor as u64))
                    };
                    decision.reasons.push(format!("{why}; {note}"));
                    at_floor.push(name.clone());
                } else {
                    if track.original.is_none() {
                        let raw = configs.configs.get("local.retention.ms");
                        track.original = Some(OriginalRetention {
                            value: raw.and_then(|c| c.value.clone()),
                            source: raw
                                .map_or(crate::sensors::ConfigSource::Inherited, |c| c.source),
                            effective_ms: Some(current),
                        });
                    }
                    if track.refill_until.is_some_and(|until| until > now) {
                        track.restore_setbacks = (track.restore_setbacks + 1).min(4);
                    }
                    track.previous_ms = track.lowered_ms;
                    track.lowered_ms = Some(next);
                    track.last_step_at = Some(now);
                    track.refill_until = None;
                    decision.target = RetentionTarget::Lowered { ms: next };
                    decision.original_ms = track.original.as_ref().and_then(|o| o.effective_ms);
                    decision.reasons.push(format!(
                        "{why}: lowering local.retention.ms from {} to {} (floor {})",
                        Dur(current as u64),
                        Dur(next as u64),
                        Dur(floor as u64)
                    ));
                }
            }
            (Some(why), Some(block), _) => {
                decision.reasons.push(format!("{why}, but {block}"));
                alerts.push(alert(
                    Severity::Warning,
                    "retention_blocked",
                    format!("topic {name}: {why}, but {block}"),
                ));
            }
            (Some(why), None, None) => {
                decision.reasons.push(format!("{why}, but the topic's local retention is unlimited: set a finite local.retention.ms"));
            }
            (None, _, _) if track.lowered_ms.is_some() => {
                restore_step(
                    track,
                    &mut decision,
                    drained,
                    healthy,
                    disks.all_fresh,
                    since_step,
                    p,
                    now,
                );
            }
            (None, _, _) => decision
                .reasons
                .push("no disk pressure: original setting".into()),
        }
        if track.lowered_ms.is_none()
            && track
                .original
                .as_ref()
                .is_some_and(|o| o.effective_ms == current_ms)
        {
            // Back at the original and confirmed by the cluster: nothing of ours is left on the topic.
            track.original = None;
            track.previous_ms = None;
        }
        if track.original.is_none() && track.refill_until.is_some_and(|until| until <= now) {
            // Fully restored and the window has refilled without trouble: forget the setbacks.
            track.refill_until = None;
            track.restore_setbacks = 0;
        }
        out.insert(name.clone(), decision);
    }
    if !at_floor.is_empty() && at_floor.len() == p.retention.topics.len() {
        alerts.push(alert(
            Severity::Warning,
            "retention_at_floor",
            format!(
                "every managed topic is at its floor ({}): only the throttle is left",
                at_floor.join(", ")
            ),
        ));
    }
    out
}

/// Raises a lowered topic one step back towards its original when the backlog has drained and the disk is healthy.
#[allow(clippy::too_many_arguments)]
fn restore_step(
    track: &mut TopicTrack,
    decision: &mut TopicDecision,
    drained: bool,
    healthy: bool,
    fresh: bool,
    since_step: Option<Dur>,
    p: &Policy,
    now: Timestamp,
) {
    let Some(lowered) = track.lowered_ms else {
        return;
    };
    let restore_wait = Dur(p.retention.restore_step_interval.0 << track.restore_setbacks.min(4));
    if !fresh {
        decision
            .reasons
            .push("holding the lowered value: disk data is stale, no config change".into());
    } else if !drained {
        decision
            .reasons
            .push("holding the lowered value until the backlog has drained".into());
    } else if !healthy {
        decision.reasons.push(format!(
            "drained; holding until every broker is below {}%",
            p.disk.restore_below_percent
        ));
    } else if since_step.is_some_and(|s| s < restore_wait) {
        decision.reasons.push(format!(
            "drained and healthy; next restore step {} after the last step",
            restore_wait
        ));
    } else {
        let original = track.original.as_ref().and_then(|o| o.effective_ms);
        let next = (lowered as f64 / p.retention.step_factor).ceil() as i64;
        // The oldest managed data still on disk: nothing is deleted until it is older than the new
        // window, so the window refills until then (plus one forecast window, until the trend no
        // longer includes refill samples).
        let oldest = match track.refill_until {
            Some(until) if until > now => until - p.forecast.window - Dur(lowered.max(0) as u64),
            _ => now - Dur(lowered.max(0) as u64),
        };
        track.previous_ms = Some(lowered);
        track.last_step_at = Some(now);
        if original.is_none_or(|o| next >= o) {
            track.lowered_ms = None;
            decision.target = RetentionTarget::Original;
            decision
                .reasons
                .push("drained and healthy: restoring the original setting".into());
            track.refill_until =
                original.map(|o| oldest + Dur(o.max(0) as u64) + p.forecast.window);
        } else {
            track.lowered_ms = Some(next);
            decision.target = RetentionTarget::Lowered { ms: next };
            decision.reasons.push(format!(
                "drained and healthy: raising local.retention.ms to {}",
                Dur(next as u64)
            ));
            track.refill_until = Some(oldest + Dur(next.max(0) as u64) + p.forecast.window);
        }
    }
}

/// Someone else changed a topic the engine lowered: the observed value is neither the original nor a
/// value the engine asked for (the last or the one before, which the actuator may still be applying).
fn detect_drift(track: &TopicTrack, configs: &TopicConfigs) -> Option<String> {
    let original = track.original.as_ref()?;
    let observed = configs.effective_local_retention_ms();
    let ours = [track.lowered_ms, track.previous_ms, original.effective_ms];
    if ours.contains(&observed) {
        return None;
    }
    let show = |v: Option<i64>| {
        v.map_or("unlimited".to_string(), |ms| {
            Dur(ms.max(0) as u64).to_string()
        })
    };
    Some(format!(
        "local.retention.ms is {} but the controller set {}: changed by someone else; not touching this topic again \
         (original was {}; restore it by hand or with `catchup retention restore`)",
        show(observed),
        show(track.lowered_ms.or(original.effective_ms)),
        show(original.effective_ms)
    ))
}

/// A trend in words.
fn trend(slope: Option<f64>) -> String {
    match slope {
        None => "with no trend yet (too few recent samples)".into(),
        Some(s) if s >= 0.0 => format!("rising {:.1}%/h", s * 3600.0),
        Some(s) => format!("falling {:.1}%/h", -s * 3600.0),
    }
}

fn alert(severity: Severity, code: &str, message: impl Into<String>) -> Alert {
    Alert {
        severity,
        code: AlertCode::ALL
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or(AlertCode::RetentionBlocked),
        message: message.into(),
    }
}
