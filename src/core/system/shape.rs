//! How the controller shapes configurations: the first one from the bootstrap radiants,
//! and each next one when a radiant joins or is removed. Pure functions of their
//! inputs, so every controller makes the same choice.
//!
//! Rules (DESIGN §6, §8): ids are assigned in ascending peer-address order and never
//! reused; radiants are partitioned into `max(1, n / order_size)` orders of
//! `order_size`, leftovers going one each to the smallest orders; shards are divided
//! into contiguous, even ranges. A joiner fills an order below `order_size` first,
//! otherwise waits as a spare until `order_size` spares form a new order.

use std::collections::{BTreeMap, BTreeSet};

use radiant_protocol::{Configuration, MemberId, OrderId, RadiantAddress, Term};

/// Configuration 1 for `radiants` (by peer address).
pub fn initial_configuration(
    council_term: Term,
    radiants: &BTreeMap<String, RadiantAddress>,
    order_size: u32,
    shard_count: u32,
) -> Configuration {
    assert!(!radiants.is_empty(), "configuration 1 needs at least one radiant");
    let order_size = order_size.max(1) as usize;
    let mut configuration = Configuration { number: 1, council_term, ..Configuration::default() };
    let members: Vec<MemberId> = radiants
        .iter()
        .zip(1u64..)
        .map(|((_, address), id)| {
            let member = MemberId::new(id).expect("ids start at 1");
            configuration.radiants.insert(member, address.clone());
            member
        })
        .collect();
    let order_count = (members.len() / order_size).max(1);
    let order_ids: Vec<OrderId> =
        (1..=order_count as u64).map(|id| OrderId::new(id).expect("ids start at 1")).collect();
    for (position, member) in members.iter().enumerate() {
        // Full orders first; each leftover goes to the next order in turn, which is
        // always one of the smallest.
        let order = if position < order_count * order_size {
            position / order_size
        } else {
            (position - order_count * order_size) % order_count
        };
        configuration.orders.entry(order_ids[order]).or_default().insert(*member);
    }
    configuration.shards = (0..shard_count as usize)
        .map(|shard| order_ids[shard * order_count / shard_count.max(1) as usize])
        .collect();
    configuration.next_member_id = members.len() as u64 + 1;
    configuration.next_order_id = order_count as u64 + 1;
    configuration
}

/// The next configuration with the radiant at `joiner` added, and its new id.
pub fn with_joiner(
    current: &Configuration,
    council_term: Term,
    joiner: RadiantAddress,
    order_size: u32,
) -> (Configuration, MemberId) {
    let mut next = successor(current, council_term);
    let member = MemberId::new(next.next_member_id).expect("next_member_id starts at 1");
    next.next_member_id += 1;
    next.radiants.insert(member, joiner);
    let order_size = order_size.max(1) as usize;
    let short = next
        .orders
        .iter()
        .filter(|(_, members)| members.len() < order_size)
        .min_by_key(|(order_id, members)| (members.len(), **order_id))
        .map(|(&order_id, _)| order_id);
    match short {
        Some(order_id) => {
            next.orders.entry(order_id).or_default().insert(member);
        }
        None => {
            next.spares.insert(member);
            if next.spares.len() >= order_size {
                let order_id = OrderId::new(next.next_order_id).expect("next_order_id starts at 1");
                next.next_order_id += 1;
                let founders: BTreeSet<MemberId> =
                    next.spares.iter().copied().take(order_size).collect();
                next.spares.retain(|spare| !founders.contains(spare));
                next.orders.insert(order_id, founders);
            }
        }
    }
    (next, member)
}

/// The next configuration without `member`, or why it cannot be removed yet.
pub fn without_member(
    current: &Configuration,
    council_term: Term,
    member: MemberId,
) -> Result<Configuration, String> {
    if !current.radiants.contains_key(&member) {
        return Err(format!("radiant {member} is not in configuration {}", current.number));
    }
    let mut next = successor(current, council_term);
    next.radiants.remove(&member);
    next.spares.remove(&member);
    if let Some(order_id) = next.order_of(member) {
        let members = next.orders.get_mut(&order_id).expect("order_of found it");
        if members.len() == 1 {
            return Err(format!(
                "radiant {member} is the last member of order {order_id}; the order must leave \
                 (`radiant admin leave {order_id}`: its shards move to the other orders first)"
            ));
        }
        members.remove(&member);
    }
    Ok(next)
}

/// The controller's next step on shards, made on its own once every earlier move has
/// finished (`Join` and `Leave` of the shard-controller design): shards off leaving
/// orders and onto orders that have none, balanced by `balance::rebalance`; or, when a
/// leaving order has handed everything over, that order removed with its radiants. One
/// order leaves per configuration. `None` when there is nothing to do.
pub fn shard_step(current: &Configuration, council_term: Term) -> Option<Configuration> {
    let staying: BTreeSet<OrderId> = current
        .orders
        .keys()
        .filter(|order_id| !current.leaving.contains(order_id))
        .copied()
        .collect();
    if staying.is_empty() {
        return None;
    }
    let leaving_holds = current.shards.iter().any(|owner| current.leaving.contains(owner));
    let empty_stays = staying.iter().any(|&order_id| current.shard_count_of(order_id) == 0);
    if leaving_holds || empty_stays {
        let shards = super::balance::rebalance(&current.shards, &staying);
        if shards != current.shards {
            return Some(Configuration { shards, ..successor(current, council_term) });
        }
    }
    let drained =
        current.leaving.iter().copied().find(|&order_id| current.shard_count_of(order_id) == 0)?;
    let mut next = successor(current, council_term);
    next.leaving.remove(&drained);
    for member in next.orders.remove(&drained).unwrap_or_default() {
        next.radiants.remove(&member);
    }
    Some(next)
}

/// The next configuration with `shard` served by `to` (an operator's `Move`).
pub fn with_move(
    current: &Configuration,
    council_term: Term,
    shard: u32,
    to: OrderId,
) -> Result<Configuration, String> {
    if !current.orders.contains_key(&to) || current.leaving.contains(&to) {
        return Err(format!("order {to} does not exist or is leaving; see `radiant status`"));
    }
    let count = current.shards.len();
    let shards =
        super::balance::move_shard(&current.shards, shard as usize, to).ok_or_else(|| {
            format!(
                "shard {shard} does not exist (there are {count}: 0 to {})",
                count.saturating_sub(1)
            )
        })?;
    Ok(Configuration { shards, ..successor(current, council_term) })
}

/// The next configuration with `order_id` leaving (its shards move, then it is removed).
pub fn with_leaving(
    current: &Configuration,
    council_term: Term,
    order_id: OrderId,
) -> Result<Configuration, String> {
    if !current.orders.contains_key(&order_id) {
        return Err(format!("order {order_id} is not in configuration {}", current.number));
    }
    let staying = current.orders.keys().filter(|g| !current.leaving.contains(g) && **g != order_id);
    if staying.count() == 0 {
        return Err(format!("order {order_id} is the last order; the system needs one to serve"));
    }
    let mut next = successor(current, council_term);
    next.leaving.insert(order_id);
    Ok(next)
}

fn successor(current: &Configuration, council_term: Term) -> Configuration {
    Configuration { number: current.number + 1, council_term, ..current.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn radiants(count: u16) -> BTreeMap<String, RadiantAddress> {
        (0..count)
            .map(|n| {
                let address = RadiantAddress {
                    peer: format!("10.0.0.{n}:7400"),
                    client: format!("10.0.0.{n}:7401"),
                    resp: format!("10.0.0.{n}:7402"),
                };
                (address.peer.clone(), address)
            })
            .collect()
    }

    fn sizes(configuration: &Configuration) -> Vec<usize> {
        configuration.orders.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn six_radiants_make_two_orders_of_three_with_all_shards_split_evenly() {
        let configuration = initial_configuration(1, &radiants(6), 3, 64);
        configuration.check().expect("valid");
        assert_eq!(sizes(&configuration), [3, 3]);
        let order_id = |id| OrderId::new(id).expect("nonzero");
        assert_eq!(configuration.shard_count_of(order_id(1)), 32);
        assert_eq!(configuration.shard_count_of(order_id(2)), 32);
    }

    #[test]
    fn leftovers_go_to_the_smallest_orders() {
        assert_eq!(sizes(&initial_configuration(1, &radiants(7), 3, 64)), [4, 3]);
        assert_eq!(sizes(&initial_configuration(1, &radiants(8), 3, 64)), [4, 4]);
        assert_eq!(sizes(&initial_configuration(1, &radiants(2), 3, 64)), [2]);
        assert_eq!(sizes(&initial_configuration(1, &radiants(1), 3, 64)), [1]);
    }

    #[test]
    fn three_joiners_wait_as_spares_then_form_an_order() {
        let mut configuration = initial_configuration(1, &radiants(6), 3, 64);
        for n in 0..3 {
            let joiner = RadiantAddress {
                peer: format!("10.0.1.{n}:1"),
                client: String::new(),
                resp: String::new(),
            };
            let (next, member) = with_joiner(&configuration, 2, joiner, 3);
            next.check().expect("valid");
            assert_eq!(member.get(), 7 + n);
            configuration = next;
        }
        assert_eq!(sizes(&configuration), [3, 3, 3]);
        assert!(configuration.spares.is_empty());
        assert_eq!(configuration.number, 4);
    }

    #[test]
    fn a_joiner_fills_a_short_order_first() {
        let configuration = initial_configuration(1, &radiants(2), 3, 8);
        let joiner = RadiantAddress {
            peer: "10.0.1.1:1".into(),
            client: String::new(),
            resp: String::new(),
        };
        let (next, member) = with_joiner(&configuration, 1, joiner, 3);
        assert_eq!(next.order_of(member), OrderId::new(1));
        assert_eq!(sizes(&next), [3]);
        let removed = without_member(&next, 1, MemberId::new(2).expect("nonzero")).expect("ok");
        removed.check().expect("valid");
        assert_eq!(sizes(&removed), [2]);
    }

    /// Runs the controller's own steps until it has none left; each step either moves
    /// shards (to balance) or removes one drained leaving order.
    fn settle(mut configuration: Configuration) -> Configuration {
        for _ in 0..8 {
            let Some(next) = shard_step(&configuration, 1) else { return configuration };
            next.check().expect("every step is a valid configuration");
            let removed = configuration.orders.len() - next.orders.len();
            let moved = super::super::balance::moved(&configuration.shards, &next.shards);
            assert!(
                (removed == 1 && moved == 0) || (removed == 0 && moved > 0),
                "a step removes one order or moves shards, not both: {removed} {moved}"
            );
            configuration = next;
        }
        panic!("the controller never settled: {configuration:?}");
    }

    proptest::proptest! {
        #[test]
        fn joins_and_leaves_settle_balanced_with_no_leaving_order_left(
            shard_count in 1u32..100,
            events in proptest::collection::vec((proptest::bool::ANY, 0usize..8), 1..12),
        ) {
            let mut configuration = initial_configuration(1, &radiants(3), 3, shard_count);
            for (join, pick) in events {
                if join {
                    for n in 0..3 {
                        let peer = format!("10.1.{}.{n}:1", configuration.number);
                        let joiner =
                            RadiantAddress { peer, client: String::new(), resp: String::new() };
                        configuration = with_joiner(&configuration, 1, joiner, 3).0;
                    }
                } else {
                    let order_ids: Vec<OrderId> = configuration.orders.keys().copied().collect();
                    let order_id = order_ids[pick % order_ids.len()];
                    if let Ok(next) = with_leaving(&configuration, 1, order_id) {
                        configuration = next;
                    }
                }
                configuration = settle(configuration);
                let settled_again = settle(configuration.clone());
                proptest::prop_assert_eq!(&settled_again, &configuration, "settling is idempotent");
                proptest::prop_assert!(configuration.leaving.is_empty());
                let counts: Vec<usize> = configuration
                    .orders
                    .keys()
                    .map(|order_id| configuration.shard_count_of(*order_id))
                    .collect();
                let (low, high) = (counts.iter().min().copied(), counts.iter().max().copied());
                proptest::prop_assert!(
                    high.unwrap_or(0) - low.unwrap_or(0) <= 1,
                    "unbalanced: {:?}",
                    counts
                );
                let mut members = configuration.orders.values().flatten();
                proptest::prop_assert!(members.all(|m| configuration.radiants.contains_key(m)));
            }
        }
    }
}
