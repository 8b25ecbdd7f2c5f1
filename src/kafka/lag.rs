//! Consumer-group lag in batches: per group one `ListConsumerGroupOffsets` (OffsetFetch), one
//! metadata request for the partition list, and two `ListOffsets` (earliest and latest, one request
//! per leader broker each) — never one request per partition.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;

use super::ffi::{self, End};
use crate::sensors::{GroupOffsets, PartitionOffsets, SensorError};
use crate::units::Timestamp;

/// How to reach the cluster (bootstrap servers, TLS, SASL PLAIN/SCRAM).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    #[serde(default)]
    pub security_protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SASL password (prefer the environment: `CATCHUP_KAFKA_SASL_PASSWORD`).
    #[serde(default)]
    pub sasl_password: Option<String>,
    /// CA bundle to verify the brokers' certificates (default: the system's).
    #[serde(default)]
    pub ssl_ca_location: Option<String>,
}

impl Connection {
    /// librdkafka settings for this connection.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ] {
            if let Some(v) = value {
                c.set(key, v);
            }
        }
        c
    }
}

/// Reads committed and log offsets of consumer groups.
pub struct LagReader {
    admin: AdminClient<DefaultClientContext>,
    timeout: Duration,
}

fn unavailable(sensor: &'static str, e: impl std::fmt::Display) -> SensorError {
    SensorError::Unavailable {
        sensor,
        reason: e.to_string(),
    }
}

impl LagReader {
    /// Connects (lazily: librdkafka connects on first use).
    pub fn new(conn: &Connection, timeout: Duration) -> Result<LagReader, SensorError> {
        let admin = conn
            .client_config()
            .create()
            .map_err(|e| unavailable("lag", e))?;
        Ok(LagReader { admin, timeout })
    }

    /// Offsets of every partition of every topic `group` has committed on. Blocking: call it off the
    /// async executor. Partitions without a commit have `committed: None`; topics that no longer
    /// exist and partitions whose offsets could not be read are listed in `unavailable`.
    pub fn read_group(&self, group: &str, now: Timestamp) -> Result<GroupOffsets, SensorError> {
        let committed = ffi::committed_offsets(&self.admin, group, self.timeout)
            .map_err(|e| unavailable("lag", e))?;
        let topics: BTreeSet<String> = committed.iter().map(|p| p.topic.clone()).collect();
        let mut unavailable_parts = Vec::new();
        for p in committed.iter().filter(|p| p.error.is_some()) {
            unavailable_parts.push(format!(
                "{}-{}: {}",
                p.topic,
                p.partition,
                p.error.clone().unwrap_or_default()
            ));
        }
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| unavailable("lag", e))?;
        let mut partitions = Vec::new();
        for topic in &topics {
            match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() => {
                    partitions.extend(t.partitions().iter().map(|p| (topic.clone(), p.id())))
                }
                _ => {
                    unavailable_parts.push(format!("{topic}: the topic does not exist (deleted?)"))
                }
            }
        }
        partitions.sort();
        let ends = self.offsets(&partitions, End::Latest, &mut unavailable_parts)?;
        let starts = self.offsets(&partitions, End::Earliest, &mut unavailable_parts)?;
        let committed: BTreeMap<(String, i32), i64> = committed
            .into_iter()
            .filter(|p| p.error.is_none() && p.offset >= 0)
            .map(|p| ((p.topic, p.partition), p.offset))
            .collect();
        let partitions = partitions
            .into_iter()
            .filter_map(|key| {
                let log_end = *ends.get(&key)?;
                Some(PartitionOffsets {
                    committed: committed.get(&key).copied(),
                    log_end,
                    log_start: starts.get(&key).copied(),
                    topic: key.0,
                    partition: key.1,
                })
            })
            .collect();
        Ok(GroupOffsets {
            group: group.to_string(),
            partitions,
            sampled_at: now,
            unavailable: unavailable_parts,
        })
    }

    fn offsets(
        &self,
        partitions: &[(String, i32)],
        end: End,
        unavailable_parts: &mut Vec<String>,
    ) -> Result<BTreeMap<(String, i32), i64>, SensorError> {
        let answers = ffi::list_offsets(&self.admin, partitions, end, self.timeout)
            .map_err(|e| unavailable("lag", e))?;
        let mut out = BTreeMap::new();
        for a in answers {
            match a.error {
                None if a.offset >= 0 => {
                    out.insert((a.topic, a.partition), a.offset);
                }
                err => unavailable_parts.push(format!(
                    "{}-{}: {}",
                    a.topic,
                    a.partition,
                    err.unwrap_or_else(|| format!("offset {}", a.offset))
                )),
            }
        }
        Ok(out)
    }
}
