//! Start-up recovery: load the newest snapshot, then replay the write-ahead log past
//! it into the shard map, so the radiant resumes with exactly the state it had
//! durably before it stopped (cleanly or by `kill -9`).

use std::path::Path;

use radiant_protocol::{Command, DecodeError, LogIndex};
use tracing::{info, warn};

use super::shard_worker::apply;
use crate::config::Config;
use crate::core::slots::key_shard;
use crate::core::RecoveredLog;
use crate::storage::shard_map::ShardMap;
use crate::storage::snapshot::{self, SnapshotError, SnapshotLimits};
use crate::storage::wal::{Wal, WalError, WalOptions};

/// Bytes a WAL record may take beyond the largest frame (record and entry headers).
const WAL_RECORD_OVERHEAD_BYTES: u32 = 64;

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
         {snapshot_index}: entries in between are missing; restore the data directory from a backup",
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
    /// Positions for the core.
    pub log: RecoveredLog,
}

/// Loads the snapshot and replays the log into `map`.
pub fn recover(
    data_dir: &Path,
    config: &Config,
    map: &ShardMap,
) -> Result<Recovered, RecoveryError> {
    let (snapshot_index, snapshot_term) = load_snapshot(data_dir, config, map)?;
    let options = WalOptions {
        segment_max_bytes: config.wal_segment_max_bytes,
        max_record_bytes: config
            .max_frame_bytes
            .saturating_add(WAL_RECORD_OVERHEAD_BYTES),
    };
    let (wal, recovered) = Wal::open(data_dir, options)?;
    if let Some(torn) = &recovered.torn_tail {
        warn!(
            segment = %torn.segment.display(),
            offset = torn.offset,
            dropped_bytes = torn.dropped_bytes,
            reason = %torn.reason,
            "recovery: truncated a torn write at the end of the log (never acknowledged)"
        );
    }
    let gap = |first_index| RecoveryError::Gap {
        data_dir: data_dir.to_path_buf(),
        first_index,
        snapshot_index,
    };
    if let Some(first) = recovered.entries.first() {
        if first.index > snapshot_index + 1 {
            return Err(gap(first.index));
        }
    }
    if wal.last_index() < snapshot_index {
        // Compaction never deletes the active segment, so only lost files get here.
        return Err(gap(wal.last_index() + 1));
    }
    let replayed = replay(data_dir, config, map, recovered.entries, snapshot_index)?;
    let (last_index, last_term) = (wal.last_index(), wal.last_term().max(snapshot_term));
    info!(
        replayed,
        last_index,
        keys = map.len(),
        "recovery: log replayed"
    );
    let log = RecoveredLog {
        hard_state: recovered.hard_state,
        last_index,
        last_term,
        applied_index: last_index,
        snapshot_index,
    };
    Ok(Recovered { wal, log })
}

/// Loads the newest snapshot into `map`; returns its last index and term (0, 0 if none).
fn load_snapshot(
    data_dir: &Path,
    config: &Config,
    map: &ShardMap,
) -> Result<(LogIndex, u64), RecoveryError> {
    let limits = SnapshotLimits {
        max_key_bytes: config.max_key_bytes,
        max_value_bytes: config.max_value_bytes,
    };
    let Some(snapshot) = snapshot::load_latest(data_dir, limits)? else {
        return Ok((0, 0));
    };
    // Shards are recomputed from the keys, so a changed shard_count still loads.
    for (_, key, value) in snapshot.key_values {
        map.put(key_shard(&key, config.shard_count), key, value);
    }
    info!(
        index = snapshot.last_index,
        keys = map.len(),
        "recovery: snapshot loaded"
    );
    Ok((snapshot.last_index, snapshot.last_term))
}

/// Applies every entry past the snapshot, exactly as the shard workers would have.
fn replay(
    data_dir: &Path,
    config: &Config,
    map: &ShardMap,
    entries: Vec<radiant_protocol::LogEntry>,
    snapshot_index: LogIndex,
) -> Result<u64, RecoveryError> {
    let limits = config.protocol_limits();
    let mut replayed = 0;
    for entry in entries
        .into_iter()
        .filter(|entry| entry.index > snapshot_index)
    {
        let index = entry.index;
        let command =
            Command::decode(entry.data, &limits).map_err(|source| RecoveryError::Command {
                data_dir: data_dir.to_path_buf(),
                index,
                source,
            })?;
        if let Some(key) = command.key() {
            apply(map, key_shard(key, config.shard_count), command);
        }
        replayed += 1;
    }
    Ok(replayed)
}
