//! HA metrics (`[ha]`, docs/ha.md): role, epoch, live members and state-topic lag, labelled by
//! this instance's id. Without `[ha]` no series is exported.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use catchup_proto::status::{HaRole, HaStatus};

/// Label set with this instance's id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabel {
    /// The instance's HA id.
    pub instance: String,
}

/// The HA gauges.
#[derive(Default)]
pub struct HaMetrics {
    /// 1 while this instance leads, 0 as a follower.
    pub leader: Family<InstanceLabel, Gauge>,
    /// The newest epoch this instance has seen.
    pub epoch: Family<InstanceLabel, Gauge>,
    /// Live instances of the deployment.
    pub members: Family<InstanceLabel, Gauge>,
    /// State-topic records not yet read at the last read.
    pub state_lag: Family<InstanceLabel, Gauge>,
}

impl HaMetrics {
    /// Registers the gauges.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ha_leader",
            "1 while this instance leads its HA deployment",
            self.leader.clone(),
        );
        registry.register(
            "ha_epoch",
            "Newest leadership epoch this instance has seen",
            self.epoch.clone(),
        );
        registry.register(
            "ha_members",
            "Live instances of the HA deployment",
            self.members.clone(),
        );
        registry.register(
            "ha_state_lag_records",
            "Records of the HA state topic not yet read at the last read",
            self.state_lag.clone(),
        );
    }

    /// Sets the gauges from `status`.
    pub fn set(&self, status: &HaStatus) {
        let l = InstanceLabel {
            instance: status.instance.clone(),
        };
        let leads = i64::from(status.role == HaRole::Leader);
        self.leader.get_or_create(&l).set(leads);
        self.epoch
            .get_or_create(&l)
            .set(i64::try_from(status.epoch).unwrap_or(i64::MAX));
        self.members
            .get_or_create(&l)
            .set(i64::from(status.members));
        self.state_lag.get_or_create(&l).set(status.state_lag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha_gauges_appear_only_once_set_and_follow_the_status() {
        let m = HaMetrics::default();
        let mut registry = Registry::with_prefix("catchup");
        m.register(&mut registry);
        let text = |r: &Registry| {
            let mut s = String::new();
            prometheus_client::encoding::text::encode(&mut s, r).unwrap();
            s
        };
        assert!(
            !text(&registry).contains("catchup_ha_leader{"),
            "no series without HA"
        );
        m.set(&HaStatus {
            role: HaRole::Leader,
            epoch: 7,
            leader: Some("i1".into()),
            members: 3,
            instance: "i1".into(),
            state_lag: 2,
        });
        let t = text(&registry);
        for line in [
            "catchup_ha_leader{instance=\"i1\"} 1",
            "catchup_ha_epoch{instance=\"i1\"} 7",
            "catchup_ha_members{instance=\"i1\"} 3",
            "catchup_ha_state_lag_records{instance=\"i1\"} 2",
        ] {
            assert!(t.contains(line), "{line} in {t}");
        }
    }
}
