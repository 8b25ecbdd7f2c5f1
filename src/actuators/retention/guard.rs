//! The retention guard: the one place that turns a desired `local.retention.ms` into a config change,
//! and refuses anything that could destroy data.
//!
//! What it enforces, whatever the policy or the caller says (DESIGN.md invariants 1, 2, 5):
//! - the only key ever changed is `local.retention.ms` (`local.retention.bytes` is allowed by design but
//!   not used by the engine); every other key, `retention.*`, `cleanup.policy`, `remote.storage.enable`,
//!   `remote.log.*` among them, is denied here;
//! - only topics the policy names, and only where `remote.storage.enable=true`;
//! - a lowered value lies within [floor, `retention.ms`];
//! - the change is an incremental SET or DELETE of that one key, never a full-config replacement.

use crate::policy::state::OriginalRetention;
use crate::policy::{Policy, RetentionTarget};
use crate::sensors::{ConfigSource, TopicConfigs};
use crate::units::Dur;

/// The keys the controller may ever change.
pub const ALLOWED_KEYS: [&str; 2] = ["local.retention.ms", "local.retention.bytes"];

/// Keys (or key prefixes ending in `.`) the controller must never change, checked before the allow-list
/// so that a future edit of the allow-list cannot let one through.
pub const DENIED_KEYS: [&str; 7] = [
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "remote.storage.enable",
    "remote.log.",
    "min.insync.replicas",
    "segment.",
];

/// One incremental config operation on `local.retention.ms`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RetentionChange {
    /// SET the key to `value` on the topic.
    Set {
        /// The key (always `local.retention.ms` from the engine).
        key: String,
        /// The value, as Kafka takes it.
        value: String,
    },
    /// DELETE the topic-level key so the topic inherits it again.
    Delete {
        /// The key.
        key: String,
    },
}

impl RetentionChange {
    /// The key the change touches.
    pub fn key(&self) -> &str {
        match self {
            RetentionChange::Set { key, .. } | RetentionChange::Delete { key } => key,
        }
    }
}

/// Why the guard refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic {topic}: refused: {reason}")]
pub struct RetentionRefusal {
    /// Topic.
    pub topic: String,
    /// Why, and what would make it acceptable.
    pub reason: String,
}

/// Whether `key` may be changed at all.
pub fn key_allowed(key: &str) -> bool {
    let denied = DENIED_KEYS.iter().any(|d| {
        if d.ends_with('.') {
            key.starts_with(d)
        } else {
            key == *d
        }
    });
    !denied && ALLOWED_KEYS.contains(&key)
}

/// Turns `target` into the operation needed on `topic` (whose configs are `configs`), or `None` when the
/// topic is already there. `original` is what was captured before the first change; it is required to
/// restore. Every refusal names the rule it would break.
pub fn plan(
    topic: &str,
    target: &RetentionTarget,
    original: Option<&OriginalRetention>,
    configs: &TopicConfigs,
    policy: &Policy,
) -> Result<Option<RetentionChange>, RetentionRefusal> {
    let refuse = |reason: String| RetentionRefusal {
        topic: topic.to_string(),
        reason,
    };
    const KEY: &str = "local.retention.ms";
    if !policy.manages(topic) {
        return Err(refuse(
            "the policy does not name this topic as managed".into(),
        ));
    }
    let current = configs.configs.get(KEY);
    let change = match target {
        RetentionTarget::HandsOff => return Ok(None),
        RetentionTarget::Lowered { ms } => {
            if !configs.remote_storage_enabled() {
                return Err(refuse(
                    "remote.storage.enable is not true: local segments may be the only copy".into(),
                ));
            }
            let floor = policy.floor_ms(topic);
            if *ms < floor {
                return Err(refuse(format!(
                    "{} is below the floor of {}",
                    Dur(*ms as u64),
                    Dur(floor as u64)
                )));
            }
            if let Some(total) = configs.retention_ms()
                && *ms > total
            {
                return Err(refuse(format!(
                    "{} is above retention.ms ({})",
                    Dur(*ms as u64),
                    Dur(total as u64)
                )));
            }
            let value = ms.to_string();
            if current.is_some_and(|c| {
                c.value.as_deref() == Some(&value) && c.source == ConfigSource::Topic
            }) {
                return Ok(None);
            }
            RetentionChange::Set {
                key: KEY.into(),
                value,
            }
        }
        RetentionTarget::Original => {
            let Some(original) = original else {
                // Never changed by us: nothing to restore.
                return Ok(None);
            };
            match original.source {
                ConfigSource::Topic => {
                    let Some(value) = original.value.clone() else {
                        return Err(refuse(
                            "the original value was not recorded; restore by hand".into(),
                        ));
                    };
                    if current.is_some_and(|c| {
                        c.value.as_ref() == Some(&value) && c.source == ConfigSource::Topic
                    }) {
                        return Ok(None);
                    }
                    RetentionChange::Set {
                        key: KEY.into(),
                        value,
                    }
                }
                ConfigSource::Inherited => {
                    if current.is_none_or(|c| c.source == ConfigSource::Inherited) {
                        return Ok(None);
                    }
                    RetentionChange::Delete { key: KEY.into() }
                }
            }
        }
    };
    if !key_allowed(change.key()) {
        return Err(refuse(format!(
            "{} is not a key the controller may change",
            change.key()
        )));
    }
    Ok(Some(change))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TopicPolicy;
    use crate::sensors::Observation;
    use crate::units::Timestamp;

    fn policy() -> Policy {
        let mut p = Policy::default();
        p.retention.topics.push(TopicPolicy {
            name: "out".into(),
            floor: None,
        });
        p
    }

    #[test]
    fn only_local_retention_keys_are_allowed() {
        assert!(key_allowed("local.retention.ms"));
        assert!(key_allowed("local.retention.bytes"));
        for k in [
            "retention.ms",
            "retention.bytes",
            "cleanup.policy",
            "remote.storage.enable",
            "remote.log.copy.disable",
            "segment.ms",
            "max.message.bytes",
        ] {
            assert!(!key_allowed(k), "{k}");
        }
    }

    #[test]
    fn lowering_is_checked_against_floor_total_and_tiering() {
        let obs = Observation::test().with_topic(
            "out",
            Some(4 * 3_600_000),
            7 * 86_400_000,
            Timestamp(0),
        );
        let t = &obs.topics[0];
        let p = policy();
        let ok = plan(
            "out",
            &RetentionTarget::Lowered { ms: 7_200_000 },
            None,
            t,
            &p,
        )
        .unwrap();
        assert_eq!(
            ok,
            Some(RetentionChange::Set {
                key: "local.retention.ms".into(),
                value: "7200000".into()
            })
        );
        let below = plan("out", &RetentionTarget::Lowered { ms: 60_000 }, None, t, &p).unwrap_err();
        assert!(below.reason.contains("below the floor"), "{below}");
        let above = plan(
            "out",
            &RetentionTarget::Lowered { ms: 8 * 86_400_000 },
            None,
            t,
            &p,
        )
        .unwrap_err();
        assert!(above.reason.contains("above retention.ms"), "{above}");
        let other = plan(
            "other",
            &RetentionTarget::Lowered { ms: 7_200_000 },
            None,
            t,
            &p,
        )
        .unwrap_err();
        assert!(other.reason.contains("does not name"), "{other}");
        let mut untiered = t.clone();
        untiered
            .configs
            .get_mut("remote.storage.enable")
            .unwrap()
            .value = Some("false".into());
        let refused = plan(
            "out",
            &RetentionTarget::Lowered { ms: 7_200_000 },
            None,
            &untiered,
            &p,
        )
        .unwrap_err();
        assert!(
            refused.reason.contains("remote.storage.enable"),
            "{refused}"
        );
    }

    #[test]
    fn restore_sets_an_explicit_original_and_deletes_an_inherited_one() {
        let p = policy();
        let lowered =
            Observation::test().with_topic("out", Some(3_600_000), 7 * 86_400_000, Timestamp(0));
        let explicit = OriginalRetention {
            value: Some("14400000".into()),
            source: ConfigSource::Topic,
            effective_ms: Some(14_400_000),
        };
        assert_eq!(
            plan(
                "out",
                &RetentionTarget::Original,
                Some(&explicit),
                &lowered.topics[0],
                &p
            )
            .unwrap(),
            Some(RetentionChange::Set {
                key: "local.retention.ms".into(),
                value: "14400000".into()
            })
        );
        let inherited = OriginalRetention {
            value: Some("-2".into()),
            source: ConfigSource::Inherited,
            effective_ms: Some(7 * 86_400_000),
        };
        assert_eq!(
            plan(
                "out",
                &RetentionTarget::Original,
                Some(&inherited),
                &lowered.topics[0],
                &p
            )
            .unwrap(),
            Some(RetentionChange::Delete {
                key: "local.retention.ms".into()
            })
        );
        let back = Observation::test().with_topic("out", None, 7 * 86_400_000, Timestamp(0));
        assert_eq!(
            plan(
                "out",
                &RetentionTarget::Original,
                Some(&inherited),
                &back.topics[0],
                &p
            )
            .unwrap(),
            None
        );
        assert_eq!(
            plan(
                "out",
                &RetentionTarget::Original,
                None,
                &lowered.topics[0],
                &p
            )
            .unwrap(),
            None
        );
    }
}
