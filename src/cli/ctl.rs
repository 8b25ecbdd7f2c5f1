//! `catchup ctl`: the on-call client of the HTTP API. Human-readable tables by default, `--json` for
//! scripts; the token comes from `--token` or `CATCHUP_API_TOKEN`.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use catchup::units::Dur;

/// Connection options shared by every `ctl` command.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Base URL of the controller's API.
    #[arg(
        long,
        env = "CATCHUP_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Bearer token for mutating endpoints.
    #[arg(long, env = "CATCHUP_API_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Who you are, for the audit log (default: $USER).
    #[arg(long, env = "USER", global = true)]
    pub actor: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `ctl` commands.
#[derive(Subcommand, Debug, Clone)]
pub enum CtlCommand {
    /// Mode, disks, groups and managed topics, with the reasons for each decision.
    Status,
    /// Pause a catch-up group (or all) until the TTL expires.
    Pause {
        /// One group (default: all).
        #[arg(long)]
        group: Option<String>,
        /// Why (goes into the audit log).
        #[arg(long)]
        reason: String,
        /// How long, e.g. 30m.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Remove manual pauses of a group (or all); with --force, also hold it open.
    Resume {
        /// One group (default: all).
        #[arg(long)]
        group: Option<String>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Also force the group(s) open against the control law, for --ttl.
        #[arg(long)]
        force: bool,
        /// How long a forced resume lasts.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Manual overrides.
    #[command(subcommand)]
    Override(OverrideCommand),
    /// The audit log, newest first.
    Audit {
        /// How many records.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only records older than this id (for paging).
        #[arg(long)]
        before: Option<u64>,
    },
    /// Switch mode: active, dry-run or observe.
    Mode {
        /// The new mode.
        mode: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Bring every managed topic's local retention back to its original now, then hold it.
    Restore {
        /// Why.
        #[arg(long)]
        reason: String,
        /// How long to keep the controller from lowering again.
        #[arg(long, default_value = "1h")]
        hold: String,
    },
}

/// `ctl override` commands.
#[derive(Subcommand, Debug, Clone)]
pub enum OverrideCommand {
    /// Create an override: a scope (--group, --all-groups or --topic) and an action.
    Set {
        /// One catch-up group.
        #[arg(long, conflicts_with_all = ["all_groups", "topic"])]
        group: Option<String>,
        /// Every catch-up group.
        #[arg(long, conflicts_with = "topic")]
        all_groups: bool,
        /// One managed topic (only with --hold-retention).
        #[arg(long)]
        topic: Option<String>,
        /// Pause.
        #[arg(long, conflicts_with_all = ["resume", "rate", "hold_retention"])]
        pause: bool,
        /// Hold open.
        #[arg(long, conflicts_with_all = ["rate", "hold_retention"])]
        resume: bool,
        /// Hold at this rate per second.
        #[arg(long, conflicts_with = "hold_retention")]
        rate: Option<f64>,
        /// Keep the topic's local retention as it is.
        #[arg(long)]
        hold_retention: bool,
        /// Why.
        #[arg(long)]
        reason: String,
        /// How long (overrides always expire).
        #[arg(long)]
        ttl: String,
    },
    /// Overrides in force.
    List,
    /// Remove an override.
    Delete {
        /// Its id (see `ctl override list`).
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// Errors talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Nothing answered.
    #[error(
        "cannot reach the catchup API at {url}: {reason} (is the controller running? pass --url or set CATCHUP_URL)"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The API refused the request.
    #[error("the API refused ({status}): {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: String,
        /// Its message.
        message: String,
    },
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
}

/// Runs one `ctl` command; returns what to print.
pub async fn run(conn: &Connection, cmd: &CtlCommand) -> Result<String, CtlError> {
    let api = Api::new(conn);
    let actor = conn.actor.clone();
    let (value, render): (Value, fn(&Value) -> String) = match cmd {
        CtlCommand::Status => (api.get("/v1/status").await?, render_status),
        CtlCommand::Pause { group, reason, ttl } => {
            (api.send("POST", "/v1/pause", json!({"group": group, "reason": reason, "ttl": ttl, "actor": actor})).await?, render_override)
        }
        CtlCommand::Resume { group, reason, force, ttl } => (
            api.send("POST", "/v1/resume", json!({"group": group, "reason": reason, "force": force, "ttl": ttl, "actor": actor})).await?,
            render_resume,
        ),
        CtlCommand::Override(OverrideCommand::List) => (api.get("/v1/overrides").await?, render_overrides),
        CtlCommand::Override(OverrideCommand::Delete { id, reason }) => {
            let path = format!("/v1/overrides/{}?reason={}", encode(id), encode(reason));
            (api.send("DELETE", &path, Value::Null).await?, render_override)
        }
        CtlCommand::Override(OverrideCommand::Set { group, all_groups, topic, pause, resume, rate, hold_retention, reason, ttl }) => {
            let scope = match (group, all_groups, topic) {
                (Some(g), false, None) => json!({"kind": "group", "name": g}),
                (None, true, None) => json!({"kind": "all_groups"}),
                (None, false, Some(t)) => json!({"kind": "topic", "name": t}),
                _ => return Err(CtlError::Usage("give one scope: --group G, --all-groups or --topic T".into())),
            };
            let action = match (pause, resume, rate, hold_retention) {
                (true, false, None, false) => json!({"action": "pause"}),
                (false, true, None, false) => json!({"action": "resume"}),
                (false, false, Some(r), false) => json!({"action": "fixed_rate", "rate": r}),
                (false, false, None, true) => json!({"action": "hold_retention"}),
                _ => return Err(CtlError::Usage("give one action: --pause, --resume, --rate N or --hold-retention".into())),
            };
            let body = json!({"scope": scope, "action": action, "reason": reason, "ttl": ttl, "actor": actor});
            (api.send("POST", "/v1/overrides", body).await?, render_override)
        }
        CtlCommand::Audit { limit, before } => {
            let mut path = format!("/v1/audit?limit={limit}");
            if let Some(b) = before {
                let _ = write!(path, "&before={b}");
            }
            (api.get(&path).await?, render_audit)
        }
        CtlCommand::Mode { mode, reason } => {
            (api.send("PUT", "/v1/mode", json!({"mode": mode, "reason": reason, "actor": actor})).await?, |v| format!("mode: {} (was {})\n", str_of(&v["mode"]), str_of(&v["before"])))
        }
        CtlCommand::Restore { reason, hold } => {
            (api.send("POST", "/v1/restore", json!({"reason": reason, "hold": hold, "actor": actor})).await?, render_restore)
        }
    };
    Ok(if conn.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )
    } else {
        render(&value)
    })
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(conn: &Connection) -> Api {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Api {
            client,
            base: conn.url.trim_end_matches('/').to_string(),
            token: conn.token.clone(),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, CtlError> {
        self.send("GET", path, Value::Null).await
    }

    async fn send(&self, method: &str, path: &str, body: Value) -> Result<Value, CtlError> {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self.client.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| CtlError::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(CtlError::Refused {
                status: status.as_u16(),
                code: value["code"].as_str().unwrap_or("unknown").to_string(),
                message: value["message"]
                    .as_str()
                    .unwrap_or("no message")
                    .to_string(),
            })
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn time(v: &Value) -> String {
    v.as_i64()
        .map_or("-".into(), |t| catchup::units::Timestamp(t).rfc3339())
}

fn ms(v: &Value) -> String {
    v.as_i64().map_or("-".into(), |ms| {
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

fn render_status(v: &Value) -> String {
    let mut out = format!(
        "mode: {}   ready: {}   ticks: {}\n\n",
        str_of(&v["mode"]),
        v["ready"],
        v["ticks"]
    );
    let d = &v["decision"];
    let brokers: Vec<Vec<String>> = d["brokers"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .map(|b| {
                    vec![
                        b["broker"].to_string(),
                        format!("{:.1}%", b["sampled_percent"].as_f64().unwrap_or(f64::NAN)),
                        b["trend_percent_per_hour"]
                            .as_f64()
                            .map_or("-".into(), |t| format!("{t:+.1}%/h")),
                        format!("{:.0}s", b["age_secs"].as_f64().unwrap_or(f64::NAN)),
                        if b["stale"].as_bool().unwrap_or(false) {
                            "STALE".into()
                        } else {
                            "fresh".into()
                        },
                        b["time_to_ceiling_secs"]
                            .as_f64()
                            .map_or("-".into(), |s| Dur((s * 1000.0) as u64).to_string()),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &["broker", "disk", "trend", "age", "data", "to ceiling"],
        &brokers,
    ));
    out.push('\n');
    let groups: Vec<Vec<String>> = d["groups"]
        .as_object()
        .map(|gs| {
            gs.iter()
                .map(|(name, g)| {
                    let gate = &g["gate"];
                    let state = match gate["state"].as_str() {
                        Some("throttled") => {
                            format!("throttled {:.0}/s", gate["rate"].as_f64().unwrap_or(0.0))
                        }
                        Some(s) => s.to_string(),
                        None => "-".into(),
                    };
                    vec![
                        name.clone(),
                        state,
                        str_of(&g["origin"]),
                        g["lag"].as_i64().map_or("-".into(), |l| l.to_string()),
                        g["drain_eta_secs"]
                            .as_f64()
                            .map_or("-".into(), |s| Dur::from_secs(s as u64).to_string()),
                        g["reasons"]
                            .as_array()
                            .and_then(|r| r.first())
                            .map_or(String::new(), str_of),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &["group", "gate", "by", "lag", "drain eta", "why"],
        &groups,
    ));
    out.push('\n');
    let topics: Vec<Vec<String>> = v["topics"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let target = match t["target"]["target"].as_str() {
                        Some("lowered") => format!("lowered to {}", ms(&t["target"]["ms"])),
                        Some(other) => other.to_string(),
                        None => "-".into(),
                    };
                    let why = d["topics"][str_of(&t["topic"])]["reasons"]
                        .as_array()
                        .and_then(|r| r.first())
                        .map_or(String::new(), str_of);
                    vec![
                        str_of(&t["topic"]),
                        ms(&t["current_ms"]),
                        ms(&t["original_ms"]),
                        target,
                        why,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &["topic", "local retention", "original", "target", "why"],
        &topics,
    ));
    let limitations: Vec<catchup::sensors::Limitation> =
        serde_json::from_value(v["limitations"].clone()).unwrap_or_default();
    if !limitations.is_empty() {
        out.push_str("\nlimitations:\n");
        for l in &limitations {
            let _ = writeln!(out, "  - {l}");
        }
    }
    if let Some(alerts) = d["alerts"].as_array().filter(|a| !a.is_empty()) {
        out.push_str("\nalerts:\n");
        for a in alerts {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                str_of(&a["severity"]),
                str_of(&a["code"]),
                str_of(&a["message"])
            );
        }
    }
    if let Some(os) = v["overrides"].as_array().filter(|a| !a.is_empty()) {
        out.push_str("\noverrides:\n");
        out.push_str(&render_overrides(&Value::Array(os.clone())));
    }
    out
}

fn override_row(o: &Value) -> Vec<String> {
    let scope = match o["scope"]["kind"].as_str() {
        Some("all_groups") => "all groups".to_string(),
        Some(kind) => format!("{kind} {}", str_of(&o["scope"]["name"])),
        None => "-".into(),
    };
    let action = match o["action"]["action"].as_str() {
        Some("fixed_rate") => format!("fixed rate {}/s", o["action"]["rate"]),
        Some(a) => a.replace('_', " "),
        None => "-".into(),
    };
    vec![
        str_of(&o["id"]),
        scope,
        action,
        str_of(&o["actor"]),
        time(&o["expires_at"]),
        str_of(&o["reason"]),
    ]
}

fn render_overrides(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|a| a.iter().map(override_row).collect())
        .unwrap_or_default();
    if rows.is_empty() {
        return "no overrides in force\n".into();
    }
    table(&["id", "scope", "action", "by", "expires", "reason"], &rows)
}

fn render_override(v: &Value) -> String {
    table(
        &["id", "scope", "action", "by", "expires", "reason"],
        &[override_row(v)],
    )
}

fn render_resume(v: &Value) -> String {
    let mut out = format!(
        "removed {} pause override(s)\n",
        v["removed"].as_array().map_or(0, Vec::len)
    );
    if !v["forced"].is_null() {
        out.push_str("forced open:\n");
        out.push_str(&render_override(&v["forced"]));
    }
    out
}

fn render_audit(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let mut reason = str_of(&r["reason"]);
                    if reason.chars().count() > 80 {
                        reason = reason.chars().take(77).collect::<String>() + "...";
                    }
                    vec![
                        r["id"].to_string(),
                        time(&r["at"]),
                        str_of(&r["actor"]),
                        str_of(&r["action"]),
                        str_of(&r["target"]),
                        str_of(&r["outcome"]),
                        reason,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = table(
        &[
            "id", "at (ms)", "actor", "action", "target", "outcome", "reason",
        ],
        &rows,
    );
    if let Some(next) = v["next_before"].as_u64() {
        let _ = writeln!(out, "more: --before {next}");
    }
    out
}

fn render_restore(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["topics"]
        .as_object()
        .map(|m| m.iter().map(|(t, o)| vec![t.clone(), str_of(o)]).collect())
        .unwrap_or_default();
    table(&["topic", "outcome"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_limitations_with_what_they_disable() {
        let v = serde_json::json!({
            "mode": "active", "ready": true, "ticks": 3, "decision": {}, "topics": [],
            "limitations": [
                {"missing": "storage mode is LOCAL, not TIERED", "disables": ["lower_retention"]},
                {"missing": "the cluster's state is UPDATING, not ACTIVE", "disables": []}
            ]
        });
        let text = render_status(&v);
        assert!(
            text.contains("limitations:\n  - storage mode is LOCAL, not TIERED [disables lower_retention]\n  - the cluster's state is UPDATING, not ACTIVE [warning only]\n"),
            "{text}"
        );
        let none = render_status(
            &serde_json::json!({"mode": "active", "decision": {}, "limitations": []}),
        );
        assert!(!none.contains("limitations"), "{none}");
    }
}
