//! The state directory: engine state, overrides and the audit log, so a restart continues where the
//! controller left off.
//!
//! Files (all JSON, documented in `docs/api.md`):
//! - `state.json` — the engine's `ControllerState`, rewritten atomically after every tick;
//! - `overrides.json` — the manual overrides, rewritten atomically on every change;
//! - `audit.jsonl` — one record per action, appended and fsynced before the action is reported.
//!
//! Atomic means: write `NAME.tmp`, fsync it, rename over `NAME`, fsync the directory. A crash leaves
//! either the old or the new file, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use catchup_proto::audit::{AuditRecord, Outcome, OutcomeKind};

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file holds something that is not what it should.
    #[error("{path}: not valid: {reason}; move it aside to start fresh")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The state directory.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    audit: Mutex<AuditFile>,
}

#[derive(Debug)]
struct AuditFile {
    next_id: u64,
}

impl StateDir {
    /// Opens (creating if needed) the state directory.
    pub fn open(dir: &Path) -> Result<StateDir, StoreError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let probe = dir.join(".write-test");
        fs::write(&probe, b"ok").map_err(io(&probe))?;
        let _ = fs::remove_file(&probe);
        let audit_path = dir.join("audit.jsonl");
        repair_torn_tail(&audit_path)?;
        let last = read_audit(&audit_path)?.last().map_or(0, |r| r.id);
        Ok(StateDir {
            dir: dir.to_path_buf(),
            audit: Mutex::new(AuditFile { next_id: last + 1 }),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `value` to `name` atomically.
    pub fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }

    /// Reads `name`, or `None` when it does not exist.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Appends a record (its `id` is assigned here) and fsyncs it; returns the stored record.
    pub fn audit(&self, mut record: AuditRecord) -> Result<AuditRecord, StoreError> {
        let path = self.dir.join("audit.jsonl");
        let mut guard = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        record.id = guard.next_id;
        let mut line = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(&line).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))?;
        guard.next_id += 1;
        Ok(record)
    }

    /// Audit records newest first: at most `limit`, with ids below `before` when given.
    pub fn audit_page(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let _guard = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        let all = read_audit(&self.dir.join("audit.jsonl"))?;
        Ok(all
            .into_iter()
            .rev()
            .filter(|r| before.is_none_or(|b| r.id < b))
            .take(limit)
            .collect())
    }
}

/// Cuts a last line that a crash left without its newline, so the next append starts on a fresh line.
fn repair_torn_tail(path: &Path) -> Result<(), StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    f.set_len(keep as u64).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Reads the audit log; a torn last line (a crash mid-append) is ignored, anything else is an error.
fn read_audit(path: &Path) -> Result<Vec<AuditRecord>, StoreError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io(path))?;
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("line {}: {e}", i + 1),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Timestamp;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("catchup-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
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
        }
    }

    #[test]
    fn saves_atomically_and_reloads() {
        let d = temp_dir("save");
        let s = StateDir::open(&d).unwrap();
        assert_eq!(s.load::<Vec<u32>>("x.json").unwrap(), None);
        s.save("x.json", &vec![1u32, 2]).unwrap();
        assert_eq!(s.load::<Vec<u32>>("x.json").unwrap(), Some(vec![1, 2]));
        assert!(!d.join("x.json.tmp").exists());
        fs::write(d.join("bad.json"), b"{").unwrap();
        assert!(matches!(
            s.load::<Vec<u32>>("bad.json"),
            Err(StoreError::Corrupt { .. })
        ));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn audit_survives_reopen_pages_newest_first_and_tolerates_a_torn_tail() {
        let d = temp_dir("audit");
        {
            let s = StateDir::open(&d).unwrap();
            for i in 0..5 {
                s.audit(record(&format!("r{i}"))).unwrap();
            }
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.join("audit.jsonl"))
            .unwrap();
        f.write_all(b"{\"id\":6,\"at").unwrap();
        let s = StateDir::open(&d).unwrap();
        assert_eq!(s.audit(record("after the crash")).unwrap().id, 6);
        let page = s.audit_page(2, None).unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![6, 5]);
        let next = s.audit_page(10, Some(4)).unwrap();
        assert_eq!(
            StateDir::open(&d)
                .unwrap()
                .audit_page(100, None)
                .unwrap()
                .len(),
            6
        );
        assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2, 1]);
        let _ = fs::remove_dir_all(&d);
    }
}
