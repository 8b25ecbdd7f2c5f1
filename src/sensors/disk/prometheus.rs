//! Disk use from Prometheus (MSK Open Monitoring's node exporter on port 11002, or any
//! Prometheus-compatible store): two instant queries, one for used bytes and one for the volume size,
//! mapped to brokers by a label. Each reading carries the sample's own timestamp, so a target that
//! stops reporting goes stale (Prometheus marks its series stale and the query returns nothing for
//! it) instead of being read as zero.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sensors::{
    BrokerCopyLag, BrokerDisk, CopyLagSensor, DiskSensor, DiskSource, Readings, SensorError,
};
use crate::units::Timestamp;

/// Configuration of the Prometheus disk source (`[cluster.disk] kind = "prometheus"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus:9090`.
    pub url: String,
    /// PromQL giving used bytes of each broker's log volume, e.g.
    /// `node_filesystem_size_bytes{mountpoint="/kafka"} - node_filesystem_avail_bytes{mountpoint="/kafka"}`.
    pub used_bytes_query: String,
    /// PromQL giving the size of each broker's log volume, e.g.
    /// `node_filesystem_size_bytes{mountpoint="/kafka"}`.
    pub capacity_bytes_query: String,
    /// The label that tells brokers apart (e.g. `instance`).
    pub broker_label: String,
    /// Label value to broker id; without it the label value itself must be the broker id.
    #[serde(default)]
    pub brokers: BTreeMap<String, i32>,
    /// How often Prometheus scrapes the exporter. Default 1m.
    #[serde(default = "default_scrape_interval")]
    pub scrape_interval: crate::units::Dur,
    /// How long after a scrape the sample is queryable (remote write, federation). Default 0s.
    #[serde(default)]
    pub delay: crate::units::Dur,
}

fn default_scrape_interval() -> crate::units::Dur {
    crate::units::Dur(60_000)
}

/// Reads disk use from Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusDiskSource {
    config: PrometheusConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<AnswerData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct AnswerData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

impl PrometheusDiskSource {
    /// A source for `config`, each query answering within `timeout`.
    pub fn new(config: PrometheusConfig, timeout: Duration) -> PrometheusDiskSource {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        PrometheusDiskSource { config, http }
    }

    /// Broker id -> (value, sample time) for an instant query.
    async fn query(&self, promql: &str) -> Result<BTreeMap<i32, (f64, Timestamp)>, SensorError> {
        let unavailable = |reason: String| SensorError::Unavailable {
            sensor: crate::sensors::SensorKind::Disk,
            reason: format!("prometheus {}: {reason}", self.config.url),
        };
        let url = format!("{}/api/v1/query", self.config.url.trim_end_matches('/'));
        let resp = self
            .http
            .get(&url)
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = resp.status();
        let answer: Answer = resp
            .json()
            .await
            .map_err(|e| unavailable(format!("HTTP {status}, not a query answer: {e}")))?;
        if answer.status != "success" {
            return Err(unavailable(answer.error.unwrap_or(answer.status)));
        }
        let data = answer
            .data
            .ok_or_else(|| unavailable("no data in the answer".into()))?;
        if data.result_type != "vector" {
            return Err(unavailable(format!(
                "the query must give an instant vector, not a {}",
                data.result_type
            )));
        }
        let out =
            readings(&self.config, data.result, crate::clock::wall_now()).map_err(unavailable)?;
        if out.is_empty() {
            return Err(SensorError::NoData {
                sensor: crate::sensors::SensorKind::Disk,
                reason: format!(
                    "prometheus {}: no series with label {:?} for {promql}",
                    self.config.url, self.config.broker_label
                ),
            });
        }
        Ok(out)
    }
}

/// Broker id -> (value, sample time) of `samples` read at `now`: series without the broker
/// label, or whose label is neither mapped nor a broker id, are skipped; a value that is not a
/// finite, non-negative number, or a sample dated more than [`FUTURE_SKEW_SECS`] after `now`,
/// fails the whole read (a fault, never 0%).
fn readings(
    config: &PrometheusConfig,
    samples: Vec<Sample>,
    now: Timestamp,
) -> Result<BTreeMap<i32, (f64, Timestamp)>, String> {
    let mut out = BTreeMap::new();
    for s in samples {
        let Some(label) = s.metric.get(&config.broker_label) else {
            continue;
        };
        let broker = match config.brokers.get(label) {
            Some(id) => *id,
            None => match label.parse::<i32>() {
                Ok(id) => id,
                Err(_) => continue,
            },
        };
        let value: f64 = s
            .value
            .1
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                format!(
                    "broker {broker}: {:?} is not a number of bytes (NaN, infinite and negative values are faults, never 0%)",
                    s.value.1
                )
            })?;
        let at = Timestamp((s.value.0 * 1000.0) as i64);
        if at > now + crate::units::Dur::from_secs(FUTURE_SKEW_SECS) {
            return Err(format!(
                "broker {broker}: the sample is dated in the future ({at}): a clock is wrong, and a reading from the future would never go stale"
            ));
        }
        out.insert(broker, (value, at));
    }
    Ok(out)
}

/// How far in the future a sample may be dated (clock skew) before it counts as a fault.
pub const FUTURE_SKEW_SECS: u64 = 60;

impl DiskSensor for PrometheusDiskSource {
    async fn read_disks(&self) -> Result<Vec<BrokerDisk>, SensorError> {
        let (used, capacity) = tokio::join!(
            self.query(&self.config.used_bytes_query),
            self.query(&self.config.capacity_bytes_query)
        );
        let (used, capacity) = (used?, capacity?);
        Ok(used
            .into_iter()
            .filter_map(|(broker, (used, at))| {
                let (capacity, _) = capacity.get(&broker)?;
                Some(BrokerDisk {
                    broker,
                    used_bytes: used.max(0.0) as u64,
                    capacity_bytes: capacity.max(0.0) as u64,
                    sampled_at: at,
                    source: DiskSource::Prometheus,
                })
            })
            .collect())
    }
}

impl CopyLagSensor for PrometheusDiskSource {
    /// Always fails as a whole: this source has no copy-lag query, so no broker ever has a copy-lag
    /// reading from it, and certainly not a 0.
    async fn read_copy_lag(&self) -> Result<Readings<BrokerCopyLag>, SensorError> {
        Err(SensorError::NoData { sensor: crate::sensors::SensorKind::CopyLag, reason: "the Prometheus source reads disk use only; without copy lag the controller never lowers retention".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PrometheusConfig {
        PrometheusConfig {
            url: "http://prometheus:9090".into(),
            used_bytes_query: "used".into(),
            capacity_bytes_query: "size".into(),
            broker_label: "instance".into(),
            brokers: BTreeMap::from([("b-1:11002".to_string(), 1)]),
            scrape_interval: crate::units::Dur(60_000),
            delay: crate::units::Dur(0),
        }
    }

    /// One sample of `instance` with `value`, dated `at_secs`.
    fn sample(instance: &str, at_secs: f64, value: &str) -> Sample {
        Sample {
            metric: BTreeMap::from([("instance".to_string(), instance.to_string())]),
            value: (at_secs, value.into()),
        }
    }

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    #[test]
    fn samples_map_to_brokers_by_label_and_keep_their_own_time() {
        let got = readings(
            &config(),
            vec![
                sample("b-1:11002", 1_799_999_990.5, "1000"),
                sample("2", 1_799_999_980.0, "2.5e3"),
                sample("unmapped-host", 1_799_999_990.0, "7"),
            ],
            NOW,
        )
        .unwrap();
        assert_eq!(
            got,
            BTreeMap::from([
                (1, (1000.0, Timestamp(1_799_999_990_500))),
                (2, (2500.0, Timestamp(1_799_999_980_000))),
            ])
        );
    }

    #[test]
    fn nan_infinite_and_negative_bytes_are_faults_never_zero() {
        for bad in ["NaN", "+Inf", "-Inf", "-1", "", "12 bytes"] {
            let e = readings(&config(), vec![sample("2", 1_799_999_990.0, bad)], NOW).unwrap_err();
            assert!(e.contains("is not a number of bytes"), "{bad:?}: {e}");
            assert!(e.contains("broker 2"), "{e}");
        }
    }

    #[test]
    fn a_sample_from_the_future_is_a_fault_beyond_the_allowed_skew() {
        let skew = FUTURE_SKEW_SECS as f64;
        let now = NOW.0 as f64 / 1000.0;
        let ok = readings(&config(), vec![sample("2", now + skew, "1")], NOW);
        assert!(ok.is_ok(), "{ok:?}");
        let e = readings(&config(), vec![sample("2", now + skew + 1.0, "1")], NOW).unwrap_err();
        assert!(e.contains("dated in the future"), "{e}");
    }
}
