//! Removing entries from either end of the WAL: conflict truncation of a suffix and
//! compaction of a snapshotted prefix. Both are durable when they return.
//!
//! `truncate_suffix` must never lose the newest hard state, which may sit in a record after
//! the cut, and must leave a log that recovery can finish after a crash at any step:
//!   1. write a new segment named `from_index` holding only the current hard state to a
//!      `.wal.tmp` file, fsync it, rename it into place (replacing the segment that starts at
//!      `from_index`, if any), fsync the directory — this is the commit point;
//!   2. delete every later segment, fsync the directory;
//!   3. cut the segment holding `from_index` before that entry, fsync it.
//!
//! After a crash in step 2 or 3 recovery sees a segment overlapping its predecessor (finish
//! step 3) or an entry-less segment followed by others (finish step 2); neither pattern can
//! arise any other way. This module must not decide when to truncate or compact.

use radiant_protocol::LogIndex;

use super::record::WalRecord;
use super::recovery::cut_file;
use super::segment::{encode_header, open_for_append, remove_file, segment_path, Segment};
use super::{sync_directory, Wal, WalError};

impl Wal {
    /// Drops every entry with index `>= from_index` (a conflict with the herald's log).
    /// Durable on return. A `from_index` past the last entry is a no-op.
    pub fn truncate_suffix(&mut self, from_index: LogIndex) -> Result<(), WalError> {
        self.check_usable()?;
        assert!(
            from_index >= self.first_index(),
            "wal truncate_suffix: index {from_index} is before the first index {}",
            self.first_index()
        );
        if from_index > self.last_index() {
            return Ok(());
        }
        let result = self.truncate_suffix_unchecked(from_index);
        self.break_on_error(result)
    }

    fn truncate_suffix_unchecked(&mut self, from_index: LogIndex) -> Result<(), WalError> {
        let position = self.segment_position(from_index).expect("from_index lies within the log");
        let new_segment = self.write_hard_state_segment(from_index)?;
        let fs = &*self.file_system;
        for later in &self.segments[position + 1..] {
            remove_file(fs, &later.path)?;
        }
        sync_directory(fs, &self.wal_dir)?;
        self.segments.truncate(position + 1);
        let holder = self.segments.last_mut().expect("position is in range");
        if holder.first_index == from_index {
            // The rename in step 1 already replaced this segment.
            self.segments.pop();
        } else {
            let kept = usize::try_from(from_index - holder.first_index).expect("fits entries");
            let offset_bytes = holder.entries[kept].offset_bytes;
            cut_file(fs, &holder.path, offset_bytes)?;
            holder.entries.truncate(kept);
            holder.length_bytes = offset_bytes;
        }
        self.active_file = open_for_append(fs, &new_segment.path)?;
        self.segments.push(new_segment);
        self.directory_dirty = false;
        Ok(())
    }

    /// Step 1 of `truncate_suffix`: atomically puts a segment named `first_index` that holds
    /// only the current hard state in place.
    fn write_hard_state_segment(&mut self, first_index: LogIndex) -> Result<Segment, WalError> {
        let path = segment_path(&self.wal_dir, first_index);
        let temporary_path = path.with_extension("wal.tmp");
        self.write_buffer.clear();
        self.write_buffer.extend_from_slice(&encode_header(first_index));
        WalRecord::HardState(self.hard_state).encode_into(&mut self.write_buffer);
        let fs = &*self.file_system;
        let write = |buffer: &[u8]| {
            let mut file = fs.create(&temporary_path, false)?;
            file.write_all(buffer)?;
            file.sync()
        };
        write(&self.write_buffer)
            .map_err(|source| WalError::io("write segment", &temporary_path, source))?;
        fs.rename(&temporary_path, &path)
            .map_err(|source| WalError::io("rename segment into place", &path, source))?;
        sync_directory(fs, &self.wal_dir)?;
        Ok(Segment {
            path,
            first_index,
            length_bytes: self.write_buffer.len() as u64,
            entries: Vec::new(),
        })
    }

    /// Discards the whole log so the next entry is `next_index` (an installed snapshot
    /// replaced it). Keeps the hard state. Durable on return. The new, entry-less segment
    /// named `next_index` is put in place first (the commit point), then the old segments
    /// are deleted; recovery finishes a reset interrupted in between, recognising an
    /// entry-less last segment after a gap, which nothing else leaves.
    pub fn reset_to(&mut self, next_index: LogIndex) -> Result<(), WalError> {
        self.check_usable()?;
        assert!(next_index >= 1, "wal reset_to: index 0");
        let result = self.reset_to_unchecked(next_index);
        self.break_on_error(result)
    }

    fn reset_to_unchecked(&mut self, next_index: LogIndex) -> Result<(), WalError> {
        let new_segment = self.write_hard_state_segment(next_index)?;
        let fs = &*self.file_system;
        for old in self.segments.iter().filter(|old| old.path != new_segment.path) {
            remove_file(fs, &old.path)?;
        }
        sync_directory(fs, &self.wal_dir)?;
        self.segments.clear();
        self.active_file = open_for_append(fs, &new_segment.path)?;
        self.segments.push(new_segment);
        self.directory_dirty = false;
        Ok(())
    }

    /// Deletes the oldest segments all of whose entries are `<= through_index` (they are
    /// covered by a snapshot). Never deletes the active segment, whose records include the
    /// newest hard state. Durable on return.
    pub fn compact_prefix(&mut self, through_index: LogIndex) -> Result<(), WalError> {
        self.check_usable()?;
        let closed = &self.segments[..self.segments.len() - 1];
        let removable =
            closed.iter().take_while(|segment| segment.last_index() <= through_index).count();
        if removable == 0 {
            return Ok(());
        }
        // Oldest first, so a crash part-way leaves a shorter but contiguous log.
        // The active segment may be a fresh one whose header, hard state and name are not
        // synced yet; once the older segments are gone it holds the only copy of the hard
        // state, so it is made durable before they are removed.
        self.sync()?;
        let mut result = Ok(());
        for segment in &self.segments[..removable] {
            result = remove_file(&*self.file_system, &segment.path);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = sync_directory(&*self.file_system, &self.wal_dir);
            self.directory_dirty = result.is_err();
            self.segments.drain(..removable);
        }
        self.break_on_error(result)
    }
}
