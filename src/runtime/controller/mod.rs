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
use tokio::sync::{mpsc, oneshot};

use super::status::Status;
use crate::actuators::gate::GateBoard;
use crate::clock::Clock;
use crate::config::{Mode, Role, RunConfig, Tokens};
use crate::metrics::Metrics;
use crate::policy::{Override, OverrideAction, OverrideScope, Policy};
use crate::store::{Outcome, StateDir, StoreError};
use crate::units::{Dur, Timestamp};

mod audit;
mod overrides;
mod recover;
mod resume;
mod swap;
pub use audit::Entry;
pub use resume::{FleetOutbox, ModeMark, ResumeMark};
pub(crate) use swap::MIN_WOKEN_GAP;

pub use overrides::{
    ChangeError, LEGACY_IDS_FILE, LEGACY_OVERRIDES_FILE, OVERRIDES_FILE, OverrideBook,
};

/// Proof that a request carried the operator token, and who made it. Only
/// [`Controller::authorize`] makes one, and every mutation the API can ask for takes one, so a
/// write route cannot be declared without passing the token check. A clone is the same proof, for
/// work handed to another thread.
#[derive(Clone, Debug)]
pub struct Authorized {
    actor: String,
}

impl Authorized {
    /// An actor authorized on another instance of the HA deployment (its change carried out
    /// here, e.g. a resume sent there removing a pause made here).
    pub(crate) fn from_fleet(actor: String) -> Authorized {
        Authorized { actor }
    }

    /// Who acted (for the audit log).
    pub fn actor(&self) -> &str {
        &self.actor
    }
}

/// Why a request was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthorized {
    /// No operator token is configured: mutating endpoints are disabled.
    #[error(
        "no operator token is configured (api.token_file, api.tokens or CATCHUP_API_TOKEN): this endpoint is disabled"
    )]
    NoToken,
    /// The request's bearer token is missing or wrong.
    #[error("missing or wrong bearer token (Authorization: Bearer TOKEN)")]
    BadToken,
    /// The token is right but its role may not do this.
    #[error("the token {name:?} is a {role} token: this endpoint needs an operator token")]
    Forbidden {
        /// The token's name.
        name: String,
        /// Its role.
        role: &'static str,
    },
}

/// What a route needs (see [`Controller::authenticate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, readiness, the OpenAPI document.
    Public,
    /// The gate endpoints: a consumer or operator token once any consumer token is configured.
    Gate,
    /// Status, the overrides list, metrics: the operator token with `api.auth_reads`.
    Read,
    /// The audit log: the operator token whenever one is configured.
    Audit,
    /// Every mutation: the operator token, always.
    Write,
}

/// Who called: the matching token's name and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// The number of the controller's run, for gate versions: `{"run": 3}`. Run `r` hands out gate
/// versions from `r × 2³²`, so versions never go back across restarts.
pub const GATE_RUNS_FILE: &str = "gate-runs.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct GateRun {
    run: u64,
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
    /// Overrides, persisted in `overrides.jsonl`.
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
    /// The API tokens (no operator token: mutating endpoints are refused).
    tokens: Tokens,
    /// To the loop.
    pub commands: mpsc::Sender<Command>,
    /// Gate long-polls that may wait at once (`api.limits.max_long_polls`).
    pub long_polls: Arc<tokio::sync::Semaphore>,
    /// Wakes the loop to decide now (after an override or mode change), not a tick later.
    pub(crate) decide_now: tokio::sync::Notify,
    /// Wakes the HA sync task to share this instance's overrides now (HA mode only).
    pub(crate) share_now: tokio::sync::Notify,
    /// In an HA deployment, the epoch this instance is in (0: none yet, or no HA); audit records
    /// carry it.
    pub ha_epoch: std::sync::atomic::AtomicU64,
    /// In an HA deployment (set by the HA sync task): resumes and mode changes made here still to
    /// be shared with the fleet, which applies them on every instance.
    pub(crate) fleet: Mutex<Option<FleetOutbox>>,
    /// In an HA deployment (set by the HA sync task): this instance's membership, for the API's
    /// fleet-wide requests (a delete of an override made on another instance).
    pub(crate) ha: std::sync::OnceLock<Arc<crate::ha::Ha>>,
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
        tokens: Tokens,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Controller>, mpsc::Receiver<Command>), RuntimeError> {
        if store.is_read_only() {
            return Err(StoreError::ReadOnly {
                path: store.path().to_path_buf(),
            }
            .into());
        }
        let limits = &config.api.limits;
        store.set_audit_rotation(crate::store::Rotation {
            max_bytes: limits.audit_file_size.0,
            keep: limits.audit_files as usize,
        });
        let (overrides, cut) = OverrideBook::load(&store)?;
        // Written before any gate is served: this run's versions start above every earlier run's.
        let run = store.load::<GateRun>(GATE_RUNS_FILE)?.map_or(0, |r| r.run) + 1;
        store.save(GATE_RUNS_FILE, &GateRun { run })?;
        let gates = GateBoard::new(config.gate.instances).starting_at((run << 32) + 1);
        gates.register(&policy.group_names(), clock.now());
        let (tx, rx) = mpsc::channel(16);
        let metrics = Metrics::new();
        metrics.set_mode(config.mode);
        let status = super::status::initial(config.mode, overrides.all());
        let config_long_polls = config.api.limits.max_long_polls;
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
            tokens,
            commands: tx,
            long_polls: Arc::new(tokio::sync::Semaphore::new(config_long_polls as usize)),
            decide_now: tokio::sync::Notify::new(),
            share_now: tokio::sync::Notify::new(),
            ha_epoch: std::sync::atomic::AtomicU64::new(0),
            fleet: Mutex::new(None),
            ha: std::sync::OnceLock::new(),
        };
        if let Some(cut) = cut {
            c.audit_cut(&cut)?;
        }
        c.discard_unaudited()?;
        // A pause or rate persisted before a restart is in force from the first gate version
        // served, not from the first tick (whoever builds the controller: the service or a test).
        c.swap_gates();
        Ok((Arc::new(c), rx))
    }

    /// Who a request with `bearer` is, for a route that needs `access`: `None` when the route
    /// needs no token (and none matched). Tokens are compared in constant time.
    pub fn authenticate(
        &self,
        bearer: Option<&str>,
        access: Access,
    ) -> Result<Option<Caller>, Unauthorized> {
        let caller = bearer.and_then(|b| self.tokens.find(b)).map(|t| Caller {
            name: t.name.clone(),
            role: t.role,
        });
        let has_operator = self.tokens.has(Role::Operator);
        let needs_operator = match access {
            Access::Public => return Ok(caller),
            Access::Gate => {
                return match caller {
                    Some(c) => Ok(Some(c)),
                    None if self.tokens.has(Role::Consumer) => Err(Unauthorized::BadToken),
                    None => Ok(None),
                };
            }
            Access::Read => has_operator && self.config.api.auth_reads,
            Access::Audit => has_operator,
            Access::Write if !has_operator => return Err(Unauthorized::NoToken),
            Access::Write => true,
        };
        if !needs_operator {
            return Ok(caller);
        }
        match caller {
            Some(c) if c.role == Role::Operator => Ok(Some(c)),
            Some(c) => Err(Unauthorized::Forbidden {
                name: c.name,
                role: "consumer",
            }),
            None => Err(Unauthorized::BadToken),
        }
    }

    /// Whether a token of `role` is configured.
    pub fn tokens_have(&self, role: Role) -> bool {
        self.tokens.has(role)
    }

    /// The proof a mutation needs: an operator `caller`, acting as its token's name, with what the
    /// request says about who it is (`claimed`, e.g. `alice`) after it: `operator:alice`.
    pub fn authorize(
        &self,
        caller: Option<&Caller>,
        claimed: Option<&str>,
    ) -> Result<Authorized, Unauthorized> {
        let caller = match caller {
            Some(c) if c.role == Role::Operator => c,
            Some(c) => {
                return Err(Unauthorized::Forbidden {
                    name: c.name.clone(),
                    role: "consumer",
                });
            }
            None if self.tokens.has(Role::Operator) => return Err(Unauthorized::BadToken),
            None => return Err(Unauthorized::NoToken),
        };
        let claimed: String = claimed
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != caller.name)
            .map(|a| a.chars().filter(|c| !c.is_control()).take(100).collect())
            .unwrap_or_default();
        let actor = if claimed.is_empty() {
            caller.name.clone()
        } else {
            format!("{}:{claimed}", caller.name)
        };
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
        let limits = &self.config.api.limits;
        let (per_scope, total) = (
            limits.max_overrides_per_scope as usize,
            limits.max_overrides as usize,
        );
        let room_scope = scope.clone();
        let room = move |listed: &[Override]| {
            let scope = room_scope;
            let live: Vec<&Override> = listed.iter().filter(|o| o.expires_at > now).collect();
            let same = live.iter().filter(|o| o.scope == scope).count();
            if live.len() >= total {
                Err(format!(
                    "{} overrides are in force, the most api.limits.max_overrides allows: delete one first",
                    live.len()
                ))
            } else if same >= per_scope {
                Err(format!(
                    "{same} overrides of {} are in force, the most api.limits.max_overrides_per_scope allows: delete one first",
                    scope_name(&scope)
                ))
            } else {
                Ok(())
            }
        };
        // In HA the id names the instance, so that ids are unique across the fleet.
        let origin = self.ha.get().map(|ha| ha.instance().to_string());
        let make = |id: String| Override {
            id: match origin {
                Some(instance) => format!("{id}@{instance}"),
                None => id,
            },
            scope,
            action,
            reason,
            actor: who.actor.clone(),
            created_at: now,
            expires_at: now + ttl,
        };
        self.overrides.add(&self.store, room, make, |o| {
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
