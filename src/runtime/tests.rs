//! Tests of the control loop's observation: readiness, and what a failed sensor or a failed topic,
//! group or broker leaves in the observation.

use std::sync::{Arc, Mutex};

use super::*;
use crate::actuators::ActuatorError;
use crate::actuators::retention::journal::Settled;
use crate::config::{ApiConfig, ClusterConfig, GateConfig, Mode};
use crate::policy::{ControllerState, GroupDecision, GroupPolicy, RateUnit, TopicPolicy};
use crate::sensors::{BrokerCopyLag, BrokerDisk, DiskSource, GroupOffsets, Readings, TopicConfigs};
use crate::units::Timestamp;

fn fault(sensor: &str) -> SensorFault {
    SensorFault::whole(
        SensorKind::TICK
            .into_iter()
            .find(|k| *k == sensor)
            .expect("a sensor of the tick"),
        "test",
    )
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

#[test]
fn one_group_s_lag_fault_does_not_hold_the_others_gates_but_every_group_failing_does() {
    let now = Timestamp(10_000_000);
    let policy = Policy::default();
    let decide_on = |obs: &Observation| {
        crate::policy::decide(obs, &policy, &ControllerState::default(), &[], now).0
    };
    let mut one_failed = Observation::test()
        .with_disk(1, 50.0, now)
        .with_lag("billing", 100, 10, now);
    one_failed.sensor_errors = vec![SensorFault::item(
        SensorKind::Lag,
        "audit",
        "group audit: denied",
    )];
    assert!(ready_after(&decide_on(&one_failed), &one_failed));
    // Every group failed: only an old reading of one is left. Lag was not read.
    let mut all_failed = one_failed.clone();
    all_failed.sensor_errors.push(SensorFault::item(
        SensorKind::Lag,
        "billing",
        "group billing: denied",
    ));
    assert!(!ready_after(&decide_on(&all_failed), &all_failed));
    // A broker's unknown copy lag or one topic's configs never held readiness back.
    let mut item_faults = one_failed.clone();
    item_faults.sensor_errors = vec![
        SensorFault::item(SensorKind::CopyLag, "1", "broker 1: copy lag unknown"),
        SensorFault::item(SensorKind::TopicConfigs, "out", "topic out: gone"),
    ];
    assert!(ready_after(&decide_on(&item_faults), &item_faults));
}

/// What the scripted cluster fails on its next reads.
#[derive(Default)]
pub(super) struct Script {
    now: Timestamp,
    topic: Option<&'static str>,
    group: Option<&'static str>,
    broker: Option<i32>,
    whole_lag: bool,
}

/// A cluster of two brokers, groups and topics as the policy names them, every reading stamped
/// with the script's `now`; it fails the topic, group or broker the script names.
#[derive(Clone, Default)]
pub(super) struct Scripted(Arc<Mutex<Script>>);

impl Scripted {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().expect("script lock")
    }
}

impl ClusterFacts for Scripted {}

impl DiskSensor for Scripted {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        let at = self.script().now;
        Ok((1..=2)
            .map(|broker| BrokerDisk {
                broker,
                used_bytes: 500,
                capacity_bytes: 1000,
                sampled_at: at,
                source: DiskSource::Static,
            })
            .collect())
    }
}

impl CopyLagSensor for Scripted {
    async fn read_copy_lag(&self) -> Result<Readings<BrokerCopyLag>, SensorError> {
        let s = self.script();
        let mut out = Readings::default();
        for broker in 1..=2 {
            if s.broker == Some(broker) {
                out.fail(broker.to_string(), format!("broker {broker}: negative"));
            } else {
                out.read.push(BrokerCopyLag {
                    broker,
                    bytes: 0,
                    sampled_at: s.now,
                });
            }
        }
        Ok(out)
    }
}

impl LagSensor for Scripted {
    async fn read_offsets(&self, groups: &[String]) -> Result<Readings<GroupOffsets>, SensorError> {
        let s = self.script();
        if s.whole_lag {
            return Err(SensorError::Unavailable {
                sensor: SensorKind::Lag,
                reason: "metadata: all brokers down".into(),
            });
        }
        let mut out = Readings::default();
        for g in groups {
            if s.group == Some(g.as_str()) {
                out.fail(g, format!("group {g}: denied"));
            } else {
                let obs = Observation::test().with_lag(g, 100, 10, s.now);
                out.read.extend(obs.groups);
            }
        }
        Ok(out)
    }
}

impl TopicConfigSensor for Scripted {
    async fn read_topic_configs(
        &self,
        topics: &[String],
    ) -> Result<Readings<TopicConfigs>, SensorError> {
        let s = self.script();
        let mut out = Readings::default();
        for t in topics {
            if s.topic == Some(t.as_str()) {
                out.fail(t, format!("topic {t}: Broker: Unknown topic or partition"));
            } else {
                let obs = Observation::test().with_topic(t, Some(4 * 3_600_000), 86_400_000, s.now);
                out.read.extend(obs.topics);
            }
        }
        Ok(out)
    }
}

impl GateActuator for Scripted {
    async fn set_gate(&self, _: &str, _: &GroupDecision) -> Result<(), ActuatorError> {
        Ok(())
    }
}

impl crate::actuators::RetentionActuator for Scripted {
    async fn settle_journal(
        &self,
        _: &[crate::sensors::TopicConfigs],
        _: Timestamp,
    ) -> Result<crate::actuators::Settled, ActuatorError> {
        Ok(Settled::default())
    }

    async fn apply_retention(
        &self,
        topic: &str,
        _: &crate::policy::RetentionTarget,
        _: &str,
        _: &crate::actuators::Evidence<'_>,
        _: Timestamp,
    ) -> Result<crate::actuators::Applied, ActuatorError> {
        Err(ActuatorError::Failed {
            target: topic.into(),
            reason: "read-only test cluster".into(),
        })
    }

    async fn adopt_retention(
        &self,
        topic: &str,
        _: &str,
        _: Timestamp,
    ) -> Result<crate::actuators::Adopted, ActuatorError> {
        Err(ActuatorError::Failed {
            target: topic.into(),
            reason: "read-only test cluster".into(),
        })
    }
}

/// Time as the script says.
struct ScriptClock(Scripted);

impl crate::clock::Clock for ScriptClock {
    fn now(&self) -> Timestamp {
        self.0.script().now
    }
}

pub(super) fn runtime(name: &str, cluster: Scripted) -> Runtime<Scripted> {
    let dir = std::env::temp_dir().join(format!("catchup-observe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut policy = Policy::default();
    for g in ["billing", "audit"] {
        policy.groups.push(GroupPolicy {
            name: g.into(),
            unit: RateUnit::Records,
            max_rate: Some(1000.0),
            min_rate: None,
            lag_threshold: None,
            priority: Default::default(),
            exempt: false,
        });
    }
    for t in ["out-a", "out-b"] {
        policy.retention.topics.push(TopicPolicy {
            name: t.into(),
            floor: None,
        });
    }
    let config = RunConfig {
        mode: Mode::Observe,
        tick: Dur::from_secs(1),
        sensor_timeout: Dur::from_secs(5),
        policy: None,
        state_dir: dir,
        api: ApiConfig::default(),
        gate: GateConfig::default(),
        cluster: ClusterConfig::Simulator {
            scenario: "unused".into(),
            speed: 1.0,
        },
        retention_actions: true,
        ha: None,
    };
    let clock = Arc::new(ScriptClock(cluster.clone()));
    let store = Arc::new(
        crate::store::StateDir::open(
            &config.state_dir,
            crate::store::Holder::this_process("test"),
        )
        .expect("opens"),
    );
    let (ctl, _commands) =
        Controller::new(config, policy, store, Default::default(), clock).expect("controller");
    Runtime::new(ctl, cluster).expect("runtime")
}

fn sampled<'a, T>(
    items: &'a [T],
    name: impl Fn(&'a T) -> (&'a str, Timestamp),
) -> Vec<(&'a str, i64)> {
    let mut v: Vec<(&str, i64)> = items
        .iter()
        .map(|x| {
            let (n, t) = name(x);
            (n, t.0)
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_failed_topic_or_group_keeps_only_its_own_last_reading() {
    let cluster = Scripted::default();
    cluster.script().now = Timestamp(1_000_000);
    let mut rt = runtime("items", cluster.clone());
    rt.tick().await;
    {
        let mut s = cluster.script();
        s.now = Timestamp(1_060_000);
        s.topic = Some("out-b");
        s.group = Some("audit");
        s.broker = Some(2);
    }
    let obs = rt.observe().await;
    assert_eq!(
        sampled(&obs.topics, |t| (t.topic.as_str(), t.sampled_at)),
        [("out-a", 1_060_000), ("out-b", 1_000_000)],
        "out-b keeps its last reading, which ages; out-a is this tick's"
    );
    assert_eq!(
        sampled(&obs.groups, |g| (g.group.as_str(), g.sampled_at)),
        [("audit", 1_000_000), ("billing", 1_060_000)]
    );
    let copy: Vec<(i32, i64)> = obs
        .copy_lag
        .iter()
        .map(|c| (c.broker, c.sampled_at.0))
        .collect();
    assert_eq!(
        copy,
        [(1, 1_060_000)],
        "a broker whose copy lag is unknown keeps no old reading"
    );
    let targets: Vec<(SensorKind, Option<&str>)> = obs
        .sensor_errors
        .iter()
        .map(|f| (f.sensor, f.target.as_deref()))
        .collect();
    assert_eq!(
        targets,
        [
            (SensorKind::CopyLag, Some("2")),
            (SensorKind::Lag, Some("audit")),
            (SensorKind::TopicConfigs, Some("out-b")),
        ]
    );
    // The whole lag sensor failing keeps every group's last reading, as before.
    {
        let mut s = cluster.script();
        s.now = Timestamp(1_120_000);
        s.whole_lag = true;
    }
    let obs = rt.observe().await;
    assert_eq!(
        sampled(&obs.groups, |g| (g.group.as_str(), g.sampled_at)),
        [("audit", 1_000_000), ("billing", 1_000_000)]
    );
    assert!(
        obs.sensor_errors
            .iter()
            .any(|f| f.sensor == SensorKind::Lag && f.is_whole())
    );
}
