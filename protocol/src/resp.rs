//! RESP, the Redis serialization protocol (RESP2, and RESP3 after `HELLO 3`): requests
//! decoded from a byte stream into argument lists, and replies encoded for either version.
//!
//! This module owns RESP's byte format. It must not decide what a command means; the
//! daemon's RESP front end does. Like the binary decoders it never panics and checks
//! every length against its limits before it trusts it, so a client cannot make a radiant
//! buffer more than `RespLimits::max_request_bytes` for one request.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

/// The bounds a RESP request is decoded under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// The most bytes one request (all its arguments and headers) may take.
    pub max_request_bytes: usize,
    /// The most arguments one request may have.
    pub max_arguments: usize,
}

impl RespLimits {
    /// Inline requests (`PING\r\n` as typed into telnet) are at most this long, as in Redis.
    pub const MAX_INLINE_BYTES: usize = 64 * 1024;
}

/// Why a request stream cannot be read on: the connection must be closed after the
/// error reply, since where the next request starts is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespProtocolError {
    /// What was wrong, worded as Redis words it (`invalid bulk length`, …).
    pub reason: String,
}

impl fmt::Display for RespProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.reason)
    }
}

impl std::error::Error for RespProtocolError {}

fn protocol_error(reason: impl Into<String>) -> RespProtocolError {
    RespProtocolError { reason: reason.into() }
}

/// Takes one complete request off the front of `buffer`: its arguments (the command
/// name first), `Ok(None)` while the request is incomplete. Empty inline lines are
/// skipped, as Redis skips them. Arguments are slices of the buffer, not copies.
pub fn decode_request(
    buffer: &mut BytesMut,
    limits: &RespLimits,
) -> Result<Option<Vec<Bytes>>, RespProtocolError> {
    loop {
        let Some(&first) = buffer.first() else {
            return Ok(None);
        };
        let parsed = if first == b'*' {
            parse_multibulk(buffer, limits)?
        } else {
            parse_inline(buffer, limits)?
        };
        let Some((consumed, ranges)) = parsed else {
            return Ok(None);
        };
        let request = buffer.split_to(consumed).freeze();
        if ranges.is_empty() {
            continue;
        }
        return Ok(Some(
            ranges.into_iter().map(|(start, end)| request.slice(start..end)).collect(),
        ));
    }
}

/// The position just past the `\r\n` that ends the line starting at `start`, and the
/// line without it; `None` if the line is not complete yet.
fn line_at(buffer: &[u8], start: usize) -> Option<(usize, &[u8])> {
    let rest = buffer.get(start..)?;
    let newline = rest.iter().position(|&byte| byte == b'\n')?;
    let line = rest.get(..newline)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((start + newline + 1, line))
}

/// A header's number (`*3`, `$5`): decimal digits, maybe a leading `-`. Parsed by hand:
/// it runs for every argument of every request.
fn header_number(line: &[u8]) -> Option<i64> {
    let digits = line.get(1..)?;
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut number: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        number = number.checked_mul(10)?.checked_add(i64::from(digit - b'0'))?;
    }
    Some(if negative { -number } else { number })
}

/// Where each argument lies in the request. Most requests have a few arguments, so
/// their positions stay on the stack (one allocation fewer per request).
type ArgumentRanges = SmallVec<[(usize, usize); 8]>;

type Parsed = Option<(usize, ArgumentRanges)>;

fn parse_multibulk(buffer: &[u8], limits: &RespLimits) -> Result<Parsed, RespProtocolError> {
    let Some((mut position, line)) = line_at(buffer, 0) else {
        if buffer.len() > RespLimits::MAX_INLINE_BYTES {
            return Err(protocol_error("too big mbulk count string"));
        }
        return Ok(None);
    };
    let count = header_number(line).ok_or_else(|| protocol_error("invalid multibulk length"))?;
    if count <= 0 {
        // `*0` and `*-1` are empty requests: skipped.
        return Ok(Some((position, ArgumentRanges::new())));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > limits.max_arguments {
        return Err(protocol_error(format!(
            "invalid multibulk length ({count} arguments; this radiant takes at most {})",
            limits.max_arguments
        )));
    }
    let mut ranges = ArgumentRanges::with_capacity(count.min(1024));
    for _ in 0..count {
        let Some((after_header, line)) = line_at(buffer, position) else {
            if buffer.len().saturating_sub(position) > RespLimits::MAX_INLINE_BYTES {
                return Err(protocol_error("too big bulk count string"));
            }
            return Ok(None);
        };
        if line.first() != Some(&b'$') {
            let found = line.first().map_or_else(
                || "end of line".to_string(),
                |b| format!("'{}'", char::from(*b).escape_default()),
            );
            return Err(protocol_error(format!("expected '$', got {found}")));
        }
        let length = header_number(line)
            .and_then(|length| usize::try_from(length).ok())
            .ok_or_else(|| protocol_error("invalid bulk length"))?;
        let end = after_header.saturating_add(length);
        if end.saturating_add(2) > limits.max_request_bytes {
            return Err(protocol_error(format!(
                "invalid bulk length (the request would exceed this radiant's {} bytes)",
                limits.max_request_bytes
            )));
        }
        let Some(terminator) = buffer.get(end..end + 2) else {
            return Ok(None);
        };
        if terminator != b"\r\n" {
            return Err(protocol_error("bulk string not followed by \\r\\n"));
        }
        ranges.push((after_header, end));
        position = end + 2;
    }
    Ok(Some((position, ranges)))
}

fn parse_inline(buffer: &[u8], limits: &RespLimits) -> Result<Parsed, RespProtocolError> {
    let Some((consumed, line)) = line_at(buffer, 0) else {
        if buffer.len() > RespLimits::MAX_INLINE_BYTES {
            return Err(protocol_error("too big inline request"));
        }
        return Ok(None);
    };
    let mut ranges = ArgumentRanges::new();
    let mut start = None;
    for (position, byte) in line.iter().enumerate() {
        match (byte.is_ascii_whitespace(), start) {
            (true, Some(begun)) => {
                ranges.push((begun, position));
                start = None;
            }
            (false, None) => start = Some(position),
            _ => {}
        }
    }
    if let Some(begun) = start {
        ranges.push((begun, line.len()));
    }
    if ranges.len() > limits.max_arguments {
        return Err(protocol_error("too many arguments in an inline request"));
    }
    Ok(Some((consumed, ranges)))
}

/// Which RESP a connection speaks: 2 until the client says `HELLO 3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RespVersion {
    /// RESP2: no maps, nulls as `$-1`.
    #[default]
    Two,
    /// RESP3: maps, sets, `_` nulls, booleans.
    Three,
}

/// A reply, encoded for the connection's version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespValue {
    /// `+OK`: a short status without `\r` or `\n` (borrowed when constant: `+OK` answers
    /// every `SET`, and should not cost an allocation).
    Simple(Cow<'static, str>),
    /// `-ERR …`: the first word is the error code (`ERR`, `MOVED`, `WRONGTYPE`, …).
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`.
    Bulk(Bytes),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// `*2 …`.
    Array(Vec<RespValue>),
    /// A map (`%` in RESP3; a flat array of keys and values in RESP2).
    Map(Vec<(RespValue, RespValue)>),
    /// A set (`~` in RESP3; an array in RESP2).
    Set(Vec<RespValue>),
    /// Text for people (`=` verbatim in RESP3; a bulk string in RESP2).
    Verbatim(String),
}

impl RespValue {
    /// `+OK`.
    pub fn ok() -> RespValue {
        RespValue::Simple(Cow::Borrowed("OK"))
    }

    /// A bulk string of `text`.
    pub fn text(text: impl Into<String>) -> RespValue {
        RespValue::Bulk(Bytes::from(text.into()))
    }

    /// A bulk string, or the null reply for `None`.
    pub fn optional(value: Option<Bytes>) -> RespValue {
        value.map_or(RespValue::Null, RespValue::Bulk)
    }

    /// Appends the reply, encoded for `version`, to `dst`.
    pub fn encode(&self, version: RespVersion, dst: &mut BytesMut) {
        match self {
            RespValue::Simple(text) => put_line(dst, b'+', text),
            RespValue::Error(text) => put_line(dst, b'-', text),
            RespValue::Integer(number) => put_header(dst, b':', *number),
            RespValue::Bulk(bytes) => put_bulk(dst, b'$', bytes),
            RespValue::Null => match version {
                RespVersion::Two => dst.put_slice(b"$-1\r\n"),
                RespVersion::Three => dst.put_slice(b"_\r\n"),
            },
            RespValue::Array(items) => put_items(dst, b'*', items, version),
            RespValue::Set(items) => {
                let tag = if version == RespVersion::Three { b'~' } else { b'*' };
                put_items(dst, tag, items, version);
            }
            RespValue::Map(pairs) => {
                match version {
                    RespVersion::Two => put_header(dst, b'*', count(pairs.len() * 2)),
                    RespVersion::Three => put_header(dst, b'%', count(pairs.len())),
                }
                for (key, value) in pairs {
                    key.encode(version, dst);
                    value.encode(version, dst);
                }
            }
            RespValue::Verbatim(text) => match version {
                RespVersion::Two => put_bulk(dst, b'$', text.as_bytes()),
                RespVersion::Three => {
                    put_header(dst, b'=', count(text.len() + 4));
                    dst.put_slice(b"txt:");
                    dst.put_slice(text.as_bytes());
                    dst.put_slice(b"\r\n");
                }
            },
        }
    }
}

fn count(items: usize) -> i64 {
    i64::try_from(items).unwrap_or(i64::MAX)
}

fn put_header(dst: &mut BytesMut, tag: u8, number: i64) {
    dst.put_u8(tag);
    put_decimal(dst, number);
    dst.put_slice(b"\r\n");
}

/// `number` in decimal, formatted on the stack: every bulk reply has a length header,
/// and `to_string` would allocate for each.
fn put_decimal(dst: &mut BytesMut, number: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number.unsigned_abs();
    loop {
        at -= 1;
        if let Some(digit) = digits.get_mut(at) {
            // `rest % 10` is below 10, so it fits a u8.
            *digit = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if number < 0 {
        dst.put_u8(b'-');
    }
    dst.put_slice(digits.get(at..).unwrap_or_default());
}

/// A simple string or error line; `\r` and `\n` become spaces so the line stays one line.
fn put_line(dst: &mut BytesMut, tag: u8, text: &str) {
    dst.put_u8(tag);
    for byte in text.bytes() {
        dst.put_u8(if byte == b'\r' || byte == b'\n' { b' ' } else { byte });
    }
    dst.put_slice(b"\r\n");
}

fn put_bulk(dst: &mut BytesMut, tag: u8, bytes: &[u8]) {
    put_header(dst, tag, count(bytes.len()));
    dst.put_slice(bytes);
    dst.put_slice(b"\r\n");
}

fn put_items(dst: &mut BytesMut, tag: u8, items: &[RespValue], version: RespVersion) {
    put_header(dst, tag, count(items.len()));
    for item in items {
        item.encode(version, dst);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const LIMITS: RespLimits = RespLimits { max_request_bytes: 1024, max_arguments: 8 };

    fn decode(bytes: &[u8]) -> Result<Option<Vec<Bytes>>, RespProtocolError> {
        decode_request(&mut BytesMut::from(bytes), &LIMITS)
    }

    fn words(request: Vec<Bytes>) -> Vec<String> {
        request.iter().map(|word| String::from_utf8_lossy(word).into_owned()).collect()
    }

    #[test]
    fn a_pipeline_of_arrays_and_inline_requests_decodes_one_request_at_a_time() {
        let mut buffer =
            BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\r\nPING  hi\r\n*1\r\n$4\r\nPI"[..]);
        let first = decode_request(&mut buffer, &LIMITS).unwrap().unwrap();
        assert_eq!(words(first), ["GET", "k"]);
        let second = decode_request(&mut buffer, &LIMITS).unwrap().unwrap();
        assert_eq!(words(second), ["PING", "hi"]);
        assert_eq!(decode_request(&mut buffer, &LIMITS).unwrap(), None);
        buffer.extend_from_slice(b"NG\r\n");
        assert_eq!(words(decode_request(&mut buffer, &LIMITS).unwrap().unwrap()), ["PING"]);
        assert!(buffer.is_empty());
    }

    #[test]
    fn header_numbers_are_plain_decimals_that_fit_an_i64() {
        assert_eq!(header_number(b"*3"), Some(3));
        assert_eq!(header_number(b"$-1"), Some(-1));
        assert_eq!(header_number(b"$9223372036854775807"), Some(i64::MAX));
        for refused in [&b"$"[..], b"$-", b"$+5", b"$ 5", b"$5x", b"$9223372036854775808"] {
            assert_eq!(header_number(refused), None, "{}", String::from_utf8_lossy(refused));
        }
    }

    #[test]
    fn integers_encode_as_redis_writes_them() {
        for (number, text) in [(0, ":0\r\n"), (-7, ":-7\r\n"), (1234, ":1234\r\n")] {
            let mut encoded = BytesMut::new();
            RespValue::Integer(number).encode(RespVersion::Two, &mut encoded);
            assert_eq!(&encoded[..], text.as_bytes());
        }
        let mut encoded = BytesMut::new();
        RespValue::Integer(i64::MIN).encode(RespVersion::Two, &mut encoded);
        assert_eq!(&encoded[..], format!(":{}\r\n", i64::MIN).as_bytes());
    }

    #[test]
    fn every_split_of_a_request_waits_for_the_rest() {
        let whole = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nvv\r\n";
        for cut in 0..whole.len() {
            assert_eq!(decode(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(words(decode(whole).unwrap().unwrap()), ["SET", "k", "v\r\nvv"]);
    }

    #[test]
    fn lengths_over_the_limits_are_refused_before_anything_is_buffered() {
        assert!(decode(b"*9\r\n").is_err());
        assert!(decode(b"*1\r\n$2000\r\n").is_err());
        assert!(decode(b"*1\r\n$-5\r\n").is_err());
        assert!(decode(b"*x\r\n").is_err());
        assert!(decode(b"*1\r\n:5\r\n").is_err());
        assert!(decode(b"*1\r\n$1\r\nab\r\n").is_err());
        let long = vec![b'a'; RespLimits::MAX_INLINE_BYTES + 1];
        assert_eq!(decode(&long).unwrap_err().reason, "too big inline request");
    }

    #[test]
    fn replies_encode_for_each_version() {
        let reply = RespValue::Map(vec![(RespValue::text("a"), RespValue::Null)]);
        let encode = |version| {
            let mut dst = BytesMut::new();
            reply.encode(version, &mut dst);
            dst
        };
        assert_eq!(&encode(RespVersion::Two)[..], b"*2\r\n$1\r\na\r\n$-1\r\n");
        assert_eq!(&encode(RespVersion::Three)[..], b"%1\r\n$1\r\na\r\n_\r\n");
        let mut dst = BytesMut::new();
        RespValue::Error("ERR bad\r\nthing".to_string()).encode(RespVersion::Two, &mut dst);
        assert_eq!(&dst[..], b"-ERR bad  thing\r\n");
    }
}
