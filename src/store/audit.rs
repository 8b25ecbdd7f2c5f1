//! `audit.jsonl`: one JSON [`AuditRecord`] per line, appended and fsynced before the action is
//! reported, never rewritten.
//!
//! Rotated by size: an append that would take the file past [`Rotation::max_bytes`] first renames
//! it `audit.jsonl.N` (N: the id of its first record) and starts a new one; the newest
//! [`Rotation::keep`] rotated files are kept, older ones deleted. Pages read across them
//! (`audit_read.rs`). A rotation that fails is logged and the append goes to the current file:
//! no record is ever dropped for it.
//!
//! Records are written whole: an append that fails is cut back off, so a later append never
//! lands after half a line. A crash mid-append can still leave a last line without its newline;
//! opening for writing repairs it (a complete record gets its newline, anything else is cut) and
//! says what it did, so the caller can record the repair. Any other line that is not a record is
//! an error naming the file, the line and the fix: the log is evidence, and only a person may
//! change what it says.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::{AuditRecord, StoreError, atomic, io};

/// The audit log's name in the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// At most this much of a cut tail is kept in the repair's audit record.
const KEEP_CUT: usize = 4096;

/// What the repair of a torn last line did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Repair {
    /// The line's number (1-based).
    pub line: usize,
    /// Its byte offset in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// Cut (not a record), or completed with its missing newline (a whole record).
    pub cut: bool,
    /// Its text (lossy UTF-8, at most 4 KiB), so what was cut is still on record.
    pub text: String,
}

/// Size-based rotation of the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// The current file is rotated before an append would take it past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (the newest); older ones are deleted.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 32 * 1024 * 1024,
            keep: 8,
        }
    }
}

/// A file a page is read from: open (so a rotation meanwhile does not move it away), its path
/// for errors, and how much of it is whole records (`None`: up to its last newline).
pub(super) type Source = (File, PathBuf, Option<u64>);

/// The audit log of a state directory.
#[derive(Debug)]
pub(super) struct AuditLog {
    dir: PathBuf,
    path: PathBuf,
    /// Open for appending (`None`: read-only).
    file: Option<File>,
    /// Length of the whole records in the file: where the next one goes.
    len: u64,
    /// A failed append could not be cut off; cut it before the next one.
    dirty: bool,
    next_id: u64,
    /// The id of the current file's first record (`next_id` while it is empty).
    first_id: u64,
    /// Rotated files, oldest first: the id of their first record, and their path.
    rotated: Vec<(u64, PathBuf)>,
    rotation: Rotation,
}

impl AuditLog {
    /// Opens the log for appending: repairs a torn last line, checks every other line.
    pub(super) fn open(dir: &Path) -> Result<(AuditLog, Option<Repair>), StoreError> {
        let path = dir.join(AUDIT_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let (records, whole) = parse(&path, &bytes)?;
        let mut next_id = records.last().map_or(0, |r| r.id) + 1;
        let tail = &bytes[whole..];
        let repair = if tail.is_empty() {
            None
        } else {
            let line = bytes[..whole].iter().filter(|b| **b == b'\n').count() + 1;
            let record = serde_json::from_slice::<AuditRecord>(tail).ok();
            let repair = Repair {
                line,
                offset: whole as u64,
                bytes: tail.len() as u64,
                cut: record.is_none(),
                text: String::from_utf8_lossy(&tail[..tail.len().min(KEEP_CUT)]).into_owned(),
            };
            match record {
                // A whole record that lost only its newline: keep it.
                Some(r) => {
                    file.seek(SeekFrom::End(0)).map_err(io(&path))?;
                    file.write_all(b"\n").map_err(io(&path))?;
                    next_id = next_id.max(r.id + 1);
                }
                None => file.set_len(whole as u64).map_err(io(&path))?,
            }
            file.sync_all().map_err(io(&path))?;
            Some(repair)
        };
        let len = file.seek(SeekFrom::End(0)).map_err(io(&path))?;
        let rotated = rotated_files(dir);
        // The current file is empty just after a rotation: ids go on from the rotated file's.
        if records.is_empty()
            && let Some((_, newest)) = rotated.last()
        {
            next_id = next_id.max(last_id(newest)? + 1);
        }
        let first_id = records.first().map_or(next_id, |r| r.id);
        Ok((
            AuditLog {
                dir: dir.to_path_buf(),
                path,
                file: Some(file),
                len,
                dirty: false,
                next_id,
                first_id,
                rotated,
                rotation: Rotation::default(),
            },
            repair,
        ))
    }

    /// Sets the rotation (the default until then).
    pub(super) fn set_rotation(&mut self, rotation: Rotation) {
        self.rotation = rotation;
    }

    /// The log of a state directory opened read-only: read on each page, never written.
    pub(super) fn read_only(dir: &Path) -> AuditLog {
        AuditLog {
            dir: dir.to_path_buf(),
            path: dir.join(AUDIT_FILE),
            file: None,
            len: 0,
            dirty: false,
            next_id: 0,
            first_id: 0,
            rotated: Vec::new(),
            rotation: Rotation::default(),
        }
    }

    /// Appends `record` (its `id` is assigned here) and fsyncs it; on failure nothing of it stays.
    pub(super) fn append(
        &mut self,
        mut record: AuditRecord,
        fault: Option<std::io::Error>,
    ) -> Result<AuditRecord, StoreError> {
        let path = &self.path;
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::ReadOnly { path: path.clone() });
        };
        if self.dirty {
            file.set_len(self.len).map_err(io(path))?;
            self.dirty = false;
        }
        record.id = self.next_id;
        let mut line = serde_json::to_vec(&record).map_err(|e| StoreError::Encode {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        if self.len > 0
            && self.len + line.len() as u64 > self.rotation.max_bytes
            && let Err(e) = self.rotate()
        {
            warn!(file = %self.path.display(), error = %e, "audit log rotation failed: appending to the current file");
        }
        let path = &self.path;
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::ReadOnly { path: path.clone() });
        };
        let written = match fault {
            Some(e) => Err(e),
            None => file
                .seek(SeekFrom::Start(self.len))
                .and_then(|_| file.write_all(&line))
                .and_then(|()| file.sync_data()),
        };
        if let Err(e) = written {
            self.dirty = file.set_len(self.len).is_err();
            return Err(io(path)(e));
        }
        self.len += line.len() as u64;
        self.next_id += 1;
        Ok(record)
    }

    /// Renames the current file `audit.jsonl.N` and starts a new one; deletes the rotated files
    /// beyond `keep`. On failure the current file stays as it was.
    fn rotate(&mut self) -> Result<(), StoreError> {
        let to = self.dir.join(format!("{AUDIT_FILE}.{}", self.first_id));
        if to.exists() {
            return Err(io(&to)(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a rotated audit file of that name exists",
            )));
        }
        std::fs::rename(&self.path, &to).map_err(io(&to))?;
        let fresh = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&self.path);
        let file = match fresh {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::rename(&to, &self.path);
                return Err(io(&self.path)(e));
            }
        };
        let _ = atomic::sync_dir(&self.dir);
        info!(file = %to.display(), bytes = self.len, "audit log rotated");
        self.file = Some(file);
        self.len = 0;
        self.rotated.push((self.first_id, to));
        self.first_id = self.next_id;
        while self.rotated.len() > self.rotation.keep {
            let (_, old) = self.rotated.remove(0);
            match std::fs::remove_file(&old) {
                Ok(()) => info!(file = %old.display(), "oldest rotated audit file deleted"),
                Err(e) => {
                    warn!(file = %old.display(), error = %e, "could not delete an old rotated audit file")
                }
            }
        }
        Ok(())
    }

    /// The files a page is read from, newest first, opened now (under the log's lock) and read
    /// after without it: the current file up to its whole records, then the rotated ones.
    pub(super) fn sources(&self) -> Result<Vec<Source>, StoreError> {
        let rotated = match self.file {
            Some(_) => self.rotated.clone(),
            None => rotated_files(&self.dir),
        };
        let upto = self.file.as_ref().map(|_| self.len);
        let current = std::iter::once((self.path.clone(), upto));
        let older = rotated.into_iter().rev().map(|(_, p)| (p, None));
        let mut out = Vec::new();
        for (path, upto) in current.chain(older) {
            match File::open(&path) {
                Ok(f) => out.push((f, path, upto)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Ok(out)
    }
}

/// The id of the last record of the rotated file `path` (0 when it holds none).
fn last_id(path: &Path) -> Result<u64, StoreError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut page = super::audit_read::Page {
        limit: 1,
        before: None,
        max_bytes: u64::MAX,
        out: Vec::new(),
        used: 0,
    };
    super::audit_read::fill(&mut file, path, None, &mut page)?;
    Ok(page.out.first().map_or(0, |r| r.id))
}

/// The rotated audit files in `dir` (`audit.jsonl.N`), oldest first.
fn rotated_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let prefix = format!("{AUDIT_FILE}.");
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&prefix)?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse().ok())
                .flatten()
                .map(|n| (n, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// The records of every newline-terminated line, and the length of those lines; the bytes after
/// the last newline (a torn line) are the caller's. A line that is not a record is an error.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<AuditRecord>, usize), StoreError> {
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for (i, line) in bytes[..whole].split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<AuditRecord>(line) {
            Ok(r) => out.push(r),
            Err(e) => return Err(corrupt_line(path, i + 1, &e.to_string())),
        }
    }
    Ok((out, whole))
}

/// A line of the audit log that is not a record: which, why, and how to recover without losing
/// the rest.
fn corrupt_line(path: &Path, line: usize, why: &str) -> StoreError {
    let p = path.display();
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("line {line} is not an audit record ({why})"),
        fix: format!(
            "every other line is intact; look at it with `sed -n '{line}p' {p}`, then fix that line (one JSON record, as docs/api.md describes) or delete it with `sed -i.orig '{line}d' {p}` (which keeps the whole original as {p}.orig), and start again"
        ),
    }
}
