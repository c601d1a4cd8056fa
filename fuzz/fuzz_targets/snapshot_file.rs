//! Any bytes, read as a snapshot file (a radiant's own, or one received from a herald
//! through `InstallSnapshot`: untrusted), must load or fail with a `SnapshotError`, and a
//! snapshot that loads must have its sections decoded or refused, never a panic. An input
//! whose first byte is odd gets its correct whole-file checksum appended, so the parser
//! behind the checksum is fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radiant::storage::snapshot::{load_file, SnapshotLimits};

const LIMITS: SnapshotLimits = SnapshotLimits { max_key_bytes: 256, max_value_bytes: 4096 };

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else { return };
    let mut data = rest.to_vec();
    if selector % 2 == 1 {
        data.extend_from_slice(&crc32c::crc32c(rest).to_le_bytes());
    }
    // The loader reads a file: one per process, rewritten for every input.
    let path = std::env::temp_dir().join(format!("radiant-fuzz-snapshot-{}", std::process::id()));
    if std::fs::write(&path, &data).is_err() {
        return;
    }
    if let Ok(snapshot) = load_file(&path, LIMITS) {
        let _ = radiant::server::recovery::decode_sections(&snapshot, 64, LIMITS.max_key_bytes);
    }
});
