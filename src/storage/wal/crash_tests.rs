//! The WAL under power loss, torn and out-of-order writes, bit flips and I/O errors, on
//! `MemoryFileSystem`: for many seeds, random appends, hard states, syncs, truncations,
//! compactions and crashes, checking after every recovery that what the WAL promised (every
//! entry and hard state it had synced) is still there, or that it refuses to start saying
//! the log is corrupt. It never silently comes back shorter than it promised.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use radiant_protocol::{LogEntry, LogIndex, Term};

use super::{Recovered, Wal, WalError, WalOptions};
use crate::core::prng::Prng;
use crate::core::HardState;
use crate::storage::file_system::DataDir;
use crate::storage::injected_bugs::{self, StorageBug};
use crate::storage::memory_file_system::{DiskFaults, MemoryFileSystem};

/// What the WAL has promised: entries and the hard state as of its last successful sync.
#[derive(Clone, Debug, Default)]
struct Promised {
    entries: BTreeMap<LogIndex, Term>,
    hard_state: HardState,
}

/// How one seed's run ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Every recovery returned at least what was promised.
    Kept,
    /// A recovery refused: the log is corrupt (only with bit flips on).
    Refused,
}

struct Run {
    disk: MemoryFileSystem,
    data_dir: DataDir,
    prng: Prng,
    wal: Option<Wal>,
    promised: Promised,
    term: Term,
}

const OPTIONS: WalOptions = WalOptions { segment_max_bytes: 700, max_record_bytes: 4096 };

impl Run {
    fn new(seed: u64, faults: DiskFaults) -> Run {
        let disk = MemoryFileSystem::new(seed, faults);
        let data_dir = DataDir { file_system: Arc::new(disk.clone()), path: PathBuf::from("/r") };
        Run {
            disk,
            data_dir,
            prng: Prng::new(seed ^ 0x5eed),
            wal: None,
            promised: Promised::default(),
            term: 1,
        }
    }

    /// Opens the WAL, retrying through injected I/O errors (a restarted radiant retries).
    fn open(&mut self) -> Result<Recovered, String> {
        for _ in 0..20 {
            match Wal::open(&self.data_dir, OPTIONS) {
                Ok((wal, recovered)) => {
                    self.wal = Some(wal);
                    return Ok(recovered);
                }
                Err(error @ WalError::Corrupt { .. }) => return Err(error.to_string()),
                Err(_) => self.disk.crash(),
            }
        }
        panic!("the WAL did not open in 20 attempts through injected I/O errors");
    }

    /// Crashes and recovers; checks the promise. `Ok(false)` when the WAL refused.
    fn crash_and_recover(&mut self) -> Result<bool, String> {
        self.wal = None;
        self.disk.crash();
        let recovered = match self.open() {
            Ok(recovered) => recovered,
            Err(refusal) => {
                if self.disk.fault_counts().bits_flipped == 0 {
                    return Err(format!("refused to start without any damage: {refusal}"));
                }
                return Ok(false);
            }
        };
        let found: BTreeMap<LogIndex, Term> =
            recovered.entries.iter().map(|entry| (entry.index, entry.term)).collect();
        for (index, term) in &self.promised.entries {
            if found.get(index) != Some(term) {
                return Err(format!(
                    "entry {index} of term {term} was synced but recovery returned {:?} \
                     (recovered {}..={:?}, torn tail {:?})",
                    found.get(index),
                    recovered.first_index,
                    recovered.entries.last().map(|entry| entry.index),
                    recovered.torn_tail
                ));
            }
        }
        let (kept, promised) = (recovered.hard_state, self.promised.hard_state);
        if !kept.keeps_promise_of(&promised) {
            return Err(format!(
                "hard state {promised:?} was synced but recovery returned {kept:?}"
            ));
        }
        // What survived the crash is on the disk now: it is the new promise.
        self.promised = Promised { entries: found, hard_state: kept };
        self.term = self.term.max(kept.term).max(recovered.entries.last().map_or(0, |e| e.term));
        Ok(true)
    }

    fn step(&mut self) -> Result<bool, String> {
        let wal = self.wal.as_mut().expect("open");
        let last_index = wal.last_index();
        let choice = self.prng.range(0, 100);
        let result = match choice {
            0..=44 => {
                self.term += u64::from(self.prng.chance(1, 6));
                let count = self.prng.range(1, 5);
                let entries: Vec<LogEntry> = (last_index + 1..=last_index + count)
                    .map(|index| {
                        let length = self.prng.range(1, 300) as usize;
                        let data = Bytes::from(vec![(index % 251) as u8 + 1; length]);
                        LogEntry { term: self.term, index, data }
                    })
                    .collect();
                wal.append(&entries)
            }
            45..=54 => {
                // One vote per term, as the core casts them.
                let saved = wal.hard_state();
                let voted_for =
                    if saved.term == self.term { saved.voted_for } else { self.prng.range(0, 4) };
                let commit = wal.hard_state().commit.max(last_index.saturating_sub(2));
                wal.save_hard_state(HardState { term: self.term, voted_for, commit })
            }
            55..=79 => {
                let result = wal.sync();
                if result.is_ok() {
                    let first = wal.first_index();
                    let entries = (first..=wal.last_index())
                        .map(|index| (index, wal.term_at(index).expect("within the log")))
                        .collect();
                    self.promised = Promised { entries, hard_state: wal.hard_state() };
                }
                result
            }
            80..=86 => {
                let from_index = (last_index + 1)
                    .saturating_sub(self.prng.range(0, 6))
                    .max(wal.first_index())
                    .max(wal.hard_state().commit + 1);
                // Truncated entries may or may not survive a failure; either way the core
                // chose to drop them.
                self.promised.entries.retain(|&index, _| index < from_index);
                wal.truncate_suffix(from_index)
            }
            87..=91 => {
                let through = last_index.saturating_sub(self.prng.range(0, 10));
                let result = wal.compact_prefix(through);
                let first = wal.first_index();
                self.promised.entries.retain(|&index, _| index >= first);
                result
            }
            _ => return self.crash_and_recover(),
        };
        if result.is_err() {
            // A failed write or sync stops the radiant: restart it from the disk.
            return self.crash_and_recover();
        }
        Ok(true)
    }
}

/// Runs one seed; `Err` names the first broken promise.
fn run_seed(seed: u64, faults: DiskFaults, steps: usize) -> Result<Outcome, String> {
    let mut run = Run::new(seed, faults);
    run.open().map_err(|refusal| format!("a fresh WAL refused: {refusal}"))?;
    for _ in 0..steps {
        if !run.step()? {
            return Ok(Outcome::Refused);
        }
    }
    run.crash_and_recover().map(|kept| if kept { Outcome::Kept } else { Outcome::Refused })
}

const CRASHES_ONLY: DiskFaults = DiskFaults {
    out_of_order_per_million: 300_000,
    write_error_per_million: 0,
    sync_error_per_million: 0,
    bit_flip_per_million: 0,
    capacity_bytes: 0,
};

const EVERY_FAULT: DiskFaults = DiskFaults {
    out_of_order_per_million: 300_000,
    write_error_per_million: 5_000,
    sync_error_per_million: 5_000,
    bit_flip_per_million: 100_000,
    capacity_bytes: 0,
};

fn failures(faults: DiskFaults, seeds: std::ops::Range<u64>) -> Vec<(u64, String)> {
    seeds
        .filter_map(|seed| run_seed(seed, faults, 300).err().map(|failure| (seed, failure)))
        .collect()
}

#[test]
fn crashes_with_torn_and_out_of_order_writes_never_lose_a_synced_entry() {
    let failed = failures(CRASHES_ONLY, 0..150);
    assert!(failed.is_empty(), "{} seeds broke a promise, first: {:?}", failed.len(), failed[0]);
}

#[test]
fn with_bit_flips_and_io_errors_the_wal_keeps_its_promise_or_refuses_to_start() {
    let failed = failures(EVERY_FAULT, 0..150);
    assert!(failed.is_empty(), "{} seeds broke a promise, first: {:?}", failed.len(), failed[0]);
    let refused =
        (0..150).filter(|&seed| run_seed(seed, EVERY_FAULT, 300) == Ok(Outcome::Refused)).count();
    assert!(refused > 0, "bit flips were injected but no recovery ever refused");
}

#[test]
fn a_wal_that_skips_the_directory_sync_of_a_new_segment_is_caught() {
    let _bug = injected_bugs::inject(StorageBug::SkipSegmentDirectorySync);
    let failed = failures(CRASHES_ONLY, 0..150);
    let (seed, failure) =
        failed.first().expect("some seed loses a segment whose name was not synced");
    // The seed replays exactly.
    assert_eq!(run_seed(*seed, CRASHES_ONLY, 300).err().as_ref(), Some(failure));
}

#[test]
fn recovery_that_cuts_damaged_records_is_caught() {
    let _bug = injected_bugs::inject(StorageBug::CutDamagedRecords);
    let failed = failures(EVERY_FAULT, 0..150);
    let (seed, failure) = failed.first().expect("some seed cuts a synced record it should refuse");
    assert!(failure.contains("was synced"), "{failure}");
    assert_eq!(run_seed(*seed, EVERY_FAULT, 300).err().as_ref(), Some(failure));
}
