//! Radiant: a sharded, replicated, strongly consistent key-value store.
//!
//! ```text
//! cli/     the `radiant` command (start, check-config, get/put/delete/cas)
//! config/  the TOML configuration and its validation
//! core/    SANS-IO state machines: no I/O, no clock, no threads (see core/mod.rs)
//! server/  the daemon: mio reactor, state thread, WAL writer, shard workers
//! storage/ files: write-ahead log, snapshots; the in-memory shard map
//! client/  the blocking client library
//! ```
//! The wire format lives in the `radiant-protocol` crate (`protocol/`).

pub mod cli;
pub mod client;
pub mod config;
pub mod core;
pub mod limits;
pub mod server;
pub mod sim;
pub mod storage;
