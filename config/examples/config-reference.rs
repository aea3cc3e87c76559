//! Writes the generated configuration reference and example files:
//! `cargo run -p spate-config --example config-reference`.
//!
//! With `--check` it only compares and exits non-zero when a checked-in file is stale.

use std::path::Path;
use std::process::ExitCode;

use spate_config::reference;

fn main() -> ExitCode {
    let check = std::env::args().any(|arg| arg == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = [
        (reference::REFERENCE_PATH, reference::render_reference()),
        (
            reference::SINGLE_NODE_EXAMPLE_PATH,
            reference::render_single_node_example(),
        ),
        (
            reference::THREE_NODE_EXAMPLE_PATH,
            reference::render_three_node_example(),
        ),
    ];
    let mut stale = false;
    for (relative, content) in files {
        let path = root.join(relative);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == content {
            continue;
        }
        if check {
            eprintln!("{relative} is out of date");
            stale = true;
        } else if let Err(error) = std::fs::write(&path, content) {
            eprintln!("cannot write {relative}: {error}");
            return ExitCode::FAILURE;
        } else {
            println!("wrote {relative}");
        }
    }
    if stale {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
