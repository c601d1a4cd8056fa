//! Frames: the length-prefixed envelope around every message.
//!
//! This module owns the frame header and the split of a byte stream into frames. It
//! must not look inside payloads (the `message` modules do) and must not do I/O: the
//! reactor reads bytes into a `BytesMut` and calls `decode_frame`.
//!
//! ```text
//! offset size type  field
//! 0      4    u32   length of everything after this field (>= MIN_FRAME_LENGTH)
//! 4      1    u8    version, PROTOCOL_VERSION
//! 5      1    u8    kind
//! 6      8    u64   correlation id
//! 14     n    bytes payload, n = length - 10
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::kind::Kind;

/// The only protocol version this crate speaks. Version 2 added each radiant's RESP
/// address to configurations, joins and beacons.
pub const PROTOCOL_VERSION: u8 = 2;

/// The size of the length field that starts every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The size of the whole header: length, version, kind and correlation id.
pub const FRAME_HEADER_BYTES: usize = 14;

/// The smallest legal value of the length field: version, kind and correlation id
/// with an empty payload.
pub const MIN_FRAME_LENGTH: u32 = 10;

const _: () = assert!(FRAME_HEADER_BYTES == LENGTH_PREFIX_BYTES + MIN_FRAME_LENGTH as usize);

/// One decoded frame. The payload is a zero-copy slice of the receive buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the payload holds.
    pub kind: Kind,
    /// Chosen by the requester and echoed in the response, so a client can pipeline.
    pub correlation_id: u64,
    /// The message body, to be decoded by `Message::decode`.
    pub payload: Bytes,
}

/// The most capacity `decode_frame` reserves for the rest of a partial frame at once.
pub const PARTIAL_FRAME_RESERVE_BYTES: usize = 64 * 1024;

/// Takes one frame off the front of `buf`.
///
/// - `Ok(Some(frame))`: a whole frame was removed from `buf`.
/// - `Ok(None)`: `buf` holds only part of a frame; capacity for the missing bytes was
///   reserved, at most `PARTIAL_FRAME_RESERVE_BYTES` of it (after the length passed
///   `max_frame_bytes`), `buf` is unchanged.
/// - `Err(UnknownKind)`: the frame was removed from `buf`; answer it and carry on.
/// - Any other `Err`: `buf` is unchanged and the stream cannot be resynchronised; the
///   caller sends an error frame with correlation id 0 and closes the connection.
///
/// `max_frame_bytes` bounds the length field, so one connection never buffers more than
/// `max_frame_bytes + LENGTH_PREFIX_BYTES` bytes for a frame.
pub fn decode_frame(
    buf: &mut BytesMut,
    max_frame_bytes: u32,
) -> Result<Option<Frame>, DecodeError> {
    let mut peek: &[u8] = buf.as_ref();
    if peek.len() < LENGTH_PREFIX_BYTES {
        buf.reserve(LENGTH_PREFIX_BYTES - peek.len());
        return Ok(None);
    }
    let len = peek.get_u32();
    // Why: the length must be judged before any reserve, or a peer could make us
    // allocate 4 GiB by sending four bytes.
    if len > max_frame_bytes {
        return Err(DecodeError::FrameTooLarge { len, max: max_frame_bytes });
    }
    if len < MIN_FRAME_LENGTH {
        return Err(DecodeError::FrameTooShort { len });
    }
    let total = usize::try_from(len)
        .ok()
        .and_then(|len| len.checked_add(LENGTH_PREFIX_BYTES))
        .ok_or(DecodeError::FrameTooLarge { len, max: max_frame_bytes })?;
    if buf.len() < total {
        // Why: memory grows with the bytes that arrive, not with the length a peer
        // claims: four bytes claiming 17 MiB on each of 1,024 connections must not
        // reserve 17 GiB.
        buf.reserve((total - buf.len()).min(PARTIAL_FRAME_RESERVE_BYTES));
        return Ok(None);
    }
    let version = peek.get_u8();
    let kind_byte = peek.get_u8();
    let correlation_id = peek.get_u64();
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let Some(kind) = Kind::from_u8(kind_byte) else {
        // Why: the boundary is known, so dropping the frame keeps the stream in sync and
        // lets an older radiant answer a newer peer with an error instead of hanging up.
        buf.advance(total);
        return Err(DecodeError::UnknownKind { kind: kind_byte, correlation_id });
    };
    let mut payload = buf.split_to(total).freeze();
    payload.advance(FRAME_HEADER_BYTES);
    Ok(Some(Frame { kind, correlation_id, payload }))
}

/// Appends one frame to `dst`: the header, then whatever `write_payload` writes, then
/// the length is back-patched (postgres `write_body` style), so payloads are written
/// once, directly into the send buffer.
pub fn encode_frame(
    dst: &mut BytesMut,
    kind: Kind,
    correlation_id: u64,
    write_payload: impl FnOnce(&mut BytesMut),
) {
    let start = dst.len();
    dst.put_u32(0);
    dst.put_u8(PROTOCOL_VERSION);
    dst.put_u8(kind.to_u8());
    dst.put_u64(correlation_id);
    write_payload(dst);
    let written = dst.len() - start - LENGTH_PREFIX_BYTES;
    let length = u32::try_from(written);
    debug_assert!(length.is_ok(), "frame of {written} bytes does not fit a u32 length");
    let length = length.unwrap_or(u32::MAX);
    if let Some(slot) = dst.get_mut(start..start + LENGTH_PREFIX_BYTES) {
        slot.copy_from_slice(&length.to_be_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn encoded(kind: Kind, correlation_id: u64, payload: &[u8]) -> BytesMut {
        let mut dst = BytesMut::new();
        encode_frame(&mut dst, kind, correlation_id, |dst| dst.put_slice(payload));
        dst
    }

    #[test]
    fn encodes_the_header_byte_by_byte() {
        let bytes = encoded(Kind::Ping, 0x0102_0304_0506_0708, b"xy");
        assert_eq!(
            bytes.as_ref(),
            [0, 0, 0, 12, PROTOCOL_VERSION, 0x54, 1, 2, 3, 4, 5, 6, 7, 8, b'x', b'y'].as_slice()
        );
    }

    #[test]
    fn decodes_a_whole_frame_and_empties_the_buffer() {
        let mut buf = encoded(Kind::Get, 9, b"payload");
        let frame = decode_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(frame.kind, Kind::Get);
        assert_eq!(frame.correlation_id, 9);
        assert_eq!(frame.payload.as_ref(), b"payload");
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_frame_longer_than_max_frame_bytes_before_reserving() {
        let mut buf = BytesMut::with_capacity(4);
        buf.put_u32(1_000_000);
        let capacity = buf.capacity();
        let error = decode_frame(&mut buf, 1000).unwrap_err();
        assert_eq!(error, DecodeError::FrameTooLarge { len: 1_000_000, max: 1000 });
        assert_eq!(buf.capacity(), capacity);
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn rejects_frame_shorter_than_a_header() {
        let mut buf = BytesMut::new();
        buf.put_u32(9);
        assert_eq!(decode_frame(&mut buf, 1000), Err(DecodeError::FrameTooShort { len: 9 }));
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn reserves_only_the_missing_bytes_of_a_partial_frame() {
        let whole = encoded(Kind::Put, 1, &[7; 100]);
        let mut buf = BytesMut::from(&whole[..20]);
        assert_eq!(decode_frame(&mut buf, 1000), Ok(None));
        assert_eq!(buf.len(), 20);
        assert!(buf.capacity() >= whole.len());
        // A length claiming far more than arrived reserves a bounded amount, not it all.
        let mut claim = BytesMut::new();
        claim.put_u32(16 << 20);
        claim.put_slice(&[PROTOCOL_VERSION, 0x51, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(decode_frame(&mut claim, 17 << 20), Ok(None));
        assert!(claim.capacity() <= 14 + PARTIAL_FRAME_RESERVE_BYTES, "{}", claim.capacity());
        let mut empty = BytesMut::new();
        assert_eq!(decode_frame(&mut empty, 1000), Ok(None));
        assert!(empty.capacity() >= LENGTH_PREFIX_BYTES);
    }

    #[test]
    fn rejects_unsupported_version_and_leaves_the_buffer() {
        let mut buf = encoded(Kind::Ping, 1, b"");
        buf[4] = 1;
        assert_eq!(decode_frame(&mut buf, 1000), Err(DecodeError::UnsupportedVersion(1)));
        assert_eq!(buf.len(), FRAME_HEADER_BYTES);
    }

    #[test]
    fn unknown_kind_consumes_the_frame() {
        let mut buf = encoded(Kind::Ping, 42, b"abc");
        buf[5] = 0x3F;
        buf.extend_from_slice(&encoded(Kind::Ping, 43, b""));
        let error = decode_frame(&mut buf, 1000).unwrap_err();
        assert_eq!(error, DecodeError::UnknownKind { kind: 0x3F, correlation_id: 42 });
        let next = decode_frame(&mut buf, 1000).unwrap().unwrap();
        assert_eq!(next.correlation_id, 43);
        assert!(buf.is_empty());
    }

    #[test]
    fn payload_is_a_slice_of_the_receive_buffer() {
        let mut buf = encoded(Kind::Put, 1, b"zero-copy");
        let start = buf.as_ptr() as usize;
        let frame = decode_frame(&mut buf, 1000).unwrap().unwrap();
        assert_eq!(frame.payload.as_ptr() as usize, start + FRAME_HEADER_BYTES);
    }

    #[test]
    fn accepts_a_frame_exactly_at_max_frame_bytes() {
        let mut buf = encoded(Kind::Put, 1, &[0; 90]);
        assert!(decode_frame(&mut buf, 100).unwrap().is_some());
    }
}
