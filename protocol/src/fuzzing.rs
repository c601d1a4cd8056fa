//! Entry points for the fuzz targets in `fuzz/` and for the property tests, so both
//! run the same code on the same oracles.
//!
//! This module owns the oracles: the decoders must not panic on any input, chunking a
//! stream must not change what it decodes to, and anything that decodes must re-encode
//! to the same bytes. It must not be called by the daemon; its `assert!`s are the point.

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::frame::{decode_frame, Frame};
use crate::limits::Limits;
use crate::message::{Command, Message};

/// Small limits, so that random inputs hit the limit checks often.
pub const FUZZ_LIMITS: Limits =
    Limits { max_frame_bytes: 4096, max_key_bytes: 64, max_value_bytes: 1024 };

/// The longest chunk `decode_frame_bytes` feeds at once when it splits its input.
const MAX_CHUNK_BYTES: usize = 32;

/// Feeds `data` to `decode_frame` as a connection would: once whole, and once in chunks
/// whose sizes come from `data` itself. Both must yield the same frames and errors, and
/// `Ok(None)` must leave the buffer untouched.
pub fn decode_frame_bytes(data: &[u8]) {
    let whole = decode_stream(&[data], FUZZ_LIMITS.max_frame_bytes);
    let chunks = split_into_chunks(data);
    let chunked = decode_stream(&chunks, FUZZ_LIMITS.max_frame_bytes);
    assert_eq!(whole, chunked, "splitting the stream changed what it decodes to");
}

/// Decodes frames from `data`, then messages from the frames: client requests and
/// responses, errors, and peer messages (vote and replication families, entries and
/// snapshot chunks included). Every message that decodes must re-encode to the exact
/// bytes of its frame (the encoding is canonical) and decode again to an equal message.
pub fn decode_message_bytes(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    // Why: each iteration consumes a frame or ends the loop, so it is bounded by data.
    loop {
        let before = buf.clone().freeze();
        let frame = match decode_frame(&mut buf, FUZZ_LIMITS.max_frame_bytes) {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(DecodeError::UnknownKind { .. }) => continue,
            Err(_) => return,
        };
        let frame_bytes = before.slice(..before.len() - buf.len());
        check_message_round_trip(frame, &frame_bytes);
    }
}

/// Decodes `data` as a log command. A command that decodes must re-encode to `data`
/// exactly and decode again to an equal command.
pub fn decode_command_bytes(data: &[u8]) {
    let Ok(command) = Command::decode(Bytes::copy_from_slice(data), &FUZZ_LIMITS) else {
        return;
    };
    let encoded = command.to_bytes();
    assert_eq!(encoded.as_ref(), data, "command re-encoded to different bytes");
    let decoded = Command::decode(encoded, &FUZZ_LIMITS);
    assert_eq!(decoded.as_ref(), Ok(&command), "command did not survive a round trip");
}

/// Small RESP limits, so that random inputs hit the limit checks often.
pub const FUZZ_RESP_LIMITS: crate::resp::RespLimits =
    crate::resp::RespLimits { max_request_bytes: 4096, max_arguments: 16 };

/// Feeds `data` to the RESP request decoder once whole and once in chunks: both must
/// yield the same requests up to the same error, and every request, re-encoded as an
/// array of bulk strings, must decode to the same arguments.
pub fn decode_resp_bytes(data: &[u8]) {
    let whole = decode_resp_stream(&[data]);
    let chunks = split_into_chunks(data);
    let chunked = decode_resp_stream(&chunks);
    assert_eq!(whole, chunked, "splitting the RESP stream changed what it decodes to");
    for request in whole.0 {
        let mut encoded = BytesMut::new();
        let arguments = request.iter().cloned().map(crate::resp::RespValue::Bulk).collect();
        crate::resp::RespValue::Array(arguments)
            .encode(crate::resp::RespVersion::Two, &mut encoded);
        if encoded.len() > FUZZ_RESP_LIMITS.max_request_bytes {
            continue;
        }
        let again = crate::resp::decode_request(&mut encoded, &FUZZ_RESP_LIMITS);
        assert_eq!(again, Ok(Some(request)), "a RESP request did not survive re-encoding");
        assert!(encoded.is_empty(), "re-encoded RESP request left bytes behind");
    }
}

type RespStream = (Vec<Vec<Bytes>>, Option<crate::resp::RespProtocolError>);

fn decode_resp_stream(chunks: &[&[u8]]) -> RespStream {
    let mut buffer = BytesMut::new();
    let mut requests = Vec::new();
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
        // Why: each iteration consumes a request or leaves the loop, so it is bounded.
        loop {
            match crate::resp::decode_request(&mut buffer, &FUZZ_RESP_LIMITS) {
                Ok(Some(request)) => requests.push(request),
                Ok(None) => break,
                Err(error) => return (requests, Some(error)),
            }
        }
    }
    (requests, None)
}

fn check_message_round_trip(frame: Frame, frame_bytes: &[u8]) {
    let correlation_id = frame.correlation_id;
    let Ok(message) = Message::decode(frame, &FUZZ_LIMITS) else {
        return;
    };
    let mut encoded = BytesMut::new();
    message.encode(correlation_id, &mut encoded);
    assert_eq!(encoded.as_ref(), frame_bytes, "message re-encoded to different bytes");
    let frame = decode_frame(&mut encoded, FUZZ_LIMITS.max_frame_bytes);
    assert!(matches!(frame, Ok(Some(_))), "re-encoded message is not one frame: {frame:?}");
    let Ok(Some(frame)) = frame else {
        return;
    };
    assert!(encoded.is_empty(), "re-encoded message left bytes behind");
    assert_eq!(frame.correlation_id, correlation_id);
    let decoded = Message::decode(frame, &FUZZ_LIMITS);
    assert_eq!(decoded.as_ref(), Ok(&message), "message did not survive a round trip");
}

/// Runs a connection's decode loop over `chunks` arriving one after another and records
/// every frame and error, stopping where a server would close the connection.
fn decode_stream(chunks: &[&[u8]], max_frame_bytes: u32) -> Vec<Result<Frame, DecodeError>> {
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decode_frame(&mut buf, max_frame_bytes) {
                Ok(Some(frame)) => decoded.push(Ok(frame)),
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(error) if error.is_fatal() => {
                    assert_eq!(buf.len(), before, "a fatal error consumed bytes");
                    decoded.push(Err(error));
                    return decoded;
                }
                Err(error) => {
                    assert!(buf.len() < before, "a non-fatal error did not consume its frame");
                    decoded.push(Err(error));
                }
            }
        }
    }
    decoded
}

/// Splits `data` into chunks of 1..=MAX_CHUNK_BYTES bytes, each size taken from the
/// byte where the chunk starts, so the fuzzer controls the split points.
fn split_into_chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut rest = data;
    while let Some(&first) = rest.first() {
        let size = (usize::from(first) % MAX_CHUNK_BYTES + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ids::{MemberId, OrderId};
    use crate::message::{Append, PeerBody, PeerHeader, PeerMessage};
    use crate::replication::LogEntry;

    /// An `Append` frame with two entries, as a peer would send it.
    fn append_frame() -> BytesMut {
        let header = PeerHeader {
            cluster: crate::ids::ClusterId(1),
            order_id: OrderId::new(1).unwrap(),
            from: MemberId::new(2).unwrap(),
            to: MemberId::new(3).unwrap(),
            term: 2,
        };
        let entries = (1..=2)
            .map(|index| LogEntry { term: 2, index, data: Bytes::from_static(b"\x01data") })
            .collect();
        let body = PeerBody::Append(Append {
            prev_log_index: 0,
            prev_log_term: 0,
            commit: 0,
            read_round: 1,
            entries,
        });
        let mut buf = BytesMut::new();
        Message::Peer(PeerMessage { header, body }).encode(5, &mut buf);
        buf
    }

    #[test]
    fn peer_messages_reach_the_round_trip_oracle() {
        let frame = append_frame();
        let decoded = decode_frame(&mut frame.clone(), FUZZ_LIMITS.max_frame_bytes);
        assert!(matches!(
            Message::decode(decoded.unwrap().unwrap(), &FUZZ_LIMITS),
            Ok(Message::Peer(_))
        ));
        decode_message_bytes(&frame);
        decode_frame_bytes(&frame);
        // Every prefix must be handled too (a peer link cut mid-frame).
        for end in 0..frame.len() {
            decode_message_bytes(frame.get(..end).unwrap());
        }
    }

    #[test]
    fn split_into_chunks_covers_the_input_in_order() {
        let data: Vec<u8> = (0..=255).collect();
        let chunks = split_into_chunks(&data);
        assert_eq!(chunks.concat(), data);
        assert!(chunks.iter().all(|chunk| !chunk.is_empty() && chunk.len() <= MAX_CHUNK_BYTES));
    }

    #[test]
    fn fuzz_entry_points_accept_empty_and_garbage_input() {
        for data in [&[][..], &[0xFF; 40][..], &[0, 0, 0, 10, 1, 0x54, 0, 0, 0, 0, 0, 0, 0, 0]] {
            decode_frame_bytes(data);
            decode_message_bytes(data);
            decode_command_bytes(data);
        }
    }
}
