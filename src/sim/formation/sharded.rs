//! The sharded simulator (`radiant sim --sharded`): the formation simulator with
//! clients over many keys and an operator who moves shards (`admin move`), dissolves
//! orders (`admin leave`) and, with `--remove-radiants`, removes radiants (`admin
//! remove`), on top of the moves the controller makes itself when joiners
//! form a new order, all while radiants crash and restart, messages are lost, duplicated
//! and delayed, and the network partitions. Checked:
//!
//! - every tick, each shard is served by at most one order, judged by each order's
//!   newest applied shard table (its latest committed state);
//! - at the end, the whole client history is linearizable (so no acknowledged write was
//!   lost or applied twice across moves), and every order has settled: adopted the
//!   final configuration with nothing in flight.

use std::collections::BTreeMap;

use radiant_protocol::{ClientRequest, LogIndex, OrderId};

use super::{Endpoint, Formation, NetworkFaults, SimMessage};
use crate::core::order::InjectedBug;
use crate::core::shards::{ShardState, ShardTable};
use crate::core::{ConnectionId, Input, Radiant, ReplyTo};
use crate::sim::checker::linearizability::{check, Verdict};
use crate::sim::history::Operation;
use crate::sim::workload::{ClientContext, ClientTiming, Send, SimClient};
use radiant_protocol::slots::key_shard;

/// The connection id of the operator's admin requests (their answers are dropped).
pub(super) const OPERATOR: u64 = u64::MAX;

/// Clients and operator of a sharded run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Concurrent clients.
    pub clients: usize,
    /// Operations each client starts in the faulty phase.
    pub operations_per_client: u64,
    /// Keys the clients share (few, so they collide).
    pub keys: u64,
    /// Chance per tick that the operator moves a random shard to a random order.
    pub move_per_million: u64,
    /// Chance per tick that the operator dissolves a random order (when there are two).
    pub leave_per_million: u64,
    /// Chance per tick that the operator removes a random radiant (its order shrinks,
    /// or leaves when it was the last member).
    pub remove_per_million: u64,
    /// A deliberate bug, for the simulator's own tests.
    pub injected_bug: InjectedBug,
}

/// The workload's running state.
#[derive(Debug)]
pub(super) struct Shards {
    clients: Vec<SimClient>,
    pub(super) history: Vec<Operation>,
    clock_ns: u64,
    /// Per order, the newest shard table any member has applied, with its index.
    tables: BTreeMap<OrderId, (LogIndex, ShardTable)>,
    /// Operator requests sent.
    pub(super) moves: u64,
    pub(super) leaves: u64,
    pub(super) removes: u64,
}

impl Shards {
    pub(super) fn new(workload: &Workload, radiants: usize) -> Self {
        let timing = ClientTiming {
            attempt_timeout_ticks: 80,
            deadline_ticks: 2_000,
            first_backoff_ticks: 1,
            max_backoff_ticks: 10,
        };
        let clients = (0..workload.clients)
            .map(|index| {
                let mut client = SimClient::new(
                    index,
                    radiants,
                    workload.operations_per_client,
                    index % radiants,
                    timing,
                );
                client.routed = true;
                client
            })
            .collect();
        Shards {
            clients,
            history: Vec::new(),
            clock_ns: 0,
            tables: BTreeMap::new(),
            moves: 0,
            leaves: 0,
            removes: 0,
        }
    }

    /// Whether every client has finished every operation it was allowed.
    pub(super) fn clients_done(&self) -> bool {
        self.clients.iter().all(|client| !client.busy() && client.remaining == 0)
    }

    /// What the unfinished clients are doing (for a failure report).
    pub(super) fn stuck(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter(|client| client.busy() || client.remaining > 0)
            .map(|client| format!("{client:?}"))
            .collect()
    }

    /// Operations answered and started.
    pub(super) fn operations(&self) -> (usize, usize) {
        let answered = self.history.iter().filter(|op| op.completed()).count();
        (answered, self.history.len())
    }
}

impl Formation {
    /// Clients start, time out, retry and get routed; the operator acts; in the faulty
    /// phase, heralds moving shards crash now and then.
    pub(super) fn tick_clients(
        &mut self,
        faulty: bool,
        faults: &NetworkFaults,
    ) -> Result<(), String> {
        let Some(mut shards) = self.shards.take() else { return Ok(()) };
        let radiants = self.nodes.len();
        let keys = self.options.workload.as_ref().map_or(1, |workload| workload.keys);
        for client in 0..shards.clients.len() {
            shards.clock_ns += 1;
            let Shards { clients, history, clock_ns, .. } = &mut shards;
            let client_state = &mut clients[client];
            let mut sends = Vec::new();
            sends.extend(client_state.on_tick(self.now, *clock_ns, radiants, history));
            *clock_ns += 1;
            sends.extend(client_state.maybe_start(
                self.now,
                *clock_ns,
                keys,
                &mut self.prng,
                history,
            ));
            for send in sends {
                let send = self.routed(client_state, send);
                self.send_request(client, send, faults);
            }
        }
        self.shards = Some(shards);
        if faulty {
            self.crash_during_a_move();
        }
        self.operate()
    }

    /// Now and then, while a shard is in flight, crash the herald of an order moving
    /// it (losing or gaining) or the controller: the moves must finish anyway.
    fn crash_during_a_move(&mut self) {
        if !self.prng.chance(1, 400) {
            return;
        }
        let moving: Vec<usize> = (0..self.nodes.len())
            .filter(|&index| {
                let core = self.nodes[index].core.as_ref();
                let order = core.and_then(Radiant::order);
                let herald_moving = order.is_some_and(|order| {
                    order.role() == crate::core::OrderRole::Herald && order.shards().moving() > 0
                });
                let controller = core
                    .and_then(Radiant::system)
                    .is_some_and(crate::core::system::System::is_controller);
                herald_moving || controller && self.moves_in_flight()
            })
            .collect();
        if !moving.is_empty() {
            let pick = moving[self.prng.range(0, moving.len() as u64) as usize];
            self.crash(pick);
        }
    }

    fn moves_in_flight(&self) -> bool {
        self.nodes.iter().any(|node| {
            let order = node.core.as_ref().and_then(Radiant::order);
            order.is_some_and(|order| order.shards().moving() > 0)
        })
    }

    /// Points `send` at the herald of the order owning its key, as a client with a
    /// fresh shard map would, when the client asked to be routed.
    fn routed(&mut self, client: &mut SimClient, mut send: Send) -> Send {
        let Some(key) = client.take_route() else { return send };
        if let Some(target) = self.route(&key) {
            client.set_target(target);
            send.radiant = target;
        }
        send
    }

    /// A live radiant of the order that owns `key`'s shard in the newest committed
    /// configuration a live radiant holds, its herald when one is known.
    fn route(&mut self, key: &[u8]) -> Option<usize> {
        let configuration = self
            .nodes
            .iter()
            .filter(|node| node.core.is_some())
            .filter_map(|node| node.record.configuration.as_ref())
            .max_by_key(|configuration| configuration.number)?;
        let shard_count = u32::try_from(configuration.shards.len()).ok()?;
        let owner = *configuration.shards.get(key_shard(key, shard_count).0 as usize)?;
        let members: Vec<usize> = (0..self.nodes.len())
            .filter(|&index| {
                let order = self.nodes[index].core.as_ref().and_then(Radiant::order);
                order.is_some_and(|order| order.order_id() == owner)
            })
            .collect();
        let herald = members.iter().copied().max_by_key(|&index| {
            let order = self.nodes[index].core.as_ref().and_then(Radiant::order);
            order.map(|order| (order.role() == crate::core::OrderRole::Herald, order.term()))
        });
        herald.or_else(|| members.first().copied())
    }

    fn send_request(&mut self, client: usize, send: Send, faults: &NetworkFaults) {
        let wire = SimMessage::Request { correlation: send.correlation, request: send.request };
        let (from, to) = (Endpoint::Client(client), Endpoint::Radiant(send.radiant));
        self.network.send(self.now, from, to, wire, faults, &mut self.prng);
    }

    /// A client's request arrives at a radiant.
    pub(super) fn client_input(client: usize, correlation: u64, request: ClientRequest) -> Input {
        let reply_to =
            ReplyTo { connection: ConnectionId(client as u64), correlation_id: correlation };
        Input::Client { reply_to, request }
    }

    /// An answer arrives at a client.
    pub(super) fn on_client_reply(
        &mut self,
        client: usize,
        correlation: u64,
        result: Result<radiant_protocol::ClientResponse, radiant_protocol::ErrorResponse>,
        faults: &NetworkFaults,
    ) {
        let Some(mut shards) = self.shards.take() else { return };
        shards.clock_ns += 1;
        let context =
            ClientContext { now: self.now, clock_ns: shards.clock_ns, radiants: self.nodes.len() };
        let Shards { clients, history, .. } = &mut shards;
        let Some(client_state) = clients.get_mut(client) else {
            self.shards = Some(shards);
            return;
        };
        let resend = client_state.on_reply(context, correlation, result, history);
        if let Some(send) = resend {
            let send = self.routed(client_state, send);
            self.send_request(client, send, faults);
        }
        self.shards = Some(shards);
    }

    /// The operator, now and then: move a random shard to a random order, or dissolve
    /// a random order, through whichever radiant is controller.
    fn operate(&mut self) -> Result<(), String> {
        let Some(workload) = self.options.workload.clone() else { return Ok(()) };
        let controller = (0..self.nodes.len()).find(|&index| {
            let system = self.nodes[index].core.as_ref().and_then(Radiant::system);
            system.is_some_and(crate::core::system::System::is_controller)
        });
        let Some(controller) = controller else { return Ok(()) };
        let Some(configuration) = self.nodes[controller].record.configuration.clone() else {
            return Ok(());
        };
        let order_ids: Vec<OrderId> = configuration
            .orders
            .keys()
            .filter(|order_id| !configuration.leaving.contains(order_id))
            .copied()
            .collect();
        let request = if self.prng.chance(workload.move_per_million, 1_000_000) {
            let shard = self.prng.range(0, configuration.shards.len() as u64) as u32;
            let to = order_ids[self.prng.range(0, order_ids.len() as u64) as usize];
            ClientRequest::MoveShard { shard, to }
        } else if order_ids.len() >= 2 && self.prng.chance(workload.leave_per_million, 1_000_000) {
            let order_id = order_ids[self.prng.range(0, order_ids.len() as u64) as usize];
            ClientRequest::LeaveOrder { order_id }
        } else if order_ids.len() >= 2 && self.prng.chance(workload.remove_per_million, 1_000_000) {
            let members: Vec<_> = configuration.radiants.keys().copied().collect();
            let member = members[self.prng.range(0, members.len() as u64) as usize];
            ClientRequest::RemoveRadiant { member }
        } else {
            return Ok(());
        };
        if let Some(shards) = self.shards.as_mut() {
            match request {
                ClientRequest::MoveShard { .. } => shards.moves += 1,
                ClientRequest::RemoveRadiant { .. } => shards.removes += 1,
                _ => shards.leaves += 1,
            }
        }
        let input = Formation::client_input(OPERATOR as usize, 0, request);
        self.step(controller, input)
    }

    /// Each shard is served by at most one order, judged by each order's newest applied
    /// shard table.
    pub(super) fn check_shards(&mut self) -> Result<(), String> {
        let Some(shards) = self.shards.as_mut() else { return Ok(()) };
        for node in &self.nodes {
            let Some(order) = node.core.as_ref().and_then(Radiant::order) else { continue };
            let newest = shards.tables.get(&order.order_id()).map_or(0, |(index, _)| *index);
            if order.applied_index() > newest {
                let table = order.shards().clone();
                shards.tables.insert(order.order_id(), (order.applied_index(), table));
            }
        }
        let shard_count = self.options.shard_count as usize;
        for shard in 0..shard_count {
            let serving: Vec<OrderId> = shards
                .tables
                .iter()
                .filter(|(_, (_, table))| *table.state(shard as u32) == ShardState::Serving)
                .map(|(order_id, _)| *order_id)
                .collect();
            if serving.len() > 1 {
                return Err(format!(
                    "tick {}: shard {shard} is served by orders {serving:?} at once",
                    self.now
                ));
            }
        }
        Ok(())
    }

    /// Every order of configuration `number` has adopted it and has nothing in flight.
    pub(super) fn shards_settled(&self, number: u64) -> bool {
        let Some(configuration) = self.configurations.get(&number) else { return false };
        self.nodes.iter().enumerate().all(|(index, node)| {
            let order = node.core.as_ref().and_then(Radiant::order);
            let member = configuration.radiants.values().any(|a| a.peer == super::address(index));
            let listed = member
                && order.is_some_and(|order| configuration.orders.contains_key(&order.order_id()));
            !listed
                || order.is_some_and(|order| {
                    order.shards().adopted() == number && order.shards().moving() == 0
                })
        })
    }

    /// The whole history must be linearizable.
    pub(super) fn check_history(&self) -> Result<(), String> {
        let Some(shards) = &self.shards else { return Ok(()) };
        match check(&shards.history, 5_000_000) {
            Verdict::Linearizable { .. } => Ok(()),
            other => Err(format!("the client history is not linearizable: {other:?}")),
        }
    }
}
