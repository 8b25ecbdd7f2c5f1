//! Atomic replacement of a state file that keeps its previous version.
//!
//! `save` writes `NAME.tmp.PID.N` (a name no other writer uses: this process's id and a
//! process-wide counter), fsyncs it, keeps the current `NAME` as `NAME.bak` (a hard link, or a
//! copy where links are not supported, staged under its own unique name and renamed over the old
//! `.bak`), renames the new file over `NAME`, and fsyncs the directory. A crash leaves the old or
//! the new `NAME`, never a torn one, and `NAME.bak` is always a complete earlier version.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{StoreError, io};

/// Makes every temporary name of this process unique.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A temporary name for `name` that no other save uses: `NAME.tmp.PID.N`.
fn unique(dir: &Path, name: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{name}.tmp.{}.{n}", std::process::id()))
}

/// The previous version's name: `NAME.bak`.
pub(super) fn backup(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.bak"))
}

/// Replaces `dir/name` with `bytes` atomically, keeping the old version as `name.bak`.
/// `fault` is asked just before the rename (tests make it fail there).
pub(super) fn replace(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    fault: impl FnOnce() -> Option<std::io::Error>,
) -> Result<(), StoreError> {
    let path = dir.join(name);
    let tmp = unique(dir, name);
    let staged = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        keep_previous(dir, name)?;
        if let Some(e) = fault() {
            return Err(io(&path)(e));
        }
        fs::rename(&tmp, &path).map_err(io(&path))
    })();
    if let Err(e) = staged {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir).map_err(|source| StoreError::NotDurable { path, source })
}

/// Keeps the current `name` (if any) as `name.bak`.
fn keep_previous(dir: &Path, name: &str) -> Result<(), StoreError> {
    let path = dir.join(name);
    let bak = backup(dir, name);
    let staged = unique(dir, &format!("{name}.bak"));
    match fs::hard_link(&path, &staged) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        // A file system without hard links: a copy, made durable before it replaces the old one.
        Err(_) => match fs::copy(&path, &staged) {
            Ok(_) => {
                if let Err(e) = File::open(&staged).and_then(|f| f.sync_all()) {
                    let _ = fs::remove_file(&staged);
                    return Err(io(&bak)(e));
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                let _ = fs::remove_file(&staged);
                return Err(io(&bak)(e));
            }
        },
    }
    let renamed = fs::rename(&staged, &bak).map_err(io(&bak));
    // When `.bak` already is a link to the same file (another save kept this version first),
    // rename does nothing and leaves `staged`; it goes either way.
    let _ = fs::remove_file(&staged);
    renamed
}

/// Fsyncs the directory, so renames in it survive a crash.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Removes temporary files a crash left behind (`NAME.tmp`, `NAME.tmp.PID.N`); only the lock's
/// holder may, since another writer's are in use. Returns the names removed.
pub(super) fn remove_leftovers(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temporary(&name) && fs::remove_file(entry.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// `NAME.tmp` (older versions) or `NAME.tmp.PID.N`.
fn is_temporary(name: &str) -> bool {
    if name.ends_with(".tmp") {
        return true;
    }
    let mut parts = name.rsplitn(4, '.');
    let (Some(n), Some(pid), Some("tmp"), Some(base)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !base.is_empty()
        && [n, pid]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::is_temporary;

    #[test]
    fn temporary_names_are_recognised_and_nothing_else() {
        for name in [
            "state.json.tmp",
            "state.json.tmp.12.0",
            "overrides.json.bak.tmp.4711.17",
        ] {
            assert!(is_temporary(name), "{name}");
        }
        for name in [
            "state.json",
            "state.json.bak",
            "audit.jsonl",
            "catchup.lock",
            "x.tmp.12",
            "x.tmp.a.1",
            ".tmp.1.2",
            "2025-11-replay.toml",
        ] {
            assert!(!is_temporary(name), "{name}");
        }
    }
}
