//! Extending an input topic's total retention on a real broker (tansu 0.6.0), through `catchup
//! run`: a group holding records 2 days 19 hours old on 3-day topics. The controller raises
//! `retention.ms` of the allow-listed tiered topic just enough (and only that key), never above the
//! policy's cap, never on a topic that is not tiered; a person's value is never overwritten; once
//! the group has consumed everything, the topic's DescribeConfigs is exactly as before.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use catchup_testkit::{Broker, create_topic};

use crate::faults::{
    Controller, disk, eventually, free_port, fresh_dir, journal, write_run_config,
};
use crate::kafka::{alter_by_hand, commit, describe};
use crate::time_lag::{now_ms, produce_at};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const THREE_DAYS: &str = "259200000";

type Configs = BTreeMap<String, (Option<String>, String)>;

fn retention(c: &Configs) -> Option<String> {
    c["retention.ms"].0.clone()
}

/// Everything but `retention.ms`.
fn others(c: &Configs) -> Configs {
    c.iter()
        .filter(|(k, _)| *k != "retention.ms")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn configure(dir: &Path, bootstrap: &str, port: u16) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("policy.toml"),
        r#"
[input]
margin = "6h"
[[input.extend]]
topic = "events"
max_retention = "7d"
[[input.extend]]
topic = "capped"
max_retention = "74h"
[[input.extend]]
topic = "manual"
max_retention = "7d"
[[input.extend]]
topic = "plain"
max_retention = "7d"
[[groups]]
name = "ingest"
max_rate = 1000
[[retention.topics]]
name = "out"
"#,
    )
    .expect("policy");
    write_run_config(dir, bootstrap, port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_raises_just_enough_within_the_cap_and_restores_exactly() {
    let broker = Broker::start("extension");
    let b = broker.bootstrap.clone();
    let tiered = [
        ("remote.storage.enable", "true"),
        ("local.retention.ms", "14400000"),
        ("retention.ms", THREE_DAYS),
        ("cleanup.policy", "delete"),
    ];
    for topic in ["events", "capped", "manual", "out"] {
        create_topic(&b, topic, 1, &tiered).await;
    }
    create_topic(&b, "plain", 1, &[("retention.ms", THREE_DAYS)]).await;
    // Ten records per topic, the oldest 2 days 19 h 30 min old; the group has consumed none.
    let t0 = now_ms() - 2 * DAY - 19 * HOUR - 30 * 60_000;
    let stamps: Vec<i64> = (0..10).map(|i| t0 + i * 1_000).collect();
    let mut before = BTreeMap::new();
    for topic in ["events", "capped", "manual", "plain"] {
        produce_at(&b, topic, 0, &stamps).await;
        commit(&b, "ingest", topic, &[(0, 0)]);
        before.insert(topic, describe(&b, topic).await);
    }

    let dir = fresh_dir("extension");
    let port = free_port();
    configure(&dir, &b, port);
    disk(&dir, 50);
    let c = Controller::start(&dir, port, None);

    // Needed: age + 2 margins = 3d7h30m and a bit; raised to that plus a margin, rounded up to the
    // hour: 3d14h. "capped" needs the same but its cap is 74h.
    let raised = eventually(Duration::from_secs(60), async || {
        retention(&describe(&b, "events").await).as_deref() == Some("309600000")
            && retention(&describe(&b, "capped").await).as_deref() == Some("266400000")
            && retention(&describe(&b, "manual").await).as_deref() == Some("309600000")
    })
    .await;
    let status = c.status().await.unwrap_or_default();
    assert!(
        raised,
        "events and manual raised to 3d14h, capped to its 74h cap; status {:#}\nlog {}",
        status["decision"]["extensions"],
        std::fs::read_to_string(dir.join("log-run")).unwrap_or_default()
    );
    for topic in ["events", "capped", "manual"] {
        let now = describe(&b, topic).await;
        assert_eq!(
            others(&now),
            others(&before[topic]),
            "{topic}: only retention.ms changed"
        );
    }
    // Not tiered: never touched, and said why.
    assert_eq!(describe(&b, "plain").await, before["plain"]);
    let alerts = status["decision"]["alerts"].to_string();
    assert!(
        alerts.contains("topic_not_tiered") && alerts.contains("plain"),
        "{alerts}"
    );

    // A person raises "manual" further with another tool: the controller's hands are off it.
    alter_by_hand(&b, "manual", "retention.ms", "432000000");
    let drifted = eventually(Duration::from_secs(30), async || {
        journal(&dir).contains("drifted")
    })
    .await;
    assert!(
        drifted,
        "the journal records the person's change: {}",
        journal(&dir)
    );

    // The group consumes everything: the extensions come back exactly, the person's value stays.
    for topic in ["events", "capped", "manual", "plain"] {
        commit(&b, "ingest", topic, &[(0, 10)]);
    }
    let restored = eventually(Duration::from_secs(60), async || {
        describe(&b, "events").await == before["events"]
            && describe(&b, "capped").await == before["capped"]
    })
    .await;
    assert!(
        restored,
        "DescribeConfigs of events and capped exactly as before; journal {}",
        journal(&dir)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        retention(&describe(&b, "manual").await).as_deref(),
        Some("432000000"),
        "the person's value is never overwritten"
    );
    let audit = std::fs::read_to_string(dir.join("state/audit.jsonl")).unwrap_or_default();
    let extends = audit
        .lines()
        .filter(|l| l.contains("\"retention.extend\"") && l.contains("\"applied\""))
        .count();
    assert!(
        extends >= 5,
        "three raises and two restores audited: {audit}"
    );
    drop(c);
}
