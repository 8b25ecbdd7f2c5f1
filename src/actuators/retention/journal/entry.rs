//! The journal's records and how one is settled against what the cluster shows: pure data and
//! pure functions, so crash and drift rules are unit- and property-tested without a cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::actuators::retention::guard::{ManagedKey, RetentionChange};
use crate::observation::{
    ConfigSource, ConfigValue, JournalPhase, OriginalRetention, RetentionRecord, TopicConfigs,
};
use crate::units::{Dur, Timestamp};

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

/// One topic's key in the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The key this entry is about: `local.retention.ms` of a managed topic (the default, and
    /// all a version-2 journal holds), or `retention.ms` of an input topic's extension.
    #[serde(default, skip_serializing_if = "is_local")]
    pub key: ManagedKey,
    /// The value and source of the key before the first change of the episode.
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

fn is_local(k: &ManagedKey) -> bool {
    *k == ManagedKey::LocalRetentionMs
}

/// The journal: the one record of originals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version.
    pub version: u32,
    /// Per managed topic: its `local.retention.ms`.
    pub topics: BTreeMap<String, Entry>,
    /// Per input topic allow-listed for extension: its `retention.ms`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, Entry>,
}

impl Journal {
    /// An empty journal of the current version.
    pub fn new() -> Journal {
        Journal {
            version: VERSION,
            topics: BTreeMap::new(),
            extensions: BTreeMap::new(),
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

    /// The entries of `key`'s kind: managed topics' local retention, or input topics' extensions.
    pub fn entries(&self, key: ManagedKey) -> &BTreeMap<String, Entry> {
        match key {
            ManagedKey::RetentionMs => &self.extensions,
            _ => &self.topics,
        }
    }

    /// [`Journal::entries`], to change.
    pub fn entries_mut(&mut self, key: ManagedKey) -> &mut BTreeMap<String, Entry> {
        match key {
            ManagedKey::RetentionMs => &mut self.extensions,
            _ => &mut self.topics,
        }
    }

    /// What the journal holds for every managed topic, as the engine and status read it.
    pub fn records(&self) -> Vec<RetentionRecord> {
        Journal::records_of(&self.topics)
    }

    /// What it holds for every extended input topic.
    pub fn extension_records(&self) -> Vec<RetentionRecord> {
        Journal::records_of(&self.extensions)
    }

    fn records_of(entries: &BTreeMap<String, Entry>) -> Vec<RetentionRecord> {
        entries
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

/// `key`'s topic-level value in `configs` (`None`: not set on the topic, inherited).
pub fn key_value(key: ManagedKey, configs: &BTreeMap<String, ConfigValue>) -> Option<String> {
    configs
        .get(key.name())
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

/// The original of `key` of a topic that has no open entry: what its configs show now.
pub fn capture(key: ManagedKey, configs: &TopicConfigs) -> OriginalRetention {
    let raw = configs.configs.get(key.name());
    OriginalRetention {
        value: raw.and_then(|c| c.value.clone()),
        source: raw.map_or(ConfigSource::Inherited, |c| c.source),
        effective_ms: match key {
            ManagedKey::RetentionMs => configs.retention_ms(),
            _ => configs.effective_local_retention_ms(),
        },
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
        if let Some(change) = outside_changes(self.key, &self.snapshot, &configs.configs) {
            found.push(Finding::OutsideChange(change));
        }
        self.snapshot = configs.configs.clone();
        if self.phase == JournalPhase::Drifted {
            return found;
        }
        let seen = key_value(self.key, &configs.configs);
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
                "{} is {} but the controller last set {}{}: changed by someone else; the controller no longer touches this topic (original {}); to let it act again, take the new value as the original with `catchup retention adopt --topic TOPIC --reason ...`",
                self.key,
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

/// Which configs other than `key` differ between `before` and `now`, if any.
pub fn outside_changes(
    key: ManagedKey,
    before: &BTreeMap<String, ConfigValue>,
    now: &BTreeMap<String, ConfigValue>,
) -> Option<String> {
    let changed: Vec<String> = before
        .keys()
        .chain(now.keys().filter(|k| !before.contains_key(*k)))
        .filter(|k| *k != key.name() && before.get(*k) != now.get(*k))
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
