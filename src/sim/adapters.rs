//! The simulator behind the same sensor and actuator traits as the real cluster adapters.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::cluster::Cluster;
use crate::actuators::retention::guard::Approved;
use crate::actuators::retention::journal::{ConfigAdmin, Journaled, MemoryJournal, RetentionError};
use crate::actuators::{
    ActuatorError, Adopted, Applied, Evidence, GateActuator, RetentionActuator, Settled, Unconsumed,
};
use crate::policy::{ExtensionTarget, GroupDecision, Policy, RetentionTarget};
use crate::sensors::disk::{copy_lag_bytes, unknown_copy_lag};
use crate::sensors::{
    BrokerCopyLag, BrokerDisk, ConfigSource, ConfigValue, CopyLagSensor, DiskSensor, DiskSource,
    GroupOffsets, LOCAL_RETENTION_INHERIT, LagSensor, Readings, SensorError, TopicConfigSensor,
    TopicConfigs,
};
use crate::units::Timestamp;

/// A shared handle on a simulated cluster. Readings are stamped with simulated time plus `epoch`
/// (0 for `catchup simulate`; the wall-clock start for the live demo, so times look real).
/// Retention changes go through the guard's last hop (with the policy given by
/// [`SimCluster::guarded_by`]) and a retention journal kept in memory, exactly as on a real
/// cluster.
#[derive(Clone, Debug)]
pub struct SimCluster {
    cluster: Arc<Mutex<Cluster>>,
    epoch: i64,
    journal: Arc<MemoryJournal>,
    policy: Arc<Policy>,
}

impl SimCluster {
    /// Wraps `cluster`, with simulated time as is.
    pub fn new(cluster: Cluster) -> SimCluster {
        SimCluster::with_epoch(cluster, 0)
    }

    /// Wraps `cluster`, stamping readings with simulated time plus `epoch` milliseconds.
    pub fn with_epoch(cluster: Cluster, epoch: i64) -> SimCluster {
        SimCluster {
            cluster: Arc::new(Mutex::new(cluster)),
            epoch,
            journal: Arc::new(MemoryJournal::default()),
            policy: Arc::new(Policy::default()),
        }
    }

    /// The same cluster, its retention changes guarded by `policy` (which names the managed
    /// topics and their floors).
    pub fn guarded_by(mut self, policy: &Policy) -> SimCluster {
        self.policy = Arc::new(policy.clone());
        self
    }

    fn at(&self, t: crate::units::Timestamp) -> crate::units::Timestamp {
        crate::units::Timestamp(t.0 + self.epoch)
    }

    /// Locks the cluster (a poisoned lock is recovered: the cluster has no invariants a panic could break
    /// half-way that matter more than continuing the simulation).
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `key` of `topic` as a person with the broker's own tools would (the runbook baseline,
    /// tests of outside changes): no guard, no journal. `None` deletes the key (inherited again).
    pub fn set_by_hand(&self, topic: &str, key: &str, value: Option<&str>) -> bool {
        let mut c = self.lock();
        let Some(configs) = c.topic_configs_mut(topic) else {
            return false;
        };
        let entry = match value {
            Some(v) => ConfigValue {
                value: Some(v.to_string()),
                source: ConfigSource::Topic,
            },
            None => ConfigValue {
                value: Some(LOCAL_RETENTION_INHERIT.to_string()),
                source: ConfigSource::Inherited,
            },
        };
        configs.insert(key.to_string(), entry);
        true
    }

    fn journaled(&self) -> Journaled<'_, SimCluster, MemoryJournal> {
        Journaled::new(self, &self.journal, &self.policy)
    }
}

/// Polls a future that the simulator's adapters complete at once.
pub fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

impl crate::sensors::ClusterFacts for SimCluster {}

impl DiskSensor for SimCluster {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        let c = self.lock();
        let capacity = c.capacity();
        let disks: Vec<BrokerDisk> = (0..c.broker_count())
            .filter_map(|b| {
                let point = c.visible_disk(b)?;
                Some(BrokerDisk {
                    broker: b as i32 + 1,
                    used_bytes: (point.value / 100.0 * capacity) as u64,
                    capacity_bytes: capacity as u64,
                    sampled_at: self.at(point.at),
                    source: DiskSource::Simulator,
                })
            })
            .collect();
        if disks.is_empty() {
            return Err(SensorError::NoData {
                sensor: crate::sensors::SensorKind::Disk,
                reason: "no datapoints published yet".into(),
            });
        }
        Ok(disks)
    }
}

impl CopyLagSensor for SimCluster {
    /// Like CloudWatch: a broker without a published datapoint, or whose datapoint is negative or
    /// not a number, has no reading and is named; never a 0.
    async fn read_copy_lag(&self) -> Result<Readings<BrokerCopyLag>, SensorError> {
        let c = self.lock();
        let mut out = Readings::default();
        for b in 0..c.broker_count() {
            let broker = b as i32 + 1;
            let Some(point) = c.visible_copy_lag(b) else {
                out.fail(
                    broker.to_string(),
                    unknown_copy_lag(broker, "no copy-lag datapoint published yet"),
                );
                continue;
            };
            match copy_lag_bytes(point.value) {
                Ok(bytes) => out.read.push(BrokerCopyLag {
                    broker,
                    bytes,
                    sampled_at: self.at(point.at),
                }),
                Err(why) => out.fail(broker.to_string(), unknown_copy_lag(broker, why)),
            }
        }
        Ok(out)
    }
}

impl LagSensor for SimCluster {
    /// Every group of the simulation; a group it does not have is named, not left out silently.
    async fn read_offsets(&self, groups: &[String]) -> Result<Readings<GroupOffsets>, SensorError> {
        let c = self.lock();
        let now = self.at(c.now());
        let mut out = Readings::default();
        for g in groups {
            match c.group_offsets(g) {
                Some(mut partitions) => {
                    // Record times are simulated times too.
                    for r in partitions.iter_mut().filter_map(|p| p.next_record.as_mut()) {
                        r.at = self.at(r.at);
                    }
                    out.read.push(GroupOffsets {
                        group: g.clone(),
                        partitions,
                        sampled_at: now,
                        unavailable: Vec::new(),
                    })
                }
                None => out.fail(g, format!("group {g}: not in the simulation")),
            }
        }
        Ok(out)
    }
}

impl TopicConfigSensor for SimCluster {
    /// Every topic of the simulation; a topic it does not have is named, not left out silently.
    async fn read_topic_configs(
        &self,
        topics: &[String],
    ) -> Result<Readings<TopicConfigs>, SensorError> {
        let c = self.lock();
        let now = self.at(c.now());
        let mut out = Readings::default();
        for t in topics {
            match c.topic_configs(t) {
                Some(configs) => out.read.push(TopicConfigs {
                    topic: t.clone(),
                    configs: configs.clone(),
                    sampled_at: now,
                }),
                None => out.fail(t, format!("topic {t}: not in the simulation")),
            }
        }
        Ok(out)
    }
}

impl GateActuator for SimCluster {
    async fn set_gate(&self, group: &str, decision: &GroupDecision) -> Result<(), ActuatorError> {
        if self.lock().set_gate(group, decision.gate.clone()) {
            Ok(())
        } else {
            Err(ActuatorError::Failed {
                target: group.into(),
                reason: "no such group in the simulation".into(),
            })
        }
    }
}

impl ConfigAdmin for SimCluster {
    async fn describe(&self, topic: &str, _now: Timestamp) -> Result<TopicConfigs, String> {
        let c = self.lock();
        Ok(TopicConfigs {
            topic: topic.into(),
            configs: c
                .topic_configs(topic)
                .ok_or_else(|| format!("unknown topic {topic:?}"))?
                .clone(),
            sampled_at: self.at(c.now()),
        })
    }

    async fn alter(&self, approved: &Approved) -> Result<(), String> {
        let change = approved.change();
        if self.set_by_hand(approved.topic(), change.key().name(), change.leaves()) {
            Ok(())
        } else {
            Err(format!("unknown topic {:?}", approved.topic()))
        }
    }
}

impl RetentionActuator for SimCluster {
    async fn settle_journal(
        &self,
        observed: &[TopicConfigs],
        now: Timestamp,
    ) -> Result<Settled, ActuatorError> {
        self.journaled()
            .settle(observed, now)
            .map_err(|e| RetentionError::Store(e).into())
    }

    async fn apply_retention(
        &self,
        topic: &str,
        target: &RetentionTarget,
        reason: &str,
        evidence: &Evidence<'_>,
        now: Timestamp,
    ) -> Result<Applied, ActuatorError> {
        Ok(self
            .journaled()
            .apply(topic, target, reason, evidence, now)
            .await?)
    }

    async fn extend_retention(
        &self,
        topic: &str,
        target: &ExtensionTarget,
        reason: &str,
        unconsumed: &Unconsumed,
        now: Timestamp,
    ) -> Result<Applied, ActuatorError> {
        Ok(self
            .journaled()
            .extend(topic, target, reason, unconsumed, now)
            .await?)
    }

    async fn adopt_retention(
        &self,
        topic: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Adopted, ActuatorError> {
        Ok(self.journaled().adopt(topic, reason, now).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::Scenario;

    /// The live demo shifts simulated time to the wall clock: record times shift with it, so a
    /// time lag reads as the backlog's age, not the years since 1970.
    #[test]
    fn record_times_are_stamped_like_every_other_reading() {
        let text = std::fs::read_to_string("scenarios/2025-11-replay.toml").expect("scenario");
        let scenario = Scenario::parse(std::path::Path::new("replay.toml"), &text).expect("valid");
        let mut cluster = Cluster::new(&scenario, crate::units::Timestamp(0));
        cluster.inject_backlogs(&scenario, crate::units::Dur(0));
        let epoch = 1_800_000_000_000;
        let sim = SimCluster::with_epoch(cluster, epoch);
        let group = scenario.groups[0].name.clone();
        let read = ready(sim.read_offsets(&[group]))
            .expect("ready")
            .expect("read");
        let g = &read.read[0];
        let age = g.time_lag_ms(g.sampled_at).expect("record times known");
        let backlog = scenario.groups[0].total_backlog().0 as i64;
        assert!(
            (age - backlog).abs() <= 3_600_000,
            "time lag {age} ms, backlog {backlog} ms"
        );
    }
}
