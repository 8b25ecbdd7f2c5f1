//! Prometheus metrics (`/metrics`), prefix `catchup_`. Labels are bounded: group, topic, broker,
//! sensor, kind and outcome; never partition.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::policy::Decision;
use crate::sensors::Limitation;
use crate::sensors::Observation;

/// Label set with one group.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    /// Consumer group.
    pub group: String,
}

/// Label set with a group and a gate state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateStateLabel {
    /// Consumer group.
    pub group: String,
    /// `open`, `throttled` or `paused`.
    pub state: String,
}

/// Label set with one broker.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabel {
    /// Broker id.
    pub broker: String,
}

/// Label set with a topic and which value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetentionLabel {
    /// Topic.
    pub topic: String,
    /// `current` or `original`.
    pub value: String,
}

/// Label set of an action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// `gate`, `retention`, `override`, `mode`, `restore`.
    pub kind: String,
    /// `applied`, `dry_run`, `refused`, `failed`.
    pub outcome: String,
}

/// Label set with one sensor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SensorLabel {
    /// `disk`, `copy_lag`, `lag`, `topic_configs`.
    pub sensor: String,
}

/// Label set with one action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DisabledLabel {
    /// `lower_retention`, `restore_retention`, `raise_rate`, `throttle_on_disk`, `all`.
    pub action: String,
}

/// Label set with one alert code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    /// Alert code.
    pub code: String,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    /// Total lag per group, records.
    pub lag: Family<GroupLabel, Gauge<f64, AtomicU64>>,
    /// Disk use per broker, percent (the newest sample).
    pub disk: Family<BrokerLabel, Gauge<f64, AtomicU64>>,
    /// Age of the newest disk sample per broker, seconds.
    pub disk_age: Family<BrokerLabel, Gauge<f64, AtomicU64>>,
    /// Forecast time to the ceiling per broker, seconds (absent when not rising).
    pub time_to_ceiling: Family<BrokerLabel, Gauge<f64, AtomicU64>>,
    /// 1 for the gate's current state per group, 0 for the others.
    pub gate_state: Family<GateStateLabel, Gauge>,
    /// Gate rate per group (this instance's share), per second; 0 when open or paused.
    pub gate_rate: Family<GroupLabel, Gauge<f64, AtomicU64>>,
    /// Permits granted per group.
    pub permits_granted: Family<GroupLabel, Counter>,
    /// Permits denied per group.
    pub permits_denied: Family<GroupLabel, Counter>,
    /// Local retention per managed topic, ms: `current` and `original`.
    pub local_retention: Family<RetentionLabel, Gauge>,
    /// Actions by kind and outcome.
    pub actions: Family<ActionLabel, Counter>,
    /// Failed sensor reads.
    pub sensor_errors: Family<SensorLabel, Counter>,
    /// Age of each sensor's newest reading, seconds.
    pub sensor_age: Family<SensorLabel, Gauge<f64, AtomicU64>>,
    /// 1 when a sensor's last read succeeded, 0 when it failed (the reason is in `/v1/status`).
    pub sensor_up: Family<SensorLabel, Gauge>,
    /// Number of limitations disabling an action (0 when it is allowed).
    pub action_disabled: Family<DisabledLabel, Gauge>,
    /// Active alerts by code (count this tick).
    pub alerts: Family<AlertLabel, Gauge>,
    /// Duration of control ticks.
    pub tick_duration: Histogram,
    /// 1 once a tick with fresh disk and lag data completed.
    pub ready: Gauge,
    /// 1 for the current mode (`active`, `dry-run`, `observe`).
    pub mode: Family<Vec<(String, String)>, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Every alert code the engine and the runtime raise: exported as 0 when not raised, so alert rules
/// can tell "not raised" from "not exported". A test keeps the list complete.
pub const ALERT_CODES: [&str; 13] = [
    "disk_above_ceiling",
    "disk_no_data",
    "disk_stale",
    "drift_detected",
    "gate_share_fallback",
    "groups_paused",
    "lag_missing",
    "lag_stale",
    "override_conflict",
    "retention_at_floor",
    "retention_blocked",
    "topic_config_stale",
    "topic_not_tiered",
];

/// The sensors, each exported from the start.
const SENSORS: [&str; 4] = ["disk", "copy_lag", "lag", "topic_configs"];

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("catchup");
        let m = Metrics {
            lag: Family::default(),
            disk: Family::default(),
            disk_age: Family::default(),
            time_to_ceiling: Family::default(),
            gate_state: Family::default(),
            gate_rate: Family::default(),
            permits_granted: Family::default(),
            permits_denied: Family::default(),
            local_retention: Family::default(),
            actions: Family::default(),
            sensor_errors: Family::default(),
            sensor_age: Family::default(),
            sensor_up: Family::default(),
            action_disabled: Family::default(),
            alerts: Family::default(),
            tick_duration: Histogram::new([
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0,
            ]),
            ready: Gauge::default(),
            mode: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "group_lag_records",
            "Total lag of a catch-up group in records",
            m.lag.clone(),
        );
        registry.register(
            "broker_disk_used_percent",
            "Newest disk-use sample of a broker's log volume",
            m.disk.clone(),
        );
        registry.register(
            "broker_disk_sample_age_seconds",
            "Age of a broker's newest disk sample",
            m.disk_age.clone(),
        );
        registry.register(
            "broker_disk_time_to_ceiling_seconds",
            "Forecast time until a broker reaches the ceiling",
            m.time_to_ceiling.clone(),
        );
        registry.register(
            "gate_state",
            "1 for a catch-up group's current gate state",
            m.gate_state.clone(),
        );
        registry.register(
            "gate_rate",
            "Gate rate of a catch-up group for this instance, per second (0 when open or paused)",
            m.gate_rate.clone(),
        );
        registry.register(
            "gate_permits_granted",
            "Permits granted by a group's gate",
            m.permits_granted.clone(),
        );
        registry.register(
            "gate_permits_denied",
            "Permits denied by a group's gate",
            m.permits_denied.clone(),
        );
        registry.register(
            "topic_local_retention_ms",
            "local.retention.ms of a managed topic, current and original",
            m.local_retention.clone(),
        );
        registry.register("actions", "Actions by kind and outcome", m.actions.clone());
        registry.register(
            "sensor_errors",
            "Failed sensor reads",
            m.sensor_errors.clone(),
        );
        registry.register(
            "sensor_data_age_seconds",
            "Age of a sensor's newest reading",
            m.sensor_age.clone(),
        );
        registry.register(
            "sensor_up",
            "1 when a sensor's last read succeeded, 0 when it failed",
            m.sensor_up.clone(),
        );
        registry.register(
            "action_disabled",
            "Limitations disabling an action (see /v1/status limitations)",
            m.action_disabled.clone(),
        );
        registry.register(
            "alerts",
            "Alerts raised by the last tick, by code",
            m.alerts.clone(),
        );
        registry.register(
            "tick_duration_seconds",
            "Duration of a control tick",
            m.tick_duration.clone(),
        );
        registry.register(
            "ready",
            "1 once a tick with fresh disk and lag data completed",
            m.ready.clone(),
        );
        registry.register(
            "mode",
            "1 for the controller's current mode",
            m.mode.clone(),
        );
        for code in ALERT_CODES {
            m.alerts
                .get_or_create(&AlertLabel { code: code.into() })
                .set(0);
        }
        for sensor in SENSORS {
            let label = SensorLabel {
                sensor: sensor.into(),
            };
            let _ = m.sensor_errors.get_or_create(&label);
        }
        Metrics { registry, ..m }
    }

    /// Counts an action.
    pub fn action(&self, kind: &str, outcome: &str) {
        self.actions
            .get_or_create(&ActionLabel {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Updates the gauges from a tick's observation and decision.
    pub fn observe_tick(&self, obs: &Observation, decision: &Decision) {
        for g in &obs.groups {
            if let Some(lag) = g.total_lag() {
                self.lag
                    .get_or_create(&GroupLabel {
                        group: g.group.clone(),
                    })
                    .set(lag as f64);
            }
        }
        for b in &decision.brokers {
            let label = BrokerLabel {
                broker: b.broker.to_string(),
            };
            self.disk.get_or_create(&label).set(b.sampled_percent);
            self.disk_age.get_or_create(&label).set(b.age_secs);
            match b.time_to_ceiling_secs {
                Some(t) => {
                    self.time_to_ceiling.get_or_create(&label).set(t);
                }
                None => {
                    self.time_to_ceiling.remove(&label);
                }
            }
        }
        for (topic, t) in &decision.topics {
            for (value, v) in [("current", t.current_ms), ("original", t.original_ms)] {
                if let Some(ms) = v {
                    self.local_retention
                        .get_or_create(&RetentionLabel {
                            topic: topic.clone(),
                            value: value.into(),
                        })
                        .set(ms);
                }
            }
        }
        for code in ALERT_CODES {
            self.alerts
                .get_or_create(&AlertLabel { code: code.into() })
                .set(0);
        }
        for a in &decision.alerts {
            self.alerts
                .get_or_create(&AlertLabel {
                    code: a.code.clone(),
                })
                .inc();
        }
        let newest = |ages: Vec<f64>| ages.into_iter().fold(f64::NAN, f64::min);
        let now = decision.at;
        let age = |t: crate::units::Timestamp| now.since(t).secs_f64();
        for (sensor, value) in [
            (
                "disk",
                newest(obs.disks.iter().map(|d| age(d.sampled_at)).collect()),
            ),
            (
                "copy_lag",
                newest(obs.copy_lag.iter().map(|d| age(d.sampled_at)).collect()),
            ),
            (
                "lag",
                newest(obs.groups.iter().map(|d| age(d.sampled_at)).collect()),
            ),
            (
                "topic_configs",
                newest(obs.topics.iter().map(|d| age(d.sampled_at)).collect()),
            ),
        ] {
            if value.is_finite() {
                self.sensor_age
                    .get_or_create(&SensorLabel {
                        sensor: sensor.into(),
                    })
                    .set(value);
            }
        }
    }

    /// Sets `sensor_up` from a tick's failures and `action_disabled` from its limitations.
    pub fn limitations(&self, faults: &[crate::sensors::SensorFault], limits: &[Limitation]) {
        for sensor in SENSORS {
            let up = !faults.iter().any(|f| f.sensor == sensor);
            self.sensor_up
                .get_or_create(&SensorLabel {
                    sensor: sensor.into(),
                })
                .set(i64::from(up));
        }
        for action in [
            "lower_retention",
            "restore_retention",
            "raise_rate",
            "throttle_on_disk",
            "all",
        ] {
            let n = limits
                .iter()
                .filter(|l| l.disables.iter().any(|d| d == action))
                .count();
            self.action_disabled
                .get_or_create(&DisabledLabel {
                    action: action.into(),
                })
                .set(n as i64);
        }
    }

    /// Sets a group's gate gauges.
    pub fn gate(&self, group: &str, state: &str, rate: Option<f64>) {
        for s in ["open", "throttled", "paused"] {
            self.gate_state
                .get_or_create(&GateStateLabel {
                    group: group.into(),
                    state: s.into(),
                })
                .set(i64::from(s == state));
        }
        self.gate_rate
            .get_or_create(&GroupLabel {
                group: group.into(),
            })
            .set(rate.unwrap_or(0.0));
    }

    /// Brings the permit counters up to the gate board's totals.
    pub fn permits(&self, counters: &[(String, u64, u64)]) {
        for (group, granted, denied) in counters {
            let label = GroupLabel {
                group: group.clone(),
            };
            for (family, total) in [
                (&self.permits_granted, *granted),
                (&self.permits_denied, *denied),
            ] {
                let c = family.get_or_create(&label);
                let seen = c.get();
                if total > seen {
                    c.inc_by(total - seen);
                }
            }
        }
    }

    /// Sets the mode gauge.
    pub fn set_mode(&self, mode: &str) {
        for m in ["active", "dry-run", "observe"] {
            self.mode
                .get_or_create(&vec![("mode".to_string(), m.to_string())])
                .set(i64::from(m == mode));
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_code_raised_anywhere_is_exported_from_the_start() {
        let sources = [
            include_str!("policy/engine/mod.rs"),
            include_str!("policy/engine/disks.rs"),
            include_str!("policy/engine/drain.rs"),
            include_str!("policy/engine/throttle.rs"),
            include_str!("policy/engine/gates.rs"),
            include_str!("policy/engine/retention.rs"),
            include_str!("runtime/tick.rs"),
        ];
        let mut found = Vec::new();
        for src in sources {
            for (i, _) in src.match_indices("Severity::") {
                let rest = &src[i..];
                let Some(q) = rest.find('"') else { continue };
                // The code is the first string literal after the severity, on the same call.
                if rest[..q].contains(';') || rest[..q].len() > 60 {
                    continue;
                }
                let code: String = rest[q + 1..].chars().take_while(|c| *c != '"').collect();
                if code.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !code.is_empty() {
                    found.push(code);
                }
            }
        }
        found.sort();
        found.dedup();
        assert!(found.len() >= 12, "{found:?}");
        for code in &found {
            assert!(
                ALERT_CODES.contains(&code.as_str()),
                "{code} missing from ALERT_CODES"
            );
        }
        let text = Metrics::new().encode();
        assert!(
            text.contains("catchup_alerts{code=\"drift_detected\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("catchup_sensor_errors_total{sensor=\"disk\"} 0"),
            "{text}"
        );
    }
}
