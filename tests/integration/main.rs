//! Integration tests: the `catchup` binary as a user runs it, and the simulator end to end.
//!
//! One test binary (`cargo test --test integration`); modules by subject. The modules that start
//! real outside programs (the tansu broker, moto, Prometheus and its node exporter, Helm's SDK,
//! hadolint, Python clients) need the `external` feature, which `scripts/test.sh` turns on after
//! installing them; without it `cargo test` needs nothing but Rust.

// Tests, benchmarks and examples measure and wait in real time; the clock ban is for the
// controller's code.
#![allow(clippy::disallowed_methods)]

mod api;
#[cfg(feature = "external")]
mod aws;
mod cli;
#[cfg(feature = "external")]
mod deploy;
#[cfg(feature = "external")]
mod extension;
#[cfg(feature = "external")]
mod faults;
#[cfg(feature = "external")]
mod ha;
#[cfg(feature = "external")]
mod ha_bench;
#[cfg(feature = "external")]
mod ha_cut;
#[cfg(feature = "external")]
mod ha_fleet;
#[cfg(feature = "external")]
mod ha_journal;
#[cfg(feature = "external")]
mod ha_sensors;
#[cfg(feature = "external")]
mod ha_standby;
#[cfg(feature = "external")]
mod kafka;
mod lanes;
mod layout;
#[cfg(feature = "external")]
mod prometheus;
#[cfg(feature = "external")]
mod schemathesis;
mod simulation;
mod statedir;
#[cfg(feature = "external")]
mod time_lag;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root (tests run from it, so shipped files are found by relative path).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `catchup` binary with `args` from the repository root.
pub fn catchup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catchup"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the catchup binary runs")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
