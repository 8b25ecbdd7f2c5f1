//! The overrides in force, and their one writer.
//!
//! Every change takes one lock for its whole length, builds the new list, writes it
//! (`overrides.json`, atomically), writes its audit record, and only then puts it in force: a
//! change is acknowledged, written and audited, or refused with nothing changed. Were the audit
//! record not writable, the written list is undone; were that impossible too, the change is in
//! force and the error says so. Readers never wait for the disk: they read the list in force.
//!
//! Ids (`ovr-N`) never repeat: the last one issued is written to `override-ids.json` before it is
//! used, so deleting the newest override and restarting does not hand out its id again.

use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::policy::Override;
use crate::store::{StateDir, StoreError};
use crate::units::Timestamp;

/// The overrides file: a JSON array of overrides.
pub const OVERRIDES_FILE: &str = "overrides.json";
/// The last override id issued: `{"last": 7}`.
pub const OVERRIDE_IDS_FILE: &str = "override-ids.json";

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

/// The overrides in force and their writer.
#[derive(Debug)]
pub struct OverrideBook {
    in_force: RwLock<Vec<Override>>,
    /// Held for the whole of a change; the last id issued.
    writer: Mutex<u64>,
}

impl OverrideBook {
    /// The overrides of `store`, and the last id issued.
    pub fn load(store: &StateDir) -> Result<OverrideBook, StoreError> {
        let list: Vec<Override> = store.load(OVERRIDES_FILE)?.unwrap_or_default();
        let mark = store
            .load::<IdMark>(OVERRIDE_IDS_FILE)?
            .map_or(0, |m| m.last);
        let last = list
            .iter()
            .filter_map(|o| id_number(&o.id))
            .fold(mark, u64::max);
        Ok(OverrideBook {
            in_force: RwLock::new(list),
            writer: Mutex::new(last),
        })
    }

    /// Drops the overrides listed with an id above `last_audited` (the newest `ovr-N` with an
    /// `override.create` audit record): written to the file just before a crash, before their
    /// audit record, so never acknowledged; they must not be in force. Returns them.
    pub fn discard_unaudited(
        &self,
        store: &StateDir,
        last_audited: u64,
    ) -> Result<Vec<Override>, StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (dropped, kept): (Vec<Override>, Vec<Override>) = self
            .all()
            .into_iter()
            .partition(|o| id_number(&o.id).is_some_and(|n| n > last_audited));
        if !dropped.is_empty() {
            store.save(OVERRIDES_FILE, &kept)?;
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
        let mut last = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        room(&self.all()).map_err(ChangeError::Limit)?;
        let id = *last + 1;
        let marked = store.save(OVERRIDE_IDS_FILE, &IdMark { last: id });
        // Issued once its mark may be on disk: never handed out again, even if refused.
        *last = id;
        if let Err(source) = marked {
            return Err(ChangeError::Refused {
                what: format!(
                    "override ovr-{id} was not created: {OVERRIDE_IDS_FILE} could not be written"
                ),
                source,
            });
        }
        let o = make(format!("ovr-{id}"));
        let mut list = self.all();
        list.push(o.clone());
        self.commit(store, list, &format!("override {}", o.id), || audit(&o))?;
        Ok(o)
    }

    /// Removes the override `id`; `None` when there is none. `audit` records the removal.
    pub fn remove(
        &self,
        store: &StateDir,
        id: &str,
        audit: impl FnOnce(&Override) -> Result<(), StoreError>,
    ) -> Result<Option<Override>, ChangeError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut list = self.all();
        let Some(i) = list.iter().position(|o| o.id == id) else {
            return Ok(None);
        };
        let removed = list.remove(i);
        self.commit(
            store,
            list,
            &format!("the removal of override {id}"),
            || audit(&removed),
        )?;
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
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (expired, kept): (Vec<Override>, Vec<Override>) =
            self.all().into_iter().partition(|o| o.expires_at <= now);
        if expired.is_empty() {
            return Ok(expired);
        }
        match store.save(OVERRIDES_FILE, &kept) {
            Ok(()) | Err(StoreError::NotDurable { .. }) => {}
            Err(source) => {
                return Err(ChangeError::Refused {
                    what: format!(
                        "expired overrides stay listed: {OVERRIDES_FILE} could not be written"
                    ),
                    source,
                });
            }
        }
        self.put_in_force(kept);
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

    /// Writes `list`, audits, then puts `list` in force; undoes the write when the audit fails or
    /// the write may not last. The caller holds the writer lock.
    fn commit(
        &self,
        store: &StateDir,
        list: Vec<Override>,
        what: &str,
        audit: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), ChangeError> {
        let (failure, why) = match store.save(OVERRIDES_FILE, &list) {
            Ok(()) => match audit() {
                Ok(()) => {
                    self.put_in_force(list);
                    return Ok(());
                }
                Err(e) => (e, "its audit record could not be written"),
            },
            Err(e @ StoreError::NotDurable { .. }) => (e, "it may not survive a crash"),
            Err(source) => {
                return Err(ChangeError::Refused {
                    what: format!("{what}: {OVERRIDES_FILE} could not be written"),
                    source,
                });
            }
        };
        match store.save(OVERRIDES_FILE, &self.all()) {
            // The list as it was is what a read sees again.
            Ok(()) | Err(StoreError::NotDurable { .. }) => Err(ChangeError::Refused {
                what: format!("{what} was written, then undone because {why}"),
                source: failure,
            }),
            Err(undo) => {
                self.put_in_force(list);
                Err(ChangeError::Unrecorded {
                    what: format!(
                        "{what} is in force although {why}, and undoing it failed too ({undo}): note it in the incident record, or undo it"
                    ),
                    source: failure,
                })
            }
        }
    }

    fn put_in_force(&self, list: Vec<Override>) {
        *self.in_force.write().unwrap_or_else(|e| e.into_inner()) = list;
    }
}

/// `N` of an id `ovr-N`.
pub fn id_number(id: &str) -> Option<u64> {
    id.strip_prefix("ovr-")?.parse().ok()
}
