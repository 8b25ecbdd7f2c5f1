//! Fitting a policy to a scenario before a run: a policy naming no groups or topics takes the
//! scenario's, one that names them must name ones the scenario has.

use super::error::SimError;
use super::scenario::Scenario;
use crate::config_file::Problem;
use crate::policy::config::ExtendPolicy;
use crate::policy::{GroupPolicy, Policy, TopicPolicy};
use crate::units::Dur;

/// Makes `policy` fit `scenario`: a policy naming no groups and no topics (like `policies/default.toml`)
/// takes the scenario's catch-up groups, `managed` topics and `extend` input topics; a policy that names them must name ones
/// the scenario has. Also checks the floor against each managed topic's original local retention.
pub fn bind_policy(policy: &Policy, scenario: &Scenario) -> Result<Policy, SimError> {
    let mut p = policy.clone();
    let mut problems = Vec::new();
    if p.groups.is_empty() {
        p.groups = scenario
            .groups
            .iter()
            .map(|g| GroupPolicy {
                name: g.name.clone(),
                unit: Default::default(),
                max_rate: None,
                min_rate: None,
                lag_threshold: None,
                priority: g.priority,
                exempt: g.exempt,
            })
            .collect();
    }
    if p.retention.topics.is_empty() {
        p.retention.topics = scenario
            .managed_topics()
            .into_iter()
            .map(|name| TopicPolicy { name, floor: None })
            .collect();
    }
    if p.input.extend.is_empty() {
        p.input.extend = scenario
            .topics
            .iter()
            .filter_map(|t| {
                t.extend.map(|cap| ExtendPolicy {
                    topic: t.name.clone(),
                    max_retention: cap,
                })
            })
            .collect();
    }
    for (i, g) in p.groups.iter().enumerate() {
        if !scenario.groups.iter().any(|sg| sg.name == g.name) {
            problems.push(Problem::field(
                format!("groups[{i}].name"),
                format!("{:?}", g.name),
                "the scenario has no catch-up group of that name",
            ));
        }
    }
    for (i, t) in p.retention.topics.iter().enumerate() {
        let path = format!("retention.topics[{i}]");
        match scenario.topics.iter().find(|st| st.name == t.name) {
            None => problems.push(Problem::field(
                format!("{path}.name"),
                format!("{:?}", t.name),
                "the scenario has no topic of that name",
            )),
            Some(st) => {
                let original = st.local_retention.unwrap_or(st.retention);
                let floor = Dur(p.floor_ms(&t.name) as u64);
                if floor > original {
                    problems.push(Problem::field(
                        format!("{path}.floor"),
                        floor,
                        format!("the floor is above topic {}'s original local retention ({original}): lower the floor", t.name),
                    ));
                }
            }
        }
    }
    let metrics = &scenario.metrics;
    let freshness = crate::policy::validate::DiskFreshness::period_start(
        ("metrics.period", metrics.period),
        ("metrics.delay", metrics.delay),
        None,
    );
    problems.extend(crate::policy::validate::check_disk_age(&p, &freshness));
    if problems.is_empty() {
        Ok(p)
    } else {
        Err(SimError::Mismatch(problems))
    }
}
