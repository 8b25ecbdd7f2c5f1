//! Changes sent to any instance of an HA deployment take effect fleet-wide (docs/ha.md): the
//! mode, and the delete of an override made on another instance, even one killed since. Run
//! inside `ha::a_pause_sent_to_a_follower_reaches_every_gate_within_two_seconds`, on its three
//! instances.

use std::time::Duration;

use serde_json::{Value, json};

use crate::ha::{Instance, poll};

const TOKEN: &str = "ha-token-0123456789abc";

async fn gate_state(i: &Instance) -> String {
    i.get("/v1/gates/ingest").await.unwrap_or_default()["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `PUT /v1/mode` on one instance sets every instance's mode.
pub(crate) async fn the_mode_set_on_any_instance_is_every_instance_s(instances: &[Instance]) {
    let http = reqwest::Client::new();
    for (n, mode) in ["dry-run", "active"].into_iter().enumerate() {
        let to = &instances[n % instances.len()];
        let put = http
            .put(format!("http://127.0.0.1:{}/v1/mode", to.port))
            .bearer_auth(TOKEN)
            .json(&json!({"mode": mode, "reason": "ha test"}))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        assert!(put, "mode {mode} accepted by {}", to.id);
        let everywhere = poll(Duration::from_secs(10), async || {
            for i in instances {
                if i.get("/v1/status").await.unwrap_or_default()["mode"] != mode {
                    return None;
                }
            }
            Some(())
        })
        .await;
        assert!(
            everywhere.is_some(),
            "every instance in mode {mode} after it was set on {}",
            to.id
        );
    }
}

/// A pause made on a follower, deleted through the leader: every gate opens and the maker no
/// longer lists it. Then a pause made on a follower that is killed -9 before the delete is sent
/// to another instance: every surviving gate opens all the same. An id no instance made is 404.
pub(crate) async fn an_override_is_deleted_through_another_instance_even_with_its_maker_killed(
    instances: &mut Vec<Instance>,
    leader: &str,
) {
    let http = reqwest::Client::new();
    let li = instances
        .iter()
        .position(|i| i.id == leader)
        .expect("leader");
    let pause = async |i: &Instance| -> Value {
        let r = http
            .post(format!("http://127.0.0.1:{}/v1/pause", i.port))
            .bearer_auth(TOKEN)
            .json(&json!({"group": "ingest", "reason": "ha delete test", "ttl": "10m"}))
            .send()
            .await
            .expect("pause sent");
        assert!(r.status().is_success(), "pause on {}: {}", i.id, r.status());
        r.json().await.expect("the override")
    };
    let delete = async |i: &Instance, id: &str| -> reqwest::StatusCode {
        http.delete(format!(
            "http://127.0.0.1:{}/v1/overrides/{id}?reason=ha+delete+test",
            i.port
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("delete sent")
        .status()
    };
    let all_paused = async |instances: &[Instance], paused: bool| {
        poll(Duration::from_secs(10), async || {
            for i in instances {
                if (gate_state(i).await == "paused") != paused {
                    return None;
                }
            }
            Some(())
        })
        .await
        .is_some()
    };

    // The maker alive.
    let maker = (li + 1) % instances.len();
    let made = pause(&instances[maker]).await;
    let id = made["id"].as_str().expect("id").to_string();
    assert!(
        id.ends_with(&format!("@{}", instances[maker].id)),
        "ids name the instance that made them: {id}"
    );
    assert!(all_paused(instances, true).await, "every gate paused");
    assert_eq!(
        delete(&instances[li], &id).await,
        200,
        "delete of {id} via the leader"
    );
    assert!(
        all_paused(instances, false).await,
        "every gate open after {id} was deleted through the leader"
    );
    let listed = instances[maker].get("/v1/overrides").await.expect("list");
    assert!(
        !listed.to_string().contains(&id),
        "the maker removed {id}: {listed}"
    );
    assert_eq!(
        delete(&instances[li], "ovr-999@nobody").await,
        404,
        "an id no instance made"
    );

    // The maker killed before the delete.
    let made = pause(&instances[maker]).await;
    let id = made["id"].as_str().expect("id").to_string();
    assert!(all_paused(instances, true).await, "every gate paused again");
    instances[maker].kill9();
    let survivors: Vec<Instance> = {
        let mut all = std::mem::take(instances);
        drop(all.remove(maker));
        all
    };
    assert!(
        all_paused(&survivors, true).await,
        "the pause outlives its maker"
    );
    let via = survivors
        .iter()
        .find(|i| i.id != leader)
        .expect("a follower");
    assert_eq!(delete(via, &id).await, 200, "delete of {id} via {}", via.id);
    assert!(
        all_paused(&survivors, false).await,
        "every surviving gate open after {id} (its maker killed) was deleted via {}",
        via.id
    );
    *instances = survivors;
}
