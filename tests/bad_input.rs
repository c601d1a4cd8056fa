//! Hostile and broken clients: garbage, truncated frames, an oversized length, an
//! unknown kind, a response sent as a request, too many connections, and a client
//! that never reads. Each gets a clear error or a disconnect, memory stays bounded,
//! and the daemon keeps serving everyone else.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::Daemon;
use radiant_protocol::{
    decode_frame, ClientRequest, ClientResponse, ErrorResponse, Limits, Message, ReadConsistency,
};

/// Small limits so the slow-reader test reaches the caps quickly.
const SMALL_LIMITS: &str = "max_value_bytes = 65536\nmax_key_bytes = 1024\n\
    max_frame_bytes = 131072\nconnection_write_high_water_bytes = 262144\n\
    connection_write_max_bytes = 524288\nwrite_stall_timeout_ms = 1000\nmax_connections = 16\n\
    replication_max_bytes = 65536\n";

fn raw_connect(daemon: &Daemon) -> TcpStream {
    let stream = TcpStream::connect(daemon.client_address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
}

/// Reads frames until one decodes, EOF, or the deadline. `None` = closed without a frame.
fn read_message(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<(u64, Message)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(frame) = decode_frame(buffer, 1 << 24).expect("server frames decode") {
            let correlation_id = frame.correlation_id;
            return Some((
                correlation_id,
                Message::decode(frame, &Limits::DEFAULT).expect("decodes"),
            ));
        }
        assert!(Instant::now() < deadline, "no frame and no close within 10 s");
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(count) => buffer.extend_from_slice(&chunk[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(error) => panic!("read failed: {error}"),
        }
    }
}

/// Whether the server closes the stream within the deadline (reading and discarding).
fn closes_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut chunk = vec![0u8; 1 << 16];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(error) => panic!("read failed: {error}"),
        }
    }
    false
}

fn assert_still_serving(daemon: &Daemon) {
    let mut client = daemon.connect();
    client.put(b"canary", b"alive").expect("daemon still takes writes");
    assert_eq!(client.get(b"canary").expect("and reads").as_deref(), Some(&b"alive"[..]));
}

fn expect_bad_request(message: &Message, needle: &str) {
    match message {
        Message::Error(ErrorResponse::BadRequest { reason }) => {
            assert!(reason.contains(needle), "reason {reason:?} lacks {needle:?}");
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

#[test]
fn oversized_length_gets_an_error_frame_and_a_disconnect() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), SMALL_LIMITS);
    let mut stream = raw_connect(&daemon);
    stream.write_all(&[0xFF, 0xFF, 0xFF, 0xF0, 1, 0x50]).expect("write");
    let mut buffer = BytesMut::new();
    let (correlation_id, message) = read_message(&mut stream, &mut buffer).expect("an error frame");
    assert_eq!(correlation_id, 0);
    expect_bad_request(&message, "max_frame_bytes");
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
    assert_still_serving(&daemon);
}

#[test]
fn garbage_and_truncated_frames_never_hurt_other_clients() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), SMALL_LIMITS);
    // Garbage: a plausible length, then a wrong version byte.
    let mut stream = raw_connect(&daemon);
    stream.write_all(&[0, 0, 0, 12, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 0xAA, 0xBB]).expect("write");
    let mut buffer = BytesMut::new();
    let (_, message) = read_message(&mut stream, &mut buffer).expect("an error frame");
    expect_bad_request(&message, "version");
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
    // Pseudo-random bytes: an error frame or a plain close, never a crash.
    let mut stream = raw_connect(&daemon);
    let garbage: Vec<u8> =
        (0u32..4096).map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let _ = stream.write_all(&garbage);
    assert!(closes_within(&mut stream, Duration::from_secs(5)));
    // Truncated frames: a header promising more than arrives, then the sender vanishes.
    for cut in [1usize, 3, 5, 13] {
        let mut stream = raw_connect(&daemon);
        let mut frame = BytesMut::new();
        Message::Request(ClientRequest::Ping).encode(7, &mut frame);
        stream.write_all(&frame[..cut]).expect("write");
        drop(stream);
    }
    assert_still_serving(&daemon);
}

#[test]
fn unknown_kind_and_wrong_direction_get_bad_request_and_the_connection_stays_open() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), SMALL_LIMITS);
    let mut stream = raw_connect(&daemon);
    let mut buffer = BytesMut::new();
    // Kind 0x6F is in the client-response range but unassigned.
    let version = radiant_protocol::PROTOCOL_VERSION;
    stream.write_all(&[0, 0, 0, 10, version, 0x6F, 0, 0, 0, 0, 0, 0, 0, 42]).expect("write");
    let (correlation_id, message) = read_message(&mut stream, &mut buffer).expect("reply");
    assert_eq!(correlation_id, 42);
    expect_bad_request(&message, "unknown message kind 0x6f");
    // A response kind sent by a client.
    let mut frame = BytesMut::new();
    Message::Response(ClientResponse::PutResult).encode(43, &mut frame);
    stream.write_all(&frame).expect("write");
    let (correlation_id, message) = read_message(&mut stream, &mut buffer).expect("reply");
    assert_eq!(correlation_id, 43);
    expect_bad_request(&message, "not accepted");
    // A key over max_key_bytes.
    frame.clear();
    let key = bytes::Bytes::from(vec![b'k'; 2048]);
    Message::Request(ClientRequest::Get { key, consistency: ReadConsistency::Linearizable })
        .encode(44, &mut frame);
    stream.write_all(&frame).expect("write");
    let (correlation_id, message) = read_message(&mut stream, &mut buffer).expect("reply");
    assert_eq!(correlation_id, 44);
    expect_bad_request(&message, "max_key_bytes");
    // Same connection still works.
    frame.clear();
    Message::Request(ClientRequest::Ping).encode(45, &mut frame);
    stream.write_all(&frame).expect("write");
    let (correlation_id, message) = read_message(&mut stream, &mut buffer).expect("pong");
    assert_eq!(correlation_id, 45);
    assert!(matches!(message, Message::Response(ClientResponse::Pong { .. })), "{message:?}");
}

#[test]
fn connections_beyond_max_connections_are_refused_with_unavailable() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), SMALL_LIMITS);
    let held: Vec<_> = (0..16).map(|_| daemon.connect()).collect();
    let mut extra = raw_connect(&daemon);
    let mut buffer = BytesMut::new();
    let (_, message) = read_message(&mut extra, &mut buffer).expect("a refusal frame");
    match message {
        Message::Error(ErrorResponse::Unavailable { reason }) => {
            assert!(reason.contains("max_connections"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.client().and_then(|mut client| client.ping().ok()).is_none() {
        assert!(Instant::now() < deadline, "slots were not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_off_with_bounded_memory() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), SMALL_LIMITS);
    daemon.connect().put(b"big", &vec![b'v'; 60_000]).expect("put a large value");
    let rss_before = daemon.rss_kib();
    let mut slow = raw_connect(&daemon);
    slow.set_write_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut frame = BytesMut::new();
    let get = ClientRequest::Get {
        key: bytes::Bytes::from_static(b"big"),
        consistency: ReadConsistency::Linearizable,
    };
    for correlation_id in 1..=20_000u64 {
        Message::Request(get.clone()).encode(correlation_id, &mut frame);
    }
    // 20,000 reads of 60 KB would be 1.2 GB of replies; the socket fills long before.
    let _ = slow.write_all(&frame);
    let mut other = daemon.connect();
    for round in 0..20 {
        other.put(format!("other-{round}").as_bytes(), b"v").expect("others are still served");
    }
    let rss_during = daemon.rss_kib();
    assert!(
        rss_during < rss_before + 64 * 1024,
        "daemon memory grew from {rss_before} KiB to {rss_during} KiB for one slow reader"
    );
    // The stall timeout (1 s) cuts it off; after that, reading ends in EOF or reset.
    std::thread::sleep(Duration::from_secs(3));
    assert!(closes_within(&mut slow, Duration::from_secs(20)), "slow reader was never cut off");
    assert_still_serving(&daemon);
}

#[test]
fn lengths_that_claim_large_frames_reserve_memory_only_as_bytes_arrive() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), "max_connections = 256\n");
    let before = daemon.virtual_kib();
    // Each connection claims a 16 MiB frame and sends its 14-byte header only. Before,
    // the decoder reserved the whole claimed frame at once: 200 connections, 3.3 GiB.
    let mut header = BytesMut::new();
    bytes::BufMut::put_u32(&mut header, 16 << 20);
    header.extend_from_slice(&[1, 0x51, 0, 0, 0, 0, 0, 0, 0, 1]);
    let connections: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = raw_connect(&daemon);
            stream.write_all(&header).expect("send a header");
            stream
        })
        .collect();
    assert_still_serving(&daemon);
    let during = daemon.virtual_kib();
    println!("virtual memory {before} KiB before, {during} KiB with 200 claims");
    assert!(
        during < before + 512 * 1024,
        "200 claimed frames grew virtual memory from {before} KiB to {during} KiB"
    );
    drop(connections);
}
