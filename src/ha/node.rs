//! One instance's part in its HA deployment ([`Ha`]): the election, the state topic, heartbeats,
//! claiming an epoch when the lock is won, and the fencing check the control loop runs before it
//! acts.
//!
//! A background task beats every heartbeat interval (a tenth of the session timeout): it reads
//! the state topic to its end, writes this instance's heartbeat, and when the election lock is
//! held and this instance does not yet lead, claims the next epoch (read to the end, write the
//! claim, read to the end again, lead only if the newest claim is its own). The lock lost means follower at once (a watch on the
//! lock, not the next beat).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::HaConfig;
use super::election::{Election, ElectionConfig};
use super::state::{Claim, Heartbeat, Record, SharedDecision, StateView};
use super::state_topic::{self, StateTopic, StateTopicError, StateWriter};
use crate::clock::Clock;
use crate::kafka::Connection;
use crate::units::{Dur, Timestamp};
use catchup_proto::status::{HaRole, HaStatus};

mod journal;
mod overrides;

pub use journal::{HaJournal, JournalNote, NodeLog, StateLog};
pub use overrides::{FleetOverride, OverrideDelete};

/// A running HA member. Dropping it leaves the election group and stops the background task.
pub struct Ha {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    watchdog: tokio::task::JoinHandle<()>,
    journal: OnceLock<Arc<HaJournal>>,
}

struct Shared {
    /// When this instance last read the state topic to its end.
    read_at: Mutex<std::time::Instant>,
    /// When this instance last re-entered the election because the leader was silent.
    rejoined: Mutex<Option<std::time::Instant>>,
    /// The election's rebalance count when the leader was last heard (within two heartbeat
    /// intervals).
    heard: Mutex<Option<u64>>,
    /// The overrides list last written under `overrides/ME` (to write only changes).
    published_overrides: Mutex<Option<String>>,
    me: String,
    session: Duration,
    clock: Arc<dyn Clock>,
    /// The state topic's consumer and what it has read, locked while a read waits on the broker.
    reader: Arc<Mutex<StateTopic>>,
    /// What the last read to the end found: what everything but the readers themselves looks at,
    /// so nothing on an async worker waits behind a read that waits on the broker (which could
    /// stall the API while the broker is unreachable).
    seen: std::sync::RwLock<Arc<StateView>>,
    writer: StateWriter,
    status: watch::Sender<HaStatus>,
    election: Election,
}

impl Shared {
    fn seen(&self) -> Arc<StateView> {
        self.seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `view`, just read to the topic's end, for everything that does not read itself;
    /// never one older than the view kept (readers finish in any order: a view that has applied
    /// fewer records is older, since every read continues from where the last one ended).
    fn saw(&self, view: &StateView) {
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if view.records >= seen.records {
            *seen = Arc::new(view.clone());
        }
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        self.task.abort();
        self.watchdog.abort();
    }
}

impl Ha {
    /// Creates the topics when missing, joins the election and starts beating. `instance` is this
    /// instance's id ([`HaConfig::instance_id`]).
    pub async fn start(
        conn: &Connection,
        config: &HaConfig,
        instance: String,
        clock: Arc<dyn Clock>,
    ) -> Result<Ha, StateTopicError> {
        let session = Duration::from_millis(config.session_timeout.0);
        let coordination = config.coordination_topic();
        let state = config.state_topic();
        state_topic::create_topics(
            conn,
            &coordination,
            &state,
            config.replication_factor,
            session,
        )
        .await?;
        let (reader, writer) = StateTopic::open(
            conn,
            &state,
            &instance,
            Duration::from_millis(config.state_fetch_wait.0),
        )?;
        let election = Election::join(
            conn,
            &ElectionConfig {
                group: config.group(),
                topic: coordination,
                instance: instance.clone(),
                session_timeout: session,
                standby: config.standby,
            },
        )
        .map_err(|e| StateTopicError {
            topic: config.coordination_topic(),
            reason: format!("cannot join the election: {e}"),
        })?;
        let (status, _) = watch::channel(HaStatus {
            role: HaRole::Follower,
            members: 1,
            instance: instance.clone(),
            ..HaStatus::default()
        });
        let shared = Arc::new(Shared {
            read_at: Mutex::new(crate::clock::monotonic_now()),
            rejoined: Mutex::new(None),
            heard: Mutex::new(None),
            published_overrides: Mutex::new(None),
            me: instance,
            session,
            clock,
            reader: Arc::new(Mutex::new(reader)),
            seen: std::sync::RwLock::new(Arc::new(StateView::default())),
            writer,
            status,
            election,
        });
        let task = tokio::spawn(beat(shared.clone()));
        let watchdog = tokio::spawn(watchdog(shared.clone()));
        Ok(Ha {
            shared,
            task,
            watchdog,
            journal: OnceLock::new(),
        })
    }

    /// The retention journal in the state topic, importing the file journal of `file` (the
    /// local state directory) on first leadership; made once, the same one on every call.
    pub fn journal(&self, file: Option<Arc<crate::store::StateDir>>) -> Arc<HaJournal> {
        self.journal
            .get_or_init(|| Arc::new(HaJournal::new(NodeLog(self.shared.clone()), file)))
            .clone()
    }

    /// The retention journal, once [`Ha::journal`] made it.
    pub fn attached_journal(&self) -> Option<&Arc<HaJournal>> {
        self.journal.get()
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.shared.me
    }

    /// The status as `GET /v1/status` shows it.
    pub fn status(&self) -> HaStatus {
        self.shared.status.borrow().clone()
    }

    /// A receiver of every status change.
    pub fn watch(&self) -> watch::Receiver<HaStatus> {
        self.shared.status.subscribe()
    }

    /// Whether this instance leads now (holds the lock and its claim was the newest at the last
    /// read). The control loop still runs [`Ha::fence`] before it writes.
    pub fn leads(&self) -> bool {
        self.shared.election.held() && self.status().role == HaRole::Leader
    }

    /// The fencing check before acting: reads the state topic to its end and answers this
    /// instance's epoch when it still holds the lock and the newest claim is its own; otherwise
    /// why not (and the instance is a follower from then on).
    pub async fn fence(&self) -> Result<u64, String> {
        let s = &self.shared;
        let status = self.status();
        if status.role != HaRole::Leader || !s.election.held() {
            return Err(format!(
                "this instance is a follower (leader {}, epoch {})",
                status.leader.as_deref().unwrap_or("unknown"),
                status.epoch
            ));
        }
        let view = read_to_end(s).await.map_err(|e| {
            demote(s, "the state topic cannot be read to its end");
            e.to_string()
        })?;
        if s.election.held() && view.may_act(&s.me, status.epoch) {
            Ok(status.epoch)
        } else {
            demote(
                s,
                "a newer claim is in the state topic, or the lock is lost",
            );
            Err(format!(
                "deposed: epoch {} is no longer this instance's (newest claim: {:?})",
                status.epoch, view.claim
            ))
        }
    }

    /// The leader's latest decision as read from the state topic (followers serve it).
    pub fn shared_decision(&self) -> Option<SharedDecision> {
        self.seen().decision.clone()
    }

    /// What the last read of the state topic to its end found (never waits on the broker).
    fn seen(&self) -> Arc<StateView> {
        self.shared.seen()
    }

    /// Reads the state topic to its end now (the fast path of fleet-wide overrides).
    pub async fn refresh(&self) -> Result<(), StateTopicError> {
        read_to_end(&self.shared).await.map(|_| ())
    }

    /// Writes `value` under `key` (a record of the fleet's own, e.g. a shared resume).
    pub async fn publish(
        &self,
        key: String,
        value: serde_json::Value,
    ) -> Result<(), StateTopicError> {
        let s = &self.shared;
        let record = Record::Other {
            key,
            value: Some(value),
        };
        s.writer.write(&record, s.session).await
    }

    /// Tombstones what in the state topic is of no use at `now` ([`super::state::stale_keys`]);
    /// how many records it tombstoned, at most 100 a call (the HA sync calls it, and a fleet-wide
    /// pause must not wait behind a long sweep). Only a leader does this (one writer is enough; a deposed
    /// leader's tombstones are as right as anyone's, since staleness depends only on time).
    pub async fn tombstone_stale(&self, now: Timestamp) -> Result<usize, StateTopicError> {
        let mut stale = super::state::stale_keys(&self.seen(), now);
        stale.truncate(100);
        for key in &stale {
            let record = Record::Other {
                key: key.clone(),
                value: None,
            };
            self.shared
                .writer
                .write(&record, self.shared.session)
                .await?;
        }
        Ok(stale.len())
    }

    /// The newest value of `key`, as read from the state topic.
    pub fn record(&self, key: &str) -> Option<serde_json::Value> {
        self.seen().other.get(key).cloned()
    }

    /// The newest value of every key starting with `prefix`, as read from the state topic.
    pub fn records(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.seen()
            .other
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Writes the leader's decision for followers (only in its own epoch).
    pub async fn share_decision(
        &self,
        epoch: u64,
        groups: std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<(), StateTopicError> {
        let s = &self.shared;
        let record = Record::Decision(SharedDecision {
            epoch,
            leader: s.me.clone(),
            at: s.clock.now(),
            groups,
        });
        s.writer.write(&record, s.session).await
    }
}

fn demote(s: &Shared, why: &str) {
    s.status.send_if_modified(|st| {
        if st.role == HaRole::Leader {
            warn!(
                epoch = st.epoch,
                why, "leadership lost: follower from now on"
            );
            st.role = HaRole::Follower;
            true
        } else {
            false
        }
    });
}

async fn read_to_end(s: &Arc<Shared>) -> Result<StateView, StateTopicError> {
    let reader = s.reader.clone();
    let timeout = s.session;
    let answer = tokio::task::spawn_blocking(move || {
        let mut r = reader.lock().unwrap_or_else(PoisonError::into_inner);
        r.catch_up(timeout).map(|lag| (lag, r.view.clone()))
    })
    .await
    .unwrap_or_else(|e| {
        Err(StateTopicError {
            topic: "state".into(),
            reason: format!("reader task failed: {e}"),
        })
    })?;
    let (lag, view) = answer;
    s.saw(&view);
    *s.read_at.lock().unwrap_or_else(PoisonError::into_inner) = crate::clock::monotonic_now();
    s.status.send_if_modified(|st| {
        let changed = st.state_lag != lag;
        st.state_lag = lag;
        changed
    });
    Ok(view)
}

/// A leader that has not read the state topic to its end for half a session timeout stands down:
/// it may be cut off from the broker, and it cannot know whether another instance leads by now.
/// The broker moves the lock one session timeout after the last heartbeat it received (which can
/// be later than the last read, so half a session leaves a margin), and the others re-enter the
/// election after a session timeout of silence at the earliest ([`rejoin_if_leader_silent`]).
/// Checked every 500 ms, apart from the beat, whose writes and reads may each wait up to a session timeout. A healthy leader reads
/// every 250 ms (the HA sync); one that stood down claims a new epoch at its next beat.
async fn watchdog(s: Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_millis(500));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let read_at = *s.read_at.lock().unwrap_or_else(PoisonError::into_inner);
        if crate::clock::monotonic_now().duration_since(read_at) > s.session / 2 {
            demote(
                &s,
                "the state topic has not been read to its end for half a session timeout (cut off from the broker?)",
            );
        }
    }
}

/// The background task: beats, claims when the lock is won, follows when it is lost.
async fn beat(s: Arc<Shared>) {
    let every = super::election::heartbeat_interval(s.session);
    let mut lock = s.election.watch();
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = lock.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*lock.borrow() {
                    demote(&s, "the election lock was revoked");
                }
            }
        }
        if let Err(e) = once(&s).await {
            warn!(error = %e, "HA beat failed");
        }
    }
}

/// A follower re-enters the election (leaves the group and joins it as a new member, so the
/// coordinator must rebalance) when the leader has gone silent in the state topic (no heartbeat,
/// no newer claim) and the coordinator has not handed the lock on by itself:
/// - after a session timeout and two heartbeat intervals of silence, when the group has not
///   rebalanced since the leader was last heard. A coordinator that expires a dead member
///   rebalances the group by then (Apache Kafka and MSK: at one session timeout after its last
///   group heartbeat; the survivors learn of it within one heartbeat interval and are served an
///   assignment), and the new lock holder claims at once, so this does not fire there. It fires
///   when the coordinator expires the member without rebalancing (tansu 0.6.0, docs/tansu.md).
/// - after two session timeouts of silence whatever the group did: a leader whose process still
///   answers the group's heartbeats but can no longer write to the state topic, or a lock holder
///   that never claims.
///
/// At most once per two session timeouts. Each rejoin costs the group one round of joins;
/// fencing (epochs) is unchanged.
fn rejoin_if_leader_silent(s: &Shared, view: &StateView, now: Timestamp) {
    let rebalances = s.election.rebalances();
    let mut heard = s.heard.lock().unwrap_or_else(PoisonError::into_inner);
    let heartbeat = super::election::heartbeat_interval(s.session);
    if view.silent_leader(&s.me, now, dur(heartbeat * 2)).is_none() {
        *heard = Some(rebalances);
        return;
    }
    let Some((leader, why)) =
        rejoin_reason(view, &s.me, now, s.session, *heard == Some(rebalances))
    else {
        return;
    };
    drop(heard);
    let mut rejoined = s.rejoined.lock().unwrap_or_else(PoisonError::into_inner);
    let at = crate::clock::monotonic_now();
    if rejoined.is_some_and(|t| at.duration_since(t) < s.session * 2) {
        return;
    }
    *rejoined = Some(at);
    warn!(
        leader,
        why, "re-entering the election so the group rebalances"
    );
    s.election.rejoin();
}

/// The rule of [`rejoin_if_leader_silent`]: the silent leader and why this follower should
/// re-enter the election now, if it should. `unrebalanced`: the group has not rebalanced since the
/// leader was last heard.
fn rejoin_reason<'v>(
    view: &'v StateView,
    me: &str,
    now: Timestamp,
    session: Duration,
    unrebalanced: bool,
) -> Option<(&'v str, &'static str)> {
    let heartbeat = super::election::heartbeat_interval(session);
    if let Some(l) = view.silent_leader(me, now, dur(session * 2)) {
        return Some((l, "the leader has been silent for two session timeouts"));
    }
    let l = view.silent_leader(me, now, dur(session + heartbeat * 2))?;
    unrebalanced.then_some((
        l,
        "the leader has been silent for a session timeout and the group has not rebalanced",
    ))
}

fn dur(d: Duration) -> Dur {
    Dur(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn once(s: &Arc<Shared>) -> Result<(), StateTopicError> {
    let now = s.clock.now();
    s.writer
        .write(
            &Record::Heartbeat(Heartbeat {
                instance: s.me.clone(),
                at: now,
            }),
            s.session,
        )
        .await?;
    let mut view = read_to_end(s).await?;
    let held = s.election.held();
    let role = s.status.borrow().role;
    if held && role == HaRole::Follower {
        let epoch = view.next_epoch();
        s.writer
            .write(
                &Record::Claim(Claim {
                    epoch,
                    leader: s.me.clone(),
                    at: now,
                }),
                s.session,
            )
            .await?;
        view = read_to_end(s).await?;
        if s.election.held() && view.may_act(&s.me, epoch) {
            info!(epoch, instance = %s.me, "leading");
            s.status.send_modify(|st| {
                st.role = HaRole::Leader;
                st.epoch = epoch;
            });
        }
    } else if role == HaRole::Leader && !(held && view.may_act(&s.me, s.status.borrow().epoch)) {
        demote(
            s,
            "a newer claim is in the state topic, or the lock is lost",
        );
    } else if !held {
        rejoin_if_leader_silent(s, &view, now);
    }
    let members = view.live_members(&s.me, s.clock.now(), dur(s.session));
    s.status.send_if_modified(|st| {
        let leader = view.claim.as_ref().map(|c| c.leader.clone());
        let epoch = st.epoch.max(view.highest_epoch);
        let changed = st.members != members || st.leader != leader || st.epoch != epoch;
        st.members = members;
        st.leader = leader;
        st.epoch = epoch;
        changed
    });
    Ok(())
}

#[cfg(test)]
mod tests;
