//! The Radiant wire protocol: frames and typed messages, encoded into `BytesMut`
//! and decoded from `Bytes` without copying keys or values.
//!
//! This crate owns the byte format of every message (see `docs/protocol.md`).
//! It must not do I/O, read a clock, start a thread or panic on any input.
#![deny(missing_docs)]

pub mod ids;
pub mod replication;

pub use ids::{ClientId, GroupId, LogIndex, MemberId, Term};
pub use replication::LogEntry;
