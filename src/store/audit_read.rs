//! Reading the audit log from its end: a page costs what it returns, never the whole file.
//!
//! Records are appended in id order, so the records below an id `before` are the ones that start
//! before the first record with an id of at least `before`, found by a binary search over byte
//! offsets (each probe reads one line). From there the file is read backwards in chunks until the
//! page holds `limit` records or `max_bytes` of them (always at least one), going on into the
//! rotated files, newest first, when the current one is exhausted.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{AuditRecord, StoreError, io};

/// Bytes read at a time when going backwards.
const CHUNK: u64 = 64 * 1024;

/// What a page asks for, and what it holds so far (filled from the newest file to the oldest).
pub(super) struct Page {
    /// Records at most.
    pub limit: usize,
    /// Only records with ids below this.
    pub before: Option<u64>,
    /// Bytes of record lines at most (at least one record).
    pub max_bytes: u64,
    /// The records, newest first.
    pub out: Vec<AuditRecord>,
    /// Bytes of their lines.
    pub used: u64,
}

impl Page {
    /// Whether the page is full: no record of another file may be added.
    pub(super) fn full(&self) -> bool {
        self.out.len() >= self.limit
    }
}

/// Adds to `page` records newest first from the first `upto` bytes of `file` (read from `path`),
/// until the page is full; returns whether older records remain in this file.
pub(super) fn fill(
    file: &mut File,
    path: &Path,
    upto: Option<u64>,
    page: &mut Page,
) -> Result<bool, StoreError> {
    let len = file.metadata().map_err(io(path))?.len();
    // A writer reads only what it appended whole; a reader stops at the last whole line.
    let mut end = upto.map_or(len, |u| u.min(len));
    end = last_newline_before(file, path, end)?;
    if let Some(b) = page.before {
        end = first_at_least(file, path, end, b)?;
    }
    // Bytes of the line being assembled, in file order, and where the unread part ends.
    let mut carry: Vec<u8> = Vec::new();
    let mut pos = end;
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io(path))?;
        file.read_exact(&mut chunk).map_err(io(path))?;
        chunk.extend_from_slice(&carry);
        // Every complete line in `chunk` after its first newline (the part before it may
        // continue in the previous chunk, unless this chunk starts the file).
        let mut lines: Vec<&[u8]> = chunk.split(|b| *b == b'\n').collect();
        let first = if start == 0 {
            None
        } else {
            Some(lines.remove(0))
        };
        for line in lines.into_iter().rev() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !page.out.is_empty()
                && (page.full() || page.used + line.len() as u64 > page.max_bytes)
            {
                return Ok(true);
            }
            let record = serde_json::from_slice::<AuditRecord>(line).map_err(|e| {
                StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("a line is not an audit record ({e})"),
                    fix: format!(
                        "find it with `grep -vn '^{{' {}` or `jq -c . {} >/dev/null`; fix or delete that line, then start again",
                        path.display(),
                        path.display()
                    ),
                }
            })?;
            page.used += line.len() as u64 + 1;
            page.out.push(record);
        }
        carry = first.map(<[u8]>::to_vec).unwrap_or_default();
        pos = start;
    }
    Ok(false)
}

/// The end of the last whole line at or before `end` (0 when there is none).
fn last_newline_before(file: &mut File, path: &Path, end: u64) -> Result<u64, StoreError> {
    let mut pos = end;
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io(path))?;
        file.read_exact(&mut chunk).map_err(io(path))?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

/// The offset of the first line (in the first `end` bytes) whose record id is at least `id`, or
/// `end`: a binary search over byte offsets, each probe reading one line.
fn first_at_least(file: &mut File, path: &Path, end: u64, id: u64) -> Result<u64, StoreError> {
    let (mut lo, mut hi, mut best) = (0u64, end, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some((start, line)) = line_from(file, path, mid, end)? else {
            hi = mid;
            continue;
        };
        if start >= hi {
            hi = mid;
            continue;
        }
        let rid = serde_json::from_slice::<AuditRecord>(&line)
            .map(|r| r.id)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("the line at byte {start} is not an audit record ({e})"),
                fix: format!(
                    "look at it with `tail -c +{} {} | head -1`; fix or delete that line, then start again",
                    start + 1,
                    path.display()
                ),
            })?;
        if rid >= id {
            best = start;
            hi = mid;
        } else {
            lo = start + line.len() as u64 + 1;
        }
    }
    Ok(best)
}

/// The first line starting at or after `pos` (before `end`): its offset and bytes.
fn line_from(
    file: &mut File,
    path: &Path,
    pos: u64,
    end: u64,
) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let mut start = pos;
    if pos > 0 {
        // Skip to just after the newline ending the line `pos` is in.
        let mut prev = [0u8; 1];
        file.seek(SeekFrom::Start(pos - 1)).map_err(io(path))?;
        file.read_exact(&mut prev).map_err(io(path))?;
        if prev[0] != b'\n' {
            match read_line(file, path, pos, end)? {
                Some(rest) => start = pos + rest.len() as u64 + 1,
                None => return Ok(None),
            }
        }
    }
    if start >= end {
        return Ok(None);
    }
    Ok(read_line(file, path, start, end)?.map(|l| (start, l)))
}

/// The bytes from `start` to the next newline (before `end`), without it.
fn read_line(
    file: &mut File,
    path: &Path,
    start: u64,
    end: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    file.seek(SeekFrom::Start(start)).map_err(io(path))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut at = start;
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        let n = file.read(&mut buf[..want]).map_err(io(path))?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|b| *b == b'\n') {
            out.extend_from_slice(&buf[..i]);
            return Ok(Some(out));
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Ok(None)
}
