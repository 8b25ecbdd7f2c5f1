//! Wiring of the long-running controller: `catchup run` and `catchup demo` share this code path.
//!
//! It loads the policy, builds the cluster adapters named by the config, opens the state directory,
//! starts the HTTP API and the control loop, and shuts both down on SIGTERM or SIGINT with the state
//! flushed.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use crate::config::{ClusterConfig, RunConfig};
use crate::config_file::FileError;
use crate::policy::Policy;
use std::sync::Arc;

use crate::kafka::cluster::KafkaCluster;
use crate::runtime::{Clock, ClusterIo, Controller, Runtime, RuntimeError, WallClock};
use crate::sensors::AnyDiskSource;
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
    /// The state directory.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
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
        ClusterConfig::Kafka { .. } => {
            if policy.groups.is_empty() || policy.retention.topics.is_empty() {
                return Err(ServiceError::Mismatch(
                    "against a real cluster the policy must name its catch-up groups ([[groups]]) and managed topics ([[retention.topics]]) explicitly".into(),
                ));
            }
            Ok((policy, None))
        }
    }
}

/// Runs the controller until SIGTERM or SIGINT. `banner` is called with the API's address once it
/// listens. `scenario` is the one [`load`] returned for a simulated cluster.
pub async fn run(
    config: RunConfig,
    policy: Policy,
    scenario: Option<Scenario>,
    token: Option<String>,
    banner: Banner,
) -> Result<(), ServiceError> {
    match (&config.cluster, scenario) {
        (ClusterConfig::Simulator { speed, .. }, Some(scenario)) => {
            let speed = *speed;
            let live = LiveSim::start(&scenario, speed);
            let wall_tick = Duration::from_secs_f64((config.tick.secs_f64() / speed).max(0.01));
            let driver = tokio::spawn(live.driver());
            let result = serve(
                config,
                policy,
                token,
                banner,
                live.cluster.clone(),
                live.clock.clone(),
                wall_tick,
            )
            .await;
            driver.abort();
            result
        }
        (ClusterConfig::Kafka { kafka, disk }, _) => {
            let timeout = Duration::from_millis(config.effective_sensor_timeout().0);
            let cluster = KafkaCluster::new(
                kafka,
                timeout,
                &config.state_dir,
                policy.clone(),
                AnyDiskSource::from_config(disk, timeout),
            )
            .map_err(|e| ServiceError::Token(format!("cannot set up the Kafka adapters: {e}")))?;
            for (topic, phase) in cluster
                .reconcile()
                .await
                .map_err(|e| ServiceError::Token(format!("start-up reconciliation: {e}")))?
            {
                info!(
                    topic,
                    ?phase,
                    "a change left half-done by a crash was finished or undone"
                );
            }
            let wall_tick = Duration::from_millis(config.tick.0);
            serve(
                config,
                policy,
                token,
                banner,
                cluster,
                Arc::new(WallClock),
                wall_tick,
            )
            .await
        }
        (ClusterConfig::Simulator { .. }, None) => Err(ServiceError::Mismatch(
            "no scenario loaded for the simulator".into(),
        )),
    }
}

async fn serve<K: ClusterIo>(
    config: RunConfig,
    policy: Policy,
    token: Option<String>,
    banner: Banner,
    cluster: K,
    clock: Arc<dyn Clock>,
    wall_tick: Duration,
) -> Result<(), ServiceError> {
    let (ctl, commands) = Controller::new(config.clone(), policy, token, clock)?;
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
    Runtime::new(ctl.clone(), cluster)
        .map_err(|e| ServiceError::Runtime(RuntimeError::Store(e)))?
        .run(wall_tick, commands, stopped(stop_rx))
        .await;
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

/// A fresh state directory for the demo under the system temp directory.
pub fn demo_state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("catchup-demo-{}", std::process::id()))
}

/// A random token for the demo (from the OS's random source; falls back to time and pid).
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        let seed = crate::runtime::wall_now().0 as u64 ^ u64::from(std::process::id()) << 32;
        let mut rng = crate::sim::cluster::SplitMix64::new(seed);
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
