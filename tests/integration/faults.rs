//! Real faults against the retention journal on tansu: `catchup run` killed (abort, as kill -9)
//! at every step of a write, an alter whose answer a proxy delays past the timeout though the
//! broker applied it, and a person raising `retention.ms` in the middle of an episode. After each,
//! the topic's configs end exactly as before the episode and nothing is drifted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use catchup_testkit::{Broker, create_topic, produce};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::kafka::{alter_by_hand, caught_up_disk_file, commit, describe, retention};

pub(crate) const ORIGINAL: &str = "14400000";

/// A tiered topic with `local.retention.ms` set on it, and a drained group on an input topic.
pub(crate) async fn topics(b: &str) {
    create_topic(
        b,
        "enriched",
        1,
        &[
            ("remote.storage.enable", "true"),
            ("local.retention.ms", ORIGINAL),
            ("retention.ms", "259200000"),
            ("cleanup.policy", "delete"),
        ],
    )
    .await;
    create_topic(b, "events", 1, &[]).await;
    produce(b, "events", &[10]).await;
    commit(b, "ingest", "events", &[(0, 10)]);
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Disk use of the one broker, in percent, copy lag caught up (written now, so fresh).
pub(crate) fn disk(dir: &Path, percent: u64) {
    std::fs::write(
        dir.join("disk.json"),
        format!(
            r#"{{"brokers": [{{"broker": 1, "used_bytes": {percent}0, "capacity_bytes": 1000, "copy_lag_bytes": 0}}]}}"#
        ),
    )
    .expect("disk file");
}

/// A controller's configuration in `dir` against `bootstrap`, its API on `port`.
fn configure(dir: &Path, bootstrap: &str, port: u16) {
    configure_with(dir, bootstrap, port, "")
}

/// Like [`configure`], with `extra` appended to the policy (more managed topics).
fn configure_with(dir: &Path, bootstrap: &str, port: u16, extra: &str) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("policy.toml"),
        extra.to_string()
            + r#"
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
    write_run_config(dir, bootstrap, port);
}

/// `catchup.toml` in `dir`: `catchup run` against `bootstrap` with `policy.toml`, a state directory,
/// the disk file `disk.json` and its API on `port`.
pub(crate) fn write_run_config(dir: &Path, bootstrap: &str, port: u16) {
    std::fs::write(
        dir.join("catchup.toml"),
        format!(
            r#"
tick = "2s"
sensor_timeout = "1900ms"
policy = "policy.toml"
state_dir = "state"
[api]
listen = "127.0.0.1:{port}"
[cluster]
kind = "kafka"
[cluster.kafka]
bootstrap_servers = "{bootstrap}"
[cluster.disk]
kind = "file"
path = "disk.json"
"#
        ),
    )
    .expect("config");
}

/// `catchup run` in `dir`, dying at `crash` (`CATCHUP_CRASH_AT`) if given.
pub(crate) struct Controller {
    child: Child,
    port: u16,
}

impl Controller {
    pub(crate) fn start(dir: &Path, port: u16, crash: Option<&str>) -> Controller {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catchup"));
        cmd.args(["run", "--config"])
            .arg(dir.join("catchup.toml"))
            .env("CATCHUP_API_TOKEN", "faults-token-0123456789")
            .env("CATCHUP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(point) = crash {
            cmd.env("CATCHUP_CRASH_AT", point);
        }
        let mut child = cmd.spawn().expect("catchup run starts");
        // Drain its log so it never blocks on a full pipe; keep it for failures.
        let stderr = child.stderr.take().expect("stderr");
        let log = dir.join(format!("log-{}", crash.unwrap_or("run")));
        std::thread::spawn(move || {
            let mut out = std::fs::File::create(log).expect("log");
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes());
            }
        });
        Controller { child, port }
    }

    /// Waits until the process aborted (at its crash point: SIGABRT, as a kill -9 leaves things)
    /// or `limit` passed.
    fn wait_for_abort(&mut self, limit: Duration) -> bool {
        use std::os::unix::process::ExitStatusExt;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.signal() == Some(6);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub(crate) async fn status(&self) -> Option<serde_json::Value> {
        reqwest::get(format!("http://127.0.0.1:{}/v1/status", self.port))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it is true or `limit` passes.
pub(crate) async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

pub(crate) fn journal(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("state/retention-journal.json")).unwrap_or_default()
}

fn local(configs: &BTreeMap<String, (Option<String>, String)>) -> Option<String> {
    configs["local.retention.ms"].0.clone()
}

pub(crate) fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("catchup-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Kill the controller after the intent, after the alter before the read-back, after the
/// read-back before `state.json`, and in the middle of a restore: the next start ends the episode
/// with DescribeConfigs exactly as before it, and nothing drifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_at_any_step_of_a_write_ends_with_the_exact_original() {
    let broker = Broker::start("faults-crash");
    let b = broker.bootstrap.clone();
    topics(&b).await;
    let before = describe(&b, "enriched").await;
    for (point, during_restore) in [
        ("after-intent", false),
        ("after-alter", false),
        ("after-verify", false),
        ("after-intent", true),
    ] {
        let case = format!("{point}{}", if during_restore { "-restore" } else { "" });
        let dir = fresh_dir(&case);
        let port = free_port();
        configure(&dir, &b, port);
        disk(&dir, 77);
        if during_restore {
            // Lower first, cleanly; then crash in the restore.
            let c = Controller::start(&dir, port, None);
            let lowered = eventually(Duration::from_secs(30), async || {
                local(&describe(&b, "enriched").await).as_deref() != Some(ORIGINAL)
            })
            .await;
            assert!(lowered, "{case}: the controller lowers at 77%");
            drop(c);
            disk(&dir, 30);
        }
        let mut c = Controller::start(&dir, port, Some(point));
        assert!(
            c.wait_for_abort(Duration::from_secs(150)),
            "{case}: the controller reached {point} and died there; log: {}",
            std::fs::read_to_string(dir.join(format!("log-{point}"))).unwrap_or_default()
        );
        let shown = local(&describe(&b, "enriched").await);
        let written = point != "after-intent";
        assert_eq!(
            shown.as_deref() != Some(ORIGINAL),
            written != during_restore,
            "{case}: killed with the write {} ({shown:?})",
            if written { "landed" } else { "not sent" }
        );
        // The next start, without the fault, with the disk back to normal and the group drained.
        disk(&dir, 30);
        let c = Controller::start(&dir, port, None);
        let settled = eventually(Duration::from_secs(150), async || {
            describe(&b, "enriched").await == before
        })
        .await;
        let status = c.status().await.unwrap_or_default();
        assert!(
            settled,
            "{case}: DescribeConfigs back exactly as before the episode; status {status:#}\njournal {}",
            journal(&dir)
        );
        assert!(
            !journal(&dir).contains("drifted"),
            "{case}: nothing drifted: {}",
            journal(&dir)
        );
        let alerts = status["decision"]["alerts"].to_string();
        assert!(!alerts.contains("drift_detected"), "{case}: {alerts}");
    }
}

/// A TCP proxy in front of the broker that can hold back the answers to IncrementalAlterConfigs
/// (API key 44) for `delay`: the broker has applied the change, the client times out.
struct DelayingProxy {
    delay_alters: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl DelayingProxy {
    async fn start(upstream: String, port: u16, delay: Duration) -> DelayingProxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("proxy listens");
        let delay_alters = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = delay_alters.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, flag.clone(), delay));
            }
        });
        DelayingProxy { delay_alters, task }
    }
}

impl Drop for DelayingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one Kafka frame (4-byte length, then the payload).
async fn frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut payload).await.ok()?;
    Some([len.to_vec(), payload].concat())
}

async fn relay(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    delay_alters: Arc<std::sync::atomic::AtomicBool>,
    delay: Duration,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let held = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<i32>::new(),
    ));
    let marks = held.clone();
    let up = tokio::spawn(async move {
        while let Some(f) = frame(&mut cr).await {
            let api_key = i16::from_be_bytes([f[4], f[5]]);
            let correlation = i32::from_be_bytes([f[8], f[9], f[10], f[11]]);
            if api_key == 44 && delay_alters.load(std::sync::atomic::Ordering::Relaxed) {
                marks.lock().unwrap().insert(correlation);
            }
            if sw.write_all(&f).await.is_err() {
                break;
            }
        }
    });
    while let Some(f) = frame(&mut sr).await {
        let correlation = i32::from_be_bytes([f[4], f[5], f[6], f[7]]);
        if held.lock().unwrap().remove(&correlation) {
            tokio::time::sleep(delay).await;
        }
        if cw.write_all(&f).await.is_err() {
            break;
        }
    }
    up.abort();
}

/// An alter the broker applied but whose answer came after the timeout: the journal keeps the
/// write pending, the next read settles it as the controller's own (not drift), and the restore
/// brings the original back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alter_that_timed_out_though_applied_is_settled_not_drift() {
    let port = free_port();
    let advertised = format!("127.0.0.1:{port}");
    let broker = Broker::start_advertising("faults-delay", Some(&advertised));
    let proxy = DelayingProxy::start(broker.bootstrap.clone(), port, Duration::from_secs(6)).await;
    let b = advertised.clone();
    create_topic(
        &b,
        "enriched",
        1,
        &[
            ("remote.storage.enable", "true"),
            ("local.retention.ms", ORIGINAL),
            ("retention.ms", "259200000"),
            ("cleanup.policy", "delete"),
        ],
    )
    .await;
    let before = describe(&b, "enriched").await;
    let dir = crate::kafka::state_dir("faults-delay");
    let disk_file = caught_up_disk_file(&dir);
    proxy
        .delay_alters
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let out = retention(&[
        "lower",
        "--bootstrap-server",
        &b,
        "--topic",
        "enriched",
        "--to",
        "2h",
        "--state-dir",
        &dir,
        "--reason",
        "delayed",
        "--disk-file",
        &disk_file,
        "--timeout",
        "2s",
    ]);
    proxy
        .delay_alters
        .store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(!out.status.success(), "the alter timed out");
    let err = crate::stderr(&out);
    assert!(err.contains("may still land"), "{err}");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        local(&describe(&b, "enriched").await).as_deref(),
        Some("7200000"),
        "the broker applied it all the same"
    );
    let status = retention(&[
        "status",
        "--bootstrap-server",
        &b,
        "--state-dir",
        &dir,
        "--json",
    ]);
    let shown = crate::stdout(&status);
    assert!(
        shown.contains("\"verified\""),
        "settled as the controller's own write: {shown}"
    );
    assert!(!shown.contains("drifted"), "{shown}");
    let out = retention(&[
        "restore",
        "--bootstrap-server",
        &b,
        "--all",
        "--state-dir",
        &dir,
        "--reason",
        "done",
    ]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert_eq!(
        describe(&b, "enriched").await,
        before,
        "exactly the original"
    );
}

/// `retention.ms` raised by hand while the controller has the topic lowered: not drift; the
/// restore still happens, exactly, and the person's `retention.ms` stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_ms_raised_by_hand_mid_episode_does_not_stop_the_restore() {
    let broker = Broker::start("faults-outside");
    let b = broker.bootstrap.clone();
    topics(&b).await;
    let dir = fresh_dir("outside");
    let port = free_port();
    configure(&dir, &b, port);
    disk(&dir, 77);
    let c = Controller::start(&dir, port, None);
    let lowered = eventually(Duration::from_secs(30), async || {
        local(&describe(&b, "enriched").await).as_deref() != Some(ORIGINAL)
    })
    .await;
    assert!(lowered, "the controller lowers at 77%");
    alter_by_hand(&b, "enriched", "retention.ms", "604800000");
    disk(&dir, 30);
    let restored = eventually(Duration::from_secs(150), async || {
        local(&describe(&b, "enriched").await).as_deref() == Some(ORIGINAL)
    })
    .await;
    let status = c.status().await.unwrap_or_default();
    assert!(restored, "restored despite the outside change: {status:#}");
    let after = describe(&b, "enriched").await;
    assert_eq!(
        after["retention.ms"].0.as_deref(),
        Some("604800000"),
        "the person's change stays"
    );
    assert!(!journal(&dir).contains("drifted"), "{}", journal(&dir));
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/audit?limit=200"))
        .bearer_auth("faults-token-0123456789")
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert!(
        audit.to_string().contains("config.outside_change"),
        "the outside change is in the audit log: {audit:#}"
    );
}

/// One managed topic missing from the cluster (deleted, or mistyped in the policy): it is reported
/// by name, and the other still lowers and restores. (tansu 0.6.0 empties every other topic's
/// configs when one topic is deleted — docs/tansu.md — so the missing topic here never existed;
/// DescribeConfigs answers both cases with the same per-topic error.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_managed_topic_does_not_blind_the_others() {
    let broker = Broker::start("faults-deleted");
    let b = broker.bootstrap.clone();
    topics(&b).await;
    let dir = fresh_dir("deleted");
    let port = free_port();
    configure_with(&dir, &b, port, "[[retention.topics]]\nname = \"gone\"\n");
    disk(&dir, 77);
    let c = Controller::start(&dir, port, None);
    let lowered = eventually(Duration::from_secs(30), async || {
        local(&describe(&b, "enriched").await).as_deref() != Some(ORIGINAL)
    })
    .await;
    let status = c.status().await.unwrap_or_default();
    assert!(lowered, "the good topic is lowered: {status:#}");
    let faults = status["sensor_errors"].to_string();
    assert!(
        faults.contains("\"target\":\"gone\""),
        "the missing topic is named in its own fault: {faults}"
    );
    disk(&dir, 30);
    let restored = eventually(Duration::from_secs(150), async || {
        local(&describe(&b, "enriched").await).as_deref() == Some(ORIGINAL)
    })
    .await;
    assert!(
        restored,
        "and restored: {:#}",
        c.status().await.unwrap_or_default()
    );
}

/// The runbook's `catchup retention restore` while the controller runs and the disk still asks
/// for lowering: it goes through the controller's API, so the restore is held and stays; the
/// audit log shows both actors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runbook_restore_beside_the_controller_sticks() {
    let broker = Broker::start("faults-runbook");
    let b = broker.bootstrap.clone();
    topics(&b).await;
    let dir = fresh_dir("runbook");
    let port = free_port();
    configure(&dir, &b, port);
    disk(&dir, 77);
    let c = Controller::start(&dir, port, None);
    let lowered = eventually(Duration::from_secs(30), async || {
        local(&describe(&b, "enriched").await).as_deref() != Some(ORIGINAL)
    })
    .await;
    assert!(lowered, "the controller lowers at 77%");
    let out = Command::new(env!("CARGO_BIN_EXE_catchup"))
        .args([
            "retention",
            "restore",
            "--bootstrap-server",
            &b,
            "--all",
            "--reason",
            "INC-7 by hand",
            "--actor",
            "oncall",
            "--state-dir",
        ])
        .arg(dir.join("state"))
        .env("CATCHUP_API_TOKEN", "faults-token-0123456789")
        .output()
        .expect("catchup retention restore runs");
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(
        crate::stderr(&out).contains("through its API"),
        "{}",
        crate::stderr(&out)
    );
    assert_eq!(
        local(&describe(&b, "enriched").await).as_deref(),
        Some(ORIGINAL)
    );
    // Several ticks at 77%: the hold keeps the controller from lowering again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        local(&describe(&b, "enriched").await).as_deref(),
        Some(ORIGINAL),
        "the restore sticks: {:#}",
        c.status().await.unwrap_or_default()
    );
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/audit?limit=200"))
        .bearer_auth("faults-token-0123456789")
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let records = audit["records"].as_array().cloned().unwrap_or_default();
    let by = |actor: &str, action: &str| {
        records
            .iter()
            .any(|r| r["actor"] == actor && r["action"] == action && r["outcome"] == "applied")
    };
    assert!(
        by("controller", "retention"),
        "the controller's lowering: {audit:#}"
    );
    // The token's name, then who the runbook said acted.
    assert!(
        by("operator:oncall", "restore"),
        "on-call's restore: {audit:#}"
    );
    assert!(
        by("operator:oncall", "override.create"),
        "and its hold: {audit:#}"
    );
}

/// A state directory on a file system that fills up (a small tmpfs; where mounting is not
/// allowed, a file-size limit): every override the API acknowledged is on disk, none it refused is
/// in force, the gate keeps answering, and after a restart no torn record is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_directory_loses_nothing_acknowledged_and_keeps_gating() {
    let dir = fresh_dir("full");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=96k", "tmpfs"])
        .arg(&state)
        .status()
        .is_ok_and(|s| s.success());
    let port = free_port();
    std::fs::write(
        dir.join("catchup.toml"),
        format!(
            "tick = \"1s\"\nstate_dir = \"state\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[api.limits]\nmax_overrides_per_scope = 1000\nmax_overrides = 1000\n[cluster]\nkind = \"simulator\"\nscenario = \"{}\"\nspeed = 60\n",
            crate::root().join("scenarios/2025-11-replay.toml").display()
        ),
    )
    .unwrap();
    let start = || {
        let mut cmd = Command::new(if mounted {
            env!("CARGO_BIN_EXE_catchup")
        } else {
            "sh"
        });
        if mounted {
            cmd.args(["run", "--config"]).arg(dir.join("catchup.toml"));
        } else {
            // No mounting here: every file the process writes is capped at 64 KiB instead.
            cmd.args([
                "-c",
                "trap '' XFSZ; ulimit -f 64; exec \"$0\" run --config \"$1\"",
            ])
            .arg(env!("CARGO_BIN_EXE_catchup"))
            .arg(dir.join("catchup.toml"));
        }
        cmd.env("CATCHUP_API_TOKEN", "faults-token-0123456789")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("catchup run starts")
    };
    let mut child = start();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let up = eventually(Duration::from_secs(30), async || {
        http.get(format!("{base}/healthz")).send().await.is_ok()
    })
    .await;
    assert!(up, "the service starts");
    let (mut acked, mut refused) = (Vec::new(), 0);
    for i in 0..400 {
        let resp = http
            .post(format!("{base}/v1/overrides"))
            .bearer_auth("faults-token-0123456789")
            .json(&serde_json::json!({
                "scope": {"kind": "group", "name": "ingestion"},
                "action": {"action": "fixed_rate", "rate": 100 + i},
                "reason": format!("filling the disk {i} {}", "x".repeat(400)),
                "ttl": "1h"
            }))
            .send()
            .await
            .expect("answers");
        match resp.status().as_u16() {
            200 => acked.push(resp.json::<serde_json::Value>().await.unwrap()["id"].clone()),
            503 => refused += 1,
            // The override limits are raised above what the tmpfs holds: the disk fills first.
            other => panic!("unexpected {other}"),
        }
        if refused >= 5 {
            break;
        }
    }
    assert!(
        refused > 0,
        "the state directory filled up ({} acknowledged)",
        acked.len()
    );
    let gate = http
        .get(format!("{base}/v1/gates/ingestion"))
        .send()
        .await
        .expect("gate");
    assert_eq!(gate.status(), 200, "the gate keeps answering");
    let in_force: Vec<serde_json::Value> = http
        .get(format!("{base}/v1/overrides"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&serde_json::Value> = in_force.iter().map(|o| &o["id"]).collect();
    assert_eq!(
        ids.len(),
        acked.len(),
        "exactly the acknowledged overrides are in force"
    );
    let _ = child.kill();
    let _ = child.wait();
    if mounted {
        // Room again, then a restart: nothing torn, nothing acknowledged lost.
        let _ = Command::new("mount")
            .args(["-o", "remount,size=4m"])
            .arg(&state)
            .status();
    }
    let mut child = start();
    let up = eventually(Duration::from_secs(30), async || {
        http.get(format!("{base}/v1/overrides"))
            .send()
            .await
            .is_ok()
    })
    .await;
    assert!(up, "the service restarts on the same state directory");
    let after: Vec<serde_json::Value> = http
        .get(format!("{base}/v1/overrides"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after_ids: Vec<&serde_json::Value> = after.iter().map(|o| &o["id"]).collect();
    for id in &acked {
        assert!(
            after_ids.contains(&id),
            "acknowledged {id} survives the restart"
        );
    }
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap_or_default();
    for (n, line) in audit.lines().enumerate() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "audit line {} is whole: {line}",
            n + 1
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    if mounted {
        let _ = Command::new("umount").arg(&state).status();
    }
}
