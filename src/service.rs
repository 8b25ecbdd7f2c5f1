//! Wiring of the long-running controller: `catchup run` and `catchup demo` share this code path.
//!
//! It loads the policy, opens the state directory (once, taking its lock: one writer per state
//! directory), builds the cluster adapters named by the config, starts the HTTP API and the control
//! loop, and shuts both down on SIGTERM or SIGINT with the state flushed.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use crate::aws::msk::{MskWatch, discover};
use crate::clock::{Clock, WallClock};
use crate::config::{ClusterConfig, RunConfig, Tokens};
use crate::config_file::FileError;
use crate::policy::Policy;
use crate::store::{Holder, StateDir, StoreError};
use std::sync::Arc;

use crate::runtime::cluster::KafkaCluster;
use crate::runtime::{ClusterIo, Controller, Runtime, RuntimeError};
use crate::sensors::disk::cloudwatch::Target;
use crate::sensors::disk::{AnyDiskSource, DiskConfig};
use crate::sim::Scenario;
use crate::sim::live::LiveSim;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A file (config, policy, scenario) is not valid.
    #[error("{0}")]
    File(#[from] FileError),
    /// The policy does not fit the simulated scenario.
    #[error("the policy does not fit the scenario:\n{0}")]
    Mismatch(String),
    /// The API token could not be read, or the cluster adapters could not be set up.
    #[error("{0}")]
    Token(String),
    /// The shared state.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The state directory (in use by another process, unreadable, ...).
    #[error(transparent)]
    State(#[from] StoreError),
    /// Binding or serving the API.
    #[error("API on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What to print once the API is up.
pub type Banner = Box<dyn FnOnce(&str) + Send>;

/// Loads the policy a config names (the built-in defaults when it names none) and, for a simulated
/// cluster, its scenario, binding the policy to it.
pub fn load(config: &RunConfig) -> Result<(Policy, Option<Scenario>), ServiceError> {
    let policy = match &config.policy {
        Some(file) => Policy::load(file)?,
        None => Policy::default(),
    };
    match &config.cluster {
        ClusterConfig::Simulator { scenario, .. } => {
            let scenario = Scenario::load(scenario)?;
            let policy = crate::sim::bind_policy(&policy, &scenario)
                .map_err(|e| ServiceError::Mismatch(e.to_string()))?;
            Ok((policy, Some(scenario)))
        }
        ClusterConfig::Kafka { .. } | ClusterConfig::Msk { .. } => {
            if policy.groups.is_empty() || policy.retention.topics.is_empty() {
                return Err(ServiceError::Mismatch(
                    "against a real cluster the policy must name its catch-up groups ([[groups]]) and managed topics ([[retention.topics]]) explicitly".into(),
                ));
            }
            let freshness = match &config.cluster {
                ClusterConfig::Kafka { disk, .. }
                | ClusterConfig::Msk {
                    disk: Some(disk), ..
                } => disk.freshness(),
                _ => DiskConfig::Cloudwatch(Default::default()).freshness(),
            };
            if let Some(problem) = crate::policy::validate::check_disk_age(&policy, &freshness) {
                return Err(ServiceError::Mismatch(problem.to_string()));
            }
            Ok((policy, None))
        }
    }
}

/// Runs the controller until SIGTERM or SIGINT. `command` (`run`, `demo`) is what the state
/// directory's lock file says holds it. `banner` is called with the API's address once it listens.
/// `scenario` is the one [`load`] returned for a simulated cluster.
pub async fn run(
    command: &str,
    config: RunConfig,
    policy: Policy,
    scenario: Option<Scenario>,
    tokens: Tokens,
    banner: Banner,
) -> Result<(), ServiceError> {
    let store = open_state_dir(&config, command).await?;
    match (&config.cluster, scenario) {
        (ClusterConfig::Simulator { speed, .. }, Some(scenario)) => {
            let speed = *speed;
            let live = LiveSim::start(&scenario, speed);
            let wall_tick = Duration::from_secs_f64((config.tick.secs_f64() / speed).max(0.01));
            let driver = tokio::spawn(live.driver());
            let driven = Driven {
                cluster: live.cluster.clone().guarded_by(&policy),
                clock: live.clock.clone(),
                wall_tick,
            };
            let result = serve(config, policy, tokens, banner, driven, store, None).await;
            driver.abort();
            result
        }
        (ClusterConfig::Kafka { .. } | ClusterConfig::Msk { .. }, _) => {
            let (cluster, watch) = real_cluster(&config, &policy, store.clone()).await?;
            // A change a crash left half-done is settled by the first tick (the journal is
            // settled against the cluster's configs every tick).
            // Rediscovery runs as long as the service does.
            let _rediscovery = watch.map(|w| AbortOnDrop(tokio::spawn(w.run())));
            let wall_tick = Duration::from_millis(config.tick.0);
            let ha = start_ha(&config, &cluster).await?;
            // In HA mode the retention journal lives in the state topic (the leader's saves
            // fenced by its epoch); a file journal in this state directory is imported once.
            let cluster = match &ha {
                Some(ha) => cluster.with_ha_journal(ha.journal(Some(store.clone()))),
                None => cluster,
            };
            let driven = Driven {
                cluster,
                clock: Arc::new(WallClock),
                wall_tick,
            };
            serve(config, policy, tokens, banner, driven, store, ha).await
        }
        (ClusterConfig::Simulator { .. }, None) => Err(ServiceError::Mismatch(
            "no scenario loaded for the simulator".into(),
        )),
    }
}

/// With `[ha]`: creates catchup's topics when missing, joins the election and starts the state
/// topic's reader and heartbeats.
async fn start_ha(
    config: &RunConfig,
    cluster: &KafkaCluster,
) -> Result<Option<Arc<crate::ha::Ha>>, ServiceError> {
    let Some(ha) = &config.ha else {
        return Ok(None);
    };
    let instance = ha.instance_id(&|k| std::env::var(k).ok());
    let started = crate::ha::Ha::start(
        cluster.connection(),
        ha,
        instance.clone(),
        Arc::new(WallClock),
    )
    .await
    .map_err(|e| ServiceError::Token(format!("cannot start HA ({}): {e}", ha.name)))?;
    info!(deployment = %ha.name, %instance, group = %ha.group(), state_topic = %ha.state_topic(), "HA: joined the election");
    Ok(Some(Arc::new(started)))
}

/// Opens `config.state_dir` for writing as `command`, taking its lock: a second instance on the
/// same directory stops here, naming the first.
async fn open_state_dir(config: &RunConfig, command: &str) -> Result<Arc<StateDir>, ServiceError> {
    let dir = config.state_dir.clone();
    let holder = Holder::this_process(command);
    let store = crate::store::unblock(move || StateDir::open(&dir, holder)).await?;
    Ok(Arc::new(store))
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The adapters of a real cluster (`kind = "kafka"` or `"msk"`): for MSK, discovery first (which
/// gives the bootstrap servers, the CloudWatch target and the cluster's limitations), MSK IAM
/// tokens attached when the connection uses them. Call inside the runtime that will run the
/// controller. The watch, when there is one, rediscovers when run. `store` is the process's open
/// state directory (read-only for commands that only observe).
pub async fn real_cluster(
    config: &RunConfig,
    policy: &Policy,
    store: Arc<StateDir>,
) -> Result<(KafkaCluster, Option<Arc<MskWatch>>), ServiceError> {
    let timeout = Duration::from_millis(config.effective_sensor_timeout().0);
    let setup = |what: &str, e: &dyn std::fmt::Display| {
        ServiceError::Token(format!("cannot set up {what}: {e}"))
    };
    let (conn, disk, watch) = match &config.cluster {
        ClusterConfig::Kafka { kafka, disk } => (
            kafka.clone(),
            disk.build(timeout)
                .map_err(|e| setup("the disk source", &e))?,
            None,
        ),
        ClusterConfig::Msk { msk, kafka, disk } => {
            let region = msk.region();
            let sdk = crate::aws::sdk_config(region.as_deref(), None).await;
            let client = crate::aws::msk_client(&sdk, msk.endpoint_url.as_deref());
            let found = discover(&client, msk, crate::clock::wall_now())
                .await
                .map_err(|e| setup("the MSK cluster", &e))?;
            info!(
                cluster = %found.name, state = %found.state,
                storage_mode = ?found.storage_mode, monitoring = ?found.monitoring,
                brokers = ?found.brokers, volume_gib = ?found.volume_gib,
                "MSK cluster discovered"
            );
            for l in found.limitations() {
                tracing::warn!(missing = %l.missing, disables = ?l.disables, "limitation");
            }
            let conn = match kafka {
                Some(k) if !k.bootstrap_servers.trim().is_empty() => k.clone(),
                extra => {
                    let mut c = found.connection(region.clone()).ok_or_else(|| {
                        setup(
                            "the Kafka connection",
                            &format!(
                                "the cluster offers no bootstrap servers for auth = {:?}; set cluster.msk.auth or [cluster.kafka] bootstrap_servers",
                                msk.auth
                            ),
                        )
                    })?;
                    if let Some(k) = extra {
                        c.sasl_username = k.sasl_username.clone();
                        c.sasl_password = k.sasl_password.clone();
                        c.ssl_ca_location = k.ssl_ca_location.clone();
                    }
                    c
                }
            };
            let (disk, cloudwatch) = match disk {
                None | Some(DiskConfig::Cloudwatch(_)) => {
                    let cw_config = match disk {
                        Some(DiskConfig::Cloudwatch(c)) => c.clone(),
                        _ => Default::default(),
                    };
                    let target = Target::of(&found).ok_or_else(|| {
                        setup(
                            "the CloudWatch disk source",
                            &"the cluster has no EBS volume size (Express brokers?); use [cluster.disk] kind = \"prometheus\" or \"file\"",
                        )
                    })?;
                    let cw = Arc::new(cw_config.build(
                        crate::aws::cloudwatch_client(&sdk, cw_config.endpoint_url.as_deref()),
                        target,
                    ));
                    (AnyDiskSource::CloudWatch(cw.clone()), Some(cw))
                }
                Some(other) => (
                    other
                        .build(timeout)
                        .map_err(|e| setup("the disk source", &e))?,
                    None,
                ),
            };
            // Rediscovery keeps the CloudWatch source's brokers and volume size current.
            let follow = cloudwatch.map(|cw| -> crate::aws::msk::OnChange {
                Box::new(move |cluster| {
                    if let Some(target) = Target::of(cluster) {
                        cw.set_target(target);
                    }
                })
            });
            let watch = Arc::new(MskWatch::new(msk.clone(), client, found, follow));
            let mut conn = conn;
            if conn.aws_region.is_none() {
                conn.aws_region = region;
            }
            (conn, disk, Some(watch))
        }
        ClusterConfig::Simulator { .. } => {
            return Err(ServiceError::Mismatch("not a real cluster".into()));
        }
    };
    let conn = crate::aws::iam::attach(conn)
        .await
        .map_err(|e| setup("MSK IAM authentication", &e))?;
    let mut cluster = KafkaCluster::new(&conn, timeout, store, policy.clone(), disk)
        .map_err(|e| setup("the Kafka adapters", &e))?;
    if let Some(w) = &watch {
        cluster = cluster.with_msk(w.clone());
    }
    Ok((cluster, watch))
}

/// The cluster the loop drives, the time it runs on, and its tick in wall-clock time.
struct Driven<K> {
    cluster: K,
    clock: Arc<dyn Clock>,
    wall_tick: Duration,
}

async fn serve<K: ClusterIo>(
    config: RunConfig,
    policy: Policy,
    tokens: Tokens,
    banner: Banner,
    driven: Driven<K>,
    store: Arc<StateDir>,
    ha: Option<Arc<crate::ha::Ha>>,
) -> Result<(), ServiceError> {
    let Driven {
        cluster,
        clock,
        wall_tick,
    } = driven;
    let (ctl, commands) = Controller::new(config.clone(), policy, store.clone(), tokens, clock)?;
    let listen = config.api.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServiceError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServiceError::Listen {
            addr: listen.to_string(),
            source,
        })?;
    let api = addr.to_string();
    crate::store::unblock(move || store.announce_api(&api)).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = tokio::spawn(crate::api::serve(
        listener,
        ctl.clone(),
        stopped(stop_rx.clone()),
    ));
    info!(%addr, mode = config.mode.as_str(), state_dir = %config.state_dir.display(), "catchup controller started");
    banner(&addr.to_string());
    let mut runtime = Runtime::new(ctl.clone(), cluster)
        .map_err(|e| ServiceError::Runtime(RuntimeError::Store(e)))?;
    if let Some(ha) = ha {
        runtime = runtime.with_ha(ha);
    }
    runtime.run(wall_tick, commands, stopped(stop_rx)).await;
    match api.await {
        Ok(Err(source)) => Err(ServiceError::Listen {
            addr: addr.to_string(),
            source,
        }),
        _ => Ok(()),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A fresh, private state directory for the demo under the system temp directory: a random name
/// (never reused, not guessable), created here (refusing one that exists) with mode 0700.
pub fn demo_state_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("catchup-demo-{}", &random_token()?[..16]));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir)?;
    Ok(dir)
}

/// A random token for the demo, from the operating system's random source only (`/dev/urandom`);
/// without it there is no token, and no demo.
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| std::io::Error::new(e.kind(), format!("/dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
