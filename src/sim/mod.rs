//! The simulator: a deterministic, seeded tiered-storage Kafka cluster behind the same sensor and
//! actuator traits as the real adapters, so the engine can be replayed against incidents, tuned, and
//! measured against the physical optimum.
//!
//! - [`scenario`]: the scenario file format;
//! - [`cluster`]: the physics (segments, uploads, retention, producers, consumers, metrics);
//! - [`adapters`]: the sensor and actuator trait implementations;
//! - [`bind`]: fitting a policy to a scenario;
//! - [`controllers`]: the `catchup` engine and the `none` and `runbook` baselines;
//! - [`run`]: running a scenario under one of them ([`error`]: what can go wrong);
//! - [`summary`]: what a run measured, and its table;
//! - [`optimal`]: the lower bound on catch-up duration; [`hindsight`]: the best constant-rate schedule;
//! - [`plot`]: the SVG picture of a run.

pub mod adapters;
pub mod bind;
pub mod cluster;
pub mod controllers;
pub mod error;
pub mod hindsight;
pub mod live;
pub mod optimal;
pub mod plot;
pub mod run;
pub mod scenario;
pub mod summary;

pub use bind::bind_policy;
pub use controllers::ControllerKind;
pub use error::SimError;
pub use run::simulate;
pub use scenario::Scenario;
pub use summary::{Outcome, Summary};

#[cfg(test)]
mod tests;
