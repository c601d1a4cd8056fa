//! The one place the core's actions are taken apart: `carry_out` hands each `Action` to
//! the narrow interface that performs it. The daemon's state thread, the simulator and
//! the replication benchmark implement the interfaces and never match on `Action`, so a
//! changed action is one change here and one in each implementation the compiler names.
//!
//! This module owns the routing only; it does no I/O (the implementations do).

use bytes::Bytes;
use radiant_protocol::slots::ShardId;
use radiant_protocol::{
    ClientResponse, Command, ErrorResponse, InstallSnapshot, LogEntry, LogIndex, PeerHeader,
    PeerMessage, SystemMessage, Term,
};

use super::order::{HardState, Membership};
use super::shards::{ShardEffect, ShardTable};
use super::system::SystemRecord;
use super::{Action, ReplyTo};

/// Messages to peers and answers to clients.
pub trait Network {
    /// `Action::Send`.
    fn send_peer(&mut self, message: PeerMessage);
    /// `Action::SendSystem`.
    fn send_system(&mut self, to: String, message: SystemMessage);
    /// `Action::Reply`.
    fn reply(&mut self, reply_to: ReplyTo, result: Result<ClientResponse, ErrorResponse>);
    /// `Action::MembershipChanged`.
    fn membership_changed(&mut self, membership: Membership);
}

/// The write-ahead log.
pub trait LogStore {
    /// `Action::Persist`: the hard state, the truncation, then the entries; report
    /// `Input::Durable { sequence }` once durable.
    fn persist(
        &mut self,
        sequence: u64,
        hard_state: Option<HardState>,
        truncate_from: Option<LogIndex>,
        entries: Vec<LogEntry>,
    );
    /// `Action::CompactLog`.
    fn compact_log(&mut self, through: LogIndex);
    /// `Action::ResetLog`.
    fn reset_log(&mut self, snapshot_index: LogIndex);
}

/// The order's state as of a snapshot's index, besides the data.
#[derive(Debug)]
pub struct SnapshotState {
    pub membership: Membership,
    pub council: Option<Bytes>,
    pub shards: ShardTable,
}

/// Snapshot files: written locally, sent to and received from other members.
pub trait SnapshotStore {
    /// `Action::Snapshot`.
    fn write_snapshot(&mut self, position: (LogIndex, Term), state: SnapshotState);
    /// `Action::SendSnapshotChunk`.
    fn send_snapshot_chunk(
        &mut self,
        header: PeerHeader,
        position: (LogIndex, Term),
        offset: u64,
        max_bytes: u64,
    );
    /// `Action::WriteSnapshotChunk`.
    fn write_snapshot_chunk(&mut self, chunk: InstallSnapshot);
}

/// The system file.
pub trait SystemStore {
    /// `Action::PersistSystem`: durable before any later action is carried out.
    fn persist_system(&mut self, record: SystemRecord);
}

/// The key-value state machine, shard by shard in log order.
pub trait Apply {
    /// `Action::Apply`.
    fn apply(
        &mut self,
        shard: ShardId,
        index: LogIndex,
        command: Command,
        reply_to: Option<ReplyTo>,
    );
    /// `Action::Read`.
    fn read(&mut self, shard: ShardId, key: Bytes, reply_to: ReplyTo);
    /// `Action::CopyShard`.
    fn copy_shard(&mut self, shard: ShardId, index: LogIndex, reply_to: ReplyTo);
    /// `Action::ShardData`.
    fn shard_data(&mut self, effect: ShardEffect);
    /// `Action::ReadShardChunk`.
    fn read_shard_chunk(
        &mut self,
        shard: ShardId,
        number: u64,
        after: Option<Bytes>,
        max_bytes: u64,
    );
}

/// Everything a driver provides.
pub trait Effects: Network + LogStore + SnapshotStore + SystemStore + Apply {}

impl<T: Network + LogStore + SnapshotStore + SystemStore + Apply> Effects for T {}

/// Carries out one action of the core through `effects`.
pub fn carry_out(action: Action, effects: &mut impl Effects) {
    match action {
        Action::Send(message) => effects.send_peer(message),
        Action::SendSystem { to, message } => effects.send_system(to, message),
        Action::Reply { reply_to, result } => effects.reply(reply_to, result),
        Action::MembershipChanged(membership) => effects.membership_changed(membership),
        Action::Persist { sequence, hard_state, truncate_from, entries } => {
            effects.persist(sequence, hard_state, truncate_from, entries)
        }
        Action::CompactLog { through } => effects.compact_log(through),
        Action::ResetLog { snapshot_index, .. } => effects.reset_log(snapshot_index),
        Action::Snapshot { index, term, membership, council, shards } => {
            effects.write_snapshot((index, term), SnapshotState { membership, council, shards })
        }
        Action::SendSnapshotChunk { header, snapshot_index, snapshot_term, offset, max_bytes } => {
            effects.send_snapshot_chunk(header, (snapshot_index, snapshot_term), offset, max_bytes)
        }
        Action::WriteSnapshotChunk { chunk, .. } => effects.write_snapshot_chunk(chunk),
        Action::PersistSystem(record) => effects.persist_system(*record),
        Action::Apply { shard, index, command, reply_to } => {
            effects.apply(shard, index, command, reply_to)
        }
        Action::Read { shard, key, reply_to } => effects.read(shard, key, reply_to),
        Action::CopyShard { shard, index, reply_to } => effects.copy_shard(shard, index, reply_to),
        Action::ShardData(effect) => effects.shard_data(effect),
        Action::ReadShardChunk { shard, number, after, max_bytes } => {
            effects.read_shard_chunk(shard, number, after, max_bytes)
        }
    }
}
