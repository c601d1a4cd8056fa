//! One simulated radiant, and the one place its core's actions are carried out, for
//! every simulator: `step` runs the core on an input and hands each action to
//! `core::effects::carry_out` through `SimEffects`, which does to the radiant's simulated
//! disk, state machine and network what the daemon's state thread does to the real ones.
//! A simulator is a `SimWorld`: it says where messages go, how long an fsync takes,
//! what a crash does and what counts as a failure.

use std::collections::VecDeque;

use bytes::Bytes;
use radiant_protocol::slots::ShardId;
use radiant_protocol::{
    ClientResponse, Command, ErrorResponse, InstallSnapshot, Limits, LogIndex, MemberId, PeerBody,
    PeerHeader, PeerMessage, SystemMessage, Term,
};

use super::disk::{SimRadiantStorage, SimStorage};
use super::network::{Endpoint, SimMessage};
use crate::core::effects;
use crate::core::order::Membership;
use crate::core::shards::ShardEffect;
use crate::core::system::SystemRecord;
use crate::core::{Actions, Input, Radiant, ReplyTo, Tick};
use crate::storage::snapshot::SnapshotError;
use crate::storage::state_machine::StateMachine;
use crate::storage::state_snapshot::OrderSections;
use crate::storage::system_file;

/// One simulated radiant: its core while it runs, its disk, its key-value data.
#[derive(Debug)]
pub struct SimRadiant {
    /// The core (none while the radiant is down).
    pub core: Option<Radiant>,
    /// Its real WAL, snapshots and system file on its own simulated disk, and what it
    /// promised to keep.
    pub disk: SimStorage,
    /// The key-value data: rebuilt by recovery at each start.
    pub machine: StateMachine,
    /// The system record last written (the system file holds it, or the one before it
    /// when `record_unsure` says the write failed part-way).
    pub record: SystemRecord,
    /// A system record whose write failed part-way.
    pub record_unsure: Option<SystemRecord>,
    /// The tick it may start again after a crash.
    pub restart_at: u64,
    /// How many times it has started.
    pub incarnation: u64,
}

impl SimRadiant {
    /// A radiant before its first start: an empty disk, nothing running.
    pub fn new(disk: SimStorage, shard_count: u32) -> SimRadiant {
        SimRadiant {
            core: None,
            disk,
            machine: StateMachine::new(shard_count),
            record: SystemRecord::default(),
            record_unsure: None,
            restart_at: 0,
            incarnation: 0,
        }
    }

    /// A power loss: the process and everything its disk had not made durable are gone;
    /// it may start again at `restart_at`.
    pub fn crash(&mut self, restart_at: u64) {
        self.core = None;
        self.disk.crash();
        self.restart_at = restart_at;
    }
}

/// What a simulator gives its radiants' actions.
pub trait SimWorld {
    /// The current tick.
    fn now(&self) -> u64;
    /// Radiant `index`.
    fn radiant(&mut self, index: usize) -> &mut SimRadiant;
    /// The buffer `step` collects a core's actions in.
    fn actions(&mut self) -> &mut Actions;
    /// Inputs the radiants' own effects produced, fed back after the current step.
    fn followups(&mut self) -> &mut VecDeque<(usize, Input)>;
    /// Sends `message` from radiant `from` over the seeded network.
    fn send(&mut self, from: usize, to: Endpoint, message: SimMessage);
    /// The radiant that member `member` of radiant `from`'s order is.
    fn peer_index(&self, from: usize, member: MemberId) -> Option<usize>;
    /// The radiant at system peer address `address`.
    fn system_index(&self, address: &str) -> Option<usize>;
    /// The tick a persist issued now has its fsync done.
    fn fsync_done_at(&mut self) -> u64;
    /// A write or sync failed: the radiant stops (fail-stop, as the daemon does).
    fn stop_on_disk_error(&mut self, index: usize, error: &dyn std::fmt::Display);
    /// Whether the snapshot being written is cut short by a crash, and after how many
    /// pairs (drawn from the seed).
    fn snapshot_cut_short(&mut self) -> Option<usize>;
    /// Radiant `index` loses power.
    fn crash(&mut self, index: usize);
    /// A found bug.
    fn fail(&mut self, message: String);
    /// Radiant `index` wrote a snapshot of its own (counted for the report).
    fn snapshot_written(&mut self, _index: usize) {}
    /// Radiant `index` installed a snapshot from its herald (counted for the report).
    fn snapshot_installed(&mut self, index: usize);
}

/// Runs radiant `index`'s core on `input`, carries out every action, then every input
/// those actions fed back. A core assertion is the error.
pub fn step<W: SimWorld>(world: &mut W, index: usize, input: Input) -> Result<(), String> {
    world.followups().push_back((index, input));
    while let Some((index, input)) = world.followups().pop_front() {
        let now = Tick(world.now());
        let mut actions = std::mem::take(world.actions());
        let Some(core) = world.radiant(index).core.as_mut() else {
            *world.actions() = actions;
            continue;
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            core.step(now, input, &mut actions)
        }));
        if let Err(panic) = result {
            let message = super::panic_message(panic.as_ref());
            actions.drain().for_each(drop);
            *world.actions() = actions;
            world.followups().clear();
            return Err(format!("radiant {index} core assertion at tick {}: {message}", now.0));
        }
        for action in actions.drain() {
            if world.radiant(index).core.is_none() {
                // Stopped by a disk error earlier in this batch: the rest never happens.
                continue;
            }
            effects::carry_out(action, &mut SimEffects { world: &mut *world, index });
        }
        *world.actions() = actions;
    }
    Ok(())
}

/// Completes radiant `index`'s fsyncs due now and tells its core which writes are
/// durable; a failed sync stops the radiant.
pub fn complete_due_fsyncs<W: SimWorld>(world: &mut W, index: usize) -> Result<(), String> {
    let now = world.now();
    let radiant = world.radiant(index);
    if radiant.core.is_none() {
        return Ok(());
    }
    match radiant.disk.sync_due(now) {
        Ok(Some(sequence)) => step(world, index, Input::Durable { sequence }),
        Ok(None) => Ok(()),
        Err(error) => {
            world.stop_on_disk_error(index, &error);
            Ok(())
        }
    }
}

/// What radiant `index`'s actions do in a simulator.
struct SimEffects<'a, W> {
    world: &'a mut W,
    index: usize,
}

impl<W: SimWorld> SimEffects<'_, W> {
    fn radiant(&mut self) -> &mut SimRadiant {
        self.world.radiant(self.index)
    }

    fn send_to_peer(&mut self, message: PeerMessage) {
        let Some(to) = self.world.peer_index(self.index, message.header.to) else { return };
        self.world.send(self.index, Endpoint::Radiant(to), SimMessage::Peer(message));
    }

    fn answer(&mut self, reply_to: ReplyTo, result: Result<ClientResponse, ErrorResponse>) {
        let to = Endpoint::Client(reply_to.connection.0 as usize);
        let message = SimMessage::Reply { correlation: reply_to.correlation_id, result };
        self.world.send(self.index, to, message);
    }
}

impl<W: SimWorld> effects::Network for SimEffects<'_, W> {
    fn send_peer(&mut self, message: PeerMessage) {
        self.send_to_peer(message);
    }

    fn send_system(&mut self, to: String, message: SystemMessage) {
        let Some(to) = self.world.system_index(&to) else { return };
        self.world.send(self.index, Endpoint::Radiant(to), SimMessage::System(message));
    }

    fn reply(&mut self, reply_to: ReplyTo, result: Result<ClientResponse, ErrorResponse>) {
        self.answer(reply_to, result);
    }

    fn membership_changed(&mut self, _membership: Membership) {}
}

impl<W: SimWorld> SimRadiantStorage for SimEffects<'_, W> {
    fn storage(&mut self) -> &mut SimStorage {
        &mut self.radiant().disk
    }

    fn fsync_done_at(&mut self) -> u64 {
        self.world.fsync_done_at()
    }

    fn stop_on_disk_error(&mut self, error: &dyn std::fmt::Display) {
        self.world.stop_on_disk_error(self.index, error);
    }
}

impl<W: SimWorld> effects::SnapshotStore for SimEffects<'_, W> {
    /// Through the daemon's own snapshot code on the radiant's disk; now and then a
    /// crash cuts the write short (the daemon writes snapshots on their own thread).
    fn write_snapshot(&mut self, (index, term): (LogIndex, Term), state: effects::SnapshotState) {
        if let Some(pairs_written) = self.world.snapshot_cut_short() {
            let radiant = self.radiant();
            radiant.disk.write_snapshot_cut_short((index, term), &radiant.machine, pairs_written);
            self.world.crash(self.index);
            return;
        }
        let shards = state.shards.encode();
        let sections = OrderSections {
            membership: &state.membership,
            council: state.council.as_ref(),
            shards: &shards,
        };
        let radiant = self.radiant();
        match radiant.disk.write_snapshot((index, term), &radiant.machine, sections) {
            Ok(()) => {
                self.world.snapshot_written(self.index);
                let written = Input::SnapshotWritten { index, term };
                self.world.followups().push_back((self.index, written));
            }
            Err(error) => self.world.stop_on_disk_error(self.index, &error),
        }
    }

    fn send_snapshot_chunk(
        &mut self,
        header: PeerHeader,
        (snapshot_index, snapshot_term): (LogIndex, Term),
        offset: u64,
        max_bytes: u64,
    ) {
        let disk = &self.radiant().disk;
        let Some((chunk, total)) = disk.read_snapshot_chunk(snapshot_index, offset, max_bytes)
        else {
            return;
        };
        let chunk = InstallSnapshot {
            snapshot_index,
            snapshot_term,
            offset,
            total_bytes: total,
            done: offset + chunk.len() as u64 == total,
            chunk,
        };
        self.send_to_peer(PeerMessage { header, body: PeerBody::InstallSnapshot(chunk) });
    }

    fn write_snapshot_chunk(&mut self, chunk: InstallSnapshot) {
        let index = self.index;
        let radiant = self.radiant();
        let shard_count = radiant.machine.shard_count();
        let (snapshot_index, term) = (chunk.snapshot_index, chunk.snapshot_term);
        let input = match radiant.disk.receive_snapshot_chunk(&chunk, shard_count) {
            Ok(next_offset) if !chunk.done => {
                Input::SnapshotChunkWritten { snapshot_index, next_offset }
            }
            Ok(_) => match radiant.disk.load_received(&radiant.machine, (snapshot_index, term)) {
                Ok(received) => {
                    self.world.snapshot_installed(index);
                    Input::SnapshotInstalled {
                        index: snapshot_index,
                        term,
                        membership: received.membership,
                        council: received.council,
                        shards: received.shards,
                    }
                }
                Err(reason) => {
                    self.world.fail(format!("radiant {index}: a received snapshot: {reason}"));
                    return;
                }
            },
            Err(error @ SnapshotError::Io { .. }) => {
                self.world.stop_on_disk_error(index, &error);
                return;
            }
            Err(error) => {
                self.world.fail(format!("radiant {index}: a received snapshot: {error}"));
                return;
            }
        };
        self.world.followups().push_back((index, input));
    }
}

impl<W: SimWorld> effects::SystemStore for SimEffects<'_, W> {
    /// As the daemon does: written before any later action, and a radiant that cannot
    /// write it stops.
    fn persist_system(&mut self, record: SystemRecord) {
        let radiant = self.radiant();
        match system_file::write(&radiant.disk.data_dir(), &record) {
            Ok(()) => radiant.record = record,
            Err(error) => {
                radiant.record_unsure = Some(record);
                self.world.stop_on_disk_error(self.index, &error);
            }
        }
    }
}

impl<W: SimWorld> effects::Apply for SimEffects<'_, W> {
    fn apply(
        &mut self,
        shard: ShardId,
        index: LogIndex,
        command: Command,
        reply_to: Option<ReplyTo>,
    ) {
        let response = self.radiant().machine.apply(shard, index, command);
        if let Some(reply_to) = reply_to {
            self.answer(reply_to, Ok(response));
        }
    }

    fn read(&mut self, shard: ShardId, key: Bytes, reply_to: ReplyTo) {
        let value = self.radiant().machine.get(shard, &key);
        self.answer(reply_to, Ok(ClientResponse::GetResult { value }));
    }

    /// The simulated clients take no backups; an answer keeps the request from
    /// hanging if one ever did.
    fn copy_shard(&mut self, _shard: ShardId, _index: LogIndex, reply_to: ReplyTo) {
        let reason = "the simulator keeps no shard copies for backups".to_string();
        self.answer(reply_to, Err(ErrorResponse::BadRequest { reason }));
    }

    fn shard_data(&mut self, effect: ShardEffect) {
        self.radiant().machine.apply_shard_effect(effect, &Limits::DEFAULT);
    }

    /// Read now and fed back after the step (the daemon's shard worker answers later).
    fn read_shard_chunk(
        &mut self,
        shard: ShardId,
        number: u64,
        after: Option<Bytes>,
        max_bytes: u64,
    ) {
        let chunk = self.radiant().machine.read_chunk(shard, number, after, max_bytes);
        self.world.followups().push_back((self.index, Input::ShardChunkRead(chunk)));
    }
}
