//! Step 2, groups: each catch-up group's lag, consume and produce rates, and whether the backlog has
//! drained.

use std::collections::BTreeMap;

use super::{Tick, alert, slow_start};
use crate::observation::{GroupOffsets, Observation};
use crate::policy::AlertCode;
use crate::policy::decision::Severity;
use crate::policy::observer;
use crate::policy::state::{ControllerState, GroupTrack};

/// Drain status of the catch-up groups.
pub(super) struct DrainView {
    /// Total lag per group; `None` when its offsets could not be read.
    pub(super) lag: BTreeMap<String, Option<i64>>,
    /// Every group has been below its drain threshold, on fresh offsets, for the dwell time.
    pub(super) drained: bool,
}

/// Updates every group's rates from its offsets and decides whether the backlog has drained
/// (alerting on missing and stale offsets).
pub(super) fn assess_groups(
    st: &mut ControllerState,
    obs: &Observation,
    tick: &mut Tick,
) -> DrainView {
    let (p, now) = (tick.policy, tick.now);
    let mut lag = BTreeMap::new();
    let mut all_below = true;
    let mut grown = 1.0f64;
    for g in &p.groups {
        let track = st.groups.entry(g.name.clone()).or_default();
        let Some(offsets) = obs.groups.iter().find(|o| o.group == g.name) else {
            tick.alerts.push(alert(
                Severity::Warning,
                AlertCode::LagMissing,
                format!("group {}: no offsets read", g.name),
            ));
            all_below = false;
            lag.insert(g.name.clone(), None);
            continue;
        };
        let before = g.max_rate.or(track.reference_rate);
        measure_rates(track, offsets);
        if let (Some(r0), Some(r1)) = (before, g.max_rate.or(track.reference_rate))
            && r0 > 0.0
        {
            grown = grown.max(r1 / r0);
        }
        let fresh = now.since(offsets.sampled_at) <= p.staleness.max_lag_age;
        let total = offsets.total_lag();
        if !fresh {
            tick.alerts.push(alert(
                Severity::Warning,
                AlertCode::LagStale,
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
    if grown > 1.0 {
        // Shares are measured against the groups' full speed: a faster one measured makes every
        // share seen so far smaller and the growth per share larger (the largest factor over the
        // groups, the safe side when several grew).
        observer::rescale(&mut st.observer, grown);
        st.restore.share_peak /= grown;
    }
    DrainView { lag, drained }
}

/// Updates a group's smoothed consume and produce rates (and its reference rate, if the gate was
/// open) from the offsets moved since the previous sample.
fn measure_rates(track: &mut GroupTrack, offsets: &GroupOffsets) {
    let (committed, log_end) = (offsets.committed_sum(), offsets.log_end_sum());
    match track.last {
        Some((at, c0, e0)) if offsets.sampled_at > at => {
            let dt = offsets.sampled_at.since(at).secs_f64();
            let (dc, de) = (committed - c0, log_end - e0);
            if dc >= 0 && de >= 0 {
                let consume = dc as f64 / dt;
                let produce = de as f64 / dt;
                track.consume_rate = Some(smooth(track.consume_rate, consume));
                slow_start::add(track, offsets.sampled_at, consume);
                track.produce_rate = Some(smooth(track.produce_rate, produce));
                // Open, the group consumes at its full speed; faster than the fastest it has been
                // measured at (held above it by the slow start), it has shown a faster one; held
                // by the slow start with none measured yet, what it consumes is the best known.
                let held = track.held_at.is_some() && track.reference_rate.is_none();
                if track.was_open || held || track.reference_rate.is_some_and(|r| consume > r) {
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
}

/// An even blend of the previous smoothed value and a new sample (the sample alone at first).
fn smooth(previous: Option<f64>, sample: f64) -> f64 {
    previous.map_or(sample, |p| 0.5 * p + 0.5 * sample)
}
