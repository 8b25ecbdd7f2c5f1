//! The API's answers as tables for people, from the API's own types ([`catchup_proto`]), so a
//! renamed field fails to compile instead of printing nothing.

use std::fmt::Write as _;

use catchup::units::{Dur, Timestamp};
use catchup_proto::audit::AuditPage;
use catchup_proto::decision::{
    ExtensionTarget, Gate, Override, OverrideAction, OverrideScope, RetentionTarget,
};
use catchup_proto::requests::{AdoptResponse, ModeResponse, RestoreResponse, ResumeResponse};
use catchup_proto::status::Status;

/// A JSON value as one cell: strings bare, `-` for nothing.
fn json_cell<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Null) | Err(_) => "-".into(),
        Ok(other) => other.to_string(),
    }
}

fn time(t: Timestamp) -> String {
    t.rfc3339()
}

fn ms(v: Option<i64>) -> String {
    v.map_or("-".into(), |ms| {
        if ms < 0 {
            "unlimited".into()
        } else {
            Dur(ms as u64).to_string()
        }
    })
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// `ctl status`: mode, brokers, groups, topics, limitations, alerts and overrides.
pub fn status(s: &Status) -> String {
    let mut out = format!(
        "mode: {}   ready: {}   ticks: {}\n\n",
        s.mode.as_str(),
        s.ready,
        s.ticks
    );
    let d = s.decision.as_ref();
    let brokers: Vec<Vec<String>> = d
        .map(|d| {
            d.brokers
                .iter()
                .map(|b| {
                    vec![
                        b.broker.to_string(),
                        format!("{:.1}%", b.sampled_percent),
                        b.estimate_percent
                            .map_or("-".into(), |e| format!("{e:.1}%")),
                        b.upper_percent.map_or("-".into(), |u| format!("{u:.1}%")),
                        b.trend_percent_per_hour
                            .map_or("-".into(), |t| format!("{t:+.1}%/h")),
                        format!("{:.0}s", b.age_secs),
                        if b.stale { "STALE" } else { "fresh" }.into(),
                        b.time_to_ceiling_secs.map_or("-".into(), human),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &[
            "broker",
            "disk",
            "estimate",
            "upper",
            "trend",
            "age",
            "data",
            "to ceiling",
        ],
        &brokers,
    ));
    out.push('\n');
    out.push_str(&groups(d));
    out.push('\n');
    let topics: Vec<Vec<String>> = s
        .topics
        .iter()
        .map(|t| {
            let target = match &t.target {
                RetentionTarget::Lowered { ms: to } => format!("lowered to {}", ms(Some(*to))),
                RetentionTarget::Original => "original".into(),
                RetentionTarget::HandsOff => "hands_off".into(),
            };
            let why = d
                .and_then(|d| d.topics.get(&t.topic))
                .and_then(|t| t.reasons.first().cloned())
                .unwrap_or_default();
            vec![
                t.topic.clone(),
                ms(t.current_ms),
                ms(t.original_ms),
                target,
                why,
            ]
        })
        .collect();
    out.push_str(&table(
        &["topic", "local retention", "original", "target", "why"],
        &topics,
    ));
    out.push_str(&extensions(d));
    if !s.limitations.is_empty() {
        out.push_str("\nlimitations:\n");
        for l in &s.limitations {
            let _ = writeln!(out, "  - {l}");
        }
    }
    if let Some(alerts) = d.map(|d| &d.alerts).filter(|a| !a.is_empty()) {
        out.push_str("\nalerts:\n");
        for a in alerts {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                json_cell(&a.severity),
                a.code,
                a.message
            );
        }
    }
    if !s.overrides.is_empty() {
        out.push_str("\noverrides:\n");
        out.push_str(&overrides(&s.overrides));
    }
    out
}

/// The input topics allow-listed for extension (`[[input.extend]]`), when there are any.
fn extensions(d: Option<&catchup_proto::decision::Decision>) -> String {
    let Some(d) = d.filter(|d| !d.extensions.is_empty()) else {
        return String::new();
    };
    let rows: Vec<Vec<String>> = d
        .extensions
        .iter()
        .map(|(topic, e)| {
            let target = match &e.target {
                ExtensionTarget::Extended { ms: to } => format!("extended to {}", ms(Some(*to))),
                ExtensionTarget::Original => "original".into(),
                ExtensionTarget::HandsOff => "hands_off".into(),
            };
            vec![
                topic.clone(),
                ms(e.current_ms),
                ms(e.original_ms),
                target,
                e.reasons.first().cloned().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = String::from("\n");
    out.push_str(&table(
        &["input topic", "retention", "original", "target", "why"],
        &rows,
    ));
    out
}

/// Seconds as a duration (`-` when unknown; negative ones as `passed`).
fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 0.0 => "passed".into(),
        Some(s) => human(s),
    }
}

/// A duration for people: whole seconds under an hour, whole minutes above (`58m11s`, `15h38m`),
/// never `3491.5s`.
fn human(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    let whole = if secs >= 3600.0 {
        (secs / 60.0).round() * 60.0
    } else {
        secs.round()
    };
    Dur((whole.min(1e12) as u64) * 1000).to_string()
}

/// A count for people: `9999`, `12.3k`, `20.0M`, `1.2G` (never eleven raw digits).
fn count(n: u64) -> String {
    let f = n as f64;
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", f / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", f / 1e6),
        _ => format!("{:.1}G", f / 1e9),
    }
}

/// The groups table: gate, lag in records and in time, and the input deadline.
fn groups(d: Option<&catchup_proto::decision::Decision>) -> String {
    let rows: Vec<Vec<String>> = d
        .map(|d| {
            d.groups
                .iter()
                .map(|(name, g)| {
                    let state = match &g.gate {
                        Gate::Throttled { rate, .. } => format!("throttled {rate:.0}/s"),
                        other => other.name().to_string(),
                    };
                    let input = g.input.as_ref();
                    vec![
                        name.clone(),
                        state,
                        json_cell(&g.origin),
                        g.lag.map_or("-".into(), |l| count(l.max(0) as u64)),
                        secs(g.time_lag_secs),
                        g.drain_eta_secs
                            .map_or("-".into(), |s| Dur::from_secs(s as u64).to_string()),
                        secs(input.and_then(|i| i.headroom_secs)),
                        secs(input.and_then(|i| i.slack_secs)),
                        input
                            .and_then(|i| i.required_rate)
                            .map_or("-".into(), |r| format!("{r:.0}/s")),
                        input.map_or("0".into(), |i| i.records_lost.to_string()),
                        g.reasons.first().cloned().unwrap_or_default(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "group",
            "gate",
            "by",
            "lag",
            "time lag",
            "drain eta",
            "deleted in",
            "slack",
            "needs",
            "lost",
            "why",
        ],
        &rows,
    )
}

fn override_row(o: &Override) -> Vec<String> {
    let scope = match &o.scope {
        OverrideScope::AllGroups => "all groups".to_string(),
        OverrideScope::Group(g) => format!("group {g}"),
        OverrideScope::Topic(t) => format!("topic {t}"),
    };
    let action = match &o.action {
        OverrideAction::FixedRate { rate } => format!("fixed rate {}/s", json_cell(rate)),
        OverrideAction::Pause => "pause".into(),
        OverrideAction::Resume => "resume".into(),
        OverrideAction::HoldRetention => "hold retention".into(),
    };
    vec![
        o.id.clone(),
        scope,
        action,
        o.actor.clone(),
        time(o.expires_at),
        o.reason.clone(),
    ]
}

/// Overrides in force.
// Renderers take the answer's own type (`fn(&T)`), here `Vec<Override>`.
#[allow(clippy::ptr_arg)]
pub fn overrides(list: &Vec<Override>) -> String {
    if list.is_empty() {
        return "no overrides in force\n".into();
    }
    let rows: Vec<Vec<String>> = list.iter().map(override_row).collect();
    table(&["id", "scope", "action", "by", "expires", "reason"], &rows)
}

/// One override (created or removed).
pub fn one_override(o: &Override) -> String {
    table(
        &["id", "scope", "action", "by", "expires", "reason"],
        &[override_row(o)],
    )
}

/// What resume did.
pub fn resume(r: &ResumeResponse) -> String {
    let mut out = format!("removed {} pause override(s)\n", r.removed.len());
    if let Some(forced) = &r.forced {
        out.push_str("forced open:\n");
        out.push_str(&one_override(forced));
    }
    out
}

/// A page of the audit log.
pub fn audit(page: &AuditPage) -> String {
    let rows: Vec<Vec<String>> = page
        .records
        .iter()
        .map(|r| {
            let mut reason = r.reason.clone();
            if reason.chars().count() > 80 {
                reason = reason.chars().take(77).collect::<String>() + "...";
            }
            vec![
                r.id.to_string(),
                time(r.at),
                r.actor.clone(),
                r.action.clone(),
                r.target.clone(),
                r.outcome.to_string(),
                reason,
            ]
        })
        .collect();
    let mut out = table(
        &[
            "id", "at (ms)", "actor", "action", "target", "outcome", "reason",
        ],
        &rows,
    );
    if let Some(next) = page.next_before {
        let _ = writeln!(out, "more: --before {next}");
    }
    out
}

/// A mode change.
pub fn mode(m: &ModeResponse) -> String {
    format!("mode: {} (was {})\n", m.mode.as_str(), m.before.as_str())
}

/// What an adopt did.
pub fn adopt(a: &AdoptResponse) -> String {
    let show = |o: &catchup_proto::observation::OriginalRetention| {
        format!(
            "{} ({})",
            o.value.as_deref().unwrap_or("-"),
            json_cell(&o.source)
        )
    };
    format!(
        "{}: the original is now {} (was {}); the controller acts on the topic again\n",
        a.topic,
        show(&a.after),
        show(&a.before)
    )
}

/// What a restore did, per topic.
pub fn restore(r: &RestoreResponse) -> String {
    let rows: Vec<Vec<String>> = r
        .topics
        .iter()
        .map(|(t, o)| vec![t.clone(), o.clone()])
        .collect();
    table(&["topic", "outcome"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use catchup::sensors::Limitation;

    fn empty_status() -> Status {
        Status {
            mode: catchup::config::Mode::Active,
            ready: true,
            ticks: 3,
            observation: None,
            decision: None,
            overrides: Vec::new(),
            topics: Vec::new(),
            sensor_errors: Vec::new(),
            limitations: Vec::new(),
            cluster: None,
            ha: None,
        }
    }

    #[test]
    fn status_lists_limitations_with_what_they_disable() {
        let mut s = empty_status();
        s.limitations = vec![
            Limitation {
                missing: "storage mode is LOCAL, not TIERED".into(),
                disables: vec!["lower_retention".into()],
            },
            Limitation {
                missing: "the cluster's state is UPDATING, not ACTIVE".into(),
                disables: vec![],
            },
        ];
        let text = status(&s);
        assert!(
            text.contains("limitations:\n  - storage mode is LOCAL, not TIERED [disables lower_retention]\n  - the cluster's state is UPDATING, not ACTIVE [warning only]\n"),
            "{text}"
        );
        let none = status(&empty_status());
        assert!(!none.contains("limitations"), "{none}");
    }

    #[test]
    fn status_shows_time_lag_and_the_input_deadline_of_each_group() {
        use catchup_proto::decision::{Decision, Gate, GroupDecision, InputDeadline, Origin};
        let mut s = empty_status();
        let group = GroupDecision {
            gate: Gate::Paused,
            reasons: vec!["broker 1 at the pause line".into()],
            expires_at: Timestamp(0),
            origin: Origin::Auto,
            lag: Some(20_000_000),
            consume_rate: None,
            produce_rate: Some(100.0),
            drain_eta_secs: None,
            time_lag_secs: Some(167_400.0),
            input: Some(InputDeadline {
                topic: Some("in".into()),
                partition: Some(0),
                deadline: Some(Timestamp(0)),
                headroom_secs: Some(91_800.0),
                margin_secs: 21_600.0,
                required_rate: Some(113.7),
                slack_secs: Some(70_200.0),
                records_lost: 800,
                untracked: Vec::new(),
            }),
        };
        s.decision = Some(Decision {
            at: Timestamp(0),
            groups: [("ingest".to_string(), group)].into_iter().collect(),
            topics: Default::default(),
            brokers: Vec::new(),
            drained: false,
            alerts: Vec::new(),
            extensions: Default::default(),
            losses: Vec::new(),
        });
        let text = status(&s);
        let header = text.lines().find(|l| l.starts_with("GROUP")).unwrap();
        for h in ["TIME LAG", "DELETED IN", "SLACK", "NEEDS", "LOST"] {
            assert!(header.contains(h), "{header}");
        }
        let row = text.lines().find(|l| l.starts_with("ingest")).unwrap();
        for cell in ["20.0M", "1d22h30m", "1d1h30m", "19h30m", "114/s", "800"] {
            assert!(row.contains(cell), "{cell}: {row}");
        }
        assert!(
            !text.contains("INPUT TOPIC"),
            "no extension table without [[input.extend]]"
        );
    }

    #[test]
    fn status_shows_extended_input_topics() {
        use catchup_proto::decision::{Decision, ExtensionDecision};
        let mut s = empty_status();
        let e = ExtensionDecision {
            target: ExtensionTarget::Extended { ms: 309_600_000 },
            changed: false,
            current_ms: Some(309_600_000),
            original_ms: Some(259_200_000),
            reasons: vec!["raise retention.ms to 3d14h".into()],
        };
        s.decision = Some(Decision {
            at: Timestamp(0),
            groups: Default::default(),
            topics: Default::default(),
            brokers: Vec::new(),
            drained: false,
            alerts: Vec::new(),
            extensions: [("events".to_string(), e)].into_iter().collect(),
            losses: Vec::new(),
        });
        let text = status(&s);
        let row = text.lines().find(|l| l.starts_with("events")).unwrap();
        for cell in ["3d14h", "3d", "extended to 3d14h", "raise retention.ms"] {
            assert!(row.contains(cell), "{cell}: {row}");
        }
    }

    #[test]
    fn durations_and_counts_read_for_people() {
        assert_eq!(human(3491.5), "58m12s");
        assert_eq!(human(56_295.4), "15h38m");
        assert_eq!(human(-1.0), "-");
        assert_eq!(count(9_999), "9999");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(12_345_678_901), "12.3G");
    }
}
