//! Log commands: the `data` of a `LogEntry`, written by a herald and applied by the
//! shard workers of every member.
//!
//! This module owns the command byte format, decode beside encode. It must not apply
//! commands or decide their outcome; the shard workers do. Commands travel inside
//! replication messages and the write-ahead log, never as frames of their own.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_bytes, put_optional_bytes, Reader};
use crate::error::DecodeError;
use crate::limits::Limits;
use crate::message::client::Session;

/// One state-machine command. The session travels with each write so that every member
/// can deduplicate retries identically when it applies the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Does nothing; a new herald appends one to commit entries of earlier terms.
    /// Tag 0.
    Noop,
    /// Set `key` to `value`. Tag 1.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// The client session, for exactly-once application.
        session: Option<Session>,
    },
    /// Remove `key`. Tag 2.
    Delete {
        /// The key.
        key: Bytes,
        /// The client session, for exactly-once application.
        session: Option<Session>,
    },
    /// Compare-and-set `key`, with the meaning of `ClientRequest::Cas`. Tag 3.
    Cas {
        /// The key.
        key: Bytes,
        /// The value the key must hold; `None` means the key must be absent.
        expected: Option<Bytes>,
        /// The value to store on a match; `None` deletes the key on a match.
        new: Option<Bytes>,
        /// The client session, for exactly-once application.
        session: Option<Session>,
    },
}

const TAG_NOOP: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_CAS: u8 = 3;

// ===== impl Command =====

impl Command {
    /// The key the command writes, `None` for `Noop`. Shard workers route by it.
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Command::Noop => None,
            Command::Put { key, .. } | Command::Delete { key, .. } | Command::Cas { key, .. } => {
                Some(key)
            }
        }
    }

    /// The client session of a write, `None` for `Noop` and session-less writes.
    pub fn session(&self) -> Option<Session> {
        match self {
            Command::Noop => None,
            Command::Put { session, .. }
            | Command::Delete { session, .. }
            | Command::Cas { session, .. } => *session,
        }
    }

    /// Decodes a log entry's data, consuming it exactly. Keys and values are slices of
    /// `data`. Limits are checked as for client requests, so a corrupt log cannot make
    /// a member allocate more than a client could.
    pub fn decode(data: Bytes, limits: &Limits) -> Result<Command, DecodeError> {
        let mut reader = Reader::new(data, None);
        let command = match reader.read_u8("tag")? {
            TAG_NOOP => Command::Noop,
            TAG_PUT => {
                let session = Session::decode(&mut reader)?;
                let key = reader.read_key("key", limits)?;
                let value = reader.read_value("value", limits)?;
                Command::Put {
                    key,
                    value,
                    session,
                }
            }
            TAG_DELETE => {
                let session = Session::decode(&mut reader)?;
                let key = reader.read_key("key", limits)?;
                Command::Delete { key, session }
            }
            TAG_CAS => {
                let session = Session::decode(&mut reader)?;
                let key = reader.read_key("key", limits)?;
                let expected = reader.read_optional_value("expected", limits)?;
                let new = reader.read_optional_value("new", limits)?;
                Command::Cas {
                    key,
                    expected,
                    new,
                    session,
                }
            }
            _ => return Err(reader.invalid("tag", "unknown command tag")),
        };
        reader.finish()?;
        Ok(command)
    }

    /// Appends the encoded command to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Command::Noop => dst.put_u8(TAG_NOOP),
            Command::Put {
                key,
                value,
                session,
            } => {
                dst.put_u8(TAG_PUT);
                Session::encode(*session, dst);
                put_bytes(dst, key);
                put_bytes(dst, value);
            }
            Command::Delete { key, session } => {
                dst.put_u8(TAG_DELETE);
                Session::encode(*session, dst);
                put_bytes(dst, key);
            }
            Command::Cas {
                key,
                expected,
                new,
                session,
            } => {
                dst.put_u8(TAG_CAS);
                Session::encode(*session, dst);
                put_bytes(dst, key);
                put_optional_bytes(dst, expected.as_ref());
                put_optional_bytes(dst, new.as_ref());
            }
        }
    }

    /// The encoded command as `Bytes`, ready to become a `LogEntry`'s data.
    pub fn to_bytes(&self) -> Bytes {
        let mut dst = BytesMut::new();
        self.encode(&mut dst);
        dst.freeze()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ids::ClientId;

    #[test]
    fn noop_is_one_zero_byte() {
        assert_eq!(Command::Noop.to_bytes().as_ref(), [0].as_slice());
        assert_eq!(
            Command::decode(Bytes::from_static(&[0]), &Limits::DEFAULT),
            Ok(Command::Noop)
        );
    }

    #[test]
    fn put_round_trips_and_exposes_key_and_session() {
        let session = Session {
            client_id: ClientId::new(9).unwrap(),
            sequence: 4,
        };
        let command = Command::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
            session: Some(session),
        };
        let decoded = Command::decode(command.to_bytes(), &Limits::DEFAULT).unwrap();
        assert_eq!(decoded, command);
        assert_eq!(decoded.key().unwrap().as_ref(), b"k");
        assert_eq!(decoded.session(), Some(session));
    }

    #[test]
    fn rejects_unknown_tag() {
        let error = Command::decode(Bytes::from_static(&[4]), &Limits::DEFAULT);
        assert_eq!(
            error,
            Err(DecodeError::InvalidField {
                kind: None,
                field: "tag",
                reason: "unknown command tag"
            })
        );
    }

    #[test]
    fn rejects_empty_data() {
        let error = Command::decode(Bytes::new(), &Limits::DEFAULT);
        assert!(matches!(
            error,
            Err(DecodeError::Truncated {
                kind: None,
                field: "tag",
                ..
            })
        ));
    }

    #[test]
    fn rejects_trailing_bytes_after_noop() {
        let error = Command::decode(Bytes::from_static(&[0, 0]), &Limits::DEFAULT);
        assert_eq!(
            error,
            Err(DecodeError::TrailingBytes {
                kind: None,
                count: 1
            })
        );
    }
}
