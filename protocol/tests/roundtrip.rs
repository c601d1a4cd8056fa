//! Property tests of the wire format: every message and command survives a round trip,
//! arbitrary bytes never panic the decoders, and framing is independent of how bytes
//! arrive. The fuzz targets run the same `fuzzing` functions without proptest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use radiant_protocol::fuzzing::{
    decode_command_bytes, decode_frame_bytes, decode_message_bytes, decode_resp_bytes, FUZZ_LIMITS,
};
use radiant_protocol::resp::{RespValue, RespVersion};
use radiant_protocol::{
    decode_frame, Append, AppendAck, ClientId, ClientRequest, ClientResponse, Command,
    ErrorResponse, Frame, InstallSnapshot, InstallSnapshotAck, Limits, LogEntry, MemberId,
    MembershipChange, Message, OrderId, OrderStateOp, PeerBody, PeerHeader, PeerMessage,
    ReadConsistency, RequestVote, Session, SetCondition, Update, UpdateOutcome, Vote,
};
use radiant_protocol::{Batch, BatchCondition, BatchOutcome, BatchWrite, ReadIndex, ReadIndexAck};

fn key() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 1..=64).prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..=256).prop_map(Bytes::from)
}

fn optional_value() -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(value())
}

fn session() -> impl Strategy<Value = Option<Session>> {
    prop::option::of((1..=u64::MAX, 1..=u64::MAX).prop_map(|(client_id, sequence)| Session {
        client_id: ClientId::new(client_id).unwrap(),
        sequence,
    }))
}

fn member_id() -> impl Strategy<Value = Option<MemberId>> {
    any::<u64>().prop_map(MemberId::new)
}

fn required_member_id() -> impl Strategy<Value = MemberId> {
    (1..=u64::MAX).prop_map(|id| MemberId::new(id).unwrap())
}

fn address() -> impl Strategy<Value = String> {
    "[a-z0-9.:]{0,60}"
}

fn json() -> impl Strategy<Value = String> {
    // Up to 200 characters of up to 4 bytes each stays far below FUZZ_LIMITS' frame.
    "\\PC{0,200}"
}

fn reason() -> impl Strategy<Value = String> {
    // Up to 250 characters of up to 4 bytes each stays within MAX_REASON_BYTES (1024).
    "\\PC{0,250}"
}

fn batch() -> impl Strategy<Value = Batch> {
    let condition = prop_oneof![Just(BatchCondition::Always), Just(BatchCondition::IfAllAbsent)];
    let write = (key(), optional_value()).prop_map(|(key, value)| BatchWrite { key, value });
    (condition, prop::collection::vec(write, 1..8))
        .prop_map(|(condition, writes)| Batch { condition, writes })
}

fn update() -> impl Strategy<Value = Update> {
    let condition = prop::sample::select(vec![
        SetCondition::Always,
        SetCondition::IfAbsent,
        SetCondition::IfPresent,
    ]);
    prop_oneof![
        (value(), condition).prop_map(|(value, condition)| Update::Set { value, condition }),
        (value(), any::<u32>())
            .prop_map(|(suffix, max_value_bytes)| Update::Append { suffix, max_value_bytes }),
        any::<i64>().prop_map(|delta| Update::IncrementBy { delta }),
        Just(Update::Take),
    ]
}

fn update_outcome() -> impl Strategy<Value = UpdateOutcome> {
    prop_oneof![
        (any::<bool>(), optional_value())
            .prop_map(|(written, previous)| UpdateOutcome::Set { written, previous }),
        any::<u64>().prop_map(|length| UpdateOutcome::Appended { length }),
        any::<i64>().prop_map(|value| UpdateOutcome::Incremented { value }),
        optional_value().prop_map(|previous| UpdateOutcome::Taken { previous }),
        Just(UpdateOutcome::NotAnInteger),
        Just(UpdateOutcome::Overflow),
        any::<u64>().prop_map(|length| UpdateOutcome::TooLong { length }),
    ]
}

fn request() -> impl Strategy<Value = ClientRequest> {
    prop_oneof![
        (key(), prop::sample::select(ReadConsistency::ALL.to_vec()))
            .prop_map(|(key, consistency)| ClientRequest::Get { key, consistency }),
        (key(), value(), session()).prop_map(|(key, value, session)| ClientRequest::Put {
            key,
            value,
            session
        }),
        (key(), session()).prop_map(|(key, session)| ClientRequest::Delete { key, session }),
        (key(), optional_value(), optional_value(), session()).prop_map(
            |(key, expected, new, session)| ClientRequest::Cas { key, expected, new, session }
        ),
        Just(ClientRequest::Ping),
        (required_member_id(), address())
            .prop_map(|(member, address)| ClientRequest::AddMember { member, address }),
        required_member_id().prop_map(|member| ClientRequest::RemoveMember { member }),
        required_member_id().prop_map(|member| ClientRequest::RemoveRadiant { member }),
        ("[a-z0-9.:]{0,40}", "[a-z0-9.:]{0,40}", "[a-z0-9.:]{0,40}")
            .prop_map(|(peer, client, resp)| ClientRequest::AddRadiant { peer, client, resp }),
        member_id().prop_map(|to| ClientRequest::TransferHerald { to }),
        Just(ClientRequest::Status),
        (any::<u32>(), 1..u64::MAX).prop_map(|(shard, to)| ClientRequest::MoveShard {
            shard,
            to: radiant_protocol::OrderId::new(to).expect("non-zero")
        }),
        (1..u64::MAX).prop_map(|order_id| ClientRequest::LeaveOrder {
            order_id: radiant_protocol::OrderId::new(order_id).expect("non-zero")
        }),
        any::<u64>().prop_map(|number| ClientRequest::QueryConfiguration { number }),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|token| ClientRequest::Authenticate { token: token.into() }),
        (key(), update(), session()).prop_map(|(key, update, session)| ClientRequest::Update {
            key,
            update,
            session
        }),
        (batch(), session()).prop_map(|(batch, session)| ClientRequest::Batch { batch, session }),
    ]
}

fn response() -> impl Strategy<Value = ClientResponse> {
    prop_oneof![
        optional_value().prop_map(|value| ClientResponse::GetResult { value }),
        Just(ClientResponse::PutResult),
        any::<bool>().prop_map(|existed| ClientResponse::DeleteResult { existed }),
        (any::<bool>(), optional_value())
            .prop_map(|(succeeded, current)| ClientResponse::CasResult { succeeded, current }),
        member_id().prop_map(|member_id| ClientResponse::Pong { member_id }),
        Just(ClientResponse::Done),
        json().prop_map(|json| ClientResponse::Status { json }),
        (1..u64::MAX, prop::collection::vec(1..4u64, 1..20)).prop_map(|(number, owners)| {
            let order_id = |id: u64| OrderId::new(id).unwrap();
            let configuration = radiant_protocol::Configuration {
                number,
                next_order_id: 4,
                orders: (1..4).map(|id| (order_id(id), Default::default())).collect(),
                shards: owners.into_iter().map(order_id).collect(),
                leaving: [order_id(2)].into(),
                ..Default::default()
            };
            ClientResponse::Configuration(Box::new(configuration))
        }),
        update_outcome().prop_map(ClientResponse::UpdateResult),
        (any::<bool>(), any::<u32>()).prop_map(|(written, existed)| {
            ClientResponse::BatchResult(BatchOutcome { written, existed })
        }),
    ]
}

fn error_response() -> impl Strategy<Value = ErrorResponse> {
    prop_oneof![
        (member_id(), prop::option::of("[a-z0-9.:]{0,60}"))
            .prop_map(|(herald, address)| ErrorResponse::NotHerald { herald, address }),
        any::<u64>().prop_map(|config_num| ErrorResponse::WrongOrder { config_num }),
        prop::sample::select(OrderStateOp::ALL.to_vec()).prop_map(ErrorResponse::Locked),
        reason().prop_map(|reason| ErrorResponse::Unavailable { reason }),
        reason().prop_map(|reason| ErrorResponse::BadRequest { reason }),
        reason().prop_map(|reason| ErrorResponse::OutcomeUnknown { reason }),
        reason().prop_map(|reason| ErrorResponse::Unauthorized { reason }),
    ]
}

fn link_introduction() -> impl Strategy<Value = radiant_protocol::LinkIntroduction> {
    (any::<[u8; 32]>(), "[a-z0-9.:]{0,60}", any::<u128>(), any::<bool>()).prop_map(
        |(nonce, address, cluster, insecure)| radiant_protocol::LinkIntroduction {
            nonce,
            address,
            cluster: radiant_protocol::ClusterId(cluster),
            insecure,
        },
    )
}

fn link_message() -> impl Strategy<Value = radiant_protocol::LinkMessage> {
    use radiant_protocol::LinkMessage;
    prop_oneof![
        link_introduction().prop_map(LinkMessage::Hello),
        (link_introduction(), any::<[u8; 32]>())
            .prop_map(|(introduction, proof)| LinkMessage::Challenge { introduction, proof }),
        any::<[u8; 32]>().prop_map(|proof| LinkMessage::Proof { proof }),
        reason().prop_map(|reason| LinkMessage::Refused { reason }),
    ]
}

fn peer_header() -> impl Strategy<Value = PeerHeader> {
    (any::<u128>(), 1..=u64::MAX, required_member_id(), required_member_id(), any::<u64>())
        .prop_map(|(cluster, order_id, from, to, term)| PeerHeader {
            cluster: radiant_protocol::ClusterId(cluster),
            order_id: OrderId::new(order_id).unwrap(),
            from,
            to,
            term,
        })
}

/// An `Append` with 0..4 entries contiguous after `prev_log_index`, terms growing from
/// `prev_log_term` by 0..=2 per entry. Bounds keep indexes and terms from overflowing.
fn append() -> impl Strategy<Value = Append> {
    (
        0..u64::MAX / 2,
        0..u64::MAX / 2,
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec((0..=2u64, value()), 0..4),
    )
        .prop_map(|(prev_log_index, prev_log_term, commit, read_round, raw)| {
            let mut term = prev_log_term;
            let entries = (1..)
                .zip(raw)
                .map(|(offset, (term_step, data))| {
                    term += term_step;
                    LogEntry { term, index: prev_log_index + offset, data }
                })
                .collect();
            Append { prev_log_index, prev_log_term, commit, read_round, entries }
        })
}

/// A snapshot chunk that lies within `total_bytes`, ending exactly there when `done`.
fn install_snapshot() -> impl Strategy<Value = InstallSnapshot> {
    (any::<u64>(), any::<u64>(), 0..u64::MAX / 2, 0..u64::MAX / 4, any::<bool>(), value()).prop_map(
        |(snapshot_index, snapshot_term, offset, spare, done, chunk)| {
            let end = offset + chunk.len() as u64;
            InstallSnapshot {
                snapshot_index,
                snapshot_term,
                offset,
                total_bytes: if done { end } else { end + spare },
                done,
                chunk,
            }
        },
    )
}

fn peer_body() -> impl Strategy<Value = PeerBody> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
            |(last_log_index, last_log_term, pre_vote, transfer)| {
                PeerBody::RequestVote(RequestVote {
                    last_log_index,
                    last_log_term,
                    pre_vote,
                    transfer,
                })
            }
        ),
        (any::<bool>(), any::<bool>())
            .prop_map(|(granted, pre_vote)| PeerBody::Vote(Vote { granted, pre_vote })),
        Just(PeerBody::TimeoutNow),
        append().prop_map(PeerBody::Append),
        (any::<bool>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(success, match_index, reject_hint, read_round)| {
                PeerBody::AppendAck(AppendAck { success, match_index, reject_hint, read_round })
            }
        ),
        install_snapshot().prop_map(PeerBody::InstallSnapshot),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(snapshot_index, next_offset, done)| {
                PeerBody::InstallSnapshotAck(InstallSnapshotAck {
                    snapshot_index,
                    next_offset,
                    done,
                })
            }
        ),
        any::<u64>().prop_map(|request_id| PeerBody::ReadIndex(ReadIndex { request_id })),
        (any::<u64>(), prop::option::of(any::<u64>())).prop_map(|(request_id, index)| {
            let refused = index.is_none();
            let index = index.unwrap_or(0);
            PeerBody::ReadIndexAck(ReadIndexAck { request_id, refused, index })
        }),
    ]
}

fn peer_message() -> impl Strategy<Value = PeerMessage> {
    (peer_header(), peer_body()).prop_map(|(header, body)| PeerMessage { header, body })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        request().prop_map(Message::Request),
        response().prop_map(Message::Response),
        error_response().prop_map(Message::Error),
        peer_message().prop_map(Message::Peer),
        link_message().prop_map(Message::Link),
    ]
}

fn membership_change() -> impl Strategy<Value = MembershipChange> {
    prop_oneof![
        (required_member_id(), address())
            .prop_map(|(member, address)| MembershipChange::AddLearner { member, address }),
        required_member_id().prop_map(|member| MembershipChange::Promote { member }),
        required_member_id().prop_map(|member| MembershipChange::Remove { member }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Noop),
        (key(), value(), session()).prop_map(|(key, value, session)| Command::Put {
            key,
            value,
            session
        }),
        (key(), session()).prop_map(|(key, session)| Command::Delete { key, session }),
        (key(), optional_value(), optional_value(), session())
            .prop_map(|(key, expected, new, session)| Command::Cas { key, expected, new, session }),
        membership_change().prop_map(Command::Membership),
        (key(), update(), session()).prop_map(|(key, update, session)| Command::Update {
            key,
            update,
            session
        }),
        (batch(), session()).prop_map(|(batch, session)| Command::Batch { batch, session }),
    ]
}

fn encoded(message: &Message, correlation_id: u64) -> BytesMut {
    let mut buf = BytesMut::new();
    message.encode(correlation_id, &mut buf);
    buf
}

fn decode_all(buf: &mut BytesMut) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = decode_frame(buf, Limits::DEFAULT.max_frame_bytes).unwrap() {
        frames.push(frame);
    }
    frames
}

proptest! {
    #[test]
    fn every_message_round_trips(message in message(), correlation_id in any::<u64>()) {
        let mut buf = encoded(&message, correlation_id);
        let frame = decode_frame(&mut buf, Limits::DEFAULT.max_frame_bytes).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frame.kind, message.kind());
        prop_assert_eq!(frame.correlation_id, correlation_id);
        prop_assert_eq!(Message::decode(frame, &Limits::DEFAULT).unwrap(), message);
    }

    #[test]
    fn every_peer_message_round_trips_and_keeps_its_header(
        peer in peer_message(),
        correlation_id in any::<u64>(),
    ) {
        let message = Message::from(peer.clone());
        prop_assert_eq!(message.kind(), peer.body.kind());
        let mut buf = encoded(&message, correlation_id);
        let frame = decode_frame(&mut buf, Limits::DEFAULT.max_frame_bytes).unwrap().unwrap();
        let Message::Peer(decoded) = Message::decode(frame, &Limits::DEFAULT).unwrap() else {
            panic!("a peer frame decoded to another family");
        };
        prop_assert_eq!(decoded.header, peer.header);
        prop_assert_eq!(decoded, peer);
    }

    #[test]
    fn arbitrary_peer_bodies_behind_a_valid_header_never_panic(
        header in peer_header(),
        kind in prop::sample::select(
            radiant_protocol::Kind::ALL
                .iter()
                .copied()
                .filter(|kind| kind.to_u8() < 0x40)
                .collect::<Vec<_>>(),
        ),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut buf = BytesMut::new();
        radiant_protocol::encode_frame(&mut buf, kind, 1, |dst| {
            for field in [header.order_id.get(), header.from.get(), header.to.get(), header.term] {
                dst.extend_from_slice(&field.to_be_bytes());
            }
            dst.extend_from_slice(&body);
        });
        decode_message_bytes(&buf);
    }

    #[test]
    fn every_command_round_trips(command in command()) {
        let decoded = Command::decode(command.to_bytes(), &Limits::DEFAULT).unwrap();
        prop_assert_eq!(decoded, command);
    }

    #[test]
    fn valid_messages_pass_the_fuzz_oracle(message in message(), correlation_id in any::<u64>()) {
        // FUZZ_LIMITS are small; generated keys and values fit within them.
        prop_assert!(FUZZ_LIMITS.max_key_bytes >= 64 && FUZZ_LIMITS.max_value_bytes >= 256);
        decode_message_bytes(&encoded(&message, correlation_id));
    }

    #[test]
    fn valid_commands_pass_the_fuzz_oracle(command in command()) {
        decode_command_bytes(&command.to_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_frame_bytes(&data);
        decode_message_bytes(&data);
        decode_command_bytes(&data);
        decode_resp_bytes(&data);
    }

    #[test]
    fn pipelined_resp_requests_pass_the_fuzz_oracle(
        requests in prop::collection::vec(prop::collection::vec(value(), 1..4), 1..4),
    ) {
        let mut stream = BytesMut::new();
        for request in requests {
            let arguments = request.into_iter().map(RespValue::Bulk).collect();
            RespValue::Array(arguments).encode(RespVersion::Two, &mut stream);
        }
        decode_resp_bytes(&stream);
    }

    #[test]
    fn arbitrary_payloads_of_every_kind_never_panic(
        kind in prop::sample::select(radiant_protocol::Kind::ALL.to_vec()),
        payload in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut buf = BytesMut::new();
        radiant_protocol::encode_frame(&mut buf, kind, 1, |dst| dst.extend_from_slice(&payload));
        decode_message_bytes(&buf);
    }

    #[test]
    fn every_prefix_of_a_frame_needs_more_bytes(message in message()) {
        let whole = encoded(&message, 3);
        for end in 0..whole.len() {
            let mut prefix = BytesMut::from(&whole[..end]);
            prop_assert_eq!(decode_frame(&mut prefix, Limits::DEFAULT.max_frame_bytes), Ok(None));
            prop_assert_eq!(prefix.len(), end);
        }
    }

    #[test]
    fn two_frames_back_to_back_decode_in_order(first in message(), second in message()) {
        let mut buf = encoded(&first, 1);
        buf.extend_from_slice(&encoded(&second, 2));
        let frames = decode_all(&mut buf);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frames.len(), 2);
        let decoded: Vec<Message> = frames
            .into_iter()
            .map(|frame| Message::decode(frame, &Limits::DEFAULT).unwrap())
            .collect();
        prop_assert_eq!(decoded, vec![first, second]);
    }

    #[test]
    fn a_frame_split_at_every_position_decodes_the_same(message in message()) {
        let whole = encoded(&message, 11);
        for split in 0..=whole.len() {
            let mut buf = BytesMut::from(&whole[..split]);
            let early = decode_frame(&mut buf, Limits::DEFAULT.max_frame_bytes).unwrap();
            let frame = match early {
                Some(frame) => frame,
                None => {
                    buf.extend_from_slice(&whole[split..]);
                    decode_frame(&mut buf, Limits::DEFAULT.max_frame_bytes).unwrap().unwrap()
                }
            };
            prop_assert!(buf.is_empty());
            prop_assert_eq!(frame.correlation_id, 11);
            prop_assert_eq!(Message::decode(frame, &Limits::DEFAULT).unwrap(), message.clone());
        }
    }
}

#[test]
fn a_batch_of_no_writes_or_of_more_than_the_maximum_is_refused() {
    let write = BatchWrite { key: Bytes::from_static(b"k"), value: None };
    let mut oversized = BytesMut::new();
    // Built by hand: the encoder asserts what the decoder checks.
    // Tag 8, no session (16 zero bytes), condition Always, then the count.
    oversized.extend_from_slice(&[8]);
    oversized.extend_from_slice(&[0; 17]);
    oversized.extend_from_slice(&(radiant_protocol::MAX_BATCH_WRITES + 1).to_be_bytes());
    for _ in 0..=radiant_protocol::MAX_BATCH_WRITES {
        oversized.extend_from_slice(&[0, 0, 0, 1, b'k', 0]);
    }
    let mut empty = vec![8];
    empty.extend_from_slice(&[0; 21]);
    let empty = Bytes::from(empty);
    for data in [oversized.freeze(), empty] {
        let refused = Command::decode(data, &Limits::DEFAULT).unwrap_err().to_string();
        assert!(refused.contains("batch.count"), "{refused}");
    }
    let one = Command::Batch {
        batch: Batch { condition: BatchCondition::Always, writes: vec![write] },
        session: None,
    };
    assert_eq!(Command::decode(one.to_bytes(), &Limits::DEFAULT).unwrap(), one);
}
