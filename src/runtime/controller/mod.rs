//! State shared by the control loop and the HTTP API: mode, overrides, gates, metrics, the last
//! status and the audit log; and the commands the API sends to the loop.
//!
//! The state directory is opened once per process and shared ([`Controller::store`]). Its
//! methods block on file I/O and fsync, and so do the mutations here that write it
//! ([`Controller::add_override`], [`Controller::set_mode`], ...): async code runs them through
//! [`Controller::blocking`] (tokio's blocking pool), which keeps the synchronous API for the
//! simulator and tests as it is.

use std::sync::atomic::AtomicBool;
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

mod overrides;

pub use overrides::{ChangeError, OVERRIDE_IDS_FILE, OVERRIDES_FILE, OverrideBook};

/// Proof that a request carried the operator token, and who made it. Only
/// [`Controller::authorize`] makes one, and every mutation the API can ask for takes one, so a
/// write route cannot be declared without passing the token check. A clone is the same proof, for
/// work handed to another thread.
#[derive(Clone, Debug)]
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
    /// Current mode (the API can change it, through [`Controller::set_mode`]).
    mode: RwLock<Mode>,
    /// Held while the mode changes: its audit record is written before the switch.
    mode_writer: Mutex<()>,
    /// Overrides, persisted in `overrides.json`.
    overrides: OverrideBook,
    /// The state directory, shared with the loop's cluster adapters.
    pub store: Arc<StateDir>,
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
}

/// Errors building the controller.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The state directory.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Controller {
    /// Builds the shared state on `store` (the state directory of `config.state_dir`, opened once
    /// by the caller and shared with the cluster adapters), loading the overrides.
    pub fn new(
        config: RunConfig,
        policy: Policy,
        store: Arc<StateDir>,
        token: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Controller>, mpsc::Receiver<Command>), RuntimeError> {
        if store.is_read_only() {
            return Err(StoreError::ReadOnly {
                path: store.path().to_path_buf(),
            }
            .into());
        }
        let overrides = OverrideBook::load(&store)?;
        let gates = GateBoard::new(config.gate.instances);
        gates.register(&policy.group_names(), clock.now());
        let (tx, rx) = mpsc::channel(16);
        let metrics = Metrics::new();
        metrics.set_mode(config.mode);
        let status = super::status::initial(config.mode, overrides.all());
        let c = Controller {
            mode: RwLock::new(config.mode),
            mode_writer: Mutex::new(()),
            policy,
            config,
            overrides,
            store,
            gates,
            metrics,
            status: RwLock::new(status),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            clock,
            token,
            commands: tx,
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

    /// Runs `work` on this controller off the async workers (tokio's blocking pool): how async
    /// code calls what writes the state directory, e.g.
    /// `ctl.blocking(move |c| c.add_override(&who, scope, action, reason, ttl)).await`.
    pub async fn blocking<T, E>(
        self: &Arc<Self>,
        work: impl FnOnce(&Controller) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let ctl = self.clone();
        crate::store::unblock(move || work(&ctl)).await
    }

    /// Records an action in the audit log and the metrics; a failure to write the log is logged
    /// (the action already happened) and returned.
    pub fn audit(&self, entry: Entry<'_>) -> Result<AuditRecord, StoreError> {
        let record = self.record(entry);
        self.store
            .audit(record)
            .inspect_err(|e| warn!(error = %e, "audit log write failed"))
    }

    /// [`Controller::audit`] for async code: the write runs off the async workers.
    pub async fn audit_async(
        self: &Arc<Self>,
        entry: Entry<'_>,
    ) -> Result<AuditRecord, StoreError> {
        let record = self.record(entry);
        self.blocking(move |c| c.store.audit(record))
            .await
            .inspect_err(|e| warn!(error = %e, "audit log write failed"))
    }

    /// The record of `entry`, logged and counted.
    fn record(&self, entry: Entry<'_>) -> AuditRecord {
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
        info!(actor, action, target, reason, %outcome, "audit");
        AuditRecord {
            id: 0,
            at: self.clock.now(),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            reason: reason.into(),
            before,
            after,
            outcome,
        }
    }

    /// Overrides in force now (expired ones excluded).
    pub fn active_overrides(&self) -> Vec<Override> {
        self.overrides.active(self.clock.now())
    }

    /// Adds an override: written, audited, then in force; or refused with nothing changed.
    pub fn add_override(
        &self,
        who: &Authorized,
        scope: OverrideScope,
        action: OverrideAction,
        reason: String,
        ttl: Dur,
    ) -> Result<Override, ChangeError> {
        let now = self.clock.now();
        let make = |id| Override {
            id,
            scope,
            action,
            reason,
            actor: who.actor.clone(),
            created_at: now,
            expires_at: now + ttl,
        };
        self.overrides.add(&self.store, make, |o| {
            self.audit(Entry {
                actor: &o.actor,
                action: "override.create",
                target: &scope_name(&o.scope),
                reason: &o.reason,
                before: serde_json::Value::Null,
                after: json(o),
                outcome: Outcome::Applied,
            })
            .map(|_| ())
        })
    }

    /// Deletes an override by id (`None` when there is none): written, audited, then out of force;
    /// or refused with nothing changed.
    pub fn delete_override(
        &self,
        who: &Authorized,
        id: &str,
        reason: &str,
    ) -> Result<Option<Override>, ChangeError> {
        self.overrides.remove(&self.store, id, |o| {
            self.audit(Entry {
                actor: who.actor(),
                action: "override.delete",
                target: &scope_name(&o.scope),
                reason,
                before: json(o),
                after: serde_json::Value::Null,
                outcome: Outcome::Applied,
            })
            .map(|_| ())
        })
    }

    /// Drops expired overrides, auditing each.
    pub(super) fn expire_overrides(&self, now: Timestamp) -> Result<(), ChangeError> {
        self.overrides
            .expire(&self.store, now, |o| {
                self.audit(Entry {
                    actor: "controller",
                    action: "override.expire",
                    target: &scope_name(&o.scope),
                    reason: &o.reason,
                    before: json(o),
                    after: serde_json::Value::Null,
                    outcome: Outcome::Applied,
                })
                .map(|_| ())
            })
            .map(|_| ())
    }

    /// Changes the mode: its audit record is written first, so a mode nobody can see in the log
    /// never takes effect.
    pub fn set_mode(
        &self,
        who: &Authorized,
        mode: Mode,
        reason: &str,
    ) -> Result<Mode, ChangeError> {
        let _writer = self.mode_writer.lock().unwrap_or_else(|e| e.into_inner());
        let before = self.mode();
        self.audit(Entry {
            actor: who.actor(),
            action: "mode",
            target: "*",
            reason,
            before: json(&before),
            after: json(&mode),
            outcome: Outcome::Applied,
        })
        .map_err(|source| ChangeError::Refused {
            what: format!(
                "the mode stays {}: its audit record could not be written",
                before.as_str()
            ),
            source,
        })?;
        *self.mode.write().unwrap_or_else(|e| e.into_inner()) = mode;
        self.metrics.set_mode(mode);
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

#[cfg(test)]
mod tests;
