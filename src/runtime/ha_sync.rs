//! The HA fast path: a task beside the control loop that shares this instance's overrides with
//! the fleet through the state topic and swaps the gates every instance's overrides decide, so a
//! pause sent to any instance reaches every gate without waiting for a tick (docs/ha.md).

use std::sync::Arc;

use tracing::{debug, warn};

use super::Controller;
use super::controller::{Authorized, FleetOutbox, ModeMark, ResumeMark};
use crate::ha::Ha;
use crate::ha::state::{MODE_KEY, RESUME_PREFIX};
use crate::policy::Override;
use crate::units::Timestamp;

/// Every instance's overrides in force, this instance's own included (also before the state topic
/// has them back).
pub(super) fn fleet_overrides(ctl: &Controller, ha: &Ha) -> Vec<Override> {
    let mut all = ha.fleet_overrides(ctl.clock.now());
    for o in ctl.active_overrides() {
        // Deleted through another instance, not yet removed here: out of force already.
        if !all.contains(&o) && !ha.is_deleted(ha.instance(), &o.id) {
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
    *ctl.fleet.lock().unwrap_or_else(|e| e.into_inner()) = Some(FleetOutbox::default());
    let _ = ctl.ha.set(ha.clone());
    let mut mode_seen: Option<ModeMark> = None;
    let mut restores_taken = std::collections::BTreeSet::new();
    let mut swept_at = tokio::time::Instant::now();
    let mut sweeping: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = ctl.share_now.notified() => {}
        }
        share(&ctl, &ha).await;
        if let Err(e) = ha.publish_overrides(&ctl.active_overrides()).await {
            warn!(error = %e, "could not share this instance's overrides");
        }
        if let Err(e) = ha.refresh().await {
            debug!(error = %e, "state topic not read to its end");
            continue;
        }
        apply_resumes(&ctl, &ha).await;
        apply_deletes(&ctl, &ha).await;
        apply_mode(&ctl, &ha, &mut mode_seen).await;
        super::ha_forward::carry_out_forwarded(&ctl, &ha, &mut restores_taken);
        let fleet = fleet_overrides(&ctl, &ha);
        ctl.swap_gates_for(&fleet);
        let own = ctl.active_overrides();
        let others: Vec<Override> = fleet.into_iter().filter(|o| !own.contains(o)).collect();
        let leads = ha.leads();
        // The sweep runs beside this task (its writes must not hold up a fleet-wide pause), one
        // at a time.
        if leads
            && swept_at.elapsed() >= SWEEP_EVERY
            && sweeping.as_ref().is_none_or(|t| t.is_finished())
        {
            swept_at = tokio::time::Instant::now();
            let (ha, now) = (ha.clone(), ctl.clock.now());
            sweeping = Some(tokio::spawn(async move {
                match ha.tombstone_stale(now).await {
                    Ok(0) => {}
                    Ok(n) => debug!(records = n, "tombstoned state-topic records of no more use"),
                    Err(e) => {
                        warn!(error = %e, "could not tombstone stale state-topic records: retried")
                    }
                }
            }));
        }
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

/// Writes every resume made here since the last sync to the state topic, each under its own key
/// (`resume/ID/AT_MS`, never overwritten, so a restart loses none), and the newest mode set here
/// under `mode`; what could not be written is kept for the next sync.
async fn share(ctl: &Controller, ha: &Ha) {
    let outbox = ctl
        .fleet
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut failed = FleetOutbox::default();
    for mut mark in outbox.resumes {
        mark.instance = ha.instance().to_string();
        let key = format!("{RESUME_PREFIX}{}/{}", mark.instance, mark.at.0);
        let value = serde_json::to_value(&mark).unwrap_or_default();
        if let Err(e) = ha.publish(key, value).await {
            warn!(error = %e, "could not share a resume with the fleet: retried");
            failed.resumes.push(mark);
        }
    }
    if let Some(mut mark) = outbox.mode {
        mark.instance = ha.instance().to_string();
        let value = serde_json::to_value(&mark).unwrap_or_default();
        if let Err(e) = ha.publish(MODE_KEY.to_string(), value).await {
            warn!(error = %e, "could not share the mode with the fleet: retried");
            failed.mode = Some(mark);
        }
    }
    if (failed.mode.is_some() || !failed.resumes.is_empty())
        && let Some(now) = ctl.fleet.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
    {
        failed.resumes.append(&mut now.resumes);
        now.resumes = failed.resumes;
        // A mode set here since the failed write is newer than it.
        now.mode = now.mode.take().or(failed.mode);
    }
}

/// Takes the fleet's mode (the newest set on any instance) when another instance set it since
/// the last look, audited here as `mode` by `ACTOR via INSTANCE`.
async fn apply_mode(ctl: &Arc<Controller>, ha: &Ha, seen: &mut Option<ModeMark>) {
    let Some(mark) = ha
        .record(MODE_KEY)
        .and_then(|v| serde_json::from_value::<ModeMark>(v).ok())
    else {
        return;
    };
    if seen.as_ref() == Some(&mark) {
        return;
    }
    if mark.instance != ha.instance() && ctl.mode() != mark.mode {
        let m = mark.clone();
        let set = ctl
            .blocking(move |c| {
                let who = Authorized::from_fleet(format!("{} via {}", m.actor, m.instance));
                c.set_mode(
                    &who,
                    m.mode,
                    &format!("mode set on {}: {}", m.instance, m.reason),
                )
            })
            .await;
        match set {
            Ok(_) => ctl.changed(),
            Err(e) => {
                warn!(error = %e, "could not take the mode another instance set: retried");
                return;
            }
        }
    }
    *seen = Some(mark);
}

/// Removes the pauses made on this instance that a resume sent to another instance covers (made
/// before it, same group or every group), each audited here as `override.delete` by
/// `ACTOR via INSTANCE`.
async fn apply_resumes(ctl: &Arc<Controller>, ha: &Ha) {
    let marks: Vec<ResumeMark> = ha
        .records(RESUME_PREFIX)
        .into_iter()
        .filter_map(|v| serde_json::from_value::<ResumeMark>(v).ok())
        .filter(|m| m.instance != ha.instance())
        .collect();
    let removals: Vec<(String, ResumeMark)> = ctl
        .active_overrides()
        .into_iter()
        .filter_map(|o| {
            marks
                .iter()
                .find(|m| m.removes(&o))
                .map(|m| (o.id.clone(), m.clone()))
        })
        .collect();
    if removals.is_empty() {
        return;
    }
    let removed = ctl
        .blocking(move |c| {
            let mut n = 0;
            for (id, m) in removals {
                let who = Authorized::from_fleet(format!("{} via {}", m.actor, m.instance));
                let reason = format!("resume sent to {}: {}", m.instance, m.reason);
                if c.delete_override(&who, &id, &reason)?.is_some() {
                    n += 1;
                }
            }
            Ok::<_, crate::runtime::ChangeError>(n)
        })
        .await;
    match removed {
        Ok(0) => {}
        Ok(_) => ctl.changed(),
        Err(e) => warn!(error = %e, "could not remove a pause another instance resumed"),
    }
}

/// Removes the overrides made on this instance that a delete sent to another instance names,
/// each audited here as `override.delete` by `ACTOR via INSTANCE`.
async fn apply_deletes(ctl: &Arc<Controller>, ha: &Ha) {
    let own: Vec<String> = ctl.active_overrides().into_iter().map(|o| o.id).collect();
    let marks: Vec<_> = ha
        .deletes_of_mine()
        .into_iter()
        .filter(|m| own.contains(&m.id))
        .collect();
    if marks.is_empty() {
        return;
    }
    let removed = ctl
        .blocking(move |c| {
            for m in marks {
                let who = Authorized::from_fleet(format!("{} via {}", m.actor, m.instance));
                let reason = format!("delete sent to {}: {}", m.instance, m.reason);
                c.delete_override(&who, &m.id, &reason)?;
            }
            Ok::<_, crate::runtime::ChangeError>(())
        })
        .await;
    match removed {
        Ok(()) => ctl.changed(),
        Err(e) => {
            warn!(error = %e, "could not remove an override deleted through another instance: retried")
        }
    }
}

/// How often the leader tombstones what in the state topic is of no more use.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the HA fast path reads the state topic.
pub(super) const SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
