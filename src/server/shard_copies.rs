//! Copies of whole shards that backups page through (`ReadShard`, `ShardPage`).
//!
//! A copy is taken at one applied index (by the shard's worker, in log order, see
//! `Action::CopyShard`) and kept under a cursor, so every page a backup reads is of that
//! index whatever is written meanwhile. A copy shares its keys' and values' buffers with
//! the live shard (`Bytes` are reference counted): it costs a vector of pairs, and the
//! old values of keys overwritten while it is open.
//!
//! This module owns the cursors, their limits and the paging. It must not decide at
//! which index a copy is taken; the core does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use radiant_protocol::slots::ShardId;
use radiant_protocol::{LogIndex, ShardPage};

/// Most copies open at once on one radiant: a backup reads one shard at a time.
pub const MAX_OPEN_COPIES: usize = 16;

/// A copy nobody asked for a page of for this long is dropped (its backup died).
pub const COPY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most bytes of keys and values in one page, whatever the request asks (a page must
/// stay well inside a frame).
pub const MAX_PAGE_BYTES: u32 = 4 << 20;

#[derive(Debug)]
struct ShardCopy {
    shard: ShardId,
    index: LogIndex,
    /// Sorted by key.
    pairs: Vec<(Bytes, Bytes)>,
    last_used: Instant,
}

/// The open copies, by cursor.
#[derive(Debug)]
pub struct ShardCopies {
    copies: HashMap<u64, ShardCopy>,
    next_cursor: u64,
}

impl ShardCopies {
    /// No copies; cursors start at `first_cursor` (taken from the clock at start, so a
    /// cursor of an earlier incarnation of this radiant names no copy of this one).
    pub fn new(first_cursor: u64) -> ShardCopies {
        ShardCopies { copies: HashMap::new(), next_cursor: first_cursor.max(1) }
    }

    /// Keeps `pairs` (sorted by key) as the copy of `shard` at `index`; answers its
    /// first page, which holds no pairs (the backup asks for them by cursor). Fails when
    /// `MAX_OPEN_COPIES` are in use and none has been idle for `COPY_IDLE_TIMEOUT`.
    pub fn open(
        &mut self,
        shard: ShardId,
        index: LogIndex,
        pairs: Vec<(Bytes, Bytes)>,
        now: Instant,
    ) -> Result<ShardPage, String> {
        debug_assert!(pairs.windows(2).all(|pair| pair[0].0 < pair[1].0), "copy not sorted");
        self.copies.retain(|_, copy| now.duration_since(copy.last_used) < COPY_IDLE_TIMEOUT);
        if self.copies.len() >= MAX_OPEN_COPIES {
            return Err(format!(
                "{MAX_OPEN_COPIES} shard copies are open on this radiant for backups in \
                 progress; retry when one finishes (idle copies are dropped after {} s)",
                COPY_IDLE_TIMEOUT.as_secs()
            ));
        }
        let cursor = self.next_cursor;
        self.next_cursor = self.next_cursor.checked_add(1).unwrap_or(1);
        let total_keys = pairs.len() as u64;
        let page = ShardPage {
            shard: shard.0,
            cursor,
            index,
            total_keys,
            after: None,
            pairs: Vec::new(),
            last: pairs.is_empty(),
        };
        if !pairs.is_empty() {
            self.copies.insert(cursor, ShardCopy { shard, index, pairs, last_used: now });
        }
        Ok(page)
    }

    /// The page of copy `cursor` after `after`, at most `max_bytes` (capped at
    /// `MAX_PAGE_BYTES`, at least one pair); `None` when this radiant holds no such copy
    /// of `shard`. The last page drops the copy.
    pub fn page(
        &mut self,
        (shard, cursor): (u32, u64),
        after: Option<&[u8]>,
        max_bytes: u32,
        now: Instant,
    ) -> Option<ShardPage> {
        let copy = self.copies.get_mut(&cursor).filter(|copy| copy.shard.0 == shard)?;
        copy.last_used = now;
        let start = after.map_or(0, |after| copy.pairs.partition_point(|(key, _)| **key <= *after));
        let limit = u64::from(max_bytes.min(MAX_PAGE_BYTES));
        let mut bytes = 0u64;
        let mut end = start;
        for (key, value) in copy.pairs.iter().skip(start) {
            bytes += (key.len() + value.len()) as u64;
            if end > start && bytes > limit {
                break;
            }
            end += 1;
        }
        let page = ShardPage {
            shard,
            cursor,
            index: copy.index,
            total_keys: copy.pairs.len() as u64,
            after: after.map(Bytes::copy_from_slice),
            pairs: copy.pairs.get(start..end).unwrap_or_default().to_vec(),
            last: end >= copy.pairs.len(),
        };
        if page.last {
            self.copies.remove(&cursor);
        }
        Some(page)
    }

    /// Copies open now.
    pub fn open_count(&self) -> usize {
        self.copies.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(count: u8) -> Vec<(Bytes, Bytes)> {
        (0..count).map(|n| (Bytes::from(vec![b'a' + n]), Bytes::from(vec![n; 10]))).collect()
    }

    #[test]
    fn pages_walk_the_copy_in_order_and_the_last_drops_it() {
        let now = Instant::now();
        let mut copies = ShardCopies::new(5);
        let first = copies.open(ShardId(2), 40, pairs(5), now).expect("room");
        assert_eq!((first.cursor, first.index, first.total_keys), (5, 40, 5));
        assert!(first.pairs.is_empty() && !first.last);
        let mut after: Option<Bytes> = None;
        let mut seen = Vec::new();
        loop {
            let page = copies.page((2, 5), after.as_deref(), 25, now).expect("open");
            assert!(!page.pairs.is_empty() && page.pairs.len() <= 2, "25 bytes: 1 or 2 pairs");
            after = page.pairs.last().map(|(key, _)| key.clone());
            seen.extend(page.pairs);
            if page.last {
                break;
            }
        }
        assert_eq!(seen, pairs(5));
        assert_eq!(copies.open_count(), 0);
        assert!(copies.page((2, 5), None, 25, now).is_none(), "dropped after the last page");
    }

    #[test]
    fn a_page_is_resent_whole_and_a_cursor_names_only_its_shard() {
        let now = Instant::now();
        let mut copies = ShardCopies::new(1);
        copies.open(ShardId(0), 9, pairs(3), now).expect("room");
        let once = copies.page((0, 1), None, 1, now).expect("open");
        let again = copies.page((0, 1), None, 1, now).expect("open");
        assert_eq!(once, again, "asking again after the same key gives the same page");
        assert!(copies.page((1, 1), None, 1, now).is_none(), "cursor 1 is shard 0's");
    }

    #[test]
    fn an_empty_shard_needs_no_copy_and_a_full_table_refuses_until_one_idles_out() {
        let now = Instant::now();
        let mut copies = ShardCopies::new(1);
        assert!(copies.open(ShardId(0), 1, Vec::new(), now).expect("room").last);
        for _ in 0..MAX_OPEN_COPIES {
            copies.open(ShardId(0), 1, pairs(1), now).expect("room");
        }
        assert!(copies.open(ShardId(0), 1, pairs(1), now).is_err());
        let later = now + COPY_IDLE_TIMEOUT;
        assert!(copies.open(ShardId(0), 1, pairs(1), later).is_ok());
        assert_eq!(copies.open_count(), 1);
    }
}
