//! Overrides reach the gates at once: after an override is created or deleted, the API swaps the
//! gate of every group it covers to what the override says, without waiting for the next tick
//! (up to `tick` away); the tick then confirms it (the engine picks the same winning override, so
//! the gate does not change again and its version is not bumped twice).
//!
//! Only in active mode (in dry-run and observe the gates stay open), and only when an override
//! decides the gate. Every change also wakes the loop to decide at once ([`Controller::changed`]):
//! when the last pause of a group is removed, or the mode changes, the gate follows within one
//! sensor read (at most `sensor_timeout`), not a whole tick later; until then it stays as it was,
//! the safe side.

use crate::config::Mode;
use crate::policy::{Gate, OverrideAction};
use crate::units::Dur;

use super::Controller;

/// The least time between the start of a tick and a tick woken by a change.
pub const MIN_WOKEN_GAP: std::time::Duration = std::time::Duration::from_secs(1);

impl Controller {
    /// After an override or mode change: the gates an override now decides are swapped at once,
    /// and the loop is woken to decide everything else now (woken ticks are spaced by at least
    /// `MIN_WOKEN_GAP`, 1 s, so a burst of changes costs one sensor read, not one each). In an HA
    /// deployment the change is also shared with the fleet at once.
    pub fn changed(&self) {
        self.swap_gates();
        self.decide_now.notify_one();
        self.share_now.notify_one();
    }

    /// Publishes, for every catch-up group an override of this instance decides now, the gate it
    /// sets.
    pub fn swap_gates(&self) {
        self.swap_gates_for(&self.active_overrides());
    }

    /// Publishes, for every catch-up group one of `overrides` decides now, the gate it sets (in
    /// an HA deployment: every instance's overrides, as read from the state topic).
    pub fn swap_gates_for(&self, overrides: &[crate::policy::Override]) {
        if self.mode() != Mode::Active {
            return;
        }
        let now = self.clock.now();
        let lease = now + Dur(self.config.tick.0.saturating_mul(2));
        for g in &self.policy.groups {
            let Some(o) = crate::policy::winning_override(overrides, g, now) else {
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
