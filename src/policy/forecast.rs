//! Disk forecasting: a least-squares trend through each broker's recent samples.
//!
//! Samples arrive late (CloudWatch publishes a 1-minute datapoint a minute or more after its period
//! starts), so every estimate is extrapolated from the sample's own time, not from `now`.

use std::collections::VecDeque;

use super::state::DiskPoint;
use crate::units::{Dur, Timestamp};

/// Appends `point` if it is newer than the newest sample, and drops samples older than `keep`
/// before it. Returns whether the point was new.
pub fn record(history: &mut VecDeque<DiskPoint>, point: DiskPoint, keep: Dur) -> bool {
    if history.back().is_some_and(|last| last.at >= point.at) {
        return false;
    }
    history.push_back(point);
    let oldest = point.at - keep;
    while history.front().is_some_and(|p| p.at < oldest) {
        history.pop_front();
    }
    true
}

/// Slope in percent per second of the samples within `window` of the newest one, or `None` when
/// there are fewer than `min_samples` of them or they span less than half the window (a trend
/// through a few minutes of noisy samples is noise).
pub fn slope(history: &VecDeque<DiskPoint>, window: Dur, min_samples: usize) -> Option<f64> {
    let newest = history.back()?.at;
    let from = newest - window;
    let points = history.iter().filter(|p| p.at >= from);
    let (mut n, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for p in points.clone() {
        n += 1.0;
        sx += (p.at.0 - newest.0) as f64 / 1000.0;
        sy += p.percent;
    }
    if (n as usize) < min_samples.max(2) {
        return None;
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for p in points {
        let x = (p.at.0 - newest.0) as f64 / 1000.0 - mx;
        sxx += x * x;
        sxy += x * (p.percent - my);
    }
    let oldest = history
        .iter()
        .find(|p| p.at >= from)
        .map_or(newest, |p| p.at);
    if newest.since(oldest).0 * 2 < window.0 || sxx <= 0.0 {
        return None;
    }
    Some(sxy / sxx)
}

/// The sample at `at` extrapolated along `slope` (percent per second) to `to`.
pub fn extrapolate(percent: f64, at: Timestamp, slope: Option<f64>, to: Timestamp) -> f64 {
    percent + slope.unwrap_or(0.0) * (to.0 - at.0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> VecDeque<DiskPoint> {
        points
            .iter()
            .map(|&(s, p)| DiskPoint {
                at: Timestamp(s * 1000),
                percent: p,
            })
            .collect()
    }

    #[test]
    fn slope_of_a_line_is_exact() {
        let h = series(&[(0, 50.0), (60, 51.0), (120, 52.0), (180, 53.0)]);
        let s = slope(&h, Dur::from_mins(6), 3).unwrap();
        assert!((s - 1.0 / 60.0).abs() < 1e-12);
        assert!(
            (extrapolate(53.0, Timestamp(180_000), Some(s), Timestamp(300_000)) - 55.0).abs()
                < 1e-9
        );
    }

    #[test]
    fn too_few_or_too_close_samples_give_no_trend() {
        assert_eq!(
            slope(&series(&[(0, 50.0), (60, 51.0)]), Dur::from_mins(10), 3),
            None
        );
        assert_eq!(
            slope(
                &series(&[(0, 50.0), (1, 51.0), (2, 52.0)]),
                Dur::from_mins(10),
                3
            ),
            None
        );
        assert_eq!(slope(&VecDeque::new(), Dur::from_mins(10), 3), None);
    }

    #[test]
    fn record_ignores_repeats_and_prunes() {
        let mut h = VecDeque::new();
        assert!(record(
            &mut h,
            DiskPoint {
                at: Timestamp(0),
                percent: 1.0
            },
            Dur::from_mins(5)
        ));
        assert!(!record(
            &mut h,
            DiskPoint {
                at: Timestamp(0),
                percent: 2.0
            },
            Dur::from_mins(5)
        ));
        assert!(record(
            &mut h,
            DiskPoint {
                at: Timestamp(600_000),
                percent: 3.0
            },
            Dur::from_mins(5)
        ));
        assert_eq!(h.len(), 1);
    }
}
