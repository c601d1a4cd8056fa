//! WAL segment files: names, the 16-byte header, and the in-memory index of one segment.
//!
//! A segment is `DIR/wal/{first_index:020}.wal`: a header (magic `RWAL`, u32 LE version 2,
//! u64 LE first index) followed by records (see `record.rs`). `first_index` is the first
//! entry index the segment may hold; its entries are contiguous from there.
//!
//! This module owns the thin file helpers (create, fsync a directory). It must not decide
//! policy (rotation, truncation, recovery): that lives in `mod.rs` and `recovery.rs`.

use std::io;
use std::path::{Path, PathBuf};

use radiant_protocol::{LogIndex, Term};

use super::WalError;
use crate::storage::file_system::{AppendFile, FileSystem};

pub(super) const SEGMENT_MAGIC: [u8; 4] = *b"RWAL";
/// 2 since configurations (inside council entries) carry each radiant's RESP address.
pub(super) const SEGMENT_VERSION: u32 = 2;
pub(super) const SEGMENT_HEADER_BYTES: u64 = 16;
const SEGMENT_SUFFIX: &str = ".wal";

/// Where one entry lives, so truncation can cut exactly before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EntryLocation {
    pub(super) offset_bytes: u64,
    pub(super) term: Term,
}

/// The in-memory index of one segment file.
#[derive(Clone, Debug)]
pub(super) struct Segment {
    pub(super) path: PathBuf,
    /// The index of `entries[0]`, also the number in the file name.
    pub(super) first_index: LogIndex,
    /// The file's length in bytes as far as this process has written it.
    pub(super) length_bytes: u64,
    pub(super) entries: Vec<EntryLocation>,
}

impl Segment {
    /// One past the last entry this segment holds.
    pub(super) fn next_index(&self) -> LogIndex {
        self.first_index + self.entries.len() as u64
    }

    /// The last entry index held, or `first_index - 1` when empty.
    pub(super) fn last_index(&self) -> LogIndex {
        self.next_index() - 1
    }
}

pub(super) fn segment_path(wal_dir: &Path, first_index: LogIndex) -> PathBuf {
    wal_dir.join(format!("{first_index:020}{SEGMENT_SUFFIX}"))
}

/// The first index encoded in a segment file name, or `None` if it is not a segment's name.
pub(super) fn parse_segment_name(file_name: &str) -> Option<LogIndex> {
    let digits = file_name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn encode_header(first_index: LogIndex) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[..4].copy_from_slice(&SEGMENT_MAGIC);
    header[4..8].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&first_index.to_le_bytes());
    header
}

/// Validates a header read from disk and returns its first index.
pub(super) fn decode_header(bytes: &[u8]) -> Result<LogIndex, String> {
    let header = bytes
        .get(..SEGMENT_HEADER_BYTES as usize)
        .ok_or_else(|| format!("header is {} of 16 bytes", bytes.len()))?;
    if header[..4] != SEGMENT_MAGIC {
        return Err(format!("bad magic {:02x?}, expected RWAL", &header[..4]));
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version != SEGMENT_VERSION {
        return Err(format!(
            "unsupported segment version {version} (this radiant reads version \
             {SEGMENT_VERSION}; version 1 was written before configurations carried RESP \
             addresses)"
        ));
    }
    let mut first_index = [0u8; 8];
    first_index.copy_from_slice(&header[8..16]);
    Ok(u64::from_le_bytes(first_index))
}

/// Opens an existing segment for appending (writes land at the end even after a
/// truncation).
pub(super) fn open_for_append(
    file_system: &dyn FileSystem,
    path: &Path,
) -> Result<Box<dyn AppendFile>, WalError> {
    file_system.open_append(path).map_err(|source| WalError::io("open segment", path, source))
}

/// Creates a new segment holding the header followed by `initial_records`. Not synced: the
/// caller syncs the file and the directory.
pub(super) fn create_segment(
    file_system: &dyn FileSystem,
    wal_dir: &Path,
    first_index: LogIndex,
    initial_records: &[u8],
) -> Result<(Box<dyn AppendFile>, Segment), WalError> {
    let path = segment_path(wal_dir, first_index);
    let mut file = file_system
        .create(&path, true)
        .map_err(|source| WalError::io("create segment", &path, source))?;
    let mut contents = encode_header(first_index).to_vec();
    contents.extend_from_slice(initial_records);
    file.write_all(&contents)
        .map_err(|source| WalError::io("write segment header", &path, source))?;
    let segment =
        Segment { path, first_index, length_bytes: contents.len() as u64, entries: Vec::new() };
    Ok((file, segment))
}

/// Makes creations, renames and deletions in `dir` durable.
pub(super) fn sync_directory(file_system: &dyn FileSystem, dir: &Path) -> Result<(), WalError> {
    file_system.sync_directory(dir).map_err(|source| WalError::io("fsync directory", dir, source))
}

pub(super) fn remove_file(file_system: &dyn FileSystem, path: &Path) -> Result<(), WalError> {
    match file_system.remove(path) {
        Ok(()) => Ok(()),
        // Already gone (a previous attempt got this far): the goal is reached.
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(WalError::io("delete segment", path, source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort_numerically() {
        let path = segment_path(Path::new("/data/wal"), 42);
        let name = path.file_name().and_then(|name| name.to_str()).unwrap();
        assert_eq!(name, "00000000000000000042.wal");
        assert_eq!(parse_segment_name(name), Some(42));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000042.wal.tmp"), None);
    }

    #[test]
    fn header_round_trips_and_rejects_bad_magic_or_version() {
        let header = encode_header(7);
        assert_eq!(decode_header(&header), Ok(7));
        assert!(decode_header(&header[..10]).is_err());
        let mut bad_magic = header;
        bad_magic[0] = b'X';
        assert!(decode_header(&bad_magic).is_err());
        let mut old_version = header;
        old_version[4] = 1;
        let refusal = decode_header(&old_version).unwrap_err();
        assert!(refusal.contains("unsupported segment version 1"), "{refusal}");
    }
}
