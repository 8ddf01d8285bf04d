//! The standard node: stdobjects and the name service's classes.

fn main() -> std::process::ExitCode {
    objectd::daemon::main(objectd::Registry::standard())
}
