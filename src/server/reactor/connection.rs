//! One TCP connection's buffers and limits: partial-frame reads into a buffer capped
//! at one maximal frame, a write queue with a high-water mark (stop reading) and a
//! hard cap (close), and the timestamps the idle and stall timeouts need. With TLS the
//! buffers hold plaintext and a rustls session sits between them and the socket,
//! non-blocking like the rest (no thread per connection).
//!
//! It must not decide what frames mean: the reactor decodes and routes them.

use std::io::{self, Read, Write};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::Interest;

use crate::server::link_auth::{LinkHandshake, TrustedPeer};

/// Bytes read per `read(2)` call; large enough for a burst of small requests.
pub(crate) const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Which listener a connection came from, or that we dialled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// A client on the client port.
    Client,
    /// A Redis client on the RESP port.
    Resp,
    /// A peer radiant that connected to our peer port.
    PeerInbound,
    /// A peer link we dialled to this peer address.
    PeerOutbound(std::net::SocketAddr),
}

impl Side {
    pub(crate) fn is_peer(self) -> bool {
        !matches!(self, Side::Client | Side::Resp)
    }
}

/// What a client connection has proved (`Authenticate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    /// No token yet.
    Anonymous,
    /// The client token: data requests.
    Client,
    /// The admin token: data and admin requests.
    Admin,
}

/// Where a peer connection's handshake stands; nothing from it reaches the core before
/// it is `Trusted`.
pub(crate) enum PeerTrust {
    /// A client connection: not a peer link.
    NotAPeer,
    /// The handshake is under way and must finish by `deadline`.
    Handshaking { handshake: Box<LinkHandshake>, deadline: Instant },
    /// Both sides proved the secret.
    Trusted(TrustedPeer),
}

/// What a read turn found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Read until the socket had nothing more.
    Drained,
    /// Stopped at the per-turn budget; the socket may hold more.
    BudgetSpent,
    /// The peer closed its side.
    Closed,
}

pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) side: Side,
    pub(crate) peer_address: std::net::SocketAddr,
    pub(crate) read_buffer: BytesMut,
    write_buffer: BytesMut,
    /// Requests handed to the state thread whose replies have not been queued yet.
    pub(crate) inflight: u32,
    /// Of those handed on, each one's correlation id, operation and when (for metrics).
    pub(crate) started:
        std::collections::VecDeque<(u64, crate::server::metrics::RequestOp, Instant)>,
    /// Close once the write buffer is flushed (after a fatal protocol error).
    pub(crate) closing: bool,
    /// Last time a frame arrived or a reply was queued.
    pub(crate) last_activity: Instant,
    /// When the write buffer last made progress, while it is non-empty.
    write_progress_at: Option<Instant>,
    /// The interest currently registered with the poll.
    pub(crate) registered: Interest,
    /// A client connection's proved access.
    pub(crate) access: Access,
    /// `Authenticate` requests this connection failed.
    pub(crate) failed_authentications: u32,
    /// A peer connection's handshake.
    pub(crate) trust: PeerTrust,
    /// The TLS session, when the radiant runs TLS.
    tls: Option<Box<rustls::Connection>>,
    /// Buffered bytes last counted against the memory budget (`Reactor::account`).
    pub(crate) accounted_bytes: usize,
    /// The poll reported the other side closed or failed (edge-triggered: said once).
    pub(crate) peer_closed: bool,
    /// A RESP connection's protocol state.
    pub(crate) resp: Option<Box<super::resp::RespSession>>,
}

impl Connection {
    pub(crate) fn new(
        stream: TcpStream,
        side: Side,
        peer_address: std::net::SocketAddr,
        now: Instant,
    ) -> Self {
        Connection {
            stream,
            side,
            peer_address,
            read_buffer: BytesMut::with_capacity(4096),
            write_buffer: BytesMut::new(),
            inflight: 0,
            started: std::collections::VecDeque::new(),
            closing: false,
            last_activity: now,
            write_progress_at: None,
            registered: Interest::READABLE,
            access: Access::Anonymous,
            failed_authentications: 0,
            trust: PeerTrust::NotAPeer,
            tls: None,
            accounted_bytes: 0,
            peer_closed: false,
            resp: None,
        }
    }

    /// Runs the connection through `tls` (a server session for accepted connections, a
    /// client session for dialled links).
    pub(crate) fn with_tls(mut self, tls: rustls::Connection) -> Self {
        self.tls = Some(Box::new(tls));
        self
    }

    /// Whether TLS has records to send (handshake messages, alerts) or plaintext waits.
    pub(crate) fn has_pending_writes(&self) -> bool {
        !self.write_buffer.is_empty() || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// The peer address the other radiant proved itself under, once trusted.
    pub(crate) fn trusted_peer(&self) -> Option<&str> {
        match &self.trust {
            PeerTrust::Trusted(peer) => Some(&peer.address),
            PeerTrust::NotAPeer | PeerTrust::Handshaking { .. } => None,
        }
    }

    /// Reads into the read buffer until the socket would block, the buffer holds
    /// `max_buffer_bytes`, or `budget_bytes` were read this turn. Bytes land in
    /// `scratch` (the reactor's, zeroed once) and only those read are copied on: growing
    /// the buffer by a zero-filled chunk for every read cost a 64 KiB memset per
    /// readable event, 80% of a radiant's instructions under small puts.
    pub(crate) fn read_some(
        &mut self,
        scratch: &mut [u8; READ_CHUNK_BYTES],
        max_buffer_bytes: usize,
        budget_bytes: usize,
    ) -> io::Result<ReadOutcome> {
        if self.tls.is_some() {
            return self.read_some_tls(scratch, max_buffer_bytes, budget_bytes);
        }
        let mut read_this_turn = 0;
        loop {
            let room = max_buffer_bytes.saturating_sub(self.read_buffer.len());
            if room == 0 || read_this_turn >= budget_bytes {
                return Ok(ReadOutcome::BudgetSpent);
            }
            let chunk = &mut scratch[..room.min(READ_CHUNK_BYTES)];
            match self.stream.read(chunk) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(read) => {
                    self.read_buffer.extend_from_slice(&chunk[..read]);
                    read_this_turn += read;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::Drained)
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// `read_some` through TLS: plaintext rustls already holds first, then records from
    /// the socket, until the socket would block, the buffer is full or the budget spent.
    fn read_some_tls(
        &mut self,
        scratch: &mut [u8; READ_CHUNK_BYTES],
        max_buffer_bytes: usize,
        budget_bytes: usize,
    ) -> io::Result<ReadOutcome> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(ReadOutcome::Drained);
        };
        let mut read_this_turn = 0;
        let mut socket_drained = false;
        let mut socket_closed = false;
        loop {
            loop {
                let room = max_buffer_bytes.saturating_sub(self.read_buffer.len());
                if room == 0 || read_this_turn >= budget_bytes {
                    return Ok(ReadOutcome::BudgetSpent);
                }
                let chunk = &mut scratch[..room.min(READ_CHUNK_BYTES)];
                match tls.reader().read(chunk) {
                    // A close_notify, or the socket ended without one: either way, closed.
                    Ok(0) => return Ok(ReadOutcome::Closed),
                    Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                        return Ok(ReadOutcome::Closed)
                    }
                    Ok(read) => {
                        self.read_buffer.extend_from_slice(&chunk[..read]);
                        read_this_turn += read;
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) => return Err(error),
                }
            }
            if socket_closed {
                return Ok(ReadOutcome::Closed);
            }
            if socket_drained {
                return Ok(ReadOutcome::Drained);
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => socket_closed = true,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => socket_drained = true,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
            if let Err(error) = tls.process_new_packets() {
                // Best effort: the alert tells the other side why before the close.
                let _ = tls.write_tls(&mut self.stream);
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {error}")));
            }
        }
    }

    /// Queues an encoded frame for writing. The caller enforces the caps.
    pub(crate) fn queue(&mut self, frame: &[u8], now: Instant) {
        if self.write_buffer.is_empty() {
            self.write_progress_at = Some(now);
        }
        self.write_buffer.extend_from_slice(frame);
        self.last_activity = now;
    }

    /// The buffer new frames are encoded into directly (saves a copy).
    pub(crate) fn write_buffer_mut(&mut self, now: Instant) -> &mut BytesMut {
        if self.write_buffer.is_empty() {
            self.write_progress_at = Some(now);
        }
        self.last_activity = now;
        &mut self.write_buffer
    }

    pub(crate) fn pending_write_bytes(&self) -> usize {
        self.write_buffer.len()
    }

    /// Writes queued bytes until the socket would block or the queue is empty.
    pub(crate) fn flush(&mut self, now: Instant) -> io::Result<()> {
        if self.tls.is_some() {
            self.flush_tls(now)?;
        }
        while self.tls.is_none() && !self.write_buffer.is_empty() {
            match self.stream.write(&self.write_buffer) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    self.write_buffer.advance(written);
                    self.write_progress_at = Some(now);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        if !self.has_pending_writes() {
            self.write_progress_at = None;
            // Give back the memory of a large reply once it is sent.
            if self.write_buffer.capacity() > READ_CHUNK_BYTES * 4 {
                self.write_buffer = BytesMut::new();
            }
        }
        Ok(())
    }

    /// `flush` through TLS: plaintext moves into rustls as far as its buffer takes it,
    /// records move to the socket until it would block.
    fn flush_tls(&mut self, now: Instant) -> io::Result<()> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        loop {
            if !self.write_buffer.is_empty() {
                let moved = tls.writer().write(&self.write_buffer)?;
                self.write_buffer.advance(moved);
            }
            if !tls.wants_write() {
                // Nothing to send: all written, or the handshake waits for the other side.
                return Ok(());
            }
            match tls.write_tls(&mut self.stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => self.write_progress_at = Some(now),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// How long pending replies have made no progress, if any are pending.
    pub(crate) fn write_stalled_for(&self, now: Instant) -> Option<std::time::Duration> {
        self.write_progress_at.map(|since| now.saturating_duration_since(since))
    }

    /// The interest this connection needs: writable only while bytes are pending
    /// (Pelikan's `Session::interest`), readable always, so a peer's close is seen.
    pub(crate) fn wanted_interest(&self) -> Interest {
        if !self.has_pending_writes() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        }
    }
}
