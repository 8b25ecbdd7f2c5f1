//! What the state topic holds, as data, and the fencing rule (pure: no Kafka, no clock).
//!
//! Every record is keyed (the topic is compacted: the newest record of each key is what survives);
//! its value is JSON. Keys:
//! - `epoch`: the newest leadership claim `{epoch, leader, at}`; a new leader writes the highest
//!   epoch it has seen plus one, after reading the topic to its end;
//! - `member/ID`: an instance's heartbeat `{instance, at}`, written every few seconds; the live
//!   members are those heard within the session timeout;
//! - `decision`: the leader's latest gates, for followers to serve (`{epoch, at, groups}`);
//! - `overrides/ID`: the overrides in force made on instance ID (every instance applies the union);
//! - `journal/EPOCH`: the retention journal as the leader of that epoch last saved it
//!   (`{epoch, leader, at, journal}`, see [`SharedJournal`]); one key per epoch, so a late write of
//!   a deposed leader can never make compaction drop the newer leader's record;
//! - `mode`: reserved for the shared mode (not wired yet; docs/ha.md).
//!
//! The journal a new leader replays ([`StateView::journal`]) is the newest record of the highest
//! epoch, among records written while their epoch was the newest claim (a record of epoch N that
//! follows a claim of N+1 in the topic comes from a deposed leader whose save was refused, and
//! is ignored). A leader's first save in its epoch is written before its first alter, so a
//! deposed leader's record can never hide an alter of a newer leader, even after compaction.
//!
//! The fencing rule ([`StateView::may_act`]): an instance acts only in its own epoch, and only when
//! the newest claim in the topic, read to its end, is its own. The topic has one partition, so its
//! records are totally ordered: of two instances that raced to claim the same epoch, the later
//! record wins and the earlier writer sees it and stands down.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::actuators::retention::journal::Journal;
use crate::units::{Dur, Timestamp};

/// A leadership claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The epoch: only grows.
    pub epoch: u64,
    /// The claiming instance's id.
    pub leader: String,
    /// When it was claimed (the claimant's clock).
    pub at: Timestamp,
}

/// An instance's heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The instance's id.
    pub instance: String,
    /// When it was sent (the sender's clock).
    pub at: Timestamp,
}

/// The leader's latest decision as followers serve it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedDecision {
    /// The epoch it was made in.
    pub epoch: u64,
    /// The leader that made it.
    pub leader: String,
    /// When it was made (the leader's clock).
    pub at: Timestamp,
    /// Each group's gate, as the leader's API shows it (`GroupDecision` in JSON).
    pub groups: BTreeMap<String, serde_json::Value>,
}

/// The retention journal as a leader saved it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedJournal {
    /// The epoch of the leader that saved it.
    pub epoch: u64,
    /// That leader's id.
    pub leader: String,
    /// When it was saved (the leader's clock).
    pub at: Timestamp,
    /// The journal (the file journal's format).
    pub journal: Journal,
}

/// One record of the state topic, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// `epoch`.
    Claim(Claim),
    /// `member/ID`.
    Heartbeat(Heartbeat),
    /// `decision`.
    Decision(SharedDecision),
    /// `journal/EPOCH`.
    Journal(SharedJournal),
    /// Any other key (reserved or written by a newer version): kept as it is.
    Other {
        /// The key.
        key: String,
        /// The value (`None`: a tombstone).
        value: Option<serde_json::Value>,
    },
}

/// Key of the claim record.
pub const EPOCH_KEY: &str = "epoch";
/// Key of the shared decision.
pub const DECISION_KEY: &str = "decision";
/// Prefix of each instance's overrides list (`overrides/ID`: the overrides in force that were
/// made on that instance).
pub const OVERRIDES_PREFIX: &str = "overrides/";
/// Prefix of resumes shared with the fleet (`resume/ID/AT_MS`: a resume sent to instance ID,
/// which every instance applies to the pauses made on it before AT).
pub const RESUME_PREFIX: &str = "resume/";
/// Prefix of deletes of overrides sent to an instance other than the override's own
/// (`override-delete/OWNER/ID`).
pub const OVERRIDE_DELETE_PREFIX: &str = "override-delete/";
/// Prefix of restores sent to a follower and forwarded to the leader (`restore/ID/AT_MS`).
pub const RESTORE_PREFIX: &str = "restore/";
/// Prefix of the leader's answers to forwarded restores (`restored/ID/AT_MS`).
pub const RESTORED_PREFIX: &str = "restored/";
/// Prefix of adopts sent to a follower and forwarded to the leader (`adopt/ID/AT_MS`).
pub const ADOPT_PREFIX: &str = "adopt/";
/// Prefix of the leader's answers to forwarded adopts (`adopted/ID/AT_MS`).
pub const ADOPTED_PREFIX: &str = "adopted/";
/// Key of the fleet's mode (the newest mode set on any instance).
pub const MODE_KEY: &str = "mode";
/// Prefix of the retention journal's keys (`journal/EPOCH`).
pub const JOURNAL_PREFIX: &str = "journal/";
/// Prefix of heartbeat keys.
pub const MEMBER_PREFIX: &str = "member/";

impl Record {
    /// The record's key.
    pub fn key(&self) -> String {
        match self {
            Record::Claim(_) => EPOCH_KEY.into(),
            Record::Heartbeat(h) => format!("{MEMBER_PREFIX}{}", h.instance),
            Record::Decision(_) => DECISION_KEY.into(),
            Record::Journal(j) => format!("{JOURNAL_PREFIX}{}", j.epoch),
            Record::Other { key, .. } => key.clone(),
        }
    }

    /// The record's value as written to the topic (`None`: a tombstone).
    pub fn value(&self) -> Option<Vec<u8>> {
        let json = match self {
            Record::Claim(c) => serde_json::to_vec(c),
            Record::Heartbeat(h) => serde_json::to_vec(h),
            Record::Decision(d) => serde_json::to_vec(d),
            Record::Journal(j) => serde_json::to_vec(j),
            Record::Other { value, .. } => return value.as_ref().map(|v| v.to_string().into()),
        };
        json.ok()
    }

    /// Decodes a record; a value that does not parse is an error naming the key.
    pub fn decode(key: &str, value: Option<&[u8]>) -> Result<Record, String> {
        let bad = |e: serde_json::Error| format!("state topic record {key:?}: {e}");
        Ok(match (key, value) {
            (EPOCH_KEY, Some(v)) => Record::Claim(serde_json::from_slice(v).map_err(bad)?),
            (DECISION_KEY, Some(v)) => Record::Decision(serde_json::from_slice(v).map_err(bad)?),
            (k, Some(v)) if k.starts_with(MEMBER_PREFIX) => {
                Record::Heartbeat(serde_json::from_slice(v).map_err(bad)?)
            }
            (k, Some(v)) if k.starts_with(JOURNAL_PREFIX) => {
                let j: SharedJournal = serde_json::from_slice(v).map_err(bad)?;
                if k[JOURNAL_PREFIX.len()..] != j.epoch.to_string() {
                    return Err(format!(
                        "state topic record {key:?}: holds the journal of epoch {}, not of the key's",
                        j.epoch
                    ));
                }
                Record::Journal(j)
            }
            (k, v) => Record::Other {
                key: k.to_string(),
                value: v.map(serde_json::from_slice).transpose().map_err(bad)?,
            },
        })
    }
}

/// What an instance knows of the state topic, built by applying its records in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateView {
    /// The newest claim.
    pub claim: Option<Claim>,
    /// The highest epoch ever seen (a claim record older than the newest may carry a higher one
    /// only if a deposed leader wrote late; the next claim goes above both).
    pub highest_epoch: u64,
    /// The newest heartbeat of each instance.
    pub heartbeats: BTreeMap<String, Timestamp>,
    /// The leader's newest decision.
    pub decision: Option<SharedDecision>,
    /// The retention journal a leader replays: the newest of the highest epoch that was not
    /// written by a deposed leader (module documentation).
    pub journal: Option<SharedJournal>,
    /// Journal records ignored because a newer claim preceded them (a deposed leader's late
    /// write).
    pub deposed_journals: u64,
    /// Every other key's newest value.
    pub other: BTreeMap<String, serde_json::Value>,
    /// Records applied.
    pub records: u64,
}

impl StateView {
    /// Applies one record (records must come in the topic's order).
    pub fn apply(&mut self, record: Record) {
        self.records += 1;
        match record {
            Record::Claim(c) => {
                self.highest_epoch = self.highest_epoch.max(c.epoch);
                self.claim = Some(c);
            }
            Record::Heartbeat(h) => {
                self.heartbeats.insert(h.instance, h.at);
            }
            Record::Other { key, value: None } if key.starts_with(MEMBER_PREFIX) => {
                // A departed instance's heartbeat, tombstoned ([`stale_keys`]).
                self.heartbeats.remove(&key[MEMBER_PREFIX.len()..]);
                self.other.remove(&key);
            }
            Record::Decision(d) => {
                // A decision of an older epoch than the one already held comes from a deposed
                // leader: followers keep the newer.
                if self
                    .decision
                    .as_ref()
                    .is_none_or(|old| d.epoch >= old.epoch)
                {
                    self.decision = Some(d);
                }
            }
            Record::Journal(j) => {
                let current = self.journal.as_ref().map_or(0, |c| c.epoch);
                // Of two instances that raced to claim one epoch, only the newest claimant's.
                let claimant = self
                    .claim
                    .as_ref()
                    .is_none_or(|c| c.epoch != j.epoch || c.leader == j.leader);
                if j.epoch >= self.highest_epoch && j.epoch >= current && claimant {
                    self.journal = Some(j);
                } else {
                    self.deposed_journals += 1;
                }
            }
            // A tombstone of an older epoch's journal (nothing writes one yet) changes nothing.
            Record::Other { key, .. } if key.starts_with(JOURNAL_PREFIX) => {}
            Record::Other { key, value } => match value {
                Some(v) => {
                    self.other.insert(key, v);
                }
                None => {
                    self.other.remove(&key);
                }
            },
        }
    }

    /// The epoch a new leader claims: above every epoch seen.
    pub fn next_epoch(&self) -> u64 {
        self.highest_epoch + 1
    }

    /// The fencing rule: `me` may act in `epoch` only when the newest claim (this view read to the
    /// topic's end) is exactly its own claim of that epoch, and no higher epoch was ever seen.
    pub fn may_act(&self, me: &str, epoch: u64) -> bool {
        self.claim
            .as_ref()
            .is_some_and(|c| c.leader == me && c.epoch == epoch)
            && self.highest_epoch == epoch
    }

    /// The leader of the newest claim, when it is another instance that has written no heartbeat
    /// for longer than `silence` before `now` (and claimed no later than that): a leader that is
    /// dead or cut off while the group still assigns it the lock.
    pub fn silent_leader(&self, me: &str, now: Timestamp, silence: Dur) -> Option<&str> {
        let claim = self.claim.as_ref().filter(|c| c.leader != me)?;
        let heard = self
            .heartbeats
            .get(&claim.leader)
            .map_or(claim.at, |at| Timestamp(at.0.max(claim.at.0)));
        (now.0 - heard.0 > silence.0 as i64).then_some(claim.leader.as_str())
    }

    /// Instances heard within `session` before `now` (always counting `me`, which is alive).
    pub fn live_members(&self, me: &str, now: Timestamp, session: Dur) -> u32 {
        let fresh = self
            .heartbeats
            .iter()
            .filter(|(id, at)| id.as_str() != me && now.0 - at.0 <= session.0 as i64)
            .count();
        (fresh + 1) as u32
    }
}

mod stale;

pub use stale::{FORWARD_KEEP, GONE_AFTER, MAX_OVERRIDE_TTL, stale_keys};

#[cfg(test)]
mod tests;
