//! Shard migration (DESIGN §8): the log commands an order applies to move shards, and
//! the chunk both the losing order's herald sends and the gaining order commits.
//!
//! This module owns their byte format. It must not decide which shard moves or when; the
//! core's shard table and the controller do.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_bytes, put_optional_bytes, Reader};
use crate::error::DecodeError;
use crate::ids::OrderId;
use crate::limits::Limits;

/// Most shards one `Adopt` may list (the configuration's own bound).
pub const MAX_ADOPT_SHARDS: usize = crate::configuration::MAX_SHARDS;

/// A piece of one shard's frozen data on its way from the order that loses it to the
/// order that gains it. Keys travel in ascending order; `after` says where this piece
/// starts, so a resent or re-cut piece is recognised whatever its size. The piece that
/// carries the shard's duplicate-detection table (`sessions`) is the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardChunk {
    /// The shard.
    pub shard: u32,
    /// The configuration that moved it.
    pub number: u64,
    /// The pairs start after this key (none: at the shard's first key).
    pub after: Option<Bytes>,
    /// Key-value pairs, ascending by key, every key greater than `after`.
    pub pairs: Vec<(Bytes, Bytes)>,
    /// The shard's session table (opaque here); present only in the last piece.
    pub sessions: Option<Bytes>,
}

/// One step of moving shards, written through an order's log so every member sees it
/// at the same index (log command tag 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationEntry {
    /// From here on the order implements configuration `number`'s shard assignment:
    /// shards it loses freeze, shards it gains wait for their data. Sub-tag 1.
    Adopt {
        /// The configuration number.
        number: u64,
        /// Owner of each shard in that configuration.
        shards: Vec<OrderId>,
    },
    /// A piece of a shard this order gains. Sub-tag 2.
    Install(ShardChunk),
    /// The gaining order holds the shard: this order drops its frozen copy. Sub-tag 3.
    Release {
        /// The shard.
        shard: u32,
        /// The configuration that moved it.
        number: u64,
    },
}

const MIGRATION_ADOPT: u8 = 1;
const MIGRATION_INSTALL: u8 = 2;
const MIGRATION_RELEASE: u8 = 3;

/// Smallest encoded pair: two `u32` lengths and a one-byte key.
const MIN_PAIR_BYTES: usize = 9;

/// The field names a run of ordered pairs reports errors under: `[after, pairs, key,
/// value]`.
pub(crate) type PairFields = [&'static str; 4];

const CHUNK_FIELDS: PairFields = ["chunk.after", "chunk.pairs", "chunk.key", "chunk.value"];

/// Reads an optional `after` key, a `u32` pair count and the pairs (key, value),
/// checking that the keys ascend and follow `after`.
pub(crate) fn decode_ordered_pairs(
    reader: &mut Reader,
    fields: PairFields,
    limits: &Limits,
) -> Result<OrderedPairs, DecodeError> {
    let [after_field, pairs_field, key_field, value_field] = fields;
    let after = if reader.read_presence(after_field)? {
        Some(reader.read_key(after_field, limits)?)
    } else {
        None
    };
    let count = reader.read_count(pairs_field, MIN_PAIR_BYTES)?;
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let key = reader.read_key(key_field, limits)?;
        let value = reader.read_value(value_field, limits)?;
        pairs.push((key, value));
    }
    let sorted = pairs.windows(2).all(|pair| matches!(pair, [a, b] if a.0 < b.0));
    let after_first = match (&after, pairs.first()) {
        (Some(after), Some((first, _))) => first > after,
        _ => true,
    };
    if !sorted || !after_first {
        return Err(reader.invalid(pairs_field, "keys must ascend and follow `after`"));
    }
    Ok((after, pairs))
}

/// Where a run of pairs starts, and the pairs.
pub(crate) type OrderedPairs = (Option<Bytes>, Vec<(Bytes, Bytes)>);

/// The layout `decode_ordered_pairs` reads.
pub(crate) fn encode_ordered_pairs(
    dst: &mut BytesMut,
    after: Option<&Bytes>,
    pairs: &[(Bytes, Bytes)],
) {
    put_optional_bytes(dst, after);
    dst.put_u32(u32::try_from(pairs.len()).unwrap_or(u32::MAX));
    for (key, value) in pairs {
        put_bytes(dst, key);
        put_bytes(dst, value);
    }
}

impl ShardChunk {
    /// Reads a chunk: `u32` shard, `u64` number, optional `after` key, `u32` pair count,
    /// the pairs (key, value), then the optional session table (at most a frame).
    pub(crate) fn decode(reader: &mut Reader, limits: &Limits) -> Result<ShardChunk, DecodeError> {
        let shard = reader.read_u32("chunk.shard")?;
        let number = reader.read_u64("chunk.number")?;
        let (after, pairs) = decode_ordered_pairs(reader, CHUNK_FIELDS, limits)?;
        let sessions = if reader.read_presence("chunk.sessions")? {
            Some(reader.read_bytes_at_most(
                "chunk.sessions",
                limits.max_frame_bytes,
                "session table longer than max_frame_bytes",
            )?)
        } else {
            None
        };
        Ok(ShardChunk { shard, number, after, pairs, sessions })
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u32(self.shard);
        dst.put_u64(self.number);
        encode_ordered_pairs(dst, self.after.as_ref(), &self.pairs);
        put_optional_bytes(dst, self.sessions.as_ref());
    }

    /// Bytes of key and value data it carries (what `replication_max_bytes` bounds).
    pub fn data_bytes(&self) -> usize {
        self.pairs.iter().map(|(key, value)| key.len() + value.len()).sum::<usize>()
            + self.sessions.as_ref().map_or(0, Bytes::len)
    }
}

impl MigrationEntry {
    /// Reads an entry after the command tag.
    pub(crate) fn decode(
        reader: &mut Reader,
        limits: &Limits,
    ) -> Result<MigrationEntry, DecodeError> {
        let entry = match reader.read_u8("migration")? {
            MIGRATION_ADOPT => {
                let number = reader.read_u64("adopt.number")?;
                let count = reader.read_count("adopt.shards", 8)?;
                if count == 0 || count > MAX_ADOPT_SHARDS {
                    return Err(reader.invalid("adopt.shards", "1 to 16384 shards"));
                }
                let mut shards = Vec::with_capacity(count);
                for _ in 0..count {
                    shards.push(reader.read_order_id("adopt.shard")?);
                }
                MigrationEntry::Adopt { number, shards }
            }
            MIGRATION_INSTALL => MigrationEntry::Install(ShardChunk::decode(reader, limits)?),
            MIGRATION_RELEASE => MigrationEntry::Release {
                shard: reader.read_u32("release.shard")?,
                number: reader.read_u64("release.number")?,
            },
            _ => return Err(reader.invalid("migration", "unknown migration entry")),
        };
        Ok(entry)
    }

    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        match self {
            MigrationEntry::Adopt { number, shards } => {
                dst.put_u8(MIGRATION_ADOPT);
                dst.put_u64(*number);
                dst.put_u32(u32::try_from(shards.len()).unwrap_or(u32::MAX));
                for order_id in shards {
                    dst.put_u64(order_id.get());
                }
            }
            MigrationEntry::Install(chunk) => {
                dst.put_u8(MIGRATION_INSTALL);
                chunk.encode(dst);
            }
            MigrationEntry::Release { shard, number } => {
                dst.put_u8(MIGRATION_RELEASE);
                dst.put_u32(*shard);
                dst.put_u64(*number);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::message::command::Command;

    fn chunk() -> ShardChunk {
        ShardChunk {
            shard: 3,
            number: 7,
            after: Some(Bytes::from_static(b"a")),
            pairs: vec![
                (Bytes::from_static(b"b"), Bytes::from_static(b"1")),
                (Bytes::from_static(b"c"), Bytes::new()),
            ],
            sessions: Some(Bytes::from_static(b"sessions")),
        }
    }

    #[test]
    fn migration_entries_round_trip_as_commands() {
        let order_id = OrderId::new(2).unwrap();
        for entry in [
            MigrationEntry::Adopt { number: 4, shards: vec![order_id, order_id] },
            MigrationEntry::Install(chunk()),
            MigrationEntry::Release { shard: 3, number: 7 },
        ] {
            let command = Command::Migration(entry);
            assert_eq!(command.key(), None);
            assert_eq!(Command::decode(command.to_bytes(), &Limits::DEFAULT), Ok(command));
        }
    }

    #[test]
    fn a_chunk_whose_keys_do_not_ascend_past_after_is_rejected() {
        for broken in [
            ShardChunk { after: Some(Bytes::from_static(b"b")), ..chunk() },
            ShardChunk { pairs: chunk().pairs.into_iter().rev().collect(), ..chunk() },
        ] {
            let command = Command::Migration(MigrationEntry::Install(broken));
            let error = Command::decode(command.to_bytes(), &Limits::DEFAULT);
            assert!(
                matches!(error, Err(DecodeError::InvalidField { field: "chunk.pairs", .. })),
                "{error:?}"
            );
        }
    }

    #[test]
    fn an_adopt_of_no_shards_or_a_zero_owner_is_rejected() {
        let empty = Command::Migration(MigrationEntry::Adopt { number: 1, shards: vec![] });
        assert!(Command::decode(empty.to_bytes(), &Limits::DEFAULT).is_err());
        let mut zero = BytesMut::new();
        zero.put_u8(6);
        zero.put_u8(1);
        zero.put_u64(1);
        zero.put_u32(1);
        zero.put_u64(0);
        let error = Command::decode(zero.freeze(), &Limits::DEFAULT);
        assert_eq!(error, Err(DecodeError::ZeroId { field: "adopt.shard" }));
    }

    #[test]
    fn a_pair_count_beyond_the_payload_is_rejected_before_allocating() {
        let mut data = BytesMut::new();
        data.put_u8(6);
        data.put_u8(2);
        data.put_u32(0);
        data.put_u64(1);
        data.put_u8(0);
        data.put_u32(u32::MAX);
        let error = Command::decode(data.freeze(), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::Truncated { field: "chunk.pairs", .. })));
    }
}
