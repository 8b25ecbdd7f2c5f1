//! Step 2, disks: record each broker's new sample, fit a trend, let the observer estimate each disk
//! now with its upper bound (`policy::observer`), and sort the brokers into fresh and stale.

use super::drain::DrainView;
use super::{Tick, alert};
use crate::observation::{BrokerId, Observation};
use crate::policy::AlertCode;
use crate::policy::decision::{BrokerForecast, Severity};
use crate::policy::forecast;
use crate::policy::observer::{self, SharePoint};
use crate::policy::state::{ControllerState, DiskPoint};
use crate::units::{Dur, Timestamp};

/// What the engine makes of the disk readings.
pub(super) struct DiskView {
    /// One forecast per known broker, as reported in the decision.
    pub(super) forecasts: Vec<BrokerForecast>,
    /// Brokers with a fresh reading.
    pub(super) fresh: Vec<BrokerLevel>,
    /// Brokers whose newest reading is stale: their last sample extrapolated along its last trend.
    pub(super) stale: Vec<BrokerLevel>,
    /// Every known broker has a fresh reading (and at least one is known).
    pub(super) all_fresh: bool,
    /// The oldest "newest sample" among fresh brokers: a cut made before it has been seen in the data.
    pub(super) newest_common_sample: Option<Timestamp>,
}

/// One broker's disk as the steps after this one see it.
#[derive(Clone, Copy, Debug)]
pub(super) struct BrokerLevel {
    /// The broker.
    pub(super) broker: BrokerId,
    /// Used percent now the control law decides on: the observer's upper bound.
    pub(super) percent: f64,
    /// Growth of that bound in percent per second at the gate in force; `None` while there are too
    /// few recent samples to fit a trend and nothing forces a worse assumption (fresh brokers only).
    pub(super) slope: Option<f64>,
    /// The reading is stale: the bound grows at the worst growth the gate allows.
    pub(super) stale: bool,
}

/// Records the new disk samples and assesses every known broker (alerting on missing, stale and
/// over-ceiling disks).
pub(super) fn assess_disks(
    st: &mut ControllerState,
    obs: &Observation,
    drain: &DrainView,
    tick: &mut Tick,
) -> DiskView {
    let (p, now) = (tick.policy, tick.now);
    record_samples(st, obs, tick);
    let keep = Dur(p.forecast.window.0.max(p.staleness.max_disk_age.0) * 2);
    let share = share_now(st, drain, tick);
    observer::record_share(&mut st.observer, share, keep);
    let mut view = DiskView {
        forecasts: Vec::new(),
        fresh: Vec::new(),
        stale: Vec::new(),
        all_fresh: !st.disks.is_empty(),
        newest_common_sample: None,
    };
    if st.disks.is_empty() {
        tick.alerts.push(alert(
            Severity::Critical,
            AlertCode::DiskNoData,
            "no disk reading from any broker yet: no config change, catch-up groups at their minimum rate",
        ));
    }
    let blind_growth = p.forecast.blind_growth_percent_per_hour / 3600.0;
    for (&broker, history) in &st.disks {
        let Some(last) = history.back().copied() else {
            continue;
        };
        let age = now.since(last.at);
        let stale = age > p.staleness.max_disk_age;
        st.observer.fresh_seen |= !stale;
        let trend = forecast::slope(history, p.forecast.window, p.forecast.min_samples);
        let shares = &st.observer.shares;
        let window_share = observer::mean_share(shares, last.at - p.forecast.window, last.at);
        let model = st.observer.brokers.entry(broker).or_default();
        if let (Some(g), Some(s), false) = (trend, window_share, stale) {
            model.learn(last.at, s, g);
        }
        if let (Some(&prev), false) = (history.iter().rev().nth(1), stale)
            && last.at.since(prev.at) <= p.staleness.max_disk_age
            && let Some(s) = observer::mean_share(shares, prev.at, last.at)
        {
            model.learn_step(prev, last, s);
        }
        let since = observer::max_allowed(shares, last.at, now).unwrap_or(share.allowed);
        let est = observer::estimate(
            model,
            &observer::Inputs {
                last,
                trend,
                fresh: !stale,
                window_share,
                share_now: share.measured,
                allowed: share.allowed,
                allowed_since_sample: since,
                blind_growth,
                now,
            },
        );
        let slope = if stale || trend.is_some() || est.upper_slope > 0.0 {
            Some(est.upper_slope)
        } else {
            None
        };
        let now_percent = est.upper;
        let ttc = slope
            .filter(|s| *s > 0.0)
            .map(|s| ((p.disk.ceiling_percent - now_percent) / s).max(0.0));
        view.forecasts.push(BrokerForecast {
            broker,
            sampled_percent: last.percent,
            age_secs: age.secs_f64(),
            stale,
            trend_percent_per_hour: trend.map(|s| s * 3600.0),
            now_percent: est.percent,
            time_to_ceiling_secs: ttc,
            estimate_percent: Some(est.percent),
            upper_percent: Some(est.upper),
            upper_trend_percent_per_hour: Some(est.upper_slope * 3600.0),
        });
        let level = BrokerLevel {
            broker,
            percent: now_percent,
            slope,
            stale,
        };
        if stale {
            view.all_fresh = false;
            view.stale.push(level);
            tick.alerts.push(alert(
                Severity::Warning,
                AlertCode::DiskStale,
                format!("broker {broker}: newest disk reading is {age} old (max {}): no config change on it", p.staleness.max_disk_age),
            ));
            continue;
        }
        if last.percent >= p.disk.ceiling_percent {
            tick.alerts.push(alert(
                Severity::Critical,
                AlertCode::DiskAboveCeiling,
                format!(
                    "broker {broker} at {:.1}%, above the ceiling of {}%",
                    last.percent, p.disk.ceiling_percent
                ),
            ));
        }
        view.fresh.push(level);
        view.newest_common_sample = Some(
            view.newest_common_sample
                .map_or(last.at, |t: Timestamp| t.min(last.at)),
        );
    }
    view
}

/// The groups' share of their full speed this tick: as measured, and the most the gate in force
/// lets through (0 while paused; at most the rate the slow start held it at), capped by what they
/// can consume at all (their producers' rate plus their lag over the throttle horizon).
fn share_now(st: &ControllerState, drain: &DrainView, tick: &Tick) -> SharePoint {
    let p = tick.policy;
    let horizon = p.forecast.throttle_horizon.secs_f64();
    let (mut weight, mut measured, mut allowed) = (0.0, 0.0, 0.0);
    for g in &p.groups {
        let Some(track) = st.groups.get(&g.name) else {
            weight += 1.0;
            allowed += if st.throttle.paused { 0.0 } else { 1.0 };
            continue;
        };
        let gate = if st.throttle.paused {
            0.0
        } else {
            track.fraction
        };
        let reference = g.max_rate.or(track.reference_rate).filter(|r| *r > 0.0);
        let consume = track.consume_rate.unwrap_or(0.0);
        weight += 1.0;
        match reference {
            Some(r) => {
                measured += (consume / r).clamp(0.0, 1.0);
                let lag = drain.lag.get(&g.name).copied().flatten();
                let can = match (track.produce_rate, lag) {
                    (Some(prod), Some(lag)) => (prod + lag.max(0) as f64 / horizon) / r,
                    _ => 1.0,
                };
                let held = track.held_at.map_or(1.0, |c| c / r);
                allowed += gate.min(can).min(held).clamp(0.0, 1.0);
            }
            None => {
                measured += if consume > 0.0 { 1.0 } else { 0.0 };
                allowed += gate.clamp(0.0, 1.0);
            }
        }
    }
    let w = if weight > 0.0 { weight } else { 1.0 };
    SharePoint {
        at: tick.now,
        measured: measured / w,
        allowed: if weight > 0.0 { allowed / w } else { 1.0 },
    }
}

/// Adds this tick's disk readings to each broker's history.
fn record_samples(st: &mut ControllerState, obs: &Observation, tick: &Tick) {
    let p = tick.policy;
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
}
