//! The write-ahead log of one order's replica: entries and hard state, in segment files under
//! `DIR/wal/`, with exact suffix truncation, prefix compaction and crash recovery.
//!
//! This module owns the WAL's files and its in-memory index (where each entry lives). It
//! must not decide what to write or when to sync: the WAL writer thread batches `append`
//! calls and issues one `sync` per batch (group commit), and the core decides truncation and
//! compaction. Nothing here is durable until `sync` (or a method documented as durable)
//! returns.
//!
//! Recovery treats a non-contiguous log as corruption, with one exception: the overlapping
//! or entry-less segment that an interrupted `truncate_suffix` leaves, which is completed.

#[cfg(test)]
mod crash_tests;
pub mod record;
mod recovery;
mod segment;
mod truncate;

use std::io;
use std::path::{Path, PathBuf};

use radiant_protocol::{LogEntry, LogIndex, Term};
use thiserror::Error;

pub use record::{decode_record, RecordRead, TornReason, WalRecord};

use crate::core::HardState;
use crate::storage::file_system::{AppendFile, DataDir, SharedFileSystem};
use crate::storage::injected_bugs::{self, StorageBug};
use segment::{create_segment, open_for_append, sync_directory, Segment};

/// The largest record payload of the on-disk format: an entry of the largest frame any
/// configuration accepts, plus the record and entry headers. A format constant, not a
/// tunable: a radiant restarted with a smaller `max_frame_bytes` must still read every
/// record it wrote before (deriving it from the tunable made recovery cut large
/// acknowledged records as torn).
pub const MAX_RECORD_BYTES: u32 = radiant_protocol::limits::MAX_FRAME_BYTES_LIMIT + 64;

/// Size limits of the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment that grows past this many bytes is closed and a new one started.
    pub segment_max_bytes: u64,
    /// The largest record payload accepted on write and on recovery: `MAX_RECORD_BYTES`
    /// in service (tests of the format's edges use smaller ones).
    pub max_record_bytes: u32,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self { segment_max_bytes: 64 << 20, max_record_bytes: MAX_RECORD_BYTES }
    }
}

/// What `Wal::open` found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The newest hard state recorded, or the default if none was.
    pub hard_state: HardState,
    /// The index of the first entry kept (`entries[0].index` when there are entries).
    pub first_index: LogIndex,
    pub entries: Vec<LogEntry>,
    /// Set when a write cut short by a crash was removed from the end of the log.
    pub torn_tail: Option<TornTail>,
}

/// The end of the last segment that recovery cut off because a crash interrupted its write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    pub offset: u64,
    pub dropped_bytes: u64,
    pub reason: String,
}

#[derive(Debug, Error)]
pub enum WalError {
    #[error("wal: cannot {operation} `{}`", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "wal segment `{}` is corrupt at byte offset {offset}: {reason}. The radiant refuses to \
         start: acknowledged writes may be damaged, and it must not vote or serve with a log \
         shorter than it promised. A single-node system: restore its data directory from a \
         backup. A member of a formed system: remove it (`radiant admin remove ID` at a radiant \
         that stays), empty its data directory and start it again, so it joins as a new \
         radiant. A member of a static order (`members` in its config): remove it (`radiant \
         admin remove-member ID`) and add it back under a new `member_id` with an empty data \
         directory. Never bring it back under its old id with an emptied data directory: it \
         would have forgotten its votes, and its order could elect two heralds in one term",
        segment.display()
    )]
    Corrupt { segment: PathBuf, offset: u64, reason: String },
    #[error(
        "wal: unusable after an earlier write or sync failed; restart the radiant so it \
         recovers from what is on disk"
    )]
    Broken,
}

impl WalError {
    pub(crate) fn io(operation: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        Self::Io { operation, path, source }
    }
}

/// The write-ahead log. Segments are ordered by first index; the last one is active.
#[derive(Debug)]
pub struct Wal {
    file_system: SharedFileSystem,
    wal_dir: PathBuf,
    options: WalOptions,
    segments: Vec<Segment>,
    active_file: Box<dyn AppendFile>,
    hard_state: HardState,
    /// Reused for every write so `append` does not allocate in the steady state.
    write_buffer: Vec<u8>,
    /// A file was created or deleted since the directory was last synced.
    directory_dirty: bool,
    /// A write or sync failed, so the file contents are unknown (fsync errors cannot be
    /// retried safely): refuse further use.
    broken: bool,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `DATA_DIR/wal` and recovers what it holds.
    pub fn open(data_dir: &DataDir, options: WalOptions) -> Result<(Wal, Recovered), WalError> {
        assert!(options.max_record_bytes > 0, "wal: max_record_bytes must be positive");
        let fs = data_dir.fs();
        let dir = &data_dir.path;
        let wal_dir = data_dir.join("wal");
        fs.create_dir_all(&wal_dir)
            .map_err(|source| WalError::io("create directory", &wal_dir, source))?;
        sync_directory(fs, dir)?;
        let mut scan = recovery::recover(fs, &wal_dir, options.max_record_bytes)?;
        let mut write_buffer = Vec::new();
        WalRecord::HardState(scan.hard_state).encode_into(&mut write_buffer);
        if scan.segments.is_empty() {
            let first_index = scan.empty_log_first_index;
            let (mut file, segment) = create_segment(fs, &wal_dir, first_index, &write_buffer)?;
            file.sync().map_err(|source| WalError::io("fsync segment", &segment.path, source))?;
            sync_directory(fs, &wal_dir)?;
            scan.segments.push(segment);
        } else if scan.torn_tail.is_some() {
            // The cut may have removed the segment's leading hard state; restore it so that
            // compaction of older segments can never lose it.
            let active = scan.segments.last_mut().expect("segments is not empty");
            let mut file = open_for_append(fs, &active.path)?;
            file.write_all(&write_buffer)
                .and_then(|()| file.sync())
                .map_err(|source| WalError::io("rewrite hard state", &active.path, source))?;
            active.length_bytes += write_buffer.len() as u64;
        }
        let active_path = &scan.segments.last().expect("segments is not empty").path;
        let active_file = open_for_append(fs, active_path)?;
        let recovered = Recovered {
            hard_state: scan.hard_state,
            first_index: scan.segments[0].first_index,
            entries: scan.entries,
            torn_tail: scan.torn_tail,
        };
        let wal = Wal {
            file_system: data_dir.file_system.clone(),
            wal_dir,
            options,
            segments: scan.segments,
            active_file,
            hard_state: scan.hard_state,
            write_buffer,
            directory_dirty: false,
            broken: false,
        };
        wal.check_invariants();
        Ok((wal, recovered))
    }

    /// The index of the first entry kept; `last_index() + 1` when the log is empty.
    pub fn first_index(&self) -> LogIndex {
        self.segments[0].first_index
    }

    /// The index of the last entry; `first_index() - 1` when the log is empty.
    pub fn last_index(&self) -> LogIndex {
        self.active().last_index()
    }

    /// The term of the last entry, or 0 when the log holds no entry (after compaction the
    /// caller knows it from its snapshot).
    pub fn last_term(&self) -> Term {
        self.term_at(self.last_index()).unwrap_or(0)
    }

    /// The newest hard state saved (written, not necessarily synced).
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The term of the entry at `index`, if the log holds it.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        let position = self.segment_position(index)?;
        let segment = &self.segments[position];
        let offset = usize::try_from(index - segment.first_index).ok()?;
        segment.entries.get(offset).map(|location| location.term)
    }

    /// Writes `entries` (which must continue the log) with one `write(2)`; does not sync.
    /// Rotates to a new segment once the active one exceeds `segment_max_bytes`.
    pub fn append(&mut self, entries: &[LogEntry]) -> Result<(), WalError> {
        self.check_usable()?;
        if entries.is_empty() {
            return Ok(());
        }
        let result = self.append_unchecked(entries);
        self.break_on_error(result)
    }

    fn append_unchecked(&mut self, entries: &[LogEntry]) -> Result<(), WalError> {
        self.write_buffer.clear();
        let mut last_index = self.last_index();
        let mut last_term = self.last_term();
        let start_bytes = self.active().length_bytes;
        let segment = self.segments.last_mut().expect("segments is not empty");
        for entry in entries {
            assert!(
                entry.index == last_index + 1,
                "wal append: index {} after {last_index}",
                entry.index
            );
            assert!(
                entry.term >= last_term,
                "wal append: term {} after term {last_term}",
                entry.term
            );
            let offset_bytes = start_bytes + self.write_buffer.len() as u64;
            let record = WalRecord::Entry(entry.clone());
            let payload_bytes = record.encoded_bytes() - record::RECORD_HEADER_BYTES;
            assert!(
                payload_bytes <= self.options.max_record_bytes as usize,
                "wal append: entry {} is {payload_bytes} bytes, over max_record_bytes {}",
                entry.index,
                self.options.max_record_bytes
            );
            record.encode_into(&mut self.write_buffer);
            let term = entry.term;
            segment.entries.push(segment::EntryLocation { offset_bytes, term });
            (last_index, last_term) = (entry.index, entry.term);
        }
        self.active_file
            .write_all(&self.write_buffer)
            .map_err(|source| WalError::io("append to segment", &segment.path, source))?;
        segment.length_bytes += self.write_buffer.len() as u64;
        if segment.length_bytes > self.options.segment_max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Writes what one `Action::Persist` of the core asks for, in the order the core relies
    /// on: the hard state, the truncation, then the entries. Does not sync (a truncation
    /// is durable when it returns).
    pub fn write_persist(
        &mut self,
        hard_state: Option<HardState>,
        truncate_from: Option<LogIndex>,
        entries: &[LogEntry],
    ) -> Result<(), WalError> {
        if let Some(hard_state) = hard_state {
            self.save_hard_state(hard_state)?;
        }
        if let Some(from) = truncate_from {
            self.truncate_suffix(from)?;
        }
        self.append(entries)
    }

    /// Writes a hard state record; does not sync.
    pub fn save_hard_state(&mut self, hard_state: HardState) -> Result<(), WalError> {
        self.check_usable()?;
        assert!(
            hard_state.term >= self.hard_state.term,
            "wal save_hard_state: term {} after term {}",
            hard_state.term,
            self.hard_state.term
        );
        self.write_buffer.clear();
        WalRecord::HardState(hard_state).encode_into(&mut self.write_buffer);
        let segment = self.segments.last_mut().expect("segments is not empty");
        let result = self
            .active_file
            .write_all(&self.write_buffer)
            .map_err(|source| WalError::io("append to segment", &segment.path, source));
        if result.is_ok() {
            segment.length_bytes += self.write_buffer.len() as u64;
            self.hard_state = hard_state;
        }
        self.break_on_error(result)
    }

    /// Makes everything written so far durable: fdatasync of the active segment, then an
    /// fsync of the directory if a segment was created or deleted since the last one.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        let path = &self.segments.last().expect("segments is not empty").path;
        let mut result =
            self.active_file.sync().map_err(|source| WalError::io("fsync segment", path, source));
        if result.is_ok() && self.directory_dirty {
            result = sync_directory(&*self.file_system, &self.wal_dir);
            self.directory_dirty = result.is_err();
        }
        self.break_on_error(result)
    }

    /// Closes the active segment (synced first, so a newer segment on disk always implies a
    /// complete older one) and starts a new one beginning with the current hard state.
    fn rotate(&mut self) -> Result<(), WalError> {
        let old_path = &self.segments.last().expect("segments is not empty").path;
        self.active_file
            .sync()
            .map_err(|source| WalError::io("fsync segment", old_path, source))?;
        self.write_buffer.clear();
        WalRecord::HardState(self.hard_state).encode_into(&mut self.write_buffer);
        let first_index = self.last_index() + 1;
        let (file, segment) =
            create_segment(&*self.file_system, &self.wal_dir, first_index, &self.write_buffer)?;
        self.active_file = file;
        self.segments.push(segment);
        self.directory_dirty = !injected_bugs::active(StorageBug::SkipSegmentDirectorySync);
        Ok(())
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("segments is not empty")
    }

    /// The position of the segment whose index range contains `index`, if any.
    fn segment_position(&self, index: LogIndex) -> Option<usize> {
        if index < self.first_index() || index > self.last_index() {
            return None;
        }
        let after = self.segments.partition_point(|segment| segment.first_index <= index);
        Some(after - 1)
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.broken {
            return Err(WalError::Broken);
        }
        Ok(())
    }

    fn break_on_error<T>(&mut self, result: Result<T, WalError>) -> Result<T, WalError> {
        if result.is_err() {
            self.broken = true;
        } else {
            self.check_invariants();
        }
        result
    }

    fn check_invariants(&self) {
        assert!(!self.segments.is_empty(), "wal: no active segment");
        for pair in self.segments.windows(2) {
            assert!(
                pair[0].next_index() == pair[1].first_index,
                "wal: segment {} ends at {} but next starts at {}",
                pair[0].path.display(),
                pair[0].last_index(),
                pair[1].first_index
            );
            assert!(
                !pair[0].entries.is_empty(),
                "wal: closed segment {} holds no entry",
                pair[0].path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::segment::{encode_header, segment_path};
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::fs;

    fn small_options() -> WalOptions {
        WalOptions { segment_max_bytes: 200, max_record_bytes: 4096 }
    }

    fn make_entries(indexes: std::ops::RangeInclusive<u64>, term: Term) -> Vec<LogEntry> {
        let make = |index| LogEntry {
            term,
            index,
            data: Bytes::from(format!("entry {index} of term {term}")),
        };
        indexes.map(make).collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> =
            fs::read_dir(dir.join("wal")).unwrap().map(|entry| entry.unwrap().path()).collect();
        files.sort();
        files
    }

    fn open(dir: &Path) -> (Wal, Recovered) {
        Wal::open(&DataDir::real(dir), small_options()).unwrap()
    }

    const HARD_STATE: HardState = HardState { term: 4, voted_for: 2, commit: 3 };

    #[test]
    fn a_new_wal_is_empty_and_starts_at_index_one() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, recovered) = open(dir.path());
        assert_eq!((wal.first_index(), wal.last_index(), wal.last_term()), (1, 0, 0));
        assert_eq!(recovered.first_index, 1);
        assert!(recovered.entries.is_empty());
        assert_eq!(recovered.hard_state, HardState::default());
    }

    #[test]
    fn append_sync_and_reopen_return_every_entry_and_the_hard_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        wal.append(&make_entries(1..=3, 1)).unwrap();
        wal.save_hard_state(HARD_STATE).unwrap();
        wal.append(&make_entries(4..=5, 4)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (wal, recovered) =
            Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        let mut expected = make_entries(1..=3, 1);
        expected.extend(make_entries(4..=5, 4));
        assert_eq!(recovered.entries, expected);
        assert_eq!(recovered.hard_state, HARD_STATE);
        assert_eq!(recovered.torn_tail, None);
        assert_eq!((wal.last_index(), wal.last_term(), wal.term_at(2)), (5, 4, Some(1)));
        assert_eq!(wal.hard_state(), HARD_STATE);
    }

    #[test]
    fn reset_to_discards_the_log_keeps_the_hard_state_and_continues_at_the_new_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        wal.append(&make_entries(1..=30, 1)).unwrap();
        wal.save_hard_state(HARD_STATE).unwrap();
        wal.sync().unwrap();
        wal.reset_to(101).unwrap();
        assert_eq!((wal.first_index(), wal.last_index()), (101, 100));
        wal.append(&make_entries(101..=102, 5)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (wal, recovered) = open(dir.path());
        assert_eq!(recovered.entries, make_entries(101..=102, 5));
        assert_eq!(recovered.hard_state, HARD_STATE);
        assert_eq!(wal.first_index(), 101);
    }

    #[test]
    fn recovery_finishes_a_reset_interrupted_before_the_old_segments_were_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        wal.save_hard_state(HARD_STATE).unwrap();
        wal.append(&make_entries(1..=30, 1)).unwrap();
        // One more small append, so the last segment holds an entry. (Were it entry-less,
        // recovery would read the layout as an interrupted truncation and keep the old
        // log with the same hard state: also safe, the daemon redoes the reset.)
        wal.append(&make_entries(31..=31, 1)).unwrap();
        wal.sync().unwrap();
        let saved: Vec<(PathBuf, Vec<u8>)> = segment_files(dir.path())
            .into_iter()
            .map(|path| (path.clone(), std::fs::read(&path).unwrap()))
            .collect();
        assert!(saved.len() > 1, "the small options rotate segments");
        wal.reset_to(101).unwrap();
        drop(wal);
        // Put the old segments back, as if the crash came before their deletion.
        for (path, bytes) in &saved {
            std::fs::write(path, bytes).unwrap();
        }
        let (wal, recovered) = open(dir.path());
        assert!(recovered.entries.is_empty());
        assert_eq!(recovered.hard_state, HARD_STATE);
        assert_eq!((wal.first_index(), wal.last_index()), (101, 100));
        assert_eq!(segment_files(dir.path()).len(), 1);
    }

    /// Writes entries 1..=3, then damages the last record with `damage`, reopens and checks
    /// the tail was cut, reported, and that appending continues from index 3.
    fn check_torn_tail_is_cut(damage: impl FnOnce(&Path, u64)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        wal.append(&make_entries(1..=2, 1)).unwrap();
        wal.save_hard_state(HARD_STATE).unwrap();
        wal.append(&make_entries(3..=3, 4)).unwrap();
        wal.sync().unwrap();
        let last_offset = wal.active().entries[2].offset_bytes;
        drop(wal);
        let segment = segment_files(dir.path()).remove(0);
        damage(&segment, last_offset);
        let (mut wal, recovered) =
            Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        let torn_tail = recovered.torn_tail.expect("torn tail reported");
        assert_eq!((torn_tail.segment, torn_tail.offset), (segment, last_offset));
        assert!(torn_tail.dropped_bytes > 0);
        assert_eq!(recovered.entries, make_entries(1..=2, 1));
        assert_eq!(recovered.hard_state, HARD_STATE);
        wal.append(&make_entries(3..=4, 5)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, recovered) = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        let mut expected = make_entries(1..=2, 1);
        expected.extend(make_entries(3..=4, 5));
        assert_eq!(recovered.entries, expected);
        assert_eq!((recovered.hard_state, recovered.torn_tail), (HARD_STATE, None));
    }

    #[test]
    fn a_record_cut_mid_way_is_a_torn_tail_that_is_truncated_and_reported() {
        check_torn_tail_is_cut(|segment, last_offset| {
            let file = fs::OpenOptions::new().write(true).open(segment).unwrap();
            file.set_len(last_offset + 11).unwrap();
        });
    }

    #[test]
    fn a_flipped_byte_in_the_complete_last_record_is_corrupt_not_a_torn_tail() {
        // The record is all there and was synced (acknowledged): a checksum mismatch with
        // no zero-filled sector is damage, and cutting it would lose an acknowledged write.
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        wal.append(&make_entries(1..=20, 1)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let segment = segment_files(dir.path()).remove(0);
        let mut bytes = fs::read(&segment).unwrap();
        let flipped = bytes.len() - 10;
        bytes[flipped] ^= 0x01;
        fs::write(&segment, &bytes).unwrap();
        let error = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, WalError::Corrupt { .. }), "{message}");
        assert!(message.contains("in a complete record with no zero-filled sector"), "{message}");
        assert!(message.contains("under a new `member_id`"), "safe advice: {message}");
        assert_eq!(fs::read(&segment).unwrap(), bytes, "refusing must not modify the file");
    }

    #[test]
    fn a_last_record_with_a_zero_filled_sector_is_a_torn_tail() {
        // A write cut short by a crash: its sectors reached the disk out of order, and one
        // of them never did (a fresh segment's space reads as zeros).
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        wal.append(&make_entries(1..=2, 1)).unwrap();
        let large = LogEntry { term: 1, index: 3, data: Bytes::from(vec![b'x'; 2_000]) };
        wal.append(&[large]).unwrap();
        wal.sync().unwrap();
        let last_offset = wal.active().entries[2].offset_bytes as usize;
        drop(wal);
        let segment = segment_files(dir.path()).remove(0);
        let mut bytes = fs::read(&segment).unwrap();
        let unwritten = (last_offset / 512 + 1) * 512..(last_offset / 512 + 2) * 512;
        bytes[unwritten].fill(0);
        fs::write(&segment, &bytes).unwrap();
        let (_, recovered) = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        let torn_tail = recovered.torn_tail.expect("torn tail reported");
        assert_eq!(torn_tail.offset, last_offset as u64);
        assert_eq!(recovered.entries, make_entries(1..=2, 1));
    }

    #[test]
    fn a_flipped_byte_in_an_earlier_record_with_valid_records_after_it_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap();
        wal.append(&make_entries(1..=5, 1)).unwrap();
        wal.sync().unwrap();
        let damaged_offset = wal.active().entries[1].offset_bytes;
        drop(wal);
        let segment = segment_files(dir.path()).remove(0);
        let mut bytes = fs::read(&segment).unwrap();
        bytes[damaged_offset as usize + 20] ^= 0x01;
        fs::write(&segment, &bytes).unwrap();
        let error = Wal::open(&DataDir::real(dir.path()), WalOptions::default()).unwrap_err();
        let WalError::Corrupt { segment: named, offset, .. } = &error else {
            panic!("expected Corrupt, got {error:?}");
        };
        assert_eq!((named, *offset), (&segment, damaged_offset));
        let message = error.to_string();
        assert!(message.contains("in a complete record with no zero-filled sector"), "{message}");
        assert!(message.contains("data directory"), "{message}");
        // Refusing must not have modified the file.
        assert_eq!(fs::read(&segment).unwrap(), bytes);
    }

    #[test]
    fn rotation_creates_several_segments_and_recovery_spans_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        for index in 1..=30 {
            wal.append(&make_entries(index..=index, 1 + index / 10)).unwrap();
        }
        wal.save_hard_state(HARD_STATE).unwrap();
        wal.sync().unwrap();
        drop(wal);
        assert!(segment_files(dir.path()).len() >= 5);
        let (wal, recovered) = open(dir.path());
        let indexes: Vec<u64> = recovered.entries.iter().map(|entry| entry.index).collect();
        assert_eq!(indexes, (1..=30).collect::<Vec<_>>());
        assert_eq!(recovered.hard_state, HARD_STATE);
        assert_eq!((wal.last_index(), wal.last_term()), (30, 4));
    }

    #[test]
    fn truncate_suffix_then_appending_a_new_term_reopens_as_exactly_the_new_suffix() {
        for from_index in [2, 9, 10, 17, 20] {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _) = open(dir.path());
            for index in 1..=20 {
                wal.append(&make_entries(index..=index, 1)).unwrap();
            }
            wal.save_hard_state(HARD_STATE).unwrap();
            wal.sync().unwrap();
            wal.truncate_suffix(from_index).unwrap();
            assert_eq!((wal.last_index(), wal.hard_state()), (from_index - 1, HARD_STATE));
            wal.append(&make_entries(from_index..=from_index + 2, 5)).unwrap();
            wal.sync().unwrap();
            drop(wal);
            let (wal, recovered) = open(dir.path());
            let mut expected = make_entries(1..=from_index - 1, 1);
            expected.extend(make_entries(from_index..=from_index + 2, 5));
            assert_eq!(recovered.entries, expected, "from_index {from_index}");
            assert_eq!(recovered.hard_state, HARD_STATE, "from_index {from_index}");
            assert_eq!(wal.last_term(), 5);
        }
    }

    #[test]
    fn truncate_suffix_of_the_whole_log_leaves_it_empty_at_the_same_first_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        wal.append(&make_entries(1..=12, 1)).unwrap();
        wal.save_hard_state(HARD_STATE).unwrap();
        wal.truncate_suffix(1).unwrap();
        drop(wal);
        let (wal, recovered) = open(dir.path());
        assert!(recovered.entries.is_empty());
        assert_eq!((recovered.first_index, recovered.hard_state), (1, HARD_STATE));
        assert_eq!((wal.first_index(), wal.last_index()), (1, 0));
    }

    #[test]
    fn recovery_finishes_a_truncation_interrupted_after_its_commit_point() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        for index in 1..=20 {
            wal.append(&make_entries(index..=index, 1)).unwrap();
        }
        wal.sync().unwrap();
        let from_index = wal.segments[1].first_index + 1;
        drop(wal);
        // Step 1 of truncate_suffix only: the hard-state segment named `from_index`.
        let mut contents = encode_header(from_index).to_vec();
        WalRecord::HardState(HARD_STATE).encode_into(&mut contents);
        fs::write(segment_path(&dir.path().join("wal"), from_index), contents).unwrap();
        let (mut wal, recovered) = open(dir.path());
        assert_eq!(recovered.entries, make_entries(1..=from_index - 1, 1));
        assert_eq!(recovered.hard_state, HARD_STATE);
        wal.append(&make_entries(from_index..=from_index, 5)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, recovered) = open(dir.path());
        assert_eq!(recovered.entries.last().map(|entry| entry.term), Some(5));
        assert_eq!(recovered.entries.len() as u64, from_index);
    }

    #[test]
    fn a_missing_middle_segment_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        for index in 1..=20 {
            wal.append(&make_entries(index..=index, 1)).unwrap();
        }
        wal.sync().unwrap();
        drop(wal);
        let files = segment_files(dir.path());
        assert!(files.len() >= 3);
        fs::remove_file(&files[1]).unwrap();
        let error = Wal::open(&DataDir::real(dir.path()), small_options()).unwrap_err();
        assert!(matches!(error, WalError::Corrupt { .. }), "{error:?}");
        assert!(error.to_string().contains("a segment is missing"), "{error}");
    }

    #[test]
    fn a_last_segment_shorter_than_its_header_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        wal.append(&make_entries(1..=3, 1)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        fs::write(segment_path(&dir.path().join("wal"), 4), b"RWA").unwrap();
        let (mut wal, recovered) = open(dir.path());
        assert_eq!(recovered.entries, make_entries(1..=3, 1));
        wal.append(&make_entries(4..=4, 1)).unwrap();
    }

    #[test]
    fn compact_prefix_removes_old_segments_but_keeps_the_hard_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        wal.save_hard_state(HARD_STATE).unwrap();
        for index in 1..=30 {
            wal.append(&make_entries(index..=index, 4)).unwrap();
        }
        wal.sync().unwrap();
        let segments_before = segment_files(dir.path()).len();
        wal.compact_prefix(20).unwrap();
        assert!(segment_files(dir.path()).len() < segments_before);
        let first_index = wal.first_index();
        assert!(first_index > 1 && first_index <= 21, "first index {first_index}");
        assert_eq!(wal.term_at(first_index - 1), None);
        wal.compact_prefix(1000).unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1, "the active segment stays");
        drop(wal);
        let (wal, recovered) = open(dir.path());
        assert_eq!(recovered.hard_state, HARD_STATE);
        assert_eq!(recovered.first_index, wal.first_index());
        assert_eq!(recovered.entries.last().map(|entry| entry.index), Some(30));
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Append { count: u64, new_term: bool },
        SaveHardState { vote: bool },
        Sync,
        TruncateSuffix { back: u64 },
        CompactPrefix { back: u64 },
        Reopen,
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            4 => (1..6u64, any::<bool>())
                .prop_map(|(count, new_term)| Operation::Append { count, new_term }),
            1 => any::<bool>().prop_map(|vote| Operation::SaveHardState { vote }),
            1 => Just(Operation::Sync),
            1 => (0..12u64).prop_map(|back| Operation::TruncateSuffix { back }),
            1 => (0..20u64).prop_map(|back| Operation::CompactPrefix { back }),
            1 => Just(Operation::Reopen),
        ]
    }

    /// The model: every entry written (a reopen in the same process loses nothing, since the
    /// page cache survives) and the last hard state saved.
    struct Model {
        entries: Vec<LogEntry>,
        hard_state: HardState,
        term: Term,
    }

    fn apply(wal: &mut Wal, model: &mut Model, operation: &Operation, dir: &Path) {
        let last_index = wal.last_index();
        match *operation {
            Operation::Append { count, new_term } => {
                model.term += u64::from(new_term);
                let batch = make_entries(last_index + 1..=last_index + count, model.term);
                wal.append(&batch).unwrap();
                model.entries.extend(batch);
            }
            Operation::SaveHardState { vote } => {
                let hard_state = HardState {
                    term: model.term,
                    voted_for: u64::from(vote) * 3,
                    commit: last_index / 2,
                };
                wal.save_hard_state(hard_state).unwrap();
                model.hard_state = hard_state;
            }
            Operation::Sync => wal.sync().unwrap(),
            Operation::TruncateSuffix { back } => {
                let from_index = (last_index + 1).saturating_sub(back).max(wal.first_index());
                wal.truncate_suffix(from_index).unwrap();
                model.entries.retain(|entry| entry.index < from_index);
            }
            Operation::CompactPrefix { back } => {
                wal.compact_prefix(last_index.saturating_sub(back)).unwrap();
                let first_index = wal.first_index();
                model.entries.retain(|entry| entry.index >= first_index);
            }
            Operation::Reopen => {
                let (reopened, recovered) = open(dir);
                *wal = reopened;
                assert_eq!(recovered.entries, model.entries);
                assert_eq!(recovered.hard_state, model.hard_state);
                assert_eq!(recovered.torn_tail, None);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_operations_and_reopens_match_an_in_memory_model(
            operations in proptest::collection::vec(operation(), 1..40),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _) = open(dir.path());
            let hard_state = HardState::default();
            let mut model = Model { entries: Vec::new(), hard_state, term: 1 };
            for operation in &operations {
                apply(&mut wal, &mut model, operation, dir.path());
                let model_last = model.entries.last().map(|entry| (entry.index, entry.term));
                let wal_last = (wal.last_index(), wal.last_term());
                prop_assert_eq!(model_last.unwrap_or((wal.first_index() - 1, 0)), wal_last);
                prop_assert_eq!(wal.hard_state(), model.hard_state);
            }
            apply(&mut wal, &mut model, &Operation::Reopen, dir.path());
        }
    }
}
