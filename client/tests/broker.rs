//! The gated consumer against a real Kafka-compatible broker (tansu 0.6.0, SQLite engine, started
//! here on a free loopback port) and the real catchup API serving the gate.
//!
//! Needs the tansu broker: runs with the `external` feature (`scripts/test.sh` turns it on).
#![cfg(feature = "external")]
// Tests, benchmarks and examples measure and wait in real time; the clock ban is for the
// controller's code.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use catchup::clock::WallClock;
use catchup::config::{ApiConfig, ClusterConfig, GateConfig, Mode, RunConfig};
use catchup::policy::{Gate, GroupPolicy, Policy, RateUnit};
use catchup::runtime::Controller;
use catchup::store::{Holder, StateDir};
use catchup::units::{Dur, Timestamp};
use catchup_client::{GateClient, GatedConsumer};
use catchup_testkit::{Broker, create_topic, produce_spread};
use rdkafka::ClientConfig;

fn start_broker(name: &str) -> Broker {
    Broker::start(name)
}

/// The catchup API with one group's gate, published by hand (no control loop).
async fn gate_server(group: &str) -> (String, Arc<Controller>) {
    let mut policy = Policy::default();
    policy.groups.push(GroupPolicy {
        name: group.into(),
        unit: RateUnit::Records,
        max_rate: None,
        min_rate: None,
        lag_threshold: None,
        priority: Default::default(),
        exempt: false,
    });
    let dir = std::env::temp_dir().join(format!(
        "catchup-client-gate-{group}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let config = RunConfig {
        mode: Mode::Active,
        tick: Dur::from_secs(30),
        sensor_timeout: Dur::from_secs(10),
        policy: None,
        state_dir: dir.clone(),
        api: ApiConfig::default(),
        gate: GateConfig::default(),
        cluster: ClusterConfig::Simulator {
            scenario: "unused".into(),
            speed: 1.0,
        },
        retention_actions: true,
        ha: None,
    };
    let store = StateDir::open(&dir, Holder::this_process("test")).expect("state directory");
    let (ctl, _commands) = Controller::new(
        config,
        policy,
        Arc::new(store),
        Default::default(),
        Arc::new(WallClock),
    )
    .expect("controller");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(catchup::api::serve(
        listener,
        ctl.clone(),
        std::future::pending(),
    ));
    (url, ctl)
}

fn publish(ctl: &Controller, group: &str, gate: Gate) {
    let far = Timestamp(catchup::clock::wall_now().0 + 3_600_000);
    ctl.gates
        .publish_gate(group, &gate, far, &["test".to_string()])
        .expect("registered group");
}

fn consumer(bootstrap: &str, group: &str, topic: &str, gate: GateClient) -> GatedConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    GatedConsumer::new(config, &[topic], gate).expect("consumer")
}

/// Consumes for `secs`, returning how many messages were handed out.
async fn consume_for(c: &mut GatedConsumer, secs: f64) -> usize {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0;
    while Instant::now() < until {
        n += c
            .next_batch(100, Duration::from_millis(200))
            .await
            .expect("batch")
            .len();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_consumer_runs_at_the_gates_rate() {
    let broker = start_broker("rate");
    create_topic(&broker.bootstrap, "events", 3, &[]).await;
    produce_spread(&broker.bootstrap, "events", 12_000).await;
    let (url, ctl) = gate_server("rate-group").await;
    publish(
        &ctl,
        "rate-group",
        Gate::Throttled {
            rate: 200.0,
            burst: 50.0,
            unit: RateUnit::Records,
        },
    );
    let gate = GateClient::spawn(&url, "rate-group", 10.0);
    let mut c = consumer(&broker.bootstrap, "rate-group", "events", gate);
    // Wait for the assignment and the first message, then measure 20 s.
    let warm = Instant::now();
    while c
        .next_batch(1, Duration::from_millis(500))
        .await
        .expect("batch")
        .is_empty()
    {
        assert!(
            warm.elapsed() < Duration::from_secs(30),
            "no message within 30 s"
        );
    }
    let start = Instant::now();
    let n = consume_for(&mut c, 20.0).await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    eprintln!("gated consumer: {n} records in 20 s = {rate:.1}/s against a gate of 200/s");
    assert!(
        (180.0..=220.0).contains(&rate),
        "consumed {n} in 20 s = {rate:.1}/s; the gate says 200/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_delivered_while_paused_even_across_a_rebalance() {
    let broker = start_broker("pause");
    create_topic(&broker.bootstrap, "events", 4, &[]).await;
    let (url, ctl) = gate_server("pause-group").await;
    publish(&ctl, "pause-group", Gate::Paused);
    let mut a = consumer(
        &broker.bootstrap,
        "pause-group",
        "events",
        GateClient::spawn(&url, "pause-group", 10.0),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    produce_spread(&broker.bootstrap, "events", 400).await;
    assert_eq!(
        consume_for(&mut a, 4.0).await,
        0,
        "paused: nothing handed out"
    );

    // A second member joins (rebalance), both stay paused; then it leaves (another rebalance).
    let mut b = consumer(
        &broker.bootstrap,
        "pause-group",
        "events",
        GateClient::spawn(&url, "pause-group", 10.0),
    );
    let (na, nb) = tokio::join!(consume_for(&mut a, 8.0), consume_for(&mut b, 8.0));
    assert_eq!((na, nb), (0, 0), "paused across the join rebalance");
    drop(b);
    assert_eq!(
        consume_for(&mut a, 8.0).await,
        0,
        "paused across the leave rebalance"
    );

    publish(&ctl, "pause-group", Gate::Open);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut total = 0;
    while total < 400 && Instant::now() < deadline {
        total += consume_for(&mut a, 1.0).await;
    }
    assert_eq!(
        total, 400,
        "every message arrives after the resume, none lost"
    );
}

/// A wait for permits far longer than `max.poll.interval.ms` (a batch of 40 at 2 records/s, about
/// 20 s, against 7 s): the consumer must stay in its group (pause its assignment and keep polling)
/// so it never hands out messages of partitions it no longer owns. Evicted, librdkafka reports
/// `MaxPollExceeded` on the next poll and the rejoin delivers the uncommitted batch again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_for_permits_keeps_the_consumer_in_its_group() {
    use rdkafka::Message;
    use std::collections::BTreeSet;
    let broker = start_broker("long-wait");
    create_topic(&broker.bootstrap, "events", 2, &[]).await;
    produce_spread(&broker.bootstrap, "events", 200).await;
    let (url, ctl) = gate_server("wait-group").await;
    publish(
        &ctl,
        "wait-group",
        Gate::Throttled {
            rate: 2.0,
            burst: 2.0,
            unit: RateUnit::Records,
        },
    );
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "wait-group")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "7000");
    let gate = GateClient::spawn(&url, "wait-group", 10.0);
    let mut c = GatedConsumer::new(config, &["events"], gate).expect("consumer");
    let mut seen = BTreeSet::new();
    let take = |batch: Vec<rdkafka::message::OwnedMessage>, seen: &mut BTreeSet<(i32, i64)>| {
        for m in batch {
            assert!(
                seen.insert((m.partition(), m.offset())),
                "partition {} offset {} handed out twice: the consumer left its group during the wait",
                m.partition(),
                m.offset()
            );
        }
    };
    let warm = Instant::now();
    while seen.is_empty() {
        let batch = c
            .next_batch(1, Duration::from_millis(500))
            .await
            .expect("batch");
        take(batch, &mut seen);
        assert!(
            warm.elapsed() < Duration::from_secs(30),
            "no message within 30 s"
        );
    }

    let started = Instant::now();
    let batch = c
        .next_batch(40, Duration::from_secs(5))
        .await
        .expect("the long wait for permits");
    let waited = started.elapsed();
    eprintln!("waited {waited:?} for {} permits", batch.len());
    assert!(
        batch.len() >= 20 && waited > Duration::from_secs(9),
        "the wait must outlast max.poll.interval.ms (7 s) to test anything: {} messages in {waited:?}",
        batch.len()
    );
    take(batch, &mut seen);

    // Open the gate and read the rest: no poll error, nothing twice, nothing lost.
    publish(&ctl, "wait-group", Gate::Open);
    let deadline = Instant::now() + Duration::from_secs(40);
    while seen.len() < 200 && Instant::now() < deadline {
        let batch = c
            .next_batch(100, Duration::from_millis(200))
            .await
            .expect("no MaxPollExceeded after the long wait");
        take(batch, &mut seen);
    }
    assert_eq!(seen.len(), 200, "every record handed out exactly once");
}

fn write_disk(path: &std::path::Path, percent: u64) {
    let brokers: Vec<String> = (1..=3)
        .map(|b| format!(r#"{{"broker": {b}, "used_bytes": {percent}0, "capacity_bytes": 1000, "copy_lag_bytes": 0}}"#))
        .collect();
    std::fs::write(path, format!(r#"{{"brokers": [{}]}}"#, brokers.join(","))).expect("disk file");
}

async fn get(url: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth("e2e-token-0123456789")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

/// `catchup run`'s code path against tansu: a backlog drains through the gate; a disk source reporting
/// high use makes the controller throttle and lower local retention; once drained and the disk is back
/// to normal, everything is restored, and the audit log tells the story.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_throttle_lower_drain_restore() {
    let broker = start_broker("e2e");
    let b = broker.bootstrap.clone();
    create_topic(&b, "events", 3, &[]).await;
    create_topic(
        &b,
        "enriched",
        1,
        &[
            ("remote.storage.enable", "true"),
            ("local.retention.ms", "14400000"),
            ("retention.ms", "259200000"),
            ("cleanup.policy", "delete"),
        ],
    )
    .await;
    produce_spread(&b, "events", 3000).await;

    let dir = std::env::temp_dir().join(format!("catchup-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.json");
    write_disk(&disk, 77);
    std::fs::write(
        dir.join("policy.toml"),
        r#"
[drain]
lag_threshold = 10
dwell = "10s"
[retention]
floor = "1h"
step_interval = "1m"
restore_step_interval = "1m"
[[retention.topics]]
name = "enriched"
[[groups]]
name = "ingest"
max_rate = 1000
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("catchup.toml"),
        format!(
            r#"
tick = "2s"
sensor_timeout = "1900ms"
policy = "policy.toml"
state_dir = "state"
[api]
listen = "127.0.0.1:0"
[gate]
share = "membership"
[cluster]
kind = "kafka"
[cluster.kafka]
bootstrap_servers = "{b}"
[cluster.disk]
kind = "file"
path = "disk.json"
"#
        ),
    )
    .unwrap();
    let config = catchup::config::RunConfig::load(&dir.join("catchup.toml")).expect("config");
    let (policy, scenario) = catchup::service::load(&config).expect("policy");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let service = tokio::spawn(catchup::service::run(
        "run",
        config,
        policy,
        scenario,
        catchup::config::Tokens::operator(Some("e2e-token-0123456789".into())),
        Box::new(move |a: &str| {
            let _ = tx.send(a.to_string());
        }),
    ));
    let base = format!("http://{}", rx.await.expect("API up"));

    let mut c = consumer(
        &b,
        "ingest",
        "events",
        GateClient::spawn(&base, "ingest", 10.0),
    );
    // Commit as we go so the controller sees the lag shrink.
    let mut consumed = 0;
    let mut throttled = false;
    let mut lowered = false;
    let mut share_fallback = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !(throttled && lowered) {
        consumed += c
            .next_batch(100, Duration::from_millis(200))
            .await
            .unwrap()
            .len();
        let _ = rdkafka::consumer::Consumer::commit_consumer_state(
            c.consumer(),
            rdkafka::consumer::CommitMode::Sync,
        );
        let status = get(&format!("{base}/v1/status")).await;
        throttled |= status["decision"]["groups"]["ingest"]["gate"]["state"] == "throttled";
        share_fallback |= status["decision"]["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["code"] == "gate_share_fallback"));
        lowered |= status["topics"][0]["current_ms"]
            .as_i64()
            .is_some_and(|ms| ms < 14_400_000);
    }
    assert!(
        throttled && lowered,
        "at 77% the controller throttles and lowers retention (throttled {throttled}, lowered {lowered})"
    );
    assert!(
        share_fallback,
        "tansu cannot describe groups: the status says the rate is shared by configuration"
    );

    // The disk recovers; the backlog drains; retention comes back.
    write_disk(&disk, 40);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut restored = false;
    while Instant::now() < deadline && !restored {
        consumed += c
            .next_batch(200, Duration::from_millis(200))
            .await
            .unwrap()
            .len();
        let _ = rdkafka::consumer::Consumer::commit_consumer_state(
            c.consumer(),
            rdkafka::consumer::CommitMode::Sync,
        );
        let status = get(&format!("{base}/v1/status")).await;
        restored = status["decision"]["drained"] == true
            && status["topics"][0]["current_ms"] == 14_400_000;
    }
    assert_eq!(
        consumed, 3000,
        "every record delivered exactly once through the gate"
    );
    assert!(restored, "drained and healthy: local retention back to 4h");

    let audit = get(&format!("{base}/v1/audit?limit=1000")).await;
    let story: Vec<String> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| {
            format!(
                "{} {} {}",
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap(),
                r["outcome"].as_str().unwrap()
            )
        })
        .collect();
    let position = |needle: &str| {
        story
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("{needle} missing from {story:#?}"))
    };
    let first_gate = position("gate ingest applied");
    let first_lower = position("retention enriched applied");
    let last_retention = story
        .iter()
        .rposition(|l| l.starts_with("retention enriched applied"))
        .unwrap();
    assert!(
        first_gate < last_retention && first_lower < last_retention,
        "throttle and lowering come before the restore: {story:#?}"
    );
    service.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
