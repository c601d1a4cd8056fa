//! Key to hash slot to shard: the Redis-compatible key placement (DESIGN §2).
//!
//! This module owns the pure arithmetic that maps a key to one of `SLOT_COUNT` hash slots
//! (CRC16/XMODEM of the key or of its `{hashtag}`) and slots to shards as contiguous ranges.
//! It must not do I/O, keep state or depend on anything but its arguments, because every
//! radiant, every client and the simulator must place every key identically: it lives in
//! the protocol crate for that reason (a client that hashed differently would send every
//! request to the wrong order).

use std::fmt;
use std::ops::Range;

/// The number of hash slots, as in Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// A shard of the key space: a contiguous range of hash slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "shard-{}", self.0)
    }
}

/// CRC16/XMODEM lookup table (polynomial 0x1021, MSB first), built at compile time.
const CRC16_TABLE: [u16; 256] = build_crc16_table();

// Indexing in a const fn: `byte` runs 0..256 over a 256-entry table, and an index out of
// bounds would fail the build, not a running radiant.
#[allow(clippy::indexing_slicing)]
const fn build_crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

/// CRC16/XMODEM (poly 0x1021, init 0, no reflection, no final xor): the checksum Redis uses
/// for key slots.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        let table_index = usize::from((crc >> 8) as u8 ^ byte);
        // A u8 always indexes the 256 entries.
        (crc << 8) ^ CRC16_TABLE.get(table_index).copied().unwrap_or(0)
    })
}

/// The part of `key` that decides its slot: the bytes between the first `{` and the next `}`
/// after it when that is non-empty (so related keys can share a slot), else the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&byte| byte == b'{') else {
        return key;
    };
    let after_open = key.get(open + 1..).unwrap_or_default();
    match after_open.iter().position(|&byte| byte == b'}') {
        Some(close) if close > 0 => after_open.get(..close).unwrap_or(key),
        _ => key,
    }
}

/// The hash slot of `key`, identical to Redis `CLUSTER KEYSLOT`.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOT_COUNT
}

fn assert_shard_count(shard_count: u32) {
    assert!(shard_count >= 1, "shard_count {shard_count} must be at least 1");
    assert!(
        shard_count <= u32::from(SLOT_COUNT),
        "shard_count {shard_count} must not exceed the {SLOT_COUNT} hash slots"
    );
}

/// The shard owning `slot` when the slots are split into `shard_count` contiguous ranges.
pub fn slot_shard(slot: u16, shard_count: u32) -> ShardId {
    assert_shard_count(shard_count);
    assert!(slot < SLOT_COUNT, "slot {slot} out of range 0..{SLOT_COUNT}");
    // u64 so that slot * shard_count cannot overflow.
    let shard = u64::from(slot) * u64::from(shard_count) / u64::from(SLOT_COUNT);
    // Below shard_count, which is a u32.
    ShardId(u32::try_from(shard).unwrap_or(u32::MAX))
}

/// The shard owning `key`.
pub fn key_shard(key: &[u8], shard_count: u32) -> ShardId {
    slot_shard(key_slot(key), shard_count)
}

/// The slots owned by `shard`: exactly the slots for which `slot_shard` returns `shard`.
pub fn shard_slot_range(shard: ShardId, shard_count: u32) -> Range<u16> {
    assert_shard_count(shard_count);
    assert!(shard.0 < shard_count, "{shard} out of range for shard_count {shard_count}");
    // slot_shard(slot) = floor(slot * n / S) >= s  <=>  slot >= ceil(s * S / n).
    let first_slot = |shard_number: u64| -> u16 {
        let slots = u64::from(SLOT_COUNT);
        let count = u64::from(shard_count);
        let slot = (shard_number * slots).div_ceil(count);
        // ceil(s * S / n) <= S, which fits u16.
        u16::try_from(slot).unwrap_or(SLOT_COUNT)
    };
    first_slot(u64::from(shard.0))..first_slot(u64::from(shard.0) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn key_slot_matches_redis_cluster_keyslot() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn keys_with_the_same_hashtag_share_a_slot() {
        let following = key_slot(b"{user1000}.following");
        assert_eq!(following, key_slot(b"{user1000}.followers"));
        assert_eq!(following, key_slot(b"user1000"));
    }

    #[test]
    fn empty_or_unclosed_hashtags_hash_the_whole_key() {
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOT_COUNT);
        assert_eq!(key_slot(b"foo{bar"), crc16(b"foo{bar") % SLOT_COUNT);
        // Only the first `{` counts, and the tag ends at the first `}` after it.
        assert_eq!(key_slot(b"foo{{bar}}zap"), crc16(b"{bar") % SLOT_COUNT);
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn one_shard_owns_every_slot() {
        assert_eq!(shard_slot_range(ShardId(0), 1), 0..SLOT_COUNT);
        assert_eq!(key_shard(b"anything", 1), ShardId(0));
    }

    #[test]
    fn shard_id_displays_with_its_number() {
        assert_eq!(ShardId(7).to_string(), "shard-7");
    }

    #[test]
    #[should_panic(expected = "must be at least 1")]
    fn rejects_zero_shards() {
        slot_shard(0, 0);
    }

    #[test]
    #[should_panic(expected = "must not exceed")]
    fn rejects_more_shards_than_slots() {
        shard_slot_range(ShardId(0), 16385);
    }

    #[test]
    fn slot_ranges_cover_every_slot_exactly_once_for_all_shard_counts() {
        for shard_count in 1..=1024u32 {
            let mut next_slot = 0u16;
            for shard in 0..shard_count {
                let range = shard_slot_range(ShardId(shard), shard_count);
                assert_eq!(range.start, next_slot, "gap or overlap, {shard_count} shards");
                assert!(!range.is_empty(), "shard {shard} of {shard_count} owns no slot");
                next_slot = range.end;
            }
            assert_eq!(next_slot, SLOT_COUNT, "{shard_count} shards miss slots");
        }
    }

    proptest! {
        #[test]
        fn every_slot_lies_in_the_range_of_its_shard(
            slot in 0..SLOT_COUNT,
            shard_count in 1..=u32::from(SLOT_COUNT),
        ) {
            let shard = slot_shard(slot, shard_count);
            prop_assert!(shard.0 < shard_count);
            prop_assert!(shard_slot_range(shard, shard_count).contains(&slot));
        }
    }
}
