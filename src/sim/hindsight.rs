//! The hindsight reference: an achievable schedule found with full knowledge of the future. Every
//! group runs at one constant fraction of its full speed from time 0, with every managed topic's
//! local retention at its floor from time 0; bisection finds the largest fraction that keeps every
//! broker under the ceiling for the whole run, and `hindsight_seconds` is that schedule's catch-up
//! time, provided it also loses no input record to the input topics' retention (else there is no
//! hindsight schedule: `None`). Unlike the optimal bound it is a schedule that exists, so a good controller lands between
//! the two: `optimal_seconds <= hindsight_seconds`, and a controller may beat hindsight by varying
//! its rate.

use super::adapters::SimCluster;
use super::controllers::{Controller, ControllerKind};
use super::error::SimError;
use super::run::simulate_with;
use super::scenario::Scenario;
use crate::policy::{Gate, Policy, RateUnit};
use crate::units::Timestamp;

/// Bisection steps on the fraction (the fraction is then known within 1/128).
const STEPS: usize = 7;

/// The hindsight schedule's catch-up time, or `None` when no constant fraction keeps every broker
/// under the ceiling, drains within the scenario's duration and loses no input.
pub fn hindsight_seconds(scenario: &Scenario, policy: &Policy) -> Result<Option<f64>, SimError> {
    let run = |fraction: f64| -> Result<Option<(f64, u64)>, SimError> {
        let controller = Box::new(Constant {
            fraction,
            policy: policy.clone(),
            max_rates: scenario
                .groups
                .iter()
                .map(|g| (g.name.clone(), g.max_rate))
                .collect(),
            done: false,
        });
        let out = simulate_with(scenario, policy, ControllerKind::None, controller)?;
        let s = out.summary;
        let safe = s.brokers_failed == 0 && s.seconds_above_ceiling == 0.0;
        Ok(if safe {
            s.catchup_seconds.map(|t| (t, s.input_records_lost))
        } else {
            None
        })
    };
    // The disk limits the fraction from above; input loss only shrinks as the fraction grows (a
    // faster drain ages the backlog less), so the largest disk-safe fraction is also the one that
    // loses the least input: if it loses any, no constant schedule avoids both losses.
    let no_loss = |r: Option<(f64, u64)>| r.and_then(|(t, lost)| (lost == 0).then_some(t));
    if let Some(r) = run(1.0)? {
        return Ok(no_loss(Some(r)));
    }
    let (mut lo, mut hi, mut best) = (0.0, 1.0, None);
    for _ in 0..STEPS {
        let mid = (lo + hi) / 2.0;
        match run(mid)? {
            Some(r) => {
                lo = mid;
                best = Some(r);
            }
            None => hi = mid,
        }
    }
    Ok(no_loss(best))
}

/// Every group at `fraction` of its full speed, every managed topic at its floor, from time 0.
struct Constant {
    fraction: f64,
    policy: Policy,
    max_rates: Vec<(String, f64)>,
    done: bool,
}

impl Controller for Constant {
    fn tick(&mut self, sim: &SimCluster, now: Timestamp) -> Result<(), SimError> {
        if self.done || now < Timestamp(0) {
            return Ok(());
        }
        for topic in self.policy.managed_topics() {
            let floor = self.policy.floor_ms(&topic).to_string();
            sim.set_by_hand(&topic, "local.retention.ms", Some(&floor));
        }
        let mut c = sim.lock();
        for (group, max_rate) in &self.max_rates {
            let gate = if self.fraction >= 1.0 {
                Gate::Open
            } else {
                let rate = max_rate * self.fraction;
                Gate::Throttled {
                    rate,
                    burst: rate,
                    unit: RateUnit::Records,
                }
            };
            c.set_gate(group, gate);
        }
        self.done = true;
        Ok(())
    }

    fn changes(&self) -> (usize, usize) {
        (0, 0)
    }
}
