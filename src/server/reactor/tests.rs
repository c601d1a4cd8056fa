//! Reactor tests on real loopback sockets: outbound peer links, backoff and redial,
//! Ping on the peer port, and shutdown.

use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use radiant_protocol::{decode_frame, ClientRequest, Limits, Message};

use super::*;

fn options() -> ReactorOptions {
    ReactorOptions {
        limits: Limits::DEFAULT,
        max_connections: 64,
        max_inflight_per_connection: 16,
        write_high_water_bytes: 32 << 20,
        write_max_bytes: 64 << 20,
        write_stall_timeout: Duration::from_secs(5),
        client_idle_timeout: Duration::from_secs(60),
        tick: Duration::from_millis(10),
        member_id: MemberId::new(1),
        seed: 9,
        drop_delete_answers: 0,
        panic_on_first_keyed_request: false,
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("literal")
}

/// The parts of a running reactor a test holds: its peer address, its inbox, its
/// thread, and the state inbox (kept alive so the reactor can hand events over).
type RunningReactor = (
    SocketAddr,
    ReactorSender<ReactorEvent>,
    std::thread::JoinHandle<io::Result<ReactorCounters>>,
    crossbeam_channel::Receiver<StateEvent>,
);

/// A reactor on fresh loopback listeners, running on its own thread.
fn start_reactor() -> RunningReactor {
    let client = bind_listener(loopback()).expect("client listener");
    let peer = bind_listener(loopback()).expect("peer listener");
    let peer_address = peer.local_addr().expect("address");
    let (state, state_inbox) = crossbeam_channel::bounded(1024);
    let (reactor, sender) = Reactor::new(options(), client, peer, state).expect("reactor");
    (peer_address, sender, std::thread::spawn(move || reactor.run()), state_inbox)
}

fn accept_within(listener: &StdListener, limit: Duration) -> std::net::TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
                return stream;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("accept: {error}"),
        }
        assert!(Instant::now() < deadline, "the reactor did not dial within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_one_frame(stream: &mut std::net::TcpStream) -> Message {
    let mut buffer = BytesMut::new();
    loop {
        if let Some(frame) = decode_frame(&mut buffer, 1 << 20).expect("valid frame") {
            return Message::decode(frame, &Limits::DEFAULT).expect("valid message");
        }
        let mut chunk = [0u8; 1024];
        let count = stream.read(&mut chunk).expect("read");
        assert!(count > 0, "link closed before a frame arrived");
        buffer.extend_from_slice(&chunk[..count]);
    }
}

#[test]
fn a_peer_link_dials_with_backoff_connects_when_the_peer_appears_and_redials_after_a_drop() {
    // Find a free port, then leave it closed so the first dials fail.
    let peer_address = StdListener::bind(loopback()).expect("bind").local_addr().expect("address");
    let client = bind_listener(loopback()).expect("client listener");
    let peer = bind_listener(loopback()).expect("peer listener");
    let (state, _state_inbox) = crossbeam_channel::bounded(1024);
    let (reactor, sender) = Reactor::new(options(), client, peer, state).expect("reactor");
    let running = std::thread::spawn(move || reactor.run());
    sender.send(ReactorEvent::LinkPeer(peer_address)).expect("send");
    std::thread::sleep(Duration::from_millis(300));

    let listener = StdListener::bind(peer_address).expect("rebind the peer's port");
    let mut accepted = accept_within(&listener, Duration::from_secs(10));
    let mut frame = BytesMut::new();
    Message::Request(ClientRequest::Ping).encode(77, &mut frame);
    // The link may report up a moment after the peer accepts; resend until a frame lands.
    let deadline = Instant::now() + Duration::from_secs(10);
    accepted.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let mut received = BytesMut::new();
    loop {
        sender
            .send(ReactorEvent::SendPeer { address: peer_address, frame: frame.clone().freeze() })
            .expect("send");
        let mut chunk = [0u8; 256];
        if let Ok(count) = accepted.read(&mut chunk) {
            received.extend_from_slice(&chunk[..count]);
            if decode_frame(&mut received, 1 << 20).expect("valid").is_some() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no frame arrived over the link");
    }

    drop(accepted);
    let redialled = accept_within(&listener, Duration::from_secs(10));
    redialled.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    sender.send(ReactorEvent::Shutdown).expect("send");
    let counters = running.join().expect("reactor thread").expect("reactor ran");
    assert_eq!(counters.refused_at_limit, 0);
}

#[test]
fn ping_on_the_peer_port_gets_pong_and_shutdown_exits() {
    let (peer_address, sender, running, _state_inbox) = start_reactor();
    let mut stream = std::net::TcpStream::connect(peer_address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut frame = BytesMut::new();
    Message::Request(ClientRequest::Ping).encode(5, &mut frame);
    io::Write::write_all(&mut stream, &frame).expect("write");
    match read_one_frame(&mut stream) {
        Message::Response(radiant_protocol::ClientResponse::Pong { member_id }) => {
            assert_eq!(member_id, MemberId::new(1))
        }
        other => panic!("expected Pong, got {other:?}"),
    }
    sender.send(ReactorEvent::Shutdown).expect("send");
    running.join().expect("reactor thread").expect("reactor ran");
}

#[test]
fn an_error_frame_from_a_peer_is_not_answered_with_another_error() {
    let (peer_address, sender, running, _state_inbox) = start_reactor();
    let mut stream = std::net::TcpStream::connect(peer_address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut frame = BytesMut::new();
    let refusal = radiant_protocol::ErrorResponse::BadRequest { reason: "no".to_string() };
    Message::Error(refusal).encode(3, &mut frame);
    Message::Request(ClientRequest::Ping).encode(4, &mut frame);
    io::Write::write_all(&mut stream, &frame).expect("write");
    // The first frame back answers the ping: the error got no reply of its own.
    match read_one_frame(&mut stream) {
        Message::Response(radiant_protocol::ClientResponse::Pong { .. }) => {}
        other => panic!("expected only a Pong, got {other:?}"),
    }
    sender.send(ReactorEvent::Shutdown).expect("send");
    running.join().expect("reactor thread").expect("reactor ran");
}
