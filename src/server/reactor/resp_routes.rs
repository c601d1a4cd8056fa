//! Where RESP clients are sent: which radiant serves each hash slot over RESP, from the
//! committed configuration (a system of orders) or from the `members` list (a static
//! order), and the `CLUSTER SLOTS`, `SHARDS`, `NODES` and `INFO` answers built from it.
//!
//! This module owns that view of the system for Redis clients. It must not decide who
//! owns a shard; the controller does, and the state thread publishes what it committed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use radiant_protocol::resp::RespValue;
use radiant_protocol::slots::{shard_slot_range, ShardId, SLOT_COUNT};
use radiant_protocol::{Configuration, MemberId, OrderId};

use crate::storage::state_machine::StateMachine;

/// What the RESP front end knows about where requests go.
pub struct RespRoutes {
    /// RESP addresses of the static members' `resp` entries, by member.
    pub addresses: BTreeMap<MemberId, SocketAddr>,
    /// This radiant's own RESP address (as bound).
    pub own_address: SocketAddr,
    /// The state thread's view of this radiant, its order and the system.
    pub view: Arc<OrderView>,
    /// The state machine, for `INFO keyspace` and `DBSIZE`.
    pub machine: Arc<StateMachine>,
}

/// Who this radiant is, who heralds its order and the newest committed configuration,
/// as the state thread last published them (0: not known). A radiant learns its id when
/// it joins, after the reactor started.
#[derive(Debug, Default)]
pub struct OrderView {
    me: AtomicU64,
    herald: AtomicU64,
    configuration_number: AtomicU64,
    configuration: parking_lot::Mutex<Option<Arc<Configuration>>>,
    /// Each order's herald as this radiant last heard from the controller.
    heralds: parking_lot::Mutex<BTreeMap<OrderId, MemberId>>,
}

impl OrderView {
    /// Publishes this radiant's id and its order's herald.
    pub fn publish(&self, me: Option<MemberId>, herald: Option<MemberId>) {
        self.me.store(me.map_or(0, MemberId::get), Ordering::Relaxed);
        self.herald.store(herald.map_or(0, MemberId::get), Ordering::Relaxed);
    }

    /// The number of the configuration last published (0: none).
    pub fn configuration_number(&self) -> u64 {
        self.configuration_number.load(Ordering::Relaxed)
    }

    /// Publishes a newly committed configuration.
    pub fn publish_configuration(&self, configuration: Configuration) {
        let number = configuration.number;
        *self.configuration.lock() = Some(Arc::new(configuration));
        self.configuration_number.store(number, Ordering::Relaxed);
    }

    /// Publishes each order's herald, when they changed.
    pub fn publish_heralds(&self, heralds: &BTreeMap<OrderId, MemberId>) {
        let mut published = self.heralds.lock();
        if *published != *heralds {
            published.clone_from(heralds);
        }
    }

    fn configuration(&self) -> Option<Arc<Configuration>> {
        self.configuration.lock().clone()
    }
}

/// One radiant serving RESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Node {
    pub(super) member: MemberId,
    pub(super) address: SocketAddr,
}

/// Consecutive slots served by one order: its nodes, the one to send writes to first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SlotRange {
    pub(super) first: u16,
    pub(super) last: u16,
    pub(super) nodes: Vec<Node>,
}

impl RespRoutes {
    pub(super) fn herald(&self) -> Option<MemberId> {
        MemberId::new(self.view.herald.load(Ordering::Relaxed))
    }

    pub(super) fn me(&self) -> Option<MemberId> {
        MemberId::new(self.view.me.load(Ordering::Relaxed))
    }

    /// The RESP address of `member`: this radiant's own, a static member's, or the one
    /// the committed configuration lists.
    pub(super) fn address_of(&self, member: MemberId) -> Option<SocketAddr> {
        if Some(member) == self.me() {
            return Some(self.own_address);
        }
        if let Some(address) = self.addresses.get(&member) {
            return Some(*address);
        }
        let configuration = self.view.configuration()?;
        configuration.radiants.get(&member)?.resp.parse().ok()
    }

    /// Who serves which slots. With a configuration: each order's slots and its members
    /// with a RESP address, its herald first (as the controller last reported it, or
    /// this radiant's own order's; unknown, the lowest member goes first and redirects
    /// with `MOVED`). Without one (a static order): every slot, this order's members.
    pub(super) fn slot_ranges(&self) -> Vec<SlotRange> {
        let own_herald = self.herald();
        let first_herald = |nodes: &mut Vec<Node>, herald: Option<MemberId>| {
            nodes.sort_by_key(|node| (Some(node.member) != herald, node.member));
        };
        let Some(configuration) = self.view.configuration() else {
            let members: BTreeSet<MemberId> =
                self.addresses.keys().copied().chain(self.me()).collect();
            let mut nodes: Vec<Node> = members
                .into_iter()
                .filter_map(|member| Some(Node { member, address: self.address_of(member)? }))
                .collect();
            first_herald(&mut nodes, own_herald);
            if nodes.is_empty() {
                return Vec::new();
            }
            return vec![SlotRange { first: 0, last: SLOT_COUNT - 1, nodes }];
        };
        let heralds = self.view.heralds.lock().clone();
        let own_order = self.me().and_then(|me| {
            configuration.orders.iter().find(|(_, members)| members.contains(&me)).map(|(g, _)| *g)
        });
        let shard_count = u32::try_from(configuration.shards.len()).unwrap_or(0);
        let mut ranges: Vec<(u16, u16, radiant_protocol::OrderId)> = Vec::new();
        for (shard, order_id) in (0..shard_count).zip(configuration.shards.iter()) {
            let slots = shard_slot_range(ShardId(shard), shard_count);
            if slots.is_empty() {
                continue;
            }
            match ranges.last_mut() {
                Some((_, last, owner)) if owner == order_id && *last + 1 == slots.start => {
                    *last = slots.end - 1;
                }
                _ => ranges.push((slots.start, slots.end - 1, *order_id)),
            }
        }
        ranges
            .into_iter()
            .map(|(first, last, order_id)| {
                let members = configuration.orders.get(&order_id).cloned().unwrap_or_default();
                let mut nodes: Vec<Node> = members
                    .into_iter()
                    .filter_map(|member| Some(Node { member, address: self.address_of(member)? }))
                    .collect();
                let herald = if Some(order_id) == own_order {
                    own_herald.or_else(|| heralds.get(&order_id).copied())
                } else {
                    heralds.get(&order_id).copied()
                };
                first_herald(&mut nodes, herald);
                SlotRange { first, last, nodes }
            })
            .filter(|range| !range.nodes.is_empty())
            .collect()
    }

    /// Where to send a client for `slot`: the first node of the range that holds it.
    pub(super) fn node_for_slot(&self, slot: u16) -> Option<Node> {
        let ranges = self.slot_ranges();
        let range = ranges.iter().find(|range| (range.first..=range.last).contains(&slot))?;
        range.nodes.first().copied()
    }
}

/// A Redis Cluster node id for a radiant: its member id as 40 hex digits.
pub(super) fn node_id(member: MemberId) -> String {
    format!("{:040x}", member.get())
}

fn node_fields(node: &Node) -> Vec<RespValue> {
    vec![
        RespValue::text(node.address.ip().to_string()),
        RespValue::Integer(i64::from(node.address.port())),
        RespValue::text(node_id(node.member)),
    ]
}

/// `CLUSTER SLOTS`.
pub(super) fn cluster_slots(ranges: &[SlotRange]) -> RespValue {
    RespValue::Array(
        ranges
            .iter()
            .map(|range| {
                let mut entry = vec![
                    RespValue::Integer(range.first.into()),
                    RespValue::Integer(range.last.into()),
                ];
                entry.extend(range.nodes.iter().map(|node| RespValue::Array(node_fields(node))));
                RespValue::Array(entry)
            })
            .collect(),
    )
}

/// `CLUSTER SHARDS`: one entry per slot range.
pub(super) fn cluster_shards(ranges: &[SlotRange]) -> RespValue {
    let field = |name: &str, value| (RespValue::text(name), value);
    let entries = ranges
        .iter()
        .map(|range| {
            let nodes = range
                .nodes
                .iter()
                .enumerate()
                .map(|(position, node)| {
                    let role = if position == 0 { "master" } else { "replica" };
                    let ip = node.address.ip().to_string();
                    RespValue::Map(vec![
                        field("id", RespValue::text(node_id(node.member))),
                        field("port", RespValue::Integer(node.address.port().into())),
                        field("ip", RespValue::text(ip.clone())),
                        field("endpoint", RespValue::text(ip)),
                        field("role", RespValue::text(role)),
                        field("replication-offset", RespValue::Integer(0)),
                        field("health", RespValue::text("online")),
                    ])
                })
                .collect();
            let slots = RespValue::Array(vec![
                RespValue::Integer(range.first.into()),
                RespValue::Integer(range.last.into()),
            ]);
            RespValue::Map(vec![field("slots", slots), field("nodes", RespValue::Array(nodes))])
        })
        .collect();
    RespValue::Array(entries)
}

/// `CLUSTER NODES`: each node once; a range's first node as master with its slots.
pub(super) fn cluster_nodes(ranges: &[SlotRange], me: Option<MemberId>) -> RespValue {
    let mut masters: BTreeMap<MemberId, (SocketAddr, Vec<String>)> = BTreeMap::new();
    let mut replicas: BTreeMap<MemberId, (SocketAddr, MemberId)> = BTreeMap::new();
    for range in ranges {
        let Some(master) = range.nodes.first() else { continue };
        let slots = format!("{}-{}", range.first, range.last);
        masters.entry(master.member).or_insert((master.address, Vec::new())).1.push(slots);
        for node in range.nodes.iter().skip(1) {
            replicas.insert(node.member, (node.address, master.member));
        }
    }
    let myself = |member: MemberId| if Some(member) == me { "myself," } else { "" };
    let mut text = String::new();
    for (member, (address, slots)) in &masters {
        text.push_str(&format!(
            "{} {address}@{} {}master - 0 0 1 connected {}\n",
            node_id(*member),
            address.port(),
            myself(*member),
            slots.join(" ")
        ));
    }
    for (member, (address, master)) in replicas.iter().filter(|(m, _)| !masters.contains_key(m)) {
        text.push_str(&format!(
            "{} {address}@{} {}slave {} 0 0 1 connected\n",
            node_id(*member),
            address.port(),
            myself(*member),
            node_id(*master)
        ));
    }
    RespValue::Verbatim(text)
}

/// `CLUSTER INFO`.
pub(super) fn cluster_info(ranges: &[SlotRange]) -> RespValue {
    let assigned: u32 = ranges.iter().map(|range| u32::from(range.last - range.first) + 1).sum();
    let masters: BTreeSet<MemberId> =
        ranges.iter().filter_map(|range| range.nodes.first()).map(|node| node.member).collect();
    let nodes: BTreeSet<MemberId> =
        ranges.iter().flat_map(|range| range.nodes.iter().map(|node| node.member)).collect();
    let state = if assigned == u32::from(SLOT_COUNT) { "ok" } else { "fail" };
    RespValue::Verbatim(format!(
        "cluster_enabled:1\r\ncluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{assigned}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\n",
        nodes.len(),
        masters.len()
    ))
}
