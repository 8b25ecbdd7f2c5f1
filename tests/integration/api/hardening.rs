//! The API under abuse: tokens and roles checked before anything else, connections capped and
//! timed out, long-polls and overrides limited, gate versions that never go back, and overrides
//! that reach the gate at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use catchup::config::{ApiLimits, Tokens};
use catchup::units::Bytes;

use super::*;

const CONSUMER: &str = "consumer-token-0123456789";

fn tokens() -> Tokens {
    Tokens::operator(Some(TOKEN.into())).with_consumer(CONSUMER)
}

fn limits() -> ApiLimits {
    ApiLimits {
        max_connections: 32,
        header_timeout: Dur::from_millis(400),
        idle_timeout: Dur::from_secs(1),
        max_long_polls: 2,
        max_overrides_per_scope: 3,
        max_overrides: 5,
        ..ApiLimits::default()
    }
}

async fn server(name: &str, tick: Duration) -> Server {
    let api = ApiConfig {
        max_body: Bytes(4096),
        limits: limits(),
        ..ApiConfig::default()
    };
    start_with(&state_dir(name), api, tokens(), tick).await
}

/// Sends `bytes` on a fresh connection and returns how long until the server closed it (reading
/// whatever it answered), giving up after `limit`.
fn closed_after(base: &str, bytes: &[u8], limit: Duration) -> (Duration, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(limit)).unwrap();
    let t = Instant::now();
    s.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) => return (limit, String::from_utf8_lossy(&answer).into()),
        }
    }
    (t.elapsed(), String::from_utf8_lossy(&answer).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_checked_before_anything_about_the_request() {
    let s = server("auth-first", Duration::from_secs(1)).await;
    // Without a token every malformed write is 401, never 400, 413 or 415 with details.
    let big = vec![b'x'; 100_000];
    for (ct, body) in [
        ("text/plain", b"{}".to_vec()),
        ("application/json", b"{not json".to_vec()),
        ("application/json", big),
    ] {
        let resp = s
            .http
            .post(format!("{}/v1/overrides", s.base))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{ct}");
    }
    // A fresh client: the server closes a connection whose body it refused unread (the 100 kB one
    // above), and a pooled client could send this request down it before seeing that (a broken
    // pipe, not the server's answer).
    let resp = reqwest::Client::new()
        .delete(format!("{}/v1/overrides/x?bad=%ZZ", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The consumer token reads and takes permits, never writes or reads the audit log.
    let pause = json!({"group": "ingest", "reason": "test"});
    let (status, body) = s
        .call("POST", "/v1/pause", Some(CONSUMER), Some(pause.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = s.call("GET", "/v1/audit", Some(CONSUMER), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(s.ctl.active_overrides().is_empty());
    // With a consumer token configured, the gate needs a token.
    let acquire = json!({"permits": 1});
    let (status, _) = s
        .call(
            "POST",
            "/v1/gates/ingest/acquire",
            None,
            Some(acquire.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "tokenless acquire");
    let (status, _) = s.call("GET", "/v1/gates/ingest", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "tokenless gate read");
    let (status, body) = s
        .call(
            "POST",
            "/v1/gates/ingest/acquire",
            Some(CONSUMER),
            Some(acquire),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = s
        .call(
            "POST",
            "/v1/gates/ingest/acquire",
            Some(CONSUMER),
            Some(json!({"permits": u32::MAX})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "never u32::MAX permits");
    // The actor is the token's name: a header cannot make it the controller.
    let resp = s
        .http
        .post(format!("{}/v1/pause", s.base))
        .bearer_auth(TOKEN)
        .header("x-catchup-actor", "controller")
        .json(&pause)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let o: Value = resp.json().await.unwrap();
    assert_eq!(o["actor"], "operator:controller");
    let (_, audit) = s.call("GET", "/v1/audit", Some(TOKEN), None).await;
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] != "override.create" || r["actor"] == "operator:controller"),
        "{audit}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_surplus_connections_are_closed() {
    let s = server("conns", Duration::from_secs(1)).await;
    let base = s.base.clone();
    let (half, idle, cap, served) = tokio::task::spawn_blocking(move || {
        // Half its headers: closed by the header timeout (400 ms), well before the idle one.
        let half = closed_after(
            &base,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
            Duration::from_secs(5),
        );
        // Nothing at all: closed by the idle timeout (1 s).
        let idle = closed_after(&base, b"", Duration::from_secs(5));
        // 32 held open: the 33rd is closed at once, unanswered.
        let addr = base.trim_start_matches("http://").to_string();
        let held: Vec<TcpStream> = (0..32)
            .map(|_| TcpStream::connect(&addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let cap = closed_after(
            &base,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(5),
        );
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        let served = closed_after(
            &base,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        (half, idle, cap, served)
    })
    .await
    .unwrap();
    assert!(
        half.0 >= Duration::from_millis(300) && half.0 < Duration::from_millis(1500),
        "half a request: {half:?}"
    );
    assert!(
        idle.0 >= Duration::from_millis(900) && idle.0 < Duration::from_millis(3000),
        "an idle connection: {idle:?}"
    );
    assert!(
        cap.0 < Duration::from_millis(500) && cap.1.is_empty(),
        "over the cap: {cap:?}"
    );
    assert!(served.1.starts_with("HTTP/1.1 200"), "{served:?}");
    // A long-poll in progress is not idle: it answers after its wait (1.5 s > idle timeout).
    let (status, _) = s
        .call(
            "GET",
            "/v1/gates/ingest?after_version=18446744073709551614&wait=1500ms",
            Some(CONSUMER),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_overrides_and_reasons_are_limited() {
    let s = server("limits", Duration::from_secs(1)).await;
    let poll = |s: &Server| {
        s.http
            .get(format!(
                "{}/v1/gates/ingest?after_version=18446744073709551614&wait=3s",
                s.base
            ))
            .bearer_auth(CONSUMER)
            .send()
    };
    let waiting = [tokio::spawn(poll(&s)), tokio::spawn(poll(&s))];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = poll(&s).await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.headers()["retry-after"], "1");
    for w in waiting {
        assert_eq!(w.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let (status, body) = s
        .call(
            "POST",
            "/v1/pause",
            Some(TOKEN),
            Some(json!({"group": "ingest", "reason": "x".repeat(1025)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let pause = json!({"group": "ingest", "reason": "limit"});
    for _ in 0..3 {
        let (status, body) = s
            .call("POST", "/v1/pause", Some(TOKEN), Some(pause.clone()))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = s.call("POST", "/v1/pause", Some(TOKEN), Some(pause)).await;
    assert_eq!(status, StatusCode::CONFLICT, "per scope: {body}");
    let all = json!({"reason": "limit"});
    for _ in 0..2 {
        let (status, _) = s
            .call("POST", "/v1/pause", Some(TOKEN), Some(all.clone()))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = s.call("POST", "/v1/pause", Some(TOKEN), Some(all)).await;
    assert_eq!(status, StatusCode::CONFLICT, "in total: {body}");
    assert_eq!(s.ctl.active_overrides().len(), 5);
    s.stop().await;
}

/// A pause reaches the gate at once, not at the next tick (an hour away here), and gate versions
/// never go back across a restart: a consumer long-polling with the last version it saw wakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_reaches_the_gate_at_once_and_versions_survive_restarts() {
    let dir = state_dir("versions");
    let api = || ApiConfig {
        limits: limits(),
        ..ApiConfig::default()
    };
    let hour = Duration::from_secs(3600);
    let s = start_with(&dir, api(), tokens(), hour).await;
    let (_, gate) = s
        .call("GET", "/v1/gates/ingest", Some(CONSUMER), None)
        .await;
    let v1 = gate["version"].as_u64().unwrap();
    let (status, _) = s
        .call(
            "POST",
            "/v1/pause",
            Some(TOKEN),
            Some(json!({"group": "ingest", "reason": "now"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, gate) = s
        .call("GET", "/v1/gates/ingest", Some(CONSUMER), None)
        .await;
    assert_eq!(gate["state"], "paused", "{gate}");
    let v2 = gate["version"].as_u64().unwrap();
    assert!(v2 > v1);
    s.stop().await;

    let s = start_with(&dir, api(), tokens(), hour).await;
    let (_, gate) = s
        .call(
            "GET",
            &format!("/v1/gates/ingest?after_version={v2}&wait=1s"),
            Some(CONSUMER),
            None,
        )
        .await;
    let v3 = gate["version"].as_u64().unwrap();
    assert!(v3 > v2, "after a restart: {v3} > {v2}");
    assert_eq!(gate["state"], "paused", "the pause is in force again");
    s.stop().await;
}

/// Polls the gate of `ingest` until `want(state)` or `limit` passes; the state and the time taken.
async fn gate_until(
    s: &Server,
    want: impl Fn(&str) -> bool,
    limit: Duration,
) -> (String, Duration) {
    let t = Instant::now();
    loop {
        let (_, gate) = s
            .call("GET", "/v1/gates/ingest", Some(CONSUMER), None)
            .await;
        let state = gate["state"].as_str().unwrap_or_default().to_string();
        if want(&state) || t.elapsed() > limit {
            return (state, t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With a one-hour tick, removing the last pause and changing the mode still take effect within a
/// second or two: each change wakes the loop to decide at once (without that, the gate stays
/// paused for the hour).
#[tokio::test]
async fn a_resume_and_a_mode_change_are_decided_at_once_not_a_tick_later() {
    let s = server("woken", Duration::from_secs(3600)).await;
    let limit = Duration::from_secs(5);
    let (state, _) = gate_until(&s, |g| g != "paused", limit).await;
    assert_ne!(state, "paused", "the first tick decides at start");
    let body = json!({"group": "ingest", "reason": "on-call"});
    let (status, _) = s
        .call("POST", "/v1/pause", Some(TOKEN), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (state, _) = gate_until(&s, |g| g == "paused", limit).await;
    assert_eq!(state, "paused");

    let (status, _) = s
        .call("POST", "/v1/resume", Some(TOKEN), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (state, took) = gate_until(&s, |g| g != "paused", limit).await;
    assert_ne!(
        state, "paused",
        "still paused {took:?} after the last pause was removed"
    );
    eprintln!("resume decided after {took:?}");

    let (status, _) = s.call("POST", "/v1/pause", Some(TOKEN), Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let (state, _) = gate_until(&s, |g| g == "paused", limit).await;
    assert_eq!(state, "paused");
    let mode = json!({"mode": "dry-run", "reason": "stand down"});
    let (status, _) = s.call("PUT", "/v1/mode", Some(TOKEN), Some(mode)).await;
    assert_eq!(status, StatusCode::OK);
    let (state, took) = gate_until(&s, |g| g == "open", limit).await;
    assert_eq!(
        state, "open",
        "dry-run opens every gate; still {state} after {took:?}"
    );
    s.stop().await;
}
