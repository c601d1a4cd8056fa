//! Raft's safety properties, checked across the replicas of every order: the same
//! checks in the order simulator (one static order) and the formation and sharded
//! simulators (orders formed, grown, shrunk and dissolved). Each order is judged by its
//! own id, so a radiant that moves to another order is judged there from then on.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use radiant_protocol::{LogIndex, MemberId, OrderId, Term};

use crate::core::{Order, OrderRole};

/// What the checks remember between ticks.
#[derive(Debug, Default)]
pub struct OrderChecks {
    /// The herald of each (order, term) seen so far.
    heralds_by_term: BTreeMap<(OrderId, Term), MemberId>,
    /// Heralds already checked for completeness, by (order, member, term).
    checked_heralds: BTreeSet<(OrderId, MemberId, Term)>,
    /// Every committed entry seen so far, by order and index.
    committed: BTreeMap<(OrderId, LogIndex), (Term, Bytes)>,
    /// Per radiant (the simulator's index) and order, the commit index checked up to.
    checked_commit: BTreeMap<(usize, OrderId), LogIndex>,
}

impl OrderChecks {
    /// Nothing seen yet.
    pub fn new() -> Self {
        OrderChecks::default()
    }

    /// How many (order, term) pairs had a herald.
    pub fn herald_terms(&self) -> usize {
        self.heralds_by_term.len()
    }

    /// Radiant `index` restarted with commit index `commit` for `order`: its entries
    /// from there on are checked again as it re-learns them.
    pub fn restarted(&mut self, index: usize, order: OrderId, commit: LogIndex) {
        self.checked_commit.insert((index, order), commit);
    }

    /// Entries of `order` known committed, from `after` + 1 on.
    pub fn committed_after(
        &self,
        order: OrderId,
        after: LogIndex,
    ) -> impl Iterator<Item = (LogIndex, &(Term, Bytes))> + '_ {
        let range = (order, after + 1)..=(order, LogIndex::MAX);
        self.committed.range(range).map(|(&(_, index), entry)| (index, entry))
    }

    /// The newest committed entry of `order`.
    pub fn last_committed(&self, order: OrderId) -> Option<(LogIndex, Term)> {
        // From the end of the range: this runs every tick, so no walk over the log.
        let range = (order, 0)..=(order, LogIndex::MAX);
        self.committed.range(range).next_back().map(|(&(_, index), (term, _))| (index, *term))
    }

    /// Runs every check over the live replicas (`index`, replica); `deep` adds log
    /// matching, which compares whole logs pairwise. Returns the first violation, and
    /// calls `newly_committed` with each entry the first time it is seen committed.
    pub fn check(
        &mut self,
        replicas: &[(usize, &Order)],
        deep: bool,
        mut newly_committed: impl FnMut(OrderId, LogIndex, &Bytes),
    ) -> Result<(), String> {
        self.check_election_safety(replicas)?;
        self.check_committed_entries(replicas, &mut newly_committed)?;
        self.check_herald_completeness(replicas)?;
        if deep {
            check_log_matching(replicas)?;
        }
        Ok(())
    }

    /// At most one herald per term of each order, ever.
    fn check_election_safety(&mut self, replicas: &[(usize, &Order)]) -> Result<(), String> {
        for (_, order) in replicas {
            if order.role() != OrderRole::Herald {
                continue;
            }
            let key = (order.order_id(), order.term());
            let recorded = *self.heralds_by_term.entry(key).or_insert(order.me());
            if recorded != order.me() {
                return Err(format!(
                    "election safety: {recorded} and {} both herald of order {} in term {}",
                    order.me(),
                    key.0,
                    key.1
                ));
            }
        }
        Ok(())
    }

    /// State-machine safety: every replica of an order commits the same entry at each
    /// index.
    fn check_committed_entries(
        &mut self,
        replicas: &[(usize, &Order)],
        newly_committed: &mut impl FnMut(OrderId, LogIndex, &Bytes),
    ) -> Result<(), String> {
        for &(radiant, order) in replicas {
            let order_id = order.order_id();
            let checked = self.checked_commit.entry((radiant, order_id)).or_insert(0);
            let from = (*checked).max(order.snapshot_index()) + 1;
            for index in from..=order.commit_index() {
                let Some(entry) = order.log_entry(index) else { continue };
                match self.committed.get(&(order_id, index)) {
                    Some((term, data)) if *term != entry.term || *data != entry.data => {
                        return Err(format!(
                            "state-machine safety: {} of order {order_id} committed ({}, \
                             {index}) where ({term}, {index}) was committed",
                            order.me(),
                            entry.term
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.committed.insert((order_id, index), (entry.term, entry.data.clone()));
                        newly_committed(order_id, index, &entry.data);
                    }
                }
            }
            *checked = (*checked).max(order.commit_index());
        }
        Ok(())
    }

    /// Leader completeness: a herald's log holds every entry of its order committed
    /// before its term.
    fn check_herald_completeness(&mut self, replicas: &[(usize, &Order)]) -> Result<(), String> {
        // Checked when a replica is first seen as herald of a term: every entry known
        // committed by then was committed in an earlier term, so the new herald must
        // hold it. (A herald of a stale term need not hold entries committed later.)
        for (_, order) in replicas {
            let order_id = order.order_id();
            let newly_elected = order.role() == OrderRole::Herald
                && self.checked_heralds.insert((order_id, order.me(), order.term()));
            if !newly_elected {
                continue;
            }
            for (index, (term, _)) in self.committed_after(order_id, order.snapshot_index()) {
                if order.term_at(index) != Some(*term) {
                    let (me, current) = (order.me(), order.term());
                    return Err(format!(
                        "leader completeness: herald {me} of order {order_id} elected in term \
                         {current} lacks committed ({term}, {index})"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Log matching: two replicas of an order with an entry of the same index and term hold
/// the same entry there and the same history before it.
fn check_log_matching(replicas: &[(usize, &Order)]) -> Result<(), String> {
    for (position, (_, a)) in replicas.iter().enumerate() {
        for (_, b) in &replicas[position + 1..] {
            if a.order_id() != b.order_id() {
                continue;
            }
            let low = a.snapshot_index().max(b.snapshot_index()) + 1;
            let high = a.last_index().min(b.last_index());
            let mut matched_above = false;
            for index in (low..=high).rev() {
                let (Some(x), Some(y)) = (a.log_entry(index), b.log_entry(index)) else {
                    continue;
                };
                if x.term == y.term && x.data != y.data {
                    return Err(format!(
                        "log matching: {} and {} of order {} differ at ({}, {index})",
                        a.me(),
                        b.me(),
                        a.order_id(),
                        x.term
                    ));
                }
                if matched_above && x.term != y.term {
                    return Err(format!(
                        "log matching: {} and {} of order {} agree above {index} but not at it",
                        a.me(),
                        b.me(),
                        a.order_id()
                    ));
                }
                matched_above |= x.term == y.term;
            }
        }
    }
    Ok(())
}
