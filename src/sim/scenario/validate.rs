//! Scenario validation: every number finite and in its documented range, every cross-reference
//! resolved, every problem reported at once.

use std::collections::BTreeSet;

use super::{GroupSpec, MAX_BYTE_RATE, Scenario};
use crate::config_file::Problems;
use crate::policy::validate::check_topic_name;
use crate::units::Dur;

impl Scenario {
    /// Range and cross-reference checks. Every comparison is written so that NaN fails it (an
    /// infinite or NaN number is out of every range).
    pub fn validate(&self, p: &mut Problems) {
        p.check(
            self.duration >= Dur::from_mins(10) && self.duration <= Dur::from_hours(30 * 24),
            "duration",
            self.duration,
            "must be between 10m and 30d",
        );
        p.check(
            self.step >= Dur::from_secs(1) && self.step <= Dur::from_mins(1),
            "step",
            self.step,
            "must be between 1s and 1m",
        );
        p.check(
            self.tick >= self.step,
            "tick",
            self.tick,
            format!("must be at least the step ({})", self.step),
        );
        let c = &self.cluster;
        p.check(
            (1..=1000).contains(&c.brokers),
            "cluster.brokers",
            c.brokers,
            "must be between 1 and 1000",
        );
        p.check(
            c.disk_capacity.0 > 0,
            "cluster.disk_capacity",
            c.disk_capacity,
            "must be positive, e.g. \"2TiB\"",
        );
        p.check(
            c.static_used < c.disk_capacity,
            "cluster.static_used",
            c.static_used,
            "must be below disk_capacity",
        );
        p.check(
            c.upload_rate.0 > 0.0 && c.upload_rate.0 <= MAX_BYTE_RATE,
            "cluster.upload_rate",
            c.upload_rate.0,
            "must be positive and at most 100GB/s, e.g. \"150MiB/s\"",
        );
        p.check(
            c.segment_bytes.0 >= 1 << 20,
            "cluster.segment_bytes",
            c.segment_bytes,
            "must be at least 1MiB",
        );
        p.check(
            c.retention_check_interval >= Dur::from_secs(10),
            "cluster.retention_check_interval",
            c.retention_check_interval,
            "must be at least 10s",
        );
        p.check(
            self.metrics.period >= self.step && self.metrics.period <= Dur::from_hours(1),
            "metrics.period",
            self.metrics.period,
            "must be at least the step and at most 1h",
        );
        p.check(
            self.metrics.delay <= Dur::from_hours(1),
            "metrics.delay",
            self.metrics.delay,
            "must be at most 1h",
        );
        p.check(
            c.disk_capacity.0 <= 1 << 50,
            "cluster.disk_capacity",
            c.disk_capacity,
            "must be at most 1PiB",
        );

        let groups: BTreeSet<&str> = self.groups.iter().map(|g| g.name.as_str()).collect();
        let mut names = BTreeSet::new();
        for (i, t) in self.topics.iter().enumerate() {
            let at = |f: &str| format!("topics[{i}].{f}");
            if let Err(why) = check_topic_name(&t.name) {
                p.add(at("name"), format!("{:?}", t.name), why);
            }
            p.check(
                names.insert(t.name.as_str()),
                at("name"),
                format!("{:?}", t.name),
                "listed twice",
            );
            p.check(
                (1..=100_000).contains(&t.partitions),
                at("partitions"),
                t.partitions,
                "must be between 1 and 100000",
            );
            p.check(
                (1..=c.brokers.max(1)).contains(&t.replication_factor),
                at("replication_factor"),
                t.replication_factor,
                format!("must be between 1 and the broker count ({})", c.brokers),
            );
            p.check(
                t.record_bytes.0 > 0,
                at("record_bytes"),
                t.record_bytes,
                "must be positive",
            );
            if let Some(local) = t.local_retention {
                p.check(
                    local <= t.retention,
                    at("local_retention"),
                    local,
                    format!("must not exceed retention ({})", t.retention),
                );
                p.check(
                    local >= Dur::from_mins(1),
                    at("local_retention"),
                    local,
                    "must be at least 1m",
                );
            }
            match (&t.producer, &t.output_of) {
                (Some(prod), None) => {
                    p.check(prod.rate.0 > 0.0 && prod.rate.0 <= MAX_BYTE_RATE, at("producer.rate"), prod.rate.0, "must be positive and at most 100GB/s");
                    p.check((0.0..1.0).contains(&prod.diurnal_amplitude), at("producer.diurnal_amplitude"), prod.diurnal_amplitude, "must be in [0, 1)");
                    p.check((0.0..0.5).contains(&prod.noise), at("producer.noise"), prod.noise, "must be in [0, 0.5)");
                }
                (None, Some(out)) => {
                    p.check(groups.contains(out.group.as_str()), at("output_of.group"), format!("{:?}", out.group), "no group of that name in [[groups]]");
                    p.check(out.amplification > 0.0 && out.amplification <= 1000.0, at("output_of.amplification"), out.amplification, "must be positive and at most 1000");
                }
                _ => p.add(at("producer"), "-", "give exactly one of `producer` (an input topic) and `output_of` (an output topic)"),
            }
            if let Some(skew) = &t.skew {
                match (skew.broker, skew.brokers.is_empty()) {
                    (Some(b), true) => check_broker(p, c.brokers, at("skew.broker"), b),
                    (None, false) => {
                        for &b in &skew.brokers {
                            check_broker(p, c.brokers, at("skew.brokers"), b);
                        }
                    }
                    _ => p.add(
                        at("skew"),
                        "-",
                        "give exactly one of `broker` (its replica ring runs hot) and `brokers` (only they run hot)",
                    ),
                }
                p.check(
                    skew.weight > 0.0 && skew.weight <= 1000.0,
                    at("skew.weight"),
                    skew.weight,
                    "must be positive and at most 1000",
                );
            }
            if t.managed {
                p.check(
                    t.remote_storage,
                    at("managed"),
                    true,
                    "a managed topic must have remote_storage = true",
                );
            }
            if let Some(cap) = t.extend {
                p.check(
                    t.producer.is_some(),
                    at("extend"),
                    cap,
                    "only an input topic (one with a producer) is extended",
                );
                p.check(
                    cap >= t.retention,
                    at("extend"),
                    cap,
                    format!(
                        "the cap must be at least the topic's retention ({})",
                        t.retention
                    ),
                );
            }
        }
        let mut gnames = BTreeSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            let at = |f: &str| format!("groups[{i}].{f}");
            p.check(
                gnames.insert(g.name.as_str()),
                at("name"),
                format!("{:?}", g.name),
                "listed twice",
            );
            let input = self.topics.iter().find(|t| t.name == g.topic);
            p.check(
                input.is_some_and(|t| t.producer.is_some()),
                at("topic"),
                format!("{:?}", g.topic),
                "must name a topic with a `producer`",
            );
            p.check(
                g.max_rate > 0.0 && g.max_rate <= 1e9,
                at("max_rate"),
                g.max_rate,
                "must be a positive rate in records/s, at most 1e9",
            );
            self.validate_backlogs(p, i, g);
        }
        for (i, e) in self.events.iter().enumerate() {
            let at = |f: &str| format!("events[{i}].{f}");
            match (e.at, e.from_start) {
                (Some(start), false) => p.check(
                    e.until > start,
                    at("until"),
                    e.until,
                    format!("must be after `at` ({start})"),
                ),
                (None, true) => p.check(
                    e.until > Dur(0),
                    at("until"),
                    e.until,
                    "must be after the start (0s)",
                ),
                (Some(start), true) => p.add(
                    at("at"),
                    start,
                    "give `at` or `from_start = true`, not both",
                ),
                (None, false) => p.add(
                    at("at"),
                    "-",
                    "missing: give `at` (e.g. \"3h\"), or `from_start = true` for an event already in force when the simulation starts",
                ),
            }
            for &b in &e.brokers {
                check_broker(p, c.brokers, at("brokers"), b);
            }
        }
        let r = &self.runbook;
        p.check(
            r.resume_below_percent > 0.0,
            "runbook.resume_below_percent",
            r.resume_below_percent,
            "must be positive",
        );
        p.check(
            r.pause_at_percent > 0.0 && r.pause_at_percent <= 100.0,
            "runbook.pause_at_percent",
            r.pause_at_percent,
            "must be in (0, 100]",
        );
        p.check(
            r.resume_below_percent < r.pause_at_percent,
            "runbook.resume_below_percent",
            r.resume_below_percent,
            "must be below pause_at_percent",
        );
    }

    /// A group's backlog events: at least one, each at most 365d, appearing within the run.
    fn validate_backlogs(&self, p: &mut Problems, i: usize, g: &GroupSpec) {
        let at = |f: &str| format!("groups[{i}].{f}");
        if let Some(b) = g.backlog {
            p.check(b <= MAX_BACKLOG, at("backlog"), b, "must be at most 365d");
            p.check(
                g.backlogs.iter().all(|e| e.at > Dur(0)),
                at("backlogs"),
                "0s",
                "`backlog` is already the backlog at 0s: give it once",
            );
        } else {
            p.check(
                !g.backlogs.is_empty(),
                at("backlog"),
                "-",
                "missing: give `backlog` (at time 0) or `[[groups.backlogs]]` entries",
            );
        }
        for (j, e) in g.backlogs.iter().enumerate() {
            let at = |f: &str| format!("groups[{i}].backlogs[{j}].{f}");
            p.check(
                e.at < self.duration,
                at("at"),
                e.at,
                format!("must be before the end of the run ({})", self.duration),
            );
            p.check(
                e.size > Dur(0) && e.size <= MAX_BACKLOG,
                at("size"),
                e.size,
                "must be positive and at most 365d",
            );
            // A later backlog re-reads records already in the input: they must still be there.
            let retention = self
                .topics
                .iter()
                .find(|t| t.name == g.topic)
                .map(|t| t.retention);
            if let Some(retention) = retention.filter(|_| e.at > Dur(0)) {
                p.check(
                    e.size < retention,
                    at("size"),
                    e.size,
                    format!("a backlog after 0s must be shorter than its input's retention ({retention})"),
                );
            }
        }
    }
}

/// The largest backlog a group may have (a year of its input).
const MAX_BACKLOG: Dur = Dur::from_hours(365 * 24);

/// A broker id must name one of the cluster's brokers (1..=N).
fn check_broker(p: &mut Problems, brokers: usize, field: String, b: usize) {
    p.check(
        (1..=brokers).contains(&b),
        field,
        b,
        format!("unknown broker: ids are 1..={brokers}"),
    );
}
