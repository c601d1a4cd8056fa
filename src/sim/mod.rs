//! The deterministic simulator's verification side: the client history format
//! ([`history`]) and the checkers that judge a history ([`checker`]).
//!
//! This module owns recording and judging what clients saw. It must not drive
//! radiants, read a clock or depend on unordered iteration: a history and its verdict
//! are the same on every run and every machine.

pub mod checker;
pub mod history;
