//! Log entries: the unit an order replicates and its write-ahead log stores.

use bytes::Bytes;

use crate::ids::{LogIndex, Term};

/// One entry of an order's replicated log. `data` is an encoded command whose
/// meaning belongs to the state machine; the log only orders and stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The herald term in which the entry was created.
    pub term: Term,
    /// The entry's position in the log, starting at 1.
    pub index: LogIndex,
    /// The encoded command.
    pub data: Bytes,
}
