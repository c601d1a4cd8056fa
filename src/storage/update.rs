//! What an `Update` (RESP's conditional `SET`, `APPEND`, `INCRBY`, `GETDEL`) does to the
//! value a key holds: a pure function from the value before to the write and the outcome,
//! so every member that applies the same command decides the same.
//!
//! This module owns those rules, integers read as Redis reads them included. It must not
//! touch the maps; `ShardMap::update` runs it under the shard's lock.

use bytes::{BufMut, Bytes, BytesMut};
use radiant_protocol::{SetCondition, Update, UpdateOutcome};

/// What an update does to the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyWrite {
    /// Leave it as it is.
    Keep,
    /// Make it hold this value.
    Store(Bytes),
    /// Remove it.
    Remove,
}

/// The write `update` makes to a key holding `current`, and what its client is told.
pub fn decide(current: Option<&Bytes>, update: Update) -> (KeyWrite, UpdateOutcome) {
    match update {
        Update::Set { value, condition } => {
            let written = match condition {
                SetCondition::Always => true,
                SetCondition::IfAbsent => current.is_none(),
                SetCondition::IfPresent => current.is_some(),
            };
            let write = if written { KeyWrite::Store(value) } else { KeyWrite::Keep };
            (write, UpdateOutcome::Set { written, previous: current.cloned() })
        }
        Update::Append { suffix, max_value_bytes } => {
            let before = current.map_or(&[][..], |value| &value[..]);
            let length = before.len() as u64 + suffix.len() as u64;
            if length > u64::from(max_value_bytes) {
                return (KeyWrite::Keep, UpdateOutcome::TooLong { length });
            }
            let mut joined = BytesMut::with_capacity(before.len() + suffix.len());
            joined.put_slice(before);
            joined.put_slice(&suffix);
            (KeyWrite::Store(joined.freeze()), UpdateOutcome::Appended { length })
        }
        Update::IncrementBy { delta } => {
            let before = match current {
                None => 0,
                Some(value) => match parse_integer(value) {
                    Some(number) => number,
                    None => return (KeyWrite::Keep, UpdateOutcome::NotAnInteger),
                },
            };
            match before.checked_add(delta) {
                Some(value) => {
                    let text = Bytes::from(value.to_string());
                    (KeyWrite::Store(text), UpdateOutcome::Incremented { value })
                }
                None => (KeyWrite::Keep, UpdateOutcome::Overflow),
            }
        }
        Update::Take => {
            let write = if current.is_some() { KeyWrite::Remove } else { KeyWrite::Keep };
            (write, UpdateOutcome::Taken { previous: current.cloned() })
        }
    }
}

/// `bytes` as a signed 64-bit integer if it is one written the one way Redis accepts:
/// decimal, an optional `-`, no `+`, no spaces, no leading zeros, not `-0`.
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    // Why: Redis's rule (string2ll) is stricter than `str::parse`, which takes `+5` and
    // `007`; a value INCR accepts here must be one Redis clients expect it to accept.
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == bytes.len(),
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn integers_are_read_as_redis_reads_them() {
        for (text, expected) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("+1", None),
            ("01", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1.5", None),
        ] {
            assert_eq!(parse_integer(text.as_bytes()), expected, "{text:?}");
        }
    }

    #[test]
    fn increments_start_from_zero_and_refuse_what_is_not_an_integer_or_would_overflow() {
        let add = |current: Option<&'static str>, delta| {
            decide(current.map(bytes).as_ref(), Update::IncrementBy { delta })
        };
        assert_eq!(
            add(None, 5),
            (KeyWrite::Store(bytes("5")), UpdateOutcome::Incremented { value: 5 })
        );
        assert_eq!(
            add(Some("-3"), 1),
            (KeyWrite::Store(bytes("-2")), UpdateOutcome::Incremented { value: -2 })
        );
        assert_eq!(add(Some("abc"), 1), (KeyWrite::Keep, UpdateOutcome::NotAnInteger));
        assert_eq!(add(Some("9223372036854775807"), 1), (KeyWrite::Keep, UpdateOutcome::Overflow));
    }

    #[test]
    fn conditional_sets_write_only_when_their_condition_holds_and_answer_the_old_value() {
        let set = |current: Option<&'static str>, condition| {
            decide(current.map(bytes).as_ref(), Update::Set { value: bytes("new"), condition })
        };
        let old = Some(bytes("old"));
        assert_eq!(
            set(Some("old"), SetCondition::IfAbsent),
            (KeyWrite::Keep, UpdateOutcome::Set { written: false, previous: old.clone() })
        );
        assert_eq!(
            set(None, SetCondition::IfAbsent),
            (KeyWrite::Store(bytes("new")), UpdateOutcome::Set { written: true, previous: None })
        );
        assert_eq!(
            set(None, SetCondition::IfPresent),
            (KeyWrite::Keep, UpdateOutcome::Set { written: false, previous: None })
        );
        assert_eq!(
            set(Some("old"), SetCondition::Always),
            (KeyWrite::Store(bytes("new")), UpdateOutcome::Set { written: true, previous: old })
        );
    }

    #[test]
    fn appends_join_and_stop_at_the_commands_limit() {
        let append = |current: Option<&'static str>, max_value_bytes| {
            let update = Update::Append { suffix: bytes("def"), max_value_bytes };
            decide(current.map(bytes).as_ref(), update)
        };
        assert_eq!(
            append(Some("abc"), 6),
            (KeyWrite::Store(bytes("abcdef")), UpdateOutcome::Appended { length: 6 })
        );
        assert_eq!(
            append(None, 6),
            (KeyWrite::Store(bytes("def")), UpdateOutcome::Appended { length: 3 })
        );
        assert_eq!(append(Some("abcd"), 6), (KeyWrite::Keep, UpdateOutcome::TooLong { length: 7 }));
    }

    #[test]
    fn a_take_removes_what_is_there_and_answers_it() {
        assert_eq!(
            decide(Some(&bytes("v")), Update::Take),
            (KeyWrite::Remove, UpdateOutcome::Taken { previous: Some(bytes("v")) })
        );
        assert_eq!(
            decide(None, Update::Take),
            (KeyWrite::Keep, UpdateOutcome::Taken { previous: None })
        );
    }
}
