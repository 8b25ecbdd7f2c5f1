//! `POST /v1/restore` and `POST /v1/retention/adopt` on any instance of an HA deployment: a
//! follower forwards the request to the leader through the state topic (`restore/ID/AT_MS`,
//! `adopt/ID/AT_MS`) and waits for the leader's answer (`restored/…`, `adopted/…`); the leader's
//! sync task hands each request it has not answered to its own loop, as if sent to its API, and
//! writes the answer back. Restores and adopts have keys of their own, so an instance of an older
//! version, which knows only restores, never mistakes an adopt for one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::warn;

use super::Controller;
use super::controller::{AdoptReply, Authorized, Command};
use crate::ha::Ha;
use crate::ha::state::{ADOPT_PREFIX, ADOPTED_PREFIX, RESTORE_PREFIX, RESTORED_PREFIX};
use crate::units::{Dur, Timestamp};

/// How long a follower waits for the leader's answer.
pub(super) const FORWARD_WAIT: Duration = Duration::from_secs(60);
/// How old a request a leader still carries out: half the follower's wait, so that a request
/// carried out is answered while its asker still waits (one older may never be answered in time,
/// and its asker would report a failure for something done).
const CARRY_OUT_WITHIN: Duration = Duration::from_secs(30);
/// How a follower's answer starts when it could not forward the request (nothing was done).
pub(crate) const NOT_FORWARDED: &str = "refused: this instance is a follower and could not forward";
/// How a follower's answer starts when the leader did not answer in time (the outcome is
/// unknown: the leader's audit log has it).
pub(crate) const NO_ANSWER: &str = "failed: forwarded to the leader";

/// Who asked which follower, when and why: the part every forwarded request has (its fields
/// stay at the top level of the record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Asked {
    instance: String,
    at: Timestamp,
    actor: String,
    reason: String,
}

impl Asked {
    fn new(ctl: &Controller, ha: &Ha, who: &Authorized, reason: String) -> Asked {
        Asked {
            instance: ha.instance().to_string(),
            at: ctl.clock.now(),
            actor: who.actor().to_string(),
            reason,
        }
    }

    /// The actor as the leader audits it, and the reason, for a request of `kind`.
    fn on_leader(&self, kind: &str) -> (Authorized, String) {
        (
            Authorized::from_fleet(format!("{} via {}", self.actor, self.instance)),
            format!("{kind} sent to {}: {}", self.instance, self.reason),
        )
    }
}

/// A restore sent to a follower.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RestoreMark {
    #[serde(flatten)]
    asked: Asked,
    hold: Dur,
    topic: Option<String>,
}

/// An adopt sent to a follower.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AdoptMark {
    #[serde(flatten)]
    asked: Asked,
    topic: String,
}

/// A request forwarded to the leader: written under `PREFIX/ID`, answered under `ANSWER/ID`.
trait Forwarded: Serialize + DeserializeOwned + Clone + Send + 'static {
    const PREFIX: &'static str;
    const ANSWER: &'static str;
    fn asked(&self) -> &Asked;
    fn id(&self) -> String {
        format!("{}/{}", self.asked().instance, self.asked().at.0)
    }
}

impl Forwarded for RestoreMark {
    const PREFIX: &'static str = RESTORE_PREFIX;
    const ANSWER: &'static str = RESTORED_PREFIX;
    fn asked(&self) -> &Asked {
        &self.asked
    }
}

impl Forwarded for AdoptMark {
    const PREFIX: &'static str = ADOPT_PREFIX;
    const ANSWER: &'static str = ADOPTED_PREFIX;
    fn asked(&self) -> &Asked {
        &self.asked
    }
}

/// Writes `mark` and waits up to [`FORWARD_WAIT`] for the leader's answer: `Err` says why there
/// is none.
async fn forward<M: Forwarded, A: DeserializeOwned>(ha: &Ha, mark: &M) -> Result<A, String> {
    let value = serde_json::to_value(mark).unwrap_or_default();
    if let Err(e) = ha
        .publish(format!("{}{}", M::PREFIX, mark.id()), value)
        .await
    {
        return Err(format!("{NOT_FORWARDED} the request to the leader: {e}"));
    }
    let answer_key = format!("{}{}", M::ANSWER, mark.id());
    let deadline = tokio::time::Instant::now() + FORWARD_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(answer) = ha
            .record(&answer_key)
            .and_then(|v| serde_json::from_value::<A>(v).ok())
        {
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let st = ha.status();
    Err(format!(
        "{NO_ANSWER} ({}, epoch {}), no answer within {FORWARD_WAIT:?}: see the leader's audit log",
        st.leader.as_deref().unwrap_or("none elected"),
        st.epoch
    ))
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
        asked: Asked::new(&ctl, &ha, &who, reason),
        hold,
        topic: topic.clone(),
    };
    let answer = forward::<_, Vec<(String, String)>>(&ha, &mark)
        .await
        .unwrap_or_else(|why| {
            ctl.policy
                .managed_topics()
                .into_iter()
                .filter(|t| topic.as_deref().is_none_or(|o| o == t))
                .map(|t| (t, why.clone()))
                .collect()
        });
    let _ = reply.send(answer);
}

/// A follower's adopt: forwarded to the leader; the reply is the leader's answer, or why there is
/// none.
pub(super) async fn forward_adopt(
    ctl: Arc<Controller>,
    ha: Arc<Ha>,
    request: (Authorized, String, String),
    reply: oneshot::Sender<AdoptReply>,
) {
    let (who, topic, reason) = request;
    let mark = AdoptMark {
        asked: Asked::new(&ctl, &ha, &who, reason),
        topic,
    };
    let answer = forward::<_, AdoptReply>(&ha, &mark)
        .await
        .unwrap_or_else(Err);
    let _ = reply.send(answer);
}

/// On the leader: every forwarded restore and adopt not yet answered (and not older than
/// [`CARRY_OUT_WITHIN`]) goes to this instance's loop, and the answer to the state topic. `taken`:
/// the requests already handed to the loop.
pub(super) fn carry_out_forwarded(
    ctl: &Arc<Controller>,
    ha: &Arc<Ha>,
    taken: &mut BTreeSet<String>,
) {
    if !ha.leads() {
        return;
    }
    for m in pending::<RestoreMark>(ctl, ha, taken) {
        carry_out(ctl, ha, m, |m, reply| {
            let (who, reason) = m.asked.on_leader("restore");
            Command::Restore {
                who,
                reason,
                hold: m.hold,
                topic: m.topic.clone(),
                reply,
            }
        });
    }
    for m in pending::<AdoptMark>(ctl, ha, taken) {
        carry_out(ctl, ha, m, |m, reply| {
            let (who, reason) = m.asked.on_leader("adopt");
            Command::Adopt {
                who,
                reason,
                topic: m.topic.clone(),
                reply,
            }
        });
    }
}

/// The requests of kind `M` not answered, not too old and not yet taken (marked taken now).
fn pending<M: Forwarded>(ctl: &Controller, ha: &Ha, taken: &mut BTreeSet<String>) -> Vec<M> {
    let now = ctl.clock.now();
    ha.records(M::PREFIX)
        .into_iter()
        .filter_map(|v| serde_json::from_value::<M>(v).ok())
        .filter(|m| now.0 - m.asked().at.0 <= CARRY_OUT_WITHIN.as_millis() as i64)
        .filter(|m| ha.record(&format!("{}{}", M::ANSWER, m.id())).is_none())
        .filter(|m| taken.insert(format!("{}{}", M::PREFIX, m.id())))
        .collect()
}

/// Hands `m` to this instance's loop as the command `command` builds, and writes its answer.
fn carry_out<M: Forwarded, A: Serialize + Send + 'static>(
    ctl: &Arc<Controller>,
    ha: &Arc<Ha>,
    m: M,
    command: impl FnOnce(&M, oneshot::Sender<A>) -> Command,
) {
    let (reply, answer) = oneshot::channel();
    let cmd = command(&m, reply);
    let (ctl, ha) = (ctl.clone(), ha.clone());
    tokio::spawn(async move {
        if ctl.commands.send(cmd).await.is_err() {
            return;
        }
        let Ok(results) = answer.await else { return };
        let value = serde_json::to_value(&results).unwrap_or_default();
        if let Err(e) = ha.publish(format!("{}{}", M::ANSWER, m.id()), value).await {
            warn!(error = %e, request = %m.id(), "could not answer a forwarded request");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_restore_is_one_flat_record_as_before() {
        let mark = RestoreMark {
            asked: Asked {
                instance: "b".into(),
                at: Timestamp(7),
                actor: "ann".into(),
                reason: "r".into(),
            },
            hold: Dur::from_hours(1),
            topic: None,
        };
        let value = serde_json::to_value(&mark).unwrap();
        let mut keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["actor", "at", "hold", "instance", "reason", "topic"]);
        assert_eq!(serde_json::from_value::<RestoreMark>(value).unwrap(), mark);
        assert_eq!(mark.id(), "b/7");
    }
}
