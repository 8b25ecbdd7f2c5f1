//! Step 2b, inputs: how long each catch-up group's oldest unconsumed record has left before Kafka
//! may delete it, the consume rate that stays ahead of that deadline, and the records already lost
//! (DESIGN.md invariant 10).
//!
//! **Deadline.** A record of a `delete` topic is deleted no earlier than its own timestamp plus
//! `retention.ms`: Kafka deletes a whole segment once its *newest* record is older than that, and
//! only from the oldest segment on. So `timestamp + retention.ms` of the oldest record a group has
//! not consumed errs early, never late. `retention.bytes` is not tracked (sizes per partition need
//! DescribeLogDirs); a topic that sets it is named as untracked.
//!
//! **Model.** Per group, at the partition whose deadline binds (the least slack): `τ` the age of its
//! oldest unconsumed record, `A = retention.ms − margin` the age it may reach, `L` the group's lag,
//! `p` its produce rate and `R` its full speed. Taking the backlog as spread evenly over its time
//! span, consuming at a constant rate `r` keeps every record younger than `A` until the backlog is
//! gone exactly when `r ≥ p + max(0, L − p·τ)/A`: the **required rate**. Holding the group (even
//! paused) leaves `L − p·τ` unchanged and only ages the backlog, so it may be held for `A − τ` (the
//! **slack**) and still make it by running at full speed afterwards, provided `R` is at least the
//! required rate; otherwise the slack is 0. Skew between partitions is what the margin is for.
//!
//! **Loss.** A committed offset below the partition's log start means the records between them were
//! deleted before the group consumed them: counted once each (the state remembers up to where),
//! reported in the decision for the runtime to audit and count, and alerted.

use std::collections::BTreeMap;

use super::{Tick, alert};
use crate::observation::{GroupOffsets, Observation, TopicConfigs};
use crate::policy::AlertCode;
use crate::policy::config::GroupPolicy;
use crate::policy::decision::{InputDeadline, InputLoss, Severity};
use crate::policy::state::{ControllerState, GroupTrack};
use crate::units::{Dur, Timestamp};

/// How long `input_data_lost` stays raised after the last loss was counted.
pub const LOSS_ALERT_FOR: Dur = Dur::from_hours(1);

/// Each group's standing against its input deadline.
#[derive(Default)]
pub(super) struct InputView {
    /// Per group.
    pub(super) groups: BTreeMap<String, GroupInput>,
    /// Records lost this tick, every group.
    pub(super) losses: Vec<InputLoss>,
}

/// One group's time lag and deadline.
#[derive(Default)]
pub(super) struct GroupInput {
    /// Age of its oldest unconsumed record, seconds.
    pub(super) time_lag_secs: Option<f64>,
    /// Its deadline, when any input deletes.
    pub(super) deadline: Option<InputDeadline>,
    /// The rate the law may not hold the group below (except at the pause line), records/s: set
    /// once the slack is down to the throttle horizon.
    pub(super) floor: Option<f64>,
}

/// The binding partition of a group: the one with the least slack.
struct Binding {
    topic: String,
    partition: i32,
    /// Age of its oldest unconsumed record, s.
    age: f64,
    /// The age it may reach: retention minus margin, s.
    allowed: f64,
    /// When that record may be deleted.
    deadline: Timestamp,
    /// The margin, s.
    margin: f64,
}

/// Assesses every group's inputs; counts losses into the state.
pub(super) fn assess_inputs(
    st: &mut ControllerState,
    obs: &Observation,
    tick: &mut Tick,
) -> InputView {
    let mut view = InputView::default();
    for g in &tick.policy.groups {
        let Some(offsets) = obs.groups.iter().find(|o| o.group == g.name) else {
            continue;
        };
        let track = st.groups.entry(g.name.clone()).or_default();
        let losses = count_losses(track, offsets, tick);
        view.losses.extend(losses);
        let input = assess_group(g, track, offsets, &obs.inputs, tick);
        view.groups.insert(g.name.clone(), input);
    }
    view
}

/// One group: time lag, binding partition, required rate, slack, floor, alerts.
fn assess_group(
    g: &GroupPolicy,
    track: &GroupTrack,
    offsets: &GroupOffsets,
    inputs: &[TopicConfigs],
    tick: &mut Tick,
) -> GroupInput {
    let now = tick.now;
    let time_lag_secs = offsets.time_lag_ms(now).map(|ms| ms as f64 / 1000.0);
    let (binding, untracked) = binding(offsets, inputs, tick);
    let lag = offsets.total_lag().unwrap_or(0);
    let records_lost = track.records_lost.values().sum();
    let mut out = GroupInput {
        time_lag_secs,
        ..GroupInput::default()
    };
    let Some(b) = binding else {
        if records_lost > 0 || !untracked.is_empty() {
            out.deadline = Some(InputDeadline {
                topic: None,
                partition: None,
                deadline: None,
                headroom_secs: None,
                margin_secs: 0.0,
                required_rate: None,
                slack_secs: None,
                records_lost,
                untracked,
            });
        }
        return out;
    };
    let full_speed = g
        .max_rate
        .filter(|_| g.unit == crate::policy::RateUnit::Records);
    let full_speed = full_speed.or(track.reference_rate);
    let required = required_rate(lag as f64, track.produce_rate, b.age, b.allowed);
    let slack = match (required, full_speed) {
        _ if b.age >= b.allowed => 0.0,
        (Some(req), Some(full)) if full < req => 0.0,
        _ => b.allowed - b.age,
    };
    let headroom = b.deadline.0.saturating_sub(now.0) as f64 / 1000.0;
    if slack <= tick.policy.forecast.throttle_horizon.secs_f64() {
        out.floor = required;
    }
    deadline_alerts(g, &b, headroom, slack, required, full_speed, tick);
    out.deadline = Some(InputDeadline {
        topic: Some(b.topic),
        partition: Some(b.partition),
        deadline: Some(b.deadline),
        headroom_secs: Some(headroom),
        margin_secs: b.margin,
        required_rate: required,
        slack_secs: Some(slack),
        records_lost,
        untracked,
    });
    out
}

/// The rate that keeps every record younger than `allowed` until the backlog is gone (see the
/// module documentation); with the margin already spent, the rate that stops the age growing.
fn required_rate(lag: f64, produce: Option<f64>, age: f64, allowed: f64) -> Option<f64> {
    if lag <= 0.0 {
        return Some(0.0);
    }
    let p = produce?;
    if age >= allowed {
        return Some(p.max(if age > 0.0 { lag / age } else { lag }));
    }
    Some(p + (lag - p * age).max(0.0) / allowed)
}

/// The partition of `offsets` with the least slack, and what the deadline does not cover.
fn binding(
    offsets: &GroupOffsets,
    inputs: &[TopicConfigs],
    tick: &Tick,
) -> (Option<Binding>, Vec<String>) {
    let now = tick.now;
    let mut untracked = Vec::new();
    let mut unknown_times = 0;
    let mut best: Option<Binding> = None;
    let mut seen_topics = std::collections::BTreeSet::<&str>::new();
    // A group's partitions come topic by topic: look each topic's configs up once per run.
    let mut last: Option<(&str, Option<&TopicConfigs>)> = None;
    for p in offsets.partitions.iter().filter(|p| p.lag() > Some(0)) {
        let found = match last {
            Some((topic, found)) if topic == p.topic => found,
            _ => inputs.iter().find(|c| c.topic == p.topic),
        };
        last = Some((&p.topic, found));
        let Some(configs) = found else {
            if seen_topics.insert(&p.topic) {
                untracked.push(format!("{}: configs unknown", p.topic));
            }
            continue;
        };
        let cleanup = configs
            .configs
            .get("cleanup.policy")
            .and_then(|c| c.value.as_deref())
            .unwrap_or("delete");
        if !cleanup.contains("delete") {
            continue;
        }
        if configs.int("retention.bytes").is_some_and(|b| b >= 0) && seen_topics.insert(&p.topic) {
            untracked.push(format!(
                "{}: retention.bytes is set and not tracked (partition sizes need DescribeLogDirs); the deadline is by time only",
                p.topic
            ));
        }
        let Some(retention) = configs.retention_ms() else {
            continue;
        };
        let Some(record) = p.next_record else {
            unknown_times += 1;
            continue;
        };
        let Some(age_ms) = p.time_lag_ms(now) else {
            unknown_times += 1;
            continue;
        };
        let margin = tick.policy.input_margin_ms(retention);
        let (age, allowed) = (age_ms as f64 / 1000.0, (retention - margin) as f64 / 1000.0);
        if best
            .as_ref()
            .is_some_and(|x| allowed - age >= x.allowed - x.age)
        {
            continue;
        }
        best = Some(Binding {
            topic: p.topic.clone(),
            partition: p.partition,
            age,
            allowed,
            deadline: Timestamp(record.at.0.min(now.0).saturating_add(retention)),
            margin: margin as f64 / 1000.0,
        });
    }
    if unknown_times > 0 {
        untracked.push(format!(
            "{unknown_times} partition(s): the time of the oldest unconsumed record is unknown (not read yet, or stamped in the future)"
        ));
    }
    (best, untracked)
}

/// `input_deadline`: critical once the margin is being spent or full speed cannot make it,
/// warning once the slack is within the margin.
fn deadline_alerts(
    g: &GroupPolicy,
    b: &Binding,
    headroom: f64,
    slack: f64,
    required: Option<f64>,
    full_speed: Option<f64>,
    tick: &mut Tick,
) {
    let at = format!(
        "the oldest record of {}:{} it has not consumed is {} old and may be deleted in {} (at {})",
        b.topic,
        b.partition,
        secs(b.age),
        secs(headroom),
        b.deadline
    );
    let need = required.map_or("an unknown rate".into(), |r| format!("{r:.0} records/s"));
    let (severity, message) = if b.age >= b.allowed {
        (
            Severity::Critical,
            format!(
                "group {}: {at}: the {} margin is being spent; it needs {need} to stop it",
                g.name,
                secs(b.margin)
            ),
        )
    } else if let (Some(req), Some(full)) = (required, full_speed)
        && full < req
    {
        (
            Severity::Critical,
            format!(
                "group {}: {at}: even at full speed ({full:.0}/s) it cannot stay ahead: it needs {need}",
                g.name
            ),
        )
    } else if slack <= b.margin {
        (
            Severity::Warning,
            format!(
                "group {}: {at}: it may be held {} more, then it must consume at {need} or faster",
                g.name,
                secs(slack)
            ),
        )
    } else {
        return;
    };
    tick.alerts
        .push(alert(severity, AlertCode::InputDeadline, message));
}

/// Counts the records of `offsets` deleted before the group consumed them (each once), and raises
/// `input_data_lost` while any partition is behind its log start or a loss is recent.
fn count_losses(track: &mut GroupTrack, offsets: &GroupOffsets, tick: &mut Tick) -> Vec<InputLoss> {
    let mut out = Vec::new();
    let mut behind = Vec::new();
    let mut keys = std::collections::BTreeSet::new();
    for p in &offsets.partitions {
        let behind_now = matches!((p.committed, p.log_start), (Some(c), Some(s)) if c < s);
        if !behind_now && track.lost_through.is_empty() {
            // Nothing to count and nothing remembered to forget: no key to build (a tick looks at
            // every partition of every group).
            continue;
        }
        let key = format!("{}:{}", p.topic, p.partition);
        let (Some(committed), Some(log_start)) = (p.committed, p.log_start) else {
            keys.insert(key);
            continue;
        };
        if track.lost_through.get(&key).is_some_and(|t| log_start < *t) {
            // The log start went back: the partition was recreated; count afresh.
            track.lost_through.remove(&key);
        }
        if committed >= log_start {
            track.lost_through.remove(&key);
            continue;
        }
        keys.insert(key.clone());
        behind.push(format!(
            "{key} (committed {committed}, log start {log_start})"
        ));
        let from = committed.max(track.lost_through.get(&key).copied().unwrap_or(committed));
        if log_start > from {
            let records = log_start - from;
            *track.records_lost.entry(p.topic.clone()).or_default() += records;
            track.lost_through.insert(key, log_start);
            track.last_loss_at = Some(tick.now);
            out.push(InputLoss {
                group: offsets.group.clone(),
                topic: p.topic.clone(),
                partition: p.partition,
                committed,
                log_start,
                records,
            });
        }
    }
    track.lost_through.retain(|k, _| keys.contains(k));
    let recent = track
        .last_loss_at
        .is_some_and(|at| tick.now.since(at) < LOSS_ALERT_FOR);
    if !behind.is_empty() || recent {
        let total: i64 = track.records_lost.values().sum();
        let now_lost: i64 = out.iter().map(|l| l.records).sum();
        tick.alerts.push(alert(
            Severity::Critical,
            AlertCode::InputDataLost,
            format!(
                "group {}: input records were deleted before it consumed them: {now_lost} this tick, {total} counted in all{}",
                offsets.group,
                if behind.is_empty() {
                    String::new()
                } else {
                    format!("; behind the log start: {}", behind.join(", "))
                }
            ),
        ));
    }
    out
}

/// Seconds in words (`3h12m`, `-5m`).
fn secs(s: f64) -> String {
    if s < 0.0 {
        format!("-{}", Dur((-s * 1000.0) as u64))
    } else {
        Dur((s * 1000.0) as u64).to_string()
    }
}

#[cfg(test)]
mod tests;
