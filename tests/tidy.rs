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
