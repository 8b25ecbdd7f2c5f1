//! What the cluster reports: disk failures, and a CloudWatch-like metric per broker (disk percent
//! and copy-lag bytes averaged over each period, stamped with the period start, visible only after a
//! delay, and missing during a metrics outage).

use super::Cluster;
use crate::sim::scenario::EventKind;
use crate::units::Timestamp;

/// One published datapoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Datapoint {
    /// Period start (CloudWatch's timestamp).
    pub at: Timestamp,
    /// Average over the period.
    pub value: f64,
    /// When it becomes visible.
    pub visible_at: Timestamp,
}

impl Cluster {
    /// Newest visible disk datapoint of broker index `b`.
    pub fn visible_disk(&self, b: usize) -> Option<Datapoint> {
        self.disk_points[b]
            .iter()
            .rev()
            .find(|d| d.visible_at <= self.now)
            .copied()
    }

    /// Newest visible copy-lag datapoint of broker index `b`.
    pub fn visible_copy_lag(&self, b: usize) -> Option<Datapoint> {
        self.lag_points[b]
            .iter()
            .rev()
            .find(|d| d.visible_at <= self.now)
            .copied()
    }

    /// Marks brokers whose disk is full as failed (pinned at 100% from then on) and adds the step's
    /// `dt` seconds to every broker's period sums.
    pub(super) fn account(&mut self, dt: f64) {
        for b in &mut self.brokers {
            if b.used >= self.capacity && b.failed_at.is_none() {
                b.failed_at = Some(self.now);
            }
            let reported = if b.failed_at.is_some() {
                self.capacity
            } else {
                b.used
            };
            b.disk_sum += reported * 100.0 / self.capacity * dt;
            b.lag_sum += b.copy_lag * dt;
        }
    }

    /// Closes the period: publishes every broker's averages (unless its metrics are out) and starts
    /// the next period.
    pub(super) fn publish(&mut self) {
        let span = self.now.since(self.period_start).secs_f64();
        let at = self.period_start;
        let visible_at = self.now + self.delay;
        for b in 0..self.brokers.len() {
            let disk_out = self.event_active(EventKind::silences_disk, b, at);
            let lag_out = self.event_active(EventKind::silences_copy_lag, b, at);
            let broker = &mut self.brokers[b];
            let (disk, lag) = (broker.disk_sum / span, broker.lag_sum / span);
            broker.disk_sum = 0.0;
            broker.lag_sum = 0.0;
            for (points, value, out) in [
                (&mut self.disk_points[b], disk, disk_out),
                (&mut self.lag_points[b], lag, lag_out),
            ] {
                if out {
                    continue;
                }
                points.push_back(Datapoint {
                    at,
                    value,
                    visible_at,
                });
                if points.len() > 64 {
                    points.pop_front();
                }
            }
        }
        self.period_start = self.now;
    }
}
