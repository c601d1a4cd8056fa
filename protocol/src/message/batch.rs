//! Writes of several keys of one shard as one log entry (`ClientRequest::Batch`,
//! `Command::Batch`): what Redis's `MSET`, `MSETNX` and a `DEL` of several keys need to
//! be atomic. Every key of a batch belongs to the same shard (the herald refuses any
//! other batch), so one shard worker applies it under one lock, and no reader sees a
//! part of it.
//!
//! This module owns the byte format of a batch and of its outcome, decode beside encode.
//! It must not apply them; the state machine does (`storage/shard_map.rs`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_bytes, put_optional_bytes, Reader};
use crate::error::DecodeError;
use crate::limits::Limits;

/// The most writes one batch may hold (Redis clients send `MSET` of a few keys; this
/// bounds the work one entry makes a worker do while it holds a shard's lock).
pub const MAX_BATCH_WRITES: u32 = 1024;

/// The smallest encoded write: a `u32` key length and one key byte, a `u8` presence
/// flag. A write count is checked against it before the vector is allocated.
const MIN_WRITE_BYTES: usize = 6;

/// When a batch writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BatchCondition {
    /// Always (`MSET`, a `DEL` of several keys).
    Always = 0,
    /// Only if none of its keys is present (`MSETNX`); otherwise nothing is written.
    IfAllAbsent = 1,
}

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchWrite {
    /// The key.
    pub key: Bytes,
    /// Its new value; `None` deletes it.
    pub value: Option<Bytes>,
}

/// Several writes of one shard's keys, carried out together or (under a condition that
/// fails) not at all. A key written twice takes the later write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// When the writes happen.
    pub condition: BatchCondition,
    /// The writes, at least one, at most `MAX_BATCH_WRITES`.
    pub writes: Vec<BatchWrite>,
}

/// What a batch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Whether the writes were made (false only when the condition failed).
    pub written: bool,
    /// How many of the batch's distinct keys were present before it.
    pub existed: u32,
}

impl BatchCondition {
    fn from_u8(code: u8) -> Option<BatchCondition> {
        match code {
            0 => Some(BatchCondition::Always),
            1 => Some(BatchCondition::IfAllAbsent),
            _ => None,
        }
    }
}

impl Batch {
    /// The key that routes the batch (its first; every other key is of the same shard).
    pub fn first_key(&self) -> Option<&Bytes> {
        self.writes.first().map(|write| &write.key)
    }

    /// Reads a batch: `u8` condition, `u32` write count, then each write's key and
    /// optional value. The count is checked against `MAX_BATCH_WRITES` and the bytes
    /// left before the vector is allocated.
    pub(crate) fn decode(reader: &mut Reader, limits: &Limits) -> Result<Batch, DecodeError> {
        let code = reader.read_u8("batch.condition")?;
        let condition = BatchCondition::from_u8(code)
            .ok_or_else(|| reader.invalid("batch.condition", "unknown batch condition"))?;
        let count = reader.read_u32("batch.count")?;
        if count == 0 || count > MAX_BATCH_WRITES {
            return Err(reader.invalid("batch.count", "a batch holds 1 to 1024 writes"));
        }
        // Why: on a 16-bit target the conversion could fail; usize::MAX then reports
        // truncation instead of panicking.
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        reader.need("batch.writes", count.saturating_mul(MIN_WRITE_BYTES))?;
        let mut writes = Vec::with_capacity(count);
        for _ in 0..count {
            let key = reader.read_key("batch.key", limits)?;
            let value = reader.read_optional_value("batch.value", limits)?;
            writes.push(BatchWrite { key, value });
        }
        Ok(Batch { condition, writes })
    }

    /// Appends the batch (condition onwards) to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        debug_assert!(
            !self.writes.is_empty() && self.writes.len() <= MAX_BATCH_WRITES as usize,
            "a batch of {} writes cannot be decoded",
            self.writes.len()
        );
        dst.put_u8(self.condition as u8);
        dst.put_u32(u32::try_from(self.writes.len()).unwrap_or(u32::MAX));
        for write in &self.writes {
            put_bytes(dst, &write.key);
            put_optional_bytes(dst, write.value.as_ref());
        }
    }
}

impl BatchOutcome {
    /// Reads an outcome: `bool` written, `u32` existed.
    pub(crate) fn decode(reader: &mut Reader) -> Result<BatchOutcome, DecodeError> {
        let written = reader.read_bool("outcome.written")?;
        let existed = reader.read_u32("outcome.existed")?;
        Ok(BatchOutcome { written, existed })
    }

    /// Appends the outcome to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        crate::codec::put_bool(dst, self.written);
        dst.put_u32(self.existed);
    }
}
