//! A leader cut off from the broker (docs/ha.md): its only path to the broker is a `tansu proxy`
//! (which advertises itself, so every connection of that instance goes through it), and the proxy
//! is killed in the middle of an episode. The cut leader must stand down before the other
//! instance leads, and after the path comes back it must not act in its old epoch; the original
//! comes back exactly, restored by the new leader.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use catchup_testkit::{Broker, tansu};

use crate::faults::topics;
use crate::ha::{Instance, leaders, logs, poll};
use crate::ha_journal::{
    DiskLevel, configure, disk, fresh_dir, keep_disk_fresh, local, retention_actions, set_disk,
};
use crate::kafka::describe;

/// `tansu proxy` in front of the broker at `origin`, on a port of its own.
struct Proxy {
    child: Option<Child>,
    port: u16,
    origin: String,
}

impl Proxy {
    fn start(origin: &str) -> Proxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut p = Proxy {
            child: None,
            port,
            origin: origin.to_string(),
        };
        p.restart();
        p
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Cuts the path: every connection through the proxy ends, none is accepted.
    fn cut(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        let url = format!("tcp://{}", self.address());
        self.child = Some(
            Command::new(tansu())
                .args([
                    "proxy",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .arg("--origin-url")
                .arg(format!("tcp://{}", self.origin))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tansu proxy starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(self.address()).is_err() {
            assert!(Instant::now() < deadline, "tansu proxy did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn role(i: &Instance) -> (String, u64) {
    let ha = i.ha().await;
    (
        ha["role"].as_str().unwrap_or("").to_string(),
        ha["epoch"].as_u64().unwrap_or(0),
    )
}

fn config_dir(root: &Path, name: &str) -> std::path::PathBuf {
    root.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_broker_stands_down_first_and_never_acts_in_its_old_epoch() {
    let broker = Broker::start("ha-cut");
    let b = broker.bootstrap.clone();
    topics(&b).await;
    let before = describe(&b, "enriched").await;
    let mut proxy = Proxy::start(&b);
    // Two configurations of one deployment: the first instance reaches the broker only through
    // the proxy, the second directly.
    let root = fresh_dir("cut");
    let (far, near) = (config_dir(&root, "far"), config_dir(&root, "near"));
    configure(&far, &proxy.address(), "cut-fleet");
    configure(&near, &b, "cut-fleet");
    let level: DiskLevel = Arc::new(AtomicU64::new(30));
    disk(&far, 30);
    disk(&near, 30);
    let touchers = [
        keep_disk_fresh(&far, &level),
        keep_disk_fresh(&near, &level),
    ];
    let cut_off = Instance::start(&far, "x0");
    let led = poll(Duration::from_secs(60), async || {
        let (r, e) = role(&cut_off).await;
        (r == "leader").then_some(e)
    })
    .await;
    let Some(_) = led else {
        panic!("x0 leads; {}", logs(&far, &["x0"]));
    };
    let other = Instance::start(&near, "x1");
    let following = poll(Duration::from_secs(60), async || {
        (other.ha().await["leader"] == "x0").then_some(())
    })
    .await;
    assert!(
        following.is_some(),
        "x1 follows x0; {}",
        logs(&near, &["x1"])
    );
    // The leader lowers, then loses its path to the broker.
    set_disk(&far, &level, 77);
    set_disk(&near, &level, 77);
    let lowered = poll(Duration::from_secs(60), async || {
        // A value, and not the original (a config that answers no value is not a lowering).
        local(&describe(&b, "enriched").await)
            .is_some_and(|v| v != crate::faults::ORIGINAL)
            .then_some(())
    })
    .await;
    assert!(lowered.is_some(), "x0 lowers; {}", logs(&far, &["x0"]));
    // x1's join was a rebalance (x0 may have lost and won the lock again, in a newer epoch): the
    // epoch x0 leads in now, as it is cut off.
    let (r, epoch) = role(&cut_off).await;
    assert_eq!(
        r,
        "leader",
        "x0 leads when cut off; {}",
        logs(&far, &["x0"])
    );
    proxy.cut();
    let cut_at = Instant::now();
    // Who stands down and who takes over, and when (the cut instance's API is still up).
    let mut stood_down = None;
    let mut took_over = None;
    // The cut instance's API keeps answering at once: nothing it serves waits on the broker.
    let mut slowest = Duration::ZERO;
    while cut_at.elapsed() < Duration::from_secs(60) && took_over.is_none() {
        let asked = Instant::now();
        let cut_role = role(&cut_off).await.0;
        slowest = slowest.max(asked.elapsed());
        if stood_down.is_none() && cut_role != "leader" {
            stood_down = Some(cut_at.elapsed());
        }
        let (r, e) = role(&other).await;
        if r == "leader" && e > epoch {
            took_over = Some((cut_at.elapsed(), e));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (Some(down), Some((up, new_epoch))) = (stood_down, took_over) else {
        panic!(
            "x0 stands down and x1 leads within 60 s of the cut: {stood_down:?} {took_over:?}\n{}\n{}",
            logs(&far, &["x0"]),
            logs(&near, &["x1"])
        );
    };
    eprintln!(
        "cut at 0 s: x0 (epoch {epoch}) stood down after {down:?}, x1 leads in epoch {new_epoch} after {up:?}; x0's status answered within {slowest:?} each time while cut off"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "x0's API answered its status within 2 s while cut off: slowest {slowest:?}"
    );
    assert!(
        down < up,
        "the cut leader stood down ({down:?}) before the new one led ({up:?})"
    );
    // The path comes back. With the range assignor the returning instance may win the lock again
    // at the next rebalance (docs/ha.md); then it leads only in a newer epoch, never its old one.
    proxy.restart();
    let agreed = poll(Duration::from_secs(60), async || {
        let l = leaders(&[&cut_off, &other]).await;
        (l.len() == 1 && l[0].1 >= new_epoch).then(|| l[0].clone())
    })
    .await;
    assert!(
        agreed.is_some(),
        "one leader in epoch {new_epoch} or later once the path is back; {}\n{}",
        logs(&far, &["x0"]),
        logs(&near, &["x1"])
    );
    set_disk(&far, &level, 30);
    set_disk(&near, &level, 30);
    let restored = poll(Duration::from_secs(180), async || {
        (describe(&b, "enriched").await == before).then_some(())
    })
    .await;
    assert!(
        restored.is_some(),
        "DescribeConfigs exactly as before; now {:?}\n{}",
        describe(&b, "enriched").await,
        logs(&near, &["x1"])
    );
    // Every retention action carries its epoch, and the epochs follow one another in time: x0's
    // old epoch ends before any newer one acts (no two epochs acting on the topic at once).
    let mut actions = retention_actions(&far, &["x0"], "enriched");
    actions.extend(retention_actions(&near, &["x1"], "enriched"));
    actions.sort();
    assert!(
        actions.iter().any(|(_, e)| *e == Some(epoch)) && actions.iter().all(|(_, e)| e.is_some()),
        "x0 acted in epoch {epoch}, every action carries its epoch: {actions:?}"
    );
    let epochs: Vec<u64> = actions.iter().filter_map(|(_, e)| *e).collect();
    assert!(
        epochs.windows(2).all(|w| w[0] <= w[1]),
        "epochs never interleave: {actions:?}"
    );
    for t in touchers {
        t.abort();
    }
}
