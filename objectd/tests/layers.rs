//! The modules of `objectd` depend on each other in one direction only: each may use the
//! modules of lower layers, never one above it. The layers, lowest first (ARCHITECTURE.md):
//!
//! 0. `config`, `shutdown`, `telemetry`: data, signals, metrics
//! 1. `store`, `registry`, `placement`, `balance`, `migration`, `atomic`: storage, classes, pure decisions
//! 2. `engine`: the invocation engine (reaches other nodes through its own `Peers` trait)
//! 3. `membership`: gossip
//! 4. `cluster`, `rpc`, `gateway`: the engine's adapters to the network (tarpc, HTTP)
//! 5. `node`: composition
//! 6. `daemon`: the command line
//!
//! Inside the engine, the submodules use `super::` freely; the rule is between the
//! modules above. This test reads every source file and fails on an import that goes up.

use std::path::Path;

const LAYERS: &[&[&str]] = &[
    &["config", "shutdown", "telemetry"],
    &["store", "registry", "placement", "balance", "migration", "atomic", "admission"],
    &["engine"],
    &["membership"],
    &["cluster", "rpc", "gateway"],
    &["node"],
    &["daemon"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in all {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        let module = first.trim_end_matches(".rs");
        let Some(own) = layer(module) else {
            assert!(["lib", "bin"].contains(&module), "{} is in no layer: add it to LAYERS", relative.display());
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                checked += 1;
                match layer(&used) {
                    Some(l) if l > own => wrong.push(format!(
                        "{}:{}: {module} (layer {own}) uses {used} (layer {l})",
                        relative.display(),
                        n + 1
                    )),
                    None => wrong.push(format!("{}:{}: {used} is in no layer", relative.display(), n + 1)),
                    _ => {}
                }
            }
        }
    }
    assert!(checked > 10, "the check read the imports ({checked})");
    assert!(wrong.is_empty(), "imports going up a layer:\n{}", wrong.join("\n"));
}
