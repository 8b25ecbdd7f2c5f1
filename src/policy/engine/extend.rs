//! Step 6, extension: raising `retention.ms` of an input topic the policy allow-lists
//! (`[[input.extend]]`) instead of letting a held backlog age out, and restoring it.
//!
//! For each catch-up group reading the topic: `τ` the age of its oldest unconsumed record there and
//! `D` the forecast time to drain its backlog at its current rates (0 while it is not draining:
//! then the extension is renewed as the backlog ages). The topic needs `retention.ms ≥ τ + D +
//! 2·margin` (so after the drain a whole margin of slack is left and the deadline alert stays
//! quiet). When it has less, catchup raises it to the largest need plus one more margin (so the
//! next raise is at least a margin away), rounded up to the hour and never above the cap; only
//! ever up. Once every group's `τ + 3·margin` is within the original, it is restored exactly: the
//! restore then deletes nothing a group has not consumed, with a margin to spare against flapping.
//! Only where the raise grows the remote store alone (tiered, `delete`, its own local window):
//! otherwise the brokers' disks would keep the extra data, so it is refused with the reason and
//! alerted. Stale configs or offsets never change a config (invariant 6): the decision holds.

use std::collections::BTreeMap;

use super::{Tick, alert};
use crate::observation::{JournalPhase, Observation, RetentionRecord, TopicConfigs};
use crate::policy::AlertCode;
use crate::policy::config::ExtendPolicy;
use crate::policy::decision::{ExtensionDecision, ExtensionTarget, Severity};
use crate::policy::state::ControllerState;
use crate::units::Dur;

const HOUR_MS: i64 = 3_600_000;

/// What the groups reading one topic need from its retention.
struct Need {
    /// The largest `τ + D + 2·margin`, ms; `None` when nothing is behind.
    need_ms: Option<i64>,
    /// The largest age of an unconsumed record, ms (for the restore).
    oldest_age_ms: Option<i64>,
    /// Every group's age is known.
    known: bool,
    /// Why, per group.
    reasons: Vec<String>,
}

/// Every allow-listed input topic's decision.
pub(super) fn extension_decisions(
    st: &ControllerState,
    obs: &Observation,
    tick: &mut Tick,
) -> BTreeMap<String, ExtensionDecision> {
    let mut out = BTreeMap::new();
    for e in &tick.policy.input.extend {
        let Some(configs) = obs.inputs.iter().find(|c| c.topic == e.topic) else {
            continue;
        };
        let record = obs.extensions.iter().find(|r| r.topic == e.topic);
        let d = decide_one(e, configs, record, st, obs, tick);
        out.insert(e.topic.clone(), d);
    }
    out
}

fn decide_one(
    e: &ExtendPolicy,
    configs: &TopicConfigs,
    record: Option<&RetentionRecord>,
    st: &ControllerState,
    obs: &Observation,
    tick: &mut Tick,
) -> ExtensionDecision {
    let current = configs.retention_ms();
    let open = record.filter(|r| r.phase.is_open());
    let original = open.map_or(current, |r| r.original.effective_ms);
    let mut d = ExtensionDecision {
        target: ExtensionTarget::HandsOff,
        changed: false,
        current_ms: current,
        original_ms: original,
        reasons: Vec::new(),
    };
    if let Some(r) = open.filter(|r| r.phase == JournalPhase::Drifted) {
        d.reasons.push(format!("hands off: {}", r.reason));
        return d;
    }
    if tick.now.since(configs.sampled_at) > tick.policy.staleness.max_config_age {
        d.reasons
            .push("topic configs stale: no config change (invariant 6)".into());
        return d;
    }
    let (Some(current), Some(original)) = (current, original) else {
        d.reasons
            .push("retention.ms is unlimited or unreadable: nothing to extend".into());
        return d;
    };
    let margin = tick.policy.input_margin_ms(original);
    let need = needs(&e.topic, st, obs, margin, tick);
    let extended = open.is_some() && current != original;
    let target = match need.need_ms {
        Some(n) if n > current => {
            if let Some(why) = configs.extension_blocker() {
                tick.alerts.push(alert(
                    Severity::Warning,
                    AlertCode::TopicNotTiered,
                    format!(
                        "input topic {}: its retention.ms would need {} but is not extended: {why}",
                        e.topic,
                        Dur(n as u64)
                    ),
                ));
                d.reasons.push(format!("never extended: {why}"));
                return d;
            }
            let cap = e.max_retention.0 as i64;
            let want = round_up_hour(n + margin);
            if want > cap {
                tick.alerts.push(alert(
                    Severity::Warning,
                    AlertCode::InputDeadline,
                    format!(
                        "input topic {}: retention.ms would need {} to keep the catch-up groups ahead of deletion; capped at {} (input.extend.max_retention)",
                        e.topic,
                        Dur(want as u64),
                        Dur(cap as u64)
                    ),
                ));
            }
            let ms = want.min(cap).max(current);
            d.reasons.push(format!(
                "raise retention.ms to {} (from {}): {}",
                Dur(ms as u64),
                Dur(current as u64),
                need.reasons.join("; ")
            ));
            ExtensionTarget::Extended { ms }
        }
        _ if extended && may_restore(&need, original, margin) => {
            d.reasons.push(format!(
                "restore retention.ms to {}: every catch-up group is within it by three margins{}",
                Dur(original as u64),
                need.oldest_age_ms.map_or(String::new(), |a| format!(
                    " (oldest unconsumed {} old)",
                    Dur(a as u64)
                ))
            ));
            ExtensionTarget::Original
        }
        _ if extended => {
            d.reasons
                .push("held extended: a catch-up group still needs it".into());
            ExtensionTarget::Extended { ms: current }
        }
        _ => return d,
    };
    let pending = open.is_some_and(|r| r.pending.is_some());
    let at_target = match &target {
        ExtensionTarget::Extended { ms } => *ms == current,
        ExtensionTarget::Original => current == original,
        ExtensionTarget::HandsOff => true,
    };
    d.changed = !at_target && !pending;
    d.target = target;
    d
}

/// Whether restoring the original deletes nothing a group has not consumed, with three margins.
fn may_restore(need: &Need, original: i64, margin: i64) -> bool {
    need.known
        && need
            .oldest_age_ms
            .is_none_or(|a| a + 3 * margin <= original)
}

/// What the catch-up groups reading `topic` need: per group `τ + D + 2·margin`.
fn needs(topic: &str, st: &ControllerState, obs: &Observation, margin: i64, tick: &Tick) -> Need {
    let mut need = Need {
        need_ms: None,
        oldest_age_ms: None,
        known: true,
        reasons: Vec::new(),
    };
    for g in &obs.groups {
        if tick.now.since(g.sampled_at) > tick.policy.staleness.max_lag_age {
            need.known = false;
            need.reasons
                .push(format!("group {}: offsets stale, need unknown", g.group));
            continue;
        }
        let parts: Vec<_> = g
            .partitions
            .iter()
            .filter(|p| p.topic == topic && p.lag() != Some(0))
            .collect();
        if parts.is_empty() {
            continue;
        }
        let ages: Option<Vec<i64>> = parts.iter().map(|p| p.time_lag_ms(tick.now)).collect();
        let Some(age) = ages.and_then(|a| a.into_iter().max()) else {
            need.known = false;
            need.reasons.push(format!(
                "group {}: the age of its oldest record here is unknown",
                g.group
            ));
            continue;
        };
        let track = st.groups.get(&g.group);
        let drain_ms = match (
            g.total_lag(),
            track.and_then(|t| t.consume_rate),
            track.and_then(|t| t.produce_rate),
        ) {
            (Some(l), Some(c), Some(p)) if c > p => Some((l as f64 / (c - p) * 1000.0) as i64),
            _ => None,
        };
        let n = age + drain_ms.unwrap_or(0) + 2 * margin;
        need.reasons.push(format!(
            "group {}: oldest unconsumed {} old, {}",
            g.group,
            Dur(age as u64),
            drain_ms.map_or("not draining".to_string(), |d| format!(
                "drained in {}",
                Dur(d as u64)
            ))
        ));
        need.need_ms = Some(need.need_ms.map_or(n, |m| m.max(n)));
        need.oldest_age_ms = Some(need.oldest_age_ms.map_or(age, |m| m.max(age)));
    }
    need
}

fn round_up_hour(ms: i64) -> i64 {
    (ms + HOUR_MS - 1) / HOUR_MS * HOUR_MS
}

#[cfg(test)]
mod tests;
