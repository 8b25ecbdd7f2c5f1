//! Step 5, retention: lower managed topics' `local.retention.ms` stepwise on a long-horizon forecast,
//! restore them (in one write) once the backlog has drained, and keep hands off a topic someone else
//! changed.

use std::collections::BTreeMap;

use super::disks::DiskView;
use super::{Tick, alert};
use crate::observation::{ConfigSource, JournalPhase, Observation, RetentionRecord, TopicConfigs};
use crate::policy::AlertCode;
use crate::policy::config::Policy;
use crate::policy::decision::{RetentionTarget, Severity, TopicDecision};
use crate::policy::state::{ControllerState, OriginalRetention, TopicTrack};
use crate::units::{Dur, Timestamp};

/// Every managed topic's decision (alerting on stale configs, drift, untiered topics, blocked
/// lowering and every topic at its floor).
pub(super) fn retention_decisions(
    st: &mut ControllerState,
    obs: &Observation,
    disks: &DiskView,
    drained: bool,
    tick: &mut Tick,
) -> BTreeMap<String, TopicDecision> {
    let p = tick.policy;
    if let Some(records) = &obs.retention {
        follow_journal(st, records, p);
    }
    super::restore::watch(st, disks, obs, drained, tick.now, p);
    let outlook = Outlook::new(st, obs, disks, drained, tick);
    let mut out = BTreeMap::new();
    let mut at_floor = Vec::new();
    for managed in &p.retention.topics {
        let name = &managed.name;
        let track = st.topics.entry(name.clone()).or_default();
        let configs = obs.topics.iter().find(|t| &t.topic == name);
        let mut topic = Topic::new(name, track, configs);
        if let Some(configs) = topic.admit(configs, tick) {
            if topic.step(configs, &outlook, tick) {
                at_floor.push(name.clone());
            }
            topic.settle(tick.now);
        }
        out.insert(name.clone(), topic.decision);
    }
    if !at_floor.is_empty() && at_floor.len() == p.retention.topics.len() {
        tick.alerts.push(alert(
            Severity::Warning,
            AlertCode::RetentionAtFloor,
            format!(
                "every managed topic is at its floor ({}): only the throttle is left",
                at_floor.join(", ")
            ),
        ));
    }
    out
}

/// Follows the retention journal, the one record of originals (DESIGN.md invariant 9): a topic with
/// an open entry has the journal's original and, once its writes are settled, the journal's value;
/// a drifted one is hands off until a person adopts its value; a topic the journal has nothing open
/// for has nothing of the controller's on it, whatever the engine's own memory says (a dry run, a
/// state file older than the last write, a restore by the runbook).
fn follow_journal(st: &mut ControllerState, records: &[RetentionRecord], p: &Policy) {
    for managed in &p.retention.topics {
        let track = st.topics.entry(managed.name.clone()).or_default();
        let open = records
            .iter()
            .find(|r| r.topic == managed.name && r.phase.is_open());
        match open {
            Some(r) => {
                let original_value = match r.original.source {
                    ConfigSource::Topic => r.original.value.clone(),
                    ConfigSource::Inherited => None,
                };
                track.original = Some(r.original.clone());
                track.hands_off = (r.phase == JournalPhase::Drifted).then(|| r.reason.clone());
                if r.pending.is_none() {
                    track.lowered_ms = if r.value == original_value {
                        None
                    } else {
                        r.value.as_deref().and_then(|v| v.trim().parse().ok())
                    };
                }
            }
            None => {
                if track.original.is_some() || track.lowered_ms.is_some() {
                    track.original = None;
                    track.lowered_ms = None;
                    track.previous_ms = None;
                }
                track.hands_off = None;
            }
        }
    }
}

/// What this tick's disks and backlog say about every managed topic.
struct Outlook {
    /// Why retention may not be lowered now, if it may not.
    blocked: Option<String>,
    /// Why retention should be lowered, if it should.
    pressure: Option<String>,
    /// Why lowering is truly needed (a forecast crossing the pause line), if it is: once a restore
    /// has begun in this backlog event, only this lowers again (hysteresis).
    urgent: Option<String>,
    /// Whether restoring every lowered topic keeps the 24 h forecast under the pause line, and why.
    restore: Result<String, String>,
    /// The backlog has drained.
    drained: bool,
    /// Every known broker has a fresh disk reading.
    fresh: bool,
}

impl Outlook {
    /// Reads the outlook off the disks, the copy lag and the refills under way.
    fn new(
        st: &ControllerState,
        obs: &Observation,
        disks: &DiskView,
        drained: bool,
        tick: &Tick,
    ) -> Outlook {
        let (p, now) = (tick.policy, tick.now);
        let blocked = super::copy_lag::lowering_blocked(obs, disks, p, now);
        // Raising local retention from R to R' stops deletion of managed data until the oldest data
        // left is older than R': the disk grows by the managed topics' write rate until then, then
        // levels off. A straight-line forecast over the whole lead time would read that as a surge
        // and lower again, so while refilling the forecast looks no further than the refill's end.
        let refill_left = st
            .topics
            .values()
            .filter_map(|t| t.refill_until)
            .map(|until| until.since(now))
            .max()
            .unwrap_or_default();
        let start = p.disk.throttle_start_percent;
        let lead = p.retention.lead_time;
        let pressure = retention_pressure(disks, lead, refill_left, start, start);
        let urgent = retention_pressure(
            disks,
            p.forecast.throttle_horizon.min(lead),
            refill_left,
            p.disk.pause_percent,
            p.disk.ceiling_percent,
        );
        let restore = super::restore::restore_safe(st, disks, p, tick.now);
        Outlook {
            blocked,
            pressure,
            urgent,
            restore,
            drained,
            fresh: disks.all_fresh,
        }
    }
}

/// One managed topic while its decision is made.
struct Topic<'a> {
    /// The topic's name.
    name: &'a str,
    /// What the engine remembers about it.
    track: &'a mut TopicTrack,
    /// The decision so far: hold what was last decided, unless a step below changes it.
    decision: TopicDecision,
}

impl<'a> Topic<'a> {
    /// Starts with holding what was last decided.
    fn new(name: &'a str, track: &'a mut TopicTrack, configs: Option<&TopicConfigs>) -> Topic<'a> {
        let current_ms = configs.and_then(TopicConfigs::effective_local_retention_ms);
        let original_ms =
            track
                .original
                .as_ref()
                .and_then(|o| o.effective_ms)
                .or(if track.original.is_none() {
                    current_ms
                } else {
                    None
                });
        let decision = TopicDecision {
            target: held_target(track),
            changed: false,
            current_ms,
            original_ms,
            reasons: Vec::new(),
        };
        Topic {
            name,
            track,
            decision,
        }
    }

    /// The topic's configs if the engine may act on the topic this tick; otherwise `None`, with the
    /// decision saying why: hands off, configs missing or stale, drift, not tiered, or an override.
    fn admit<'c>(
        &mut self,
        configs: Option<&'c TopicConfigs>,
        tick: &mut Tick,
    ) -> Option<&'c TopicConfigs> {
        let (p, now, name) = (tick.policy, tick.now, self.name);
        let (track, decision) = (&mut *self.track, &mut self.decision);
        if let Some(why) = &track.hands_off {
            decision.target = RetentionTarget::HandsOff;
            decision.reasons.push(why.clone());
            return None;
        }
        let Some(configs) =
            configs.filter(|c| now.since(c.sampled_at) <= p.staleness.max_config_age)
        else {
            decision
                .reasons
                .push("topic configs missing or stale: no change".into());
            tick.alerts.push(alert(
                Severity::Warning,
                AlertCode::TopicConfigStale,
                format!("topic {name}: configs missing or stale"),
            ));
            return None;
        };
        // With a journal, drift is the journal's finding (it knows every write, pending ones too,
        // and `follow_journal` has made the topic hands off); without one, the engine judges.
        let drift = if tick.journal {
            None
        } else {
            detect_drift(track, configs)
        };
        if let Some(why) = drift {
            tick.alerts.push(alert(
                Severity::Critical,
                AlertCode::DriftDetected,
                format!("topic {name}: {why}"),
            ));
            track.hands_off = Some(why.clone());
            decision.target = RetentionTarget::HandsOff;
            decision.reasons.push(why);
            return None;
        }
        if !configs.remote_storage_enabled() {
            let why = "remote.storage.enable is not true: lowering local retention would delete data that exists nowhere else; refusing";
            tick.alerts.push(alert(
                Severity::Warning,
                AlertCode::TopicNotTiered,
                format!("topic {name}: {why}"),
            ));
            decision.target = if track.lowered_ms.is_some() {
                held_target(track)
            } else {
                RetentionTarget::HandsOff
            };
            decision.reasons.push(why.into());
            return None;
        }
        if let Some(o) = tick
            .overrides
            .iter()
            .filter(|o| o.covers_topic(name, now))
            .max_by_key(|o| o.created_at)
        {
            decision.reasons.push(o.describe());
            return None;
        }
        Some(configs)
    }

    /// Lowers, restores or holds the topic as the outlook asks; returns whether it is at its floor.
    fn step(&mut self, configs: &TopicConfigs, outlook: &Outlook, tick: &mut Tick) -> bool {
        let name = self.name;
        let pressure = if self.track.restored_in_event {
            &outlook.urgent
        } else {
            &outlook.pressure
        };
        match (pressure, &outlook.blocked, self.decision.current_ms) {
            (Some(why), None, Some(current)) => return self.lower(configs, current, why, tick),
            (Some(why), Some(block), _) => {
                self.decision.reasons.push(format!("{why}, but {block}"));
                tick.alerts.push(alert(
                    Severity::Warning,
                    AlertCode::RetentionBlocked,
                    format!("topic {name}: {why}, but {block}"),
                ));
            }
            (Some(why), None, None) => {
                self.decision.reasons.push(format!("{why}, but the topic's local retention is unlimited: set a finite local.retention.ms"));
            }
            (None, _, _) if self.track.lowered_ms.is_some() => self.restore(outlook, tick),
            (None, _, _) => self
                .decision
                .reasons
                .push("no disk pressure: original setting".into()),
        }
        false
    }

    /// Lowers local retention one step from `current` towards the floor, unless the last step is too
    /// recent to have shown its effect; returns whether the topic is at its floor.
    fn lower(&mut self, configs: &TopicConfigs, current: i64, why: &str, tick: &Tick) -> bool {
        let (p, now) = (tick.policy, tick.now);
        let floor = p.floor_ms(self.name);
        let total = configs.retention_ms();
        let since_step = self.track.last_step_at.map(|t| now.since(t));
        let original = self
            .track
            .original
            .as_ref()
            .and_then(|o| o.effective_ms)
            .unwrap_or(current);
        let mut next = ((current as f64) * step_factor(p, original, floor)).floor() as i64;
        next = next.max(floor);
        if let Some(total) = total {
            next = next.min(total);
        }
        let (track, decision) = (&mut *self.track, &mut self.decision);
        if since_step.is_some_and(|s| s < p.retention.step_interval) {
            decision.reasons.push(format!(
                "{why}; waiting for the last step to take effect ({} of {})",
                since_step.unwrap_or_default(),
                p.retention.step_interval
            ));
            false
        } else if next >= current {
            let note =
                if decision.original_ms.is_some_and(|o| o <= floor) && track.original.is_none() {
                    format!(
                        "original local retention {} is at or below the floor {}: never lowered",
                        Dur(current as u64),
                        Dur(floor as u64)
                    )
                } else {
                    format!("at the floor of {}", Dur(floor as u64))
                };
            decision.reasons.push(format!("{why}; {note}"));
            true
        } else {
            remember_lowering(track, configs, (current, next), now, p.forecast.window);
            decision.target = RetentionTarget::Lowered { ms: next };
            decision.changed = true;
            decision.original_ms = track.original.as_ref().and_then(|o| o.effective_ms);
            decision.reasons.push(format!(
                "{why}: lowering local.retention.ms from {} to {} (floor {})",
                Dur(current as u64),
                Dur(next as u64),
                Dur(floor as u64)
            ));
            false
        }
    }

    /// Restores a lowered topic to its original (one write) when the backlog has drained and the
    /// restore forecast is safe (`restore::restore_safe`).
    fn restore(&mut self, outlook: &Outlook, tick: &Tick) {
        let (p, now) = (tick.policy, tick.now);
        let (track, decision) = (&mut *self.track, &mut self.decision);
        let since_step = track.last_step_at.map(|t| now.since(t));
        let Some(lowered) = track.lowered_ms else {
            return;
        };
        let restore_wait =
            Dur(p.retention.restore_step_interval.0 << track.restore_setbacks.min(4));
        if !outlook.fresh {
            decision
                .reasons
                .push("holding the lowered value: disk data is stale, no config change".into());
        } else if !outlook.drained {
            decision
                .reasons
                .push("holding the lowered value until the backlog has drained".into());
        } else if let Err(why) = &outlook.restore {
            decision
                .reasons
                .push(format!("drained; holding the lowered value: {why}"));
        } else if since_step.is_some_and(|s| s < restore_wait) {
            decision.reasons.push(format!(
                "drained and safe to restore; the restore comes {} after the last step",
                restore_wait
            ));
        } else {
            // One write back to the original: the restore forecast already counts the refill of
            // the whole original window, so steps in between would add writes, not safety (a
            // window refills over its own length whatever the steps, and a wrong forecast is
            // caught by the hysteresis's lowering at the pause line).
            track.restored_in_event = true;
            let original = track.original.as_ref().and_then(|o| o.effective_ms);
            // The oldest managed data still on disk: nothing is deleted until it is older than the new
            // window, so the window refills until then (plus one forecast window, until the trend no
            // longer includes refill samples).
            let oldest = super::restore::oldest_refilling(track, lowered, p.forecast.window, now)
                .unwrap_or(now - Dur(lowered.max(0) as u64));
            track.previous_ms = Some(lowered);
            track.last_step_at = Some(now);
            track.lowered_ms = None;
            track.refill_until =
                original.map(|o| oldest + Dur(o.max(0) as u64) + p.forecast.window);
            decision.changed = true;
            decision.target = RetentionTarget::Original;
            decision.reasons.push(format!(
                "drained, {}: restoring the original setting",
                restore_why(outlook)
            ));
        }
    }

    /// Forgets what the engine no longer needs to remember about the topic.
    fn settle(&mut self, now: Timestamp) {
        let track = &mut *self.track;
        if track.lowered_ms.is_none()
            && track
                .original
                .as_ref()
                .is_some_and(|o| o.effective_ms == self.decision.current_ms)
        {
            // Back at the original and confirmed by the cluster: nothing of ours is left on the topic.
            track.original = None;
            track.previous_ms = None;
        }
        if track.original.is_none() && track.refill_until.is_some_and(|until| until <= now) {
            // Fully restored and the window has refilled without trouble: forget the setbacks.
            track.refill_until = None;
            track.restore_setbacks = 0;
        }
    }
}

/// Lowering steps from the original to the floor at most: with the restore's one write, one
/// lower-and-restore cycle is at most four config writes per topic.
const MAX_LOWERING_STEPS: i32 = 3;

/// The factor of a lowering step: `retention.step_factor`, or deeper where that many steps would
/// not reach the floor from `original` within [`MAX_LOWERING_STEPS`] (a 7 d original takes steps
/// of about ×0.18, not eight halvings).
fn step_factor(p: &Policy, original: i64, floor: i64) -> f64 {
    let factor = p.retention.step_factor;
    let depth = floor as f64 / original.max(1) as f64;
    let steps = depth.ln() / factor.ln();
    if steps <= f64::from(MAX_LOWERING_STEPS) + 1e-9 {
        factor
    } else {
        // A hair under the exact root, so rounding never leaves a fourth step of a millisecond.
        depth.powf(1.0 / f64::from(MAX_LOWERING_STEPS)) * (1.0 - 1e-9)
    }
}

/// Why the restore is safe, for the decision's reasons.
fn restore_why(outlook: &Outlook) -> &str {
    outlook.restore.as_deref().unwrap_or("")
}

/// What to hold a topic at when nothing changes: the value last decided.
fn held_target(track: &TopicTrack) -> RetentionTarget {
    track
        .lowered_ms
        .map_or(RetentionTarget::Original, |ms| RetentionTarget::Lowered {
            ms,
        })
}

/// Records a step down from `current` to `next`: the original on the first step, a setback if the
/// step undoes a refill still under way (and what is left of that refill), and the new value.
fn remember_lowering(
    track: &mut TopicTrack,
    configs: &TopicConfigs,
    (current, next): (i64, i64),
    now: Timestamp,
    window: Dur,
) {
    if track.original.is_none() {
        let raw = configs.configs.get("local.retention.ms");
        track.original = Some(OriginalRetention {
            value: raw.and_then(|c| c.value.clone()),
            source: raw.map_or(ConfigSource::Inherited, |c| c.source),
            effective_ms: Some(current),
        });
    }
    // Lowered while a restore still refills: the oldest data on disk stays where it was (written
    // `until - window - current`), so the narrower window still refills until it is `next` old
    // (if it is not already): the restore forecast counts what is still to come from there.
    let refilling = super::restore::oldest_refilling(track, current, window, now);
    if refilling.is_some() {
        track.restore_setbacks = (track.restore_setbacks + 1).min(4);
    }
    track.refill_until = refilling
        .map(|oldest| oldest + Dur(next.max(0) as u64) + window)
        .filter(|t| *t > now);
    track.previous_ms = track.lowered_ms;
    track.lowered_ms = Some(next);
    track.last_step_at = Some(now);
}

/// Whether some broker is at or above `at` or forecast to cross `ahead` within `lead` (or, while a
/// window refills after a restore, within what is left of the refill). Both marks are the
/// throttle start and `lead` the retention lead time; once a restore has begun in this backlog event,
/// the pause line and the ceiling within the throttle horizon (hysteresis: only a disk that truly
/// needs it lowers again).
fn retention_pressure(
    disks: &DiskView,
    lead: Dur,
    refill_left: Dur,
    at: f64,
    ahead: f64,
) -> Option<String> {
    let name = if at == ahead {
        "the throttle start"
    } else {
        "the pause line"
    };
    let lead = if refill_left.0 > 0 {
        refill_left.min(lead)
    } else {
        lead
    };
    let horizon = lead.secs_f64();
    disks.fresh.iter().find_map(|b| {
        let (broker, level) = (b.broker, b.percent);
        let g = b.slope.unwrap_or(0.0);
        if level >= at {
            Some(format!(
                "broker {broker} at {level:.1}%, above {name} of {at}%"
            ))
        } else if g > 0.0 && level + g * horizon >= ahead {
            Some(format!(
                "broker {broker} at {level:.1}% rising {:.1}%/h: forecast to cross {}% within {}",
                g * 3600.0,
                ahead,
                lead
            ))
        } else {
            None
        }
    })
}

/// Someone else changed a topic the engine lowered: the observed value is neither the original nor a
/// value the engine asked for (the last or the one before, which the actuator may still be applying).
fn detect_drift(track: &TopicTrack, configs: &TopicConfigs) -> Option<String> {
    let original = track.original.as_ref()?;
    let observed = configs.effective_local_retention_ms();
    let ours = [track.lowered_ms, track.previous_ms, original.effective_ms];
    if ours.contains(&observed) {
        return None;
    }
    let show = |v: Option<i64>| {
        v.map_or("unlimited".to_string(), |ms| {
            Dur(ms.max(0) as u64).to_string()
        })
    };
    Some(format!(
        "local.retention.ms is {} but the controller set {}: changed by someone else; not touching this topic again \
         (original was {}; restore it by hand or with `catchup retention restore`)",
        show(observed),
        show(track.lowered_ms.or(original.effective_ms)),
        show(original.effective_ms)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the steps from `original` land, applied as `lower` applies them (floored to the
    /// millisecond, never below the floor).
    fn steps(original: i64, floor: i64) -> Vec<i64> {
        let p = Policy::default();
        let (mut current, mut out) = (original, Vec::new());
        loop {
            let next =
                (((current as f64) * step_factor(&p, original, floor)).floor() as i64).max(floor);
            if next >= current {
                return out;
            }
            out.push(next);
            current = next;
        }
    }

    /// One lower-and-restore cycle is at most 4 writes whatever the original: never more than three
    /// steps down to the floor, halving where three halvings reach it.
    #[test]
    fn lowering_reaches_the_floor_in_at_most_three_steps() {
        let hour = 3_600_000;
        assert_eq!(steps(6 * hour, hour), [3 * hour, 3 * hour / 2, hour]);
        assert_eq!(steps(2 * hour, hour), [hour]);
        assert_eq!(steps(8 * hour, hour), [4 * hour, 2 * hour, hour]);
        for original in [
            9 * hour,
            24 * hour,
            7 * 24 * hour,
            365 * 24 * hour,
            i64::MAX / 2,
        ] {
            let s = steps(original, hour);
            assert_eq!(s.len(), 3, "{original}: {s:?}");
            assert_eq!(s.last(), Some(&hour), "{original}: {s:?}");
            assert!(s.windows(2).all(|w| w[1] < w[0]), "{s:?}");
        }
        // A week: about ×0.18 a step (7 d, 30.2 h, 5.5 h, 1 h).
        let week = steps(7 * 24 * hour, hour);
        assert!((30 * hour..31 * hour).contains(&week[0]), "{week:?}");
        assert!((5 * hour..6 * hour).contains(&week[1]), "{week:?}");
        assert!(steps(hour, hour).is_empty());
    }

    /// Restored from 1 h to a 6 h original ten minutes ago, then lowered again to 2 h: the oldest
    /// data on disk is still 1 h 10 m old, so the 2 h window refills for 50 more minutes (plus one
    /// forecast window) and the restore forecast counts the refill from 1 h 10 m, not from 2 h.
    /// A setback is counted.
    #[test]
    fn lowering_mid_refill_keeps_what_is_left_of_the_refill() {
        let p = Policy::default();
        let hour = 3_600_000;
        let now = Timestamp(10 * 24 * hour);
        let oldest = now - Dur::from_mins(70);
        let mut track = TopicTrack {
            refill_until: Some(oldest + Dur::from_hours(6) + p.forecast.window),
            ..TopicTrack::default()
        };
        let configs = TopicConfigs {
            topic: "out".into(),
            configs: BTreeMap::new(),
            sampled_at: now,
        };
        remember_lowering(
            &mut track,
            &configs,
            (6 * hour, 2 * hour),
            now,
            p.forecast.window,
        );
        assert_eq!(
            track.refill_until,
            Some(oldest + Dur::from_hours(2) + p.forecast.window)
        );
        assert_eq!(track.restore_setbacks, 1);
        assert_eq!(track.lowered_ms, Some(2 * hour));
        // Lowered below what the disk holds: the window no longer refills once the trend has
        // seen the deletions (one forecast window).
        remember_lowering(
            &mut track,
            &configs,
            (2 * hour, hour),
            now,
            p.forecast.window,
        );
        assert_eq!(
            track.refill_until,
            Some(oldest + Dur::from_hours(1) + p.forecast.window)
        );
        let later = now + Dur::from_hours(1);
        remember_lowering(
            &mut track,
            &configs,
            (hour, hour / 2),
            later,
            p.forecast.window,
        );
        assert_eq!(track.refill_until, None, "nothing left to refill");
    }
}
