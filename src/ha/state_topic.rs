//! The state topic on the wire: creating catchup's two topics, writing keyed records, and reading
//! the state topic to its end into a [`StateView`].

use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::state::{Record, StateView};
use crate::kafka::Connection;

/// Why the state topic could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HA state topic {topic}: {reason}")]
pub struct StateTopicError {
    /// The topic.
    pub topic: String,
    /// What went wrong.
    pub reason: String,
}

/// Creates the coordination topic (one partition) and the state topic (one partition,
/// `cleanup.policy=compact`) unless they exist. `replication`: `None` for the cluster's default.
pub async fn create_topics(
    conn: &Connection,
    coordination: &str,
    state: &str,
    replication: Option<i32>,
    timeout: Duration,
) -> Result<(), StateTopicError> {
    let err = |topic: &str, reason: String| StateTopicError {
        topic: topic.to_string(),
        reason,
    };
    let admin = conn.admin().map_err(|e| err(state, e.to_string()))?;
    let rf = replication.unwrap_or(-1);
    let topics = [
        NewTopic::new(coordination, 1, TopicReplication::Fixed(rf)),
        NewTopic::new(state, 1, TopicReplication::Fixed(rf)).set("cleanup.policy", "compact"),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics(&topics, &opts)
        .await
        .map_err(|e| err(state, format!("CreateTopics: {e}")))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(err(&topic, format!("CreateTopics: {code}"))),
        }
    }
    Ok(())
}

/// A reader of the state topic from its beginning.
pub struct StateTopic {
    topic: String,
    consumer: BaseConsumer,
    /// The next offset to read.
    next: i64,
    /// What the records read so far say.
    pub view: StateView,
    /// Records that could not be decoded (named in the log, skipped).
    pub undecodable: u64,
}

impl StateTopic {
    /// Connects to `topic` (which must exist), reading from its first record; and a writer.
    /// `fetch_wait`: how long the broker may hold a fetch that finds nothing new
    /// ([`super::HaConfig::state_fetch_wait`]).
    pub fn open(
        conn: &Connection,
        topic: &str,
        instance: &str,
        fetch_wait: Duration,
    ) -> Result<(StateTopic, StateWriter), StateTopicError> {
        let err = |reason: String| StateTopicError {
            topic: topic.to_string(),
            reason,
        };
        let consumer: BaseConsumer = conn
            .client_config()
            .set("group.id", format!("{topic}-reader"))
            .set("client.id", instance)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", fetch_wait.as_millis().to_string())
            .create()
            .map_err(|e| err(e.to_string()))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .map_err(|e| err(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
        let producer: FutureProducer = conn
            .client_config()
            .set("client.id", instance)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()
            .map_err(|e| err(e.to_string()))?;
        Ok((
            StateTopic {
                topic: topic.to_string(),
                consumer,
                next: 0,
                view: StateView::default(),
                undecodable: 0,
            },
            StateWriter {
                topic: topic.to_string(),
                producer,
            },
        ))
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reads every record up to the topic's end as it is now (blocking: call it off the async
    /// workers). Returns how many records were behind the end when it started (the state lag).
    pub fn catch_up(&mut self, timeout: Duration) -> Result<i64, StateTopicError> {
        let err = |reason: String| StateTopicError {
            topic: self.topic.clone(),
            reason,
        };
        let deadline = crate::clock::monotonic_now() + timeout;
        let (_, end) = self
            .consumer
            .fetch_watermarks(&self.topic, 0, timeout)
            .map_err(|e| err(format!("cannot read its end: {e}")))?;
        let lag = (end - self.next).max(0);
        while self.next < end {
            let left = deadline.saturating_duration_since(crate::clock::monotonic_now());
            if left.is_zero() {
                return Err(err(format!(
                    "read to offset {} of {end} within {timeout:?}: not at the end",
                    self.next
                )));
            }
            match self.consumer.poll(left.min(Duration::from_millis(200))) {
                None => {}
                Some(Err(e)) => return Err(err(format!("read: {e}"))),
                Some(Ok(m)) => {
                    self.next = m.offset() + 1;
                    let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                    match Record::decode(&key, m.payload()) {
                        Ok(r) => self.view.apply(r),
                        Err(why) => {
                            self.undecodable += 1;
                            tracing::warn!(offset = m.offset(), %why, "undecodable state record skipped");
                        }
                    }
                }
            }
        }
        Ok(lag)
    }
}

/// Writes records to the state topic (cheap to clone).
#[derive(Clone)]
pub struct StateWriter {
    topic: String,
    producer: FutureProducer,
}

impl StateWriter {
    /// Writes `record` and waits for the broker's acknowledgement (all in-sync replicas; the
    /// producer is idempotent, so a retried send is not written twice or out of order).
    pub async fn write(&self, record: &Record, timeout: Duration) -> Result<(), StateTopicError> {
        let key = record.key();
        let value = record.value();
        let mut r: FutureRecord<'_, String, Vec<u8>> =
            FutureRecord::to(&self.topic).key(&key).partition(0);
        if let Some(v) = &value {
            r = r.payload(v);
        }
        self.producer
            .send(r, timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| StateTopicError {
                topic: self.topic.clone(),
                reason: format!("write of {key:?}: {e}"),
            })
    }
}
