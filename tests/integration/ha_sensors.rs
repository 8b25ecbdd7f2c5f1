//! One reader of the cluster's sensors for the whole HA deployment (docs/ha.md): only the leader
//! reads the disk source; followers serve its decisions. The disk source here is a stand-in for
//! Prometheus that counts the queries it answers (CloudWatch is covered by the SDK-counted
//! `cargo bench --bench cloudwatch`, per reader; this shows there is one reader per fleet).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ha::{Instance, broker_with_backlog, fresh_dir, leaders, logs, poll, write_config};

/// Answers every Prometheus instant query with broker 1 at 30% (300 of 1000 bytes), counting them.
async fn fake_prometheus() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let queries = Arc::new(AtomicU64::new(0));
    let counted = queries.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                if !line.starts_with("GET /api/v1/query") {
                    return;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let value = if line.contains("query=used") {
                    300
                } else {
                    1000
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_secs_f64();
                let body = format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"broker":"1"}},"value":[{now},"{value}"]}}]}}}}"#
                );
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, queries)
}

fn configure(dir: &Path, bootstrap: &str, prometheus: &str) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("policy.toml"),
        "[drain]\nlag_threshold = 10\n[retention]\nfloor = \"1h\"\n[[retention.topics]]\nname = \"enriched\"\n[[groups]]\nname = \"ingest\"\nmax_rate = 1000\n",
    )
    .expect("policy");
    let disk = format!(
        "kind = \"prometheus\"\nurl = \"{prometheus}\"\nused_bytes_query = \"used\"\ncapacity_bytes_query = \"capacity\"\nbroker_label = \"broker\"\nscrape_interval = \"15s\""
    );
    write_config(dir, bootstrap, "readers", "1s", &disk);
}

/// Three instances read the disk source as often as one: over 15 s of 1 s ticks the fleet asks at
/// most two queries (used, capacity) per leader tick, and at least some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reads_the_disk_source_however_many_instances_run() {
    let (_broker, b) = broker_with_backlog("ha-sensors").await;
    let (url, queries) = fake_prometheus().await;
    let dir = fresh_dir("sensors");
    configure(&dir, &b, &url);
    let ids = ["r0", "r1", "r2"];
    let instances: Vec<Instance> = ids.iter().map(|id| Instance::start(&dir, id)).collect();
    let settled = poll(Duration::from_secs(60), async || {
        let l = leaders(&instances).await;
        if l.len() != 1 {
            return None;
        }
        for i in &instances {
            if i.ha().await["members"] != 3 {
                return None;
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        (leaders(&instances).await == l).then(|| l[0].0.clone())
    })
    .await;
    let Some(leader) = settled else {
        panic!("one leader of three; {}", logs(&dir, &ids));
    };
    let before = queries.load(Ordering::SeqCst);
    let window = Duration::from_secs(15);
    tokio::time::sleep(window).await;
    let asked = queries.load(Ordering::SeqCst) - before;
    eprintln!(
        "3 instances, {window:?} of 1 s ticks: {asked} disk queries for the fleet (leader {leader})"
    );
    // Every instance reading would be about 3 × 2 × 15 = 90; the leader alone about 30.
    let one_reader = 2 * (window.as_secs() + 2);
    assert!(
        asked > 0 && asked <= one_reader,
        "{asked} queries in {window:?}: one reader asks at most {one_reader}\n{}",
        logs(&dir, &ids)
    );
}
