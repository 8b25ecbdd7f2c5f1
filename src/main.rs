//! The `catchup` binary: parses the command line, sets up logging for the long-running commands,
//! and hands over to [`cli::run`].

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// jemalloc rather than glibc's malloc: hyper's per-connection buffers (8 KiB each) stay
/// untouched, so not resident, until used, and background threads hand freed pages back to the OS
/// about 10 s after a burst of long-polls ends (glibc kept them: issue 16's benchmark, README).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if cli.command.serves() {
        let filter = tracing_subscriber::EnvFilter::try_from_env("CATCHUP_LOG")
            .unwrap_or_else(|_| "info".into());
        // Colour only for a person at a terminal; a redirected log stays plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        match cli.log_format {
            cli::LogFormat::Json => builder.json().flatten_event(true).init(),
            cli::LogFormat::Text => builder.init(),
        }
    }
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
