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
//! - [`units`]: timestamps, durations and sizes as files write them;
//! - [`sensors`]: what the controller sees ([`sensors::Observation`]) and the sensor traits;
//! - [`policy`]: policy files and the pure decision engine [`policy::decide`];
//! - [`actuators`]: the consumer gate and the retention guard, as traits;
//! - [`sim`]: a deterministic tiered-storage cluster that implements the same traits, scenarios, the
//!   `runbook` and `none` baselines, the optimal bound, and plots;
//! - [`aws`]: MSK discovery, CloudWatch disk and copy lag, MSK IAM tokens;
//! - [`kafka`]: the real cluster: batched lag through librdkafka's admin API (the only unsafe code,
//!   in [`kafka::ffi`]);
//! - [`config_file`]: TOML loading that reports every problem with file, field and value.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod actuators;
pub mod api;
pub mod aws;
pub mod clock;
pub mod config;
pub mod config_file;
pub mod kafka;
pub mod metrics;
pub mod policy;
pub mod runtime;
pub mod sensors;
pub mod service;
pub mod sim;
pub mod store;

pub use catchup_proto::units;
