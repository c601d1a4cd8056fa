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
pub mod tls;

/// Formats an error with its whole source chain (`cannot append to segment …: No space
/// left on device`), so no message drops the OS error that caused it.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
