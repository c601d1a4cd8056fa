//! The sans-IO core: deterministic state machines that take `(now, input)` and return
//! actions. The daemon (`server/`) and, later, the simulator drive the same core.
//!
//! # Contract
//! - The core does no I/O, reads no clock, starts no thread and keeps no global state.
//!   Time is [`Tick`]s handed in by the driver; randomness is a [`prng::Prng`] seeded by
//!   the driver. Nothing iterates a default-hashed map.
//! - The one entry point is [`Radiant::step`]. Every input is processed completely
//!   before `step` returns, and the resulting [`Action`]s are appended to an [`Actions`]
//!   buffer, in the order the driver must carry them out.
//! - Durability gates acknowledgements: a write is applied (and so answered) only after
//!   the driver reports [`Input::Durable`] for its index. The driver must persist
//!   `Action::Persist` batches in order and report durability in order.
//! - `Action::Apply` and `Action::Read` for one shard must be executed in the order
//!   emitted: a read emitted after an apply sees it.

pub mod order;
pub mod prng;
pub mod slots;

use radiant_protocol::{ClientRequest, ClientResponse, Command, ErrorResponse, LogEntry};
use radiant_protocol::{LogIndex, MemberId, Term};

pub use order::{Order, OrderOptions, OrderRole};

use crate::storage::wal::HardState;
use slots::ShardId;

/// Logical time: the number of ticks since the driver started. Monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(pub u64);

/// An opaque handle for a client connection, chosen by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// Where a reply goes: the connection and the request's correlation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// The client connection.
    pub connection: ConnectionId,
    /// The request's correlation id, echoed in the reply.
    pub correlation_id: u64,
}

/// Everything that can happen to a radiant.
#[derive(Clone, Debug)]
pub enum Input {
    /// One tick of logical time passed.
    Tick,
    /// A client request arrived.
    Client {
        /// Where the answer goes.
        reply_to: ReplyTo,
        /// The request.
        request: ClientRequest,
    },
    /// The log and hard state are durable through `index` (fsynced).
    Durable {
        /// The highest durable log index.
        index: LogIndex,
    },
    /// A snapshot of the applied state through `index` is durable.
    SnapshotWritten {
        /// The snapshot's last included index.
        index: LogIndex,
    },
    /// The snapshot the core asked for could not be written.
    SnapshotFailed,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Append `entries` (and first record `hard_state`, if any) to the log.
    Persist {
        /// A new term or vote to record before the entries.
        hard_state: Option<HardState>,
        /// Entries to append, contiguous and following the last persisted one.
        entries: Vec<LogEntry>,
    },
    /// Apply a committed command to `shard`; answer `reply_to` with the outcome.
    Apply {
        /// The shard the command's key belongs to.
        shard: ShardId,
        /// The entry's log index.
        index: LogIndex,
        /// The command.
        command: Command,
        /// The client to answer, when this radiant accepted the request.
        reply_to: Option<ReplyTo>,
    },
    /// Read `key` from `shard` once every earlier `Apply` for that shard is done.
    Read {
        /// The shard the key belongs to.
        shard: ShardId,
        /// The key.
        key: bytes::Bytes,
        /// The client to answer.
        reply_to: ReplyTo,
    },
    /// Answer a client directly (errors, and answers that need no shard).
    Reply {
        /// The client.
        reply_to: ReplyTo,
        /// The answer.
        result: Result<ClientResponse, ErrorResponse>,
    },
    /// Write a snapshot of the state through `index` (all earlier applies included).
    Snapshot {
        /// Last included index.
        index: LogIndex,
        /// Term of that entry.
        term: Term,
    },
    /// Delete log entries through `through` (a snapshot covers them).
    CompactLog {
        /// Last index that may be deleted.
        through: LogIndex,
    },
}

/// The buffer of actions a `step` produces. The driver drains and reuses it.
#[derive(Debug, Default)]
pub struct Actions {
    actions: Vec<Action>,
}

impl Actions {
    /// An empty buffer.
    pub fn new() -> Self {
        Actions::default()
    }

    /// Appends one action.
    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// Removes and yields every action, oldest first.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// How many actions are queued.
    pub fn len(&self) -> usize {
        self.actions.len()
    }
}

/// What the driver recovered from disk before starting the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveredLog {
    /// The last persisted term and vote.
    pub hard_state: HardState,
    /// Index and term of the last entry in the log (or of the snapshot, if the log is empty).
    pub last_index: LogIndex,
    /// Term of `last_index`.
    pub last_term: Term,
    /// Everything through this index is already applied (snapshot plus replay).
    pub applied_index: LogIndex,
    /// Index of the newest durable snapshot, 0 if none.
    pub snapshot_index: LogIndex,
}

/// One radiant's core. Today it holds this radiant's replica of its order; the
/// council and lifecycle state machines join it as they are built.
#[derive(Debug)]
pub struct Radiant {
    member_id: MemberId,
    order: Order,
}

impl Radiant {
    /// A radiant in a single-member order, resuming from `recovered`.
    pub fn new(member_id: MemberId, options: OrderOptions, recovered: RecoveredLog) -> Self {
        Radiant {
            member_id,
            order: Order::new(member_id, options, recovered),
        }
    }

    /// Processes one input completely, appending the resulting actions.
    pub fn step(&mut self, now: Tick, input: Input, actions: &mut Actions) {
        match input {
            Input::Tick => self.order.on_tick(now, actions),
            Input::Client { reply_to, request } => self.order.on_client(reply_to, request, actions),
            Input::Durable { index } => self.order.on_durable(index, actions),
            Input::SnapshotWritten { index } => self.order.on_snapshot_written(index, actions),
            Input::SnapshotFailed => self.order.on_snapshot_failed(),
        }
        self.order.check_invariants();
    }

    /// This radiant's member id.
    pub fn member_id(&self) -> MemberId {
        self.member_id
    }

    /// This radiant's replica of its order (read-only, for status and tests).
    pub fn order(&self) -> &Order {
        &self.order
    }
}
