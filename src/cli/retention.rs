//! `catchup retention status|lower|restore|adopt`: the runbook's commands on a real cluster,
//! through the library's guarded, journaled [`Runbook`].

use std::process::ExitCode;

use catchup::actuators::Evidence;
use catchup::actuators::retention::journal::JournalStore;
use catchup::actuators::retention::runbook::{Runbook, TopicRow, policy_for};
use catchup::policy::Policy;
use catchup::runtime::cluster::KafkaConfigs;
use catchup::sensors::CopyLagSensor as _;
use catchup::sensors::DiskSensor as _;
use catchup::units::Dur;

use super::RetentionCommand;

/// Runs a retention command.
pub async fn run(command: RetentionCommand) -> anyhow::Result<ExitCode> {
    let (kafka, state_dir, name) = match &command {
        RetentionCommand::Status {
            kafka, state_dir, ..
        } => (kafka, state_dir, "retention status"),
        RetentionCommand::Lower {
            kafka, state_dir, ..
        } => (kafka, state_dir, "retention lower"),
        RetentionCommand::Restore {
            kafka, state_dir, ..
        } => (kafka, state_dir, "retention restore"),
        RetentionCommand::Adopt {
            kafka, state_dir, ..
        } => (kafka, state_dir, "retention adopt"),
        RetentionCommand::FromHa {
            kafka,
            state_topic,
            state_dir,
        } => return from_ha(kafka, state_topic, state_dir).await,
    };
    // One writer per state directory: while a controller holds it, a restore or an adopt goes
    // through its API (so the loop does not undo it, and the audit log shows both), a lowering
    // is refused (the controller owns retention), and status reads without writing.
    let store =
        match catchup::store::StateDir::open(state_dir, catchup::store::Holder::this_process(name))
        {
            Ok(store) => store,
            Err(catchup::store::StoreError::Locked { holder, .. }) => {
                return through_the_controller(&command, holder.as_deref()).await;
            }
            Err(e) => return Err(e.into()),
        };
    let (conn, timeout) = kafka.connect().await?;
    let admin = KafkaConfigs::new(std::sync::Arc::new(catchup::kafka::TopicAdmin::new(
        &conn, timeout,
    )?));
    let now = catchup::clock::wall_now();
    // The policy: the one given, else exactly the topics named here or in the journal.
    let given = match &command {
        RetentionCommand::Lower {
            policy: Some(file), ..
        } => Policy::load(file).map_err(|e| anyhow::anyhow!("{e}"))?,
        _ => Policy::default(),
    };
    let journal = JournalStore::load(&store)?;
    let topic = match &command {
        RetentionCommand::Lower { topic, .. } | RetentionCommand::Adopt { topic, .. } => {
            Some(topic.as_str())
        }
        RetentionCommand::Restore { topic, .. } => topic.as_deref(),
        RetentionCommand::Status { .. } | RetentionCommand::FromHa { .. } => None,
    };
    let policy = policy_for(given, &journal, topic);
    let runbook = Runbook::new(&admin, &store, &policy, now);
    for (topic, phase) in runbook.settle().await? {
        eprintln!("{topic}: the journal's entry is {phase:?} after reading the topic");
    }
    match command {
        RetentionCommand::Status { json, .. } => {
            let rows = runbook.status().await?;
            print!("{}", render_status(&rows, json)?);
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Lower {
            topic,
            to,
            reason,
            actor,
            disk_file,
            ..
        } => {
            let ms = Dur::parse(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            let source = catchup::sensors::disk::file::FileDiskSource::new(disk_file.clone());
            let (disks, copy_lag) = (source.read_disks().await, source.read_copy_lag().await);
            let brokers: Vec<_> = disks
                .map_err(|e| anyhow::anyhow!("--disk-file {}: {e}", disk_file.display()))?
                .iter()
                .map(|d| d.broker)
                .collect();
            // A broker whose copy lag is unknown has no reading: the guard then refuses, naming it.
            let copy_lag = copy_lag.map(|r| r.read).unwrap_or_default();
            let evidence = Evidence {
                brokers: &brokers,
                copy_lag: &copy_lag,
                now,
            };
            let change = runbook
                .lower(&topic, ms.0 as i64, &reason, &actor, &evidence)
                .await?;
            let change = serde_json::to_value(&change)?;
            println!("{topic}: local.retention.ms lowered to {ms} ({change})");
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Restore {
            topic,
            reason,
            actor,
            ..
        } => {
            let mut failed = false;
            for (t, result) in runbook.restore(topic.as_deref(), &reason, &actor).await? {
                match result {
                    Ok(_) => println!("{t}: back at its original"),
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
        RetentionCommand::FromHa { .. } => {
            anyhow::bail!("from-ha runs before any state directory is opened")
        }
        RetentionCommand::Adopt {
            topic,
            reason,
            actor,
            ..
        } => {
            let adopted = runbook.adopt(&topic, &reason, &actor).await?;
            println!(
                "{topic}: the original is now {:?} ({:?}); was {:?}",
                adopted.after.value, adopted.after.source, adopted.before.value
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A retention command while a running controller holds the state directory: restore and adopt
/// through its API (token from `CATCHUP_API_TOKEN`), lowering refused, status from the journal
/// read as it is.
async fn through_the_controller(
    command: &RetentionCommand,
    holder: Option<&catchup::store::Holder>,
) -> anyhow::Result<ExitCode> {
    let who = holder.map_or("a running controller".to_string(), |h| h.to_string());
    let api = holder.and_then(|h| h.api.clone());
    let ctl = |api: Option<String>| -> anyhow::Result<super::ctl::Connection> {
        let url = api.ok_or_else(|| {
            anyhow::anyhow!("the state directory is held by {who}, whose API address is not known: use catchup ctl with --url")
        })?;
        let url = url.replace("0.0.0.0", "127.0.0.1");
        Ok(super::ctl::Connection {
            url: format!("http://{url}"),
            token: std::env::var("CATCHUP_API_TOKEN").ok(),
            actor: None,
            json: false,
        })
    };
    let command = match command {
        RetentionCommand::Restore {
            topic,
            reason,
            actor,
            ..
        } => {
            eprintln!(
                "the controller ({who}) holds the state directory: restoring through its API, which also holds retention for 1h"
            );
            let mut conn = ctl(api)?;
            conn.actor = Some(actor.clone());
            (
                conn,
                super::ctl::CtlCommand::Restore {
                    reason: reason.clone(),
                    hold: "1h".into(),
                    topic: topic.clone(),
                },
            )
        }
        RetentionCommand::Adopt {
            topic,
            reason,
            actor,
            ..
        } => {
            eprintln!("the controller ({who}) holds the state directory: adopting through its API");
            let mut conn = ctl(api)?;
            conn.actor = Some(actor.clone());
            (
                conn,
                super::ctl::CtlCommand::Adopt {
                    topic: topic.clone(),
                    reason: reason.clone(),
                },
            )
        }
        RetentionCommand::Lower { .. } => anyhow::bail!(
            "the controller ({who}) holds the state directory and owns retention: it lowers by itself; to stop it, `catchup ctl mode dry-run` or hold the topic with `catchup ctl override set --topic T --hold-retention`"
        ),
        RetentionCommand::Status { .. } => (ctl(api)?, super::ctl::CtlCommand::Status),
        RetentionCommand::FromHa { .. } => {
            anyhow::bail!("the state directory is held by {who}: give from-ha an empty one")
        }
    };
    let (conn, cmd) = command;
    print!("{}", super::ctl::run(&conn, &cmd).await?);
    Ok(ExitCode::SUCCESS)
}

fn render_status(rows: &[TopicRow], json: bool) -> anyhow::Result<String> {
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(rows)?));
    }
    if rows.is_empty() {
        return Ok("the journal has no topic: nothing was changed\n".into());
    }
    let show = |v: &Option<String>| serde_json::to_string(v).unwrap_or_default();
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "{}: {} {} (original {} from {}), {}\n",
                r.topic,
                r.key.name(),
                show(&r.current_value),
                show(&r.original_value),
                serde_json::to_string(&r.original_source).unwrap_or_default(),
                serde_json::to_string(&r.phase).unwrap_or_default(),
            )
        })
        .collect())
}

/// `catchup retention from-ha`: the journal a new leader would replay from `state_topic`, written
/// into `state_dir` (which must hold none), for the runbook commands.
async fn from_ha(
    kafka: &super::KafkaArgs,
    state_topic: &str,
    state_dir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let store = catchup::store::StateDir::open(
        state_dir,
        catchup::store::Holder::this_process("retention from-ha"),
    )?;
    let held = JournalStore::load(&store)?;
    if !held.topics.is_empty() || !held.extensions.is_empty() {
        anyhow::bail!(
            "{}: already holds a retention journal; give an empty state directory (nothing was written)",
            state_dir.display()
        );
    }
    let (conn, timeout) = kafka.connect().await?;
    let topic = state_topic.to_string();
    let wait = timeout.max(std::time::Duration::from_secs(10));
    let view = tokio::task::spawn_blocking(move || {
        let (mut reader, _) = catchup::ha::state_topic::StateTopic::open(
            &conn,
            &topic,
            "catchup-cli",
            std::time::Duration::from_millis(100),
        )?;
        reader.catch_up(wait)?;
        Ok::<_, catchup::ha::state_topic::StateTopicError>(reader.view)
    })
    .await??;
    let Some(shared) = view.journal else {
        anyhow::bail!(
            "{state_topic}: holds no retention journal (no leader saved one): nothing was written"
        );
    };
    JournalStore::save(&store, &shared.journal)?;
    println!(
        "{}: the retention journal of epoch {} (saved by {}) with {} topic(s); act on it with `catchup retention status|restore|adopt --state-dir {}` while every instance is stopped",
        state_dir.display(),
        shared.epoch,
        shared.leader,
        shared.journal.topics.len() + shared.journal.extensions.len(),
        state_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
