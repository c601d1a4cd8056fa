//! The sans-IO core.
pub mod slots;
