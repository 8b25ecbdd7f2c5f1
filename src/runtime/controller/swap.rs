//! Overrides reach the gates at once: after an override is created or deleted, the API swaps the
//! gate of every group it covers to what the override says, without waiting for the next tick
//! (up to `tick` away); the tick then confirms it (the engine picks the same winning override, so
//! the gate does not change again and its version is not bumped twice).
//!
//! Only in active mode (in dry-run and observe the gates stay open), and only when an override
//! decides the gate: when the last pause of a group is removed, the gate stays as it is until the
//! next tick decides, the safe side.

use crate::config::Mode;
use crate::policy::{Gate, Override, OverrideAction, OverrideScope};
use crate::units::Dur;

use super::Controller;

impl Controller {
    /// Publishes, for every catch-up group an override decides now, the gate it sets.
    pub fn swap_gates(&self) {
        if self.mode() != Mode::Active {
            return;
        }
        let now = self.clock.now();
        let overrides = self.active_overrides();
        let lease = now + Dur(self.config.tick.0.saturating_mul(2));
        for g in &self.policy.groups {
            let Some(o) = winning(&overrides, &g.name, now) else {
                continue;
            };
            let gate = match o.action {
                OverrideAction::Pause => Gate::Paused,
                OverrideAction::Resume => Gate::Open,
                OverrideAction::FixedRate { rate } => Gate::Throttled {
                    rate,
                    burst: (rate * self.policy.throttle.burst.secs_f64()).max(1.0),
                    unit: g.unit,
                },
                OverrideAction::HoldRetention => continue,
            };
            let Ok(view) = self.gates.view(&g.name) else {
                continue;
            };
            let reasons = vec![format!("override {}: {}", o.id, o.describe())];
            let expires_at = view.expires_at.max(lease);
            let _ = self
                .gates
                .publish_gate(&g.name, &gate, expires_at, &reasons);
        }
    }
}

/// The override that decides `group`'s gate: a group's own before an all-groups one, newest first
/// (as the engine picks it).
fn winning<'a>(
    overrides: &'a [Override],
    group: &str,
    now: crate::units::Timestamp,
) -> Option<&'a Override> {
    overrides
        .iter()
        .filter(|o| o.covers_group(group, now) && o.action != OverrideAction::HoldRetention)
        .max_by_key(|o| (matches!(o.scope, OverrideScope::Group(_)), o.created_at))
}
