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
    let limits = config.protocol_limits();
    let snapshot_limits = SnapshotLimits {
        max_key_bytes: limits.max_key_bytes,
        max_value_bytes: limits.max_value_bytes,
    };
    let mut snapshot_index = 0;
    let mut snapshot_term = 0;
    if let Some(snapshot) = snapshot::load_latest(data_dir, snapshot_limits)? {
        snapshot_index = snapshot.last_index;
        snapshot_term = snapshot.last_term;
        // Shards are recomputed from the keys, so a changed shard_count still loads.
        for (_, key, value) in snapshot.key_values {
            map.put(key_shard(&key, config.shard_count), key, value);
        }
        info!(
            index = snapshot_index,
            keys = map.len(),
            "recovery: snapshot loaded"
        );
    }
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
    let first_index = recovered.entries.first().map(|entry| entry.index);
    if let Some(first_index) = first_index {
        if first_index > snapshot_index + 1 {
            return Err(RecoveryError::Gap {
                data_dir: data_dir.to_path_buf(),
                first_index,
                snapshot_index,
            });
        }
    }
    let mut replayed = 0u64;
    for entry in recovered
        .entries
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
            let shard = key_shard(key, config.shard_count);
            apply(map, shard, command);
        }
        replayed += 1;
    }
    if wal.last_index() < snapshot_index {
        // Compaction never deletes the active segment, so only lost files get here.
        let first_index = wal.last_index() + 1;
        return Err(RecoveryError::Gap {
            data_dir: data_dir.to_path_buf(),
            first_index,
            snapshot_index,
        });
    }
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
