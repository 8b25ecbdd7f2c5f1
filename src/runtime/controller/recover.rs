//! Start-up recovery of the overrides: the last change of `overrides.jsonl` may have been cut
//! short by a crash, after its line was written and before its audit record. Such a change was
//! never acknowledged, so it must not be in force: the audit log (read from its end) decides.

use tracing::warn;

use crate::store::{Outcome, StoreError};

use super::{Controller, Entry, OVERRIDES_FILE, json, overrides, scope_name};
use crate::policy::Override;

impl Controller {
    /// At start: records that a line of the overrides log torn by a crash was cut.
    pub(super) fn audit_cut(&self, cut: &crate::store::Cut) -> Result<(), StoreError> {
        self.audit(Entry {
            actor: "controller",
            action: "state.repair",
            target: OVERRIDES_FILE,
            reason: &format!(
                "line {} of {OVERRIDES_FILE} (from byte {}) was torn by a crash mid-append and was cut: it was never fsynced, so never acknowledged",
                cut.line, cut.offset
            ),
            before: serde_json::json!({ "line": cut.line, "offset": cut.offset, "text": cut.text }),
            after: serde_json::json!({ "cut": true }),
            outcome: Outcome::Applied,
        })
        .map(|_| ())
    }

    /// At start: the last change of the overrides log may have been cut short by a crash before
    /// its audit record, so never acknowledged. An override written but not audited is taken out
    /// of force (`override.discard`); a removal written but not audited is undone (the override
    /// is in force again, `override.reinstate`; an expired one expires again at the next tick).
    pub(super) fn discard_unaudited(&self) -> Result<(), StoreError> {
        let removed = self.overrides.last_removed();
        let (last, unaudited) = self.scan_audit(removed)?;
        for o in &unaudited {
            warn!(id = %o.id, "override removal written before a crash but never audited nor acknowledged: the override is in force again");
            self.audit(Entry {
                actor: "controller",
                action: "override.reinstate",
                target: &scope_name(&o.scope),
                reason: "its removal was written to overrides.jsonl just before a crash, before its audit record: never acknowledged, so the override is in force again",
                before: serde_json::Value::Null,
                after: json(o),
                outcome: Outcome::Applied,
            })?;
        }
        self.overrides.reinstate(&self.store, &unaudited)?;
        for o in self.overrides.discard_unaudited(&self.store, last)? {
            warn!(id = %o.id, "override written before a crash but never audited nor acknowledged: discarded");
            self.audit(Entry {
                actor: "controller",
                action: "override.discard",
                target: &scope_name(&o.scope),
                reason: "written to overrides.jsonl just before a crash, before its audit record: never acknowledged, so not in force",
                before: json(&o),
                after: serde_json::Value::Null,
                outcome: Outcome::Applied,
            })?;
        }
        Ok(())
    }

    /// Reads the audit log from its end: the number of the newest override with an
    /// `override.create` record (0: none), and those of `removed` whose create record comes
    /// before any record of their removal (delete, expire, discard): removed unaudited. One whose
    /// create record is never found was never acknowledged and stays removed.
    fn scan_audit(&self, removed: &[Override]) -> Result<(u64, Vec<Override>), StoreError> {
        let mut last = (self.overrides.all().is_empty()).then_some(0);
        let mut open: Vec<&Override> = removed.iter().collect();
        let mut unaudited = Vec::new();
        let mut before = None;
        while last.is_none() || !open.is_empty() {
            let (page, more) = self.store.audit_page_sized(1000, before, 4 << 20)?;
            for r in &page {
                let id = match r.action.as_str() {
                    "override.create" => r.after["id"].as_str(),
                    "override.delete" | "override.expire" | "override.discard" => {
                        r.before["id"].as_str()
                    }
                    _ => None,
                };
                let Some(id) = id else { continue };
                if r.action == "override.create" && last.is_none() {
                    last = overrides::id_number(id);
                }
                if let Some(i) = open.iter().position(|o| o.id == id) {
                    let o = open.remove(i);
                    if r.action == "override.create" {
                        unaudited.push(o.clone());
                    }
                }
            }
            match page.last() {
                Some(r) if more => before = Some(r.id),
                _ => break,
            }
        }
        Ok((last.unwrap_or(0), unaudited))
    }
}
