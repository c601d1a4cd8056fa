//! Reactor tests on real loopback sockets: outbound peer links, backoff and redial, the
//! link handshake both ways, Ping on the peer port, and shutdown.

use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use radiant_protocol::{decode_frame, ClientRequest, Limits, Message};

use super::*;

fn options() -> ReactorOptions {
    ReactorOptions {
        metrics: Arc::default(),
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
        peer_address: "127.0.0.1:1".to_string(),
        link_trust: trust(SECRET),
        max_peer_connections: 8,
        tokens: ClientTokens::default(),
        cluster: Arc::default(),
        security: Arc::default(),
        tls: None,
        memory: MemoryBudget::new(1 << 30),
    }
}

const SECRET: &str = "reactor test secret";

fn trust(secret: &str) -> Arc<LinkTrust> {
    Arc::new(LinkTrust::Secret { present: secret.as_bytes().to_vec(), also_accepted: None })
}

fn write_message(stream: &mut std::net::TcpStream, message: Message) {
    let mut frame = BytesMut::new();
    message.encode(0, &mut frame);
    io::Write::write_all(stream, &frame).expect("write");
}

/// Plays the accepting side of a link handshake on `stream` with `secret`.
fn accept_link(stream: &mut std::net::TcpStream, secret: &str) -> Result<(), String> {
    use crate::server::link_auth::{LinkHandshake, LinkStep};
    let address = "127.0.0.1:2".to_string();
    let unset = radiant_protocol::ClusterId::UNSET;
    let mut handshake = LinkHandshake::accept(trust(secret), [7; 32], address, unset);
    for _ in 0..2 {
        let Message::Link(message) = read_one_frame(stream) else {
            return Err("a non-handshake frame came first".to_string());
        };
        match handshake.on_message(message).map_err(|refusal| refusal.reason)? {
            LinkStep::Send(reply) => write_message(stream, Message::Link(reply)),
            LinkStep::Trusted { .. } => return Ok(()),
        }
    }
    Err("the handshake did not finish".to_string())
}

/// Plays the dialling side of a link handshake on `stream` with `secret`.
fn dial_link(stream: &mut std::net::TcpStream, secret: &str) -> Result<(), String> {
    use crate::server::link_auth::{LinkHandshake, LinkStep};
    let address = "127.0.0.1:3".to_string();
    let unset = radiant_protocol::ClusterId::UNSET;
    let (mut handshake, hello) = LinkHandshake::dial(trust(secret), [8; 32], address, unset);
    write_message(stream, Message::Link(hello));
    let Message::Link(challenge) = read_one_frame(stream) else {
        return Err("the acceptor answered the hello with a non-handshake frame".to_string());
    };
    match handshake.on_message(challenge).map_err(|refusal| refusal.reason)? {
        LinkStep::Trusted { send: Some(proof), .. } => {
            write_message(stream, Message::Link(proof));
            Ok(())
        }
        other => Err(format!("unexpected step {other:?}")),
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
    accept_link(&mut accepted, SECRET).expect("the reactor's link handshake");
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
    let mut redialled = accept_within(&listener, Duration::from_secs(10));
    redialled.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // A listener with another secret: the reactor refuses the link, saying why.
    let refused = accept_link(&mut redialled, "not the reactor's secret");
    let reason = refused.expect_err("another secret must not link");
    assert!(reason.contains("different cluster_secret"), "{reason}");
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
fn nothing_from_a_peer_reaches_the_state_thread_before_the_handshake() {
    let (peer_address, sender, running, state_inbox) = start_reactor();
    // An attacker skips the handshake and sends a peer message: refused and closed.
    let mut attacker = std::net::TcpStream::connect(peer_address).expect("connect");
    attacker.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let refusal = radiant_protocol::ErrorResponse::BadRequest { reason: "no".to_string() };
    write_message(&mut attacker, Message::Error(refusal));
    match read_one_frame(&mut attacker) {
        Message::Link(radiant_protocol::LinkMessage::Refused { reason }) => {
            assert!(reason.contains("before the link handshake"), "{reason}")
        }
        other => panic!("expected LinkRefused, got {other:?}"),
    }
    let mut rest = Vec::new();
    let closed = attacker.read_to_end(&mut rest).map(|_| ()).is_ok();
    assert!(closed && rest.is_empty(), "the connection closes after the refusal");
    // Another secret: the dialler learns why.
    let mut wrong = std::net::TcpStream::connect(peer_address).expect("connect");
    wrong.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let reason = dial_link(&mut wrong, "not the reactor's secret").expect_err("another secret");
    assert!(reason.contains("different cluster_secret"), "{reason}");
    // The secret: the link is trusted and a system message goes through.
    let mut peer = std::net::TcpStream::connect(peer_address).expect("connect");
    peer.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    dial_link(&mut peer, SECRET).expect("the right secret links");
    let beacon = radiant_protocol::SystemMessage {
        cluster: radiant_protocol::ClusterId::UNSET,
        from: "127.0.0.1:3".to_string(),
        body: radiant_protocol::SystemBody::BeaconRefused { reason: "test".to_string() },
    };
    write_message(&mut peer, Message::System(beacon.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let delivered = loop {
        match state_inbox.recv_timeout(Duration::from_millis(50)) {
            Ok(StateEvent::Peer { input: crate::core::Input::System(message), .. }) => {
                break message
            }
            Ok(StateEvent::Tick) | Err(_) => {}
            Ok(other) => panic!("only the trusted link's message may arrive, got {other:?}"),
        }
        assert!(Instant::now() < deadline, "the trusted link's message never arrived");
    };
    assert_eq!(delivered, beacon);
    sender.send(ReactorEvent::Shutdown).expect("send");
    running.join().expect("reactor thread").expect("reactor ran");
}

/// Polls `condition` every 10 ms for up to 10 s.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn clients_together_never_hold_more_than_the_memory_budget_and_reads_resume_when_it_frees() {
    const BUDGET_BYTES: usize = 256 << 10;
    const PARTIAL_BYTES: usize = 100 << 10;
    let client = bind_listener(loopback()).expect("client listener");
    let client_address = client.local_addr().expect("address");
    let peer = bind_listener(loopback()).expect("peer listener");
    let (state, state_inbox) = crossbeam_channel::bounded(1024);
    let memory = MemoryBudget::new(BUDGET_BYTES);
    let options = ReactorOptions { memory: Arc::clone(&memory), ..options() };
    let (reactor, sender) = Reactor::new(options, client, peer, state).expect("reactor");
    let running = std::thread::spawn(move || reactor.run());
    // Eight clients each send the first 100 KiB of a 1 MiB put and stop: 800 KiB claimed.
    let mut put = BytesMut::new();
    let value = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let key = bytes::Bytes::from_static(b"k");
    let request = ClientRequest::Put { key, value, session: None };
    Message::Request(request).encode(1, &mut put);
    let send_partial_put = || {
        let mut stream = std::net::TcpStream::connect(client_address).expect("connect");
        io::Write::write_all(&mut stream, &put[..PARTIAL_BYTES]).expect("write");
        stream
    };
    let partial_senders: Vec<_> = (0..8).map(|_| send_partial_put()).collect();
    let connection_bytes = || memory.to_json()["connection_bytes"].as_u64().unwrap_or(0) as usize;
    eventually("the reactor read up to its budget", || connection_bytes() >= BUDGET_BYTES);
    // Past the budget, only connections with nothing buffered read, and only a headroom.
    let most = BUDGET_BYTES + partial_senders.len() * MEMORY_HEADROOM_BYTES_PER_CONNECTION;
    std::thread::sleep(Duration::from_millis(300));
    assert!(connection_bytes() <= most, "past the budget: {}", memory.to_json());
    assert!(memory.to_json()["client_reads_paused"].as_u64() > Some(0));
    // A small complete request still goes through.
    let mut latecomer = std::net::TcpStream::connect(client_address).expect("connect");
    let get = ClientRequest::Get {
        key: bytes::Bytes::from_static(b"late"),
        consistency: radiant_protocol::ReadConsistency::Linearizable,
    };
    write_message(&mut latecomer, Message::Request(get));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let event = state_inbox.recv_timeout(Duration::from_millis(50));
        if let Ok(StateEvent::Client { request, .. }) = event {
            assert!(matches!(request, ClientRequest::Get { .. }), "{request:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the small request was never read");
    }
    // The partial senders go away, and their bytes with them.
    drop(partial_senders);
    eventually("the partial frames' bytes were freed", || memory.in_use_bytes() == 0);
    sender.send(ReactorEvent::Shutdown).expect("send");
    drop(latecomer);
    running.join().expect("reactor thread").expect("reactor ran");
}
