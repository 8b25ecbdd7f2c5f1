//! Consumer-group lag in batches: one `ListConsumerGroupOffsets` (OffsetFetch) per group, all in
//! flight at once, then for all groups together one metadata request and two `ListOffsets` (earliest
//! and latest, one request per leader broker each) — never one request per partition.
//!
//! Groups answer one by one: a group whose OffsetFetch fails (its coordinator moving, an ACL that
//! denies it) is named in the readings' `failed` list and every other group is read. The sensor
//! fails as a whole only when the cluster does not answer (metadata) or the shared `ListOffsets`
//! fail, which no group's lag can do without.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::time_lag::RecordTimes;
use crate::kafka::ffi::{self, End};
use crate::kafka::{Admin, Connection};
use crate::sensors::{GroupOffsets, PartitionOffsets, Readings, SensorError, SensorKind};
use crate::units::Timestamp;

/// Reads committed and log offsets of consumer groups, and the time of each group's oldest
/// unconsumed record ([`super::time_lag`]).
pub struct LagReader {
    admin: Admin,
    timeout: Duration,
    times: Option<RecordTimes>,
}

fn unavailable(sensor: SensorKind, e: impl std::fmt::Display) -> SensorError {
    SensorError::Unavailable {
        sensor,
        reason: e.to_string(),
    }
}

impl LagReader {
    /// Connects (lazily: librdkafka connects on first use); reads record times for at most
    /// [`DEFAULT_BUDGET`](super::time_lag::DEFAULT_BUDGET) partitions per read.
    pub fn new(conn: &Connection, timeout: Duration) -> Result<LagReader, SensorError> {
        LagReader::with_record_budget(conn, timeout, super::time_lag::DEFAULT_BUDGET)
    }

    /// [`LagReader::new`] reading record times for at most `budget` partitions per read (a
    /// one-shot read, `catchup lag`, wants them all).
    pub fn with_record_budget(
        conn: &Connection,
        timeout: Duration,
        budget: usize,
    ) -> Result<LagReader, SensorError> {
        let admin = conn.admin().map_err(|e| unavailable(SensorKind::Lag, e))?;
        // The record fetch shares the read's time: at most half of it, and never more than 3 s.
        let wait = (timeout / 2).min(Duration::from_secs(3));
        let times = RecordTimes::new(conn, budget, wait)
            .inspect_err(|e| tracing::warn!(error = %e, "no time lag: the record-time consumer cannot be created"))
            .ok();
        Ok(LagReader {
            admin,
            timeout,
            times,
        })
    }

    /// What the last read's record-time fetch did; `None` without a record-time consumer.
    pub fn record_stats(&self) -> Option<super::time_lag::FillStats> {
        self.times.as_ref().map(RecordTimes::last_fill)
    }

    /// Offsets of every partition of every topic `group` has committed on; see [`LagReader::read_groups`].
    pub fn read_group(&self, group: &str, now: Timestamp) -> Result<GroupOffsets, SensorError> {
        let mut readings = self.read_groups(&[group.to_string()], now)?;
        if let Some(failed) = readings.failed.pop() {
            return Err(unavailable(SensorKind::Lag, failed.reason));
        }
        readings
            .read
            .pop()
            .ok_or_else(|| unavailable(SensorKind::Lag, format!("group {group}: no answer")))
    }

    /// Offsets of every partition of every topic each group has committed on; a group whose
    /// offsets could not be fetched is named in `failed`. Blocking: call it off the async executor.
    ///
    /// Requests: one `ListConsumerGroupOffsets` per group (all in flight at once), then for all groups
    /// together one metadata request and two `ListOffsets` (earliest and latest, one request per leader
    /// broker each). Partitions without a commit have `committed: None`; topics that no longer exist
    /// and partitions whose offsets could not be read are listed in `unavailable`.
    pub fn read_groups(
        &self,
        groups: &[String],
        now: Timestamp,
    ) -> Result<Readings<GroupOffsets>, SensorError> {
        // Metadata first: it tells whether the cluster answers at all before any admin request is
        // queued (librdkafka 2.12 can trip an internal assertion when a coordinator request is left
        // waiting for a broker that is down), and it gives every topic's partitions.
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| unavailable(SensorKind::Lag, format!("metadata: {e}")))?;
        let committed: Vec<Result<Vec<ffi::PartitionAnswer>, ffi::AdminError>> =
            std::thread::scope(|s| {
                let handles: Vec<_> = groups
                    .iter()
                    .map(|g| s.spawn(move || ffi::committed_offsets(&self.admin, g, self.timeout)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(ffi::AdminError {
                                call: "ListConsumerGroupOffsets",
                                reason: "reader thread failed".into(),
                            })
                        })
                    })
                    .collect()
            });
        let topics: BTreeSet<String> = committed
            .iter()
            .flatten()
            .flatten()
            .map(|p| p.topic.clone())
            .collect();
        let shared = self.partitions_and_offsets(&topics, &metadata)?;
        let mut readings = assemble_groups(groups, committed, &shared, now);
        if let Some(times) = &self.times {
            times.fill(&mut readings.read);
        }
        Ok(readings)
    }

    /// Every partition of `topics` with its log-end and log-start offsets (both asked at once), and
    /// the topics that no longer exist.
    fn partitions_and_offsets(
        &self,
        topics: &BTreeSet<String>,
        metadata: &rdkafka::metadata::Metadata,
    ) -> Result<Shared, SensorError> {
        let mut shared = Shared::default();
        if topics.is_empty() {
            return Ok(shared);
        }
        for topic in topics {
            match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() => shared
                    .partitions
                    .extend(t.partitions().iter().map(|p| (topic.clone(), p.id()))),
                _ => shared.missing.push((
                    topic.clone(),
                    format!("{topic}: the topic does not exist (deleted?)"),
                )),
            }
        }
        shared.partitions.sort();
        let partitions = &shared.partitions;
        let (ends, starts) = std::thread::scope(|s| {
            let ends = s.spawn(|| self.offsets(partitions, End::Latest));
            let starts = self.offsets(partitions, End::Earliest);
            (
                ends.join()
                    .unwrap_or_else(|_| Err(unavailable(SensorKind::Lag, "reader thread failed"))),
                starts,
            )
        });
        shared.ends = ends?;
        shared.starts = starts?;
        Ok(shared)
    }

    /// Member counts of `groups` (DescribeGroups). Blocking.
    pub fn members(&self, groups: &[String]) -> Result<Vec<(String, u32)>, SensorError> {
        groups
            .iter()
            .map(|g| {
                let list = self
                    .admin
                    .inner()
                    .fetch_group_list(Some(g), self.timeout)
                    .map_err(|e| {
                        unavailable(SensorKind::Members, format!("DescribeGroups of {g}: {e}"))
                    })?;
                let n = list
                    .groups()
                    .iter()
                    .find(|x| x.name() == g)
                    .map_or(0, |x| x.members().len());
                Ok((g.clone(), u32::try_from(n).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    fn offsets(&self, partitions: &[(String, i32)], end: End) -> Result<Offsets, SensorError> {
        let answers = ffi::list_offsets(&self.admin, partitions, end, self.timeout)
            .map_err(|e| unavailable(SensorKind::Lag, e))?;
        Ok(answers
            .into_iter()
            .map(|a| {
                let value = match a.error {
                    None if a.offset >= 0 => Ok(a.offset),
                    err => Err(err.unwrap_or_else(|| format!("offset {}", a.offset))),
                };
                ((a.topic, a.partition), value)
            })
            .collect())
    }
}

/// Offsets per partition, or why one could not be read.
type Offsets = BTreeMap<(String, i32), Result<i64, String>>;

/// What every group of one read shares.
#[derive(Default)]
struct Shared {
    partitions: Vec<(String, i32)>,
    ends: Offsets,
    starts: Offsets,
    missing: Vec<(String, String)>,
}

/// Every group's offsets from its own OffsetFetch answer (`committed`, in the order of `groups`)
/// and the shared partition offsets; a group whose OffsetFetch failed, or that has no answer, is
/// named in `failed` and the others are assembled.
fn assemble_groups(
    groups: &[String],
    committed: Vec<Result<Vec<ffi::PartitionAnswer>, ffi::AdminError>>,
    shared: &Shared,
    now: Timestamp,
) -> Readings<GroupOffsets> {
    let mut out = Readings::default();
    let mut committed = committed.into_iter();
    for group in groups {
        match committed.next() {
            Some(Ok(answers)) => out.read.push(assemble(group, answers, shared, now)),
            Some(Err(e)) => out.fail(
                group,
                format!(
                    "group {group}: {e}: its lag is unknown this tick (the other groups are read); if it lasts, check that catchup may Describe the group (ACL) and that its coordinator broker is up"
                ),
            ),
            None => out.fail(
                group,
                format!("group {group}: no OffsetFetch answer for it: its lag is unknown this tick"),
            ),
        }
    }
    out
}

/// One group's offsets from its commits and the shared partition offsets.
fn assemble(
    group: &str,
    committed: Vec<ffi::PartitionAnswer>,
    shared: &Shared,
    now: Timestamp,
) -> GroupOffsets {
    let mine: BTreeSet<String> = committed.iter().map(|p| p.topic.clone()).collect();
    let mut unavailable_parts: Vec<String> = committed
        .iter()
        .filter_map(|p| {
            p.error
                .as_ref()
                .map(|e| format!("{}-{}: {e}", p.topic, p.partition))
        })
        .collect();
    unavailable_parts.extend(
        shared
            .missing
            .iter()
            .filter(|(t, _)| mine.contains(t))
            .map(|(_, why)| why.clone()),
    );
    let committed: BTreeMap<(String, i32), i64> = committed
        .into_iter()
        .filter(|p| p.error.is_none() && p.offset >= 0)
        .map(|p| ((p.topic, p.partition), p.offset))
        .collect();
    let mut partitions = Vec::new();
    for key in shared.partitions.iter().filter(|(t, _)| mine.contains(t)) {
        match shared.ends.get(key) {
            Some(Ok(log_end)) => partitions.push(PartitionOffsets {
                committed: committed.get(key).copied(),
                log_end: *log_end,
                log_start: shared
                    .starts
                    .get(key)
                    .and_then(|s| s.as_ref().ok())
                    .copied(),
                next_record: None,
                topic: key.0.clone(),
                partition: key.1,
            }),
            Some(Err(why)) => unavailable_parts.push(format!("{}-{}: {why}", key.0, key.1)),
            None => unavailable_parts.push(format!(
                "{}-{}: no log-end offset in the answer",
                key.0, key.1
            )),
        }
    }
    GroupOffsets {
        group: group.to_string(),
        partitions,
        sampled_at: now,
        unavailable: unavailable_parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(topic: &str, partition: i32, offset: i64) -> ffi::PartitionAnswer {
        ffi::PartitionAnswer {
            topic: topic.into(),
            partition,
            offset,
            error: None,
        }
    }

    #[test]
    fn deleted_topics_and_unreadable_partitions_are_reported_not_counted() {
        let mut shared = Shared {
            partitions: vec![("kept".into(), 0), ("kept".into(), 1)],
            ..Shared::default()
        };
        shared.ends.insert(("kept".into(), 0), Ok(10));
        shared
            .ends
            .insert(("kept".into(), 1), Err("leader not available".into()));
        shared.starts.insert(("kept".into(), 0), Ok(0));
        shared.missing.push((
            "gone".into(),
            "gone: the topic does not exist (deleted?)".into(),
        ));
        let g = assemble(
            "g",
            vec![answer("kept", 0, 4), answer("gone", 0, 7)],
            &shared,
            Timestamp(0),
        );
        assert_eq!(g.partitions.len(), 1);
        assert_eq!(g.partitions[0].lag(), Some(6));
        assert_eq!(
            g.unavailable,
            vec![
                "gone: the topic does not exist (deleted?)".to_string(),
                "kept-1: leader not available".to_string()
            ]
        );
        assert_eq!(
            g.total_lag(),
            None,
            "unknown, never a partial sum passed off as the total"
        );
        let clean = assemble(
            "g",
            vec![answer("kept", 0, 4)],
            &Shared {
                partitions: vec![("kept".into(), 0)],
                ends: shared.ends.clone(),
                ..Shared::default()
            },
            Timestamp(0),
        );
        assert_eq!(clean.total_lag(), Some(6));
    }

    #[test]
    fn one_group_s_failed_offset_fetch_is_named_and_the_others_are_read() {
        let mut shared = Shared {
            partitions: vec![("orders".into(), 0)],
            ..Shared::default()
        };
        shared.ends.insert(("orders".into(), 0), Ok(10));
        shared.starts.insert(("orders".into(), 0), Ok(0));
        let groups: Vec<String> = ["billing", "audit", "search", "late"]
            .map(String::from)
            .to_vec();
        // What librdkafka gives for a group catchup may not describe.
        let denied = ffi::AdminError {
            call: "ListConsumerGroupOffsets",
            reason: "Broker: Group authorization failed".into(),
        };
        let got = assemble_groups(
            &groups,
            vec![
                Ok(vec![answer("orders", 0, 4)]),
                Err(denied),
                Ok(vec![answer("orders", 0, 9)]),
            ],
            &shared,
            Timestamp(5),
        );
        let lags: Vec<(&str, Option<i64>)> = got
            .read
            .iter()
            .map(|g| (g.group.as_str(), g.total_lag()))
            .collect();
        assert_eq!(lags, [("billing", Some(6)), ("search", Some(1))]);
        let failed: Vec<&str> = got.failed.iter().map(|f| f.target.as_str()).collect();
        assert_eq!(failed, ["audit", "late"], "each by name");
        let why = &got.failed[0].reason;
        assert!(
            why.starts_with(
                "group audit: ListConsumerGroupOffsets: Broker: Group authorization failed"
            ) && why.contains("ACL"),
            "{why}"
        );
    }
}
