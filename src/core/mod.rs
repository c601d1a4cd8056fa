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

pub mod effects;
pub mod order;
pub mod prng;
pub mod shards;
pub mod system;

use radiant_protocol::{ClientRequest, ClientResponse, Command, ErrorResponse, LogEntry};
use radiant_protocol::{LogIndex, MemberId, PeerHeader, PeerMessage, SystemMessage, Term};

pub use order::{
    HardState, Membership, Order, OrderOptions, OrderRole, OrderState, RecoveredOrder,
};

use radiant_protocol::slots::ShardId;

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
    /// The driver has handed over every input it had for now: send what is pending.
    /// A herald writes and replicates the entries of a whole batch of requests at once
    /// (one `Persist`, one `Append` per member) instead of one per request. Drivers send
    /// it after each batch; without it, entries still go out with the next heartbeat.
    Flush,
    /// A message from a peer radiant.
    Message(PeerMessage),
    /// A beacon, join or council message from another radiant.
    System(SystemMessage),
    /// A client request arrived.
    Client {
        /// Where the answer goes.
        reply_to: ReplyTo,
        /// The request.
        request: ClientRequest,
    },
    /// Every `Persist` (and `ResetLog`) through `sequence` is durable (fsynced).
    Durable {
        /// The highest durable persist sequence.
        sequence: u64,
    },
    /// The local snapshot the core asked for is durable.
    SnapshotWritten {
        /// Its last included index.
        index: LogIndex,
        /// That entry's term.
        term: Term,
    },
    /// The snapshot the core asked for could not be written.
    SnapshotFailed,
    /// A received snapshot chunk (not the last) is stored; `next_offset` is expected next.
    SnapshotChunkWritten {
        /// The snapshot being received.
        snapshot_index: LogIndex,
        /// The offset the next chunk must start at.
        next_offset: u64,
    },
    /// A received snapshot was completed, verified and installed into the state machine.
    SnapshotInstalled {
        /// Its last included index.
        index: LogIndex,
        /// That entry's term.
        term: Term,
        /// The membership it carried.
        membership: Membership,
        /// The order's council state it carried (a `SystemRecord` with only the council
        /// fields), when the order belongs to a formed system.
        council: Option<bytes::Bytes>,
        /// The shard table it carried (none in a snapshot from before shards moved).
        shards: Option<shards::ShardTable>,
    },
    /// The piece of a frozen shard that `Action::ReadShardChunk` asked for.
    ShardChunkRead(radiant_protocol::ShardChunk),
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message to the member `message.header.to`. Delivery may fail; the core
    /// retries what matters.
    Send(PeerMessage),
    /// Make durable, in this order: the hard state (if any), a truncation of the log
    /// from `truncate_from` (if any), then `entries`. Report `Input::Durable`.
    Persist {
        /// Orders persists; durability is reported by sequence.
        sequence: u64,
        /// A new term, vote or commit index to record.
        hard_state: Option<HardState>,
        /// Drop log entries from this index on, before appending.
        truncate_from: Option<LogIndex>,
        /// Entries to append, contiguous and following the last kept one.
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
    /// Copy the whole of `shard` once every earlier `Apply` for it is done (so as of
    /// `index`), keep the copy for a backup to page through, and answer `reply_to` with
    /// its first page.
    CopyShard {
        /// The shard.
        shard: ShardId,
        /// The order's applied index the copy is of.
        index: LogIndex,
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
    /// Write a snapshot of the state through `index` (all earlier applies included),
    /// recording `membership` in it; report `Input::SnapshotWritten`.
    Snapshot {
        /// The order's council state as of `index`, to store beside the data (filled
        /// in by the radiant; see `SnapshotInstalled::council`).
        council: Option<bytes::Bytes>,
        /// Last included index.
        index: LogIndex,
        /// Term of that entry.
        term: Term,
        /// The membership as of `index`.
        membership: Membership,
        /// The shard table as of `index`.
        shards: shards::ShardTable,
    },
    /// Delete log entries through `through` (a snapshot covers them). Not urgent.
    CompactLog {
        /// Last index that may be deleted.
        through: LogIndex,
    },
    /// Discard the whole log: an installed snapshot replaces it. The next entry will
    /// be `snapshot_index + 1`.
    ResetLog {
        /// The installed snapshot's last index.
        snapshot_index: LogIndex,
        /// Its term.
        snapshot_term: Term,
    },
    /// Read up to `max_bytes` of the local snapshot file `snapshot_index` from `offset`
    /// and send it as `InstallSnapshot` with `header`. If that snapshot is gone, send nothing.
    SendSnapshotChunk {
        /// Header for the `InstallSnapshot` message.
        header: PeerHeader,
        /// Which snapshot.
        snapshot_index: LogIndex,
        /// Its term.
        snapshot_term: Term,
        /// Where to read from.
        offset: u64,
        /// Most bytes to send.
        max_bytes: u64,
    },
    /// Store a received snapshot chunk at `offset`; when `done`, verify and install the
    /// whole snapshot durably and report `Input::SnapshotInstalled`, otherwise report
    /// `Input::SnapshotChunkWritten`.
    WriteSnapshotChunk {
        /// The sender.
        from: MemberId,
        /// The chunk as the herald sent it: which snapshot, where it goes, the size the
        /// whole snapshot was announced as, the bytes, whether it is the last.
        chunk: radiant_protocol::InstallSnapshot,
    },
    /// The membership changed: connect to new members, forget removed ones.
    MembershipChanged(Membership),
    /// Send a system message to the radiant at peer address `to`.
    SendSystem {
        /// The peer address.
        to: String,
        /// The message.
        message: SystemMessage,
    },
    /// Replace the radiant's system record durably (atomically, fsynced) before
    /// carrying out any later action.
    PersistSystem(Box<system::SystemRecord>),
    /// Change a shard's data as a migration entry says, in order with the `Apply`s
    /// and `Read`s of that shard.
    ShardData(shards::ShardEffect),
    /// Read the frozen shard's pairs after `after`, ascending, until they pass
    /// `max_bytes` (at least one pair), once every earlier action for the shard is
    /// done; attach its session table when no pair is left; report
    /// `Input::ShardChunkRead`.
    ReadShardChunk {
        /// The shard.
        shard: ShardId,
        /// The configuration that moved it (copied into the chunk).
        number: u64,
        /// Where the piece starts.
        after: Option<bytes::Bytes>,
        /// About how many bytes of keys and values.
        max_bytes: u64,
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

    /// Every `Snapshot` action queued from position `from` on, to fill in.
    fn snapshots_from(&mut self, from: usize) -> impl Iterator<Item = &mut Action> {
        self.actions
            .iter_mut()
            .skip(from)
            .filter(|action| matches!(action, Action::Snapshot { .. }))
    }

    /// Removes and yields every action, oldest first.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// Moves every action, oldest first, to the end of `out` (both keep their capacity).
    pub fn move_into(&mut self, out: &mut Vec<Action>) {
        out.append(&mut self.actions);
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

/// One radiant's core: its system state machine (formation, council, controller) and
/// its replica of its order, once it has one. A radiant of a static order (the
/// `members` config key) has no system state machine: its order is given.
#[derive(Debug)]
pub struct Radiant {
    member_id: Option<MemberId>,
    order: Option<Order>,
    system: Option<system::System>,
    order_template: OrderOptions,
    seed: u64,
}

impl Radiant {
    /// A radiant of a static order whose replica resumes from `recovered`. `seed` fixes
    /// every random choice the core makes (election timeouts).
    pub fn new(
        member_id: MemberId,
        options: OrderOptions,
        recovered: RecoveredOrder,
        seed: u64,
    ) -> Self {
        Radiant {
            member_id: Some(member_id),
            order: Some(Order::new(member_id, options.clone(), recovered, seed)),
            system: None,
            order_template: options,
            seed,
        }
    }

    /// A radiant that forms or joins a system. `recovered` is its order replica's
    /// state when `record` names an order (a restart), else ignored.
    pub fn forming(
        system_options: system::SystemOptions,
        record: system::SystemRecord,
        order_template: OrderOptions,
        recovered: RecoveredOrder,
        seed: u64,
    ) -> Self {
        let system = system::System::new(system_options, record, seed);
        let mut radiant = Radiant {
            member_id: system.member(),
            order: None,
            system: Some(system),
            order_template,
            seed,
        };
        radiant.start_order(Some(recovered), &mut Actions::new());
        radiant
    }

    /// Starts the order replica once the system record names this radiant's order.
    fn start_order(&mut self, recovered: Option<RecoveredOrder>, actions: &mut Actions) {
        let Some(system) = &self.system else { return };
        let record = system.record();
        let (Some(member), Some(order_id), None) = (record.member, record.order_id, &self.order)
        else {
            return;
        };
        self.member_id = Some(member);
        let options =
            OrderOptions { cluster: record.cluster, order_id, ..self.order_template.clone() };
        let mut recovered = recovered.unwrap_or_else(|| RecoveredOrder {
            membership: record.initial_membership.clone(),
            ..RecoveredOrder::default()
        });
        // A system's order serves only what the configurations it adopts give it.
        recovered.shards.get_or_insert_with(|| shards::ShardTable::unassigned(options.shard_count));
        tracing::info!(%member, %order_id, "radiant: starting its order replica");
        let order = Order::new(member, options, recovered, self.seed ^ member.get());
        actions.push(Action::MembershipChanged(order.membership().clone()));
        self.order = Some(order);
    }

    /// Processes one input completely, appending the resulting actions.
    pub fn step(&mut self, now: Tick, input: Input, actions: &mut Actions) {
        let first_new_action = actions.len();
        if let (Input::SnapshotInstalled { council: Some(council), .. }, Some(system)) =
            (&input, &mut self.system)
        {
            system.on_snapshot_council(council, actions);
        }
        match input {
            Input::System(message) => {
                if let Some(system) = &mut self.system {
                    system.on_message(now, message, self.order.as_mut(), actions);
                }
            }
            Input::Client { reply_to, request: ClientRequest::QueryConfiguration { number } } => {
                self.answer_query(reply_to, number, actions);
            }
            Input::Client { reply_to, request }
                if self.system.is_some() && is_system_admin(&request) =>
            {
                if let Some(system) = &mut self.system {
                    system.on_admin(reply_to, request, actions);
                }
            }
            Input::Client { reply_to, request }
                if self.order.is_none()
                    || self.system.as_ref().is_some_and(system::System::is_refused) =>
            {
                let result = match request {
                    ClientRequest::Ping => Ok(ClientResponse::Pong { member_id: self.member_id }),
                    // The same words `radiant status` gives for why it is not ready.
                    _ => Err(ErrorResponse::Unavailable {
                        reason: self.readiness().err().unwrap_or_default(),
                    }),
                };
                actions.push(Action::Reply { reply_to, result });
            }
            Input::Message(message) => {
                let cluster = self.system.as_ref().map(system::System::cluster);
                let foreign = cluster.is_some_and(|mine| message.header.cluster != mine);
                match &mut self.order {
                    Some(order) if !foreign => order.on_message(message, actions),
                    _ => {
                        let header = message.header;
                        tracing::debug!(
                            ?header,
                            "radiant: dropped a peer message for no order of ours"
                        );
                    }
                }
            }
            Input::ShardChunkRead(chunk) => self.on_shard_chunk_read(chunk, actions),
            Input::Tick => {
                if let Some(order) = &mut self.order {
                    order.on_tick(now, actions);
                }
                if let Some(system) = &mut self.system {
                    system.on_tick(now, self.order.as_mut(), actions);
                }
            }
            input => {
                if let Some(order) = &mut self.order {
                    step_order(order, input, actions);
                }
            }
        }
        self.after_step(now, actions);
        self.fill_snapshot_council(first_new_action, actions);
        self.check_invariants();
    }

    /// The order's and the system's invariants, after every step.
    fn check_invariants(&self) {
        if let Some(order) = &self.order {
            order.check_invariants();
        }
        if let Some(system) = &self.system {
            system.check_invariants();
        }
    }

    /// `QueryConfiguration`, answered from this radiant's own history.
    fn answer_query(&self, reply_to: ReplyTo, number: u64, actions: &mut Actions) {
        let result = match &self.system {
            Some(system) => {
                system.query(number).map(|found| ClientResponse::Configuration(Box::new(found)))
            }
            None => Err(ErrorResponse::BadRequest {
                reason: "this radiant runs a static order (the `members` config key), which \
                         has no configurations"
                    .to_string(),
            }),
        };
        actions.push(Action::Reply { reply_to, result });
    }

    fn on_shard_chunk_read(&mut self, chunk: radiant_protocol::ShardChunk, actions: &mut Actions) {
        if let (Some(system), Some(order)) = (&mut self.system, &mut self.order) {
            system.on_shard_chunk_read(chunk, order, actions);
        }
    }

    /// A snapshot the order asked for this step carries the order's council state as of
    /// its index: the council entries through it were all applied in this same step.
    fn fill_snapshot_council(&self, first_new_action: usize, actions: &mut Actions) {
        let Some(system) = &self.system else { return };
        // Encoded only when a snapshot was asked for: this runs for every input.
        for action in actions.snapshots_from(first_new_action) {
            if let Action::Snapshot { council: slot, .. } = action {
                *slot = Some(system.council_snapshot());
            }
        }
    }

    fn after_step(&mut self, now: Tick, actions: &mut Actions) {
        // Bounded: each loopback message is handled once and, at most, answers itself
        // with one acknowledgement.
        for _ in 0..64 {
            let Some(system) = &mut self.system else { return };
            system.after_step(self.order.as_mut(), actions);
            self.start_order(None, actions);
            let Some(system) = &mut self.system else { return };
            let Some(message) = system.take_loopback() else { return };
            system.on_message(now, message, self.order.as_mut(), actions);
        }
    }

    /// `Ok` when this radiant takes keyed requests: it is in an order that has adopted
    /// a configuration (or is a static order) and knows its herald. Otherwise why not,
    /// in words for people: `radiant status` shows it, and keyed requests refused for it
    /// get `Unavailable` (retry) with the same words, never a `WrongOrder`.
    pub fn readiness(&self) -> Result<(), String> {
        match (&self.system, &self.order) {
            (Some(system), _) if system.is_refused() => Err(system.unavailable_reason()),
            (Some(system), None) => Err(system.unavailable_reason()),
            (None, None) => Err("not ready: this radiant has no order".to_string()),
            (_, Some(order)) => order.readiness(),
        }
    }

    /// This radiant's member id (none before it is associated).
    pub fn member_id(&self) -> Option<MemberId> {
        self.member_id
    }

    /// This radiant's replica of its order (read-only, for status and checkers).
    pub fn order(&self) -> Option<&Order> {
        self.order.as_ref()
    }

    /// The system state machine (none for a static order).
    pub fn system(&self) -> Option<&system::System> {
        self.system.as_ref()
    }
}

/// Admin requests the controller carries out (not the order).
fn is_system_admin(request: &ClientRequest) -> bool {
    matches!(
        request,
        ClientRequest::AddRadiant { .. }
            | ClientRequest::RemoveRadiant { .. }
            | ClientRequest::MoveShard { .. }
            | ClientRequest::LeaveOrder { .. }
    )
}

fn step_order(order: &mut Order, input: Input, actions: &mut Actions) {
    match input {
        Input::Flush => order.on_flush(actions),
        Input::Client { reply_to, request } => order.on_client(reply_to, request, actions),
        Input::Durable { sequence } => order.on_durable_input(sequence, actions),
        Input::SnapshotWritten { index, term } => {
            order.on_snapshot_written_input(index, term, actions)
        }
        Input::SnapshotFailed => order.on_snapshot_failed_input(),
        Input::SnapshotChunkWritten { snapshot_index, next_offset } => {
            order.on_snapshot_chunk_written_input(snapshot_index, next_offset, actions);
        }
        Input::SnapshotInstalled { index, term, membership, shards, .. } => {
            order.on_snapshot_installed_input(index, term, membership, shards, actions);
        }
        Input::Tick | Input::Message(_) | Input::System(_) | Input::ShardChunkRead(_) => {
            unreachable!("handled by Radiant::step")
        }
    }
}
