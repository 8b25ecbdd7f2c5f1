//! Time lag on a real broker (tansu 0.6.0): records produced with known timestamps, offsets
//! committed at known places; the age of the oldest unconsumed record `catchup lag` reports equals
//! the truth within a second and what kafka-python reads independently.
//!
//! tansu 0.6.0 keeps the producer's timestamp even on a `message.timestamp.type=LogAppendTime`
//! topic, enforces no `retention.ms` and has no DeleteRecords (its SQLite engine panics on it):
//! loss below the log start is shown on the engine's unit tests and the simulator
//! (`docs/tansu.md`).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use catchup_testkit::{Broker, create_topic};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use super::kafka::commit;
use super::{catchup, stderr, stdout};

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces one record per timestamp to `partition`, in order, each stamped (CreateTime) as given.
pub(crate) async fn produce_at(bootstrap: &str, topic: &str, partition: i32, stamps: &[i64]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for t in stamps {
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload("x")
                    .timestamp(*t),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

fn python_times(bootstrap: &str, group: &str) -> BTreeMap<String, (i64, Option<i64>, Option<i64>)> {
    let script = super::root().join("tests/integration/python/record_time.py");
    let out = Command::new("python3")
        .arg(script)
        .args([bootstrap, group])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "kafka-python cross-check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_lag_equals_the_truth_and_kafka_python() {
    let broker = Broker::start("time-lag");
    let b = &broker.bootstrap;
    create_topic(b, "events", 3, &[]).await;
    let t0 = now_ms();
    // Partition 0: a record a minute from 5 h ago; 1: a record a second from 2 h ago; 2: from
    // 10 minutes ago, and the group will have consumed it all.
    let p0: Vec<i64> = (0..10).map(|i| t0 - 5 * 3_600_000 + i * 60_000).collect();
    let p1: Vec<i64> = (0..10).map(|i| t0 - 2 * 3_600_000 + i * 1_000).collect();
    let p2: Vec<i64> = (0..4).map(|i| t0 - 600_000 + i * 1_000).collect();
    produce_at(b, "events", 0, &p0).await;
    produce_at(b, "events", 1, &p1).await;
    produce_at(b, "events", 2, &p2).await;
    commit(b, "enrich", "events", &[(0, 3), (1, 7), (2, 4)]);

    let out = catchup(&[
        "lag",
        "--bootstrap-server",
        b,
        "--group",
        "enrich",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let at = v["at"].as_i64().expect("the read's time");
    let group = &v["groups"][0];
    let parts: BTreeMap<i64, &Value> = group["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["partition"].as_i64().unwrap(), p))
        .collect();
    // The truth: the age at the read of the record at each committed offset.
    let truth = [(0, p0[3]), (1, p1[7])];
    for (p, stamp) in truth {
        let got = parts[&p]["time_lag_secs"].as_f64().expect("known");
        let want = (at - stamp) as f64 / 1000.0;
        assert!(
            (got - want).abs() <= 1.0,
            "partition {p}: {got} s vs {want} s"
        );
        assert_eq!(parts[&p]["next_record"]["at"].as_i64(), Some(stamp));
        assert_eq!(parts[&p]["next_record"]["kind"], "create_time");
    }
    assert_eq!(
        parts[&2]["time_lag_secs"].as_f64(),
        Some(0.0),
        "consumed everything"
    );
    let worst = group["time_lag_secs"].as_f64().unwrap();
    assert!(
        (worst - (at - p0[3]) as f64 / 1000.0).abs() <= 1.0,
        "{worst}"
    );

    // kafka-python, reading the same records itself.
    let py = python_times(b, "enrich");
    for (p, stamp) in truth {
        let (committed, ts, kind) = py[&format!("events-{p}")];
        assert_eq!(
            (ts, kind),
            (Some(stamp), Some(0)),
            "partition {p} at {committed}"
        );
    }
    assert_eq!(py["events-2"].1, None, "nothing left on partition 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_clock_in_the_future_reads_unknown_never_zero() {
    let broker = Broker::start("time-lag-future");
    let b = &broker.bootstrap;
    create_topic(b, "events", 1, &[]).await;
    let t0 = now_ms();
    produce_at(b, "events", 0, &[t0 - 60_000, t0 + 86_400_000, t0]).await;
    commit(b, "enrich", "events", &[(0, 1)]);
    let out = catchup(&[
        "lag",
        "--bootstrap-server",
        b,
        "--group",
        "enrich",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let p = &v["groups"][0]["partitions"][0];
    assert_eq!(p["lag"].as_i64(), Some(2));
    assert_eq!(p["next_record"]["at"].as_i64(), Some(t0 + 86_400_000));
    assert!(p["time_lag_secs"].is_null(), "unknown, not 0: {p}");
    assert!(v["groups"][0]["time_lag_secs"].is_null());
    let text = catchup(&["lag", "--bootstrap-server", b, "--group", "enrich"]);
    assert!(
        stdout(&text).contains("time lag unknown"),
        "{}",
        stdout(&text)
    );
}

/// The reader a running controller keeps: after the group moves, the next read fetches the
/// record at the new committed offset (not the cached, older one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_offset_is_read_again_by_the_same_reader() {
    let broker = Broker::start("time-lag-moved");
    let b = &broker.bootstrap;
    create_topic(b, "events", 2, &[]).await;
    let t0 = now_ms() - 3_600_000;
    let stamps: Vec<i64> = (0..10).map(|i| t0 + i * 60_000).collect();
    produce_at(b, "events", 0, &stamps).await;
    produce_at(b, "events", 1, &stamps).await;
    let conn = catchup::kafka::Connection {
        bootstrap_servers: b.clone(),
        ..Default::default()
    };
    let reader =
        catchup::sensors::lag::LagReader::with_record_budget(&conn, Duration::from_secs(10), 256)
            .expect("reader");
    let group = ["enrich".to_string()];
    for offset in [2, 5, 8] {
        commit(b, "enrich", "events", &[(0, offset), (1, offset)]);
        let read = reader
            .read_groups(&group, catchup::units::Timestamp(now_ms()))
            .expect("read");
        for p in &read.read[0].partitions {
            let r = p.next_record.expect("a record time");
            assert_eq!(
                (r.offset, r.at.0),
                (offset, stamps[offset as usize]),
                "partition {} after the group moved to {offset}",
                p.partition
            );
        }
    }
}
