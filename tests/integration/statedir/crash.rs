//! 64 parallel mutations with `kill -9` in the middle: after the restart every acknowledged
//! override is in force and audited, every override in force is audited, and neither override ids
//! nor gate versions go back.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "crash-token-0123456789";

fn start(config: &Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_catchup"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("CATCHUP_API_TOKEN", TOKEN)
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("catchup run starts"),
    )
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    http.get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mutations_and_kill_9_lose_nothing_acknowledged() {
    let (file, state) = config("crash");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "[cluster]",
            "[api.limits]\nmax_overrides = 1000\nmax_overrides_per_scope = 1000\n[cluster]",
        ),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let mut child = start(&file);
    let base = format!(
        "http://{}",
        held_by(&state, child.0.id()).api.expect("listening")
    );
    let gate = get(&http, format!("{base}/v1/gates/ingestion")).await;
    let version_before = gate["version"].as_u64().unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let http = http.clone();
            let answered = answered.clone();
            let url = format!("{base}/v1/overrides");
            tokio::spawn(async move {
                let body = json!({"scope": {"kind": "all_groups"}, "action": {"action": "fixed_rate", "rate": 100 + i}, "reason": format!("m-{i}"), "ttl": "1h"});
                let resp = http.post(url).bearer_auth(TOKEN).json(&body).send().await.ok()?;
                if resp.status() != 200 {
                    return None;
                }
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let o: Value = resp.json().await.ok()?;
                o["id"].as_str().map(str::to_string)
            })
        })
        .collect();
    // Kill -9 while they are in flight: once 20 were acknowledged.
    for _ in 0..2000 {
        if answered.load(std::sync::atomic::Ordering::SeqCst) >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.0.kill().unwrap();
    let _ = child.0.wait();
    let mut acknowledged = BTreeSet::new();
    for c in calls {
        if let Some(id) = c.await.unwrap() {
            acknowledged.insert(id);
        }
    }
    let mut child = start(&file);
    let base = format!(
        "http://{}",
        held_by(&state, child.0.id()).api.expect("listening")
    );
    let listed = get(&http, format!("{base}/v1/overrides")).await;
    let in_force: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    let audit = get(&http, format!("{base}/v1/audit?limit=1000")).await;
    let audited: BTreeSet<String> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "override.create")
        .filter_map(|r| r["after"]["id"].as_str().map(str::to_string))
        .collect();
    assert!(
        acknowledged.is_subset(&in_force),
        "acknowledged {acknowledged:?} but in force {in_force:?}"
    );
    assert!(
        in_force.is_subset(&audited),
        "in force without an audit record: {:?}",
        in_force.difference(&audited).collect::<Vec<_>>()
    );
    // Ids and versions go on upwards.
    let (status, o) = {
        let resp = http
            .post(format!("{base}/v1/overrides"))
            .bearer_auth(TOKEN)
            .json(&json!({"scope": {"kind": "all_groups"}, "action": {"action": "pause"}, "reason": "after", "ttl": "1h"}))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{o}");
    let num = |id: &str| id.trim_start_matches("ovr-").parse::<u64>().unwrap();
    let newest = num(o["id"].as_str().unwrap());
    assert!(
        audited.iter().all(|id| num(id) < newest),
        "ovr-{newest} after {audited:?}"
    );
    let gate = get(&http, format!("{base}/v1/gates/ingestion")).await;
    assert!(gate["version"].as_u64().unwrap() > version_before, "{gate}");
    eprintln!(
        "acknowledged {}, in force {}, audited {}",
        acknowledged.len(),
        in_force.len(),
        audited.len()
    );
    let _ = child.0.kill();
    let _ = std::fs::remove_dir_all(state.parent().unwrap());
}
