//! The policy engine: policy files, the pure `decide` function and its inputs and outputs.
//!
//! - [`config`]: the policy file format (`Policy`); `validate`: its range and cross-field checks;
//! - [`decision`]: what `decide` returns (`Decision`) and the manual `Override`s it honours;
//! - [`state`]: what it remembers between ticks (`ControllerState`);
//! - [`forecast`]: disk trends; [`observer`]: each disk's estimate and upper bound;
//! - `engine`: [`decide`] itself, one module per step (disks, drain, throttle, gates, retention).

pub mod config;
pub mod decision;
mod engine;
pub mod forecast;
#[cfg(test)]
mod lanes_tests;
pub mod observer;
pub mod state;
#[cfg(test)]
mod tests;
pub mod validate;

pub use config::{GroupPolicy, Policy, Priority, RateUnit, StaleMode, TopicPolicy};
pub use decision::{
    Alert, AlertCode, BrokerForecast, Decision, ExtensionDecision, ExtensionTarget, Gate,
    GateState, GroupDecision, InputDeadline, InputLoss, Origin, Override, OverrideAction,
    OverrideScope, RetentionTarget, Severity, TopicDecision,
};
pub(crate) use engine::winning_override;
pub use engine::{copy_lag_blocks, decide};
pub use state::ControllerState;
