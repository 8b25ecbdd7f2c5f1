//! A real Kafka cluster behind the runtime's sensor and actuator traits: lag and topic configs from
//! Kafka, disk and copy lag from the configured disk source, retention changes through the guard's
//! last hop and the journal, and no gate actuator (consumers read the gate over HTTP).

use std::sync::Arc;

use crate::actuators::retention::guard::Approved;
use crate::actuators::retention::journal::{
    ConfigAdmin, Journal, JournalStore, Journaled, RetentionError,
};
use crate::actuators::{
    ActuatorError, Adopted, Applied, Evidence, GateActuator, RetentionActuator, Settled, Unconsumed,
};
use crate::clock::wall_now;
use crate::ha::HaJournal;
use crate::kafka::{Connection, TopicAdmin};
use crate::policy::{ExtensionTarget, GroupDecision, Policy, RetentionTarget};
use crate::sensors::disk::AnyDiskSource;
use crate::sensors::lag::LagReader;
use crate::sensors::{
    BrokerCopyLag, BrokerDisk, ClusterFacts, CopyLagSensor, DiskSensor, GroupOffsets, LagSensor,
    Limitation, Readings, SensorError, TopicConfigSensor, TopicConfigs,
};
use crate::store::{StateDir, StoreError};
use crate::units::Timestamp;

/// The cluster adapters of `catchup run` with `cluster.kind = "kafka"`.
pub struct KafkaCluster {
    lag: Arc<LagReader>,
    topics: Arc<TopicAdmin>,
    configs: KafkaConfigs,
    journal: AnyJournal,
    policy: Policy,
    disk: AnyDiskSource,
    msk: Option<Arc<crate::aws::msk::MskWatch>>,
    conn: Connection,
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
        let topics =
            Arc::new(
                TopicAdmin::new(conn, timeout).map_err(|e| SensorError::Unavailable {
                    sensor: crate::sensors::SensorKind::TopicConfigs,
                    reason: e.to_string(),
                })?,
            );
        Ok(KafkaCluster {
            lag: Arc::new(LagReader::new(conn, timeout)?),
            topics: topics.clone(),
            configs: KafkaConfigs::new(topics),
            journal: AnyJournal::File(store),
            policy,
            disk,
            msk: None,
            conn: conn.clone(),
        })
    }

    /// The connection the adapters use (HA joins its election and state topic through it).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Keeps the retention journal in the HA state topic from now on (`[ha]`): only the leader
    /// in its epoch can save it, so only the leader alters.
    pub fn with_ha_journal(mut self, journal: Arc<HaJournal>) -> KafkaCluster {
        self.journal = AnyJournal::Ha(journal);
        self
    }

    /// Attaches what MSK discovery found (for status and limitations).
    pub fn with_msk(mut self, watch: Arc<crate::aws::msk::MskWatch>) -> KafkaCluster {
        self.msk = Some(watch);
        self
    }

    /// The journaled retention actuator over this cluster.
    fn journaled(&self) -> Journaled<'_, KafkaConfigs, AnyJournal> {
        Journaled::new(&self.configs, &self.journal, &self.policy)
    }
}

/// Where a real cluster's retention journal is kept: the state directory's file (a single
/// instance), or the HA state topic (`[ha]`, docs/ha.md).
pub enum AnyJournal {
    /// `retention-journal.json` in the state directory.
    File(Arc<StateDir>),
    /// `journal/EPOCH` in the HA state topic.
    Ha(Arc<HaJournal>),
}

impl JournalStore for AnyJournal {
    fn load(&self) -> Result<Journal, StoreError> {
        match self {
            AnyJournal::File(dir) => JournalStore::load(dir.as_ref()),
            AnyJournal::Ha(topic) => topic.load(),
        }
    }

    fn save(&self, journal: &Journal) -> Result<(), StoreError> {
        match self {
            AnyJournal::File(dir) => JournalStore::save(dir.as_ref(), journal),
            AnyJournal::Ha(topic) => topic.save(journal),
        }
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
    async fn read_copy_lag(&self) -> Result<Readings<BrokerCopyLag>, SensorError> {
        self.disk.read_copy_lag().await
    }
}

impl LagSensor for KafkaCluster {
    async fn read_offsets(&self, groups: &[String]) -> Result<Readings<GroupOffsets>, SensorError> {
        let reader = self.lag.clone();
        let groups = groups.to_vec();
        tokio::task::spawn_blocking(move || reader.read_groups(&groups, wall_now()))
            .await
            .map_err(|e| SensorError::Unavailable {
                sensor: crate::sensors::SensorKind::Lag,
                reason: e.to_string(),
            })?
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
    ) -> Result<Readings<TopicConfigs>, SensorError> {
        crate::sensors::topic_config::read(&self.topics, topics, wall_now()).await
    }
}

impl GateActuator for KafkaCluster {
    async fn set_gate(&self, _group: &str, _decision: &GroupDecision) -> Result<(), ActuatorError> {
        // Consumers read the gate from the API; there is nothing to push to the cluster.
        Ok(())
    }
}

/// Topic configs of the real cluster for the retention journal: DescribeConfigs through the
/// topic-config sensor, IncrementalAlterConfigs off the async workers.
pub struct KafkaConfigs(Arc<TopicAdmin>);

impl KafkaConfigs {
    /// Over `admin`.
    pub fn new(admin: Arc<TopicAdmin>) -> KafkaConfigs {
        KafkaConfigs(admin)
    }
}

impl ConfigAdmin for KafkaConfigs {
    async fn describe(&self, topic: &str, now: Timestamp) -> Result<TopicConfigs, String> {
        let mut answer = crate::sensors::topic_config::read(&self.0, &[topic.to_string()], now)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(failed) = answer.failed.pop() {
            return Err(failed.reason);
        }
        answer
            .read
            .pop()
            .ok_or_else(|| "no configs returned".to_string())
    }

    async fn alter(&self, approved: &Approved) -> Result<(), String> {
        crate::blocking::off_async(|| self.0.alter(approved)).map_err(|e| e.to_string())
    }
}

impl RetentionActuator for KafkaCluster {
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
