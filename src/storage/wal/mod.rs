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

pub mod record;
mod recovery;
mod segment;
mod truncate;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use radiant_protocol::{LogEntry, LogIndex, Term};
use thiserror::Error;

pub use record::{decode_record, HardState, RecordRead, TornReason, WalRecord};
use segment::{create_segment, open_for_append, sync_directory, Segment};

/// Size limits of the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment that grows past this many bytes is closed and a new one started.
    pub segment_max_bytes: u64,
    /// The largest record payload accepted on write and on recovery.
    pub max_record_bytes: u32,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_max_bytes: 64 << 20,
            // A 16 MiB value plus a 64 KiB key plus the command's framing.
            max_record_bytes: 17 << 20,
        }
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
         start because acknowledged writes may be damaged; remove this radiant's data directory \
         so it rejoins and catches up from its order, or move the segment aside after \
         inspecting it",
        segment.display()
    )]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "wal: unusable after an earlier write or sync failed; restart the radiant so it \
         recovers from what is on disk"
    )]
    Broken,
}

impl WalError {
    pub(crate) fn io(operation: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        Self::Io {
            operation,
            path,
            source,
        }
    }
}

/// The write-ahead log. Segments are ordered by first index; the last one is active.
#[derive(Debug)]
pub struct Wal {
    wal_dir: PathBuf,
    options: WalOptions,
    segments: Vec<Segment>,
    active_file: File,
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
    /// Opens (creating if needed) the WAL in `dir/wal` and recovers what it holds.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Recovered), WalError> {
        assert!(
            options.max_record_bytes > 0,
            "wal: max_record_bytes must be positive"
        );
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&wal_dir)
            .map_err(|source| WalError::io("create directory", &wal_dir, source))?;
        sync_directory(dir)?;
        let mut scan = recovery::recover(&wal_dir, options.max_record_bytes)?;
        let mut write_buffer = Vec::new();
        WalRecord::HardState(scan.hard_state).encode_into(&mut write_buffer);
        if scan.segments.is_empty() {
            let first_index = scan.empty_log_first_index;
            let (file, segment) = create_segment(&wal_dir, first_index, &write_buffer)?;
            file.sync_data()
                .map_err(|source| WalError::io("fsync segment", &segment.path, source))?;
            sync_directory(&wal_dir)?;
            scan.segments.push(segment);
        } else if scan.torn_tail.is_some() {
            // The cut may have removed the segment's leading hard state; restore it so that
            // compaction of older segments can never lose it.
            let active = scan.segments.last_mut().expect("segments is not empty");
            let mut file = open_for_append(&active.path)?;
            file.write_all(&write_buffer)
                .and_then(|()| file.sync_data())
                .map_err(|source| WalError::io("rewrite hard state", &active.path, source))?;
            active.length_bytes += write_buffer.len() as u64;
        }
        let active_path = &scan.segments.last().expect("segments is not empty").path;
        let active_file = open_for_append(active_path)?;
        let recovered = Recovered {
            hard_state: scan.hard_state,
            first_index: scan.segments[0].first_index,
            entries: scan.entries,
            torn_tail: scan.torn_tail,
        };
        let wal = Wal {
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
            segment
                .entries
                .push(segment::EntryLocation { offset_bytes, term });
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
        let path = &self.active().path;
        let mut result = self
            .active_file
            .sync_data()
            .map_err(|source| WalError::io("fsync segment", path, source));
        if result.is_ok() && self.directory_dirty {
            result = sync_directory(&self.wal_dir);
            self.directory_dirty = result.is_err();
        }
        self.break_on_error(result)
    }

    /// Closes the active segment (synced first, so a newer segment on disk always implies a
    /// complete older one) and starts a new one beginning with the current hard state.
    fn rotate(&mut self) -> Result<(), WalError> {
        let old_path = &self.active().path;
        self.active_file
            .sync_data()
            .map_err(|source| WalError::io("fsync segment", old_path, source))?;
        self.write_buffer.clear();
        WalRecord::HardState(self.hard_state).encode_into(&mut self.write_buffer);
        let first_index = self.last_index() + 1;
        let (file, segment) = create_segment(&self.wal_dir, first_index, &self.write_buffer)?;
        self.active_file = file;
        self.segments.push(segment);
        self.directory_dirty = true;
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
        let after = self
            .segments
            .partition_point(|segment| segment.first_index <= index);
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
