//! The state directory: engine state, overrides, the retention journal and the audit log, so a
//! restart continues where the controller left off, with one writer at a time.
//!
//! Files (all JSON, documented in `docs/api.md`):
//! - `catchup.lock` — locked (an OS file lock) by the one process that writes the directory, for
//!   as long as it runs; it says who that is ([`Holder`]), see `lock.rs`;
//! - `state.json`, `retention-journal.json` — replaced atomically by [`StateDir::save`], each
//!   keeping its previous version as `NAME.bak`, see `atomic.rs`;
//! - `overrides.jsonl` — one change per line, appended and fsynced ([`LineLog`]), compacted now
//!   and then by an atomic replace; a line torn by a crash is cut on open, see `lines.rs`;
//! - `audit.jsonl` — one record per action, appended whole and fsynced before the action is
//!   reported; a line torn by a crash is repaired on open and the repair recorded; rotated by
//!   size into `audit.jsonl.N`, see `audit.rs`.
//!
//! A process opens its state directory once ([`StateDir::open`], which takes the lock) and shares
//! it (`Arc<StateDir>`) between the loop, the API and the retention actuator; `catchup plan`
//! reads it without the lock ([`StateDir::open_read_only`]). The methods block on file I/O and
//! fsync: async code calls them through [`unblock`].

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

pub use catchup_proto::audit::{AuditRecord, Outcome, OutcomeKind};

mod atomic;
mod audit;
mod audit_read;
mod faults;
mod lines;
mod lock;

pub use audit::{AUDIT_FILE, Rotation};
pub(crate) use faults::Op;
pub use lines::{Cut, LineLog};
pub use lock::{Holder, LOCK_FILE};

use audit::{AuditLog, Repair};
use lock::DirLock;

/// Errors of the state directory. Each names the file, what is wrong and what to do.
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
    #[error("{path}: not valid: {reason}; {fix}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// How to recover without losing what the file holds.
        fix: String,
    },
    /// A value could not be written as JSON.
    #[error("{path}: cannot be written as JSON: {reason}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file was replaced, but the directory could not be fsynced: the new version is what
    /// reads see, but it may not survive a crash.
    #[error(
        "{path}: replaced, but its directory could not be synced ({source}): the new version may not survive a crash; check the volume"
    )]
    NotDurable {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another open in this one) holds the state directory.
    #[error("{}", locked(dir, holder.as_deref()))]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// Who holds it, when its `catchup.lock` says.
        holder: Option<Box<Holder>>,
    },
    /// A write to a state directory opened read-only.
    #[error(
        "{path}: the state directory was opened read-only (to read state while a controller runs): nothing may be written"
    )]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// The HA state topic (which holds the retention journal in HA mode) could not be read or
    /// written, or this instance may not write it (it does not lead in its epoch).
    #[error("the retention journal in the HA state topic: {reason}")]
    StateTopic {
        /// What went wrong.
        reason: String,
    },
    /// Blocking work was cancelled before it started (the runtime is shutting down).
    #[error(
        "the state directory's work was cancelled before it started ({reason}): nothing was written"
    )]
    Cancelled {
        /// Why.
        reason: String,
    },
}

fn locked(dir: &Path, holder: Option<&Holder>) -> String {
    let who = match holder {
        Some(h) => h.to_string(),
        None => format!(
            "another process (its {LOCK_FILE} does not say which; `fuser -v {}` does)",
            dir.join(LOCK_FILE).display()
        ),
    };
    let api = match holder.and_then(|h| h.api.as_deref()) {
        Some(api) => {
            format!("; to act through it, use its API (catchup ctl, CATCHUP_URL=http://{api})")
        }
        None => String::new(),
    };
    format!(
        "state directory {} is in use by {who}: one writer per state directory; stop it, or give this instance its own state_dir{api}",
        dir.display()
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A state directory, open for writing (holding its lock) or read-only.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// The held lock (`None`: opened read-only).
    lock: Option<Mutex<DirLock>>,
    audit: Mutex<AuditLog>,
    faults: faults::Hook,
}

impl StateDir {
    /// Opens (creating if needed) the state directory for writing, as `holder`: takes its lock
    /// (`StoreError::Locked`, naming the holder, when another process has it), removes temporary
    /// files a crash left, repairs a torn last audit line and records the repair.
    pub fn open(dir: &Path, holder: Holder) -> Result<StateDir, StoreError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock = DirLock::acquire(dir, holder)?;
        let probe = dir.join(".write-test");
        fs::write(&probe, b"ok").map_err(io(&probe))?;
        let _ = fs::remove_file(&probe);
        let removed = atomic::remove_leftovers(dir);
        if !removed.is_empty() {
            info!(dir = %dir.display(), files = ?removed, "removed temporary files a crash left behind");
        }
        let (audit, repair) = AuditLog::open(dir)?;
        let store = StateDir {
            dir: dir.to_path_buf(),
            lock: Some(Mutex::new(lock)),
            audit: Mutex::new(audit),
            faults: faults::Hook::default(),
        };
        if let Some(repair) = repair {
            store.record_repair(&repair)?;
        }
        Ok(store)
    }

    /// Opens the state directory to read it only (no lock, nothing written, nothing repaired), for
    /// commands that may run beside the controller (`catchup plan`). A missing directory reads as
    /// empty.
    pub fn open_read_only(dir: &Path) -> Result<StateDir, StoreError> {
        Ok(StateDir {
            dir: dir.to_path_buf(),
            lock: None,
            audit: Mutex::new(AuditLog::read_only(dir)),
            faults: faults::Hook::default(),
        })
    }

    /// Who holds the state directory `dir` now, from its `catchup.lock`; `None` when nobody does.
    pub fn holder(dir: &Path) -> Option<Holder> {
        lock::probe(dir)
    }

    /// Records in the lock file the address this process's API listens on, so others can reach
    /// it ([`StateDir::holder`]).
    pub fn announce_api(&self, api: &str) -> Result<(), StoreError> {
        let Some(lock) = &self.lock else {
            return Err(StoreError::ReadOnly {
                path: self.dir.join(LOCK_FILE),
            });
        };
        lock.lock().unwrap_or_else(|e| e.into_inner()).set_api(api)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether it was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    /// Writes `value` to `name` atomically, keeping the previous version as `name.bak`.
    pub fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        if self.is_read_only() {
            return Err(StoreError::ReadOnly { path });
        }
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Encode {
            path,
            reason: e.to_string(),
        })?;
        atomic::replace(&self.dir, name, &bytes, || {
            self.faults.fault(Op::Save, name)
        })
    }

    /// Reads `name`, or `None` when it does not exist. A file that does not parse is
    /// `StoreError::Corrupt`, pointing at its previous version `name.bak`.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.corrupt(name, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Appends a record (its `id` is assigned here) and fsyncs it; returns the stored record. On
    /// failure nothing of it is in the log.
    pub fn audit(&self, record: AuditRecord) -> Result<AuditRecord, StoreError> {
        let mut log = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        log.append(record, self.faults.fault(Op::Audit, AUDIT_FILE))
    }

    /// Audit records newest first: at most `limit`, with ids below `before` when given.
    pub fn audit_page(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self.audit_page_sized(limit, before, u64::MAX)?.0)
    }

    /// Audit records newest first, read from the end of the log (a page costs what it returns):
    /// at most `limit`, at most `max_bytes` of them (at least one), with ids below `before` when
    /// given; and whether older records remain. Reads on into the rotated files when the current
    /// one is exhausted. The log's lock is held only to learn where its whole records end and to
    /// open its files, so a page never holds up an append.
    pub fn audit_page_sized(
        &self,
        limit: usize,
        before: Option<u64>,
        max_bytes: u64,
    ) -> Result<(Vec<AuditRecord>, bool), StoreError> {
        let sources = self
            .audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sources()?;
        let mut page = audit_read::Page {
            limit,
            before,
            max_bytes,
            out: Vec::new(),
            used: 0,
        };
        for (mut file, path, upto) in sources {
            if page.full() {
                return Ok((page.out, true));
            }
            if audit_read::fill(&mut file, &path, upto, &mut page)? {
                return Ok((page.out, true));
            }
        }
        Ok((page.out, false))
    }

    /// Rotates the audit log by `rotation` from now on (`api.limits.audit_file_size`,
    /// `audit_files`).
    pub fn set_audit_rotation(&self, rotation: Rotation) {
        self.audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_rotation(rotation);
    }

    /// `name` does not parse: the error, with the way back that keeps its data.
    fn corrupt(&self, name: &str, reason: String) -> StoreError {
        let path = self.dir.join(name);
        let bak = atomic::backup(&self.dir, name);
        let (p, b) = (path.display(), bak.display());
        let fix = if bak.exists() {
            format!(
                "its previous version is kept in {b}: with catchup stopped, check it (`cat {b}`) and put it back with `cp {b} {p}`, or fix {p} by hand; do not delete it"
            )
        } else {
            format!(
                "there is no previous version ({b} does not exist): with catchup stopped, fix {p} by hand (docs/api.md describes it); do not delete it"
            )
        };
        StoreError::Corrupt { path, reason, fix }
    }

    /// Logs and audits the repair of a torn last audit line.
    fn record_repair(&self, r: &Repair) -> Result<(), StoreError> {
        let what = if r.cut {
            "cut"
        } else {
            "completed with its newline"
        };
        let by = self
            .lock
            .as_ref()
            .map(|l| {
                l.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .holder()
                    .command
                    .clone()
            })
            .unwrap_or_default();
        let reason = format!(
            "opening for catchup {by}: line {} of {AUDIT_FILE} ({} bytes from byte {}) was torn by a crash mid-append and was {what}",
            r.line, r.bytes, r.offset
        );
        warn!(
            file = %self.dir.join(AUDIT_FILE).display(),
            line = r.line,
            offset = r.offset,
            bytes = r.bytes,
            cut = r.cut,
            "audit log repaired: {reason}"
        );
        self.audit(AuditRecord {
            id: 0,
            at: crate::clock::wall_now(),
            actor: "controller".into(),
            action: "state.repair".into(),
            target: AUDIT_FILE.into(),
            reason,
            before: serde_json::json!({
                "line": r.line,
                "offset": r.offset,
                "bytes": r.bytes,
                "text": r.text,
            }),
            after: serde_json::json!({ "cut": r.cut }),
            outcome: Outcome::Applied,
            epoch: None,
        })
        .map(|_| ())
    }
}

/// Runs blocking state-directory work (file I/O, fsync) on tokio's blocking pool, so the async
/// workers keep serving meanwhile. A panic in `work` is resumed here; work the shutting-down
/// runtime never started is `StoreError::Cancelled`.
pub async fn unblock<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Cancelled {
            reason: e.to_string(),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests;
