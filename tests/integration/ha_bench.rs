//! The failover benchmark of HA mode (`scripts/ha-failover.sh`, docs/ha.md).

use std::time::{Duration, Instant};

use crate::ha::{
    Instance, broker_with_backlog, configure, fresh_dir, keep_touching, logs, poll, settled_leader,
};

/// Failover benchmark (`scripts/ha-failover.sh`): five times, kill -9 the leader of three
/// instances and time until a survivor leads and shows its first decision; prints the median and
/// the maximum. Session timeout: the default (`ha.session_timeout`, 8 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by scripts/ha-failover.sh"]
async fn failover_benchmark() {
    let (_broker, b) = broker_with_backlog("ha-bench").await;
    let dir = fresh_dir("bench");
    configure(&dir, &b, "bench");
    // The default session timeout, as shipped.
    let config = std::fs::read_to_string(dir.join("catchup.toml")).expect("config");
    std::fs::write(
        dir.join("catchup.toml"),
        config.replace("session_timeout = \"6s\"\n", ""),
    )
    .expect("config");
    let ids = ["i0", "i1", "i2"];
    let mut instances: Vec<Instance> = ids.iter().map(|id| Instance::start(&dir, id)).collect();
    let toucher = keep_touching(vec![dir.clone()]);
    let mut times = Vec::new();
    for run in 0..5 {
        let Some((leader, epoch)) = settled_leader(&instances, 3).await else {
            panic!("run {run}: no settled leader; {}", logs(&dir, &ids));
        };
        let li = instances
            .iter()
            .position(|i| i.id == leader)
            .expect("leader");
        let killed_at = Instant::now();
        instances[li].kill9();
        let decided = poll(Duration::from_secs(60), async || {
            for (n, i) in instances.iter().enumerate() {
                if n == li {
                    continue;
                }
                let Some(st) = i.get("/v1/status").await else {
                    continue;
                };
                if st["ha"]["role"] == "leader"
                    && st["ha"]["epoch"].as_u64().unwrap_or(0) > epoch
                    && !st["decision"].is_null()
                {
                    return Some(i.id.clone());
                }
            }
            None
        })
        .await;
        let took = killed_at.elapsed();
        let Some(new_leader) = decided else {
            panic!(
                "run {run}: no new leader's decision within 60 s; {}",
                logs(&dir, &ids)
            );
        };
        eprintln!("run {run}: {leader} killed, {new_leader} decided after {took:.1?}");
        times.push(took);
        // Back to three instances.
        instances[li] = Instance::start(&dir, &leader);
    }
    times.sort();
    eprintln!(
        "failover (kill -9 to the new leader's first decision), default session timeout {}, 3 instances, tick 1s: median {:.1?}, max {:.1?}, all {times:.1?}",
        default_session_timeout(),
        times[times.len() / 2],
        times[times.len() - 1]
    );
    toucher.abort();
}

/// The default `ha.session_timeout`, as the library parses a `[ha]` table naming only the deployment.
fn default_session_timeout() -> catchup::units::Dur {
    toml::from_str::<catchup::ha::HaConfig>(r#"name = "bench""#)
        .expect("a [ha] table with only a name")
        .session_timeout
}
