//! Prometheus metrics (`/metrics`), prefix `catchup_`. Labels are bounded: group, topic, broker,
//! sensor, kind and outcome; partition only for the time lag of groups of at most
//! [`inputs::PARTITION_SERIES_MAX`] partitions ([`inputs`]).

pub mod ha;
pub mod inputs;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::Mode;
use crate::policy::{AlertCode, Decision, GateState};
use crate::sensors::{Limitation, Observation, SensorFault, SensorKind};
use crate::store::OutcomeKind;

/// A label value taken from one of the API's enums, so it is spelt exactly as the API spells it
/// and cannot be misspelt here.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Label<T>(pub T);

/// An enum whose values are metric label values.
pub trait LabelValue {
    /// The value as exported.
    fn label(&self) -> &'static str;
}

impl<T: LabelValue> EncodeLabelValue for Label<T> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.0.label())
    }
}

impl LabelValue for GateState {
    fn label(&self) -> &'static str {
        self.as_str()
    }
}

impl LabelValue for SensorKind {
    fn label(&self) -> &'static str {
        self.as_str()
    }
}

impl LabelValue for AlertCode {
    fn label(&self) -> &'static str {
        self.as_str()
    }
}

impl LabelValue for Mode {
    fn label(&self) -> &'static str {
        self.as_str()
    }
}

impl LabelValue for OutcomeKind {
    fn label(&self) -> &'static str {
        self.as_str()
    }
}

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
    pub state: Label<GateState>,
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
    pub outcome: Label<OutcomeKind>,
}

/// Label set with one sensor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SensorLabel {
    /// `disk`, `copy_lag`, `lag`, `topic_configs`.
    pub sensor: Label<SensorKind>,
}

/// Label set with one action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DisabledLabel {
    /// `lower_retention`, `restore_retention`, `raise_rate`, `throttle_on_disk`, `input_deadline`,
    /// `extend_retention`, `all`.
    pub action: String,
}

/// Label set with one mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    /// `active`, `dry-run` or `observe`.
    pub mode: Label<Mode>,
}

/// Label set with one alert code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    /// Alert code.
    pub code: Label<AlertCode>,
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
    /// The observer's estimate of disk use now per broker, percent.
    pub disk_estimate: Family<BrokerLabel, Gauge<f64, AtomicU64>>,
    /// The upper bound of that estimate per broker, percent (what the control law decides on).
    pub disk_upper: Family<BrokerLabel, Gauge<f64, AtomicU64>>,
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
    /// Failed sensor reads: one per tick for a sensor that failed as a whole, and one per topic,
    /// group or broker it could not read while it read the others (labelled by sensor only).
    pub sensor_errors: Family<SensorLabel, Counter>,
    /// Age of each sensor's newest reading, seconds.
    pub sensor_age: Family<SensorLabel, Gauge<f64, AtomicU64>>,
    /// 1 when a sensor as a whole answered its last read, 0 when it failed as a whole (the reason
    /// is in `/v1/status`). One topic, group or broker it could not read does not make it 0.
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
    pub mode: Family<ModeLabel, Gauge>,
    /// Time lag, input deadline and input records lost.
    pub inputs: inputs::InputMetrics,
    /// HA role, epoch, members and state-topic lag (only with `[ha]`).
    pub ha: ha::HaMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("catchup");
        let m = Metrics {
            lag: Family::default(),
            disk: Family::default(),
            disk_age: Family::default(),
            time_to_ceiling: Family::default(),
            disk_estimate: Family::default(),
            disk_upper: Family::default(),
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
            inputs: inputs::InputMetrics::default(),
            ha: ha::HaMetrics::default(),
            registry: Registry::default(),
        };
        m.inputs.register(&mut registry);
        m.ha.register(&mut registry);
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
            "broker_disk_estimate_percent",
            "The observer's estimate of a broker's disk use now",
            m.disk_estimate.clone(),
        );
        registry.register(
            "broker_disk_upper_percent",
            "Upper bound of a broker's disk use now (grows with the data's age; the control law decides on it)",
            m.disk_upper.clone(),
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
            "Failed sensor reads (a whole sensor, or one topic, group or broker of it)",
            m.sensor_errors.clone(),
        );
        registry.register(
            "sensor_data_age_seconds",
            "Age of a sensor's newest reading",
            m.sensor_age.clone(),
        );
        registry.register(
            "sensor_up",
            "1 when a sensor as a whole answered its last read, 0 when it failed as a whole",
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
        // Every alert code and sensor is exported from the start, so alert rules can tell "not
        // raised" from "not exported".
        for code in AlertCode::ALL {
            m.alerts
                .get_or_create(&AlertLabel { code: Label(code) })
                .set(0);
        }
        for sensor in SensorKind::TICK {
            let label = SensorLabel {
                sensor: Label(sensor),
            };
            let _ = m.sensor_errors.get_or_create(&label);
        }
        Metrics { registry, ..m }
    }

    /// Counts an action.
    pub fn action(&self, kind: &str, outcome: OutcomeKind) {
        self.actions
            .get_or_create(&ActionLabel {
                kind: kind.into(),
                outcome: Label(outcome),
            })
            .inc();
    }

    /// Updates the gauges from a tick's observation and decision.
    pub fn observe_tick(&self, obs: &Observation, decision: &Decision) {
        self.inputs.observe(obs, decision);
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
            let estimate = b.estimate_percent.unwrap_or(b.now_percent);
            self.disk_estimate.get_or_create(&label).set(estimate);
            self.disk_upper
                .get_or_create(&label)
                .set(b.upper_percent.unwrap_or(estimate));
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
        for code in AlertCode::ALL {
            self.alerts
                .get_or_create(&AlertLabel { code: Label(code) })
                .set(0);
        }
        for a in &decision.alerts {
            self.alerts
                .get_or_create(&AlertLabel {
                    code: Label(a.code),
                })
                .inc();
        }
        let newest = |ages: Vec<f64>| ages.into_iter().fold(f64::NAN, f64::min);
        let now = decision.at;
        let age = |t: crate::units::Timestamp| now.since(t).secs_f64();
        for (sensor, value) in [
            (
                SensorKind::Disk,
                newest(obs.disks.iter().map(|d| age(d.sampled_at)).collect()),
            ),
            (
                SensorKind::CopyLag,
                newest(obs.copy_lag.iter().map(|d| age(d.sampled_at)).collect()),
            ),
            (
                SensorKind::Lag,
                newest(obs.groups.iter().map(|d| age(d.sampled_at)).collect()),
            ),
            (
                SensorKind::TopicConfigs,
                newest(obs.topics.iter().map(|d| age(d.sampled_at)).collect()),
            ),
        ] {
            if value.is_finite() {
                self.sensor_age
                    .get_or_create(&SensorLabel {
                        sensor: Label(sensor),
                    })
                    .set(value);
            }
        }
    }

    /// Sets `sensor_up` from a tick's sensor-wide failures and `action_disabled` from its
    /// limitations.
    pub fn limitations(&self, faults: &[SensorFault], limits: &[Limitation]) {
        for sensor in SensorKind::TICK {
            let up = !faults.iter().any(|f| f.sensor == sensor && f.is_whole());
            self.sensor_up
                .get_or_create(&SensorLabel {
                    sensor: Label(sensor),
                })
                .set(i64::from(up));
        }
        for action in [
            "lower_retention",
            "restore_retention",
            "raise_rate",
            "throttle_on_disk",
            "input_deadline",
            "extend_retention",
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
    pub fn gate(&self, group: &str, state: GateState, rate: Option<f64>) {
        for s in GateState::ALL {
            self.gate_state
                .get_or_create(&GateStateLabel {
                    group: group.into(),
                    state: Label(s),
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
    pub fn set_mode(&self, mode: Mode) {
        for m in [Mode::Active, Mode::DryRun, Mode::Observe] {
            self.mode
                .get_or_create(&ModeLabel { mode: Label(m) })
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
    fn every_alert_code_and_sensor_is_exported_from_the_start() {
        let text = Metrics::new().encode();
        for code in AlertCode::ALL {
            assert!(
                text.contains(&format!("catchup_alerts{{code=\"{code}\"}} 0")),
                "{code}: {text}"
            );
        }
        assert!(
            text.contains("catchup_sensor_errors_total{sensor=\"disk\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn sensor_up_means_the_sensor_as_a_whole_answered() {
        let m = Metrics::new();
        m.limitations(
            &[
                SensorFault::item(SensorKind::TopicConfigs, "out-gone", "topic out-gone: gone"),
                SensorFault::whole(SensorKind::Disk, "CloudWatch unreachable"),
            ],
            &[],
        );
        let text = m.encode();
        for line in [
            "catchup_sensor_up{sensor=\"topic_configs\"} 1",
            "catchup_sensor_up{sensor=\"disk\"} 0",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        assert!(!text.contains("out-gone"), "no topic label: {text}");
    }

    #[test]
    fn label_values_are_spelt_as_the_api_spells_them() {
        let m = Metrics::new();
        m.set_mode(Mode::DryRun);
        m.action("gate", OutcomeKind::DryRun);
        m.gate("g", GateState::Throttled, Some(5.0));
        let text = m.encode();
        for line in [
            "catchup_mode{mode=\"dry-run\"} 1",
            "catchup_actions_total{kind=\"gate\",outcome=\"dry_run\"} 1",
            "catchup_gate_state{group=\"g\",state=\"throttled\"} 1",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }
}
