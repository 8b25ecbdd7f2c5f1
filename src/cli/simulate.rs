//! `catchup simulate` and `catchup policy check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use catchup::policy::Policy;
use catchup::sim::{self, ControllerKind, Scenario};

/// What `catchup simulate` shows besides the summary.
pub struct Show {
    /// One JSON object instead of the table.
    pub json: bool,
    /// Every action with its reasons, to stderr.
    pub timeline: bool,
    /// Compute `hindsight_seconds` too.
    pub hindsight: bool,
}

/// `catchup simulate`: a scenario under a controller, summarised (and plotted).
pub fn run(
    scenario: &Path,
    policy: Option<&Path>,
    controller: ControllerKind,
    plot: Option<&Path>,
    show: Show,
) -> anyhow::Result<ExitCode> {
    let Show {
        json,
        timeline,
        hindsight,
    } = show;
    let s = Scenario::load(scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = match policy {
        Some(file) => Policy::load(file).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Policy::default(),
    };
    let policy_name = policy
        .as_ref()
        .map_or("the default policy".to_string(), |f| {
            f.display().to_string()
        });
    let p = sim::bind_policy(&p, &s)
        .map_err(|e| anyhow::anyhow!("{policy_name} does not fit {}:\n{e}", scenario.display()))?;
    let mut outcome = sim::simulate(&s, &p, controller)?;
    if hindsight {
        outcome.summary.hindsight_seconds = sim::hindsight::hindsight_seconds(&s, &p)?;
    }
    if timeline {
        for line in &outcome.timeline {
            eprintln!("{line}");
        }
    }
    if let Some(file) = plot {
        sim::plot::draw(file, &outcome, &p)
            .with_context(|| format!("cannot write the plot to {}", file.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else {
        print!("{}", outcome.summary.render());
        if let Some(file) = plot {
            println!("plot:                {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `catchup policy check FILE...`: every problem of every file.
pub fn check_policies(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for file in files {
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
