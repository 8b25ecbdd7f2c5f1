//! Policy validation: the range and cross-field checks run on every policy loaded, each problem
//! reported against its field.

use std::collections::BTreeSet;

use super::config::{
    DiskPolicy, ForecastPolicy, GroupPolicy, InputPolicy, Policy, RateUnit, RetentionPolicy,
    StalenessPolicy, ThrottlePolicy,
};
use crate::config_file::{Problem, Problems};
use crate::units::Dur;

impl Policy {
    /// Cross-field and range checks; every problem is added to `p`.
    pub fn validate(&self, p: &mut Problems) {
        check_disk(&self.disk, p);
        check_forecast(&self.forecast, p);
        check_throttle(&self.throttle, p);
        p.check(
            self.drain.lag_threshold >= 0,
            "drain.lag_threshold",
            self.drain.lag_threshold,
            "must not be negative",
        );
        check_retention(&self.retention, p);
        check_staleness(&self.staleness, p);
        check_input(&self.input, &self.managed_topics(), p);
        check_groups(&self.groups, p);
    }
}

/// The disk thresholds: percentages, ordered `restore_below <= target < throttle_start < pause < ceiling`.
fn check_disk(d: &DiskPolicy, p: &mut Problems) {
    for (name, v) in [
        ("disk.ceiling_percent", d.ceiling_percent),
        ("disk.pause_percent", d.pause_percent),
        ("disk.throttle_start_percent", d.throttle_start_percent),
        ("disk.target_percent", d.target_percent),
        ("disk.restore_below_percent", d.restore_below_percent),
    ] {
        p.percent(name, v);
    }
    p.check(
        d.pause_percent < d.ceiling_percent,
        "disk.pause_percent",
        d.pause_percent,
        format!(
            "must be below disk.ceiling_percent ({}) so consumers pause before the ceiling",
            d.ceiling_percent
        ),
    );
    p.check(
        d.throttle_start_percent < d.pause_percent,
        "disk.throttle_start_percent",
        d.throttle_start_percent,
        format!("must be below disk.pause_percent ({})", d.pause_percent),
    );
    p.check(
        d.target_percent < d.throttle_start_percent,
        "disk.target_percent",
        d.target_percent,
        format!(
            "must be below disk.throttle_start_percent ({})",
            d.throttle_start_percent
        ),
    );
    p.check(
        d.restore_below_percent <= d.target_percent,
        "disk.restore_below_percent",
        d.restore_below_percent,
        format!(
            "must be at most disk.target_percent ({}) so restoring cannot re-trigger lowering",
            d.target_percent
        ),
    );
}

/// The forecast window, sample count, horizon and lead.
fn check_forecast(f: &ForecastPolicy, p: &mut Problems) {
    p.check(
        f.window >= Dur::from_mins(2),
        "forecast.window",
        f.window,
        "must be at least 2m (two 1-minute datapoints)",
    );
    p.check(
        f.min_samples >= 2,
        "forecast.min_samples",
        f.min_samples,
        "must be at least 2 to fit a trend",
    );
    p.check(
        f.throttle_horizon.0 > 0,
        "forecast.throttle_horizon",
        f.throttle_horizon,
        "must be positive, e.g. \"15m\"",
    );
    p.check(
        f.pause_lead.0 > 0,
        "forecast.pause_lead",
        f.pause_lead,
        "must be positive, e.g. \"5m\"",
    );
    p.check(
        (1.0..=1000.0).contains(&f.blind_growth_percent_per_hour),
        "forecast.blind_growth_percent_per_hour",
        f.blind_growth_percent_per_hour,
        "must be between 1 and 1000 (percent per hour at full catch-up speed)",
    );
}

/// The throttle's fractions and durations.
fn check_throttle(t: &ThrottlePolicy, p: &mut Problems) {
    p.check(
        t.increase_per_minute > 0.0 && t.increase_per_minute <= 1.0,
        "throttle.increase_per_minute",
        t.increase_per_minute,
        "must be in (0, 1]: the share of the reference rate given back per minute",
    );
    p.check(
        t.min_fraction > 0.0 && t.min_fraction < 1.0,
        "throttle.min_fraction",
        t.min_fraction,
        "must be in (0, 1): a throttled group keeps at least this share of its reference rate",
    );
    p.check(
        t.burst.0 > 0,
        "throttle.burst",
        t.burst,
        "must be positive, e.g. \"1s\"",
    );
    p.check(
        (Dur::from_secs(1)..=Dur::from_hours(168)).contains(&t.max_live_lag),
        "throttle.max_live_lag",
        t.max_live_lag,
        "must be between 1s and 7d",
    );
    p.check(
        t.fallback_ramp >= Dur::from_secs(10),
        "throttle.fallback_ramp",
        t.fallback_ramp,
        "must be at least 10s",
    );
    p.check(
        t.decision_ttl >= Dur::from_secs(10),
        "throttle.decision_ttl",
        t.decision_ttl,
        "must be at least 10s, and longer than the control tick",
    );
}

/// Retention steps and intervals, and the managed topics: valid names, each listed once, floors.
fn check_retention(r: &RetentionPolicy, p: &mut Problems) {
    p.check(
        r.floor >= Dur::from_mins(1),
        "retention.floor",
        r.floor,
        "must be at least 1m",
    );
    p.check(
        r.step_factor > 0.0 && r.step_factor < 1.0,
        "retention.step_factor",
        r.step_factor,
        "must be in (0, 1), e.g. 0.5 to halve local retention per step",
    );
    p.check(
        r.step_interval >= Dur::from_mins(1),
        "retention.step_interval",
        r.step_interval,
        "must be at least 1m",
    );
    p.check(
        r.restore_step_interval >= Dur::from_mins(1),
        "retention.restore_step_interval",
        r.restore_step_interval,
        "must be at least 1m",
    );
    p.check(
        r.lead_time.0 > 0,
        "retention.lead_time",
        r.lead_time,
        "must be positive, e.g. \"2h\"",
    );
    let mut seen = BTreeSet::new();
    for (i, topic) in r.topics.iter().enumerate() {
        let path = format!("retention.topics[{i}].name");
        if let Err(why) = check_topic_name(&topic.name) {
            p.add(&path, format!("{:?}", topic.name), why);
        }
        p.check(
            !topic.name.starts_with(CATCHUP_TOPIC_PREFIX),
            &path,
            format!("{:?}", topic.name),
            format!("topics starting with {CATCHUP_TOPIC_PREFIX:?} are catchup's own (HA coordination and state); they are never managed"),
        );
        p.check(
            seen.insert(&topic.name),
            &path,
            format!("{:?}", topic.name),
            "listed twice; keep one entry",
        );
        if let Some(floor) = topic.floor {
            p.check(
                floor >= Dur::from_mins(1),
                format!("retention.topics[{i}].floor"),
                floor,
                "must be at least 1m",
            );
        }
    }
}

/// The maximum reading ages.
fn check_staleness(s: &StalenessPolicy, p: &mut Problems) {
    for (name, v) in [
        ("staleness.max_disk_age", s.max_disk_age),
        ("staleness.max_copy_lag_age", s.max_copy_lag_age),
        ("staleness.max_lag_age", s.max_lag_age),
        ("staleness.max_config_age", s.max_config_age),
    ] {
        p.check(v >= Dur::from_secs(10), name, v, "must be at least 10s");
    }
}

/// The catch-up groups: named, each listed once, sensible rates and thresholds.
fn check_groups(groups: &[GroupPolicy], p: &mut Problems) {
    let mut names = BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        let at = |field: &str| format!("groups[{i}].{field}");
        p.check(
            !g.name.trim().is_empty(),
            at("name"),
            "\"\"",
            "a consumer group id is required",
        );
        p.check(
            names.insert(&g.name),
            at("name"),
            format!("{:?}", g.name),
            "listed twice; keep one entry",
        );
        for (field, v) in [("max_rate", g.max_rate), ("min_rate", g.min_rate)] {
            if let Some(v) = v {
                p.check(
                    v.is_finite() && v > 0.0,
                    at(field),
                    v,
                    "must be a positive rate",
                );
            }
        }
        if let (Some(min), Some(max)) = (g.min_rate, g.max_rate) {
            p.check(
                min <= max,
                at("min_rate"),
                min,
                format!("must not exceed max_rate ({max})"),
            );
        }
        if g.unit == RateUnit::Bytes {
            p.check(
                g.max_rate.is_some() && g.min_rate.is_some(),
                at("unit"),
                "\"bytes\"",
                "a bytes/s gate needs max_rate and min_rate: offsets cannot measure a byte rate",
            );
        }
        if let Some(th) = g.lag_threshold {
            p.check(th >= 0, at("lag_threshold"), th, "must not be negative");
        }
    }
}

/// Every topic catchup itself owns (the HA coordination and state topics) starts with this; the
/// policy may not name one as managed, and the retention guard refuses one whatever it is told.
pub const CATCHUP_TOPIC_PREFIX: &str = "__catchup-";

/// Kafka's topic-name rule: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err("a Kafka topic name has 1 to 249 characters".into());
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are not valid topic names".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed in a Kafka topic name (letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

/// The input margin and the extension allow-list: named once each, a cap of at least an hour.
fn check_input(i: &InputPolicy, managed: &[String], p: &mut Problems) {
    p.check(
        i.margin >= Dur::from_mins(1),
        "input.margin",
        i.margin,
        "must be at least 1m: the deadline alert must fire before records expire",
    );
    let mut seen = BTreeSet::new();
    for (n, e) in i.extend.iter().enumerate() {
        let field = format!("input.extend[{n}]");
        p.check(
            !e.topic.trim().is_empty(),
            format!("{field}.topic"),
            &e.topic,
            "must name a topic",
        );
        p.check(
            seen.insert(e.topic.as_str()),
            format!("{field}.topic"),
            &e.topic,
            "is named twice",
        );
        p.check(
            !managed.contains(&e.topic),
            format!("{field}.topic"),
            &e.topic,
            "is also a managed topic ([[retention.topics]]): an output whose local retention catchup lowers is not an input whose total retention it raises; name it in one place",
        );
        p.check(
            e.max_retention >= Dur::from_hours(1),
            format!("{field}.max_retention"),
            e.max_retention,
            "must be at least 1h (retention.ms is only ever raised, up to this cap)",
        );
    }
}

/// How old a disk source's newest sample can be just before the next one arrives, as the source
/// states it (its period and delay), with the fields that set it.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskFreshness {
    /// The worst age.
    pub worst_age: Dur,
    /// How that follows from the source's fields, e.g. `cluster.disk.period = 1m and
    /// cluster.disk.delay = 10m: ...`.
    pub because: String,
    /// What to lower instead of raising `max_disk_age`, naming the fields.
    pub or_lower: String,
}

impl DiskFreshness {
    /// A source that stamps each datapoint with the start of its `period` and shows it `delay`
    /// after the period ends (CloudWatch, the simulator), reread every `refresh` at most.
    pub fn period_start(
        period: (&str, Dur),
        delay: (&str, Dur),
        refresh: Option<(&str, Dur)>,
    ) -> DiskFreshness {
        let extra = refresh.map_or(Dur(0), |r| r.1);
        let worst = Dur(2 * period.1.0 + delay.1.0 + extra.0);
        let (pf, df) = (period.0, delay.0);
        let because = match refresh {
            Some((rf, r)) => format!(
                "{pf} = {} with {df} = {} and {rf} = {r}: a datapoint is stamped with the start of its period and read after the period ends, the delay passes and the cached answer expires, so the newest is up to 2 × period + delay + refresh = {worst} old",
                period.1, delay.1
            ),
            None => format!(
                "{pf} = {} with {df} = {}: a datapoint is stamped with the start of its period and seen only once the period has ended and the delay passed, so the newest is up to 2 × period + delay = {worst} old",
                period.1, delay.1
            ),
        };
        DiskFreshness {
            worst_age: worst,
            because,
            or_lower: format!("lower {pf} or {df}"),
        }
    }

    /// A source whose samples are stamped when taken, one every `period`, readable `delay` later
    /// (Prometheus scrapes, a file rewritten periodically).
    pub fn sample_time(period: (&str, Dur), delay: (&str, Dur)) -> DiskFreshness {
        let worst = Dur(period.1.0 + delay.1.0);
        let (pf, df) = (period.0, delay.0);
        DiskFreshness {
            worst_age: worst,
            because: format!(
                "{pf} = {} with {df} = {}: the newest sample is up to period + delay = {worst} old",
                period.1, delay.1
            ),
            or_lower: format!("lower {pf} or {df}"),
        }
    }
}

/// Refuses a policy whose `staleness.max_disk_age` the disk source cannot meet: every reading
/// would be stale at times or always, and the throttle would run blind on fresh data.
pub fn check_disk_age(policy: &Policy, source: &DiskFreshness) -> Option<Problem> {
    let max = policy.staleness.max_disk_age;
    (source.worst_age > max).then(|| {
        Problem::field(
            "staleness.max_disk_age",
            max,
            format!(
                "cannot be met by the disk source: {}; raise staleness.max_disk_age to at least {} or {}",
                source.because, source.worst_age, source.or_lower
            ),
        )
    })
}
