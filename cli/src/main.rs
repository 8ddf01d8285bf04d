//! `clouds`: the command line for a Clouds cluster (the work is in the `cli` library).

fn main() -> std::process::ExitCode {
    cli::main()
}
