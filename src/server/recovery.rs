//! Start-up recovery: load the newest snapshot (key-values, session tables and
//! membership), then replay the write-ahead log past it through the last persisted
//! commit index. Entries after that go to the core, which applies them once it learns
//! they are committed. The radiant resumes with exactly the state it had durably.

use radiant_protocol::{DecodeError, LogEntry, LogIndex, OrderId};
use tracing::{info, warn};

use crate::config::Config;
use crate::core::order::Membership;
use crate::core::shards::ShardTable;
use crate::core::RecoveredOrder;
use crate::storage::file_system::DataDir;
use crate::storage::snapshot::{self, SnapshotError, SnapshotLimits};
use crate::storage::state_machine::StateMachine;
use crate::storage::state_snapshot::{self, Sections};
use crate::storage::wal::{Wal, WalError, WalOptions};

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

/// What recovery hands to the daemon.
pub struct Recovered {
    /// The open log, ready for appends.
    pub wal: Wal,
    /// The order's recovered state, for the core.
    pub order: RecoveredOrder,
}

/// Snapshot limits from the configuration.
pub fn snapshot_limits(config: &Config) -> SnapshotLimits {
    SnapshotLimits { max_key_bytes: config.max_key_bytes, max_value_bytes: config.max_value_bytes }
}

/// Loads the snapshot and replays the log into `machine`. `membership` is the order as
/// configured and `shards` the order `order_id`'s shard table before any entry; a
/// snapshot's sections replace them.
pub fn recover(
    data_dir: &DataDir,
    config: &Config,
    machine: &StateMachine,
    membership: Membership,
    (order_id, shards): (OrderId, ShardTable),
) -> Result<Recovered, RecoveryError> {
    let mut membership = membership;
    let mut shards = shards;
    let (snapshot_index, snapshot_term) =
        load_newest_snapshot(data_dir, config, machine, (&mut membership, &mut shards))?;
    let options = WalOptions {
        segment_max_bytes: config.wal_segment_max_bytes,
        max_record_bytes: crate::storage::wal::MAX_RECORD_BYTES,
    };
    let (mut wal, recovered) = Wal::open(data_dir, options)?;
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
    replay(data_dir, config, machine, state, &entries, commit)?;
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
    Ok(Recovered { wal, order })
}

/// Loads the newest snapshot, if any, replacing `membership` and `shards` with its
/// sections. The council section is already in the system file (written when applied).
fn load_newest_snapshot(
    data_dir: &DataDir,
    config: &Config,
    machine: &StateMachine,
    (membership, shards): (&mut Membership, &mut ShardTable),
) -> Result<(LogIndex, u64), RecoveryError> {
    let Some(snapshot) = snapshot::load_latest(data_dir, snapshot_limits(config))? else {
        return Ok((0, 0));
    };
    let mut loaded_shards = None;
    let sections = Sections { membership, council: &mut None, shards: &mut loaded_shards };
    let position = state_snapshot::load(
        snapshot,
        (config.shard_count, config.max_key_bytes),
        machine,
        sections,
    )?;
    info!(index = position.0, keys = machine.map().len(), "recovery: snapshot loaded");
    if let Some(loaded) = loaded_shards {
        *shards = loaded;
    }
    Ok(position)
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
    config: &Config,
    machine: &StateMachine,
    state: ReplayState<'_>,
    entries: &[LogEntry],
    commit: LogIndex,
) -> Result<(), RecoveryError> {
    let limits = config.protocol_limits();
    let shards = (state.shards, state.order_id);
    machine.replay_committed(entries, commit, state.membership, shards, &limits).map_err(
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
        let config = Config::embedded_default();
        let machine = StateMachine::new(config.shard_count);
        let kept = Bytes::from_static(b"kept");
        machine.map().put(key_shard(&kept, config.shard_count), kept.clone(), kept.clone());
        let directory = DataDir::real(directory.path());
        let snapshot = snapshot_with_a_broken_section(&directory, config.shard_count);
        let mut membership = Membership::default();
        let (mut council, mut shards) = (None, None);
        let sections =
            Sections { membership: &mut membership, council: &mut council, shards: &mut shards };
        let limits = (config.shard_count, config.max_key_bytes);
        let error =
            state_snapshot::load(snapshot, limits, &machine, sections).expect_err("refused");
        assert!(error.to_string().contains("unreadable shards section"), "{error}");
        let shard = key_shard(&kept, config.shard_count);
        assert_eq!(machine.get(shard, &kept).as_deref(), Some(&b"kept"[..]), "the state was wiped");
        assert_eq!(machine.map().len(), 1);
        assert!(shards.is_none());
    }
}
