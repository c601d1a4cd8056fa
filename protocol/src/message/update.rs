//! Read-modify-write updates of one key (`ClientRequest::Update`, `Command::Update`):
//! a conditional set that may answer the old value, an append, an integer increment and
//! a take (delete answering the old value). They are what Redis's `SET NX|XX|GET`,
//! `SETNX`, `GETSET`, `APPEND`, `INCR`/`DECR`/`INCRBY`/`DECRBY` and `GETDEL` need to be
//! atomic and one log entry each.
//!
//! This module owns the byte format of an update and of its outcome, decode beside
//! encode. It must not apply them; the state machine does (`storage/update.rs`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_bool, put_bytes, put_optional_bytes, Reader};
use crate::error::DecodeError;
use crate::limits::Limits;

/// When a conditional set writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SetCondition {
    /// Always (plain `SET`, `GETSET`).
    Always = 0,
    /// Only if the key is absent (`NX`, `SETNX`).
    IfAbsent = 1,
    /// Only if the key is present (`XX`).
    IfPresent = 2,
}

/// One read-modify-write of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// Set the key to `value` if `condition` holds; answers whether it did and the value
    /// before. Tag 1.
    Set {
        /// The new value.
        value: Bytes,
        /// When to write.
        condition: SetCondition,
    },
    /// Append `suffix` to the value (an absent key counts as empty), unless the result
    /// would be longer than `max_value_bytes`. Tag 2.
    Append {
        /// The bytes to append.
        suffix: Bytes,
        /// The longest value the result may be: the herald's `max_value_bytes`, carried
        /// in the command so every member decides the same.
        max_value_bytes: u32,
    },
    /// Add `delta` to the value read as a decimal signed 64-bit integer (an absent key
    /// counts as 0) and store the sum in decimal. Tag 3.
    IncrementBy {
        /// What to add (negative to subtract).
        delta: i64,
    },
    /// Delete the key, answering the value it held. Tag 4.
    Take,
}

/// What an update did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The answer to `Set`. Tag 1.
    Set {
        /// Whether the value was written.
        written: bool,
        /// The value before (`None`: the key was absent).
        previous: Option<Bytes>,
    },
    /// The answer to `Append`: the value's length after it. Tag 2.
    Appended {
        /// The new length in bytes.
        length: u64,
    },
    /// The answer to `IncrementBy`: the new value. Tag 3.
    Incremented {
        /// The sum.
        value: i64,
    },
    /// The answer to `Take`: the value the key held (`None`: absent). Tag 4.
    Taken {
        /// The removed value.
        previous: Option<Bytes>,
    },
    /// Nothing was written: the value is not a decimal signed 64-bit integer. Tag 5.
    NotAnInteger,
    /// Nothing was written: the sum would overflow a signed 64-bit integer. Tag 6.
    Overflow,
    /// Nothing was written: the appended value would be `length` bytes, longer than the
    /// command's `max_value_bytes`. Tag 7.
    TooLong {
        /// The length the value would have had.
        length: u64,
    },
}

const TAG_SET: u8 = 1;
const TAG_APPEND: u8 = 2;
const TAG_INCREMENT_BY: u8 = 3;
const TAG_TAKE: u8 = 4;

const OUTCOME_SET: u8 = 1;
const OUTCOME_APPENDED: u8 = 2;
const OUTCOME_INCREMENTED: u8 = 3;
const OUTCOME_TAKEN: u8 = 4;
const OUTCOME_NOT_AN_INTEGER: u8 = 5;
const OUTCOME_OVERFLOW: u8 = 6;
const OUTCOME_TOO_LONG: u8 = 7;

impl SetCondition {
    fn from_u8(code: u8) -> Option<SetCondition> {
        match code {
            0 => Some(SetCondition::Always),
            1 => Some(SetCondition::IfAbsent),
            2 => Some(SetCondition::IfPresent),
            _ => None,
        }
    }
}

impl Update {
    /// Reads an update: `u8` tag, then its fields.
    pub(crate) fn decode(reader: &mut Reader, limits: &Limits) -> Result<Update, DecodeError> {
        let update = match reader.read_u8("update")? {
            TAG_SET => {
                let code = reader.read_u8("update.condition")?;
                let condition = SetCondition::from_u8(code)
                    .ok_or_else(|| reader.invalid("update.condition", "unknown set condition"))?;
                Update::Set { value: reader.read_value("update.value", limits)?, condition }
            }
            TAG_APPEND => Update::Append {
                max_value_bytes: reader.read_u32("update.max_value_bytes")?,
                suffix: reader.read_value("update.suffix", limits)?,
            },
            TAG_INCREMENT_BY => Update::IncrementBy {
                // Why: the wire holds the two's complement bits of the signed delta.
                delta: reader.read_u64("update.delta")? as i64,
            },
            TAG_TAKE => Update::Take,
            _ => return Err(reader.invalid("update", "unknown update tag")),
        };
        Ok(update)
    }

    /// Appends the update (tag onwards) to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        match self {
            Update::Set { value, condition } => {
                dst.put_u8(TAG_SET);
                dst.put_u8(*condition as u8);
                put_bytes(dst, value);
            }
            Update::Append { suffix, max_value_bytes } => {
                dst.put_u8(TAG_APPEND);
                dst.put_u32(*max_value_bytes);
                put_bytes(dst, suffix);
            }
            Update::IncrementBy { delta } => {
                dst.put_u8(TAG_INCREMENT_BY);
                dst.put_u64(*delta as u64);
            }
            Update::Take => dst.put_u8(TAG_TAKE),
        }
    }
}

impl UpdateOutcome {
    /// Bytes of values the outcome holds (what a remembered session answer costs).
    pub fn value_bytes(&self) -> u64 {
        match self {
            UpdateOutcome::Set { previous: Some(value), .. }
            | UpdateOutcome::Taken { previous: Some(value) } => value.len() as u64,
            _ => 0,
        }
    }

    /// Reads an outcome: `u8` tag, then its fields.
    pub(crate) fn decode(
        reader: &mut Reader,
        limits: &Limits,
    ) -> Result<UpdateOutcome, DecodeError> {
        let outcome = match reader.read_u8("outcome")? {
            OUTCOME_SET => UpdateOutcome::Set {
                written: reader.read_bool("outcome.written")?,
                previous: reader.read_optional_value("outcome.previous", limits)?,
            },
            OUTCOME_APPENDED => {
                UpdateOutcome::Appended { length: reader.read_u64("outcome.length")? }
            }
            OUTCOME_INCREMENTED => {
                UpdateOutcome::Incremented { value: reader.read_u64("outcome.value")? as i64 }
            }
            OUTCOME_TAKEN => UpdateOutcome::Taken {
                previous: reader.read_optional_value("outcome.previous", limits)?,
            },
            OUTCOME_NOT_AN_INTEGER => UpdateOutcome::NotAnInteger,
            OUTCOME_OVERFLOW => UpdateOutcome::Overflow,
            OUTCOME_TOO_LONG => {
                UpdateOutcome::TooLong { length: reader.read_u64("outcome.length")? }
            }
            _ => return Err(reader.invalid("outcome", "unknown update outcome")),
        };
        Ok(outcome)
    }

    /// Appends the outcome (tag onwards) to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        match self {
            UpdateOutcome::Set { written, previous } => {
                dst.put_u8(OUTCOME_SET);
                put_bool(dst, *written);
                put_optional_bytes(dst, previous.as_ref());
            }
            UpdateOutcome::Appended { length } => {
                dst.put_u8(OUTCOME_APPENDED);
                dst.put_u64(*length);
            }
            UpdateOutcome::Incremented { value } => {
                dst.put_u8(OUTCOME_INCREMENTED);
                dst.put_u64(*value as u64);
            }
            UpdateOutcome::Taken { previous } => {
                dst.put_u8(OUTCOME_TAKEN);
                put_optional_bytes(dst, previous.as_ref());
            }
            UpdateOutcome::NotAnInteger => dst.put_u8(OUTCOME_NOT_AN_INTEGER),
            UpdateOutcome::Overflow => dst.put_u8(OUTCOME_OVERFLOW),
            UpdateOutcome::TooLong { length } => {
                dst.put_u8(OUTCOME_TOO_LONG);
                dst.put_u64(*length);
            }
        }
    }
}
