//! The retention journal in the HA state topic, on tansu (docs/ha.md): a leader lowers a topic and
//! is stopped (SIGTERM: it leaves the group); another instance, whose state directory never held
//! a journal, becomes leader and restores exactly the original the first one recorded. And a file
//! journal of a single instance is imported into the topic once, after which the state directory
//! can be wiped and the original still comes back.
//!
//! And kill -9 in the middle of a lowering: a leader of three that dies between its journal intent
//! and its alter is replaced within 30 s and the original still comes back exactly.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use catchup_testkit::Broker;

use crate::faults::{ORIGINAL, topics};
use crate::ha::{Instance, leaders, logs, poll};
use crate::kafka::{caught_up_disk_file, describe, retention};

/// Disk use of the one broker in percent, copy lag caught up (rewritten now, so fresh).
pub(crate) fn disk(dir: &Path, percent: u64) {
    std::fs::write(
        dir.join("disk.json"),
        format!(
            r#"{{"brokers": [{{"broker": 1, "used_bytes": {percent}0, "capacity_bytes": 1000, "copy_lag_bytes": 0}}]}}"#
        ),
    )
    .expect("disk file");
}

/// The shared configuration of an HA deployment `name` in `dir`.
pub(crate) fn configure(dir: &Path, bootstrap: &str, name: &str) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("policy.toml"),
        r#"
[drain]
lag_threshold = 10
dwell = "1s"
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
    .expect("policy");
    std::fs::write(
        dir.join("catchup.toml"),
        format!(
            r#"
tick = "2s"
sensor_timeout = "1900ms"
policy = "policy.toml"
state_dir = "unused"
[cluster]
kind = "kafka"
[cluster.kafka]
bootstrap_servers = "{bootstrap}"
[cluster.disk]
kind = "file"
path = "disk.json"
[ha]
name = "{name}"
session_timeout = "6s"
"#
        ),
    )
    .expect("config");
}

pub(crate) fn local(configs: &BTreeMap<String, (Option<String>, String)>) -> Option<String> {
    configs["local.retention.ms"].0.clone()
}

/// Disk use the test sets (percent), written fresh every 500 ms by [`keep_disk_fresh`] (one
/// writer, so a change is never overwritten by a stale copy).
pub(crate) type DiskLevel = Arc<AtomicU64>;

pub(crate) fn keep_disk_fresh(dir: &Path, level: &DiskLevel) -> tokio::task::JoinHandle<()> {
    let (dir, level) = (dir.to_path_buf(), level.clone());
    tokio::spawn(async move {
        loop {
            disk(&dir, level.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// Sets the disk level and writes it at once.
pub(crate) fn set_disk(dir: &Path, level: &DiskLevel, percent: u64) {
    level.store(percent, Ordering::SeqCst);
    disk(dir, percent);
}

pub(crate) fn fresh_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("catchup-hajournal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub(crate) fn audit(dir: &Path, id: &str) -> String {
    std::fs::read_to_string(dir.join(id).join("state/audit.jsonl")).unwrap_or_default()
}

/// Whether instance `id` audited `action` on `target`.
fn audited(dir: &Path, id: &str, action: &str, target: &str) -> bool {
    audit(dir, id).lines().any(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|r| r["action"] == action && r["target"] == target)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_restores_exactly_the_original_the_old_leader_recorded() {
    let broker = Broker::start("hajournal-failover");
    let b = broker.bootstrap.clone();
    topics(&b).await;
    let before = describe(&b, "enriched").await;
    let dir = fresh_dir("failover");
    configure(&dir, &b, "journal-fleet");
    let level: DiskLevel = Arc::new(AtomicU64::new(77));
    disk(&dir, 77);
    let toucher = keep_disk_fresh(&dir, &level);
    let ids = ["j0", "j1"];
    let mut instances: Vec<Instance> = ids.iter().map(|id| Instance::start(&dir, id)).collect();
    // The lock may move once while the second instance joins (a rebalance): a leader counts once
    // it has held for 3 s.
    let first = poll(Duration::from_secs(60), async || {
        let l = leaders(&instances).await;
        if l.len() != 1 {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        (leaders(&instances).await == l).then(|| l[0].clone())
    })
    .await;
    let Some((leader, epoch)) = first else {
        panic!("one leader; {}", logs(&dir, &ids));
    };
    // The leader lowers at 77% (retention is on in HA mode).
    let lowered = poll(Duration::from_secs(60), async || {
        let now = local(&describe(&b, "enriched").await);
        now.as_deref().is_some_and(|v| v != ORIGINAL).then_some(now)
    })
    .await;
    assert!(
        lowered.is_some(),
        "the leader {leader} lowers the topic; {}",
        logs(&dir, &ids)
    );
    let li = instances
        .iter()
        .position(|i| i.id == leader)
        .expect("leader");
    let follower = ids.iter().find(|i| **i != leader).expect("follower");
    // The audit record follows the alter's read-back: the topic may show the change first.
    let recorded = poll(Duration::from_secs(30), async || {
        // `retention`, or `retention.settled` when the alter's wait timed out though it landed.
        (audited(&dir, &leader, "retention", "enriched")
            || audited(&dir, &leader, "retention.settled", "enriched"))
        .then_some(())
    })
    .await;
    assert!(
        recorded.is_some(),
        "the leader audited its lowering: {}",
        audit(&dir, &leader)
    );
    assert!(
        audit(&dir, &leader)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("retention")))
            .all(|r| r["epoch"].as_u64() == Some(epoch)),
        "every retention action of the leader carries its epoch {epoch}: {}",
        audit(&dir, &leader)
    );
    assert!(
        !dir.join(follower)
            .join("state/retention-journal.json")
            .exists(),
        "the follower has no file journal: only the state topic can tell it the original"
    );
    // The runbook can read the topic's journal (`retention from-ha`) into an empty directory.
    let copy = dir.join("from-ha");
    let copy_s = copy.to_string_lossy().to_string();
    let out = retention(&[
        "from-ha",
        "--bootstrap-server",
        &b,
        "--state-topic",
        "__catchup-journal-fleet-state",
        "--state-dir",
        &copy_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = std::fs::read_to_string(copy.join("retention-journal.json")).unwrap_or_default();
    assert!(
        copied.contains(ORIGINAL) && copied.contains("enriched"),
        "the copy holds the original: {copied}"
    );
    // The leader stops (SIGTERM: it leaves the group); the follower takes over.
    instances[li].terminate();
    let survivors: Vec<Instance> = {
        let mut all = std::mem::take(&mut instances);
        drop(all.remove(li));
        all
    };
    let next = poll(Duration::from_secs(60), async || {
        let l = leaders(&survivors).await;
        (l.len() == 1 && l[0].1 > epoch).then(|| l[0].clone())
    })
    .await;
    let Some((_, new_epoch)) = next else {
        panic!("{follower} leads in a newer epoch; {}", logs(&dir, &ids));
    };
    // The backlog is gone and the disk healthy: the new leader restores the old leader's original.
    set_disk(&dir, &level, 30);
    let restored = poll(Duration::from_secs(180), async || {
        (describe(&b, "enriched").await == before).then_some(())
    })
    .await;
    let status = survivors[0].get("/v1/status").await.unwrap_or_default();
    assert!(
        restored.is_some(),
        "DescribeConfigs exactly as before the episode, restored by the new leader; now {:?}; status {status:#}\n{}",
        describe(&b, "enriched").await,
        logs(&dir, &ids)
    );
    // The new leader's own audit shows the write that put the original back.
    let by_new_leader = poll(Duration::from_secs(20), async || {
        audit(&dir, follower)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|r| {
                r["action"] == "retention"
                    && r["target"] == "enriched"
                    && r["after"]["value"] == ORIGINAL
                    && r["epoch"].as_u64() == Some(new_epoch)
            })
            .then_some(())
    })
    .await;
    assert!(
        by_new_leader.is_some(),
        "the new leader audited the restore in its epoch {new_epoch}: {}",
        audit(&dir, follower)
    );
    toucher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_journal_is_imported_once_and_a_wiped_state_dir_loses_nothing() {
    let broker = Broker::start("hajournal-import");
    let b = broker.bootstrap.clone();
    topics(&b).await;
    let before = describe(&b, "enriched").await;
    let dir = fresh_dir("import");
    configure(&dir, &b, "importers");
    // High enough that nothing is restored before the state directory is wiped.
    let level: DiskLevel = Arc::new(AtomicU64::new(77));
    disk(&dir, 77);
    // A single instance lowered the topic; its file journal holds the original.
    let state = dir.join("k0").join("state");
    let state_s = state.to_string_lossy().to_string();
    let out = retention(&[
        "lower",
        "--bootstrap-server",
        &b,
        "--topic",
        "enriched",
        "--to",
        "2h",
        "--state-dir",
        &state_s,
        "--reason",
        "before HA",
        "--disk-file",
        &caught_up_disk_file(&state_s),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        local(&describe(&b, "enriched").await).as_deref(),
        Some("7200000")
    );
    let toucher = keep_disk_fresh(&dir, &level);
    // The first HA leader on that state directory imports the file journal into the topic.
    let mut k0 = Instance::start(&dir, "k0");
    let imported = poll(Duration::from_secs(60), async || {
        audit(&dir, "k0")
            .lines()
            .any(|l| l.contains("journal.import"))
            .then_some(())
    })
    .await;
    assert!(
        imported.is_some(),
        "the import is audited; {}",
        logs(&dir, &["k0"])
    );
    assert!(!state.join("retention-journal.json").exists());
    assert!(state.join("retention-journal.json.imported").exists());
    assert_ne!(
        local(&describe(&b, "enriched").await).as_deref(),
        Some(ORIGINAL),
        "still lowered"
    );
    // Stop it and wipe its state directory: the topic is the record now.
    k0.terminate();
    drop(k0);
    std::fs::remove_dir_all(&state).expect("wipe the state directory");
    set_disk(&dir, &level, 30);
    let k0 = Instance::start(&dir, "k0");
    let restored = poll(Duration::from_secs(180), async || {
        (describe(&b, "enriched").await == before).then_some(())
    })
    .await;
    assert!(
        restored.is_some(),
        "restored exactly from the topic's journal; now {:?}; status {:#}\n{}",
        describe(&b, "enriched").await,
        k0.get("/v1/status").await.unwrap_or_default(),
        logs(&dir, &["k0"])
    );
    toucher.abort();
}

/// Every write of `topic`'s retention that was carried out (action `retention` or `restore`,
/// outcome `applied`) in the audit logs of `ids`, as `(at, epoch)`, in time order (`at`: when
/// the write was decided). A deposed leader's attempt that its fencing stopped is audited as
/// failed: that is the fencing at work, not a write. What settling found (`retention.settled`)
/// is bookkeeping recorded when found, not a write.
pub(crate) fn retention_actions(
    dir: &Path,
    ids: &[&str],
    topic: &str,
) -> Vec<(String, Option<u64>)> {
    let mut all: Vec<(String, Option<u64>)> = ids
        .iter()
        .flat_map(|id| {
            audit(dir, id)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|r| {
                    r["target"] == topic
                        && r["outcome"] == "applied"
                        && (r["action"] == "retention" || r["action"] == "restore")
                })
                .map(|r| (r["at"].to_string(), r["epoch"].as_u64()))
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    all
}

/// kill -9 in the middle of a lowering: the leader of three dies between saving its intent in the
/// state topic and the alter (`CATCHUP_CRASH_AT=after-intent` aborts the process there, leaving
/// the group as a kill -9 does: no LeaveGroup). A survivor leads in a newer epoch within 30 s,
/// settles the pending write, and once the disk is healthy the topic's DescribeConfigs is exactly
/// what it was before; every retention action in the audit carries its epoch, and the epochs
/// follow one another (no two acting on the topic at once). A restore and an adopt sent to the
/// follower are carried out by the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_between_intent_and_alter_is_replaced_and_the_original_comes_back() {
    let broker = Broker::start("hajournal-crash");
    let b = broker.bootstrap.clone();
    topics(&b).await;
    let before = describe(&b, "enriched").await;
    let dir = fresh_dir("crash");
    configure(&dir, &b, "crash-fleet");
    let level: DiskLevel = Arc::new(AtomicU64::new(30));
    disk(&dir, 30);
    let toucher = keep_disk_fresh(&dir, &level);
    // The first instance leads alone (and will die at its first lowering); then two more join.
    let doomed = Instance::start_with(&dir, "c0", &[("CATCHUP_CRASH_AT", "after-intent")]);
    let first = poll(Duration::from_secs(60), async || {
        let l = leaders(std::slice::from_ref(&doomed)).await;
        (l.len() == 1).then(|| l[0].1)
    })
    .await;
    let ids = ["c0", "c1", "c2"];
    let Some(epoch) = first else {
        panic!("c0 leads; {}", logs(&dir, &ids));
    };
    let survivors = [Instance::start(&dir, "c1"), Instance::start(&dir, "c2")];
    let joined = poll(Duration::from_secs(60), async || {
        for i in &survivors {
            if i.ha().await["leader"] != "c0" {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(joined.is_some(), "both follow c0; {}", logs(&dir, &ids));
    // A backlog's disk: c0 saves its intent and dies before the alter.
    set_disk(&dir, &level, 77);
    let died = poll(Duration::from_secs(60), async || {
        doomed
            .get("/v1/status")
            .await
            .is_none()
            .then(std::time::Instant::now)
    })
    .await;
    let Some(killed_at) = died else {
        panic!("c0 died at its first lowering; {}", logs(&dir, &ids));
    };
    assert_eq!(
        local(&describe(&b, "enriched").await).as_deref(),
        Some(ORIGINAL),
        "c0 died before its alter"
    );
    let next = poll(Duration::from_secs(30), async || {
        let l = leaders(&survivors).await;
        (l.len() == 1 && l[0].1 > epoch).then(|| l[0].clone())
    })
    .await;
    let Some((new_leader, new_epoch)) = next else {
        panic!(
            "a survivor leads in a newer epoch within 30 s of the kill; {}",
            logs(&dir, &ids)
        );
    };
    eprintln!(
        "c0 (epoch {epoch}) died after its intent; {new_leader} leads in epoch {new_epoch} after {:?}",
        killed_at.elapsed()
    );
    // The new leader lowers in its own epoch (the disk is still high); a restore sent to the
    // follower is forwarded to the leader and carried out there (`/v1/restore` on any instance).
    let relowered = poll(Duration::from_secs(90), async || {
        local(&describe(&b, "enriched").await)
            .is_some_and(|v| v != ORIGINAL)
            .then_some(())
    })
    .await;
    assert!(
        relowered.is_some(),
        "{new_leader} lowers; {}",
        logs(&dir, &ids)
    );
    let follower = survivors
        .iter()
        .find(|i| i.id != new_leader)
        .expect("a follower");
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/restore", follower.port))
        .bearer_auth("ha-token-0123456789abc")
        .json(&serde_json::json!({"reason": "ha test: restore through a follower", "hold": "2h"}))
        .send()
        .await
        .expect("restore answered")
        .json()
        .await
        .expect("json");
    assert_eq!(
        answer["topics"]["enriched"], "restored",
        "the follower {} forwarded the restore to {new_leader}: {answer}",
        follower.id
    );
    assert_eq!(
        describe(&b, "enriched").await,
        before,
        "restored exactly by the leader"
    );
    // The backlog drains: whatever the new leader did meanwhile, the original stays.
    set_disk(&dir, &level, 30);
    let restored = poll(Duration::from_secs(180), async || {
        (describe(&b, "enriched").await == before).then_some(())
    })
    .await;
    assert!(
        restored.is_some(),
        "DescribeConfigs exactly as before the episode; now {:?}\n{}",
        describe(&b, "enriched").await,
        logs(&dir, &ids)
    );
    let actions = retention_actions(&dir, &ids, "enriched");
    assert!(
        !actions.is_empty() && actions.iter().all(|(_, e)| e.is_some()),
        "every retention action carries its epoch: {actions:?}"
    );
    let epochs: Vec<u64> = actions.iter().filter_map(|(_, e)| *e).collect();
    assert!(
        epochs.windows(2).all(|w| w[0] <= w[1]),
        "epochs follow one another in time, never interleaved: {actions:?}"
    );
    assert!(
        epochs.iter().all(|e| *e >= new_epoch),
        "the dead leader altered nothing (it died before its alter): {actions:?}"
    );
    // An adopt sent to the follower is forwarded as well: the leader carries it out (here the
    // journal has nothing open, so it refuses) and audits it as `ACTOR via FOLLOWER`.
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/v1/retention/adopt",
            follower.port
        ))
        .bearer_auth("ha-token-0123456789abc")
        .json(&serde_json::json!({"topic": "enriched", "reason": "ha test: adopt through a follower"}))
        .send()
        .await
        .expect("adopt answered");
    let (code, body) = (r.status(), r.text().await.unwrap_or_default());
    assert!(
        !body.contains("is a follower"),
        "the follower {} forwarded the adopt to {new_leader}: {code} {body}",
        follower.id
    );
    let via = format!("via {}", follower.id);
    assert!(
        audit(&dir, &new_leader)
            .lines()
            .any(|l| l.contains("\"retention.adopt\"") && l.contains(&via)),
        "{new_leader} audited the adopt sent to {}: {code} {body}",
        follower.id
    );
    toucher.abort();
}
