//! Changes shared across an HA deployment: `/v1/resume` sent to any instance lifts the pauses
//! made on every instance, `/v1/mode` sets every instance's mode, and `DELETE /v1/overrides/{id}`
//! removes an override made on any instance.

use serde::{Deserialize, Serialize};

use super::{Authorized, Controller, Entry, json, scope_name};
use crate::config::Mode;
use crate::ha::node::OverrideDelete;
use crate::policy::{Override, OverrideAction, OverrideScope};
use crate::store::{Outcome, StoreError};
use crate::units::Timestamp;

/// A resume sent to one instance of an HA deployment, shared so that every instance removes the
/// pauses it covers (its own pauses made before `at`): `/v1/resume` works on any instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResumeMark {
    /// The instance it was sent to.
    pub instance: String,
    /// The groups it resumes.
    pub scope: OverrideScope,
    /// When: pauses made before it are removed.
    pub at: Timestamp,
    /// Who, and why.
    pub actor: String,
    /// Why.
    pub reason: String,
}

impl ResumeMark {
    /// Whether it removes `pause` (made on another instance): same scope, or every group.
    pub fn removes(&self, pause: &Override) -> bool {
        pause.action == OverrideAction::Pause
            && pause.created_at < self.at
            && (self.scope == OverrideScope::AllGroups || pause.scope == self.scope)
    }
}

/// A mode set on one instance of an HA deployment (key `mode` of the state topic: the newest
/// written wins), which every instance takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeMark {
    /// The instance it was sent to.
    pub instance: String,
    /// The mode.
    pub mode: Mode,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// What this instance still has to share with the fleet.
#[derive(Debug, Default)]
pub struct FleetOutbox {
    /// Resumes sent here.
    pub resumes: Vec<ResumeMark>,
    /// The newest mode set here.
    pub mode: Option<ModeMark>,
}

impl Controller {
    /// Audits here a delete of `o`, made on another instance and shared with the fleet as `mark`
    /// (the owner audits its own removal when it reads the mark).
    pub fn audit_fleet_delete(
        &self,
        who: &Authorized,
        o: &Override,
        mark: &OverrideDelete,
    ) -> Result<(), StoreError> {
        self.audit(Entry {
            actor: who.actor(),
            action: "override.delete",
            target: &scope_name(&o.scope),
            reason: &format!(
                "{} (made on {}; deleted fleet-wide)",
                mark.reason, mark.owner
            ),
            before: json(o),
            after: serde_json::Value::Null,
            outcome: Outcome::Applied,
        })
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(scope: OverrideScope, at: i64) -> Override {
        Override {
            id: "ovr-1".into(),
            scope,
            action: OverrideAction::Pause,
            reason: "r".into(),
            actor: "a".into(),
            created_at: Timestamp(at),
            expires_at: Timestamp(at + 3_600_000),
        }
    }

    #[test]
    fn a_resume_removes_earlier_pauses_of_its_groups_only() {
        let mark = |scope| ResumeMark {
            instance: "b".into(),
            scope,
            at: Timestamp(1_000),
            actor: "bob".into(),
            reason: "done".into(),
        };
        let one = OverrideScope::Group("ingest".into());
        let other = OverrideScope::Group("billing".into());
        assert!(mark(one.clone()).removes(&pause(one.clone(), 999)));
        assert!(
            !mark(one.clone()).removes(&pause(one.clone(), 1_000)),
            "made after"
        );
        assert!(
            !mark(one.clone()).removes(&pause(other.clone(), 10)),
            "another group"
        );
        assert!(
            !mark(one.clone()).removes(&pause(OverrideScope::AllGroups, 10)),
            "a pause of every group outlives a resume of one"
        );
        assert!(mark(OverrideScope::AllGroups).removes(&pause(other, 10)));
        let mut fixed = pause(one.clone(), 10);
        fixed.action = OverrideAction::Resume;
        assert!(!mark(one).removes(&fixed), "only pauses");
    }
}
