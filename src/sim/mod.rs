//! The deterministic simulator (`radiant sim`): many radiant cores in one thread over a
//! seeded network ([`network`]) and disks ([`disk`]), run by one [`driver`] whose modes
//! are scenarios: one static order in [`order`], formation and sharded systems in
//! [`formation`]; each radiant's actions are carried out in [`radiant`], and the
//! simulated clients run the client library's own request logic ([`workload`]). Its
//! verification side: Raft's safety properties across every order's replicas
//! ([`invariants`]), the client history format ([`history`]) and the checkers that
//! judge a history ([`checker`]).
//!
//! It must not read a clock, start a thread or depend on unordered iteration: a run,
//! its history and its verdict are the same for a seed on every run and every machine.

pub mod checker;
pub mod disk;
pub mod driver;
pub mod formation;
pub mod history;
pub mod invariants;
pub mod network;
pub mod order;
pub mod radiant;
pub mod workload;

/// The message of a caught panic (a core assertion, or the simulator's own).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|text| (*text).to_string()))
        .unwrap_or_else(|| "panic without a message".to_string())
}
