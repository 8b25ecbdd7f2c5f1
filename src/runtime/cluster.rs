//! A real Kafka cluster behind the runtime's sensor and actuator traits: lag and topic configs from
//! Kafka, disk and copy lag from the configured disk source, retention changes through the journaled
//! actuator, and no gate actuator (consumers read the gate over HTTP).

use std::sync::Arc;

use crate::actuators::retention::journal::{self, KafkaRetention, Phase};
use crate::actuators::{ActuatorError, GateActuator, RetentionActuator, RetentionChange};
use crate::clock::wall_now;
use crate::kafka::{Connection, TopicAdmin};
use crate::policy::{GroupDecision, Policy, RetentionTarget};
use crate::sensors::disk::AnyDiskSource;
use crate::sensors::lag::LagReader;
use crate::sensors::{
    BrokerCopyLag, BrokerDisk, ClusterFacts, CopyLagSensor, DiskSensor, GroupOffsets, LagSensor,
    Limitation, SensorError, TopicConfigSensor, TopicConfigs,
};
use crate::store::StateDir;

/// The cluster adapters of `catchup run` with `cluster.kind = "kafka"`.
pub struct KafkaCluster {
    lag: Arc<LagReader>,
    topics: TopicAdmin,
    store: Arc<StateDir>,
    policy: Policy,
    disk: AnyDiskSource,
    msk: Option<Arc<crate::aws::msk::MskWatch>>,
}

impl KafkaCluster {
    /// Connects to `conn`, keeping the retention journal in `store`: the process's one open
    /// state directory, shared with the [`Controller`](super::Controller) (read-only for
    /// commands that only observe).
    pub fn new(
        conn: &Connection,
        timeout: std::time::Duration,
        store: Arc<StateDir>,
        policy: Policy,
        disk: AnyDiskSource,
    ) -> Result<KafkaCluster, SensorError> {
        Ok(KafkaCluster {
            lag: Arc::new(LagReader::new(conn, timeout)?),
            topics: TopicAdmin::new(conn, timeout).map_err(|e| SensorError::Unavailable {
                sensor: crate::sensors::SensorKind::TopicConfigs,
                reason: e.to_string(),
            })?,
            store,
            policy,
            disk,
            msk: None,
        })
    }

    /// Attaches what MSK discovery found (for status and limitations).
    pub fn with_msk(mut self, watch: Arc<crate::aws::msk::MskWatch>) -> KafkaCluster {
        self.msk = Some(watch);
        self
    }

    /// Finishes or undoes changes a crash left half-done (run once at start-up).
    pub async fn reconcile(&self) -> Result<Vec<(String, Phase)>, journal::RetentionError> {
        KafkaRetention::new(&self.topics, &self.store, &self.policy)
            .reconcile(wall_now())
            .await
    }
}

impl ClusterFacts for KafkaCluster {
    fn limitations(&self) -> Vec<Limitation> {
        let mut out = self.disk.limitations();
        if let Some(m) = &self.msk {
            out.extend(m.limitations());
        }
        out
    }

    fn describe(&self) -> Option<serde_json::Value> {
        let msk = self.msk.as_ref().map(|m| m.current());
        Some(serde_json::json!({
            "kind": if msk.is_some() { "msk" } else { "kafka" },
            "msk": msk,
        }))
    }
}

impl DiskSensor for KafkaCluster {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        self.disk.read_disks().await
    }
}

impl CopyLagSensor for KafkaCluster {
    async fn read_copy_lag(&self) -> Result<Vec<BrokerCopyLag>, SensorError> {
        self.disk.read_copy_lag().await
    }
}

impl LagSensor for KafkaCluster {
    async fn read_offsets(&self, groups: &[String]) -> Result<Vec<GroupOffsets>, SensorError> {
        let reader = self.lag.clone();
        let groups = groups.to_vec();
        let results = tokio::task::spawn_blocking(move || reader.read_groups(&groups, wall_now()))
            .await
            .map_err(|e| SensorError::Unavailable {
                sensor: crate::sensors::SensorKind::Lag,
                reason: e.to_string(),
            })?;
        results.into_iter().collect()
    }

    async fn read_members(&self, groups: &[String]) -> Result<Vec<(String, u32)>, SensorError> {
        let reader = self.lag.clone();
        let groups = groups.to_vec();
        tokio::task::spawn_blocking(move || reader.members(&groups))
            .await
            .map_err(|e| SensorError::Unavailable {
                sensor: crate::sensors::SensorKind::Members,
                reason: e.to_string(),
            })?
    }
}

impl TopicConfigSensor for KafkaCluster {
    async fn read_topic_configs(
        &self,
        topics: &[String],
    ) -> Result<Vec<TopicConfigs>, SensorError> {
        crate::sensors::topic_config::read(&self.topics, topics, wall_now()).await
    }
}

impl GateActuator for KafkaCluster {
    async fn set_gate(&self, _group: &str, _decision: &GroupDecision) -> Result<(), ActuatorError> {
        // Consumers read the gate from the API; there is nothing to push to the cluster.
        Ok(())
    }
}

impl RetentionActuator for KafkaCluster {
    async fn apply_retention(
        &self,
        topic: &str,
        change: &RetentionChange,
    ) -> Result<(), ActuatorError> {
        let actuator = KafkaRetention::new(&self.topics, &self.store, &self.policy);
        let journal = actuator.journal().map_err(|e| ActuatorError::Failed {
            target: topic.into(),
            reason: e.to_string(),
        })?;
        // The journal's original is authoritative: a SET of it, or a DELETE, is a restore.
        let original = journal
            .topics
            .get(topic)
            .filter(|e| e.phase != Phase::Restored)
            .map(|e| e.original.value.clone());
        let target = match change {
            RetentionChange::Delete { .. } => RetentionTarget::Original,
            RetentionChange::Set { value, .. }
                if original
                    .as_ref()
                    .is_some_and(|o| o.as_deref() == Some(value.as_str())) =>
            {
                RetentionTarget::Original
            }
            RetentionChange::Set { value, .. } => match value.parse::<i64>() {
                Ok(ms) => RetentionTarget::Lowered { ms },
                Err(_) => {
                    return Err(ActuatorError::Failed {
                        target: topic.into(),
                        reason: format!("{value:?} is not a number of ms"),
                    });
                }
            },
        };
        actuator
            .apply(topic, &target, "control loop", wall_now())
            .await
            .map(|_| ())
            .map_err(|e| ActuatorError::Failed {
                target: topic.into(),
                reason: e.to_string(),
            })
    }
}
