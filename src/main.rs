//! The `catchup` binary: parses the command line, sets up logging for the long-running commands,
//! and hands over to [`cli::run`].

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if cli.command.serves() {
        let filter = tracing_subscriber::EnvFilter::try_from_env("CATCHUP_LOG")
            .unwrap_or_else(|_| "info".into());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
