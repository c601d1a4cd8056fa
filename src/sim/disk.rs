//! What a simulated radiant has promised to keep: the log and hard state as of its last
//! completed (group) fsync, in order, and its snapshot (the daemon fsyncs snapshots before
//! reporting them). The radiant's real WAL runs beside it on a `MemoryFileSystem`; at each
//! restart the simulator checks that what the WAL recovered keeps every promise here, then
//! adopts the recovered log as the new promise.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use radiant_protocol::{LogEntry, LogIndex, OrderId, Term};

use crate::core::effects;
use crate::core::order::Membership;
use crate::core::shards::ShardTable;
use crate::core::{HardState, RecoveredOrder};
use crate::storage::file_system::DataDir;
use crate::storage::memory_file_system::{DiskFaults, FaultCounts, MemoryFileSystem};
use crate::storage::recovery::{self, ReceivedSections, RecoveryError, RecoveryOptions};
use crate::storage::snapshot::{SnapshotError, SnapshotWriter};
use crate::storage::state_machine::StateMachine;
use crate::storage::state_snapshot::{self, OrderSections, ReceiveLimits, ShardDump};
use crate::storage::wal::{Wal, WalError, WalOptions};
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

/// The position of the newest snapshot a radiant published (its file holds the state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimSnapshot {
    /// Last included index.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
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

    /// The core truncated the log from `from`: the WAL does that durably before it returns,
    /// so no promise about those entries stands any more, written or still queued.
    pub fn release_from(&mut self, from: LogIndex) {
        self.log.retain(|entry| entry.index < from);
        for write in &mut self.pending {
            write.entries.retain(|entry| entry.index < from);
        }
    }

    /// Whether an fsync completes by `now`.
    pub fn sync_is_due(&self, now: u64) -> bool {
        self.pending.front().is_some_and(|write| write.sync_at <= now)
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

    /// A crash: what was not synced is no longer promised. (What the radiant's real WAL
    /// kept of it is what `adopt` is given at the restart.)
    pub fn forget_unsynced(&mut self) {
        self.pending_compaction = None;
        self.pending.clear();
    }

    /// The entries and hard state promised at the crash that `recovered` (what the real WAL
    /// returned) is missing, as a description; `None` when it kept every promise. Entries a
    /// snapshot covers need not be in the log.
    pub fn broken_promise(&self, hard_state: HardState, entries: &[LogEntry]) -> Option<String> {
        let covered = self.snapshot.as_ref().map_or(0, |snapshot| snapshot.index);
        let promised = self.hard_state;
        if !hard_state.keeps_promise_of(&promised) {
            return Some(format!(
                "hard state {promised:?} was synced, the WAL returned {hard_state:?}"
            ));
        }
        let first = entries.first().map_or(0, |entry| entry.index);
        for entry in self.log.iter().filter(|entry| entry.index > covered) {
            let kept = entry
                .index
                .checked_sub(first)
                .and_then(|offset| entries.get(offset as usize))
                .is_some_and(|found| found.index == entry.index && found.term == entry.term);
            if !kept {
                return Some(format!(
                    "entry {} of term {} was synced, the WAL returned entries {first}..={}",
                    entry.index,
                    entry.term,
                    entries.last().map_or(0, |entry| entry.index)
                ));
            }
        }
        None
    }

    /// After a restart: the durable state is what the real WAL recovered.
    pub fn adopt(&mut self, hard_state: HardState, first_index: LogIndex, entries: Vec<LogEntry>) {
        self.forget_unsynced();
        self.hard_state = hard_state;
        self.log = entries;
        self.log_start = first_index;
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
        // The WAL continues after the compaction point, also when entries after it remain:
        // a truncation that later removes them leaves the log starting there, not at 1.
        self.log_start = self.log_start.max(through + 1);
        if self.log.is_empty() {
            self.log_start = self.log_start.max(next);
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

/// A simulated radiant's storage: its real WAL on its own `MemoryFileSystem`, with the
/// `SimDisk` of what it promised beside it. Both simulators keep their radiants' logs here,
/// so they share one crash and one restart.
#[derive(Debug)]
pub struct SimStorage {
    /// What the radiant promised to keep (the checker's model of its durable state); after
    /// a restart, what its WAL recovered.
    pub promised: SimDisk,
    file_system: MemoryFileSystem,
    wal: Option<Wal>,
}

/// Why a simulated radiant could not start.
#[derive(Debug)]
pub enum StartFailure {
    /// Its log is damaged: it refuses to start, for good. Only a found bug when no bit of
    /// the disk was flipped.
    Refused { reason: String, disk_was_damaged: bool },
    /// An I/O error during recovery: it tries again later.
    DiskError(String),
}

/// Where each simulated radiant keeps its data on its own simulated disk.
const SIM_DATA_DIR: &str = "/radiant";

/// Small segments, so rotation and compaction happen often; the default limits.
const SIM_RECOVERY: RecoveryOptions = RecoveryOptions {
    wal: WalOptions {
        segment_max_bytes: 4096,
        max_record_bytes: crate::storage::wal::MAX_RECORD_BYTES,
    },
    limits: radiant_protocol::Limits::DEFAULT,
};

impl SimStorage {
    /// An empty disk with `faults`, drawn from `seed`.
    pub fn new(seed: u64, faults: DiskFaults) -> SimStorage {
        let file_system = MemoryFileSystem::new(seed, faults);
        SimStorage { promised: SimDisk::default(), file_system, wal: None }
    }

    /// The radiant's data directory on its simulated disk (for the system file).
    pub fn data_dir(&self) -> DataDir {
        DataDir { file_system: Arc::new(self.file_system.clone()), path: SIM_DATA_DIR.into() }
    }

    /// Switches the disk's faults off (the liveness phase: nothing crashes any more).
    pub fn calm(&self) {
        self.file_system.set_faults(DiskFaults::default());
    }

    /// Replaces the disk's faults (a scenario that starts flipping bits only later).
    pub fn set_faults(&self, faults: DiskFaults) {
        self.file_system.set_faults(faults);
    }

    /// Whether any bit of this disk's synced data was flipped: damage it may refuse.
    pub fn was_damaged(&self) -> bool {
        self.file_system.fault_counts().bits_flipped > 0
    }

    /// What the disk's faults have done.
    pub fn fault_counts(&self) -> FaultCounts {
        self.file_system.fault_counts()
    }

    fn wal(&mut self) -> &mut Wal {
        self.wal.as_mut().expect("sim: a running radiant has its WAL open")
    }

    /// Carries out one `Action::Persist`: written to the WAL now, promised when its fsync
    /// completes (`sync_due`).
    pub fn persist(&mut self, write: PendingWrite) -> Result<(), WalError> {
        if let Some(from) = write.truncate_from {
            self.promised.release_from(from);
        }
        self.wal().write_persist(write.hard_state, write.truncate_from, &write.entries)?;
        self.promised.write(write);
        Ok(())
    }

    /// Completes the fsyncs due by `now`: syncs the WAL and returns the highest persist
    /// sequence now durable.
    pub fn sync_due(&mut self, now: u64) -> Result<Option<u64>, WalError> {
        if !self.promised.sync_is_due(now) {
            return Ok(None);
        }
        self.wal().sync()?;
        Ok(self.promised.sync_due(now))
    }

    /// `Action::CompactLog`: a snapshot covers the entries through `through`.
    pub fn compact(&mut self, through: LogIndex) -> Result<(), WalError> {
        self.promised.compact(through);
        self.wal().compact_prefix(through)
    }

    /// `Action::ResetLog` (or a recovery that finds its snapshot ahead of its log): the log
    /// continues after the snapshot.
    pub fn reset_log(&mut self, snapshot_index: LogIndex) -> Result<(), WalError> {
        self.promised.reset_log();
        self.wal().reset_to(snapshot_index + 1)
    }

    /// A power loss: the process and everything the disk had not made durable are gone.
    pub fn crash(&mut self) {
        self.wal = None;
        self.file_system.crash();
        self.promised.forget_unsynced();
    }

    /// A write or sync failed, so the radiant stops as the daemon does (fail-stop): panics
    /// if no fault was injected, since then the storage code itself is wrong.
    pub fn assert_error_was_injected(&self, error: &dyn std::fmt::Display) {
        let counts = self.file_system.fault_counts();
        assert!(
            counts.write_errors + counts.sync_errors > 0,
            "sim: storage failed with no disk fault injected: {error}"
        );
    }

    /// Carries out `Action::Snapshot` with the daemon's own snapshot code: `machine`'s
    /// shards and `sections` written, synced and published before it returns.
    pub fn write_snapshot(
        &mut self,
        (index, term): (LogIndex, Term),
        machine: &StateMachine,
        sections: OrderSections<'_>,
    ) -> Result<(), SnapshotError> {
        let shard_count = machine.shard_count();
        let dumps = (0..shard_count).map(|shard| ShardDump::of(machine, ShardId(shard)));
        state_snapshot::write(&self.data_dir(), (index, term), shard_count, sections, dumps)?;
        self.promised.snapshot = Some(SimSnapshot { index, term });
        Ok(())
    }

    /// The power fails while snapshot (`index`, `term`) is being written: some of
    /// `machine`'s pairs reach the file, it is never published, and the caller crashes the
    /// radiant. (The daemon writes snapshots on their own thread, so this is as likely as
    /// a crash at any other moment of the write.)
    pub fn write_snapshot_cut_short(
        &mut self,
        (index, term): (LogIndex, Term),
        machine: &StateMachine,
        pairs_written: usize,
    ) {
        let shard_count = machine.shard_count();
        let Ok(mut writer) = SnapshotWriter::create(&self.data_dir(), index, term, shard_count)
        else {
            return;
        };
        let pairs = (0..shard_count)
            .flat_map(|shard| {
                let shard = ShardId(shard);
                machine.map().clone_shard(shard).into_iter().map(move |pair| (shard, pair))
            })
            .take(pairs_written);
        for (shard, (key, value)) in pairs {
            if writer.write_key_value(shard, &key, &value).is_err() {
                return;
            }
        }
        // Dropped unfinished: whatever its buffer held reaches the file, nothing more.
    }

    /// A chunk of the newest snapshot for a member that is behind: `None` when snapshot
    /// `index` is no longer the newest (the herald restarts the transfer later).
    pub fn read_snapshot_chunk(
        &self,
        index: LogIndex,
        offset: u64,
        max_bytes: u64,
    ) -> Option<(Bytes, u64)> {
        if self.promised.snapshot.map(|snapshot| snapshot.index) != Some(index) {
            return None;
        }
        state_snapshot::read_chunk(&self.data_dir(), index, offset, max_bytes).ok()
    }

    /// Stores a chunk of snapshot (`index`, `term`) arriving from the herald; the last
    /// one installs it. Returns the next expected offset.
    pub fn receive_snapshot_chunk(
        &mut self,
        chunk: &radiant_protocol::InstallSnapshot,
        shard_count: u32,
    ) -> Result<u64, SnapshotError> {
        let checks = ReceiveLimits { limits: SIM_RECOVERY.snapshot_limits(), shard_count };
        let next = state_snapshot::receive_chunk(&self.data_dir(), chunk, checks)?;
        if chunk.done {
            let (index, term) = (chunk.snapshot_index, chunk.snapshot_term);
            self.promised.snapshot = Some(SimSnapshot { index, term });
        }
        Ok(next)
    }

    /// Loads a snapshot just received at `(index, term)` into `machine`, as the daemon
    /// installs one (`storage::recovery::load_received`). Its last chunk already made it
    /// the promise (`receive_snapshot_chunk`).
    pub fn load_received(
        &self,
        machine: &StateMachine,
        position: (LogIndex, Term),
    ) -> Result<ReceivedSections, String> {
        let membership = Membership::default();
        recovery::load_received(&self.data_dir(), &SIM_RECOVERY, machine, position, membership)
    }

    fn broken(&self, reason: String) -> StartFailure {
        StartFailure::Refused { reason, disk_was_damaged: false }
    }

    /// Starts the radiant's storage through the daemon's own recovery
    /// (`storage::recovery::recover`): the newest snapshot, then the real WAL, replayed
    /// into `machine` from `start` (the order's starting membership, id and shard table).
    /// `Ok((Some(broken), _))` names a promise the recovered state broke (a found bug);
    /// either way the recovered log is the new promise.
    pub fn recover(
        &mut self,
        machine: &StateMachine,
        start: (Membership, (OrderId, ShardTable)),
    ) -> Result<(Option<String>, RecoveredOrder), StartFailure> {
        let data_dir = self.data_dir();
        let promised = &mut self.promised;
        let mut broken = None;
        let recovered = recovery::recover(&data_dir, &SIM_RECOVERY, machine, start, |found| {
            broken = promised.broken_promise(found.hard_state, &found.entries);
            promised.adopt(found.hard_state, found.first_index, found.entries.clone());
        })
        .map_err(|error| self.recovery_failure(error))?;
        let order = recovered.order;
        let loaded = (order.snapshot_index > 0)
            .then_some(SimSnapshot { index: order.snapshot_index, term: order.snapshot_term });
        self.keep_snapshot_promise(loaded)?;
        if recovered.log_reset {
            self.promised.reset_log();
        }
        self.wal = Some(recovered.wal);
        Ok((broken, order))
    }

    /// Checks that the snapshot recovery loaded at a start is no older than the one
    /// published last, and makes it the promise.
    fn keep_snapshot_promise(&mut self, loaded: Option<SimSnapshot>) -> Result<(), StartFailure> {
        let promised = self.promised.snapshot.map_or(0, |snapshot| snapshot.index);
        match loaded {
            None if promised > 0 => {
                Err(self.broken(format!("snapshot {promised} was published, none is left")))
            }
            None => Ok(()),
            Some(loaded) if loaded.index < promised => {
                Err(self
                    .broken(format!("snapshot {promised} was published, {} loaded", loaded.index)))
            }
            Some(loaded) => {
                self.promised.snapshot = Some(loaded);
                Ok(())
            }
        }
    }

    /// Why recovery refused: damage (a found bug unless bits were flipped), or an I/O
    /// error (the radiant tries again later).
    fn recovery_failure(&self, error: RecoveryError) -> StartFailure {
        let disk_was_damaged = self.was_damaged();
        match error {
            RecoveryError::Wal(WalError::Corrupt { .. })
            | RecoveryError::Snapshot(SnapshotError::Corrupt { .. })
            | RecoveryError::Gap { .. } => {
                StartFailure::Refused { reason: error.to_string(), disk_was_damaged }
            }
            RecoveryError::Command { .. } => self.broken(error.to_string()),
            RecoveryError::Wal(_) | RecoveryError::Snapshot(_) => {
                StartFailure::DiskError(error.to_string())
            }
        }
    }
}

/// One simulated radiant's storage as the executor reaches it, so the core's log actions
/// are carried out here, beside the `SimStorage` they change, and a disk error stops the
/// radiant.
pub trait SimRadiantStorage {
    /// The radiant's storage.
    fn storage(&mut self) -> &mut SimStorage;
    /// The tick a persist issued now has its fsync done (drawn from the simulator's seed).
    fn fsync_done_at(&mut self) -> u64;
    /// Stops the radiant after a write or sync failed.
    fn stop_on_disk_error(&mut self, error: &dyn std::fmt::Display);
}

impl<T: SimRadiantStorage> effects::LogStore for T {
    fn persist(
        &mut self,
        sequence: u64,
        hard_state: Option<HardState>,
        truncate_from: Option<LogIndex>,
        entries: Vec<LogEntry>,
    ) {
        let sync_at = self.fsync_done_at();
        let write = PendingWrite { sequence, hard_state, truncate_from, entries, sync_at };
        if let Err(error) = self.storage().persist(write) {
            self.stop_on_disk_error(&error);
        }
    }

    fn compact_log(&mut self, through: LogIndex) {
        if let Err(error) = self.storage().compact(through) {
            self.stop_on_disk_error(&error);
        }
    }

    fn reset_log(&mut self, snapshot_index: LogIndex) {
        if let Err(error) = self.storage().reset_log(snapshot_index) {
            self.stop_on_disk_error(&error);
        }
    }
}
