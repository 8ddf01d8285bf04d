//! A node for the integration tests: the standard classes plus `Relay` (`tests::relay`),
//! which lets a test send one thread through objects on chosen nodes.

#[global_allocator]
static ALLOCATOR: objectd::daemon::Allocator = objectd::daemon::Allocator;

fn main() -> std::process::ExitCode {
    match objectd::Registry::standard().with::<tests::relay::Relay>() {
        Ok(registry) => objectd::daemon::main(registry),
        Err(e) => {
            eprintln!("testnode: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
