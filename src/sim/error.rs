//! What can go wrong running a scenario.

use crate::config_file::Problem;

/// Errors of a simulation run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The policy does not fit the scenario.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Mismatch(Vec<Problem>),
    /// A simulated actuator failed in a way only a bug explains.
    #[error("simulated actuator: {0}")]
    Actuator(String),
    /// A simulated adapter did not complete at once (a bug).
    #[error("simulated {0} did not complete synchronously")]
    Pending(&'static str),
}
