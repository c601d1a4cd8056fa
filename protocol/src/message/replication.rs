//! The replication family (kinds 0x30–0x3F): how a herald copies its log to the other
//! members of its order. `Append` carries entries (none for a heartbeat) and the commit
//! index, `AppendAck` answers it, `InstallSnapshot` sends a snapshot in chunks to a
//! member whose log the herald has compacted away, `InstallSnapshotAck` answers a chunk.
//!
//! This module owns the bodies' layouts, decode beside encode, and the checks that keep
//! a malformed `Append` from reaching a log: entries are contiguous and their terms never
//! decrease. The peer header belongs to `peer.rs`; `LogEntry` itself stays in the crate's
//! `replication` module. It must not decide whether entries match a log; the core does.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_bool, put_bytes, Reader};
use crate::error::DecodeError;
use crate::ids::{LogIndex, Term};
use crate::limits::Limits;
use crate::replication::LogEntry;

/// The smallest encoded entry: `u64` term, `u64` index, `u32` length, no data. An entry
/// count is checked against it before the entry vector is allocated.
const MIN_ENTRY_BYTES: usize = 20;

/// The reason reported for entry data or a snapshot chunk longer than the frame limit.
const LONGER_THAN_FRAME: &str = "longer than max_frame_bytes";

/// The herald's log entries for one member, following the entry at `prev_log_index`.
/// With no entries it is a heartbeat: it still carries `commit` and `read_round`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    /// The index of the entry just before `entries` (0 = the start of the log).
    pub prev_log_index: LogIndex,
    /// The term of that entry; the member rejects the append unless its log matches it.
    pub prev_log_term: Term,
    /// The herald's commit index.
    pub commit: LogIndex,
    /// The herald's read-index round: a member echoes it in `AppendAck`, so the herald
    /// knows which heartbeat round confirmed its leadership for pending reads.
    pub read_round: u64,
    /// Entry `i` has index `prev_log_index + 1 + i`; terms never decrease and are at
    /// least `prev_log_term`. Entry data are zero-copy slices of the frame.
    pub entries: Vec<LogEntry>,
}

/// A member's answer to `Append`, sent only once the appended entries are durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AppendAck {
    /// Whether the member's log matched at `prev_log_index` and took the entries.
    pub success: bool,
    /// On success, the index of the member's last entry known to match the herald's.
    pub match_index: LogIndex,
    /// On rejection, where the herald should retry from (the member's last index, or
    /// the first index of the conflicting term), so a lagging member catches up fast.
    pub reject_hint: LogIndex,
    /// The `read_round` of the `Append` this answers.
    pub read_round: u64,
}

/// One chunk of the snapshot at `snapshot_index`, at byte `offset` of `total_bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshot {
    /// The last log index the snapshot covers.
    pub snapshot_index: LogIndex,
    /// The term of the entry at `snapshot_index`.
    pub snapshot_term: Term,
    /// Where `chunk` starts in the snapshot.
    pub offset: u64,
    /// The snapshot's whole size; `offset + chunk.len()` never exceeds it.
    pub total_bytes: u64,
    /// Whether this is the last chunk; then `offset + chunk.len() == total_bytes`.
    pub done: bool,
    /// The chunk's bytes, a zero-copy slice of the frame.
    pub chunk: Bytes,
}

/// A member's answer to `InstallSnapshot`, sent once the chunk is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InstallSnapshotAck {
    /// The snapshot the member is receiving.
    pub snapshot_index: LogIndex,
    /// The offset of the next chunk the member wants (its durable prefix), so the herald
    /// resumes where the member is rather than where it last sent.
    pub next_offset: u64,
    /// Whether the member has the whole snapshot and installed it.
    pub done: bool,
}

/// A follower asks the herald for a read index (follower reads): the herald answers,
/// once a heartbeat round started after this arrived is acknowledged by a majority,
/// with a committed index at least its commit index on arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadIndex {
    /// Chosen by the follower (unique to it) and echoed in the answer.
    pub request_id: u64,
}

/// The herald's answer to `ReadIndex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadIndexAck {
    /// The `request_id` of the `ReadIndex` this answers.
    pub request_id: u64,
    /// Whether the receiver was not herald and gave no index.
    pub refused: bool,
    /// A committed index: once the follower has applied it, it may serve the reads the
    /// request covered. 0 when refused.
    pub index: LogIndex,
}

// ===== impl Append =====

impl Append {
    /// Reads the body: four `u64`s, a `u32` entry count, then the entries. The count is
    /// checked against the bytes left before the vector is allocated, so a peer cannot
    /// make a radiant allocate more than its frame could hold.
    pub(crate) fn decode(reader: &mut Reader, limits: &Limits) -> Result<Append, DecodeError> {
        let prev_log_index = reader.read_u64("prev_log_index")?;
        let prev_log_term = reader.read_u64("prev_log_term")?;
        let commit = reader.read_u64("commit")?;
        let read_round = reader.read_u64("read_round")?;
        let count = reader.read_u32("entry_count")?;
        // Why: on a 16-bit target the conversion could fail; usize::MAX then reports
        // truncation instead of panicking.
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        reader.need("entries", count.saturating_mul(MIN_ENTRY_BYTES))?;
        let mut entries = Vec::with_capacity(count);
        let mut previous = (prev_log_index, prev_log_term);
        for _ in 0..count {
            let entry = read_entry(reader, limits)?;
            if let Err((field, reason)) = check_follows(previous, &entry) {
                return Err(reader.invalid(field, reason));
            }
            previous = (entry.index, entry.term);
            entries.push(entry);
        }
        Ok(Append { prev_log_index, prev_log_term, commit, read_round, entries })
    }

    /// Appends the body to `dst`. The entries must be contiguous after `prev_log_index`
    /// with non-decreasing terms, or the receiver rejects the message.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        debug_assert!(self.entries_invalid().is_none(), "{:?}", self.entries_invalid());
        dst.put_u64(self.prev_log_index);
        dst.put_u64(self.prev_log_term);
        dst.put_u64(self.commit);
        dst.put_u64(self.read_round);
        let count = u32::try_from(self.entries.len());
        debug_assert!(count.is_ok(), "{} entries exceed u32", self.entries.len());
        dst.put_u32(count.unwrap_or(u32::MAX));
        for entry in &self.entries {
            dst.put_u64(entry.term);
            dst.put_u64(entry.index);
            put_bytes(dst, &entry.data);
        }
    }

    /// The first reason the entries cannot follow `prev_log_index`, for encoder checks.
    fn entries_invalid(&self) -> Option<(&'static str, &'static str)> {
        let mut previous = (self.prev_log_index, self.prev_log_term);
        for entry in &self.entries {
            if let Err(invalid) = check_follows(previous, entry) {
                return Some(invalid);
            }
            previous = (entry.index, entry.term);
        }
        None
    }
}

/// One entry: `u64` term, `u64` index, `u32` length, data. The data's length is checked
/// against `max_frame_bytes` first, with its own error, though the frame bounds it anyway.
fn read_entry(reader: &mut Reader, limits: &Limits) -> Result<LogEntry, DecodeError> {
    let term = reader.read_u64("entries.term")?;
    let index = reader.read_u64("entries.index")?;
    let data =
        reader.read_bytes_at_most("entries.data", limits.max_frame_bytes, LONGER_THAN_FRAME)?;
    Ok(LogEntry { term, index, data })
}

/// Whether `entry` may follow the entry at `(index, term)` in one `Append` (Raft's log
/// matching needs contiguous entries; terms only grow along a log). On failure, the
/// field and the reason.
fn check_follows(
    (index, term): (LogIndex, Term),
    entry: &LogEntry,
) -> Result<(), (&'static str, &'static str)> {
    if index.checked_add(1) != Some(entry.index) {
        return Err((
            "entries.index",
            "entries must be contiguous: entry i has index prev_log_index + 1 + i",
        ));
    }
    if entry.term < term {
        return Err((
            "entries.term",
            "entry terms must not decrease and must be at least prev_log_term",
        ));
    }
    Ok(())
}

// ===== impl AppendAck =====

impl AppendAck {
    /// Reads the body: boolean success, `u64` match index, `u64` reject hint, `u64` read
    /// round.
    pub(crate) fn decode(reader: &mut Reader) -> Result<AppendAck, DecodeError> {
        Ok(AppendAck {
            success: reader.read_bool("success")?,
            match_index: reader.read_u64("match_index")?,
            reject_hint: reader.read_u64("reject_hint")?,
            read_round: reader.read_u64("read_round")?,
        })
    }

    /// Appends the body to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        put_bool(dst, self.success);
        dst.put_u64(self.match_index);
        dst.put_u64(self.reject_hint);
        dst.put_u64(self.read_round);
    }
}

// ===== impl InstallSnapshot =====

impl InstallSnapshot {
    /// Reads the body: `u64` snapshot index, `u64` snapshot term, `u64` offset, `u64`
    /// total bytes, boolean done, then the chunk (`u32` length, bytes).
    pub(crate) fn decode(
        reader: &mut Reader,
        limits: &Limits,
    ) -> Result<InstallSnapshot, DecodeError> {
        let message = InstallSnapshot {
            snapshot_index: reader.read_u64("snapshot_index")?,
            snapshot_term: reader.read_u64("snapshot_term")?,
            offset: reader.read_u64("offset")?,
            total_bytes: reader.read_u64("total_bytes")?,
            done: reader.read_bool("done")?,
            chunk: reader.read_bytes_at_most("chunk", limits.max_frame_bytes, LONGER_THAN_FRAME)?,
        };
        match message.invalid() {
            Some((field, reason)) => Err(reader.invalid(field, reason)),
            None => Ok(message),
        }
    }

    /// Appends the body to `dst`. The chunk must lie within `total_bytes`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        debug_assert!(self.invalid().is_none(), "{:?}", self.invalid());
        dst.put_u64(self.snapshot_index);
        dst.put_u64(self.snapshot_term);
        dst.put_u64(self.offset);
        dst.put_u64(self.total_bytes);
        put_bool(dst, self.done);
        put_bytes(dst, &self.chunk);
    }

    /// Why the chunk does not fit the snapshot, as a field and a reason, or `None`.
    fn invalid(&self) -> Option<(&'static str, &'static str)> {
        // Why: u64::try_from cannot fail for a usize on supported targets; MAX then
        // reports the overflow below instead of panicking.
        let len = u64::try_from(self.chunk.len()).unwrap_or(u64::MAX);
        let Some(end) = self.offset.checked_add(len) else {
            return Some(("chunk", "offset + chunk length overflows u64"));
        };
        if end > self.total_bytes {
            return Some(("chunk", "offset + chunk length exceeds total_bytes"));
        }
        if self.done && end != self.total_bytes {
            return Some(("done", "the last chunk must end at total_bytes"));
        }
        None
    }
}

// ===== impl InstallSnapshotAck =====

impl InstallSnapshotAck {
    /// Reads the body: `u64` snapshot index, `u64` next offset, boolean done.
    pub(crate) fn decode(reader: &mut Reader) -> Result<InstallSnapshotAck, DecodeError> {
        Ok(InstallSnapshotAck {
            snapshot_index: reader.read_u64("snapshot_index")?,
            next_offset: reader.read_u64("next_offset")?,
            done: reader.read_bool("done")?,
        })
    }

    /// Appends the body to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u64(self.snapshot_index);
        dst.put_u64(self.next_offset);
        put_bool(dst, self.done);
    }
}

// ===== impl ReadIndex, ReadIndexAck =====

impl ReadIndex {
    /// Reads the body: `u64` request id.
    pub(crate) fn decode(reader: &mut Reader) -> Result<ReadIndex, DecodeError> {
        Ok(ReadIndex { request_id: reader.read_u64("request_id")? })
    }

    /// Appends the body to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u64(self.request_id);
    }
}

impl ReadIndexAck {
    /// Reads the body: `u64` request id, boolean refused, `u64` index (0 when refused).
    pub(crate) fn decode(reader: &mut Reader) -> Result<ReadIndexAck, DecodeError> {
        let request_id = reader.read_u64("request_id")?;
        let refused = reader.read_bool("refused")?;
        let index = reader.read_u64("index")?;
        if refused && index != 0 {
            return Err(reader.invalid("index", "a refused read index carries no index"));
        }
        Ok(ReadIndexAck { request_id, refused, index })
    }

    /// Appends the body to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        debug_assert!(!self.refused || self.index == 0, "a refused read index with an index");
        dst.put_u64(self.request_id);
        put_bool(dst, self.refused);
        dst.put_u64(self.index);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::kind::Kind;

    fn entry(term: Term, index: LogIndex, data: &'static [u8]) -> LogEntry {
        LogEntry { term, index, data: Bytes::from_static(data) }
    }

    fn append(entries: Vec<LogEntry>) -> Append {
        Append { prev_log_index: 4, prev_log_term: 2, commit: 3, read_round: 9, entries }
    }

    /// The body of an `Append` with the given header fields and raw entry bytes.
    fn raw_append(count: u32, entries: &[(Term, LogIndex, &[u8])]) -> Bytes {
        let mut dst = BytesMut::new();
        for field in [4, 2, 3, 9] {
            dst.put_u64(field);
        }
        dst.put_u32(count);
        for (term, index, data) in entries {
            dst.put_u64(*term);
            dst.put_u64(*index);
            put_bytes(&mut dst, data);
        }
        dst.freeze()
    }

    fn decode_append(body: Bytes, limits: &Limits) -> Result<Append, DecodeError> {
        let mut reader = Reader::new(body, Some(Kind::Append));
        let append = Append::decode(&mut reader, limits)?;
        reader.finish()?;
        Ok(append)
    }

    #[test]
    fn append_layout_is_four_u64s_count_then_term_index_length_data() {
        let mut dst = BytesMut::new();
        append(vec![entry(2, 5, b"ab")]).encode(&mut dst);
        assert_eq!(dst.freeze(), raw_append(1, &[(2, 5, b"ab")]));
    }

    #[test]
    fn append_with_entries_round_trips_and_slices_the_data() {
        let sent = append(vec![entry(2, 5, b"a"), entry(3, 6, b""), entry(3, 7, b"xyz")]);
        let mut dst = BytesMut::new();
        sent.encode(&mut dst);
        let body = dst.freeze();
        let start = body.as_ptr() as usize;
        let received = decode_append(body, &Limits::DEFAULT).unwrap();
        assert_eq!(received, sent);
        // Header 32 + count 4 + first entry's term, index and length 20.
        assert_eq!(received.entries.first().unwrap().data.as_ptr() as usize, start + 56);
    }

    #[test]
    fn heartbeat_append_has_no_entries() {
        let heartbeat = append(Vec::new());
        let mut dst = BytesMut::new();
        heartbeat.encode(&mut dst);
        assert_eq!(dst.len(), 36);
        assert_eq!(decode_append(dst.freeze(), &Limits::DEFAULT), Ok(heartbeat));
    }

    #[test]
    fn append_entry_count_larger_than_payload_is_rejected_before_allocating() {
        // Were the count trusted, the vector alone would need u32::MAX entries (hundreds
        // of GiB) and the allocation would abort the process.
        let error = decode_append(raw_append(u32::MAX, &[]), &Limits::DEFAULT);
        assert!(matches!(
            error,
            Err(DecodeError::Truncated {
                kind: Some(Kind::Append),
                field: "entries",
                remaining: 0,
                ..
            })
        ));
        // Two entries promised, one (of 21 bytes) present: 21 < 40.
        let error = decode_append(raw_append(2, &[(2, 5, b"a")]), &Limits::DEFAULT);
        assert_eq!(
            error,
            Err(DecodeError::Truncated {
                kind: Some(Kind::Append),
                field: "entries",
                needed: 40,
                remaining: 21
            })
        );
    }

    #[test]
    fn append_with_non_contiguous_indexes_is_rejected() {
        for entries in [
            &[(2, 6, &b""[..])][..],               // a gap after prev_log_index 4
            &[(2, 4, &b""[..])][..],               // repeats prev_log_index
            &[(2, 5, &b""[..]), (2, 7, &b""[..])], // a gap between entries
            &[(2, 5, &b""[..]), (2, 5, &b""[..])], // a repeated index
        ] {
            let count = u32::try_from(entries.len()).unwrap();
            let error = decode_append(raw_append(count, entries), &Limits::DEFAULT);
            assert!(
                matches!(error, Err(DecodeError::InvalidField { field: "entries.index", .. })),
                "{entries:?}: {error:?}"
            );
        }
    }

    #[test]
    fn append_with_an_entry_index_past_u64_max_is_rejected() {
        let mut dst = BytesMut::new();
        for field in [u64::MAX, 2, 3, 9] {
            dst.put_u64(field);
        }
        dst.put_u32(1);
        dst.put_u64(2);
        dst.put_u64(0);
        dst.put_u32(0);
        let error = decode_append(dst.freeze(), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "entries.index", .. })));
    }

    #[test]
    fn append_with_terms_before_prev_log_term_or_decreasing_is_rejected() {
        for entries in [
            &[(1, 5, &b""[..])][..],               // before prev_log_term 2
            &[(3, 5, &b""[..]), (2, 6, &b""[..])], // decreasing
        ] {
            let count = u32::try_from(entries.len()).unwrap();
            let error = decode_append(raw_append(count, entries), &Limits::DEFAULT);
            assert!(
                matches!(error, Err(DecodeError::InvalidField { field: "entries.term", .. })),
                "{entries:?}: {error:?}"
            );
        }
    }

    #[test]
    fn append_entry_data_longer_than_max_frame_bytes_is_rejected_before_slicing() {
        let limits = Limits { max_frame_bytes: 8, ..Limits::DEFAULT };
        let mut body = BytesMut::from(raw_append(1, &[]).as_ref());
        body.put_u64(2);
        body.put_u64(5);
        body.put_u32(9);
        let error = decode_append(body.freeze(), &limits);
        assert_eq!(
            error,
            Err(DecodeError::InvalidField {
                kind: Some(Kind::Append),
                field: "entries.data",
                reason: LONGER_THAN_FRAME
            })
        );
    }

    #[test]
    fn append_ack_round_trips() {
        let ack =
            AppendAck { success: false, match_index: 0, reject_hint: 17, read_round: u64::MAX };
        let mut dst = BytesMut::new();
        ack.encode(&mut dst);
        assert_eq!(dst.len(), 25);
        let mut reader = Reader::new(dst.freeze(), Some(Kind::AppendAck));
        assert_eq!(AppendAck::decode(&mut reader), Ok(ack));
        reader.finish().unwrap();
    }

    fn snapshot(offset: u64, total_bytes: u64, done: bool, chunk: &'static [u8]) -> Bytes {
        let mut dst = BytesMut::new();
        for field in [10, 3, offset, total_bytes] {
            dst.put_u64(field);
        }
        put_bool(&mut dst, done);
        put_bytes(&mut dst, chunk);
        dst.freeze()
    }

    fn decode_snapshot(body: Bytes) -> Result<InstallSnapshot, DecodeError> {
        let mut reader = Reader::new(body, Some(Kind::InstallSnapshot));
        let message = InstallSnapshot::decode(&mut reader, &Limits::DEFAULT)?;
        reader.finish()?;
        Ok(message)
    }

    #[test]
    fn install_snapshot_round_trips_with_its_chunk_sliced() {
        let sent = InstallSnapshot {
            snapshot_index: 10,
            snapshot_term: 3,
            offset: 4,
            total_bytes: 7,
            done: true,
            chunk: Bytes::from_static(b"abc"),
        };
        let mut dst = BytesMut::new();
        sent.encode(&mut dst);
        assert_eq!(dst.clone().freeze(), snapshot(4, 7, true, b"abc"));
        assert_eq!(decode_snapshot(dst.freeze()), Ok(sent));
    }

    #[test]
    fn install_snapshot_chunk_past_total_is_rejected() {
        for body in [snapshot(5, 7, false, b"abc"), snapshot(u64::MAX - 1, u64::MAX, false, b"abc")]
        {
            assert!(matches!(
                decode_snapshot(body),
                Err(DecodeError::InvalidField {
                    kind: Some(Kind::InstallSnapshot),
                    field: "chunk",
                    ..
                })
            ));
        }
    }

    #[test]
    fn install_snapshot_done_before_the_end_is_rejected() {
        assert_eq!(
            decode_snapshot(snapshot(0, 7, true, b"abc")),
            Err(DecodeError::InvalidField {
                kind: Some(Kind::InstallSnapshot),
                field: "done",
                reason: "the last chunk must end at total_bytes"
            })
        );
        // Not done, ending exactly at the total, is allowed: an empty last chunk may follow.
        assert!(decode_snapshot(snapshot(4, 7, false, b"abc")).is_ok());
    }

    #[test]
    fn install_snapshot_ack_round_trips() {
        let ack = InstallSnapshotAck { snapshot_index: 10, next_offset: 4096, done: false };
        let mut dst = BytesMut::new();
        ack.encode(&mut dst);
        assert_eq!(dst.len(), 17);
        let mut reader = Reader::new(dst.freeze(), Some(Kind::InstallSnapshotAck));
        assert_eq!(InstallSnapshotAck::decode(&mut reader), Ok(ack));
        reader.finish().unwrap();
    }
}
