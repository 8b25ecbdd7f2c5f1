//! A topic's configs as DescribeConfigs reports them, and what the retention journal holds for a
//! topic it has changed (its original, its phase): the configs the controller reads and the one
//! record of what it wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::Timestamp;

/// Whether a config value was set on the topic or inherited from the broker or Kafka's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// Set on the topic (`DYNAMIC_TOPIC_CONFIG`): restore by SETting the value back.
    Topic,
    /// Inherited (broker config or Kafka default): restore by DELETEing the topic-level key.
    Inherited,
}

/// One config entry of a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// The value as Kafka reports it (`None` for sensitive or null values).
    pub value: Option<String>,
    /// Where it comes from.
    pub source: ConfigSource,
}

/// The current configs of one managed topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicConfigs {
    /// Topic name.
    pub topic: String,
    /// Every config the broker reported, by key.
    pub configs: BTreeMap<String, ConfigValue>,
    /// When they were read.
    pub sampled_at: Timestamp,
}

/// Kafka's `local.retention.ms` value meaning "same as `retention.ms`".
pub const LOCAL_RETENTION_INHERIT: i64 = -2;

impl TopicConfigs {
    /// A config value parsed as an integer.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.configs.get(key)?.value.as_deref()?.trim().parse().ok()
    }

    /// Whether tiered storage is enabled on the topic.
    pub fn remote_storage_enabled(&self) -> bool {
        self.configs
            .get("remote.storage.enable")
            .and_then(|c| c.value.as_deref())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Why raising this topic's `retention.ms` would put more data on the brokers' disks (so it
    /// must not be raised), or `None` when only the remote store grows: the topic must be tiered,
    /// delete by age, and keep its local window by its own `local.retention.ms` (a value of `-2`,
    /// Kafka's default, or none means "as `retention.ms`": the local window would grow with it).
    pub fn extension_blocker(&self) -> Option<String> {
        if !self.remote_storage_enabled() {
            return Some("remote.storage.enable is not true: raising retention.ms would keep every record on the brokers' disks and fill them; only tiered topics are extended".into());
        }
        let cleanup = self
            .configs
            .get("cleanup.policy")
            .and_then(|c| c.value.clone())
            .unwrap_or_else(|| "delete".into());
        if !cleanup.split(',').any(|p| p.trim() == "delete") {
            return Some(format!(
                "cleanup.policy is {cleanup:?}: records are not deleted by age, nothing to extend"
            ));
        }
        match self.int("local.retention.ms") {
            Some(v) if v >= 0 => None,
            Some(LOCAL_RETENTION_INHERIT) | None => Some("local.retention.ms is -2 (as retention.ms): raising retention.ms would grow the brokers' local window with it and fill their disks; set local.retention.ms on the topic first".into()),
            Some(v) => Some(format!("local.retention.ms is {v} (unlimited): the brokers already keep everything locally; raising retention.ms would keep even more")),
        }
    }

    /// Total retention in ms; `None` means unlimited (`-1`) or unknown.
    pub fn retention_ms(&self) -> Option<i64> {
        self.int("retention.ms").filter(|v| *v >= 0)
    }

    /// The local retention in force, in ms, resolving `-2` ("as `retention.ms`"); `None` means unlimited or unknown.
    pub fn effective_local_retention_ms(&self) -> Option<i64> {
        match self.int("local.retention.ms") {
            Some(LOCAL_RETENTION_INHERIT) | None => self.retention_ms(),
            Some(v) if v < 0 => self.retention_ms(),
            Some(v) => Some(v),
        }
    }
}

/// The original value of a key the controller changes (`local.retention.ms` of a managed topic,
/// or `retention.ms` of an extended input topic), captured before its first change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OriginalRetention {
    /// The raw value (e.g. `"14400000"`, or `"-2"` for `local.retention.ms`).
    pub value: Option<String>,
    /// Set on the topic or inherited.
    pub source: ConfigSource,
    /// The effective value in ms (resolving `-2`), `None` for unlimited.
    pub effective_ms: Option<i64>,
}

/// Where a topic's latest retention change stands in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JournalPhase {
    /// Recorded, not yet acknowledged by the cluster: the write may or may not have landed.
    Intent,
    /// Acknowledged, not yet read back.
    Applied,
    /// Read back: the key holds the controller's value and nothing else was touched.
    Verified,
    /// Back at the original; nothing of the controller's is left on the topic.
    Restored,
    /// Someone else changed the managed key: the controller does not touch the topic until a
    /// person adopts the new value (`catchup retention adopt`).
    Drifted,
}

impl JournalPhase {
    /// Whether something of the controller's may be on the topic (every phase but `restored`).
    pub fn is_open(self) -> bool {
        self != JournalPhase::Restored
    }
}

/// One managed topic as the retention journal holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionRecord {
    /// The topic.
    pub topic: String,
    /// Its value before the controller's first change.
    pub original: OriginalRetention,
    /// Where the latest change stands.
    pub phase: JournalPhase,
    /// The key's value the controller last saw on the topic as its own (`None`: inherited).
    pub value: Option<String>,
    /// The value the controller last asked for, while its write is not settled (`None` when
    /// settled; `Some(None)` for a DELETE of the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Option<String>>,
    /// Why the latest change was made, or what someone else changed.
    pub reason: String,
    /// When the phase was recorded.
    pub at: Timestamp,
}

impl RetentionRecord {
    /// The value the controller wants on the topic now: the pending write, else the settled one.
    pub fn wanted(&self) -> Option<&str> {
        match &self.pending {
            Some(p) => p.as_deref(),
            None => self.value.as_deref(),
        }
    }
}
