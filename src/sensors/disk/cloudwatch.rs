//! Disk use and tiered-storage copy lag of MSK brokers from CloudWatch, in one `GetMetricData` call
//! per tick for up to 250 brokers.
//!
//! Metrics (namespace `AWS/Kafka`, dimensions `Cluster Name` and `Broker ID`):
//! - `KafkaDataLogsDiskUsed`: percent of the data-log volume used; `DEFAULT` monitoring (free);
//! - `RemoteCopyLagBytes`: bytes eligible for tiering not yet in remote storage; needs `PER_BROKER`
//!   monitoring or higher (paid). Without it the controller never lowers retention (invariant 5).
//!
//! Each query asks for the `Maximum` over `period` (1 minute, MSK's publishing interval) over the last
//! `lookback`, newest first; the newest datapoint is kept with its own timestamp, so the engine knows
//! its age. A broker without a disk datapoint makes the whole disk reading an error naming it — never
//! a 0%, and never a picture with the fullest broker silently missing. A broker whose newest
//! `RemoteCopyLagBytes` is missing, negative or not a number has no copy-lag reading and a fault
//! naming it and why, never a 0 (see [the module above](super) for KAFKA-19995 and the other
//! reasons); the other brokers' copy lag is read. Up to 500 queries go in one call (the API's
//! limit), pages are followed, throttling and 5xx answers are retried by the SDK's standard retry
//! policy within the sensor timeout.
//!
//! The disk and copy-lag readings of one tick come from the same call: whichever is asked first
//! fetches both, the other reuses that answer while it is younger than `refresh`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricStat, ScanBy, StatusCode,
};
use serde::{Deserialize, Serialize};

use super::{copy_lag_bytes, unknown_copy_lag};
use crate::sensors::{
    BrokerCopyLag, BrokerDisk, BrokerId, CopyLagSensor, DiskSensor, DiskSource, Readings,
    SensorError, SensorKind,
};
use crate::units::{Dur, Timestamp};

/// The CloudWatch namespace of MSK.
pub const NAMESPACE: &str = "AWS/Kafka";
/// Disk use metric (percent), `DEFAULT` level.
pub const DISK_METRIC: &str = "KafkaDataLogsDiskUsed";
/// Copy-lag metric (bytes), `PER_BROKER` level.
pub const COPY_LAG_METRIC: &str = "RemoteCopyLagBytes";
/// Queries per `GetMetricData` call (the API's limit).
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// `[cluster.disk] kind = "cloudwatch"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudWatchConfig {
    /// Datapoint period. Default 1m (MSK publishes once a minute).
    #[serde(default = "default_period")]
    pub period: Dur,
    /// How long after its period ends a datapoint becomes readable, as observed (MSK publishes about
    /// a minute late; CloudWatch can be later). With `period` and `refresh` it sets how old the
    /// newest datapoint can be (2 × period + delay + refresh), which `staleness.max_disk_age` must
    /// allow. Default 2m.
    #[serde(default = "default_delay")]
    pub delay: Dur,
    /// How far back to look for the newest datapoint. Default 15m; older data is reported missing.
    #[serde(default = "default_lookback")]
    pub lookback: Dur,
    /// How long one answer serves both disk and copy lag (and ticks faster than it). Default 20s:
    /// below the default 30s tick, so every tick reads anew, and well below the 1-minute period.
    #[serde(default = "default_refresh")]
    pub refresh: Dur,
    /// CloudWatch endpoint (VPC endpoint or a test server); default: the region's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

fn default_period() -> Dur {
    Dur(60_000)
}
fn default_delay() -> Dur {
    Dur(2 * 60_000)
}
fn default_lookback() -> Dur {
    Dur(15 * 60_000)
}
fn default_refresh() -> Dur {
    Dur(20_000)
}

impl CloudWatchConfig {
    /// The source reading `target` (what MSK discovery found) through `client`.
    pub fn build(&self, client: aws_sdk_cloudwatch::Client, target: Target) -> CloudWatchSource {
        CloudWatchSource::new(client, self.clone(), target)
    }
}

impl Default for CloudWatchConfig {
    fn default() -> Self {
        CloudWatchConfig {
            period: default_period(),
            delay: default_delay(),
            lookback: default_lookback(),
            refresh: default_refresh(),
            endpoint_url: None,
        }
    }
}

/// What to read: the cluster and its brokers (from MSK discovery).
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The `Cluster Name` dimension.
    pub cluster_name: String,
    /// Broker ids.
    pub brokers: Vec<BrokerId>,
    /// Size of each broker's data volume, bytes (the metric is a percentage of it).
    pub volume_bytes: u64,
    /// Whether to ask for copy lag (the monitoring level publishes it).
    pub copy_lag: bool,
    /// Why copy lag is not asked for, when it is not.
    pub copy_lag_missing: Option<String>,
}

impl Target {
    /// What to read of a discovered MSK cluster; `None` when it has no broker volumes (Express
    /// brokers).
    pub fn of(cluster: &crate::aws::msk::MskCluster) -> Option<Target> {
        let gib = cluster.volume_gib.filter(|g| *g > 0)?;
        Some(Target {
            cluster_name: cluster.name.clone(),
            brokers: cluster.brokers.clone(),
            volume_bytes: gib as u64 * (1 << 30),
            copy_lag: cluster.copy_lag_published(),
            copy_lag_missing: cluster.copy_lag_missing(),
        })
    }
}

/// One call's answer, split by metric.
#[derive(Debug)]
struct Answer {
    disks: Result<Vec<BrokerDisk>, SensorError>,
    copy: Result<Readings<BrokerCopyLag>, SensorError>,
}

/// Reads MSK broker disk use and copy lag from CloudWatch.
pub struct CloudWatchSource {
    client: aws_sdk_cloudwatch::Client,
    config: CloudWatchConfig,
    target: RwLock<Target>,
    last: tokio::sync::Mutex<Option<(Instant, Arc<Answer>)>>,
    calls: AtomicU64,
}

impl std::fmt::Debug for CloudWatchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudWatchSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CloudWatchSource {
    /// A source reading `target` through `client`.
    pub fn new(
        client: aws_sdk_cloudwatch::Client,
        config: CloudWatchConfig,
        target: Target,
    ) -> CloudWatchSource {
        CloudWatchSource {
            client,
            config,
            target: RwLock::new(target),
            last: tokio::sync::Mutex::new(None),
            calls: AtomicU64::new(0),
        }
    }

    /// Replaces what to read (after a new discovery: brokers added, volume grown).
    pub fn set_target(&self, target: Target) {
        *self.target.write().unwrap_or_else(|p| p.into_inner()) = target;
    }

    /// `GetMetricData` calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The answer for this tick: a fresh one, or the last one if younger than `refresh`.
    async fn answer(&self) -> Arc<Answer> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < Duration::from_millis(self.config.refresh.0)
        {
            return answer.clone();
        }
        let target = self
            .target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let answer = Arc::new(self.fetch(&target, crate::clock::system_now()).await);
        *last = Some((crate::clock::monotonic_now(), answer.clone()));
        answer
    }

    async fn fetch(&self, target: &Target, now: SystemTime) -> Answer {
        let mut queries = Vec::with_capacity(target.brokers.len() * 2);
        for &b in &target.brokers {
            queries.push(query(
                &disk_id(b),
                DISK_METRIC,
                target,
                b,
                self.config.period,
            ));
            if target.copy_lag {
                queries.push(query(
                    &copy_id(b),
                    COPY_LAG_METRIC,
                    target,
                    b,
                    self.config.period,
                ));
            }
        }
        let start = now - Duration::from_millis(self.config.lookback.0);
        let mut newest: BTreeMap<String, (Timestamp, f64)> = BTreeMap::new();
        let mut problems: BTreeMap<String, String> = BTreeMap::new();
        for chunk in queries.chunks(MAX_QUERIES_PER_CALL) {
            let mut next: Option<String> = None;
            loop {
                self.calls.fetch_add(1, Ordering::Relaxed);
                let sent = self
                    .client
                    .get_metric_data()
                    .set_metric_data_queries(Some(chunk.to_vec()))
                    .start_time(start.into())
                    .end_time(now.into())
                    .scan_by(ScanBy::TimestampDescending)
                    .set_next_token(next.take())
                    .send()
                    .await;
                let out = match sent {
                    Ok(out) => out,
                    Err(e) => {
                        let reason =
                            format!("CloudWatch GetMetricData: {}", crate::aws::error_chain(&e));
                        return Answer {
                            disks: Err(unavailable(SensorKind::Disk, &reason)),
                            copy: Err(unavailable(SensorKind::CopyLag, &reason)),
                        };
                    }
                };
                for r in out.metric_data_results() {
                    let Some(id) = r.id() else { continue };
                    match r.status_code() {
                        Some(StatusCode::Forbidden) | Some(StatusCode::InternalError) => {
                            let said: Vec<&str> =
                                r.messages().iter().filter_map(|m| m.value()).collect();
                            problems.insert(
                                id.to_string(),
                                format!(
                                    "{}{}",
                                    r.status_code().map(|s| s.as_str()).unwrap_or(""),
                                    if said.is_empty() {
                                        String::new()
                                    } else {
                                        format!(" ({})", said.join("; "))
                                    }
                                ),
                            );
                        }
                        _ => {}
                    }
                    for (t, v) in r.timestamps().iter().zip(r.values()) {
                        let at = Timestamp(t.to_millis().unwrap_or(0));
                        // A disk datapoint that is not a number is skipped for an older one; a
                        // copy-lag one is kept, so the newest says the lag is unknown.
                        if !v.is_finite() && !is_copy_id(id) {
                            continue;
                        }
                        let e = newest.entry(id.to_string()).or_insert((at, *v));
                        if at > e.0 {
                            *e = (at, *v);
                        }
                    }
                }
                match out.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        let lookback = self.config.lookback;
        let missing = |ids: &[BrokerId], metric: &str, to_id: fn(BrokerId) -> String| {
            let absent: Vec<String> = ids
                .iter()
                .filter(|b| !newest.contains_key(&to_id(**b)))
                .map(|b| match problems.get(&to_id(*b)) {
                    Some(p) => format!("{b} ({p})"),
                    None => b.to_string(),
                })
                .collect();
            (!absent.is_empty()).then(|| {
                format!(
                    "CloudWatch {metric} of cluster {:?}: no datapoint in the last {lookback} for broker(s) {}",
                    target.cluster_name,
                    absent.join(", ")
                )
            })
        };
        let disks = match missing(&target.brokers, DISK_METRIC, disk_id) {
            Some(reason) => Err(no_data(SensorKind::Disk, reason)),
            None => Ok(target
                .brokers
                .iter()
                .map(|&b| {
                    let (at, percent) = newest[&disk_id(b)];
                    BrokerDisk {
                        broker: b,
                        used_bytes: (percent.clamp(0.0, 100.0) / 100.0 * target.volume_bytes as f64)
                            as u64,
                        capacity_bytes: target.volume_bytes,
                        sampled_at: at,
                        source: DiskSource::CloudWatch,
                    }
                })
                .collect()),
        };
        let copy = if !target.copy_lag {
            Err(no_data(
                SensorKind::CopyLag,
                target
                    .copy_lag_missing
                    .clone()
                    .unwrap_or_else(|| format!("{COPY_LAG_METRIC} is not read")),
            ))
        } else {
            let mut copy = Readings::default();
            for &b in &target.brokers {
                let id = copy_id(b);
                match newest.get(&id).map(|&(at, v)| (at, copy_lag_bytes(v))) {
                    Some((at, Ok(bytes))) => copy.read.push(BrokerCopyLag {
                        broker: b,
                        bytes,
                        sampled_at: at,
                    }),
                    Some((at, Err(why))) => copy.fail(
                        b.to_string(),
                        unknown_copy_lag(
                            b,
                            format!("{COPY_LAG_METRIC} at {} is {why}", at.rfc3339()),
                        ),
                    ),
                    None => copy.fail(
                        b.to_string(),
                        unknown_copy_lag(
                            b,
                            format!(
                                "no {COPY_LAG_METRIC} datapoint of cluster {:?} in the last {lookback}{} (Kafka does not emit it while uploads fail, KAFKA-19995: check the broker's RemoteCopyErrorsPerSec and logs)",
                                target.cluster_name,
                                problems
                                    .get(&id)
                                    .map_or(String::new(), |p| format!(" ({p})")),
                            ),
                        ),
                    ),
                }
            }
            Ok(copy)
        };
        Answer { disks, copy }
    }
}

fn disk_id(b: BrokerId) -> String {
    format!("disk_{b}")
}

fn copy_id(b: BrokerId) -> String {
    format!("copy_{b}")
}

fn is_copy_id(id: &str) -> bool {
    id.starts_with("copy_")
}

fn query(
    id: &str,
    metric: &str,
    target: &Target,
    broker: BrokerId,
    period: Dur,
) -> MetricDataQuery {
    let dimension =
        |name: &str, value: String| Dimension::builder().name(name).value(value).build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(NAMESPACE)
                        .metric_name(metric)
                        .dimensions(dimension("Cluster Name", target.cluster_name.clone()))
                        .dimensions(dimension("Broker ID", broker.to_string()))
                        .build(),
                )
                .period((period.0 / 1000).max(1) as i32)
                .stat("Maximum")
                .build(),
        )
        .return_data(true)
        .build()
}

fn unavailable(sensor: SensorKind, reason: &str) -> SensorError {
    SensorError::Unavailable {
        sensor,
        reason: reason.to_string(),
    }
}

fn no_data(sensor: SensorKind, reason: String) -> SensorError {
    SensorError::NoData { sensor, reason }
}

impl DiskSensor for CloudWatchSource {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        self.answer().await.disks.clone()
    }
}

impl CopyLagSensor for CloudWatchSource {
    async fn read_copy_lag(&self) -> Result<Readings<BrokerCopyLag>, SensorError> {
        self.answer().await.copy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::Client;
    use aws_sdk_cloudwatch::operation::get_metric_data::{GetMetricDataError, GetMetricDataOutput};
    use aws_sdk_cloudwatch::types::{MessageData, MetricDataResult};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::DateTime;
    use aws_smithy_types::error::ErrorMetadata;

    const GIB: u64 = 1 << 30;

    fn target(brokers: i32, copy_lag: bool) -> Target {
        Target {
            cluster_name: "ingest".into(),
            brokers: (1..=brokers).collect(),
            volume_bytes: 1000 * GIB,
            copy_lag,
            copy_lag_missing: (!copy_lag).then(|| "monitoring level DEFAULT".into()),
        }
    }

    fn now_secs() -> i64 {
        crate::clock::system_now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// An answer with, for each query id, the datapoints `points(id)` gives (newest first).
    fn answer(ids: Vec<String>, points: impl Fn(&str) -> Vec<(i64, f64)>) -> GetMetricDataOutput {
        let mut out = GetMetricDataOutput::builder();
        for id in ids {
            let mut r = MetricDataResult::builder()
                .id(&id)
                .status_code(StatusCode::Complete);
            for (t, v) in points(&id) {
                r = r.timestamps(DateTime::from_secs(t)).values(v);
            }
            out = out.metric_data_results(r.build());
        }
        out.build()
    }

    fn ids(
        req: &aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataInput,
    ) -> Vec<String> {
        req.metric_data_queries()
            .iter()
            .filter_map(|q| q.id().map(str::to_string))
            .collect()
    }

    /// Disk of broker b at (10 + b)% and copy lag b MiB, one minute and two minutes ago.
    fn healthy(id: &str) -> Vec<(i64, f64)> {
        let (kind, b) = id.split_once('_').unwrap();
        let b: f64 = b.parse().unwrap();
        let t = now_secs() / 60 * 60 - 60;
        match kind {
            "disk" => vec![(t, 10.0 + b), (t - 60, 9.0 + b)],
            _ => vec![(t, b * 1048576.0), (t - 60, 0.0)],
        }
    }

    #[tokio::test]
    async fn thirty_brokers_cost_one_call_with_the_newest_datapoint_and_its_time() {
        let rule = mock!(Client::get_metric_data)
            .match_requests(|r| {
                r.metric_data_queries().len() == 60
                    && r.scan_by() == Some(&ScanBy::TimestampDescending)
            })
            .then_compute_output(|r| answer(ids(r), healthy));
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(30, true));
        let (disks, copy) = tokio::join!(source.read_disks(), source.read_copy_lag());
        let (disks, copy) = (disks.unwrap(), copy.unwrap());
        assert!(copy.failed.is_empty(), "{:?}", copy.failed);
        let copy = copy.read;
        assert_eq!(
            rule.num_calls(),
            1,
            "one GetMetricData call for disk and copy lag"
        );
        assert_eq!(source.calls(), 1);
        assert_eq!(disks.len(), 30);
        let t = (now_secs() / 60 * 60 - 60) * 1000;
        for d in &disks {
            assert_eq!(d.capacity_bytes, 1000 * GIB);
            assert!(
                (d.used_percent() - (10.0 + d.broker as f64)).abs() < 1e-6,
                "{d:?}"
            );
            assert_eq!(
                d.sampled_at,
                Timestamp(t),
                "the datapoint's own time, not now"
            );
            assert_eq!(d.source, DiskSource::CloudWatch);
        }
        assert_eq!(copy.len(), 30);
        assert!(copy.iter().all(|c| c.bytes == c.broker as u64 * 1048576));
        // Within `refresh` the answer is reused; after it, fetched again.
        source.read_disks().await.unwrap();
        assert_eq!(rule.num_calls(), 1);
        *source.last.lock().await = None;
        source.read_disks().await.unwrap();
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn more_than_500_queries_are_split_into_calls_of_at_most_500() {
        let rule = mock!(Client::get_metric_data)
            .match_requests(|r| r.metric_data_queries().len() <= MAX_QUERIES_PER_CALL)
            .then_compute_output(|r| answer(ids(r), healthy));
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(300, true));
        assert_eq!(source.read_disks().await.unwrap().len(), 300);
        assert_eq!(source.read_copy_lag().await.unwrap().read.len(), 300);
        assert_eq!(rule.num_calls(), 2, "600 queries: two calls");
    }

    #[tokio::test]
    async fn a_broker_without_datapoints_is_named_never_read_as_zero() {
        let rule = mock!(Client::get_metric_data).then_compute_output(|r| {
            answer(
                ids(r),
                |id| if id == "disk_3" { vec![] } else { healthy(id) },
            )
        });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(6, true));
        let err = source.read_disks().await.unwrap_err();
        assert!(
            matches!(
                err,
                SensorError::NoData {
                    sensor: crate::sensors::SensorKind::Disk,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("KafkaDataLogsDiskUsed") && text.contains("broker(s) 3"),
            "{text}"
        );
        // Copy lag of every broker is there and still served.
        assert_eq!(source.read_copy_lag().await.unwrap().read.len(), 6);
    }

    #[tokio::test]
    async fn missing_negative_or_nan_copy_lag_is_unknown_never_zero() {
        let t = now_secs() / 60 * 60 - 60;
        let rule = mock!(Client::get_metric_data).then_compute_output(move |r| {
            answer(ids(r), |id| match id {
                // After a leader change: the newest datapoint is below zero, an older one is not.
                "copy_2" => vec![(t, -4096.0), (t - 60, 1048576.0)],
                "copy_3" => vec![(t, f64::NAN), (t - 60, 0.0)],
                // Not emitted while uploads fail (KAFKA-19995).
                "copy_4" => vec![],
                _ => healthy(id),
            })
        });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(5, true));
        let copy = source.read_copy_lag().await.unwrap();
        let read: Vec<(BrokerId, u64)> = copy.read.iter().map(|c| (c.broker, c.bytes)).collect();
        assert_eq!(
            read,
            [(1, 1048576), (5, 5 * 1048576)],
            "no reading, and no 0, for 2, 3, 4"
        );
        let failed: Vec<&str> = copy.failed.iter().map(|f| f.target.as_str()).collect();
        assert_eq!(failed, ["2", "3", "4"]);
        let why: Vec<&str> = copy.failed.iter().map(|f| f.reason.as_str()).collect();
        assert!(
            why[0].starts_with("broker 2: copy lag unknown: RemoteCopyLagBytes at ")
                && why[0].contains("-4096 is negative"),
            "{}",
            why[0]
        );
        assert!(why[1].contains("NaN is not a number"), "{}", why[1]);
        assert!(
            why[2].starts_with("broker 4: copy lag unknown: no RemoteCopyLagBytes datapoint")
                && why[2].contains("KAFKA-19995"),
            "{}",
            why[2]
        );
        // Disk is read for every broker all the same.
        assert_eq!(source.read_disks().await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn throttling_is_retried_and_then_answered() {
        // One rule for the operation: the SDK retries within one operation, so a sequence.
        let ids: Vec<String> = (1..=4).flat_map(|b| [disk_id(b), copy_id(b)]).collect();
        let rule = mock!(Client::get_metric_data)
            .sequence()
            .error(|| {
                GetMetricDataError::generic(
                    ErrorMetadata::builder()
                        .code("Throttling")
                        .message("Rate exceeded")
                        .build(),
                )
            })
            .output(move || answer(ids.clone(), healthy))
            .build();
        // The production retry policy, with a short first backoff to keep the test quick.
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, [&rule], |c| c
            .retry_config(
                crate::aws::retry_config().with_initial_backoff(Duration::from_millis(10))
            ));
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(4, true));
        assert_eq!(source.read_disks().await.unwrap().len(), 4);
        assert_eq!(rule.num_calls(), 2, "throttled once, then answered");
        assert_eq!(source.calls(), 1, "one call from the controller's side");
    }

    #[tokio::test]
    async fn an_error_that_outlasts_the_retries_is_unavailable_with_the_reason() {
        let denied = mock!(Client::get_metric_data).then_error(|| {
            GetMetricDataError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform: cloudwatch:GetMetricData")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&denied], |c| c
            .retry_config(
                crate::aws::retry_config().with_initial_backoff(Duration::from_millis(10))
            ));
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(4, true));
        let err = source.read_disks().await.unwrap_err();
        assert_eq!(denied.num_calls(), 1, "access denied is not retried");
        assert!(matches!(err, SensorError::Unavailable { .. }));
        assert!(
            err.to_string().contains("cloudwatch:GetMetricData"),
            "{err}"
        );
        let err = source.read_copy_lag().await.unwrap_err();
        assert!(err.to_string().contains("AccessDenied"), "{err}");
    }

    #[tokio::test]
    async fn pages_are_followed_and_the_newest_datapoint_wins_across_them() {
        // Page 1: PartialData with the older datapoints; page 2: the newer ones.
        let t = now_secs() / 60 * 60 - 60;
        let page1 = mock!(Client::get_metric_data)
            .match_requests(|r| r.next_token().is_none())
            .then_compute_output(move |r| {
                let mut out = GetMetricDataOutput::builder().next_token("page-2");
                for id in ids(r) {
                    out = out.metric_data_results(
                        MetricDataResult::builder()
                            .id(&id)
                            .status_code(StatusCode::PartialData)
                            .timestamps(DateTime::from_secs(t - 120))
                            .values(50.0)
                            .build(),
                    );
                }
                out.build()
            });
        let page2 = mock!(Client::get_metric_data)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_compute_output(move |r| answer(ids(r), |_| vec![(t, 60.0)]));
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&page1, &page2]);
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(3, false));
        let disks = source.read_disks().await.unwrap();
        assert_eq!((page1.num_calls(), page2.num_calls()), (1, 1));
        assert!(
            disks
                .iter()
                .all(|d| (d.used_percent() - 60.0).abs() < 1e-6
                    && d.sampled_at == Timestamp(t * 1000)),
            "{disks:?}"
        );
    }

    #[tokio::test]
    async fn old_datapoints_keep_their_age_so_the_engine_sees_them_stale() {
        // Twelve minutes old: inside the lookback, older than the policy's 5m maximum disk age.
        let t = now_secs() - 12 * 60;
        let rule = mock!(Client::get_metric_data)
            .then_compute_output(move |r| answer(ids(r), |_| vec![(t, 42.0)]));
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(2, false));
        let disks = source.read_disks().await.unwrap();
        assert!(disks.iter().all(|d| d.sampled_at == Timestamp(t * 1000)));
        let policy = crate::policy::Policy::default();
        let now = crate::clock::wall_now();
        let age = now.since(disks[0].sampled_at);
        assert!(age > policy.staleness.max_disk_age, "{age}");
    }

    #[tokio::test]
    async fn copy_lag_not_published_is_said_and_not_asked_for() {
        let rule = mock!(Client::get_metric_data)
            .match_requests(|r| {
                r.metric_data_queries()
                    .iter()
                    .all(|q| q.id().unwrap().starts_with("disk_"))
            })
            .then_compute_output(|r| answer(ids(r), healthy));
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(3, false));
        assert_eq!(source.read_disks().await.unwrap().len(), 3);
        let err = source.read_copy_lag().await.unwrap_err();
        assert!(
            err.to_string().contains("monitoring level DEFAULT"),
            "{err}"
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn forbidden_series_are_reported_with_cloudwatch_s_message() {
        let rule = mock!(Client::get_metric_data).then_compute_output(|r| {
            let mut out = GetMetricDataOutput::builder();
            for id in ids(r) {
                let mut res = MetricDataResult::builder().id(&id);
                if id == "disk_2" {
                    res = res.status_code(StatusCode::Forbidden).messages(
                        MessageData::builder()
                            .code("Forbidden")
                            .value("no access to this metric")
                            .build(),
                    );
                } else {
                    res = res.status_code(StatusCode::Complete);
                    for (t, v) in healthy(&id) {
                        res = res.timestamps(DateTime::from_secs(t)).values(v);
                    }
                }
                out = out.metric_data_results(res.build());
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&rule]);
        let source = CloudWatchSource::new(client, CloudWatchConfig::default(), target(3, true));
        let err = source.read_disks().await.unwrap_err().to_string();
        assert!(
            err.contains("2 (Forbidden (no access to this metric))"),
            "{err}"
        );
    }
}
