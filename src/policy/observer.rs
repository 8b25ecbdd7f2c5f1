//! The disk observer: each broker's disk estimated from what the controller knows, with an upper
//! bound that grows with the age of the data (DESIGN.md invariant 8).
//!
//! Disk growth is modelled per broker as `g = b + a·s`, where `s` is the catch-up groups' share of
//! their full speed (what the gate lets through, measured from their offsets), `a` the growth at full
//! speed that consuming causes (the output amplification, learned online) and `b` what the brokers do
//! on their own (producers' inflow less deletions, learned online). Each new fresh sample adds one point
//! `(mean share over the trend window, trend)` to an exponentially forgetting least-squares fit.
//!
//! - the estimate extrapolates the newest sample along the trend, corrected for the gate's own changes
//!   since the trend window (a resume reads as rising, not as the falling of the pause before it);
//! - the upper bound assumes the worst growth physically possible at the gate in force: the learned
//!   growth at full speed with a margin (at least the steepest step seen between two consecutive
//!   samples per share: Kafka deletes at retention checks, so between them the disk grows at its
//!   gross write rate, which the net trend hides), or the policy's
//!   `forecast.blind_growth_percent_per_hour`, times the share the gate lets through (capped by what the groups can consume at all: their producers'
//!   rate plus their lag), deletions never counted; integrated tick by tick, so a cut made while blind
//!   does not lower the bound already accrued.

use std::collections::VecDeque;

use super::state::DiskPoint;
pub use super::state::{BrokerModel, ObserverState, SharePoint};
use crate::units::{Dur, Timestamp};

/// Points of the fit lose half their weight over this much time.
const HALF_LIFE_SECS: f64 = 6.0 * 3600.0;
/// The upper bound's margin on the learned growth at full speed.
const MARGIN: f64 = 1.25;
/// Steps between samples taken at a lower share than this do not count towards the gross growth
/// per share: the producers' inflow, divided by a small share, would swamp it.
const MIN_STEP_SHARE: f64 = 0.5;
/// Shares closer together than this cannot separate `a` from `b`: all growth is put on consuming.
const MIN_SHARE_SPREAD: f64 = 0.1;

/// The weight left at `to` of what was learned at `from` (halving every `HALF_LIFE_SECS`).
fn fade(from: Timestamp, to: Timestamp) -> f64 {
    (-(to.since(from).secs_f64()) * std::f64::consts::LN_2 / HALF_LIFE_SECS).exp()
}

/// The learned model, `g = b + a·s` in %/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Growth {
    /// Growth at full speed caused by consuming.
    pub a: f64,
    /// Growth of its own (producers less deletions).
    pub b: f64,
    /// `a` with its margin, at least the highest growth per share seen (in the trend, or between
    /// two consecutive samples: the gross write rate between retention checks).
    pub a_high: f64,
}

impl BrokerModel {
    /// Adds the point (mean share `s`, trend `g`) taken at `at`, forgetting older points.
    pub fn learn(&mut self, at: Timestamp, s: f64, g: f64) {
        if self.fitted_at.is_some_and(|t| t >= at) || !s.is_finite() || !g.is_finite() {
            return;
        }
        let decay = self.fitted_at.map_or(1.0, |t| fade(t, at));
        for v in &mut self.sums {
            *v *= decay;
        }
        let [w, ss, sg, sss, ssg] = &mut self.sums;
        *w += 1.0;
        *ss += s;
        *sg += g;
        *sss += s * s;
        *ssg += s * g;
        if s > MIN_SHARE_SPREAD {
            self.peak_per_share = self.peak_per_share.max(g / s);
        }
        self.fitted_at = Some(at);
    }

    /// Adds the step from one fresh sample to the next at mean share `s`: its growth per unit of
    /// share, when the groups ran at `MIN_STEP_SHARE` of full speed or more (below it the
    /// producers' own inflow would weigh too much), fading the older peak.
    pub fn learn_step(&mut self, from: DiskPoint, to: DiskPoint, s: f64) {
        let dt = to.at.since(from.at).secs_f64();
        if dt <= 0.0 || self.stepped_at.is_some_and(|t| t >= to.at) || !s.is_finite() {
            return;
        }
        self.peak_step_per_share *= self.stepped_at.map_or(1.0, |t| fade(t, to.at));
        let step = (to.percent - from.percent) / dt;
        if s >= MIN_STEP_SHARE && step.is_finite() {
            self.peak_step_per_share = self.peak_step_per_share.max(step / s);
        }
        self.stepped_at = Some(to.at);
    }

    /// The fitted model, once there is a point.
    pub fn growth(&self) -> Option<Growth> {
        let [w, ss, sg, sss, ssg] = self.sums;
        if w <= 0.0 {
            return None;
        }
        let (ms, mg) = (ss / w, sg / w);
        let var = (sss / w - ms * ms).max(0.0);
        let (a, b) = if var.sqrt() >= MIN_SHARE_SPREAD / 2.0 {
            let a = ((ssg / w - ms * mg) / var).max(0.0);
            (a, mg - a * ms)
        } else if ms > MIN_SHARE_SPREAD {
            (mg.max(0.0) / ms, mg.min(0.0))
        } else {
            (0.0, mg)
        };
        Some(Growth {
            a,
            b,
            a_high: (a * MARGIN)
                .max(self.peak_per_share)
                .max(self.peak_step_per_share),
        })
    }
}

/// Restates everything learned in shares of a full speed `k` times faster than the one it was
/// measured against: shares seen shrink by `k`, growth per share grows by `k`.
pub fn rescale(obs: &mut ObserverState, k: f64) {
    if !(k.is_finite() && k > 0.0) {
        return;
    }
    for p in &mut obs.shares {
        p.measured /= k;
        p.allowed /= k;
    }
    for m in obs.brokers.values_mut() {
        let [_, ss, _, sss, ssg] = &mut m.sums;
        *ss /= k;
        *sss /= k * k;
        *ssg /= k;
        m.peak_per_share *= k;
        m.peak_step_per_share *= k;
    }
}

/// Adds this tick's share point, keeping `keep` of history.
pub fn record_share(obs: &mut ObserverState, point: SharePoint, keep: Dur) {
    if obs.shares.back().is_some_and(|p| p.at >= point.at) {
        return;
    }
    obs.shares.push_back(point);
    let oldest = point.at - keep;
    while obs.shares.front().is_some_and(|p| p.at < oldest) {
        obs.shares.pop_front();
    }
}

/// The mean measured share over `[from, to]` (the newest before `from` when none falls inside).
pub fn mean_share(shares: &VecDeque<SharePoint>, from: Timestamp, to: Timestamp) -> Option<f64> {
    let (mut n, mut sum) = (0.0, 0.0);
    for p in shares.iter().filter(|p| p.at >= from && p.at <= to) {
        n += 1.0;
        sum += p.measured;
    }
    if n > 0.0 {
        Some(sum / n)
    } else {
        shares
            .iter()
            .rev()
            .find(|p| p.at < from)
            .map(|p| p.measured)
    }
}

/// The most the gate let through in `(from, to]` (each point stands for the interval before its
/// tick).
pub fn max_allowed(shares: &VecDeque<SharePoint>, from: Timestamp, to: Timestamp) -> Option<f64> {
    shares
        .iter()
        .filter(|p| p.at > from && p.at <= to)
        .map(|p| p.allowed)
        .reduce(f64::max)
}

/// One broker's estimate now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Best estimate, percent.
    pub percent: f64,
    /// Its growth, %/s.
    pub slope: f64,
    /// Upper bound, percent.
    pub upper: f64,
    /// Growth of the upper bound at the gate in force, %/s.
    pub upper_slope: f64,
}

/// What `estimate` needs besides the broker's model.
pub struct Inputs {
    /// The newest sample.
    pub last: DiskPoint,
    /// The trend through the window ending at it (%/s), when there is one.
    pub trend: Option<f64>,
    /// Whether the sample is fresh.
    pub fresh: bool,
    /// Measured share over the trend window ending at the sample.
    pub window_share: Option<f64>,
    /// Measured share now.
    pub share_now: f64,
    /// What the gate in force lets through (since the last tick, and from now on until the next
    /// decision).
    pub allowed: f64,
    /// The most the gate let through between the sample and now.
    pub allowed_since_sample: f64,
    /// The policy's worst growth at full speed, %/s.
    pub blind_growth: f64,
    /// Now.
    pub now: Timestamp,
}

/// Estimates a broker's disk now and carries its upper bound forward (`model.bound`).
pub fn estimate(model: &mut BrokerModel, i: &Inputs) -> Estimate {
    let age = i.now.since(i.last.at).secs_f64().max(0.0);
    let learned = model.growth();
    let trend = i.trend.unwrap_or(0.0);
    let gross = model.peak_step_per_share;
    // Correct the trend for the gate's change since its window: the trend saw `window_share`.
    let gate_delta = i.window_share.map_or(0.0, |w| i.share_now - w);
    let slope = match (i.fresh || i.trend.is_some(), learned) {
        (true, Some(m)) => trend + m.a * gate_delta,
        (true, None) => trend,
        (false, Some(m)) => m.b + m.a * i.share_now,
        (false, None) => 0.0,
    };
    let upper_slope_at = |allowed: f64| -> f64 {
        if i.fresh {
            // What the gate lets through beyond what the trend saw may all turn into growth: at
            // the learned rate, or at the policy's worst until consuming has been seen to grow
            // the disk.
            let a_high = learned
                .map(|m| m.a_high)
                .filter(|a| *a > 0.0)
                .unwrap_or(i.blind_growth.max(gross));
            let unseen = (allowed - i.window_share.unwrap_or(allowed)).max(0.0);
            slope.max(trend + a_high * unseen)
        } else {
            // Blind: the worst at the gate in force. The last trend stands in for the model only
            // until there is one (it was measured at another gate).
            let worst = match learned {
                Some(m) => m.b.max(0.0) + m.a_high.max(i.blind_growth) * allowed,
                None => trend.max(0.0) + i.blind_growth.max(gross) * allowed,
            };
            slope.max(worst)
        }
        .max(0.0)
    };
    let upper_slope = upper_slope_at(i.allowed);
    let upper = match model.bound {
        Some((sample, at, bound)) if sample == i.last.at && at <= i.now => {
            bound + upper_slope * i.now.since(at).secs_f64()
        }
        _ => i.last.percent + upper_slope_at(i.allowed.max(i.allowed_since_sample)) * age,
    };
    model.bound = Some((i.last.at, i.now, upper));
    Estimate {
        percent: i.last.percent + slope * age,
        slope,
        upper: upper.max(i.last.percent + slope * age),
        upper_slope,
    }
}

#[cfg(test)]
mod tests;
