//! Topic configs on a real cluster: DescribeConfigs (rust-rdkafka's safe API) with each value's
//! source decided by [`crate::sensors::config_source`], and IncrementalAlterConfigs of one key
//! ([`super::ffi`]).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, ConfigSource as RdSource, ResourceSpecifier};

use super::ffi::{self, AlterOp};
use super::lag::Connection;
use crate::sensors::config_source::{KafkaConfigSource, classify};
use crate::sensors::{ConfigValue, SensorError, TopicConfigs};
use crate::units::Timestamp;

/// Reads and changes topic configs.
pub struct TopicAdmin {
    admin: super::lag::Admin,
    timeout: Duration,
}

fn unavailable(e: impl std::fmt::Display) -> SensorError {
    SensorError::Unavailable {
        sensor: "topic_configs",
        reason: e.to_string(),
    }
}

impl TopicAdmin {
    /// Connects (lazily).
    pub fn new(conn: &Connection, timeout: Duration) -> Result<TopicAdmin, SensorError> {
        Ok(TopicAdmin {
            admin: conn.admin().map_err(unavailable)?,
            timeout,
        })
    }

    /// Every config of each of `topics`, with its source.
    pub async fn describe(
        &self,
        topics: &[String],
        now: Timestamp,
    ) -> Result<Vec<TopicConfigs>, SensorError> {
        let specs: Vec<ResourceSpecifier<'_>> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let opts = AdminOptions::new().request_timeout(Some(self.timeout));
        let results = self
            .admin
            .describe_configs(&specs, &opts)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for (topic, result) in topics.iter().zip(results) {
            let resource = result.map_err(|e| unavailable(format!("topic {topic}: {e}")))?;
            let configs: BTreeMap<String, ConfigValue> = resource
                .entries
                .iter()
                .map(|e| {
                    let source = KafkaConfigSource::from_code(match e.source {
                        RdSource::Unknown => 0,
                        RdSource::DynamicTopic => 1,
                        RdSource::DynamicBroker => 2,
                        RdSource::DynamicDefaultBroker => 3,
                        RdSource::StaticBroker => 4,
                        RdSource::Default => 5,
                    });
                    (
                        e.name.clone(),
                        ConfigValue {
                            value: e.value.clone(),
                            source: classify(&e.name, e.value.as_deref(), source),
                        },
                    )
                })
                .collect();
            out.push(TopicConfigs {
                topic: topic.clone(),
                configs,
                sampled_at: now,
            });
        }
        Ok(out)
    }

    /// IncrementalAlterConfigs of one key (blocking: call it off the async executor).
    pub fn alter(&self, topic: &str, key: &str, op: &AlterOp) -> Result<(), ffi::AdminError> {
        ffi::incremental_alter_topic(&self.admin, topic, key, op, self.timeout)
    }
}
