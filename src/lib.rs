//! Radiant: a sharded, replicated, strongly consistent key-value store.
pub mod config;
pub mod core;
pub mod storage;
