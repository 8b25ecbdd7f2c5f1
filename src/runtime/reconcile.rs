//! From a decision to actions: what the mode lets through to the gates, and what the retention guard
//! makes of each topic's target. Pure (no I/O, no clock), so the control loop and the simulator take
//! the same steps; each carries them out through its own actuators.

use crate::actuators::retention::{self, RetentionChange, extend};
use crate::config::Mode;
use crate::policy::{
    ControllerState, Decision, ExtensionTarget, Gate, GroupDecision, Policy, RetentionTarget,
};
use crate::sensors::Observation;

/// One thing to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Publish `publish` to `group`'s consumers: the decided gate in active mode, open otherwise.
    Gate {
        /// The catch-up group.
        group: String,
        /// What its consumers get (gate and reasons as the mode allows).
        publish: Box<GroupDecision>,
    },
    /// Move a managed topic's local retention towards its target.
    Retention {
        /// The topic.
        topic: String,
        /// What to do about it.
        step: RetentionStep,
    },
    /// Move an input topic's `retention.ms` towards its extension target.
    Extension {
        /// The input topic.
        topic: String,
        /// The engine's target.
        target: ExtensionTarget,
        /// What to do about it.
        step: ExtensionStep,
    },
}

/// What becomes of an input topic's extension target.
#[derive(Clone, Debug, PartialEq)]
pub enum ExtensionStep {
    /// Apply `change` (the extension guard approved it).
    Apply {
        /// The one incremental operation.
        change: RetentionChange,
    },
    /// Dry run: the change that would have been applied.
    WouldApply {
        /// The operation.
        change: RetentionChange,
    },
    /// The guard refused the target.
    Refused {
        /// The rule it would break.
        reason: String,
    },
}

/// What becomes of a topic's retention target.
#[derive(Clone, Debug, PartialEq)]
pub enum RetentionStep {
    /// Apply `change` (the guard approved it); `lowers` when it lowers the current value.
    Apply {
        /// The one incremental operation.
        change: RetentionChange,
        /// Whether it lowers local retention (else it raises or restores it).
        lowers: bool,
    },
    /// Dry run: the change that would have been applied.
    WouldApply {
        /// The operation.
        change: RetentionChange,
    },
    /// The guard refused the target.
    Refused {
        /// The target the engine wanted.
        target: RetentionTarget,
        /// The rule it would break.
        reason: String,
    },
}

/// The actions that carry out `decision` in `mode`. `state` is the engine's state after the
/// decision (it holds the originals, including any captured this tick). Retention is written only
/// where the engine took a fresh step this tick ([`TopicDecision::changed`](crate::policy::TopicDecision)),
/// never re-applied from a held target; it is left alone in observe mode and when this instance
/// does not own it (`retention_actions = false`); a topic the sensors could not read, or already at
/// its target, needs no action.
pub fn plan(
    decision: &Decision,
    state: &ControllerState,
    obs: &Observation,
    mode: Mode,
    policy: &Policy,
    retention_actions: bool,
) -> Vec<Action> {
    let mut actions: Vec<Action> = decision
        .groups
        .iter()
        .map(|(group, d)| Action::Gate {
            group: group.clone(),
            publish: Box::new(publish(d, mode)),
        })
        .collect();
    if mode == Mode::Observe || !retention_actions {
        return actions;
    }
    for (topic, d) in decision.topics.iter().filter(|(_, d)| d.changed) {
        let Some(configs) = obs.topics.iter().find(|t| &t.topic == topic) else {
            continue;
        };
        let original = state.topics.get(topic).and_then(|t| t.original.as_ref());
        let step = match retention::plan(topic, &d.target, original, configs, policy) {
            Ok(None) => continue,
            Ok(Some(change)) if mode == Mode::DryRun => RetentionStep::WouldApply { change },
            Ok(Some(change)) => RetentionStep::Apply {
                change,
                lowers: matches!(d.target, RetentionTarget::Lowered { ms }
                    if d.current_ms.is_some_and(|c| ms < c)),
            },
            Err(refusal) => RetentionStep::Refused {
                target: d.target.clone(),
                reason: refusal.reason,
            },
        };
        actions.push(Action::Retention {
            topic: topic.clone(),
            step,
        });
    }
    actions.extend(extensions(decision, obs, mode, policy));
    actions
}

/// The extension steps: where the engine took a fresh step on an input topic it read this tick.
fn extensions<'a>(
    decision: &'a Decision,
    obs: &'a Observation,
    mode: Mode,
    policy: &'a Policy,
) -> impl Iterator<Item = Action> + 'a {
    decision
        .extensions
        .iter()
        .filter(|(_, d)| d.changed)
        .filter_map(move |(topic, d)| {
            let configs = obs.inputs.iter().find(|c| &c.topic == topic)?;
            let original = obs
                .extensions
                .iter()
                .find(|r| &r.topic == topic && r.phase.is_open())
                .map(|r| &r.original);
            let step = match extend::plan_extension(topic, &d.target, original, configs, policy) {
                Ok(None) => return None,
                Ok(Some(change)) if mode == Mode::DryRun => ExtensionStep::WouldApply { change },
                Ok(Some(change)) => ExtensionStep::Apply { change },
                Err(refusal) => ExtensionStep::Refused {
                    reason: refusal.reason,
                },
            };
            Some(Action::Extension {
                topic: topic.clone(),
                target: d.target.clone(),
                step,
            })
        })
}

/// What a group's consumers get in `mode`: the decision in active mode; an open gate saying what
/// would have been done in dry-run mode; an open gate in observe mode.
fn publish(d: &GroupDecision, mode: Mode) -> GroupDecision {
    let (gate, reasons) = match mode {
        Mode::Active => return d.clone(),
        Mode::DryRun => (
            Gate::Open,
            vec![format!(
                "dry-run: would be {}: {}",
                d.gate.name(),
                d.reasons.join("; ")
            )],
        ),
        Mode::Observe => (
            Gate::Open,
            vec!["observe mode: the controller does not gate consumers".to_string()],
        ),
    };
    GroupDecision {
        gate,
        reasons,
        ..d.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{TopicPolicy, decide};
    use crate::units::Timestamp;

    fn lowered_decision() -> (Decision, ControllerState, Observation, Policy) {
        let now = Timestamp(10_000_000);
        let mut policy = Policy::default();
        policy.retention.topics.push(TopicPolicy {
            name: "out".into(),
            floor: None,
        });
        let obs = Observation::test()
            .with_disk(1, 80.0, now)
            .with_copy_lag(1, 0, now)
            .with_lag("g", 100, 1_000_000, now)
            .with_topic("out", Some(14_400_000), 604_800_000, now);
        let (decision, state) = decide(&obs, &policy, &ControllerState::default(), &[], now);
        (decision, state, obs, policy)
    }

    #[test]
    fn the_mode_decides_what_reaches_the_gates_and_the_topics() {
        let (decision, state, obs, policy) = lowered_decision();
        assert!(matches!(
            decision.topics["out"].target,
            RetentionTarget::Lowered { .. }
        ));
        let active = plan(&decision, &state, &obs, Mode::Active, &policy, true);
        assert!(active.iter().any(|a| matches!(
            a,
            Action::Retention {
                step: RetentionStep::Apply { lowers: true, .. },
                ..
            }
        )));
        let dry = plan(&decision, &state, &obs, Mode::DryRun, &policy, true);
        assert!(dry.iter().any(|a| matches!(
            a,
            Action::Retention {
                step: RetentionStep::WouldApply { .. },
                ..
            }
        )));
        for a in &dry {
            if let Action::Gate { publish, .. } = a {
                assert_eq!(publish.gate, Gate::Open);
                assert!(publish.reasons[0].starts_with("dry-run: would be"));
            }
        }
        for (mode, owns) in [(Mode::Observe, true), (Mode::Active, false)] {
            let actions = plan(&decision, &state, &obs, mode, &policy, owns);
            assert!(
                actions.iter().all(|a| matches!(a, Action::Gate { .. })),
                "{mode:?} {owns}"
            );
        }
    }
}
