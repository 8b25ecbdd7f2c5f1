//! The controller's writes: overrides and the mode are written and audited before they take
//! effect, in parallel and under faults; override ids never repeat.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::*;
use crate::config::{ApiConfig, ClusterConfig, GateConfig};
use crate::store::{Holder, Op};

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::Relaxed))
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("catchup-ctl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn controller(dir: &Path) -> (Arc<Controller>, Arc<TestClock>) {
    let config = RunConfig {
        mode: Mode::Active,
        tick: Dur::from_secs(1),
        sensor_timeout: Dur::from_secs(1),
        policy: None,
        state_dir: dir.to_path_buf(),
        api: ApiConfig::default(),
        gate: GateConfig::default(),
        cluster: ClusterConfig::Simulator {
            scenario: "unused".into(),
            speed: 1.0,
        },
        retention_actions: true,
        ha: None,
    };
    let store = Arc::new(StateDir::open(dir, Holder::this_process("test")).expect("opens"));
    let clock = Arc::new(TestClock(AtomicI64::new(1_800_000_000_000)));
    let (ctl, _) = Controller::new(
        config,
        Policy::default(),
        store,
        Default::default(),
        clock.clone(),
    )
    .expect("controller");
    (ctl, clock)
}

fn who(actor: &str) -> Authorized {
    Authorized {
        actor: actor.into(),
    }
}

fn pause(ctl: &Controller, reason: &str) -> Result<Override, ChangeError> {
    ctl.add_override(
        &who("alice"),
        OverrideScope::AllGroups,
        OverrideAction::Pause,
        reason.into(),
        Dur::from_secs(60),
    )
}

fn ids(list: &[Override]) -> BTreeSet<String> {
    list.iter().map(|o| o.id.clone()).collect()
}

/// Ids of the overrides with an audit record of `action`.
fn audited(ctl: &Controller, action: &str) -> Vec<String> {
    ctl.store
        .audit_page(10_000, None)
        .unwrap()
        .into_iter()
        .filter(|r| r.action == action)
        .map(|r| {
            let o = if r.after.is_null() {
                &r.before
            } else {
                &r.after
            };
            o["id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn on_disk(ctl: &Controller) -> Vec<Override> {
    ctl.store
        .load::<Vec<Override>>(OVERRIDES_FILE)
        .unwrap()
        .unwrap_or_default()
}

#[test]
fn parallel_overrides_with_failing_writes_are_in_force_exactly_when_acknowledged() {
    let dir = temp_dir("parallel");
    let (ctl, _) = controller(&dir);
    // Every third write of `overrides.json` and every fifth of `override-ids.json` fails, just
    // before its rename.
    let lists = AtomicU64::new(0);
    let marks = AtomicU64::new(0);
    ctl.store.inject_faults(move |op, name| match (op, name) {
        (Op::Save, OVERRIDES_FILE) => lists.fetch_add(1, Ordering::Relaxed) % 3 == 2,
        (Op::Save, OVERRIDE_IDS_FILE) => marks.fetch_add(1, Ordering::Relaxed) % 5 == 4,
        _ => false,
    });
    let start = Arc::new(std::sync::Barrier::new(16));
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let (ctl, start) = (ctl.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                pause(&ctl, &format!("call {i}"))
            })
        })
        .collect();
    let results: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    let acked: Vec<Override> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .cloned()
        .collect();
    let refused: Vec<&ChangeError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!acked.is_empty() && !refused.is_empty(), "{results:?}");
    for e in &refused {
        assert!(matches!(e, ChangeError::Refused { .. }), "{e}");
        assert!(e.to_string().starts_with("nothing changed: "), "{e}");
    }
    for file in [OVERRIDES_FILE, OVERRIDE_IDS_FILE] {
        assert!(
            refused.iter().any(|e| e
                .to_string()
                .contains(&format!("{file} could not be written"))),
            "a write of {file} failed: {refused:?}"
        );
    }
    let acked_ids = ids(&acked);
    assert_eq!(acked_ids.len(), acked.len(), "ids are unique");
    assert_eq!(
        ids(&ctl.active_overrides()),
        acked_ids,
        "in force: exactly the acknowledged"
    );
    assert_eq!(
        ids(&on_disk(&ctl)),
        acked_ids,
        "on disk: exactly the acknowledged"
    );
    let mut records = audited(&ctl, "override.create");
    records.sort();
    assert_eq!(
        records,
        acked_ids.iter().cloned().collect::<Vec<_>>(),
        "audited once each"
    );
    // The refused calls' reasons are nowhere.
    let reasons: BTreeSet<String> = acked.iter().map(|o| o.reason.clone()).collect();
    assert!(on_disk(&ctl).iter().all(|o| reasons.contains(&o.reason)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_override_whose_audit_record_cannot_be_written_is_undone() {
    let dir = temp_dir("unaudited");
    let (ctl, _) = controller(&dir);
    let kept = pause(&ctl, "kept").unwrap();
    ctl.store.inject_faults(|op, _| op == Op::Audit);
    let e = pause(&ctl, "lost").unwrap_err();
    assert!(matches!(e, ChangeError::Refused { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("then undone because its audit record could not be written"),
        "{e}"
    );
    let e = ctl
        .delete_override(&who("bob"), &kept.id, "try")
        .unwrap_err();
    assert!(matches!(e, ChangeError::Refused { .. }), "{e}");
    assert_eq!(
        ids(&ctl.active_overrides()),
        ids(std::slice::from_ref(&kept))
    );
    assert_eq!(ids(&on_disk(&ctl)), ids(std::slice::from_ref(&kept)));

    // Neither the audit record nor the undo can be written: in force, and the error says so.
    let saves = Arc::new(AtomicU64::new(0));
    let count = saves.clone();
    ctl.store.inject_faults(move |op, name| {
        op == Op::Audit
            || (op == Op::Save
                && name == OVERRIDES_FILE
                && count.fetch_add(1, Ordering::Relaxed) >= 1)
    });
    let e = pause(&ctl, "stuck").unwrap_err();
    assert!(matches!(e, ChangeError::Unrecorded { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(
            "is in force although its audit record could not be written, and undoing it failed too"
        ),
        "{msg}"
    );
    assert_eq!(ctl.active_overrides().len(), 2);
    assert_eq!(on_disk(&ctl).len(), 2, "memory matches the disk");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn override_ids_never_repeat_even_after_the_newest_is_deleted_and_a_restart() {
    let dir = temp_dir("ids");
    let (ctl, _) = controller(&dir);
    for i in 0..3 {
        pause(&ctl, &format!("p{i}")).unwrap();
    }
    ctl.delete_override(&who("bob"), "ovr-3", "done").unwrap();
    ctl.store
        .inject_faults(|op, name| op == Op::Save && name == OVERRIDES_FILE);
    assert!(
        pause(&ctl, "refused").is_err(),
        "ovr-4 is issued, then refused"
    );
    drop(ctl);
    let (ctl, _) = controller(&dir);
    assert_eq!(pause(&ctl, "after restart").unwrap().id, "ovr-5");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn expiry_is_written_then_audited_and_a_missing_record_is_reported() {
    let dir = temp_dir("expire");
    let (ctl, clock) = controller(&dir);
    let a = pause(&ctl, "a").unwrap();
    clock.0.fetch_add(61_000, Ordering::Relaxed);
    ctl.store
        .inject_faults(|op, name| op == Op::Save && name == OVERRIDES_FILE);
    assert!(matches!(
        ctl.expire_overrides(clock.now()),
        Err(ChangeError::Refused { .. })
    ));
    assert_eq!(on_disk(&ctl).len(), 1, "still listed");
    ctl.store.inject_faults(|op, _| op == Op::Audit);
    let e = ctl.expire_overrides(clock.now()).unwrap_err();
    assert!(matches!(e, ChangeError::Unrecorded { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("overrides {} expired", a.id)),
        "{e}"
    );
    assert!(on_disk(&ctl).is_empty());
    ctl.store.inject_faults(|_, _| false);
    let b = pause(&ctl, "b").unwrap();
    clock.0.fetch_add(61_000, Ordering::Relaxed);
    ctl.expire_overrides(clock.now()).unwrap();
    assert_eq!(audited(&ctl, "override.expire"), vec![b.id]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_mode_changes_only_once_its_audit_record_is_written() {
    let dir = temp_dir("mode");
    let (ctl, _) = controller(&dir);
    ctl.store.inject_faults(|op, _| op == Op::Audit);
    let e = ctl
        .set_mode(&who("carol"), Mode::Observe, "try")
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("nothing changed: the mode stays active"),
        "{e}"
    );
    assert_eq!(ctl.mode(), Mode::Active);
    ctl.store.inject_faults(|_, _| false);
    assert_eq!(
        ctl.set_mode(&who("carol"), Mode::Observe, "now").unwrap(),
        Mode::Active
    );
    assert_eq!(ctl.mode(), Mode::Observe);
    let records = ctl.store.audit_page(10, None).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "mode");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_work_runs_off_the_async_workers_even_on_one_thread() {
    let dir = temp_dir("blocking");
    let (ctl, _) = controller(&dir);
    let who = who("dave");
    let o = ctl
        .blocking(move |c| {
            c.add_override(
                &who,
                OverrideScope::AllGroups,
                OverrideAction::Pause,
                "async".into(),
                Dur::from_secs(60),
            )
        })
        .await
        .unwrap();
    assert_eq!(ctl.active_overrides()[0].id, o.id);
    let r = ctl
        .audit_async(Entry {
            actor: "controller",
            action: "gate",
            target: "g",
            reason: "r",
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            outcome: Outcome::Applied,
        })
        .await
        .unwrap();
    assert_eq!(r.id, 2);
    let _ = std::fs::remove_dir_all(&dir);
}
