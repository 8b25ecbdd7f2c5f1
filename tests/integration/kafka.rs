//! Lag against a real Kafka-compatible broker (tansu 0.6.0, SQLite engine, started here), exact on
//! a known produce/commit pattern and equal to what kafka-python reports.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use catchup_testkit::{Broker, create_topic, produce};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use super::{catchup, stderr, stdout};

/// Starts tansu with its SQLite engine on a free loopback port.
fn start_broker(name: &str) -> Broker {
    Broker::start(name)
}

pub(crate) fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
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
    create_topic(&broker.bootstrap, "orders", 3, &[]).await;
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

pub(crate) async fn describe(
    bootstrap: &str,
    topic: &str,
) -> BTreeMap<String, (Option<String>, String)> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let r = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe")
        .pop()
        .unwrap()
        .expect("resource");
    r.entries
        .into_iter()
        .map(|e| (e.name, (e.value, format!("{:?}", e.source))))
        .collect()
}

pub(crate) fn retention(args: &[&str]) -> std::process::Output {
    let mut full = vec!["retention"];
    full.extend_from_slice(args);
    catchup(&full)
}

/// `catchup retention lower` of `topic` to `to`, with a fresh copy-lag reading of 0 for the one
/// broker (the guard refuses to lower without one).
fn lower(bootstrap: &str, dir: &str, topic: &str, to: &str, reason: &str) -> std::process::Output {
    let disk = caught_up_disk_file(dir);
    retention(&[
        "lower",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--to",
        to,
        "--state-dir",
        dir,
        "--reason",
        reason,
        "--disk-file",
        &disk,
    ])
}

/// A disk-source file (written now, so fresh) saying the one broker's uploads are caught up.
pub(crate) fn caught_up_disk_file(dir: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let file = format!("{dir}.disk.json");
    std::fs::write(
        &file,
        r#"{"brokers": [{"broker": 1, "used_bytes": 100, "capacity_bytes": 1000, "copy_lag_bytes": 0}]}"#,
    )
    .unwrap();
    file
}

/// A person changes `key` of `topic` with another tool (kafka-python), not catchup.
pub(crate) fn alter_by_hand(bootstrap: &str, topic: &str, key: &str, value: &str) {
    let script = crate::root().join("tests/integration/python/alter.py");
    let out = Command::new("python3")
        .arg(script)
        .args([bootstrap, topic, key, value])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "alter.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn state_dir(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("catchup-retention-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.to_string_lossy().into_owned()
}

const TIERED: [(&str, &str); 4] = [
    ("remote.storage.enable", "true"),
    ("retention.ms", "259200000"),
    ("cleanup.policy", "delete"),
    ("max.message.bytes", "2000000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_and_restore_bring_back_exactly_the_original_configs() {
    let broker = start_broker("retention");
    let b = broker.bootstrap.as_str();
    let mut explicit = TIERED.to_vec();
    explicit.push(("local.retention.ms", "14400000"));
    create_topic(b, "explicit", 1, &explicit).await;
    create_topic(b, "inherited", 1, &TIERED).await;
    let dir = state_dir("lower");
    for topic in ["explicit", "inherited"] {
        let before = describe(b, topic).await;
        let out = lower(b, &dir, topic, "2h", "test");
        assert!(out.status.success(), "{}", stderr(&out));
        let lowered = describe(b, topic).await;
        assert_eq!(lowered["local.retention.ms"].0.as_deref(), Some("7200000"));
        let strip = |m: &BTreeMap<String, (Option<String>, String)>| {
            m.iter()
                .filter(|(k, _)| *k != "local.retention.ms")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            strip(&lowered),
            strip(&before),
            "{topic}: nothing but local.retention.ms changed"
        );

        let status = retention(&[
            "status",
            "--bootstrap-server",
            b,
            "--state-dir",
            &dir,
            "--json",
        ]);
        assert!(
            stdout(&status).contains("\"verified\""),
            "{}",
            stdout(&status)
        );

        let out = retention(&[
            "restore",
            "--bootstrap-server",
            b,
            "--topic",
            topic,
            "--state-dir",
            &dir,
            "--reason",
            "test done",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            describe(b, topic).await,
            before,
            "{topic}: every key, value and source as before"
        );
    }
    let journal = std::fs::read_to_string(format!("{dir}/retention-journal.json")).unwrap();
    assert!(
        journal.contains("\"version\": 2") && journal.contains("\"restored\""),
        "{journal}"
    );
    let audit = std::fs::read_to_string(format!("{dir}/audit.jsonl")).unwrap();
    assert_eq!(
        audit.lines().count(),
        4,
        "two lowerings and two restores are audited:\n{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_untiered_below_the_floor_and_after_an_outside_change() {
    let broker = start_broker("refusals");
    let b = broker.bootstrap.as_str();
    create_topic(b, "plain", 1, &[("local.retention.ms", "14400000")]).await;
    let mut tiered = TIERED.to_vec();
    tiered.push(("local.retention.ms", "14400000"));
    create_topic(b, "tiered", 1, &tiered).await;
    let dir = state_dir("refusals");

    let out = lower(b, &dir, "plain", "2h", "x");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("remote.storage.enable is not true"),
        "{}",
        stderr(&out)
    );
    let out = lower(b, &dir, "tiered", "10m", "x");
    assert!(
        stderr(&out).contains("below the floor of 1h"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        describe(b, "tiered").await["local.retention.ms"]
            .0
            .as_deref(),
        Some("14400000")
    );

    // We lower; a person sets another value; we must never overwrite them.
    let out = lower(b, &dir, "tiered", "2h", "x");
    assert!(out.status.success(), "{}", stderr(&out));
    alter_by_hand(b, "tiered", "local.retention.ms", "10800000");
    let out = lower(b, &dir, "tiered", "1h", "x");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("changed by someone else"),
        "{}",
        stderr(&out)
    );
    let out = retention(&[
        "restore",
        "--bootstrap-server",
        b,
        "--all",
        "--state-dir",
        &dir,
        "--reason",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1), "restore refuses too: hands off");
    assert_eq!(
        describe(b, "tiered").await["local.retention.ms"]
            .0
            .as_deref(),
        Some("10800000"),
        "the person's value stands"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_journal_and_alter_or_alter_and_verify_is_finished_on_the_next_start() {
    let broker = start_broker("crash");
    let b = broker.bootstrap.as_str();
    let mut tiered = TIERED.to_vec();
    tiered.push(("local.retention.ms", "14400000"));
    create_topic(b, "t", 1, &tiered).await;
    let original = describe(b, "t").await;
    for (point, expect_value) in [("after-intent", "14400000"), ("after-alter", "7200000")] {
        let dir = state_dir(point);
        let out = Command::new(env!("CARGO_BIN_EXE_catchup"))
            .args([
                "retention",
                "lower",
                "--bootstrap-server",
                b,
                "--topic",
                "t",
                "--to",
                "2h",
                "--state-dir",
                &dir,
                "--reason",
                "crash test",
                "--disk-file",
                &caught_up_disk_file(&dir),
            ])
            .env("CATCHUP_CRASH_AT", point)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: the process died");
        assert_eq!(
            describe(b, "t").await["local.retention.ms"].0.as_deref(),
            Some(expect_value),
            "{point}"
        );
        let status = retention(&[
            "status",
            "--bootstrap-server",
            b,
            "--state-dir",
            &dir,
            "--json",
        ]);
        assert!(status.status.success(), "{}", stderr(&status));
        assert!(
            stderr(&status).contains("t: the journal's entry is"),
            "{point}: {}",
            stderr(&status)
        );
        // After the intent the write's outcome is unknown (a crash mid-request may still land it):
        // it stays pending, the controller's own if it shows up; after the alter it is read back.
        let expected_phase = if point == "after-intent" {
            "\"intent\""
        } else {
            "\"verified\""
        };
        assert!(
            stdout(&status).contains(expected_phase),
            "{point}: {}",
            stdout(&status)
        );
        let out = retention(&[
            "restore",
            "--bootstrap-server",
            b,
            "--all",
            "--state-dir",
            &dir,
            "--reason",
            "clean up",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            describe(b, "t").await,
            original,
            "{point}: back to the original"
        );
    }
}

/// tansu 0.6.0's SQLite engine cannot describe groups: membership-based rate sharing must fall back to
/// the configured instance count with a clear message, and the lag reader must keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_falls_back_when_the_broker_cannot_say() {
    let broker = start_broker("members");
    create_topic(&broker.bootstrap, "orders", 1, &[]).await;
    commit(&broker.bootstrap, "billing", "orders", &[(0, 0)]);
    let conn = catchup::kafka::Connection {
        bootstrap_servers: broker.bootstrap.clone(),
        ..Default::default()
    };
    let reader = catchup::sensors::lag::LagReader::new(&conn, Duration::from_secs(3)).unwrap();
    let members = tokio::task::spawn_blocking(move || {
        let m = reader.members(&["billing".to_string()]);
        let lag = reader.read_group("billing", catchup::units::Timestamp(0));
        (m, lag)
    })
    .await
    .unwrap();
    eprintln!("members on tansu: {:?}", members.0);
    match members.0 {
        Err(e) => assert!(e.to_string().contains("DescribeGroups of billing"), "{e}"),
        Ok(counts) => assert_eq!(counts, vec![("billing".to_string(), 0)], "no live member"),
    }
    assert!(
        members.1.is_ok(),
        "lag still reads after a failed DescribeGroups: {:?}",
        members.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_reads_survive_a_broker_restart() {
    let mut broker = start_broker("restart");
    create_topic(&broker.bootstrap, "orders", 2, &[]).await;
    produce(&broker.bootstrap, "orders", &[30, 20]).await;
    commit(&broker.bootstrap, "billing", "orders", &[(0, 10), (1, 20)]);
    let conn = catchup::kafka::Connection {
        bootstrap_servers: broker.bootstrap.clone(),
        ..Default::default()
    };
    let reader = std::sync::Arc::new(
        catchup::sensors::lag::LagReader::new(&conn, Duration::from_secs(5)).unwrap(),
    );
    let read = |reader: std::sync::Arc<catchup::sensors::lag::LagReader>| async move {
        tokio::task::spawn_blocking(move || {
            reader.read_group("billing", catchup::units::Timestamp(0))
        })
        .await
        .unwrap()
    };
    let before = read(reader.clone()).await.expect("lag before the restart");
    assert_eq!(before.total_lag(), Some(20));

    // Stop the broker: the same reader reports the failure instead of hanging or crashing.
    broker.stop();
    assert!(
        read(reader.clone()).await.is_err(),
        "a stopped broker is an error"
    );
    // Restart it on the same port and database: the same reader recovers.
    broker.restart();
    let mut after = Err(catchup::sensors::SensorError::NoData {
        sensor: catchup::sensors::SensorKind::Lag,
        reason: "not read".into(),
    });
    for _ in 0..30 {
        after = read(reader.clone()).await;
        if after.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = after.expect("lag after the restart");
    assert_eq!(
        after.partitions, before.partitions,
        "same offsets after the restart"
    );
    drop(broker);
}

/// A process killed on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`; returns the CA file.
fn make_certificates(dir: &std::path::Path, ca: &str) -> String {
    let key = format!("{ca}.key");
    let pem = format!("{ca}.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            "/CN=catchup test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &pem,
            "-CAkey",
            &key,
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    dir.join(&pem).to_str().unwrap().to_string()
}

/// TLS end to end (librdkafka built with OpenSSL): tansu behind a socat TLS front that the broker
/// advertises, so every connection is TLS. `catchup lag` with the right CA reads exact lag; with
/// another CA it refuses the broker's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_over_tls_verifies_the_broker_certificate() {
    let dir = std::env::temp_dir().join(format!("catchup-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let other_ca = make_certificates(&dir, "other-ca");
    let ca = make_certificates(&dir, "ca");
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tls = format!("127.0.0.1:{tls_port}");
    let broker = Broker::start_advertising("tls", Some(&tls));
    let _front = Killed(
        Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ))
            .arg(format!("TCP:{}", broker.bootstrap))
            .spawn()
            .expect("socat runs (apt-get install socat)"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&tls).is_err() {
        assert!(std::time::Instant::now() < deadline, "socat did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ssl = |c: &mut ClientConfig| {
        c.set("bootstrap.servers", &tls)
            .set("security.protocol", "SSL")
            .set("ssl.ca.location", &ca);
    };
    let mut config = ClientConfig::new();
    ssl(&mut config);
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                "orders",
                2,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics over TLS")
        .into_iter()
        .for_each(|r| {
            r.expect("topic created");
        });
    let producer: rdkafka::producer::FutureProducer = config.create().unwrap();
    for (partition, n) in [(0, 7), (1, 5)] {
        for i in 0..n {
            producer
                .send(
                    rdkafka::producer::FutureRecord::<(), _>::to("orders")
                        .partition(partition)
                        .payload(&format!("r{i}")),
                    Duration::from_secs(10),
                )
                .await
                .expect("produce over TLS");
        }
    }
    let mut consumer_config = config.clone();
    consumer_config.set("group.id", "billing");
    let consumer: BaseConsumer = consumer_config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Offset(2))
        .unwrap();
    tpl.add_partition_offset("orders", 1, Offset::Offset(1))
        .unwrap();
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("commit over TLS");

    let lag = |ca: &str| {
        catchup(&[
            "lag",
            "--bootstrap-server",
            &tls,
            "--security-protocol",
            "SSL",
            "--ssl-ca-location",
            ca,
            "--group",
            "billing",
            "--timeout",
            "5s",
            "--json",
        ])
    };
    let out = lag(&ca);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["groups"][0]["total_lag"], 9, "(7 - 2) + (5 - 1): {v}");
    let out = lag(&other_ca);
    assert!(
        !out.status.success(),
        "a certificate from another CA must be refused"
    );
    assert!(stderr(&out).contains("unavailable"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
