//! Reading a whole shard for a backup: `ReadShard` asks, `ShardPage` answers.
//!
//! The first `ReadShard` of a shard (cursor 0) is a linearizable read: the herald of
//! the shard's order copies the shard as of its applied index and keeps the copy under a
//! cursor; later requests page through that copy, so every page is of the same index
//! however long the backup takes and whatever is written meanwhile.
//!
//! This module owns the byte format. It must not decide how long a copy is kept or how
//! big a page may be; the radiant does.

use bytes::{BufMut, Bytes, BytesMut};

use super::migration::{decode_ordered_pairs, encode_ordered_pairs, PairFields};
use crate::codec::{put_bool, Reader};
use crate::error::DecodeError;
use crate::ids::LogIndex;
use crate::limits::Limits;

const PAGE_FIELDS: PairFields = ["page.after", "page.pairs", "page.key", "page.value"];

/// One page of a shard's copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPage {
    /// The shard.
    pub shard: u32,
    /// The copy to ask for the next page with (never 0).
    pub cursor: u64,
    /// The order's applied index the copy was taken at: the copy holds every write
    /// committed through it and none after.
    pub index: LogIndex,
    /// Keys in the whole copy.
    pub total_keys: u64,
    /// The pairs start after this key (none: at the shard's first key).
    pub after: Option<Bytes>,
    /// Key-value pairs, ascending by key, every key greater than `after`.
    pub pairs: Vec<(Bytes, Bytes)>,
    /// Whether this page ends the copy.
    pub last: bool,
}

impl ShardPage {
    /// Reads a page: `u32` shard, `u64` cursor, `u64` index, `u64` total keys, the
    /// ordered pairs, then a `bool` last.
    pub(crate) fn decode(reader: &mut Reader, limits: &Limits) -> Result<ShardPage, DecodeError> {
        let shard = reader.read_u32("page.shard")?;
        let cursor = reader.read_u64("page.cursor")?;
        if cursor == 0 {
            return Err(reader.invalid("page.cursor", "a page's cursor is never 0"));
        }
        let index = reader.read_u64("page.index")?;
        let total_keys = reader.read_u64("page.total_keys")?;
        let (after, pairs) = decode_ordered_pairs(reader, PAGE_FIELDS, limits)?;
        let last = reader.read_bool("page.last")?;
        Ok(ShardPage { shard, cursor, index, total_keys, after, pairs, last })
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u32(self.shard);
        dst.put_u64(self.cursor);
        dst.put_u64(self.index);
        dst.put_u64(self.total_keys);
        encode_ordered_pairs(dst, self.after.as_ref(), &self.pairs);
        put_bool(dst, self.last);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn page() -> ShardPage {
        ShardPage {
            shard: 7,
            cursor: 99,
            index: 1234,
            total_keys: 3,
            after: Some(Bytes::from_static(b"a")),
            pairs: vec![
                (Bytes::from_static(b"b"), Bytes::from_static(b"1")),
                (Bytes::from_static(b"c"), Bytes::new()),
            ],
            last: true,
        }
    }

    fn decode(bytes: BytesMut) -> Result<ShardPage, DecodeError> {
        let mut reader = Reader::new(bytes.freeze(), None);
        let page = ShardPage::decode(&mut reader, &Limits::DEFAULT)?;
        reader.finish()?;
        Ok(page)
    }

    #[test]
    fn a_page_round_trips() {
        let mut bytes = BytesMut::new();
        page().encode(&mut bytes);
        assert_eq!(decode(bytes).unwrap(), page());
    }

    #[test]
    fn pages_out_of_order_or_with_cursor_zero_are_refused() {
        let mut bytes = BytesMut::new();
        ShardPage { pairs: page().pairs.into_iter().rev().collect(), ..page() }.encode(&mut bytes);
        assert!(matches!(
            decode(bytes),
            Err(DecodeError::InvalidField { field: "page.pairs", .. })
        ));
        let mut bytes = BytesMut::new();
        ShardPage { cursor: 0, ..page() }.encode(&mut bytes);
        assert!(matches!(
            decode(bytes),
            Err(DecodeError::InvalidField { field: "page.cursor", .. })
        ));
    }
}
