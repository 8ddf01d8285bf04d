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
mod table;
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
    let json = cli.json;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clouds: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A reader that stops early (`clouds classes | head`) closes stdout: printing then
    // fails, which ends the command quietly, as it does for other tools.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_broken_pipe(info.payload()) {
            default_hook(info)
        }
    }));
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(commands::run(cli))));
    match run {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let message = quotable(&e.to_string());
            if json {
                // Under --json, errors are JSON too: one object on stderr.
                let error =
                    serde_json::json!({ "error": { "kind": e.kind(), "exit_code": e.code(), "message": message } });
                eprintln!("{error}");
            } else {
                eprintln!("clouds: error: {message}");
            }
            ExitCode::from(e.code())
        }
        Err(payload) if is_broken_pipe(payload.as_ref()) => ExitCode::SUCCESS,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Whether a panic is `println!` failing on a closed stdout.
fn is_broken_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    text.contains("failed printing to stdout") && text.contains("Broken pipe")
}
