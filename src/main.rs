//! The `catchup` command line: thin wiring over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use catchup::policy::Policy;
use catchup::sim::{self, ControllerKind, Scenario};
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
    /// Policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
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
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
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
