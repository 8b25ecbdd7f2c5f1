//! The simulator: a deterministic, seeded tiered-storage Kafka cluster behind the same sensor and
//! actuator traits as the real adapters, so the engine can be replayed against incidents, tuned, and
//! measured against the physical optimum.
//!
//! - [`scenario`]: the scenario file format;
//! - [`cluster`]: the physics (segments, uploads, retention, producers, consumers, metrics);
//! - [`adapters`]: the sensor and actuator trait implementations;
//! - [`run`]: running a scenario under `catchup`, `none` or `runbook`, and the summary;
//! - [`optimal`]: the lower bound on catch-up duration;
//! - [`plot`]: the SVG picture of a run.

pub mod adapters;
pub mod cluster;
pub mod live;
pub mod optimal;
pub mod plot;
pub mod run;
pub mod scenario;

pub use run::{ControllerKind, Outcome, SimError, Summary, bind_policy, simulate};
pub use scenario::Scenario;
