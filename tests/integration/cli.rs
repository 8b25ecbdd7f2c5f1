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

/// Splits a shell command line: whitespace separates words, double and single quotes group them.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Every `catchup ...` command the runbook and README tell people to type parses: run against an
/// unreachable controller and broker, each may fail to connect (exit 1) but never with a usage
/// error (exit 2).
#[test]
fn every_command_in_the_runbook_and_readme_parses() {
    let mut commands = Vec::new();
    for doc in ["docs/runbook.md", "README.md"] {
        let text = std::fs::read_to_string(super::root().join(doc)).unwrap();
        // Join continuation lines, then take every `catchup <sub>` invocation in code blocks and,
        // in the runbook, in its command table (prose mentions are not commands to type).
        let joined = text.replace("\\\n", " ");
        let mut in_code = false;
        for line in joined.lines() {
            if line.starts_with("```") {
                in_code = !in_code;
                continue;
            }
            let table_row = doc.ends_with("runbook.md") && line.starts_with("| ");
            if !in_code && !table_row {
                continue;
            }
            // Shell comments are not commands.
            let line = if in_code {
                line.split(" #").next().unwrap_or(line)
            } else {
                line
            };
            let mut rest = line;
            while let Some(at) = rest.find("catchup ") {
                let tail = &rest[at + "catchup ".len()..];
                let first = tail.split_whitespace().next().unwrap_or("");
                if ![
                    "ctl",
                    "retention",
                    "config",
                    "policy",
                    "lag",
                    "observe",
                    "plan",
                ]
                .contains(&first)
                {
                    rest = tail;
                    continue;
                }
                let end = tail.find(['`', '|']).unwrap_or(tail.len());
                let end = tail[..end].find(" && ").unwrap_or(end);
                commands.push((doc, tail[..end].trim().to_string()));
                rest = &tail[end..];
            }
        }
    }

    let mut run = 0;
    for (doc, cmd) in &commands {
        // A quoted "..." is a reason to fill in (a valid argument); a bare one is a placeholder.
        let cmd = &cmd.replace("\"...\"", "\"reason\"");
        if shell_words(cmd).iter().any(|w| w == "...") {
            continue;
        }
        run += 1;
        let args: Vec<String> = shell_words(cmd)
            .into_iter()
            .map(|w| {
                if w.starts_with('$') {
                    "x".to_string()
                } else {
                    w
                }
            })
            .collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_catchup"))
            .args(&args)
            .env("CATCHUP_URL", "http://127.0.0.1:1")
            .env("CATCHUP_API_TOKEN", "t")
            .output()
            .unwrap();
        assert_ne!(
            out.status.code(),
            Some(2),
            "{doc}: `catchup {cmd}` is not a valid command: {}",
            stderr(&out)
        );
    }
    assert!(run >= 20, "only {run} commands run of {commands:?}");
}

#[test]
fn a_disk_source_slower_than_max_disk_age_is_refused_naming_both_fields() {
    // Simulate: a 10-minute metric delay against the default 5-minute max_disk_age.
    let replay = std::fs::read_to_string("scenarios/2025-11-replay.toml").expect("replay");
    let slow = replay.replace("[metrics]\n", "[metrics]\ndelay = \"10m\"\n");
    assert_ne!(slow, replay, "the replay has a [metrics] section");
    let slow = slow.replace("delay = \"2m\"\n", "");
    let scenario = temp_file("slow-metrics.toml", &slow);
    let out = catchup(&["simulate", "--scenario", scenario.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("staleness.max_disk_age = 5m: cannot be met by the disk source: metrics.period = 1m with metrics.delay = 10m"),
        "{err}"
    );
    assert!(
        err.contains(
            "raise staleness.max_disk_age to at least 12m or lower metrics.period or metrics.delay"
        ),
        "{err}"
    );
    // The same scenario with a policy that allows it runs.
    let policy = temp_file("patient.toml", "[staleness]\nmax_disk_age = \"12m\"\n");
    let out = catchup(&[
        "simulate",
        "--scenario",
        scenario.as_str(),
        "--policy",
        policy.as_str(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // config check (and run): a disk file rewritten every 10 minutes.
    let policy = std::path::Path::new("policies/ingestion-pipeline.toml")
        .canonicalize()
        .expect("policy");
    let config = temp_file(
        "slow-file.toml",
        &format!(
            "policy = {:?}\nstate_dir = \"/tmp/catchup-slow-file-state\"\n[cluster]\nkind = \"kafka\"\n[cluster.kafka]\nbootstrap_servers = \"localhost:9092\"\n[cluster.disk]\nkind = \"file\"\npath = \"/tmp/disk.json\"\nperiod = \"10m\"\n",
            policy.display().to_string()
        ),
    );
    let out = catchup(&["config", "check", config.as_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("staleness.max_disk_age = 5m: cannot be met by the disk source: cluster.disk.period = 10m with cluster.disk.delay = 0s"),
        "{err}"
    );
    assert!(
        err.contains("lower cluster.disk.period or cluster.disk.delay"),
        "{err}"
    );
}

/// `config check` on a device that never ends fails at once, naming the cap.
#[test]
fn config_check_on_an_endless_file_fails_fast() {
    let t = std::time::Instant::now();
    let out = catchup(&["config", "check", "/dev/zero"]);
    assert!(!out.status.success());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
}

/// The demo: JSON log lines without colour codes when asked, and a fresh private state directory
/// with a random name.
#[cfg(unix)]
#[test]
fn the_demo_logs_json_lines_and_keeps_its_state_private() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_catchup"))
        .args(["demo", "--listen", "127.0.0.1:0", "--speed", "600"])
        .env("CATCHUP_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let state_dir = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.trim()
                .strip_prefix("state dir:")
                .map(|d| d.trim().to_string())
        })
        .expect("the banner names the state directory");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = child.kill();
    let out = child.wait_with_output().expect("demo output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains('\u{1b}'), "no ANSI escapes: {log}");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    let mode = std::fs::metadata(&state_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{state_dir}");
    assert!(
        !state_dir.ends_with(&std::process::id().to_string()),
        "a random name: {state_dir}"
    );
    let _ = std::fs::remove_dir_all(&state_dir);
}
