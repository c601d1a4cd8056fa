//! This radiant's replica of its order (replica group): the herald role, the log's
//! positions, commit and apply, and the order state of the seed notes.
//!
//! Today an order has one member, this radiant: it is its own majority, so it makes
//! itself herald at its first tick (a new term, persisted with a vote for itself, and
//! a `Noop` entry of that term) and every durable entry is committed. Elections and
//! replication among several members build on exactly these positions and rules.
//!
//! Like all of `core`, it does no I/O, reads no clock and starts no thread.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use radiant_protocol::{
    ClientRequest, ClientResponse, Command, ErrorResponse, LogEntry, LogIndex, MemberId,
    OrderStateOp, Term,
};

use super::slots::key_shard;
use super::{Action, Actions, RecoveredLog, ReplyTo, Tick};
use crate::storage::wal::HardState;

/// The order's state, as in the seed notes (`seeds/order.md`). `Display` prints the
/// seed's spelling so logs match the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// No herald yet: the order cannot serve.
    Bootstrap,
    /// Reconfiguration or recovery in progress.
    Reset,
    /// A herald serves the order's shards.
    Active,
    /// Locked for an operation; requests get `Locked(op)`.
    Locked(OrderStateOp),
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderState::Bootstrap => write!(f, "BOOTSTRAP"),
            OrderState::Reset => write!(f, "RESET"),
            OrderState::Active => write!(f, "ACTIVE"),
            OrderState::Locked(op) => write!(f, "LOCKED({op})"),
        }
    }
}

/// This replica's role in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderRole {
    /// Follows the herald of the current term (or waits for one).
    Follower,
    /// Leads the order for the current term.
    Herald,
}

/// Settings the order takes from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderOptions {
    /// Number of shards keys hash into.
    pub shard_count: u32,
    /// Take a snapshot after this many entries were applied since the last one.
    pub snapshot_interval_entries: u64,
}

/// A committed-or-not entry still held in memory until it is applied.
#[derive(Clone, Debug)]
struct UnappliedEntry {
    index: LogIndex,
    term: Term,
    command: Command,
}

/// One replica of an order.
#[derive(Debug)]
pub struct Order {
    member_id: MemberId,
    options: OrderOptions,
    state: OrderState,
    role: OrderRole,
    hard_state: HardState,
    /// Last entry handed to the driver to persist.
    last_index: LogIndex,
    last_term: Term,
    /// Highest index the driver reported durable.
    durable_index: LogIndex,
    /// Highest index known committed.
    commit_index: LogIndex,
    /// Highest index handed to the shard workers (`Apply` emitted).
    applied_index: LogIndex,
    applied_term: Term,
    /// Entries persisted (or being persisted) and not yet applied, in index order.
    unapplied: VecDeque<UnappliedEntry>,
    /// Clients waiting for the commit of the entry at each index.
    waiting: BTreeMap<LogIndex, ReplyTo>,
    snapshot_index: LogIndex,
    snapshot_in_progress: bool,
}

impl Order {
    /// A replica resuming from `recovered`, with nothing in flight.
    pub fn new(member_id: MemberId, options: OrderOptions, recovered: RecoveredLog) -> Self {
        assert!(
            recovered.applied_index <= recovered.last_index,
            "recovered applied index {} beyond last index {}",
            recovered.applied_index,
            recovered.last_index
        );
        Order {
            member_id,
            options,
            state: OrderState::Bootstrap,
            role: OrderRole::Follower,
            hard_state: recovered.hard_state,
            last_index: recovered.last_index,
            last_term: recovered.last_term,
            // What was recovered from the log was durable before the restart.
            durable_index: recovered.last_index,
            commit_index: recovered.applied_index,
            applied_index: recovered.applied_index,
            applied_term: recovered.last_term,
            unapplied: VecDeque::new(),
            waiting: BTreeMap::new(),
            snapshot_index: recovered.snapshot_index,
            snapshot_in_progress: false,
        }
    }

    /// The order's state.
    pub fn state(&self) -> OrderState {
        self.state
    }

    /// This replica's role.
    pub fn role(&self) -> OrderRole {
        self.role
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.hard_state.term
    }

    /// Last log index handed out for persistence.
    pub fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// Highest committed index.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// Highest applied index.
    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    /// A sole member needs no votes: at its first tick it starts a new term as herald.
    pub(super) fn on_tick(&mut self, _now: Tick, actions: &mut Actions) {
        if self.role == OrderRole::Follower {
            self.become_herald(actions);
        }
    }

    fn become_herald(&mut self, actions: &mut Actions) {
        let term = self.hard_state.term + 1;
        self.hard_state = HardState {
            term,
            voted_for: self.member_id.get(),
            commit: 0,
        };
        self.role = OrderRole::Herald;
        self.state = OrderState::Active;
        // A herald commits an entry of its own term before it trusts older ones.
        let noop = self.next_entry(Command::Noop);
        actions.push(Action::Persist {
            hard_state: Some(self.hard_state),
            entries: vec![noop],
        });
    }

    /// Assigns the next index in the current term and remembers the command.
    fn next_entry(&mut self, command: Command) -> LogEntry {
        let index = self.last_index + 1;
        let term = self.hard_state.term;
        let data = command.to_bytes();
        self.unapplied.push_back(UnappliedEntry {
            index,
            term,
            command,
        });
        self.last_index = index;
        self.last_term = term;
        LogEntry { term, index, data }
    }

    pub(super) fn on_client(
        &mut self,
        reply_to: ReplyTo,
        request: ClientRequest,
        actions: &mut Actions,
    ) {
        if self.role != OrderRole::Herald {
            let reason = "this radiant's order has no herald yet (election in progress); retry \
                          shortly"
                .to_string();
            let result = Err(ErrorResponse::Unavailable { reason });
            actions.push(Action::Reply { reply_to, result });
            return;
        }
        let command = match request {
            ClientRequest::Get {
                key,
                consistency: _,
            } => {
                // A sole member is the order's whole majority: every acknowledged write
                // is applied before its acknowledgement, so any read mode is
                // linearizable here. Read-index begins with a second member.
                let shard = key_shard(&key, self.options.shard_count);
                actions.push(Action::Read {
                    shard,
                    key,
                    reply_to,
                });
                return;
            }
            ClientRequest::Ping => {
                let result = Ok(ClientResponse::Pong {
                    member_id: Some(self.member_id),
                });
                actions.push(Action::Reply { reply_to, result });
                return;
            }
            ClientRequest::Put {
                key,
                value,
                session,
            } => Command::Put {
                key,
                value,
                session,
            },
            ClientRequest::Delete { key, session } => Command::Delete { key, session },
            ClientRequest::Cas {
                key,
                expected,
                new,
                session,
            } => Command::Cas {
                key,
                expected,
                new,
                session,
            },
        };
        let entry = self.next_entry(command);
        self.waiting.insert(entry.index, reply_to);
        actions.push(Action::Persist {
            hard_state: None,
            entries: vec![entry],
        });
    }

    pub(super) fn on_durable(&mut self, index: LogIndex, actions: &mut Actions) {
        assert!(
            index <= self.last_index,
            "durable index {index} beyond last index {}",
            self.last_index
        );
        if index <= self.durable_index {
            return;
        }
        self.durable_index = index;
        // The sole member is a majority: durable here means committed.
        self.commit_index = self.durable_index;
        self.apply_committed(actions);
        self.maybe_snapshot(actions);
    }

    fn apply_committed(&mut self, actions: &mut Actions) {
        while let Some(entry) = self.unapplied.front() {
            if entry.index > self.commit_index {
                break;
            }
            let entry = self.unapplied.pop_front().expect("front exists");
            assert_eq!(entry.index, self.applied_index + 1, "applying out of order");
            self.applied_index = entry.index;
            self.applied_term = entry.term;
            let reply_to = self.waiting.remove(&entry.index);
            let Some(key) = entry.command.key() else {
                continue;
            };
            let shard = key_shard(key, self.options.shard_count);
            actions.push(Action::Apply {
                shard,
                index: entry.index,
                command: entry.command,
                reply_to,
            });
        }
    }

    fn maybe_snapshot(&mut self, actions: &mut Actions) {
        let since = self.applied_index - self.snapshot_index;
        if !self.snapshot_in_progress && since >= self.options.snapshot_interval_entries {
            self.snapshot_in_progress = true;
            actions.push(Action::Snapshot {
                index: self.applied_index,
                term: self.applied_term,
            });
        }
    }

    pub(super) fn on_snapshot_written(&mut self, index: LogIndex, actions: &mut Actions) {
        assert!(
            index <= self.applied_index,
            "snapshot {index} beyond applied {}",
            self.applied_index
        );
        self.snapshot_in_progress = false;
        if index > self.snapshot_index {
            self.snapshot_index = index;
            actions.push(Action::CompactLog { through: index });
        }
    }

    /// The snapshot is abandoned; the next apply past the interval asks again.
    pub(super) fn on_snapshot_failed(&mut self) {
        self.snapshot_in_progress = false;
    }

    /// Cheap invariants, checked after every step.
    pub(super) fn check_invariants(&self) {
        assert!(
            self.applied_index <= self.commit_index,
            "applied {} > commit {}",
            self.applied_index,
            self.commit_index
        );
        assert!(
            self.commit_index <= self.durable_index,
            "commit {} > durable {}",
            self.commit_index,
            self.durable_index
        );
        assert!(
            self.durable_index <= self.last_index,
            "durable {} > last {}",
            self.durable_index,
            self.last_index
        );
        assert!(
            self.snapshot_index <= self.applied_index,
            "snapshot {} > applied {}",
            self.snapshot_index,
            self.applied_index
        );
        debug_assert!(
            self.waiting.keys().all(|&index| index > self.applied_index),
            "a client waits for an entry that was already applied"
        );
        if self.role == OrderRole::Herald {
            assert_eq!(
                self.hard_state.voted_for,
                self.member_id.get(),
                "herald did not vote for itself"
            );
        }
    }
}
