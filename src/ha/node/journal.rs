//! The retention journal in the HA state topic ([`HaJournal`]): the same [`JournalStore`] the
//! retention actuator uses with a file, kept under `journal/EPOCH` in the compacted state topic, so
//! a new leader on any pod restores exactly the originals an old leader recorded (DESIGN.md
//! invariant 9).
//!
//! - **Load** reads the state topic to its end and takes the journal the view replays
//!   ([`StateView::journal`]: the newest record of the highest epoch, a deposed leader's late
//!   writes ignored).
//! - **Save is fenced**: only while this instance leads in its epoch; the record is written with
//!   `acks=all` (idempotent producer) and the save waits for the acknowledgement, then reads the
//!   topic to its end and succeeds only when no newer claim exists and the journal read back is
//!   the one written. The actuator saves the intent before every alter, so a deposed leader's save
//!   fails and its alter never happens.
//! - **One-way import**: the first load in each epoch it leads, when the topic holds no journal and
//!   the local state directory has a non-empty file journal, the file is saved into the topic,
//!   renamed `retention-journal.json.imported`, and an audit note is left
//!   ([`JournalNote::Imported`]). When both exist and differ, the topic's wins, the file is left
//!   alone and a status limitation says so ([`HaJournal::conflict`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{info, warn};

use super::Shared;
use crate::actuators::retention::journal::{JOURNAL, Journal, JournalStore};
use crate::ha::state::{Record, SharedJournal, StateView};
use crate::store::{StateDir, StoreError};
use crate::units::Timestamp;

/// The state topic as the journal uses it: blocking calls (the actuator calls the store off the
/// async workers). The instance's membership in production ([`NodeLog`]); a shared in-memory log
/// in tests.
pub trait StateLog: Send + Sync {
    /// This instance's id.
    fn me(&self) -> &str;
    /// The epoch this instance leads in, when it leads now (lock held, its claim the newest at
    /// the last read).
    fn leading(&self) -> Option<u64>;
    /// Writes `record` and waits for the broker's acknowledgement.
    fn append(&self, record: &Record) -> Result<(), String>;
    /// Reads the topic to its end.
    fn read_to_end(&self) -> Result<StateView, String>;
    /// Now (this instance's clock).
    fn now(&self) -> Timestamp;
}

/// Something the journal did that the audit log must show (the runtime takes and records them).
#[derive(Clone, Debug, PartialEq)]
pub enum JournalNote {
    /// A local file journal was imported into the state topic.
    Imported {
        /// The file (now renamed).
        from: PathBuf,
        /// Its new name.
        renamed: PathBuf,
        /// The epoch it was imported in.
        epoch: u64,
        /// The topics it holds.
        topics: Vec<String>,
    },
    /// A local file journal differs from the state topic's; the topic's is used.
    Conflict {
        /// The file (left as it is).
        file: PathBuf,
        /// The epoch.
        epoch: u64,
    },
}

/// The retention journal kept in the HA state topic.
pub struct HaJournal<L: StateLog = NodeLog> {
    log: L,
    /// The local state directory, whose file journal is imported once.
    file: Option<Arc<StateDir>>,
    /// The epoch whose first load (the import check) is done.
    checked: Mutex<u64>,
    notes: Mutex<Vec<JournalNote>>,
    conflict: Mutex<Option<String>>,
}

fn topic_error(reason: String) -> StoreError {
    StoreError::StateTopic { reason }
}

impl<L: StateLog> HaJournal<L> {
    /// The journal over `log`, importing the file journal of `file` (if any) on first leadership.
    pub fn new(log: L, file: Option<Arc<StateDir>>) -> HaJournal<L> {
        HaJournal {
            log,
            file,
            checked: Mutex::new(0),
            notes: Mutex::new(Vec::new()),
            conflict: Mutex::new(None),
        }
    }

    /// What happened since the last call, for the audit log.
    pub fn take_notes(&self) -> Vec<JournalNote> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Why the local file journal was not imported, when it differs from the topic's (a status
    /// limitation; it disables nothing: the topic's journal is the record).
    pub fn conflict(&self) -> Option<String> {
        self.conflict
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn note(&self, note: JournalNote) {
        self.notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(note);
    }

    /// The file journal of the local state directory, when there is a non-empty one.
    fn file_journal(&self) -> Result<Option<(Arc<StateDir>, Journal)>, StoreError> {
        let Some(dir) = &self.file else {
            return Ok(None);
        };
        let journal = dir.load::<Journal>(JOURNAL)?.map(Journal::upgrade);
        Ok(journal
            .filter(|j| !j.topics.is_empty() || !j.extensions.is_empty())
            .map(|j| (dir.clone(), j)))
    }

    /// The first load in `epoch`: imports the file journal when the topic holds none.
    fn first_load(&self, epoch: u64, topic: Option<Journal>) -> Result<Journal, StoreError> {
        // Judged afresh in every epoch (a person may have moved the file away since).
        *self.conflict.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let journal = match (topic, self.file_journal()?) {
            (None, Some((dir, file))) => {
                self.save_now(&file)?;
                let from = dir.path().join(JOURNAL);
                let renamed = dir.path().join(format!("{JOURNAL}.imported"));
                std::fs::rename(&from, &renamed).map_err(|source| StoreError::Io {
                    path: from.clone(),
                    source,
                })?;
                let topics = file.topics.keys().chain(file.extensions.keys()).cloned();
                let topics = topics.collect();
                info!(from = %from.display(), epoch, "file journal imported into the HA state topic");
                self.note(JournalNote::Imported {
                    from,
                    renamed,
                    epoch,
                    topics,
                });
                file
            }
            (Some(topic), Some((dir, file))) => {
                if topic != file {
                    let path = dir.path().join(JOURNAL);
                    let why = format!(
                        "the local file journal {} differs from the HA state topic's journal: the topic's is the record and is used; the file was not imported and is left as it is (compare them, then move the file away)",
                        path.display()
                    );
                    warn!(file = %path.display(), epoch, "{why}");
                    *self.conflict.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
                    self.note(JournalNote::Conflict { file: path, epoch });
                }
                topic
            }
            (Some(topic), None) => topic,
            (None, None) => Journal::new(),
        };
        *self.checked.lock().unwrap_or_else(PoisonError::into_inner) = epoch;
        Ok(journal)
    }
}

impl<L: StateLog> JournalStore for HaJournal<L> {
    fn load(&self) -> Result<Journal, StoreError> {
        crate::blocking::off_async(|| {
            let view = self.log.read_to_end().map_err(topic_error)?;
            let topic = view.journal.map(|j| j.journal.upgrade());
            match self.log.leading() {
                Some(epoch)
                    if *self.checked.lock().unwrap_or_else(PoisonError::into_inner) < epoch =>
                {
                    self.first_load(epoch, topic)
                }
                _ => Ok(topic.unwrap_or_else(Journal::new)),
            }
        })
    }

    fn save(&self, journal: &Journal) -> Result<(), StoreError> {
        crate::blocking::off_async(|| self.save_now(journal))
    }
}

impl<L: StateLog> HaJournal<L> {
    /// The fenced save (module documentation), blocking.
    fn save_now(&self, journal: &Journal) -> Result<(), StoreError> {
        let me = self.log.me().to_string();
        let Some(epoch) = self.log.leading() else {
            return Err(topic_error(
                    "not saved: this instance does not lead (only the leader writes the retention journal, and alters nothing without it)".into(),
                ));
        };
        let record = SharedJournal {
            epoch,
            leader: me.clone(),
            at: self.log.now(),
            journal: journal.clone(),
        };
        self.log
            .append(&Record::Journal(record.clone()))
            .map_err(topic_error)?;
        let view = self.log.read_to_end().map_err(topic_error)?;
        if !view.may_act(&me, epoch) || self.log.leading() != Some(epoch) {
            return Err(topic_error(format!(
                "not saved: deposed, epoch {epoch} is no longer this instance's (newest claim {:?}); nothing is altered",
                view.claim
            )));
        }
        if view.journal.as_ref() != Some(&record) {
            return Err(topic_error(format!(
                "not saved: the journal read back (epoch {:?}) is not the one written in epoch {epoch}",
                view.journal.as_ref().map(|j| (j.epoch, &j.leader))
            )));
        }
        Ok(())
    }
}

/// The state topic of a running [`super::Ha`].
pub struct NodeLog(pub(super) Arc<Shared>);

impl StateLog for NodeLog {
    fn me(&self) -> &str {
        &self.0.me
    }

    fn leading(&self) -> Option<u64> {
        let st = self.0.status.borrow();
        (self.0.election.held() && st.role == catchup_proto::status::HaRole::Leader)
            .then_some(st.epoch)
    }

    fn append(&self, record: &Record) -> Result<(), String> {
        let s = &self.0;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Err("no async runtime to write the state topic from".into());
        };
        // On a thread of its own: this call is already off the async workers, and `block_on`
        // may not run on one of them.
        std::thread::scope(|scope| {
            scope
                .spawn(|| handle.block_on(s.writer.write(record, s.session)))
                .join()
        })
        .map_err(|_| "the state topic writer panicked".to_string())?
        .map_err(|e| e.to_string())
    }

    fn read_to_end(&self) -> Result<StateView, String> {
        let view = {
            let mut r = self.0.reader.lock().unwrap_or_else(PoisonError::into_inner);
            r.catch_up(self.0.session).map_err(|e| e.to_string())?;
            r.view.clone()
        };
        self.0.saw(&view);
        Ok(view)
    }

    fn now(&self) -> Timestamp {
        self.0.clock.now()
    }
}

#[cfg(test)]
mod tests;
