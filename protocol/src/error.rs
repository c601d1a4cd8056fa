//! Decode errors: everything that can be wrong with bytes from the network or the log.
//!
//! This module owns the error type and its user-facing sentences. It must not decide
//! how a server reacts; `docs/protocol.md` says which errors close a connection.

use std::fmt;

use crate::kind::{Family, Kind};

/// Why bytes could not be decoded. Every variant carries the numbers a user needs to
/// find the culprit; `Display` prints a sentence saying what went wrong and what to do.
///
/// `kind: None` in `Truncated`, `TrailingBytes` and `InvalidField` means the bytes were
/// a log command (a `LogEntry`'s data), which travels without a frame and has no kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame's length field exceeds `max_frame_bytes`. Nothing was reserved.
    FrameTooLarge {
        /// The length field's value.
        len: u32,
        /// The configured `max_frame_bytes`.
        max: u32,
    },
    /// The frame's length field is below `MIN_FRAME_LENGTH`, too short for a header.
    FrameTooShort {
        /// The length field's value.
        len: u32,
    },
    /// The frame's version byte is not `PROTOCOL_VERSION`.
    UnsupportedVersion(u8),
    /// The frame's kind byte is unknown to this version. The frame was consumed, so the
    /// connection can continue after an error reply.
    UnknownKind {
        /// The kind byte.
        kind: u8,
        /// The frame's correlation id, to address the error reply.
        correlation_id: u64,
    },
    /// The payload ended inside a field.
    Truncated {
        /// The message kind, or `None` for a log command.
        kind: Option<Kind>,
        /// The field being read.
        field: &'static str,
        /// The bytes the field needs.
        needed: usize,
        /// The bytes left in the payload.
        remaining: usize,
    },
    /// The payload continued after the message's last field.
    TrailingBytes {
        /// The message kind, or `None` for a log command.
        kind: Option<Kind>,
        /// How many bytes were left over.
        count: usize,
    },
    /// A key is longer than `max_key_bytes`.
    KeyTooLarge {
        /// The key's length field.
        len: u32,
        /// The configured `max_key_bytes`.
        max: u32,
    },
    /// A value is longer than `max_value_bytes`.
    ValueTooLarge {
        /// The value's length field.
        len: u32,
        /// The configured `max_value_bytes`.
        max: u32,
    },
    /// A key has length 0; keys are never empty.
    EmptyKey,
    /// A field that must hold an id holds 0 ("not set").
    ZeroId {
        /// The field's name.
        field: &'static str,
    },
    /// A field holds a value outside its domain (a boolean of 2, an unknown code, …).
    InvalidField {
        /// The message kind, or `None` for a log command.
        kind: Option<Kind>,
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl DecodeError {
    /// The correlation id of the frame the error belongs to, where the error knows it.
    /// For message-level errors the caller holds the frame and knows it already.
    pub fn correlation_id(&self) -> Option<u64> {
        match self {
            DecodeError::UnknownKind { correlation_id, .. } => Some(*correlation_id),
            _ => None,
        }
    }

    /// Whether the connection must be closed: the frame boundary is unknown or the peer
    /// speaks another protocol. All other errors leave the byte stream in sync.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::FrameTooLarge { .. }
                | DecodeError::FrameTooShort { .. }
                | DecodeError::UnsupportedVersion(_)
        )
    }
}

/// Names what was being decoded: "Put message" or "log command".
struct Subject(Option<Kind>);

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(kind) => write!(f, "{kind} message"),
            None => f.write_str("log command"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::FrameTooLarge { len, max } => write!(
                f,
                "frame length {len} exceeds max_frame_bytes {max}; send smaller frames \
                 or raise max_frame_bytes on the receiver"
            ),
            DecodeError::FrameTooShort { len } => write!(
                f,
                "frame length {len} is below the minimum of {} bytes (version, kind and \
                 correlation id); the peer does not speak the Radiant protocol",
                crate::frame::MIN_FRAME_LENGTH
            ),
            DecodeError::UnsupportedVersion(version) => write!(
                f,
                "protocol version {version} is not supported (this radiant speaks version \
                 {}); upgrade the older side",
                crate::frame::PROTOCOL_VERSION
            ),
            DecodeError::UnknownKind { kind, correlation_id } => {
                write_unknown_kind(f, *kind, *correlation_id)
            }
            DecodeError::Truncated { kind, field, needed, remaining } => write!(
                f,
                "{} is truncated: field `{field}` needs {needed} bytes but only {remaining} \
                 remain; the sender's encoder is broken",
                Subject(*kind)
            ),
            DecodeError::TrailingBytes { kind, count } => write!(
                f,
                "{} has {count} unexpected bytes after its last field; the sender's encoder \
                 is broken or speaks another version",
                Subject(*kind)
            ),
            DecodeError::KeyTooLarge { len, max } => {
                write!(f, "key of {len} bytes exceeds max_key_bytes {max}; use a shorter key")
            }
            DecodeError::ValueTooLarge { len, max } => write!(
                f,
                "value of {len} bytes exceeds max_value_bytes {max}; store a smaller value \
                 or raise max_value_bytes"
            ),
            DecodeError::EmptyKey => f.write_str("key is empty; keys must be at least 1 byte"),
            DecodeError::ZeroId { field } => write!(
                f,
                "field `{field}` holds id 0, which means \"not set\", but an id is required"
            ),
            DecodeError::InvalidField { kind, field, reason } => {
                write!(f, "{} field `{field}` is invalid: {reason}", Subject(*kind))
            }
        }
    }
}

/// Names the family range an unknown kind falls in, so an operator can tell a newer
/// peer (known range) from garbage (no range).
fn write_unknown_kind(f: &mut fmt::Formatter<'_>, kind: u8, correlation_id: u64) -> fmt::Result {
    write!(f, "message kind 0x{kind:02x} (correlation id {correlation_id}) ")?;
    if let Some(family) = Family::of_byte(kind) {
        write!(f, "is in the {family} range but ")?;
    }
    f.write_str("is unknown to this version; upgrade this radiant or stop sending it")
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_too_large_names_both_numbers() {
        let error = DecodeError::FrameTooLarge { len: 20_000_000, max: 17_825_792 };
        let text = error.to_string();
        assert!(text.starts_with("frame length 20000000 exceeds max_frame_bytes 17825792"));
        assert!(error.is_fatal());
        assert_eq!(error.correlation_id(), None);
    }

    #[test]
    fn unknown_kind_knows_its_correlation_id_and_family() {
        let error = DecodeError::UnknownKind { kind: 0x3F, correlation_id: 7 };
        assert_eq!(error.correlation_id(), Some(7));
        assert!(!error.is_fatal());
        assert!(error.to_string().contains("replication range"));
    }

    #[test]
    fn log_command_errors_say_log_command() {
        let error = DecodeError::TrailingBytes { kind: None, count: 3 };
        assert!(error.to_string().starts_with("log command has 3 unexpected bytes"));
        let error =
            DecodeError::Truncated { kind: Some(Kind::Put), field: "key", needed: 5, remaining: 2 };
        assert!(error.to_string().starts_with("Put message is truncated: field `key`"));
    }
}
