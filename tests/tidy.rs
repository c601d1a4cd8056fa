//! Style as a test (TigerBeetle's `tidy.zig`): the seams the design depends on, and the
//! house rules that keep the code readable. A failure names the file and line.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(directory: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![Path::new(ROOT).join(directory)];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no Rust files under {directory}");
    files
}

/// Lines of code (not comments), with their numbers.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).expect("readable file");
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break; // unit tests at the bottom may use what the code may not
        }
        if !line.trim_start().starts_with("//") {
            lines.push((number + 1, line.to_string()));
        }
    }
    lines
}

fn offenders(directories: &[&str], banned: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for directory in directories {
        for path in rust_files(directory) {
            for (number, line) in code_lines(&path) {
                for ban in banned {
                    if line.contains(ban) {
                        found.push(format!(
                            "{}:{number}: `{ban}` in: {}",
                            path.display(),
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn the_core_does_no_io_reads_no_clock_starts_no_thread_and_iterates_no_hashmap() {
    let banned = [
        "std::time",
        "std::net",
        "std::fs",
        "std::thread",
        "mio::",
        "crossbeam",
        "parking_lot",
        "HashMap",
        "HashSet",
        "thread_rng",
        "Instant::now",
        "SystemTime",
    ];
    let found = offenders(&["src/core"], &banned);
    assert!(found.is_empty(), "the sans-IO seam is broken:\n{}", found.join("\n"));
}

#[test]
fn the_protocol_crate_does_no_io() {
    let banned = ["std::net", "std::fs", "std::thread", "std::time", "std::io::Read", "mio::"];
    let found = offenders(&["protocol/src"], &banned);
    assert!(
        found.is_empty(),
        "protocol/ must only turn bytes into messages:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_simulator_reads_no_clock_and_starts_no_thread() {
    // Hashed collections need a fixed hasher here (and are never iterated for output).
    let banned = [
        "std::time",
        "std::thread",
        "Instant::now",
        "SystemTime",
        "thread_rng",
        "RandomState",
        "HashMap::new",
        "HashSet::new",
    ];
    let found = offenders(&["src/sim"], &banned);
    assert!(found.is_empty(), "the simulator must be deterministic:\n{}", found.join("\n"));
}

#[test]
fn no_debugging_leftovers() {
    let fixme = ["FIX", "ME"].concat();
    let debug = ["dbg", "!("].concat();
    let found =
        offenders(&["src", "protocol/src", "tests", "benches"], &[fixme.as_str(), debug.as_str()]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn lines_fit_in_one_hundred_columns() {
    let mut found = Vec::new();
    for directory in ["src", "protocol/src", "tests", "benches"] {
        for path in rust_files(directory) {
            let text = std::fs::read_to_string(&path).expect("readable file");
            for (number, line) in text.lines().enumerate() {
                // Exempt: JSON test data and Markdown tables in docs, which cannot wrap.
                let exempt = line.contains("\"op\":")
                    || line.contains("\\\"op\\\":")
                    || line.trim_start().starts_with("//! |");
                if line.chars().count() > 100 && !exempt {
                    found.push(format!("{}:{}", path.display(), number + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "lines over 100 columns:\n{}", found.join("\n"));
}

#[test]
fn every_source_file_says_what_it_owns() {
    let mut found = Vec::new();
    for directory in ["src", "protocol/src"] {
        for path in rust_files(directory) {
            let text = std::fs::read_to_string(&path).expect("readable file");
            if !text.trim_start().starts_with("//!") {
                found.push(path.display().to_string());
            }
        }
    }
    assert!(found.is_empty(), "files without a //! header:\n{}", found.join("\n"));
}

/// What each layer of `src/` may not import (docs/design.md, "Layering"): the arrows
/// point down, through `core` to the protocol crate, and never back up.
const FORBIDDEN_IMPORTS: &[(&str, &[&str])] = &[
    ("core", &["server", "storage", "sim", "client", "cli", "config"]),
    ("storage", &["server", "sim", "client", "cli"]),
    ("client", &["core", "server", "storage", "sim", "cli"]),
    ("sim", &["server", "cli"]),
    ("server", &["sim", "client", "cli"]),
    ("config", &["core", "server", "storage", "sim", "client", "cli"]),
];

/// The top-level modules of this crate that `line` names through `crate::` paths
/// (`crate::a::x` and every name of `crate::{a::x, b}`).
fn crate_modules(line: &str) -> Vec<&str> {
    let name = |text: &str| -> String {
        text.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
    };
    let mut modules = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let names: Vec<String> = match rest.strip_prefix('{') {
            Some(order_id) => order_id[..order_id.find('}').unwrap_or(order_id.len())]
                .split(',')
                .map(name)
                .collect(),
            None => vec![name(rest)],
        };
        for found in names {
            if let Some(module) = FORBIDDEN_IMPORTS
                .iter()
                .flat_map(|(_, banned)| banned.iter())
                .find(|module| ***module == found)
            {
                modules.push(*module);
            }
        }
    }
    modules
}

/// Imports in `lines` (code of a file of layer `layer`) that the layering forbids.
fn forbidden_imports(layer: &str, lines: &[(usize, String)]) -> Vec<(usize, &'static str)> {
    let Some((_, banned)) = FORBIDDEN_IMPORTS.iter().find(|(name, _)| *name == layer) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (number, line) in lines {
        for module in crate_modules(line) {
            if let Some(module) = banned.iter().find(|banned| **banned == module) {
                found.push((*number, *module));
            }
        }
    }
    found
}

#[test]
fn no_layer_imports_one_above_it() {
    let mut found = Vec::new();
    for (layer, _) in FORBIDDEN_IMPORTS {
        for path in rust_files(&format!("src/{layer}")) {
            for (number, module) in forbidden_imports(layer, &code_lines(&path)) {
                found.push(format!("{}:{number}: {layer} imports {module}", path.display()));
            }
        }
    }
    // The protocol crate is the bottom: it names nothing of the radiant crate.
    found.extend(offenders(&["protocol/src"], &["radiant::"]));
    assert!(found.is_empty(), "imports the layering forbids:\n{}", found.join("\n"));
}

#[test]
fn the_layering_check_catches_a_forbidden_import() {
    let lines = |text: &str| -> Vec<(usize, String)> {
        text.lines().enumerate().map(|(number, line)| (number + 1, line.to_string())).collect()
    };
    let core = lines(
        "use crate::core::shards::ShardTable;\nuse crate::storage::wal::Wal;\n\
         let x = crate::server::run(config);\nuse crate::{prng::Prng, sim::Disk};",
    );
    assert_eq!(forbidden_imports("core", &core), [(2, "storage"), (3, "server"), (4, "sim")]);
    let client = lines("let shard = crate::core::slots::key_shard(key, 64);");
    assert_eq!(forbidden_imports("client", &client), [(1, "core")]);
    let sim = lines("use crate::storage::state_machine::StateMachine;");
    assert!(forbidden_imports("sim", &sim).is_empty(), "the simulator runs the storage code");
}
