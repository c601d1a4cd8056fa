//! WAL recovery: turns the segment files found at startup into the in-memory index, the
//! entries and the newest hard state, repairing only what a crash can legitimately leave.
//!
//! Repairs (each logged with `warn!`): a torn record at the end of the last segment is cut
//! off; a last segment shorter than its header (a crash while rotating) is removed; leftover
//! `.wal.tmp` files are removed; the traces of an interrupted `truncate_suffix` or
//! `reset_to` are completed (see `Wal::truncate_suffix` and `Wal::reset_to` for the
//! protocols). Everything else that does not fit is
//! `WalError::Corrupt`: recovery must never silently drop a record that may have been
//! acknowledged. Entries must be contiguous inside and across segments.

use std::io::Read;
use std::path::{Path, PathBuf};

use radiant_protocol::{LogEntry, LogIndex};
use tracing::warn;

use super::record::{decode_record, RecordRead, TornReason, WalRecord, RECORD_HEADER_BYTES};
use super::segment::{
    decode_header, parse_segment_name, remove_file, sync_directory, EntryLocation, Segment,
    SEGMENT_HEADER_BYTES,
};
use super::{TornTail, WalError};
use crate::core::HardState;
use crate::storage::file_system::FileSystem;
use crate::storage::injected_bugs::{self, StorageBug};

/// What recovery found; `segments` is empty only when the directory held no segment.
#[derive(Default)]
pub(super) struct Scan {
    pub hard_state: HardState,
    pub entries: Vec<LogEntry>,
    pub segments: Vec<Segment>,
    pub torn_tail: Option<TornTail>,
    /// The first index for a fresh log when no segment survives.
    pub empty_log_first_index: LogIndex,
}

fn corrupt(segment: &Path, offset: u64, reason: String) -> WalError {
    WalError::Corrupt { segment: segment.to_path_buf(), offset, reason }
}

/// Reads every segment in `wal_dir` in index order.
pub(super) fn recover(
    fs: &dyn FileSystem,
    wal_dir: &Path,
    max_record_bytes: u32,
) -> Result<Scan, WalError> {
    let mut listed = list_segments(fs, wal_dir)?;
    let mut scan = Scan { empty_log_first_index: 1, ..Scan::default() };
    remove_unwritten_last_segment(fs, &mut listed, &mut scan)?;
    for (position, (first_index, path)) in listed.iter().enumerate() {
        if let Some(previous) = scan.segments.last() {
            if previous.entries.is_empty() {
                // Only `truncate_suffix` leaves an entry-less segment before another one.
                discard_leftover_segments(fs, &listed[position..])?;
                break;
            }
            if *first_index <= previous.last_index() {
                finish_interrupted_truncation(fs, &mut scan, *first_index, path)?;
            } else if *first_index != previous.next_index() {
                if position + 1 == listed.len() {
                    let mut reset = Scan { empty_log_first_index: *first_index, ..Scan::default() };
                    let last = SegmentToScan { path, first_index: *first_index, next: None };
                    scan_segment(fs, last, max_record_bytes, &mut reset)?;
                    if reset.entries.is_empty() {
                        // Only `reset_to` leaves an entry-less last segment after a gap:
                        // it stopped before deleting the old segments, so finish that.
                        discard_leftover_segments(fs, &listed[..position])?;
                        scan = reset;
                        break;
                    }
                }
                let reason = format!(
                    "segment starts at index {first_index} but the previous segment `{}` ends \
                     at index {}: a segment is missing",
                    previous.path.display(),
                    previous.last_index()
                );
                return Err(corrupt(path, 0, reason));
            }
        }
        let next = listed.get(position + 1).map(|(next_first_index, _)| *next_first_index);
        let segment = SegmentToScan { path, first_index: *first_index, next };
        scan_segment(fs, segment, max_record_bytes, &mut scan)?;
    }
    sync_directory(fs, wal_dir)?;
    Ok(scan)
}

/// Segment files sorted by first index; removes leftover temporary files.
fn list_segments(
    fs: &dyn FileSystem,
    wal_dir: &Path,
) -> Result<Vec<(LogIndex, PathBuf)>, WalError> {
    let names =
        fs.list(wal_dir).map_err(|source| WalError::io("list directory", wal_dir, source))?;
    let mut listed = Vec::new();
    for name in names {
        let path = wal_dir.join(&name);
        if let Some(first_index) = parse_segment_name(&name) {
            listed.push((first_index, path));
        } else if name.ends_with(".wal.tmp") {
            warn!(path = %path.display(), "wal: removing leftover temporary segment");
            remove_file(fs, &path)?;
        } else {
            warn!(path = %path.display(), "wal: ignoring unexpected file");
        }
    }
    listed.sort();
    Ok(listed)
}

/// A last segment shorter than its header was being created when the radiant stopped; it
/// holds nothing that was ever synced.
fn remove_unwritten_last_segment(
    fs: &dyn FileSystem,
    listed: &mut Vec<(LogIndex, PathBuf)>,
    scan: &mut Scan,
) -> Result<(), WalError> {
    let Some((first_index, path)) = listed.last() else {
        return Ok(());
    };
    // The first sector tells, and the segment may be large: recovery reads it whole next.
    let mut bytes = Vec::with_capacity(SECTOR_BYTES);
    fs.open_read(path)
        .and_then(|file| file.take(SECTOR_BYTES as u64).read_to_end(&mut bytes))
        .map_err(|source| WalError::io("read segment", path, source))?;
    let header_bytes = SEGMENT_HEADER_BYTES as usize;
    // A header that never reached the disk: cut short, or unwritten (zeros up to the end
    // of its sector) while later writes landed out of order. Syncing the segment would have
    // made its header durable, so nothing in it was synced.
    let unwritten = bytes.len() < header_bytes
        || (decode_header(&bytes) != Ok(*first_index)
            && (bytes[..header_bytes].iter().all(|&byte| byte == 0)
                || bytes[header_bytes..bytes.len().min(SECTOR_BYTES)].iter().all(|&b| b == 0)));
    if !unwritten {
        return Ok(());
    }
    let length_bytes = fs.file_len(path).unwrap_or(bytes.len() as u64);
    let segment = path.display();
    warn!(%segment, length_bytes, "wal: removing segment whose header was never written");
    remove_file(fs, path)?;
    scan.empty_log_first_index = *first_index;
    listed.pop();
    Ok(())
}

fn discard_leftover_segments(
    fs: &dyn FileSystem,
    leftovers: &[(LogIndex, PathBuf)],
) -> Result<(), WalError> {
    for (_, path) in leftovers {
        let segment = path.display();
        warn!(%segment, "wal: removing segment left by an interrupted truncation or reset");
        remove_file(fs, path)?;
    }
    Ok(())
}

/// A segment named `from_index` that overlaps the previous one was created by
/// `truncate_suffix`, which stopped before cutting the previous segment: cut it now.
fn finish_interrupted_truncation(
    fs: &dyn FileSystem,
    scan: &mut Scan,
    from_index: LogIndex,
    newer_segment: &Path,
) -> Result<(), WalError> {
    let previous = scan.segments.last_mut().expect("caller checked a previous segment");
    if from_index <= previous.first_index {
        let reason = format!("segment overlaps all of `{}`", previous.path.display());
        return Err(corrupt(newer_segment, 0, reason));
    }
    let kept = usize::try_from(from_index - previous.first_index).expect("within entries.len()");
    let offset_bytes = previous.entries[kept].offset_bytes;
    warn!(
        segment = %previous.path.display(), from_index, offset_bytes,
        "wal: finishing an interrupted truncation"
    );
    cut_file(fs, &previous.path, offset_bytes)?;
    let dropped = previous.entries.len() - kept;
    previous.entries.truncate(kept);
    previous.length_bytes = offset_bytes;
    scan.entries.truncate(scan.entries.len() - dropped);
    Ok(())
}

/// Shortens a file to `length_bytes` and makes that durable.
pub(super) fn cut_file(
    fs: &dyn FileSystem,
    path: &Path,
    length_bytes: u64,
) -> Result<(), WalError> {
    fs.truncate(path, length_bytes).map_err(|source| WalError::io("truncate segment", path, source))
}

/// A segment file recovery reads, and the first index of the segment after it (`None` for
/// the newest one).
#[derive(Clone, Copy)]
struct SegmentToScan<'a> {
    path: &'a Path,
    first_index: LogIndex,
    next: Option<LogIndex>,
}

fn scan_segment(
    fs: &dyn FileSystem,
    to_scan: SegmentToScan<'_>,
    max_record_bytes: u32,
    scan: &mut Scan,
) -> Result<(), WalError> {
    let SegmentToScan { path, first_index, next } = to_scan;
    let is_last = next.is_none();
    let bytes = fs.read(path).map_err(|source| WalError::io("read segment", path, source))?;
    let header_index = decode_header(&bytes).map_err(|reason| corrupt(path, 0, reason))?;
    if header_index != first_index {
        let reason = format!("header says first index {header_index}, name says {first_index}");
        return Err(corrupt(path, 0, reason));
    }
    let mut segment =
        Segment { path: path.to_path_buf(), first_index, length_bytes: 0, entries: Vec::new() };
    let mut offset = SEGMENT_HEADER_BYTES as usize;
    loop {
        let read = match decode_record(&bytes[offset..], max_record_bytes) {
            RecordRead::Complete { record, consumed } => {
                accept_record(record, offset as u64, &mut segment, scan)?;
                offset += consumed;
                continue;
            }
            RecordRead::End if offset == bytes.len() => break,
            // Zeros to the end of the file: a zero-filled tail.
            RecordRead::End => None,
            RecordRead::Torn { reason } => Some(reason),
        };
        if next.is_some_and(|next_first_index| segment.next_index() >= next_first_index) {
            // Past the point an interrupted `truncate_suffix` keeps (the newer segment is
            // its durable commit point): unsynced appends it discards, torn or not.
            let dropped_bytes = bytes.len() - offset;
            let segment_name = path.display();
            warn!(%segment_name, offset, dropped_bytes, "wal: cutting what a truncation discards");
            cut_file(fs, path, offset as u64)?;
            break;
        }
        let damage = describe_damage(read, &bytes, offset, max_record_bytes)
            .map_err(|reason| corrupt(path, offset as u64, reason))?;
        if !is_last {
            let reason = format!("{damage} in a segment that is not the last one");
            return Err(corrupt(path, offset as u64, reason));
        }
        let unwritten = starts_unwritten(&bytes, offset);
        let tail = DamagedTail { offset, reason: damage, unwritten };
        cut_torn_tail(fs, path, &bytes, tail, max_record_bytes, scan)?;
        break;
    }
    segment.length_bytes = offset as u64;
    scan.segments.push(segment);
    Ok(())
}

/// What is wrong with the record at `offset` that did not read as complete (`torn`, or
/// `None` for a zero-filled tail), or `Err` with why it is damage (corruption a crash
/// cannot explain) rather than a torn write.
fn describe_damage(
    torn: Option<TornReason>,
    bytes: &[u8],
    offset: usize,
    max_record_bytes: u32,
) -> Result<String, String> {
    let damage = match torn {
        None => "zero-filled tail".to_string(),
        Some(reason @ TornReason::ChecksumMismatch { length_bytes, .. })
            if !has_unwritten_sector(bytes, offset, length_bytes)
                && !injected_bugs::active(StorageBug::CutDamagedRecords) =>
        {
            let reason = format!(
                "{reason} in a complete record with no zero-filled sector: a write a crash \
                 cut short leaves its unwritten sectors zero, so this record was written \
                 whole and then damaged, and it may hold an acknowledged write"
            );
            return Err(reason);
        }
        Some(reason) => {
            let damaged_length =
                matches!(reason, TornReason::PastEnd { .. } | TornReason::TooLarge { .. })
                    && !injected_bugs::active(StorageBug::CutDamagedRecords);
            if let Some(bit) = damaged_length
                .then(|| flipped_length_bit(&bytes[offset..], max_record_bytes))
                .flatten()
            {
                let reason = format!(
                    "{reason}, yet with bit {bit} of its length field flipped back the \
                     record is complete and its checksum matches: it was written whole and \
                     then damaged, and it may hold an acknowledged write"
                );
                return Err(reason);
            }
            reason.to_string()
        }
    };
    Ok(damage)
}

fn accept_record(
    record: WalRecord,
    offset_bytes: u64,
    segment: &mut Segment,
    scan: &mut Scan,
) -> Result<(), WalError> {
    let entry = match record {
        WalRecord::HardState(hard_state) => {
            scan.hard_state = hard_state;
            return Ok(());
        }
        WalRecord::Entry(entry) => entry,
    };
    if entry.index != segment.next_index() {
        let reason =
            format!("entry index {} where {} was expected", entry.index, segment.next_index());
        return Err(corrupt(&segment.path, offset_bytes, reason));
    }
    if let Some(previous) = scan.entries.last() {
        if entry.term < previous.term {
            let reason = format!("entry term {} after term {}", entry.term, previous.term);
            return Err(corrupt(&segment.path, offset_bytes, reason));
        }
    }
    let term = entry.term;
    segment.entries.push(EntryLocation { offset_bytes, term });
    scan.entries.push(entry);
    Ok(())
}

/// The bytes from `offset` on in the last segment are not a record. If a valid record
/// follows, the damage is inside the log and may hide acknowledged writes: refuse. Otherwise
/// it is a write the crash interrupted, which was never synced: cut it off.
fn cut_torn_tail(
    fs: &dyn FileSystem,
    path: &Path,
    bytes: &[u8],
    tail: DamagedTail,
    max_record_bytes: u32,
    scan: &mut Scan,
) -> Result<(), WalError> {
    let DamagedTail { offset, reason, unwritten } = tail;
    // Past a sector that was never written, nothing was synced: a sync makes every earlier
    // write durable, and this log only appends. Valid records there are writes that
    // reached the disk out of order before the power loss, and are cut with the rest.
    let valid_after =
        (!unwritten).then(|| find_valid_record(bytes, offset + 1, max_record_bytes)).flatten();
    if let Some(valid_offset) = valid_after {
        let reason = format!(
            "{reason}, yet a valid record follows at byte offset {valid_offset}, so this is \
             damage inside the log rather than a write cut short by a crash"
        );
        return Err(corrupt(path, offset as u64, reason));
    }
    let dropped_bytes = (bytes.len() - offset) as u64;
    cut_file(fs, path, offset as u64)?;
    warn!(
        segment = %path.display(), offset, dropped_bytes, %reason,
        "wal: cut off torn tail"
    );
    scan.torn_tail = Some(TornTail {
        segment: path.to_path_buf(),
        offset: offset as u64,
        dropped_bytes,
        reason,
    });
    Ok(())
}

/// Bytes a disk writes atomically: after a power loss each such block of a file holds the
/// old bytes (zeros, for a segment's fresh space) or the new ones.
const SECTOR_BYTES: usize = 512;

/// Where a segment's valid records end, why, and whether the damage starts with a sector
/// that was never written.
struct DamagedTail {
    offset: usize,
    reason: String,
    unwritten: bool,
}

/// Whether the damage at `offset` shows a write that never reached the disk: the sector
/// holding `offset`, or one the record's claimed span touches, is whole and all zero.
fn starts_unwritten(bytes: &[u8], offset: usize) -> bool {
    // Without a whole header the span is just the sector holding `offset`.
    let header = bytes.get(offset..offset + RECORD_HEADER_BYTES);
    let length_bytes =
        header.map_or(0, |header| u32::from_le_bytes([header[0], header[1], header[2], header[3]]));
    has_unwritten_sector(bytes, offset, length_bytes)
}

/// The bit of the length field whose flip makes `bytes` start with a complete record that
/// passes its checksum, if one does: a single flipped bit in a written record, which would
/// otherwise look like a record cut short.
fn flipped_length_bit(bytes: &[u8], max_record_bytes: u32) -> Option<u32> {
    let header = bytes.get(..RECORD_HEADER_BYTES)?;
    let length_bytes = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let mut candidate = bytes.to_vec();
    (0..32).find(|bit| {
        let repaired = length_bytes ^ (1 << bit);
        if repaired as usize > bytes.len() - RECORD_HEADER_BYTES {
            return false;
        }
        candidate[..4].copy_from_slice(&repaired.to_le_bytes());
        let end = RECORD_HEADER_BYTES + repaired as usize;
        matches!(decode_record(&candidate[..end], max_record_bytes), RecordRead::Complete { .. })
    })
}

/// Whether some whole disk sector the record at `offset` (header and `length_bytes` of
/// payload) touches holds only zeros: the mark of a write that never fully reached the
/// disk (the line etcd draws too). A complete record whose checksum fails without one is
/// damage, not a torn write.
fn has_unwritten_sector(bytes: &[u8], offset: usize, length_bytes: u32) -> bool {
    let end = offset.saturating_add(RECORD_HEADER_BYTES + length_bytes as usize).min(bytes.len());
    (offset / SECTOR_BYTES..end.div_ceil(SECTOR_BYTES))
        .any(|sector| is_unwritten_sector(bytes, sector))
}

/// Whether sector number `sector` lies wholly inside the file and reads as all zeros. A
/// disk writes a sector whole or not at all, and a sector never written past a file's old
/// end reads as zeros; only whole sectors count, since a shorter run of zeros is ordinary
/// in record data.
fn is_unwritten_sector(bytes: &[u8], sector: usize) -> bool {
    let start = sector * SECTOR_BYTES;
    bytes.get(start..start + SECTOR_BYTES).is_some_and(|whole| whole.iter().all(|&byte| byte == 0))
}

fn find_valid_record(bytes: &[u8], start: usize, max_record_bytes: u32) -> Option<usize> {
    (start..bytes.len().saturating_sub(RECORD_HEADER_BYTES - 1)).find(|&candidate| {
        let header = &bytes[candidate..candidate + RECORD_HEADER_BYTES];
        if header.iter().all(|&byte| byte == 0) {
            return false;
        }
        matches!(decode_record(&bytes[candidate..], max_record_bytes), RecordRead::Complete { .. })
    })
}
