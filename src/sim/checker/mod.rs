//! Checkers that judge a client history. Each checker reads a finished history and
//! returns a verdict; none of them changes the history, drives a radiant or reads a
//! clock.

pub mod linearizability;

pub use linearizability::{check, Verdict};

/// The search bound `radiant check-history` uses when none is given: large enough for
/// simulator histories of a few thousand operations per key, small enough to finish in
/// seconds on one core when a key's history is pathological.
pub const DEFAULT_MAX_STEPS_PER_KEY: u64 = 20_000_000;
