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
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use radiant_protocol::{LogEntry, LogIndex};
use tracing::{error, info};

use super::state_thread::StateEvent;
use crate::core::HardState;
use crate::limits::MAX_ENTRIES_PER_GROUP_COMMIT;
use crate::storage::wal::{Wal, WalError};

/// Work for the WAL writer, carried out in the order sent.
#[derive(Debug)]
pub enum WalRequest {
    /// One `Action::Persist` of the core.
    Append {
        /// Reported back in `Input::Durable` once synced.
        sequence: u64,
        /// A new term, vote or commit index.
        hard_state: Option<HardState>,
        /// Drop entries from here on first (a conflict with the herald's log).
        truncate_from: Option<LogIndex>,
        /// Contiguous entries following the last kept one.
        entries: Vec<LogEntry>,
    },
    /// Discard the whole log; the next entry is `next_index` (a snapshot replaced it).
    Reset {
        /// The first index of the new log.
        next_index: LogIndex,
    },
    /// Delete whole segments whose entries are all at or below `through`.
    Compact {
        /// A snapshot covers everything through this index.
        through: LogIndex,
    },
    /// Sync what is pending, then exit.
    Shutdown,
}

/// Counters for benchmarks and metrics.
#[derive(Debug)]
pub struct WalCounters {
    /// fsyncs performed.
    pub syncs: AtomicU64,
    /// Entries made durable.
    pub entries: AtomicU64,
    /// How long each fsync took, in seconds.
    pub fsync_seconds: Histogram,
    /// Entries each fsync made durable (the group commit's size).
    pub sync_batch_entries: Histogram,
}

impl Default for WalCounters {
    fn default() -> Self {
        WalCounters {
            syncs: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            // 20 µs to ~1.3 s: a page-cache fsync to a stalled disk.
            fsync_seconds: Histogram::new(exponential_buckets(2e-5, 2.0, 17)),
            // 1 to 2,048 entries, up to MAX_ENTRIES_PER_GROUP_COMMIT.
            sync_batch_entries: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        }
    }
}

/// Starts the writer thread; it owns `wal` until it exits.
pub fn spawn(
    mut wal: Wal,
    requests: Receiver<WalRequest>,
    state: Sender<StateEvent>,
    counters: Arc<WalCounters>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("radiant-wal".into()).spawn(move || {
        if let Err(failure) = run(&mut wal, &requests, &state, &counters) {
            let reason = crate::error_chain(&failure);
            error!(error = %reason, "wal: write or fsync failed; refusing further writes");
            let _ = state.send(StateEvent::WalFailed { reason });
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
    let mut panic_armed = super::test_switches::panics("radiant-wal");
    let slow = std::time::Duration::from_millis(super::test_switches::count(
        super::test_switches::SLOW_WAL_MS,
    ));
    loop {
        let Ok(first) = requests.recv() else {
            return Ok(());
        };
        let mut shutting_down = false;
        let mut written = 0usize;
        let mut durable_sequence = None;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                WalRequest::Append { sequence, hard_state, truncate_from, entries } => {
                    super::test_switches::panic_if(&mut panic_armed, "its first log write");
                    wal.write_persist(hard_state, truncate_from, &entries)?;
                    written += entries.len();
                    durable_sequence = Some(sequence);
                }
                WalRequest::Reset { next_index } => wal.reset_to(next_index)?,
                WalRequest::Compact { through } => compact_through = Some(through),
                WalRequest::Shutdown => shutting_down = true,
            }
            if written < MAX_ENTRIES_PER_GROUP_COMMIT {
                next = requests.try_recv().ok();
            }
        }
        if !slow.is_zero() {
            std::thread::sleep(slow);
        }
        let started = std::time::Instant::now();
        wal.sync()?;
        counters.fsync_seconds.observe(started.elapsed().as_secs_f64());
        counters.sync_batch_entries.observe(written as f64);
        counters.syncs.fetch_add(1, Ordering::Relaxed);
        counters.entries.fetch_add(written as u64, Ordering::Relaxed);
        if let Some(sequence) = durable_sequence {
            // The state thread may have exited during shutdown; then nobody waits.
            let _ = state.send(StateEvent::Core(crate::core::Input::Durable { sequence }));
        }
        if let Some(through) = compact_through.take() {
            wal.compact_prefix(through)?;
        }
        if shutting_down {
            info!(last_index = wal.last_index(), "wal: synced and closed");
            return Ok(());
        }
    }
}
