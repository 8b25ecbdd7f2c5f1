//! The control loop and what it shares with the API.
//!
//! Every tick ([`tick`]) reads all sensors concurrently, each with a timeout ([`observe_once`]),
//! calls [`decide`](crate::policy::decide), turns the decision into actions for the mode
//! ([`reconcile::plan`], shared with the simulator) and carries them out through the actuators;
//! then it persists state and records every action in the audit log.
//!
//! - [`controller`]: state shared by the loop and the HTTP API (mode, overrides, gates, audit);
//! - [`tick`]: the loop itself ([`Runtime`]);
//! - [`reconcile`]: the pure step from a decision to actions;
//! - [`status`]: what `/v1/status` shows;
//! - [`cluster`]: the real cluster (Kafka, MSK) behind the sensor and actuator traits.
//!
//! A restart loads `state.json`, `overrides.jsonl` and the audit log and continues: it neither
//! restores nor re-applies blindly.

use std::future::Future;
use std::time::Duration;

use crate::actuators::{GateActuator, RetentionActuator};
use crate::config::RunConfig;
use crate::policy::{Decision, Policy};
use crate::sensors::{
    ClusterFacts, CopyLagSensor, DiskSensor, LagSensor, Limitation, Observation, Readings,
    SensorError, SensorFault, SensorKind, TopicConfigSensor,
};
use crate::units::Dur;

pub mod cluster;
pub mod controller;
mod extension;
mod ha;
mod ha_forward;
mod ha_sync;
pub mod reconcile;
mod retention;
pub mod status;
pub mod tick;

pub use controller::{
    ChangeError, Command, Controller, Entry, OverrideBook, RuntimeError, scope_name,
};
pub(crate) use ha_forward::{NO_ANSWER, NOT_FORWARDED};
pub use status::{ManagedTopic, Status};
pub use tick::Runtime;

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

/// Whether a tick makes the controller ready: fresh disk readings from every broker and lag read,
/// the data gating needs. Copy lag and topic configs only enable retention changes, which have
/// their own guards (invariants 5 and 6); a cluster that can never give them (monitoring level
/// `DEFAULT`, the Prometheus source) must still become ready, or its gate would never be served.
///
/// "Lag read" means the lag sensor answered as a whole and read at least one group. One group
/// whose offsets could not be fetched (its coordinator moving, an ACL denying it) does not hold
/// readiness back: readiness serves every group's gate at once, and that group's own gate is
/// already handled by the engine, which sees its offsets missing or aging (`lag_missing`,
/// `lag_stale`: not drained, no restore). Holding the whole controller unready for it would take
/// every other group's gate down with it, so one bad group would blind all. When no group at all
/// could be read, lag was not read and readiness waits.
pub fn ready_after(decision: &Decision, obs: &Observation) -> bool {
    let failed_groups: Vec<&str> = obs
        .sensor_errors
        .iter()
        .filter(|f| f.sensor == SensorKind::Lag)
        .filter_map(|f| f.target.as_deref())
        .collect();
    let some_group_read = failed_groups.is_empty()
        || obs
            .groups
            .iter()
            .any(|g| !failed_groups.contains(&g.group.as_str()));
    !decision.brokers.is_empty()
        && decision.brokers.iter().all(|b| !b.stale)
        && !obs
            .sensor_errors
            .iter()
            .any(|f| f.is_whole() && matches!(f.sensor, SensorKind::Disk | SensorKind::Lag))
        && some_group_read
}

/// Reads every sensor of `cluster` once, concurrently, each within `timeout` (none: as long as it
/// takes, for the simulator, whose sensors answer at once); failures are reported in
/// `sensor_errors`: one fault for a sensor that failed as a whole, and one per topic, group or
/// broker (its `target`) that could not be read while the others were. The control loop, `catchup
/// observe`, `catchup plan` and the simulator all observe through this.
pub async fn observe_once<K>(cluster: &K, policy: &Policy, timeout: Option<Duration>) -> Observation
where
    K: DiskSensor + CopyLagSensor + LagSensor + TopicConfigSensor,
{
    let groups = policy.group_names();
    let topics = policy.managed_topics();
    let (disks, copy, lag, configs) = tokio::join!(
        within(timeout, cluster.read_disks()),
        within(timeout, cluster.read_copy_lag()),
        within(timeout, cluster.read_offsets(&groups)),
        within(timeout, cluster.read_topic_configs(&topics)),
    );
    let late = format!(
        "no answer within {}",
        Dur(timeout.unwrap_or_default().as_millis() as u64)
    );
    let mut faults = Vec::new();
    let mut obs = Observation {
        disks: reading(SensorKind::Disk, disks, &late, &mut faults),
        copy_lag: readings(SensorKind::CopyLag, copy, &late, &mut faults),
        groups: readings(SensorKind::Lag, lag, &late, &mut faults),
        topics: readings(SensorKind::TopicConfigs, configs, &late, &mut faults),
        ..Observation::default()
    };
    // The input topics are known once the offsets are: read after them, in one request.
    let inputs = obs.input_topics();
    if !inputs.is_empty() {
        let answer = within(timeout, cluster.read_topic_configs(&inputs)).await;
        obs.inputs = readings(SensorKind::InputTopics, answer, &late, &mut faults);
    }
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

/// `f`'s output, or `None` when `limit` passed first.
async fn within<T>(limit: Option<Duration>, f: impl Future<Output = T>) -> Option<T> {
    match limit {
        None => Some(f.await),
        Some(d) => tokio::time::timeout(d, f).await.ok(),
    }
}

/// A sensor's answer within its timeout, or empty with the fault recorded.
fn reading<T: Default>(
    sensor: SensorKind,
    answer: Option<Result<T, SensorError>>,
    late: &str,
    faults: &mut Vec<SensorFault>,
) -> T {
    let reason = match answer {
        Some(Ok(v)) => return v,
        Some(Err(e)) => e.to_string(),
        None => late.to_string(),
    };
    faults.push(SensorFault::whole(sensor, reason));
    T::default()
}

/// An item-by-item sensor's answer: the items read, with a fault recorded for each item that could
/// not be read; or, when the whole sensor failed or was late, nothing with one fault.
fn readings<T>(
    sensor: SensorKind,
    answer: Option<Result<Readings<T>, SensorError>>,
    late: &str,
    faults: &mut Vec<SensorFault>,
) -> Vec<T> {
    let r = reading(sensor, answer, late, faults);
    faults.extend(
        r.failed
            .into_iter()
            .map(|f| SensorFault::item(sensor, f.target, f.reason)),
    );
    r.read
}

#[cfg(test)]
mod tests;
