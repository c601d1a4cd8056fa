//! Any bytes, read as a snapshot file (a radiant's own, or one received from a herald
//! through `InstallSnapshot`: untrusted), must load or fail with a `SnapshotError`, and a
//! snapshot that loads must have its sections decoded or refused, never a panic. An input
//! whose first byte is odd gets its correct whole-file checksum appended, so the parser
//! behind the checksum is fuzzed too.
#![no_main]

use std::io::Write;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use radiant::storage::snapshot::{load_file, SnapshotLimits};
use radiant::storage::{state_snapshot, DiskFaults, FileSystem, MemoryFileSystem};

const LIMITS: SnapshotLimits = SnapshotLimits { max_key_bytes: 256, max_value_bytes: 4096 };

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else { return };
    let mut data = rest.to_vec();
    if selector % 2 == 1 {
        data.extend_from_slice(&crc32c::crc32c(rest).to_le_bytes());
    }
    // The loader reads a file through the file-system seam: a simulated disk, so no
    // temporary file is written per input.
    let disk = MemoryFileSystem::new(0, DiskFaults::default());
    let path = Path::new("/snapshot");
    let written = disk.create(path, true).and_then(|mut file| file.write_all(&data));
    if written.is_err() {
        return;
    }
    if let Ok(snapshot) = load_file(&disk, path, LIMITS) {
        let _ = state_snapshot::decode_sections(&snapshot, 64, LIMITS.max_key_bytes);
    }
});
