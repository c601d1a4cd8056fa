//! Client requests and responses (kinds 0x50–0x6F): `Get`, `Put`, `Delete`, `Cas`,
//! `Ping` and their results, and the admin requests (`AddMember`, `RemoveMember`,
//! `TransferHerald`, `Status`) with their answers `Done` and `Status`.
//!
//! This module owns their payload layouts, decode beside encode. It must not decide
//! what a request means for the store; the daemon's core does.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_address, put_bool, put_bytes, put_optional_bytes, Reader};
use crate::configuration::Configuration;
use crate::error::DecodeError;
use crate::ids::{ClientId, MemberId, OrderId};
use crate::kind::Kind;
use crate::limits::Limits;
use crate::message::batch::{Batch, BatchOutcome};
use crate::message::shard_page::ShardPage;
use crate::message::update::{Update, UpdateOutcome};

/// How fresh a `Get` must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReadConsistency {
    /// Confirmed with a majority of the order (read index): never stale.
    Linearizable = 0,
    /// Served by the herald under its lease: linearizable unless clocks drift too far.
    Lease = 1,
    /// Served by any member: may miss recent writes.
    Stale = 2,
    /// Linearizable, and served by the member that receives it (follower reads): a
    /// follower asks the herald for a read index (`ReadIndex`), waits until it has
    /// applied that index, and reads locally; the herald serves it as `Linearizable`.
    Follower = 3,
}

impl ReadConsistency {
    /// Every level, in code order.
    pub const ALL: [ReadConsistency; 4] = [
        ReadConsistency::Linearizable,
        ReadConsistency::Lease,
        ReadConsistency::Stale,
        ReadConsistency::Follower,
    ];

    fn decode(reader: &mut Reader) -> Result<ReadConsistency, DecodeError> {
        let code = reader.read_u8("consistency")?;
        ReadConsistency::from_u8(code)
            .ok_or_else(|| reader.invalid("consistency", "unknown consistency code"))
    }

    /// The level with wire code `code`, or `None` for an unknown code.
    pub fn from_u8(code: u8) -> Option<ReadConsistency> {
        match code {
            0 => Some(ReadConsistency::Linearizable),
            1 => Some(ReadConsistency::Lease),
            2 => Some(ReadConsistency::Stale),
            3 => Some(ReadConsistency::Follower),
            _ => None,
        }
    }
}

/// A client session position for exactly-once writes: a retried write carries the same
/// `(client_id, sequence)` and is applied once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Session {
    /// The client's session id.
    pub client_id: ClientId,
    /// The write's sequence number within the session, starting at 1.
    pub sequence: u64,
}

impl Session {
    /// Reads the 16-byte session field: `u64` client id, `u64` sequence. Client id 0
    /// means "no session" and must come with sequence 0, so each value has one encoding.
    pub(crate) fn decode(reader: &mut Reader) -> Result<Option<Session>, DecodeError> {
        let client_id = reader.read_u64("session.client_id")?;
        let sequence = reader.read_u64("session.sequence")?;
        match (ClientId::new(client_id), sequence) {
            (None, 0) => Ok(None),
            (None, _) => Err(reader.invalid("session.sequence", "a sequence needs a client id")),
            (Some(_), 0) => Err(reader.invalid("session.sequence", "sequences start at 1")),
            (Some(client_id), sequence) => Ok(Some(Session { client_id, sequence })),
        }
    }

    /// Writes the 16-byte session field; `None` is two zeros.
    pub(crate) fn encode(session: Option<Session>, dst: &mut BytesMut) {
        debug_assert!(session.is_none_or(|session| session.sequence != 0), "sequence 0");
        dst.put_u64(ClientId::to_wire(session.map(|session| session.client_id)));
        dst.put_u64(session.map_or(0, |session| session.sequence));
    }
}

/// A request from a client. Keys are never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRequest {
    /// Read `key`.
    Get {
        /// The key.
        key: Bytes,
        /// How fresh the answer must be.
        consistency: ReadConsistency,
    },
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The new value (may be empty).
        value: Bytes,
        /// For exactly-once application of retries.
        session: Option<Session>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Bytes,
        /// For exactly-once application of retries.
        session: Option<Session>,
    },
    /// If `key` currently holds `expected`, make it hold `new`.
    Cas {
        /// The key.
        key: Bytes,
        /// The value the key must hold; `None` means the key must be absent.
        expected: Option<Bytes>,
        /// The value to store on a match; `None` deletes the key on a match.
        new: Option<Bytes>,
        /// For exactly-once application of retries.
        session: Option<Session>,
    },
    /// Check that the radiant answers; it replies with its member id.
    Ping,
    /// Admin: add the radiant `member`, reachable at `address`, to the system. It first
    /// catches up as a learner and is then promoted. Answered by `Done`.
    AddMember {
        /// The new member's id.
        member: MemberId,
        /// Its peer address (`host:port`), at most `MAX_ADDRESS_BYTES`.
        address: String,
    },
    /// Admin: remove the radiant `member` from the system. Answered by `Done`.
    RemoveMember {
        /// The member to remove.
        member: MemberId,
    },
    /// Admin: make the herald of the receiving radiant's order hand over (for a planned
    /// restart). Answered by `Done` once the new herald is elected.
    TransferHerald {
        /// The member to take over; `None` (0 on the wire) lets the herald pick the
        /// most up-to-date one.
        to: Option<MemberId>,
    },
    /// Admin: ask the radiant for its status. Answered by `ClientResponse::Status`.
    Status,
    /// Admin: admit the running, unassociated radiant at these addresses into the
    /// system (the controller assigns its id and order). Answered by `Done` once the
    /// configuration that lists it is committed.
    AddRadiant {
        /// Its peer address (`host:port`).
        peer: String,
        /// Its client address (`host:port`).
        client: String,
        /// Its RESP address (`host:port`), empty when it serves no Redis clients.
        resp: String,
    },
    /// Admin: remove the radiant `member` from the system (its order drops it).
    /// Answered by `Done` once the configuration without it is committed.
    RemoveRadiant {
        /// The radiant to remove.
        member: MemberId,
    },
    /// Admin: move `shard` to the order `to` (a configuration of its own). Answered by
    /// `Done` once that configuration is committed; the data follows (`radiant status`
    /// shows the move until the gaining order serves the shard).
    MoveShard {
        /// The shard.
        shard: u32,
        /// The order that will serve it.
        to: OrderId,
    },
    /// Admin: move every shard off the order `order_id`, then dissolve it (its radiants
    /// become spares). Answered by `Done` once the configuration that starts it commits.
    LeaveOrder {
        /// The order to dissolve.
        order_id: OrderId,
    },
    /// Ask for committed configuration `number` (0: the newest this radiant knows).
    /// Answered by `ConfigurationResult` from the radiant's own record of the
    /// configurations it has seen committed.
    QueryConfiguration {
        /// The configuration number; 0 for the newest.
        number: u64,
    },
    /// Present a token for this connection: the client token grants data requests, the
    /// admin token grants those and admin requests. Answered by `Done`, or by
    /// `Unauthorized` (the connection keeps what it had).
    Authenticate {
        /// The token, at most `MAX_TOKEN_BYTES`.
        token: Bytes,
    },
    /// Read-modify-write `key` atomically, as one log entry. Answered by `UpdateResult`.
    Update {
        /// The key.
        key: Bytes,
        /// What to do to it.
        update: Update,
        /// For exactly-once application of retries.
        session: Option<Session>,
    },
    /// Write several keys of one shard atomically, as one log entry (kind 0x80).
    /// Answered by `BatchResult`; a batch whose keys are of several shards gets
    /// `BadRequest`.
    Batch {
        /// The writes and their condition.
        batch: Batch,
        /// For exactly-once application of retries.
        session: Option<Session>,
    },
    /// A page of a whole shard as of one committed index, for backups (kind 0x81).
    /// Cursor 0 takes a new copy at the shard's order's herald (a linearizable read) and
    /// answers its first page; a cursor from an answer pages on through that copy at
    /// the radiant that holds it. Answered by `ShardPage`.
    ReadShard {
        /// The shard.
        shard: u32,
        /// 0 for a new copy, else the copy's cursor.
        cursor: u64,
        /// The page starts after this key (none: at the first).
        after: Option<Bytes>,
        /// At most this many bytes of keys and values (a page has at least one pair).
        max_bytes: u32,
    },
    /// Admin, majority-loss recovery (`RECOVER_RESET`, kind 0x82): `survivor`, the radiant
    /// receiving this, becomes the sole member of `order_id`, keeping its log. Refused while
    /// the order has a herald or a majority of its voters is heard from. Answered `Done`
    /// once the reset is committed.
    RecoverOrder {
        /// The order.
        order_id: OrderId,
        /// The surviving member to keep.
        survivor: MemberId,
    },
}

/// The longest token `Authenticate` carries.
pub const MAX_TOKEN_BYTES: u32 = 1024;

// ===== impl ClientRequest =====

impl ClientRequest {
    /// Whether carrying this request out may make the stored data larger: a put, a cas
    /// or batch that sets a value, an update other than a take. Reads, deletes and admin
    /// requests never do, so a radiant short of disk space keeps serving them.
    pub fn adds_data(&self) -> bool {
        match self {
            ClientRequest::Put { .. } => true,
            ClientRequest::Cas { new, .. } => new.is_some(),
            ClientRequest::Update { update, .. } => !matches!(update, Update::Take),
            ClientRequest::Batch { batch, .. } => {
                batch.writes.iter().any(|write| write.value.is_some())
            }
            _ => false,
        }
    }

    /// The frame kind of this request.
    pub fn kind(&self) -> Kind {
        match self {
            ClientRequest::Get { .. } => Kind::Get,
            ClientRequest::Put { .. } => Kind::Put,
            ClientRequest::Delete { .. } => Kind::Delete,
            ClientRequest::Cas { .. } => Kind::Cas,
            ClientRequest::Ping => Kind::Ping,
            ClientRequest::AddMember { .. } => Kind::AddMember,
            ClientRequest::RemoveMember { .. } => Kind::RemoveMember,
            ClientRequest::TransferHerald { .. } => Kind::TransferHerald,
            ClientRequest::Status => Kind::Status,
            ClientRequest::AddRadiant { .. } => Kind::AddRadiant,
            ClientRequest::RemoveRadiant { .. } => Kind::RemoveRadiant,
            ClientRequest::MoveShard { .. } => Kind::MoveShard,
            ClientRequest::LeaveOrder { .. } => Kind::LeaveOrder,
            ClientRequest::QueryConfiguration { .. } => Kind::QueryConfiguration,
            ClientRequest::Authenticate { .. } => Kind::Authenticate,
            ClientRequest::Update { .. } => Kind::Update,
            ClientRequest::Batch { .. } => Kind::Batch,
            ClientRequest::ReadShard { .. } => Kind::ReadShard,
            ClientRequest::RecoverOrder { .. } => Kind::RecoverOrder,
        }
    }

    /// Whether this is an admin request (membership, moves, transfers): the ones that
    /// need the admin token, and that have no session.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            ClientRequest::AddMember { .. }
                | ClientRequest::RemoveMember { .. }
                | ClientRequest::TransferHerald { .. }
                | ClientRequest::AddRadiant { .. }
                | ClientRequest::RemoveRadiant { .. }
                | ClientRequest::MoveShard { .. }
                | ClientRequest::LeaveOrder { .. }
                | ClientRequest::RecoverOrder { .. }
        )
    }

    /// The key the request addresses, `None` for `Ping` and the admin requests.
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            ClientRequest::Get { key, .. }
            | ClientRequest::Put { key, .. }
            | ClientRequest::Delete { key, .. }
            | ClientRequest::Cas { key, .. }
            | ClientRequest::Update { key, .. } => Some(key),
            ClientRequest::Batch { batch, .. } => batch.first_key(),
            ClientRequest::Ping
            | ClientRequest::AddMember { .. }
            | ClientRequest::RemoveMember { .. }
            | ClientRequest::TransferHerald { .. }
            | ClientRequest::Status
            | ClientRequest::AddRadiant { .. }
            | ClientRequest::RemoveRadiant { .. }
            | ClientRequest::MoveShard { .. }
            | ClientRequest::LeaveOrder { .. }
            | ClientRequest::QueryConfiguration { .. }
            | ClientRequest::Authenticate { .. }
            | ClientRequest::ReadShard { .. }
            | ClientRequest::RecoverOrder { .. } => None,
        }
    }

    /// Decodes the payload of a frame of `kind`, consuming it exactly.
    pub fn decode(kind: Kind, payload: Bytes, limits: &Limits) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, Some(kind));
        let request = match kind {
            Kind::Get => {
                let consistency = ReadConsistency::decode(&mut reader)?;
                ClientRequest::Get { key: reader.read_key("key", limits)?, consistency }
            }
            Kind::Put => {
                let session = Session::decode(&mut reader)?;
                let key = reader.read_key("key", limits)?;
                let value = reader.read_value("value", limits)?;
                ClientRequest::Put { key, value, session }
            }
            Kind::Delete => {
                let session = Session::decode(&mut reader)?;
                let key = reader.read_key("key", limits)?;
                ClientRequest::Delete { key, session }
            }
            Kind::Cas => {
                let session = Session::decode(&mut reader)?;
                let key = reader.read_key("key", limits)?;
                let expected = reader.read_optional_value("expected", limits)?;
                let new = reader.read_optional_value("new", limits)?;
                ClientRequest::Cas { key, expected, new, session }
            }
            Kind::Ping => ClientRequest::Ping,
            Kind::AddMember => ClientRequest::AddMember {
                member: reader.read_member_id("member")?,
                address: reader.read_address("address")?,
            },
            Kind::RemoveMember => {
                ClientRequest::RemoveMember { member: reader.read_member_id("member")? }
            }
            Kind::TransferHerald => {
                ClientRequest::TransferHerald { to: MemberId::new(reader.read_u64("to")?) }
            }
            Kind::Status => ClientRequest::Status,
            Kind::AddRadiant => ClientRequest::AddRadiant {
                peer: reader.read_address("peer")?,
                client: reader.read_address("client")?,
                resp: reader.read_address("resp")?,
            },
            Kind::RemoveRadiant => {
                ClientRequest::RemoveRadiant { member: reader.read_member_id("member")? }
            }
            Kind::MoveShard => ClientRequest::MoveShard {
                shard: reader.read_u32("shard")?,
                to: reader.read_order_id("to")?,
            },
            Kind::LeaveOrder => {
                ClientRequest::LeaveOrder { order_id: reader.read_order_id("order")? }
            }
            Kind::QueryConfiguration => {
                ClientRequest::QueryConfiguration { number: reader.read_u64("number")? }
            }
            Kind::Authenticate => ClientRequest::Authenticate {
                token: reader.read_bytes_at_most("token", MAX_TOKEN_BYTES, "token too long")?,
            },
            Kind::Update => {
                let session = Session::decode(&mut reader)?;
                let key = reader.read_key("key", limits)?;
                let update = Update::decode(&mut reader, limits)?;
                ClientRequest::Update { key, update, session }
            }
            Kind::Batch | Kind::ReadShard | Kind::RecoverOrder => {
                ClientRequest::decode_continued(kind, &mut reader, limits)?
            }
            _ => return Err(reader.invalid("kind", "not a client request kind")),
        };
        reader.finish()?;
        Ok(request)
    }

    /// The kinds of the continued range (0x80–0x8F): `Batch`; `ReadShard` (`u32` shard,
    /// `u64` cursor, optional `after` key, `u32` max bytes); `RecoverOrder` (`u64` order,
    /// `u64` survivor).
    fn decode_continued(
        kind: Kind,
        reader: &mut Reader,
        limits: &Limits,
    ) -> Result<Self, DecodeError> {
        Ok(match kind {
            Kind::Batch => {
                let session = Session::decode(reader)?;
                ClientRequest::Batch { batch: Batch::decode(reader, limits)?, session }
            }
            Kind::ReadShard => {
                let shard = reader.read_u32("shard")?;
                let cursor = reader.read_u64("cursor")?;
                let after = if reader.read_presence("after")? {
                    Some(reader.read_key("after", limits)?)
                } else {
                    None
                };
                let max_bytes = reader.read_u32("max_bytes")?;
                ClientRequest::ReadShard { shard, cursor, after, max_bytes }
            }
            Kind::RecoverOrder => ClientRequest::RecoverOrder {
                order_id: reader.read_order_id("order")?,
                survivor: reader.read_member_id("survivor")?,
            },
            _ => return Err(reader.invalid("kind", "not a client request kind")),
        })
    }

    /// Appends the payload (not the frame header) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            ClientRequest::Get { key, consistency } => {
                dst.put_u8(*consistency as u8);
                put_bytes(dst, key);
            }
            ClientRequest::Put { key, value, session } => {
                Session::encode(*session, dst);
                put_bytes(dst, key);
                put_bytes(dst, value);
            }
            ClientRequest::Delete { key, session } => {
                Session::encode(*session, dst);
                put_bytes(dst, key);
            }
            ClientRequest::Cas { key, expected, new, session } => {
                Session::encode(*session, dst);
                put_bytes(dst, key);
                put_optional_bytes(dst, expected.as_ref());
                put_optional_bytes(dst, new.as_ref());
            }
            ClientRequest::Ping | ClientRequest::Status => {}
            ClientRequest::AddMember { member, address } => {
                dst.put_u64(member.get());
                put_address(dst, address);
            }
            ClientRequest::RemoveMember { member } => dst.put_u64(member.get()),
            ClientRequest::TransferHerald { to } => dst.put_u64(MemberId::to_wire(*to)),
            ClientRequest::AddRadiant { peer, client, resp } => {
                put_address(dst, peer);
                put_address(dst, client);
                put_address(dst, resp);
            }
            ClientRequest::RemoveRadiant { member } => dst.put_u64(member.get()),
            ClientRequest::MoveShard { shard, to } => {
                dst.put_u32(*shard);
                dst.put_u64(to.get());
            }
            ClientRequest::LeaveOrder { order_id } => dst.put_u64(order_id.get()),
            ClientRequest::QueryConfiguration { number } => dst.put_u64(*number),
            ClientRequest::Authenticate { token } => put_bytes(dst, token),
            ClientRequest::Update { key, update, session } => {
                Session::encode(*session, dst);
                put_bytes(dst, key);
                update.encode(dst);
            }
            ClientRequest::Batch { batch, session } => {
                Session::encode(*session, dst);
                batch.encode(dst);
            }
            ClientRequest::ReadShard { shard, cursor, after, max_bytes } => {
                dst.put_u32(*shard);
                dst.put_u64(*cursor);
                put_optional_bytes(dst, after.as_ref());
                dst.put_u32(*max_bytes);
            }
            ClientRequest::RecoverOrder { order_id, survivor } => {
                dst.put_u64(order_id.get());
                dst.put_u64(survivor.get());
            }
        }
    }
}

/// A successful answer to a client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientResponse {
    /// The answer to `Get`: the value, or `None` if the key is absent.
    GetResult {
        /// The value.
        value: Option<Bytes>,
    },
    /// The answer to `Put`: the write is durable on a majority.
    PutResult,
    /// The answer to `Delete`.
    DeleteResult {
        /// Whether the key existed before the delete.
        existed: bool,
    },
    /// The answer to `Cas`.
    CasResult {
        /// Whether the comparison matched and the write happened.
        succeeded: bool,
        /// The value after the operation (`None` = absent), so a failed client can retry
        /// with the right `expected` without another `Get`.
        current: Option<Bytes>,
    },
    /// The answer to `Ping`.
    Pong {
        /// The answering radiant's id; `None` while it has not joined a system yet.
        member_id: Option<MemberId>,
    },
    /// The answer to `AddMember`, `RemoveMember` and `TransferHerald`: the admin request
    /// was carried out (committed, or for a transfer, the new herald is elected).
    Done,
    /// The answer to `Status` (frame kind `StatusResult`).
    Status {
        /// The radiant's status as a JSON document, at most `max_frame_bytes`.
        json: String,
    },
    /// The answer to `QueryConfiguration` (frame kind `ConfigurationResult`). Boxed: a
    /// configuration is far larger than every other answer.
    Configuration(Box<Configuration>),
    /// The answer to `Update`: what it did.
    UpdateResult(UpdateOutcome),
    /// The answer to `Batch`: whether it wrote, and how many of its keys existed.
    BatchResult(BatchOutcome),
    /// The answer to `ReadShard`.
    ShardPage(ShardPage),
}

// ===== impl ClientResponse =====

impl ClientResponse {
    /// The frame kind of this response.
    pub fn kind(&self) -> Kind {
        match self {
            ClientResponse::GetResult { .. } => Kind::GetResult,
            ClientResponse::PutResult => Kind::PutResult,
            ClientResponse::DeleteResult { .. } => Kind::DeleteResult,
            ClientResponse::CasResult { .. } => Kind::CasResult,
            ClientResponse::Pong { .. } => Kind::Pong,
            ClientResponse::Done => Kind::Done,
            ClientResponse::Status { .. } => Kind::StatusResult,
            ClientResponse::Configuration(_) => Kind::ConfigurationResult,
            ClientResponse::UpdateResult(_) => Kind::UpdateResult,
            ClientResponse::BatchResult(_) => Kind::BatchResult,
            ClientResponse::ShardPage(_) => Kind::ShardPage,
        }
    }

    /// Decodes the payload of a frame of `kind`, consuming it exactly.
    pub fn decode(kind: Kind, payload: Bytes, limits: &Limits) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, Some(kind));
        let response = match kind {
            Kind::GetResult => {
                ClientResponse::GetResult { value: reader.read_optional_value("value", limits)? }
            }
            Kind::PutResult => ClientResponse::PutResult,
            Kind::DeleteResult => {
                ClientResponse::DeleteResult { existed: reader.read_bool("existed")? }
            }
            Kind::CasResult => {
                let succeeded = reader.read_bool("succeeded")?;
                let current = reader.read_optional_value("current", limits)?;
                ClientResponse::CasResult { succeeded, current }
            }
            Kind::Pong => {
                ClientResponse::Pong { member_id: MemberId::new(reader.read_u64("member_id")?) }
            }
            Kind::Done => ClientResponse::Done,
            Kind::StatusResult => ClientResponse::Status {
                json: reader.read_long_string(
                    "json",
                    limits.max_frame_bytes,
                    "longer than max_frame_bytes",
                )?,
            },
            Kind::ConfigurationResult => {
                ClientResponse::Configuration(Box::new(Configuration::decode(&mut reader)?))
            }
            Kind::UpdateResult => {
                ClientResponse::UpdateResult(UpdateOutcome::decode(&mut reader, limits)?)
            }
            Kind::BatchResult => ClientResponse::BatchResult(BatchOutcome::decode(&mut reader)?),
            Kind::ShardPage => ClientResponse::ShardPage(ShardPage::decode(&mut reader, limits)?),
            _ => return Err(reader.invalid("kind", "not a client response kind")),
        };
        reader.finish()?;
        Ok(response)
    }

    /// Appends the payload (not the frame header) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            ClientResponse::GetResult { value } => put_optional_bytes(dst, value.as_ref()),
            ClientResponse::PutResult => {}
            ClientResponse::DeleteResult { existed } => put_bool(dst, *existed),
            ClientResponse::CasResult { succeeded, current } => {
                put_bool(dst, *succeeded);
                put_optional_bytes(dst, current.as_ref());
            }
            ClientResponse::Pong { member_id } => dst.put_u64(MemberId::to_wire(*member_id)),
            ClientResponse::Done => {}
            ClientResponse::Status { json } => put_bytes(dst, json.as_bytes()),
            ClientResponse::Configuration(configuration) => configuration.encode(dst),
            ClientResponse::UpdateResult(outcome) => outcome.encode(dst),
            ClientResponse::BatchResult(outcome) => outcome.encode(dst),
            ClientResponse::ShardPage(page) => page.encode(dst),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn payload(request: &ClientRequest) -> Bytes {
        let mut dst = BytesMut::new();
        request.encode(&mut dst);
        dst.freeze()
    }

    fn session(client_id: u64, sequence: u64) -> Option<Session> {
        Some(Session { client_id: ClientId::new(client_id).unwrap(), sequence })
    }

    #[test]
    fn put_payload_layout_is_session_key_value() {
        let request = ClientRequest::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"vv"),
            session: session(2, 3),
        };
        let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3];
        expected.extend_from_slice(&[0, 0, 0, 1, b'k', 0, 0, 0, 2, b'v', b'v']);
        assert_eq!(payload(&request).as_ref(), expected.as_slice());
    }

    #[test]
    fn session_with_client_id_zero_decodes_to_none() {
        let request = ClientRequest::Delete { key: Bytes::from_static(b"k"), session: None };
        let decoded = ClientRequest::decode(Kind::Delete, payload(&request), &Limits::DEFAULT);
        assert_eq!(decoded, Ok(request));
    }

    #[test]
    fn rejects_session_with_client_id_and_sequence_zero() {
        let mut bytes = BytesMut::new();
        bytes.put_u64(5);
        bytes.put_u64(0);
        put_bytes(&mut bytes, b"k");
        let error = ClientRequest::decode(Kind::Delete, bytes.freeze(), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "session.sequence", .. })));
    }

    #[test]
    fn rejects_unknown_read_consistency() {
        let bytes = Bytes::from_static(&[4, 0, 0, 0, 1, b'k']);
        let error = ClientRequest::decode(Kind::Get, bytes, &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "consistency", .. })));
    }

    #[test]
    fn rejects_ping_with_a_payload() {
        let error = ClientRequest::decode(Kind::Ping, Bytes::from_static(&[0]), &Limits::DEFAULT);
        assert_eq!(error, Err(DecodeError::TrailingBytes { kind: Some(Kind::Ping), count: 1 }));
    }

    #[test]
    fn rejects_response_kind_as_request() {
        let error = ClientRequest::decode(Kind::Pong, Bytes::new(), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "kind", .. })));
    }

    #[test]
    fn rejects_delete_result_with_a_boolean_of_two() {
        let error =
            ClientResponse::decode(Kind::DeleteResult, Bytes::from_static(&[2]), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "existed", .. })));
    }

    #[test]
    fn pong_with_member_id_zero_means_not_joined() {
        let bytes = Bytes::from_static(&[0; 8]);
        let decoded = ClientResponse::decode(Kind::Pong, bytes, &Limits::DEFAULT);
        assert_eq!(decoded, Ok(ClientResponse::Pong { member_id: None }));
    }

    #[test]
    fn cas_with_absent_expected_and_new_round_trips() {
        let request = ClientRequest::Cas {
            key: Bytes::from_static(b"key"),
            expected: None,
            new: Some(Bytes::new()),
            session: session(1, 1),
        };
        let decoded = ClientRequest::decode(Kind::Cas, payload(&request), &Limits::DEFAULT);
        assert_eq!(decoded, Ok(request));
    }

    fn round_trip_request(request: ClientRequest) {
        let decoded = ClientRequest::decode(request.kind(), payload(&request), &Limits::DEFAULT);
        assert_eq!(decoded, Ok(request));
    }

    fn round_trip_response(response: ClientResponse) {
        let mut dst = BytesMut::new();
        response.encode(&mut dst);
        let decoded = ClientResponse::decode(response.kind(), dst.freeze(), &Limits::DEFAULT);
        assert_eq!(decoded, Ok(response));
    }

    #[test]
    fn admin_requests_round_trip_and_address_no_key() {
        let requests = [
            ClientRequest::AddMember {
                member: MemberId::new(4).unwrap(),
                address: "10.0.0.4:7400".to_owned(),
            },
            ClientRequest::RemoveMember { member: MemberId::new(4).unwrap() },
            ClientRequest::TransferHerald { to: None },
            ClientRequest::TransferHerald { to: MemberId::new(2) },
            ClientRequest::Status,
            ClientRequest::RecoverOrder {
                order_id: OrderId::new(2).unwrap(),
                survivor: MemberId::new(5).unwrap(),
            },
        ];
        for request in requests {
            assert_eq!(request.key(), None);
            round_trip_request(request);
        }
    }

    #[test]
    fn shard_reads_and_pages_round_trip() {
        round_trip_request(ClientRequest::ReadShard {
            shard: 3,
            cursor: 0,
            after: None,
            max_bytes: 1 << 20,
        });
        round_trip_request(ClientRequest::ReadShard {
            shard: 3,
            cursor: 17,
            after: Some(Bytes::from_static(b"k")),
            max_bytes: 10,
        });
        round_trip_response(ClientResponse::ShardPage(ShardPage {
            shard: 3,
            cursor: 17,
            index: 40,
            total_keys: 1,
            after: None,
            pairs: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))],
            last: true,
        }));
    }

    #[test]
    fn add_member_layout_is_member_then_address() {
        let request = ClientRequest::AddMember {
            member: MemberId::new(3).unwrap(),
            address: "h:1".to_owned(),
        };
        assert_eq!(
            payload(&request).as_ref(),
            [0, 0, 0, 0, 0, 0, 0, 3, 0, 3, b'h', b':', b'1'].as_slice()
        );
    }

    #[test]
    fn add_or_remove_member_zero_is_rejected() {
        for kind in [Kind::AddMember, Kind::RemoveMember] {
            let error = ClientRequest::decode(kind, Bytes::from_static(&[0; 10]), &Limits::DEFAULT);
            assert_eq!(error, Err(DecodeError::ZeroId { field: "member" }));
        }
    }

    #[test]
    fn add_member_address_longer_than_max_address_bytes_is_rejected() {
        let mut bytes = BytesMut::new();
        bytes.put_u64(3);
        bytes.put_u16(256);
        bytes.put_slice(&[b'a'; 256]);
        let error = ClientRequest::decode(Kind::AddMember, bytes.freeze(), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "address", .. })));
    }

    #[test]
    fn transfer_herald_to_zero_means_any_member() {
        let decoded = ClientRequest::decode(
            Kind::TransferHerald,
            Bytes::from_static(&[0; 8]),
            &Limits::DEFAULT,
        );
        assert_eq!(decoded, Ok(ClientRequest::TransferHerald { to: None }));
    }

    #[test]
    fn admin_responses_round_trip() {
        round_trip_response(ClientResponse::Done);
        round_trip_response(ClientResponse::Status { json: String::new() });
        round_trip_response(ClientResponse::Status {
            json: r#"{"member":1,"role":"herald","é":true}"#.to_owned(),
        });
    }

    #[test]
    fn status_json_is_checked_for_length_before_slicing_and_for_utf8() {
        let limits = Limits { max_frame_bytes: 16, ..Limits::DEFAULT };
        let error =
            ClientResponse::decode(Kind::StatusResult, Bytes::from_static(&[0, 0, 0, 17]), &limits);
        assert_eq!(
            error,
            Err(DecodeError::InvalidField {
                kind: Some(Kind::StatusResult),
                field: "json",
                reason: "longer than max_frame_bytes"
            })
        );
        let error = ClientResponse::decode(
            Kind::StatusResult,
            Bytes::from_static(&[0, 0, 0, 1, 0xFF]),
            &limits,
        );
        assert!(matches!(
            error,
            Err(DecodeError::InvalidField { field: "json", reason: "not valid UTF-8", .. })
        ));
    }
}
