//! The reactor's peer side: dialling and keeping links, the link handshake on every
//! peer connection (both the ones it dials and the ones it accepts), and the rule that
//! nothing from a peer connection reaches the state thread before the handshake has
//! trusted it.
//!
//! The handshake's logic is `server::link_auth`; this file only moves its messages.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use mio::Interest;
use radiant_protocol::{LinkMessage, Message};
use tracing::{debug, info, warn};

use super::connection::{Connection, PeerTrust, Side};
use super::peers::{LinkState, PeerLink};
use super::{tune_stream, Reactor, SecurityCounters};
use crate::core::ConnectionId;
use crate::limits::{MAX_PEER_LINKS, PEER_HANDSHAKE_TIMEOUT, PEER_LINK_IDLE_EXPIRY};
use crate::server::link_auth::{fresh_nonce, LinkHandshake, LinkRefusal, LinkStep};
use crate::server::state_thread::StateEvent;

impl Reactor {
    /// The handshake an accepted peer connection starts in; `None` when no nonce could
    /// be drawn (the connection is then not taken).
    pub(super) fn accept_handshake(&mut self, now: Instant) -> Option<PeerTrust> {
        let nonce = match fresh_nonce() {
            Ok(nonce) => nonce,
            Err(error) => {
                warn!(%error, "reactor: refusing a peer connection");
                return None;
            }
        };
        let cluster = *self.options.cluster.lock();
        let trust = self.options.link_trust.clone();
        let handshake =
            LinkHandshake::accept(trust, nonce, self.options.peer_address.clone(), cluster);
        let deadline = now + PEER_HANDSHAKE_TIMEOUT;
        Some(PeerTrust::Handshaking { handshake: Box::new(handshake), deadline })
    }

    /// Keeps a link to `address` (dialled at once if new). Past `MAX_PEER_LINKS` the
    /// link used longest ago is dropped first.
    pub(super) fn ensure_link(&mut self, address: SocketAddr, now: Instant) {
        if self.links.contains_key(&address) {
            return;
        }
        if self.links.len() >= MAX_PEER_LINKS {
            let oldest = self.links.values().min_by_key(|link| link.last_used);
            if let Some(oldest) = oldest.map(|link| link.address) {
                warn!(peer = %oldest, "reactor: MAX_PEER_LINKS reached; dropping the idlest link");
                self.forget_link(oldest);
            }
        }
        info!(peer = %address, "reactor: keeping a link to peer");
        self.links.insert(address, PeerLink::new(address, now));
    }

    fn forget_link(&mut self, address: SocketAddr) {
        if let Some(link) = self.links.remove(&address) {
            if let Some(id) = link.connection() {
                self.close(id, "peer link forgotten");
            }
        }
    }

    /// Closes and forgets links nothing was sent on for `PEER_LINK_IDLE_EXPIRY`.
    pub(super) fn expire_idle_links(&mut self, now: Instant) {
        let expired: Vec<SocketAddr> = self
            .links
            .values()
            .filter(|link| now.saturating_duration_since(link.last_used) >= PEER_LINK_IDLE_EXPIRY)
            .map(|link| link.address)
            .collect();
        for address in expired {
            info!(peer = %address, "reactor: peer link idle past PEER_LINK_IDLE_EXPIRY; closed");
            self.forget_link(address);
        }
    }

    /// Sends `frame` on the link to `address`, or holds it until the link is trusted
    /// (dialling a link that does not exist yet).
    pub(super) fn send_on_link(&mut self, address: SocketAddr, frame: Bytes, now: Instant) {
        self.ensure_link(address, now);
        let Some(link) = self.links.get_mut(&address) else {
            return;
        };
        let LinkState::Up(id) = link.state else {
            link.hold(frame, now);
            return;
        };
        link.last_used = now;
        if let Some(connection) = self.connections.get_mut(id) {
            connection.queue(&frame, now);
            self.after_queue(id);
        }
    }

    /// The client side of mutual TLS for a link to `address`, when the radiant runs TLS:
    /// the peer's certificate must chain to the CA and name the address's IP.
    fn dial_tls(&self, address: SocketAddr) -> Result<Option<rustls::Connection>, rustls::Error> {
        let Some(tls) = &self.options.tls else {
            return Ok(None);
        };
        let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
        let session = rustls::ClientConnection::new(std::sync::Arc::clone(&tls.peers_dial), name)?;
        Ok(Some(rustls::Connection::Client(session)))
    }

    pub(super) fn link_connecting(&self, id: ConnectionId) -> bool {
        self.links.values().any(|link| link.state == LinkState::Connecting(id))
    }

    pub(super) fn dial_due_links(&mut self, now: Instant) {
        let due: Vec<SocketAddr> = self
            .links
            .values()
            .filter(|link| matches!(link.state, LinkState::Idle { dial_at } if dial_at <= now))
            .map(|link| link.address)
            .collect();
        for address in due {
            let tls = match self.dial_tls(address) {
                Ok(tls) => tls,
                Err(error) => {
                    warn!(peer = %address, %error, "reactor: cannot start TLS for a peer link");
                    if let Some(link) = self.links.get_mut(&address) {
                        link.on_failure(now, &mut self.prng);
                    }
                    continue;
                }
            };
            let dialled = TcpStream::connect(address).and_then(|stream| {
                let make = |_| {
                    let connection =
                        Connection::new(stream, Side::PeerOutbound(address), address, now);
                    match tls {
                        Some(tls) => connection.with_tls(tls),
                        None => connection,
                    }
                };
                let id = self.connections.insert_with(make).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::OutOfMemory, "connection slab full")
                })?;
                if let Err(error) = self.register(id, Interest::READABLE | Interest::WRITABLE) {
                    self.connections.remove(id);
                    return Err(error);
                }
                Ok(id)
            });
            let Some(link) = self.links.get_mut(&address) else {
                continue;
            };
            match dialled {
                Ok(id) => link.state = LinkState::Connecting(id),
                Err(error) => {
                    let delay = link.on_failure(now, &mut self.prng);
                    debug!(peer = %address, %error, ?delay, "reactor: dial failed");
                }
            }
        }
    }

    /// A non-blocking connect finished: `take_error` and `peer_addr` tell how. On
    /// success the link handshake starts with this side's `LinkHello`.
    pub(super) fn on_link_connect_result(&mut self, id: ConnectionId, now: Instant) {
        let connecting = self.links.values().find(|link| link.state == LinkState::Connecting(id));
        let Some(address) = connecting.map(|link| link.address) else {
            return;
        };
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let failed = matches!(connection.stream.take_error(), Ok(Some(_)) | Err(_));
        if failed || connection.stream.peer_addr().is_err() {
            self.close(id, "connect failed");
            return;
        }
        tune_stream(&connection.stream);
        let nonce = match fresh_nonce() {
            Ok(nonce) => nonce,
            Err(error) => {
                warn!(%error, peer = %address, "reactor: cannot start a link handshake");
                self.close(id, "no nonce for the link handshake");
                return;
            }
        };
        let cluster = *self.options.cluster.lock();
        let trust = self.options.link_trust.clone();
        let (handshake, hello) =
            LinkHandshake::dial(trust, nonce, self.options.peer_address.clone(), cluster);
        let deadline = now + PEER_HANDSHAKE_TIMEOUT;
        connection.trust = PeerTrust::Handshaking { handshake: Box::new(handshake), deadline };
        if let Some(link) = self.links.get_mut(&address) {
            link.on_connected(id);
        }
        debug!(peer = %address, "reactor: peer link connected; handshake started");
        self.queue_message(id, 0, &Message::Link(hello), now);
        self.revisit.push(id);
    }

    /// A frame on a peer connection: handshake messages until it is trusted, then peer
    /// and system messages for the core.
    pub(super) fn on_peer_frame(
        &mut self,
        id: ConnectionId,
        correlation_id: u64,
        message: Message,
        frame_bytes: usize,
        now: Instant,
    ) {
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let trusted = matches!(connection.trust, PeerTrust::Trusted(_));
        let peer = connection.peer_address;
        match (trusted, message) {
            (false, Message::Link(message)) => self.on_link_message(id, message, now),
            (false, other) => {
                SecurityCounters::add(&self.options.security.unauthenticated_frames);
                warn!(
                    %peer,
                    kind = ?other.kind(),
                    "reactor: a peer sent a message before the link handshake; closing"
                );
                let reason = format!(
                    "a {:?} message came before the link handshake finished: a radiant must \
                     prove the cluster secret first",
                    other.kind()
                );
                self.refuse_link(id, LinkRefusal { tell_peer: Some(reason.clone()), reason }, now);
            }
            (true, Message::Peer(message)) => {
                let input = crate::core::Input::Message(message);
                let charge = self.options.memory.charge_queued(frame_bytes);
                self.hand_to_state(id, StateEvent::Peer { input, charge });
            }
            (true, Message::System(message)) => {
                let input = crate::core::Input::System(message);
                let charge = self.options.memory.charge_queued(frame_bytes);
                self.hand_to_state(id, StateEvent::Peer { input, charge });
            }
            (true, Message::Error(error)) => {
                // Never answer an error with an error: two radiants would bounce forever.
                let radiant =
                    self.connections.get_mut(id).and_then(|c| c.trusted_peer().map(str::to_string));
                warn!(%peer, ?radiant, %error, "reactor: a peer refused a message; dropped");
            }
            (true, Message::Response(response)) => {
                debug!(?id, ?response, "reactor: peer link response");
            }
            (true, other @ (Message::Link(_) | Message::Request(_))) => {
                let hint = match other {
                    Message::Request(_) => "; send client requests to the client port",
                    _ => "",
                };
                let kind = other.kind();
                let reason =
                    format!("a {kind:?} message is not accepted on a trusted peer link{hint}");
                let error = radiant_protocol::ErrorResponse::BadRequest { reason };
                self.reply_error(id, correlation_id, error, now);
            }
        }
    }

    fn on_link_message(&mut self, id: ConnectionId, message: LinkMessage, now: Instant) {
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let PeerTrust::Handshaking { handshake, .. } = &mut connection.trust else {
            return;
        };
        match handshake.on_message(message) {
            Ok(LinkStep::Send(reply)) => self.queue_message(id, 0, &Message::Link(reply), now),
            Ok(LinkStep::Trusted { send, peer }) => {
                info!(
                    peer = %peer.address,
                    from = %connection.peer_address,
                    "reactor: peer link trusted"
                );
                connection.trust = PeerTrust::Trusted(peer);
                let side = connection.side;
                SecurityCounters::add(&self.options.security.links_trusted);
                if let Some(reply) = send {
                    self.queue_message(id, 0, &Message::Link(reply), now);
                }
                if let Side::PeerOutbound(address) = side {
                    self.on_link_trusted(address, id, now);
                }
            }
            Err(refusal) => self.refuse_link(id, refusal, now),
        }
    }

    /// Sends what the link held while it came up.
    fn on_link_trusted(&mut self, address: SocketAddr, id: ConnectionId, now: Instant) {
        let Some(link) = self.links.get_mut(&address) else {
            return;
        };
        link.on_trusted(id);
        let held = link.take_pending();
        if let Some(connection) = self.connections.get_mut(id) {
            for frame in &held {
                connection.queue(frame, now);
            }
        }
        self.after_queue(id);
    }

    /// Logs and counts a failed handshake, tells the other side why, and closes the
    /// connection once that is written.
    fn refuse_link(&mut self, id: ConnectionId, refusal: LinkRefusal, now: Instant) {
        SecurityCounters::add(&self.options.security.links_refused);
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let peer = connection.peer_address;
        warn!(%peer, reason = %refusal.reason, "reactor: peer link refused");
        connection.closing = true;
        connection.read_buffer.clear();
        if let Some(reason) = refusal.tell_peer {
            let mut frame = BytesMut::new();
            Message::Link(LinkMessage::Refused { reason }).encode(0, &mut frame);
            connection.queue(&frame, now);
        }
        self.after_queue(id);
    }
}
