//! The order's log as the core sees it: the entries since the last snapshot, in
//! memory, plus the snapshot's index and term. The driver persists every change the
//! core makes to it (`Action::Persist`); on restart it hands the persisted log back.
//!
//! Keeping the post-snapshot log in memory is what lets the core replicate without
//! reading files; `snapshot_interval_entries` and `snapshot_interval_bytes` bound how much
//! that is (entries can be 16 MiB each, so a count alone is no bound on memory).

use std::collections::VecDeque;

use radiant_protocol::{LogEntry, LogIndex, Term};

/// Entries `snapshot_index + 1 ..= last_index`, contiguous.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrderLog {
    snapshot_index: LogIndex,
    snapshot_term: Term,
    entries: VecDeque<LogEntry>,
    /// Bytes of entry data in `entries`.
    data_bytes: u64,
}

impl OrderLog {
    pub(crate) fn new(
        snapshot_index: LogIndex,
        snapshot_term: Term,
        entries: Vec<LogEntry>,
    ) -> Self {
        let data_bytes = entries.iter().map(|entry| entry.data.len() as u64).sum();
        let log = OrderLog { snapshot_index, snapshot_term, entries: entries.into(), data_bytes };
        log.check_contiguous();
        log
    }

    /// Bytes of entry data held in memory.
    pub(crate) fn data_bytes(&self) -> u64 {
        debug_assert_eq!(
            self.data_bytes,
            self.entries.iter().map(|entry| entry.data.len() as u64).sum::<u64>(),
            "log: data bytes counted wrong"
        );
        self.data_bytes
    }

    /// The highest index through which compacting leaves at most `max_bytes` of entry
    /// data in memory (the snapshot point when everything already fits).
    pub(crate) fn compaction_point_for_bytes(&self, max_bytes: u64) -> LogIndex {
        let mut kept = 0u64;
        for entry in self.entries.iter().rev() {
            kept += entry.data.len() as u64;
            if kept > max_bytes {
                return entry.index;
            }
        }
        self.snapshot_index
    }

    fn check_contiguous(&self) {
        for (offset, entry) in self.entries.iter().enumerate() {
            let expected = self.snapshot_index + 1 + offset as u64;
            assert_eq!(
                entry.index, expected,
                "log: entry index {} where {expected} belongs",
                entry.index
            );
        }
        debug_assert!(
            self.entries.iter().zip(self.entries.iter().skip(1)).all(|(a, b)| a.term <= b.term),
            "log: terms decrease"
        );
    }

    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot_index
    }

    pub(crate) fn snapshot_term(&self) -> Term {
        self.snapshot_term
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.snapshot_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot_term, |entry| entry.term)
    }

    /// The term of the entry at `index`: known for the snapshot point and every entry
    /// after it; `None` before the snapshot (compacted) or past the end.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&LogEntry> {
        let offset = index.checked_sub(self.snapshot_index + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    pub(crate) fn append(&mut self, entry: LogEntry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "log: append {} after {}",
            entry.index,
            self.last_index()
        );
        assert!(
            entry.term >= self.last_term(),
            "log: term {} after {}",
            entry.term,
            self.last_term()
        );
        self.data_bytes += entry.data.len() as u64;
        self.entries.push_back(entry);
    }

    /// Drops `from` and everything after it (a conflict with the herald's log).
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        assert!(
            from > self.snapshot_index,
            "log: truncating {from} inside the snapshot {}",
            self.snapshot_index
        );
        let keep = (from - self.snapshot_index - 1) as usize;
        for dropped in self.entries.drain(keep.min(self.entries.len())..) {
            self.data_bytes -= dropped.data.len() as u64;
        }
    }

    /// Entries from `from` on, at most `max_bytes` of data but always at least one
    /// entry when there is one (an entry larger than the budget still goes alone).
    pub(crate) fn entries_from(
        &self,
        from: LogIndex,
        max_bytes: u64,
        max_entries: usize,
    ) -> Vec<LogEntry> {
        let Some(offset) = from.checked_sub(self.snapshot_index + 1) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        let mut bytes = 0u64;
        for entry in self.entries.iter().skip(offset as usize).take(max_entries) {
            let size = entry.data.len() as u64 + 32;
            if !taken.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            taken.push(entry.clone());
        }
        taken
    }

    /// Forgets entries through `index` (a snapshot covers them).
    pub(crate) fn compact_through(&mut self, index: LogIndex) {
        if index <= self.snapshot_index {
            return;
        }
        let term = self.term_at(index).expect("log: compacting past the end of the log");
        let drop = (index - self.snapshot_index) as usize;
        for dropped in self.entries.drain(..drop) {
            self.data_bytes -= dropped.data.len() as u64;
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Replaces the log with an installed snapshot, keeping entries that follow it
    /// when the log already holds the snapshot's last entry (Raft's rule).
    pub(crate) fn install_snapshot(&mut self, index: LogIndex, term: Term) {
        if self.term_at(index) == Some(term) && index > self.snapshot_index {
            self.compact_through(index);
            return;
        }
        self.entries.clear();
        self.data_bytes = 0;
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as up to date.
    pub(crate) fn is_behind(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The first index of the term of the entry at `index` (for a faster retreat on
    /// rejection), never below the snapshot point.
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut first = index;
        while first > self.snapshot_index + 1 && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(term: Term, index: LogIndex) -> LogEntry {
        LogEntry { term, index, data: Bytes::from_static(b"x") }
    }

    #[test]
    fn terms_are_known_from_the_snapshot_point_to_the_end() {
        let log = OrderLog::new(10, 2, vec![entry(2, 11), entry(3, 12)]);
        assert_eq!(log.term_at(9), None);
        assert_eq!(log.term_at(10), Some(2));
        assert_eq!(log.term_at(12), Some(3));
        assert_eq!(log.term_at(13), None);
        assert_eq!((log.last_index(), log.last_term()), (12, 3));
    }

    #[test]
    fn the_bytes_held_follow_appends_truncations_compactions_and_installs() {
        let entry = |index: u64, bytes: usize| LogEntry {
            term: 1,
            index,
            data: bytes::Bytes::from(vec![0u8; bytes]),
        };
        let mut log = OrderLog::new(0, 0, vec![entry(1, 10), entry(2, 20)]);
        log.append(entry(3, 30));
        log.append(entry(4, 40));
        assert_eq!(log.data_bytes(), 100);
        // Keeping at most 70 bytes means dropping through 2 (30 + 40 stay).
        assert_eq!(log.compaction_point_for_bytes(70), 2);
        assert_eq!(log.compaction_point_for_bytes(100), 0, "everything fits");
        log.truncate_from(4);
        assert_eq!(log.data_bytes(), 60);
        log.compact_through(2);
        assert_eq!(log.data_bytes(), 30);
        log.install_snapshot(9, 2);
        assert_eq!(log.data_bytes(), 0);
    }

    #[test]
    fn truncation_and_compaction_keep_indexes_contiguous() {
        let mut log = OrderLog::new(0, 0, (1..=6).map(|index| entry(1, index)).collect());
        log.truncate_from(5);
        assert_eq!(log.last_index(), 4);
        log.append(entry(2, 5));
        log.compact_through(3);
        assert_eq!((log.snapshot_index(), log.snapshot_term()), (3, 1));
        assert_eq!(log.entry(5).map(|entry| entry.term), Some(2));
    }

    #[test]
    fn installing_a_snapshot_keeps_a_matching_suffix_and_drops_a_conflicting_log() {
        let mut log = OrderLog::new(0, 0, (1..=6).map(|index| entry(1, index)).collect());
        log.install_snapshot(4, 1);
        assert_eq!((log.snapshot_index(), log.last_index()), (4, 6));
        log.install_snapshot(8, 3);
        assert_eq!((log.snapshot_index(), log.last_index(), log.last_term()), (8, 8, 3));
    }

    #[test]
    fn batches_respect_the_byte_budget_but_never_come_back_empty() {
        let log = OrderLog::new(0, 0, (1..=10).map(|index| entry(1, index)).collect());
        assert_eq!(log.entries_from(1, 70, 100).len(), 2);
        assert_eq!(log.entries_from(1, 1, 100).len(), 1);
        assert_eq!(log.entries_from(9, 10_000, 100).len(), 2);
        assert!(log.entries_from(11, 10_000, 100).is_empty());
    }

    #[test]
    fn up_to_date_compares_term_first_then_index() {
        let log = OrderLog::new(0, 0, vec![entry(1, 1), entry(2, 2)]);
        assert!(log.is_behind(2, 2));
        assert!(log.is_behind(1, 3));
        assert!(!log.is_behind(5, 1));
        assert!(!log.is_behind(1, 2));
        assert_eq!(log.first_index_of_term_at(2), 2);
    }
}
