//! A simulated radiant's disk, modelled on the WAL's guarantees: writes become durable
//! only when their (group) fsync completes, in order. At a crash, any prefix of the
//! unsynced writes may or may not have reached the platters, and the last of those
//! may be torn (a partial record, which recovery discards). Snapshots are durable when
//! written (the daemon fsyncs them before reporting).

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use radiant_protocol::{LogEntry, LogIndex, Term};

use crate::core::order::Membership;
use crate::core::prng::Prng;
use crate::core::HardState;
use crate::storage::state_machine::StateMachine;
use radiant_protocol::slots::ShardId;

/// A write the core asked for (`Action::Persist`), not yet fsynced.
#[derive(Clone, Debug)]
pub struct PendingWrite {
    /// The persist sequence to report durable.
    pub sequence: u64,
    /// Hard state record, if any.
    pub hard_state: Option<HardState>,
    /// Truncation point, if any.
    pub truncate_from: Option<LogIndex>,
    /// Entries to append.
    pub entries: Vec<LogEntry>,
    /// The tick its fsync completes.
    pub sync_at: u64,
}

/// A durable snapshot: its position and the encoded state (the transfer format too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSnapshot {
    /// Last included index.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
    /// Encoded membership, sessions and key-values.
    pub bytes: Bytes,
}

/// One radiant's durable state plus its writes in flight.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    /// Last durable hard state.
    pub hard_state: HardState,
    /// Durable log entries, contiguous.
    pub log: Vec<LogEntry>,
    /// Newest durable snapshot.
    pub snapshot: Option<SimSnapshot>,
    /// Writes waiting for their fsync.
    pub pending: VecDeque<PendingWrite>,
    /// The index the log continues at while it is empty (the WAL's first index): moved
    /// by resets and compactions, never by a snapshot alone, since writes issued before
    /// a snapshot still land in order.
    log_start: LogIndex,
    /// A compaction waiting for the writes queued before it (the WAL writer takes
    /// requests in order): (through index, last pending sequence at the time).
    pending_compaction: Option<(LogIndex, u64)>,
}

impl SimDisk {
    /// Queues a write whose fsync completes at `sync_at` (never before an earlier one).
    pub fn write(&mut self, mut write: PendingWrite) {
        if let Some(last) = self.pending.back() {
            write.sync_at = write.sync_at.max(last.sync_at);
        }
        self.pending.push_back(write);
    }

    /// Completes every fsync due by `now`; returns the highest sequence made durable.
    pub fn sync_due(&mut self, now: u64) -> Option<u64> {
        let mut durable = None;
        while self.pending.front().is_some_and(|write| write.sync_at <= now) {
            let write = self.pending.pop_front().expect("front exists");
            durable = Some(write.sequence);
            self.make_durable(write);
        }
        durable
    }

    fn make_durable(&mut self, write: PendingWrite) {
        if let Some(hard_state) = write.hard_state {
            self.hard_state = hard_state;
        }
        if let Some(from) = write.truncate_from {
            self.log.retain(|entry| entry.index < from);
        }
        for entry in write.entries {
            let expected = self.next_index();
            assert_eq!(
                entry.index, expected,
                "sim disk: entry {} written where {expected} belongs",
                entry.index
            );
            self.log.push(entry);
        }
    }

    fn next_index(&self) -> LogIndex {
        self.log.last().map_or(self.log_start.max(1), |entry| entry.index + 1)
    }

    /// A crash: a random prefix of the unsynced writes survives, the last survivor
    /// possibly torn (its last entry lost, or all of it when it holds no entries).
    /// A compaction still queued is lost (it was an optimisation).
    pub fn crash(&mut self, prng: &mut Prng) {
        self.pending_compaction = None;
        let writes: Vec<PendingWrite> = self.pending.drain(..).collect();
        let survivors = prng.range(0, writes.len() as u64 + 1) as usize;
        for (position, mut write) in writes.into_iter().take(survivors).enumerate() {
            let last = position + 1 == survivors;
            if last && prng.chance(1, 2) && write.entries.pop().is_none() {
                continue;
            }
            self.make_durable(write);
        }
    }

    /// Deletes entries through `through` once the writes queued before are durable; a
    /// snapshot must cover them.
    pub fn compact(&mut self, through: LogIndex) {
        match self.pending.back() {
            Some(last) => {
                let through =
                    self.pending_compaction.map_or(through, |(earlier, _)| earlier.max(through));
                self.pending_compaction = Some((through, last.sequence));
            }
            None => self.compact_now(through),
        }
    }

    fn compact_now(&mut self, through: LogIndex) {
        let covered = self.snapshot.as_ref().map_or(0, |snapshot| snapshot.index);
        assert!(
            through <= covered,
            "sim disk: compacting through {through} past the snapshot at {covered}"
        );
        let next = self.next_index();
        self.log.retain(|entry| entry.index > through);
        if self.log.is_empty() {
            self.log_start = next.max(through + 1);
        }
    }

    /// An installed snapshot replaces the whole log, including writes in flight.
    pub fn reset_log(&mut self) {
        self.log.clear();
        self.log_start = self.snapshot.as_ref().map_or(1, |snapshot| snapshot.index + 1);
        self.pending_compaction = None;
        for write in &mut self.pending {
            write.truncate_from = None;
            write.entries.clear();
        }
    }

    /// Whether the durable state holds the entry at `index` with `term`.
    pub fn holds(&self, index: LogIndex, term: Term) -> bool {
        if self.snapshot.as_ref().is_some_and(|snapshot| snapshot.index >= index) {
            return true;
        }
        self.log.iter().any(|entry| entry.index == index && entry.term == term)
    }
}

/// Encodes the state machine and membership as the simulator's snapshot (and
/// snapshot transfer) format: length-prefixed membership, then per shard its sessions
/// and its key-value pairs in key order.
pub fn encode_state(machine: &StateMachine, membership: &Membership) -> Bytes {
    let mut buffer = BytesMut::new();
    let membership = membership.encode();
    buffer.put_u32(membership.len() as u32);
    buffer.put_slice(&membership);
    buffer.put_u32(machine.shard_count());
    for shard in (0..machine.shard_count()).map(ShardId) {
        let sessions = machine.encode_sessions(shard);
        buffer.put_u32(sessions.len() as u32);
        buffer.put_slice(&sessions);
        let pairs = machine.map().clone_shard(shard);
        buffer.put_u32(pairs.len() as u32);
        for (key, value) in pairs {
            buffer.put_u32(key.len() as u32);
            buffer.put_slice(&key);
            buffer.put_u32(value.len() as u32);
            buffer.put_slice(&value);
        }
    }
    buffer.freeze()
}

/// Decodes `encode_state` into `machine` (cleared first); returns the membership.
pub fn decode_state(mut bytes: Bytes, machine: &StateMachine) -> Option<Membership> {
    fn take(bytes: &mut Bytes) -> Option<Bytes> {
        if bytes.remaining() < 4 {
            return None;
        }
        let length = bytes.get_u32() as usize;
        (bytes.remaining() >= length).then(|| bytes.split_to(length))
    }
    machine.clear();
    let membership = Membership::decode(take(&mut bytes)?)?;
    if bytes.remaining() < 4 || bytes.get_u32() != machine.shard_count() {
        return None;
    }
    for shard in (0..machine.shard_count()).map(ShardId) {
        machine.load_sessions(take(&mut bytes)?, &radiant_protocol::Limits::DEFAULT)?;
        if bytes.remaining() < 4 {
            return None;
        }
        let count = bytes.get_u32();
        for _ in 0..count {
            let key = take(&mut bytes)?;
            let value = take(&mut bytes)?;
            machine.map().put(shard, key, value);
        }
    }
    bytes.is_empty().then_some(membership)
}
