//! One simulated radiant, and the one place its core's actions are carried out, for
//! every mode of the simulator: `step` runs the core on an input and hands each action to
//! `core::effects::carry_out` through `SimEffects`, which does to the radiant's simulated
//! disk, state machine and network what the daemon's state thread does to the real ones.
//! The [`Driver`] says where messages go, how long an fsync takes and what a crash does.

use std::collections::BTreeMap;

use bytes::Bytes;
use radiant_protocol::slots::ShardId;
use radiant_protocol::{
    ClientResponse, Command, ErrorResponse, InstallSnapshot, Limits, LogIndex, MemberId, PeerBody,
    PeerHeader, PeerMessage, SystemMessage, Term,
};

use super::disk::{SimRadiantStorage, SimStorage};
use super::driver::{index_of, Driver};
use super::network::{Endpoint, SimMessage};
use crate::core::effects;
use crate::core::order::membership::member_peer_address;
use crate::core::order::Membership;
use crate::core::shards::ShardEffect;
use crate::core::system::SystemRecord;
use crate::core::{Input, Radiant, ReplyTo, Tick};
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
    /// The radiant each member of its order is, by the peer address its membership gave:
    /// kept across membership changes while it runs (as the daemon never forgets a
    /// member's address, so a removed member still hears of its removal).
    pub peers: BTreeMap<MemberId, usize>,
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
            peers: BTreeMap::new(),
        }
    }

    /// A power loss: the process and everything its disk had not made durable are gone;
    /// it may start again at `restart_at`.
    pub fn crash(&mut self, restart_at: u64) {
        self.core = None;
        self.peers.clear();
        self.disk.crash();
        self.restart_at = restart_at;
    }
}

impl SimRadiant {
    /// Runs `core` from now on, knowing the members its order starts with.
    pub fn run(&mut self, core: Radiant) {
        if let Some(order) = core.order() {
            self.learn_peers(order.membership());
        }
        self.core = Some(core);
    }

    /// Remembers where every member of `membership` is.
    fn learn_peers(&mut self, membership: &Membership) {
        for &member in membership.addresses.keys() {
            let address = member_peer_address(membership, member);
            if let Some(index) = address.as_deref().and_then(index_of) {
                self.peers.insert(member, index);
            }
        }
    }
}

/// Runs radiant `index`'s core on `input`, carries out every action, then every input
/// those actions fed back. A core assertion is the error.
pub fn step(driver: &mut Driver, index: usize, input: Input) -> Result<(), String> {
    driver.followups.push_back((index, input));
    while let Some((index, input)) = driver.followups.pop_front() {
        let now = Tick(driver.now);
        let mut actions = std::mem::take(&mut driver.actions);
        let Some(core) = driver.radiants[index].core.as_mut() else {
            driver.actions = actions;
            continue;
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            core.step(now, input, &mut actions)
        }));
        if let Err(panic) = result {
            let message = super::panic_message(panic.as_ref());
            actions.drain().for_each(drop);
            driver.actions = actions;
            driver.followups.clear();
            return Err(format!("radiant {index} core assertion at tick {}: {message}", now.0));
        }
        for action in actions.drain() {
            if driver.radiants[index].core.is_none() {
                // Stopped by a disk error earlier in this batch: the rest never happens.
                continue;
            }
            effects::carry_out(action, &mut SimEffects { driver: &mut *driver, index });
        }
        driver.actions = actions;
    }
    Ok(())
}

/// Completes radiant `index`'s fsyncs due now and tells its core which writes are
/// durable; a failed sync stops the radiant.
pub fn complete_due_fsyncs(driver: &mut Driver, index: usize) -> Result<(), String> {
    let now = driver.now;
    let radiant = &mut driver.radiants[index];
    if radiant.core.is_none() {
        return Ok(());
    }
    match radiant.disk.sync_due(now) {
        Ok(Some(sequence)) => step(driver, index, Input::Durable { sequence }),
        Ok(None) => Ok(()),
        Err(error) => {
            driver.stop_on_disk_error(index, &error);
            Ok(())
        }
    }
}

/// What radiant `index`'s actions do in a simulator.
struct SimEffects<'a> {
    driver: &'a mut Driver,
    index: usize,
}

impl SimEffects<'_> {
    fn radiant(&mut self) -> &mut SimRadiant {
        &mut self.driver.radiants[self.index]
    }

    fn send_to_peer(&mut self, message: PeerMessage) {
        let Some(&to) = self.radiant().peers.get(&message.header.to) else { return };
        self.driver.send(
            Endpoint::Radiant(self.index),
            Endpoint::Radiant(to),
            SimMessage::Peer(message),
        );
    }

    fn answer(&mut self, reply_to: ReplyTo, result: Result<ClientResponse, ErrorResponse>) {
        let to = Endpoint::Client(reply_to.connection.0 as usize);
        let message = SimMessage::Reply { correlation: reply_to.correlation_id, result };
        self.driver.send(Endpoint::Radiant(self.index), to, message);
    }
}

impl effects::Network for SimEffects<'_> {
    fn send_peer(&mut self, message: PeerMessage) {
        self.send_to_peer(message);
    }

    fn send_system(&mut self, to: String, message: SystemMessage) {
        let Some(to) = index_of(&to) else { return };
        self.driver.send(
            Endpoint::Radiant(self.index),
            Endpoint::Radiant(to),
            SimMessage::System(message),
        );
    }

    fn reply(&mut self, reply_to: ReplyTo, result: Result<ClientResponse, ErrorResponse>) {
        self.answer(reply_to, result);
    }

    fn membership_changed(&mut self, membership: Membership) {
        self.radiant().learn_peers(&membership);
    }
}

impl SimRadiantStorage for SimEffects<'_> {
    fn storage(&mut self) -> &mut SimStorage {
        &mut self.radiant().disk
    }

    fn fsync_done_at(&mut self) -> u64 {
        self.driver.fsync_done_at()
    }

    fn stop_on_disk_error(&mut self, error: &dyn std::fmt::Display) {
        self.driver.stop_on_disk_error(self.index, error);
    }
}

impl effects::SnapshotStore for SimEffects<'_> {
    /// Through the daemon's own snapshot code on the radiant's disk; now and then a
    /// crash cuts the write short (the daemon writes snapshots on their own thread).
    fn write_snapshot(&mut self, (index, term): (LogIndex, Term), state: effects::SnapshotState) {
        if let Some(pairs_written) = self.driver.snapshot_cut_short() {
            let radiant = self.radiant();
            radiant.disk.write_snapshot_cut_short((index, term), &radiant.machine, pairs_written);
            self.driver.crash(self.index);
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
                self.driver.counts.snapshots_written += 1;
                let written = Input::SnapshotWritten { index, term };
                self.driver.followups.push_back((self.index, written));
            }
            Err(error) => self.driver.stop_on_disk_error(self.index, &error),
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
                    self.driver.counts.snapshots_installed += 1;
                    Input::SnapshotInstalled {
                        index: snapshot_index,
                        term,
                        membership: received.membership,
                        council: received.council,
                        shards: received.shards,
                    }
                }
                Err(reason) => {
                    self.driver.fail(format!("radiant {index}: a received snapshot: {reason}"));
                    return;
                }
            },
            Err(error @ SnapshotError::Io { .. }) => {
                self.driver.stop_on_disk_error(index, &error);
                return;
            }
            Err(error) => {
                self.driver.fail(format!("radiant {index}: a received snapshot: {error}"));
                return;
            }
        };
        self.driver.followups.push_back((index, input));
    }
}

impl effects::SystemStore for SimEffects<'_> {
    /// As the daemon does: written before any later action, and a radiant that cannot
    /// write it stops.
    fn persist_system(&mut self, record: SystemRecord) {
        let radiant = self.radiant();
        match system_file::write(&radiant.disk.data_dir(), &record) {
            Ok(()) => radiant.record = record,
            Err(error) => {
                radiant.record_unsure = Some(record);
                self.driver.stop_on_disk_error(self.index, &error);
            }
        }
    }
}

impl effects::Apply for SimEffects<'_> {
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
        self.driver.followups.push_back((self.index, Input::ShardChunkRead(chunk)));
    }
}
