//! `catchup ctl`: the on-call client of the HTTP API. Human-readable tables by default, `--json` for
//! scripts; the token comes from `--token` or `CATCHUP_API_TOKEN`.

use std::fmt::Write as _;

use catchup::config::Mode;
use catchup::policy::{OverrideAction, OverrideScope};
use catchup_proto::requests::{OverrideRequest, PauseRequest, RestoreRequest};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod render;

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
        mode: Mode,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Bring every managed topic's local retention (or one's) back to its original now, then
    /// hold it.
    Restore {
        /// Why.
        #[arg(long)]
        reason: String,
        /// How long to keep the controller from lowering again.
        #[arg(long, default_value = "1h")]
        hold: String,
        /// Only this managed topic.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Take a managed topic's value now as its original (after someone changed it by hand: the
    /// controller keeps its hands off the topic until then).
    Adopt {
        /// The managed topic.
        #[arg(long)]
        topic: String,
        /// Why (goes into the audit log).
        #[arg(long)]
        reason: String,
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
    /// The API answered with something this `catchup ctl` cannot read.
    #[error(
        "the API's answer to {path} does not fit this catchup ctl ({reason}): are both the same version?"
    )]
    Unreadable {
        /// The endpoint.
        path: String,
        /// What did not fit.
        reason: String,
    },
}

/// Runs one `ctl` command; returns what to print: the API's JSON with `--json`, else a table.
pub async fn run(conn: &Connection, cmd: &CtlCommand) -> Result<String, CtlError> {
    let api = Api::new(conn);
    let actor = conn.actor.clone();
    let pause = |group: &Option<String>, reason: &str, ttl: &str, force: bool| PauseRequest {
        group: group.clone(),
        reason: reason.to_string(),
        ttl: Some(ttl.to_string()),
        actor: actor.clone(),
        force,
    };
    let answer = match cmd {
        CtlCommand::Status => api.get("/v1/status", render::status).await?,
        CtlCommand::Pause { group, reason, ttl } => {
            let body = pause(group, reason, ttl, false);
            api.send("POST", "/v1/pause", &body, render::one_override)
                .await?
        }
        CtlCommand::Resume {
            group,
            reason,
            force,
            ttl,
        } => {
            let body = pause(group, reason, ttl, *force);
            api.send("POST", "/v1/resume", &body, render::resume)
                .await?
        }
        CtlCommand::Override(OverrideCommand::List) => {
            api.get("/v1/overrides", render::overrides).await?
        }
        CtlCommand::Override(OverrideCommand::Delete { id, reason }) => {
            let path = format!("/v1/overrides/{}?reason={}", encode(id), encode(reason));
            api.send("DELETE", &path, &(), render::one_override).await?
        }
        CtlCommand::Override(set @ OverrideCommand::Set { .. }) => {
            let body = override_request(set, actor.clone())?;
            api.send("POST", "/v1/overrides", &body, render::one_override)
                .await?
        }
        CtlCommand::Audit { limit, before } => {
            let mut path = format!("/v1/audit?limit={limit}");
            if let Some(b) = before {
                let _ = write!(path, "&before={b}");
            }
            api.get(&path, render::audit).await?
        }
        CtlCommand::Mode { mode, reason } => {
            let body = catchup_proto::requests::ModeRequest {
                mode: *mode,
                reason: reason.clone(),
                actor: actor.clone(),
            };
            api.send("PUT", "/v1/mode", &body, render::mode).await?
        }
        CtlCommand::Restore {
            reason,
            hold,
            topic,
        } => {
            let body = RestoreRequest {
                reason: reason.clone(),
                hold: Some(hold.clone()),
                actor: actor.clone(),
                topic: topic.clone(),
            };
            api.send("POST", "/v1/restore", &body, render::restore)
                .await?
        }
        CtlCommand::Adopt { topic, reason } => {
            let body = catchup_proto::requests::AdoptRequest {
                topic: topic.clone(),
                reason: reason.clone(),
                actor: actor.clone(),
            };
            api.send("POST", "/v1/retention/adopt", &body, render::adopt)
                .await?
        }
    };
    Ok(if conn.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&answer.json).unwrap_or_default()
        )
    } else {
        answer.text
    })
}

/// The body of `ctl override set`.
fn override_request(
    set: &OverrideCommand,
    actor: Option<String>,
) -> Result<OverrideRequest, CtlError> {
    let OverrideCommand::Set {
        group,
        all_groups,
        topic,
        pause,
        resume,
        rate,
        hold_retention,
        reason,
        ttl,
    } = set
    else {
        return Err(CtlError::Usage("not an override to set".into()));
    };
    let scope = match (group, all_groups, topic) {
        (Some(g), false, None) => OverrideScope::Group(g.clone()),
        (None, true, None) => OverrideScope::AllGroups,
        (None, false, Some(t)) => OverrideScope::Topic(t.clone()),
        _ => {
            return Err(CtlError::Usage(
                "give one scope: --group G, --all-groups or --topic T".into(),
            ));
        }
    };
    let action = match (pause, resume, rate, hold_retention) {
        (true, false, None, false) => OverrideAction::Pause,
        (false, true, None, false) => OverrideAction::Resume,
        (false, false, Some(r), false) => OverrideAction::FixedRate { rate: *r },
        (false, false, None, true) => OverrideAction::HoldRetention,
        _ => {
            return Err(CtlError::Usage(
                "give one action: --pause, --resume, --rate N or --hold-retention".into(),
            ));
        }
    };
    Ok(OverrideRequest {
        scope,
        action,
        reason: reason.clone(),
        ttl: ttl.clone(),
        actor,
    })
}

/// An answer of the API: as sent, and rendered for people.
struct Answer {
    json: Value,
    text: String,
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

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        render: fn(&T) -> String,
    ) -> Result<Answer, CtlError> {
        self.send("GET", path, &(), render).await
    }

    /// Sends `body` (none when it is `()`), reads the answer as `T` and renders it.
    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
        render: fn(&T) -> String,
    ) -> Result<Answer, CtlError> {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self.client.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let body = serde_json::to_value(body).unwrap_or(Value::Null);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| CtlError::Unreachable {
            url: self.base.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        let json: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error: Option<catchup_proto::requests::ErrorBody> =
                serde_json::from_value(json).ok();
            return Err(CtlError::Refused {
                status: status.as_u16(),
                code: error.as_ref().map_or("unknown".into(), |e| e.code.clone()),
                message: error.map_or("no message".into(), |e| e.message),
            });
        }
        let typed: T = serde_json::from_value(json.clone()).map_err(|e| CtlError::Unreadable {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Answer {
            text: render(&typed),
            json,
        })
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
