//! The HA fast path: a task beside the control loop that shares this instance's overrides with
//! the fleet through the state topic and swaps the gates every instance's overrides decide, so a
//! pause sent to any instance reaches every gate without waiting for a tick (docs/ha.md).

use std::sync::Arc;

use tracing::{debug, warn};

use super::Controller;
use crate::ha::Ha;
use crate::policy::Override;
use crate::units::Timestamp;

/// Every instance's overrides in force, this instance's own included (also before the state topic
/// has them back).
pub(super) fn fleet_overrides(ctl: &Controller, ha: &Ha) -> Vec<Override> {
    let mut all = ha.fleet_overrides(ctl.clock.now());
    for o in ctl.active_overrides() {
        if !all.contains(&o) {
            all.push(o);
        }
    }
    all
}

/// The HA fast path, a task beside the control loop (so a long tick never delays it): every
/// [`SYNC_EVERY`], and at once after an override change on this instance, it writes this
/// instance's overrides when they changed, reads the state topic to its end, and swaps the gates
/// every instance's overrides decide (a pause sent to any instance reaches every gate without
/// waiting for a tick). It wakes the loop when the loop has something new to act on: this
/// instance has just won the leadership, another instance's overrides changed, or (on a
/// follower) the leader shared a new decision.
pub(super) async fn sync(ctl: Arc<Controller>, ha: Arc<Ha>) {
    let mut every = tokio::time::interval(SYNC_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut seen: (Vec<Override>, Option<(u64, Timestamp)>) = (Vec::new(), None);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = ctl.share_now.notified() => {}
        }
        if let Err(e) = ha.publish_overrides(&ctl.active_overrides()).await {
            warn!(error = %e, "could not share this instance's overrides");
        }
        if let Err(e) = ha.refresh().await {
            debug!(error = %e, "state topic not read to its end");
            continue;
        }
        let fleet = fleet_overrides(&ctl, &ha);
        ctl.swap_gates_for(&fleet);
        let own = ctl.active_overrides();
        let others: Vec<Override> = fleet.into_iter().filter(|o| !own.contains(o)).collect();
        let leads = ha.leads();
        let decision = if leads {
            None
        } else {
            ha.shared_decision().map(|d| (d.epoch, d.at))
        };
        let now = (others, decision);
        let became_leader = leads && !leading;
        leading = leads;
        if became_leader || now != seen {
            seen = now;
            ctl.decide_now.notify_one();
        }
    }
}

/// Shows every change of the HA status (role, epoch, leader, members) in `/v1/status` as it
/// happens, so a leader that stood down shows it at once, not when its tick in progress ends.
pub(super) async fn show(ctl: Arc<Controller>, ha: Arc<Ha>) {
    let mut changes = ha.watch();
    while changes.changed().await.is_ok() {
        let now = changes.borrow_and_update().clone();
        let mut st = ctl.status.write().unwrap_or_else(|e| e.into_inner());
        if st.ha.is_some() {
            st.ha = Some(now);
        }
    }
}

/// How often the HA fast path reads the state topic.
pub(super) const SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
