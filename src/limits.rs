//! Every compile-time bound of the daemon in one place, related by const asserts.
//! Runtime limits an operator may tune live in the configuration instead.

use std::time::Duration;

/// Readiness events handled per reactor turn.
pub const MAX_EVENTS: usize = 1024;
/// Connections accepted per listener per turn before other work gets a turn.
pub const MAX_ACCEPTS_PER_TURN: usize = 256;
/// Frames decoded per connection per turn (fairness between connections).
pub const MAX_FRAMES_PER_TURN: usize = 256;
/// Bytes read per connection per turn (fairness between connections).
pub const MAX_READ_BYTES_PER_TURN: usize = 1 << 20;
/// Messages (replies, link commands) the reactor's inbox holds.
pub const REACTOR_INBOX_CAPACITY: usize = 65_536;
/// Events the state thread's inbox holds; when full the reactor stops reading clients.
pub const STATE_INBOX_CAPACITY: usize = 16_384;
/// Requests queued to each shard worker.
pub const SHARD_WORKER_QUEUE_CAPACITY: usize = 16_384;
/// Batches queued to the WAL writer.
pub const WAL_QUEUE_CAPACITY: usize = 4_096;
/// Most entries one WAL group commit covers (one fsync).
pub const MAX_ENTRIES_PER_GROUP_COMMIT: usize = 8_192;
/// `Append` messages in flight per follower before the herald waits for acknowledgements.
pub const MAX_INFLIGHT_APPENDS: usize = 8;
/// Entries a herald keeps past its snapshot for members only a little behind.
pub const CATCH_UP_ENTRIES: u64 = 1_000;
/// Listen backlog for both listeners.
pub const LISTEN_BACKLOG: i32 = 1024;
/// How often the reactor checks idle and stalled connections.
pub const REACTOR_HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);
/// How long a shutting-down reactor waits for outstanding replies.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Most outbound peer links a radiant keeps; past it the longest idle one is dropped.
pub const MAX_PEER_LINKS: usize = 1024;
/// A peer link nothing was sent on for this long is closed and forgotten (a removed
/// member, a radiant that left); the next frame for it dials again.
pub const PEER_LINK_IDLE_EXPIRY: Duration = Duration::from_secs(120);
/// A peer connection whose link handshake has not finished after this long is closed.
pub const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A trusted inbound peer connection with no frames for this long is closed (its
/// dialler's link expired or died without a FIN).
pub const PEER_INBOUND_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// What a client connection with nothing buffered may still read when the memory budget
/// (`max_buffered_bytes`) is spent: one small request, so `status` and small requests go
/// through while large partial frames hold the budget. The budget can be exceeded by at
/// most `max_connections` times this.
pub const MEMORY_HEADROOM_BYTES_PER_CONNECTION: usize = 4096;
/// `Authenticate` failures after which a client connection is closed.
pub const MAX_FAILED_AUTHENTICATIONS: u32 = 3;

const _: () = assert!(MAX_FRAMES_PER_TURN <= REACTOR_INBOX_CAPACITY);
const _: () = assert!(MAX_ENTRIES_PER_GROUP_COMMIT <= STATE_INBOX_CAPACITY);
const _: () = assert!(MAX_ACCEPTS_PER_TURN <= MAX_EVENTS);
