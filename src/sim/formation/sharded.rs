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

use super::Formation;
use crate::core::order::InjectedBug;
use crate::core::shards::{ShardState, ShardTable};
use crate::core::{ConnectionId, Input, Radiant, ReplyTo};
use crate::sim::checker::linearizability::{check, Verdict};
use crate::sim::driver::{address, ADMIN_CLIENT};
use crate::sim::history::Operation;
use crate::sim::network::{Endpoint, SimMessage};
use crate::sim::workload::{ClientContext, ClientTiming, Send, SimClient};
use radiant_protocol::slots::key_shard;

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
    /// Clients start, time out, retry and get routed; the operator acts.
    pub(super) fn tick_clients(&mut self) {
        let Some(mut shards) = self.shards.take() else { return };
        let radiants = self.driver.radiants.len();
        let keys = self.options.workload.as_ref().map_or(1, |workload| workload.keys);
        for client in 0..shards.clients.len() {
            let Shards { clients, history, .. } = &mut shards;
            let client_state = &mut clients[client];
            let driver = &mut self.driver;
            let mut sends = Vec::new();
            driver.clock_ns += 1;
            sends.extend(client_state.on_tick(driver.now, driver.clock_ns, radiants, history));
            driver.clock_ns += 1;
            sends.extend(client_state.maybe_start(
                driver.now,
                driver.clock_ns,
                keys,
                &mut driver.prng,
                history,
            ));
            for send in sends {
                let send = self.routed(client_state, send);
                self.send_request(client, send);
            }
        }
        self.shards = Some(shards);
        self.operate();
    }

    /// Now and then, while a shard is in flight, crash the herald of an order moving
    /// it (losing or gaining) or the controller: the moves must finish anyway.
    pub(super) fn crash_during_a_move(&mut self) {
        if !self.driver.prng.chance(1, 400) {
            return;
        }
        let moving: Vec<usize> = (0..self.driver.radiants.len())
            .filter(|&index| {
                let core = self.driver.radiants[index].core.as_ref();
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
            let pick = moving[self.driver.prng.range(0, moving.len() as u64) as usize];
            self.driver.crash(pick);
        }
    }

    fn moves_in_flight(&self) -> bool {
        self.driver.radiants.iter().any(|node| {
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
            .driver
            .radiants
            .iter()
            .filter(|node| node.core.is_some())
            .filter_map(|node| node.record.configuration.as_ref())
            .max_by_key(|configuration| configuration.number)?;
        let shard_count = u32::try_from(configuration.shards.len()).ok()?;
        let owner = *configuration.shards.get(key_shard(key, shard_count).0 as usize)?;
        let members: Vec<usize> = (0..self.driver.radiants.len())
            .filter(|&index| {
                let order = self.driver.radiants[index].core.as_ref().and_then(Radiant::order);
                order.is_some_and(|order| order.order_id() == owner)
            })
            .collect();
        let herald = members.iter().copied().max_by_key(|&index| {
            let order = self.driver.radiants[index].core.as_ref().and_then(Radiant::order);
            order.map(|order| (order.role() == crate::core::OrderRole::Herald, order.term()))
        });
        herald.or_else(|| members.first().copied())
    }

    fn send_request(&mut self, client: usize, send: Send) {
        let wire = SimMessage::Request { correlation: send.correlation, request: send.request };
        self.driver.send(Endpoint::Client(client), Endpoint::Radiant(send.radiant), wire);
    }

    /// An answer arrives at a client (the operator's are dropped).
    pub(super) fn on_client_reply(
        &mut self,
        client: usize,
        correlation: u64,
        result: Result<radiant_protocol::ClientResponse, radiant_protocol::ErrorResponse>,
    ) {
        let Some(mut shards) = self.shards.take() else { return };
        let driver = &self.driver;
        let radiants = driver.radiants.len();
        let context = ClientContext { now: driver.now, clock_ns: driver.clock_ns, radiants };
        let Shards { clients, history, .. } = &mut shards;
        if let Some(client_state) = clients.get_mut(client) {
            let resend = client_state.on_reply(context, correlation, result, history);
            if let Some(send) = resend {
                let send = self.routed(client_state, send);
                self.send_request(client, send);
            }
        }
        self.shards = Some(shards);
    }

    /// The operator, now and then: move a random shard to a random order, or dissolve
    /// a random order, through whichever radiant is controller.
    fn operate(&mut self) {
        let Some(workload) = self.options.workload.clone() else { return };
        let controller = (0..self.driver.radiants.len()).find(|&index| {
            let system = self.driver.radiants[index].core.as_ref().and_then(Radiant::system);
            system.is_some_and(crate::core::system::System::is_controller)
        });
        let Some(controller) = controller else { return };
        let Some(configuration) = self.driver.radiants[controller].record.configuration.clone()
        else {
            return;
        };
        let order_ids: Vec<OrderId> = configuration
            .orders
            .keys()
            .filter(|order_id| !configuration.leaving.contains(order_id))
            .copied()
            .collect();
        let request = if self.driver.prng.chance(workload.move_per_million, 1_000_000) {
            let shard = self.driver.prng.range(0, configuration.shards.len() as u64) as u32;
            let to = order_ids[self.driver.prng.range(0, order_ids.len() as u64) as usize];
            ClientRequest::MoveShard { shard, to }
        } else if order_ids.len() >= 2
            && self.driver.prng.chance(workload.leave_per_million, 1_000_000)
        {
            let order_id = order_ids[self.driver.prng.range(0, order_ids.len() as u64) as usize];
            ClientRequest::LeaveOrder { order_id }
        } else if order_ids.len() >= 2
            && self.driver.prng.chance(workload.remove_per_million, 1_000_000)
        {
            let members: Vec<_> = configuration.radiants.keys().copied().collect();
            let member = members[self.driver.prng.range(0, members.len() as u64) as usize];
            ClientRequest::RemoveRadiant { member }
        } else {
            return;
        };
        if let Some(shards) = self.shards.as_mut() {
            match request {
                ClientRequest::MoveShard { .. } => shards.moves += 1,
                ClientRequest::RemoveRadiant { .. } => shards.removes += 1,
                _ => shards.leaves += 1,
            }
        }
        let reply_to = ReplyTo { connection: ConnectionId(ADMIN_CLIENT as u64), correlation_id: 0 };
        self.driver.step(controller, Input::Client { reply_to, request });
    }

    /// Each shard is served by at most one order, judged by each order's newest applied
    /// shard table.
    pub(super) fn check_shards(&mut self) -> Result<(), String> {
        let Some(shards) = self.shards.as_mut() else { return Ok(()) };
        for node in &self.driver.radiants {
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
                    self.driver.now
                ));
            }
        }
        Ok(())
    }

    /// Every order of configuration `number` has adopted it and has nothing in flight.
    pub(super) fn shards_settled(&self, number: u64) -> bool {
        let Some(configuration) = self.configurations.get(&number) else { return false };
        let driver = &self.driver;
        driver.radiants.iter().enumerate().all(|(index, node)| {
            let order = node.core.as_ref().and_then(Radiant::order);
            let member = configuration.radiants.values().any(|a| a.peer == address(index));
            let listed = member
                && order.is_some_and(|order| configuration.orders.contains_key(&order.order_id()));
            // A radiant that refused its damaged disk never adopts anything.
            !listed
                || driver.refused(index)
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
