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
//! A restart loads `state.json`, `overrides.json` and the audit log and continues: it neither
//! restores nor re-applies blindly.

use std::future::Future;
use std::time::Duration;

use crate::actuators::{GateActuator, RetentionActuator};
use crate::config::RunConfig;
use crate::policy::{Decision, Policy};
use crate::sensors::{
    ClusterFacts, CopyLagSensor, DiskSensor, LagSensor, Limitation, Observation, SensorError,
    SensorFault, SensorKind, TopicConfigSensor,
};
use crate::units::Dur;

pub mod cluster;
pub mod controller;
pub mod reconcile;
pub mod status;
pub mod tick;

pub use controller::{ChangeError, Command, Controller, Entry, RuntimeError, scope_name};
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
pub fn ready_after(decision: &Decision, obs: &Observation) -> bool {
    !decision.brokers.is_empty()
        && decision.brokers.iter().all(|b| !b.stale)
        && !obs
            .sensor_errors
            .iter()
            .any(|f| matches!(f.sensor, SensorKind::Disk | SensorKind::Lag))
}

/// Reads every sensor of `cluster` once, concurrently, each within `timeout` (none: as long as it
/// takes, for the simulator, whose sensors answer at once); failures are reported in
/// `sensor_errors`. The control loop, `catchup observe`, `catchup plan` and the simulator all
/// observe through this.
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
        copy_lag: reading(SensorKind::CopyLag, copy, &late, &mut faults),
        groups: reading(SensorKind::Lag, lag, &late, &mut faults),
        topics: reading(SensorKind::TopicConfigs, configs, &late, &mut faults),
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
    faults.push(SensorFault { sensor, reason });
    T::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ControllerState;
    use crate::units::Timestamp;

    fn fault(sensor: &str) -> SensorFault {
        SensorFault {
            sensor: SensorKind::TICK
                .into_iter()
                .find(|k| *k == sensor)
                .expect("a sensor of the tick"),
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
