//! The extension guard: every rule refuses on its own, with the reason; the allowed writes are
//! exactly the ones the rules leave.

use super::{Unconsumed, approve_extension, plan_extension};
use crate::actuators::retention::guard::{ManagedKey, RetentionChange};
use crate::observation::{ConfigSource, ConfigValue, OriginalRetention, TopicConfigs};
use crate::policy::config::ExtendPolicy;
use crate::policy::{ExtensionTarget, Policy};
use crate::units::{Dur, Timestamp};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_700_000_000_000;

fn policy() -> Policy {
    let mut p = Policy::default();
    p.input.extend.push(ExtendPolicy {
        topic: "events".into(),
        max_retention: Dur::from_hours(24 * 7),
    });
    p
}

/// One config over the base: key, value (`None` removes it), source.
type Extra<'a> = (&'a str, Option<&'a str>, ConfigSource);

/// A tiered `delete` topic with 3 days of retention and 4 hours locally, plus `extra` (a `None`
/// value removes the key).
fn configs(extra: &[Extra]) -> TopicConfigs {
    let mut c = TopicConfigs {
        topic: "events".into(),
        configs: Default::default(),
        sampled_at: Timestamp(NOW),
    };
    let base = [
        ("retention.ms", "259200000", ConfigSource::Topic),
        ("local.retention.ms", "14400000", ConfigSource::Topic),
        ("remote.storage.enable", "true", ConfigSource::Topic),
        ("cleanup.policy", "delete", ConfigSource::Inherited),
    ];
    for (k, v, source) in base {
        c.configs.insert(
            k.into(),
            ConfigValue {
                value: Some(v.into()),
                source,
            },
        );
    }
    for (k, v, source) in extra {
        match v {
            Some(v) => {
                c.configs.insert(
                    k.to_string(),
                    ConfigValue {
                        value: Some(v.to_string()),
                        source: *source,
                    },
                );
            }
            None => {
                c.configs.remove(*k);
            }
        }
    }
    c
}

fn extended(ms: i64) -> ExtensionTarget {
    ExtensionTarget::Extended { ms }
}

fn set(value: i64) -> RetentionChange {
    RetentionChange::Set {
        key: ManagedKey::RetentionMs,
        value: value.to_string(),
    }
}

fn original_set(ms: i64) -> OriginalRetention {
    OriginalRetention {
        value: Some(ms.to_string()),
        source: ConfigSource::Topic,
        effective_ms: Some(ms),
    }
}

fn refusal(target: &ExtensionTarget, c: &TopicConfigs, p: &Policy) -> String {
    match plan_extension("events", target, None, c, p) {
        Err(r) => r.reason,
        Ok(change) => panic!("expected a refusal, got {change:?}"),
    }
}

#[test]
fn a_raise_within_the_rules_sets_retention_ms_and_nothing_else() {
    let c = configs(&[]);
    let change = plan_extension("events", &extended(4 * DAY), None, &c, &policy()).unwrap();
    assert_eq!(change, Some(set(4 * DAY)));
    // At the value already: nothing to do.
    let at = configs(&[("retention.ms", Some("345600000"), ConfigSource::Topic)]);
    assert_eq!(
        plan_extension("events", &extended(4 * DAY), None, &at, &policy()).unwrap(),
        None
    );
    // The same value inherited from the broker is not "set here": the write pins it.
    let inherited = configs(&[("retention.ms", Some("345600000"), ConfigSource::Inherited)]);
    assert_eq!(
        plan_extension("events", &extended(4 * DAY), None, &inherited, &policy()).unwrap(),
        Some(set(4 * DAY))
    );
}

#[test]
fn only_allow_listed_topics() {
    let mut c = configs(&[]);
    c.topic = "other".into();
    let r = plan_extension("other", &extended(4 * DAY), None, &c, &policy()).unwrap_err();
    assert!(r.reason.contains("[[input.extend]]"), "{}", r.reason);
}

#[test]
fn never_where_the_brokers_disks_would_keep_the_extra_data() {
    let p = policy();
    let cases: [(&[Extra], &str); 6] = [
        (
            &[("remote.storage.enable", Some("false"), ConfigSource::Topic)],
            "remote.storage.enable",
        ),
        (
            &[("remote.storage.enable", None, ConfigSource::Topic)],
            "remote.storage.enable",
        ),
        (
            &[("local.retention.ms", Some("-2"), ConfigSource::Inherited)],
            "local.retention.ms is -2",
        ),
        (
            &[("local.retention.ms", None, ConfigSource::Topic)],
            "local.retention.ms is -2",
        ),
        (
            &[("local.retention.ms", Some("-1"), ConfigSource::Topic)],
            "unlimited",
        ),
        (
            &[("cleanup.policy", Some("compact"), ConfigSource::Topic)],
            "cleanup.policy",
        ),
    ];
    for (extra, why) in cases {
        let reason = refusal(&extended(4 * DAY), &configs(extra), &p);
        assert!(reason.contains(why), "{extra:?}: {reason}");
    }
    // compact,delete still deletes by age: allowed.
    let both = configs(&[(
        "cleanup.policy",
        Some("compact,delete"),
        ConfigSource::Topic,
    )]);
    assert!(plan_extension("events", &extended(4 * DAY), None, &both, &p).is_ok());
}

#[test]
fn never_above_the_cap_never_down() {
    let p = policy();
    let c = configs(&[]);
    let reason = refusal(&extended(7 * DAY + 1), &c, &p);
    assert!(reason.contains("cap"), "{reason}");
    assert!(plan_extension("events", &extended(7 * DAY), None, &c, &p).is_ok());
    let reason = refusal(&extended(3 * DAY - 1), &c, &p);
    assert!(reason.contains("only ever raises"), "{reason}");
    let unlimited = configs(&[("retention.ms", Some("-1"), ConfigSource::Topic)]);
    let reason = refusal(&extended(4 * DAY), &unlimited, &p);
    assert!(reason.contains("unlimited"), "{reason}");
}

#[test]
fn a_restore_brings_back_exactly_the_original() {
    let p = policy();
    let raised = configs(&[("retention.ms", Some("432000000"), ConfigSource::Topic)]);
    // Set on the topic before: SET it back.
    let change = plan_extension(
        "events",
        &ExtensionTarget::Original,
        Some(&original_set(3 * DAY)),
        &raised,
        &p,
    )
    .unwrap();
    assert_eq!(change, Some(set(3 * DAY)));
    // Inherited before: DELETE the key.
    let inherited = OriginalRetention {
        value: Some((7 * DAY).to_string()),
        source: ConfigSource::Inherited,
        effective_ms: Some(7 * DAY),
    };
    let change = plan_extension(
        "events",
        &ExtensionTarget::Original,
        Some(&inherited),
        &raised,
        &p,
    )
    .unwrap();
    assert_eq!(
        change,
        Some(RetentionChange::Delete {
            key: ManagedKey::RetentionMs
        })
    );
    // Already inherited again: nothing to do; no original recorded: nothing to do.
    let back = configs(&[("retention.ms", Some("604800000"), ConfigSource::Inherited)]);
    let none = plan_extension(
        "events",
        &ExtensionTarget::Original,
        Some(&inherited),
        &back,
        &p,
    );
    assert_eq!(none.unwrap(), None);
    let none = plan_extension("events", &ExtensionTarget::Original, None, &raised, &p);
    assert_eq!(none.unwrap(), None);
    // A restore lowers retention.ms: the "only up" rule is for raises, not for going back.
}

#[test]
fn a_restore_never_deletes_what_a_group_has_not_consumed() {
    let p = policy();
    let raised = configs(&[("retention.ms", Some("432000000"), ConfigSource::Topic)]);
    let original = original_set(3 * DAY);
    let restore = |oldest: Option<i64>, known: bool| {
        approve_extension(
            "events",
            &ExtensionTarget::Original,
            Some(&original),
            &raised,
            &p,
            &Unconsumed {
                oldest: oldest.map(Timestamp),
                known,
                now: Timestamp(NOW),
            },
        )
    };
    // A record 3 days and a second old is not consumed: restoring to 3 days would delete it.
    let r = restore(Some(NOW - 3 * DAY - 1000), true).unwrap_err();
    assert!(r.reason.contains("would delete it"), "{}", r.reason);
    // Exactly 3 days old: Kafka may delete it now, so also refused.
    assert!(restore(Some(NOW - 3 * DAY), true).is_err());
    // Unknown: refused.
    let r = restore(Some(NOW - HOUR), false).unwrap_err();
    assert!(r.reason.contains("not known"), "{}", r.reason);
    // Younger, or nothing unconsumed: approved, for retention.ms.
    for oldest in [Some(NOW - 2 * DAY), None] {
        let a = restore(oldest, true).unwrap().expect("a write");
        assert_eq!(a.topic(), "events");
        assert_eq!(a.change(), &set(3 * DAY));
    }
    // A raise needs no proof about consumers.
    let a = approve_extension(
        "events",
        &extended(6 * DAY),
        Some(&original),
        &raised,
        &p,
        &Unconsumed {
            oldest: None,
            known: false,
            now: Timestamp(NOW),
        },
    )
    .unwrap()
    .expect("a write");
    assert_eq!(a.change(), &set(6 * DAY));
}

#[test]
fn the_local_guard_still_refuses_retention_ms() {
    use crate::actuators::retention::guard::key_allowed;
    assert!(!key_allowed("retention.ms"));
    assert!(key_allowed("local.retention.ms"));
}
