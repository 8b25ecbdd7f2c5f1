//! The simulator in real time (or faster): the cluster behind `catchup run` with a simulator cluster
//! and behind `catchup demo`, advanced by a background task while the real runtime controls it.
//!
//! The warm-up before catch-up starts is fast-forwarded; from then on simulated time runs at `speed`
//! times wall-clock time. Simulated times are shifted to start at the wall clock, so timestamps look
//! real, and deadlines handed to consumers are mapped back to wall-clock time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::adapters::SimCluster;
use super::cluster::Cluster;
use super::run::warmup;
use super::scenario::Scenario;
use crate::clock::{Clock, monotonic_now, wall_now};
use crate::units::{Dur, Timestamp};

/// The clock of a live simulation.
#[derive(Debug)]
pub struct SimClock {
    sim_ms: AtomicI64,
    epoch: i64,
    speed: f64,
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.epoch + self.sim_ms.load(Ordering::Relaxed))
    }

    fn to_wall(&self, t: Timestamp) -> Timestamp {
        let ahead = (t.0 - self.now().0) as f64 / self.speed;
        Timestamp(wall_now().0 + ahead as i64)
    }
}

/// A running simulation: the cluster handle, its clock, and what drives it.
pub struct LiveSim {
    /// The cluster, behind the sensor and actuator traits.
    pub cluster: SimCluster,
    /// Its clock.
    pub clock: Arc<SimClock>,
    scenario: Arc<Scenario>,
}

impl LiveSim {
    /// Builds `scenario`'s cluster, fast-forwards its warm-up and injects the backlog: catch-up starts
    /// when [`LiveSim::drive`] does.
    pub fn start(scenario: &Scenario, speed: f64) -> LiveSim {
        let mut cluster = Cluster::new(scenario, Timestamp(0) - warmup(scenario));
        while cluster.now() < Timestamp(0) {
            cluster.step(true);
        }
        cluster.inject_backlogs(scenario, Dur(0));
        let epoch = wall_now().0;
        let clock = Arc::new(SimClock {
            sim_ms: AtomicI64::new(cluster.now().0),
            epoch,
            speed,
        });
        LiveSim {
            cluster: SimCluster::with_epoch(cluster, epoch),
            clock,
            scenario: Arc::new(scenario.clone()),
        }
    }

    /// Advances the cluster with wall-clock time times the speed, forever (it stops advancing at the
    /// scenario's end), adding each later backlog event when its time comes. Run it as a task.
    pub async fn drive(cluster: SimCluster, clock: Arc<SimClock>, scenario: Arc<Scenario>) {
        let scenario_end = scenario.duration.0 as i64;
        // Backlog events after time 0 still to come, latest first.
        let mut backlogs: Vec<Dur> = scenario.backlog_times();
        backlogs.retain(|at| *at > Dur(0));
        backlogs.reverse();
        let wall_start = monotonic_now();
        let sim_start = clock.sim_ms.load(Ordering::Relaxed);
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            let target = (sim_start
                + (wall_start.elapsed().as_secs_f64() * clock.speed * 1000.0) as i64)
                .min(scenario_end);
            let mut c = cluster.lock();
            while c.now().0 < target {
                while let Some(&at) = backlogs.last().filter(|at| c.now().0 >= at.0 as i64) {
                    c.inject_backlogs(&scenario, at);
                    backlogs.pop();
                }
                c.step(false);
            }
            clock.sim_ms.store(c.now().0, Ordering::Relaxed);
        }
    }

    /// The driving task for this simulation.
    pub fn driver(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        LiveSim::drive(
            self.cluster.clone(),
            self.clock.clone(),
            self.scenario.clone(),
        )
    }
}
