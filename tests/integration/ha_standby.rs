//! Standby members (`ha.standby`, what the Helm chart sets on sidecars): a standby instance leads
//! while it is alone, an instance without standby takes the lead as soon as it joins (in a newer
//! epoch), and the standby one leads again once that instance is gone. The ids are chosen so that
//! the sidecar's sorts first: only `standby` puts it behind.

use std::time::{Duration, Instant};

use crate::ha::{
    Instance, broker_with_backlog, configure, fresh_dir, keep_touching, leaders, logs, poll,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_instance_leads_only_while_no_other_kind_is_a_member() {
    let (_broker, b) = broker_with_backlog("ha-standby").await;
    // Two directories of one deployment: sidecars (standby) and a standalone release.
    let root = fresh_dir("standby");
    let (sidecars, standalone) = (root.join("sidecars"), root.join("standalone"));
    configure(&sidecars, &b, "standby-fleet");
    configure(&standalone, &b, "standby-fleet");
    let config = sidecars.join("catchup.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(
        text.trim_end().ends_with("session_timeout = \"6s\""),
        "[ha] last: {text}"
    );
    std::fs::write(&config, format!("{text}standby = true\n")).expect("config");
    let toucher = keep_touching(vec![sidecars.clone(), standalone.clone()]);
    let logs_all = || {
        format!(
            "{}\n{}",
            logs(&sidecars, &["a-sidecar"]),
            logs(&standalone, &["z-release"])
        )
    };

    // Alone, the standby sidecar leads.
    let sidecar = Instance::start(&sidecars, "a-sidecar");
    let first = poll(Duration::from_secs(60), async || {
        let l = leaders(std::slice::from_ref(&sidecar)).await;
        (l.len() == 1).then(|| l[0].1)
    })
    .await;
    let Some(epoch) = first else {
        panic!("the standby sidecar leads when alone; {}", logs_all());
    };

    // The standalone instance joins: it takes the lead in a newer epoch; the sidecar follows.
    let mut release = Instance::start(&standalone, "z-release");
    let joined = Instant::now();
    let took = poll(Duration::from_secs(60), async || {
        let l = leaders(&[&sidecar, &release]).await;
        (l.len() == 1
            && l[0].0 == "z-release"
            && l[0].1 > epoch
            && sidecar.ha().await["role"] == "follower")
            .then(|| l[0].1)
    })
    .await;
    let Some(release_epoch) = took else {
        panic!(
            "the standalone instance leads once it joins; leaders {:?}\n{}",
            leaders(&[&sidecar, &release]).await,
            logs_all()
        );
    };
    eprintln!(
        "z-release leads in epoch {release_epoch}, {:?} after it started",
        joined.elapsed()
    );
    // And keeps it: the sidecar never takes it back while the release is a member.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        leaders(&[&sidecar, &release]).await,
        vec![("z-release".to_string(), release_epoch)],
        "z-release still leads; {}",
        logs_all()
    );

    // The release goes away: the sidecar leads again, in a newer epoch.
    release.terminate();
    let back = poll(Duration::from_secs(30), async || {
        let l = leaders(std::slice::from_ref(&sidecar)).await;
        (l.len() == 1 && l[0].1 > release_epoch).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "the sidecar leads again once the release is gone; {}",
        logs_all()
    );
    toucher.abort();
}
