//! Lag against a real Kafka-compatible broker (tansu 0.6.0, SQLite engine, started here), exact on
//! a known produce/commit pattern and equal to what kafka-python reports.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use super::{catchup, stderr, stdout};

/// A tansu broker in a temporary directory, stopped on drop.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tansu binary: `$TANSU`, else `~/.cargo/bin/tansu`, else `tansu` on the PATH.
fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU") {
        return PathBuf::from(p);
    }
    let cargo_bin =
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    if cargo_bin.exists() {
        cargo_bin
    } else {
        PathBuf::from("tansu")
    }
}

/// Starts tansu with its SQLite engine on a free loopback port.
pub fn start_broker(name: &str) -> Broker {
    let dir = std::env::temp_dir().join(format!("catchup-tansu-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("broker dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
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
        .expect("admin");
    for r in admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

/// Produces `per_partition[i]` records to partition i, in multi-record batches.
async fn produce(bootstrap: &str, topic: &str, per_partition: &[usize]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    let mut deliveries = Vec::new();
    for (partition, n) in per_partition.iter().enumerate() {
        for i in 0..*n {
            let key = format!("{partition}-{i}");
            let record = FutureRecord::to(topic)
                .key(&key)
                .payload("payload")
                .partition(partition as i32);
            deliveries.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueued"),
            );
        }
    }
    for d in deliveries {
        d.await
            .expect("not cancelled")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("add");
    }
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn python_lag(bootstrap: &str, group: &str) -> BTreeMap<String, (Option<i64>, i64)> {
    let script = super::root().join("tests/integration/python/lag.py");
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
    let v: BTreeMap<String, (Option<i64>, i64)> =
        serde_json::from_slice(&out.stdout).expect("cross-check prints JSON");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_exact_and_matches_kafka_python() {
    let broker = start_broker("lag");
    create_topic(&broker.bootstrap, "orders", 3).await;
    produce(&broker.bootstrap, "orders", &[40, 25, 10]).await;
    commit(&broker.bootstrap, "billing", "orders", &[(0, 15), (1, 25)]);
    commit(&broker.bootstrap, "idle", "orders", &[(2, 3)]);

    let out = catchup(&[
        "lag",
        "--bootstrap-server",
        &broker.bootstrap,
        "--group",
        "billing",
        "--group",
        "idle",
        "--group",
        "nobody",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("--json prints JSON");
    let groups = v["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 3);

    let billing = &groups[0];
    assert_eq!(billing["group"], "billing");
    let parts: Vec<(i64, Value, i64, Value)> = billing["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["committed"].clone(),
                p["log_end"].as_i64().unwrap(),
                p["lag"].clone(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        vec![
            (0, Value::from(15), 40, Value::from(25)),
            (1, Value::from(25), 25, Value::from(0)),
            (2, Value::Null, 10, Value::Null),
        ],
        "exact per partition; no commit on partition 2 is null, not zero"
    );
    assert_eq!(
        billing["total_lag"],
        Value::Null,
        "unknown while a partition has no commit"
    );
    assert_eq!(groups[1]["partitions"][2]["lag"], 7);
    assert_eq!(
        groups[2]["partitions"],
        Value::Array(vec![]),
        "a group with no commits has no partitions"
    );

    for group in ["billing", "idle"] {
        let theirs = python_lag(&broker.bootstrap, group);
        let ours: BTreeMap<String, (Option<i64>, i64)> =
            groups.iter().find(|g| g["group"] == group).unwrap()["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        format!("{}-{}", p["topic"].as_str().unwrap(), p["partition"]),
                        (p["committed"].as_i64(), p["log_end"].as_i64().unwrap()),
                    )
                })
                .collect();
        assert_eq!(
            ours, theirs,
            "group {group}: catchup and kafka-python disagree"
        );
    }
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let out = catchup(&[
        "lag",
        "--bootstrap-server",
        "127.0.0.1:1",
        "--group",
        "g",
        "--timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("reading the lag of group \"g\" from 127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

async fn create_topic_with(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    for r in admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create")
    {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}
