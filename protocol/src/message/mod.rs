//! Typed messages: one file per family, each with decode beside encode (h2 style).
//!
//! This module owns the dispatch from a frame's kind to its family. It must not hold
//! payload layouts itself; those live in the family files.

use bytes::BytesMut;

use crate::error::DecodeError;
use crate::frame::{encode_frame, Frame};
use crate::kind::{Family, Kind};
use crate::limits::Limits;

pub mod batch;
pub mod client;
pub mod command;
pub mod error;
pub mod link;
pub mod migration;
pub mod peer;
pub mod replication;
pub mod shard_page;
pub mod system;
pub mod update;
pub mod vote;

pub use batch::{Batch, BatchCondition, BatchOutcome, BatchWrite, MAX_BATCH_WRITES};
pub use client::{ClientRequest, ClientResponse, ReadConsistency, Session};
pub use command::{Command, CouncilEntry, MembershipChange};
pub use error::ErrorResponse;
pub use link::{LinkIntroduction, LinkMessage, LinkRole};
pub use migration::{MigrationEntry, ShardChunk};
pub use peer::{PeerBody, PeerHeader, PeerMessage};
pub use replication::{
    Append, AppendAck, InstallSnapshot, InstallSnapshotAck, ReadIndex, ReadIndexAck,
};
pub use shard_page::ShardPage;
pub use system::{
    BeaconHandshake, BeaconResponse, CouncilAppend, CouncilAppendAck, CouncilRequestVote,
    CouncilVote, JoinAccepted, JoinSystem, ShardChunkAck, SystemBody, SystemMessage,
};
pub use update::{SetCondition, Update, UpdateOutcome};
pub use vote::{RequestVote, Vote};

/// Any message that travels in a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// From a client to a radiant.
    Request(ClientRequest),
    /// From a radiant to a client, on success.
    Response(ClientResponse),
    /// From a radiant to a client, on failure.
    Error(ErrorResponse),
    /// Between members of an order: elections and replication.
    Peer(PeerMessage),
    /// Between radiants, addressed by peer address: beacons, joins, the council.
    System(SystemMessage),
    /// The handshake that opens a peer link (nothing else on a link is believed first).
    Link(LinkMessage),
}

impl Message {
    /// The frame kind of this message.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Request(request) => request.kind(),
            Message::Response(response) => response.kind(),
            Message::Error(error) => error.kind(),
            Message::Peer(peer) => peer.kind(),
            Message::System(system) => system.kind(),
            Message::Link(link) => link.kind(),
        }
    }

    /// Appends this message to `dst` as a whole frame.
    pub fn encode(&self, correlation_id: u64, dst: &mut BytesMut) {
        encode_frame(dst, self.kind(), correlation_id, |dst| match self {
            Message::Request(request) => request.encode(dst),
            Message::Response(response) => response.encode(dst),
            Message::Error(error) => error.encode(dst),
            Message::Peer(peer) => peer.encode(dst),
            Message::System(system) => system.encode(dst),
            Message::Link(link) => link.encode(dst),
        });
    }

    /// Decodes a frame's payload. The payload must be consumed exactly; keys, values,
    /// log entry data and snapshot chunks are slices of it. On error, the frame's
    /// correlation id addresses the reply.
    pub fn decode(frame: Frame, limits: &Limits) -> Result<Message, DecodeError> {
        let Frame { kind, payload, .. } = frame;
        if LinkMessage::is_link_kind(kind) {
            return LinkMessage::decode(kind, payload).map(Message::Link);
        }
        if SystemMessage::is_system_kind(kind) {
            return SystemMessage::decode(kind, payload, limits).map(Message::System);
        }
        match kind.family() {
            Family::ClientRequest => {
                ClientRequest::decode(kind, payload, limits).map(Message::Request)
            }
            Family::ClientResponse => {
                ClientResponse::decode(kind, payload, limits).map(Message::Response)
            }
            Family::Error => ErrorResponse::decode(kind, payload, limits).map(Message::Error),
            Family::Vote | Family::Replication => {
                PeerMessage::decode(kind, payload, limits).map(Message::Peer)
            }
            // Why: every known kind of these families is a system message, handled above.
            Family::Beacon | Family::Join | Family::Controller => Err(DecodeError::InvalidField {
                kind: Some(kind),
                field: "kind",
                reason: "not a kind of this family",
            }),
        }
    }
}

impl From<ClientRequest> for Message {
    fn from(request: ClientRequest) -> Message {
        Message::Request(request)
    }
}

impl From<ClientResponse> for Message {
    fn from(response: ClientResponse) -> Message {
        Message::Response(response)
    }
}

impl From<ErrorResponse> for Message {
    fn from(error: ErrorResponse) -> Message {
        Message::Error(error)
    }
}

impl From<PeerMessage> for Message {
    fn from(peer: PeerMessage) -> Message {
        Message::Peer(peer)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::frame::decode_frame;
    use crate::ids::{MemberId, OrderId};
    use crate::replication::LogEntry;
    use crate::state::OrderStateOp;

    fn round_trip(message: &Message, correlation_id: u64) -> Message {
        let mut buf = BytesMut::new();
        message.encode(correlation_id, &mut buf);
        let frame = decode_frame(&mut buf, Limits::DEFAULT.max_frame_bytes).unwrap().unwrap();
        assert_eq!(frame.correlation_id, correlation_id);
        assert!(buf.is_empty());
        Message::decode(frame, &Limits::DEFAULT).unwrap()
    }

    #[test]
    fn one_message_of_each_family_round_trips_through_a_frame() {
        let messages = [
            Message::Request(ClientRequest::Get {
                key: Bytes::from_static(b"k"),
                consistency: ReadConsistency::Lease,
            }),
            Message::Response(ClientResponse::PutResult),
            Message::Error(ErrorResponse::Locked(OrderStateOp::Voting)),
            Message::Peer(PeerMessage {
                header: peer_header(),
                body: PeerBody::Vote(Vote { granted: true, pre_vote: false }),
            }),
            Message::Peer(PeerMessage {
                header: peer_header(),
                body: PeerBody::AppendAck(AppendAck {
                    success: true,
                    match_index: 3,
                    reject_hint: 0,
                    read_round: 2,
                }),
            }),
        ];
        for (index, message) in messages.iter().enumerate() {
            assert_eq!(&round_trip(message, index as u64 + 100), message);
        }
    }

    fn peer_header() -> PeerHeader {
        PeerHeader {
            cluster: crate::ids::ClusterId(3),
            order_id: OrderId::new(7).unwrap(),
            from: MemberId::new(1).unwrap(),
            to: MemberId::new(2).unwrap(),
            term: 5,
        }
    }

    #[test]
    fn append_frame_routes_to_the_peer_decoder_and_slices_entry_data() {
        let message = Message::from(PeerMessage {
            header: peer_header(),
            body: PeerBody::Append(Append {
                prev_log_index: 10,
                prev_log_term: 4,
                commit: 9,
                read_round: 3,
                entries: vec![LogEntry { term: 5, index: 11, data: Bytes::from_static(b"cmd") }],
            }),
        });
        assert_eq!(message.kind(), Kind::Append);
        let mut buf = BytesMut::new();
        message.encode(8, &mut buf);
        let frame = decode_frame(&mut buf, 1024).unwrap().unwrap();
        let payload_start = frame.payload.as_ptr() as usize;
        let decoded = Message::decode(frame, &Limits::DEFAULT).unwrap();
        assert_eq!(decoded, message);
        let Message::Peer(PeerMessage { body: PeerBody::Append(append), .. }) = decoded else {
            unreachable!("decoded a different message")
        };
        // Header 48, four u64s 32, count 4, entry term, index and length 20.
        let data = &append.entries.first().unwrap().data;
        assert_eq!(data.as_ptr() as usize, payload_start + 104);
    }

    #[test]
    fn decoded_key_is_a_slice_of_the_frame() {
        let message = Message::Request(ClientRequest::Delete {
            key: Bytes::from_static(b"slice"),
            session: None,
        });
        let mut buf = BytesMut::new();
        message.encode(1, &mut buf);
        let frame = decode_frame(&mut buf, 1024).unwrap().unwrap();
        let payload_start = frame.payload.as_ptr() as usize;
        let Message::Request(ClientRequest::Delete { key, .. }) =
            Message::decode(frame, &Limits::DEFAULT).unwrap()
        else {
            unreachable!("decoded a different message")
        };
        // Session (16 bytes) and the key's length (4 bytes) precede the key.
        assert_eq!(key.as_ptr() as usize, payload_start + 20);
    }

    #[test]
    fn rejects_get_with_a_key_longer_than_the_configured_limit() {
        let message = Message::Request(ClientRequest::Get {
            key: Bytes::from_static(b"toolong"),
            consistency: ReadConsistency::Stale,
        });
        let mut buf = BytesMut::new();
        message.encode(5, &mut buf);
        let frame = decode_frame(&mut buf, 1024).unwrap().unwrap();
        let limits = Limits { max_key_bytes: 3, ..Limits::DEFAULT };
        assert_eq!(
            Message::decode(frame, &limits),
            Err(DecodeError::KeyTooLarge { len: 7, max: 3 })
        );
    }
}
