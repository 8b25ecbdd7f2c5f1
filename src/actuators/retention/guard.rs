//! The retention guard: the one place that turns a desired `local.retention.ms` into a config change,
//! and refuses anything that could destroy data.
//!
//! What it enforces, whatever the policy or the caller says (DESIGN.md invariants 1, 2, 5):
//! - the only key ever changed is `local.retention.ms` (`local.retention.bytes` is allowed by design but
//!   not used by the engine); every other key, `retention.*`, `cleanup.policy`, `remote.storage.enable`,
//!   `remote.log.*` among them, is denied here;
//! - only topics the policy names, and only where `remote.storage.enable=true`;
//! - a lowered value lies within [floor, `retention.ms`], on a `delete` (never compacted) topic, and
//!   only while every broker's tiered-storage copy lag is known, fresh and under the policy's limit;
//! - the change is an incremental SET or DELETE of that one key, never a full-config replacement.
//!
//! [`plan`] answers what a target needs (for decisions, dry runs and refusals in the audit log);
//! [`approve`] is the last hop: it runs the same rules, plus the copy-lag proof, on configs read
//! just before the write, and its [`Approved`] change is the only thing the cluster's alter call
//! takes. Whoever writes (the control loop, the runbook's CLI, the simulator) passes through it.

use crate::observation::{BrokerCopyLag, BrokerId, ConfigSource, ConfigValue, TopicConfigs};
use crate::policy::state::OriginalRetention;
use crate::policy::validate::CATCHUP_TOPIC_PREFIX;
use crate::policy::{Policy, RetentionTarget, copy_lag_blocks};
use crate::units::{Dur, Timestamp};

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

/// A topic config the controller may ever change: a closed set, so no other key can reach the
/// cluster. The local keys pass [`key_allowed`]; `retention.ms` is the one narrow exception of
/// invariant 1, reachable only through [`approve_extension`](super::extend::approve_extension) (raising, never above the cap, on a
/// tiered input topic the policy allow-lists). Tests keep both so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ManagedKey {
    /// `local.retention.ms`: the one key the engine lowers and restores on managed topics.
    #[default]
    LocalRetentionMs,
    /// `local.retention.bytes`: allowed by design, not used by the engine.
    LocalRetentionBytes,
    /// `retention.ms` of an input topic allow-listed for extension: only ever raised (and
    /// restored exactly), never on a non-tiered topic, never above the policy's cap.
    RetentionMs,
}

impl ManagedKey {
    /// Every key.
    pub const ALL: [ManagedKey; 3] = [
        ManagedKey::LocalRetentionMs,
        ManagedKey::LocalRetentionBytes,
        ManagedKey::RetentionMs,
    ];

    /// The key as Kafka names it.
    pub fn name(self) -> &'static str {
        match self {
            ManagedKey::LocalRetentionMs => "local.retention.ms",
            ManagedKey::LocalRetentionBytes => "local.retention.bytes",
            ManagedKey::RetentionMs => "retention.ms",
        }
    }
}

impl std::fmt::Display for ManagedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for ManagedKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for ManagedKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ManagedKey, D::Error> {
        let name = String::deserialize(d)?;
        ManagedKey::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{name:?} is not a key the controller may change (only local.retention.ms, local.retention.bytes, and retention.ms of an input topic allow-listed for extension)"
                ))
            })
    }
}

/// One incremental config operation on a managed key (what the journal records and the audit log
/// shows).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RetentionChange {
    /// SET the key to `value` on the topic.
    Set {
        /// The key (always `local.retention.ms` from the engine).
        key: ManagedKey,
        /// The value, as Kafka takes it.
        value: String,
    },
    /// DELETE the topic-level key so the topic inherits it again.
    Delete {
        /// The key.
        key: ManagedKey,
    },
}

impl RetentionChange {
    /// The key the change touches.
    pub fn key(&self) -> ManagedKey {
        match self {
            RetentionChange::Set { key, .. } | RetentionChange::Delete { key } => *key,
        }
    }

    /// The key's topic-level value once the change is applied (`None`: deleted, inherited).
    pub fn leaves(&self) -> Option<&str> {
        match self {
            RetentionChange::Set { value, .. } => Some(value),
            RetentionChange::Delete { .. } => None,
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

/// The operation that brings `key` back to `original` given its value now (`current`): SET the
/// recorded value when it was set on the topic, DELETE the key when it was inherited; `None` when it
/// is already there or nothing was ever changed. Shared by both guards.
pub(super) fn restore_change(
    key: ManagedKey,
    original: Option<&OriginalRetention>,
    current: Option<&ConfigValue>,
) -> Result<Option<RetentionChange>, String> {
    let Some(original) = original else {
        // Never changed by us: nothing to restore.
        return Ok(None);
    };
    match original.source {
        ConfigSource::Topic => {
            let Some(value) = original.value.clone() else {
                return Err("the original value was not recorded; restore by hand".into());
            };
            if current.is_some_and(|c| {
                c.value.as_ref() == Some(&value) && c.source == ConfigSource::Topic
            }) {
                return Ok(None);
            }
            Ok(Some(RetentionChange::Set { key, value }))
        }
        ConfigSource::Inherited => {
            if current.is_none_or(|c| c.source == ConfigSource::Inherited) {
                return Ok(None);
            }
            Ok(Some(RetentionChange::Delete { key }))
        }
    }
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
    let key = ManagedKey::LocalRetentionMs;
    if topic.starts_with(CATCHUP_TOPIC_PREFIX) {
        return Err(refuse(format!(
            "catchup's own topics (named {CATCHUP_TOPIC_PREFIX}*: HA coordination and state) are never managed"
        )));
    }
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
            RetentionChange::Set { key, value }
        }
        RetentionTarget::Original => match restore_change(key, original, current) {
            Ok(Some(change)) => change,
            Ok(None) => return Ok(None),
            Err(why) => return Err(refuse(why)),
        },
    };
    if !key_allowed(change.key().name()) {
        return Err(refuse(format!(
            "{} is not a key the controller may change",
            change.key()
        )));
    }
    Ok(Some(change))
}

/// What the last hop needs besides the topic's configs: the copy lag of every broker, so lowering
/// is refused while uploads lag (DESIGN.md invariant 5).
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    /// The brokers whose disks hold the topic (every broker the disk sensor reports).
    pub brokers: &'a [BrokerId],
    /// Their newest copy-lag readings.
    pub copy_lag: &'a [BrokerCopyLag],
    /// Now, to judge the readings' age.
    pub now: Timestamp,
}

/// A change the guard approved at the last hop, on configs read just before the write. Only
/// [`approve`] makes one, and the cluster's alter call takes nothing else.
#[derive(Debug)]
pub struct Approved {
    topic: String,
    change: RetentionChange,
}

impl Approved {
    /// Only the guards of this module make one.
    pub(super) fn new(topic: &str, change: RetentionChange) -> Approved {
        Approved {
            topic: topic.to_string(),
            change,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The one operation.
    pub fn change(&self) -> &RetentionChange {
        &self.change
    }
}

/// The last hop before a write: [`plan`]'s rules on `configs` (read just now), and for a lowering
/// also that the topic is not compacted and that `evidence` proves every broker's uploads are
/// caught up. `None` when the topic is already at the target.
pub fn approve(
    topic: &str,
    target: &RetentionTarget,
    original: Option<&OriginalRetention>,
    configs: &TopicConfigs,
    policy: &Policy,
    evidence: &Evidence<'_>,
) -> Result<Option<Approved>, RetentionRefusal> {
    let refuse = |reason: String| RetentionRefusal {
        topic: topic.to_string(),
        reason,
    };
    let Some(change) = plan(topic, target, original, configs, policy)? else {
        return Ok(None);
    };
    if let RetentionTarget::Lowered { .. } = target {
        let cleanup = configs
            .configs
            .get("cleanup.policy")
            .and_then(|c| c.value.clone())
            .unwrap_or_else(|| "delete".into());
        if cleanup.contains("compact") {
            return Err(refuse(format!(
                "cleanup.policy is {cleanup:?}: a compacted topic's local segments are not a copy of remote ones"
            )));
        }
        if let Some(why) = copy_lag_blocks(
            evidence.brokers.iter().copied(),
            evidence.copy_lag,
            policy,
            evidence.now,
        ) {
            return Err(refuse(why));
        }
    }
    Ok(Some(Approved {
        topic: topic.to_string(),
        change,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::Observation;
    use crate::policy::TopicPolicy;
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
    fn every_managed_key_is_allowed_and_no_other_deserializes() {
        for k in ManagedKey::ALL {
            // The local path allows the local keys; retention.ms only the extension path.
            assert_eq!(key_allowed(k.name()), k != ManagedKey::RetentionMs, "{k}");
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<ManagedKey>(&json).unwrap(), k);
        }
        let err = serde_json::from_str::<ManagedKey>("\"cleanup.policy\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("not a key the controller may change"),
            "{err}"
        );
    }

    #[test]
    fn catchup_own_topics_are_refused_even_when_the_policy_names_them() {
        let mut p = policy();
        p.retention.topics.push(TopicPolicy {
            name: "__catchup-fleet-state".into(),
            floor: None,
        });
        let configs = TopicConfigs {
            topic: "__catchup-fleet-state".into(),
            configs: Default::default(),
            sampled_at: Timestamp(0),
        };
        for target in [
            RetentionTarget::Lowered { ms: 3_600_000 },
            RetentionTarget::Original,
        ] {
            let err = plan("__catchup-fleet-state", &target, None, &configs, &p).unwrap_err();
            assert!(err.reason.contains("catchup's own topics"), "{err}");
        }
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
                key: ManagedKey::LocalRetentionMs,
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
                key: ManagedKey::LocalRetentionMs,
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
                key: ManagedKey::LocalRetentionMs
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

    #[test]
    fn the_last_hop_wants_fresh_copy_lag_of_every_broker_before_lowering() {
        let now = Timestamp(10_000_000);
        let obs = Observation::test().with_topic("out", Some(4 * 3_600_000), 7 * 86_400_000, now);
        let (t, p) = (&obs.topics[0], policy());
        let lower = RetentionTarget::Lowered { ms: 7_200_000 };
        let fresh = [BrokerCopyLag {
            broker: 1,
            bytes: 0,
            sampled_at: now,
        }];
        let evidence = |brokers: &'static [BrokerId], lag: &[BrokerCopyLag]| {
            let lag: &'static [BrokerCopyLag] = Box::leak(lag.to_vec().into_boxed_slice());
            Evidence {
                brokers,
                copy_lag: lag,
                now,
            }
        };
        let ok = approve("out", &lower, None, t, &p, &evidence(&[1], &fresh))
            .unwrap()
            .unwrap();
        assert_eq!(ok.topic(), "out");
        assert_eq!(ok.change().leaves(), Some("7200000"));
        let missing = approve("out", &lower, None, t, &p, &evidence(&[1, 2], &fresh)).unwrap_err();
        assert!(missing.reason.contains("broker 2"), "{missing}");
        let none = approve("out", &lower, None, t, &p, &evidence(&[], &[])).unwrap_err();
        assert!(none.reason.contains("no broker"), "{none}");
        let old = [BrokerCopyLag {
            broker: 1,
            bytes: 0,
            sampled_at: Timestamp(0),
        }];
        let stale = approve("out", &lower, None, t, &p, &evidence(&[1], &old)).unwrap_err();
        assert!(stale.reason.contains("old"), "{stale}");
        let lagging = [BrokerCopyLag {
            broker: 1,
            bytes: u64::MAX,
            sampled_at: now,
        }];
        let behind = approve("out", &lower, None, t, &p, &evidence(&[1], &lagging)).unwrap_err();
        assert!(behind.reason.contains("not yet copied"), "{behind}");
        let mut compacted = t.clone();
        compacted.configs.insert(
            "cleanup.policy".into(),
            crate::observation::ConfigValue {
                value: Some("compact".into()),
                source: ConfigSource::Topic,
            },
        );
        let refused =
            approve("out", &lower, None, &compacted, &p, &evidence(&[1], &fresh)).unwrap_err();
        assert!(refused.reason.contains("compact"), "{refused}");
        // Restoring needs no copy-lag proof: raising local retention deletes nothing.
        let original = OriginalRetention {
            value: Some("14400000".into()),
            source: ConfigSource::Topic,
            effective_ms: Some(14_400_000),
        };
        let lowered = Observation::test().with_topic("out", Some(3_600_000), 7 * 86_400_000, now);
        assert!(
            approve(
                "out",
                &RetentionTarget::Original,
                Some(&original),
                &lowered.topics[0],
                &p,
                &evidence(&[], &[])
            )
            .unwrap()
            .is_some()
        );
    }
}
