//! `audit.jsonl`: one JSON [`AuditRecord`] per line, appended and fsynced before the action is
//! reported, never rewritten.
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

use super::{AuditRecord, StoreError, io};

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

/// The audit log of a state directory.
#[derive(Debug)]
pub(super) struct AuditLog {
    path: PathBuf,
    /// Open for appending (`None`: read-only).
    file: Option<File>,
    /// Length of the whole records in the file: where the next one goes.
    len: u64,
    /// A failed append could not be cut off; cut it before the next one.
    dirty: bool,
    next_id: u64,
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
        Ok((
            AuditLog {
                path,
                file: Some(file),
                len,
                dirty: false,
                next_id,
            },
            repair,
        ))
    }

    /// The log of a state directory opened read-only: read on each page, never written.
    pub(super) fn read_only(dir: &Path) -> AuditLog {
        AuditLog {
            path: dir.join(AUDIT_FILE),
            file: None,
            len: 0,
            dirty: false,
            next_id: 0,
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

    /// Where a page is read from: the file, and how much of it is whole records (`None` for a
    /// read-only log: all of it up to its last newline). Read without holding the log's lock.
    pub(super) fn source(&self) -> (PathBuf, Option<u64>) {
        (self.path.clone(), self.file.as_ref().map(|_| self.len))
    }
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
