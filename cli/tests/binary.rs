//! The `clouds` binary this package builds: it starts, describes itself, and refuses a
//! command it does not know with a usage error. (Its commands against real nodes are
//! tested in the `tests` package, which runs this binary.)

use std::process::Command;

fn clouds(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clouds")).args(args).output().expect("run clouds")
}

#[test]
fn the_binary_is_clouds_and_lists_its_commands() {
    let help = clouds(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["invoke", "create", "describe", "cluster"] {
        assert!(text.contains(command), "help lists `{command}`:\n{text}");
    }
    let unknown = clouds(&["frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("frobnicate"));
}
