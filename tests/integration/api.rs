//! The HTTP API over real HTTP on 127.0.0.1:0, with a fixed cluster behind the real runtime.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use catchup::actuators::{ActuatorError, GateActuator, RetentionActuator};
use catchup::clock::Clock;
use catchup::config::{ApiConfig, ClusterConfig, GateConfig, Mode, RunConfig};
use catchup::policy::{GroupDecision, GroupPolicy, Policy, RateUnit, TopicPolicy};
use catchup::runtime::{Controller, Runtime};
use catchup::sensors::{
    BrokerCopyLag, BrokerDisk, CopyLagSensor, DiskSensor, DiskSource, GroupOffsets, LagSensor,
    Observation, PartitionOffsets, Readings, SensorError, TopicConfigSensor, TopicConfigs,
};
use catchup::store::{Holder, StateDir};
use catchup::units::{Dur, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod hardening;

const TOKEN: &str = "test-token-0123456789";

/// Time that follows tokio's clock, so `tokio::time::pause` and `advance` move it.
struct TokioClock(tokio::time::Instant);

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        Timestamp(1_800_000_000_000 + self.0.elapsed().as_millis() as i64)
    }
}

/// A cluster that always reports the same healthy picture, stamped with the current time.
struct SteadyCluster(Arc<TokioClock>);

impl catchup::sensors::ClusterFacts for SteadyCluster {
    fn limitations(&self) -> Vec<catchup::sensors::Limitation> {
        vec![catchup::sensors::Limitation {
            missing: "storage mode is LOCAL, not TIERED".into(),
            disables: vec!["lower_retention".into()],
        }]
    }
}

impl DiskSensor for SteadyCluster {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        let at = self.0.now();
        Ok((1..=3)
            .map(|broker| BrokerDisk {
                broker,
                used_bytes: 500,
                capacity_bytes: 1000,
                sampled_at: at,
                source: DiskSource::Static,
            })
            .collect())
    }
}

impl CopyLagSensor for SteadyCluster {
    async fn read_copy_lag(&self) -> Result<Readings<BrokerCopyLag>, SensorError> {
        let at = self.0.now();
        Ok(Readings::all(
            (1..=3)
                .map(|broker| BrokerCopyLag {
                    broker,
                    bytes: 0,
                    sampled_at: at,
                })
                .collect(),
        ))
    }
}

impl LagSensor for SteadyCluster {
    async fn read_offsets(&self, groups: &[String]) -> Result<Readings<GroupOffsets>, SensorError> {
        let at = self.0.now();
        Ok(Readings::all(
            groups
                .iter()
                .map(|g| GroupOffsets {
                    group: g.clone(),
                    partitions: vec![PartitionOffsets {
                        topic: "in".into(),
                        partition: 0,
                        committed: Some(100),
                        log_end: 150,
                        log_start: None,
                        next_record: None,
                    }],
                    sampled_at: at,
                    unavailable: Vec::new(),
                })
                .collect(),
        ))
    }
}

impl TopicConfigSensor for SteadyCluster {
    async fn read_topic_configs(
        &self,
        topics: &[String],
    ) -> Result<Readings<TopicConfigs>, SensorError> {
        let at = self.0.now();
        let mut obs = Observation::test();
        for t in topics {
            obs = obs.with_topic(t, Some(4 * 3_600_000), 7 * 86_400_000, at);
        }
        Ok(Readings::all(obs.topics))
    }
}

impl GateActuator for SteadyCluster {
    async fn set_gate(&self, _: &str, _: &GroupDecision) -> Result<(), ActuatorError> {
        Ok(())
    }
}

impl RetentionActuator for SteadyCluster {
    async fn settle_journal(
        &self,
        _: &[TopicConfigs],
        _: Timestamp,
    ) -> Result<catchup::actuators::Settled, ActuatorError> {
        Ok(catchup::actuators::retention::journal::Settled::default())
    }

    async fn apply_retention(
        &self,
        topic: &str,
        _: &catchup::policy::RetentionTarget,
        _: &str,
        _: &catchup::actuators::Evidence<'_>,
        _: Timestamp,
    ) -> Result<catchup::actuators::Applied, ActuatorError> {
        Err(ActuatorError::Failed {
            target: topic.into(),
            reason: "read-only test cluster".into(),
        })
    }

    async fn adopt_retention(
        &self,
        topic: &str,
        _: &str,
        _: Timestamp,
    ) -> Result<catchup::actuators::Adopted, ActuatorError> {
        Err(ActuatorError::Failed {
            target: topic.into(),
            reason: "read-only test cluster".into(),
        })
    }
}

struct Server {
    base: String,
    ctl: Arc<Controller>,
    http: reqwest::Client,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn state_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("catchup-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn start(dir: &std::path::Path, auth_reads: bool) -> Server {
    let api = ApiConfig {
        auth_reads,
        max_body: catchup::units::Bytes(4096),
        ..ApiConfig::default()
    };
    let tokens = catchup::config::Tokens::operator(Some(TOKEN.into()));
    start_with(dir, api, tokens, Duration::from_secs(1)).await
}

/// The API on `dir` with `api`'s settings and `tokens`, its loop ticking every `tick`.
async fn start_with(
    dir: &std::path::Path,
    api: ApiConfig,
    tokens: catchup::config::Tokens,
    tick: Duration,
) -> Server {
    let mut policy = Policy::default();
    policy.groups.push(GroupPolicy {
        name: "ingest".into(),
        unit: RateUnit::Records,
        max_rate: Some(1000.0),
        min_rate: None,
        lag_threshold: None,
        priority: Default::default(),
        exempt: false,
    });
    policy.retention.topics.push(TopicPolicy {
        name: "out".into(),
        floor: None,
    });
    let config = RunConfig {
        mode: Mode::Active,
        tick: Dur::from_secs(1),
        sensor_timeout: Dur::from_secs(1),
        policy: None,
        state_dir: dir.to_path_buf(),
        api,
        gate: GateConfig::default(),
        cluster: ClusterConfig::Simulator {
            scenario: "unused".into(),
            speed: 1.0,
        },
        retention_actions: true,
        ha: None,
    };
    let clock = Arc::new(TokioClock(tokio::time::Instant::now()));
    let store = StateDir::open(dir, Holder::this_process("test")).expect("state directory");
    let (ctl, commands) = Controller::new(config, policy, Arc::new(store), tokens, clock.clone())
        .expect("controller");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = tokio::spawn({
        let ctl = ctl.clone();
        let rx = rx.clone();
        async move {
            let _ = catchup::api::serve(listener, ctl, stopped(rx)).await;
        }
    });
    let runtime = Runtime::new(ctl.clone(), SteadyCluster(clock)).expect("runtime");
    let loop_task = tokio::spawn(runtime.run(tick, commands, stopped(rx)));
    Server {
        base,
        ctl,
        http: reqwest::Client::new(),
        stop,
        tasks: vec![api, loop_task],
    }
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn eventually<F: AsyncFnMut() -> bool>(mut check: F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met in time");
}

#[tokio::test]
async fn mutations_need_the_token_and_change_nothing_without_it() {
    let dir = state_dir("auth");
    let s = start(&dir, false).await;
    let pause = json!({"group": "ingest", "reason": "test"});
    for token in [None, Some("wrong-token-wrong-token")] {
        let (status, body) = s
            .call("POST", "/v1/pause", token, Some(pause.clone()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "unauthorized");
    }
    let (status, list) = s.call("GET", "/v1/overrides", None, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "reads are open when auth_reads is off"
    );
    assert_eq!(list, json!([]));
    let (status, _) = s.call("GET", "/v1/audit", None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the audit log always needs the operator token"
    );
    let (_, audit) = s.call("GET", "/v1/audit", Some(TOKEN), None).await;
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] != "override.create")
    );
    let (status, o) = s.call("POST", "/v1/pause", Some(TOKEN), Some(pause)).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(o["action"]["action"], "pause");
    s.stop().await;

    let s = start(&state_dir("auth-reads"), true).await;
    let (status, _) = s.call("GET", "/v1/status", None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "auth_reads protects reads"
    );
    let (status, _) = s.call("GET", "/v1/gates/ingest", None, None).await;
    assert_eq!(status, StatusCode::OK, "consumers never need the token");
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_json_with_a_stable_code() {
    let s = start(&state_dir("bad"), false).await;
    // method, path, content type, body, expected status, expected code
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<u8>,
        StatusCode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("POST", "/v1/pause", "application/json", b"{not json".to_vec(), StatusCode::BAD_REQUEST, "bad_json"),
        ("POST", "/v1/pause", "text/plain", b"{}".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_content_type"),
        ("POST", "/v1/pause", "application/json", br#"{"reason":"x","colour":1}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/pause", "application/json", br#"{"reason":"  "}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/pause", "application/json", br#"{"reason":"x","ttl":"forever"}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/pause", "application/json", br#"{"reason":"x","group":"nope"}"#.to_vec(), StatusCode::NOT_FOUND, "unknown_group"),
        ("POST", "/v1/pause", "application/json", vec![b' '; 10_000], StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        ("POST", "/v1/gates/nope/acquire", "application/json", br#"{"permits":1}"#.to_vec(), StatusCode::NOT_FOUND, "unknown_group"),
        ("POST", "/v1/gates/ingest/acquire", "application/json", br#"{"permits":0}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("PUT", "/v1/mode", "application/json", br#"{"mode":"yolo","reason":"x"}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/overrides", "application/json", br#"{"scope":{"kind":"topic","name":"out"},"action":{"action":"pause"},"reason":"x","ttl":"1h"}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_request"),
        ("POST", "/v1/overrides", "application/json", br#"{"scope":{"kind":"topic","name":"other"},"action":{"action":"hold_retention"},"reason":"x","ttl":"1h"}"#.to_vec(), StatusCode::NOT_FOUND, "unknown_topic"),
        ("DELETE", "/v1/overrides/ovr-999?reason=x", "application/json", vec![], StatusCode::NOT_FOUND, "unknown_override"),
        ("GET", "/v1/audit?limit=0", "application/json", vec![], StatusCode::BAD_REQUEST, "invalid_request"),
        ("GET", "/v1/gates/ingest?after_version=abc", "application/json", vec![], StatusCode::BAD_REQUEST, "invalid_request"),
        ("GET", "/v1/nothing-here", "application/json", vec![], StatusCode::NOT_FOUND, "not_found"),
        ("DELETE", "/v1/status", "application/json", vec![], StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ];
    for (method, path, ct, body, status, code) in cases {
        let (got, json) = s.raw(method, path, ct, body).await;
        assert_eq!(
            (got, json["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {json}"
        );
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: {json}"
        );
    }
    // Garbage at every endpoint never yields a 5xx.
    let garbage: [&[u8]; 5] = [
        b"",
        b"null",
        b"[]",
        b"\xff\xfe",
        br#"{"permits":4294967296,"reason":[1],"mode":{}}"#,
    ];
    for (method, path) in [
        ("POST", "/v1/pause"),
        ("POST", "/v1/resume"),
        ("POST", "/v1/overrides"),
        ("PUT", "/v1/mode"),
        ("POST", "/v1/restore"),
        ("POST", "/v1/gates/ingest/acquire"),
    ] {
        for body in garbage {
            let (status, _) = s.raw(method, path, "application/json", body.to_vec()).await;
            assert!(
                status.is_client_error(),
                "{method} {path} {body:?}: {status}"
            );
        }
    }
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn overrides_expire_on_time() {
    let s = start(&state_dir("ttl"), false).await;
    let (status, o) = s
        .call(
            "POST",
            "/v1/pause",
            Some(TOKEN),
            Some(json!({"group": "ingest", "reason": "maintenance", "ttl": "10s"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{o}");
    eventually(async || {
        s.ctl
            .status
            .read()
            .unwrap()
            .decision
            .as_ref()
            .is_some_and(|d| d.groups["ingest"].gate.name() == "paused")
    })
    .await;
    tokio::time::advance(Duration::from_secs(11)).await;
    eventually(async || s.call("GET", "/v1/overrides", None, None).await.1 == json!([])).await;
    eventually(async || {
        s.ctl
            .status
            .read()
            .unwrap()
            .decision
            .as_ref()
            .is_some_and(|d| d.groups["ingest"].gate.name() == "open")
    })
    .await;
    let (_, audit) = s
        .call("GET", "/v1/audit?limit=100", Some(TOKEN), None)
        .await;
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "override.expire"),
        "{audit}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_overrides_and_the_audit_log() {
    let dir = state_dir("restart");
    let s = start(&dir, false).await;
    let (_, o) = s.call("POST", "/v1/overrides", Some(TOKEN), Some(json!({"scope": {"kind": "topic", "name": "out"}, "action": {"action": "hold_retention"}, "reason": "audit", "ttl": "2h", "actor": "alice"}))).await;
    let (_, mode) = s
        .call(
            "PUT",
            "/v1/mode",
            Some(TOKEN),
            Some(json!({"mode": "dry-run", "reason": "testing"})),
        )
        .await;
    assert_eq!(mode["mode"], "dry-run");
    let (_, before) = s
        .call("GET", "/v1/audit?limit=1000", Some(TOKEN), None)
        .await;
    s.stop().await;

    let s = start(&dir, false).await;
    let (_, list) = s.call("GET", "/v1/overrides", None, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], o["id"]);
    // The actor is the token's name, with what the request said after it.
    assert_eq!(list[0]["actor"], "operator:alice");
    let (_, after) = s
        .call("GET", "/v1/audit?limit=1000", Some(TOKEN), None)
        .await;
    let ids = |v: &Value| {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(ids(&after).ends_with(&ids(&before)), "old records are kept");
    assert!(
        after["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "override.create" && r["actor"] == "operator:alice")
    );
    s.stop().await;
}

#[tokio::test]
async fn the_gate_long_polls_and_admits_at_its_rate() {
    let s = start(&state_dir("gate"), false).await;
    let (_, gate) = s.call("GET", "/v1/gates/ingest", None, None).await;
    let version = gate["version"].as_u64().unwrap();
    let poll = {
        let http = s.http.clone();
        let url = format!(
            "{}/v1/gates/ingest?after_version={version}&wait=20s",
            s.base
        );
        tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fixed = json!({"scope": {"kind": "group", "name": "ingest"}, "action": {"action": "fixed_rate", "rate": 10.0}, "reason": "slow down", "ttl": "1h"});
    let (status, _) = s
        .call("POST", "/v1/overrides", Some(TOKEN), Some(fixed))
        .await;
    assert_eq!(status, StatusCode::OK);
    let woke = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("long-poll answered")
        .unwrap();
    assert_eq!(woke["state"], "throttled");
    assert_eq!(woke["rate"], 10.0);
    assert!(woke["version"].as_u64().unwrap() > version);

    // 10/s from an empty bucket: one permit now is denied with a retry-after, and waiting is allowed.
    let (status, denied) = s
        .call(
            "POST",
            "/v1/gates/ingest/acquire",
            None,
            Some(json!({"permits": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{denied}");
    assert!(denied["retry_after_ms"].as_u64().unwrap() > 0);
    let (status, granted) = s
        .call(
            "POST",
            "/v1/gates/ingest/acquire",
            None,
            Some(json!({"permits": 5, "max_wait": "2s"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["granted"], true);
    let (status, _) = s
        .call(
            "POST",
            "/v1/gates/ingest/acquire",
            None,
            Some(json!({"permits": 50})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "more than the burst can ever hold"
    );
    s.stop().await;
}

#[tokio::test]
async fn openapi_describes_every_endpoint_and_metrics_are_exported() {
    let s = start(&state_dir("openapi"), false).await;
    let (status, doc) = s.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/status",
        "/v1/pause",
        "/v1/resume",
        "/v1/overrides",
        "/v1/overrides/{id}",
        "/v1/audit",
        "/v1/mode",
        "/v1/restore",
        "/v1/gates/{group}",
        "/v1/gates/{group}/acquire",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    eventually(async || s.call("GET", "/readyz", None, None).await.0 == StatusCode::OK).await;
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "catchup_group_lag_records",
        "catchup_broker_disk_used_percent",
        "catchup_gate_state",
        "catchup_topic_local_retention_ms",
        "catchup_tick_duration_seconds",
        "catchup_ready",
        "catchup_sensor_up{sensor=\"disk\"} 1",
        "catchup_action_disabled{action=\"lower_retention\"} 1",
        "catchup_action_disabled{action=\"raise_rate\"} 0",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics");
    }
    // Status says what is missing and what it disables.
    let (_, status) = s.call("GET", "/v1/status", None, None).await;
    assert_eq!(
        status["limitations"][0]["missing"],
        "storage mode is LOCAL, not TIERED"
    );
    assert_eq!(status["limitations"][0]["disables"][0], "lower_retention");
    s.stop().await;
}

/// The whole service on the live simulator (the `demo` code path) at 1200x, its API on a free port:
/// the API's base URL and the service task.
async fn start_simulated_service(
    dir: &std::path::Path,
    retention_actions: bool,
) -> (
    String,
    tokio::task::JoinHandle<Result<(), catchup::service::ServiceError>>,
) {
    let config = RunConfig {
        mode: Mode::Active,
        tick: Dur::from_secs(30),
        sensor_timeout: Dur::from_secs(10),
        policy: None,
        state_dir: dir.to_path_buf(),
        api: ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ApiConfig::default()
        },
        gate: GateConfig::default(),
        cluster: ClusterConfig::Simulator {
            scenario: super::root().join("scenarios/2025-11-replay.toml"),
            speed: 1200.0,
        },
        retention_actions,
        ha: None,
    };
    let (policy, scenario) = catchup::service::load(&config).expect("loads");
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let service = tokio::spawn(catchup::service::run(
        "run",
        config,
        policy,
        scenario,
        catchup::config::Tokens::operator(Some(TOKEN.into())),
        Box::new(move |addr: &str| {
            let _ = addr_tx.send(addr.to_string());
        }),
    ));
    let base = format!("http://{}", addr_rx.await.expect("listening"));
    (base, service)
}

/// The whole service on the live simulator (the `demo` code path), fast: the controller lowers
/// retention by itself, `restore` brings it back and holds it, dry-run stops gating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_lowers_restores_on_request_and_records_everything() {
    let dir = state_dir("service");
    let (base, service) = start_simulated_service(&dir, true).await;
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            http.get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // 20 simulated minutes per wall second: retention is lowered within the first simulated hour.
    let mut lowered = false;
    for _ in 0..150 {
        let status = get("/v1/status").await;
        if status["topics"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["target"]["target"] == "lowered"
                    && t["current_ms"].as_i64() < t["original_ms"].as_i64()
            })
        }) {
            lowered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lowered,
        "the controller lowered retention by itself: {}",
        get("/v1/status").await
    );

    let resp = http
        .post(format!("{base}/v1/restore"))
        .bearer_auth(TOKEN)
        .json(&json!({"reason": "undo everything", "actor": "oncall"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let restored: Value = resp.json().await.unwrap();
    assert_eq!(
        restored["topics"]["events_enriched"], "restored",
        "{restored}"
    );
    assert_eq!(
        restored["topics"]["person_updates"], "restored",
        "{restored}"
    );
    for _ in 0..50 {
        let status = get("/v1/status").await;
        if status["topics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["current_ms"] == json!(4 * 3_600_000))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = get("/v1/status").await;
    assert!(
        status["topics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["current_ms"] == json!(4 * 3_600_000)),
        "{}",
        status["topics"]
    );
    assert!(
        status["overrides"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["action"]["action"] == "hold_retention")
            .count()
            == 2,
        "held after the restore"
    );

    let audit = get("/v1/audit?limit=1000").await;
    let records = audit["records"].as_array().unwrap();
    assert!(
        records.iter().any(|r| r["action"] == "retention"
            && r["actor"] == "controller"
            && r["outcome"] == "applied"),
        "automatic change recorded"
    );
    assert!(
        records.iter().any(|r| r["action"] == "restore"
            && r["actor"] == "operator:oncall"
            && r["outcome"] == "applied"),
        "manual restore recorded"
    );

    let resp = http
        .put(format!("{base}/v1/mode"))
        .bearer_auth(TOKEN)
        .json(&json!({"mode": "dry-run", "reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The mode takes effect at the next tick: wait for the gate to say so (an automatic gate may
    // be throttled until then, by the slow start for one).
    let mut gate = get("/v1/gates/ingestion").await;
    for _ in 0..100 {
        if gate["reasons"].to_string().contains("dry-run") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        gate = get("/v1/gates/ingestion").await;
    }
    assert_eq!(gate["state"], "open", "dry-run never gates: {gate}");
    assert!(gate["reasons"].to_string().contains("dry-run"), "{gate}");
    service.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An instance with `retention_actions = false` (a sidecar that does not own retention) gates but
/// never changes local retention, says so in status, and refuses a restore with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_retention_actions_never_touches_retention() {
    let dir = state_dir("no-retention");
    let (base, service) = start_simulated_service(&dir, false).await;
    let http = reqwest::Client::new();
    // 10 wall seconds = over 3 simulated hours: the owning controller lowers within the first hour.
    let mut wanted_lower = false;
    for _ in 0..100 {
        let status: Value = http
            .get(format!("{base}/v1/status"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["ticks"] == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for t in status["topics"].as_array().unwrap() {
            assert_eq!(t["current_ms"], json!(4 * 3_600_000), "never changed: {t}");
            wanted_lower |= t["target"]["target"] == "lowered";
        }
        let limits = status["limitations"].to_string();
        assert!(limits.contains("retention_actions = false"), "{limits}");
        if wanted_lower {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        wanted_lower,
        "the engine wanted a lower; this instance did not apply it"
    );
    let restored: Value = http
        .post(format!("{base}/v1/restore"))
        .bearer_auth(TOKEN)
        .json(&json!({"reason": "try", "actor": "oncall"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        restored["topics"]["events_enriched"]
            .as_str()
            .unwrap()
            .contains("does not own retention"),
        "{restored}"
    );
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    assert!(
        !audit.contains("\"retention\""),
        "no retention entry: {audit}"
    );
    service.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
