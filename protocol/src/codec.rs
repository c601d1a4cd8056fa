//! Field-level reading and writing shared by every message family.
//!
//! This module owns the encoding rules: big-endian integers, strict booleans, required
//! ids, length-prefixed byte strings, optional byte strings and UTF-8 strings. It must
//! not know any message layout, and the reader must never read past its payload, panic, or grow a
//! buffer from a length it has not checked.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::ids::{MemberId, OrderId};
use crate::kind::Kind;
use crate::limits::{Limits, MAX_ADDRESS_BYTES};

/// The reason reported for an address longer than `MAX_ADDRESS_BYTES`.
const ADDRESS_TOO_LONG: &str = "longer than MAX_ADDRESS_BYTES (255)";

/// Reads fields off the front of a payload. Every byte string it returns is a
/// zero-copy slice of the payload.
pub(crate) struct Reader {
    bytes: Bytes,
    kind: Option<Kind>,
}

impl Reader {
    /// A reader over a frame payload of `kind`, or over a log command (`kind: None`).
    pub(crate) fn new(bytes: Bytes, kind: Option<Kind>) -> Reader {
        Reader { bytes, kind }
    }

    /// An `InvalidField` error for `field` of this message.
    pub(crate) fn invalid(&self, field: &'static str, reason: &'static str) -> DecodeError {
        DecodeError::InvalidField { kind: self.kind, field, reason }
    }

    /// Checks that `needed` more bytes remain for `field`, else `Truncated`. Decoders
    /// also call it with a count's minimum size before allocating for that count.
    pub(crate) fn need(&self, field: &'static str, needed: usize) -> Result<(), DecodeError> {
        let remaining = self.bytes.remaining();
        if remaining < needed {
            return Err(DecodeError::Truncated { kind: self.kind, field, needed, remaining });
        }
        Ok(())
    }

    pub(crate) fn read_u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(field, 1)?;
        Ok(self.bytes.get_u8())
    }

    pub(crate) fn read_u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(field, 2)?;
        Ok(self.bytes.get_u16())
    }

    pub(crate) fn read_u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(field, 4)?;
        Ok(self.bytes.get_u32())
    }

    pub(crate) fn read_u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.bytes.get_u64())
    }

    /// A `u128`, big-endian (cluster ids).
    pub(crate) fn read_u128(&mut self, field: &'static str) -> Result<u128, DecodeError> {
        self.need(field, 16)?;
        Ok(self.bytes.get_u128())
    }

    /// `N` bytes exactly (nonces, proofs).
    pub(crate) fn read_array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        self.need(field, N)?;
        let mut array = [0; N];
        self.bytes.copy_to_slice(&mut array);
        Ok(array)
    }

    /// A count of items each at least `min_item_bytes` long, checked against the bytes
    /// that remain before anyone allocates for it.
    pub(crate) fn read_count(
        &mut self,
        field: &'static str,
        min_item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.read_u32(field)? as usize;
        self.need(field, count.saturating_mul(min_item_bytes))?;
        Ok(count)
    }

    /// A required member id: a `u64` that must not be 0 ("not set").
    pub(crate) fn read_member_id(&mut self, field: &'static str) -> Result<MemberId, DecodeError> {
        MemberId::new(self.read_u64(field)?).ok_or(DecodeError::ZeroId { field })
    }

    /// A required order id: a `u64` that must not be 0 ("not set").
    pub(crate) fn read_order_id(&mut self, field: &'static str) -> Result<OrderId, DecodeError> {
        OrderId::new(self.read_u64(field)?).ok_or(DecodeError::ZeroId { field })
    }

    /// A boolean: exactly 0 or 1, so every value has one encoding.
    pub(crate) fn read_bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.read_u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.invalid(field, "a boolean must be 0 or 1")),
        }
    }

    /// `len` bytes as a slice of the payload. `len` must already be checked against
    /// its limit; this only checks it against what is left.
    fn read_slice(&mut self, field: &'static str, len: u32) -> Result<Bytes, DecodeError> {
        // Why: on a 16-bit target the conversion could fail; usize::MAX then reports
        // truncation instead of panicking.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.need(field, len)?;
        Ok(self.bytes.split_to(len))
    }

    /// A key: `u32` length (1..=max_key_bytes, checked before slicing), then the bytes.
    pub(crate) fn read_key(
        &mut self,
        field: &'static str,
        limits: &Limits,
    ) -> Result<Bytes, DecodeError> {
        let len = self.read_u32(field)?;
        if len == 0 {
            return Err(DecodeError::EmptyKey);
        }
        if len > limits.max_key_bytes {
            return Err(DecodeError::KeyTooLarge { len, max: limits.max_key_bytes });
        }
        self.read_slice(field, len)
    }

    /// A value: `u32` length (0..=max_value_bytes, checked before slicing), then the bytes.
    pub(crate) fn read_value(
        &mut self,
        field: &'static str,
        limits: &Limits,
    ) -> Result<Bytes, DecodeError> {
        let len = self.read_u32(field)?;
        if len > limits.max_value_bytes {
            return Err(DecodeError::ValueTooLarge { len, max: limits.max_value_bytes });
        }
        self.read_slice(field, len)
    }

    /// A byte string of at most `max_bytes`: `u32` length (checked before slicing), then
    /// the bytes. `too_long` is the reason reported when the length exceeds `max_bytes`.
    pub(crate) fn read_bytes_at_most(
        &mut self,
        field: &'static str,
        max_bytes: u32,
        too_long: &'static str,
    ) -> Result<Bytes, DecodeError> {
        let len = self.read_u32(field)?;
        if len > max_bytes {
            return Err(self.invalid(field, too_long));
        }
        self.read_slice(field, len)
    }

    /// A long UTF-8 string: `u32` length (at most `max_bytes`, checked before slicing),
    /// then the bytes. For documents such as status JSON that outgrow a `u16`.
    pub(crate) fn read_long_string(
        &mut self,
        field: &'static str,
        max_bytes: u32,
        too_long: &'static str,
    ) -> Result<String, DecodeError> {
        let bytes = self.read_bytes_at_most(field, max_bytes, too_long)?;
        // Why: the copy is bounded by the frame, which this reader already holds.
        String::from_utf8(bytes.to_vec()).map_err(|_| self.invalid(field, "not valid UTF-8"))
    }

    /// An optional value: a `u8` presence flag (0 absent, 1 present), then the value.
    pub(crate) fn read_optional_value(
        &mut self,
        field: &'static str,
        limits: &Limits,
    ) -> Result<Option<Bytes>, DecodeError> {
        if self.read_presence(field)? {
            self.read_value(field, limits).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A presence flag: exactly 0 or 1.
    pub(crate) fn read_presence(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.read_u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.invalid(field, "a presence flag must be 0 or 1")),
        }
    }

    /// A UTF-8 string: `u16` length (at most `max_bytes`, checked before slicing), then
    /// the bytes. `too_long` is the reason reported when the length exceeds `max_bytes`.
    pub(crate) fn read_string(
        &mut self,
        field: &'static str,
        max_bytes: usize,
        too_long: &'static str,
    ) -> Result<String, DecodeError> {
        let len = self.read_u16(field)?;
        if usize::from(len) > max_bytes {
            return Err(self.invalid(field, too_long));
        }
        let bytes = self.read_slice(field, u32::from(len))?;
        // Why: this copy is bounded by max_bytes (at most a few hundred bytes), and error
        // text is read by people, so an owned String is worth it.
        String::from_utf8(bytes.to_vec()).map_err(|_| self.invalid(field, "not valid UTF-8"))
    }

    /// A radiant's address (`host:port`): a UTF-8 string of at most `MAX_ADDRESS_BYTES`.
    pub(crate) fn read_address(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.read_string(field, MAX_ADDRESS_BYTES, ADDRESS_TOO_LONG)
    }

    /// Ends decoding: the payload must be consumed exactly.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        let count = self.bytes.remaining();
        if count != 0 {
            return Err(DecodeError::TrailingBytes { kind: self.kind, count });
        }
        Ok(())
    }
}

/// Writes a byte string with its `u32` length. The caller keeps it within the limits.
pub(crate) fn put_bytes(dst: &mut BytesMut, bytes: &[u8]) {
    let len = u32::try_from(bytes.len());
    debug_assert!(len.is_ok(), "byte string of {} bytes exceeds u32", bytes.len());
    dst.put_u32(len.unwrap_or(u32::MAX));
    dst.put_slice(bytes);
}

/// Writes an optional byte string: presence flag, then the string if present.
pub(crate) fn put_optional_bytes(dst: &mut BytesMut, bytes: Option<&Bytes>) {
    match bytes {
        Some(bytes) => {
            dst.put_u8(1);
            put_bytes(dst, bytes);
        }
        None => dst.put_u8(0),
    }
}

/// Writes a boolean as 0 or 1.
pub(crate) fn put_bool(dst: &mut BytesMut, value: bool) {
    dst.put_u8(u8::from(value));
}

/// Writes a UTF-8 string with its `u16` length, cut at a character boundary to at most
/// `max_bytes` so the encoder never produces a frame the decoder would reject.
pub(crate) fn put_string(dst: &mut BytesMut, text: &str, max_bytes: usize) {
    let text = truncate_at_char_boundary(text, max_bytes.min(usize::from(u16::MAX)));
    // Why: the truncation above bounds the length by u16::MAX.
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    dst.put_u16(len);
    dst.put_slice(text.as_bytes());
}

/// Writes a radiant's address, cut to `MAX_ADDRESS_BYTES` like every short string.
pub(crate) fn put_address(dst: &mut BytesMut, address: &str) {
    put_string(dst, address, MAX_ADDRESS_BYTES);
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character.
pub(crate) fn truncate_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_frame_bytes: 1024, max_key_bytes: 4, max_value_bytes: 8 }
    }

    #[test]
    fn rejects_key_longer_than_max_key_bytes_before_slicing() {
        // The length claims 5 bytes but none follow: the limit must win over truncation.
        let mut reader = Reader::new(Bytes::from_static(&[0, 0, 0, 5]), Some(Kind::Get));
        assert_eq!(
            reader.read_key("key", &limits()),
            Err(DecodeError::KeyTooLarge { len: 5, max: 4 })
        );
    }

    #[test]
    fn rejects_empty_key() {
        let mut reader = Reader::new(Bytes::from_static(&[0, 0, 0, 0]), Some(Kind::Get));
        assert_eq!(reader.read_key("key", &limits()), Err(DecodeError::EmptyKey));
    }

    #[test]
    fn rejects_value_longer_than_max_value_bytes_before_slicing() {
        let mut reader = Reader::new(Bytes::from_static(&[0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(
            reader.read_value("value", &limits()),
            Err(DecodeError::ValueTooLarge { len: u32::MAX, max: 8 })
        );
    }

    #[test]
    fn reports_truncation_with_needed_and_remaining() {
        let mut reader = Reader::new(Bytes::from_static(&[0, 0, 0, 3, b'a']), Some(Kind::Put));
        assert_eq!(
            reader.read_key("key", &limits()),
            Err(DecodeError::Truncated {
                kind: Some(Kind::Put),
                field: "key",
                needed: 3,
                remaining: 1
            })
        );
    }

    #[test]
    fn booleans_and_presence_flags_accept_only_zero_and_one() {
        let mut reader = Reader::new(Bytes::from_static(&[0, 1, 2]), None);
        assert_eq!(reader.read_bool("flag"), Ok(false));
        assert_eq!(reader.read_bool("flag"), Ok(true));
        assert!(matches!(reader.read_bool("flag"), Err(DecodeError::InvalidField { .. })));
        let mut reader = Reader::new(Bytes::from_static(&[2]), None);
        assert!(matches!(
            reader.read_optional_value("value", &limits()),
            Err(DecodeError::InvalidField { .. })
        ));
    }

    #[test]
    fn strings_are_checked_for_length_and_utf8() {
        let mut reader = Reader::new(Bytes::from_static(&[0, 5]), None);
        assert!(matches!(
            reader.read_string("reason", 4, "too long"),
            Err(DecodeError::InvalidField { reason: "too long", .. })
        ));
        let mut reader = Reader::new(Bytes::from_static(&[0, 1, 0xFF]), None);
        assert!(matches!(
            reader.read_string("reason", 4, "too long"),
            Err(DecodeError::InvalidField { reason: "not valid UTF-8", .. })
        ));
    }

    #[test]
    fn required_ids_reject_zero_with_the_field_name() {
        let mut reader = Reader::new(Bytes::from_static(&[0; 16]), None);
        assert_eq!(reader.read_member_id("member"), Err(DecodeError::ZeroId { field: "member" }));
        assert_eq!(reader.read_order_id("order"), Err(DecodeError::ZeroId { field: "order" }));
        let mut reader = Reader::new(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 7]), None);
        assert_eq!(reader.read_member_id("member"), Ok(MemberId::new(7).unwrap()));
    }

    #[test]
    fn bounded_byte_strings_check_the_limit_before_slicing() {
        let mut reader = Reader::new(Bytes::from_static(&[0, 0, 0, 9]), None);
        assert_eq!(
            reader.read_bytes_at_most("chunk", 8, "too long"),
            Err(DecodeError::InvalidField { kind: None, field: "chunk", reason: "too long" })
        );
        let mut reader = Reader::new(Bytes::from_static(&[0, 0, 0, 2, 0xC3, 0x28]), None);
        assert!(matches!(
            reader.read_long_string("json", 8, "too long"),
            Err(DecodeError::InvalidField { reason: "not valid UTF-8", .. })
        ));
    }

    #[test]
    fn finish_reports_trailing_bytes() {
        let reader = Reader::new(Bytes::from_static(&[1, 2]), Some(Kind::Ping));
        assert_eq!(
            reader.finish(),
            Err(DecodeError::TrailingBytes { kind: Some(Kind::Ping), count: 2 })
        );
    }

    #[test]
    fn put_string_truncates_on_a_character_boundary() {
        let mut dst = BytesMut::new();
        put_string(&mut dst, "aé", 2);
        assert_eq!(dst.as_ref(), [0, 1, b'a'].as_slice());
        assert_eq!(truncate_at_char_boundary("héllo", 100), "héllo");
    }

    #[test]
    fn values_are_slices_of_the_payload() {
        let payload = Bytes::from_static(&[0, 0, 0, 2, b'h', b'i']);
        let start = payload.as_ptr() as usize;
        let mut reader = Reader::new(payload, None);
        let value = reader.read_value("value", &limits()).unwrap();
        assert_eq!(value.as_ptr() as usize, start + 4);
        reader.finish().unwrap();
    }
}
