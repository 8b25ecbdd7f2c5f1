//! The election: every instance of a deployment joins one Kafka consumer group subscribed to a
//! single-partition coordination topic; the member the group assigns partition 0 holds the lock
//! and may lead. This is the lock Kafka's own consumers use (the broker's group coordinator is
//! the arbiter; no record is ever read from the topic).
//!
//! The lock is lost the moment librdkafka revokes the assignment: at a rebalance (another member
//! joined or left), and also when this instance's heartbeats go unanswered for the session
//! timeout (librdkafka then treats the assignment as lost), so an instance cut off from the broker
//! gives the lock up about when the broker hands it to another.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::kafka::Connection;

/// The group heartbeat interval for a session timeout: a tenth of it (at least 500 ms), so a
/// member learns of a rebalance within a tenth of a session. Also the interval of the HA beat
/// (state-topic heartbeats, [`super::node`]).
pub fn heartbeat_interval(session: Duration) -> Duration {
    (session / 10).max(Duration::from_millis(500))
}

/// Settings of one election.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    /// The group.
    pub group: String,
    /// The coordination topic (one partition).
    pub topic: String,
    /// This instance's id (the group's `client.id` is made of it, [`member_name`]).
    pub instance: String,
    /// The group's session timeout.
    pub session_timeout: Duration,
    /// Leads only while no member without `standby` is in the group ([`member_name`]).
    pub standby: bool,
}

/// The name this instance joins the group with (its `client.id`, which the broker puts at the
/// start of the member id): `0-INSTANCE`, or `1-INSTANCE` for a standby instance. The range
/// assignor gives the one partition to the member whose id sorts first (librdkafka runs the
/// assignor in the group's leader member and sorts members by id, whatever the broker), so any
/// instance without `standby` wins the lock over every standby one, and a standby instance gets
/// it only when no other kind is a member. Among instances of one kind the order is the
/// instance ids'.
pub fn member_name(instance: &str, standby: bool) -> String {
    format!("{}-{instance}", u8::from(standby))
}

struct LockContext {
    topic: String,
    held: watch::Sender<bool>,
    /// Rebalance callbacks served so far (revocations and assignments, empty ones included).
    rebalances: Arc<AtomicU64>,
}

impl ClientContext for LockContext {}

impl ConsumerContext for LockContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        // Given up before the partition goes to anyone else.
        if matches!(rebalance, Rebalance::Revoke(_) | Rebalance::Error(_)) {
            self.held.send_replace(false);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        let held = match rebalance {
            Rebalance::Assign(tpl) => tpl
                .elements()
                .iter()
                .any(|e| e.topic() == self.topic && e.partition() == 0),
            Rebalance::Revoke(_) | Rebalance::Error(_) => false,
        };
        let was = self.held.send_replace(held);
        if was != held {
            info!(topic = %self.topic, held, "election lock changed");
        }
    }
}

/// A running election: a thread polling the group's consumer. Dropping it leaves the group (the
/// lock goes to another member at once, without waiting for the session timeout).
pub struct Election {
    held: watch::Receiver<bool>,
    rebalances: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    rejoin: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Election {
    /// Joins the group. Errors only when the client cannot be created (bad settings); a broker
    /// that cannot be reached just means the lock is not held.
    pub fn join(conn: &Connection, config: &ElectionConfig) -> KafkaResult<Election> {
        let (tx, held) = watch::channel(false);
        let rebalances = Arc::new(AtomicU64::new(0));
        let session = config.session_timeout.as_millis().max(1000);
        let heartbeat = heartbeat_interval(config.session_timeout).as_millis();
        let mut client = conn.client_config();
        client
            .set("group.id", &config.group)
            .set("client.id", member_name(&config.instance, config.standby))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", heartbeat.to_string())
            .set("partition.assignment.strategy", "range");
        let consumer: BaseConsumer<LockContext> = client.create_with_context(LockContext {
            topic: config.topic.clone(),
            held: tx,
            rebalances: rebalances.clone(),
        })?;
        consumer.subscribe(&[&config.topic])?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let rejoin = Arc::new(AtomicBool::new(false));
        let rejoining = rejoin.clone();
        let topic = config.topic.clone();
        let thread = std::thread::Builder::new()
            .name("catchup-election".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    // Serves the rebalance callbacks; the topic has no records to read.
                    let _ = consumer.poll(Duration::from_millis(100));
                    if rejoining.swap(false, Ordering::Relaxed) {
                        // Leave and join again as a new member: the coordinator must run a
                        // rebalance, in which a member that no longer answers gets nothing.
                        consumer.unsubscribe();
                        let _ = consumer.poll(Duration::from_millis(100));
                        consumer.context().held.send_replace(false);
                        if let Err(e) = consumer.subscribe(&[&topic]) {
                            warn!(error = %e, "could not join the election again");
                        }
                    }
                }
                consumer.unsubscribe();
                let _ = consumer.poll(Duration::from_millis(100));
                consumer.context().held.send_replace(false);
            })
            .map_err(|e| {
                rdkafka::error::KafkaError::ClientCreation(format!("election thread: {e}"))
            })?;
        Ok(Election {
            held,
            rebalances,
            stop,
            rejoin,
            thread: Some(thread),
        })
    }

    /// Whether this instance holds the lock now.
    pub fn held(&self) -> bool {
        *self.held.borrow()
    }

    /// How many rebalance callbacks this member has served: a change means the coordinator ran a
    /// rebalance (librdkafka serves an assignment at the end of each, an empty one included).
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    /// Leaves the group and joins it again as a new member, which makes the coordinator rebalance
    /// the group ([`super::node`] does this when the leader has been silent for too long).
    pub fn rejoin(&self) {
        self.rejoin.store(true, Ordering::Relaxed);
    }

    /// A receiver that sees every change of the lock.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.held.clone()
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_instance_without_standby_sorts_before_every_standby_one() {
        // The broker makes the member id CLIENT_ID-UUID; the range assignor sorts by it.
        let id = |instance: &str, standby: bool, uuid: &str| {
            format!("{}-{uuid}", member_name(instance, standby))
        };
        assert!(id("zzz-standalone", false, "ffff") < id("aaa-sidecar", true, "0000"));
        assert!(id("pod-a", false, "ffff") < id("pod-b", false, "0000"));
        assert_eq!(member_name("pod-a", false), "0-pod-a");
        assert_eq!(member_name("pod-a", true), "1-pod-a");
    }
}
