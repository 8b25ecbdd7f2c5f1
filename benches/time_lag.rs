//! `cargo bench --bench time_lag` (needs tansu: `TANSU` or `~/.cargo/bin/tansu`, which
//! `scripts/test.sh` installs): what the time lag costs a control tick at 1,000 partitions.
//!
//! On tansu (SQLite engine, loopback), one topic of 1,000 partitions, 20 records each, one catch-up
//! group committed on every partition. Three reads, each timed over several runs side by side with
//! the same lag read without record times (budget 0), so the figure is the difference:
//! - cold: no time known yet (the first tick): `budget` partitions fetched;
//! - steady: no committed offset moved: every time from the cache, nothing fetched;
//! - all moved: every committed offset moved since the last tick: `budget` partitions fetched,
//!   the others keep an older time.
//!
//! Prints min and median milliseconds per read and the partitions fetched per read.

#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use catchup::kafka::Connection;
use catchup::sensors::lag::LagReader;
use catchup::units::Timestamp;
use catchup_testkit::{Broker, create_topic, produce};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const PARTITIONS: i32 = 1_000;
const RUNS: usize = 5;

fn commit(bootstrap: &str, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ingest")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("events", p, Offset::Offset(offset))
            .expect("add");
    }
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn stats(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[0], ms[ms.len() / 2])
}

/// One read of the group with each reader: ms with record times, ms without, partitions fetched.
fn once(with: &LagReader, without: &LagReader) -> (f64, f64, usize) {
    let group = ["ingest".to_string()];
    let t = Instant::now();
    let r = with.read_groups(&group, Timestamp(0)).expect("read");
    let a = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(r.read[0].partitions.len(), PARTITIONS as usize);
    let fetched = with.record_stats().expect("a record-time consumer").fetched;
    let t = Instant::now();
    without.read_groups(&group, Timestamp(0)).expect("read");
    (a, t.elapsed().as_secs_f64() * 1e3, fetched)
}

/// `RUNS` reads, each after `before(run)` with the reader it returns: (min, median) ms with
/// times, without, and the partitions fetched by the last.
fn measure<'a>(
    without: &LagReader,
    mut before: impl FnMut(usize) -> &'a LagReader,
) -> ((f64, f64), (f64, f64), usize) {
    let (mut a, mut b, mut fetched) = (Vec::new(), Vec::new(), 0);
    for run in 0..RUNS {
        let with = before(run);
        let (x, y, f) = once(with, without);
        a.push(x);
        b.push(y);
        fetched = f;
    }
    (stats(&mut a), stats(&mut b), fetched)
}

fn main() {
    let broker = Broker::start("bench-time-lag");
    let b = broker.bootstrap.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        create_topic(&b, "events", PARTITIONS, &[]).await;
        produce(&b, "events", &vec![20; PARTITIONS as usize]).await;
    });
    let conn = Connection {
        bootstrap_servers: b.clone(),
        ..Default::default()
    };
    let timeout = Duration::from_secs(10);
    let budget = catchup::sensors::time_lag::DEFAULT_BUDGET;
    let without = LagReader::with_record_budget(&conn, timeout, 0).unwrap();
    println!(
        "time lag on tansu: 1 group x {PARTITIONS} partitions, budget {budget} partitions/tick, {RUNS} runs, min/median ms per read"
    );
    println!(
        "{:<10} {:>18} {:>18} {:>14} {:>10}",
        "read", "with time lag", "without", "extra (median)", "fetched"
    );
    let row = |name: &str, (w, wo, fetched): ((f64, f64), (f64, f64), usize)| {
        println!(
            "{name:<10} {:>8.1} / {:<7.1} {:>8.1} / {:<7.1} {:>14.1} {fetched:>10}",
            w.0,
            w.1,
            wo.0,
            wo.1,
            w.1 - wo.1
        );
    };
    // Cold: a new reader for every run, nothing cached.
    commit(&b, 2);
    let fresh: Vec<LagReader> = (0..RUNS)
        .map(|_| LagReader::with_record_budget(&conn, timeout, budget).unwrap())
        .collect();
    row("cold", measure(&without, |run| &fresh[run]));
    let reader = LagReader::with_record_budget(&conn, timeout, budget).unwrap();
    // Fill the cache (enough budgets to cover every partition).
    for _ in 0..(PARTITIONS as usize).div_ceil(budget) {
        reader
            .read_groups(&["ingest".to_string()], Timestamp(0))
            .unwrap();
    }
    row("steady", measure(&without, |_| &reader));
    row(
        "all moved",
        measure(&without, |run| {
            commit(&b, 3 + run as i64);
            &reader
        }),
    );
    drop(broker);
}
