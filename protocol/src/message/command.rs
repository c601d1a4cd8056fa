//! Log commands: the `data` of a `LogEntry`, written by a herald and applied by the
//! shard workers of every member.
//!
//! This module owns the command byte format, decode beside encode. It must not apply
//! commands or decide their outcome; the shard workers do. Commands travel inside
//! replication messages and the write-ahead log, never as frames of their own.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_address, put_bytes, put_optional_bytes, Reader};
use crate::configuration::Configuration;
use crate::error::DecodeError;
use crate::ids::{MemberId, OrderId, Term};
use crate::limits::Limits;
use crate::message::batch::Batch;
use crate::message::client::Session;
use crate::message::migration::MigrationEntry;
use crate::message::update::Update;

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
    /// Change the order's membership, one member at a time. Tag 4.
    Membership(MembershipChange),
    /// The order's council state: its vote, an accepted configuration, or a commit.
    /// Tag 5. Written through the order's log so a herald change loses none of it.
    Council(CouncilEntry),
    /// A step of moving shards between orders. Tag 6.
    Migration(MigrationEntry),
    /// Read-modify-write `key`, with the meaning of `ClientRequest::Update`. Tag 7.
    Update {
        /// The key.
        key: Bytes,
        /// What to do to it.
        update: Update,
        /// The client session, for exactly-once application.
        session: Option<Session>,
    },
    /// Write several keys of one shard, with the meaning of `ClientRequest::Batch`.
    /// Tag 8.
    Batch {
        /// The writes and their condition.
        batch: Batch,
        /// The client session, for exactly-once application.
        session: Option<Session>,
    },
}

/// One change to an order's council state (DESIGN §8: the council is Raft one level up;
/// this is the order's "hard state and log" for it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CouncilEntry {
    /// The order enters council `term` and, if `candidate` is set, votes for that order
    /// in it. Sub-tag 1.
    Vote {
        /// The council term.
        term: Term,
        /// The order voted for (none: only the term advances).
        candidate: Option<OrderId>,
    },
    /// The order holds `configuration` (accepted from the controller of its term).
    /// Sub-tag 2.
    Accept(Configuration),
    /// Configurations through `number` are committed (a majority of orders hold them).
    /// Sub-tag 3.
    Commit {
        /// The newest committed configuration number.
        number: u64,
    },
}

/// One step of a membership change, committed through the order's log so that every
/// member switches configuration at the same index. A new member first catches up as a
/// learner (it receives entries but does not vote) and is then promoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add `member` as a non-voting learner reachable at `address`. Sub-tag 1.
    AddLearner {
        /// The new member.
        member: MemberId,
        /// Its peer address (`host:port`), at most `MAX_ADDRESS_BYTES`.
        address: String,
    },
    /// Make the learner `member` a voter. Sub-tag 2.
    Promote {
        /// The learner to promote.
        member: MemberId,
    },
    /// Remove `member`, voter or learner, from the order. Sub-tag 3.
    Remove {
        /// The member to remove.
        member: MemberId,
    },
    /// Majority-loss recovery (`RECOVER_RESET`): `member`, a survivor of an order that
    /// lost its majority, becomes its sole voter, keeping its log; every other member is
    /// dropped. Appended by the survivor itself, which alone commits it. Sub-tag 4.
    Reset {
        /// The survivor.
        member: MemberId,
    },
}

const TAG_NOOP: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_CAS: u8 = 3;
const TAG_MEMBERSHIP: u8 = 4;
const TAG_COUNCIL: u8 = 5;
const TAG_MIGRATION: u8 = 6;
const TAG_UPDATE: u8 = 7;
const TAG_BATCH: u8 = 8;

const COUNCIL_VOTE: u8 = 1;
const COUNCIL_ACCEPT: u8 = 2;
const COUNCIL_COMMIT: u8 = 3;

const CHANGE_ADD_LEARNER: u8 = 1;
const CHANGE_PROMOTE: u8 = 2;
const CHANGE_REMOVE: u8 = 3;
const CHANGE_RESET: u8 = 4;

// ===== impl Command =====

impl Command {
    /// The key the command writes, `None` for `Noop` and membership changes. Shard
    /// workers route by it.
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Command::Noop
            | Command::Membership(_)
            | Command::Council(_)
            | Command::Migration(_) => None,
            Command::Put { key, .. }
            | Command::Delete { key, .. }
            | Command::Cas { key, .. }
            | Command::Update { key, .. } => Some(key),
            Command::Batch { batch, .. } => batch.first_key(),
        }
    }

    /// The client session of a write, `None` for `Noop`, membership changes and
    /// session-less writes.
    pub fn session(&self) -> Option<Session> {
        match self {
            Command::Noop
            | Command::Membership(_)
            | Command::Council(_)
            | Command::Migration(_) => None,
            Command::Put { session, .. }
            | Command::Delete { session, .. }
            | Command::Cas { session, .. }
            | Command::Update { session, .. }
            | Command::Batch { session, .. } => *session,
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
                Command::Put { key, value, session }
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
                Command::Cas { key, expected, new, session }
            }
            TAG_MEMBERSHIP => Command::Membership(MembershipChange::decode(&mut reader)?),
            TAG_COUNCIL => Command::Council(CouncilEntry::decode(&mut reader)?),
            TAG_MIGRATION => Command::Migration(MigrationEntry::decode(&mut reader, limits)?),
            TAG_UPDATE => {
                let session = Session::decode(&mut reader)?;
                let key = reader.read_key("key", limits)?;
                let update = Update::decode(&mut reader, limits)?;
                Command::Update { key, update, session }
            }
            TAG_BATCH => {
                let session = Session::decode(&mut reader)?;
                Command::Batch { batch: Batch::decode(&mut reader, limits)?, session }
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
            Command::Put { key, value, session } => {
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
            Command::Cas { key, expected, new, session } => {
                dst.put_u8(TAG_CAS);
                Session::encode(*session, dst);
                put_bytes(dst, key);
                put_optional_bytes(dst, expected.as_ref());
                put_optional_bytes(dst, new.as_ref());
            }
            Command::Membership(change) => {
                dst.put_u8(TAG_MEMBERSHIP);
                change.encode(dst);
            }
            Command::Council(entry) => {
                dst.put_u8(TAG_COUNCIL);
                entry.encode(dst);
            }
            Command::Migration(entry) => {
                dst.put_u8(TAG_MIGRATION);
                entry.encode(dst);
            }
            Command::Update { key, update, session } => {
                dst.put_u8(TAG_UPDATE);
                Session::encode(*session, dst);
                put_bytes(dst, key);
                update.encode(dst);
            }
            Command::Batch { batch, session } => {
                dst.put_u8(TAG_BATCH);
                Session::encode(*session, dst);
                batch.encode(dst);
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

// ===== impl CouncilEntry =====

impl CouncilEntry {
    /// Reads an entry after the command tag: `u8` sub-tag, then its fields.
    fn decode(reader: &mut Reader) -> Result<CouncilEntry, DecodeError> {
        let entry = match reader.read_u8("council")? {
            COUNCIL_VOTE => CouncilEntry::Vote {
                term: reader.read_u64("term")?,
                candidate: OrderId::new(reader.read_u64("candidate")?),
            },
            COUNCIL_ACCEPT => CouncilEntry::Accept(Configuration::decode(reader)?),
            COUNCIL_COMMIT => CouncilEntry::Commit { number: reader.read_u64("number")? },
            _ => return Err(reader.invalid("council", "unknown council entry")),
        };
        Ok(entry)
    }

    fn encode(&self, dst: &mut BytesMut) {
        match self {
            CouncilEntry::Vote { term, candidate } => {
                dst.put_u8(COUNCIL_VOTE);
                dst.put_u64(*term);
                dst.put_u64(OrderId::to_wire(*candidate));
            }
            CouncilEntry::Accept(configuration) => {
                dst.put_u8(COUNCIL_ACCEPT);
                configuration.encode(dst);
            }
            CouncilEntry::Commit { number } => {
                dst.put_u8(COUNCIL_COMMIT);
                dst.put_u64(*number);
            }
        }
    }
}

// ===== impl MembershipChange =====

impl MembershipChange {
    /// The member the change is about.
    pub fn member(&self) -> MemberId {
        match self {
            MembershipChange::AddLearner { member, .. }
            | MembershipChange::Promote { member }
            | MembershipChange::Remove { member }
            | MembershipChange::Reset { member } => *member,
        }
    }

    /// Reads a change after the command tag: `u8` sub-tag, `u64` member (never 0), and
    /// for `AddLearner` the address.
    fn decode(reader: &mut Reader) -> Result<MembershipChange, DecodeError> {
        let change = match reader.read_u8("change")? {
            CHANGE_ADD_LEARNER => MembershipChange::AddLearner {
                member: reader.read_member_id("member")?,
                address: reader.read_address("address")?,
            },
            CHANGE_PROMOTE => {
                MembershipChange::Promote { member: reader.read_member_id("member")? }
            }
            CHANGE_REMOVE => MembershipChange::Remove { member: reader.read_member_id("member")? },
            CHANGE_RESET => MembershipChange::Reset { member: reader.read_member_id("member")? },
            _ => return Err(reader.invalid("change", "unknown membership change")),
        };
        Ok(change)
    }

    /// Appends the change (sub-tag onwards) to `dst`.
    fn encode(&self, dst: &mut BytesMut) {
        match self {
            MembershipChange::AddLearner { member, address } => {
                dst.put_u8(CHANGE_ADD_LEARNER);
                dst.put_u64(member.get());
                put_address(dst, address);
            }
            MembershipChange::Promote { member } => {
                dst.put_u8(CHANGE_PROMOTE);
                dst.put_u64(member.get());
            }
            MembershipChange::Remove { member } => {
                dst.put_u8(CHANGE_REMOVE);
                dst.put_u64(member.get());
            }
            MembershipChange::Reset { member } => {
                dst.put_u8(CHANGE_RESET);
                dst.put_u64(member.get());
            }
        }
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
        assert_eq!(Command::decode(Bytes::from_static(&[0]), &Limits::DEFAULT), Ok(Command::Noop));
    }

    #[test]
    fn put_round_trips_and_exposes_key_and_session() {
        let session = Session { client_id: ClientId::new(9).unwrap(), sequence: 4 };
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
        let error = Command::decode(Bytes::from_static(&[9]), &Limits::DEFAULT);
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
        assert!(matches!(error, Err(DecodeError::Truncated { kind: None, field: "tag", .. })));
    }

    #[test]
    fn rejects_trailing_bytes_after_noop() {
        let error = Command::decode(Bytes::from_static(&[0, 0]), &Limits::DEFAULT);
        assert_eq!(error, Err(DecodeError::TrailingBytes { kind: None, count: 1 }));
    }

    #[test]
    fn membership_changes_round_trip_without_key_or_session() {
        let member = MemberId::new(6).unwrap();
        for change in [
            MembershipChange::AddLearner { member, address: "10.0.0.6:7400".to_owned() },
            MembershipChange::Promote { member },
            MembershipChange::Remove { member },
            MembershipChange::Reset { member },
        ] {
            assert_eq!(change.member(), member);
            let command = Command::Membership(change);
            assert_eq!(command.key(), None);
            assert_eq!(command.session(), None);
            assert_eq!(Command::decode(command.to_bytes(), &Limits::DEFAULT), Ok(command));
        }
    }

    #[test]
    fn promote_layout_is_tag_sub_tag_member() {
        let command =
            Command::Membership(MembershipChange::Promote { member: MemberId::new(258).unwrap() });
        assert_eq!(command.to_bytes().as_ref(), [4, 2, 0, 0, 0, 0, 0, 0, 1, 2].as_slice());
    }

    #[test]
    fn membership_change_of_member_zero_is_rejected() {
        let error =
            Command::decode(Bytes::from_static(&[4, 3, 0, 0, 0, 0, 0, 0, 0, 0]), &Limits::DEFAULT);
        assert_eq!(error, Err(DecodeError::ZeroId { field: "member" }));
    }

    #[test]
    fn rejects_unknown_membership_change() {
        for sub_tag in [0, 5] {
            let error = Command::decode(Bytes::from(vec![4, sub_tag]), &Limits::DEFAULT);
            assert_eq!(
                error,
                Err(DecodeError::InvalidField {
                    kind: None,
                    field: "change",
                    reason: "unknown membership change"
                })
            );
        }
    }
}
