//! The control loop in an HA deployment (`[ha]`, docs/ha.md): before each tick the instance checks
//! that it leads in its epoch ([`crate::ha::Ha::fence`]: the state topic read to its end, its own
//! claim the newest); a leader decides, gates and shares its gates through the state topic; a
//! follower serves the leader's shared gates, each handing out `rate / live members`, and neither
//! reads the cluster's sensors nor writes a topic config.
//!
//! Retention in HA mode: until the retention journal lives in the state topic, no instance of an
//! HA deployment changes `local.retention.ms` (a new leader on another pod could not know the
//! originals the old one recorded in its own state directory; DESIGN.md invariant 9). Status lists
//! this as a limitation, and restore and adopt answer so.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use tracing::{debug, warn};

use super::reconcile::Action;
use super::tick::Runtime;
use super::{ClusterIo, status};
use crate::ha::RETENTION_OFF;
use crate::policy::GroupDecision;
use crate::sensors::Limitation;

impl<K: ClusterIo> Runtime<K> {
    /// `Ok(epoch)` when this instance may decide and act this tick (always without HA, epoch 0);
    /// `Err` for a follower.
    pub(super) async fn fence_ha(&self) -> Result<u64, ()> {
        let Some(ha) = &self.ha else {
            return Ok(0);
        };
        let fenced = ha.fence().await;
        self.ctl.metrics.ha.set(&ha.status());
        match fenced {
            Ok(epoch) => Ok(epoch),
            Err(why) => {
                debug!(%why, "not leading this tick");
                Err(())
            }
        }
    }

    /// Whether this instance may change retention at all (not in HA mode for now).
    pub(super) fn ha_allows_retention(&self) -> bool {
        self.ha.is_none()
    }

    /// The limitation HA mode adds to status.
    pub(super) fn ha_limitation(&self) -> Option<Limitation> {
        self.ha.as_ref().map(|_| Limitation {
            missing: RETENTION_OFF.into(),
            disables: vec!["lower_retention".into(), "restore_retention".into()],
        })
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
                Action::Retention { .. } => None,
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

    /// A follower's tick: serve the leader's newest shared gates (each expires as the leader set
    /// it, after which the gate falls back like the client library: hold, then ramp), and show
    /// the HA status.
    pub(super) async fn follow(&mut self) {
        let Some(ha) = self.ha.clone() else { return };
        let members = ha.status().members;
        let mut served = false;
        if let Some(shared) = ha.shared_decision() {
            for (group, value) in shared.groups {
                let Ok(d) = serde_json::from_value::<GroupDecision>(value) else {
                    continue;
                };
                let _ = self.ctl.gates.set_share(&group, Some(members));
                if let Err(e) =
                    self.ctl
                        .gates
                        .publish_gate(&group, &d.gate, d.expires_at, &d.reasons)
                {
                    warn!(group, error = %e, "shared gate not registered");
                    continue;
                }
                let _ = self.ctl.gates.set_fallback(&group, self.fallback(&group));
                served = true;
            }
        }
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
