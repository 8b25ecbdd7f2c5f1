//! 64 parallel mutations with `kill -9` in the middle: after the restart every acknowledged
//! override is in force and audited, every override in force is audited, and neither override ids
//! nor gate versions go back; with deletes among them, every acknowledged delete holds and every
//! override is either in force or audited as deleted.

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

/// `POST /v1/overrides` of an all-groups fixed rate; its id when answered 200.
async fn create(http: &reqwest::Client, base: &str, i: usize) -> Option<String> {
    let body = json!({"scope": {"kind": "all_groups"}, "action": {"action": "fixed_rate", "rate": 100 + i}, "reason": format!("m-{i}"), "ttl": "1h"});
    let resp = http
        .post(format!("{base}/v1/overrides"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    let o: Value = resp.json().await.ok()?;
    o["id"].as_str().map(str::to_string)
}

/// Ids of the audit records of `action` (the override in `after`, else in `before`).
fn audited(audit: &Value, action: &str) -> BTreeSet<String> {
    audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == action)
        .filter_map(|r| {
            let o = if r["after"].is_null() {
                &r["before"]
            } else {
                &r["after"]
            };
            o["id"].as_str().map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_and_deletes_with_kill_9_lose_nothing_acknowledged() {
    let (file, state) = config("crash-deletes");
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
    let mut existing = Vec::new();
    for i in 0..32 {
        existing.push(create(&http, &base, i).await.expect("created"));
    }
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deletes: Vec<_> = existing
        .iter()
        .map(|id| {
            let (http, answered) = (http.clone(), answered.clone());
            let url = format!("{base}/v1/overrides/{id}?reason=done");
            let id = id.clone();
            tokio::spawn(async move {
                let resp = http.delete(url).bearer_auth(TOKEN).send().await.ok()?;
                (resp.status() == 200).then(|| {
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    id
                })
            })
        })
        .collect();
    let creates: Vec<_> = (32..64)
        .map(|i| {
            let (http, answered, base) = (http.clone(), answered.clone(), base.clone());
            tokio::spawn(async move {
                let id = create(&http, &base, i).await?;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Some(id)
            })
        })
        .collect();
    for _ in 0..2000 {
        if answered.load(std::sync::atomic::Ordering::SeqCst) >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.0.kill().unwrap();
    let _ = child.0.wait();
    let mut deleted = BTreeSet::new();
    for d in deletes {
        deleted.extend(d.await.unwrap());
    }
    let mut created = BTreeSet::new();
    for c in creates {
        created.extend(c.await.unwrap());
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
    let audited_create = audited(&audit, "override.create");
    let audited_delete = audited(&audit, "override.delete");
    assert!(
        created.is_subset(&in_force),
        "acknowledged creates {created:?}, in force {in_force:?}"
    );
    assert!(
        deleted.is_disjoint(&in_force),
        "acknowledged deletes in force: {:?}",
        deleted.intersection(&in_force).collect::<Vec<_>>()
    );
    assert!(
        deleted.is_subset(&audited_delete),
        "acknowledged deletes audited"
    );
    for id in &existing {
        assert!(
            in_force.contains(id) != audited_delete.contains(id),
            "{id}: in force {} and audited as deleted {}",
            in_force.contains(id),
            audited_delete.contains(id)
        );
    }
    assert!(
        in_force.is_subset(&audited_create),
        "in force without an audit record: {:?}",
        in_force.difference(&audited_create).collect::<Vec<_>>()
    );
    eprintln!(
        "deletes acknowledged {}, creates acknowledged {}, in force {}, reinstated {}, discarded {}",
        deleted.len(),
        created.len(),
        in_force.len(),
        audited(&audit, "override.reinstate").len(),
        audited(&audit, "override.discard").len()
    );
    let _ = child.0.kill();
    let _ = std::fs::remove_dir_all(state.parent().unwrap());
}
