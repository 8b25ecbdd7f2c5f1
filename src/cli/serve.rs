//! `catchup run`, `catchup demo` and `catchup config check`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use catchup::config::{ApiConfig, ClusterConfig, GateConfig, Mode, RunConfig};
use catchup::units::Dur;

use super::runtime;

/// `catchup run --config FILE`: the controller until SIGTERM or SIGINT.
pub fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let config = RunConfig::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (policy, scenario) = catchup::service::load(&config)?;
    let tokens = config
        .api_tokens(&|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!(e))?;
    if !tokens.has(catchup::config::Role::Operator) {
        eprintln!(
            "warning: no operator token (api.token_file, api.tokens or CATCHUP_API_TOKEN): mutating endpoints are disabled, status and the audit log are readable by anyone who reaches the API"
        );
    }
    if !tokens.has(catchup::config::Role::Consumer) {
        eprintln!(
            "warning: no consumer token (api.consumer_token_file, api.tokens or CATCHUP_CONSUMER_TOKEN): the gate endpoints need no token"
        );
    }
    runtime()?.block_on(catchup::service::run(
        "run",
        config,
        policy,
        scenario,
        tokens,
        Box::new(|_| {}),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `catchup demo`: the controller on the built-in simulated cluster, accelerated.
pub fn demo(
    scenario: Option<PathBuf>,
    policy: Option<PathBuf>,
    listen: SocketAddr,
    speed: f64,
    state_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let state_dir = match state_dir {
        Some(dir) => dir,
        None => catchup::service::demo_state_dir()
            .context("cannot create a fresh state directory for the demo")?,
    };
    let scenario_file = match scenario {
        Some(file) => file,
        None => {
            // The built-in replay, so the demo runs from any directory.
            std::fs::create_dir_all(&state_dir)
                .with_context(|| format!("cannot create {}", state_dir.display()))?;
            let file = state_dir.join("2025-11-replay.toml");
            std::fs::write(&file, include_str!("../../scenarios/2025-11-replay.toml"))
                .with_context(|| format!("cannot write {}", file.display()))?;
            file
        }
    };
    let config = RunConfig {
        mode: Mode::Active,
        tick: Dur::from_secs(30),
        sensor_timeout: Dur::from_secs(10),
        policy,
        state_dir,
        api: ApiConfig {
            listen,
            ..ApiConfig::default()
        },
        gate: GateConfig::default(),
        cluster: ClusterConfig::Simulator {
            scenario: scenario_file.clone(),
            speed,
        },
        retention_actions: true,
        ha: None,
    };
    let (policy, scenario) = catchup::service::load(&config)?;
    let scenario = scenario.context("no scenario")?;
    let token = catchup::service::random_token().context("cannot make the demo's token")?;
    let api_token = token.clone();
    let groups = policy.group_names();
    let group = groups.first().cloned().unwrap_or_default();
    let state_dir = config.state_dir.clone();
    let name = scenario.name.clone();
    let banner: catchup::service::Banner = Box::new(move |addr: &str| {
        let text = format!(
            "catchup demo: the controller on the simulated cluster \"{name}\" at {speed}x real time
  API:       http://{addr}   (OpenAPI: http://{addr}/openapi.json)
  state dir: {state}
  token:     {token}

Try, in another terminal:
  export CATCHUP_URL=http://{addr} CATCHUP_API_TOKEN={token}
  catchup ctl status
  catchup ctl pause --group {group} --reason \"trying the demo\" --ttl 10m
  catchup ctl resume --group {group} --reason \"done trying\"
  catchup ctl audit
  catchup ctl restore --reason \"undo everything\"
  curl -s http://{addr}/v1/gates/{group}
  curl -s -XPOST http://{addr}/v1/gates/{group}/acquire -H 'content-type: application/json' -d '{{\"permits\":1000,\"max_wait\":\"100ms\"}}'
  curl -s http://{addr}/metrics | grep catchup_broker_disk
Ctrl-C stops the demo.
",
            state = state_dir.display()
        );
        // A reader that went away (`catchup demo | head -3`) is no reason to stop the demo, nor
        // to panic the way `println!` does on a closed pipe.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    });
    runtime()?.block_on(catchup::service::run(
        "demo",
        config,
        policy,
        Some(scenario),
        catchup::config::Tokens::operator(Some(api_token)),
        banner,
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `catchup config check FILE`: validates a configuration and the policy it names.
pub fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    let config = RunConfig::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    catchup::service::load(&config)?;
    println!(
        "{}: ok ({} mode, cluster {}, policy {})",
        file.display(),
        config.mode.as_str(),
        match &config.cluster {
            ClusterConfig::Simulator { .. } => "simulator",
            ClusterConfig::Kafka { .. } => "kafka",
            ClusterConfig::Msk { .. } => "msk",
        },
        config
            .policy
            .as_ref()
            .map_or("built-in defaults".to_string(), |p| p.display().to_string())
    );
    Ok(ExitCode::SUCCESS)
}
