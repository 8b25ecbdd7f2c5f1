//! The control loop ([`Runtime`]): one tick reads the sensors, decides, carries out the actions the
//! mode allows ([`super::reconcile`]), persists the engine state, and publishes status and metrics.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

use super::controller::json;
use super::reconcile::{self, Action};
use super::status::{self, Status};
use super::{ClusterIo, Command, Controller, Entry, limitations, observe_once, ready_after};
use crate::config::Mode;
use crate::metrics::Label;
use crate::policy::{
    AlertCode, ControllerState, Decision, ExtensionTarget, Gate, GroupDecision, Override,
    RetentionTarget, decide,
};
use crate::sensors::{Observation, SensorKind};
use crate::store::Outcome;
use crate::store::StoreError;
use crate::units::Timestamp;

/// The loop's own state.
pub struct Runtime<K: ClusterIo> {
    pub(super) ctl: Arc<Controller>,
    pub(super) cluster: K,
    pub(super) state: ControllerState,
    last_obs: Observation,
    pub(super) audited_targets: BTreeMap<String, RetentionTarget>,
    /// The same for input topics' extension targets.
    pub(super) audited_extensions: BTreeMap<String, ExtensionTarget>,
    decided: BTreeMap<String, Gate>,
    ticks: u64,
    /// Why the retention journal cannot be used this tick, if it cannot: retention actions stop,
    /// the gate goes on.
    pub(super) journal_problem: Option<String>,
    /// This instance's HA membership (`[ha]`): followers serve the leader's decisions.
    pub(super) ha: Option<Arc<crate::ha::Ha>>,
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
            audited_extensions: BTreeMap::new(),
            decided: BTreeMap::new(),
            ticks: 0,
            journal_problem: None,
            ha: None,
        })
    }

    /// Makes this loop one instance of an HA deployment: it decides and acts only while it leads
    /// in its epoch (checked before every tick), and otherwise serves the leader's decisions.
    pub fn with_ha(mut self, ha: Arc<crate::ha::Ha>) -> Runtime<K> {
        self.ha = Some(ha);
        self
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
        let ctl = self.ctl.clone();
        // The HA fast path runs beside the loop, so a long tick never delays a fleet-wide pause.
        let sync = self.ha.clone().map(|ha| {
            [
                tokio::spawn(super::ha_sync::sync(ctl.clone(), ha.clone())),
                tokio::spawn(super::ha_sync::show(ctl.clone(), ha)),
            ]
        });
        let mut last_tick = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = interval.tick() => {}
                () = ctl.decide_now.notified() => {
                    // An override or mode change: decide now (a burst of them, once).
                    let gap = last_tick + super::controller::MIN_WOKEN_GAP;
                    tokio::select! {
                        _ = &mut shutdown => break,
                        () = tokio::time::sleep_until(gap) => {}
                    }
                    interval.reset();
                }
                Some(cmd) = commands.recv() => {
                    self.command(cmd).await;
                    continue;
                }
            }
            last_tick = tokio::time::Instant::now();
            // A shutdown during the tick stops it between writes, not after all of them.
            let tick = self.tick();
            tokio::pin!(tick);
            tokio::select! {
                _ = &mut tick => {}
                _ = &mut shutdown => {
                    ctl.stopping.store(true, Ordering::Relaxed);
                    tick.await;
                    break;
                }
            }
        }
        for task in sync.into_iter().flatten() {
            task.abort();
        }
        if let Err(e) = self.save_state().await {
            warn!(error = %e, "could not flush state on shutdown");
        }
        info!(ticks = self.ticks, "control loop stopped, state flushed");
    }

    /// Writes the engine state to `state.json`, off the async workers.
    pub(super) async fn save_state(&self) -> Result<(), StoreError> {
        let state = self.state.clone();
        self.ctl
            .blocking(move |c| c.store.save("state.json", &state))
            .await
    }

    /// Reads every sensor concurrently, each within the sensor timeout; a failed or late sensor
    /// keeps its last readings (which then age) and is reported. A topic or group that alone could
    /// not be read keeps its own last reading, and the others are this tick's. A broker whose copy
    /// lag alone is unknown (missing or negative) keeps none: its last value is exactly what can no
    /// longer be trusted (Kafka stops emitting the metric while uploads fail, KAFKA-19995), so the
    /// engine sees no reading and does not lower retention.
    pub async fn observe(&self) -> Observation {
        let timeout = Duration::from_millis(self.ctl.config.effective_sensor_timeout().0);
        let mut obs = observe_once(&self.cluster, &self.ctl.policy, Some(timeout)).await;
        let last = &self.last_obs;
        let faults = obs.sensor_errors.clone();
        for f in &faults {
            match (f.sensor, f.target.as_deref()) {
                (SensorKind::Disk, None) => obs.disks = last.disks.clone(),
                (SensorKind::CopyLag, None) => obs.copy_lag = last.copy_lag.clone(),
                (SensorKind::Lag, None) => obs.groups = last.groups.clone(),
                (SensorKind::TopicConfigs, None) => obs.topics = last.topics.clone(),
                (SensorKind::InputTopics, None) => obs.inputs = last.inputs.clone(),
                (SensorKind::InputTopics, Some(topic)) => {
                    keep_last(&mut obs.inputs, &last.inputs, |t| t.topic == topic)
                }
                (SensorKind::Lag, Some(group)) => {
                    keep_last(&mut obs.groups, &last.groups, |g| g.group == group)
                }
                (SensorKind::TopicConfigs, Some(topic)) => {
                    keep_last(&mut obs.topics, &last.topics, |t| t.topic == topic)
                }
                (SensorKind::CopyLag | SensorKind::Disk, Some(_))
                | (SensorKind::Members | SensorKind::State, _) => {}
            }
            self.ctl
                .metrics
                .sensor_errors
                .get_or_create(&crate::metrics::SensorLabel {
                    sensor: Label(f.sensor),
                })
                .inc();
            match &f.target {
                None => warn!(sensor = %f.sensor, reason = %f.reason, "sensor read failed"),
                Some(item) => {
                    warn!(sensor = %f.sensor, item = %item, reason = %f.reason, "sensor read failed for one item")
                }
            }
        }
        obs
    }

    /// One control tick.
    pub async fn tick(&mut self) {
        let span = info_span!("tick", n = self.ticks + 1);
        async {
            let started = crate::clock::monotonic_now();
            let now = self.ctl.clock.now();
            let epoch = match self.fence_ha().await {
                Ok(epoch) => epoch,
                Err(()) => return self.follow().await,
            };
            if let Err(e) = self.ctl.blocking(move |c| c.expire_overrides(now)).await {
                warn!(error = %e, "expired overrides");
            }
            let mut obs = self.observe().await;
            if self.ha_allows_retention() {
                self.settle_journal(&mut obs, now).await;
                self.audit_journal_notes().await;
            }
            let share_alert = self.share_by_membership().await;
            self.share_by_ha();
            let overrides = self.overrides_in_force();
            let (mut decision, state) =
                decide(&obs, &self.ctl.policy, &self.state, &overrides, now);
            decision.alerts.extend(share_alert);
            let mode = self.ctl.mode();
            let owns_retention = self.ctl.config.retention_actions
                && self.journal_problem.is_none()
                && self.ha_allows_retention();
            let actions = reconcile::plan(
                &decision,
                &state,
                &obs,
                mode,
                &self.ctl.policy,
                owns_retention,
            );
            let shared = self.gates_to_share(&actions);
            self.carry_out(actions, &decision, &obs, mode, now).await;
            self.share_with_followers(epoch, shared).await;
            self.audit_losses(&decision).await;
            if mode == Mode::Observe {
                // Observing keeps no engine state, except what counts losses once each.
                keep_loss_counts(&mut self.state, &state);
            } else {
                if owns_retention {
                    self.note_targets(&decision, &obs);
                }
                self.state = state;
                if let Err(e) = self.save_state().await {
                    warn!(error = %e, "could not persist engine state");
                }
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

    /// Records every input loss of the tick in the audit log (in every mode: a loss is a fact, not
    /// an action), with the offsets.
    async fn audit_losses(&self, decision: &Decision) {
        for l in &decision.losses {
            let target = format!("{}/{}:{}", l.group, l.topic, l.partition);
            let reason = format!(
                "{} records of {}:{} were deleted before group {} consumed them (committed offset {} is below the log start {})",
                l.records, l.topic, l.partition, l.group, l.committed, l.log_start
            );
            warn!(group = %l.group, topic = %l.topic, partition = l.partition, records = l.records, "input records lost");
            let _ = self
                .ctl
                .audit_async(Entry {
                    actor: "controller",
                    action: "input.lost",
                    target: &target,
                    reason: &reason,
                    before: serde_json::json!({ "committed": l.committed }),
                    after: serde_json::json!({ "log_start": l.log_start, "records_lost": l.records }),
                    outcome: crate::store::Outcome::Applied,
                })
                .await;
        }
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
                    code: AlertCode::GateShareFallback,
                    message: format!(
                        "the broker cannot say how many members the catch-up groups have ({why}): each instance hands out rate / gate.instances ({})",
                        self.ctl.config.gate.instances
                    ),
                })
            }
        }
    }

    /// Carries out the tick's actions: gates published (and audited when the decision changed
    /// significantly; in dry-run as what would have been done), retention changed through the
    /// actuator and audited.
    async fn carry_out(
        &mut self,
        actions: Vec<Action>,
        decision: &Decision,
        obs: &Observation,
        mode: Mode,
        now: Timestamp,
    ) {
        for action in actions {
            match action {
                Action::Gate { group, publish } => {
                    let Some(decided) = decision.groups.get(&group) else {
                        continue;
                    };
                    self.publish_gate(&group, &publish, decided, mode).await;
                }
                Action::Retention { topic, step } => {
                    let Some(d) = decision.topics.get(&topic) else {
                        continue;
                    };
                    if self.ctl.stopping.load(Ordering::Relaxed) {
                        info!(topic, "shutting down: no further retention write this tick");
                        continue;
                    }
                    self.change_retention(&topic, d, step, obs, now).await;
                }
                Action::Extension {
                    topic,
                    target,
                    step,
                } => {
                    if self.ctl.stopping.load(Ordering::Relaxed) {
                        info!(topic, "shutting down: no further retention write this tick");
                        continue;
                    }
                    let Some(d) = decision.extensions.get(&topic) else {
                        continue;
                    };
                    self.change_extension(&topic, &target, d, step, obs, now)
                        .await;
                }
            }
        }
    }

    async fn publish_gate(
        &mut self,
        group: &str,
        publish: &GroupDecision,
        decided: &GroupDecision,
        mode: Mode,
    ) {
        let before = self.ctl.gates.view(group).ok();
        let expires_at = self.ctl.clock.to_wall(publish.expires_at);
        if let Err(e) =
            self.ctl
                .gates
                .publish_gate(group, &publish.gate, expires_at, &publish.reasons)
        {
            warn!(group, error = %e, "gate not registered");
        }
        let _ = self.ctl.gates.set_fallback(group, self.fallback(group));
        if let Err(e) = self.cluster.set_gate(group, publish).await {
            warn!(group, error = %e, "gate actuator failed");
        }
        let view = self.ctl.gates.view(group).ok();
        self.ctl.metrics.gate(
            group,
            publish.gate.state(),
            view.as_ref().and_then(|v| v.rate),
        );
        // Audit what the engine decided whenever the state changes or the rate moves by 10% or
        // more; in dry-run that is what it would have done.
        let previous = self.decided.insert(group.to_string(), decided.gate.clone());
        if mode != Mode::Observe
            && previous
                .as_ref()
                .is_none_or(|p| significant_change(p, &decided.gate))
        {
            let outcome = if mode == Mode::DryRun {
                Outcome::DryRun
            } else {
                Outcome::Applied
            };
            let _ = self
                .ctl
                .audit_async(Entry {
                    actor: "controller",
                    action: "gate",
                    target: group,
                    reason: &decided.reasons.join("; "),
                    before: json(&before),
                    after: json(&decided.gate),
                    outcome,
                })
                .await;
        }
    }

    /// The policy's fallback for `group`, with its minimum rate when known.
    pub(super) fn fallback(&self, group: &str) -> crate::actuators::gate::FallbackHint {
        let p = &self.ctl.policy;
        let g = p.groups.iter().find(|g| g.name == group);
        let reference = g
            .and_then(|g| g.max_rate)
            .or_else(|| self.state.groups.get(group).and_then(|t| t.reference_rate));
        let min_rate = g
            .and_then(|g| g.min_rate)
            .or_else(|| reference.map(|r| r * p.throttle.min_fraction));
        crate::actuators::gate::FallbackHint {
            hold_secs: p.throttle.fallback_hold.secs_f64(),
            ramp_secs: p.throttle.fallback_ramp.secs_f64(),
            min_rate,
        }
    }

    fn publish_status(
        &self,
        obs: Observation,
        decision: Decision,
        overrides: Vec<Override>,
        mode: Mode,
    ) {
        let topics = status::managed_topics(&self.ctl.policy, &self.state, &decision);
        let status = Status {
            mode,
            ready: self.ctl.ready.load(Ordering::Relaxed),
            ticks: self.ticks,
            sensor_errors: obs.sensor_errors.clone(),
            limitations: {
                let mut l = limitations(&self.cluster, &self.ctl.config, &obs.sensor_errors);
                l.extend(self.ha_limitation());
                l.extend(
                    self.journal_problem
                        .iter()
                        .map(|why| crate::sensors::Limitation {
                            missing: why.clone(),
                            disables: vec!["lower_retention".into(), "restore_retention".into()],
                        }),
                );
                self.ctl.metrics.limitations(&obs.sensor_errors, &l);
                l
            },
            cluster: self.cluster.describe(),
            ha: self.ha.as_ref().map(|h| h.status()),
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
                who,
                reason,
                hold,
                topic,
                reply,
            } => {
                let results = if self.ha_allows_retention() {
                    self.restore(&who, &reason, hold, topic.as_deref()).await
                } else if let Some(ha) = self.ha.clone() {
                    // A follower forwards it to the leader (without holding up this loop).
                    tokio::spawn(super::ha_forward::forward_restore(
                        self.ctl.clone(),
                        ha,
                        (who, reason, hold, topic),
                        reply,
                    ));
                    return;
                } else {
                    let why = self.ha_refusal("restored");
                    let topics = self.ctl.policy.managed_topics().into_iter();
                    topics
                        .filter(|t| topic.as_deref().is_none_or(|o| o == t))
                        .map(|t| (t, why.clone()))
                        .collect()
                };
                let _ = reply.send(results);
            }
            Command::Adopt {
                who,
                topic,
                reason,
                reply,
            } => {
                let answer = if self.ha_allows_retention() {
                    self.adopt(&who, &topic, &reason).await
                } else if let Some(ha) = self.ha.clone() {
                    // A follower forwards it to the leader (without holding up this loop).
                    tokio::spawn(super::ha_forward::forward_adopt(
                        self.ctl.clone(),
                        ha,
                        (who, topic, reason),
                        reply,
                    ));
                    return;
                } else {
                    Err(self.ha_refusal("adopted"))
                };
                let _ = reply.send(answer);
            }
        }
    }
}

/// Puts the last reading of the one item `is_it` picks (if there was one) into `now`'s readings, in
/// place of any this tick has of it, so it ages into staleness.
fn keep_last<T: Clone>(now: &mut Vec<T>, last: &[T], is_it: impl Fn(&T) -> bool) {
    now.retain(|x| !is_it(x));
    now.extend(last.iter().filter(|x| is_it(x)).cloned());
}

/// Whether a gate change is worth an audit record: a different state, or a rate 10% off.
fn significant_change(before: &Gate, after: &Gate) -> bool {
    match (before, after) {
        (Gate::Throttled { rate: a, .. }, Gate::Throttled { rate: b, .. }) => {
            (a - b).abs() >= 0.1 * a.abs().max(b.abs())
        }
        _ => before.state() != after.state(),
    }
}

/// Copies the loss counters of `decided` into `kept` (observe mode keeps no other engine state),
/// so a loss is counted once, not again every tick.
fn keep_loss_counts(
    kept: &mut crate::policy::ControllerState,
    decided: &crate::policy::ControllerState,
) {
    for (group, t) in &decided.groups {
        let k = kept.groups.entry(group.clone()).or_default();
        k.lost_through = t.lost_through.clone();
        k.records_lost = t.records_lost.clone();
        k.last_loss_at = t.last_loss_at;
    }
}
