//! Where partitions live: leaders and replicas over the brokers, and each partition's share of its
//! topic's traffic. The cluster and the optimal bound both place partitions this way.

use crate::sim::scenario::Scenario;

/// Partition placement of topic `k`: (leader index, replica indices, share of the topic's traffic) per
/// partition. Leaders rotate per topic and replicas follow the leader round-robin, as Kafka's default
/// assignment does; with `skew.broker`, partitions with a replica on that broker carry `weight`
/// times the traffic; with `skew.brokers`, the partitions those brokers lead do, and followers shift
/// as Kafka's assignment shifts them (see [`crate::sim::scenario::SkewSpec`]).
pub fn layout(scenario: &Scenario, k: usize) -> Vec<(usize, Vec<usize>, f64)> {
    let n = scenario.cluster.brokers.max(1);
    let spec = &scenario.topics[k];
    let mut out: Vec<(usize, Vec<usize>, f64)> = (0..spec.partitions)
        .map(|p| {
            let leader = (p + k) % n;
            let rf = spec.replication_factor.min(n);
            let weight = match &spec.skew {
                Some(s) if !s.brokers.is_empty() => {
                    // Kafka's assignment: the second replica shifts one broker further every round
                    // of `n` partitions, so one leader's followers spread over every other broker.
                    let shift = p / n;
                    let replicas = std::iter::once(leader)
                        .chain((0..rf - 1).map(|j| (leader + 1 + (shift + j) % (n - 1)) % n))
                        .collect();
                    let hot = s.brokers.contains(&(leader + 1));
                    return (leader, replicas, if hot { s.weight } else { 1.0 });
                }
                Some(s) => s.broker.map_or(1.0, |b| {
                    let ring = (0..rf).any(|j| (leader + j) % n == b - 1);
                    if ring { s.weight } else { 1.0 }
                }),
                None => 1.0,
            };
            let replicas = (0..rf).map(|j| (leader + j) % n).collect();
            (leader, replicas, weight)
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
