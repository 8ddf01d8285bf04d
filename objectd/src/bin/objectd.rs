//! The standard node: stdobjects and the name service's classes.

#[global_allocator]
static ALLOCATOR: objectd::daemon::Allocator = objectd::daemon::Allocator;

fn main() -> std::process::ExitCode {
    objectd::daemon::main(objectd::Registry::standard())
}
