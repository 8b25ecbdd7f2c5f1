//! State shared by the control loop and the HTTP API: mode, overrides, gates, metrics, the last
//! status and the audit log; and the commands the API sends to the loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::status::Status;
use crate::actuators::gate::GateBoard;
use crate::clock::Clock;
use crate::config::{Mode, RunConfig};
use crate::metrics::Metrics;
use crate::policy::{Override, OverrideAction, OverrideScope, Policy};
use crate::store::{AuditRecord, Outcome, StateDir, StoreError};
use crate::units::{Dur, Timestamp};

/// Proof that a request carried the operator token, and who made it. Only
/// [`Controller::authorize`] makes one, and every mutation the API can ask for takes one, so a
/// write route cannot be declared without passing the token check.
#[derive(Debug)]
pub struct Authorized {
    actor: String,
}

impl Authorized {
    /// Who acted (for the audit log).
    pub fn actor(&self) -> &str {
        &self.actor
    }
}

/// Why a request was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    /// No token is configured: mutating endpoints are disabled.
    #[error(
        "no API token is configured (api.token_file or CATCHUP_API_TOKEN): this endpoint is disabled"
    )]
    NoToken,
    /// The request's bearer token is missing or wrong.
    #[error("missing or wrong bearer token (Authorization: Bearer TOKEN)")]
    BadToken,
}

/// Requests the API sends to the loop.
pub enum Command {
    /// Bring every managed topic back to its original now, and hold retention for `hold`.
    Restore {
        /// Who asked.
        who: Authorized,
        /// Why.
        reason: String,
        /// How long to hold retention afterwards.
        hold: Dur,
        /// Only this topic (else every managed topic).
        topic: Option<String>,
        /// Per topic: what happened.
        reply: oneshot::Sender<Vec<(String, String)>>,
    },
    /// Take a managed topic's value now as its original (clears drift).
    Adopt {
        /// Who asked.
        who: Authorized,
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
        /// What happened.
        reply: oneshot::Sender<AdoptReply>,
    },
}

/// The answer to an adopt: the original before and after, or why not.
pub type AdoptReply = Result<
    (
        crate::sensors::OriginalRetention,
        crate::sensors::OriginalRetention,
    ),
    String,
>;

/// State shared by the loop and the API.
pub struct Controller {
    /// The policy.
    pub policy: Policy,
    /// The configuration.
    pub config: RunConfig,
    /// Current mode (the API can change it).
    pub mode: RwLock<Mode>,
    /// Overrides in force, persisted in `overrides.json`.
    pub overrides: Mutex<Vec<Override>>,
    /// The state directory.
    pub store: StateDir,
    /// The consumer gates.
    pub gates: GateBoard,
    /// Metrics.
    pub metrics: Metrics,
    /// The last tick's status.
    pub status: RwLock<Status>,
    /// Set after the first tick with fresh disk and lag data.
    pub ready: AtomicBool,
    /// Set when the service is shutting down: a tick in progress finishes the write it is in and
    /// starts no other (the journal makes even a kill mid-write safe; this keeps shutdown short).
    pub stopping: AtomicBool,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The API token (`None`: mutating endpoints are refused).
    token: Option<String>,
    /// To the loop.
    pub commands: mpsc::Sender<Command>,
    next_override: AtomicU64,
}

/// Errors building the controller.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The state directory.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Controller {
    /// Builds the shared state, loading overrides from the state directory.
    pub fn new(
        config: RunConfig,
        policy: Policy,
        token: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Controller>, mpsc::Receiver<Command>), RuntimeError> {
        let store = StateDir::open(&config.state_dir)?;
        let overrides: Vec<Override> = store.load("overrides.json")?.unwrap_or_default();
        let next = overrides
            .iter()
            .filter_map(|o| o.id.strip_prefix("ovr-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let gates = GateBoard::new(config.gate.instances);
        gates.register(&policy.group_names(), clock.now());
        let (tx, rx) = mpsc::channel(16);
        let metrics = Metrics::new();
        metrics.set_mode(config.mode);
        let status = super::status::initial(config.mode, overrides.clone());
        let c = Controller {
            mode: RwLock::new(config.mode),
            policy,
            config,
            overrides: Mutex::new(overrides),
            store,
            gates,
            metrics,
            status: RwLock::new(status),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            clock,
            token,
            commands: tx,
            next_override: AtomicU64::new(next),
        };
        Ok((Arc::new(c), rx))
    }

    /// Checks a request's bearer token (in constant time) against the API token. `write` asks for
    /// a mutation; reads need the token only with `api.auth_reads`, and then get no [`Authorized`].
    pub fn check_token(&self, bearer: Option<&str>, write: bool) -> Result<(), Unauthorized> {
        if !write && !self.config.api.auth_reads {
            return Ok(());
        }
        let Some(expected) = &self.token else {
            return Err(Unauthorized::NoToken);
        };
        let given = bearer.unwrap_or("");
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(Unauthorized::BadToken)
        }
    }

    /// The proof a mutation needs: the bearer token checked, and who is acting.
    pub fn authorize(
        &self,
        bearer: Option<&str>,
        actor: String,
    ) -> Result<Authorized, Unauthorized> {
        self.check_token(bearer, true)?;
        Ok(Authorized { actor })
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an action in the audit log and the metrics; a failure to write the log is logged
    /// (the action already happened) and returned.
    pub fn audit(&self, entry: Entry<'_>) -> Result<AuditRecord, StoreError> {
        let Entry {
            actor,
            action,
            target,
            reason,
            before,
            after,
            outcome,
        } = entry;
        let kind = action.split('.').next().unwrap_or(action);
        self.metrics.action(kind, outcome.kind());
        let record = AuditRecord {
            id: 0,
            at: self.clock.now(),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            reason: reason.into(),
            before,
            after,
            outcome,
        };
        info!(actor, action, target, reason, outcome = %record.outcome, "audit");
        self.store
            .audit(record)
            .inspect_err(|e| warn!(error = %e, "audit log write failed"))
    }

    /// Overrides in force now (expired ones excluded).
    pub fn active_overrides(&self) -> Vec<Override> {
        let now = self.clock.now();
        self.overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|o| o.expires_at > now)
            .cloned()
            .collect()
    }

    /// Adds an override, persists and audits it.
    pub fn add_override(
        &self,
        who: &Authorized,
        scope: OverrideScope,
        action: OverrideAction,
        reason: String,
        ttl: Dur,
    ) -> Result<Override, StoreError> {
        let actor = who.actor.clone();
        let now = self.clock.now();
        let o = Override {
            id: format!("ovr-{}", self.next_override.fetch_add(1, Ordering::Relaxed)),
            scope,
            action,
            reason,
            actor,
            created_at: now,
            expires_at: now + ttl,
        };
        let snapshot = {
            let mut list = self.overrides.lock().unwrap_or_else(|e| e.into_inner());
            list.push(o.clone());
            list.clone()
        };
        self.store.save("overrides.json", &snapshot)?;
        let target = scope_name(&o.scope);
        self.audit(Entry {
            actor: &o.actor,
            action: "override.create",
            target: &target,
            reason: &o.reason,
            before: serde_json::Value::Null,
            after: json(&o),
            outcome: Outcome::Applied,
        })?;
        Ok(o)
    }

    /// Deletes an override by id; `None` when there is none.
    pub fn delete_override(
        &self,
        who: &Authorized,
        id: &str,
        reason: &str,
    ) -> Result<Option<Override>, StoreError> {
        let actor = who.actor();
        let (removed, snapshot) = {
            let mut list = self.overrides.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = list.iter().position(|o| o.id == id) else {
                return Ok(None);
            };
            let removed = list.remove(i);
            (removed, list.clone())
        };
        self.store.save("overrides.json", &snapshot)?;
        self.audit(Entry {
            actor,
            action: "override.delete",
            target: &scope_name(&removed.scope),
            reason,
            before: json(&removed),
            after: serde_json::Value::Null,
            outcome: Outcome::Applied,
        })?;
        Ok(Some(removed))
    }

    /// Drops expired overrides, auditing each.
    pub(super) fn expire_overrides(&self, now: Timestamp) -> Result<(), StoreError> {
        let (expired, snapshot) = {
            let mut list = self.overrides.lock().unwrap_or_else(|e| e.into_inner());
            let (expired, kept): (Vec<Override>, Vec<Override>) =
                list.drain(..).partition(|o| o.expires_at <= now);
            *list = kept;
            (expired, list.clone())
        };
        if expired.is_empty() {
            return Ok(());
        }
        self.store.save("overrides.json", &snapshot)?;
        for o in expired {
            self.audit(Entry {
                actor: "controller",
                action: "override.expire",
                target: &scope_name(&o.scope),
                reason: &o.reason,
                before: json(&o),
                after: serde_json::Value::Null,
                outcome: Outcome::Applied,
            })?;
        }
        Ok(())
    }

    /// Changes the mode, auditing it.
    pub fn set_mode(&self, who: &Authorized, mode: Mode, reason: &str) -> Result<Mode, StoreError> {
        let actor = who.actor();
        let before = std::mem::replace(
            &mut *self.mode.write().unwrap_or_else(|e| e.into_inner()),
            mode,
        );
        self.metrics.set_mode(mode);
        self.audit(Entry {
            actor,
            action: "mode",
            target: "*",
            reason,
            before: json(&before),
            after: json(&mode),
            outcome: Outcome::Applied,
        })?;
        Ok(before)
    }
}

/// One action for the audit log (see [`AuditRecord`]).
pub struct Entry<'a> {
    /// Who.
    pub actor: &'a str,
    /// What kind.
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// Why.
    pub reason: &'a str,
    /// State before.
    pub before: serde_json::Value,
    /// State after.
    pub after: serde_json::Value,
    /// How it ended.
    pub outcome: Outcome,
}

/// Name of an override's scope, for the audit log.
pub fn scope_name(scope: &OverrideScope) -> String {
    match scope {
        OverrideScope::Group(g) => g.clone(),
        OverrideScope::AllGroups => "*".into(),
        OverrideScope::Topic(t) => t.clone(),
    }
}

pub(super) fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
