//! Peer messages: what the members of an order send each other (the vote and
//! replication families). Every peer payload starts with the same 48-byte header, then
//! the body of its kind.
//!
//! This module owns the header and the dispatch from a peer kind to its body; the
//! bodies' layouts live in `vote.rs` and `replication.rs`. It must not decide what a
//! message means for an order (stale term, unknown order); the daemon's core does.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::Reader;
use crate::error::DecodeError;
use crate::ids::{ClusterId, MemberId, OrderId, Term};
use crate::kind::{Family, Kind};
use crate::limits::Limits;
use crate::message::replication::{
    Append, AppendAck, InstallSnapshot, InstallSnapshotAck, ReadIndex, ReadIndexAck,
};
use crate::message::vote::{RequestVote, Vote};

/// Who sends a peer message to whom, for which order, in which term. Every id is
/// required: a peer message addressed to "nobody" is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerHeader {
    /// The sender's system; a radiant drops messages from another cluster (a radiant
    /// restarted with a data directory of another system must not disturb this one).
    pub cluster: ClusterId,
    /// The order the message belongs to; a radiant drops messages for other orders.
    pub order_id: OrderId,
    /// The sending member.
    pub from: MemberId,
    /// The receiving member, so a message that reaches the wrong radiant (a reused
    /// address) is recognised and dropped.
    pub to: MemberId,
    /// The sender's current term (for a pre-vote request, the term it would campaign in).
    pub term: Term,
}

/// A message between members of an order: header, then body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMessage {
    /// Who, to whom, which order, which term.
    pub header: PeerHeader,
    /// What the message says.
    pub body: PeerBody,
}

/// The body of a peer message; the variant fixes the frame kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerBody {
    /// Ask for a vote or a pre-vote. Kind 0x20.
    RequestVote(RequestVote),
    /// Answer a `RequestVote`. Kind 0x21.
    Vote(Vote),
    /// Herald transfer: the herald tells the receiver to start an election now. Empty
    /// body. Kind 0x22.
    TimeoutNow,
    /// Log entries and the commit index; a heartbeat when there are no entries. Kind 0x30.
    Append(Append),
    /// Answer an `Append`. Kind 0x31.
    AppendAck(AppendAck),
    /// One chunk of a snapshot. Kind 0x32.
    InstallSnapshot(InstallSnapshot),
    /// Answer an `InstallSnapshot`. Kind 0x33.
    InstallSnapshotAck(InstallSnapshotAck),
    /// A follower asks the herald for a read index. Kind 0x34.
    ReadIndex(ReadIndex),
    /// Answer a `ReadIndex`. Kind 0x35.
    ReadIndexAck(ReadIndexAck),
}

// ===== impl PeerHeader =====

impl PeerHeader {
    /// The size of the header on the wire: a `u128` and four `u64`s.
    pub const BYTES: usize = 48;

    /// Reads the header: `u128` cluster, `u64` order, `u64` from, `u64` to, `u64` term.
    /// An id of 0 is `ZeroId` naming the field.
    fn decode(reader: &mut Reader) -> Result<PeerHeader, DecodeError> {
        Ok(PeerHeader {
            cluster: ClusterId(reader.read_u128("cluster")?),
            order_id: reader.read_order_id("order")?,
            from: reader.read_member_id("from")?,
            to: reader.read_member_id("to")?,
            term: reader.read_u64("term")?,
        })
    }

    /// Appends the header to `dst`.
    fn encode(&self, dst: &mut BytesMut) {
        dst.put_u128(self.cluster.0);
        dst.put_u64(self.order_id.get());
        dst.put_u64(self.from.get());
        dst.put_u64(self.to.get());
        dst.put_u64(self.term);
    }
}

// ===== impl PeerBody =====

impl PeerBody {
    /// The frame kind of this body.
    pub fn kind(&self) -> Kind {
        match self {
            PeerBody::RequestVote(_) => Kind::RequestVote,
            PeerBody::Vote(_) => Kind::Vote,
            PeerBody::TimeoutNow => Kind::TimeoutNow,
            PeerBody::Append(_) => Kind::Append,
            PeerBody::AppendAck(_) => Kind::AppendAck,
            PeerBody::InstallSnapshot(_) => Kind::InstallSnapshot,
            PeerBody::InstallSnapshotAck(_) => Kind::InstallSnapshotAck,
            PeerBody::ReadIndex(_) => Kind::ReadIndex,
            PeerBody::ReadIndexAck(_) => Kind::ReadIndexAck,
        }
    }
}

// ===== impl PeerMessage =====

impl PeerMessage {
    /// The frame kind of this message, its body's.
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// Decodes the payload of a frame of `kind` (a vote or replication kind), consuming
    /// it exactly. The header is checked before the body.
    pub fn decode(kind: Kind, payload: Bytes, limits: &Limits) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload, Some(kind));
        // Why: a client kind would otherwise be reported as a bad header field.
        if !matches!(kind.family(), Family::Vote | Family::Replication) {
            return Err(reader.invalid("kind", "not a peer message kind"));
        }
        let header = PeerHeader::decode(&mut reader)?;
        let body = match kind {
            Kind::RequestVote => PeerBody::RequestVote(RequestVote::decode(&mut reader)?),
            Kind::Vote => PeerBody::Vote(Vote::decode(&mut reader)?),
            Kind::TimeoutNow => PeerBody::TimeoutNow,
            Kind::Append => PeerBody::Append(Append::decode(&mut reader, limits)?),
            Kind::AppendAck => PeerBody::AppendAck(AppendAck::decode(&mut reader)?),
            Kind::InstallSnapshot => {
                PeerBody::InstallSnapshot(InstallSnapshot::decode(&mut reader, limits)?)
            }
            Kind::InstallSnapshotAck => {
                PeerBody::InstallSnapshotAck(InstallSnapshotAck::decode(&mut reader)?)
            }
            Kind::ReadIndex => PeerBody::ReadIndex(ReadIndex::decode(&mut reader)?),
            Kind::ReadIndexAck => PeerBody::ReadIndexAck(ReadIndexAck::decode(&mut reader)?),
            _ => return Err(reader.invalid("kind", "not a peer message kind")),
        };
        reader.finish()?;
        Ok(PeerMessage { header, body })
    }

    /// Appends the payload (not the frame header) to `dst`: header, then body.
    pub fn encode(&self, dst: &mut BytesMut) {
        self.header.encode(dst);
        match &self.body {
            PeerBody::RequestVote(request) => request.encode(dst),
            PeerBody::Vote(vote) => vote.encode(dst),
            PeerBody::TimeoutNow => {}
            PeerBody::Append(append) => append.encode(dst),
            PeerBody::AppendAck(ack) => ack.encode(dst),
            PeerBody::InstallSnapshot(chunk) => chunk.encode(dst),
            PeerBody::InstallSnapshotAck(ack) => ack.encode(dst),
            PeerBody::ReadIndex(request) => request.encode(dst),
            PeerBody::ReadIndexAck(ack) => ack.encode(dst),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::replication::LogEntry;

    fn header() -> PeerHeader {
        PeerHeader {
            cluster: ClusterId(5),
            order_id: OrderId::new(1).unwrap(),
            from: MemberId::new(2).unwrap(),
            to: MemberId::new(3).unwrap(),
            term: 4,
        }
    }

    fn round_trip(body: PeerBody) {
        let message = PeerMessage { header: header(), body };
        let mut dst = BytesMut::new();
        message.encode(&mut dst);
        let decoded = PeerMessage::decode(message.kind(), dst.freeze(), &Limits::DEFAULT);
        assert_eq!(decoded, Ok(message));
    }

    #[test]
    fn header_layout_is_cluster_group_from_to_term() {
        let message = PeerMessage { header: header(), body: PeerBody::TimeoutNow };
        let mut dst = BytesMut::new();
        message.encode(&mut dst);
        let mut expected = 5u128.to_be_bytes().to_vec();
        for field in [1u64, 2, 3, 4] {
            expected.extend_from_slice(&field.to_be_bytes());
        }
        assert_eq!(dst.as_ref(), expected.as_slice());
        assert_eq!(dst.len(), PeerHeader::BYTES);
    }

    #[test]
    fn every_peer_body_round_trips_behind_the_header() {
        round_trip(PeerBody::RequestVote(RequestVote {
            last_log_index: 7,
            last_log_term: 3,
            pre_vote: false,
            transfer: true,
        }));
        round_trip(PeerBody::Vote(Vote { granted: true, pre_vote: true }));
        round_trip(PeerBody::TimeoutNow);
        round_trip(PeerBody::Append(Append {
            prev_log_index: 0,
            prev_log_term: 0,
            commit: 0,
            read_round: 1,
            entries: vec![LogEntry { term: 4, index: 1, data: Bytes::from_static(b"\x00") }],
        }));
        round_trip(PeerBody::AppendAck(AppendAck {
            success: true,
            match_index: 1,
            reject_hint: 0,
            read_round: 1,
        }));
        round_trip(PeerBody::InstallSnapshot(InstallSnapshot {
            snapshot_index: 9,
            snapshot_term: 4,
            offset: 0,
            total_bytes: 0,
            done: true,
            chunk: Bytes::new(),
        }));
        round_trip(PeerBody::InstallSnapshotAck(InstallSnapshotAck {
            snapshot_index: 9,
            next_offset: 0,
            done: true,
        }));
        round_trip(PeerBody::ReadIndex(ReadIndex { request_id: 77 }));
        round_trip(PeerBody::ReadIndexAck(ReadIndexAck {
            request_id: 77,
            refused: false,
            index: 12,
        }));
        round_trip(PeerBody::ReadIndexAck(ReadIndexAck {
            request_id: 78,
            refused: true,
            index: 0,
        }));
    }

    #[test]
    fn zero_member_id_in_peer_header_is_rejected() {
        for (position, field) in [(0, "order"), (1, "from"), (2, "to")] {
            let mut payload = 9u128.to_be_bytes().to_vec();
            for index in 0..4u64 {
                let value = if index == position { 0 } else { index + 1 };
                payload.extend_from_slice(&value.to_be_bytes());
            }
            let error =
                PeerMessage::decode(Kind::TimeoutNow, Bytes::from(payload), &Limits::DEFAULT);
            assert_eq!(error, Err(DecodeError::ZeroId { field }));
        }
    }

    #[test]
    fn term_zero_in_the_header_is_allowed() {
        let message =
            PeerMessage { header: PeerHeader { term: 0, ..header() }, body: PeerBody::TimeoutNow };
        let mut dst = BytesMut::new();
        message.encode(&mut dst);
        assert_eq!(
            PeerMessage::decode(Kind::TimeoutNow, dst.freeze(), &Limits::DEFAULT),
            Ok(message)
        );
    }

    #[test]
    fn timeout_now_with_a_body_is_rejected() {
        let mut dst = BytesMut::new();
        header().encode(&mut dst);
        dst.put_u8(0);
        assert_eq!(
            PeerMessage::decode(Kind::TimeoutNow, dst.freeze(), &Limits::DEFAULT),
            Err(DecodeError::TrailingBytes { kind: Some(Kind::TimeoutNow), count: 1 })
        );
    }

    #[test]
    fn truncated_header_names_the_missing_field() {
        let error = PeerMessage::decode(
            Kind::Vote,
            Bytes::from([[0; 16].as_slice(), &[0, 0, 0, 0, 0, 0, 0, 1]].concat()),
            &Limits::DEFAULT,
        );
        assert_eq!(
            error,
            Err(DecodeError::Truncated {
                kind: Some(Kind::Vote),
                field: "from",
                needed: 8,
                remaining: 0
            })
        );
    }

    #[test]
    fn client_kind_is_not_a_peer_message() {
        let error = PeerMessage::decode(Kind::Ping, Bytes::new(), &Limits::DEFAULT);
        assert!(matches!(error, Err(DecodeError::InvalidField { field: "kind", .. })));
    }
}
