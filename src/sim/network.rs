//! The simulated network: every message between radiants, and between clients and
//! radiants, waits in one queue ordered by delivery tick. Faults come from the seeded
//! PRNG: loss, duplication, delay (hence reordering) and partitions that cut links.

use std::collections::{BTreeMap, BTreeSet};

use radiant_protocol::{ClientRequest, ClientResponse, ErrorResponse, PeerMessage, SystemMessage};

use crate::core::prng::Prng;

/// A message on the simulated network, in every mode. An order run carries no
/// `System` message (its one static order has no council).
#[derive(Clone, Debug)]
pub enum SimMessage {
    /// Between radiants of an order.
    Peer(PeerMessage),
    /// Between radiants of a system (formation, council, migration).
    System(SystemMessage),
    /// A client request.
    Request {
        /// Echoed in the reply.
        correlation: u64,
        /// The request.
        request: ClientRequest,
    },
    /// A radiant's answer.
    Reply {
        /// The request's correlation id.
        correlation: u64,
        /// The answer.
        result: Result<ClientResponse, ErrorResponse>,
    },
}

/// A network endpoint: a radiant (by index) or a client (by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// Radiant number `n` (0-based).
    Radiant(usize),
    /// Client number `n` (0-based).
    Client(usize),
}

/// Fault knobs, in parts per million per message unless named otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkFaults {
    /// Messages lost.
    pub loss_per_million: u64,
    /// Messages delivered twice.
    pub duplicate_per_million: u64,
    /// Shortest delay, ticks.
    pub delay_min_ticks: u64,
    /// Longest delay, ticks.
    pub delay_max_ticks: u64,
}

impl NetworkFaults {
    /// A perfect network with one tick of latency.
    pub fn none() -> Self {
        NetworkFaults {
            loss_per_million: 0,
            duplicate_per_million: 0,
            delay_min_ticks: 1,
            delay_max_ticks: 1,
        }
    }
}

/// The in-flight messages and the current partition.
#[derive(Debug)]
pub struct Network<M> {
    queue: BTreeMap<(u64, u64), (Endpoint, Endpoint, M)>,
    sequence: u64,
    /// Directed links that currently drop everything.
    cut: BTreeSet<(Endpoint, Endpoint)>,
    /// Messages dropped so far (faults and cuts).
    pub dropped: u64,
    /// Messages delivered so far.
    pub delivered: u64,
}

impl<M: Clone> Network<M> {
    /// An empty network.
    pub fn new() -> Self {
        Network {
            queue: BTreeMap::new(),
            sequence: 0,
            cut: BTreeSet::new(),
            dropped: 0,
            delivered: 0,
        }
    }

    /// Queues `message` from `from` to `to`, applying the fault knobs.
    pub fn send(
        &mut self,
        now: u64,
        from: Endpoint,
        to: Endpoint,
        message: M,
        faults: &NetworkFaults,
        prng: &mut Prng,
    ) {
        if self.cut.contains(&(from, to)) || prng.chance(faults.loss_per_million, 1_000_000) {
            self.dropped += 1;
            return;
        }
        let copies = if prng.chance(faults.duplicate_per_million, 1_000_000) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = prng.range(faults.delay_min_ticks, faults.delay_max_ticks + 1).max(1);
            self.sequence += 1;
            self.queue.insert((now + delay, self.sequence), (from, to, message.clone()));
        }
    }

    /// Removes and returns the next message due at or before `now`.
    pub fn next_due(&mut self, now: u64) -> Option<(Endpoint, Endpoint, M)> {
        let (&key, _) = self.queue.first_key_value()?;
        if key.0 > now {
            return None;
        }
        let (from, to, message) = self.queue.remove(&key).expect("first key exists");
        // A link cut while the message was in flight loses it too.
        if self.cut.contains(&(from, to)) {
            self.dropped += 1;
            return self.next_due(now);
        }
        self.delivered += 1;
        Some((from, to, message))
    }

    /// Cuts both directions between every member of `side` and everyone else among `all`.
    pub fn partition(&mut self, side: &[Endpoint], all: &[Endpoint]) {
        for a in side {
            for b in all.iter().filter(|b| !side.contains(b)) {
                self.cut.insert((*a, *b));
                self.cut.insert((*b, *a));
            }
        }
    }

    /// Cuts one direction only (asymmetric partition).
    pub fn cut_one_way(&mut self, from: Endpoint, to: Endpoint) {
        self.cut.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Messages still in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

impl<M: Clone> Default for Network<M> {
    fn default() -> Self {
        Network::new()
    }
}
