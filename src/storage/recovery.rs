//! Start-up recovery: load the newest snapshot (key-values, session tables and
//! membership), then replay the write-ahead log past it through the last persisted
//! commit index. Entries after that go to the core, which applies them once it learns
//! they are committed. The radiant resumes with exactly the state it had durably.
//!
//! The daemon and the simulator both start radiants through `recover`: the daemon on
//! its real data directory, the simulator on a faulty in-memory one, where it checks the
//! result against what each radiant had synced before its crash.

use radiant_protocol::{DecodeError, Limits, LogEntry, LogIndex, OrderId};
use tracing::{info, warn};

use crate::core::order::Membership;
use crate::core::shards::ShardTable;
use crate::core::RecoveredOrder;
use crate::storage::file_system::DataDir;
use crate::storage::snapshot::{self, SnapshotError, SnapshotLimits};
use crate::storage::state_machine::StateMachine;
use crate::storage::state_snapshot::{self, Sections};
use crate::storage::wal::{self, Wal, WalError, WalOptions};

/// Why recovery refused to start the radiant.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The write-ahead log is unreadable.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The newest snapshot is unreadable.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A log entry passed its checksum but does not decode as a command.
    #[error(
        "log entry {index} in {} has a valid checksum but is not a valid command ({source}); \
         it was written by an incompatible version or the data directory is damaged",
        data_dir.display()
    )]
    Command {
        /// The data directory.
        data_dir: std::path::PathBuf,
        /// The entry's index.
        index: LogIndex,
        /// Why it does not decode.
        #[source]
        source: DecodeError,
    },
    /// The log does not continue where the snapshot ends.
    #[error(
        "the write-ahead log in {} starts at index {first_index} but the newest snapshot ends at \
         {snapshot_index}: entries in between are missing; restore the data directory from a \
         backup",
        data_dir.display()
    )]
    Gap {
        /// The data directory.
        data_dir: std::path::PathBuf,
        /// First entry in the log.
        first_index: LogIndex,
        /// Last entry in the snapshot.
        snapshot_index: LogIndex,
    },
}

/// What recovery hands to the radiant.
pub struct Recovered {
    /// The open log, ready for appends.
    pub wal: Wal,
    /// The order's recovered state, for the core.
    pub order: RecoveredOrder,
    /// Whether the log was reset because the snapshot superseded it.
    pub log_reset: bool,
}

/// How the data directory was written: the log's segment size and the limits every
/// key and value was checked against.
#[derive(Clone, Copy, Debug)]
pub struct RecoveryOptions {
    /// The write-ahead log's options.
    pub wal: WalOptions,
    /// The protocol limits (keys and values in snapshots and log entries).
    pub limits: Limits,
}

impl RecoveryOptions {
    /// The key and value limits a snapshot is read with.
    pub fn snapshot_limits(&self) -> SnapshotLimits {
        SnapshotLimits {
            max_key_bytes: self.limits.max_key_bytes,
            max_value_bytes: self.limits.max_value_bytes,
        }
    }
}

/// Loads the snapshot and replays the log into `machine`. `membership` is the order as
/// configured and `shards` the order `order_id`'s shard table before any entry; a
/// snapshot's sections replace them. `log_found` sees the log exactly as the WAL
/// returned it, before recovery drops what the snapshot covers (the simulator checks it
/// against what the radiant had synced).
pub fn recover(
    data_dir: &DataDir,
    options: &RecoveryOptions,
    machine: &StateMachine,
    (membership, (order_id, shards)): (Membership, (OrderId, ShardTable)),
    log_found: impl FnOnce(&wal::Recovered),
) -> Result<Recovered, RecoveryError> {
    let mut membership = membership;
    let mut shards = shards;
    let (snapshot_index, snapshot_term) =
        load_newest_snapshot(data_dir, options, machine, (&mut membership, &mut shards))?;
    let (mut wal, recovered) = Wal::open(data_dir, options.wal)?;
    log_found(&recovered);
    if let Some(torn) = &recovered.torn_tail {
        warn!(
            segment = %torn.segment.display(),
            offset = torn.offset,
            dropped_bytes = torn.dropped_bytes,
            reason = %torn.reason,
            "recovery: truncated a torn write at the end of the log (never acknowledged)"
        );
    }
    let mut entries = recovered.entries;
    let superseded = snapshot_index > 0
        && (wal.last_index() < snapshot_index
            || wal.term_at(snapshot_index).is_some_and(|term| term != snapshot_term));
    if superseded {
        // A snapshot received from the herald replaced this log, and the crash came
        // before the log was reset: finish that now. Everything dropped is either in
        // the snapshot or was never committed.
        warn!(
            snapshot_index,
            "recovery: the log is superseded by an installed snapshot; resetting it"
        );
        wal.reset_to(snapshot_index + 1)?;
        entries.clear();
    }
    entries.retain(|entry| entry.index > snapshot_index);
    if let Some(first) = entries.first() {
        if first.index != snapshot_index + 1 {
            return Err(RecoveryError::Gap {
                data_dir: data_dir.path.clone(),
                first_index: first.index,
                snapshot_index,
            });
        }
    }
    let last_index = entries.last().map_or(snapshot_index, |entry| entry.index);
    let commit = recovered.hard_state.commit.clamp(snapshot_index, last_index);
    let state = ReplayState { membership: &mut membership, order_id, shards: &mut shards };
    replay(data_dir, &options.limits, machine, state, &entries, commit)?;
    info!(
        snapshot_index,
        replayed = commit - snapshot_index,
        pending = last_index - commit,
        keys = machine.map().len(),
        "recovery: done"
    );
    let order = RecoveredOrder {
        hard_state: recovered.hard_state,
        snapshot_index,
        snapshot_term,
        membership,
        entries,
        applied_index: commit,
        shards: Some(shards),
    };
    Ok(Recovered { wal, order, log_reset: superseded })
}

/// Loads the newest snapshot, if any, replacing `membership` and `shards` with its
/// sections. The council section is already in the system file (written when applied).
fn load_newest_snapshot(
    data_dir: &DataDir,
    options: &RecoveryOptions,
    machine: &StateMachine,
    (membership, shards): (&mut Membership, &mut ShardTable),
) -> Result<(LogIndex, u64), RecoveryError> {
    let Some(snapshot) = snapshot::load_latest(data_dir, options.snapshot_limits())? else {
        return Ok((0, 0));
    };
    let mut loaded_shards = None;
    let sections = Sections { membership, council: &mut None, shards: &mut loaded_shards };
    let limits = (machine.shard_count(), options.limits.max_key_bytes);
    let position = state_snapshot::load(snapshot, limits, machine, sections)?;
    info!(index = position.0, keys = machine.map().len(), "recovery: snapshot loaded");
    if let Some(loaded) = loaded_shards {
        *shards = loaded;
    }
    Ok(position)
}

/// The sections of a snapshot received from the herald, once loaded.
pub struct ReceivedSections {
    /// The order's membership as of the snapshot.
    pub membership: Membership,
    /// The council section, when the snapshot has one.
    pub council: Option<bytes::Bytes>,
    /// The shard table, when the snapshot has one.
    pub shards: Option<ShardTable>,
}

/// Loads the snapshot received at `(index, term)` into `machine` (replacing its data);
/// `membership` is kept where the snapshot has no membership section. Refused, saying
/// why, when the newest snapshot on disk is another one or does not load.
pub fn load_received(
    data_dir: &DataDir,
    options: &RecoveryOptions,
    machine: &StateMachine,
    (index, term): (LogIndex, u64),
    membership: Membership,
) -> Result<ReceivedSections, String> {
    let mut received = ReceivedSections { membership, council: None, shards: None };
    match snapshot::load_latest(data_dir, options.snapshot_limits()) {
        Ok(Some(snapshot)) if snapshot.last_index == index && snapshot.last_term == term => {
            let sections = Sections {
                membership: &mut received.membership,
                council: &mut received.council,
                shards: &mut received.shards,
            };
            let limits = (machine.shard_count(), options.limits.max_key_bytes);
            state_snapshot::load(snapshot, limits, machine, sections)
                .map_err(|error| error.to_string())?;
            Ok(received)
        }
        Ok(Some(snapshot)) => Err(format!(
            "the newest snapshot on disk ends at ({}, {}), not at the received ({term}, {index})",
            snapshot.last_term, snapshot.last_index
        )),
        Ok(None) => Err(format!("the received snapshot ({term}, {index}) is not on disk")),
        Err(error) => Err(error.to_string()),
    }
}

/// What replay advances besides the key-value data.
struct ReplayState<'a> {
    membership: &'a mut Membership,
    order_id: OrderId,
    shards: &'a mut ShardTable,
}

/// Applies committed entries exactly as the order and its shard workers would have:
/// migration entries through the same shard table, writes only to served shards.
fn replay(
    data_dir: &DataDir,
    limits: &Limits,
    machine: &StateMachine,
    state: ReplayState<'_>,
    entries: &[LogEntry],
    commit: LogIndex,
) -> Result<(), RecoveryError> {
    let shards = (state.shards, state.order_id);
    machine.replay_committed(entries, commit, state.membership, shards, limits).map_err(
        |(index, source)| RecoveryError::Command { data_dir: data_dir.path.clone(), index, source },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::snapshot::{LoadedSnapshot, SnapshotWriter};
    use crate::storage::state_snapshot::{section, SECTION_MEMBERSHIP, SECTION_SHARDS};
    use bytes::Bytes;
    use radiant_protocol::slots::key_shard;
    use radiant_protocol::slots::ShardId;

    /// A snapshot at index 7 with one pair and a shard-table section that does not decode.
    fn snapshot_with_a_broken_section(directory: &DataDir, shard_count: u32) -> LoadedSnapshot {
        let mut writer = SnapshotWriter::create(directory, 7, 2, shard_count).expect("create");
        let membership = Membership::default().encode();
        writer.write_opaque(&section(SECTION_MEMBERSHIP, &membership)).expect("write");
        writer.write_key_value(ShardId(0), b"new", b"value").expect("write");
        writer.write_opaque(&section(SECTION_SHARDS, &Bytes::from_static(b"\xff"))).expect("write");
        writer.finish().expect("finish");
        let limits = SnapshotLimits { max_key_bytes: 1024, max_value_bytes: 1024 };
        snapshot::load_latest(directory, limits).expect("checksums pass").expect("a snapshot")
    }

    #[test]
    fn a_snapshot_with_a_bad_section_replaces_nothing() {
        let directory = tempfile::tempdir().expect("temp dir");
        let shard_count = 8;
        let machine = StateMachine::new(shard_count);
        let kept = Bytes::from_static(b"kept");
        machine.map().put(key_shard(&kept, shard_count), kept.clone(), kept.clone());
        let directory = DataDir::real(directory.path());
        let snapshot = snapshot_with_a_broken_section(&directory, shard_count);
        let mut membership = Membership::default();
        let (mut council, mut shards) = (None, None);
        let sections =
            Sections { membership: &mut membership, council: &mut council, shards: &mut shards };
        let limits = (shard_count, 1024);
        let error =
            state_snapshot::load(snapshot, limits, &machine, sections).expect_err("refused");
        assert!(error.to_string().contains("unreadable shards section"), "{error}");
        let shard = key_shard(&kept, shard_count);
        assert_eq!(machine.get(shard, &kept).as_deref(), Some(&b"kept"[..]), "the state was wiped");
        assert_eq!(machine.map().len(), 1);
        assert!(shards.is_none());
    }
}
