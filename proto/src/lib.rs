//! catchup-proto: the wire types of the catchup HTTP API, shared by the controller (which serves
//! them), `catchup ctl` (which renders them) and `catchup-client` (which obeys the gate), so a
//! renamed field fails to compile instead of printing nothing.
//!
//! - [`units`]: timestamps (ms since the epoch), durations (`"1h30m"`) and sizes as they are
//!   written on the wire and in files;
//! - [`observation`]: what the sensors saw (disks, copy lag, offsets, topic configs) and what
//!   limits the controller;
//! - [`topic`]: a topic's configs as DescribeConfigs reports them, and what the retention journal
//!   holds for a topic it changed;
//! - [`decision`]: what the engine decided (gates, retention targets, alerts) and the manual
//!   overrides it honours;
//! - [`gate`]: what consumers read and how they take permits;
//! - [`status`]: `/v1/status` and the controller's mode;
//! - [`audit`]: the audit log;
//! - [`requests`]: bodies of the operator endpoints and the error body.
//!
//! With the `openapi` feature every type also describes itself for `/openapi.json` (utoipa).

#![forbid(unsafe_code)]

pub mod audit;
pub mod decision;
pub mod gate;
pub mod observation;
pub mod requests;
pub mod status;
pub mod topic;
pub mod units;
