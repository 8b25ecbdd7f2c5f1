//! `catchup retention status|lower|restore`: the runbook's commands on a real cluster, through the
//! library's guarded, journaled [`Runbook`].

use std::process::ExitCode;

use catchup::actuators::retention::journal::KafkaRetention;
use catchup::actuators::retention::runbook::{Runbook, TopicRow, policy_for};
use catchup::policy::Policy;
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
    };
    // One writer per state directory: refused (StoreError::Locked) while a controller holds it.
    let store =
        catchup::store::StateDir::open(state_dir, catchup::store::Holder::this_process(name))?;
    let (conn, timeout) = kafka.connect().await?;
    let admin = catchup::kafka::TopicAdmin::new(&conn, timeout)?;
    let now = catchup::clock::wall_now();
    // The policy: the one given, else exactly the topics named here or in the journal.
    let given = match &command {
        RetentionCommand::Lower {
            policy: Some(file), ..
        } => Policy::load(file).map_err(|e| anyhow::anyhow!("{e}"))?,
        _ => Policy::default(),
    };
    let journal = KafkaRetention::new(&admin, &store, &given).journal()?;
    let topic = match &command {
        RetentionCommand::Lower { topic, .. } => Some(topic.as_str()),
        RetentionCommand::Restore { topic, .. } => topic.as_deref(),
        RetentionCommand::Status { .. } => None,
    };
    let policy = policy_for(given, &journal, topic);
    let runbook = Runbook::new(&admin, &store, &policy, now);
    for (topic, phase) in runbook.reconcile().await? {
        eprintln!("reconciled {topic}: a change left half-done by a crash is now {phase:?}");
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
            ..
        } => {
            let ms = Dur::parse(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            let change = runbook.lower(&topic, ms.0 as i64, &reason, &actor).await?;
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
    }
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
                "{}: local.retention.ms {} (original {} from {}), {}\n",
                r.topic,
                show(&r.current_value),
                show(&r.original_value),
                serde_json::to_string(&r.original_source).unwrap_or_default(),
                serde_json::to_string(&r.phase).unwrap_or_default(),
            )
        })
        .collect())
}
