//! High availability on tansu (`[ha]`, docs/ha.md): three `catchup run` processes of one
//! deployment elect exactly one leader through the Kafka group; followers serve the leader's
//! gates; the leader killed with SIGKILL is replaced within 30 s, in a higher epoch.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catchup_testkit::{Broker, create_topic, produce};
use serde_json::Value;

use crate::kafka::commit;

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One instance: its own directory (state, log) and API port; the shared policy and config.
pub(crate) struct Instance {
    pub(crate) id: String,
    child: Child,
    pub(crate) port: u16,
}

impl Instance {
    pub(crate) fn start(shared: &Path, id: &str) -> Instance {
        Instance::start_with(shared, id, &[])
    }

    /// As [`Instance::start`], with more environment (e.g. `CATCHUP_CRASH_AT`).
    pub(crate) fn start_with(shared: &Path, id: &str, env: &[(&str, &str)]) -> Instance {
        let port = free_port();
        let dir = shared.join(id);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_catchup"))
            .args(["run", "--config"])
            .arg(shared.join("catchup.toml"))
            .env("CATCHUP_API_TOKEN", "ha-token-0123456789abc")
            .env("CATCHUP_API_LISTEN", format!("127.0.0.1:{port}"))
            .env("CATCHUP_STATE_DIR", dir.join("state"))
            .env("CATCHUP_HA_INSTANCE", id)
            .env("CATCHUP_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("catchup run starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = dir.join("log");
        std::thread::spawn(move || {
            let mut out = std::fs::File::create(log).expect("log");
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes());
            }
        });
        Instance {
            id: id.to_string(),
            child,
            port,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Option<Value> {
        reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    pub(crate) async fn ha(&self) -> Value {
        self.get("/v1/status")
            .await
            .map(|s| s["ha"].clone())
            .unwrap_or_default()
    }

    /// SIGTERM: the instance finishes its tick, leaves the group (the lock goes to another member
    /// at once) and exits; waits for the exit.
    pub(crate) fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL: no leave-group, no flush; the broker finds out by the session timeout.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) fn configure(dir: &Path, bootstrap: &str, name: &str) {
    configure_with(dir, bootstrap, name, 96, "1s");
}

/// `disk` percent used (96: the leader pauses the group; 30: it leaves it open), and the tick.
fn configure_with(dir: &Path, bootstrap: &str, name: &str, disk: u32, tick: &str) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("policy.toml"),
        r#"
[drain]
lag_threshold = 10
dwell = "1s"
[retention]
floor = "1h"
[[retention.topics]]
name = "enriched"
[[groups]]
name = "ingest"
max_rate = 1000
"#,
    )
    .expect("policy");
    std::fs::write(
        dir.join("disk.json"),
        format!(
            r#"{{"brokers": [{{"broker": 1, "used_bytes": {disk}0, "capacity_bytes": 1000, "copy_lag_bytes": 0}}]}}"#
        ),
    )
    .expect("disk");
    write_config(
        dir,
        bootstrap,
        name,
        tick,
        "kind = \"file\"\npath = \"disk.json\"",
    );
}

/// `catchup.toml` of an HA test instance: deployment `name`, a 6 s session, the broker at
/// `bootstrap`, and `disk` as the body of `[cluster.disk]`.
pub(crate) fn write_config(dir: &Path, bootstrap: &str, name: &str, tick: &str, disk: &str) {
    std::fs::write(
        dir.join("catchup.toml"),
        format!(
            r#"
tick = "{tick}"
sensor_timeout = "900ms"
policy = "policy.toml"
state_dir = "unused"
[cluster]
kind = "kafka"
[cluster.kafka]
bootstrap_servers = "{bootstrap}"
[cluster.disk]
{disk}
[ha]
name = "{name}"
session_timeout = "6s"
"#
        ),
    )
    .expect("config");
}

/// Keeps the disk file fresh (its modification time is the sample time).
fn touch_disk(dir: &Path) {
    let text = std::fs::read_to_string(dir.join("disk.json")).expect("disk");
    std::fs::write(dir.join("disk.json"), text).expect("disk");
}

/// Touches the disk file of each of `dirs` every 500 ms, until aborted.
pub(crate) fn keep_touching(dirs: Vec<PathBuf>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for d in &dirs {
                touch_disk(d);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// A fresh broker where the group `ingest` is 40 records behind on the one partition of
/// `events`; the broker and its bootstrap address.
pub(crate) async fn broker_with_backlog(name: &str) -> (Broker, String) {
    let broker = Broker::start(name);
    let b = broker.bootstrap.clone();
    create_topic(&b, "events", 1, &[]).await;
    produce(&b, "events", &[50]).await;
    commit(&b, "ingest", "events", &[(0, 10)]);
    (broker, b)
}

/// The leaders among `instances` as their statuses say, with the epochs.
pub(crate) async fn leaders<I: std::borrow::Borrow<Instance>>(
    instances: &[I],
) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for i in instances {
        let i = i.borrow();
        let ha = i.ha().await;
        if ha["role"] == "leader" {
            out.push((i.id.clone(), ha["epoch"].as_u64().unwrap_or(0)));
        }
    }
    out
}

/// The one leader every instance agrees on, with `members` members, once it has held for 3 s
/// (each join is a rebalance, and the range assignor may move the lock to the lowest member id
/// while instances join). `None` after 60 s.
pub(crate) async fn settled_leader(instances: &[Instance], members: u64) -> Option<(String, u64)> {
    poll(Duration::from_secs(60), async || {
        let l = leaders(instances).await;
        if l.len() != 1 {
            return None;
        }
        for i in instances {
            let ha = i.ha().await;
            if ha["leader"] != l[0].0.as_str() || ha["members"] != members {
                return None;
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        (leaders(instances).await == l).then(|| l[0].clone())
    })
    .await
}

/// Polls `f` every 100 ms until it answers `Some` or `limit` passes.
pub(crate) async fn poll<T>(limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

pub(crate) fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("catchup-ha-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub(crate) fn logs(dir: &Path, instances: &[&str]) -> String {
    instances
        .iter()
        .map(|i| {
            let log = std::fs::read_to_string(dir.join(i).join("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            format!(
                "--- {i}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// tansu 0.6.0 expires the killed member but never rebalances the group, so no survivor gets the
// lock by the broker alone (docs/tansu.md); the survivors re-enter the election once the leader
// has been silent for a session timeout and two heartbeat intervals without a rebalance (or two
// session timeouts in any case). Measured 2026-12-03: a new leader 7.5 s after the kill (session
// timeout 6 s; 17.2 s when only the two-session re-entry existed). Fails without any re-entry (no
// new leader within 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_elect_one_leader_followers_serve_its_gate_and_a_killed_leader_is_replaced()
{
    let (_broker, b) = broker_with_backlog("ha-three").await;
    let dir = fresh_dir("three");
    configure(&dir, &b, "fleet");
    let ids = ["i0", "i1", "i2"];
    let mut instances: Vec<Instance> = ids.iter().map(|id| Instance::start(&dir, id)).collect();
    let toucher = keep_touching(vec![dir.clone()]);

    // Exactly one leader, every instance agreeing on it, three members each. The lock may move
    // once while the instances join (each join is a rebalance; the range assignor gives the
    // partition to the lowest member id), so a leader counts once it has held for 3 s.
    let settled = settled_leader(&instances, 3).await;
    let Some((leader, epoch)) = settled else {
        panic!(
            "exactly one leader agreed by all three with 3 members; statuses: {:?}\n{}",
            futures_statuses(&instances).await,
            logs(&dir, &ids)
        );
    };
    assert!(epoch >= 1, "epochs start at 1");
    // Stable: still exactly that one leader a few seconds later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(leaders(&instances).await, vec![(leader.clone(), epoch)]);

    // Followers serve the leader's gate (the same decision, the same expiry).
    let gate = async |i: &Instance| i.get("/v1/gates/ingest").await.unwrap_or_default();
    let li = instances
        .iter()
        .position(|i| i.id == leader)
        .expect("leader");
    let served = poll(Duration::from_secs(15), async || {
        let lg = gate(&instances[li]).await;
        if lg["state"] == Value::Null || lg["state"] == "open" {
            return None;
        }
        for (n, i) in instances.iter().enumerate() {
            if n != li {
                let g = gate(i).await;
                if g["state"] != lg["state"] || g["reasons"] != lg["reasons"] {
                    return None;
                }
            }
        }
        Some(lg)
    })
    .await;
    assert!(
        served.is_some(),
        "every follower serves the leader's non-open gate; leader {:#}, followers {:#} {:#}",
        gate(&instances[li]).await,
        gate(&instances[(li + 1) % 3]).await,
        gate(&instances[(li + 2) % 3]).await,
    );

    // kill -9 the leader: a new one, in a higher epoch, within 30 s.
    let killed_at = Instant::now();
    instances[li].kill9();
    let survivors: Vec<Instance> = {
        let mut all = std::mem::take(&mut instances);
        drop(all.remove(li));
        all
    };
    let next = poll(Duration::from_secs(30), async || {
        let l = leaders(&survivors).await;
        (l.len() == 1 && l[0].1 > epoch).then(|| l[0].clone())
    })
    .await;
    let took = killed_at.elapsed();
    let Some((new_leader, new_epoch)) = next else {
        panic!(
            "a new leader within 30 s of kill -9; statuses: {:?}\n{}",
            futures_statuses(&survivors).await,
            logs(&dir, &ids)
        );
    };
    assert_ne!(new_leader, leader);
    assert!(new_epoch > epoch);
    eprintln!(
        "failover: {leader} (epoch {epoch}) killed; {new_leader} leads in epoch {new_epoch} after {took:?}"
    );
    // Members drop to 2 once the dead one's heartbeats are older than the session.
    let two = poll(Duration::from_secs(20), async || {
        for i in &survivors {
            if i.ha().await["members"] != 2 {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(two.is_some(), "{:?}", futures_statuses(&survivors).await);
    toucher.abort();
}

/// A pause sent to a follower reaches every instance's gate within 2 s (p99 over 20 tries), with
/// a 5 s tick: only the HA fast path (overrides shared through the state topic) can make it. Each
/// pause is lifted by a resume sent to another instance (`/v1/resume` works on any instance).
/// Then the mode and override deletes sent to any instance ([`crate::ha_fleet`]).
// Measured 2026-12-03 on tansu 0.6.0 (debug build, 2 shared cores, two other builds running):
// median 0.36 s, max 0.46 s. It failed before the fast path ran in its own task and the state
// reader's fetch wait was lowered (tansu holds a fetch for part of its wait even when records
// are there; at librdkafka's 500 ms default: median 1.7 s, max 2.8 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_sent_to_a_follower_reaches_every_gate_within_two_seconds() {
    let (_broker, b) = broker_with_backlog("ha-pause").await;
    let dir = fresh_dir("pause");
    configure_with(&dir, &b, "pausers", 30, "5s");
    let ids = ["p0", "p1", "p2"];
    let mut instances: Vec<Instance> = ids.iter().map(|id| Instance::start(&dir, id)).collect();
    let toucher = keep_touching(vec![dir.clone()]);
    let gate_state = async |i: &Instance| {
        i.get("/v1/gates/ingest").await.unwrap_or_default()["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // One leader, every gate served and not paused.
    let ready = poll(Duration::from_secs(60), async || {
        let l = leaders(&instances).await;
        if l.len() != 1 {
            return None;
        }
        for i in &instances {
            let st = gate_state(i).await;
            if st.is_empty() || st == "paused" || i.ha().await["members"] != 3 {
                return None;
            }
        }
        Some(l[0].0.clone())
    })
    .await;
    let Some(leader) = ready else {
        panic!(
            "a leader and every gate served; {:?}\n{}",
            futures_statuses(&instances).await,
            logs(&dir, &ids)
        );
    };
    let followers: Vec<&Instance> = instances.iter().filter(|i| i.id != leader).collect();
    let http = reqwest::Client::new();
    let post = async |i: &Instance, path: &str| {
        http.post(format!("http://127.0.0.1:{}{path}", i.port))
            .bearer_auth("ha-token-0123456789abc")
            .json(&serde_json::json!({"group": "ingest", "reason": "ha test", "ttl": "10m"}))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    };
    let mut times = Vec::new();
    let mut resumes = Vec::new();
    for n in 0..20 {
        let to = followers[n % followers.len()];
        let sent = Instant::now();
        assert!(post(to, "/v1/pause").await, "pause accepted by {}", to.id);
        let all = poll(Duration::from_secs(10), async || {
            for i in &instances {
                if gate_state(i).await != "paused" {
                    return None;
                }
            }
            Some(())
        })
        .await;
        let took = sent.elapsed();
        assert!(all.is_some(), "try {n}: every gate paused within 10 s");
        times.push(took);
        // The resume goes to another instance than the pause: it must lift the pause fleet-wide.
        let other = instances
            .iter()
            .find(|i| i.id != to.id)
            .expect("another instance");
        let resumed = Instant::now();
        assert!(
            post(other, "/v1/resume").await,
            "resume accepted by {}",
            other.id
        );
        let open = poll(Duration::from_secs(20), async || {
            for i in &instances {
                if gate_state(i).await == "paused" {
                    return None;
                }
            }
            Some(())
        })
        .await;
        assert!(
            open.is_some(),
            "try {n}: every gate back from the pause made on {} after a resume sent to {}",
            to.id,
            other.id
        );
        resumes.push(resumed.elapsed());
    }
    times.sort();
    let p99 = times[times.len() - 1];
    eprintln!(
        "pause to a follower -> every gate paused: median {:?}, p99 (max of 20) {p99:?}",
        times[times.len() / 2]
    );
    resumes.sort();
    eprintln!(
        "resume sent to another instance -> every gate open: median {:?}, max {:?}",
        resumes[resumes.len() / 2],
        resumes[resumes.len() - 1]
    );
    assert!(p99 <= Duration::from_secs(2), "p99 {p99:?}: {times:?}");
    crate::ha_fleet::the_mode_set_on_any_instance_is_every_instance_s(&instances).await;
    crate::ha_fleet::an_override_is_deleted_through_another_instance_even_with_its_maker_killed(
        &mut instances,
        &leader,
    )
    .await;
    toucher.abort();
}

/// What tansu does with a transactional producer (docs/tansu.md, docs/ha.md): a second producer
/// with the same `transactional.id` should fence the first (its next commit fails), as on Kafka.
/// Prints what happened; asserts only that the probe ran to an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a probe of the broker, not of catchup: run by hand"]
async fn tansu_transactional_id_fencing_probe() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let broker = Broker::start("ha-txn");
    let b = broker.bootstrap.clone();
    create_topic(&b, "txn", 1, &[]).await;
    let make = || -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("transactional.id", "catchup-probe")
            .set("transaction.timeout.ms", "10000")
            .create()
            .expect("producer")
    };
    let t = Duration::from_secs(15);
    let first = make();
    let init1 = first.init_transactions(t);
    eprintln!("first init_transactions: {init1:?}");
    if init1.is_err() {
        return;
    }
    eprintln!("first begin: {:?}", first.begin_transaction());
    let _ = first.send(BaseRecord::to("txn").key("k").payload("one"));
    let second = make();
    eprintln!(
        "second init_transactions: {:?}",
        second.init_transactions(t)
    );
    let _ = first.send(BaseRecord::to("txn").key("k").payload("two"));
    let _ = first.flush(t);
    eprintln!(
        "first commit after being fenced: {:?}",
        first.commit_transaction(t)
    );
}

async fn futures_statuses(instances: &[Instance]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for i in instances {
        out.push((i.id.clone(), i.ha().await));
    }
    out
}
