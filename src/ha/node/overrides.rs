//! Overrides across the fleet: each instance's list under `overrides/ID`, and the deletes sent to
//! an instance other than the override's own under `override-delete/OWNER/ID`.

use std::collections::BTreeSet;
use std::sync::PoisonError;

use serde::{Deserialize, Serialize};

use super::{Ha, Record, StateTopicError};
use crate::ha::state::{OVERRIDE_DELETE_PREFIX, OVERRIDES_PREFIX};
use crate::policy::Override;
use crate::units::Timestamp;

/// An override in force somewhere in the fleet, with the instance it was made on.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetOverride {
    /// The instance it was made on (its overrides list holds it).
    pub owner: String,
    /// The override.
    pub made: Override,
}

/// A delete of an override made on another instance (`DELETE /v1/overrides/{id}` works on any
/// instance), shared under `override-delete/OWNER/ID`. Every instance stops applying the override
/// once it reads this, its owner among them, which also removes it from its own list (audited
/// there as `override.delete` by `ACTOR via INSTANCE`). An owner that is gone for good needs to do
/// nothing: the override is out of force everywhere all the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideDelete {
    /// The instance the override was made on.
    pub owner: String,
    /// The override's id.
    pub id: String,
    /// The instance the delete was sent to.
    pub instance: String,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: Timestamp,
    /// When the override would have expired: the mark is of no use after that.
    pub expires_at: Timestamp,
}

impl OverrideDelete {
    /// Its key in the state topic.
    pub fn key(&self) -> String {
        format!("{OVERRIDE_DELETE_PREFIX}{}/{}", self.owner, self.id)
    }
}

impl Ha {
    /// Writes this instance's overrides in force under `overrides/ME`, when they changed since the
    /// last write: every instance reads every instance's list ([`Ha::fleet_overrides`]), so a
    /// pause sent to any instance takes effect fleet-wide.
    pub async fn publish_overrides(&self, list: &[Override]) -> Result<(), StateTopicError> {
        let s = &self.shared;
        let value = serde_json::to_value(list).unwrap_or_default();
        let text = value.to_string();
        let unchanged = s
            .published_overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            == Some(text.as_str());
        if unchanged {
            return Ok(());
        }
        let record = Record::Other {
            key: format!("{OVERRIDES_PREFIX}{}", s.me),
            value: Some(value),
        };
        s.writer.write(&record, s.session).await?;
        *s.published_overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(text);
        Ok(())
    }

    /// Every instance's overrides in force at `now`, as read from the state topic (this
    /// instance's own included once written), without duplicates and without those deleted
    /// through another instance ([`OverrideDelete`]).
    pub fn fleet_overrides(&self, now: Timestamp) -> Vec<Override> {
        let mut out: Vec<Override> = Vec::new();
        for f in self.fleet_overrides_by_owner(now) {
            if !out.contains(&f.made) {
                out.push(f.made);
            }
        }
        out
    }

    /// [`Ha::fleet_overrides`] with the instance each was made on.
    pub fn fleet_overrides_by_owner(&self, now: Timestamp) -> Vec<FleetOverride> {
        let deleted = self.deleted();
        let seen = self.seen();
        let mut out = Vec::new();
        for (key, value) in &seen.other {
            let Some(owner) = key.strip_prefix(OVERRIDES_PREFIX) else {
                continue;
            };
            let Ok(list) = serde_json::from_value::<Vec<Override>>(value.clone()) else {
                continue;
            };
            for o in list {
                if now < o.expires_at && !deleted.contains(&(owner.to_string(), o.id.clone())) {
                    out.push(FleetOverride {
                        owner: owner.to_string(),
                        made: o,
                    });
                }
            }
        }
        out
    }

    /// Whether the override `id` made on `owner` was deleted through another instance.
    pub fn is_deleted(&self, owner: &str, id: &str) -> bool {
        self.deleted()
            .contains(&(owner.to_string(), id.to_string()))
    }

    /// The deletes of overrides made on this instance, sent to others.
    pub fn deletes_of_mine(&self) -> Vec<OverrideDelete> {
        self.deletes()
            .into_iter()
            .filter(|d| d.owner == self.shared.me)
            .collect()
    }

    /// Shares a delete with the fleet; the override is out of force on every instance once this
    /// returns `Ok` and they have read it.
    pub async fn share_delete(&self, mark: &OverrideDelete) -> Result<(), StateTopicError> {
        let value = serde_json::to_value(mark).unwrap_or_default();
        self.publish(mark.key(), value).await
    }

    fn deletes(&self) -> Vec<OverrideDelete> {
        self.records(OVERRIDE_DELETE_PREFIX)
            .into_iter()
            .filter_map(|v| serde_json::from_value::<OverrideDelete>(v).ok())
            .collect()
    }

    fn deleted(&self) -> BTreeSet<(String, String)> {
        self.deletes()
            .into_iter()
            .map(|d| (d.owner, d.id))
            .collect()
    }
}
