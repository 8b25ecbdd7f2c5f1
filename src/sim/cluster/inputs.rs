//! Input topics' own retention, and what it costs a group that is held too long.
//!
//! Every segment of an input partition is kept (locally, then in the remote store) until its newest
//! record is older than the topic's `retention.ms`, then deleted whole, oldest first, at each
//! retention check: Kafka's rule. The log start moves with it. A group whose committed offset falls
//! below the log start loses those records (counted once) and resumes at the log start, as a
//! consumer with `auto.offset.reset = earliest` does. Within a segment, records are taken as
//! written evenly between the previous segment's newest record and its own, so a record's time is
//! never later than the segment's newest (the deadline derived from it errs early, like the real
//! sensor's).

use super::Cluster;
use super::storage::Partition;
use crate::units::Timestamp;

impl Cluster {
    /// Deletes input segments past their topic's `retention.ms` and moves the groups that fell
    /// behind the log start to it, counting what they lost.
    pub(super) fn expire_inputs(&mut self) {
        let now = self.now;
        for k in 0..self.topics.len() {
            let topic = &self.topics[k];
            if !topic.input || !deletes(topic) {
                continue;
            }
            let Some(retention) = topic
                .configs
                .get("retention.ms")
                .and_then(|c| c.value.as_deref()?.parse::<i64>().ok())
                .filter(|v| *v >= 0)
            else {
                continue;
            };
            let cutoff = Timestamp(now.0 - retention);
            for p in topic.partitions.clone() {
                let part = &mut self.parts[p];
                while let Some(&(end, newest)) = part.kept.front() {
                    if newest >= cutoff {
                        break;
                    }
                    part.log_start = part.log_start.max(end);
                    part.kept.pop_front();
                }
            }
            for g in self.groups.iter_mut().filter(|g| g.topic == k) {
                for (i, p) in self.topics[k].partitions.clone().enumerate() {
                    let start = self.parts[p].log_start;
                    if g.committed[i] < start {
                        g.lost += start - g.committed[i];
                        g.committed[i] = start;
                    }
                }
            }
        }
    }

    /// Records a group lost to input retention so far.
    pub fn group_records_lost(&self, group: &str) -> Option<f64> {
        self.groups.iter().find(|g| g.name == group).map(|g| g.lost)
    }

    /// Age of the oldest record `group` has not consumed, ms (0 when it has consumed everything),
    /// and its input topic's `retention.ms` (`None` when unlimited or not `delete`).
    pub fn group_time_lag(&self, group: &str) -> Option<(i64, Option<i64>)> {
        let g = self.groups.iter().find(|g| g.name == group)?;
        let topic = &self.topics[g.topic];
        let oldest = topic
            .partitions
            .clone()
            .enumerate()
            .filter(|&(i, p)| self.parts[p].log_end - g.committed[i] >= 1.0)
            .filter_map(|(i, p)| record_time(&self.parts[p], g.committed[i], self.now))
            .min();
        let retention = deletes(topic)
            .then(|| {
                topic
                    .configs
                    .get("retention.ms")
                    .and_then(|c| c.value.as_deref()?.parse::<i64>().ok())
            })
            .flatten()
            .filter(|v| *v >= 0);
        Some((oldest.map_or(0, |t| (self.now.0 - t.0).max(0)), retention))
    }
}

/// Whether the topic deletes by age (`cleanup.policy` has `delete`).
fn deletes(topic: &super::storage::Topic) -> bool {
    topic
        .configs
        .get("cleanup.policy")
        .and_then(|c| c.value.as_deref())
        .is_none_or(|v| v.split(',').any(|p| p.trim() == "delete"))
}

/// When the record at `offset` of an input partition was written: interpolated within its
/// segment, never after the segment's newest record; `None` for a partition without history.
pub(super) fn record_time(part: &Partition, offset: f64, now: Timestamp) -> Option<Timestamp> {
    let first = *part.kept.front()?;
    // The segment holding `offset`: the first whose end is past it.
    let i = part.kept.partition_point(|&(end, _)| end <= offset);
    let (prev_end, prev_at) = match i.checked_sub(1) {
        Some(j) => part.kept[j],
        None => (part.log_start.min(first.0), first.1),
    };
    let (end, at) = part
        .kept
        .get(i)
        .copied()
        .unwrap_or((part.log_end, part.active.newest.max(prev_at).min(now)));
    if end <= prev_end {
        return Some(at);
    }
    let f = ((offset - prev_end) / (end - prev_end)).clamp(0.0, 1.0);
    Some(Timestamp(
        prev_at.0 + ((at.0 - prev_at.0) as f64 * f) as i64,
    ))
}
