//! Topic configs: [`read`] every config of the managed topics through DescribeConfigs, deciding for
//! each value whether it is set on the topic or inherited, so that a restore brings back exactly
//! what was there (SET the value, or DELETE the key).
//!
//! Kafka answers DescribeConfigs topic by topic, and so does [`read`]: a topic whose answer is an
//! error (deleted, mistyped in the policy, not authorized) is named in the readings' `failed` list
//! and every other topic is still read, so one bad name never stops the others from being lowered
//! or restored. Only a request that fails as a whole (no broker answers) fails the sensor.
//!
//! Apache Kafka reports every key of a topic with its source: `DYNAMIC_TOPIC_CONFIG` for values set on
//! the topic, and the real source (`STATIC_BROKER_CONFIG`, `DYNAMIC_DEFAULT_BROKER_CONFIG`,
//! `DEFAULT_CONFIG`, ...) for inherited ones. Some Kafka-compatible brokers misreport: tansu 0.6.0
//! returns only the keys set on the topic, each with source `DEFAULT_CONFIG`. A value wrongly taken
//! as inherited would be lost on restore (the key would be DELETEd), so the rule here never loses a
//! value: a `DEFAULT_CONFIG` entry whose value is not Kafka's documented default is treated as set on
//! the topic. For Apache Kafka this changes nothing (its `DEFAULT_CONFIG` entries carry the defaults).

use std::collections::BTreeMap;

use super::{ConfigSource, ConfigValue, Readings, SensorError, TopicConfigs};
use crate::kafka::{RawConfig, TopicAdmin};
use crate::units::Timestamp;

/// Every config of each of `topics`, with its source, sampled at `now`; each topic that could not
/// be described is named in `failed`. Fails as a whole only when the request does.
pub async fn read(
    admin: &TopicAdmin,
    topics: &[String],
    now: Timestamp,
) -> Result<Readings<TopicConfigs>, SensorError> {
    let answers = admin
        .describe(topics)
        .await
        .map_err(|reason| SensorError::Unavailable {
            sensor: crate::sensors::SensorKind::TopicConfigs,
            reason,
        })?;
    Ok(assemble(topics, answers, now))
}

/// Each topic's configs from its DescribeConfigs answer (`answers` in the order of `topics`); a
/// topic whose answer is an error, or that has no answer, is named in `failed` with what to do.
pub fn assemble(
    topics: &[String],
    answers: Vec<Result<Vec<RawConfig>, String>>,
    now: Timestamp,
) -> Readings<TopicConfigs> {
    let mut out = Readings::default();
    let mut answers = answers.into_iter();
    for topic in topics {
        let entries = match answers.next() {
            // Kafka answers every key of an existing topic (defaults included): none at all means
            // there is no such topic (some brokers answer an unknown topic that way).
            Some(Ok(entries)) if entries.is_empty() => {
                out.fail(
                    topic,
                    format!(
                        "topic {topic}: DescribeConfigs answered with no config at all: the topic does not exist (deleted, or spelt differently from the policy's [[retention.topics]] or [[input.extend]]); the other topics are still read"
                    ),
                );
                continue;
            }
            Some(Ok(entries)) => entries,
            Some(Err(e)) => {
                out.fail(
                    topic,
                    format!(
                        "topic {topic}: {e}: check that it exists, is spelt as in the policy's [[retention.topics]] or [[input.extend]], and that catchup may DescribeConfigs it (managed and input topics alike); the other topics are still read"
                    ),
                );
                continue;
            }
            None => {
                out.fail(
                    topic,
                    format!("topic {topic}: no answer for it in DescribeConfigs: its configs are unknown this tick"),
                );
                continue;
            }
        };
        let configs: BTreeMap<String, ConfigValue> = entries
            .into_iter()
            .map(|e| {
                let source = classify(
                    &e.name,
                    e.value.as_deref(),
                    KafkaConfigSource::from_code(e.source),
                );
                (
                    e.name,
                    ConfigValue {
                        value: e.value,
                        source,
                    },
                )
            })
            .collect();
        out.read.push(TopicConfigs {
            topic: topic.clone(),
            configs,
            sampled_at: now,
        });
    }
    out
}

/// Kafka's `DescribeConfigsResponse` config source codes (KIP-226).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KafkaConfigSource {
    /// 0: the broker could not tell.
    Unknown,
    /// 1: set on the topic.
    DynamicTopic,
    /// 2: set dynamically on this broker.
    DynamicBroker,
    /// 3: set dynamically as the cluster-wide broker default.
    DynamicDefaultBroker,
    /// 4: set in the broker's `server.properties`.
    StaticBroker,
    /// 5: Kafka's built-in default.
    Default,
    /// 6 and above: sources that do not apply to topics.
    Other(i8),
}

impl KafkaConfigSource {
    /// From the protocol's code.
    pub fn from_code(code: i8) -> KafkaConfigSource {
        match code {
            0 => KafkaConfigSource::Unknown,
            1 => KafkaConfigSource::DynamicTopic,
            2 => KafkaConfigSource::DynamicBroker,
            3 => KafkaConfigSource::DynamicDefaultBroker,
            4 => KafkaConfigSource::StaticBroker,
            5 => KafkaConfigSource::Default,
            other => KafkaConfigSource::Other(other),
        }
    }
}

/// Kafka's documented defaults of the topic configs the controller reads or must preserve
/// (Apache Kafka 3.x/4.x topic configuration reference).
pub const KAFKA_TOPIC_DEFAULTS: [(&str, &str); 14] = [
    ("cleanup.policy", "delete"),
    ("local.retention.bytes", "-2"),
    ("local.retention.ms", "-2"),
    ("max.message.bytes", "1048588"),
    ("min.insync.replicas", "1"),
    ("remote.storage.enable", "false"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.jitter.ms", "0"),
    ("segment.ms", "604800000"),
    ("compression.type", "producer"),
    ("message.timestamp.type", "CreateTime"),
];

/// Kafka's documented default of `key`, if it is one we know.
pub fn kafka_default(key: &str) -> Option<&'static str> {
    KAFKA_TOPIC_DEFAULTS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
}

/// Whether a DescribeConfigs entry is set on the topic or inherited.
///
/// - `DYNAMIC_TOPIC_CONFIG`: set on the topic.
/// - Any broker-level source: inherited.
/// - `DEFAULT_CONFIG`: inherited when the value is Kafka's documented default; otherwise (another
///   value, or a key whose default we do not know) the broker misreports, and the value is preserved
///   as set on the topic.
/// - `UNKNOWN` or anything else: set on the topic (preserving is the safe side).
pub fn classify(key: &str, value: Option<&str>, source: KafkaConfigSource) -> ConfigSource {
    match source {
        KafkaConfigSource::DynamicTopic => ConfigSource::Topic,
        KafkaConfigSource::DynamicBroker
        | KafkaConfigSource::DynamicDefaultBroker
        | KafkaConfigSource::StaticBroker => ConfigSource::Inherited,
        KafkaConfigSource::Default => match (kafka_default(key), value) {
            (Some(default), Some(v)) if v.trim() == default => ConfigSource::Inherited,
            (Some(_), None) => ConfigSource::Inherited,
            _ => ConfigSource::Topic,
        },
        KafkaConfigSource::Unknown | KafkaConfigSource::Other(_) => ConfigSource::Topic,
    }
}

#[cfg(test)]
mod tests {
    use super::KafkaConfigSource as S;
    use super::*;

    /// A DescribeConfigs answer as Apache Kafka gives it for a tiered topic with
    /// `local.retention.ms` set on the topic and `retention.ms` inherited from the broker.
    const KAFKA_EXPLICIT: [(&str, &str, i8); 6] = [
        ("local.retention.ms", "14400000", 1),
        ("remote.storage.enable", "true", 1),
        ("retention.ms", "259200000", 4),
        ("cleanup.policy", "delete", 5),
        ("max.message.bytes", "1048588", 5),
        ("local.retention.bytes", "-2", 5),
    ];

    fn raw(entries: &[(&str, &str, i8)]) -> Vec<RawConfig> {
        entries
            .iter()
            .map(|(k, v, s)| RawConfig {
                name: k.to_string(),
                value: Some(v.to_string()),
                source: *s,
            })
            .collect()
    }

    #[test]
    fn a_deleted_topic_among_good_ones_is_named_and_the_others_are_read() {
        let topics: Vec<String> = ["out-1", "out-gone", "out-2", "out-late"]
            .map(String::from)
            .to_vec();
        // librdkafka's text for UNKNOWN_TOPIC_OR_PARTITION, as DescribeConfigs gives it per topic.
        let answers = vec![
            Ok(raw(&KAFKA_EXPLICIT)),
            Err("Broker: Unknown topic or partition".to_string()),
            Ok(raw(&KAFKA_EXPLICIT)),
        ];
        let got = assemble(&topics, answers, Timestamp(7));
        let read: Vec<&str> = got.read.iter().map(|t| t.topic.as_str()).collect();
        assert_eq!(read, ["out-1", "out-2"]);
        assert!(got.read.iter().all(
            |t| t.sampled_at == Timestamp(7) && t.int("local.retention.ms") == Some(14_400_000)
        ));
        let failed: Vec<&str> = got.failed.iter().map(|f| f.target.as_str()).collect();
        assert_eq!(failed, ["out-gone", "out-late"], "each by name");
        let why = &got.failed[0].reason;
        assert!(
            why.contains("topic out-gone: Broker: Unknown topic or partition")
                && why.contains("[[retention.topics]]"),
            "{why}"
        );
        assert!(
            got.failed[1].reason.contains("no answer"),
            "{:?}",
            got.failed
        );
    }

    #[test]
    fn an_answer_without_any_config_is_a_missing_topic() {
        let topics: Vec<String> = ["out-1", "out-empty"].map(String::from).to_vec();
        let got = assemble(
            &topics,
            vec![Ok(raw(&KAFKA_EXPLICIT)), Ok(Vec::new())],
            Timestamp(7),
        );
        assert_eq!(got.read.len(), 1);
        assert_eq!(got.failed[0].target, "out-empty");
        assert!(
            got.failed[0].reason.contains("does not exist"),
            "{:?}",
            got.failed
        );
    }

    #[test]
    fn apache_kafka_sources_map_directly() {
        let got: Vec<ConfigSource> = KAFKA_EXPLICIT
            .iter()
            .map(|(k, v, s)| classify(k, Some(v), S::from_code(*s)))
            .collect();
        use ConfigSource::{Inherited as I, Topic as T};
        assert_eq!(got, vec![T, T, I, I, I, I]);
    }

    #[test]
    fn an_inherited_local_retention_is_deleted_on_restore_not_set() {
        // Kafka reports the default -2 with DEFAULT_CONFIG when nothing is set anywhere.
        assert_eq!(
            classify("local.retention.ms", Some("-2"), S::Default),
            ConfigSource::Inherited
        );
        // ...and the broker-wide value with its broker source when set in server.properties.
        assert_eq!(
            classify("local.retention.ms", Some("3600000"), S::StaticBroker),
            ConfigSource::Inherited
        );
        assert_eq!(
            classify(
                "local.retention.ms",
                Some("3600000"),
                S::DynamicDefaultBroker
            ),
            ConfigSource::Inherited
        );
    }

    #[test]
    fn a_misreported_default_is_preserved_as_set_on_the_topic() {
        // tansu 0.6.0: keys set on the topic come back as DEFAULT_CONFIG.
        assert_eq!(
            classify("local.retention.ms", Some("14400000"), S::Default),
            ConfigSource::Topic
        );
        assert_eq!(
            classify("retention.ms", Some("259200000"), S::Default),
            ConfigSource::Topic
        );
        assert_eq!(
            classify("remote.storage.enable", Some("true"), S::Default),
            ConfigSource::Topic
        );
        // A key whose default we do not know: keep it.
        assert_eq!(
            classify("some.future.config", Some("x"), S::Default),
            ConfigSource::Topic
        );
        // Unknown source: keep it.
        assert_eq!(
            classify("local.retention.ms", Some("-2"), S::Unknown),
            ConfigSource::Topic
        );
        assert_eq!(
            classify("local.retention.ms", Some("1"), S::from_code(9)),
            ConfigSource::Topic
        );
    }
}
