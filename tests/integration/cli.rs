//! The command line: good and bad input, exit codes, messages a person can act on.

use std::path::PathBuf;

use super::{catchup, stderr, stdout};

/// A temporary file that removes itself when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn as_str(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(name: &str, text: &str) -> TempFile {
    let dir = std::env::temp_dir().join(format!("catchup-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    TempFile(path)
}

#[test]
fn policy_check_accepts_the_shipped_policies() {
    let out = catchup(&[
        "policy",
        "check",
        "policies/default.toml",
        "policies/ingestion-pipeline.toml",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("policies/ingestion-pipeline.toml: ok"));
}

#[test]
fn policy_check_lists_every_problem_and_fails() {
    let bad = temp_file(
        "bad.toml",
        "[disk]\nceiling_percent = 120.0\n\n[retention]\nfloor = \"30\"\n\n[throttle]\nmin_fraction = 0.0\n\n[surprise]\nx = 1\n",
    );
    let out = catchup(&["policy", "check", bad.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for expected in [
        "disk.ceiling_percent = 120: must be between 0 and 100",
        "retention.floor: \"30\" has no unit: write e.g. \"30s\" or \"30m\"",
        "throttle.min_fraction = 0: must be in (0, 1)",
        "surprise: unknown field",
    ] {
        assert!(
            err.contains(&format!("{}: {expected}", bad.as_str())),
            "missing {expected:?} in:\n{err}"
        );
    }
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn policy_check_reports_syntax_errors_and_missing_files() {
    let broken = temp_file("broken.toml", "[disk\nceiling_percent = 80\n");
    let out = catchup(&["policy", "check", broken.as_str(), "no/such/policy.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: line 1, column", broken.as_str())),
        "{err}"
    );
    assert!(
        err.contains("no/such/policy.toml: cannot read the file"),
        "{err}"
    );
}

#[test]
fn a_malformed_scenario_is_a_clear_error_not_a_panic() {
    let bad = temp_file(
        "bad-scenario.toml",
        "name = \"x\"\nduration = \"4h\"\n[cluster]\nbrokers = 0\ndisk_capacity = \"2TB\"\nupload_rate = \"1MB/s\"\n\
         [[topics]]\nname = \"in put\"\npartitions = 3\nrecord_bytes = 100\nproducer = { rate = \"1MB/s\" }\n\
         [[groups]]\nname = \"g\"\ntopic = \"missing\"\nmax_rate = 10.0\nbacklog = \"1h\"\n",
    );
    let out = catchup(&["simulate", "--scenario", bad.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for expected in [
        "cluster.brokers = 0: must be between 1 and 1000",
        "topics[0].name = \"in put\": ' ' is not allowed in a Kafka topic name",
        "groups[0].topic = \"missing\": must name a topic with a `producer`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_policy_that_does_not_fit_the_scenario_is_refused() {
    let policy = temp_file(
        "other.toml",
        "[[groups]]\nname = \"nobody\"\n[retention]\nfloor = \"5h\"\n[[retention.topics]]\nname = \"events_enriched\"\n",
    );
    let out = catchup(&[
        "simulate",
        "--scenario",
        "scenarios/2025-11-replay.toml",
        "--policy",
        policy.as_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "groups[0].name = \"nobody\": the scenario has no catch-up group of that name"
        ),
        "{err}"
    );
    assert!(err.contains("retention.topics[0].floor = 5h: the floor is above topic events_enriched's original local retention (4h)"), "{err}");
}

#[test]
fn version_and_help_work() {
    let out = catchup(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("catchup "));
    let out = catchup(&["simulate", "--help"]);
    assert!(stdout(&out).contains("--controller"));
}
