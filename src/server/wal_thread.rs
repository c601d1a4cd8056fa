//! The WAL writer thread: group commit. It takes every batch queued since its last
//! fsync, writes them, fsyncs once, and reports the durable index to the state thread.
//! One fsync covers every client whose entry was written before it.
//!
//! An fsync failure is fatal: after a failed fsync the kernel may have dropped the
//! dirty pages, so retrying could report data durable that is not. The thread reports
//! the failure and stops; the daemon exits rather than acknowledge anything more.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use radiant_protocol::{LogEntry, LogIndex};
use tracing::{error, info};

use super::state_thread::StateEvent;
use crate::limits::MAX_ENTRIES_PER_GROUP_COMMIT;
use crate::storage::wal::{HardState, Wal, WalError};

/// Work for the WAL writer.
#[derive(Debug)]
pub enum WalRequest {
    /// Record `hard_state` (if any), then append `entries`.
    Append {
        /// A new term or vote.
        hard_state: Option<HardState>,
        /// Contiguous entries following the last appended one.
        entries: Vec<LogEntry>,
    },
    /// Delete whole segments whose entries are all at or below `through`.
    Compact {
        /// A snapshot covers everything through this index.
        through: LogIndex,
    },
    /// Sync what is pending, then exit.
    Shutdown,
}

/// Counters for benchmarks and status.
#[derive(Debug, Default)]
pub struct WalCounters {
    /// fsyncs performed.
    pub syncs: AtomicU64,
    /// Entries made durable.
    pub entries: AtomicU64,
}

/// Starts the writer thread; it owns `wal` until it exits.
pub fn spawn(
    mut wal: Wal,
    requests: Receiver<WalRequest>,
    state: Sender<StateEvent>,
    counters: Arc<WalCounters>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("radiant-wal".into())
        .spawn(move || {
            if let Err(failure) = run(&mut wal, &requests, &state, &counters) {
                error!(error = %failure, "wal: write or fsync failed; refusing further writes");
                let _ = state.send(StateEvent::WalFailed {
                    reason: failure.to_string(),
                });
            }
        })
}

fn run(
    wal: &mut Wal,
    requests: &Receiver<WalRequest>,
    state: &Sender<StateEvent>,
    counters: &WalCounters,
) -> Result<(), WalError> {
    let mut compact_through = None;
    loop {
        let Ok(first) = requests.recv() else {
            return Ok(());
        };
        let mut shutting_down = false;
        let mut written = 0usize;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                WalRequest::Append {
                    hard_state,
                    entries,
                } => {
                    if let Some(hard_state) = hard_state {
                        wal.save_hard_state(hard_state)?;
                    }
                    wal.append(&entries)?;
                    written += entries.len();
                }
                WalRequest::Compact { through } => compact_through = Some(through),
                WalRequest::Shutdown => shutting_down = true,
            }
            if written < MAX_ENTRIES_PER_GROUP_COMMIT {
                next = requests.try_recv().ok();
            }
        }
        wal.sync()?;
        counters.syncs.fetch_add(1, Ordering::Relaxed);
        counters
            .entries
            .fetch_add(written as u64, Ordering::Relaxed);
        // The state thread may have exited during shutdown; then nobody waits.
        let _ = state.send(StateEvent::Durable {
            index: wal.last_index(),
        });
        if let Some(through) = compact_through.take() {
            wal.compact_prefix(through)?;
        }
        if shutting_down {
            info!(last_index = wal.last_index(), "wal: synced and closed");
            return Ok(());
        }
    }
}
