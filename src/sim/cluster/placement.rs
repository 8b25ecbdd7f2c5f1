//! Where partitions live: leaders and replicas over the brokers, and each partition's share of its
//! topic's traffic. The cluster and the optimal bound both place partitions this way.

use crate::sim::scenario::Scenario;

/// Partition placement of topic `k`: (leader index, replica indices, share of the topic's traffic) per
/// partition. Leaders rotate per topic and replicas follow the leader round-robin, as Kafka's default
/// assignment does; partitions with a replica on the `skew` broker carry `weight` times the traffic.
pub fn layout(scenario: &Scenario, k: usize) -> Vec<(usize, Vec<usize>, f64)> {
    let n = scenario.cluster.brokers.max(1);
    let spec = &scenario.topics[k];
    let mut out: Vec<(usize, Vec<usize>, f64)> = (0..spec.partitions)
        .map(|p| {
            let leader = (p + k) % n;
            let replicas: Vec<usize> = (0..spec.replication_factor.min(n))
                .map(|j| (leader + j) % n)
                .collect();
            let hot = spec
                .skew
                .as_ref()
                .filter(|s| replicas.contains(&(s.broker - 1)));
            (leader, replicas, hot.map_or(1.0, |s| s.weight))
        })
        .collect();
    let total: f64 = out.iter().map(|p| p.2).sum();
    for p in &mut out {
        p.2 /= total;
    }
    out
}

/// Share of topic `k`'s bytes stored on each broker (replicas counted: the shares sum to the
/// replication factor).
pub fn broker_shares(scenario: &Scenario, k: usize) -> Vec<f64> {
    let mut shares = vec![0.0; scenario.cluster.brokers];
    for (_, replicas, weight) in layout(scenario, k) {
        for r in replicas {
            shares[r] += weight;
        }
    }
    shares
}
