//! Durable storage: the write-ahead log, key-value snapshots and the in-memory shard map.
//!
//! This module owns every file Radiant writes. It must not contain protocol logic: the core
//! decides what to persist and when, and storage only makes it durable and reads it back.
pub mod file_system;
pub mod injected_bugs;
pub mod memory_file_system;
pub mod recovery;
pub mod shard_map;
pub mod snapshot;
pub mod state_machine;
pub mod state_snapshot;
pub mod system_file;
pub mod update;
pub mod wal;

pub use file_system::{DataDir, FileSystem, RealFileSystem, SharedFileSystem};
pub use memory_file_system::{DiskFaults, MemoryFileSystem};
pub use shard_map::{CasOutcome, ShardMap};
pub use snapshot::{load_latest, LoadedSnapshot, SnapshotError, SnapshotLimits, SnapshotWriter};
pub use wal::{Recovered, TornTail, Wal, WalError, WalOptions, WalRecord};
