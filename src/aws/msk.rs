//! MSK cluster discovery: `DescribeClusterV2` (state, type, storage mode, monitoring level, broker
//! count, EBS volume size, client authentication), `ListNodes` (broker ids, paginated) and
//! `GetBootstrapBrokers` (the endpoint for the chosen authentication). What discovery finds decides
//! what the controller can do; [`MskCluster::limitations`] says plainly what is missing and which
//! actions it disables, and status and `catchup observe` show it.

use serde::{Deserialize, Serialize};

use crate::kafka::{AWS_MSK_IAM, Connection};
use crate::units::{Dur, Timestamp};
use catchup_proto::observation::Limitation;

/// `[cluster.msk]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MskConfig {
    /// The cluster's ARN (`arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID`).
    pub cluster_arn: String,
    /// Region of the MSK and CloudWatch APIs; default: the ARN's.
    #[serde(default)]
    pub region: Option<String>,
    /// MSK API endpoint (VPC endpoint or a test server); default: the region's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// How the controller authenticates to the brokers: `iam` (default), `tls`, `scram` or
    /// `plaintext`; picks the bootstrap endpoint.
    #[serde(default)]
    pub auth: MskAuth,
    /// How often discovery runs again (brokers added, volumes grown). Default 10m.
    #[serde(default = "default_rediscover")]
    pub rediscover: Dur,
}

fn default_rediscover() -> Dur {
    Dur(10 * 60_000)
}

/// Client authentication to MSK brokers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MskAuth {
    /// SASL/OAUTHBEARER with IAM (port 9098).
    #[default]
    Iam,
    /// TLS (port 9094).
    Tls,
    /// SASL/SCRAM (port 9096); user and password in `[cluster.kafka]`.
    Scram,
    /// No authentication, no TLS (port 9092).
    Plaintext,
}

impl MskConfig {
    /// The region: configured, else the ARN's.
    pub fn region(&self) -> Option<String> {
        self.region.clone().or_else(|| region_of(&self.cluster_arn))
    }
}

/// The region field of an ARN.
pub fn region_of(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() >= 6 && parts[0] == "arn" && parts[2] == "kafka" && !parts[3].is_empty())
        .then(|| parts[3].to_string())
}

/// What discovery found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MskCluster {
    /// ARN.
    pub arn: String,
    /// Name (CloudWatch's `Cluster Name` dimension).
    pub name: String,
    /// `ACTIVE`, `CREATING`, `UPDATING`, `HEALING`, `MAINTENANCE`, ...
    pub state: String,
    /// `PROVISIONED` or `SERVERLESS`.
    pub cluster_type: String,
    /// `LOCAL` or `TIERED`.
    pub storage_mode: Option<String>,
    /// `DEFAULT`, `PER_BROKER`, `PER_TOPIC_PER_BROKER` or `PER_TOPIC_PER_PARTITION`.
    pub monitoring: Option<String>,
    /// Kafka version.
    pub kafka_version: Option<String>,
    /// Brokers the cluster should have.
    pub broker_count: Option<i32>,
    /// Broker ids ListNodes returned.
    pub brokers: Vec<i32>,
    /// EBS volume per broker, GiB (absent for Express brokers).
    pub volume_gib: Option<i32>,
    /// Whether IAM client authentication is on.
    pub iam_enabled: bool,
    /// Bootstrap servers for the chosen authentication, if the cluster offers them.
    pub bootstrap: Option<String>,
    /// The authentication the bootstrap servers are for.
    pub auth: MskAuth,
    /// When discovery ran.
    pub discovered_at: Timestamp,
}

/// Monitoring levels that publish `RemoteCopyLagBytes` per broker.
const COPY_LAG_LEVELS: [&str; 3] = [
    "PER_BROKER",
    "PER_TOPIC_PER_BROKER",
    "PER_TOPIC_PER_PARTITION",
];

impl MskCluster {
    /// Whether CloudWatch has copy lag per broker at this monitoring level.
    pub fn copy_lag_published(&self) -> bool {
        self.monitoring
            .as_deref()
            .is_some_and(|m| COPY_LAG_LEVELS.contains(&m))
    }

    /// Why copy lag cannot be read from CloudWatch, if it cannot.
    pub fn copy_lag_missing(&self) -> Option<String> {
        (!self.copy_lag_published()).then(|| {
            format!(
                "the cluster's monitoring level is {}; RemoteCopyLagBytes needs PER_BROKER or higher",
                self.monitoring.as_deref().unwrap_or("unknown")
            )
        })
    }

    /// The Kafka connection for the discovered bootstrap servers, if any.
    pub fn connection(&self, region: Option<String>) -> Option<Connection> {
        let bootstrap = self.bootstrap.clone()?;
        let mut c = Connection {
            bootstrap_servers: bootstrap,
            ..Default::default()
        };
        match self.auth {
            MskAuth::Iam => {
                c.sasl_mechanism = Some(AWS_MSK_IAM.into());
                c.aws_region = region;
            }
            MskAuth::Tls => c.security_protocol = Some("SSL".into()),
            MskAuth::Scram => {
                c.security_protocol = Some("SASL_SSL".into());
                c.sasl_mechanism = Some("SCRAM-SHA-512".into());
            }
            MskAuth::Plaintext => {}
        }
        Some(c)
    }

    /// What is missing and which actions it disables.
    pub fn limitations(&self) -> Vec<Limitation> {
        let mut out = Vec::new();
        let limit = |missing: String, disables: &[&str]| Limitation {
            missing,
            disables: disables.iter().map(|s| s.to_string()).collect(),
        };
        if self.cluster_type != "PROVISIONED" {
            out.push(limit(
                format!(
                    "the cluster is {}, not PROVISIONED: it has no broker volumes to protect",
                    self.cluster_type
                ),
                &["throttle_on_disk", "lower_retention"],
            ));
            return out;
        }
        if self.state != "ACTIVE" {
            out.push(limit(
                format!("the cluster's state is {}, not ACTIVE: data and configs may be unavailable until it is", self.state),
                &[],
            ));
        }
        if self.storage_mode.as_deref() != Some("TIERED") {
            out.push(limit(
                format!(
                    "storage mode is {}, not TIERED: local.retention.ms has no effect without tiered storage",
                    self.storage_mode.as_deref().unwrap_or("unknown")
                ),
                &["lower_retention"],
            ));
        }
        if let Some(why) = self.copy_lag_missing() {
            out.push(limit(
                format!("copy lag: {why} (a paid CloudWatch level); without it retention is never lowered"),
                &["lower_retention"],
            ));
        }
        if self.volume_gib.is_none_or(|g| g <= 0) {
            out.push(limit(
                "no EBS volume size (Express brokers manage their own storage): disk use cannot be read from CloudWatch".into(),
                &["throttle_on_disk", "lower_retention"],
            ));
        }
        if let Some(n) = self.broker_count
            && n as usize != self.brokers.len()
        {
            out.push(limit(
                format!(
                    "the cluster should have {n} brokers, ListNodes returned {} ({:?})",
                    self.brokers.len(),
                    self.brokers
                ),
                &[],
            ));
        }
        if self.auth == MskAuth::Iam && !self.iam_enabled {
            out.push(limit(
                "IAM client authentication is off on this cluster: set cluster.msk.auth to tls, scram or plaintext".into(),
                &["all"],
            ));
        }
        if self.bootstrap.is_none() {
            out.push(limit(
                format!(
                    "the cluster offers no bootstrap servers for auth = {:?}",
                    self.auth
                ),
                &["all"],
            ));
        }
        out
    }
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[error("MSK discovery of {arn}: {call}: {reason}")]
pub struct DiscoveryError {
    /// The cluster.
    pub arn: String,
    /// Which call failed.
    pub call: &'static str,
    /// What AWS said.
    pub reason: String,
}

/// Runs discovery once: [`describe`], then for provisioned clusters [`broker_ids`] and
/// [`bootstrap_servers`].
pub async fn discover(
    client: &aws_sdk_kafka::Client,
    config: &MskConfig,
    now: Timestamp,
) -> Result<MskCluster, DiscoveryError> {
    let mut cluster = describe(client, config, now).await?;
    if cluster.cluster_type != "PROVISIONED" {
        return Ok(cluster);
    }
    cluster.brokers = broker_ids(client, &config.cluster_arn).await?;
    cluster.bootstrap = bootstrap_servers(client, &config.cluster_arn, config.auth).await?;
    Ok(cluster)
}

fn failure(arn: &str, call: &'static str, e: &dyn std::error::Error) -> DiscoveryError {
    DiscoveryError {
        arn: arn.to_string(),
        call,
        reason: super::error_chain(e),
    }
}

/// `DescribeClusterV2`: everything but the broker ids and bootstrap servers.
pub async fn describe(
    client: &aws_sdk_kafka::Client,
    config: &MskConfig,
    now: Timestamp,
) -> Result<MskCluster, DiscoveryError> {
    let arn = config.cluster_arn.as_str();
    let described = client
        .describe_cluster_v2()
        .cluster_arn(arn)
        .send()
        .await
        .map_err(|e| failure(arn, "DescribeClusterV2", &e))?;
    let info = described.cluster_info().ok_or_else(|| DiscoveryError {
        arn: arn.to_string(),
        call: "DescribeClusterV2",
        reason: "no clusterInfo in the answer".into(),
    })?;
    let provisioned = info.provisioned();
    Ok(MskCluster {
        arn: arn.to_string(),
        name: info.cluster_name().unwrap_or_default().to_string(),
        state: info
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "UNKNOWN".into()),
        cluster_type: info
            .cluster_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_else(|| "UNKNOWN".into()),
        storage_mode: provisioned
            .and_then(|p| p.storage_mode())
            .map(|s| s.as_str().to_string()),
        monitoring: provisioned
            .and_then(|p| p.enhanced_monitoring())
            .map(|m| m.as_str().to_string()),
        kafka_version: provisioned
            .and_then(|p| p.current_broker_software_info())
            .and_then(|s| s.kafka_version())
            .map(str::to_string),
        broker_count: provisioned.and_then(|p| p.number_of_broker_nodes()),
        brokers: Vec::new(),
        volume_gib: provisioned
            .and_then(|p| p.broker_node_group_info())
            .and_then(|g| g.storage_info())
            .and_then(|s| s.ebs_storage_info())
            .and_then(|e| e.volume_size()),
        iam_enabled: provisioned
            .and_then(|p| p.client_authentication())
            .and_then(|a| a.sasl())
            .and_then(|s| s.iam())
            .and_then(|i| i.enabled())
            .unwrap_or(false),
        bootstrap: None,
        auth: config.auth,
        discovered_at: now,
    })
}

/// `ListNodes`, every page: the broker ids, sorted.
pub async fn broker_ids(
    client: &aws_sdk_kafka::Client,
    arn: &str,
) -> Result<Vec<i32>, DiscoveryError> {
    let mut brokers = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_nodes()
            .cluster_arn(arn)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| failure(arn, "ListNodes", &e))?;
        brokers.extend(
            page.node_info_list()
                .iter()
                .filter_map(|n| n.broker_node_info()?.broker_id())
                .map(|id| id as i32),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    brokers.sort_unstable();
    brokers.dedup();
    Ok(brokers)
}

/// `GetBootstrapBrokers`: the private endpoint for `auth`, if the cluster offers it.
pub async fn bootstrap_servers(
    client: &aws_sdk_kafka::Client,
    arn: &str,
    auth: MskAuth,
) -> Result<Option<String>, DiscoveryError> {
    let endpoints = client
        .get_bootstrap_brokers()
        .cluster_arn(arn)
        .send()
        .await
        .map_err(|e| failure(arn, "GetBootstrapBrokers", &e))?;
    Ok(match auth {
        MskAuth::Iam => endpoints.bootstrap_broker_string_sasl_iam(),
        MskAuth::Tls => endpoints.bootstrap_broker_string_tls(),
        MskAuth::Scram => endpoints.bootstrap_broker_string_sasl_scram(),
        MskAuth::Plaintext => endpoints.bootstrap_broker_string(),
    }
    .filter(|s| !s.is_empty())
    .map(str::to_string))
}

/// The discovered cluster, kept current: discovery runs again every `rediscover` and tells the
/// listener (the CloudWatch source, which follows brokers and volume size) (storage auto-scaling grows volumes; the metric is a
/// percentage of the current size). A failed rediscovery keeps the last answer and says why.
pub struct MskWatch {
    config: MskConfig,
    client: aws_sdk_kafka::Client,
    current: std::sync::RwLock<MskCluster>,
    error: std::sync::RwLock<Option<String>>,
    on_change: Option<OnChange>,
}

/// Called with every new discovery answer (the CloudWatch source follows brokers and volume size).
pub type OnChange = Box<dyn Fn(&MskCluster) + Send + Sync>;

impl MskWatch {
    /// Watches `cluster` (the first discovery's answer), telling `on_change` of every new answer.
    pub fn new(
        config: MskConfig,
        client: aws_sdk_kafka::Client,
        cluster: MskCluster,
        on_change: Option<OnChange>,
    ) -> MskWatch {
        MskWatch {
            config,
            client,
            current: std::sync::RwLock::new(cluster),
            error: std::sync::RwLock::new(None),
            on_change,
        }
    }

    /// The newest discovery answer.
    pub fn current(&self) -> MskCluster {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs discovery again now.
    pub async fn refresh(&self) {
        match discover(&self.client, &self.config, crate::clock::wall_now()).await {
            Ok(cluster) => {
                if let Some(tell) = &self.on_change {
                    tell(&cluster);
                }
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = cluster;
                *self.error.write().unwrap_or_else(|p| p.into_inner()) = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "MSK rediscovery failed; keeping the last answer");
                *self.error.write().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            }
        }
    }

    /// Rediscovers every `rediscover` until dropped.
    pub async fn run(self: std::sync::Arc<Self>) {
        let every = std::time::Duration::from_millis(self.config.rediscover.0);
        loop {
            tokio::time::sleep(every).await;
            self.refresh().await;
        }
    }

    /// What is missing, including a failed rediscovery.
    pub fn limitations(&self) -> Vec<Limitation> {
        let mut out = self.current().limitations();
        if let Some(e) = self.error.read().unwrap_or_else(|p| p.into_inner()).clone() {
            out.push(Limitation {
                missing: format!("rediscovery failed, using the answer from before: {e}"),
                disables: Vec::new(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kafka::Client;
    use aws_sdk_kafka::operation::describe_cluster_v2::DescribeClusterV2Output;
    use aws_sdk_kafka::operation::get_bootstrap_brokers::GetBootstrapBrokersOutput;
    use aws_sdk_kafka::operation::list_nodes::ListNodesOutput;
    use aws_sdk_kafka::types::{
        BrokerNodeGroupInfo, BrokerNodeInfo, ClientAuthentication, Cluster, ClusterState,
        ClusterType, EbsStorageInfo, EnhancedMonitoring, Iam, NodeInfo, Provisioned, Sasl,
        StorageInfo, StorageMode,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    const ARN: &str = "arn:aws:kafka:eu-west-1:123456789012:cluster/ingest/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab-2";

    fn config(auth: MskAuth) -> MskConfig {
        MskConfig {
            cluster_arn: ARN.into(),
            region: None,
            endpoint_url: None,
            auth,
            rediscover: default_rediscover(),
        }
    }

    fn described(storage: StorageMode, monitoring: EnhancedMonitoring) -> DescribeClusterV2Output {
        DescribeClusterV2Output::builder()
            .cluster_info(
                Cluster::builder()
                    .cluster_arn(ARN)
                    .cluster_name("ingest")
                    .cluster_type(ClusterType::Provisioned)
                    .state(ClusterState::Active)
                    .provisioned(
                        Provisioned::builder()
                            .number_of_broker_nodes(6)
                            .client_authentication(
                                ClientAuthentication::builder()
                                    .sasl(
                                        Sasl::builder()
                                            .iam(Iam::builder().enabled(true).build())
                                            .build(),
                                    )
                                    .build(),
                            )
                            .storage_mode(storage)
                            .enhanced_monitoring(monitoring)
                            .broker_node_group_info(
                                BrokerNodeGroupInfo::builder()
                                    .storage_info(
                                        StorageInfo::builder()
                                            .ebs_storage_info(
                                                EbsStorageInfo::builder().volume_size(2000).build(),
                                            )
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    fn node(id: f64) -> NodeInfo {
        NodeInfo::builder()
            .broker_node_info(BrokerNodeInfo::builder().broker_id(id).build())
            .build()
    }

    #[test]
    fn the_region_comes_from_the_arn_unless_set() {
        assert_eq!(config(MskAuth::Iam).region().as_deref(), Some("eu-west-1"));
        assert_eq!(region_of("not-an-arn"), None);
        assert_eq!(region_of("arn:aws:s3:::bucket"), None);
        let mut c = config(MskAuth::Iam);
        c.region = Some("us-east-2".into());
        assert_eq!(c.region().as_deref(), Some("us-east-2"));
    }

    #[tokio::test]
    async fn discovery_pages_through_nodes_and_picks_the_iam_endpoint() {
        let describe = mock!(Client::describe_cluster_v2)
            .then_output(|| described(StorageMode::Tiered, EnhancedMonitoring::PerBroker));
        let page1 = mock!(Client::list_nodes)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                ListNodesOutput::builder()
                    .node_info_list(node(3.0))
                    .node_info_list(node(1.0))
                    .node_info_list(node(2.0))
                    .next_token("more")
                    .build()
            });
        let page2 = mock!(Client::list_nodes)
            .match_requests(|r| r.next_token() == Some("more"))
            .then_output(|| {
                ListNodesOutput::builder()
                    .node_info_list(node(6.0))
                    .node_info_list(node(4.0))
                    .node_info_list(node(5.0))
                    .build()
            });
        let bootstrap = mock!(Client::get_bootstrap_brokers).then_output(|| {
            GetBootstrapBrokersOutput::builder()
                .bootstrap_broker_string_tls("b-1.ingest:9094")
                .bootstrap_broker_string_sasl_iam("b-1.ingest:9098,b-2.ingest:9098")
                .build()
        });
        let client = mock_client!(
            aws_sdk_kafka,
            RuleMode::MatchAny,
            [&describe, &page1, &page2, &bootstrap]
        );
        let found = discover(&client, &config(MskAuth::Iam), Timestamp(0))
            .await
            .unwrap();
        assert_eq!(found.brokers, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(
            found.bootstrap.as_deref(),
            Some("b-1.ingest:9098,b-2.ingest:9098")
        );
        assert_eq!(found.volume_gib, Some(2000));
        let target = crate::sensors::disk::cloudwatch::Target::of(&found).unwrap();
        assert_eq!(target.volume_bytes, 2000 << 30);
        assert!(target.copy_lag);
        assert_eq!(found.limitations(), vec![], "{:?}", found.limitations());
        let conn = found.connection(Some("eu-west-1".into())).unwrap();
        assert!(conn.uses_msk_iam());
        assert_eq!(conn.aws_region.as_deref(), Some("eu-west-1"));
        let tls = GetBootstrapBrokersOutput::builder()
            .bootstrap_broker_string_tls("b-1:9094")
            .build();
        let tls_rule = mock!(Client::get_bootstrap_brokers).then_output(move || tls.clone());
        let client = mock_client!(aws_sdk_kafka, RuleMode::MatchAny, [&tls_rule]);
        assert_eq!(
            bootstrap_servers(&client, ARN, MskAuth::Iam).await.unwrap(),
            None,
            "no IAM endpoint offered: none, not the TLS one"
        );
    }

    #[test]
    fn limitations_say_what_is_missing_and_what_it_disables() {
        let mut c = MskCluster {
            arn: ARN.into(),
            name: "ingest".into(),
            state: "ACTIVE".into(),
            cluster_type: "PROVISIONED".into(),
            storage_mode: Some("LOCAL".into()),
            monitoring: Some("DEFAULT".into()),
            kafka_version: None,
            broker_count: Some(3),
            brokers: vec![1, 2, 3],
            volume_gib: Some(100),
            iam_enabled: true,
            bootstrap: Some("b:9098".into()),
            auth: MskAuth::Iam,
            discovered_at: Timestamp(0),
        };
        let l = c.limitations();
        assert_eq!(l.len(), 2, "{l:?}");
        assert!(l[0].missing.contains("LOCAL, not TIERED") && l[0].disables == ["lower_retention"]);
        assert!(l[1].missing.contains("DEFAULT") && l[1].missing.contains("PER_BROKER"));
        assert!(
            !crate::sensors::disk::cloudwatch::Target::of(&c)
                .unwrap()
                .copy_lag
        );
        c.iam_enabled = false;
        c.bootstrap = None;
        c.volume_gib = None;
        c.state = "UPDATING".into();
        let text = format!("{:?}", c.limitations());
        for part in [
            "UPDATING, not ACTIVE",
            "no EBS volume size",
            "IAM client authentication is off",
            "no bootstrap servers",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(crate::sensors::disk::cloudwatch::Target::of(&c).is_none());
        c.cluster_type = "SERVERLESS".into();
        assert_eq!(c.limitations().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_call_is_named_with_aws_s_reason() {
        let denied = mock!(Client::describe_cluster_v2).then_error(|| {
            aws_sdk_kafka::operation::describe_cluster_v2::DescribeClusterV2Error::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("ForbiddenException")
                    .message("not authorized to perform: kafka:DescribeClusterV2")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_kafka, RuleMode::MatchAny, [&denied]);
        let e = discover(&client, &config(MskAuth::Iam), Timestamp(0))
            .await
            .unwrap_err();
        assert_eq!(e.call, "DescribeClusterV2");
        assert!(e.to_string().contains("kafka:DescribeClusterV2"), "{e}");
    }
}
