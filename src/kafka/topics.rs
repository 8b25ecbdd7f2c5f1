//! Topic configs on the wire: DescribeConfigs (rust-rdkafka's safe API) answered as raw entries,
//! and IncrementalAlterConfigs of the one managed key ([`super::ffi`]). What the entries mean (set
//! on the topic or inherited) is the topic-config sensor's business
//! ([`crate::sensors::topic_config`]); what may be written is the retention guard's: the alter
//! call takes only a change it approved.

use std::time::Duration;

use rdkafka::admin::{AdminOptions, ConfigSource as RdSource, ResourceSpecifier};

use super::connection::{Admin, Connection};
use super::ffi;
use crate::actuators::retention::guard::Approved;

/// One DescribeConfigs entry as the broker sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawConfig {
    /// The key.
    pub name: String,
    /// Its value (`None`: sensitive or null).
    pub value: Option<String>,
    /// The protocol's config source code (KIP-226: 1 = set on the topic, 5 = Kafka's default).
    pub source: i8,
}

/// Reads and changes topic configs.
pub struct TopicAdmin {
    admin: Admin,
    timeout: Duration,
}

impl TopicAdmin {
    /// Connects (lazily).
    pub fn new(conn: &Connection, timeout: Duration) -> rdkafka::error::KafkaResult<TopicAdmin> {
        Ok(TopicAdmin {
            admin: conn.admin()?,
            timeout,
        })
    }

    /// Every config of each of `topics`, in order: one answer per topic, or why the request failed
    /// as a whole.
    pub async fn describe(
        &self,
        topics: &[String],
    ) -> Result<Vec<Result<Vec<RawConfig>, String>>, String> {
        let specs: Vec<ResourceSpecifier<'_>> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let opts = AdminOptions::new().request_timeout(Some(self.timeout));
        let results = self
            .admin
            .describe_configs(&specs, &opts)
            .await
            .map_err(|e| e.to_string())?;
        Ok(results
            .into_iter()
            .map(|result| {
                let resource = result.map_err(|e| e.to_string())?;
                Ok(resource
                    .entries
                    .iter()
                    .map(|e| RawConfig {
                        name: e.name.clone(),
                        value: e.value.clone(),
                        source: match e.source {
                            RdSource::Unknown => 0,
                            RdSource::DynamicTopic => 1,
                            RdSource::DynamicBroker => 2,
                            RdSource::DynamicDefaultBroker => 3,
                            RdSource::StaticBroker => 4,
                            RdSource::Default => 5,
                        },
                    })
                    .collect())
            })
            .collect())
    }

    /// IncrementalAlterConfigs of the managed key, as the retention guard approved it (blocking:
    /// call it off the async executor).
    pub fn alter(&self, approved: &Approved) -> Result<(), ffi::AdminError> {
        ffi::incremental_alter_topic(&self.admin, approved, self.timeout)
    }
}
