//! The input deadline by hand: segment timestamps, retention, rates; and loss counting.

use crate::observation::{
    ConfigSource, ConfigValue, GroupOffsets, Observation, PartitionOffsets, RecordTime,
    TimestampKind, TopicConfigs,
};
use crate::policy::config::OnConflict;
use crate::policy::{
    AlertCode, ControllerState, Decision, Gate, GroupPolicy, Policy, RateUnit, Severity, decide,
};
use crate::units::Timestamp;

const S: i64 = 1000;
const MIN: i64 = 60 * S;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Some moment in 2023.
const T0: i64 = 1_700_000_000_000;

fn policy(full_speed: f64) -> Policy {
    let mut p = Policy::default();
    p.groups.push(GroupPolicy {
        name: "ingest".into(),
        unit: RateUnit::Records,
        max_rate: Some(full_speed),
        min_rate: None,
        lag_threshold: None,
        priority: Default::default(),
        exempt: false,
    });
    p
}

fn configs(topic: &str, entries: &[(&str, &str)]) -> TopicConfigs {
    TopicConfigs {
        topic: topic.into(),
        configs: entries
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    ConfigValue {
                        value: Some(v.to_string()),
                        source: ConfigSource::Topic,
                    },
                )
            })
            .collect(),
        sampled_at: Timestamp(T0),
    }
}

/// The group's one partition of `in`: committed offset, log end, log start, and the timestamp of
/// the record at the committed offset.
#[derive(Clone, Copy)]
struct Part {
    committed: i64,
    log_end: i64,
    log_start: i64,
    at: Option<i64>,
}

fn observe(now: i64, disk: f64, part: Part, input: &TopicConfigs) -> Observation {
    let at = Timestamp(now);
    let mut obs = Observation::test();
    for b in 1..=3 {
        obs = obs.with_disk(b, disk, at).with_copy_lag(b, 0, at);
    }
    obs.groups.push(GroupOffsets {
        group: "ingest".into(),
        partitions: vec![PartitionOffsets {
            topic: input.topic.clone(),
            partition: 0,
            committed: Some(part.committed),
            log_end: part.log_end,
            log_start: Some(part.log_start),
            next_record: part.at.map(|t| RecordTime {
                offset: part.committed.max(part.log_start),
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

/// Two ticks a minute apart, the log end growing 100 records/s and the committed offset still
/// (the group held): the second decision, and the state after it.
fn held(
    p: &Policy,
    now: i64,
    disk: f64,
    part: Part,
    input: &TopicConfigs,
) -> (Decision, ControllerState) {
    let before = Part {
        log_end: part.log_end - 6_000,
        ..part
    };
    let (_, st) = decide(
        &observe(now - MIN, disk, before, input),
        p,
        &ControllerState::default(),
        &[],
        Timestamp(now - MIN),
    );
    decide(
        &observe(now, disk, part, input),
        p,
        &st,
        &[],
        Timestamp(now),
    )
}

/// When Kafka deletes the record at `offset`, by its rule: a segment goes once its newest
/// timestamp is older than `retention`, oldest segment first (a segment never goes before the
/// ones below it). `segments` are (base offset, newest timestamp), ascending.
fn kafka_deletes(segments: &[(i64, i64)], offset: i64, retention: i64) -> i64 {
    segments
        .iter()
        .take_while(|(base, _)| *base <= offset)
        .map(|(_, newest)| newest + retention)
        .max()
        .expect("the offset lies in a segment")
}

fn alerts(d: &Decision, code: AlertCode) -> Vec<(Severity, String)> {
    d.alerts
        .iter()
        .filter(|a| a.code == code)
        .map(|a| (a.severity, a.message.clone()))
        .collect()
}

/// Three segments of `in`:0 (newest timestamps T0+1h, T0+2h, T0+3h), retention 3 days; the group
/// committed offset 1 500, stamped T0+1h30m, in the second segment; 2 days later.
fn three_day_topic() -> (TopicConfigs, Part) {
    let input = configs("in", &[("retention.ms", &(3 * DAY).to_string())]);
    let part = Part {
        committed: 1_500,
        log_end: 20_001_500,
        log_start: 0,
        at: Some(T0 + 90 * MIN),
    };
    (input, part)
}

#[test]
fn the_deadline_is_the_record_time_plus_retention_never_after_kafka_deletes_it() {
    let (input, part) = three_day_topic();
    let now = T0 + 2 * DAY;
    let (d, _) = held(&policy(100_000.0), now, 50.0, part, &input);
    let g = &d.groups["ingest"];
    let dl = g.input.as_ref().expect("a deadline");
    // By hand: 1h30m + 3 days after T0.
    assert_eq!(dl.deadline, Some(Timestamp(T0 + 90 * MIN + 3 * DAY)));
    let segments = [
        (0, T0 + HOUR),
        (1_000, T0 + 2 * HOUR),
        (2_000, T0 + 3 * HOUR),
    ];
    let kafka = kafka_deletes(&segments, 1_500, 3 * DAY);
    assert_eq!(
        kafka,
        T0 + 2 * HOUR + 3 * DAY,
        "the second segment goes with its newest record"
    );
    assert!(dl.deadline.unwrap().0 <= kafka, "errs early, never late");
    assert_eq!(dl.headroom_secs, Some((DAY + 90 * MIN) as f64 / 1000.0));
    // Time lag: 2 days less 1h30m.
    assert_eq!(g.time_lag_secs, Some((2 * DAY - 90 * MIN) as f64 / 1000.0));
    // Margin 6h (a quarter of 3 days is more); allowed age 66h. Produce 100/s; lag 20 M.
    // Age 2 days less 1h30m = 167 400 s.
    // required = 100 + (20_000_000 - 100 * 167_400) / 237_600 = 113.72...
    assert_eq!(dl.margin_secs, 6.0 * 3600.0);
    let req = dl.required_rate.expect("measured");
    assert!(
        (req - (100.0 + 3_260_000.0 / 237_600.0)).abs() < 1e-6,
        "{req}"
    );
    // Slack: the allowed age less the age, 237 600 - 167 400 s.
    assert_eq!(dl.slack_secs, Some(70_200.0));
    assert!(
        alerts(&d, AlertCode::InputDeadline).is_empty(),
        "19h50m of slack"
    );
}

#[test]
fn the_deadline_holds_for_any_segment_layout_and_producer_clock() {
    // Segments whose records carry producer clocks out of order (CreateTime): whatever the layout,
    // the record's own time plus retention is never after Kafka's deletion of its segment.
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as i64
    };
    for _ in 0..500 {
        let n = 1 + next() % 6;
        let mut segments = Vec::new();
        let mut records = Vec::new();
        for s in 0..n {
            let times: Vec<i64> = (0..10).map(|_| T0 + next() % DAY).collect();
            for (i, t) in times.iter().enumerate() {
                records.push((s * 10 + i as i64, *t));
            }
            segments.push((s * 10, *times.iter().max().unwrap()));
        }
        let (offset, at) = records[(next() as usize) % records.len()];
        let input = configs("in", &[("retention.ms", &DAY.to_string())]);
        let part = Part {
            committed: offset,
            log_end: n * 10,
            log_start: 0,
            at: Some(at),
        };
        let now = T0 + DAY;
        let (d, _) = held(&policy(1_000.0), now, 50.0, part, &input);
        let deadline = d.groups["ingest"].input.as_ref().unwrap().deadline.unwrap();
        assert!(deadline.0 <= kafka_deletes(&segments, offset, DAY));
    }
}

#[test]
fn a_deadline_within_the_margin_warns_and_a_spent_margin_pages() {
    let (input, part) = three_day_topic();
    // 16 h later: slack 3h30m, within the 6h margin.
    let (d, _) = held(
        &policy(100_000.0),
        T0 + 2 * DAY + 16 * HOUR,
        50.0,
        part,
        &input,
    );
    let a = alerts(&d, AlertCode::InputDeadline);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].0, Severity::Warning);
    assert!(
        a[0].1.contains("in:0") && a[0].1.contains("3h30m"),
        "{}",
        a[0].1
    );
    // 21 h later: the age (67h30m) passed the allowed 66h: the margin is being spent.
    let (d, _) = held(
        &policy(100_000.0),
        T0 + 2 * DAY + 21 * HOUR,
        50.0,
        part,
        &input,
    );
    let a = alerts(&d, AlertCode::InputDeadline);
    assert_eq!(a[0].0, Severity::Critical, "{a:?}");
    let dl = d.groups["ingest"].input.clone().unwrap();
    assert_eq!(dl.slack_secs, Some(0.0));
    // The rate that stops the age growing: the backlog's density (20 M over 67h30m, 82.3/s), and
    // never below the produce rate (100/s).
    let density = 20_000_000.0 / (67.5 * 3600.0);
    assert!((dl.required_rate.unwrap() - 100f64.max(density)).abs() < 1e-6);
}

#[test]
fn a_group_that_cannot_make_it_even_at_full_speed_pages_with_no_slack() {
    let (input, part) = three_day_topic();
    // Full speed 110/s is below the 113.7/s the deadline needs.
    let (d, _) = held(&policy(110.0), T0 + 2 * DAY, 50.0, part, &input);
    assert_eq!(
        d.groups["ingest"].input.as_ref().unwrap().slack_secs,
        Some(0.0)
    );
    let a = alerts(&d, AlertCode::InputDeadline);
    assert_eq!(a[0].0, Severity::Critical);
    assert!(a[0].1.contains("even at full speed"), "{}", a[0].1);
}

/// Nine minutes of slack left (under the 15m throttle horizon): the floor binds.
fn binding_deadline() -> (TopicConfigs, Part, i64) {
    let (input, part) = three_day_topic();
    let age = 66 * HOUR - 9 * MIN;
    (input, part, T0 + 90 * MIN + age)
}

#[test]
fn at_the_pause_line_a_binding_deadline_pages_and_on_conflict_chooses() {
    let (input, part, now) = binding_deadline();
    let mut p = policy(1_000.0);
    let (d, _) = held(&p, now, 82.0, part, &input);
    assert_eq!(
        d.groups["ingest"].gate,
        Gate::Paused,
        "protect_disk is the default"
    );
    let c = alerts(&d, AlertCode::DeadlineConflict);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].0, Severity::Critical);
    assert!(
        c[0].1.contains("protect_disk") && c[0].1.contains("in:0"),
        "{}",
        c[0].1
    );
    p.input.on_conflict = OnConflict::ProtectInput;
    let (d, _) = held(&p, now, 82.0, part, &input);
    let req = d.groups["ingest"]
        .input
        .as_ref()
        .unwrap()
        .required_rate
        .unwrap();
    match d.groups["ingest"].gate {
        Gate::Throttled { rate, .. } => assert!((rate - req).abs() < 1e-9, "{rate} vs {req}"),
        ref g => panic!("protect_input keeps it running: {g:?}"),
    }
    assert_eq!(alerts(&d, AlertCode::DeadlineConflict).len(), 1);
}

#[test]
fn the_throttle_never_holds_a_binding_group_below_its_deadline_rate() {
    let (input, part, now) = binding_deadline();
    let p = policy(120.0);
    // Disks rising through the throttle zone: the law cuts hard.
    let mut st = ControllerState::default();
    let mut d = None;
    for i in 0..20 {
        let t = now - (20 - i) * MIN;
        let pt = Part {
            log_end: part.log_end - (20 - i) * 6_000,
            ..part
        };
        let (dd, s) = decide(
            &observe(t, 70.0 + 0.45 * i as f64, pt, &input),
            &p,
            &st,
            &[],
            Timestamp(t),
        );
        st = s;
        d = Some(dd);
    }
    let d = d.unwrap();
    let g = &d.groups["ingest"];
    let req = g.input.as_ref().unwrap().required_rate.unwrap();
    let law = st.groups["ingest"].fraction;
    assert!(
        law < req / 120.0,
        "the law itself cut below the floor: {law} vs {req}"
    );
    match g.gate {
        Gate::Throttled { rate, .. } => assert!(rate >= req - 1e-9, "{rate} < {req}"),
        Gate::Open => {}
        ref other => panic!("{other:?}"),
    }
    assert!(
        g.reasons.iter().any(|r| r.contains("input deadline needs")),
        "{:?}",
        g.reasons
    );
}

#[test]
fn records_deleted_before_they_were_consumed_are_counted_once_and_alerted() {
    let input = configs("in", &[("retention.ms", &HOUR.to_string())]);
    let p = policy(1_000.0);
    let mut st = ControllerState::default();
    let tick = |now: i64, committed: i64, log_start: i64, st: &mut ControllerState| {
        let part = Part {
            committed,
            log_end: 50_000,
            log_start,
            at: Some(now - 10 * MIN),
        };
        let (d, s) = decide(
            &observe(now, 50.0, part, &input),
            &p,
            st,
            &[],
            Timestamp(now),
        );
        *st = s;
        d
    };
    let d = tick(T0, 1_000, 500, &mut st);
    assert!(d.losses.is_empty() && alerts(&d, AlertCode::InputDataLost).is_empty());
    // The log start passes the committed offset: 800 records gone.
    let d = tick(T0 + MIN, 1_000, 1_800, &mut st);
    assert_eq!(d.losses.len(), 1);
    assert_eq!(
        (
            d.losses[0].committed,
            d.losses[0].log_start,
            d.losses[0].records
        ),
        (1_000, 1_800, 800)
    );
    assert_eq!(
        alerts(&d, AlertCode::InputDataLost)[0].0,
        Severity::Critical
    );
    // Still behind and the log start moves on: only the new 200 count.
    let d = tick(T0 + 2 * MIN, 1_000, 2_000, &mut st);
    assert_eq!(d.losses[0].records, 200);
    // Unchanged: nothing new, still alerted.
    let d = tick(T0 + 3 * MIN, 1_000, 2_000, &mut st);
    assert!(d.losses.is_empty());
    assert!(!alerts(&d, AlertCode::InputDataLost).is_empty());
    // The consumer resumed at the log start: no further loss; the alert stays for an hour.
    let d = tick(T0 + 4 * MIN, 2_500, 2_000, &mut st);
    assert!(d.losses.is_empty());
    assert_eq!(
        d.groups["ingest"].input.as_ref().unwrap().records_lost,
        1_000
    );
    assert!(!alerts(&d, AlertCode::InputDataLost).is_empty());
    let d = tick(
        T0 + 2 * MIN + super::LOSS_ALERT_FOR.0 as i64,
        2_600,
        2_000,
        &mut st,
    );
    assert!(alerts(&d, AlertCode::InputDataLost).is_empty());
    assert_eq!(
        st.groups["ingest"].records_lost["in"], 1_000,
        "the total persists in the state"
    );
}

#[test]
fn a_producer_clock_in_the_future_is_an_unknown_age_never_zero() {
    let input = configs("in", &[("retention.ms", &DAY.to_string())]);
    let part = Part {
        committed: 100,
        log_end: 10_000,
        log_start: 0,
        at: Some(T0 + 3 * HOUR),
    };
    let (d, _) = held(&policy(1_000.0), T0, 50.0, part, &input);
    let g = &d.groups["ingest"];
    assert_eq!(g.time_lag_secs, None, "unknown, not 0");
    let dl = g.input.as_ref().unwrap();
    assert_eq!(dl.deadline, None);
    assert!(
        dl.untracked
            .iter()
            .any(|u| u.contains("stamped in the future")),
        "{:?}",
        dl.untracked
    );
}

#[test]
fn size_retention_is_named_untracked_and_compacted_or_unlimited_inputs_have_no_deadline() {
    let part = Part {
        committed: 100,
        log_end: 10_000,
        log_start: 0,
        at: Some(T0 - HOUR),
    };
    let sized = configs(
        "in",
        &[
            ("retention.ms", &DAY.to_string()),
            ("retention.bytes", "1000000"),
        ],
    );
    let (d, _) = held(&policy(1_000.0), T0, 50.0, part, &sized);
    let dl = d.groups["ingest"].input.clone().unwrap();
    assert_eq!(
        dl.deadline,
        Some(Timestamp(T0 - HOUR + DAY)),
        "by time still"
    );
    assert!(
        dl.untracked[0].contains("retention.bytes"),
        "{:?}",
        dl.untracked
    );
    for entries in [
        vec![("cleanup.policy", "compact"), ("retention.ms", "3600000")],
        vec![("retention.ms", "-1")],
    ] {
        let (d, _) = held(&policy(1_000.0), T0, 50.0, part, &configs("in", &entries));
        let g = &d.groups["ingest"];
        assert_eq!(g.time_lag_secs, Some(3600.0));
        assert!(g.input.is_none(), "{entries:?}: {:?}", g.input);
    }
}
