//! How to reach a Kafka cluster: connection settings and an admin client whose main queue is
//! served (librdkafka's logs, OAUTHBEARER token refreshes).

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;

use super::ffi::{MainQueuePump, TokenSource};

/// How to reach the cluster (bootstrap servers, TLS, SASL PLAIN/SCRAM, MSK IAM).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    #[serde(default)]
    pub security_protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, or `AWS_MSK_IAM` (OAUTHBEARER with an MSK IAM
    /// token from the standard AWS credential chain; implies `SASL_SSL`).
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
    /// Region MSK IAM tokens are signed for (default: the AWS chain's region, or the cluster ARN's).
    #[serde(default)]
    pub aws_region: Option<String>,
    /// Where OAUTHBEARER tokens come from (set by [`crate::aws::iam::attach`]); not configuration.
    #[serde(skip)]
    pub tokens: TokenSlot,
}

/// The mechanism name that selects MSK IAM authentication.
pub const AWS_MSK_IAM: &str = "AWS_MSK_IAM";

/// An optional OAUTHBEARER token source inside a [`Connection`].
#[derive(Clone, Default)]
pub struct TokenSlot(pub Option<TokenSource>);

impl std::fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl PartialEq for TokenSlot {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for TokenSlot {}

/// An admin client with its main queue served (logs, OAUTHBEARER refreshes); derefs to the client.
pub struct Admin {
    // Declared first: dropped (joined) before the client it serves.
    _pump: MainQueuePump,
    client: AdminClient<DefaultClientContext>,
}

impl std::ops::Deref for Admin {
    type Target = AdminClient<DefaultClientContext>;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl Connection {
    /// Whether this connection authenticates with MSK IAM.
    pub fn uses_msk_iam(&self) -> bool {
        self.sasl_mechanism
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(AWS_MSK_IAM))
    }

    /// An admin client for this connection, its main queue served.
    pub fn admin(&self) -> rdkafka::error::KafkaResult<Admin> {
        let client: AdminClient<DefaultClientContext> = self.client_config().create()?;
        Ok(Admin {
            _pump: MainQueuePump::start(&client, self.tokens.0.clone()),
            client,
        })
    }

    /// librdkafka settings for this connection.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        let (protocol, mechanism) = if self.uses_msk_iam() {
            (
                Some(
                    self.security_protocol
                        .clone()
                        .unwrap_or_else(|| "SASL_SSL".into()),
                ),
                Some("OAUTHBEARER".to_string()),
            )
        } else {
            (self.security_protocol.clone(), self.sasl_mechanism.clone())
        };
        for (key, value) in [
            ("security.protocol", &protocol),
            ("sasl.mechanism", &mechanism),
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
