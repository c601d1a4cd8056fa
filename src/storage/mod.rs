//! Durable storage: the write-ahead log, key-value snapshots and the in-memory shard map.
//!
//! This module owns every file Radiant writes. It must not contain protocol logic: the core
//! decides what to persist and when, and storage only makes it durable and reads it back.
pub mod wal;

pub use wal::{HardState, Recovered, TornTail, Wal, WalError, WalOptions, WalRecord};
