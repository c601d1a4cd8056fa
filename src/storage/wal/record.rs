//! The write-ahead log's on-disk record: framing, checksum and payload encoding.
//!
//! A record is `u32` LE payload length, `u32` LE CRC32C over (the four length bytes ++ the
//! payload), then the payload. The payload starts with a `u8` type:
//! `1 = Entry` (u64 term, u64 index, data to the end) and
//! `2 = HardState` (u64 term, u64 voted_for with 0 = none, u64 commit). All integers LE.
//!
//! This module is pure and fuzzed: it must not touch files, and `decode_record` must never
//! panic or allocate before the length is checked against `max_record_bytes`, because the
//! bytes it reads come from disk and are untrusted.

use std::fmt;

use bytes::Bytes;
use radiant_protocol::LogEntry;

use crate::core::HardState;

/// Bytes before the payload: length and checksum.
pub const RECORD_HEADER_BYTES: usize = 8;
const TYPE_ENTRY: u8 = 1;
const TYPE_HARD_STATE: u8 = 2;
/// Type byte, term and index.
const ENTRY_FIXED_BYTES: usize = 1 + 8 + 8;
/// Type byte, term, voted_for and commit.
const HARD_STATE_BYTES: usize = 1 + 8 + 8 + 8;

/// One record of the write-ahead log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalRecord {
    /// A log entry.
    Entry(LogEntry),
    /// A hard state; the newest one in the log wins.
    HardState(HardState),
}

/// Why the bytes at some offset are not a complete, valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TornReason {
    /// Fewer than eight header bytes remain and they are not all zero.
    HeaderTruncated { remaining_bytes: usize },
    /// An all-zero header followed by bytes that are not all zero.
    ZeroHeaderBeforeData,
    /// The length field exceeds `max_record_bytes`.
    TooLarge { length_bytes: u32, max_record_bytes: u32 },
    /// The length field points past the end of the buffer.
    PastEnd { length_bytes: u32, remaining_bytes: usize },
    /// The stored checksum does not match the bytes of a record that is all there
    /// (`length_bytes` of payload follow its header).
    ChecksumMismatch { stored: u32, computed: u32, length_bytes: u32 },
    /// The payload is empty, so it has no type byte.
    EmptyPayload,
    /// The type byte is not one this version knows.
    UnknownType(u8),
    /// The payload length does not fit its type.
    BadPayloadLength { record_type: u8, length_bytes: u32 },
}

impl fmt::Display for TornReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderTruncated { remaining_bytes } => {
                write!(formatter, "record header cut short ({remaining_bytes} of 8 bytes)")
            }
            Self::ZeroHeaderBeforeData => write!(formatter, "zero header followed by data"),
            Self::TooLarge { length_bytes, max_record_bytes } => write!(
                formatter,
                "record length {length_bytes} exceeds max_record_bytes {max_record_bytes}"
            ),
            Self::PastEnd { length_bytes, remaining_bytes } => write!(
                formatter,
                "record length {length_bytes} but only {remaining_bytes} bytes follow"
            ),
            Self::ChecksumMismatch { stored, computed, .. } => write!(
                formatter,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Self::EmptyPayload => write!(formatter, "empty record payload"),
            Self::UnknownType(record_type) => {
                write!(formatter, "unknown record type {record_type}")
            }
            Self::BadPayloadLength { record_type, length_bytes } => {
                write!(formatter, "record type {record_type} cannot be {length_bytes} bytes long")
            }
        }
    }
}

/// The outcome of reading one record from the front of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordRead {
    /// A valid record that occupies the first `consumed` bytes.
    Complete { record: WalRecord, consumed: usize },
    /// No more records: the buffer is empty or all zero.
    End,
    /// The bytes are not a valid record (a torn write or corruption).
    Torn { reason: TornReason },
}

impl WalRecord {
    /// Appends the framed record to `dst`.
    pub fn encode_into(&self, dst: &mut Vec<u8>) {
        let record_start = dst.len();
        // Placeholders for length and checksum, back-patched once the payload is known.
        dst.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
        match self {
            Self::Entry(entry) => {
                dst.push(TYPE_ENTRY);
                dst.extend_from_slice(&entry.term.to_le_bytes());
                dst.extend_from_slice(&entry.index.to_le_bytes());
                dst.extend_from_slice(&entry.data);
            }
            Self::HardState(hard_state) => {
                dst.push(TYPE_HARD_STATE);
                dst.extend_from_slice(&hard_state.term.to_le_bytes());
                dst.extend_from_slice(&hard_state.voted_for.to_le_bytes());
                dst.extend_from_slice(&hard_state.commit.to_le_bytes());
            }
        }
        let payload_bytes = dst.len() - record_start - RECORD_HEADER_BYTES;
        let length = u32::try_from(payload_bytes).expect("wal record payload exceeds u32::MAX");
        dst[record_start..record_start + 4].copy_from_slice(&length.to_le_bytes());
        let checksum = record_checksum(&length.to_le_bytes(), &dst[record_start + 8..]);
        dst[record_start + 4..record_start + 8].copy_from_slice(&checksum.to_le_bytes());
    }

    /// The number of bytes `encode_into` appends.
    pub fn encoded_bytes(&self) -> usize {
        RECORD_HEADER_BYTES
            + match self {
                Self::Entry(entry) => ENTRY_FIXED_BYTES + entry.data.len(),
                Self::HardState(_) => HARD_STATE_BYTES,
            }
    }
}

fn record_checksum(length_bytes: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length_bytes), payload)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// Reads one record from the front of `buf`. Never panics; checks the length against
/// `max_record_bytes` and the buffer before reading or copying the payload.
pub fn decode_record(buf: &[u8], max_record_bytes: u32) -> RecordRead {
    let (Some(length_bytes), Some(stored)) = (read_u32(buf, 0), read_u32(buf, 4)) else {
        if buf.iter().all(|&byte| byte == 0) {
            return RecordRead::End;
        }
        let remaining_bytes = buf.len();
        return RecordRead::Torn { reason: TornReason::HeaderTruncated { remaining_bytes } };
    };
    if length_bytes == 0 && stored == 0 {
        // Zero bytes where a header should be: the end of what was written, if it stays zero.
        if buf.iter().all(|&byte| byte == 0) {
            return RecordRead::End;
        }
        return RecordRead::Torn { reason: TornReason::ZeroHeaderBeforeData };
    }
    if length_bytes > max_record_bytes {
        let reason = TornReason::TooLarge { length_bytes, max_record_bytes };
        return RecordRead::Torn { reason };
    }
    let remaining_bytes = buf.len() - RECORD_HEADER_BYTES;
    let Some(payload) = usize::try_from(length_bytes)
        .ok()
        .and_then(|length| buf.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length))
    else {
        let reason = TornReason::PastEnd { length_bytes, remaining_bytes };
        return RecordRead::Torn { reason };
    };
    let computed = record_checksum(&length_bytes.to_le_bytes(), payload);
    if computed != stored {
        let reason = TornReason::ChecksumMismatch { stored, computed, length_bytes };
        return RecordRead::Torn { reason };
    }
    match decode_payload(payload, length_bytes) {
        Ok(record) => {
            RecordRead::Complete { record, consumed: RECORD_HEADER_BYTES + payload.len() }
        }
        Err(reason) => RecordRead::Torn { reason },
    }
}

/// Decodes a payload whose checksum has been verified.
fn decode_payload(payload: &[u8], length_bytes: u32) -> Result<WalRecord, TornReason> {
    let Some(&record_type) = payload.first() else {
        return Err(TornReason::EmptyPayload);
    };
    let bad_length = TornReason::BadPayloadLength { record_type, length_bytes };
    match record_type {
        TYPE_ENTRY => {
            let (Some(term), Some(index)) = (read_u64(payload, 1), read_u64(payload, 9)) else {
                return Err(bad_length);
            };
            let data = payload.get(ENTRY_FIXED_BYTES..).ok_or(bad_length)?;
            let data = Bytes::copy_from_slice(data);
            Ok(WalRecord::Entry(LogEntry { term, index, data }))
        }
        TYPE_HARD_STATE => {
            if payload.len() != HARD_STATE_BYTES {
                return Err(bad_length);
            }
            let fields = (read_u64(payload, 1), read_u64(payload, 9), read_u64(payload, 17));
            let (Some(term), Some(voted_for), Some(commit)) = fields else {
                return Err(bad_length);
            };
            Ok(WalRecord::HardState(HardState { term, voted_for, commit }))
        }
        unknown => Err(TornReason::UnknownType(unknown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use radiant_protocol::{LogIndex, Term};

    const MAX_RECORD_BYTES: u32 = 1 << 20;

    fn entry(term: Term, index: LogIndex, data: &'static [u8]) -> WalRecord {
        let data = Bytes::from_static(data);
        WalRecord::Entry(LogEntry { term, index, data })
    }

    fn encode(record: &WalRecord) -> Vec<u8> {
        let mut buffer = Vec::new();
        record.encode_into(&mut buffer);
        assert_eq!(buffer.len(), record.encoded_bytes());
        buffer
    }

    #[test]
    fn entry_and_hard_state_round_trip() {
        let hard_state = HardState { term: 3, voted_for: 9, commit: 40 };
        for record in [entry(2, 7, b"put x 1"), entry(1, 1, b""), WalRecord::HardState(hard_state)]
        {
            let buffer = encode(&record);
            let read = decode_record(&buffer, MAX_RECORD_BYTES);
            let consumed = buffer.len();
            assert_eq!(read, RecordRead::Complete { record, consumed });
        }
    }

    #[test]
    fn empty_and_zero_filled_buffers_are_the_end() {
        assert_eq!(decode_record(&[], MAX_RECORD_BYTES), RecordRead::End);
        assert_eq!(decode_record(&[0; 5], MAX_RECORD_BYTES), RecordRead::End);
        assert_eq!(decode_record(&[0; 100], MAX_RECORD_BYTES), RecordRead::End);
    }

    #[test]
    fn a_record_cut_short_is_torn() {
        let buffer = encode(&entry(1, 1, b"hello"));
        for cut in 1..buffer.len() {
            let read = decode_record(&buffer[..cut], MAX_RECORD_BYTES);
            assert!(matches!(read, RecordRead::Torn { .. }), "cut {cut}: {read:?}");
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_torn() {
        let buffer = encode(&entry(5, 6, b"some data"));
        for position in 0..buffer.len() {
            let mut damaged = buffer.clone();
            damaged[position] ^= 0x10;
            let read = decode_record(&damaged, MAX_RECORD_BYTES);
            assert!(matches!(read, RecordRead::Torn { .. }), "byte {position}: {read:?}");
        }
    }

    #[test]
    fn rejects_length_above_max_record_bytes_before_reading_payload() {
        let buffer = encode(&entry(1, 1, b"0123456789"));
        let read = decode_record(&buffer, 4);
        assert!(matches!(read, RecordRead::Torn { reason: TornReason::TooLarge { .. } }));
    }

    #[test]
    fn rejects_unknown_type_and_wrong_hard_state_length_with_valid_checksum() {
        for payload in [&[7u8, 1, 2][..], &[TYPE_HARD_STATE, 1, 2, 3][..], &[TYPE_ENTRY, 1][..]] {
            let length = u32::try_from(payload.len()).unwrap();
            let mut buffer = length.to_le_bytes().to_vec();
            let checksum = record_checksum(&length.to_le_bytes(), payload);
            buffer.extend_from_slice(&checksum.to_le_bytes());
            buffer.extend_from_slice(payload);
            let read = decode_record(&buffer, MAX_RECORD_BYTES);
            assert!(matches!(read, RecordRead::Torn { .. }), "{payload:?}: {read:?}");
        }
    }

    proptest! {
        #[test]
        fn decode_record_never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            max_record_bytes in 0u32..512,
        ) {
            match decode_record(&bytes, max_record_bytes) {
                RecordRead::Complete { consumed, .. } => prop_assert!(consumed <= bytes.len()),
                RecordRead::End => prop_assert!(bytes.iter().all(|&byte| byte == 0)),
                RecordRead::Torn { .. } => {}
            }
        }

        #[test]
        fn any_entry_round_trips(
            term in any::<u64>(),
            index in any::<u64>(),
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let record = WalRecord::Entry(LogEntry { term, index, data: Bytes::from(data) });
            let buffer = encode(&record);
            let consumed = buffer.len();
            let read = decode_record(&buffer, MAX_RECORD_BYTES);
            prop_assert_eq!(read, RecordRead::Complete { record, consumed });
        }
    }
}
