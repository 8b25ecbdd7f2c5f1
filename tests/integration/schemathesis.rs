//! schemathesis (PyPI) against the running controller's own `/openapi.json`: every check, with
//! the operator token and without any, must pass. `scripts/test.sh` installs it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::root;

/// A `catchup run` child, killed when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const TOKEN: &str = "schemathesis-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn schemathesis_finds_nothing_with_and_without_the_token() {
    let dir = std::env::temp_dir().join(format!("catchup-st-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = dir.join("catchup.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\ntick = \"2s\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[cluster]\nkind = \"simulator\"\nscenario = {:?}\nspeed = 1.0\n",
            root().join("scenarios/2025-11-replay.toml").display().to_string()
        ),
    )
    .unwrap();
    let _service = Running(
        Command::new(env!("CARGO_BIN_EXE_catchup"))
            .args(["run", "--config"])
            .arg(&config)
            .env("CATCHUP_API_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("catchup run starts"),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for token in [Some(TOKEN), None] {
        let mut st = Command::new("st");
        st.args([
            "run",
            &format!("{url}/openapi.json"),
            "--max-examples",
            "50",
        ]);
        if let Some(t) = token {
            st.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        let out = st.output().expect("schemathesis (st) is installed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(" passed") && !text.contains("failure"),
            "schemathesis, token {}: {text}",
            token.is_some()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
