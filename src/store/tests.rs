use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::units::Timestamp;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("catchup-store-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn open(d: &Path) -> StateDir {
    StateDir::open(d, Holder::this_process("test")).unwrap()
}

fn record(reason: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: Timestamp(1),
        actor: "test".into(),
        action: "gate".into(),
        target: "g".into(),
        reason: reason.into(),
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
        outcome: Outcome::Applied,
        epoch: None,
    }
}

fn names(d: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn saves_atomically_keeping_the_previous_version_and_reloads() {
    let d = temp_dir("save");
    let s = open(&d);
    assert_eq!(s.load::<Vec<u32>>("x.json").unwrap(), None);
    s.save("x.json", &vec![1u32, 2]).unwrap();
    assert!(!d.join("x.json.bak").exists(), "nothing to keep yet");
    s.save("x.json", &vec![3u32]).unwrap();
    assert_eq!(s.load::<Vec<u32>>("x.json").unwrap(), Some(vec![3]));
    assert_eq!(s.load::<Vec<u32>>("x.json.bak").unwrap(), Some(vec![1, 2]));
    assert_eq!(
        names(&d),
        ["audit.jsonl", "catchup.lock", "x.json", "x.json.bak"],
        "no temporary file is left"
    );
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_corrupt_file_points_at_its_previous_version_never_at_starting_fresh() {
    let d = temp_dir("corrupt");
    let s = open(&d);
    s.save("x.json", &vec![1u32]).unwrap();
    s.save("x.json", &vec![2u32]).unwrap();
    fs::write(d.join("x.json"), b"{").unwrap();
    let e = s.load::<Vec<u32>>("x.json").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    let (p, b) = (d.join("x.json"), d.join("x.json.bak"));
    assert!(
        msg.starts_with(&format!("{}: not valid: ", p.display())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("cp {} {}", b.display(), p.display())),
        "{msg}"
    );
    assert!(
        !msg.contains("fresh") && !msg.contains("move it aside"),
        "{msg}"
    );
    // Without a previous version it says so, and still keeps the file.
    fs::write(d.join("y.json"), b"[").unwrap();
    let msg = s.load::<Vec<u32>>("y.json").unwrap_err().to_string();
    assert!(
        msg.contains("no previous version") && msg.contains("do not delete it"),
        "{msg}"
    );
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn two_threads_saving_one_file_never_share_a_temporary_file() {
    let d = temp_dir("parallel-save");
    let s = Arc::new(open(&d));
    let writers: Vec<_> = (0..2u32)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    s.save("state.json", &vec![t, i])
                        .unwrap_or_else(|e| panic!("writer {t}, save {i}: {e}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let last = s.load::<Vec<u32>>("state.json").unwrap().unwrap();
    assert_eq!(last[1], 199);
    assert!(
        names(&d).iter().all(|n| !n.contains(".tmp")),
        "{:?}",
        names(&d)
    );
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_second_open_is_refused_naming_the_holder_until_the_first_is_dropped() {
    let d = temp_dir("lock");
    let first = open(&d);
    first.announce_api("127.0.0.1:8080").unwrap();
    let e = StateDir::open(&d, Holder::this_process("run")).unwrap_err();
    let StoreError::Locked { dir, holder } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(dir, &d);
    let holder = holder.as_deref().expect("the holder is named");
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(holder.command, "test");
    assert_eq!(holder.api.as_deref(), Some("127.0.0.1:8080"));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "state directory {} is in use by catchup test (pid {} on host ",
            d.display(),
            std::process::id()
        )),
        "{msg}"
    );
    assert!(
        msg.contains(", API 127.0.0.1:8080): one writer per state directory; stop it, or give this instance its own state_dir"),
        "{msg}"
    );
    assert_eq!(StateDir::holder(&d).as_ref(), Some(holder));
    // Reading beside the holder is allowed, writing is not.
    let reader = StateDir::open_read_only(&d).unwrap();
    assert!(reader.is_read_only());
    first.save("x.json", &1u32).unwrap();
    assert_eq!(reader.load::<u32>("x.json").unwrap(), Some(1));
    assert!(matches!(
        reader.save("x.json", &2u32),
        Err(StoreError::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.audit(record("no")),
        Err(StoreError::ReadOnly { .. })
    ));
    drop(first);
    assert_eq!(StateDir::holder(&d), None, "released with the StateDir");
    let second = StateDir::open(&d, Holder::this_process("run")).unwrap();
    assert_eq!(StateDir::holder(&d).map(|h| h.command), Some("run".into()));
    drop(second);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_read_only_open_of_a_missing_directory_reads_empty_and_creates_nothing() {
    let d = temp_dir("read-only-missing");
    let s = StateDir::open_read_only(&d).unwrap();
    assert_eq!(s.load::<u32>("state.json").unwrap(), None);
    assert!(s.audit_page(10, None).unwrap().is_empty());
    assert!(!d.exists());
}

#[test]
fn temporary_files_a_crash_left_are_removed_on_open() {
    let d = temp_dir("leftovers");
    fs::create_dir_all(&d).unwrap();
    for n in ["state.json.tmp", "overrides.json.tmp.1.2", "keep.toml"] {
        fs::write(d.join(n), b"x").unwrap();
    }
    let s = open(&d);
    assert_eq!(names(&d), ["audit.jsonl", "catchup.lock", "keep.toml"]);
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn audit_survives_reopen_and_pages_newest_first() {
    let d = temp_dir("audit");
    {
        let s = open(&d);
        for i in 0..5 {
            s.audit(record(&format!("r{i}"))).unwrap();
        }
    }
    let s = open(&d);
    assert_eq!(s.audit(record("again")).unwrap().id, 6);
    let page = s.audit_page(2, None).unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![6, 5]);
    let next = s.audit_page(10, Some(4)).unwrap();
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2, 1]);
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_torn_last_audit_line_is_cut_on_open_and_the_cut_recorded() {
    let d = temp_dir("torn");
    {
        let s = open(&d);
        for i in 0..5 {
            s.audit(record(&format!("r{i}"))).unwrap();
        }
    }
    let path = d.join(AUDIT_FILE);
    let whole = fs::metadata(&path).unwrap().len();
    let torn = b"{\"id\":6,\"at";
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();
    // A reader beside the crash skips the torn line and changes nothing.
    assert_eq!(
        StateDir::open_read_only(&d)
            .unwrap()
            .audit_page(100, None)
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        whole + torn.len() as u64
    );

    let s = open(&d);
    let page = s.audit_page(100, None).unwrap();
    assert_eq!(page.len(), 6, "the five records and the repair");
    let repair = &page[0];
    assert_eq!(repair.id, 6);
    assert_eq!(
        (repair.actor.as_str(), repair.action.as_str()),
        ("controller", "state.repair")
    );
    assert!(
        repair.reason.contains(&format!(
            "line 6 of audit.jsonl ({} bytes from byte {whole}) was torn by a crash mid-append and was cut",
            torn.len()
        )),
        "{}",
        repair.reason
    );
    assert_eq!(repair.before["text"], "{\"id\":6,\"at");
    assert_eq!(repair.before["bytes"], torn.len());
    assert_eq!(repair.before["offset"], whole);
    assert_eq!(s.audit(record("after the crash")).unwrap().id, 7);
    drop(s);
    assert_eq!(open(&d).audit_page(100, None).unwrap().len(), 7);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_whole_last_record_that_lost_only_its_newline_is_kept() {
    let d = temp_dir("newline");
    {
        let s = open(&d);
        s.audit(record("r1")).unwrap();
    }
    let path = d.join(AUDIT_FILE);
    let mut r = record("r2");
    r.id = 2;
    let line = serde_json::to_vec(&r).unwrap();
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&line)
        .unwrap();
    let s = open(&d);
    let page = s.audit_page(100, None).unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2, 1]);
    assert_eq!(page[1].reason, "r2");
    assert!(
        page[0].reason.contains("was completed with its newline"),
        "{}",
        page[0].reason
    );
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn an_audit_line_that_is_not_a_record_refuses_the_open_naming_file_line_and_fix() {
    let d = temp_dir("bad-line");
    {
        let s = open(&d);
        for i in 0..4 {
            s.audit(record(&format!("r{i}"))).unwrap();
        }
    }
    let path = d.join(AUDIT_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"id\":3,\"oops\":true}";
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = StateDir::open(&d, Holder::this_process("test")).unwrap_err();
    let msg = e.to_string();
    let p = path.display();
    assert!(
        msg.starts_with(&format!("{p}: not valid: line 3 is not an audit record (")),
        "{msg}"
    );
    assert!(msg.contains(&format!("sed -n '3p' {p}")), "{msg}");
    assert!(msg.contains(&format!("sed -i.orig '3d' {p}")), "{msg}");
    assert!(!msg.contains("fresh"), "{msg}");
    // The lock is not kept by a refused open.
    assert_eq!(StateDir::holder(&d), None);

    // A complete but invalid last line is not a torn one: refused too, not accepted and then
    // buried under the next append.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "not json";
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let msg = StateDir::open(&d, Holder::this_process("test"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 4 is not an audit record"), "{msg}");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_failed_audit_append_leaves_nothing_behind() {
    let d = temp_dir("audit-fault");
    let s = open(&d);
    s.audit(record("r1")).unwrap();
    s.inject_faults(|op, _| op == Op::Audit);
    assert!(s.audit(record("lost")).is_err());
    s.inject_faults(|_, _| false);
    assert_eq!(s.audit(record("r2")).unwrap().id, 2);
    drop(s);
    let s = open(&d);
    let page = s.audit_page(10, None).unwrap();
    assert_eq!(
        page.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(),
        ["r2", "r1"]
    );
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

/// Pages read from the end of the log match pages of the whole log read at once, for every
/// `before` and `limit`, with records of many sizes across the read chunks; the byte budget cuts
/// a page short (never below one record) and says more remain.
#[test]
fn audit_pages_read_from_the_end_match_the_whole_log() {
    let d = temp_dir("audit-end");
    let s = open(&d);
    for i in 0..1500u64 {
        let len = ((i * 7919) % 700) as usize;
        s.audit(record(&"x".repeat(len))).unwrap();
    }
    let all: Vec<AuditRecord> = fs::read_to_string(d.join(AUDIT_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids = |rs: &[AuditRecord]| rs.iter().map(|r| r.id).collect::<Vec<_>>();
    for before in [
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(700),
        Some(1500),
        Some(1501),
        Some(9999),
    ] {
        for limit in [1, 7, 100, 2000] {
            let want: Vec<AuditRecord> = all
                .iter()
                .rev()
                .filter(|r| before.is_none_or(|b| r.id < b))
                .take(limit)
                .cloned()
                .collect();
            let (got, more) = s.audit_page_sized(limit, before, u64::MAX).unwrap();
            assert_eq!(ids(&got), ids(&want), "before {before:?} limit {limit}");
            let older = all
                .iter()
                .filter(|r| before.is_none_or(|b| r.id < b))
                .count()
                > want.len();
            assert_eq!(more, older, "before {before:?} limit {limit}");
        }
    }
    let (small, more) = s.audit_page_sized(1000, None, 4096).unwrap();
    let bytes: usize = small
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap().len() + 1)
        .sum();
    assert!(more && !small.is_empty() && bytes <= 4096, "{bytes}");
    let (one, _) = s.audit_page_sized(10, None, 1).unwrap();
    assert_eq!(one.len(), 1, "at least one record");
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

/// Ids newest first, of a page.
fn page_ids(s: &StateDir, limit: usize, before: Option<u64>, max_bytes: u64) -> (Vec<u64>, bool) {
    let (page, more) = s.audit_page_sized(limit, before, max_bytes).unwrap();
    (page.iter().map(|r| r.id).collect(), more)
}

#[test]
fn the_audit_log_rotates_by_size_keeps_n_files_and_pages_across_them() {
    let d = temp_dir("rotate");
    let s = open(&d);
    let ten = AuditRecord {
        id: 10,
        ..record("r00")
    };
    // The longest line up to id 99 (ids below 10 are a byte shorter): five records a file.
    let line = serde_json::to_vec(&ten).unwrap().len() as u64 + 1;
    s.set_audit_rotation(Rotation {
        max_bytes: 5 * line + 2,
        keep: 3,
    });
    for i in 1..=23 {
        s.audit(record(&format!("r{i:02}"))).unwrap();
    }
    // Files: 1-5 (deleted), 6-10, 11-15, 16-20 rotated; 21-23 current.
    let rotated: Vec<String> = names(&d)
        .into_iter()
        .filter(|n| n.starts_with("audit.jsonl."))
        .collect();
    assert_eq!(
        rotated,
        ["audit.jsonl.11", "audit.jsonl.16", "audit.jsonl.6"]
    );
    for f in fs::read_dir(&d).unwrap() {
        let f = f.unwrap();
        if f.file_name().to_string_lossy().starts_with("audit.jsonl") {
            assert!(f.metadata().unwrap().len() <= 5 * line + 2, "{f:?}");
        }
    }
    let all: Vec<u64> = (6..=23).rev().collect();
    assert_eq!(page_ids(&s, 100, None, u64::MAX), (all.clone(), false));
    // A page that crosses files, then the next one from its oldest id.
    assert_eq!(page_ids(&s, 7, None, u64::MAX), (all[..7].to_vec(), true));
    assert_eq!(
        page_ids(&s, 7, Some(17), u64::MAX),
        (all[7..14].to_vec(), true)
    );
    assert_eq!(
        page_ids(&s, 7, Some(10), u64::MAX),
        (vec![9, 8, 7, 6], false)
    );
    // Byte-capped across files: as many whole lines as fit.
    assert_eq!(
        page_ids(&s, 100, Some(22), 4 * line),
        (vec![21, 20, 19, 18], true)
    );
    // Ids go on after a restart, also when it comes right after a rotation.
    drop(s);
    let s = open(&d);
    assert_eq!(s.audit(record("r24")).unwrap().id, 24);
    drop(s);
    // A crash just after a rotation: the current file is empty.
    fs::rename(d.join("audit.jsonl"), d.join("audit.jsonl.21")).unwrap();
    fs::write(d.join("audit.jsonl"), b"").unwrap();
    let s = open(&d);
    assert_eq!(s.audit(record("r25")).unwrap().id, 25);
    drop(s);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_read_only_open_pages_across_rotated_files_too() {
    let d = temp_dir("rotate-ro");
    let s = open(&d);
    let line = serde_json::to_vec(&record("r00")).unwrap().len() as u64 + 1;
    s.set_audit_rotation(Rotation {
        max_bytes: 3 * line,
        keep: 10,
    });
    for i in 1..=10 {
        s.audit(record(&format!("r{i:02}"))).unwrap();
    }
    let ro = StateDir::open_read_only(&d).unwrap();
    assert_eq!(
        page_ids(&ro, 100, None, u64::MAX).0,
        (1..=10).rev().collect::<Vec<_>>()
    );
    drop(s);
    let _ = fs::remove_dir_all(&d);
}
