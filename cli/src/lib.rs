//! The `clouds` command line for a Clouds cluster, as a library: the `clouds` binary is
//! `cli::main()`. Its logs have the target `cli`, apart from the `clouds` library crate.
//!
//! Layout: `args` (clap definitions), `target` (names, UUIDs, `TARGET.METHOD`, argument
//! parsing), `commands` (one function per command), `cluster` (a local cluster of
//! processes), `balance` (drain, node modes, `why`, `decisions`, `top`), `exit` (errors and
//! exit codes).

mod args;
mod balance;
mod caps;
mod cluster;
mod commands;
mod exit;
mod target;

use clap::Parser;
use std::process::ExitCode;

/// An error message with every run of more than 80 characters without a space (a huge
/// name or argument echoed back) cut to its start and length.
fn quotable(message: &str) -> String {
    message.split(' ').map(|word| target::shorten(word, 80)).collect::<Vec<_>>().join(" ")
}

/// Parses argv, runs the command, prints an error once, and maps it to an exit code.
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clouds: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clouds: error: {}", quotable(&e.to_string()));
            ExitCode::from(e.code())
        }
    }
}
