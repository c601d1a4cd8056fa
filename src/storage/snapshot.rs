//! Snapshots of the key-value state at an applied log position, written atomically and
//! validated completely before use.
//!
//! File `DIR/snapshots/{last_index:020}.snap`, all integers LE: header (magic `RSNP`, u32
//! version 2, u64 last_index, u64 last_term, u32 shard_count), then records each starting
//! with a `u8` tag: `1 = KeyValue` (u32 shard, u32 key length, key, u32 value length, value),
//! `2 = Opaque` (u32 length, bytes; reserved for session tables, passed through), `0 = End`;
//! then a u32 CRC32C of every byte before it.
//!
//! Writing goes to `.snap.tmp`, is fsynced, renamed and the directory fsynced, so a crash
//! leaves either the old set of snapshots or the new one plus a `.tmp` that loading deletes.
//! This module owns snapshot files only; it must not decide when to snapshot or what the
//! opaque sections mean.

use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use radiant_protocol::{LogIndex, Term};
use thiserror::Error;
use tracing::warn;

use radiant_protocol::slots::ShardId;

use crate::storage::file_system::{AppendFile, DataDir, FileSystem, ReadFile, SharedFileSystem};
use crate::storage::injected_bugs::{self, StorageBug};

const SNAPSHOT_MAGIC: [u8; 4] = *b"RSNP";
/// 2 since configurations (in the council section) carry each radiant's RESP address.
const SNAPSHOT_VERSION: u32 = 2;
const HEADER_BYTES: u64 = 4 + 4 + 8 + 8 + 4;
const CHECKSUM_BYTES: u64 = 4;
const TAG_END: u8 = 0;
const TAG_KEY_VALUE: u8 = 1;
const TAG_OPAQUE: u8 = 2;
/// How many completed snapshots to keep: the newest and one to fall back on.
const SNAPSHOTS_KEPT: usize = 2;
const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMPORARY_SUFFIX: &str = ".snap.tmp";

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot: cannot {operation} `{}`", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "snapshot file `{}` is unusable: {reason}. Restore the data directory from a backup \
         (a member of a replicated order can instead remove its data directory and catch up \
         from the order); deleting the file loses what the compacted log no longer holds",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "snapshot at index {index} was not written: {missing} of its {shard_count} shards never \
         arrived from the shard workers (one stopped); the log is kept"
    )]
    Incomplete { index: LogIndex, missing: u32, shard_count: u32 },
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io { operation, path, source }
}

/// Per-item size limits applied while loading, before any allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotLimits {
    pub max_key_bytes: u32,
    pub max_value_bytes: u32,
}

/// A snapshot read back and fully validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedSnapshot {
    pub path: PathBuf,
    pub last_index: LogIndex,
    pub last_term: Term,
    pub shard_count: u32,
    /// (shard, key, value) in the order written.
    pub key_values: Vec<(u32, Bytes, Bytes)>,
    pub opaque: Vec<Bytes>,
}

fn snapshots_dir(dir: &Path) -> PathBuf {
    dir.join("snapshots")
}

fn sync_directory(fs: &dyn FileSystem, dir: &Path) -> Result<(), SnapshotError> {
    fs.sync_directory(dir).map_err(io_error("fsync directory", dir))
}

/// Streams one snapshot to a temporary file; `finish` makes it the newest snapshot.
#[derive(Debug)]
pub struct SnapshotWriter {
    file_system: SharedFileSystem,
    snapshots_dir: PathBuf,
    temporary_path: PathBuf,
    final_path: PathBuf,
    writer: BufWriter<Box<dyn AppendFile>>,
    checksum: u32,
    shard_count: u32,
}

impl SnapshotWriter {
    pub fn create(
        data_dir: &DataDir,
        last_index: LogIndex,
        last_term: Term,
        shard_count: u32,
    ) -> Result<SnapshotWriter, SnapshotError> {
        let fs = data_dir.fs();
        let snapshots_dir = snapshots_dir(&data_dir.path);
        fs.create_dir_all(&snapshots_dir).map_err(io_error("create directory", &snapshots_dir))?;
        let name = format!("{last_index:020}");
        let final_path = snapshot_path(&data_dir.path, last_index);
        let temporary_path = if injected_bugs::active(StorageBug::OverwriteSnapshotInPlace) {
            final_path.clone()
        } else {
            snapshots_dir.join(format!("{name}{TEMPORARY_SUFFIX}"))
        };
        let file =
            fs.create(&temporary_path, false).map_err(io_error("create", &temporary_path))?;
        let mut writer = SnapshotWriter {
            file_system: data_dir.file_system.clone(),
            snapshots_dir,
            temporary_path,
            final_path,
            writer: BufWriter::new(file),
            checksum: 0,
            shard_count,
        };
        writer.write_bytes(&SNAPSHOT_MAGIC)?;
        writer.write_bytes(&SNAPSHOT_VERSION.to_le_bytes())?;
        writer.write_bytes(&last_index.to_le_bytes())?;
        writer.write_bytes(&last_term.to_le_bytes())?;
        writer.write_bytes(&shard_count.to_le_bytes())?;
        Ok(writer)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.checksum = crc32c::crc32c_append(self.checksum, bytes);
        let path = &self.temporary_path;
        self.writer.write_all(bytes).map_err(io_error("write", path))
    }

    fn write_length(&mut self, bytes: &[u8], what: &str) -> Result<(), SnapshotError> {
        let length = u32::try_from(bytes.len())
            .unwrap_or_else(|_| panic!("snapshot: {what} of {} bytes exceeds u32", bytes.len()));
        self.write_bytes(&length.to_le_bytes())
    }

    pub fn write_key_value(
        &mut self,
        shard: ShardId,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), SnapshotError> {
        assert!(
            shard.0 < self.shard_count,
            "snapshot: {shard} out of range for {} shards",
            self.shard_count
        );
        self.write_bytes(&[TAG_KEY_VALUE])?;
        self.write_bytes(&shard.0.to_le_bytes())?;
        self.write_length(key, "key")?;
        self.write_bytes(key)?;
        self.write_length(value, "value")?;
        self.write_bytes(value)
    }

    pub fn write_opaque(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.write_bytes(&[TAG_OPAQUE])?;
        self.write_length(bytes, "opaque section")?;
        self.write_bytes(bytes)
    }

    /// Seals, syncs and publishes the snapshot, then deletes all but the newest two.
    pub fn finish(mut self) -> Result<PathBuf, SnapshotError> {
        self.write_bytes(&[TAG_END])?;
        let checksum = self.checksum.to_le_bytes();
        let temporary_path = self.temporary_path;
        let mut writer = self.writer;
        writer.write_all(&checksum).map_err(io_error("write", &temporary_path))?;
        let file = writer
            .into_inner()
            .map_err(|error| io_error("flush", &temporary_path)(error.into_error()))?;
        let mut file = file;
        file.sync().map_err(io_error("fsync", &temporary_path))?;
        drop(file);
        let fs = &*self.file_system;
        if temporary_path != self.final_path {
            fs.rename(&temporary_path, &self.final_path)
                .map_err(io_error("rename into place", &self.final_path))?;
        }
        sync_directory(fs, &self.snapshots_dir)?;
        remove_older_snapshots(fs, &self.snapshots_dir)?;
        Ok(self.final_path)
    }
}

/// Completed snapshots sorted oldest first; deletes leftover temporary files.
fn list_snapshots(
    fs: &dyn FileSystem,
    snapshots_dir: &Path,
) -> Result<Vec<PathBuf>, SnapshotError> {
    let list_error = io_error("list directory", snapshots_dir);
    let names = match fs.list(snapshots_dir) {
        Ok(names) => names,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(list_error(error)),
    };
    let mut snapshots = Vec::new();
    let mut removed_any = false;
    for name in names {
        let path = snapshots_dir.join(&name);
        if name.ends_with(TEMPORARY_SUFFIX) {
            // An unfinished snapshot: the crash happened before it was published.
            warn!(path = %path.display(), "snapshot: removing leftover temporary file");
            fs.remove(&path).map_err(io_error("delete", &path))?;
            removed_any = true;
        } else if let Some(digits) = name.strip_suffix(SNAPSHOT_SUFFIX) {
            if digits.len() == 20 && digits.bytes().all(|byte| byte.is_ascii_digit()) {
                snapshots.push(path);
            }
        }
    }
    if removed_any {
        sync_directory(fs, snapshots_dir)?;
    }
    // Zero-padded names sort by index.
    snapshots.sort();
    Ok(snapshots)
}

fn remove_older_snapshots(fs: &dyn FileSystem, snapshots_dir: &Path) -> Result<(), SnapshotError> {
    let snapshots = list_snapshots(fs, snapshots_dir)?;
    let surplus = snapshots.len().saturating_sub(SNAPSHOTS_KEPT);
    for path in &snapshots[..surplus] {
        fs.remove(path).map_err(io_error("delete", path))?;
    }
    if surplus > 0 {
        sync_directory(fs, snapshots_dir)?;
    }
    Ok(())
}

/// Loads the newest completed snapshot, or `None` if there is none. A damaged completed
/// snapshot is an error naming the file: it was published, so something on disk broke, and
/// silently falling back could hide the loss of compacted log entries.
pub fn load_latest(
    data_dir: &DataDir,
    limits: SnapshotLimits,
) -> Result<Option<LoadedSnapshot>, SnapshotError> {
    let fs = data_dir.fs();
    let snapshots = list_snapshots(fs, &snapshots_dir(&data_dir.path))?;
    let Some(newest) = snapshots.last() else {
        return Ok(None);
    };
    load_file(fs, newest, limits).map(Some)
}

/// The path of the completed snapshot whose last index is `index`.
pub fn snapshot_path(dir: &Path, index: LogIndex) -> PathBuf {
    snapshots_dir(dir).join(format!("{index:020}.snap"))
}

/// Verifies and loads one snapshot file (for a snapshot received from the herald,
/// before it is installed).
pub fn load_file(
    fs: &dyn FileSystem,
    path: &Path,
    limits: SnapshotLimits,
) -> Result<LoadedSnapshot, SnapshotError> {
    verify_checksum(fs, path)?;
    parse_snapshot(fs, path, limits)
}

/// Makes a received, verified snapshot file the newest snapshot: renames it into place
/// and fsyncs the directory, then drops older snapshots.
pub fn install_file(
    data_dir: &DataDir,
    received: &Path,
    index: LogIndex,
) -> Result<PathBuf, SnapshotError> {
    let fs = data_dir.fs();
    let snapshots = snapshots_dir(&data_dir.path);
    let path = snapshot_path(&data_dir.path, index);
    fs.rename(received, &path).map_err(io_error("rename received snapshot", &path))?;
    sync_directory(fs, &snapshots)?;
    remove_older_snapshots(fs, &snapshots)?;
    Ok(path)
}

fn corrupt(path: &Path, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt { path: path.to_path_buf(), reason: reason.into() }
}

/// First pass: checks the trailing CRC32C against the whole file before anything is parsed
/// or allocated.
fn verify_checksum(fs: &dyn FileSystem, path: &Path) -> Result<(), SnapshotError> {
    let mut reader = fs.open_read(path).map_err(io_error("open", path))?;
    let length_bytes = fs.file_len(path).map_err(io_error("stat", path))?;
    if length_bytes < HEADER_BYTES + 1 + CHECKSUM_BYTES {
        return Err(corrupt(path, format!("only {length_bytes} bytes long")));
    }
    let mut body = (&mut reader).take(length_bytes - CHECKSUM_BYTES);
    let mut checksum = 0u32;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = body.read(&mut chunk).map_err(io_error("read", path))?;
        if read == 0 {
            break;
        }
        checksum = crc32c::crc32c_append(checksum, &chunk[..read]);
    }
    let mut stored = [0u8; 4];
    reader.read_exact(&mut stored).map_err(io_error("read", path))?;
    let stored = u32::from_le_bytes(stored);
    if stored != checksum {
        let reason =
            format!("checksum mismatch (stored {stored:#010x}, computed {checksum:#010x})");
        return Err(corrupt(path, reason));
    }
    Ok(())
}

/// Reads fields from the checksummed body, never past its end.
struct BodyReader<'a> {
    path: &'a Path,
    reader: Box<dyn ReadFile>,
    remaining_bytes: u64,
}

impl BodyReader<'_> {
    fn read_array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], SnapshotError> {
        if self.remaining_bytes < N as u64 {
            return Err(corrupt(self.path, format!("ends inside {field}")));
        }
        let mut bytes = [0u8; N];
        self.reader.read_exact(&mut bytes).map_err(io_error("read", self.path))?;
        self.remaining_bytes -= N as u64;
        Ok(bytes)
    }

    fn read_u32(&mut self, field: &str) -> Result<u32, SnapshotError> {
        self.read_array(field).map(u32::from_le_bytes)
    }

    fn read_u64(&mut self, field: &str) -> Result<u64, SnapshotError> {
        self.read_array(field).map(u64::from_le_bytes)
    }

    /// Reads a u32 length and then that many bytes, checking the length against `max_bytes`
    /// and the bytes left before allocating.
    fn read_sized(&mut self, field: &str, max_bytes: u32) -> Result<Bytes, SnapshotError> {
        let length = self.read_u32(field)?;
        if length > max_bytes {
            return Err(corrupt(self.path, format!("{field} of {length} bytes, max {max_bytes}")));
        }
        if u64::from(length) > self.remaining_bytes {
            let reason = format!("{field} of {length} bytes runs past the end");
            return Err(corrupt(self.path, reason));
        }
        let mut bytes = vec![0u8; length as usize];
        self.reader.read_exact(&mut bytes).map_err(io_error("read", self.path))?;
        self.remaining_bytes -= u64::from(length);
        Ok(Bytes::from(bytes))
    }
}

/// Second pass: parses a file whose checksum is known to be good, still validating every
/// field (a matching checksum does not prove the writer was correct).
fn parse_snapshot(
    fs: &dyn FileSystem,
    path: &Path,
    limits: SnapshotLimits,
) -> Result<LoadedSnapshot, SnapshotError> {
    let reader = fs.open_read(path).map_err(io_error("open", path))?;
    let length_bytes = fs.file_len(path).map_err(io_error("stat", path))?;
    let mut body =
        BodyReader { path, reader, remaining_bytes: length_bytes.saturating_sub(CHECKSUM_BYTES) };
    if body.read_array::<4>("magic")? != SNAPSHOT_MAGIC {
        return Err(corrupt(path, "bad magic, expected RSNP"));
    }
    let version = body.read_u32("version")?;
    if version != SNAPSHOT_VERSION {
        let reason = format!(
            "unsupported version {version} (this radiant reads version {SNAPSHOT_VERSION}; \
             version 1 was written before configurations carried RESP addresses)"
        );
        return Err(corrupt(path, reason));
    }
    let mut loaded = LoadedSnapshot {
        path: path.to_path_buf(),
        last_index: body.read_u64("last_index")?,
        last_term: body.read_u64("last_term")?,
        shard_count: body.read_u32("shard_count")?,
        key_values: Vec::new(),
        opaque: Vec::new(),
    };
    loop {
        match body.read_array::<1>("record tag")?[0] {
            TAG_END => break,
            TAG_KEY_VALUE => {
                let shard = body.read_u32("shard")?;
                if shard >= loaded.shard_count {
                    let reason = format!("shard {shard} of {} shards", loaded.shard_count);
                    return Err(corrupt(path, reason));
                }
                let key = body.read_sized("key", limits.max_key_bytes)?;
                let value = body.read_sized("value", limits.max_value_bytes)?;
                loaded.key_values.push((shard, key, value));
            }
            TAG_OPAQUE => {
                // Bounded by the checksummed file size, which read_sized enforces.
                let bytes = body.read_sized("opaque section", u32::MAX)?;
                loaded.opaque.push(bytes);
            }
            unknown => return Err(corrupt(path, format!("unknown record tag {unknown}"))),
        }
    }
    if body.remaining_bytes != 0 {
        let reason = format!("{} bytes after the end record", body.remaining_bytes);
        return Err(corrupt(path, reason));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const LIMITS: SnapshotLimits = SnapshotLimits { max_key_bytes: 64, max_value_bytes: 1024 };

    fn write_snapshot(dir: &DataDir, last_index: LogIndex) -> PathBuf {
        let mut writer = SnapshotWriter::create(dir, last_index, 3, 4).unwrap();
        writer.write_key_value(ShardId(0), b"alpha", b"1").unwrap();
        writer.write_opaque(b"sessions").unwrap();
        writer.write_key_value(ShardId(3), b"beta", b"").unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn a_snapshot_round_trips() {
        let temporary = tempfile::tempdir().unwrap();
        let dir = DataDir::real(temporary.path());
        assert_eq!(load_latest(&dir, LIMITS).unwrap(), None);
        let path = write_snapshot(&dir, 17);
        assert!(path.ends_with("snapshots/00000000000000000017.snap"));
        let loaded = load_latest(&dir, LIMITS).unwrap().unwrap();
        assert_eq!((loaded.last_index, loaded.last_term, loaded.shard_count), (17, 3, 4));
        let key_values = vec![
            (0, Bytes::from_static(b"alpha"), Bytes::from_static(b"1")),
            (3, Bytes::from_static(b"beta"), Bytes::new()),
        ];
        assert_eq!(loaded.key_values, key_values);
        assert_eq!(loaded.opaque, vec![Bytes::from_static(b"sessions")]);
        assert_eq!(loaded.path, path);
    }

    #[test]
    fn only_the_newest_two_snapshots_are_kept_and_the_newest_is_loaded() {
        let temporary = tempfile::tempdir().unwrap();
        let dir = DataDir::real(temporary.path());
        for last_index in [5, 10, 15] {
            write_snapshot(&dir, last_index);
        }
        let kept = list_snapshots(dir.fs(), &snapshots_dir(&dir.path)).unwrap();
        assert_eq!(kept.len(), 2);
        let loaded = load_latest(&dir, LIMITS).unwrap().unwrap();
        assert_eq!(loaded.last_index, 15);
    }

    #[test]
    fn a_truncated_or_bit_flipped_snapshot_is_rejected_with_an_error_naming_the_file() {
        let temporary = tempfile::tempdir().unwrap();
        let dir = DataDir::real(temporary.path());
        let path = write_snapshot(&dir, 9);
        let original = fs::read(&path).unwrap();
        let mut damaged_versions = vec![original[..original.len() - 3].to_vec()];
        damaged_versions.push(original[..10].to_vec());
        for position in [0, 20, original.len() / 2, original.len() - 1] {
            let mut flipped = original.clone();
            flipped[position] ^= 0x04;
            damaged_versions.push(flipped);
        }
        for damaged in damaged_versions {
            fs::write(&path, &damaged).unwrap();
            let error = load_latest(&dir, LIMITS).unwrap_err();
            assert!(matches!(error, SnapshotError::Corrupt { .. }), "{error:?}");
            assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        }
    }

    #[test]
    fn oversized_keys_are_rejected_even_with_a_valid_checksum() {
        let temporary = tempfile::tempdir().unwrap();
        let dir = DataDir::real(temporary.path());
        let mut writer = SnapshotWriter::create(&dir, 1, 1, 1).unwrap();
        writer.write_key_value(ShardId(0), &[7u8; 65], b"v").unwrap();
        writer.finish().unwrap();
        let error = load_latest(&dir, LIMITS).unwrap_err();
        assert!(error.to_string().contains("max 64"), "{error}");
    }

    #[test]
    fn a_leftover_tmp_is_ignored_and_deleted() {
        let temporary = tempfile::tempdir().unwrap();
        let dir = DataDir::real(temporary.path());
        write_snapshot(&dir, 4);
        // A newer snapshot that was being written when the radiant stopped.
        let mut unfinished = SnapshotWriter::create(&dir, 8, 3, 4).unwrap();
        unfinished.write_key_value(ShardId(1), b"gamma", b"2").unwrap();
        let temporary_path = unfinished.temporary_path.clone();
        drop(unfinished);
        fs::write(&temporary_path, b"RSNP garbage").unwrap();
        let loaded = load_latest(&dir, LIMITS).unwrap().unwrap();
        assert_eq!(loaded.last_index, 4);
        assert!(!temporary_path.exists());
    }

    /// Writes snapshot 4 and publishes it, then writes snapshot 8 (a large one) and crashes
    /// at a random point of it; returns what loading finds afterwards.
    fn crash_while_writing_a_snapshot(seed: u64) -> Result<Option<LogIndex>, SnapshotError> {
        use crate::storage::memory_file_system::{DiskFaults, MemoryFileSystem};
        let disk = MemoryFileSystem::new(seed, DiskFaults::default());
        let file_system: SharedFileSystem = std::sync::Arc::new(disk.clone());
        let dir = DataDir { file_system, path: PathBuf::from("/r") };
        dir.fs().create_dir_all(&dir.path).unwrap();
        write_snapshot(&dir, 4);
        let mut writer = SnapshotWriter::create(&dir, 8, 3, 4).unwrap();
        let pairs = seed % 400;
        for number in 0..pairs {
            let key = format!("key-{number}");
            writer.write_key_value(ShardId(2), key.as_bytes(), &[7; 100]).unwrap();
        }
        if seed.is_multiple_of(2) {
            // Crash after publishing (its directory sync may or may not have happened).
            writer.finish().unwrap();
        } else {
            // Crash mid-write: the buffered part of the snapshot is in the file.
            drop(writer);
        }
        disk.crash();
        load_latest(&dir, LIMITS).map(|loaded| loaded.map(|snapshot| snapshot.last_index))
    }

    #[test]
    fn a_crash_while_writing_a_snapshot_leaves_the_old_one_or_the_new_one() {
        for seed in 0..200 {
            let loaded = crash_while_writing_a_snapshot(seed);
            assert!(
                matches!(loaded, Ok(Some(4 | 8))),
                "seed {seed}: after the crash loading found {loaded:?}"
            );
        }
    }

    #[test]
    fn writing_a_snapshot_over_its_final_file_instead_of_renaming_is_caught() {
        let _bug = injected_bugs::inject(StorageBug::OverwriteSnapshotInPlace);
        let caught = (0..200).find(|&seed| crash_while_writing_a_snapshot(seed).is_err());
        let seed = caught.expect("some crash leaves a damaged newest snapshot");
        assert!(crash_while_writing_a_snapshot(seed).is_err(), "seed {seed} replays");
    }
}
