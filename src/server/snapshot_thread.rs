//! The snapshot writer: collects the shard copies the workers took at a barrier and
//! writes them as one atomic snapshot file, off every latency-critical thread.

use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use radiant_protocol::{LogIndex, Term};
use tracing::info;

use super::shard_worker::ShardDump;
use super::state_thread::StateEvent;
use crate::storage::snapshot::{SnapshotError, SnapshotWriter};

/// One snapshot to write.
#[derive(Debug)]
pub struct SnapshotJob {
    /// Last included index.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
    /// The shard copies; the channel closes when every worker has sent its own.
    pub parts: Receiver<ShardDump>,
}

/// Starts the snapshot writer for `data_dir`.
pub fn spawn(
    data_dir: PathBuf,
    shard_count: u32,
    jobs: Receiver<SnapshotJob>,
    state: Sender<StateEvent>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("radiant-snapshot".into())
        .spawn(move || {
            for job in jobs.iter() {
                let index = job.index;
                let event = match write(&data_dir, shard_count, job) {
                    Ok((path, pairs)) => {
                        info!(index, pairs, path = %path.display(), "snapshot: written");
                        StateEvent::SnapshotWritten { index }
                    }
                    Err(error) => StateEvent::SnapshotFailed {
                        reason: error.to_string(),
                    },
                };
                let _ = state.send(event);
            }
        })
}

fn write(
    data_dir: &std::path::Path,
    shard_count: u32,
    job: SnapshotJob,
) -> Result<(PathBuf, u64), SnapshotError> {
    let mut writer = SnapshotWriter::create(data_dir, job.index, job.term, shard_count)?;
    let mut pairs = 0u64;
    for dump in job.parts.iter() {
        for (key, value) in &dump.pairs {
            writer.write_key_value(dump.shard, key, value)?;
            pairs += 1;
        }
    }
    Ok((writer.finish()?, pairs))
}
