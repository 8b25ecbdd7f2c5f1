//! The control loop in an HA deployment (`[ha]`, docs/ha.md): before each tick the instance checks
//! that it leads in its epoch ([`crate::ha::Ha::fence`]: the state topic read to its end, its own
//! claim the newest); a leader decides, gates and shares its gates through the state topic; a
//! follower serves the leader's shared gates, each handing out `rate / live members`, and neither
//! reads the cluster's sensors nor writes a topic config.
//!
//! Retention in HA mode: the retention journal lives in the state topic ([`crate::ha::HaJournal`]),
//! so a new leader on any pod restores exactly the originals an old one recorded (DESIGN.md
//! invariant 9). Only the leader changes retention: its journal saves are fenced by its epoch, and
//! the intent is saved before every alter, so a deposed leader alters nothing. A follower answers a
//! restore or an adopt with the leader to send it to.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use tracing::{debug, warn};

use super::Entry;
use super::ha_sync::fleet_overrides;
use super::reconcile::Action;
use super::tick::Runtime;
use super::{ClusterIo, status};
use crate::ha::JournalNote;
use crate::ha::state::SharedDecision;
use crate::policy::{Gate, GroupDecision};
use crate::sensors::Limitation;
use crate::units::Timestamp;

impl<K: ClusterIo> Runtime<K> {
    /// `Ok(epoch)` when this instance may decide and act this tick (always without HA, epoch 0);
    /// `Err` for a follower.
    pub(super) async fn fence_ha(&self) -> Result<u64, ()> {
        let Some(ha) = &self.ha else {
            return Ok(0);
        };
        let fenced = ha.fence().await;
        let status = ha.status();
        self.ctl.metrics.ha.set(&status);
        self.ctl
            .ha_epoch
            .store(status.epoch, std::sync::atomic::Ordering::Relaxed);
        match fenced {
            Ok(epoch) => Ok(epoch),
            Err(why) => {
                debug!(%why, "not leading this tick");
                Err(())
            }
        }
    }

    /// Whether this instance may change retention: always without HA; with HA only the leader
    /// (whose journal saves are fenced by its epoch in any case).
    pub(super) fn ha_allows_retention(&self) -> bool {
        self.ha.as_ref().is_none_or(|h| h.leads())
    }

    /// Why a follower does not restore or adopt: the leader does (`what`: "restored", "adopted").
    pub(super) fn ha_refusal(&self, what: &str) -> String {
        let st = self.ha.as_ref().map(|h| h.status()).unwrap_or_default();
        format!(
            "not {what}: this instance ({}) is a follower of the HA deployment and changes no retention; send it to the leader ({}, epoch {})",
            st.instance,
            st.leader.as_deref().unwrap_or("none elected yet"),
            st.epoch
        )
    }

    /// The limitation HA mode adds to status: a local file journal that differs from the state
    /// topic's (the topic's is used; a warning, it disables nothing).
    pub(super) fn ha_limitation(&self) -> Option<Limitation> {
        let why = self.ha.as_ref()?.attached_journal()?.conflict()?;
        Some(Limitation {
            missing: why,
            disables: vec![],
        })
    }

    /// Records in the audit log what the HA journal did since the last tick (an import of the
    /// file journal, or a file journal left alone because it differs from the topic's).
    pub(super) async fn audit_journal_notes(&self) {
        let Some(journal) = self.ha.as_ref().and_then(|h| h.attached_journal()) else {
            return;
        };
        for note in journal.take_notes() {
            let (target, reason, before, after, outcome) = match &note {
                JournalNote::Imported {
                    from,
                    renamed,
                    epoch,
                    topics,
                } => (
                    from.display().to_string(),
                    format!(
                        "the local file journal was imported into the HA state topic in epoch {epoch} (the topic held none) and renamed {}",
                        renamed.display()
                    ),
                    serde_json::json!({ "file": from, "topics": topics }),
                    serde_json::json!({ "state_topic_epoch": epoch, "renamed": renamed }),
                    crate::store::Outcome::Applied,
                ),
                JournalNote::Conflict { file, epoch } => (
                    file.display().to_string(),
                    format!(
                        "the local file journal differs from the HA state topic's journal (epoch {epoch}): the topic's is used, the file is left as it is"
                    ),
                    serde_json::json!({ "file": file }),
                    serde_json::json!({ "state_topic_epoch": epoch }),
                    crate::store::Outcome::Refused(
                        "the state topic already holds a journal".into(),
                    ),
                ),
            };
            let _ = self
                .ctl
                .audit_async(Entry {
                    actor: "controller",
                    action: "journal.import",
                    target: &target,
                    reason: &reason,
                    before,
                    after,
                    outcome,
                })
                .await;
        }
    }

    /// In HA mode, each instance hands out `rate / live members`.
    pub(super) fn share_by_ha(&self) {
        let Some(ha) = &self.ha else { return };
        let members = ha.status().members;
        for group in self.ctl.policy.group_names() {
            let _ = self.ctl.gates.set_share(&group, Some(members));
        }
    }

    /// The gates a leader publishes this tick, as followers will serve them (expiry in wall time).
    pub(super) fn gates_to_share(&self, actions: &[Action]) -> BTreeMap<String, serde_json::Value> {
        if self.ha.is_none() {
            return BTreeMap::new();
        }
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Gate { group, publish } => {
                    let mut p: GroupDecision = (**publish).clone();
                    p.expires_at = self.ctl.clock.to_wall(p.expires_at);
                    serde_json::to_value(&p).ok().map(|v| (group.clone(), v))
                }
                Action::Retention { .. } | Action::Extension { .. } => None,
            })
            .collect()
    }

    /// A leader writes its gates to the state topic for the followers.
    pub(super) async fn share_with_followers(
        &self,
        epoch: u64,
        gates: BTreeMap<String, serde_json::Value>,
    ) {
        let Some(ha) = &self.ha else { return };
        if let Err(e) = ha.share_decision(epoch, gates).await {
            warn!(error = %e, "could not share the decision with the followers");
        }
    }

    /// The overrides the engine applies: without HA this instance's; with HA every instance's
    /// (a pause sent to any instance takes effect fleet-wide).
    pub(super) fn overrides_in_force(&self) -> Vec<crate::policy::Override> {
        match &self.ha {
            None => self.ctl.active_overrides(),
            Some(ha) => fleet_overrides(&self.ctl, ha),
        }
    }

    /// Publishes the leader's shared gates on this instance's gates, each at `rate / members`;
    /// whether any was served.
    pub(super) fn serve_shared(&self, shared: Option<SharedDecision>, members: u32) -> bool {
        let mut served = false;
        for (group, value) in shared.map(|s| s.groups).unwrap_or_default() {
            let Ok(d) = serde_json::from_value::<GroupDecision>(value) else {
                warn!(group, "a shared gate this version cannot read");
                continue;
            };
            let _ = self.ctl.gates.set_share(&group, Some(members));
            let now = self.ctl.clock.to_wall(self.ctl.clock.now());
            let (gate, expires_at, reasons) = if now <= d.expires_at {
                (d.gate, d.expires_at, d.reasons)
            } else {
                // No leader has renewed the decision: the fallback, served fresh so that clients
                // do not apply it a second time on top.
                let expired = (now.0 - d.expires_at.0) as f64 / 1000.0;
                let gate = fallback_gate(
                    &d.gate,
                    expired,
                    &self.fallback(&group),
                    &self.ctl.policy,
                    &group,
                );
                let why = format!(
                    "no leader has renewed the decision for {:.0}s past its expiry: fallback (hold, then ramp), as the client library does",
                    expired
                );
                let tick = self.ctl.config.tick.0 as i64;
                (gate, Timestamp(now.0 + 2 * tick), vec![why])
            };
            if let Err(e) = self
                .ctl
                .gates
                .publish_gate(&group, &gate, expires_at, &reasons)
            {
                warn!(group, error = %e, "shared gate not registered");
                continue;
            }
            let _ = self.ctl.gates.set_fallback(&group, self.fallback(&group));
            served = true;
        }
        served
    }

    /// A follower's tick: serve the leader's newest shared gates (each expires as the leader set
    /// it, after which the gate falls back like the client library: hold, then ramp), and show
    /// the HA status.
    pub(super) async fn follow(&mut self) {
        let Some(ha) = self.ha.clone() else { return };
        let served = self.serve_shared(ha.shared_decision(), ha.status().members);
        // Overrides made on any instance win over the shared decision until the leader's next.
        self.ctl.swap_gates_for(&self.overrides_in_force());
        if served && !self.ctl.ready.swap(true, Ordering::Relaxed) {
            self.ctl.metrics.ready.set(1);
        }
        let mut st = self.ctl.status.write().unwrap_or_else(|e| e.into_inner());
        if st.ha.is_none() {
            *st = status::initial(self.ctl.mode(), self.ctl.active_overrides());
        }
        st.mode = self.ctl.mode();
        st.ready = self.ctl.ready.load(Ordering::Relaxed);
        st.ha = Some(ha.status());
        st.observation = None;
        st.decision = None;
        st.limitations = self.ha_limitation().into_iter().collect();
    }
}

/// The gate once the leader's `decided` gate expired `expired` seconds ago: the client library's
/// fallback (`catchup_client::effective`, kept the same): the decision held for `hold_secs`, then
/// the rate from the larger of the throttled rate and the minimum, doubling every `ramp_secs`,
/// open once it passes ten times the minimum. Rates are the group's (before the members' share).
pub(super) fn fallback_gate(
    decided: &Gate,
    expired: f64,
    hint: &crate::actuators::gate::FallbackHint,
    policy: &crate::policy::Policy,
    group: &str,
) -> Gate {
    let hold = if hint.hold_secs > 0.0 {
        hint.hold_secs
    } else {
        900.0
    };
    let ramp = if hint.ramp_secs > 0.0 {
        hint.ramp_secs
    } else {
        300.0
    };
    if expired <= hold || *decided == Gate::Open {
        return decided.clone();
    }
    let g = policy.groups.iter().find(|g| g.name == group);
    let Some(min) = hint.min_rate.filter(|m| *m > 0.0) else {
        // No minimum known: nothing to ramp from; the client library would use its own.
        return decided.clone();
    };
    let start = match decided {
        Gate::Throttled { rate, .. } => rate.max(min),
        _ => min,
    };
    let doublings = ((expired - hold) / ramp).floor();
    let rate = start * 2f64.powf(doublings.min(30.0));
    if rate >= min * 10.0 {
        return Gate::Open;
    }
    let unit = g.map(|g| g.unit).unwrap_or_default();
    Gate::Throttled {
        rate,
        burst: (rate * policy.throttle.burst.secs_f64()).max(1.0),
        unit,
    }
}

#[cfg(test)]
mod tests {
    use crate::ha::state::SharedDecision;
    use crate::policy::{Gate, GateState, GroupDecision, Origin, RateUnit};
    use crate::units::Timestamp;

    fn shared(gate: Gate) -> serde_json::Value {
        serde_json::to_value(GroupDecision {
            gate,
            reasons: vec!["leader says so".into()],
            expires_at: Timestamp(9_000_000),
            origin: Origin::Auto,
            lag: None,
            consume_rate: None,
            produce_rate: None,
            drain_eta_secs: None,
            time_lag_secs: None,
            input: None,
        })
        .unwrap()
    }

    #[test]
    fn a_follower_serves_the_leader_s_gates_at_rate_over_live_members() {
        let rt = super::super::tests::runtime("ha-follow", Default::default());
        let decision = SharedDecision {
            epoch: 4,
            leader: "i0".into(),
            at: Timestamp(1),
            groups: [
                (
                    "billing".to_string(),
                    shared(Gate::Throttled {
                        rate: 300.0,
                        burst: 300.0,
                        unit: RateUnit::Records,
                    }),
                ),
                ("audit".to_string(), shared(Gate::Paused)),
            ]
            .into(),
        };
        assert!(
            !rt.serve_shared(None, 3),
            "nothing shared yet: nothing served"
        );
        assert!(rt.serve_shared(Some(decision), 3));
        let billing = rt.ctl.gates.view("billing").unwrap();
        assert_eq!(billing.state, GateState::Throttled);
        assert_eq!(billing.rate, Some(100.0), "300/s shared by 3 live members");
        assert_eq!(
            billing.expires_at,
            Timestamp(9_000_000),
            "the leader's expiry"
        );
        assert_eq!(billing.reasons, vec!["leader says so".to_string()]);
        assert_eq!(rt.ctl.gates.view("audit").unwrap().state, GateState::Paused);
    }

    #[test]
    fn without_a_leader_past_the_decision_s_expiry_followers_hold_then_ramp() {
        use crate::actuators::gate::FallbackHint;
        let policy = crate::policy::Policy::default();
        let hint = FallbackHint {
            hold_secs: 900.0,
            ramp_secs: 300.0,
            min_rate: Some(10.0),
        };
        let f =
            |gate: &Gate, expired: f64| super::fallback_gate(gate, expired, &hint, &policy, "g");
        assert_eq!(
            f(&Gate::Paused, 10.0),
            Gate::Paused,
            "held within fallback_hold"
        );
        assert_eq!(f(&Gate::Paused, 899.0), Gate::Paused);
        let rate = |g: Gate| match g {
            Gate::Throttled { rate, .. } => rate,
            other => panic!("{other:?}"),
        };
        assert_eq!(rate(f(&Gate::Paused, 901.0)), 10.0, "then the minimum");
        assert_eq!(rate(f(&Gate::Paused, 1201.0)), 20.0, "doubling every ramp");
        assert_eq!(rate(f(&Gate::Paused, 1501.0)), 40.0);
        assert_eq!(
            f(&Gate::Paused, 900.0 + 4.0 * 300.0 + 1.0),
            Gate::Open,
            "open at 10x"
        );
        let throttled = Gate::Throttled {
            rate: 25.0,
            burst: 25.0,
            unit: RateUnit::Records,
        };
        assert_eq!(
            rate(f(&throttled, 901.0)),
            25.0,
            "from the throttled rate if higher"
        );
        assert_eq!(f(&Gate::Open, 5000.0), Gate::Open);
    }
}
