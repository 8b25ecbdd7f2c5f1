//! The gated consumer against a real Kafka-compatible broker (tansu 0.6.0, SQLite engine, started
//! here on a free loopback port) and the real catchup API serving the gate.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use catchup::config::{ApiConfig, ClusterConfig, GateConfig, Mode, RunConfig};
use catchup::policy::{Gate, GroupPolicy, Policy, RateUnit};
use catchup::runtime::{Controller, WallClock};
use catchup::units::{Dur, Timestamp};
use catchup_client::{GateClient, GatedConsumer};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A tansu broker in a temporary directory, stopped on drop.
struct Broker {
    child: Child,
    bootstrap: String,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = PathBuf::from(home).join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        return cargo_bin;
    }
    PathBuf::from("tansu")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_broker(name: &str) -> Broker {
    let dir = std::env::temp_dir().join(format!("catchup-tansu-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("broker dir");
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "sqlite://tansu.db",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start tansu ({}): {e}; scripts/test.sh installs it",
                tansu().display()
            )
        });
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&bootstrap).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on {bootstrap}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Broker {
        child,
        bootstrap,
        dir,
    }
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

async fn produce(bootstrap: &str, topic: &str, count: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    // Enqueue everything (librdkafka batches it into multi-record batches), then wait for delivery.
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let key = i.to_string();
        let record = FutureRecord::to(topic).key(&key).payload("x");
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueued"),
        );
    }
    for d in deliveries {
        d.await
            .expect("not cancelled")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
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
        state_dir: dir,
        api: ApiConfig::default(),
        gate: GateConfig::default(),
        cluster: ClusterConfig::Simulator {
            scenario: "unused".into(),
            speed: 1.0,
        },
    };
    let (ctl, _commands) =
        Controller::new(config, policy, None, Arc::new(WallClock)).expect("controller");
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
    let far = Timestamp(catchup::runtime::wall_now().0 + 3_600_000);
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
    create_topic(&broker.bootstrap, "events", 3).await;
    produce(&broker.bootstrap, "events", 12_000).await;
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
    create_topic(&broker.bootstrap, "events", 4).await;
    let (url, ctl) = gate_server("pause-group").await;
    publish(&ctl, "pause-group", Gate::Paused);
    let mut a = consumer(
        &broker.bootstrap,
        "pause-group",
        "events",
        GateClient::spawn(&url, "pause-group", 10.0),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    produce(&broker.bootstrap, "events", 400).await;
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
