//! One writer per state directory: an exclusive OS lock (`flock`) on `catchup.lock`, taken when a
//! [`StateDir`](super::StateDir) opens for writing and held until it is dropped, so the OS drops it
//! when the process exits, even after `kill -9`. The file's content says who holds it
//! ([`Holder`]), so a second writer can name the first and the CLI can reach its API.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{StoreError, io};
use crate::units::Timestamp;

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "catchup.lock";

/// How often, and how far apart, a busy lock or a half-written lock file is tried again: a reader
/// ([`probe`]) takes a shared lock for a few microseconds, and a new holder writes its content
/// right after taking the lock.
const TRIES: u32 = 10;
const PAUSE: Duration = Duration::from_millis(20);

/// Who holds a state directory's lock, as its `catchup.lock` says in one JSON line:
/// `{"pid":4711,"host":"h","command":"run","since":1796205600000,"api":"127.0.0.1:8080"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name of the machine (or pod) the process runs on.
    pub host: String,
    /// The catchup command: `run`, `demo`, `retention restore`, ...
    pub command: String,
    /// When it took the lock, ms since the Unix epoch.
    pub since: Timestamp,
    /// The address its HTTP API listens on, once it does (`run` and `demo` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

impl Holder {
    /// This process, running `command`, from now, without an API (yet).
    pub fn this_process(command: impl Into<String>) -> Holder {
        Holder {
            pid: std::process::id(),
            host: host_name(),
            command: command.into(),
            since: crate::clock::wall_now(),
            api: None,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "catchup {} (pid {} on host {}, since {}",
            self.command,
            self.pid,
            self.host,
            self.since.rfc3339()
        )?;
        if let Some(api) = &self.api {
            write!(f, ", API {api}")?;
        }
        f.write_str(")")
    }
}

/// The held lock: the open, locked `catchup.lock`. Dropping it releases the lock.
#[derive(Debug)]
pub(super) struct DirLock {
    file: File,
    path: PathBuf,
    holder: Holder,
}

impl DirLock {
    /// Takes `dir`'s lock for `holder` and writes who holds it; `StoreError::Locked` naming the
    /// holder when another process (or another open in this one) has it.
    pub(super) fn acquire(dir: &Path, holder: Holder) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < TRIES => {
                    tries += 1;
                    std::thread::sleep(PAUSE);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StoreError::Locked {
                        dir: dir.to_path_buf(),
                        holder: read_holder(&path).map(Box::new),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
        }
        let lock = DirLock { file, path, holder };
        lock.write()?;
        Ok(lock)
    }

    /// Who holds it (this process).
    pub(super) fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Records the API's address in the lock file.
    pub(super) fn set_api(&mut self, api: &str) -> Result<(), StoreError> {
        self.holder.api = Some(api.to_string());
        self.write()
    }

    /// Rewrites the content in place (the file must stay the locked inode, so no rename): the new
    /// bytes first, then the length, so a reader sees at worst a mix it cannot parse and retries.
    fn write(&self) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(&self.holder).map_err(|e| StoreError::Encode {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0)).map_err(io(&self.path))?;
        f.write_all(&line).map_err(io(&self.path))?;
        f.set_len(line.len() as u64).map_err(io(&self.path))?;
        f.sync_data().map_err(io(&self.path))
    }
}

/// Who holds `dir`'s lock now; `None` when nobody does (or the lock file does not say who).
pub(super) fn probe(dir: &Path) -> Option<Holder> {
    let path = dir.join(LOCK_FILE);
    let file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => read_holder(&path),
        Err(TryLockError::Error(_)) => None,
    }
}

/// The lock file's holder, tried a few times in case its holder is writing it just now.
fn read_holder(path: &Path) -> Option<Holder> {
    for _ in 0..TRIES {
        if let Some(h) = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
        {
            return Some(h);
        }
        std::thread::sleep(PAUSE);
    }
    None
}

/// This machine's host name (the pod name on Kubernetes): from the kernel, else `/etc/hostname`,
/// else `$HOSTNAME`.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
