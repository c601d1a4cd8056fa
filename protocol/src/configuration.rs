//! The system configuration (DESIGN §8): the numbered map of radiants, orders and
//! shards that the controller owns and the council commits. It travels in controller
//! messages and in orders' logs (`Command::Council`), so its byte format lives here.
//!
//! This module owns the layout and a structural check (`Configuration::check`). It must
//! not decide how radiants are grouped or shards balanced; the controller in the core does.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, BytesMut};

use crate::codec::{put_address, Reader};
use crate::error::DecodeError;
use crate::ids::{MemberId, OrderId, Term};

/// Where a radiant listens.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RadiantAddress {
    /// Its peer address (`host:port`).
    pub peer: String,
    /// Its client address (`host:port`).
    pub client: String,
    /// Its RESP address (`host:port`) where Redis clients are sent; empty when it serves
    /// no RESP.
    pub resp: String,
}

impl RadiantAddress {
    /// Reads the three addresses, naming them `fields` (peer, client, resp) in errors.
    pub(crate) fn decode(
        reader: &mut Reader,
        fields: [&'static str; 3],
    ) -> Result<RadiantAddress, DecodeError> {
        let [peer, client, resp] = fields;
        Ok(RadiantAddress {
            peer: reader.read_address(peer)?,
            client: reader.read_address(client)?,
            resp: reader.read_address(resp)?,
        })
    }

    /// Appends the three addresses.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        put_address(dst, &self.peer);
        put_address(dst, &self.client);
        put_address(dst, &self.resp);
    }
}

/// Configuration `number`: every radiant with its addresses, every order with its target
/// members, the spares (associated radiants in no order yet) and each shard's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Configuration {
    /// 1 for the first configuration; each change adds one.
    pub number: u64,
    /// The council term of the controller that made it.
    pub council_term: Term,
    /// The id the next new radiant gets; ids are never reused.
    pub next_member_id: u64,
    /// The id the next new order gets; ids are never reused.
    pub next_order_id: u64,
    /// Every radiant of the system.
    pub radiants: BTreeMap<MemberId, RadiantAddress>,
    /// Every order and its target members.
    pub orders: BTreeMap<OrderId, BTreeSet<MemberId>>,
    /// Radiants in no order (waiting for enough others to form one).
    pub spares: BTreeSet<MemberId>,
    /// The order of each shard, by shard number.
    pub shards: Vec<OrderId>,
    /// Orders being dissolved: the controller moves their shards to the other orders,
    /// then removes them and their radiants.
    pub leaving: BTreeSet<OrderId>,
}

/// Most shards a configuration may have: one per hash slot.
pub const MAX_SHARDS: usize = 16_384;

/// Most radiants, orders or shards one configuration may list; bounds decoding.
pub const MAX_CONFIGURATION_ITEMS: usize = 1 << 16;

impl Configuration {
    /// Reads a configuration (layout in `docs/protocol.md`, "Configuration").
    pub(crate) fn decode(reader: &mut Reader) -> Result<Configuration, DecodeError> {
        let mut configuration = Configuration {
            number: reader.read_u64("configuration.number")?,
            council_term: reader.read_u64("configuration.council_term")?,
            next_member_id: reader.read_u64("configuration.next_member_id")?,
            next_order_id: reader.read_u64("configuration.next_order_id")?,
            ..Configuration::default()
        };
        // Every list is in strictly ascending id order (as `encode` writes it), so one
        // configuration has exactly one encoding and a repeated id cannot hide.
        // Why: the smallest radiant is an id and three empty addresses.
        let radiants = reader.read_count("configuration.radiants", 14)?;
        check_items(reader, "configuration.radiants", radiants)?;
        let mut previous = 0;
        for _ in 0..radiants {
            let member = read_ascending_member(reader, "configuration.radiant", &mut previous)?;
            let fields = [
                "configuration.radiant.peer",
                "configuration.radiant.client",
                "configuration.radiant.resp",
            ];
            configuration.radiants.insert(member, RadiantAddress::decode(reader, fields)?);
        }
        let orders = reader.read_count("configuration.orders", 12)?;
        check_items(reader, "configuration.orders", orders)?;
        let mut previous_order = 0;
        for _ in 0..orders {
            let order_id = reader.read_order_id("configuration.order")?;
            if order_id.get() <= previous_order {
                return Err(reader.invalid("configuration.order", ASCENDING));
            }
            previous_order = order_id.get();
            let members = reader.read_count("configuration.order.members", 8)?;
            check_items(reader, "configuration.order.members", members)?;
            let mut set = BTreeSet::new();
            let mut previous = 0;
            for _ in 0..members {
                set.insert(read_ascending_member(
                    reader,
                    "configuration.order.member",
                    &mut previous,
                )?);
            }
            configuration.orders.insert(order_id, set);
        }
        let spares = reader.read_count("configuration.spares", 8)?;
        check_items(reader, "configuration.spares", spares)?;
        let mut previous = 0;
        for _ in 0..spares {
            configuration.spares.insert(read_ascending_member(
                reader,
                "configuration.spare",
                &mut previous,
            )?);
        }
        let shards = reader.read_count("configuration.shards", 8)?;
        check_items(reader, "configuration.shards", shards)?;
        configuration.shards.reserve(shards);
        for _ in 0..shards {
            configuration.shards.push(reader.read_order_id("configuration.shard")?);
        }
        let leaving = reader.read_count("configuration.leaving", 8)?;
        check_items(reader, "configuration.leaving", leaving)?;
        let mut previous_order = 0;
        for _ in 0..leaving {
            let order_id = reader.read_order_id("configuration.leaving")?;
            if order_id.get() <= previous_order {
                return Err(reader.invalid("configuration.leaving", ASCENDING));
            }
            previous_order = order_id.get();
            configuration.leaving.insert(order_id);
        }
        Ok(configuration)
    }

    /// Appends the configuration to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u64(self.number);
        dst.put_u64(self.council_term);
        dst.put_u64(self.next_member_id);
        dst.put_u64(self.next_order_id);
        dst.put_u32(self.radiants.len() as u32);
        for (member, address) in &self.radiants {
            dst.put_u64(member.get());
            address.encode(dst);
        }
        dst.put_u32(self.orders.len() as u32);
        for (order_id, members) in &self.orders {
            dst.put_u64(order_id.get());
            dst.put_u32(members.len() as u32);
            for member in members {
                dst.put_u64(member.get());
            }
        }
        dst.put_u32(self.spares.len() as u32);
        for member in &self.spares {
            dst.put_u64(member.get());
        }
        dst.put_u32(self.shards.len() as u32);
        for order_id in &self.shards {
            dst.put_u64(order_id.get());
        }
        dst.put_u32(self.leaving.len() as u32);
        for order_id in &self.leaving {
            dst.put_u64(order_id.get());
        }
    }

    /// The encoded configuration, for records outside frames (a radiant's system file).
    pub fn to_bytes(&self) -> bytes::Bytes {
        let mut dst = BytesMut::new();
        self.encode(&mut dst);
        dst.freeze()
    }

    /// Decodes what `to_bytes` wrote, consuming it exactly.
    pub fn from_bytes(bytes: bytes::Bytes) -> Result<Configuration, DecodeError> {
        let mut reader = Reader::new(bytes, None);
        let configuration = Configuration::decode(&mut reader)?;
        reader.finish()?;
        Ok(configuration)
    }

    /// The order `member` belongs to, if any.
    pub fn order_of(&self, member: MemberId) -> Option<OrderId> {
        self.orders
            .iter()
            .find(|(_, members)| members.contains(&member))
            .map(|(&order_id, _)| order_id)
    }

    /// How many shards `order_id` owns.
    pub fn shard_count_of(&self, order_id: OrderId) -> usize {
        self.shards.iter().filter(|&&owner| owner == order_id).count()
    }

    /// Checks the structure every configuration must have; the reason names what is
    /// wrong. A radiant refuses a configuration that fails it.
    pub fn check(&self) -> Result<(), String> {
        if self.number == 0 {
            return Err("configuration number 0 is not a configuration".into());
        }
        if !(1..=MAX_SHARDS).contains(&self.shards.len()) {
            let count = self.shards.len();
            return Err(format!("{count} shards; a configuration has 1 to {MAX_SHARDS}"));
        }
        let mut seen = BTreeSet::new();
        for (order_id, members) in &self.orders {
            if members.is_empty() {
                return Err(format!("order {order_id} has no members"));
            }
            if order_id.get() >= self.next_order_id {
                return Err(format!("order {order_id} is not below next_order_id"));
            }
            for member in members {
                if !self.radiants.contains_key(member) {
                    return Err(format!("order {order_id} lists unknown radiant {member}"));
                }
                if !seen.insert(*member) {
                    return Err(format!("radiant {member} is in two orders"));
                }
            }
        }
        for member in &self.spares {
            if !self.radiants.contains_key(member) || !seen.insert(*member) {
                return Err(format!("spare {member} is unknown or also in an order"));
            }
        }
        if seen.len() != self.radiants.len() {
            return Err("a radiant is neither in an order nor a spare".into());
        }
        if let Some(member) =
            self.radiants.keys().find(|member| member.get() >= self.next_member_id)
        {
            return Err(format!("radiant {member} is not below next_member_id"));
        }
        if let Some((shard, order_id)) =
            self.shards.iter().enumerate().find(|(_, order_id)| !self.orders.contains_key(order_id))
        {
            return Err(format!("shard {shard} belongs to order {order_id}, which does not exist"));
        }
        if let Some(order_id) =
            self.leaving.iter().find(|order_id| !self.orders.contains_key(order_id))
        {
            return Err(format!("leaving order {order_id} does not exist"));
        }
        if !self.orders.is_empty() && self.leaving.len() >= self.orders.len() {
            return Err("every order is leaving; at least one must stay".into());
        }
        Ok(())
    }

    /// Checks that `next` may follow this configuration directly (its number is this
    /// one's plus one): what the controller keeps true across every change, for the
    /// invariant checks of the core and the simulators. Ids are never reused, the shard
    /// count is fixed, a leaving order gains no shard and stays leaving until it is
    /// removed, and an order is removed only once it was leaving and owned nothing. (Not
    /// the council term: a new controller re-stamps the configuration it inherited with
    /// its own term, so a radiant may hold that one committed and, accepted, the next
    /// one an earlier controller proposed with its older term.)
    pub fn check_successor(&self, next: &Configuration) -> Result<(), String> {
        let (this, that) = (self.number, next.number);
        if that != this + 1 {
            return Err(format!("configuration {that} does not directly follow {this}"));
        }
        if next.next_member_id < self.next_member_id || next.next_order_id < self.next_order_id {
            return Err(format!("configuration {that} lowers next_member_id or next_order_id"));
        }
        if next.shards.len() != self.shards.len() {
            return Err(format!(
                "configuration {that} has {} shards, {this} had {}",
                next.shards.len(),
                self.shards.len()
            ));
        }
        let new_member = next.radiants.keys().find(|member| {
            !self.radiants.contains_key(member) && member.get() < self.next_member_id
        });
        if let Some(member) = new_member {
            return Err(format!("configuration {that} reuses the id of radiant {member}"));
        }
        let new_order = next.orders.keys().find(|order_id| {
            !self.orders.contains_key(order_id) && order_id.get() < self.next_order_id
        });
        if let Some(order_id) = new_order {
            return Err(format!("configuration {that} reuses the id of order {order_id}"));
        }
        for order_id in self.orders.keys().filter(|order_id| !next.orders.contains_key(order_id)) {
            if !self.leaving.contains(order_id) || self.shard_count_of(*order_id) > 0 {
                return Err(format!(
                    "configuration {that} removes order {order_id}, which in {this} was not \
                     leaving or still owned shards"
                ));
            }
        }
        if let Some(order_id) = self
            .leaving
            .iter()
            .find(|order_id| next.orders.contains_key(order_id) && !next.leaving.contains(order_id))
        {
            return Err(format!("configuration {that} stops order {order_id} leaving"));
        }
        let gained = next
            .shards
            .iter()
            .zip(&self.shards)
            .enumerate()
            .find(|(_, (owner, was))| owner != was && next.leaving.contains(owner));
        if let Some((shard, (owner, _))) = gained {
            return Err(format!(
                "configuration {that} gives shard {shard} to leaving order {owner}"
            ));
        }
        Ok(())
    }
}

const ASCENDING: &str = "ids must be in strictly ascending order";

fn read_ascending_member(
    reader: &mut Reader,
    field: &'static str,
    previous: &mut u64,
) -> Result<MemberId, DecodeError> {
    let member = reader.read_member_id(field)?;
    if member.get() <= *previous {
        return Err(reader.invalid(field, ASCENDING));
    }
    *previous = member.get();
    Ok(member)
}

fn check_items(reader: &Reader, field: &'static str, count: usize) -> Result<(), DecodeError> {
    if count > MAX_CONFIGURATION_ITEMS {
        return Err(reader.invalid(field, "more than MAX_CONFIGURATION_ITEMS (65536)"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {

    use super::*;

    /// Two orders of two, one spare, four shards.
    pub(crate) fn sample() -> Configuration {
        let member = |id| MemberId::new(id).unwrap();
        let order_id = |id| OrderId::new(id).unwrap();
        let address = |port: u16| RadiantAddress {
            peer: format!("127.0.0.1:{port}"),
            client: format!("127.0.0.1:{}", port + 1),
            resp: format!("127.0.0.1:{}", port + 2),
        };
        Configuration {
            number: 3,
            council_term: 2,
            next_member_id: 6,
            next_order_id: 3,
            radiants: (1..=5).map(|id| (member(id), address(7400 + id as u16 * 10))).collect(),
            orders: [
                (order_id(1), [member(1), member(2)].into()),
                (order_id(2), [3, 4].map(member).into()),
            ]
            .into(),
            spares: [member(5)].into(),
            shards: vec![order_id(1), order_id(1), order_id(2), order_id(2)],
            leaving: [order_id(2)].into(),
        }
    }

    #[test]
    fn check_successor_takes_the_controllers_steps_and_names_each_broken_rule() {
        let order_id = |id| OrderId::new(id).unwrap();
        let current = sample();
        let next = |change: &dyn Fn(&mut Configuration)| {
            let mut next = Configuration { number: current.number + 1, ..current.clone() };
            change(&mut next);
            next
        };
        // The controller's own steps: a shard off the leaving order, then, once it owns
        // nothing, the order removed with its radiants.
        let moved = next(&|c| c.shards[2] = order_id(1));
        assert_eq!(current.check_successor(&moved), Ok(()));
        let drained = next(&|c| c.shards = vec![order_id(1); 4]);
        let removed = Configuration {
            number: drained.number + 1,
            orders: [(order_id(1), drained.orders[&order_id(1)].clone())].into(),
            radiants: drained
                .radiants
                .iter()
                .filter(|(m, _)| m.get() != 3 && m.get() != 4)
                .map(|(m, a)| (*m, a.clone()))
                .collect(),
            leaving: BTreeSet::new(),
            ..drained.clone()
        };
        assert_eq!(drained.check_successor(&removed), Ok(()));
        let broken = [
            ("does not directly follow", Configuration { number: 9, ..current.clone() }),
            ("removes order 2", next(&|c| c.orders.retain(|g, _| g.get() != 2))),
            ("stops order 2 leaving", next(&|c| c.leaving.clear())),
            ("gives shard 0 to leaving order 2", next(&|c| c.shards[0] = order_id(2))),
        ];
        // A new radiant with an id not taken before is fine.
        let mut joined = next(&|_| {});
        let address = joined.radiants[&MemberId::new(5).unwrap()].clone();
        joined.radiants.insert(MemberId::new(6).unwrap(), address);
        joined.next_member_id = 7;
        assert_eq!(current.check_successor(&joined), Ok(()));
        for (expected, configuration) in &broken {
            let error = current.check_successor(configuration).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        // An order id below next_order_id that the configuration before did not hold.
        let mut before = current.clone();
        before.orders.retain(|g, _| g.get() != 1);
        let reused = Configuration { number: before.number + 1, ..current.clone() };
        let error = before.check_successor(&reused).unwrap_err();
        assert!(error.contains("reuses the id of order 1"), "{error}");
        // And a radiant id.
        let mut before = current.clone();
        before.radiants.remove(&MemberId::new(5).unwrap());
        let reused = Configuration { number: before.number + 1, ..current.clone() };
        let error = before.check_successor(&reused).unwrap_err();
        assert!(error.contains("reuses the id of radiant 5"), "{error}");
    }

    #[test]
    fn a_configuration_round_trips_and_passes_its_check() {
        let configuration = sample();
        configuration.check().unwrap();
        let mut dst = BytesMut::new();
        configuration.encode(&mut dst);
        let mut reader = Reader::new(dst.freeze(), None);
        assert_eq!(Configuration::decode(&mut reader).unwrap(), configuration);
        reader.finish().unwrap();
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let mut dst = BytesMut::new();
        dst.put_slice(&[0; 32]);
        dst.put_u32(u32::MAX);
        let mut reader = Reader::new(dst.freeze(), None);
        assert!(Configuration::decode(&mut reader).is_err());
    }

    #[test]
    fn a_repeated_or_unordered_id_is_refused_so_each_configuration_has_one_encoding() {
        let mut dst = BytesMut::new();
        dst.put_slice(&[0; 32]);
        dst.put_u32(2);
        for _ in 0..2 {
            dst.put_u64(4);
            dst.put_u16(0);
            dst.put_u16(0);
            dst.put_u16(0);
        }
        let mut reader = Reader::new(dst.freeze(), None);
        let error = Configuration::decode(&mut reader).unwrap_err();
        assert!(error.to_string().contains("ascending"), "{error}");
    }

    #[test]
    fn check_refuses_a_shard_count_the_hash_slots_cannot_hold() {
        let mut configuration = sample();
        configuration.shards = vec![OrderId::new(1).unwrap(); MAX_SHARDS + 1];
        assert!(configuration.check().unwrap_err().contains("16384"));
        configuration.shards.clear();
        assert!(configuration.check().is_err());
    }

    #[test]
    fn check_names_a_radiant_in_two_orders() {
        let mut configuration = sample();
        configuration
            .orders
            .get_mut(&OrderId::new(2).unwrap())
            .unwrap()
            .insert(MemberId::new(1).unwrap());
        assert!(configuration.check().unwrap_err().contains("radiant 1 is in two orders"));
    }

    #[test]
    fn check_refuses_an_unknown_leaving_order_and_everyone_leaving() {
        let mut configuration = sample();
        configuration.leaving.insert(OrderId::new(9).unwrap());
        assert!(configuration.check().unwrap_err().contains("leaving order 9"));
        let mut configuration = sample();
        configuration.leaving.insert(OrderId::new(1).unwrap());
        assert!(configuration.check().unwrap_err().contains("at least one must stay"));
    }

    #[test]
    fn every_prefix_of_a_configuration_fails_cleanly() {
        let mut dst = BytesMut::new();
        sample().encode(&mut dst);
        let bytes = dst.freeze();
        for end in 0..bytes.len() {
            let mut reader = Reader::new(bytes.slice(..end), None);
            assert!(Configuration::decode(&mut reader).is_err(), "prefix {end} decoded");
        }
    }
}
