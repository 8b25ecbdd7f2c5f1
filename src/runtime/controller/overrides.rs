//! The overrides in force, and their one writer.
//!
//! `overrides.jsonl` is an append-only log of changes (`{"create": {..}}`, `{"remove": {"id":
//! ..}}`, `{"last_id": N}`): a create or a removal appends one line and fsyncs it, so it costs the
//! same with 1 override listed or 1,000. When the log holds many more lines than overrides in
//! force, it is compacted (rewritten atomically as the id mark and the overrides in force).
//!
//! Every change takes one lock for its whole length, appends its line, writes its audit record,
//! and only then puts it in force: a change is acknowledged, written and audited, or refused with
//! nothing changed. Were the audit record not writable, the change is undone by appending its
//! opposite; were that impossible too, the change is in force and the error says so. Readers
//! never wait for the disk: they read the list in force.
//!
//! Ids (`ovr-N`) never repeat: a compaction keeps the last id written as `last_id`, so deleting
//! the newest override and restarting does not hand out its id again. A create refused before
//! its line was written never named its id to anyone, and that number may be used again.
//!
//! Earlier versions kept `overrides.json` (a JSON array rewritten on every change) and
//! `override-ids.json`; they are imported once, when `overrides.jsonl` does not exist yet, and
//! removed once the log holds them.

use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::policy::Override;
use crate::store::{Cut, LineLog, StateDir, StoreError};
use crate::units::Timestamp;

/// The overrides log: one change per line.
pub const OVERRIDES_FILE: &str = "overrides.jsonl";
/// Before the log: the overrides as a JSON array (imported once, then removed).
pub const LEGACY_OVERRIDES_FILE: &str = "overrides.json";
/// Before the log: the last override id issued, `{"last": 7}` (imported once, then removed).
pub const LEGACY_IDS_FILE: &str = "override-ids.json";

/// Compact the log once it holds this many lines more than twice the overrides in force.
const SLACK_LINES: usize = 64;

/// Why a change of the overrides or the mode did not happen as asked.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Nothing changed: a limit (`api.limits.max_overrides`, `max_overrides_per_scope`) is reached.
    #[error("nothing changed: {0}")]
    Limit(String),
    /// Nothing changed: the change could not be written, or it was undone.
    #[error("nothing changed: {what}: {source}")]
    Refused {
        /// What was refused, and why.
        what: String,
        /// The state directory's error.
        #[source]
        source: StoreError,
    },
    /// The change is in force, but not recorded as it must be, and could not be undone.
    #[error("{what}: {source}")]
    Unrecorded {
        /// What is in force, what is missing, and what to do.
        what: String,
        /// The state directory's error.
        #[source]
        source: StoreError,
    },
}

impl From<StoreError> for ChangeError {
    fn from(source: StoreError) -> ChangeError {
        ChangeError::Refused {
            what: "the state directory failed".into(),
            source,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct IdMark {
    last: u64,
}

/// One line of `overrides.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    /// The override is in force (until removed or expired).
    Create(Override),
    /// The override `id` is not in force any more.
    Remove {
        /// Its id.
        id: String,
    },
    /// Ids up to `ovr-N` have been used (written by a compaction, first).
    LastId(u64),
}

/// The log and the last id issued, held for the whole of a change.
#[derive(Debug)]
struct Writer {
    log: LineLog,
    last: u64,
    /// The undo of a change whose audit record and undo both failed (a full disk): written before
    /// the next change, so the log never says a refused change is in force. Until then the log's
    /// last change is that unaudited one, which a start-up discards (or reinstates) anyway.
    pending: Vec<Change>,
}

impl Writer {
    /// Appends `changes`, after any pending undo (in the same write).
    fn append(&mut self, store: &StateDir, changes: &[Change]) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return self.log.append(store, changes);
        }
        let all: Vec<Change> = self.pending.iter().chain(changes).cloned().collect();
        self.log.append(store, &all)?;
        self.pending.clear();
        Ok(())
    }

    /// Rewrites the log as `snapshot` (which says what is in force, so no undo is pending after).
    fn rewrite(&mut self, store: &StateDir, snapshot: &[Change]) -> Result<(), StoreError> {
        self.log.rewrite(store, snapshot)?;
        self.pending.clear();
        Ok(())
    }
}

/// The overrides in force and their writer.
#[derive(Debug)]
pub struct OverrideBook {
    in_force: RwLock<Vec<Override>>,
    writer: Mutex<Writer>,
    /// The overrides the log's last lines removed, as loaded: a crash may have come before their
    /// removal's audit record, so the start checks them (see [`OverrideBook::reinstate`]).
    last_removed: Vec<Override>,
}

impl OverrideBook {
    /// The overrides of `store` and the last id issued, from its log (importing the files of
    /// earlier versions once); a torn last line that was cut is returned for the audit.
    pub fn load(store: &StateDir) -> Result<(OverrideBook, Option<Cut>), StoreError> {
        let (log, changes, cut) = store.open_lines::<Change>(OVERRIDES_FILE)?;
        if let Some(c) = &cut {
            warn!(file = OVERRIDES_FILE, line = c.line, offset = c.offset, text = %c.text,
                "a line torn by a crash mid-append was cut: it was never fsynced, so never acknowledged");
        }
        let (mut list, mut last, mut last_removed) = replay(changes);
        let imported = log.lines() == 0 && store.path().join(LEGACY_OVERRIDES_FILE).exists();
        let mut writer = Writer {
            log,
            last,
            pending: Vec::new(),
        };
        if imported {
            list = store.load(LEGACY_OVERRIDES_FILE)?.unwrap_or_default();
            list.sort_by_key(|o| id_number(&o.id));
            last = store
                .load::<IdMark>(LEGACY_IDS_FILE)?
                .map_or(0, |m| m.last)
                .max(
                    list.iter()
                        .filter_map(|o| id_number(&o.id))
                        .max()
                        .unwrap_or(0),
                );
            writer.last = last;
            last_removed.clear();
            writer.rewrite(store, &snapshot(&list, last))?;
            for name in [LEGACY_OVERRIDES_FILE, LEGACY_IDS_FILE] {
                for file in [name.to_string(), format!("{name}.bak")] {
                    let _ = std::fs::remove_file(store.path().join(file));
                }
            }
        }
        let book = OverrideBook {
            in_force: RwLock::new(list),
            writer: Mutex::new(writer),
            last_removed,
        };
        Ok((book, cut))
    }

    /// The overrides the log's last lines removed when it was loaded: their removal is the last
    /// change, the one a crash may have stopped before its audit record.
    pub fn last_removed(&self) -> &[Override] {
        &self.last_removed
    }

    /// Puts `list` back in force (their removal was written but never audited, so never
    /// acknowledged); then compacts the log. Called once, at start.
    pub fn reinstate(&self, store: &StateDir, list: &[Override]) -> Result<(), StoreError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if !list.is_empty() {
            let lines: Vec<Change> = list.iter().cloned().map(Change::Create).collect();
            w.append(store, &lines)?;
            let mut in_force = self.all();
            for o in list {
                in_force.retain(|x| x.id != o.id);
                insert(&mut in_force, o.clone());
            }
            self.put_in_force(in_force);
        }
        if w.log.lines() > self.all().len() + 1 {
            let snap = snapshot(&self.all(), w.last);
            w.rewrite(store, &snap)?;
        }
        Ok(())
    }

    /// The overrides in `store`'s log, read without writing anything (beside a running
    /// controller: `catchup plan`); the file of earlier versions when there is no log yet.
    pub fn read(store: &StateDir) -> Result<Vec<Override>, StoreError> {
        let changes = store.read_lines::<Change>(OVERRIDES_FILE)?;
        if changes.is_empty() {
            return Ok(store.load(LEGACY_OVERRIDES_FILE)?.unwrap_or_default());
        }
        Ok(replay(changes).0)
    }

    /// Drops the overrides listed with an id above `last_audited` (the newest `ovr-N` with an
    /// `override.create` audit record): written just before a crash, before their audit record,
    /// so never acknowledged; they must not be in force. Returns them.
    pub fn discard_unaudited(
        &self,
        store: &StateDir,
        last_audited: u64,
    ) -> Result<Vec<Override>, StoreError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (dropped, kept): (Vec<Override>, Vec<Override>) = self
            .all()
            .into_iter()
            .partition(|o| id_number(&o.id).is_some_and(|n| n > last_audited));
        if !dropped.is_empty() {
            w.append(store, &removals(&dropped))?;
            self.put_in_force(kept);
        }
        Ok(dropped)
    }

    /// Every override in the list (expired ones too, until the next tick drops them).
    pub fn all(&self) -> Vec<Override> {
        self.in_force
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The overrides in force at `now`.
    pub fn active(&self, now: Timestamp) -> Vec<Override> {
        self.in_force
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|o| o.expires_at > now)
            .cloned()
            .collect()
    }

    /// Adds the override `make` builds from a new id; `audit` records it. `room` is asked first,
    /// under the writer lock, with the overrides listed now: an error refuses the override.
    pub fn add(
        &self,
        store: &StateDir,
        room: impl FnOnce(&[Override]) -> Result<(), String>,
        make: impl FnOnce(String) -> Override,
        audit: impl FnOnce(&Override) -> Result<(), StoreError>,
    ) -> Result<Override, ChangeError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        room(&self.all()).map_err(ChangeError::Limit)?;
        let id = w.last + 1;
        // Used from here on in this process, even if refused.
        w.last = id;
        let o = make(format!("ovr-{id}"));
        if let Err(source) = w.append(store, &[Change::Create(o.clone())]) {
            return Err(ChangeError::Refused {
                what: format!(
                    "the override was not created: {OVERRIDES_FILE} could not be written"
                ),
                source,
            });
        }
        let undo = [Change::Remove { id: o.id.clone() }];
        let mut list = self.all();
        insert(&mut list, o.clone());
        self.commit(
            store,
            &mut w,
            list,
            &undo,
            &format!("override {}", o.id),
            || audit(&o),
        )?;
        Ok(o)
    }

    /// Removes the override `id`; `None` when there is none. `audit` records the removal.
    pub fn remove(
        &self,
        store: &StateDir,
        id: &str,
        audit: impl FnOnce(&Override) -> Result<(), StoreError>,
    ) -> Result<Option<Override>, ChangeError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut list = self.all();
        let Some(i) = list.iter().position(|o| o.id == id) else {
            return Ok(None);
        };
        let removed = list.remove(i);
        let what = format!("the removal of override {id}");
        if let Err(source) = w
            .log
            .append(store, &removals(std::slice::from_ref(&removed)))
        {
            return Err(ChangeError::Refused {
                what: format!("{what}: {OVERRIDES_FILE} could not be written"),
                source,
            });
        }
        let undo = [Change::Create(removed.clone())];
        self.commit(store, &mut w, list, &undo, &what, || audit(&removed))?;
        Ok(Some(removed))
    }

    /// Drops the overrides expired at `now`, then audits each; returns them. Expiry is a fact of
    /// time (an expired override is out of force either way), so it is not undone when an audit
    /// record cannot be written: the error names the overrides whose record is missing.
    pub fn expire(
        &self,
        store: &StateDir,
        now: Timestamp,
        mut audit: impl FnMut(&Override) -> Result<(), StoreError>,
    ) -> Result<Vec<Override>, ChangeError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (expired, kept): (Vec<Override>, Vec<Override>) =
            self.all().into_iter().partition(|o| o.expires_at <= now);
        if expired.is_empty() {
            return Ok(expired);
        }
        if let Err(source) = w.append(store, &removals(&expired)) {
            return Err(ChangeError::Refused {
                what: format!(
                    "expired overrides stay listed: {OVERRIDES_FILE} could not be written"
                ),
                source,
            });
        }
        self.put_in_force(kept);
        self.compact(store, &mut w);
        let mut missing = Vec::new();
        let mut first = None;
        for o in &expired {
            if let Err(e) = audit(o) {
                missing.push(o.id.clone());
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(expired),
            Some(source) => Err(ChangeError::Unrecorded {
                what: format!(
                    "overrides {} expired and were removed from {OVERRIDES_FILE}, but their audit records could not be written: note them in the incident record",
                    missing.join(", ")
                ),
                source,
            }),
        }
    }

    /// With the change's line written: audits, then puts `list` in force; when the audit fails,
    /// appends `undo` (the change's opposite). The caller holds the writer lock.
    fn commit(
        &self,
        store: &StateDir,
        w: &mut Writer,
        list: Vec<Override>,
        undo: &[Change],
        what: &str,
        audit: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), ChangeError> {
        let failure = match audit() {
            Ok(()) => {
                self.put_in_force(list);
                self.compact(store, w);
                return Ok(());
            }
            Err(e) => e,
        };
        let why = "its audit record could not be written";
        match w.append(store, undo) {
            // The list as it was is what a read sees again.
            Ok(()) => Err(ChangeError::Refused {
                what: format!("{what} was written, then undone because {why}"),
                source: failure,
            }),
            // Not in force (never acknowledged): the undo is written before the next change, and
            // a start-up before that finds the change unaudited at the log's end and undoes it.
            Err(undone) => {
                w.pending = undo.to_vec();
                Err(ChangeError::Refused {
                    what: format!(
                        "{what} was written, but {why} and undoing it failed too ({undone}): it is not in force; the undo is written before the next change, or at the next start"
                    ),
                    source: failure,
                })
            }
        }
    }

    /// Rewrites the log as the id mark and the overrides in force once it holds many more lines
    /// than that; a failure leaves the (longer) log as it was, which still says the same.
    fn compact(&self, store: &StateDir, w: &mut Writer) {
        let list = self.all();
        if w.log.lines() <= 2 * list.len() + SLACK_LINES {
            return;
        }
        if let Err(e) = w.rewrite(store, &snapshot(&list, w.last)) {
            warn!(file = OVERRIDES_FILE, error = %e, "compaction failed; the log keeps every change and says the same");
        }
    }

    fn put_in_force(&self, list: Vec<Override>) {
        *self.in_force.write().unwrap_or_else(|e| e.into_inner()) = list;
    }
}

/// The overrides a log's changes leave in force (in id order), the last id they used, and the
/// overrides its last lines (after its last create) removed.
fn replay(changes: Vec<Change>) -> (Vec<Override>, u64, Vec<Override>) {
    let mut list = Vec::new();
    let mut last = 0;
    let mut removed = Vec::new();
    for c in changes {
        match c {
            Change::Create(o) => {
                last = last.max(id_number(&o.id).unwrap_or(0));
                list.retain(|x: &Override| x.id != o.id);
                insert(&mut list, o);
                removed.clear();
            }
            Change::Remove { id } => {
                if let Some(i) = list.iter().position(|x| x.id == id) {
                    removed.push(list.remove(i));
                }
            }
            Change::LastId(n) => {
                last = last.max(n);
                removed.clear();
            }
        }
    }
    (list, last, removed)
}

/// What a compaction writes: the id mark, then every override listed.
fn snapshot(list: &[Override], last: u64) -> Vec<Change> {
    std::iter::once(Change::LastId(last))
        .chain(list.iter().cloned().map(Change::Create))
        .collect()
}

fn removals(list: &[Override]) -> Vec<Change> {
    list.iter()
        .map(|o| Change::Remove { id: o.id.clone() })
        .collect()
}

/// Puts `o` in `list` at its place in id order.
fn insert(list: &mut Vec<Override>, o: Override) {
    let n = id_number(&o.id);
    let at = list.partition_point(|x| id_number(&x.id) <= n);
    list.insert(at, o);
}

/// `N` of an id `ovr-N`, or `ovr-N@INSTANCE` (made in an HA deployment).
pub fn id_number(id: &str) -> Option<u64> {
    let rest = id.strip_prefix("ovr-")?;
    rest.split_once('@').map_or(rest, |(n, _)| n).parse().ok()
}
