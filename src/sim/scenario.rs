//! The scenario file format (`scenarios/*.toml`); `docs/scenarios.md` is the reference and follows
//! these `///` comments.
//!
//! A scenario describes a cluster at normal load and what happens from the moment catch-up starts
//! (simulated time 0): the backlog, the consumers' speed, and events such as a tiered-copy stall or a
//! metrics outage. Before time 0 the simulator warms the cluster up at normal load, so disks start at
//! their normal level.

use std::path::Path;

use serde::Deserialize;

use crate::config_file::{self, FileError, Problems};
use crate::units::{ByteRate, Bytes, Dur};

mod validate;

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in summaries.
    pub name: String,
    /// What the scenario represents.
    #[serde(default)]
    pub description: String,
    /// Seed of the simulator's random numbers (producer noise); the same seed gives the same run.
    #[serde(default)]
    pub seed: u64,
    /// Simulated time after catch-up starts.
    pub duration: Dur,
    /// Physics step. Default 10s.
    #[serde(default = "default_step")]
    pub step: Dur,
    /// Control tick of the controller under test. Default 30s.
    #[serde(default = "default_tick")]
    pub tick: Dur,
    /// Brokers and their disks.
    pub cluster: ClusterSpec,
    /// How the disk metric is published.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// Topics: inputs written by producers, outputs written by the catch-up consumers.
    pub topics: Vec<TopicSpec>,
    /// Catch-up consumer groups.
    pub groups: Vec<GroupSpec>,
    /// Things that happen during the run.
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// Parameters of the `runbook` baseline (the manual procedure of the 2025-11 incident).
    #[serde(default)]
    pub runbook: RunbookSpec,
}

fn default_step() -> Dur {
    Dur::from_secs(10)
}

fn default_tick() -> Dur {
    Dur::from_secs(30)
}

/// Brokers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of brokers (ids 1..=N, as MSK numbers them).
    pub brokers: usize,
    /// Log volume size of each broker.
    pub disk_capacity: Bytes,
    /// Space used on each volume by things the scenario does not model (other topics, the OS).
    #[serde(default)]
    pub static_used: Bytes,
    /// Tiered-storage copy throughput of each broker (it uploads the partitions it leads).
    pub upload_rate: ByteRate,
    /// Kafka's `log.retention.check.interval.ms`. Default 5m.
    #[serde(default = "default_check")]
    pub retention_check_interval: Dur,
    /// `segment.bytes`. Default 1GiB.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: Bytes,
    /// `segment.ms`. Default 7d.
    #[serde(default = "default_segment_ms")]
    pub segment_ms: Dur,
}

fn default_check() -> Dur {
    Dur::from_mins(5)
}

fn default_segment_bytes() -> Bytes {
    Bytes(1 << 30)
}

fn default_segment_ms() -> Dur {
    Dur::from_hours(7 * 24)
}

/// The CloudWatch-like disk and copy-lag metrics.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSpec {
    /// Datapoint period (each datapoint is the average over it, stamped with its start). Default 1m.
    pub period: Dur,
    /// How long after its period ends a datapoint becomes visible. Default 2m.
    pub delay: Dur,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec {
            period: Dur::from_mins(1),
            delay: Dur::from_mins(2),
        }
    }
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: usize,
    /// Replication factor. Default 3.
    #[serde(default = "default_rf")]
    pub replication_factor: usize,
    /// Average record size.
    pub record_bytes: Bytes,
    /// `retention.ms` (total retention, local plus remote). Default 7d.
    #[serde(default = "default_retention")]
    pub retention: Dur,
    /// `local.retention.ms` set on the topic; absent = inherited (Kafka's `-2`: same as `retention`).
    #[serde(default)]
    pub local_retention: Option<Dur>,
    /// `remote.storage.enable`. Default true.
    #[serde(default = "default_true")]
    pub remote_storage: bool,
    /// Whether the catchup controller manages this topic (when the policy names no topics itself).
    #[serde(default)]
    pub managed: bool,
    /// An input topic the catchup controller may extend (`[[input.extend]]`, when the policy names
    /// none itself): the cap of its `retention.ms`.
    #[serde(default)]
    pub extend: Option<Dur>,
    /// Written by producers at this rate (an input topic). Exactly one of `producer` and `output_of`.
    #[serde(default)]
    pub producer: Option<ProducerSpec>,
    /// Written by a catch-up group (an output topic).
    #[serde(default)]
    pub output_of: Option<OutputSpec>,
    /// Skewed partitions: the partitions with a replica on `broker` carry `weight` times the traffic of
    /// the others, so that broker fills fastest.
    #[serde(default)]
    pub skew: Option<SkewSpec>,
}

fn default_rf() -> usize {
    3
}

fn default_retention() -> Dur {
    Dur::from_hours(7 * 24)
}

fn default_true() -> bool {
    true
}

/// A producer's rate profile: `rate * (1 + diurnal_amplitude * sin(...)) * (1 + noise)`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSpec {
    /// Mean rate.
    pub rate: ByteRate,
    /// Daily swing as a share of the rate (0.2 = +-20%). Default 0.
    #[serde(default)]
    pub diurnal_amplitude: f64,
    /// Time of the daily peak after the start. Default 0s.
    #[serde(default)]
    pub peak_at: Dur,
    /// Random per-minute variation as a share of the rate (seeded). Default 0.
    #[serde(default)]
    pub noise: f64,
}

/// Output of a catch-up group.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The group whose consumption writes this topic.
    pub group: String,
    /// Bytes written here per byte the group consumes.
    pub amplification: f64,
}

/// Partition skew. Give exactly one of `broker` and `brokers`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkewSpec {
    /// Broker (id) whose partitions are hot: every partition with a replica on it carries `weight`
    /// times the traffic, so its neighbours in the replica ring (which hold the other replicas of
    /// those partitions) run warm too.
    #[serde(default)]
    pub broker: Option<usize>,
    /// Brokers (ids) that alone run hot: the partitions they lead carry `weight` times the traffic,
    /// and the topic's followers are placed as Kafka's default assignment shifts them (the second
    /// replica moves one broker further every round of partitions), so the hot partitions' other
    /// replicas spread over all the other brokers.
    #[serde(default)]
    pub brokers: Vec<usize>,
    /// Traffic multiplier of those partitions.
    pub weight: f64,
}

/// A catch-up consumer group.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group id.
    pub name: String,
    /// The input topic it consumes.
    pub topic: String,
    /// Full speed of all its consumers together, records per second.
    pub max_rate: f64,
    /// Backlog at time 0, as a duration of the input's mean production (e.g. "2d"): shorthand for
    /// one `backlogs` entry at "0s".
    #[serde(default)]
    pub backlog: Option<Dur>,
    /// Backlog events: at `at`, the group's lag grows by `size` of the input's mean production.
    #[serde(default)]
    pub backlogs: Vec<BacklogSpec>,
    /// The group's lane when the policy names no groups (`live`, `catchup` or `backfill`; see
    /// `docs/policy.md`, "Lanes"). Default `catchup`.
    #[serde(default)]
    pub priority: crate::policy::Priority,
    /// Never gated by the control law (when the policy names no groups). Default false.
    #[serde(default)]
    pub exempt: bool,
}

impl GroupSpec {
    /// Every backlog event of the group as (at, size), `backlog` included, in time order.
    pub fn backlog_events(&self) -> Vec<(Dur, Dur)> {
        let mut events: Vec<(Dur, Dur)> = self
            .backlog
            .map(|b| (Dur(0), b))
            .into_iter()
            .chain(self.backlogs.iter().map(|b| (b.at, b.size)))
            .collect();
        events.sort_by_key(|e| e.0);
        events
    }

    /// The backlogs appearing at `at`, summed.
    pub fn backlog_at(&self, at: Dur) -> Dur {
        Dur(self
            .backlog_events()
            .iter()
            .filter(|e| e.0 == at)
            .map(|e| e.1.0)
            .sum())
    }

    /// Every backlog of the run, summed: how much input history a group may need to re-read.
    pub fn total_backlog(&self) -> Dur {
        Dur(self.backlog_events().iter().map(|e| e.1.0).sum())
    }
}

/// One backlog event of a group. At `at` its committed offsets move `size` of the input's mean
/// production back (never below the log start): the lag a consumer outage of that length leaves
/// behind, or a reprocessing. At "0s" every group is caught up, so that is the backlog of the
/// incident; later, it adds to whatever lag the group still has.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacklogSpec {
    /// When it appears (time after catch-up start; at most the scenario's duration).
    pub at: Dur,
    /// Its size, as a duration of the input's mean production (e.g. "1d").
    pub size: Dur,
}

/// Something that happens during the run.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// What happens.
    pub kind: EventKind,
    /// When it starts (time after catch-up start). Give exactly one of `at` and `from_start`.
    #[serde(default)]
    pub at: Option<Dur>,
    /// In force from the very start of the simulation: through the warm-up, before the controller
    /// under test starts (a metric that has never been seen, a copy that was already stalled).
    #[serde(default)]
    pub from_start: bool,
    /// When it ends.
    pub until: Dur,
    /// Affected brokers (ids); empty = all.
    #[serde(default)]
    pub brokers: Vec<usize>,
}

impl EventSpec {
    /// When the event starts, `None` for `from_start` (before the warm-up).
    pub fn start(&self) -> Option<Dur> {
        if self.from_start { None } else { self.at }
    }
}

/// Kinds of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Tiered-storage uploads stop on the brokers: copy lag builds, nothing can be deleted locally.
    CopyStall,
    /// The disk and copy-lag metrics publish no datapoints.
    MetricsOutage,
    /// The disk metric publishes no datapoints (copy lag still does).
    DiskMetricOutage,
    /// The copy-lag metric publishes no datapoints (disk still does).
    CopyLagMetricOutage,
}

impl EventKind {
    /// Whether the event silences the disk metric.
    pub fn silences_disk(self) -> bool {
        matches!(self, EventKind::MetricsOutage | EventKind::DiskMetricOutage)
    }

    /// Whether the event silences the copy-lag metric.
    pub fn silences_copy_lag(self) -> bool {
        matches!(
            self,
            EventKind::MetricsOutage | EventKind::CopyLagMetricOutage
        )
    }
}

/// The manual procedure of the seeds: pause at a mark, lower local retention after a reaction delay,
/// resume below a lower mark, restore by hand after the backlog drained.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunbookSpec {
    /// The disk alert that pages on-call. Default 85.
    pub pause_at_percent: f64,
    /// Consumers are resumed once every broker is below this. Default 70.
    pub resume_below_percent: f64,
    /// Time from an alert or a condition to the operator's action. Default 10m.
    pub reaction: Dur,
    /// Local retention the operator sets on the managed topics. Default 1h.
    pub lower_to: Dur,
    /// Time after the backlog drained at which the operator restores retention. Default 1h.
    pub restore_after: Dur,
}

impl Default for RunbookSpec {
    fn default() -> Self {
        RunbookSpec {
            pause_at_percent: 85.0,
            resume_below_percent: 70.0,
            reaction: Dur::from_mins(10),
            lower_to: Dur::from_hours(1),
            restore_after: Dur::from_hours(1),
        }
    }
}

const SECTIONS: [&str; 12] = [
    "name",
    "description",
    "seed",
    "duration",
    "step",
    "tick",
    "cluster",
    "metrics",
    "topics",
    "groups",
    "events",
    "runbook",
];

/// The largest byte rate a scenario may state (100 GB/s): larger is a typo, not a cluster.
const MAX_BYTE_RATE: f64 = 1e11;

/// Deserializes every section, and every element of the arrays, on its own, so that a malformed
/// file reports each broken section instead of only the first.
fn check_sections(table: &toml::Table, problems: &mut Problems) {
    fn one<T: serde::de::DeserializeOwned>(v: &toml::Value, at: &str, p: &mut Problems) {
        let _ = config_file::deserialize_at::<T>(v.clone(), at, p);
    }
    for (key, v) in table {
        match (key.as_str(), v) {
            ("name" | "description", v) => one::<String>(v, key, problems),
            ("seed", v) => one::<u64>(v, key, problems),
            ("duration" | "step" | "tick", v) => one::<Dur>(v, key, problems),
            ("cluster", v) => one::<ClusterSpec>(v, key, problems),
            ("metrics", v) => one::<MetricsSpec>(v, key, problems),
            ("runbook", v) => one::<RunbookSpec>(v, key, problems),
            ("topics" | "groups" | "events", toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{key}[{i}]");
                    match key.as_str() {
                        "topics" => one::<TopicSpec>(item, &at, problems),
                        "groups" => one::<GroupSpec>(item, &at, problems),
                        _ => one::<EventSpec>(item, &at, problems),
                    }
                }
            }
            _ => {}
        }
    }
}

impl Scenario {
    /// Loads and validates a scenario file, reporting every problem.
    pub fn load(file: &Path) -> Result<Scenario, FileError> {
        Scenario::from_table(file, config_file::read_table(file)?)
    }

    /// Parses and validates scenario text (`file` is used in messages).
    pub fn parse(file: &Path, text: &str) -> Result<Scenario, FileError> {
        Scenario::from_table(file, config_file::parse_table(file, text)?)
    }

    fn from_table(file: &Path, table: toml::Table) -> Result<Scenario, FileError> {
        let mut problems = Problems::default();
        for key in SECTIONS {
            if !table.contains_key(key)
                && matches!(key, "name" | "duration" | "cluster" | "topics" | "groups")
            {
                problems.0.push(config_file::Problem {
                    path: key.into(),
                    value: None,
                    message: "required field is missing; add it".into(),
                });
            }
        }
        let table = config_file::known_keys(table, &SECTIONS, &mut problems);
        check_sections(&table, &mut problems);
        if !problems.0.is_empty() {
            return Err(FileError {
                file: file.to_path_buf(),
                problems: problems.0,
            });
        }
        let scenario =
            config_file::deserialize_at::<Scenario>(toml::Value::Table(table), "", &mut problems);
        if let Some(s) = &scenario {
            s.validate(&mut problems);
        }
        problems.into_result(file)?;
        scenario.ok_or_else(|| FileError {
            file: file.to_path_buf(),
            problems: vec![],
        })
    }

    /// The distinct times at which some group's backlog appears, in order.
    pub fn backlog_times(&self) -> Vec<Dur> {
        let mut times: Vec<Dur> = self
            .groups
            .iter()
            .flat_map(|g| g.backlog_events().into_iter().map(|e| e.0))
            .collect();
        times.sort();
        times.dedup();
        times
    }

    /// Names of the topics marked `managed`.
    pub fn managed_topics(&self) -> Vec<String> {
        self.topics
            .iter()
            .filter(|t| t.managed)
            .map(|t| t.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
