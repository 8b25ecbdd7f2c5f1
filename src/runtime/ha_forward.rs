//! `POST /v1/restore` on any instance of an HA deployment: a follower forwards the request to the
//! leader through the state topic (`restore/ID/AT_MS`) and waits for the leader's answer
//! (`restored/ID/AT_MS`); the leader's sync task hands each request it has not answered to its own
//! loop, as if sent to its API, and writes the answer back.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::warn;

use super::Controller;
use super::controller::{Authorized, Command};
use crate::ha::Ha;
use crate::ha::state::{RESTORE_PREFIX, RESTORED_PREFIX as ANSWER_PREFIX};
use crate::units::{Dur, Timestamp};

/// How long a follower waits for the leader's answer, and how old a request a leader still
/// carries out (one older was answered by nobody: its asker has given up).
pub(super) const FORWARD_WAIT: Duration = Duration::from_secs(60);

/// A restore sent to a follower.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RestoreMark {
    instance: String,
    at: Timestamp,
    actor: String,
    reason: String,
    hold: Dur,
    topic: Option<String>,
}

impl RestoreMark {
    fn id(&self) -> String {
        format!("{}/{}", self.instance, self.at.0)
    }
}

/// A follower's restore: forwarded to the leader; the reply is the leader's answer, or per topic
/// why there is none.
pub(super) async fn forward_restore(
    ctl: Arc<Controller>,
    ha: Arc<Ha>,
    request: (Authorized, String, Dur, Option<String>),
    reply: oneshot::Sender<Vec<(String, String)>>,
) {
    let (who, reason, hold, topic) = request;
    let mark = RestoreMark {
        instance: ha.instance().to_string(),
        at: ctl.clock.now(),
        actor: who.actor().to_string(),
        reason,
        hold,
        topic: topic.clone(),
    };
    let all = |why: String| -> Vec<(String, String)> {
        ctl.policy
            .managed_topics()
            .into_iter()
            .filter(|t| topic.as_deref().is_none_or(|o| o == t))
            .map(|t| (t, why.clone()))
            .collect()
    };
    let value = serde_json::to_value(&mark).unwrap_or_default();
    if let Err(e) = ha
        .publish(format!("{RESTORE_PREFIX}{}", mark.id()), value)
        .await
    {
        let _ = reply.send(all(format!(
            "refused: this instance is a follower and could not forward the restore to the leader: {e}"
        )));
        return;
    }
    let answer_key = format!("{ANSWER_PREFIX}{}", mark.id());
    let deadline = tokio::time::Instant::now() + FORWARD_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(answer) = ha
            .record(&answer_key)
            .and_then(|v| serde_json::from_value::<Vec<(String, String)>>(v).ok())
        {
            let _ = reply.send(answer);
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let st = ha.status();
    let _ = reply.send(all(format!(
        "failed: forwarded to the leader ({}, epoch {}), no answer within {FORWARD_WAIT:?}: see the leader's audit log",
        st.leader.as_deref().unwrap_or("none elected"),
        st.epoch
    )));
}

/// On the leader: every forwarded restore not yet answered (and not older than
/// [`FORWARD_WAIT`]) goes to this instance's loop, and the answer to the state topic.
pub(super) fn carry_out_forwarded(
    ctl: &Arc<Controller>,
    ha: &Arc<Ha>,
    taken: &mut BTreeSet<String>,
) {
    if !ha.leads() {
        return;
    }
    let now = ctl.clock.now();
    let requests: Vec<RestoreMark> = ha
        .records(RESTORE_PREFIX)
        .into_iter()
        .filter_map(|v| serde_json::from_value::<RestoreMark>(v).ok())
        .filter(|m| now.0 - m.at.0 <= FORWARD_WAIT.as_millis() as i64)
        .filter(|m| ha.record(&format!("{ANSWER_PREFIX}{}", m.id())).is_none())
        .collect();
    for m in requests {
        if !taken.insert(m.id()) {
            continue;
        }
        let (ctl, ha) = (ctl.clone(), ha.clone());
        tokio::spawn(async move {
            let (reply, answer) = oneshot::channel();
            let cmd = Command::Restore {
                who: Authorized::from_fleet(format!("{} via {}", m.actor, m.instance)),
                reason: format!("restore sent to {}: {}", m.instance, m.reason),
                hold: m.hold,
                topic: m.topic.clone(),
                reply,
            };
            if ctl.commands.send(cmd).await.is_err() {
                return;
            }
            let Ok(results) = answer.await else { return };
            let value = serde_json::to_value(&results).unwrap_or_default();
            if let Err(e) = ha
                .publish(format!("{ANSWER_PREFIX}{}", m.id()), value)
                .await
            {
                warn!(error = %e, request = %m.id(), "could not answer a forwarded restore");
            }
        });
    }
}
