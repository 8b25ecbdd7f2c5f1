//! The restore forecast: whether raising a drained backlog's lowered topics back to their originals
//! is safe for the next 24 h, so retention is lowered and restored once per backlog event.
//!
//! For each broker the forecast is the level now (the observer's upper bound) plus the refill, scaled
//! by the daily cycle:
//!
//! - the refill: raising local retention from `L` back to `O` stops deletion of managed data until the
//!   oldest data is older than `O`, so the disk grows by the managed topics' write rate over `O − F`
//!   (at most 24 h of it), where `F ≤ L` is the span the data on disk covers now (less than `L`
//!   while an earlier restore is still refilling). That write rate is the observer's learned growth at full speed (`a`, the
//!   fit that forgets over hours; not the margin's all-time peak) times the highest share of full speed consumed since the drain;
//! - the daily cycle: the disk's data scales with the rate it is written at, so the sum is scaled by
//!   the producers' highest rate over the last 24 h over their rate now (learned from the groups'
//!   produce rates, kept through the backlog). Lacking that history, the highest level seen in the
//!   last 24 h since the lowered window turned over after the drain, plus the refill, stands in.
//!   Levels recorded at a wider window than today's (a topic lowered again within the event) are
//!   forgotten, and recorded again once the narrower window has turned over: a peak measured at the
//!   original window plus the refill to it would count the refill twice and hold the lowered value
//!   for a day.
//!
//! The forecast starts from the level after the drain: while a fresh broker's disk still falls after
//! it (the lowered window shedding what the catch-up wrote at full speed), no step is taken until the
//! oldest managed data on disk was written one forecast window after the drain, at most
//! `MAX_DRAIN_WAIT` after it. Before that the level now counts data a restore would keep for the
//! original window, on top of a refill the learned (net) growth reads low.
//!
//! The restore is safe while every broker's forecast stays under the pause line, the mark above which
//! the disk truly needs lowering again: once a restore has begun, a topic is lowered again within the
//! same backlog event only when a broker is above the pause line or forecast to cross the ceiling
//! (the hysteresis in `retention.rs`).

use super::disks::DiskView;
use crate::observation::{BrokerId, Observation};
use crate::policy::config::Policy;
use crate::policy::forecast;
use crate::policy::state::{ControllerState, DiskPoint, TopicTrack};
use crate::units::{Dur, Timestamp};

/// One remembered level per this much time.
const LEVEL_STEP: Dur = Dur(600_000);
/// A backlog lasting this long is a new backlog event (the hysteresis of the last one ends).
const NEW_EVENT_AFTER: Dur = Dur(12 * 3_600_000);
/// A backlog that arrived at once exceeds what holding could have built by this much production.
const NEW_EVENT_MARGIN: Dur = Dur(3_600_000);
/// The forecast horizon, and how long levels are remembered.
const HORIZON: Dur = Dur(24 * 3_600_000);
/// The restore waits at most this long after the drain for the catch-up's data to age out of a
/// lowered window (a long lowered window would otherwise hold it for most of a day).
const MAX_DRAIN_WAIT: Dur = Dur(6 * 3_600_000);

/// Updates the restore memory: cleared (and every topic's hysteresis reset) while a backlog is being
/// caught up; once drained, the peak share consumed and, after the lowered window has turned over,
/// each broker's level.
pub(super) fn watch(
    st: &mut ControllerState,
    disks: &DiskView,
    obs: &Observation,
    drained: bool,
    now: Timestamp,
    p: &Policy,
) {
    let rates: Vec<f64> = st.groups.values().filter_map(|g| g.produce_rate).collect();
    if !rates.is_empty() {
        remember(&mut st.restore.produce, now, rates.iter().sum());
    }
    if !drained {
        // A backlog ends the last one's hysteresis once it has lasted `NEW_EVENT_AFTER` (and a lead
        // time): a group held back by the throttle for a while after its drain is the same event.
        // So does a backlog that arrived at once: more lag than holding the groups could have
        // built since the drain ended.
        let since = *st.restore.backlog_since.get_or_insert(now);
        if now.since(since) >= p.retention.lead_time.max(NEW_EVENT_AFTER)
            || arrived_at_once(st, obs, p, now.since(since))
        {
            st.restore.levels.clear();
            st.restore.levels_window = None;
            st.restore.share_peak = 0.0;
            for track in st.topics.values_mut() {
                track.restored_in_event = false;
            }
        }
        return;
    }
    st.restore.backlog_since = None;
    if let Some(share) = st.observer.shares.back() {
        st.restore.share_peak = st.restore.share_peak.max(share.measured);
    }
    let window = st
        .topics
        .values()
        .filter_map(|t| t.lowered_ms)
        .max()
        .unwrap_or(0)
        .max(0) as u64;
    // Levels recorded at a wider window than today's (a topic lowered again since) overstate the
    // disk at this one: forget them, and record again once the narrower window has turned over.
    // A topic back at its original counts as the widest window.
    let widest = st
        .topics
        .values()
        .filter(|t| t.original.is_some())
        .map(|t| t.lowered_ms.unwrap_or(i64::MAX))
        .max()
        .unwrap_or(i64::MAX);
    let from = match st.restore.levels_window {
        Some((w, _)) if widest < w => {
            st.restore.levels.clear();
            st.restore.levels_window = Some((widest, now));
            now
        }
        Some((w, since)) => {
            st.restore.levels_window = Some((w.max(widest), since));
            since
        }
        None => {
            st.restore.levels_window = Some((widest, now));
            now
        }
    };
    let turned_over = st
        .drained_since
        .is_some_and(|since| now >= since.max(from) + Dur(window));
    if !turned_over {
        return;
    }
    for b in &disks.fresh {
        remember(
            st.restore.levels.entry(b.broker).or_default(),
            now,
            b.percent,
        );
    }
}

/// Whether the groups' lag exceeds, by more than `NEW_EVENT_MARGIN` of production, their drain
/// thresholds plus everything produced over `held` (the most that holding them since the drain
/// could have built, at the highest produce rate remembered): then it is a new backlog, not the
/// last one held back.
fn arrived_at_once(st: &ControllerState, obs: &Observation, p: &Policy, held: Dur) -> bool {
    let produce_now: f64 = st.groups.values().filter_map(|g| g.produce_rate).sum();
    let produce = st
        .restore
        .produce
        .iter()
        .map(|pt| pt.percent)
        .fold(produce_now, f64::max);
    let (mut lag, mut thresholds) = (0.0, 0.0);
    for g in &p.groups {
        let Some(total) = obs
            .groups
            .iter()
            .find(|o| o.group == g.name)
            .and_then(|o| o.total_lag())
        else {
            return false;
        };
        lag += total as f64;
        thresholds += p.lag_threshold(g) as f64;
    }
    produce > 0.0 && lag > thresholds + produce * (held.secs_f64() + NEW_EVENT_MARGIN.secs_f64())
}

/// Appends `value` at most once per `LEVEL_STEP`, keeping `HORIZON` of points.
fn remember(points: &mut std::collections::VecDeque<DiskPoint>, now: Timestamp, value: f64) {
    if points.back().is_none_or(|l| now >= l.at + LEVEL_STEP) {
        points.push_back(DiskPoint {
            at: now,
            percent: value,
        });
    }
    while points.front().is_some_and(|l| now.since(l.at) > HORIZON) {
        points.pop_front();
    }
}

/// The producers' highest rate over the last 24 h over their rate now (at least 1), when both are
/// known.
fn daily_cycle(st: &ControllerState) -> Option<f64> {
    let now = st
        .groups
        .values()
        .filter_map(|g| g.produce_rate)
        .fold(None, |sum: Option<f64>, r| Some(sum.unwrap_or(0.0) + r))?;
    let peak = st
        .restore
        .produce
        .iter()
        .map(|p| p.percent)
        .fold(now, f64::max);
    (now > 0.0 && st.restore.produce.len() > 1).then(|| (peak / now).max(1.0))
}

/// How much of its window a lowered topic's data on disk spans now: the lowered window, or less while
/// it is still refilling after a restore (`refill_until` marks when the oldest data still on disk
/// ages past the window; a topic lowered again by the hysteresis mid-refill). The forecast thus
/// counts the whole refill still to come, not only the lowered window's.
fn filled_ms(t: &TopicTrack, lowered: i64, p: &Policy, now: Timestamp) -> i64 {
    match oldest_refilling(t, lowered, p.forecast.window, now) {
        Some(oldest) => (now.0 - oldest.0).clamp(0, lowered.max(0)),
        None => lowered,
    }
}

/// While a topic whose window is `current_ms` still refills after a restore: when the oldest
/// managed data on disk was written (`refill_until` is that plus the window plus one forecast
/// `window`, until the trend no longer includes refill samples).
pub(super) fn oldest_refilling(
    t: &TopicTrack,
    current_ms: i64,
    window: Dur,
    now: Timestamp,
) -> Option<Timestamp> {
    t.refill_until
        .filter(|until| *until > now)
        .map(|until| until - window - Dur(current_ms.max(0) as u64))
}

/// When the oldest managed data on disk (the lowered windows, less while refilling) will have been
/// written one forecast window after the drain (so the trend, too, has seen the catch-up's data
/// age out), at most `MAX_DRAIN_WAIT` after the drain: `None` before a drain.
/// Until then the level now counts data written at catch-up speed, which a restore would keep for
/// the original window (and which the learned growth, a net one, does not tell apart from the
/// refill): the forecast starts from the level after it has aged out.
fn written_since_drain_at(st: &ControllerState, p: &Policy, now: Timestamp) -> Option<Timestamp> {
    let since = st.drained_since?;
    let filled = st
        .topics
        .values()
        .filter_map(|t| t.lowered_ms.map(|lowered| filled_ms(t, lowered, p, now)))
        .max()?;
    let oldest = now - Dur(filled.max(0) as u64);
    let aged_out = now + (since + p.forecast.window).since(oldest);
    Some(aged_out.min(since + MAX_DRAIN_WAIT))
}

/// A fresh broker whose disk trend is falling, if any.
fn falling(st: &ControllerState, disks: &DiskView, p: &Policy) -> Option<BrokerId> {
    disks.fresh.iter().map(|b| b.broker).find(|b| {
        st.disks
            .get(b)
            .and_then(|h| forecast::slope(h, p.forecast.window, p.forecast.min_samples))
            .is_some_and(|s| s < 0.0)
    })
}

/// `Ok(why)` when restoring every lowered topic to its original keeps every fresh broker's 24 h
/// forecast under the pause line; `Err(why not)` otherwise.
pub(super) fn restore_safe(
    st: &ControllerState,
    disks: &DiskView,
    p: &Policy,
    now: Timestamp,
) -> Result<String, String> {
    if let Some(until) = written_since_drain_at(st, p, now)
        && now < until
        && let Some(b) = falling(st, disks, p)
    {
        return Err(format!(
            "broker {b}'s disk still falls as the lowered window sheds what the catch-up wrote before the drain: the level it refills from is known at {until} at the latest"
        ));
    }
    let refill_secs = st
        .topics
        .values()
        .filter_map(|t| {
            let lowered = t.lowered_ms?;
            let original = t.original.as_ref()?.effective_ms.unwrap_or(i64::MAX);
            Some(
                original
                    .saturating_sub(filled_ms(t, lowered, p, now))
                    .max(0) as u64,
            )
        })
        .max()
        .unwrap_or(0)
        .min(HORIZON.0) as f64
        / 1000.0;
    let mark = p.disk.pause_percent;
    let cycle = daily_cycle(st);
    let mut worst: Option<(f64, String)> = None;
    for b in &disks.fresh {
        // Without a learned write rate (a source that has given one sample, say) the refill is
        // not forecast: restoring deletes nothing, and the lowering path still guards the disk.
        // Holding the lowered value until a rate is learned would hold it forever where none can be.
        let growth = st.observer.brokers.get(&b.broker).and_then(|m| m.growth());
        let a = growth.map_or(0.0, |g| g.a.max(0.0));
        let peak = st
            .restore
            .levels
            .get(&b.broker)
            .into_iter()
            .flatten()
            .map(|l| l.percent)
            .fold(b.percent, f64::max);
        let refill = a * st.restore.share_peak * refill_secs;
        let scaled = cycle.map_or(0.0, |c| (b.percent + refill) * c);
        let forecast = scaled.max(peak + refill);
        let why = format!(
            "broker {} forecast {forecast:.1}% over 24 h after restoring (now {:.1}%, refill {refill:.1}%{}, producers' daily peak {:.2}x now, highest level since the drain {peak:.1}%)",
            b.broker,
            b.percent,
            if growth.is_none() {
                " (no write rate learned yet)"
            } else {
                ""
            },
            cycle.unwrap_or(1.0)
        );
        if forecast >= mark {
            return Err(format!("{why}: not under the pause line of {mark}%"));
        }
        if worst.as_ref().is_none_or(|(f, _)| forecast > *f) {
            worst = Some((forecast, why));
        }
    }
    worst
        .map(|(_, why)| why)
        .ok_or_else(|| "no fresh disk reading".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restored from 1 h ten minutes ago and lowered again to 2 h now, mid-refill (what
    /// `remember_lowering` records, tested in `retention.rs`): the data on disk spans 1 h 10 m,
    /// not 2 h, so the refill still to come to a 6 h original is 4 h 50 m (it used to be read as
    /// 4 h).
    #[test]
    fn a_topic_lowered_again_mid_refill_counts_the_refill_still_to_come() {
        let p = Policy::default();
        let now = Timestamp(10 * 3_600_000);
        let hour = 3_600_000;
        let oldest = now - Dur::from_mins(70);
        let track = TopicTrack {
            lowered_ms: Some(2 * hour),
            refill_until: Some(oldest + Dur::from_hours(2) + p.forecast.window),
            ..TopicTrack::default()
        };
        assert_eq!(filled_ms(&track, 2 * hour, &p, now), 70 * 60_000);
        // Once refilled, the window is full.
        let later = now + Dur::from_hours(1);
        assert_eq!(filled_ms(&track, 2 * hour, &p, later), 2 * hour);
        let settled = TopicTrack {
            refill_until: None,
            ..track
        };
        assert_eq!(filled_ms(&settled, 2 * hour, &p, now), 2 * hour);
    }

    /// Just after the drain the lowered window still holds what the catch-up wrote at full speed:
    /// while the disk falls as that ages out, the restore waits (until one lowered window and one
    /// forecast window after the drain, at most `MAX_DRAIN_WAIT`), then judges the level the
    /// window refills from. A disk that does not fall has nothing left to shed: no wait.
    #[test]
    fn the_restore_waits_while_the_catch_ups_data_ages_out_of_the_lowered_window() {
        let p = Policy::default();
        let hour = 3_600_000;
        let drained = Timestamp(10 * hour);
        let mut st = ControllerState {
            drained_since: Some(drained),
            ..ControllerState::default()
        };
        st.topics.insert(
            "out".into(),
            TopicTrack {
                original: Some(catchup_proto::topic::OriginalRetention {
                    value: Some("14400000".into()),
                    source: catchup_proto::topic::ConfigSource::Topic,
                    effective_ms: Some(4 * hour),
                }),
                lowered_ms: Some(hour),
                ..TopicTrack::default()
            },
        );
        let low = DiskView {
            forecasts: Vec::new(),
            fresh: vec![super::super::disks::BrokerLevel {
                broker: 1,
                percent: 30.0,
                slope: Some(0.0),
                stale: false,
            }],
            stale: Vec::new(),
            all_fresh: true,
            newest_common_sample: None,
        };
        // Samples every 3 minutes over the last half hour, changing by `per_hour` percent an hour.
        let trend = |st: &mut ControllerState, now: Timestamp, per_hour: f64| {
            let points = (0..10)
                .map(|k| DiskPoint {
                    at: now - Dur::from_mins(30 - 3 * k),
                    percent: 30.0 + per_hour * (3 * k) as f64 / 60.0,
                })
                .collect();
            st.disks.insert(1, points);
        };
        let early = drained + Dur::from_mins(20);
        trend(&mut st, early, -10.0);
        let why = restore_safe(&st, &low, &p, early).expect_err("too early");
        assert!(why.contains("before the drain"), "{why}");
        trend(&mut st, early, 0.5);
        assert!(restore_safe(&st, &low, &p, early).is_ok(), "not falling");
        let aged = drained + Dur(hour as u64) + p.forecast.window;
        trend(&mut st, aged - Dur(60_000), -10.0);
        assert!(restore_safe(&st, &low, &p, aged - Dur(60_000)).is_err());
        trend(&mut st, aged, -10.0);
        assert!(restore_safe(&st, &low, &p, aged).is_ok());
        // A long lowered window holds it at most `MAX_DRAIN_WAIT`.
        let track = st.topics.get_mut("out").unwrap();
        track.lowered_ms = Some(12 * hour);
        track.original.as_mut().unwrap().effective_ms = Some(24 * hour);
        let late = drained + MAX_DRAIN_WAIT;
        trend(&mut st, late - Dur(60_000), -10.0);
        assert!(restore_safe(&st, &low, &p, late - Dur(60_000)).is_err());
        trend(&mut st, late, -10.0);
        assert!(restore_safe(&st, &low, &p, late).is_ok());
    }
}
