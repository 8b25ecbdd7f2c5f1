//! Whether lowering local retention is allowed at all right now: fresh disk data from every broker
//! and a tiered-storage copy that keeps up (DESIGN.md invariant 5).

use super::disks::DiskView;
use crate::observation::{BrokerCopyLag, BrokerId, Observation};
use crate::policy::config::Policy;
use crate::units::Timestamp;

/// Why retention may not be lowered right now, if it may not.
pub(super) fn lowering_blocked(
    obs: &Observation,
    disks: &DiskView,
    p: &Policy,
    now: Timestamp,
) -> Option<String> {
    if !disks.all_fresh {
        return Some("disk data is stale or missing: no config change".into());
    }
    copy_lag_blocks(
        disks.forecasts.iter().map(|f| f.broker),
        &obs.copy_lag,
        p,
        now,
    )
}

/// Why the copy lag of `brokers` forbids lowering local retention, if it does (DESIGN.md invariant
/// 5: Kafka deletes only uploaded segments, so lowering while uploads lag frees nothing). A broker
/// without a reading, with one older than `staleness.max_copy_lag_age`, or with more than
/// `retention.max_copy_lag` not yet copied blocks it; so does knowing no broker at all. The engine
/// and the retention guard's last hop both ask this.
pub fn copy_lag_blocks(
    brokers: impl IntoIterator<Item = BrokerId>,
    copy_lag: &[BrokerCopyLag],
    p: &Policy,
    now: Timestamp,
) -> Option<String> {
    let mut any = false;
    for broker in brokers {
        any = true;
        let Some(c) = copy_lag.iter().find(|c| c.broker == broker) else {
            return Some(format!(
                "no tiered-storage copy-lag reading for broker {broker}: cannot prove lowering frees space"
            ));
        };
        if now.since(c.sampled_at) > p.staleness.max_copy_lag_age {
            return Some(format!(
                "copy-lag reading of broker {} is {} old",
                c.broker,
                now.since(c.sampled_at)
            ));
        }
        if c.bytes > p.retention.max_copy_lag.0 {
            return Some(format!(
                "broker {} has {} not yet copied to remote storage (limit {}): lowering would free nothing",
                c.broker,
                crate::units::human_bytes(c.bytes as f64),
                p.retention.max_copy_lag
            ));
        }
    }
    (!any).then(|| "no broker's disk is known: cannot prove lowering frees space".to_string())
}
