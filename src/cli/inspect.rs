//! `catchup observe`, `catchup plan` and `catchup lag`: what the controller sees and would decide,
//! rendered for people (or as JSON).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use catchup::config::{ClusterConfig, RunConfig};
use catchup::policy::{ControllerState, Policy, decide};
use catchup::units::Dur;

use super::{KafkaArgs, runtime};

/// `catchup observe`: one snapshot of every sensor, with the limitations.
pub fn observe(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (obs, _, _, facts) = snapshot(config)?;
    if json {
        let mut v = serde_json::to_value(&obs)?;
        v["limitations"] = serde_json::to_value(&facts.limitations)?;
        v["cluster"] = facts.cluster.unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render_observation(&obs));
        print!("{}", render_limitations(&facts.limitations));
    }
    Ok(ExitCode::SUCCESS)
}

/// `catchup plan`: what the engine would decide now, and why. It reads the state directory without
/// its lock, so it runs beside the controller.
pub fn plan(config: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (obs, policy, state_dir, _) = snapshot(config)?;
    let store = catchup::store::StateDir::open_read_only(&state_dir)?;
    let state: ControllerState = store.load("state.json")?.unwrap_or_default();
    let overrides = catchup::runtime::OverrideBook::read(&store)?;
    let now = obs
        .groups
        .first()
        .map(|g| g.sampled_at)
        .unwrap_or_else(catchup::clock::wall_now);
    let (decision, _) = decide(&obs, &policy, &state, &overrides, now);
    if json {
        println!("{}", serde_json::to_string_pretty(&decision)?);
    } else {
        print!("{}", render_decision(&decision));
    }
    Ok(ExitCode::SUCCESS)
}

/// `catchup lag`: consumer-group lag, read once.
pub async fn lag(kafka: &KafkaArgs, groups: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let (conn, timeout) = kafka.connect().await?;
    // One read: every lagging partition's record time, however many.
    let reader = catchup::sensors::lag::LagReader::with_record_budget(&conn, timeout, usize::MAX)?;
    let now = catchup::clock::wall_now();
    let names = groups.to_vec();
    let readings = tokio::task::spawn_blocking(move || reader.read_groups(&names, now))
        .await?
        .with_context(|| {
            let named: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
            format!(
                "reading the lag of group {} from {}",
                named.join(", "),
                conn.bootstrap_servers
            )
        })?;
    // The groups that could be read are shown; each one that could not is named, and the command
    // fails so a script does not take a partial answer for a whole one.
    print!(
        "{}",
        render_lag(&readings.read, catchup::clock::wall_now(), json)?
    );
    if readings.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let why: Vec<String> = readings.failed.into_iter().map(|f| f.reason).collect();
    anyhow::bail!(
        "reading the lag from {}: {}",
        conn.bootstrap_servers,
        why.join("; ")
    )
}

/// What a snapshot knows of the cluster beyond the observation.
#[derive(Default)]
struct Facts {
    limitations: Vec<catchup::sensors::Limitation>,
    cluster: Option<serde_json::Value>,
}

fn render_limitations(limitations: &[catchup::sensors::Limitation]) -> String {
    if limitations.is_empty() {
        return "limitations: none\n".into();
    }
    let mut out = String::from("limitations:\n");
    for l in limitations {
        out.push_str(&format!("  - {l}\n"));
    }
    out
}

/// One observation of the cluster a config names, with its policy, state directory and facts.
fn snapshot(
    config: &std::path::Path,
) -> anyhow::Result<(catchup::sensors::Observation, Policy, PathBuf, Facts)> {
    let config = RunConfig::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (policy, scenario) = catchup::service::load(&config)?;
    let obs = match &config.cluster {
        ClusterConfig::Simulator { speed, .. } => {
            let scenario = scenario.context("no scenario")?;
            let live = catchup::sim::live::LiveSim::start(&scenario, *speed);
            (
                catchup::sim::controllers::observe(&live.cluster, &policy)?,
                Facts::default(),
            )
        }
        ClusterConfig::Kafka { .. } | ClusterConfig::Msk { .. } => {
            let timeout = std::time::Duration::from_millis(config.effective_sensor_timeout().0);
            runtime()?.block_on(async {
                // Observing changes nothing: the state directory is only read.
                let store = catchup::store::StateDir::open_read_only(&config.state_dir)?;
                let (cluster, _) =
                    catchup::service::real_cluster(&config, &policy, std::sync::Arc::new(store))
                        .await?;
                let obs = catchup::runtime::observe_once(&cluster, &policy, Some(timeout)).await;
                use catchup::sensors::ClusterFacts;
                let limitations =
                    catchup::runtime::limitations(&cluster, &config, &obs.sensor_errors);
                let facts = Facts {
                    limitations,
                    cluster: cluster.describe(),
                };
                anyhow::Ok((obs, facts))
            })?
        }
    };
    let (obs, facts) = obs;
    Ok((obs, policy, config.state_dir, facts))
}

fn render_observation(obs: &catchup::sensors::Observation) -> String {
    let mut out = String::from("disks:\n");
    for d in &obs.disks {
        out.push_str(&format!(
            "  broker {:>3}: {:5.1}% of {} (sampled {}, {:?})\n",
            d.broker,
            d.used_percent(),
            catchup::units::Bytes(d.capacity_bytes),
            d.sampled_at.rfc3339(),
            d.source
        ));
    }
    out.push_str("tiered-storage copy lag:\n");
    for c in &obs.copy_lag {
        out.push_str(&format!(
            "  broker {:>3}: {}\n",
            c.broker,
            catchup::units::human_bytes(c.bytes as f64)
        ));
    }
    out.push_str("catch-up groups:\n");
    for g in &obs.groups {
        let lag = g.total_lag().map_or(
            "unknown (a partition has no committed offset)".to_string(),
            |l| format!("{l} records"),
        );
        out.push_str(&format!(
            "  {}: lag {lag} over {} partitions\n",
            g.group,
            g.partitions.len()
        ));
    }
    out.push_str("managed topics:\n");
    for t in &obs.topics {
        let local = t.configs.get("local.retention.ms");
        out.push_str(&format!(
            "  {}: local.retention.ms = {} ({:?}), effective {}, remote.storage.enable = {}\n",
            t.topic,
            local
                .and_then(|c| c.value.clone())
                .unwrap_or_else(|| "-".into()),
            local.map(|c| c.source),
            t.effective_local_retention_ms()
                .map_or("unlimited".into(), |ms| Dur(ms.max(0) as u64).to_string()),
            t.remote_storage_enabled()
        ));
    }
    for f in &obs.sensor_errors {
        match &f.target {
            None => out.push_str(&format!("sensor {} failed: {}\n", f.sensor, f.reason)),
            Some(t) => out.push_str(&format!(
                "sensor {} could not read {t}: {}\n",
                f.sensor, f.reason
            )),
        }
    }
    out
}

fn render_decision(d: &catchup::policy::Decision) -> String {
    let mut out = String::new();
    for (group, g) in &d.groups {
        out.push_str(&format!("group {group}: {}\n", g.gate.name()));
        for r in &g.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
    }
    for (topic, t) in &d.topics {
        out.push_str(&format!("topic {topic}: {:?}\n", t.target));
        for r in &t.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
    }
    for a in &d.alerts {
        out.push_str(&format!(
            "alert [{:?}] {}: {}\n",
            a.severity, a.code, a.message
        ));
    }
    out
}

fn render_lag(
    groups: &[catchup::sensors::GroupOffsets],
    now: catchup::units::Timestamp,
    json: bool,
) -> anyhow::Result<String> {
    let secs = |ms: Option<i64>| ms.map(|ms| ms as f64 / 1000.0);
    if json {
        let groups: Vec<serde_json::Value> = groups
            .iter()
            .map(|g| {
                let partitions: Vec<serde_json::Value> = g
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut v = serde_json::json!({"topic": p.topic, "partition": p.partition, "committed": p.committed, "log_start": p.log_start, "log_end": p.log_end, "lag": p.lag(), "time_lag_secs": secs(p.time_lag_ms(now))});
                        if let Some(r) = p.next_record {
                            v["next_record"] = serde_json::json!(r);
                        }
                        if let Some(lost) = p.lost() {
                            v["deleted_unconsumed"] = serde_json::json!(lost);
                        }
                        v
                    })
                    .collect();
                let mut v = serde_json::json!({"group": g.group, "total_lag": g.total_lag(), "time_lag_secs": secs(g.time_lag_ms(now)), "partitions": partitions});
                if !g.unavailable.is_empty() {
                    v["unavailable"] = serde_json::json!(g.unavailable);
                }
                v
            })
            .collect();
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({"at": now, "groups": groups}))?
        ));
    }
    let age = |ms: Option<i64>| {
        ms.map_or("unknown".to_string(), |ms| {
            catchup::units::Dur(ms.max(0) as u64).to_string()
        })
    };
    let mut out = String::new();
    for g in groups {
        let total = g
            .total_lag()
            .map_or("unknown".to_string(), |l| l.to_string());
        out.push_str(&format!(
            "group {}: total lag {total}, time lag {}\n",
            g.group,
            age(g.time_lag_ms(now))
        ));
        if g.partitions.is_empty() {
            out.push_str("  no committed offsets\n");
        }
        for p in &g.partitions {
            let committed = p.committed.map_or("-".to_string(), |c| c.to_string());
            let lag = p.lag().map_or("-".to_string(), |l| l.to_string());
            out.push_str(&format!(
                "  {}-{}: committed {committed}, log end {}, lag {lag}, time lag {}",
                p.topic,
                p.partition,
                p.log_end,
                age(p.time_lag_ms(now))
            ));
            if let Some(lost) = p.lost() {
                out.push_str(&format!(
                    ", {lost} records deleted before they were consumed (log start {})",
                    p.log_start.unwrap_or_default()
                ));
            }
            out.push('\n');
        }
        for u in &g.unavailable {
            out.push_str(&format!("  unavailable: {u}\n"));
        }
    }
    Ok(out)
}
