//! The controllers a scenario can run under: [`EngineController`] (the catchup engine, driven
//! through the sensor and actuator traits as the real runtime drives it), `NoController` (consumers
//! at full speed, retention untouched) and `RunbookController` (the manual procedure of the 2025-11
//! incident).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::adapters::{SimCluster, ready};
use super::error::SimError;
use super::scenario::{RunbookSpec, Scenario};
use crate::actuators::{Evidence, GateActuator, RetentionActuator, Unconsumed, retention};
use crate::config::Mode;
use crate::policy::state::OriginalRetention;
use crate::policy::{AlertCode, ControllerState, Decision, Gate, Policy, RetentionTarget, decide};
use crate::runtime::observe_once;
use crate::runtime::reconcile::{self, Action, ExtensionStep, RetentionStep};
use crate::sensors::{ConfigSource, Observation};
use crate::units::Timestamp;

/// Which controller drives the simulated consumers and topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ControllerKind {
    /// The catchup engine with the given policy.
    Catchup,
    /// No control: consumers at full speed, retention untouched.
    None,
    /// The manual runbook: pause at a mark, lower retention after a reaction delay, resume below a mark.
    Runbook,
}

impl fmt::Display for ControllerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ControllerKind::Catchup => "catchup",
            ControllerKind::None => "none",
            ControllerKind::Runbook => "runbook",
        })
    }
}

/// Something that acts on the simulated cluster every control tick.
pub(super) trait Controller {
    fn tick(&mut self, sim: &SimCluster, now: Timestamp) -> Result<(), SimError>;
    /// (lowering writes, restoring writes) so far.
    fn changes(&self) -> (usize, usize);
    /// The actions taken, one line each.
    fn timeline(&self) -> &[String] {
        &[]
    }
}

/// The catchup engine behind the sensor and actuator traits, like the real runtime.
pub struct EngineController {
    policy: Policy,
    state: ControllerState,
    lowered: usize,
    restored: usize,
    /// The newest decision, for inspection.
    pub last: Option<Decision>,
    /// One line per action (gate state change or retention change), with its reasons, and one
    /// whenever the reason a topic's lowering is blocked changes.
    pub timeline: Vec<String>,
    /// Per topic, the kind of block last printed (its text without numbers).
    blocked: BTreeMap<String, String>,
}

impl EngineController {
    /// A controller starting from empty state.
    pub fn new(policy: Policy) -> Self {
        EngineController {
            policy,
            state: ControllerState::default(),
            lowered: 0,
            restored: 0,
            last: None,
            timeline: Vec::new(),
            blocked: BTreeMap::new(),
        }
    }
}

/// Reads every sensor of the simulated cluster into an observation, as the control loop does.
pub fn observe(sim: &SimCluster, policy: &Policy) -> Result<Observation, SimError> {
    ready(observe_once(sim, policy, None)).ok_or(SimError::Pending("sensors"))
}

/// Settles the simulated cluster's retention journal against `obs` and hands the engine what it
/// holds, as the control loop does.
pub fn settle(sim: &SimCluster, obs: &mut Observation, now: Timestamp) -> Result<(), SimError> {
    let observed = [obs.topics.as_slice(), obs.inputs.as_slice()].concat();
    let settled = ready(sim.settle_journal(&observed, now))
        .ok_or(SimError::Pending("retention journal"))?
        .map_err(|e| SimError::Actuator(e.to_string()))?;
    obs.retention = Some(settled.records);
    obs.extensions = settled.extensions;
    Ok(())
}

/// Carries out a decision the way the control loop does in active mode ([`reconcile::plan`]):
/// gates through the gate actuator, retention changes through the guard and the retention actuator.
/// Returns (lowering writes, restoring writes).
pub fn apply(
    sim: &SimCluster,
    decision: &Decision,
    state: &ControllerState,
    obs: &Observation,
    policy: &Policy,
) -> Result<(usize, usize), SimError> {
    let (mut lowered, mut restored) = (0, 0);
    let brokers: Vec<_> = obs.disks.iter().map(|d| d.broker).collect();
    let evidence = Evidence {
        brokers: &brokers,
        copy_lag: &obs.copy_lag,
        now: decision.at,
    };
    for action in reconcile::plan(decision, state, obs, Mode::Active, policy, true) {
        match action {
            Action::Gate { group, publish } => {
                // The simulator knows every group it was built with; a failure would be a binding
                // bug and is surfaced by the summary (the group would never be gated).
                let _ = ready(sim.set_gate(&group, &publish))
                    .ok_or(SimError::Pending("gate actuator"))?;
            }
            Action::Retention {
                topic,
                step: RetentionStep::Apply { lowers, .. },
            } => {
                let Some(d) = decision.topics.get(&topic) else {
                    continue;
                };
                let reason = d.reasons.join("; ");
                let written =
                    ready(sim.apply_retention(&topic, &d.target, &reason, &evidence, decision.at))
                        .ok_or(SimError::Pending("retention actuator"))?;
                if written.is_ok_and(|a| a.change.is_some()) {
                    if lowers {
                        lowered += 1;
                    } else {
                        restored += 1;
                    }
                }
            }
            Action::Retention { .. } => {}
            Action::Extension {
                topic,
                target,
                step: ExtensionStep::Apply { .. },
            } => {
                let Some(d) = decision.extensions.get(&topic) else {
                    continue;
                };
                let reason = d.reasons.join("; ");
                let unconsumed = Unconsumed::observed(&topic, obs, policy, decision.at);
                // A refusal or failure leaves the topic as it is; the next fresh step tries again.
                let _ =
                    ready(sim.extend_retention(&topic, &target, &reason, &unconsumed, decision.at))
                        .ok_or(SimError::Pending("retention actuator"))?;
            }
            Action::Extension { .. } => {}
        }
    }
    Ok((lowered, restored))
}

impl EngineController {
    /// Adds a timeline line whenever the reason a topic's lowering is blocked (copy lag, stale
    /// data, ...) changes kind, or the block lifts.
    fn note_blocks(&mut self, decision: &Decision, now: Timestamp) {
        let mut now_blocked: BTreeMap<String, String> = BTreeMap::new();
        for a in &decision.alerts {
            if a.code != AlertCode::RetentionBlocked {
                continue;
            }
            let Some((topic, rest)) = a
                .message
                .strip_prefix("topic ")
                .and_then(|m| m.split_once(": "))
            else {
                continue;
            };
            let block = rest.rsplit_once(", but ").map_or(rest, |(_, b)| b);
            now_blocked.insert(topic.to_string(), block.to_string());
        }
        let kind = |s: &str| {
            s.chars()
                .filter(|c| !c.is_ascii_digit() && *c != '.')
                .collect::<String>()
        };
        for (topic, block) in &now_blocked {
            if self.blocked.get(topic).map(String::as_str) != Some(kind(block).as_str()) {
                self.timeline
                    .push(format!("{now} topic {topic}: lowering blocked - {block}"));
            }
        }
        for topic in self.blocked.keys() {
            if !now_blocked.contains_key(topic) {
                self.timeline
                    .push(format!("{now} topic {topic}: lowering no longer blocked"));
            }
        }
        self.blocked = now_blocked
            .into_iter()
            .map(|(t, b)| (t, kind(&b)))
            .collect();
    }
}

impl Controller for EngineController {
    fn tick(&mut self, sim: &SimCluster, now: Timestamp) -> Result<(), SimError> {
        let mut obs = observe(sim, &self.policy)?;
        settle(sim, &mut obs, now)?;
        let (decision, state) = decide(&obs, &self.policy, &self.state, &[], now);
        // The new state holds the originals, including any captured this tick.
        let (lowered, restored) = apply(sim, &decision, &state, &obs, &self.policy)?;
        self.lowered += lowered;
        self.restored += restored;
        self.state = state;
        for (group, d) in &decision.groups {
            let before = self
                .last
                .as_ref()
                .and_then(|l| l.groups.get(group))
                .map(|g| g.gate.name());
            if before != Some(d.gate.name()) {
                self.timeline.push(format!(
                    "{now} group {group}: {} - {}",
                    d.gate.name(),
                    d.reasons.join("; ")
                ));
            }
        }
        for (topic, d) in &decision.topics {
            let before = self
                .last
                .as_ref()
                .and_then(|l| l.topics.get(topic))
                .map(|t| &t.target);
            if before != Some(&d.target) {
                self.timeline.push(format!(
                    "{now} topic {topic}: {:?} - {}",
                    d.target,
                    d.reasons.join("; ")
                ));
            }
        }
        self.note_blocks(&decision, now);
        self.last = Some(decision);
        Ok(())
    }

    fn changes(&self) -> (usize, usize) {
        (self.lowered, self.restored)
    }

    fn timeline(&self) -> &[String] {
        &self.timeline
    }
}

/// No control at all.
struct NoController;

impl Controller for NoController {
    fn tick(&mut self, _: &SimCluster, _: Timestamp) -> Result<(), SimError> {
        Ok(())
    }
    fn changes(&self) -> (usize, usize) {
        (0, 0)
    }
}

/// The on-call procedure of the 2025-11 incident, followed by a person who reads the same delayed
/// disk metric and acts after a reaction delay.
struct RunbookController {
    spec: RunbookSpec,
    policy: Policy,
    paused_at: Option<Timestamp>,
    alarm_at: Option<Timestamp>,
    clear_at: Option<Timestamp>,
    lowered: bool,
    originals: BTreeMap<String, OriginalRetention>,
    drained_at: Option<Timestamp>,
    changes: (usize, usize),
}

impl RunbookController {
    /// A person about to follow `spec`, nothing done yet.
    fn new(spec: RunbookSpec, policy: Policy) -> Self {
        RunbookController {
            spec,
            policy,
            paused_at: None,
            alarm_at: None,
            clear_at: None,
            lowered: false,
            originals: BTreeMap::new(),
            drained_at: None,
            changes: (0, 0),
        }
    }

    fn set_gates(&self, sim: &SimCluster, gate: Gate) {
        let mut c = sim.lock();
        for g in &self.policy.groups {
            c.set_gate(&g.name, gate.clone());
        }
    }

    /// What the person sees: the highest visible disk datapoint of any broker, and whether every
    /// group's lag is below its drain threshold.
    fn read(&self, sim: &SimCluster) -> (f64, bool) {
        let c = sim.lock();
        let metric = (0..c.broker_count())
            .filter_map(|b| c.visible_disk(b))
            .map(|d| d.value)
            .fold(f64::NAN, f64::max);
        let drained = self.policy.groups.iter().all(|g| {
            c.group_lag(&g.name)
                .is_some_and(|l| l < self.policy.lag_threshold(g) as f64)
        });
        (metric, drained)
    }

    /// Not paused: pauses every group once the metric has stayed at the pause mark for the reaction
    /// delay.
    fn pause_on_alarm(&mut self, sim: &SimCluster, metric: f64, now: Timestamp) {
        let s = &self.spec;
        if metric >= s.pause_at_percent {
            let alarm = *self.alarm_at.get_or_insert(now);
            if now.since(alarm) >= s.reaction {
                self.set_gates(sim, Gate::Paused);
                self.paused_at = Some(now);
                self.alarm_at = None;
            }
        }
    }

    /// Paused: once, a reaction delay after pausing, lowers the local retention of every topic above
    /// `lower_to`, remembering each original.
    fn lower_retention(&mut self, sim: &SimCluster, now: Timestamp) -> Result<(), SimError> {
        let s = &self.spec;
        let paused_at = self.paused_at.unwrap_or(now);
        if !self.lowered && now.since(paused_at) >= s.reaction {
            let obs = observe(sim, &self.policy)?;
            for t in &obs.topics {
                let ms = s.lower_to.0 as i64;
                if t.effective_local_retention_ms().is_some_and(|cur| cur > ms) {
                    let raw = t.configs.get("local.retention.ms");
                    self.originals
                        .entry(t.topic.clone())
                        .or_insert_with(|| OriginalRetention {
                            value: raw.and_then(|c| c.value.clone()),
                            source: raw.map_or(ConfigSource::Inherited, |c| c.source),
                            effective_ms: t.effective_local_retention_ms(),
                        });
                    // On-call uses the broker's own tools, not catchup's guard.
                    if sim.set_by_hand(&t.topic, "local.retention.ms", Some(&ms.to_string())) {
                        self.changes.0 += 1;
                    }
                }
            }
            self.lowered = true;
        }
        Ok(())
    }

    /// Paused: resumes every group once the metric has stayed below the resume mark for the reaction
    /// delay.
    fn resume_when_clear(&mut self, sim: &SimCluster, metric: f64, now: Timestamp) {
        let s = &self.spec;
        if metric < s.resume_below_percent {
            let clear = *self.clear_at.get_or_insert(now);
            if now.since(clear) >= s.reaction {
                self.set_gates(sim, Gate::Open);
                self.paused_at = None;
                self.clear_at = None;
            }
        } else {
            self.clear_at = None;
        }
    }

    /// Drained and running: restores every lowered topic once `restore_after` has passed.
    fn restore_after_drain(&mut self, sim: &SimCluster, now: Timestamp) -> Result<(), SimError> {
        let s = &self.spec;
        let at = *self.drained_at.get_or_insert(now);
        if now.since(at) >= s.restore_after && !self.originals.is_empty() {
            let obs = observe(sim, &self.policy)?;
            for (topic, original) in std::mem::take(&mut self.originals) {
                let Some(configs) = obs.topics.iter().find(|t| t.topic == topic) else {
                    continue;
                };
                if let Ok(Some(change)) = retention::plan(
                    &topic,
                    &RetentionTarget::Original,
                    Some(&original),
                    configs,
                    &self.policy,
                ) && sim.set_by_hand(&topic, change.key().name(), change.leaves())
                {
                    self.changes.1 += 1;
                }
            }
        }
        Ok(())
    }
}

impl Controller for RunbookController {
    fn tick(&mut self, sim: &SimCluster, now: Timestamp) -> Result<(), SimError> {
        let (metric, drained) = self.read(sim);
        if self.paused_at.is_none() {
            self.pause_on_alarm(sim, metric, now);
        } else {
            self.lower_retention(sim, now)?;
            self.resume_when_clear(sim, metric, now);
        }
        if drained && self.paused_at.is_none() {
            self.restore_after_drain(sim, now)?;
        } else {
            self.drained_at = None;
        }
        Ok(())
    }

    fn changes(&self) -> (usize, usize) {
        self.changes
    }
}

/// The controller `kind` for a run of `scenario` under `policy`.
pub(super) fn build(
    kind: ControllerKind,
    scenario: &Scenario,
    policy: &Policy,
) -> Box<dyn Controller> {
    match kind {
        ControllerKind::Catchup => Box::new(EngineController::new(policy.clone())),
        ControllerKind::None => Box::new(NoController),
        ControllerKind::Runbook => Box::new(RunbookController::new(
            scenario.runbook.clone(),
            policy.clone(),
        )),
    }
}
