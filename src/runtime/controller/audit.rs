//! The audit log: every action, automatic or manual, recorded with who, why, before and after,
//! and counted in the metrics.

use std::sync::Arc;

use tracing::{info, warn};

use super::Controller;
use crate::store::{AuditRecord, Outcome, StoreError};
use crate::units::Timestamp;

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

impl Controller {
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
        self.audit_async_at(entry, self.clock.now()).await
    }

    /// [`Controller::audit_async`] of an action decided at `at`, whose record is written only
    /// once it is done: a retention write's record follows its read-back, which can take a sensor
    /// timeout when the broker is slow or unreachable, so its time is when it was decided (the
    /// write went out right after), not when the record was written.
    pub async fn audit_async_at(
        self: &Arc<Self>,
        entry: Entry<'_>,
        at: Timestamp,
    ) -> Result<AuditRecord, StoreError> {
        let mut record = self.record(entry);
        record.at = at;
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
            epoch: match self.ha_epoch.load(std::sync::atomic::Ordering::Relaxed) {
                0 => None,
                e => Some(e),
            },
        }
    }
}
