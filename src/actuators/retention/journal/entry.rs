//! The journal's records and how one is settled against what the cluster shows: pure data and
//! pure functions, so crash and drift rules are unit- and property-tested without a cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::actuators::retention::guard::RetentionChange;
use crate::observation::{
    ConfigSource, ConfigValue, JournalPhase, OriginalRetention, RetentionRecord, TopicConfigs,
};
use crate::units::{Dur, Timestamp};

/// The key the engine changes.
pub(super) const KEY: &str = "local.retention.ms";

/// How long a write whose outcome is unknown (an alter that timed out, or a crash between the
/// intent and the acknowledgement) may still land: librdkafka gives up on a request well within
/// this, and a broker applies a request when it receives it or never.
pub const PENDING_FOR: Dur = Dur(10 * 60 * 1000);

/// Journal format version written now. Version 1 (no `pending`) is read and upgraded.
pub const VERSION: u32 = 2;

/// A write of the controller's whose outcome is not known yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The key's topic-level value the write leaves (`None`: a DELETE, inherited).
    pub value: Option<String>,
    /// When it was sent (or about to be).
    pub since: Timestamp,
}

/// One managed topic in the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The value and source of `local.retention.ms` before the first change of the episode.
    pub original: OriginalRetention,
    /// Every config of the topic as last seen (outside changes are reported against it once).
    pub snapshot: BTreeMap<String, ConfigValue>,
    /// The latest operation.
    pub change: RetentionChange,
    /// Its phase.
    pub phase: JournalPhase,
    /// The key's topic-level value the controller last saw as its own (`None`: inherited).
    pub last_value: Option<String>,
    /// Writes whose outcome is not known yet, oldest first: any of them may still land, and a read
    /// showing one is the controller's own value, not someone else's.
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// When the phase was recorded.
    pub at: Timestamp,
    /// Why the latest change was made, or what someone else changed.
    pub reason: String,
}

/// The journal: the one record of originals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version.
    pub version: u32,
    /// Per topic.
    pub topics: BTreeMap<String, Entry>,
}

impl Journal {
    /// An empty journal of the current version.
    pub fn new() -> Journal {
        Journal {
            version: VERSION,
            topics: BTreeMap::new(),
        }
    }

    /// Brings a journal read from disk to the current version: a version-1 entry left at `intent`
    /// or `applied` had its write outstanding, so that write is pending.
    pub fn upgrade(mut self) -> Journal {
        if self.version < VERSION {
            for e in self.topics.values_mut() {
                if matches!(e.phase, JournalPhase::Intent | JournalPhase::Applied)
                    && e.pending.is_empty()
                {
                    e.pending.push(Pending {
                        value: e.change.leaves().map(str::to_string),
                        since: e.at,
                    });
                }
            }
            self.version = VERSION;
        }
        self
    }

    /// What the journal holds for every topic, as the engine and status read it.
    pub fn records(&self) -> Vec<RetentionRecord> {
        self.topics
            .iter()
            .map(|(topic, e)| RetentionRecord {
                topic: topic.clone(),
                original: e.original.clone(),
                phase: e.phase,
                value: e.last_value.clone(),
                pending: e.pending.last().map(|p| p.value.clone()),
                reason: e.reason.clone(),
                at: e.at,
            })
            .collect()
    }
}

/// The key's topic-level value in `configs` (`None`: not set on the topic, inherited).
pub fn key_value(configs: &BTreeMap<String, ConfigValue>) -> Option<String> {
    configs
        .get(KEY)
        .filter(|c| c.source == ConfigSource::Topic)
        .and_then(|c| c.value.clone())
}

/// The original's topic-level value (`None` when it was inherited).
pub fn original_value(o: &OriginalRetention) -> Option<String> {
    match o.source {
        ConfigSource::Topic => o.value.clone(),
        ConfigSource::Inherited => None,
    }
}

/// The original of a topic that has no open entry: what its configs show now.
pub fn capture(configs: &TopicConfigs) -> OriginalRetention {
    let raw = configs.configs.get(KEY);
    OriginalRetention {
        value: raw.and_then(|c| c.value.clone()),
        source: raw.map_or(ConfigSource::Inherited, |c| c.source),
        effective_ms: configs.effective_local_retention_ms(),
    }
}

/// What settling an entry against the topic's configs found, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A pending write of the controller's has landed.
    Landed(Option<String>),
    /// A pending write never landed within [`PENDING_FOR`] and is forgotten.
    Expired(Option<String>),
    /// Someone put the original value back: nothing of the controller's is left.
    RestoredBySomeoneElse,
    /// Someone else changed the managed key: hands off until a person adopts the value.
    Drift(String),
    /// Other configs changed (not the managed key): recorded, not drift. The guard re-reads them
    /// before every write.
    OutsideChange(String),
}

impl Entry {
    /// Brings the entry up to date with `configs` read at `now`; what it found. A drifted entry
    /// stays drifted until adopted.
    pub fn settle(&mut self, configs: &TopicConfigs, now: Timestamp) -> Vec<Finding> {
        let mut found = Vec::new();
        if let Some(change) = outside_changes(&self.snapshot, &configs.configs) {
            found.push(Finding::OutsideChange(change));
        }
        self.snapshot = configs.configs.clone();
        if self.phase == JournalPhase::Drifted {
            return found;
        }
        let seen = key_value(&configs.configs);
        if let Some(i) = self.pending.iter().position(|p| p.value == seen) {
            // The write landed (and any older one it replaced is moot).
            self.pending.drain(..=i);
            self.last_value = seen.clone();
            found.push(Finding::Landed(seen.clone()));
        } else if seen == self.last_value {
            // Nothing new.
        } else if seen == original_value(&self.original) {
            self.last_value = seen.clone();
            found.push(Finding::RestoredBySomeoneElse);
        } else {
            let why = format!(
                "local.retention.ms is {} but the controller last set {}{}: changed by someone else; the controller no longer touches this topic (original {}); to let it act again, take the new value as the original with `catchup retention adopt --topic TOPIC --reason ...`",
                show(&seen),
                show(&self.last_value),
                if self.pending.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (or {})",
                        self.pending
                            .iter()
                            .map(|p| show(&p.value))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                show(&original_value(&self.original)),
            );
            self.phase = JournalPhase::Drifted;
            self.reason = why.clone();
            self.at = now;
            found.push(Finding::Drift(why));
            return found;
        }
        let before = self.pending.len();
        self.pending.retain(|p| now.since(p.since) < PENDING_FOR);
        if self.pending.len() < before {
            found.push(Finding::Expired(self.change.leaves().map(str::to_string)));
        }
        let phase = if !self.pending.is_empty() {
            self.phase
        } else if self.last_value == original_value(&self.original) {
            JournalPhase::Restored
        } else {
            JournalPhase::Verified
        };
        if phase != self.phase {
            self.phase = phase;
            self.at = now;
        }
        found
    }
}

/// The key's value for people: `inherited` when it is not set on the topic.
fn show(v: &Option<String>) -> String {
    v.as_deref()
        .map_or("inherited".to_string(), |s| format!("{s:?}"))
}

/// Which configs other than the managed key differ between `before` and `now`, if any.
pub fn outside_changes(
    before: &BTreeMap<String, ConfigValue>,
    now: &BTreeMap<String, ConfigValue>,
) -> Option<String> {
    let changed: Vec<String> = before
        .keys()
        .chain(now.keys().filter(|k| !before.contains_key(*k)))
        .filter(|k| *k != KEY && before.get(*k) != now.get(*k))
        .map(|k| {
            format!(
                "{k}: {:?} -> {:?}",
                before.get(k).and_then(|v| v.value.clone()),
                now.get(k).and_then(|v| v.value.clone())
            )
        })
        .collect();
    (!changed.is_empty()).then(|| format!("other configs changed: {}", changed.join(", ")))
}
