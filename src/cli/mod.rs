//! The `catchup` command line: the commands ([`Cli`]) and what each runs, as thin wiring over the
//! library; rendering for people lives beside each command.
//!
//! - [`serve`]: `run`, `demo` and `config check`;
//! - [`inspect`]: `observe`, `plan` and `lag`;
//! - [`retention`]: the runbook's `retention status|lower|restore`;
//! - [`simulate`]: `simulate` and `policy check`;
//! - [`ctl`]: `ctl`, the API client.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use catchup::sim::ControllerKind;
use catchup::units::Dur;
use ctl::{Connection, CtlCommand};

pub mod ctl;
pub mod inspect;
pub mod retention;
pub mod serve;
pub mod simulate;

/// Kafka backlog catch-up controller for tiered-storage clusters.
#[derive(Parser)]
#[command(name = "catchup", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines of `run` and `demo`: `text` for people, `json` (one object per line) for log
    /// collectors. No colour codes unless stderr is a terminal.
    #[arg(
        long,
        global = true,
        env = "CATCHUP_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// Also compute `hindsight_seconds`: the best constant fraction of full speed with
        /// retention at the floor from the start (about eight more runs).
        #[arg(long)]
        hindsight: bool,
    },
}

/// How to reach a Kafka cluster.
#[derive(clap::Args, Clone, Debug)]
pub struct KafkaArgs {
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
    pub async fn connect(
        &self,
    ) -> anyhow::Result<(catchup::kafka::Connection, std::time::Duration)> {
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
pub enum RetentionCommand {
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
    /// Lower a topic's local.retention.ms (guarded: tiered storage on, a delete topic, within
    /// [floor, retention.ms], and every broker's copy lag fresh and caught up).
    Lower {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The topic (it must have remote.storage.enable=true).
        #[arg(long)]
        topic: String,
        /// New local retention, e.g. 30m.
        #[arg(long)]
        to: String,
        /// Where every broker's tiered-storage copy lag comes from: a disk-source JSON file (see
        /// docs/config.md, `cluster.disk.kind = "file"`). Lowering is refused without a fresh
        /// reading of every broker showing uploads caught up (it would free nothing).
        #[arg(long)]
        disk_file: PathBuf,
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
    /// Copy the retention journal of an HA deployment (`[ha]`) from its state topic into a new
    /// state directory, so that `status`, `restore` and `adopt --state-dir DIR` act on it while
    /// every instance is stopped (the runbook commands read only a file journal). Reads the topic
    /// to its end and takes the journal a new leader would replay; writes nothing to the topic.
    FromHa {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The deployment's state topic (`__catchup-NAME-state` unless `ha.state_topic` says
        /// otherwise).
        #[arg(long)]
        state_topic: String,
        /// A state directory that holds no journal yet.
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Take a topic's value now as its original: after someone changed a lowered topic by hand,
    /// the controller keeps its hands off it until a person adopts the value.
    Adopt {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// State directory holding the journal.
        #[arg(long)]
        state_dir: PathBuf,
        /// Why (goes into the journal and the audit log).
        #[arg(long)]
        reason: String,
        /// Your name, for the audit log.
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a run configuration and the policy it names, without connecting to anything;
    /// prints every problem with file, field, value and fix.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files; prints every problem with file, field, value and fix.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

impl Command {
    /// Whether the command runs the controller (and so logs).
    pub fn serves(&self) -> bool {
        matches!(self, Command::Run { .. } | Command::Demo { .. })
    }
}

/// The async runtime the commands that talk to a cluster or the API run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs `cli`'s command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => serve::run(&config),
        Command::Demo {
            scenario,
            policy,
            listen,
            speed,
            state_dir,
        } => serve::demo(scenario, policy, listen, speed, state_dir),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => serve::check_config(&file),
        Command::Lag {
            kafka,
            groups,
            json,
        } => runtime()?.block_on(inspect::lag(&kafka, &groups, json)),
        Command::Observe { config, json } => inspect::observe(&config, json),
        Command::Plan { config, json } => inspect::plan(&config, json),
        Command::Retention { command } => runtime()?.block_on(retention::run(command)),
        Command::Ctl { conn, command } => {
            let out = runtime()?.block_on(ctl::run(&conn, &command))?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy {
            command: PolicyCommand::Check { files },
        } => simulate::check_policies(&files),
        Command::Simulate {
            scenario,
            policy,
            controller,
            plot,
            json,
            timeline,
            hindsight,
        } => simulate::run(
            &scenario,
            policy.as_deref(),
            controller,
            plot.as_deref(),
            simulate::Show {
                json,
                timeline,
                hindsight,
            },
        ),
    }
}
