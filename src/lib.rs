//! catchup: a Kafka backlog catch-up controller for tiered-storage clusters (AWS MSK).
//!
//! After an outage an ingestion pipeline drains a backlog and writes several times its normal volume to
//! its output topics; on tiered storage the newest `local.retention.ms` of every topic stays on the
//! brokers' disks, so the disks fill. catchup watches lag and disk, throttles or pauses the catch-up
//! consumers, lowers `local.retention.ms` of the topics it manages before the disks fill, and restores
//! every setting once the backlog has drained. DESIGN.md (in the shared folder) states the safety
//! invariants; they are enforced in [`policy`] and [`actuators::retention`].
//!
//! A tour of the modules, in the order data flows:
//!
//! ```text
//! sensors ──► Observation ──► policy::decide (pure) ──► Decision ──► runtime::reconcile ──► actuators
//! ```
//!
//! - [`sensors`]: what the controller sees, each reading with its own sample time: broker disk and
//!   tiered-storage copy lag ([`sensors::disk`]: CloudWatch, Prometheus, a file), consumer-group lag
//!   ([`sensors::lag`]) and the managed topics' configs ([`sensors::topic_config`]);
//! - [`policy`]: policy files and the pure control law [`policy::decide`] (no I/O, no clock);
//! - [`actuators`]: how a decision reaches the world: the consumer gate ([`actuators::gate`]) and
//!   topic retention through its guard and write-ahead journal ([`actuators::retention`]);
//! - [`runtime`]: the control loop: observe, decide, reconcile (the pure step from a decision to
//!   actions, shared with the simulator), act, audit; and the state it shares with the API;
//! - [`api`]: the HTTP API (status, pause/resume, overrides, mode, restore, the gate endpoints);
//! - [`metrics`] and [`store`]: Prometheus metrics; the state directory (one writing process at a
//!   time, atomic saves that keep the previous version) and the audit log;
//! - [`service`]: wiring of `catchup run` and `catchup demo`;
//! - [`sim`]: a deterministic tiered-storage cluster behind the same sensor and actuator traits,
//!   scenarios, the `runbook` and `none` baselines, the optimal bound, and plots.
//!
//! Beneath them, plumbing that knows nothing of the controller: [`kafka`] (connections, admin
//! requests, and [`kafka::ffi`], the only unsafe code), [`aws`] (SDK clients, MSK discovery, MSK IAM
//! tokens), [`clock`] (the only place that reads the system clocks), [`blocking`] (slow calls
//! kept off the async workers), [`config`] and
//! [`config_file`] (the run configuration; TOML loading that reports every problem with file,
//! field and value), [`units`] (time, durations and sizes as the API and files write them) and
//! [`observation`] (what the sensors see, as data), both from the `catchup-proto` crate that holds
//! every wire type.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod actuators;
pub mod api;
pub mod aws;
pub mod blocking;
pub mod clock;
pub mod config;
pub mod config_file;
pub mod ha;
pub mod kafka;
pub mod metrics;
pub mod policy;
pub mod runtime;
pub mod sensors;
pub mod service;
pub mod sim;
pub mod store;

pub use catchup_proto::{observation, units};
