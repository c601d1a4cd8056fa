//! Key to hash slot to shard.
