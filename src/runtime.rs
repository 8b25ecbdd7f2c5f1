//! The control loop: every tick, read all sensors concurrently (each with a timeout), call
//! [`decide`](crate::policy::decide), and reconcile the gates and topic retention according to the
//! mode; persist state; record every action in the audit log.
//!
//! The loop owns the cluster adapters and the engine state; the HTTP API talks to it through the
//! shared [`Controller`] (reads) and a command channel (restore). A restart loads `state.json`,
//! `overrides.json` and the audit log and continues: it neither restores nor re-applies blindly.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info, info_span, warn};

use crate::actuators::{GateActuator, RetentionActuator, retention};
use crate::config::{Mode, RunConfig};
use crate::gate::GateBoard;
use crate::metrics::Metrics;
use crate::policy::{
    ControllerState, Decision, Gate, Override, OverrideAction, OverrideScope, Policy,
    RetentionTarget, decide,
};
use crate::sensors::{
    ClusterFacts, CopyLagSensor, DiskSensor, LagSensor, Limitation, Observation, SensorError,
    SensorFault, TopicConfigSensor,
};
use crate::store::{AuditRecord, StateDir, StoreError};
use crate::units::{Dur, Timestamp};

/// Everything a cluster adapter must offer the loop.
pub trait ClusterIo:
    ClusterFacts
    + DiskSensor
    + CopyLagSensor
    + LagSensor
    + TopicConfigSensor
    + GateActuator
    + RetentionActuator
    + 'static
{
}

impl<
    T: ClusterFacts
        + DiskSensor
        + CopyLagSensor
        + LagSensor
        + TopicConfigSensor
        + GateActuator
        + RetentionActuator
        + 'static,
> ClusterIo for T
{
}

/// The controller's notion of time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
    /// `t` as a wall-clock time (for deadlines consumers compare with their own clocks). Identity
    /// on the real clock; the simulator's accelerated clock maps it back to real time.
    fn to_wall(&self, t: Timestamp) -> Timestamp {
        t
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        wall_now()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn wall_now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether a tick makes the controller ready: fresh disk readings from every broker and lag read,
/// the data gating needs. Copy lag and topic configs only enable retention changes, which have
/// their own guards (invariants 5 and 6); a cluster that can never give them (monitoring level
/// `DEFAULT`, the Prometheus source) must still become ready, or its gate would never be served.
pub fn ready_after(decision: &Decision, obs: &Observation) -> bool {
    !decision.brokers.is_empty()
        && decision.brokers.iter().all(|b| !b.stale)
        && !obs
            .sensor_errors
            .iter()
            .any(|f| f.sensor == "disk" || f.sensor == "lag")
}

/// Reads every sensor of `cluster` once, concurrently, each within `timeout` (for `observe` and
/// `plan`); failures are reported in `sensor_errors`.
pub async fn observe_once<K: ClusterIo>(
    cluster: &K,
    policy: &Policy,
    timeout: Duration,
) -> Observation {
    let groups = policy.group_names();
    let topics = policy.managed_topics();
    let (disks, copy, lag, configs) = tokio::join!(
        tokio::time::timeout(timeout, cluster.read_disks()),
        tokio::time::timeout(timeout, cluster.read_copy_lag()),
        tokio::time::timeout(timeout, cluster.read_offsets(&groups)),
        tokio::time::timeout(timeout, cluster.read_topic_configs(&topics)),
    );
    let late = format!("no answer within {}", Dur(timeout.as_millis() as u64));
    let mut faults = Vec::new();
    let mut obs = Observation {
        disks: reading("disk", disks, &late, &mut faults),
        copy_lag: reading("copy_lag", copy, &late, &mut faults),
        groups: reading("lag", lag, &late, &mut faults),
        topics: reading("topic_configs", configs, &late, &mut faults),
        ..Observation::default()
    };
    obs.sensor_errors = faults;
    obs
}

/// What limits the controller now, and which actions that disables: the cluster's facts, this
/// instance's configuration (`retention_actions`) and a tick's sensor failures. Status, metrics and
/// `catchup observe` all show this list.
pub fn limitations(
    cluster: &impl ClusterFacts,
    config: &RunConfig,
    faults: &[SensorFault],
) -> Vec<Limitation> {
    let mut l = cluster.limitations();
    if !config.retention_actions {
        l.push(Limitation {
            missing: "retention actions are off in this instance (retention_actions = false): another catchup instance owns local.retention.ms of the managed topics".into(),
            disables: vec!["lower_retention".into(), "restore_retention".into()],
        });
    }
    l.extend(crate::sensors::limitations_of(faults));
    l
}

/// A sensor's answer within its timeout, or empty with the fault recorded.
fn reading<T: Default>(
    sensor: &str,
    answer: Result<Result<T, SensorError>, tokio::time::error::Elapsed>,
    late: &str,
    faults: &mut Vec<SensorFault>,
) -> T {
    let reason = match answer {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e.to_string(),
        Err(_) => late.to_string(),
    };
    faults.push(SensorFault {
        sensor: sensor.into(),
        reason,
    });
    T::default()
}

/// A managed topic as status shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ManagedTopic {
    /// Topic.
    pub topic: String,
    /// Effective local retention the cluster reports, ms.
    pub current_ms: Option<i64>,
    /// Before the controller's first change, ms.
    pub original_ms: Option<i64>,
    /// Whether the original was set on the topic (`topic`) or inherited.
    pub original_source: Option<String>,
    /// What the engine wants.
    #[schema(value_type = Object)]
    pub target: RetentionTarget,
}

/// What `/v1/status` returns.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// Current mode.
    pub mode: Mode,
    /// Whether a tick with fresh disk and lag data has completed (see [`ready_after`]).
    pub ready: bool,
    /// Ticks completed since start.
    pub ticks: u64,
    /// What the sensors saw in the last tick.
    #[schema(value_type = Object)]
    pub observation: Option<Observation>,
    /// What the engine decided in the last tick, with reasons.
    #[schema(value_type = Object)]
    pub decision: Option<Decision>,
    /// Overrides in force.
    #[schema(value_type = Vec<Object>)]
    pub overrides: Vec<Override>,
    /// Managed topics with original and current retention.
    pub topics: Vec<ManagedTopic>,
    /// Sensors that failed in the last tick.
    #[schema(value_type = Vec<Object>)]
    pub sensor_errors: Vec<SensorFault>,
    /// What the controller cannot see or do right now, and which actions that disables: facts of
    /// the cluster (MSK discovery: storage mode, monitoring level, ...) and this tick's sensor
    /// failures.
    pub limitations: Vec<Limitation>,
    /// The cluster as discovered (for MSK: name, state, storage mode, monitoring, brokers, volume).
    #[schema(value_type = Object)]
    pub cluster: Option<serde_json::Value>,
}

/// Requests the API sends to the loop.
pub enum Command {
    /// Bring every managed topic back to its original now, and hold retention for `hold`.
    Restore {
        /// Who asked.
        actor: String,
        /// Why.
        reason: String,
        /// How long to hold retention afterwards.
        hold: Dur,
        /// Per topic: what happened.
        reply: oneshot::Sender<Vec<(String, String)>>,
    },
}

/// State shared by the loop and the API.
pub struct Controller {
    /// The policy.
    pub policy: Policy,
    /// The configuration.
    pub config: RunConfig,
    /// Current mode (the API can change it).
    pub mode: RwLock<Mode>,
    /// Overrides in force, persisted in `overrides.json`.
    pub overrides: Mutex<Vec<Override>>,
    /// The state directory.
    pub store: StateDir,
    /// The consumer gates.
    pub gates: GateBoard,
    /// Metrics.
    pub metrics: Metrics,
    /// The last tick's status.
    pub status: RwLock<Status>,
    /// Set after the first tick with fresh disk and lag data.
    pub ready: AtomicBool,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The API token (`None`: mutating endpoints are refused).
    pub token: Option<String>,
    /// To the loop.
    pub commands: mpsc::Sender<Command>,
    next_override: AtomicU64,
}

/// Errors building the controller.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The state directory.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Controller {
    /// Builds the shared state, loading overrides from the state directory.
    pub fn new(
        config: RunConfig,
        policy: Policy,
        token: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Controller>, mpsc::Receiver<Command>), RuntimeError> {
        let store = StateDir::open(&config.state_dir)?;
        let overrides: Vec<Override> = store.load("overrides.json")?.unwrap_or_default();
        let next = overrides
            .iter()
            .filter_map(|o| o.id.strip_prefix("ovr-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let gates = GateBoard::new(config.gate.instances);
        gates.register(&policy.group_names(), clock.now());
        let (tx, rx) = mpsc::channel(16);
        let metrics = Metrics::new();
        metrics.set_mode(config.mode.as_str());
        let status = Status {
            mode: config.mode,
            ready: false,
            ticks: 0,
            observation: None,
            decision: None,
            overrides: overrides.clone(),
            topics: Vec::new(),
            sensor_errors: Vec::new(),
            limitations: Vec::new(),
            cluster: None,
        };
        let c = Controller {
            mode: RwLock::new(config.mode),
            policy,
            config,
            overrides: Mutex::new(overrides),
            store,
            gates,
            metrics,
            status: RwLock::new(status),
            ready: AtomicBool::new(false),
            clock,
            token,
            commands: tx,
            next_override: AtomicU64::new(next),
        };
        Ok((Arc::new(c), rx))
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an action in the audit log and the metrics; a failure to write the log is logged
    /// (the action already happened) and returned.
    pub fn audit(&self, entry: Entry<'_>) -> Result<AuditRecord, StoreError> {
        let Entry {
            actor,
            action,
            target,
            reason,
            before,
            after,
            outcome,
        } = entry;
        let kind = action.split('.').next().unwrap_or(action);
        self.metrics
            .action(kind, outcome.split(':').next().unwrap_or(outcome).trim());
        let record = AuditRecord {
            id: 0,
            at: self.clock.now(),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            reason: reason.into(),
            before,
            after,
            outcome: outcome.into(),
        };
        info!(actor, action, target, reason, outcome, "audit");
        self.store
            .audit(record)
            .inspect_err(|e| warn!(error = %e, "audit log write failed"))
    }

    /// Overrides in force now (expired ones excluded).
    pub fn active_overrides(&self) -> Vec<Override> {
        let now = self.clock.now();
        self.overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|o| o.expires_at > now)
            .cloned()
            .collect()
    }

    /// Adds an override, persists and audits it.
    pub fn add_override(
        &self,
        scope: OverrideScope,
        action: OverrideAction,
        reason: String,
        actor: String,
        ttl: Dur,
    ) -> Result<Override, StoreError> {
        let now = self.clock.now();
        let o = Override {
            id: format!("ovr-{}", self.next_override.fetch_add(1, Ordering::Relaxed)),
            scope,
            action,
            reason,
            actor,
            created_at: now,
            expires_at: now + ttl,
        };
        let snapshot = {
            let mut list = self.overrides.lock().unwrap_or_else(|e| e.into_inner());
            list.push(o.clone());
            list.clone()
        };
        self.store.save("overrides.json", &snapshot)?;
        let target = scope_name(&o.scope);
        self.audit(Entry {
            actor: &o.actor,
            action: "override.create",
            target: &target,
            reason: &o.reason,
            before: serde_json::Value::Null,
            after: json(&o),
            outcome: "applied",
        })?;
        Ok(o)
    }

    /// Deletes an override by id; `None` when there is none.
    pub fn delete_override(
        &self,
        id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Option<Override>, StoreError> {
        let (removed, snapshot) = {
            let mut list = self.overrides.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = list.iter().position(|o| o.id == id) else {
                return Ok(None);
            };
            let removed = list.remove(i);
            (removed, list.clone())
        };
        self.store.save("overrides.json", &snapshot)?;
        self.audit(Entry {
            actor,
            action: "override.delete",
            target: &scope_name(&removed.scope),
            reason,
            before: json(&removed),
            after: serde_json::Value::Null,
            outcome: "applied",
        })?;
        Ok(Some(removed))
    }

    /// Drops expired overrides, auditing each.
    fn expire_overrides(&self, now: Timestamp) -> Result<(), StoreError> {
        let (expired, snapshot) = {
            let mut list = self.overrides.lock().unwrap_or_else(|e| e.into_inner());
            let (expired, kept): (Vec<Override>, Vec<Override>) =
                list.drain(..).partition(|o| o.expires_at <= now);
            *list = kept;
            (expired, list.clone())
        };
        if expired.is_empty() {
            return Ok(());
        }
        self.store.save("overrides.json", &snapshot)?;
        for o in expired {
            self.audit(Entry {
                actor: "controller",
                action: "override.expire",
                target: &scope_name(&o.scope),
                reason: &o.reason,
                before: json(&o),
                after: serde_json::Value::Null,
                outcome: "applied",
            })?;
        }
        Ok(())
    }

    /// Changes the mode, auditing it.
    pub fn set_mode(&self, mode: Mode, actor: &str, reason: &str) -> Result<Mode, StoreError> {
        let before = std::mem::replace(
            &mut *self.mode.write().unwrap_or_else(|e| e.into_inner()),
            mode,
        );
        self.metrics.set_mode(mode.as_str());
        self.audit(Entry {
            actor,
            action: "mode",
            target: "*",
            reason,
            before: json(&before),
            after: json(&mode),
            outcome: "applied",
        })?;
        Ok(before)
    }
}

/// One action for the audit log (see [`AuditRecord`]).
pub struct Entry<'a> {
    /// Who.
    pub actor: &'a str,
    /// What kind.
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// Why.
    pub reason: &'a str,
    /// State before.
    pub before: serde_json::Value,
    /// State after.
    pub after: serde_json::Value,
    /// `applied`, `dry-run`, `refused: ...`, `failed: ...`.
    pub outcome: &'a str,
}

/// Name of an override's scope, for the audit log.
pub fn scope_name(scope: &OverrideScope) -> String {
    match scope {
        OverrideScope::Group(g) => g.clone(),
        OverrideScope::AllGroups => "*".into(),
        OverrideScope::Topic(t) => t.clone(),
    }
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The loop's own state.
pub struct Runtime<K: ClusterIo> {
    ctl: Arc<Controller>,
    cluster: K,
    state: ControllerState,
    last_obs: Observation,
    audited_targets: BTreeMap<String, RetentionTarget>,
    decided: BTreeMap<String, Gate>,
    ticks: u64,
}

impl<K: ClusterIo> Runtime<K> {
    /// A loop over `cluster`, continuing from the state directory's `state.json` if there is one.
    pub fn new(ctl: Arc<Controller>, cluster: K) -> Result<Runtime<K>, StoreError> {
        let state: ControllerState = ctl.store.load("state.json")?.unwrap_or_default();
        Ok(Runtime {
            ctl,
            cluster,
            state,
            last_obs: Observation::default(),
            audited_targets: BTreeMap::new(),
            decided: BTreeMap::new(),
            ticks: 0,
        })
    }

    /// Runs ticks every `wall_tick` until `shutdown` completes; then flushes state.
    pub async fn run(
        mut self,
        wall_tick: Duration,
        mut commands: mpsc::Receiver<Command>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut interval = tokio::time::interval(wall_tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = interval.tick() => self.tick().await,
                Some(cmd) = commands.recv() => self.command(cmd).await,
            }
        }
        if let Err(e) = self.ctl.store.save("state.json", &self.state) {
            warn!(error = %e, "could not flush state on shutdown");
        }
        info!(ticks = self.ticks, "control loop stopped, state flushed");
    }

    /// Reads every sensor concurrently, each within the sensor timeout; a failed or late sensor
    /// keeps its last readings (which then age) and is reported.
    pub async fn observe(&self) -> Observation {
        let timeout = Duration::from_millis(self.ctl.config.effective_sensor_timeout().0);
        let mut obs = observe_once(&self.cluster, &self.ctl.policy, timeout).await;
        let last = &self.last_obs;
        let faults = obs.sensor_errors.clone();
        for f in &faults {
            match f.sensor.as_str() {
                "disk" => obs.disks = last.disks.clone(),
                "copy_lag" => obs.copy_lag = last.copy_lag.clone(),
                "lag" => obs.groups = last.groups.clone(),
                _ => obs.topics = last.topics.clone(),
            }
            self.ctl
                .metrics
                .sensor_errors
                .get_or_create(&crate::metrics::SensorLabel {
                    sensor: f.sensor.clone(),
                })
                .inc();
            warn!(sensor = %f.sensor, reason = %f.reason, "sensor read failed");
        }
        obs
    }

    /// One control tick.
    pub async fn tick(&mut self) {
        let span = info_span!("tick", n = self.ticks + 1);
        async {
            let started = Instant::now();
            let now = self.ctl.clock.now();
            if let Err(e) = self.ctl.expire_overrides(now) {
                warn!(error = %e, "could not persist expired overrides");
            }
            let obs = self.observe().await;
            let share_alert = self.share_by_membership().await;
            let overrides = self.ctl.active_overrides();
            let (mut decision, state) =
                decide(&obs, &self.ctl.policy, &self.state, &overrides, now);
            decision.alerts.extend(share_alert);
            let mode = self.ctl.mode();
            if mode != Mode::Observe {
                self.reconcile_gates(&decision, mode).await;
                if self.ctl.config.retention_actions {
                    self.reconcile_retention(&decision, &state, &obs, mode)
                        .await;
                }
                self.state = state;
                if let Err(e) = self.ctl.store.save("state.json", &self.state) {
                    warn!(error = %e, "could not persist engine state");
                }
            } else {
                self.reconcile_gates(&decision, mode).await;
            }
            self.ticks += 1;
            if ready_after(&decision, &obs) && !self.ctl.ready.swap(true, Ordering::Relaxed) {
                info!("first tick with fresh disk and lag data: ready");
                self.ctl.metrics.ready.set(1);
            }
            self.ctl.metrics.observe_tick(&obs, &decision);
            self.ctl.metrics.permits(&self.ctl.gates.counters());
            self.publish_status(obs.clone(), decision, overrides, mode);
            self.last_obs = obs;
            self.ctl
                .metrics
                .tick_duration
                .observe(started.elapsed().as_secs_f64());
        }
        .instrument(span)
        .await
    }

    /// With `gate.share = "membership"`, divides each group's rate by its member count; when the
    /// broker cannot say, falls back to `gate.instances` and says so.
    async fn share_by_membership(&self) -> Option<crate::policy::Alert> {
        if self.ctl.config.gate.share != crate::config::ShareMode::Membership {
            return None;
        }
        let groups = self.ctl.policy.group_names();
        let timeout = Duration::from_millis(self.ctl.config.effective_sensor_timeout().0);
        let answer = tokio::time::timeout(timeout, self.cluster.read_members(&groups)).await;
        match answer {
            Ok(Ok(members)) => {
                for (group, n) in members {
                    let _ = self.ctl.gates.set_share(&group, (n > 0).then_some(n));
                }
                None
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer in time".to_string(),
                };
                for g in &groups {
                    let _ = self.ctl.gates.set_share(g, None);
                }
                Some(crate::policy::Alert {
                    severity: crate::policy::Severity::Warning,
                    code: "gate_share_fallback".into(),
                    message: format!(
                        "the broker cannot say how many members the catch-up groups have ({why}): each instance hands out rate / gate.instances ({})",
                        self.ctl.config.gate.instances
                    ),
                })
            }
        }
    }

    async fn reconcile_gates(&mut self, decision: &Decision, mode: Mode) {
        for (group, d) in &decision.groups {
            let (gate, reasons) = match mode {
                Mode::Active => (d.gate.clone(), d.reasons.clone()),
                Mode::DryRun => (
                    Gate::Open,
                    vec![format!(
                        "dry-run: would be {}: {}",
                        d.gate.name(),
                        d.reasons.join("; ")
                    )],
                ),
                Mode::Observe => (
                    Gate::Open,
                    vec!["observe mode: the controller does not gate consumers".to_string()],
                ),
            };
            let before = self.ctl.gates.view(group).ok();
            let expires_at = self.ctl.clock.to_wall(d.expires_at);
            if let Err(e) = self
                .ctl
                .gates
                .publish_gate(group, &gate, expires_at, &reasons)
            {
                warn!(group, error = %e, "gate not registered");
            }
            let _ = self.ctl.gates.set_fallback(group, self.fallback(group));
            let mut local = d.clone();
            local.gate = gate.clone();
            if let Err(e) = self.cluster.set_gate(group, &local).await {
                warn!(group, error = %e, "gate actuator failed");
            }
            let view = self.ctl.gates.view(group).ok();
            self.ctl
                .metrics
                .gate(group, gate.name(), view.as_ref().and_then(|v| v.rate));
            // Audit what the engine decided whenever the state changes or the rate moves by 10% or
            // more; in dry-run that is what it would have done.
            let previous = self.decided.insert(group.clone(), d.gate.clone());
            if mode != Mode::Observe
                && previous
                    .as_ref()
                    .is_none_or(|p| significant_change(p, &d.gate))
            {
                let outcome = if mode == Mode::DryRun {
                    "dry-run"
                } else {
                    "applied"
                };
                let _ = self.ctl.audit(Entry {
                    actor: "controller",
                    action: "gate",
                    target: group,
                    reason: &d.reasons.join("; "),
                    before: json(&before),
                    after: json(&d.gate),
                    outcome,
                });
            }
        }
    }

    /// The policy's fallback for `group`, with its minimum rate when known.
    fn fallback(&self, group: &str) -> crate::gate::FallbackHint {
        let p = &self.ctl.policy;
        let g = p.groups.iter().find(|g| g.name == group);
        let reference = g
            .and_then(|g| g.max_rate)
            .or_else(|| self.state.groups.get(group).and_then(|t| t.reference_rate));
        let min_rate = g
            .and_then(|g| g.min_rate)
            .or_else(|| reference.map(|r| r * p.throttle.min_fraction));
        crate::gate::FallbackHint {
            hold_secs: p.throttle.fallback_hold.secs_f64(),
            ramp_secs: p.throttle.fallback_ramp.secs_f64(),
            min_rate,
        }
    }

    async fn reconcile_retention(
        &mut self,
        decision: &Decision,
        state: &ControllerState,
        obs: &Observation,
        mode: Mode,
    ) {
        for (topic, d) in &decision.topics {
            let Some(configs) = obs.topics.iter().find(|t| &t.topic == topic) else {
                continue;
            };
            let original = state.topics.get(topic).and_then(|t| t.original.as_ref());
            let new_target = self.audited_targets.get(topic) != Some(&d.target);
            let reason = d.reasons.join("; ");
            // (after, outcome, record it) for each way the plan can go.
            let (after, outcome, record) =
                match retention::plan(topic, &d.target, original, configs, &self.ctl.policy) {
                    Ok(None) => (serde_json::Value::Null, String::new(), false),
                    Ok(Some(change)) if mode == Mode::DryRun => {
                        (json(&change), "dry-run".to_string(), new_target)
                    }
                    Ok(Some(change)) => {
                        let outcome = match self.cluster.apply_retention(topic, &change).await {
                            Ok(()) => "applied".to_string(),
                            Err(e) => format!("failed: {e}"),
                        };
                        (json(&change), outcome, true)
                    }
                    Err(refusal) => (
                        json(&d.target),
                        format!("refused: {}", refusal.reason),
                        new_target,
                    ),
                };
            if record {
                let _ = self.ctl.audit(Entry {
                    actor: "controller",
                    action: "retention",
                    target: topic,
                    reason: &reason,
                    before: json(&d.current_ms),
                    after,
                    outcome: &outcome,
                });
            }
            self.audited_targets.insert(topic.clone(), d.target.clone());
        }
    }

    fn publish_status(
        &self,
        obs: Observation,
        decision: Decision,
        overrides: Vec<Override>,
        mode: Mode,
    ) {
        let topics = self
            .ctl
            .policy
            .managed_topics()
            .into_iter()
            .map(|topic| {
                let d = decision.topics.get(&topic);
                let original = self
                    .state
                    .topics
                    .get(&topic)
                    .and_then(|t| t.original.as_ref());
                ManagedTopic {
                    current_ms: d.and_then(|d| d.current_ms),
                    original_ms: d.and_then(|d| d.original_ms),
                    original_source: original.map(|o| match o.source {
                        crate::sensors::ConfigSource::Topic => "topic".to_string(),
                        crate::sensors::ConfigSource::Inherited => "inherited".to_string(),
                    }),
                    target: d.map_or(RetentionTarget::Original, |d| d.target.clone()),
                    topic,
                }
            })
            .collect();
        let status = Status {
            mode,
            ready: self.ctl.ready.load(Ordering::Relaxed),
            ticks: self.ticks,
            sensor_errors: obs.sensor_errors.clone(),
            limitations: {
                let l = limitations(&self.cluster, &self.ctl.config, &obs.sensor_errors);
                self.ctl.metrics.limitations(&obs.sensor_errors, &l);
                l
            },
            cluster: self.cluster.describe(),
            observation: Some(obs),
            decision: Some(decision),
            overrides,
            topics,
        };
        *self.ctl.status.write().unwrap_or_else(|e| e.into_inner()) = status;
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Restore {
                actor,
                reason,
                hold,
                reply,
            } => {
                if !self.ctl.config.retention_actions {
                    let why = "not restored: this instance does not own retention (retention_actions = false); ask the instance that does".to_string();
                    let _ = reply.send(
                        self.ctl
                            .policy
                            .managed_topics()
                            .into_iter()
                            .map(|t| (t, why.clone()))
                            .collect(),
                    );
                    return;
                }
                let obs = self.observe().await;
                let mut results = Vec::new();
                for topic in self.ctl.policy.managed_topics() {
                    let original = self
                        .state
                        .topics
                        .get(&topic)
                        .and_then(|t| t.original.clone());
                    let Some(configs) = obs.topics.iter().find(|t| t.topic == topic) else {
                        results
                            .push((topic, "configs could not be read: not restored".to_string()));
                        continue;
                    };
                    let outcome = match retention::plan(
                        &topic,
                        &RetentionTarget::Original,
                        original.as_ref(),
                        configs,
                        &self.ctl.policy,
                    ) {
                        Ok(None) => "already at its original".to_string(),
                        Ok(Some(change)) => {
                            match self.cluster.apply_retention(&topic, &change).await {
                                Ok(()) => {
                                    if let Some(t) = self.state.topics.get_mut(&topic) {
                                        t.previous_ms = t.lowered_ms.take();
                                    }
                                    let _ = self.ctl.audit(Entry {
                                        actor: &actor,
                                        action: "restore",
                                        target: &topic,
                                        reason: &reason,
                                        before: json(&configs.effective_local_retention_ms()),
                                        after: json(&change),
                                        outcome: "applied",
                                    });
                                    "restored".to_string()
                                }
                                Err(e) => format!("failed: {e}"),
                            }
                        }
                        Err(refusal) => format!("refused: {}", refusal.reason),
                    };
                    if let Err(e) = self.ctl.add_override(
                        OverrideScope::Topic(topic.clone()),
                        OverrideAction::HoldRetention,
                        format!("after restore: {reason}"),
                        actor.clone(),
                        hold,
                    ) {
                        warn!(error = %e, "could not record the hold override");
                    }
                    results.push((topic, outcome));
                }
                if let Err(e) = self.ctl.store.save("state.json", &self.state) {
                    warn!(error = %e, "could not persist engine state");
                }
                let _ = reply.send(results);
            }
        }
    }
}

/// Whether a gate change is worth an audit record: a different state, or a rate 10% off.
fn significant_change(before: &Gate, after: &Gate) -> bool {
    match (before, after) {
        (Gate::Throttled { rate: a, .. }, Gate::Throttled { rate: b, .. }) => {
            (a - b).abs() >= 0.1 * a.abs().max(b.abs())
        }
        _ => before.name() != after.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(sensor: &str) -> SensorFault {
        SensorFault {
            sensor: sensor.into(),
            reason: "test".into(),
        }
    }

    #[test]
    fn readiness_needs_fresh_disk_and_lag_but_not_copy_lag_or_configs() {
        let now = Timestamp(10_000_000);
        let policy = Policy::default();
        let obs = Observation::test()
            .with_disk(1, 50.0, now)
            .with_disk(2, 50.0, now)
            .with_lag("g", 100, 10, now);
        let decide_on = |obs: &Observation| {
            crate::policy::decide(obs, &policy, &ControllerState::default(), &[], now).0
        };
        let d = decide_on(&obs);
        assert!(ready_after(&d, &obs));
        // A cluster without copy lag (DEFAULT monitoring, Prometheus) is still ready to gate.
        let mut no_copy = obs.clone();
        no_copy.sensor_errors = vec![fault("copy_lag"), fault("topic_configs")];
        assert!(ready_after(&decide_on(&no_copy), &no_copy));
        for sensor in ["disk", "lag"] {
            let mut failed = obs.clone();
            failed.sensor_errors = vec![fault(sensor)];
            assert!(!ready_after(&decide_on(&failed), &failed), "{sensor}");
        }
        let stale = Observation::test()
            .with_disk(1, 50.0, Timestamp(now.0 - 3_600_000))
            .with_lag("g", 100, 10, now);
        assert!(!ready_after(&decide_on(&stale), &stale));
        let no_disk = Observation::test().with_lag("g", 100, 10, now);
        assert!(!ready_after(&decide_on(&no_disk), &no_disk));
    }
}
