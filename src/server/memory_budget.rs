//! The process-wide budget for bytes that clients make the radiant hold before the core
//! has taken them: connection read and write buffers, frames held for a peer link that
//! is still coming up, and decoded requests queued to the state thread
//! (`max_buffered_bytes`).
//!
//! Per-connection caps alone do not bound a process: 1,024 connections each a frame
//! short of complete hold 1,024 frames. The reactor reads a client only while the
//! budget has room, and never more than the room left, so the bytes clients can park
//! here stay under the limit whatever their number. Over the limit, client reads pause
//! (TCP pushes back on the senders); replies and peer traffic go on, because they are
//! what frees the budget: replies drain write buffers, and commits answer the queued
//! requests. What the core holds after taking a request (the log, sessions) has its own
//! byte limits.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The budget, shared by the reactor (which charges it) and the state thread (which
/// releases queued requests and reports it in `status`).
#[derive(Debug)]
pub struct MemoryBudget {
    max_buffered_bytes: usize,
    /// Bytes in connection buffers and held link frames: the reactor's own, stored by it.
    connection_bytes: AtomicUsize,
    /// Bytes of frames handed to the state thread that it has not taken yet.
    queued_bytes: AtomicUsize,
    /// Times a client connection stopped reading because the budget was spent.
    client_reads_paused: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `max_buffered_bytes`.
    pub fn new(max_buffered_bytes: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            max_buffered_bytes,
            connection_bytes: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            client_reads_paused: AtomicU64::new(0),
        })
    }

    /// Bytes held now.
    pub fn in_use_bytes(&self) -> usize {
        let connections = self.connection_bytes.load(Ordering::Relaxed);
        connections.saturating_add(self.queued_bytes.load(Ordering::Relaxed))
    }

    /// The budget (`max_buffered_bytes`).
    pub fn max_buffered_bytes(&self) -> usize {
        self.max_buffered_bytes
    }

    /// Bytes a client read may still take.
    pub fn room_bytes(&self) -> usize {
        self.max_buffered_bytes.saturating_sub(self.in_use_bytes())
    }

    /// Records the reactor's connection bytes (it alone changes them).
    pub(crate) fn set_connection_bytes(&self, bytes: usize) {
        self.connection_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Charges `bytes` of a frame queued to the state thread until the charge drops.
    pub(crate) fn charge_queued(self: &Arc<Self>, bytes: usize) -> QueuedCharge {
        self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        QueuedCharge { bytes, budget: Arc::clone(self) }
    }

    pub(crate) fn count_paused_read(&self) {
        self.client_reads_paused.fetch_add(1, Ordering::Relaxed);
    }

    /// The budget for `radiant status` (`memory`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "max_buffered_bytes": self.max_buffered_bytes,
            "connection_bytes": self.connection_bytes.load(Ordering::Relaxed),
            "queued_request_bytes": self.queued_bytes.load(Ordering::Relaxed),
            "client_reads_paused": self.client_reads_paused.load(Ordering::Relaxed),
        })
    }
}

/// A queued frame's bytes, released when the state thread drops the event carrying it.
pub struct QueuedCharge {
    bytes: usize,
    budget: Arc<MemoryBudget>,
}

impl Drop for QueuedCharge {
    fn drop(&mut self) {
        let previous = self.budget.queued_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        debug_assert!(previous >= self.bytes, "released more queued bytes than were charged");
    }
}

impl std::fmt::Debug for QueuedCharge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueuedCharge({} bytes)", self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_holds_room_until_it_drops() {
        let budget = MemoryBudget::new(1_000);
        budget.set_connection_bytes(300);
        let charge = budget.charge_queued(500);
        assert_eq!(budget.room_bytes(), 200);
        let over = budget.charge_queued(400);
        assert_eq!(budget.room_bytes(), 0, "over the limit leaves no room, not a wrap");
        drop(over);
        drop(charge);
        assert_eq!(budget.in_use_bytes(), 300);
    }
}
