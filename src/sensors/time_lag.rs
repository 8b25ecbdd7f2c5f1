//! Time lag: the timestamp of the oldest record each catch-up group has not consumed (the record
//! at its committed offset, or the first after it), so lag reads "14 h behind", not only "3 M
//! records", and the input's retention deadline can be computed from it.
//!
//! Cost, and its bound: a record is fetched only for a partition whose committed offset moved
//! since its time was last read (otherwise the cached time is reused, as the committed record has
//! not changed); at most `budget` partitions per read, the ones whose time is unknown first, then
//! those with the oldest cached time. All of them are fetched in one consumer assignment: one
//! Fetch request per leader broker, one record batch per partition, capped at 64 KiB per partition
//! (a larger first batch is still returned whole: that is Kafka's rule). A partition not refreshed
//! keeps its older cached time: its time lag reads older than it is, never younger.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::kafka::Connection;
use crate::kafka::ffi::TokenSource;
use crate::observation::{GroupOffsets, RecordTime, TimestampKind};

/// How many partitions' records one read fetches at most, by default.
pub const DEFAULT_BUDGET: usize = 256;

/// A consumer context that answers OAUTHBEARER refreshes from the connection's token source
/// (MSK IAM).
struct Tokens(Option<TokenSource>);

impl ClientContext for Tokens {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        let source = self
            .0
            .as_ref()
            .ok_or("this connection has no OAUTHBEARER token source")?;
        let t = source()?;
        Ok(rdkafka::client::OAuthToken {
            token: t.value,
            principal_name: t.principal,
            lifetime_ms: t.expires_ms,
        })
    }
}

impl ConsumerContext for Tokens {}

/// Record times read, per partition by the offset they were read from (several catch-up groups
/// may read one partition at different offsets).
type Cache = BTreeMap<(String, i32), BTreeMap<i64, RecordTime>>;

/// A partition and the offset its record is read from.
type Wanted = ((String, i32), i64);

/// What one [`RecordTimes::fill`] did (for the benchmark and the logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FillStats {
    /// Lagging partitions (over every group) whose next record's time was wanted.
    pub lagging: usize,
    /// Of them, answered from the cache (the committed offset had not moved).
    pub cached: usize,
    /// Fetched from the brokers this read.
    pub fetched: usize,
    /// Left with an older cached time (moved, but beyond the budget) or none.
    pub deferred: usize,
}

/// Reads the timestamps of the records at committed offsets, with a cache.
pub struct RecordTimes {
    consumer: BaseConsumer<Tokens>,
    cache: Mutex<Cache>,
    budget: usize,
    wait: Duration,
    last: Mutex<FillStats>,
}

impl RecordTimes {
    /// A reader over `conn`, fetching at most `budget` partitions per read within `wait`.
    pub fn new(
        conn: &Connection,
        budget: usize,
        wait: Duration,
    ) -> rdkafka::error::KafkaResult<Self> {
        let mut config = conn.client_config();
        // Assigned, never subscribed: it never joins this group nor commits.
        config
            .set("group.id", "catchup-time-lag")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("max.partition.fetch.bytes", "65536")
            .set("fetch.wait.max.ms", "100")
            .set("queued.min.messages", "1")
            // An offset already deleted reads from the log start: where the consumer resumes.
            .set("auto.offset.reset", "earliest");
        let consumer = config.create_with_context(Tokens(conn.tokens.0.clone()))?;
        Ok(RecordTimes {
            consumer,
            cache: Mutex::new(BTreeMap::new()),
            budget,
            wait,
            last: Mutex::new(FillStats::default()),
        })
    }

    /// Fills `next_record` of every lagging partition of `groups`: from the cache where its
    /// committed offset has not moved, else from a fetch (within the budget), else the cached
    /// time of an earlier offset (older: the time lag then reads older than it is, never
    /// younger). A partition behind its log start is read from the log start (where the consumer
    /// will resume). Blocking.
    pub fn fill(&self, groups: &mut [GroupOffsets]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut stats = FillStats::default();
        for p in groups.iter().flat_map(|g| g.partitions.iter()) {
            if let Some(from) = from(p) {
                stats.lagging += 1;
                let key = (p.topic.clone(), p.partition);
                if cache.get(&key).is_some_and(|m| m.contains_key(&from)) {
                    stats.cached += 1;
                } else {
                    wanted.push((key, from));
                }
            }
        }
        let chosen = choose(wanted, &cache, self.budget);
        for ((key, offset), record) in self.fetch(&chosen) {
            stats.fetched += 1;
            cache.entry(key).or_default().insert(offset, record);
        }
        stats.deferred = stats.lagging - stats.cached - stats.fetched;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        for p in groups.iter_mut().flat_map(|g| g.partitions.iter_mut()) {
            p.next_record = from(p).and_then(|from| {
                let times = cache.get(&(p.topic.clone(), p.partition))?;
                times.range(..=from).next_back().map(|(_, r)| *r)
            });
        }
        prune(&mut cache, groups);
    }

    /// What the last [`RecordTimes::fill`] did.
    pub fn last_fill(&self) -> FillStats {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first record at or after each offset of `wanted` (one offset per partition), in one
    /// assignment.
    fn fetch(&self, wanted: &[Wanted]) -> Vec<(Wanted, RecordTime)> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let offsets: BTreeMap<(String, i32), i64> = wanted.iter().cloned().collect();
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &offsets {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        if self.consumer.assign(&tpl).is_err() {
            return Vec::new();
        }
        // librdkafka keeps a partition's pause across unassign and assign: the last fetch paused
        // every partition it read, so resume them, or no moved offset is ever read again.
        let _ = self.consumer.resume(&tpl);
        let mut got: BTreeMap<(String, i32), RecordTime> = BTreeMap::new();
        let deadline = crate::clock::monotonic_now() + self.wait;
        while got.len() < offsets.len() && crate::clock::monotonic_now() < deadline {
            let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let key = (m.topic().to_string(), m.partition());
            if got.contains_key(&key) || !offsets.contains_key(&key) {
                continue;
            }
            let (at, kind) = match m.timestamp() {
                rdkafka::Timestamp::CreateTime(t) => (t, TimestampKind::CreateTime),
                rdkafka::Timestamp::LogAppendTime(t) => (t, TimestampKind::LogAppendTime),
                rdkafka::Timestamp::NotAvailable => continue,
            };
            got.insert(
                key.clone(),
                RecordTime {
                    offset: m.offset(),
                    at: crate::units::Timestamp(at),
                    kind,
                },
            );
            // Enough of this partition: stop fetching it.
            let mut one = TopicPartitionList::new();
            one.add_partition(&key.0, key.1);
            let _ = self.consumer.pause(&one);
        }
        let _ = self.consumer.unassign();
        got.into_iter()
            .map(|(key, r)| {
                let from = offsets[&key];
                ((key, from), r)
            })
            .collect()
    }
}

/// Where the group's next record is read from: the committed offset, or the log start when the
/// committed records were deleted; `None` when it has nothing left to consume (or no commit).
fn from(p: &crate::observation::PartitionOffsets) -> Option<i64> {
    let committed = p.committed?;
    (committed < p.log_end).then(|| committed.max(p.log_start.unwrap_or(committed)))
}

/// Keeps, per partition, the times of the offsets the groups are at and the one just before the
/// lowest of them (the fallback when a moved offset is not fetched): the cache stays as small as
/// the groups' positions.
fn prune(cache: &mut Cache, groups: &[GroupOffsets]) {
    let mut lowest: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for p in groups.iter().flat_map(|g| g.partitions.iter()) {
        if let Some(from) = from(p) {
            let e = lowest.entry((p.topic.clone(), p.partition)).or_insert(from);
            *e = (*e).min(from);
        }
    }
    cache.retain(|key, times| {
        let Some(low) = lowest.get(key) else {
            return false;
        };
        let keep_from = times.range(..=*low).next_back().map_or(*low, |(o, _)| *o);
        times.retain(|o, _| *o >= keep_from);
        true
    });
}

/// Which of `wanted` to fetch within `budget`, one offset per partition: partitions never read
/// first, then those whose cached time is oldest (nearest their deadline).
fn choose(mut wanted: Vec<Wanted>, cache: &Cache, budget: usize) -> Vec<Wanted> {
    let oldest = |key: &(String, i32)| {
        cache
            .get(key)
            .and_then(|m| m.values().map(|r| r.at.0).min())
            .unwrap_or(i64::MIN)
    };
    wanted.sort_by_key(|(key, offset)| (oldest(key), *offset));
    let mut seen = std::collections::BTreeSet::new();
    wanted.retain(|(key, _)| seen.insert(key.clone()));
    wanted.truncate(budget);
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Timestamp;

    fn at(ms: i64) -> RecordTime {
        RecordTime {
            offset: 0,
            at: Timestamp(ms),
            kind: TimestampKind::CreateTime,
        }
    }

    #[test]
    fn the_budget_goes_to_unknown_then_oldest_partitions() {
        let key = |p: i32| ("t".to_string(), p);
        let wanted: Vec<_> = (0..5).map(|p| (key(p), 10)).collect();
        let mut cache = Cache::new();
        for (p, t) in [(0, 500), (1, 100), (2, 900)] {
            cache.entry(key(p)).or_default().insert(5, at(t));
        }
        let chosen = choose(wanted, &cache, 3);
        let picked: Vec<i32> = chosen.iter().map(|(k, _)| k.1).collect();
        assert_eq!(
            picked,
            vec![3, 4, 1],
            "never read (3, 4) and the oldest cached (1)"
        );
    }

    #[test]
    fn an_unfetched_move_falls_back_to_an_older_time_and_the_cache_stays_small() {
        let p = |committed: i64| crate::observation::PartitionOffsets {
            topic: "t".into(),
            partition: 0,
            committed: Some(committed),
            log_end: 100,
            log_start: Some(0),
            next_record: None,
        };
        let group = |c: i64| GroupOffsets {
            group: "g".into(),
            partitions: vec![p(c)],
            sampled_at: Timestamp(0),
            unavailable: Vec::new(),
        };
        let mut cache = Cache::new();
        let key = ("t".to_string(), 0);
        for (o, t) in [(10, 1_000), (20, 2_000), (30, 3_000)] {
            cache.entry(key.clone()).or_default().insert(o, at(t));
        }
        let mut groups = vec![group(25)];
        // As `fill` does when the move to 25 was not fetched: the time of 20 (older) stands in.
        for q in groups.iter_mut().flat_map(|g| g.partitions.iter_mut()) {
            q.next_record =
                from(q).and_then(|from| cache[&key].range(..=from).next_back().map(|(_, r)| *r));
        }
        assert_eq!(
            groups[0].partitions[0].next_record.unwrap().at,
            Timestamp(2_000)
        );
        prune(&mut cache, &groups);
        let kept: Vec<i64> = cache[&key].keys().copied().collect();
        assert_eq!(
            kept,
            vec![20, 30],
            "the fallback for 25 and what is ahead of it"
        );
        let done = vec![group(100)];
        prune(&mut cache, &done);
        assert!(cache.is_empty(), "nothing left to consume: nothing cached");
    }
}
