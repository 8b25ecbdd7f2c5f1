//! Step 1, disks: record each broker's new sample, fit a trend, extrapolate it to now and sort the
//! brokers into fresh and stale.

use super::{Tick, alert};
use crate::observation::{BrokerId, Observation};
use crate::policy::AlertCode;
use crate::policy::decision::{BrokerForecast, Severity};
use crate::policy::forecast;
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
    /// Estimated used percent now: the newest sample extrapolated along the trend.
    pub(super) percent: f64,
    /// Trend in percent per second; `None` while there are too few recent samples to fit one.
    pub(super) slope: Option<f64>,
}

/// Records the new disk samples and assesses every known broker (alerting on missing, stale and
/// over-ceiling disks).
pub(super) fn assess_disks(
    st: &mut ControllerState,
    obs: &Observation,
    tick: &mut Tick,
) -> DiskView {
    let (p, now) = (tick.policy, tick.now);
    record_samples(st, obs, tick);
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
        let level = BrokerLevel {
            broker,
            percent: now_percent,
            slope,
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
