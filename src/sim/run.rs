//! Running a scenario under a controller: `catchup` (the engine), `none` (consumers at full speed) or
//! `runbook` (the manual procedure of the 2025-11 incident), from a warm-up at normal load through
//! the catch-up, recording what happened.
//!
//! The pieces live next door: [`super::bind`] fits the policy to the scenario,
//! [`super::controllers`] holds the three controllers, [`super::summary`] what a run measured.

use std::collections::BTreeMap;

use super::adapters::SimCluster;
use super::cluster::Cluster;
use super::controllers;
use super::scenario::Scenario;
use super::summary::Recorder;
use crate::policy::Policy;
use crate::sensors::{ConfigSource, TopicConfigs};
use crate::units::{Dur, Timestamp};

use super::controllers::ControllerKind;
use super::error::SimError;
use super::summary::Outcome;

pub use super::cluster::warmup;

/// Runs `scenario` under `kind`. `policy` must already be bound to the scenario ([`super::bind_policy`]).
pub fn simulate(
    scenario: &Scenario,
    policy: &Policy,
    kind: ControllerKind,
) -> Result<Outcome, SimError> {
    simulate_with(
        scenario,
        policy,
        kind,
        controllers::build(kind, scenario, policy),
    )
}

/// [`simulate`] with a given controller (`kind` labels the summary).
pub(super) fn simulate_with(
    scenario: &Scenario,
    policy: &Policy,
    kind: ControllerKind,
    mut controller: Box<dyn controllers::Controller>,
) -> Result<Outcome, SimError> {
    let start = Timestamp(0) - warmup(scenario);
    let sim = SimCluster::new(Cluster::new(scenario, start)).guarded_by(policy);
    let initial: BTreeMap<String, Settings> = {
        let c = sim.lock();
        scenario
            .topics
            .iter()
            .map(|t| (t.name.clone(), retention_settings(&c, &t.name)))
            .collect()
    };
    let controller_start = Timestamp(0) - Dur::from_mins(15);
    let end = Timestamp(0) + scenario.duration;
    let mut next_tick = controller_start;
    let mut recorder = Recorder::new(scenario, policy, kind, end.since(start));
    let mut injected = false;
    // Backlog events still to come, latest first.
    let mut backlogs: Vec<Dur> = scenario.backlog_times();
    backlogs.reverse();
    loop {
        let now = sim.lock().now();
        if now >= end {
            break;
        }
        if !injected && now >= Timestamp(0) {
            injected = true;
        }
        while let Some(&at) = backlogs.last().filter(|&&at| now >= Timestamp(0) + at) {
            sim.lock().inject_backlogs(scenario, at);
            backlogs.pop();
        }
        if now >= next_tick {
            controller.tick(&sim, now)?;
            next_tick = now + scenario.tick;
        }
        let mut c = sim.lock();
        c.step(!injected);
        if !injected {
            continue;
        }
        recorder.step(&c);
    }
    let c = sim.lock();
    let restored = scenario
        .topics
        .iter()
        .all(|t| initial.get(&t.name) == Some(&retention_settings(&c, &t.name)));
    Ok(recorder.finish(
        &c,
        controller.changes(),
        restored,
        controller.timeline().to_vec(),
    ))
}

/// A topic's settings the controller may change, `local.retention.ms` and `retention.ms` (an
/// extended input topic), as set (value and source); `None` where the topic has no entry.
fn retention_settings(c: &Cluster, topic: &str) -> Settings {
    ["local.retention.ms", "retention.ms"].map(|key| {
        c.topic_configs(topic)
            .and_then(|m| m.get(key))
            .map(|v| (v.value.clone(), v.source))
    })
}

/// What [`retention_settings`] reads.
type Settings = [Option<(Option<String>, ConfigSource)>; 2];

/// Configs of a managed topic as the simulator holds them (tests use it).
pub fn topic_configs(sim: &SimCluster, topic: &str) -> Option<TopicConfigs> {
    let c = sim.lock();
    Some(TopicConfigs {
        topic: topic.into(),
        configs: c.topic_configs(topic)?.clone(),
        sampled_at: c.now(),
    })
}
