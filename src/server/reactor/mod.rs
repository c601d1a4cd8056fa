//! The reactor: one thread, one `mio::Poll`, every socket of the radiant.
//!
//! ```text
//!  clients ──► client listener ─┐                      ┌─► state thread (StateEvent)
//!  peers   ──► peer listener  ──┼─► connection slab ───┤
//!  peer links (dialled)  ───────┘   read ▸ decode ▸ route └─◄ ReactorEvent (replies, via Waker)
//! ```
//!
//! Each turn: poll (timeout = next timer), accept, read and decode a bounded amount
//! per connection, hand requests to the state thread with `try_send` (full = stop
//! reading that connection, retry next turn), drain replies, flush, run timers.
//! It never blocks on disk or on another thread, and it owns no protocol logic.

mod client_access;
mod connection;
mod connections;
mod peer_links;
mod peers;
mod resp;
mod resp_routes;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Sender, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry};
use radiant_protocol::{
    decode_frame, ClientRequest, ClientResponse, DecodeError, ErrorResponse, Frame, Limits,
    MemberId, Message, FRAME_HEADER_BYTES,
};
use tracing::{debug, info, warn};

use self::connection::{Connection, PeerTrust, ReadOutcome, Side};
use self::connections::{
    id_of, token_of, Slab, CLIENT_LISTENER_TOKEN, PEER_LISTENER_TOKEN, RESP_LISTENER_TOKEN,
    WAKER_TOKEN,
};
use self::peers::{LinkState, PeerLink};
pub use self::resp_routes::{OrderView, RespRoutes};
use super::channels::{reactor_channel, ReactorReceiver, ReactorSender};
use super::link_auth::LinkTrust;
use super::memory_budget::MemoryBudget;
use super::state_thread::StateEvent;
use crate::core::prng::Prng;
use crate::core::{ConnectionId, ReplyTo};
use crate::limits::{
    MAX_ACCEPTS_PER_TURN, MAX_EVENTS, MAX_FRAMES_PER_TURN, MAX_PEER_LINKS, MAX_READ_BYTES_PER_TURN,
    MEMORY_HEADROOM_BYTES_PER_CONNECTION, REACTOR_HOUSEKEEPING_INTERVAL, REACTOR_INBOX_CAPACITY,
    SHUTDOWN_DRAIN_TIMEOUT,
};

/// Messages into the reactor from other threads.
#[derive(Debug)]
pub enum ReactorEvent {
    /// A reply (response or error) for a client request.
    Reply {
        /// The connection and correlation id of the request.
        reply_to: ReplyTo,
        /// The message to send.
        message: Message,
    },
    /// Keep a link to this peer address up, redialling when it drops.
    LinkPeer(SocketAddr),
    /// Send an encoded frame on the link to `address`; dropped if the link is down.
    SendPeer {
        /// The link.
        address: SocketAddr,
        /// A complete encoded frame.
        frame: bytes::Bytes,
    },
    /// Stop accepting and reading, deliver outstanding replies, then exit.
    Shutdown,
}

/// The reactor's limits and timeouts, taken from the configuration.
#[derive(Clone, Debug)]
pub struct ReactorOptions {
    /// Decoder limits (frame, key, value sizes).
    pub limits: Limits,
    /// Most open connections (clients and peers).
    pub max_connections: usize,
    /// Most requests in flight per client connection.
    pub max_inflight_per_connection: u32,
    /// Stop reading a connection whose unsent replies exceed this.
    pub write_high_water_bytes: usize,
    /// Close a connection whose unsent replies exceed this.
    pub write_max_bytes: usize,
    /// Close a connection whose unsent replies make no progress for this long.
    pub write_stall_timeout: Duration,
    /// Close a client connection with no traffic for this long.
    pub client_idle_timeout: Duration,
    /// How often to send `StateEvent::Tick`.
    pub tick: Duration,
    /// This radiant's id, reported in `Pong`.
    pub member_id: Option<MemberId>,
    /// Seed for reconnect jitter.
    pub seed: u64,
    /// Test-only fault: the answers to this many `Delete`s (the first ones) are dropped
    /// after the delete was applied, as a lost packet would lose them, so a test sees the
    /// client resend it. 0 in service; set only by `RADIANT_TEST_DROP_DELETE_ANSWERS`.
    pub drop_delete_answers: u64,
    /// Test-only fault: panic at the first keyed request (`test_switches::PANIC_THREAD`
    /// naming `main`, the reactor's thread). False in service.
    pub panic_on_first_keyed_request: bool,
    /// This radiant's peer address, as it introduces itself in link handshakes.
    pub peer_address: String,
    /// How peer links are authenticated.
    pub link_trust: Arc<LinkTrust>,
    /// Most inbound peer connections (a pool apart from `max_connections`).
    pub max_peer_connections: usize,
    /// The tokens of the client port.
    pub tokens: ClientTokens,
    /// The radiant's cluster id as the state thread last published it (for handshakes).
    pub cluster: Arc<parking_lot::Mutex<radiant_protocol::ClusterId>>,
    /// Refusals, shared with the state thread's status.
    pub security: Arc<SecurityCounters>,
    /// TLS on the client port and on peer links (mutual), when configured.
    pub tls: Option<crate::tls::RadiantTls>,
    /// The process-wide budget for buffered client bytes (`max_buffered_bytes`).
    pub memory: Arc<MemoryBudget>,
    /// Requests answered, their latency, connections: what `/metrics` shows of the reactor.
    pub metrics: Arc<super::metrics::ReactorMetrics>,
}

/// The tokens clients present with `Authenticate`.
#[derive(Clone, Default)]
pub struct ClientTokens {
    /// Grants admin and data requests (`admin_token_file`).
    pub admin: Option<Vec<u8>>,
    /// Grants data requests (`client_token_file`); unset: data requests are open.
    pub client: Option<Vec<u8>>,
    /// Admin requests are open without an admin token (`insecure = true`).
    pub admin_open_without_token: bool,
}

impl std::fmt::Debug for ClientTokens {
    // Why: a token must never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTokens")
            .field("admin", &self.admin.is_some())
            .field("client", &self.client.is_some())
            .field("admin_open_without_token", &self.admin_open_without_token)
            .finish()
    }
}

/// What the trusted boundary refused, counted for `radiant status` (`security`).
#[derive(Debug, Default)]
pub struct SecurityCounters {
    /// Link handshakes that completed.
    pub links_trusted: AtomicU64,
    /// Link handshakes refused (another secret, insecure against secured, a foreign
    /// cluster, a bad proof, a message out of turn), by either side.
    pub links_refused: AtomicU64,
    /// Link handshakes that did not finish within `PEER_HANDSHAKE_TIMEOUT`.
    pub handshake_timeouts: AtomicU64,
    /// Frames other than the handshake sent on a link before it was trusted.
    pub unauthenticated_frames: AtomicU64,
    /// Inbound peer connections refused at `max_peer_connections`.
    pub peer_connections_refused: AtomicU64,
    /// `Authenticate` requests whose token matched nothing.
    pub failed_authentications: AtomicU64,
    /// Requests refused as `Unauthorized`.
    pub unauthorized_requests: AtomicU64,
}

impl SecurityCounters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        serde_json::json!({
            "links_trusted": get(&self.links_trusted),
            "links_refused": get(&self.links_refused),
            "handshake_timeouts": get(&self.handshake_timeouts),
            "unauthenticated_frames": get(&self.unauthenticated_frames),
            "peer_connections_refused": get(&self.peer_connections_refused),
            "failed_authentications": get(&self.failed_authentications),
            "unauthorized_requests": get(&self.unauthorized_requests),
        })
    }
}

/// Counters for tests and `status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReactorCounters {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused at `max_connections`.
    pub refused_at_limit: u64,
    /// Connections closed for a protocol error.
    pub closed_for_protocol_error: u64,
    /// Connections closed for not reading replies (cap or stall).
    pub closed_for_slow_reader: u64,
    /// Replies dropped because their connection had closed.
    pub replies_to_closed_connections: u64,
}

/// The reactor. Build it with [`Reactor::new`], then call [`Reactor::run`] on its thread.
pub struct Reactor {
    poll: Poll,
    options: ReactorOptions,
    client_listener: Option<TcpListener>,
    peer_listener: Option<TcpListener>,
    /// Redis clients' listener, when `resp_port` is set.
    resp_listener: Option<TcpListener>,
    /// Where RESP requests go (`MOVED`, `CLUSTER SLOTS`), with the RESP listener.
    resp_routes: Option<RespRoutes>,
    connections: Slab<Connection>,
    inbox: ReactorReceiver<ReactorEvent>,
    state: Sender<StateEvent>,
    links: HashMap<SocketAddr, PeerLink>,
    /// Open client connections and inbound peer connections: separate pools.
    client_connections: usize,
    inbound_peer_connections: usize,
    prng: Prng,
    /// Connections to revisit without a readiness event: read budget spent, or they
    /// were paused and have resumed (mio is edge-triggered).
    revisit: Vec<ConnectionId>,
    /// Connections whose write buffers need a flush at the end of the turn.
    dirty: Vec<ConnectionId>,
    /// A request the state thread had no room for, per connection (at most one each).
    blocked: Vec<(ConnectionId, StateEvent)>,
    /// Client connections that stopped reading because the memory budget was spent.
    waiting_for_memory: Vec<ConnectionId>,
    /// Bytes in every connection's buffers (the sum of `Connection::accounted_bytes`).
    connection_bytes: usize,
    accept_pending: [bool; 3],
    draining_since: Option<Instant>,
    next_tick: Instant,
    next_housekeeping: Instant,
    counters: ReactorCounters,
    scratch_frame: BytesMut,
    /// Where every connection's reads land before the bytes read are copied on.
    read_scratch: Box<[u8; connection::READ_CHUNK_BYTES]>,
}

/// The limits a connection's frames are decoded with. A trusted peer's frames carry what
/// its own order accepted (entries, shard pieces, snapshot chunks) under its own limits,
/// so they are decoded at the format's maxima (`Limits::LOG_COMMANDS`), never at this
/// radiant's configured ones: those bound only what clients (and peers not yet trusted)
/// may send here. A radiant configured with smaller limits than its order's herald used
/// to refuse the herald's larger appends forever (issue 12, finding 3); now every
/// radiant carries every entry its order may hold, whatever its own limits.
fn frame_limits(connection: &Connection, configured: Limits) -> Limits {
    match connection.trust {
        PeerTrust::Trusted(_) => Limits::LOG_COMMANDS,
        PeerTrust::NotAPeer | PeerTrust::Handshaking { .. } => configured,
    }
}

/// Binds a listening socket with SO_REUSEADDR and a deep backlog.
pub fn bind_listener(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(crate::limits::LISTEN_BACKLOG)?;
    Ok(socket.into())
}

fn tune_stream(stream: &TcpStream) {
    // Best effort: a socket without these options still works, just less well.
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

impl Reactor {
    /// Registers the listeners and creates the reactor's inbox.
    pub fn new(
        options: ReactorOptions,
        client_listener: std::net::TcpListener,
        peer_listener: std::net::TcpListener,
        state: Sender<StateEvent>,
    ) -> io::Result<(Reactor, ReactorSender<ReactorEvent>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER_TOKEN)?);
        let (sender, inbox) = reactor_channel(REACTOR_INBOX_CAPACITY, waker);
        client_listener.set_nonblocking(true)?;
        peer_listener.set_nonblocking(true)?;
        let mut client_listener = TcpListener::from_std(client_listener);
        let mut peer_listener = TcpListener::from_std(peer_listener);
        poll.registry().register(
            &mut client_listener,
            CLIENT_LISTENER_TOKEN,
            Interest::READABLE,
        )?;
        poll.registry().register(&mut peer_listener, PEER_LISTENER_TOKEN, Interest::READABLE)?;
        let now = Instant::now();
        let reactor = Reactor {
            poll,
            connections: Slab::new(
                options.max_connections + options.max_peer_connections + MAX_PEER_LINKS,
            ),
            prng: Prng::new(options.seed),
            next_tick: now + options.tick,
            options,
            client_listener: Some(client_listener),
            peer_listener: Some(peer_listener),
            resp_listener: None,
            resp_routes: None,
            inbox,
            state,
            links: HashMap::new(),
            client_connections: 0,
            inbound_peer_connections: 0,
            revisit: Vec::new(),
            dirty: Vec::new(),
            blocked: Vec::new(),
            waiting_for_memory: Vec::new(),
            connection_bytes: 0,
            accept_pending: [false; 3],
            draining_since: None,
            next_housekeeping: now + REACTOR_HOUSEKEEPING_INTERVAL,
            counters: ReactorCounters::default(),
            scratch_frame: BytesMut::new(),
            read_scratch: Box::new([0; connection::READ_CHUNK_BYTES]),
        };
        Ok((reactor, sender))
    }

    /// Serves Redis clients (RESP) on `listener` too, routing by `routes`.
    pub fn with_resp(
        mut self,
        listener: std::net::TcpListener,
        routes: RespRoutes,
    ) -> io::Result<Reactor> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        self.poll.registry().register(&mut listener, RESP_LISTENER_TOKEN, Interest::READABLE)?;
        self.resp_listener = Some(listener);
        self.resp_routes = Some(routes);
        Ok(self)
    }

    /// Runs turns until a shutdown has drained. Returns the counters.
    pub fn run(mut self) -> io::Result<ReactorCounters> {
        let mut events = Events::with_capacity(MAX_EVENTS);
        let mut inbox = Vec::new();
        loop {
            let timeout = self.poll_timeout(Instant::now());
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
            let now = Instant::now();
            for event in events.iter() {
                self.on_event(event, now);
            }
            self.accept_pending_connections(now);
            self.retry_blocked(now);
            self.resume_waiting_for_memory();
            self.revisit_connections(now);
            self.inbox.drain(REACTOR_INBOX_CAPACITY, &mut inbox);
            for event in inbox.drain(..) {
                self.on_reactor_event(event, now);
            }
            self.flush_dirty(now);
            self.run_timers(now);
            if self.drained(now) {
                info!(counters = ?self.counters, "reactor: drained, exiting");
                return Ok(self.counters);
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        let busy = !self.revisit.is_empty()
            || self.accept_pending.iter().any(|&pending| pending)
            || !self.inbox.is_empty();
        if busy {
            return Duration::ZERO;
        }
        if !self.blocked.is_empty() || !self.waiting_for_memory.is_empty() {
            // Room comes back from another thread, which does not wake the poll.
            return Duration::from_millis(1);
        }
        let mut deadline = self.next_tick.min(self.next_housekeeping);
        for link in self.links.values() {
            if let LinkState::Idle { dial_at } = link.state {
                deadline = deadline.min(dial_at);
            }
        }
        deadline.saturating_duration_since(now)
    }

    fn on_event(&mut self, event: &mio::event::Event, now: Instant) {
        match event.token() {
            WAKER_TOKEN => {}
            CLIENT_LISTENER_TOKEN => self.accept_pending[0] = true,
            PEER_LISTENER_TOKEN => self.accept_pending[1] = true,
            RESP_LISTENER_TOKEN => self.accept_pending[2] = true,
            token => {
                let id = id_of(token);
                if event.is_writable() {
                    self.on_writable(id, now);
                }
                if event.is_read_closed() || event.is_error() {
                    if let Some(connection) = self.connections.get_mut(id) {
                        connection.peer_closed = true;
                    }
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read_and_process(id, now);
                }
            }
        }
    }

    // ===== accepting =====

    fn accept_pending_connections(&mut self, now: Instant) {
        for (slot, side) in [(0, Side::Client), (1, Side::PeerInbound), (2, Side::Resp)] {
            if self.accept_pending[slot] {
                self.accept_pending[slot] = self.accept_some(side, now);
            }
        }
    }

    /// Accepts up to `MAX_ACCEPTS_PER_TURN`; true if the listener may hold more.
    fn accept_some(&mut self, side: Side, now: Instant) -> bool {
        for _ in 0..MAX_ACCEPTS_PER_TURN {
            let listener = match side {
                Side::Client => self.client_listener.as_ref(),
                Side::Resp => self.resp_listener.as_ref(),
                _ => self.peer_listener.as_ref(),
            };
            let Some(listener) = listener else {
                return false;
            };
            match listener.accept() {
                Ok((stream, address)) => self.on_accepted(stream, address, side, now),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // EMFILE and friends: back off to the next turn instead of spinning.
                    warn!(%error, "reactor: accept failed");
                    return false;
                }
            }
        }
        true
    }

    fn on_accepted(
        &mut self,
        mut stream: TcpStream,
        address: SocketAddr,
        side: Side,
        now: Instant,
    ) {
        tune_stream(&stream);
        if side.is_peer() {
            if self.inbound_peer_connections >= self.options.max_peer_connections {
                SecurityCounters::add(&self.options.security.peer_connections_refused);
                warn!(
                    peer = %address,
                    limit = self.options.max_peer_connections,
                    "reactor: refusing a peer connection at max_peer_connections"
                );
                return;
            }
        } else if self.client_connections >= self.options.max_connections {
            self.counters.refused_at_limit += 1;
            let reason = format!(
                "too many connections (max_connections = {}); retry later or raise the limit",
                self.options.max_connections
            );
            warn!(peer = %address, "reactor: refusing connection at max_connections");
            let message = Message::Error(ErrorResponse::Unavailable { reason });
            self.scratch_frame.clear();
            message.encode(0, &mut self.scratch_frame);
            // One best-effort write of a small frame to a fresh socket, then close.
            let _ = io::Write::write(&mut stream, &self.scratch_frame);
            return;
        }
        let trust = match side {
            Side::Client | Side::Resp => PeerTrust::NotAPeer,
            _ => match self.accept_handshake(now) {
                Some(trust) => trust,
                None => return,
            },
        };
        let tls = match &self.options.tls {
            None => None,
            Some(tls) => {
                let config = if side.is_peer() { &tls.peers_accept } else { &tls.clients };
                match rustls::ServerConnection::new(Arc::clone(config)) {
                    Ok(session) => Some(rustls::Connection::Server(session)),
                    Err(error) => {
                        warn!(peer = %address, %error, "reactor: cannot start TLS; closing");
                        return;
                    }
                }
            }
        };
        let make = |_| {
            let mut connection = Connection::new(stream, side, address, now);
            connection.trust = trust;
            if side == Side::Resp {
                connection.resp = Some(Box::default());
            }
            match tls {
                Some(tls) => connection.with_tls(tls),
                None => connection,
            }
        };
        let Some(id) = self.connections.insert_with(make) else {
            return;
        };
        self.count_connection(side, true);
        self.counters.accepted += 1;
        debug!(peer = %address, ?side, ?id, "reactor: accepted");
        if let Err(error) = self.register(id, Interest::READABLE) {
            warn!(%error, peer = %address, "reactor: cannot register connection");
            self.close(id, "registration failed");
            return;
        }
        // Data may have arrived before registration; edge-triggered polls would not say.
        self.revisit.push(id);
    }
}

// ===== reading and routing =====

impl Reactor {
    fn register(&mut self, id: ConnectionId, interest: Interest) -> io::Result<()> {
        let registry: &Registry = self.poll.registry();
        let connection = self.connections.get_mut(id).expect("register: live connection");
        registry.register(&mut connection.stream, token_of(id), interest)?;
        connection.registered = interest;
        Ok(())
    }

    fn read_and_process(&mut self, id: ConnectionId, now: Instant) {
        if self.link_connecting(id) {
            return;
        }
        if self.is_paused(id) {
            return;
        }
        let connection = self.connections.get_mut(id).expect("checked above");
        let limits = frame_limits(connection, self.options.limits);
        let mut max_buffer = limits.max_frame_bytes as usize + FRAME_HEADER_BYTES;
        if !connection.side.is_peer() {
            // A client never takes the process past its budget: it reads at most the room,
            // or, with nothing buffered, a small request's worth (so `status` and small
            // requests still go through while large partial frames hold the budget).
            let mut room = self.options.memory.room_bytes();
            if room == 0 && connection.read_buffer.is_empty() {
                room = MEMORY_HEADROOM_BYTES_PER_CONNECTION;
            }
            if room == 0 {
                if connection.peer_closed {
                    // Its unread bytes can wait no longer, and it must not hold the budget.
                    self.close(id, "peer closed the connection while reads paused for memory");
                    return;
                }
                self.options.memory.count_paused_read();
                self.waiting_for_memory.push(id);
                self.process_frames(id, now);
                self.account(id);
                return;
            }
            max_buffer = max_buffer.min(connection.read_buffer.len().saturating_add(room));
        }
        let outcome =
            connection.read_some(&mut self.read_scratch, max_buffer, MAX_READ_BYTES_PER_TURN);
        match outcome {
            Ok(ReadOutcome::Closed) => {
                self.process_frames(id, now);
                self.close(id, "peer closed the connection");
                return;
            }
            Ok(ReadOutcome::BudgetSpent) => self.revisit.push(id),
            Ok(ReadOutcome::Drained) => {}
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                // A TLS failure (a certificate from another CA, none at all, a bad record).
                let peer = connection.peer_address;
                warn!(%peer, %error, "reactor: closing a connection whose TLS failed");
                self.close(id, "TLS failed");
                return;
            }
            Err(error) => {
                debug!(%error, ?id, "reactor: read failed");
                self.close(id, "read error");
                return;
            }
        }
        if connection.has_pending_writes() {
            // TLS may owe the other side handshake records after reading.
            self.dirty.push(id);
        }
        self.process_frames(id, now);
        self.account(id);
    }

    /// Brings the budget up to date with connection `id`'s buffers after they changed.
    fn account(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let bytes = connection.read_buffer.len() + connection.pending_write_bytes();
        if bytes != connection.accounted_bytes {
            self.connection_bytes = self.connection_bytes - connection.accounted_bytes + bytes;
            connection.accounted_bytes = bytes;
            self.options.memory.set_connection_bytes(self.connection_bytes);
        }
    }

    /// Connections that paused for memory read again once the budget has room.
    fn resume_waiting_for_memory(&mut self) {
        if !self.waiting_for_memory.is_empty() && self.options.memory.room_bytes() > 0 {
            self.revisit.append(&mut self.waiting_for_memory);
        }
    }

    /// A connection reads only while it is not paused: not closing, not waiting on the
    /// state thread, under its in-flight limit, under the write high-water mark, and, for
    /// a client, not shutting down. Peers keep reading while the radiant drains: the
    /// acknowledgements that commit the writes still owed an answer arrive there.
    fn is_paused(&mut self, id: ConnectionId) -> bool {
        let blocked = self.blocked.iter().any(|(blocked, _)| *blocked == id);
        let Some(connection) = self.connections.get_mut(id) else {
            return true;
        };
        let draining_client = self.draining_since.is_some() && !connection.side.is_peer();
        blocked
            || connection.closing
            || draining_client
            || connection.inflight >= self.options.max_inflight_per_connection
            || connection.pending_write_bytes() > self.options.write_high_water_bytes
    }

    /// Decodes and routes up to `MAX_FRAMES_PER_TURN` buffered frames.
    fn process_frames(&mut self, id: ConnectionId, now: Instant) {
        if self.connections.get_mut(id).is_some_and(|connection| connection.side == Side::Resp) {
            return self.process_resp_requests(id, now);
        }
        for _ in 0..MAX_FRAMES_PER_TURN {
            if self.is_paused(id) {
                return;
            }
            let Some(connection) = self.connections.get_mut(id) else {
                return;
            };
            let max_frame_bytes = frame_limits(connection, self.options.limits).max_frame_bytes;
            match decode_frame(&mut connection.read_buffer, max_frame_bytes) {
                Ok(None) => return,
                Ok(Some(frame)) => {
                    connection.last_activity = now;
                    self.on_frame(id, frame, now);
                }
                Err(DecodeError::UnknownKind { kind, correlation_id }) => {
                    // The frame's length was sound, so it was skipped: answer and go on.
                    let version = radiant_protocol::PROTOCOL_VERSION;
                    let reason = format!(
                        "unknown message kind 0x{kind:02x}; this radiant speaks protocol \
                         version {version}"
                    );
                    self.reply_error(id, correlation_id, ErrorResponse::BadRequest { reason }, now);
                }
                Err(error) => {
                    // Framing itself is broken; nothing after this point can be trusted.
                    self.counters.closed_for_protocol_error += 1;
                    let peer = connection.peer_address;
                    warn!(%peer, %error, "reactor: closing connection after a framing error");
                    let reason = format!("{error}; closing the connection");
                    self.reply_error(id, 0, ErrorResponse::BadRequest { reason }, now);
                    if let Some(connection) = self.connections.get_mut(id) {
                        connection.closing = true;
                        connection.read_buffer.clear();
                    }
                    return;
                }
            }
        }
        // Frames may remain buffered: come back next turn.
        self.revisit.push(id);
    }

    fn on_frame(&mut self, id: ConnectionId, frame: Frame, now: Instant) {
        let correlation_id = frame.correlation_id;
        let frame_bytes = FRAME_HEADER_BYTES + frame.payload.len();
        let (side, limits) = match self.connections.get_mut(id) {
            Some(connection) => (connection.side, frame_limits(connection, self.options.limits)),
            None => return,
        };
        let message = match Message::decode(frame, &limits) {
            Ok(message) => message,
            Err(error) => {
                let reason = error.to_string();
                self.reply_error(id, correlation_id, ErrorResponse::BadRequest { reason }, now);
                return;
            }
        };
        match (side, message) {
            (_, Message::Request(ClientRequest::Ping)) => {
                let pong = ClientResponse::Pong { member_id: self.options.member_id };
                self.queue_message(id, correlation_id, &Message::Response(pong), now);
            }
            (Side::Client, Message::Request(request)) => {
                self.on_client_request(id, correlation_id, request, frame_bytes, now);
            }
            (Side::PeerInbound | Side::PeerOutbound(_), message) => {
                self.on_peer_frame(id, correlation_id, message, frame_bytes, now);
            }
            (Side::Resp, _) => {
                unreachable!("RESP connections are decoded by process_resp_requests")
            }
            (Side::Client, other) => {
                let reason = format!(
                    "a {:?} message is not accepted on this port; send client requests to the \
                     client port",
                    other.kind()
                );
                self.reply_error(id, correlation_id, ErrorResponse::BadRequest { reason }, now);
            }
        }
    }

    fn hand_to_state(&mut self, id: ConnectionId, event: StateEvent) {
        if let StateEvent::Client { reply_to, request, .. } = &event {
            if let Some(connection) = self.connections.get_mut(id) {
                let op = super::metrics::RequestOp::of(request);
                connection.started.push_back((reply_to.correlation_id, op, Instant::now()));
            }
        }
        match self.state.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => self.blocked.push((id, event)),
            Err(TrySendError::Disconnected(_)) => {
                // The state thread is gone only during shutdown; the drain closes this.
                debug!(?id, "reactor: state thread gone, request dropped");
            }
        }
    }

    fn retry_blocked(&mut self, now: Instant) {
        let blocked = std::mem::take(&mut self.blocked);
        let mut still_blocked = Vec::new();
        for (id, event) in blocked {
            if !still_blocked.is_empty() {
                still_blocked.push((id, event));
                continue;
            }
            match self.state.try_send(event) {
                Ok(()) => self.revisit.push(id),
                Err(TrySendError::Full(event)) => still_blocked.push((id, event)),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        self.blocked = still_blocked;
        let _ = now;
    }

    fn revisit_connections(&mut self, now: Instant) {
        let mut revisit = std::mem::take(&mut self.revisit);
        revisit.sort_unstable_by_key(|id| id.0);
        revisit.dedup();
        for id in revisit {
            self.read_and_process(id, now);
        }
    }
}

// ===== writing =====

impl Reactor {
    fn on_reactor_event(&mut self, event: ReactorEvent, now: Instant) {
        match event {
            ReactorEvent::Reply { reply_to, message } => self.on_reply(reply_to, message, now),
            ReactorEvent::LinkPeer(address) => self.ensure_link(address, now),
            ReactorEvent::SendPeer { address, frame } => self.send_on_link(address, frame, now),
            ReactorEvent::Shutdown => self.begin_drain(now),
        }
    }

    fn on_reply(&mut self, reply_to: ReplyTo, message: Message, now: Instant) {
        let Some(connection) = self.connections.get_mut(reply_to.connection) else {
            self.counters.replies_to_closed_connections += 1;
            return;
        };
        assert!(connection.inflight > 0, "reply to {:?} with nothing in flight", reply_to);
        connection.inflight -= 1;
        // Usually the oldest: answers come back in order but for reads and writes of
        // different shards overtaking each other.
        let started = &mut connection.started;
        if let Some(at) = started.iter().position(|(id, ..)| *id == reply_to.correlation_id) {
            if let Some((_, op, since)) = started.remove(at) {
                self.options.metrics.answered(op, &message, now.saturating_duration_since(since));
            }
        }
        let was_paused_by_inflight =
            connection.inflight + 1 >= self.options.max_inflight_per_connection;
        let delete_answer =
            matches!(message, Message::Response(ClientResponse::DeleteResult { .. }));
        let resp = connection.side == Side::Resp;
        if delete_answer && self.options.drop_delete_answers > 0 {
            self.options.drop_delete_answers -= 1;
            warn!(?reply_to, "reactor: test fault: dropped the answer to an applied delete");
        } else if resp {
            self.on_resp_answer(reply_to, message, now);
        } else {
            self.queue_message(reply_to.connection, reply_to.correlation_id, &message, now);
        }
        if was_paused_by_inflight {
            self.revisit.push(reply_to.connection);
        }
    }

    fn reply_error(
        &mut self,
        id: ConnectionId,
        correlation_id: u64,
        error: ErrorResponse,
        now: Instant,
    ) {
        self.queue_message(id, correlation_id, &Message::Error(error), now);
    }

    /// Encodes `message` onto the connection's write queue, enforcing the hard cap.
    fn queue_message(
        &mut self,
        id: ConnectionId,
        correlation_id: u64,
        message: &Message,
        now: Instant,
    ) {
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        message.encode(correlation_id, connection.write_buffer_mut(now));
        self.after_queue(id);
        self.account(id);
    }

    fn after_queue(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let pending = connection.pending_write_bytes();
        if pending > self.options.write_max_bytes {
            self.counters.closed_for_slow_reader += 1;
            warn!(
                peer = %connection.peer_address,
                pending_bytes = pending,
                limit = self.options.write_max_bytes,
                "reactor: closing a connection that does not read its replies"
            );
            self.close(id, "write queue over connection_write_max_bytes");
            return;
        }
        self.dirty.push(id);
    }

    fn flush_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable_by_key(|id| id.0);
        dirty.dedup();
        for id in dirty.drain(..) {
            self.flush(id, now);
        }
        self.dirty = dirty;
    }

    fn on_writable(&mut self, id: ConnectionId, now: Instant) {
        if self.link_connecting(id) {
            self.on_link_connect_result(id, now);
            return;
        }
        self.flush(id, now);
    }

    fn flush(&mut self, id: ConnectionId, now: Instant) {
        let high_water = self.options.write_high_water_bytes;
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let was_over_high_water = connection.pending_write_bytes() > high_water;
        if let Err(error) = connection.flush(now) {
            debug!(%error, ?id, "reactor: write failed");
            self.close(id, "write error");
            return;
        }
        let pending = connection.pending_write_bytes();
        if !connection.has_pending_writes() && connection.closing {
            self.close(id, "closed after a protocol error");
            return;
        }
        let wanted = connection.wanted_interest();
        if wanted != connection.registered {
            let registry: &Registry = self.poll.registry();
            if registry.reregister(&mut connection.stream, token_of(id), wanted).is_err() {
                self.close(id, "reregister failed");
                return;
            }
            connection.registered = wanted;
        }
        if was_over_high_water && pending <= high_water {
            self.revisit.push(id);
        }
        self.account(id);
    }

    fn close(&mut self, id: ConnectionId, why: &str) {
        let Some(mut connection) = self.connections.remove(id) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut connection.stream);
        self.blocked.retain(|(blocked, _)| *blocked != id);
        self.waiting_for_memory.retain(|waiting| *waiting != id);
        self.connection_bytes -= connection.accounted_bytes;
        self.options.memory.set_connection_bytes(self.connection_bytes);
        debug!(peer = %connection.peer_address, ?id, why, "reactor: closed");
        self.count_connection(connection.side, false);
        if let Side::PeerOutbound(address) = connection.side {
            if let Some(link) = self.links.get_mut(&address) {
                if link.connection() == Some(id) {
                    let delay = link.on_failure(Instant::now(), &mut self.prng);
                    info!(peer = %address, ?delay, why, "reactor: peer link down, redialling");
                }
            }
        }
    }

    /// Keeps the per-pool connection counts as connections open and close.
    fn count_connection(&mut self, side: Side, opened: bool) {
        let count = match side {
            Side::Client | Side::Resp => &mut self.client_connections,
            Side::PeerInbound => &mut self.inbound_peer_connections,
            Side::PeerOutbound(_) => return,
        };
        if opened {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
        }
    }
}

// ===== timers, peer links and shutdown =====

impl Reactor {
    fn run_timers(&mut self, now: Instant) {
        if now >= self.next_tick {
            // Ticks coalesce: if the state thread is behind, a skipped tick is harmless.
            let _ = self.state.try_send(StateEvent::Tick);
            self.next_tick = now + self.options.tick;
            let (clients, peers) = (self.client_connections, self.inbound_peer_connections);
            self.options.metrics.publish(&self.counters, clients, peers);
        }
        self.dial_due_links(now);
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + REACTOR_HOUSEKEEPING_INTERVAL;
            self.close_idle_and_stalled(now);
            self.expire_idle_links(now);
        }
    }

    fn close_idle_and_stalled(&mut self, now: Instant) {
        for id in self.connections.ids() {
            let Some(connection) = self.connections.get_mut(id) else {
                continue;
            };
            let stalled = connection
                .write_stalled_for(now)
                .is_some_and(|stall| stall >= self.options.write_stall_timeout);
            let quiet_for = now.saturating_duration_since(connection.last_activity);
            let idle = !connection.side.is_peer()
                && connection.inflight == 0
                && !connection.has_pending_writes()
                && quiet_for >= self.options.client_idle_timeout;
            let handshake_overdue = matches!(
                connection.trust,
                PeerTrust::Handshaking { deadline, .. } if now >= deadline
            );
            let idle_peer = connection.side == Side::PeerInbound
                && quiet_for >= crate::limits::PEER_INBOUND_IDLE_TIMEOUT;
            if handshake_overdue {
                SecurityCounters::add(&self.options.security.handshake_timeouts);
                let peer = connection.peer_address;
                warn!(%peer, "reactor: closing a peer connection whose link handshake timed out");
                self.close(id, "link handshake not finished within PEER_HANDSHAKE_TIMEOUT");
            } else if idle_peer {
                self.close(id, "peer connection idle past PEER_INBOUND_IDLE_TIMEOUT");
            } else if stalled {
                self.counters.closed_for_slow_reader += 1;
                let peer = connection.peer_address;
                warn!(%peer, "reactor: closing a connection whose replies stalled");
                self.close(id, "write stalled past write_stall_timeout_ms");
            } else if idle {
                self.close(id, "idle past client_idle_timeout_ms");
            }
        }
    }

    fn begin_drain(&mut self, now: Instant) {
        if self.draining_since.is_some() {
            return;
        }
        let outstanding: u32 = self
            .connections
            .ids()
            .into_iter()
            .filter_map(|id| self.connections.get_mut(id).map(|connection| connection.inflight))
            .sum();
        info!(
            outstanding,
            "reactor: shutting down: no longer accepting, delivering outstanding replies \
             (peer links stay up until then)"
        );
        self.draining_since = Some(now);
        let listeners =
            [self.client_listener.take(), self.peer_listener.take(), self.resp_listener.take()];
        for mut listener in listeners.into_iter().flatten() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        // Requests not yet handed over were never acknowledged: drop them.
        self.blocked.clear();
        self.close_drained_clients();
    }

    /// Closes every client connection with nothing owed; true if some still wait.
    fn close_drained_clients(&mut self) -> bool {
        let mut outstanding = false;
        for id in self.connections.ids() {
            let Some(connection) = self.connections.get_mut(id) else {
                continue;
            };
            if connection.side.is_peer() {
                continue;
            }
            if connection.inflight == 0 && !connection.has_pending_writes() {
                self.close(id, "shutting down");
            } else {
                outstanding = true;
            }
        }
        outstanding
    }

    /// Draining is over when every reply to a client was delivered, or the drain timed
    /// out; the peer links close with the reactor.
    fn drained(&mut self, now: Instant) -> bool {
        let Some(since) = self.draining_since else {
            return false;
        };
        let outstanding = self.close_drained_clients();
        let timed_out = now.saturating_duration_since(since) >= SHUTDOWN_DRAIN_TIMEOUT;
        if outstanding && timed_out {
            warn!("reactor: shutdown drain timed out with replies outstanding");
        }
        !outstanding || timed_out
    }

    /// Live connections (for tests and status).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }
}
