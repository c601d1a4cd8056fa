//! Where shards go when orders join or leave (DESIGN §8, the classic shard controller's
//! `Join`/`Leave`/`Move`): balanced to within one shard, deterministic, and moving as few
//! shards as possible. Pure functions; the controller calls them to make the next
//! configuration once shards can move between orders (live migration).

use std::collections::{BTreeMap, BTreeSet};

use radiant_protocol::OrderId;

/// The owners after balancing `shards` (owner by shard number) over `orders`.
///
/// Each order's target is `n / k` or one more; the extra shards go to the orders that
/// already hold the most (ties to the lower order id), which is what keeps the most
/// shards in place. Orders above target give up their highest-numbered shards, shards of
/// orders not in `orders` are freed, and the freed shards, lowest first, fill the orders
/// below target, lowest order first.
pub fn rebalance(shards: &[OrderId], orders: &BTreeSet<OrderId>) -> Vec<OrderId> {
    assert!(!orders.is_empty(), "shards need at least one order to live on");
    let mut held: BTreeMap<OrderId, Vec<usize>> =
        orders.iter().map(|&order_id| (order_id, Vec::new())).collect();
    let mut freed = Vec::new();
    for (shard, owner) in shards.iter().enumerate() {
        match held.get_mut(owner) {
            Some(list) => list.push(shard),
            None => freed.push(shard),
        }
    }
    let targets = targets(shards.len(), &held);
    for (order_id, list) in &mut held {
        let target = targets[order_id];
        while list.len() > target {
            freed.push(list.pop().expect("longer than its target"));
        }
    }
    freed.sort_unstable();
    let mut freed = freed.into_iter();
    let mut owners = shards.to_vec();
    for (order_id, list) in &held {
        for shard in list {
            owners[*shard] = *order_id;
        }
        for _ in list.len()..targets[order_id] {
            let shard = freed.next().expect("freed shards fill every gap exactly");
            owners[shard] = *order_id;
        }
    }
    debug_assert!(freed.next().is_none(), "every freed shard found a home");
    owners
}

/// `n / k` for every order, one more for the `n % k` orders holding the most.
fn targets(shard_count: usize, held: &BTreeMap<OrderId, Vec<usize>>) -> BTreeMap<OrderId, usize> {
    let orders = held.len();
    let (base, extra) = (shard_count / orders, shard_count % orders);
    let mut by_holding: Vec<(&OrderId, usize)> =
        held.iter().map(|(order_id, list)| (order_id, list.len())).collect();
    by_holding.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    by_holding
        .into_iter()
        .enumerate()
        .map(|(rank, (order_id, _))| (*order_id, base + usize::from(rank < extra)))
        .collect()
}

/// The owners after moving `shard` to `order_id` (an operator's `Move`; balance is the
/// operator's choice then). `None` when the shard does not exist.
pub fn move_shard(shards: &[OrderId], shard: usize, order_id: OrderId) -> Option<Vec<OrderId>> {
    let mut owners = shards.to_vec();
    *owners.get_mut(shard)? = order_id;
    Some(owners)
}

/// How many shards change owner between two assignments.
pub fn moved(before: &[OrderId], after: &[OrderId]) -> usize {
    before.iter().zip(after).filter(|(a, b)| a != b).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn order_id(id: u64) -> OrderId {
        OrderId::new(id).expect("nonzero")
    }

    /// The fewest moves any balanced assignment needs: each order keeps at most its
    /// holding capped at `base`, and `extra` of them may keep one more.
    fn fewest_moves(shards: &[OrderId], orders: &BTreeSet<OrderId>) -> usize {
        let (base, extra) = (shards.len() / orders.len(), shards.len() % orders.len());
        let holding: Vec<usize> = orders
            .iter()
            .map(|order| shards.iter().filter(|owner| *owner == order).count())
            .collect();
        let kept: usize = holding.iter().map(|&count| count.min(base)).sum::<usize>()
            + holding.iter().filter(|&&count| count > base).count().min(extra);
        shards.len() - kept
    }

    fn check(before: &[OrderId], orders: &BTreeSet<OrderId>) -> Vec<OrderId> {
        let after = rebalance(before, orders);
        assert_eq!(after, rebalance(before, orders), "deterministic");
        let counts: Vec<usize> = orders
            .iter()
            .map(|order| after.iter().filter(|owner| *owner == order).count())
            .collect();
        let (low, high) = (counts.iter().min().copied(), counts.iter().max().copied());
        assert!(high.unwrap_or(0) - low.unwrap_or(0) <= 1, "unbalanced: {counts:?}");
        assert!(after.iter().all(|owner| orders.contains(owner)), "a shard on a departed order");
        assert_eq!(moved(before, &after), fewest_moves(before, orders), "not minimal");
        after
    }

    #[test]
    fn a_third_order_takes_a_third_and_nothing_else_moves() {
        let before: Vec<OrderId> =
            (0..64).map(|shard| order_id(1 + (shard >= 32) as u64)).collect();
        let after = check(&before, &[1, 2, 3].map(order_id).into());
        assert_eq!(moved(&before, &after), 21);
        assert_eq!(after.iter().filter(|owner| **owner == order_id(3)).count(), 21);
    }

    #[test]
    fn a_move_changes_one_shard() {
        let before = vec![order_id(1); 4];
        let after = move_shard(&before, 2, order_id(2)).expect("shard exists");
        assert_eq!(moved(&before, &after), 1);
        assert!(move_shard(&before, 9, order_id(2)).is_none());
    }

    proptest! {
        #[test]
        fn random_joins_and_leaves_stay_balanced_deterministic_and_minimal(
            shard_count in 1usize..200,
            steps in proptest::collection::vec((any::<bool>(), 1u64..12), 1..30),
        ) {
            let mut orders: BTreeSet<OrderId> = [order_id(1)].into();
            let mut shards = vec![order_id(1); shard_count];
            for (join, id) in steps {
                let mut next = orders.clone();
                if join {
                    next.insert(order_id(id));
                } else if next.len() > 1 {
                    next.remove(&order_id(id));
                }
                shards = check(&shards, &next);
                orders = next;
            }
        }
    }
}
