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
    OverrideBook::read(&ctl.store).unwrap()
}

#[test]
fn parallel_overrides_with_failing_writes_are_in_force_exactly_when_acknowledged() {
    let dir = temp_dir("parallel");
    let (ctl, _) = controller(&dir);
    // Every third append to `overrides.jsonl` fails, and every fifth audit record.
    let lines = AtomicU64::new(0);
    let records = AtomicU64::new(0);
    ctl.store.inject_faults(move |op, name| match (op, name) {
        (Op::Append, OVERRIDES_FILE) => lines.fetch_add(1, Ordering::Relaxed) % 3 == 2,
        (Op::Audit, _) => records.fetch_add(1, Ordering::Relaxed) % 5 == 4,
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
    for why in [
        format!("{OVERRIDES_FILE} could not be written"),
        "then undone because its audit record could not be written".to_string(),
    ] {
        assert!(
            refused.iter().any(|e| e.to_string().contains(&why)),
            "one was refused because {why}: {refused:?}"
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

    // Neither the audit record nor the undo can be written (a full disk): refused and not in
    // force; the undo goes out with the next change, and a restart before that discards it.
    let saves = Arc::new(AtomicU64::new(0));
    let count = saves.clone();
    ctl.store.inject_faults(move |op, name| {
        op == Op::Audit
            || (op == Op::Append
                && name == OVERRIDES_FILE
                && count.fetch_add(1, Ordering::Relaxed) >= 1)
    });
    let e = pause(&ctl, "stuck").unwrap_err();
    assert!(matches!(e, ChangeError::Refused { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("and undoing it failed too") && msg.contains("it is not in force"),
        "{msg}"
    );
    assert_eq!(
        ids(&ctl.active_overrides()),
        ids(std::slice::from_ref(&kept))
    );
    assert_eq!(
        on_disk(&ctl).len(),
        2,
        "the unaudited create is still the log's last change"
    );
    drop(ctl);
    let (ctl, _) = controller(&dir);
    assert_eq!(
        ids(&ctl.active_overrides()),
        ids(std::slice::from_ref(&kept)),
        "a restart discards the unaudited create"
    );
    // In the same run, the next change writes the undo first.
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    ctl.store.inject_faults(move |op, name| {
        op == Op::Audit
            || (op == Op::Append
                && name == OVERRIDES_FILE
                && seen.fetch_add(1, Ordering::Relaxed) >= 1)
    });
    let _ = pause(&ctl, "stuck again").unwrap_err();
    assert_eq!(on_disk(&ctl).len(), 2, "written, its undo pending");
    ctl.store.inject_faults(|_, _| false);
    let next = pause(&ctl, "room again").unwrap();
    assert_eq!(
        ids(&on_disk(&ctl)),
        ids(&[kept.clone(), next.clone()]),
        "the undo went out with the next change"
    );
    assert_eq!(ids(&ctl.active_overrides()), ids(&[kept, next]));
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
        .inject_faults(|op, name| op == Op::Append && name == OVERRIDES_FILE);
    let e = pause(&ctl, "refused").unwrap_err().to_string();
    assert!(
        !e.contains("ovr-"),
        "a create refused before it was written names no id: {e}"
    );
    ctl.store.inject_faults(|_, _| false);
    assert_eq!(
        pause(&ctl, "same run").unwrap().id,
        "ovr-5",
        "not reused in this run"
    );
    ctl.delete_override(&who("bob"), "ovr-5", "done").unwrap();
    drop(ctl);
    let (ctl, _) = controller(&dir);
    assert_eq!(pause(&ctl, "after restart").unwrap().id, "ovr-6");
    // Also once a compaction at start took the removed ones out of the log: the mark stays.
    ctl.delete_override(&who("bob"), "ovr-6", "done").unwrap();
    drop(ctl);
    let (ctl, _) = controller(&dir);
    assert_eq!(pause(&ctl, "after compaction").unwrap().id, "ovr-7");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn expiry_is_written_then_audited_and_a_missing_record_is_reported() {
    let dir = temp_dir("expire");
    let (ctl, clock) = controller(&dir);
    let a = pause(&ctl, "a").unwrap();
    clock.0.fetch_add(61_000, Ordering::Relaxed);
    ctl.store
        .inject_faults(|op, name| op == Op::Append && name == OVERRIDES_FILE);
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

#[test]
fn a_create_costs_one_line_and_the_log_stays_bounded_by_compaction() {
    let dir = temp_dir("compact");
    let (ctl, _) = controller(&dir);
    let kept = pause(&ctl, "kept").unwrap();
    let file = dir.join(OVERRIDES_FILE);
    let before = std::fs::metadata(&file).unwrap().len();
    let o = pause(&ctl, "one more").unwrap();
    let line = std::fs::metadata(&file).unwrap().len() - before;
    assert!(line < 1024, "one line appended: {line} bytes");
    ctl.delete_override(&who("bob"), &o.id, "done").unwrap();
    for i in 0..500 {
        let o = pause(&ctl, &format!("churn {i}")).unwrap();
        ctl.delete_override(&who("bob"), &o.id, "done").unwrap();
    }
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(
        lines <= 2 + 2 + 64 + 1,
        "compacted: {lines} lines for 1 override"
    );
    assert_eq!(ids(&on_disk(&ctl)), ids(std::slice::from_ref(&kept)));
    drop(ctl);
    let (ctl, _) = controller(&dir);
    assert_eq!(
        ids(&ctl.active_overrides()),
        ids(std::slice::from_ref(&kept))
    );
    assert_eq!(pause(&ctl, "next").unwrap().id, "ovr-503");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_last_line_is_cut_logged_and_audited_and_the_rest_kept() {
    let dir = temp_dir("torn");
    let (ctl, _) = controller(&dir);
    let kept = pause(&ctl, "kept").unwrap();
    drop(ctl);
    let file = dir.join(OVERRIDES_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(br#"{"create":{"id":"ovr-2","sco"#);
    std::fs::write(&file, &bytes).unwrap();
    let (ctl, _) = controller(&dir);
    assert_eq!(
        ids(&ctl.active_overrides()),
        ids(std::slice::from_ref(&kept))
    );
    let repairs = ctl.store.audit_page(10, None).unwrap();
    let r = repairs
        .iter()
        .find(|r| r.action == "state.repair" && r.target == OVERRIDES_FILE)
        .expect("the cut is audited");
    assert_eq!(r.before["line"], 2, "{r:?}");
    assert!(r.before["text"].as_str().unwrap().contains("ovr-2"));
    assert!(!std::fs::read_to_string(&file).unwrap().contains("ovr-2"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_line_in_the_middle_that_does_not_parse_stops_the_start_with_the_fix() {
    let dir = temp_dir("corrupt-line");
    let (ctl, _) = controller(&dir);
    pause(&ctl, "a").unwrap();
    pause(&ctl, "b").unwrap();
    drop(ctl);
    let file = dir.join(OVERRIDES_FILE);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replacen("create", "crate", 1);
    std::fs::write(&file, text).unwrap();
    let store = StateDir::open(&dir, Holder::this_process("test")).unwrap();
    let e = OverrideBook::load(&store).unwrap_err().to_string();
    assert!(e.contains("line 1 does not parse"), "{e}");
    assert!(e.contains("sed -n '1p'"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_files_of_earlier_versions_are_imported_once_with_their_id_mark() {
    let dir = temp_dir("legacy");
    let (ctl, _) = controller(&dir);
    let a = pause(&ctl, "a").unwrap();
    let list = ctl.active_overrides();
    drop(ctl);
    std::fs::remove_file(dir.join(OVERRIDES_FILE)).unwrap();
    std::fs::write(
        dir.join(LEGACY_OVERRIDES_FILE),
        serde_json::to_vec(&list).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join(LEGACY_IDS_FILE), br#"{"last": 9}"#).unwrap();
    let (ctl, _) = controller(&dir);
    assert_eq!(ids(&ctl.active_overrides()), ids(std::slice::from_ref(&a)));
    assert_eq!(
        pause(&ctl, "b").unwrap().id,
        "ovr-10",
        "the old id mark holds"
    );
    assert!(!dir.join(LEGACY_OVERRIDES_FILE).exists());
    assert!(!dir.join(LEGACY_IDS_FILE).exists());
    drop(ctl);
    let (ctl, _) = controller(&dir);
    assert_eq!(ctl.active_overrides().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_removal_written_but_never_audited_is_undone_at_start_and_an_audited_one_holds() {
    let dir = temp_dir("reinstate");
    let (ctl, _) = controller(&dir);
    let a = pause(&ctl, "a").unwrap();
    let b = pause(&ctl, "b").unwrap();
    let c = pause(&ctl, "c").unwrap();
    ctl.delete_override(&who("bob"), &a.id, "done").unwrap();
    drop(ctl);
    // A crash after the removal of `c` was appended, before its audit record.
    let file = dir.join(OVERRIDES_FILE);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("{{\"remove\":{{\"id\":\"{}\"}}}}\n", c.id));
    std::fs::write(&file, text).unwrap();
    let (ctl, _) = controller(&dir);
    assert_eq!(
        ids(&ctl.active_overrides()),
        ids(&[b.clone(), c.clone()]),
        "the unaudited removal is undone; the audited one holds"
    );
    assert_eq!(audited(&ctl, "override.reinstate"), vec![c.id.clone()]);
    assert_eq!(ids(&on_disk(&ctl)), ids(&[b.clone(), c.clone()]));
    // Nothing to do on the next start.
    drop(ctl);
    let (ctl, _) = controller(&dir);
    assert_eq!(audited(&ctl, "override.reinstate").len(), 1);
    assert_eq!(ids(&ctl.active_overrides()), ids(&[b, c]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ids_made_in_an_ha_deployment_keep_their_number_for_order_and_recovery() {
    assert_eq!(overrides::id_number("ovr-12"), Some(12));
    assert_eq!(overrides::id_number("ovr-12@catchup-7d9f-x2"), Some(12));
    assert_eq!(overrides::id_number("ovr-@a"), None);
    assert_eq!(overrides::id_number("pause-3"), None);
}
