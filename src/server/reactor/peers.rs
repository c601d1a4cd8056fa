//! Outbound peer links: the connections this radiant dials and keeps up. A link that
//! fails to connect, or drops, is redialled after a capped exponential backoff with
//! jitter from the seeded PRNG, so a restarted peer is not hammered by every radiant
//! at the same instant.
//!
//! It must not interpret peer messages; it only knows addresses, timing and the frames
//! held while a link comes up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::prng::Prng;
use crate::core::ConnectionId;

/// First redial delay after a failure.
pub(crate) const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// Longest redial delay.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most bytes of frames a link holds while it connects and shakes hands.
pub(crate) const PEER_LINK_PENDING_MAX_BYTES: usize = 4 << 20;

/// Where a link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Waiting to dial at the given instant.
    Idle { dial_at: Instant },
    /// A non-blocking connect is under way on this connection.
    Connecting(ConnectionId),
    /// Connected; the link handshake is under way on this connection.
    Handshaking(ConnectionId),
    /// Connected and trusted on this connection.
    Up(ConnectionId),
}

pub(crate) struct PeerLink {
    pub(crate) address: SocketAddr,
    pub(crate) state: LinkState,
    /// Consecutive failed attempts; resets when a connection is established.
    pub(crate) failures: u32,
    /// Frames dropped because the link was down (the core tolerates loss).
    pub(crate) dropped_frames: u64,
    /// Frames to send once the link is up (a vote request on a link that was idle must
    /// not be lost to the redial), at most `PEER_LINK_PENDING_MAX_BYTES` of them.
    pub(crate) pending: Vec<bytes::Bytes>,
    pending_bytes: usize,
    /// When a frame was last sent on (or queued for) this link; an idle link expires.
    pub(crate) last_used: Instant,
}

impl PeerLink {
    pub(crate) fn new(address: SocketAddr, now: Instant) -> Self {
        PeerLink {
            address,
            state: LinkState::Idle { dial_at: now },
            failures: 0,
            dropped_frames: 0,
            pending: Vec::new(),
            pending_bytes: 0,
            last_used: now,
        }
    }

    /// Keeps `frame` until the link is up; drops it (counted) past the byte limit.
    pub(crate) fn hold(&mut self, frame: bytes::Bytes, now: Instant) {
        self.last_used = now;
        if self.pending_bytes + frame.len() > PEER_LINK_PENDING_MAX_BYTES {
            self.dropped_frames += 1;
            return;
        }
        self.pending_bytes += frame.len();
        self.pending.push(frame);
    }

    /// The held frames, to send now that the link is up.
    pub(crate) fn take_pending(&mut self) -> Vec<bytes::Bytes> {
        self.pending_bytes = 0;
        std::mem::take(&mut self.pending)
    }

    /// Records a failed or lost connection and schedules the next dial.
    pub(crate) fn on_failure(&mut self, now: Instant, prng: &mut Prng) -> Duration {
        self.failures = self.failures.saturating_add(1);
        // Held frames are stale by the next attempt; the core resends what matters.
        self.dropped_frames += self.pending.len() as u64;
        self.take_pending();
        let delay = backoff_delay(self.failures, prng);
        self.state = LinkState::Idle { dial_at: now + delay };
        delay
    }

    /// Connected: the handshake starts. Failures reset only once it is trusted, so a
    /// peer that keeps refusing the handshake is redialled ever more slowly.
    pub(crate) fn on_connected(&mut self, connection: ConnectionId) {
        self.state = LinkState::Handshaking(connection);
    }

    pub(crate) fn on_trusted(&mut self, connection: ConnectionId) {
        self.failures = 0;
        self.state = LinkState::Up(connection);
    }

    /// The connection the link is on, if any.
    pub(crate) fn connection(&self) -> Option<ConnectionId> {
        match self.state {
            LinkState::Idle { .. } => None,
            LinkState::Connecting(id) | LinkState::Handshaking(id) | LinkState::Up(id) => Some(id),
        }
    }
}

/// The delay before attempt `failures + 1`: `BACKOFF_INITIAL * 2^(failures-1)`, capped
/// at `BACKOFF_MAX`, then jittered uniformly into its upper half.
pub(crate) fn backoff_delay(failures: u32, prng: &mut Prng) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let initial = BACKOFF_INITIAL.as_millis() as u64;
    let capped = (initial << exponent).min(BACKOFF_MAX.as_millis() as u64);
    Duration::from_millis(prng.range(capped / 2, capped + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps_and_stays_jittered_within_bounds() {
        let mut prng = Prng::new(3);
        let mut previous_cap = 0;
        for failures in 1..30 {
            let delay = backoff_delay(failures, &mut prng).as_millis() as u64;
            let exponent = (failures - 1).min(16);
            let cap = (50u64 << exponent).min(5_000);
            assert!(delay >= cap / 2 && delay <= cap, "failures {failures}: {delay} vs {cap}");
            assert!(cap >= previous_cap);
            previous_cap = cap;
        }
        assert_eq!(previous_cap, 5_000);
    }
}
