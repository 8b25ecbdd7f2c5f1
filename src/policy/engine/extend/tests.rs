//! The extension step by hand: how far it raises, when it holds, when it restores, and when it
//! refuses.

use crate::observation::{
    ConfigSource, ConfigValue, GroupOffsets, JournalPhase, Observation, OriginalRetention,
    PartitionOffsets, RecordTime, RetentionRecord, TimestampKind, TopicConfigs,
};
use crate::policy::config::ExtendPolicy;
use crate::policy::{
    AlertCode, ControllerState, Decision, ExtensionTarget, GroupPolicy, Policy, RateUnit, decide,
};
use crate::units::{Dur, Timestamp};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const T0: i64 = 1_700_000_000_000;

fn policy(cap_days: u64) -> Policy {
    let mut p = Policy::default();
    p.groups.push(GroupPolicy {
        name: "ingest".into(),
        unit: RateUnit::Records,
        max_rate: Some(1_000.0),
        min_rate: None,
        lag_threshold: None,
        priority: Default::default(),
        exempt: false,
    });
    p.input.extend.push(ExtendPolicy {
        topic: "in".into(),
        max_retention: Dur::from_hours(24 * cap_days),
    });
    p
}

/// `in`: tiered, 4 hours locally, `retention_ms` in all, plus `extra`, read at `at`.
fn input(retention_ms: i64, extra: &[(&str, &str)], at: i64) -> TopicConfigs {
    let mut entries = vec![
        ("retention.ms", retention_ms.to_string()),
        ("local.retention.ms", (4 * HOUR).to_string()),
        ("remote.storage.enable", "true".to_string()),
    ];
    for (k, v) in extra {
        entries.retain(|(key, _)| key != k);
        entries.push((k, v.to_string()));
    }
    TopicConfigs {
        topic: "in".into(),
        configs: entries
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    ConfigValue {
                        value: Some(v),
                        source: ConfigSource::Topic,
                    },
                )
            })
            .collect(),
        sampled_at: Timestamp(at),
    }
}

/// The group on `in`:0, `lag` records behind, its next record stamped `oldest` (`None`: unknown).
fn observe(now: i64, lag: i64, oldest: Option<i64>, input: &TopicConfigs) -> Observation {
    let at = Timestamp(now);
    let mut obs = Observation::test();
    for b in 1..=3 {
        obs = obs.with_disk(b, 50.0, at).with_copy_lag(b, 0, at);
    }
    let committed = 1_000_000 - lag;
    obs.groups.push(GroupOffsets {
        group: "ingest".into(),
        partitions: vec![PartitionOffsets {
            topic: "in".into(),
            partition: 0,
            committed: Some(committed),
            log_end: 1_000_000,
            log_start: Some(0),
            next_record: oldest.map(|t| RecordTime {
                offset: committed,
                at: Timestamp(t),
                kind: TimestampKind::CreateTime,
            }),
        }],
        sampled_at: at,
        unavailable: Vec::new(),
    });
    obs.inputs.push(input.clone());
    obs
}

/// An open journal record: `in` was at `original_ms`, set on the topic, and is now at `value_ms`.
fn extended_record(original_ms: i64, value_ms: i64) -> RetentionRecord {
    RetentionRecord {
        topic: "in".into(),
        original: OriginalRetention {
            value: Some(original_ms.to_string()),
            source: ConfigSource::Topic,
            effective_ms: Some(original_ms),
        },
        phase: JournalPhase::Verified,
        value: Some(value_ms.to_string()),
        pending: None,
        reason: "raised".into(),
        at: Timestamp(T0),
    }
}

fn run(p: &Policy, obs: &Observation, now: i64) -> Decision {
    decide(obs, p, &ControllerState::default(), &[], Timestamp(now)).0
}

#[test]
fn raises_to_the_age_plus_three_margins_rounded_to_the_hour_only_when_needed() {
    let p = policy(14);
    let now = T0 + 10 * DAY;
    let c = input(3 * DAY, &[], now);
    // The oldest unconsumed record is 2 days 30 min old; margin 6h; not draining (one tick: no
    // rates yet, D counts 0). Need 2d30m + 12h = 2d12h30m < 3d: nothing to do.
    let d = run(
        &p,
        &observe(now, 5_000, Some(now - 2 * DAY - 30 * MIN), &c),
        now,
    );
    let e = &d.extensions["in"];
    assert_eq!(e.target, ExtensionTarget::HandsOff, "{:?}", e.reasons);
    assert!(!e.changed);
    // 2 days 20 hours old: need 3d8h > 3d: raise to 3d8h + 6h = 3d14h (already whole hours).
    let d = run(
        &p,
        &observe(now, 5_000, Some(now - 2 * DAY - 20 * HOUR), &c),
        now,
    );
    let e = &d.extensions["in"];
    assert_eq!(
        e.target,
        ExtensionTarget::Extended {
            ms: 3 * DAY + 14 * HOUR
        }
    );
    assert!(e.changed);
    assert_eq!(e.current_ms, Some(3 * DAY));
    // 10 minutes more: rounded up to the next whole hour.
    let d = run(
        &p,
        &observe(now, 5_000, Some(now - 2 * DAY - 20 * HOUR - 10 * MIN), &c),
        now,
    );
    assert_eq!(
        d.extensions["in"].target,
        ExtensionTarget::Extended {
            ms: 3 * DAY + 15 * HOUR
        }
    );
}

#[test]
fn never_above_the_cap_and_says_so() {
    let p = policy(4);
    let now = T0 + 10 * DAY;
    let c = input(3 * DAY, &[], now);
    let d = run(
        &p,
        &observe(now, 5_000, Some(now - 3 * DAY - 20 * HOUR), &c),
        now,
    );
    assert_eq!(
        d.extensions["in"].target,
        ExtensionTarget::Extended { ms: 4 * DAY }
    );
    let capped: Vec<_> = d
        .alerts
        .iter()
        .filter(|a| a.code == AlertCode::InputDeadline && a.message.contains("capped"))
        .collect();
    assert_eq!(capped.len(), 1, "{:?}", d.alerts);
}

#[test]
fn never_where_the_disks_would_keep_it() {
    let p = policy(14);
    let now = T0 + 10 * DAY;
    for extra in [
        [("remote.storage.enable", "false")],
        [("local.retention.ms", "-2")],
        [("cleanup.policy", "compact")],
    ] {
        let c = input(3 * DAY, &extra, now);
        let d = run(
            &p,
            &observe(now, 5_000, Some(now - 2 * DAY - 20 * HOUR), &c),
            now,
        );
        let e = &d.extensions["in"];
        assert_eq!(e.target, ExtensionTarget::HandsOff, "{extra:?}");
        assert!(!e.changed);
        assert!(
            d.alerts.iter().any(|a| a.code == AlertCode::TopicNotTiered),
            "{extra:?}: {:?}",
            d.alerts
        );
    }
}

#[test]
fn stale_configs_or_offsets_change_nothing() {
    let p = policy(14);
    let now = T0 + 10 * DAY;
    let old = now - p.staleness.max_config_age.0 as i64 - 1;
    let c = input(3 * DAY, &[], old);
    let d = run(
        &p,
        &observe(now, 5_000, Some(now - 2 * DAY - 20 * HOUR), &c),
        now,
    );
    assert!(!d.extensions["in"].changed, "{:?}", d.extensions["in"]);
    // Extended, records unknown: held, never restored.
    let c = input(4 * DAY, &[], now);
    let mut obs = observe(now, 5_000, None, &c);
    obs.extensions.push(extended_record(3 * DAY, 4 * DAY));
    let d = run(&p, &obs, now);
    assert_eq!(
        d.extensions["in"].target,
        ExtensionTarget::Extended { ms: 4 * DAY }
    );
    assert!(!d.extensions["in"].changed);
}

#[test]
fn restores_once_every_group_is_three_margins_inside_the_original() {
    let p = policy(14);
    let now = T0 + 10 * DAY;
    let c = input(4 * DAY, &[], now);
    let restore = |oldest: Option<i64>, lag: i64| {
        let mut obs = observe(now, lag, oldest, &c);
        obs.extensions.push(extended_record(3 * DAY, 4 * DAY));
        run(&p, &obs, now).extensions["in"].clone()
    };
    // 2 days 6 hours old: + 18h = 3 days: restore.
    let e = restore(Some(now - 2 * DAY - 6 * HOUR), 5_000);
    assert_eq!(e.target, ExtensionTarget::Original, "{:?}", e.reasons);
    assert!(e.changed);
    // A minute older: held where it is.
    let e = restore(Some(now - 2 * DAY - 6 * HOUR - MIN), 5_000);
    assert_eq!(e.target, ExtensionTarget::Extended { ms: 4 * DAY });
    assert!(!e.changed);
    // Caught up: restore.
    assert_eq!(restore(None, 0).target, ExtensionTarget::Original);
    // A pending write: the target stands, but no new write until it settles.
    let mut obs = observe(now, 0, None, &c);
    let mut r = extended_record(3 * DAY, 4 * DAY);
    r.pending = Some(Some((4 * DAY).to_string()));
    obs.extensions.push(r);
    let e = run(&p, &obs, now).extensions["in"].clone();
    assert_eq!(e.target, ExtensionTarget::Original);
    assert!(!e.changed);
}

#[test]
fn drift_is_hands_off() {
    let p = policy(14);
    let now = T0 + 10 * DAY;
    let c = input(5 * DAY, &[], now);
    let mut obs = observe(now, 5_000, Some(now - 3 * DAY - 20 * HOUR), &c);
    let mut r = extended_record(3 * DAY, 4 * DAY);
    r.phase = JournalPhase::Drifted;
    obs.extensions.push(r);
    let e = &run(&p, &obs, now).extensions["in"];
    assert_eq!(e.target, ExtensionTarget::HandsOff);
    assert!(!e.changed);
}
