//! The `[ha]` table of the run configuration: naming a deployment turns high availability on.
//!
//! The `///` comments are the reference (`docs/config.md` and `docs/ha.md` follow them).

use serde::{Deserialize, Serialize};

use crate::config_file::Problems;
use crate::units::Dur;

pub use crate::policy::validate::CATCHUP_TOPIC_PREFIX;

/// High availability: instances of one deployment elect a leader through a Kafka consumer group
/// and keep their shared state in a compacted Kafka topic (docs/ha.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// The deployment's name; required, and setting it turns HA on. Every instance of one
    /// deployment runs the same file with the same name. Letters, digits, `.`, `_` and `-`, at most
    /// 100 characters. The election group is `__catchup-NAME`.
    pub name: String,
    /// This instance's id as status and the audit show it. Default: `CATCHUP_HA_INSTANCE`, else
    /// the host name and the process id (`HOST-PID`).
    #[serde(default)]
    pub instance: Option<String>,
    /// The single-partition topic whose partition 0 is the leader's lock. Default
    /// `__catchup-NAME-coordination`; must start with `__catchup-`.
    #[serde(default)]
    pub coordination_topic: Option<String>,
    /// The compacted topic holding the journal, overrides, mode, decisions and epochs. Default
    /// `__catchup-NAME-state`; must start with `__catchup-`.
    #[serde(default)]
    pub state_topic: Option<String>,
    /// The election group's session timeout: how long the broker waits for a silent instance
    /// before it hands the lock to another (the bulk of the failover time). Default 8s (docs/ha.md
    /// says why); between 6s and 5m (the broker's default `group.min.session.timeout.ms` is 6s).
    /// The heartbeat interval is a tenth of it.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: Dur,
    /// How long the broker may hold a fetch of the state topic that finds nothing new
    /// (librdkafka's `fetch.wait.max.ms` for the state reader). Apache Kafka answers a waiting fetch
    /// as soon as a record arrives, so this is mostly the idle cost: one small fetch per instance
    /// per wait. Brokers that hold every fetch for (part of) its wait — tansu does — add up to
    /// twice this to a fleet-wide pause. Default 100ms; between 10ms and 1s.
    #[serde(default = "default_state_fetch_wait")]
    pub state_fetch_wait: Dur,
    /// Replication factor of the topics catchup creates. Default: the cluster's
    /// (`default.replication.factor`).
    #[serde(default)]
    pub replication_factor: Option<i32>,
    /// A standby instance leads only while no instance without `standby` is a member of the
    /// election (the Helm chart sets it on sidecars, so a standalone release leads whenever it
    /// runs, and any sidecar can lead when none does). Default false.
    #[serde(default)]
    pub standby: bool,
}

fn default_session_timeout() -> Dur {
    Dur::from_secs(8)
}

fn default_state_fetch_wait() -> Dur {
    Dur(100)
}

/// The longest deployment name (Kafka allows 249 characters in a topic name).
const MAX_NAME: usize = 100;

fn legal(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl HaConfig {
    /// The election group's id.
    pub fn group(&self) -> String {
        format!("{CATCHUP_TOPIC_PREFIX}{}", self.name)
    }

    /// The coordination topic.
    pub fn coordination_topic(&self) -> String {
        self.coordination_topic
            .clone()
            .unwrap_or_else(|| format!("{CATCHUP_TOPIC_PREFIX}{}-coordination", self.name))
    }

    /// The state topic.
    pub fn state_topic(&self) -> String {
        self.state_topic
            .clone()
            .unwrap_or_else(|| format!("{CATCHUP_TOPIC_PREFIX}{}-state", self.name))
    }

    /// This instance's id: `instance`, else `env("CATCHUP_HA_INSTANCE")`, else `HOST-PID`.
    pub fn instance_id(&self, env: &dyn Fn(&str) -> Option<String>) -> String {
        if let Some(i) = &self.instance {
            return i.clone();
        }
        if let Some(i) = env("CATCHUP_HA_INSTANCE").filter(|i| !i.trim().is_empty()) {
            return i.trim().to_string();
        }
        let host = env("HOSTNAME")
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "catchup".into());
        format!("{host}-{}", std::process::id())
    }

    /// Adds every problem with the table to `p`, each with its field under `ha.`.
    pub fn validate(&self, p: &mut Problems) {
        p.check(
            legal(&self.name) && self.name.len() <= MAX_NAME,
            "ha.name",
            format!("{:?}", self.name),
            "must be 1 to 100 letters, digits, '.', '_' or '-' (it names the election group and the topics)",
        );
        if let Some(i) = &self.instance {
            p.check(
                !i.trim().is_empty() && i.len() <= 200,
                "ha.instance",
                format!("{i:?}"),
                "must be 1 to 200 characters, or left out (then CATCHUP_HA_INSTANCE, else HOST-PID)",
            );
        }
        for (field, topic) in [
            ("ha.coordination_topic", self.coordination_topic()),
            ("ha.state_topic", self.state_topic()),
        ] {
            p.check(
                topic.starts_with(CATCHUP_TOPIC_PREFIX)
                    && legal(&topic)
                    && topic.len() <= 249,
                field,
                format!("{topic:?}"),
                format!(
                    "must start with {CATCHUP_TOPIC_PREFIX:?} (the retention guard refuses such topics as managed) and be a legal topic name of at most 249 characters"
                ),
            );
        }
        p.check(
            self.coordination_topic() != self.state_topic(),
            "ha.state_topic",
            format!("{:?}", self.state_topic()),
            "must differ from ha.coordination_topic",
        );
        p.check(
            self.session_timeout >= Dur::from_secs(6) && self.session_timeout <= Dur::from_mins(5),
            "ha.session_timeout",
            self.session_timeout,
            "must be between 6s and 5m (the broker refuses sessions outside group.min/max.session.timeout.ms)",
        );
        p.check(
            self.state_fetch_wait >= Dur(10) && self.state_fetch_wait <= Dur::from_secs(1),
            "ha.state_fetch_wait",
            self.state_fetch_wait,
            "must be between 10ms and 1s (longer delays a fleet-wide pause on brokers that hold fetches; shorter only costs fetches)",
        );
        if let Some(r) = self.replication_factor {
            p.check(
                (1..=16).contains(&r),
                "ha.replication_factor",
                r,
                "must be between 1 and 16, or left out for the cluster's default",
            );
        }
    }
}
