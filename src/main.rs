//! The `catchup` command line: thin wiring over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use catchup::config::{ApiConfig, ClusterConfig, GateConfig, Mode, RunConfig};
use catchup::ctl::{Connection, CtlCommand};
use catchup::policy::{ControllerState, Policy, decide};
use catchup::sim::{self, ControllerKind, Scenario};
use catchup::units::Dur;
use clap::{Parser, Subcommand};

/// Kafka backlog catch-up controller for tiered-storage clusters.
#[derive(Parser)]
#[command(name = "catchup", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller: control loop, consumer gate and HTTP API.
    Run {
        /// Configuration file (see docs/config.md).
        #[arg(long)]
        config: PathBuf,
    },
    /// The controller on the built-in simulated cluster, accelerated, with its HTTP API up.
    Demo {
        /// Scenario to run (default: the 2025-11 replay).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Policy (default: the built-in defaults).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// API listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Simulated seconds per wall-clock second.
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// State directory (default: a fresh one under the temp directory).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Talk to a running controller's API.
    Ctl {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: CtlCommand,
    },
    /// Print one snapshot of what the sensors see.
    Observe {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print what the engine would decide right now, and why (changes nothing).
    Plan {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read consumer-group lag once (batched: a constant number of Kafka requests per group).
    Lag {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Consumer group (repeat for several).
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Local retention of managed topics on a real cluster, through the same guarded, journaled path
    /// as the controller.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run configurations.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run a scenario on the simulated tiered-storage cluster and summarise what happened.
    Simulate {
        /// Scenario file (see docs/scenarios.md).
        #[arg(long)]
        scenario: PathBuf,
        /// Policy file; default: the built-in defaults (policies/default.toml).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Who drives the consumers and topics.
        #[arg(long, value_enum, default_value_t = ControllerKind::Catchup)]
        controller: ControllerKind,
        /// Draw disk, lag, consumer rate and local retention over time into this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Also print every action the controller took, with its reasons (to stderr).
        #[arg(long)]
        timeline: bool,
    },
}

/// How to reach a Kafka cluster.
#[derive(clap::Args, Clone, Debug)]
struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long)]
    bootstrap_server: String,
    /// PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long)]
    security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, or AWS_MSK_IAM (MSK IAM from the standard AWS
    /// credential chain; implies SASL_SSL).
    #[arg(long)]
    sasl_mechanism: Option<String>,
    /// SASL user name.
    #[arg(long)]
    sasl_username: Option<String>,
    /// SASL password.
    #[arg(long, env = "CATCHUP_KAFKA_SASL_PASSWORD", hide_env_values = true)]
    sasl_password: Option<String>,
    /// CA bundle for TLS.
    #[arg(long)]
    ssl_ca_location: Option<String>,
    /// Region for MSK IAM tokens (default: AWS_REGION or the profile's).
    #[arg(long)]
    aws_region: Option<String>,
    /// How long each request may take.
    #[arg(long, default_value = "10s")]
    timeout: String,
}

impl KafkaArgs {
    /// The connection, with MSK IAM tokens attached when asked for (inside the runtime).
    async fn connect(&self) -> anyhow::Result<(catchup::kafka::Connection, std::time::Duration)> {
        let (conn, timeout) = self.connection()?;
        let conn = catchup::aws::iam::attach(conn)
            .await
            .map_err(|e| anyhow::anyhow!("MSK IAM authentication: {e}"))?;
        Ok((conn, timeout))
    }

    fn connection(&self) -> anyhow::Result<(catchup::kafka::Connection, std::time::Duration)> {
        let timeout = Dur::parse(&self.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
        let conn = catchup::kafka::Connection {
            bootstrap_servers: self.bootstrap_server.clone(),
            security_protocol: self.security_protocol.clone(),
            sasl_mechanism: self.sasl_mechanism.clone(),
            sasl_username: self.sasl_username.clone(),
            sasl_password: self.sasl_password.clone(),
            ssl_ca_location: self.ssl_ca_location.clone(),
            aws_region: self.aws_region.clone(),
            tokens: Default::default(),
        };
        Ok((conn, std::time::Duration::from_millis(timeout.0)))
    }
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Managed topics: original and current local retention, and the journal's state.
    Status {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// State directory holding the journal.
        #[arg(long)]
        state_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lower a topic's local.retention.ms (guarded: tiered storage on, within [floor, retention.ms]).
    Lower {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The topic (it must have remote.storage.enable=true).
        #[arg(long)]
        topic: String,
        /// New local retention, e.g. 30m.
        #[arg(long)]
        to: String,
        /// State directory holding the journal.
        #[arg(long)]
        state_dir: PathBuf,
        /// Why (goes into the journal and the audit log).
        #[arg(long)]
        reason: String,
        /// Policy whose floor and managed topics apply (default: this topic, floor 1h).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Your name, for the audit log.
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// Bring a topic (or every topic in the journal) back to its exact original.
    Restore {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// One topic.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        topic: Option<String>,
        /// Every topic the journal has changed, whether or not a policy still names it.
        #[arg(long)]
        all: bool,
        /// State directory holding the journal.
        #[arg(long)]
        state_dir: PathBuf,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Your name, for the audit log.
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a run configuration and the policy it names, without connecting to anything;
    /// prints every problem with file, field, value and fix.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate policy files; prints every problem with file, field, value and fix.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. } | Command::Demo { .. }) {
        let filter = tracing_subscriber::EnvFilter::try_from_env("CATCHUP_LOG")
            .unwrap_or_else(|_| "info".into());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let config = RunConfig::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (policy, scenario) = catchup::service::load(&config)?;
            let token = config
                .api_token(&|k| std::env::var(k).ok())
                .map_err(|e| anyhow::anyhow!(e))?;
            if token.is_none() {
                eprintln!(
                    "warning: no API token (api.token_file or CATCHUP_API_TOKEN): mutating endpoints are disabled"
                );
            }
            runtime()?.block_on(catchup::service::run(
                config,
                policy,
                scenario,
                token,
                Box::new(|_| {}),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            scenario,
            policy,
            listen,
            speed,
            state_dir,
        } => {
            let state_dir = state_dir.unwrap_or_else(catchup::service::demo_state_dir);
            let scenario_file = match scenario {
                Some(file) => file,
                None => {
                    // The built-in replay, so the demo runs from any directory.
                    std::fs::create_dir_all(&state_dir)
                        .with_context(|| format!("cannot create {}", state_dir.display()))?;
                    let file = state_dir.join("2025-11-replay.toml");
                    std::fs::write(&file, include_str!("../scenarios/2025-11-replay.toml"))
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
            };
            let (policy, scenario) = catchup::service::load(&config)?;
            let scenario = scenario.context("no scenario")?;
            let token = catchup::service::random_token();
            let api_token = token.clone();
            let groups = policy.group_names();
            let group = groups.first().cloned().unwrap_or_default();
            let state_dir = config.state_dir.clone();
            let name = scenario.name.clone();
            let banner: catchup::service::Banner = Box::new(move |addr: &str| {
                println!(
                    "catchup demo: the controller on the simulated cluster \"{name}\" at {speed}x real time"
                );
                println!("  API:       http://{addr}   (OpenAPI: http://{addr}/openapi.json)");
                println!("  state dir: {}", state_dir.display());
                println!("  token:     {token}");
                println!();
                println!("Try, in another terminal:");
                println!("  export CATCHUP_URL=http://{addr} CATCHUP_API_TOKEN={token}");
                println!("  catchup ctl status");
                println!(
                    "  catchup ctl pause --group {group} --reason \"trying the demo\" --ttl 10m"
                );
                println!("  catchup ctl resume --group {group} --reason \"done trying\"");
                println!("  catchup ctl audit");
                println!("  catchup ctl restore --reason \"undo everything\"");
                println!("  curl -s http://{addr}/v1/gates/{group}");
                println!(
                    "  curl -s -XPOST http://{addr}/v1/gates/{group}/acquire -H 'content-type: application/json' -d '{{\"permits\":1000,\"max_wait\":\"100ms\"}}'"
                );
                println!("  curl -s http://{addr}/metrics | grep catchup_broker_disk");
                println!("Ctrl-C stops the demo.");
            });
            runtime()?.block_on(catchup::service::run(
                config,
                policy,
                Some(scenario),
                Some(api_token),
                banner,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lag {
            kafka,
            groups,
            json,
        } => runtime()?.block_on(async {
            let (conn, timeout) = kafka.connect().await?;
            let reader = catchup::kafka::LagReader::new(&conn, timeout)?;
            let now = catchup::runtime::wall_now();
            let names = groups.clone();
            let results =
                tokio::task::spawn_blocking(move || reader.read_groups(&names, now)).await?;
            let mut out = Vec::new();
            for (g, result) in groups.iter().zip(results) {
                out.push(result.with_context(|| {
                    format!(
                        "reading the lag of group {g:?} from {}",
                        conn.bootstrap_servers
                    )
                })?);
            }
            print!("{}", render_lag(&out, json)?);
            Ok(ExitCode::SUCCESS)
        }),
        Command::Retention { command } => runtime()?.block_on(retention_command(command)),
        Command::Ctl { conn, command } => {
            let out = runtime()?.block_on(catchup::ctl::run(&conn, &command))?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Observe { config, json } => {
            let (obs, _, _, facts) = snapshot(&config)?;
            if json {
                let mut v = serde_json::to_value(&obs)?;
                v["limitations"] = serde_json::to_value(&facts.limitations)?;
                v["cluster"] = facts.cluster.unwrap_or_default();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_observation(&obs));
                print!("{}", render_limitations(&facts.limitations));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { config, json } => {
            let (obs, policy, state_dir, _) = snapshot(&config)?;
            let store = catchup::store::StateDir::open(&state_dir)?;
            let state: ControllerState = store.load("state.json")?.unwrap_or_default();
            let overrides: Vec<catchup::policy::Override> =
                store.load("overrides.json")?.unwrap_or_default();
            let now = obs
                .groups
                .first()
                .map(|g| g.sampled_at)
                .unwrap_or_else(catchup::runtime::wall_now);
            let (decision, _) = decide(&obs, &policy, &state, &overrides, now);
            if json {
                println!("{}", serde_json::to_string_pretty(&decision)?);
            } else {
                print!("{}", render_decision(&decision));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let config = RunConfig::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        Command::Policy {
            command: PolicyCommand::Check { files },
        } => {
            let mut failed = false;
            for file in &files {
                match Policy::load(file) {
                    Ok(p) => {
                        println!("{}: ok", file.display());
                        if p.groups.is_empty() || p.retention.topics.is_empty() {
                            println!(
                                "{}: note: names {} catch-up groups and {} managed topics; `catchup simulate` takes them from the scenario",
                                file.display(),
                                p.groups.len(),
                                p.retention.topics.len()
                            );
                        }
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Simulate {
            scenario,
            policy,
            controller,
            plot,
            json,
            timeline,
        } => {
            let s = Scenario::load(&scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
            let p = match &policy {
                Some(file) => Policy::load(file).map_err(|e| anyhow::anyhow!("{e}"))?,
                None => Policy::default(),
            };
            let policy_name = policy
                .as_ref()
                .map_or("the default policy".to_string(), |f| {
                    f.display().to_string()
                });
            let p = sim::bind_policy(&p, &s).map_err(|e| {
                anyhow::anyhow!("{policy_name} does not fit {}:\n{e}", scenario.display())
            })?;
            let outcome = sim::simulate(&s, &p, controller)?;
            if timeline {
                for line in &outcome.timeline {
                    eprintln!("{line}");
                }
            }
            if let Some(file) = &plot {
                sim::plot::draw(file, &outcome, &p)
                    .with_context(|| format!("cannot write the plot to {}", file.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
            } else {
                print!("{}", outcome.summary.render());
                if let Some(file) = &plot {
                    println!("plot:                {}", file.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What a snapshot knows of the cluster beyond the observation.
#[derive(Default)]
struct Facts {
    limitations: Vec<catchup::sensors::Limitation>,
    cluster: Option<serde_json::Value>,
}

fn render_limitations(limitations: &[catchup::sensors::Limitation]) -> String {
    if limitations.is_empty() {
        return "limitations: none\n".into();
    }
    let mut out = String::from("limitations:\n");
    for l in limitations {
        out.push_str(&format!("  - {l}\n"));
    }
    out
}

/// One observation of the cluster a config names, with its policy, state directory and facts.
fn snapshot(
    config: &std::path::Path,
) -> anyhow::Result<(catchup::sensors::Observation, Policy, PathBuf, Facts)> {
    let config = RunConfig::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (policy, scenario) = catchup::service::load(&config)?;
    let obs = match &config.cluster {
        ClusterConfig::Simulator { speed, .. } => {
            let scenario = scenario.context("no scenario")?;
            let live = catchup::sim::live::LiveSim::start(&scenario, *speed);
            (
                catchup::sim::run::observe(&live.cluster, &policy)?,
                Facts::default(),
            )
        }
        ClusterConfig::Kafka { .. } | ClusterConfig::Msk { .. } => {
            let timeout = std::time::Duration::from_millis(config.effective_sensor_timeout().0);
            runtime()?.block_on(async {
                let (cluster, _) = catchup::service::real_cluster(&config, &policy).await?;
                let obs = catchup::runtime::observe_once(&cluster, &policy, timeout).await;
                use catchup::sensors::ClusterFacts;
                let limitations =
                    catchup::runtime::limitations(&cluster, &config, &obs.sensor_errors);
                let facts = Facts {
                    limitations,
                    cluster: cluster.describe(),
                };
                anyhow::Ok((obs, facts))
            })?
        }
    };
    let (obs, facts) = obs;
    Ok((obs, policy, config.state_dir, facts))
}

fn render_observation(obs: &catchup::sensors::Observation) -> String {
    let mut out = String::from("disks:\n");
    for d in &obs.disks {
        out.push_str(&format!(
            "  broker {:>3}: {:5.1}% of {} (sampled {}, {:?})\n",
            d.broker,
            d.used_percent(),
            catchup::units::Bytes(d.capacity_bytes),
            d.sampled_at.rfc3339(),
            d.source
        ));
    }
    out.push_str("tiered-storage copy lag:\n");
    for c in &obs.copy_lag {
        out.push_str(&format!(
            "  broker {:>3}: {}\n",
            c.broker,
            catchup::units::human_bytes(c.bytes as f64)
        ));
    }
    out.push_str("catch-up groups:\n");
    for g in &obs.groups {
        let lag = g.total_lag().map_or(
            "unknown (a partition has no committed offset)".to_string(),
            |l| format!("{l} records"),
        );
        out.push_str(&format!(
            "  {}: lag {lag} over {} partitions\n",
            g.group,
            g.partitions.len()
        ));
    }
    out.push_str("managed topics:\n");
    for t in &obs.topics {
        let local = t.configs.get("local.retention.ms");
        out.push_str(&format!(
            "  {}: local.retention.ms = {} ({:?}), effective {}, remote.storage.enable = {}\n",
            t.topic,
            local
                .and_then(|c| c.value.clone())
                .unwrap_or_else(|| "-".into()),
            local.map(|c| c.source),
            t.effective_local_retention_ms()
                .map_or("unlimited".into(), |ms| Dur(ms.max(0) as u64).to_string()),
            t.remote_storage_enabled()
        ));
    }
    for f in &obs.sensor_errors {
        out.push_str(&format!("sensor {} failed: {}\n", f.sensor, f.reason));
    }
    out
}

fn render_decision(d: &catchup::policy::Decision) -> String {
    let mut out = String::new();
    for (group, g) in &d.groups {
        out.push_str(&format!("group {group}: {}\n", g.gate.name()));
        for r in &g.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
    }
    for (topic, t) in &d.topics {
        out.push_str(&format!("topic {topic}: {:?}\n", t.target));
        for r in &t.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
    }
    for a in &d.alerts {
        out.push_str(&format!(
            "alert [{:?}] {}: {}\n",
            a.severity, a.code, a.message
        ));
    }
    out
}

fn render_lag(groups: &[catchup::sensors::GroupOffsets], json: bool) -> anyhow::Result<String> {
    if json {
        let groups: Vec<serde_json::Value> = groups
            .iter()
            .map(|g| {
                let partitions: Vec<serde_json::Value> = g
                    .partitions
                    .iter()
                    .map(|p| serde_json::json!({"topic": p.topic, "partition": p.partition, "committed": p.committed, "log_end": p.log_end, "lag": p.lag()}))
                    .collect();
                let mut v = serde_json::json!({"group": g.group, "total_lag": g.total_lag(), "partitions": partitions});
                if !g.unavailable.is_empty() {
                    v["unavailable"] = serde_json::json!(g.unavailable);
                }
                v
            })
            .collect();
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({"groups": groups}))?
        ));
    }
    let mut out = String::new();
    for g in groups {
        let total = g
            .total_lag()
            .map_or("unknown".to_string(), |l| l.to_string());
        out.push_str(&format!("group {}: total lag {total}\n", g.group));
        if g.partitions.is_empty() {
            out.push_str("  no committed offsets\n");
        }
        for p in &g.partitions {
            let committed = p.committed.map_or("-".to_string(), |c| c.to_string());
            let lag = p.lag().map_or("-".to_string(), |l| l.to_string());
            out.push_str(&format!(
                "  {}-{}: committed {committed}, log end {}, lag {lag}\n",
                p.topic, p.partition, p.log_end
            ));
        }
        for u in &g.unavailable {
            out.push_str(&format!("  unavailable: {u}\n"));
        }
    }
    Ok(out)
}

async fn retention_command(command: RetentionCommand) -> anyhow::Result<ExitCode> {
    use catchup::kafka::retention::{KafkaRetention, Phase};
    use catchup::policy::{RetentionTarget, TopicPolicy};
    let (kafka, state_dir) = match &command {
        RetentionCommand::Status {
            kafka, state_dir, ..
        }
        | RetentionCommand::Lower {
            kafka, state_dir, ..
        }
        | RetentionCommand::Restore {
            kafka, state_dir, ..
        } => (kafka, state_dir),
    };
    let (conn, timeout) = kafka.connect().await?;
    let admin = catchup::kafka::TopicAdmin::new(&conn, timeout)?;
    let store = catchup::store::StateDir::open(state_dir)?;
    let now = catchup::runtime::wall_now();
    // The policy: the one given, else exactly the topics named here or in the journal.
    let mut policy = match &command {
        RetentionCommand::Lower {
            policy: Some(file), ..
        } => Policy::load(file).map_err(|e| anyhow::anyhow!("{e}"))?,
        _ => Policy::default(),
    };
    let journal = KafkaRetention::new(&admin, &store, &policy).journal()?;
    if policy.retention.topics.is_empty() {
        let mut names: Vec<String> = journal.topics.keys().cloned().collect();
        if let RetentionCommand::Lower { topic, .. }
        | RetentionCommand::Restore {
            topic: Some(topic), ..
        } = &command
        {
            names.push(topic.clone());
        }
        names.sort();
        names.dedup();
        policy.retention.topics = names
            .into_iter()
            .map(|name| TopicPolicy { name, floor: None })
            .collect();
    }
    let actuator = KafkaRetention::new(&admin, &store, &policy);
    for (topic, phase) in actuator.reconcile(now).await? {
        eprintln!("reconciled {topic}: a change left half-done by a crash is now {phase:?}");
    }
    let audit =
        |actor: &str, topic: &str, reason: &str, outcome: &str, change: &serde_json::Value| {
            let _ = store.audit(catchup::store::AuditRecord {
                id: 0,
                at: now,
                actor: actor.into(),
                action: "retention".into(),
                target: topic.into(),
                reason: reason.into(),
                before: serde_json::Value::Null,
                after: change.clone(),
                outcome: outcome.into(),
            });
        };
    match command {
        RetentionCommand::Status { json, .. } => {
            let journal = actuator.journal()?;
            let topics: Vec<String> = journal.topics.keys().cloned().collect();
            let configs = admin.describe(&topics, now).await?;
            let mut rows = Vec::new();
            for t in &configs {
                let e = &journal.topics[&t.topic];
                rows.push(serde_json::json!({
                    "topic": t.topic,
                    "current_ms": t.effective_local_retention_ms(),
                    "current_value": t.configs.get("local.retention.ms").and_then(|c| c.value.clone()),
                    "original_value": e.original.value,
                    "original_source": e.original.source,
                    "original_ms": e.original.effective_ms,
                    "phase": e.phase,
                    "reason": e.reason,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("the journal has no topic: nothing was changed");
            } else {
                for r in &rows {
                    println!(
                        "{}: local.retention.ms {} (original {} from {}), {}",
                        r["topic"].as_str().unwrap_or(""),
                        r["current_value"],
                        r["original_value"],
                        r["original_source"],
                        r["phase"]
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Lower {
            topic,
            to,
            reason,
            actor,
            ..
        } => {
            let ms = Dur::parse(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            let target = RetentionTarget::Lowered { ms: ms.0 as i64 };
            match actuator.apply(&topic, &target, &reason, now).await {
                Ok(change) => {
                    let change = serde_json::to_value(&change)?;
                    audit(&actor, &topic, &reason, "applied", &change);
                    println!("{topic}: local.retention.ms lowered to {ms} ({change})");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    audit(
                        &actor,
                        &topic,
                        &reason,
                        &format!("refused: {e}"),
                        &serde_json::Value::Null,
                    );
                    Err(e.into())
                }
            }
        }
        RetentionCommand::Restore {
            topic,
            reason,
            actor,
            ..
        } => {
            let journal = actuator.journal()?;
            let topics: Vec<String> = match topic {
                Some(t) => vec![t],
                None => journal
                    .topics
                    .iter()
                    .filter(|(_, e)| e.phase != Phase::Restored)
                    .map(|(t, _)| t.clone())
                    .collect(),
            };
            let mut failed = false;
            for t in topics {
                match actuator
                    .apply(&t, &RetentionTarget::Original, &reason, now)
                    .await
                {
                    Ok(change) => {
                        let change = serde_json::to_value(&change)?;
                        audit(&actor, &t, &reason, "applied", &change);
                        println!("{t}: back at its original");
                    }
                    Err(e) => {
                        audit(
                            &actor,
                            &t,
                            &reason,
                            &format!("refused: {e}"),
                            &serde_json::Value::Null,
                        );
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
