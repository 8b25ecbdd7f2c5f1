//! One writer per state directory, across processes: while `catchup run` holds its state
//! directory, a second `catchup run` and `catchup retention` on it refuse to start and name the
//! holder, `catchup plan` reads beside it, and `kill -9` of the holder releases the lock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use catchup::store::{Holder, StateDir};

use crate::{catchup, root, stderr};

/// A `catchup run` child, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A simulator config with its state directory `state` beside it.
fn config(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("catchup-statedir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("catchup.toml");
    let scenario = root().join("scenarios/2025-11-replay.toml");
    std::fs::write(
        &file,
        format!(
            "state_dir = \"state\"\ntick = \"30s\"\n[api]\nlisten = \"127.0.0.1:0\"\n[cluster]\nkind = \"simulator\"\nscenario = {:?}\nspeed = 60.0\n",
            scenario.display().to_string()
        ),
    )
    .unwrap();
    (file, dir.join("state"))
}

fn run(config: &Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_catchup"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("catchup run starts"),
    )
}

/// Runs `catchup args`, which must stop with an error within 30 s (a writer that starts anyway
/// is killed and fails the test).
fn refused(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_catchup"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("catchup starts");
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(
                !out.status.success(),
                "`catchup {}` succeeded",
                args.join(" ")
            );
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "`catchup {}` started beside the holder: {}",
        args.join(" "),
        stderr(&out)
    );
}

/// The holder of `state` once it is `pid` and listens.
fn held_by(state: &Path, pid: u32) -> Holder {
    for _ in 0..600 {
        if let Some(h) = StateDir::holder(state).filter(|h| h.pid == pid && h.api.is_some()) {
            return h;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} is not held by pid {pid}", state.display());
}

#[test]
fn a_second_writer_is_refused_naming_the_first_until_kill_9_releases_it() {
    let (file, state) = config("two-runs");
    let cfg = file.to_str().unwrap();
    let mut first = run(&file);
    let holder = held_by(&state, first.0.id());
    assert_eq!(holder.command, "run");
    let api = holder.api.clone().unwrap();
    assert!(
        std::net::TcpStream::connect(&api).is_ok(),
        "the lock file names the API it listens on: {api}"
    );

    let second = refused(&["run", "--config", cfg]);
    let err = stderr(&second);
    let named = format!(
        "state directory {} is in use by catchup run (pid {} on host {}, since ",
        state.display(),
        holder.pid,
        holder.host
    );
    assert!(err.contains(&named), "{err}");
    assert!(
        err.contains(&format!(
            ", API {api}): one writer per state directory; stop it, or give this instance its own state_dir"
        )),
        "{err}"
    );

    // The runbook's retention commands do not write beside it: lowering is refused naming the
    // holder; status goes to the controller's API (named in the lock file).
    let retention = refused(&[
        "retention",
        "lower",
        "--state-dir",
        state.to_str().unwrap(),
        "--bootstrap-server",
        "127.0.0.1:1",
        "--topic",
        "t",
        "--to",
        "1h",
        "--reason",
        "test",
        "--disk-file",
        "/nonexistent",
    ]);
    assert!(
        stderr(&retention).contains(&format!("catchup run (pid {} on host", holder.pid))
            && stderr(&retention).contains("owns retention"),
        "{}",
        stderr(&retention)
    );
    let status = catchup(&[
        "retention",
        "status",
        "--state-dir",
        state.to_str().unwrap(),
        "--bootstrap-server",
        "127.0.0.1:1",
    ]);
    assert!(
        status.status.success() && crate::stdout(&status).contains("mode: "),
        "status through the controller's API: {} {}",
        crate::stdout(&status),
        stderr(&status)
    );

    let plan = catchup(&["plan", "--config", cfg, "--json"]);
    assert!(
        plan.status.success(),
        "plan reads beside the controller: {}",
        stderr(&plan)
    );

    // kill -9: no shutdown code runs; the OS drops the lock with the process.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert_eq!(StateDir::holder(&state), None);
    let again = run(&file);
    assert_eq!(held_by(&state, again.0.id()).command, "run");
    drop(again);
    let _ = std::fs::remove_dir_all(state.parent().unwrap());
}

mod crash;
