//! Running a scenario under a controller: `catchup` (the engine), `none` (consumers at full speed) or
//! `runbook` (the manual procedure of the 2025-11 incident), and summarising what happened.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::adapters::{SimCluster, ready};
use super::cluster::Cluster;
use super::optimal::optimal_seconds;
use super::scenario::Scenario;
use crate::actuators::{GateActuator, RetentionActuator, RetentionChange, retention};
use crate::config::Mode;
use crate::config_file::Problem;
use crate::policy::state::OriginalRetention;
use crate::policy::{
    ControllerState, Decision, Gate, GroupPolicy, Policy, RetentionTarget, TopicPolicy, decide,
};
use crate::runtime::observe_once;
use crate::runtime::reconcile::{self, Action, RetentionStep};
use crate::sensors::{ConfigSource, Observation, TopicConfigs};
use crate::units::{Dur, Timestamp};

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

/// Errors of a simulation run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The policy does not fit the scenario.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Mismatch(Vec<Problem>),
    /// A simulated adapter did not complete at once (a bug).
    #[error("simulated {0} did not complete synchronously")]
    Pending(&'static str),
}

/// Makes `policy` fit `scenario`: a policy naming no groups and no topics (like `policies/default.toml`)
/// takes the scenario's catch-up groups and `managed` topics; a policy that names them must name ones
/// the scenario has. Also checks the floor against each managed topic's original local retention.
pub fn bind_policy(policy: &Policy, scenario: &Scenario) -> Result<Policy, SimError> {
    let mut p = policy.clone();
    let mut problems = Vec::new();
    if p.groups.is_empty() {
        p.groups = scenario
            .groups
            .iter()
            .map(|g| GroupPolicy {
                name: g.name.clone(),
                unit: Default::default(),
                max_rate: None,
                min_rate: None,
                lag_threshold: None,
            })
            .collect();
    }
    if p.retention.topics.is_empty() {
        p.retention.topics = scenario
            .managed_topics()
            .into_iter()
            .map(|name| TopicPolicy { name, floor: None })
            .collect();
    }
    for (i, g) in p.groups.iter().enumerate() {
        if !scenario.groups.iter().any(|sg| sg.name == g.name) {
            problems.push(Problem::field(
                format!("groups[{i}].name"),
                format!("{:?}", g.name),
                "the scenario has no catch-up group of that name",
            ));
        }
    }
    for (i, t) in p.retention.topics.iter().enumerate() {
        let path = format!("retention.topics[{i}]");
        match scenario.topics.iter().find(|st| st.name == t.name) {
            None => problems.push(Problem::field(
                format!("{path}.name"),
                format!("{:?}", t.name),
                "the scenario has no topic of that name",
            )),
            Some(st) => {
                let original = st.local_retention.unwrap_or(st.retention);
                let floor = Dur(p.floor_ms(&t.name) as u64);
                if floor > original {
                    problems.push(Problem::field(
                        format!("{path}.floor"),
                        floor,
                        format!("the floor is above topic {}'s original local retention ({original}): lower the floor", t.name),
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(p)
    } else {
        Err(SimError::Mismatch(problems))
    }
}

/// What happened in one run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Controller.
    pub controller: ControllerKind,
    /// The policy's ceiling.
    pub ceiling_percent: f64,
    /// Highest disk use of any broker at any time.
    pub peak_disk_percent: f64,
    /// Highest disk use per broker (ids 1..=N in order).
    pub peak_disk_percent_per_broker: Vec<f64>,
    /// Time during which some broker was above the ceiling.
    pub seconds_above_ceiling: f64,
    /// Brokers whose disk filled.
    pub brokers_failed: usize,
    /// From catch-up start until every group's lag was below its drain threshold; `None` if never.
    pub catchup_seconds: Option<f64>,
    /// The optimal bound (see `sim::optimal`).
    pub optimal_seconds: Option<f64>,
    /// `catchup_seconds / optimal_seconds`.
    pub ratio_to_optimal: Option<f64>,
    /// Time during which some catch-up group was paused.
    pub seconds_paused: f64,
    /// Time during which some catch-up group was throttled.
    pub seconds_throttled: f64,
    /// Config writes that changed a topic's local retention (lowering and restoring).
    pub retention_changes: usize,
    /// Of those, the ones that raised or restored it.
    pub retention_restores: usize,
    /// Smallest local retention each managed topic had, seconds.
    pub min_local_retention_seconds: BTreeMap<String, f64>,
    /// True when every topic's `local.retention.ms` (value and source) ends as it began.
    pub restored: bool,
    /// Simulated seconds, including the warm-up before catch-up starts.
    pub simulated_seconds: f64,
}

/// Time series sampled once a minute, for plots.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    /// Hours since catch-up start.
    pub hours: Vec<f64>,
    /// True disk percent per broker.
    pub disk: Vec<Vec<f64>>,
    /// Total lag of all groups, records.
    pub lag: Vec<f64>,
    /// Total consume rate, records/s.
    pub rate: Vec<f64>,
    /// Local retention per managed topic, hours.
    pub retention: BTreeMap<String, Vec<f64>>,
}

/// Summary and series of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Figures.
    pub summary: Summary,
    /// Curves.
    pub series: Series,
    /// The controller's actions with their reasons, one line each (the engine only).
    pub timeline: Vec<String>,
}

/// Something that acts on the simulated cluster every control tick.
trait Controller {
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
    /// One line per action (gate state change or retention change), with its reasons.
    pub timeline: Vec<String>,
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
        }
    }
}

/// Reads every sensor of the simulated cluster into an observation, as the control loop does.
pub fn observe(sim: &SimCluster, policy: &Policy) -> Result<Observation, SimError> {
    ready(observe_once(sim, policy, None)).ok_or(SimError::Pending("sensors"))
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
                step: RetentionStep::Apply { change, lowers },
            } => {
                if ready(sim.apply_retention(&topic, &change))
                    .ok_or(SimError::Pending("retention actuator"))?
                    .is_ok()
                {
                    if lowers {
                        lowered += 1;
                    } else {
                        restored += 1;
                    }
                }
            }
            Action::Retention { .. } => {}
        }
    }
    Ok((lowered, restored))
}

impl Controller for EngineController {
    fn tick(&mut self, sim: &SimCluster, now: Timestamp) -> Result<(), SimError> {
        let obs = observe(sim, &self.policy)?;
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
    spec: super::scenario::RunbookSpec,
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
    fn set_gates(&self, sim: &SimCluster, gate: Gate) {
        let mut c = sim.lock();
        for g in &self.policy.groups {
            c.set_gate(&g.name, gate.clone());
        }
    }
}

impl Controller for RunbookController {
    fn tick(&mut self, sim: &SimCluster, now: Timestamp) -> Result<(), SimError> {
        let (metric, drained) = {
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
        };
        let s = &self.spec;
        if self.paused_at.is_none() {
            if metric >= s.pause_at_percent {
                let alarm = *self.alarm_at.get_or_insert(now);
                if now.since(alarm) >= s.reaction {
                    self.set_gates(sim, Gate::Paused);
                    self.paused_at = Some(now);
                    self.alarm_at = None;
                }
            }
        } else {
            let paused_at = self.paused_at.unwrap_or(now);
            if !self.lowered && now.since(paused_at) >= s.reaction {
                let obs = observe(sim, &self.policy)?;
                for t in &obs.topics {
                    let ms = s.lower_to.0 as i64;
                    if t.effective_local_retention_ms().is_some_and(|cur| cur > ms) {
                        let raw = t.configs.get("local.retention.ms");
                        self.originals.entry(t.topic.clone()).or_insert_with(|| {
                            OriginalRetention {
                                value: raw.and_then(|c| c.value.clone()),
                                source: raw.map_or(ConfigSource::Inherited, |c| c.source),
                                effective_ms: t.effective_local_retention_ms(),
                            }
                        });
                        let change = RetentionChange::Set {
                            key: "local.retention.ms".into(),
                            value: ms.to_string(),
                        };
                        if ready(sim.apply_retention(&t.topic, &change))
                            .ok_or(SimError::Pending("retention actuator"))?
                            .is_ok()
                        {
                            self.changes.0 += 1;
                        }
                    }
                }
                self.lowered = true;
            }
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
        if drained && self.paused_at.is_none() {
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
                    ) && ready(sim.apply_retention(&topic, &change))
                        .ok_or(SimError::Pending("retention actuator"))?
                        .is_ok()
                    {
                        self.changes.1 += 1;
                    }
                }
            }
        } else {
            self.drained_at = None;
        }
        Ok(())
    }

    fn changes(&self) -> (usize, usize) {
        self.changes
    }
}

/// How long the cluster warms up at normal load before catch-up starts: twice the longest local
/// window (segments must fill, close, upload and age out before deletion reaches a steady state),
/// capped at a day, so disks start at their normal level.
pub fn warmup(scenario: &Scenario) -> Dur {
    let longest = scenario
        .topics
        .iter()
        .map(|t| t.local_retention.unwrap_or(t.retention))
        .max()
        .unwrap_or_default();
    Dur((longest.0 * 2).min(Dur::from_hours(24).0)).max(Dur::from_hours(1))
}

/// Runs `scenario` under `kind`. `policy` must already be bound to the scenario ([`bind_policy`]).
pub fn simulate(
    scenario: &Scenario,
    policy: &Policy,
    kind: ControllerKind,
) -> Result<Outcome, SimError> {
    let start = Timestamp(0) - warmup(scenario);
    let sim = SimCluster::new(Cluster::new(scenario, start));
    let mut controller: Box<dyn Controller> = match kind {
        ControllerKind::Catchup => Box::new(EngineController::new(policy.clone())),
        ControllerKind::None => Box::new(NoController),
        ControllerKind::Runbook => Box::new(RunbookController {
            spec: scenario.runbook.clone(),
            policy: policy.clone(),
            paused_at: None,
            alarm_at: None,
            clear_at: None,
            lowered: false,
            originals: BTreeMap::new(),
            drained_at: None,
            changes: (0, 0),
        }),
    };
    let initial: BTreeMap<String, Option<(Option<String>, ConfigSource)>> = {
        let c = sim.lock();
        scenario
            .topics
            .iter()
            .map(|t| {
                let v = c
                    .topic_configs(&t.name)
                    .and_then(|m| m.get("local.retention.ms"))
                    .map(|v| (v.value.clone(), v.source));
                (t.name.clone(), v)
            })
            .collect()
    };
    let controller_start = Timestamp(0) - Dur::from_mins(15);
    let end = Timestamp(0) + scenario.duration;
    let n = scenario.cluster.brokers;
    let dt = scenario.step.secs_f64();
    let mut next_tick = controller_start;
    let mut next_sample = Timestamp(0);
    let mut series = Series {
        disk: vec![Vec::new(); n],
        ..Series::default()
    };
    let managed = policy.managed_topics();
    let mut summary = Summary {
        scenario: scenario.name.clone(),
        controller: kind,
        ceiling_percent: policy.disk.ceiling_percent,
        peak_disk_percent: 0.0,
        peak_disk_percent_per_broker: vec![0.0; n],
        seconds_above_ceiling: 0.0,
        brokers_failed: 0,
        catchup_seconds: None,
        optimal_seconds: optimal_seconds(scenario, policy),
        ratio_to_optimal: None,
        seconds_paused: 0.0,
        seconds_throttled: 0.0,
        retention_changes: 0,
        retention_restores: 0,
        min_local_retention_seconds: BTreeMap::new(),
        restored: false,
        simulated_seconds: end.since(start).secs_f64(),
    };
    let mut injected = false;
    loop {
        let now = sim.lock().now();
        if now >= end {
            break;
        }
        if !injected && now >= Timestamp(0) {
            sim.lock().inject_backlogs(scenario);
            injected = true;
        }
        if now >= next_tick {
            controller.tick(&sim, now)?;
            next_tick = now + scenario.tick;
        }
        let mut c = sim.lock();
        c.step(!injected);
        if !injected {
            continue;
        }
        let now = c.now();
        let mut above = false;
        for b in 0..n {
            let d = c.disk_percent(b).min(100.0);
            let peak = &mut summary.peak_disk_percent_per_broker[b];
            *peak = peak.max(d);
            above |= d > policy.disk.ceiling_percent;
        }
        if above {
            summary.seconds_above_ceiling += dt;
        }
        let gates: Vec<&str> = policy
            .groups
            .iter()
            .filter_map(|g| c.gate(&g.name))
            .map(Gate::name)
            .collect();
        if gates.contains(&"paused") {
            summary.seconds_paused += dt;
        } else if gates.contains(&"throttled") {
            summary.seconds_throttled += dt;
        }
        for t in &managed {
            if let Some(ms) = c.effective_local_retention(t) {
                let min = summary
                    .min_local_retention_seconds
                    .entry(t.clone())
                    .or_insert(f64::INFINITY);
                *min = min.min(ms as f64 / 1000.0);
            }
        }
        let lag: f64 = policy
            .groups
            .iter()
            .filter_map(|g| c.group_lag(&g.name))
            .sum();
        if summary.catchup_seconds.is_none()
            && policy.groups.iter().all(|g| {
                c.group_lag(&g.name)
                    .is_some_and(|l| l < policy.lag_threshold(g) as f64)
            })
        {
            summary.catchup_seconds = Some(now.secs_f64());
        }
        if now >= next_sample {
            next_sample = now + Dur::from_mins(1);
            series.hours.push(now.secs_f64() / 3600.0);
            for b in 0..n {
                series.disk[b].push(c.disk_percent(b).min(100.0));
            }
            series.lag.push(lag);
            series.rate.push(
                policy
                    .groups
                    .iter()
                    .filter_map(|g| c.group_rate(&g.name))
                    .sum(),
            );
            for t in &managed {
                let h = c
                    .effective_local_retention(t)
                    .map_or(f64::NAN, |ms| ms as f64 / 3_600_000.0);
                series.retention.entry(t.clone()).or_default().push(h);
            }
        }
    }
    let c = sim.lock();
    summary.peak_disk_percent = summary
        .peak_disk_percent_per_broker
        .iter()
        .copied()
        .fold(0.0, f64::max);
    summary.brokers_failed = (0..n).filter(|&b| c.failed_at(b).is_some()).count();
    summary.ratio_to_optimal = summary
        .catchup_seconds
        .zip(summary.optimal_seconds)
        .map(|(a, o)| a / o);
    let (lowered, restored) = controller.changes();
    summary.retention_changes = lowered + restored;
    summary.retention_restores = restored;
    summary.restored = scenario.topics.iter().all(|t| {
        let now = c
            .topic_configs(&t.name)
            .and_then(|m| m.get("local.retention.ms"))
            .map(|v| (v.value.clone(), v.source));
        initial.get(&t.name) == Some(&now)
    });
    Ok(Outcome {
        summary,
        series,
        timeline: controller.timeline().to_vec(),
    })
}

impl Summary {
    /// Human-readable table.
    pub fn render(&self) -> String {
        let opt = |v: Option<f64>| {
            v.map_or("never".to_string(), |s| {
                Dur::from_secs(s.round() as u64).to_string()
            })
        };
        let mut out = String::new();
        out.push_str(&format!("scenario:            {}\n", self.scenario));
        out.push_str(&format!("controller:          {}\n", self.controller));
        out.push_str(&format!(
            "ceiling:             {:.1}%\n",
            self.ceiling_percent
        ));
        out.push_str(&format!(
            "peak disk:           {:.1}% (per broker: {})\n",
            self.peak_disk_percent,
            self.peak_disk_percent_per_broker
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{}={p:.1}%", i + 1))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        out.push_str(&format!(
            "time above ceiling:  {}\n",
            Dur((self.seconds_above_ceiling * 1000.0) as u64)
        ));
        out.push_str(&format!(
            "brokers failed:      {}{}\n",
            self.brokers_failed,
            if self.brokers_failed > 0 {
                " (a real cluster would have stopped serving: the catch-up below did not happen)"
            } else {
                ""
            }
        ));
        out.push_str(&format!(
            "catch-up duration:   {}\n",
            opt(self.catchup_seconds)
        ));
        out.push_str(&format!(
            "optimal bound:       {}\n",
            opt(self.optimal_seconds)
        ));
        out.push_str(&format!(
            "ratio to optimal:    {}\n",
            self.ratio_to_optimal
                .map_or("-".to_string(), |r| format!("{r:.3}x"))
        ));
        out.push_str(&format!(
            "time paused:         {}\n",
            Dur((self.seconds_paused * 1000.0) as u64)
        ));
        out.push_str(&format!(
            "time throttled:      {}\n",
            Dur((self.seconds_throttled * 1000.0) as u64)
        ));
        out.push_str(&format!(
            "retention changes:   {} ({} lowering, {} restoring)\n",
            self.retention_changes,
            self.retention_changes - self.retention_restores,
            self.retention_restores
        ));
        for (t, s) in &self.min_local_retention_seconds {
            out.push_str(&format!(
                "  lowest local retention of {t}: {}\n",
                Dur((s * 1000.0) as u64)
            ));
        }
        out.push_str(&format!(
            "restored:            {}\n",
            if self.restored {
                "yes, every setting is back to its original"
            } else {
                "NO"
            }
        ));
        out
    }
}

/// Configs of a managed topic as the simulator holds them (tests use it).
pub fn topic_configs(sim: &SimCluster, topic: &str) -> Option<TopicConfigs> {
    let c = sim.lock();
    Some(TopicConfigs {
        topic: topic.into(),
        configs: c.topic_configs(topic)?.clone(),
        sampled_at: c.now(),
    })
}
