//! System messages: how radiants find each other (beacon family, 0x01–0x0F), join a
//! system (join family, 0x10–0x1F), elect the controller (council votes, 0x23–0x24) and
//! receive configurations from it (controller family, 0x40–0x4F).
//!
//! They are addressed by peer address, not by member id, because a radiant that is
//! still forming has no permanent id. Every one starts with the sender's cluster id
//! (0 before the system exists) and peer address. This module owns their layouts; what
//! they mean is the core's business (`core/system`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_address, put_bool, put_optional_bytes, put_string, Reader};
use crate::configuration::{Configuration, RadiantAddress, MAX_CONFIGURATION_ITEMS};
use crate::error::DecodeError;
use crate::ids::{ClusterId, MemberId, OrderId, Term};
use crate::kind::Kind;
use crate::limits::{Limits, MAX_REASON_BYTES};
use crate::message::migration::ShardChunk;

/// A system message: who sends it (cluster id and peer address), then the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemMessage {
    /// The sender's cluster id; `ClusterId::UNSET` while it is forming.
    pub cluster: ClusterId,
    /// The sender's peer address, where answers go.
    pub from: String,
    /// What it says.
    pub body: SystemBody,
}

/// The body of a system message; the variant fixes the frame kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemBody {
    /// "I am here": sent to the configured neighbour every `beacon_interval`. Kind 0x01.
    BeaconHandshake(BeaconHandshake),
    /// The answer to a handshake. Kind 0x02.
    BeaconResponse(BeaconResponse),
    /// The handshake is refused (another cluster id); the reason says what to do. Kind 0x03.
    BeaconRefused {
        /// Why, for the operator.
        reason: String,
    },
    /// A new radiant asks to join an established system; relayed to the controller.
    /// Kind 0x10.
    JoinSystem(JoinSystem),
    /// The controller's answer: the joiner's permanent id and the committed
    /// configuration that lists it. Kind 0x11.
    JoinAccepted(JoinAccepted),
    /// A candidate for controller asks for a vote. Kind 0x23.
    CouncilRequestVote(CouncilRequestVote),
    /// The answer to `CouncilRequestVote`. Kind 0x24.
    CouncilVote(CouncilVote),
    /// The controller's heartbeat, carrying its newest configuration. Kind 0x40. Boxed:
    /// it carries up to two configurations, far larger than every other message.
    CouncilAppend(Box<CouncilAppend>),
    /// A herald's (or, before configuration 1, a radiant's) answer to `CouncilAppend`.
    /// Kind 0x41.
    CouncilAppendAck(CouncilAppendAck),
    /// A piece of a moving shard, from the losing order's herald to the gaining order's
    /// herald. Kind 0x42. Boxed: it carries up to `replication_max_bytes` of data.
    ShardChunk(Box<ShardChunk>),
    /// The gaining order's answer: where it wants the next piece to start, or that it
    /// holds the whole shard. Kind 0x43.
    ShardChunkAck(ShardChunkAck),
}

/// The gaining order's answer to a `ShardChunk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardChunkAck {
    /// The shard.
    pub shard: u32,
    /// The configuration that moved it.
    pub number: u64,
    /// The gaining order holds the whole shard (its sessions included): the losing
    /// order may drop its copy.
    pub installed: bool,
    /// Otherwise: the next piece must start after this key (none: at the first key).
    pub after: Option<Bytes>,
}

/// A radiant announces itself and the radiants it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeaconHandshake {
    /// The sender's client address.
    pub client: String,
    /// The sender's permanent id, once it has one.
    pub member: Option<MemberId>,
    /// The sender's `bootstrap_expect`, so radiants configured differently notice.
    pub bootstrap_expect: u32,
    /// Every radiant the sender knows (its address table), itself included.
    pub known: Vec<RadiantAddress>,
}

/// The answer to a handshake: a temporary id and the responder's view of the system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeaconResponse {
    /// An id the responder knows the sender by until it has a permanent one.
    pub temporary_id: u64,
    /// Whether the responder belongs to an established system (configuration ≥ 1).
    pub established: bool,
    /// The newest committed configuration number the responder knows (0 if none).
    pub configuration_number: u64,
    /// The controller's peer address, when the responder knows one (else empty).
    pub controller: String,
    /// The responder's address table.
    pub known: Vec<RadiantAddress>,
}

/// A newcomer's request to join; whoever receives it relays it to the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinSystem {
    /// The newcomer's addresses (answers go to its peer address).
    pub joiner: RadiantAddress,
    /// How many times it was relayed; relays stop at `MAX_JOIN_HOPS`.
    pub hops: u8,
}

/// Most relays of one `JoinSystem` before it is dropped (the joiner retries).
pub const MAX_JOIN_HOPS: u8 = 4;

/// The controller admits a newcomer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinAccepted {
    /// The newcomer's permanent id.
    pub member: MemberId,
    /// The committed configuration that lists it.
    pub configuration: Configuration,
}

/// A candidate for controller asks for a vote in `term`. Before configuration 1 the
/// candidate is a bootstrap radiant (no order or member yet); after, an order's herald.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouncilRequestVote {
    /// The council term it stands in.
    pub term: Term,
    /// The candidate's order.
    pub candidate_order: Option<OrderId>,
    /// The candidate radiant.
    pub candidate_member: Option<MemberId>,
    /// The number of the newest configuration it holds (0 for none).
    pub last_number: u64,
    /// That configuration's council term.
    pub last_term: Term,
}

/// A vote for controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouncilVote {
    /// The voter's council term (the requested term when granted).
    pub term: Term,
    /// The voting order (none before configuration 1: the voter is `from`).
    pub order_id: Option<OrderId>,
    /// Whether the vote is granted.
    pub granted: bool,
}

/// The controller's heartbeat: its term, identity, the orders' heralds as it knows them,
/// and its newest configuration with the number committed so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouncilAppend {
    /// The controller's council term.
    pub term: Term,
    /// The controller's order (none while forming).
    pub controller_order: Option<OrderId>,
    /// The controller radiant (none while forming).
    pub controller_member: Option<MemberId>,
    /// The newest configuration number a majority of the council holds.
    pub committed: u64,
    /// The controller's newest configuration (committed or not).
    pub configuration: Option<Configuration>,
    /// The newest committed configuration, when it is not `configuration` (a change is
    /// in flight), so radiants that missed it (spares of a new order) still get it.
    pub committed_configuration: Option<Configuration>,
    /// Each order's herald, as the controller last heard.
    pub heralds: Vec<(OrderId, MemberId)>,
}

/// The answer to `CouncilAppend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouncilAppendAck {
    /// The answering order's council term.
    pub term: Term,
    /// The answering order (none while forming: the answerer is `from`).
    pub order_id: Option<OrderId>,
    /// The answering herald (none while forming).
    pub member: Option<MemberId>,
    /// The newest configuration number it holds durably.
    pub held: u64,
    /// False when it refused (a stale term).
    pub success: bool,
    /// The newest configuration whose shard assignment the order implements.
    pub adopted: u64,
    /// Shards it is still receiving or handing over.
    pub moving: u32,
    /// The order's state as its herald reports it, in the seed's spelling (`ACTIVE`,
    /// `ERROR(RECOVERABLE(MEMBERSHIP))`, …); empty in the bootstrap form.
    pub order_state: String,
    /// Why the order is not `ACTIVE` (empty when it is), for the operator.
    pub reason: String,
    /// Each member of the order with the ticks since its herald last heard from it (0
    /// for the herald itself), so the controller can say which radiants are down.
    pub members: Vec<(MemberId, u64)>,
}

/// Most members one `CouncilAppendAck` reports (an order has at most nine voters, plus
/// learners while members are added).
pub const MAX_REPORTED_MEMBERS: usize = 64;
/// Longest `order_state` in a `CouncilAppendAck`.
pub const MAX_ORDER_STATE_BYTES: usize = 64;

// ===== impl SystemMessage =====

impl SystemMessage {
    /// The frame kind of this message.
    pub fn kind(&self) -> Kind {
        match &self.body {
            SystemBody::BeaconHandshake(_) => Kind::BeaconHandshake,
            SystemBody::BeaconResponse(_) => Kind::BeaconResponse,
            SystemBody::BeaconRefused { .. } => Kind::BeaconRefused,
            SystemBody::JoinSystem(_) => Kind::JoinSystem,
            SystemBody::JoinAccepted(_) => Kind::JoinAccepted,
            SystemBody::CouncilRequestVote(_) => Kind::CouncilRequestVote,
            SystemBody::CouncilVote(_) => Kind::CouncilVote,
            SystemBody::CouncilAppend(_) => Kind::CouncilAppend,
            SystemBody::CouncilAppendAck(_) => Kind::CouncilAppendAck,
            SystemBody::ShardChunk(_) => Kind::ShardChunk,
            SystemBody::ShardChunkAck(_) => Kind::ShardChunkAck,
        }
    }

    /// Whether `kind` is a system message kind.
    pub fn is_system_kind(kind: Kind) -> bool {
        matches!(
            kind,
            Kind::BeaconHandshake
                | Kind::BeaconResponse
                | Kind::BeaconRefused
                | Kind::JoinSystem
                | Kind::JoinAccepted
                | Kind::CouncilRequestVote
                | Kind::CouncilVote
                | Kind::CouncilAppend
                | Kind::CouncilAppendAck
                | Kind::ShardChunk
                | Kind::ShardChunkAck
        )
    }

    /// Decodes the payload of a frame of a system `kind`, consuming it exactly.
    /// `limits` bound the keys, values and session tables a `ShardChunk` carries.
    pub fn decode(
        kind: Kind,
        payload: Bytes,
        limits: &Limits,
    ) -> Result<SystemMessage, DecodeError> {
        let mut reader = Reader::new(payload, Some(kind));
        let cluster = ClusterId(reader.read_u128("cluster")?);
        let from = reader.read_address("from")?;
        let body = match kind {
            Kind::BeaconHandshake => SystemBody::BeaconHandshake(BeaconHandshake {
                client: reader.read_address("client")?,
                member: MemberId::new(reader.read_u64("member")?),
                bootstrap_expect: reader.read_u32("bootstrap_expect")?,
                known: read_addresses(&mut reader)?,
            }),
            Kind::BeaconResponse => SystemBody::BeaconResponse(BeaconResponse {
                temporary_id: reader.read_u64("temporary_id")?,
                established: reader.read_bool("established")?,
                configuration_number: reader.read_u64("configuration_number")?,
                controller: reader.read_address("controller")?,
                known: read_addresses(&mut reader)?,
            }),
            Kind::BeaconRefused => SystemBody::BeaconRefused {
                reason: reader.read_string("reason", MAX_REASON_BYTES, "reason too long")?,
            },
            Kind::JoinSystem => SystemBody::JoinSystem(JoinSystem {
                joiner: read_radiant_address(&mut reader)?,
                hops: reader.read_u8("hops")?,
            }),
            Kind::JoinAccepted => SystemBody::JoinAccepted(JoinAccepted {
                member: reader.read_member_id("member")?,
                configuration: Configuration::decode(&mut reader)?,
            }),
            Kind::CouncilRequestVote => SystemBody::CouncilRequestVote(CouncilRequestVote {
                term: reader.read_u64("term")?,
                candidate_order: OrderId::new(reader.read_u64("candidate_order")?),
                candidate_member: MemberId::new(reader.read_u64("candidate_member")?),
                last_number: reader.read_u64("last_number")?,
                last_term: reader.read_u64("last_term")?,
            }),
            Kind::CouncilVote => SystemBody::CouncilVote(CouncilVote {
                term: reader.read_u64("term")?,
                order_id: OrderId::new(reader.read_u64("order")?),
                granted: reader.read_bool("granted")?,
            }),
            Kind::CouncilAppend => {
                SystemBody::CouncilAppend(Box::new(decode_council_append(&mut reader)?))
            }
            Kind::CouncilAppendAck => {
                SystemBody::CouncilAppendAck(decode_council_append_ack(&mut reader)?)
            }
            Kind::ShardChunk => {
                SystemBody::ShardChunk(Box::new(ShardChunk::decode(&mut reader, limits)?))
            }
            Kind::ShardChunkAck => SystemBody::ShardChunkAck(ShardChunkAck {
                shard: reader.read_u32("shard")?,
                number: reader.read_u64("number")?,
                installed: reader.read_bool("installed")?,
                after: if reader.read_presence("after")? {
                    Some(reader.read_key("after", limits)?)
                } else {
                    None
                },
            }),
            _ => return Err(reader.invalid("kind", "not a system message kind")),
        };
        reader.finish()?;
        Ok(SystemMessage { cluster, from, body })
    }

    /// Appends the payload (not the frame header) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u128(self.cluster.0);
        put_address(dst, &self.from);
        match &self.body {
            SystemBody::BeaconHandshake(handshake) => {
                put_address(dst, &handshake.client);
                dst.put_u64(MemberId::to_wire(handshake.member));
                dst.put_u32(handshake.bootstrap_expect);
                put_addresses(dst, &handshake.known);
            }
            SystemBody::BeaconResponse(response) => {
                dst.put_u64(response.temporary_id);
                put_bool(dst, response.established);
                dst.put_u64(response.configuration_number);
                put_address(dst, &response.controller);
                put_addresses(dst, &response.known);
            }
            SystemBody::BeaconRefused { reason } => put_string(dst, reason, MAX_REASON_BYTES),
            SystemBody::JoinSystem(join) => {
                join.joiner.encode(dst);
                dst.put_u8(join.hops);
            }
            SystemBody::JoinAccepted(accepted) => {
                dst.put_u64(accepted.member.get());
                accepted.configuration.encode(dst);
            }
            SystemBody::CouncilRequestVote(request) => {
                dst.put_u64(request.term);
                dst.put_u64(OrderId::to_wire(request.candidate_order));
                dst.put_u64(MemberId::to_wire(request.candidate_member));
                dst.put_u64(request.last_number);
                dst.put_u64(request.last_term);
            }
            SystemBody::CouncilVote(vote) => {
                dst.put_u64(vote.term);
                dst.put_u64(OrderId::to_wire(vote.order_id));
                put_bool(dst, vote.granted);
            }
            SystemBody::CouncilAppend(append) => encode_council_append(append, dst),
            SystemBody::CouncilAppendAck(ack) => {
                dst.put_u64(ack.term);
                dst.put_u64(OrderId::to_wire(ack.order_id));
                dst.put_u64(MemberId::to_wire(ack.member));
                dst.put_u64(ack.held);
                put_bool(dst, ack.success);
                dst.put_u64(ack.adopted);
                dst.put_u32(ack.moving);
                put_string(dst, &ack.order_state, MAX_ORDER_STATE_BYTES);
                put_string(dst, &ack.reason, MAX_REASON_BYTES);
                let members = ack.members.iter().take(MAX_REPORTED_MEMBERS);
                dst.put_u32(members.len() as u32);
                for (member, quiet_ticks) in members {
                    dst.put_u64(member.get());
                    dst.put_u64(*quiet_ticks);
                }
            }
            SystemBody::ShardChunk(chunk) => chunk.encode(dst),
            SystemBody::ShardChunkAck(ack) => {
                dst.put_u32(ack.shard);
                dst.put_u64(ack.number);
                put_bool(dst, ack.installed);
                put_optional_bytes(dst, ack.after.as_ref());
            }
        }
    }
}

fn decode_council_append(reader: &mut Reader) -> Result<CouncilAppend, DecodeError> {
    let term = reader.read_u64("term")?;
    let controller_order = OrderId::new(reader.read_u64("controller_order")?);
    let controller_member = MemberId::new(reader.read_u64("controller_member")?);
    let committed = reader.read_u64("committed")?;
    let configuration = read_optional_configuration(reader, "configuration")?;
    let committed_configuration = read_optional_configuration(reader, "committed_configuration")?;
    let count = reader.read_count("heralds", 16)?;
    if count > MAX_CONFIGURATION_ITEMS {
        return Err(reader.invalid("heralds", "more than MAX_CONFIGURATION_ITEMS (65536)"));
    }
    let mut heralds = Vec::with_capacity(count);
    for _ in 0..count {
        heralds
            .push((reader.read_order_id("herald.order")?, reader.read_member_id("herald.member")?));
    }
    Ok(CouncilAppend {
        term,
        controller_order,
        controller_member,
        committed,
        configuration,
        committed_configuration,
        heralds,
    })
}

fn decode_council_append_ack(reader: &mut Reader) -> Result<CouncilAppendAck, DecodeError> {
    let term = reader.read_u64("term")?;
    let order_id = OrderId::new(reader.read_u64("order")?);
    let member = MemberId::new(reader.read_u64("member")?);
    let held = reader.read_u64("held")?;
    let success = reader.read_bool("success")?;
    let adopted = reader.read_u64("adopted")?;
    let moving = reader.read_u32("moving")?;
    let order_state = reader.read_string(
        "order_state",
        MAX_ORDER_STATE_BYTES,
        "longer than MAX_ORDER_STATE_BYTES (64)",
    )?;
    let reason =
        reader.read_string("reason", MAX_REASON_BYTES, "longer than MAX_REASON_BYTES (1024)")?;
    // The members: a count, then each member id and its quiet ticks.
    let count = reader.read_count("members", 16)?;
    if count > MAX_REPORTED_MEMBERS {
        return Err(reader.invalid("members", "more than MAX_REPORTED_MEMBERS (64)"));
    }
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push((reader.read_member_id("member.id")?, reader.read_u64("member.quiet")?));
    }
    Ok(CouncilAppendAck {
        term,
        order_id,
        member,
        held,
        success,
        adopted,
        moving,
        order_state,
        reason,
        members,
    })
}

fn encode_council_append(append: &CouncilAppend, dst: &mut BytesMut) {
    dst.put_u64(append.term);
    dst.put_u64(OrderId::to_wire(append.controller_order));
    dst.put_u64(MemberId::to_wire(append.controller_member));
    dst.put_u64(append.committed);
    for configuration in [&append.configuration, &append.committed_configuration] {
        match configuration {
            Some(configuration) => {
                dst.put_u8(1);
                configuration.encode(dst);
            }
            None => dst.put_u8(0),
        }
    }
    dst.put_u32(append.heralds.len() as u32);
    for (order_id, member) in &append.heralds {
        dst.put_u64(order_id.get());
        dst.put_u64(member.get());
    }
}

fn read_optional_configuration(
    reader: &mut Reader,
    field: &'static str,
) -> Result<Option<Configuration>, DecodeError> {
    if reader.read_presence(field)? {
        Ok(Some(Configuration::decode(reader)?))
    } else {
        Ok(None)
    }
}

fn read_radiant_address(reader: &mut Reader) -> Result<RadiantAddress, DecodeError> {
    RadiantAddress::decode(reader, ["peer", "client", "resp"])
}

fn read_addresses(reader: &mut Reader) -> Result<Vec<RadiantAddress>, DecodeError> {
    let count = reader.read_count("known", 6)?;
    if count > MAX_CONFIGURATION_ITEMS {
        return Err(reader.invalid("known", "more than MAX_CONFIGURATION_ITEMS (65536)"));
    }
    let mut known = Vec::with_capacity(count);
    for _ in 0..count {
        known.push(read_radiant_address(reader)?);
    }
    Ok(known)
}

fn put_addresses(dst: &mut BytesMut, known: &[RadiantAddress]) {
    dst.put_u32(known.len() as u32);
    for address in known {
        address.encode(dst);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn address(port: u16) -> RadiantAddress {
        RadiantAddress {
            peer: format!("127.0.0.1:{port}"),
            client: format!("127.0.0.1:{}", port + 1),
            resp: String::new(),
        }
    }

    fn a_council_append_ack() -> CouncilAppendAck {
        CouncilAppendAck {
            term: 3,
            order_id: OrderId::new(1),
            member: MemberId::new(1),
            held: 1,
            success: true,
            adopted: 1,
            moving: 2,
            order_state: "ERROR(RECOVERABLE(MEMBERSHIP))".to_string(),
            reason: "member 3 not heard for 130 ticks".to_string(),
            members: vec![(MemberId::new(1).unwrap(), 0), (MemberId::new(3).unwrap(), 130)],
        }
    }

    fn every_body() -> Vec<SystemBody> {
        let mut configuration = Configuration {
            number: 1,
            council_term: 1,
            next_member_id: 2,
            next_order_id: 2,
            ..Configuration::default()
        };
        configuration.radiants.insert(MemberId::new(1).unwrap(), address(7400));
        configuration.orders.insert(OrderId::new(1).unwrap(), [MemberId::new(1).unwrap()].into());
        configuration.shards = vec![OrderId::new(1).unwrap(); 4];
        vec![
            SystemBody::BeaconHandshake(BeaconHandshake {
                client: "127.0.0.1:7401".into(),
                member: None,
                bootstrap_expect: 3,
                known: vec![address(7400), address(7410)],
            }),
            SystemBody::BeaconResponse(BeaconResponse {
                temporary_id: 9,
                established: true,
                configuration_number: 4,
                controller: "127.0.0.1:7410".into(),
                known: vec![address(7410)],
            }),
            SystemBody::BeaconRefused { reason: "another cluster".into() },
            SystemBody::JoinSystem(JoinSystem { joiner: address(7500), hops: 2 }),
            SystemBody::JoinAccepted(JoinAccepted {
                member: MemberId::new(7).unwrap(),
                configuration: configuration.clone(),
            }),
            SystemBody::CouncilRequestVote(CouncilRequestVote {
                term: 3,
                candidate_order: OrderId::new(2),
                candidate_member: MemberId::new(5),
                last_number: 4,
                last_term: 2,
            }),
            SystemBody::CouncilVote(CouncilVote { term: 3, order_id: None, granted: true }),
            SystemBody::CouncilAppend(Box::new(CouncilAppend {
                term: 3,
                controller_order: OrderId::new(1),
                controller_member: MemberId::new(1),
                committed: 1,
                configuration: Some(configuration.clone()),
                committed_configuration: Some(configuration),
                heralds: vec![(OrderId::new(1).unwrap(), MemberId::new(1).unwrap())],
            })),
            SystemBody::CouncilAppendAck(a_council_append_ack()),
            SystemBody::ShardChunk(Box::new(ShardChunk {
                shard: 2,
                number: 5,
                after: None,
                pairs: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))],
                sessions: Some(Bytes::from_static(b"table")),
            })),
            SystemBody::ShardChunkAck(ShardChunkAck {
                shard: 2,
                number: 5,
                installed: false,
                after: Some(Bytes::from_static(b"k")),
            }),
        ]
    }

    #[test]
    fn every_system_body_round_trips_and_no_prefix_decodes() {
        for body in every_body() {
            let message = SystemMessage {
                cluster: ClusterId(0xfeed_u128 << 64 | 7),
                from: "127.0.0.1:7400".into(),
                body,
            };
            let mut dst = BytesMut::new();
            message.encode(&mut dst);
            let bytes = dst.freeze();
            assert_eq!(
                SystemMessage::decode(message.kind(), bytes.clone(), &Limits::DEFAULT),
                Ok(message.clone())
            );
            for end in 0..bytes.len() {
                let prefix = bytes.slice(..end);
                assert!(
                    SystemMessage::decode(message.kind(), prefix, &Limits::DEFAULT).is_err(),
                    "prefix {end}"
                );
            }
        }
    }
}
