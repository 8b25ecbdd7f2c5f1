//! The guard of invariant 1's one exception: raising `retention.ms` of an input topic so a held
//! backlog does not age out, and restoring it exactly.
//!
//! What it enforces, whatever the engine or the caller says:
//! - only topics the policy allow-lists (`[[input.extend]]`), only where raising it grows the
//!   remote store alone ([`TopicConfigs::extension_blocker`]): tiered, `delete`, and with a local
//!   window of its own (`local.retention.ms` set, not `-2`); otherwise the brokers' disks would
//!   keep the extra data and fill;
//! - only ever up from the value the topic has now, never above the policy's cap;
//! - a restore (SET the original, or DELETE the key when it was inherited) only once every catch-up
//!   group reading the topic is past what the restore deletes, proven by the time of the oldest
//!   record any of them has not consumed.
//!
//! [`approve_extension`] is the last hop, on configs read just before the write; its [`Approved`]
//! change is the only thing the cluster's alter call takes.

use super::guard::{Approved, ManagedKey, RetentionChange, RetentionRefusal, restore_change};
use crate::observation::{ConfigSource, Observation, OriginalRetention, TopicConfigs};
use crate::policy::{ExtensionTarget, Policy};
use crate::units::{Dur, Timestamp};

/// What a restore needs besides the configs: how old the oldest record is that a catch-up group
/// reading the topic has not consumed.
#[derive(Clone, Copy, Debug)]
pub struct Unconsumed {
    /// Its timestamp; `None` when every group has consumed the topic up to its end.
    pub oldest: Option<Timestamp>,
    /// Whether that is known for every group and partition (offsets and record times read).
    pub known: bool,
    /// Now.
    pub now: Timestamp,
}

impl Unconsumed {
    /// From this tick's offsets: the oldest record a catch-up group reading `topic` has not
    /// consumed. Unknown when any group of the policy is missing, stale or has an unreadable
    /// partition (it might read the topic), or when a lagging partition's record time is unknown.
    pub fn observed(topic: &str, obs: &Observation, policy: &Policy, now: Timestamp) -> Unconsumed {
        let mut out = Unconsumed {
            oldest: None,
            known: true,
            now,
        };
        for name in policy.group_names() {
            let Some(g) = obs.groups.iter().find(|g| g.group == name) else {
                out.known = false;
                continue;
            };
            if now.since(g.sampled_at) > policy.staleness.max_lag_age || !g.unavailable.is_empty() {
                out.known = false;
            }
            for p in g.partitions.iter().filter(|p| p.topic == topic) {
                match (p.lag(), p.next_record) {
                    (Some(0), _) => {}
                    (_, Some(r)) if p.time_lag_ms(now).is_some() => {
                        out.oldest = Some(out.oldest.map_or(r.at, |o: Timestamp| o.min(r.at)));
                    }
                    _ => out.known = false,
                }
            }
        }
        out
    }
}

/// The operation `target` needs on `topic`'s `retention.ms`, or `None` when it is already there;
/// every refusal names the rule it would break. `original` is the journal's (required to restore).
pub fn plan_extension(
    topic: &str,
    target: &ExtensionTarget,
    original: Option<&OriginalRetention>,
    configs: &TopicConfigs,
    policy: &Policy,
) -> Result<Option<RetentionChange>, RetentionRefusal> {
    let refuse = |reason: String| RetentionRefusal {
        topic: topic.to_string(),
        reason,
    };
    let key = ManagedKey::RetentionMs;
    let Some(allowed) = policy.extension(topic) else {
        return Err(refuse(
            "the policy does not allow extending this topic's retention.ms ([[input.extend]])"
                .into(),
        ));
    };
    let current = configs.configs.get(key.name());
    let set_here = |v: &str| {
        current.is_some_and(|c| c.value.as_deref() == Some(v) && c.source == ConfigSource::Topic)
    };
    match target {
        ExtensionTarget::HandsOff => Ok(None),
        ExtensionTarget::Extended { ms } => {
            if let Some(why) = configs.extension_blocker() {
                return Err(refuse(why));
            }
            let cap = allowed.max_retention.0 as i64;
            if *ms > cap {
                return Err(refuse(format!(
                    "{} is above the policy's cap of {} (input.extend.max_retention)",
                    Dur(*ms as u64),
                    Dur(cap as u64)
                )));
            }
            let Some(now) = configs.retention_ms() else {
                return Err(refuse(
                    "retention.ms is unlimited (-1) or unreadable: nothing to extend".into(),
                ));
            };
            if *ms < now {
                return Err(refuse(format!(
                    "{} would lower retention.ms from {}: catchup only ever raises it",
                    Dur(*ms as u64),
                    Dur(now as u64)
                )));
            }
            let value = ms.to_string();
            if set_here(&value) {
                return Ok(None);
            }
            Ok(Some(RetentionChange::Set { key, value }))
        }
        ExtensionTarget::Original => restore_change(key, original, current).map_err(refuse),
    }
}

/// The last hop before a write: [`plan_extension`]'s rules on `configs` (read just now), and for
/// a restore also that it deletes no record a catch-up group has not consumed (`unconsumed`).
pub fn approve_extension(
    topic: &str,
    target: &ExtensionTarget,
    original: Option<&OriginalRetention>,
    configs: &TopicConfigs,
    policy: &Policy,
    unconsumed: &Unconsumed,
) -> Result<Option<Approved>, RetentionRefusal> {
    let Some(change) = plan_extension(topic, target, original, configs, policy)? else {
        return Ok(None);
    };
    if *target == ExtensionTarget::Original {
        let refuse = |reason: String| RetentionRefusal {
            topic: topic.to_string(),
            reason,
        };
        if !unconsumed.known {
            return Err(refuse(
                "the catch-up groups' oldest unconsumed records are not known: a restore might delete records they have not consumed".into(),
            ));
        }
        let restored_ms = original.and_then(|o| o.effective_ms);
        if let (Some(oldest), Some(ms)) = (unconsumed.oldest, restored_ms) {
            let age = unconsumed.now.0 - oldest.0;
            if age >= ms {
                return Err(refuse(format!(
                    "a catch-up group has not consumed a record {} old; restoring retention.ms to {} would delete it",
                    Dur(age.max(0) as u64),
                    Dur(ms as u64)
                )));
            }
        }
    }
    Ok(Some(Approved::new(topic, change)))
}

#[cfg(test)]
mod tests;
