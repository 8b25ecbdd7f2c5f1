//! Append-only JSON-lines state files (`overrides.jsonl`): a change costs one appended line and
//! one fsync, whatever the file holds, and the file is rewritten whole (compacted) only now and
//! then.
//!
//! Lines are written whole: an append that fails is cut back off, so a later append never lands
//! after half a line. A crash mid-append can leave a last line without its newline: it was never
//! fsynced, so never acknowledged; opening for writing cuts it, logs it and says what was cut so
//! the caller can audit it. Any other line that does not parse is an error naming the file, the
//! line and the fix, as for the audit log. A compaction replaces the file atomically
//! (`atomic.rs`), keeping the previous version as `NAME.bak`.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Op, StateDir, StoreError, atomic, io};

/// A torn last line that opening cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The line's number (1-based).
    pub line: usize,
    /// Its byte offset in the file.
    pub offset: u64,
    /// Its text (lossy UTF-8, at most 4 KiB).
    pub text: String,
}

/// An append-only JSON-lines file of a state directory, open for appending.
#[derive(Debug)]
pub struct LineLog {
    name: String,
    path: PathBuf,
    file: File,
    /// Length of the whole lines in the file: where the next one goes.
    len: u64,
    /// A failed append could not be cut off; cut it before the next one.
    dirty: bool,
    /// Lines in the file.
    lines: usize,
}

impl LineLog {
    /// The file's name in its state directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many lines the file holds.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Appends `entries`, one line each, in one write, and fsyncs them; on failure nothing of them
    /// stays in the file.
    pub fn append<T: Serialize>(
        &mut self,
        store: &StateDir,
        entries: &[T],
    ) -> Result<(), StoreError> {
        let path = &self.path;
        if self.dirty {
            self.file.set_len(self.len).map_err(io(path))?;
            self.dirty = false;
        }
        let bytes = encode(path, entries)?;
        let written = match store.faults.fault(Op::Append, &self.name) {
            Some(e) => Err(e),
            None => self
                .file
                .seek(SeekFrom::Start(self.len))
                .and_then(|_| self.file.write_all(&bytes))
                .and_then(|()| self.file.sync_data()),
        };
        if let Err(e) = written {
            self.dirty = self.file.set_len(self.len).is_err();
            return Err(io(path)(e));
        }
        self.len += bytes.len() as u64;
        self.lines += entries.len();
        Ok(())
    }

    /// Replaces the whole file with `entries` atomically (the previous version is kept as
    /// `NAME.bak`); on failure the file is as it was.
    pub fn rewrite<T: Serialize>(
        &mut self,
        store: &StateDir,
        entries: &[T],
    ) -> Result<(), StoreError> {
        if store.is_read_only() {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        let bytes = encode(&self.path, entries)?;
        let replaced = atomic::replace(&store.dir, &self.name, &bytes, || {
            store.faults.fault(Op::Save, &self.name)
        });
        match replaced {
            Ok(()) | Err(StoreError::NotDurable { .. }) => {}
            Err(e) => return Err(e),
        }
        // The old handle points at the replaced file: append to the new one from here on.
        let (file, len) = open_append(&self.path)?;
        self.file = file;
        self.len = len;
        self.dirty = false;
        self.lines = entries.len();
        replaced
    }
}

impl StateDir {
    /// Opens `name` for appending (creating it empty), with every entry it holds; cuts a torn last
    /// line and returns what was cut (logged by the caller, who may audit it).
    pub fn open_lines<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<(LineLog, Vec<T>, Option<Cut>), StoreError> {
        let path = self.dir.join(name);
        if self.is_read_only() {
            return Err(StoreError::ReadOnly { path });
        }
        let (file, _) = open_append(&path)?;
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let (entries, whole) = parse(&path, &bytes)?;
        let cut = if whole < bytes.len() {
            let tail = &bytes[whole..];
            file.set_len(whole as u64)
                .and_then(|()| file.sync_all())
                .map_err(io(&path))?;
            Some(Cut {
                line: entries.len() + 1,
                offset: whole as u64,
                text: String::from_utf8_lossy(&tail[..tail.len().min(4096)]).into_owned(),
            })
        } else {
            None
        };
        let log = LineLog {
            name: name.to_string(),
            path,
            file,
            len: whole as u64,
            dirty: false,
            lines: entries.len(),
        };
        Ok((log, entries, cut))
    }

    /// The entries of `name`'s whole lines, read without writing anything (a torn last line is
    /// left alone); empty when the file does not exist.
    pub fn read_lines<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>, StoreError> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(parse(&path, &bytes)?.0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

/// Opens `path` for writing without truncating it (creating it), and its length.
fn open_append(path: &Path) -> Result<(File, u64), StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io(path))?;
    let len = file.seek(SeekFrom::End(0)).map_err(io(path))?;
    Ok((file, len))
}

/// `entries` as JSON lines.
fn encode<T: Serialize>(path: &Path, entries: &[T]) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut bytes, e).map_err(|e| StoreError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
    }
    Ok(bytes)
}

/// The entries of every newline-terminated line, and the length of those lines; the bytes after
/// the last newline (a torn line) are the caller's. A line that does not parse is an error.
fn parse<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<(Vec<T>, usize), StoreError> {
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for (i, line) in bytes[..whole].split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<T>(line) {
            Ok(e) => out.push(e),
            Err(e) => {
                let p = path.display();
                let n = i + 1;
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("line {n} does not parse ({e})"),
                    fix: format!(
                        "every other line is intact; with catchup stopped, look at it with `sed -n '{n}p' {p}`, then fix that line (docs/api.md describes it) or delete it with `sed -i.orig '{n}d' {p}` (which keeps the whole original as {p}.orig)"
                    ),
                });
            }
        }
    }
    Ok((out, whole))
}
