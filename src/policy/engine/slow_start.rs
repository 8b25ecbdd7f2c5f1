//! Slow start: a steered group with a backlog never consumes more than twice the rate the disks
//! have been seen under. See `docs/policy.md`, "Slow start".
//!
//! The observer learns how fast consuming fills a disk only from readings taken while the groups
//! consume; a gate that opens from the producers' rate to full speed at once (a backlog appears, a
//! consumer fleet restarts) writes for a metric delay and a trend window before any reading shows
//! it, and a fan-out output can fill a disk in less. So the rate doubles at most once per reading
//! that has seen it: the cap is twice the highest rate measured within the trend window before the
//! newest disk sample of every broker. While the disk metric is silent that sample does not move,
//! and neither does the cap.

use std::collections::VecDeque;

use crate::policy::config::{GroupPolicy, Policy, Priority, RateUnit};
use crate::policy::state::{ControllerState, GroupTrack};
use crate::units::{Dur, Timestamp};

/// The cap is this many times the rate seen.
const GROWTH: f64 = 2.0;
/// At most one history point per span of this many milliseconds (the highest rate within it, at
/// the latest time).
const POINT_MS: i64 = 30_000;
/// At most this many history points per group (a day at one per 30 s).
const MAX_POINTS: usize = 2880;

/// The newest time up to which every known broker's disk has been read, fresh or not.
pub(super) fn seen_until(st: &ControllerState) -> Option<Timestamp> {
    st.disks
        .values()
        .filter_map(|h| h.back().map(|p| p.at))
        .min()
}

/// Adds a consume rate measured over offsets sampled up to `at` (raw, not smoothed: the cap must
/// follow what the group did, not lag it).
pub(super) fn add(track: &mut GroupTrack, at: Timestamp, rate: f64) {
    let history = &mut track.consumed;
    let full = history.len() >= MAX_POINTS;
    match history.back_mut() {
        // Within a point's span, or no room left: the newest point takes the later time and the
        // higher rate (seen only once a reading reaches the later time).
        Some(last)
            if at >= last.0
                && (full || at.0.div_euclid(POINT_MS) == last.0.0.div_euclid(POINT_MS)) =>
        {
            *last = (at, last.1.max(rate));
        }
        _ => history.push_back((at, rate)),
    }
}

/// Forgets what no cap can need any more. A history with no point the disk readings have seen
/// (the controller has just started) has its oldest point count as seen by the newest reading: the
/// consumers ran at that rate before the controller could measure them.
pub(super) fn prune(track: &mut GroupTrack, now: Timestamp, seen: Option<Timestamp>, window: Dur) {
    let history = &mut track.consumed;
    // State saved before the slow start existed: the last smoothed rate stands for what was seen.
    if let (Some(rate), true) = (track.consume_rate, history.is_empty()) {
        history.push_back((now, rate));
    }
    if let Some(seen) = seen
        && history.front().is_some_and(|p| p.0 > seen)
    {
        history[0].0 = seen;
    }
    let oldest = seen.unwrap_or(now).min(now) - window;
    while history.len() > 1 && history.front().is_some_and(|p| p.0 < oldest) {
        history.pop_front();
    }
}

/// The most `g` may consume now, records/s, when the slow start binds it: a steered group counted
/// in records, with a backlog, once a disk has been read and a rate measured.
pub(super) fn cap(
    g: &GroupPolicy,
    track: &GroupTrack,
    lag: Option<i64>,
    seen: Option<Timestamp>,
    p: &Policy,
) -> Option<f64> {
    if !g.gated() || g.priority >= Priority::Live || g.unit != RateUnit::Records {
        return None;
    }
    // Unknown lag (offsets not read this tick) keeps the cap: the backlog has not been seen to go.
    if lag.is_some_and(|l| l <= p.lag_threshold(g)) {
        return None;
    }
    let seen = seen?;
    if track.consumed.is_empty() {
        // Nothing measured yet (the controller has just started): the first rate measured will
        // count as seen; holding the groups to their minimum until then would throttle a running
        // catch-up at every restart.
        return None;
    }
    let rate = highest_seen(&track.consumed, seen, p.forecast.window).unwrap_or(0.0);
    // Never below the minimum rate, nor (with no full speed known to take it from) below the
    // producers' rate: the load the disks carried before the backlog.
    let positive = |r: &f64| *r > 0.0;
    let min = g
        .min_rate
        .filter(positive)
        .or_else(|| {
            g.max_rate
                .or(track.reference_rate)
                .map(|r| r * p.throttle.min_fraction)
                .filter(positive)
        })
        .or(track.produce_rate.filter(positive))
        .unwrap_or(0.0);
    let cap = (GROWTH * rate).max(min);
    // At or above a configured full speed there is nothing left to hold back.
    (cap > 0.0 && g.max_rate.is_none_or(|m| cap < m)).then_some(cap)
}

/// The highest rate measured in `[seen - window, seen]`.
fn highest_seen(history: &VecDeque<(Timestamp, f64)>, seen: Timestamp, window: Dur) -> Option<f64> {
    history
        .iter()
        .filter(|(at, _)| *at <= seen && *at >= seen - window)
        .map(|(_, r)| *r)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn group() -> GroupPolicy {
        GroupPolicy {
            name: "g".into(),
            unit: RateUnit::Records,
            max_rate: Some(1_000_000.0),
            min_rate: Some(1_000.0),
            lag_threshold: None,
            priority: Default::default(),
            exempt: false,
        }
    }

    #[test]
    fn the_cap_is_twice_the_rate_the_newest_reading_has_seen() {
        let p = Policy::default();
        let mut t = GroupTrack::default();
        let window = p.forecast.window;
        // 10,000/s for ten minutes, then 90,000/s from minute 10.
        for m in 0..15 {
            add(
                &mut t,
                Timestamp(m * MIN),
                if m < 10 { 10_000.0 } else { 90_000.0 },
            );
            prune(
                &mut t,
                Timestamp(m * MIN),
                Some(Timestamp((m - 2) * MIN)),
                window,
            );
        }
        let g = group();
        let lag = Some(10_000_000);
        // The readings reach minute 9: only 10,000/s seen.
        assert_eq!(
            cap(&g, &t, lag, Some(Timestamp(9 * MIN)), &p),
            Some(20_000.0)
        );
        // A reading from minute 10 has seen the 90,000/s.
        assert_eq!(
            cap(&g, &t, lag, Some(Timestamp(10 * MIN)), &p),
            Some(180_000.0)
        );
        // Twice what was seen reaches the configured full speed: nothing to hold back.
        let slow = GroupPolicy {
            max_rate: Some(150_000.0),
            ..group()
        };
        assert_eq!(cap(&slow, &t, lag, Some(Timestamp(10 * MIN)), &p), None);
        // Offsets not read this tick: the backlog has not been seen to go, the cap stays.
        assert_eq!(
            cap(&g, &t, None, Some(Timestamp(9 * MIN)), &p),
            Some(20_000.0)
        );
        // No backlog, no disk read yet, a live or exempt group: no cap.
        assert_eq!(cap(&g, &t, Some(10), Some(Timestamp(9 * MIN)), &p), None);
        assert_eq!(cap(&g, &t, lag, None, &p), None);
        let live = GroupPolicy {
            priority: Priority::Live,
            ..group()
        };
        assert_eq!(cap(&live, &t, lag, Some(Timestamp(9 * MIN)), &p), None);
        let exempt = GroupPolicy {
            exempt: true,
            ..group()
        };
        assert_eq!(cap(&exempt, &t, lag, Some(Timestamp(9 * MIN)), &p), None);
    }

    #[test]
    fn nothing_seen_in_the_window_caps_at_the_minimum_rate() {
        let p = Policy::default();
        let mut t = GroupTrack::default();
        add(&mut t, Timestamp(0), 0.0);
        prune(&mut t, Timestamp(0), Some(Timestamp(0)), p.forecast.window);
        let cap = cap(&group(), &t, Some(10_000_000), Some(Timestamp(0)), &p);
        assert_eq!(cap, Some(1_000.0));
        // Without a min_rate, the minimum share of the full speed.
        let g = GroupPolicy {
            min_rate: None,
            ..group()
        };
        let cap = super::cap(&g, &t, Some(10_000_000), Some(Timestamp(0)), &p);
        assert_eq!(cap, Some(1_000_000.0 * p.throttle.min_fraction));
    }

    #[test]
    fn the_first_rate_counts_as_seen_and_a_silent_metric_freezes_the_cap() {
        let p = Policy::default();
        let window = p.forecast.window;
        let mut t = GroupTrack::default();
        add(&mut t, Timestamp(10 * MIN), 50_000.0);
        prune(
            &mut t,
            Timestamp(10 * MIN),
            Some(Timestamp(8 * MIN)),
            window,
        );
        let g = group();
        let lag = Some(10_000_000);
        assert_eq!(
            cap(&g, &t, lag, Some(Timestamp(8 * MIN)), &p),
            Some(100_000.0)
        );
        // The metric goes silent at minute 8: three hours at a higher rate are never seen, and the
        // history stays bounded.
        for m in 11..3000 {
            add(&mut t, Timestamp(m * MIN), 60_000.0);
            prune(&mut t, Timestamp(m * MIN), Some(Timestamp(8 * MIN)), window);
        }
        assert_eq!(
            cap(&g, &t, lag, Some(Timestamp(8 * MIN)), &p),
            Some(100_000.0)
        );
        assert!(t.consumed.len() <= MAX_POINTS);
    }
}
