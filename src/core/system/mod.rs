//! System formation and the council (DESIGN §6, §8): how a radiant that knows one
//! neighbour finds the others, how brand-new radiants elect the first controller and
//! commit configuration 1, how newcomers join an established system, and how the
//! orders' heralds elect the controller and commit its configurations.
//!
//! Files: `bootstrap.rs` (beacons, the first controller, configuration 1, joins),
//! `council.rs` (council votes and configurations through the order's log, the
//! controller), `shape.rs` (how configurations are built), `record.rs` (what survives
//! a restart). Like all of `core`, it does no I/O, reads no clock and starts no thread:
//! messages go out as `Action::SendSystem`, the record as `Action::PersistSystem`.

mod admin;
pub mod balance;
mod bootstrap;
mod council;
mod migration;
pub mod record;
pub mod shape;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use radiant_protocol::{
    ClusterId, Configuration, MemberId, OrderId, RadiantAddress, SystemBody, SystemMessage, Term,
};

pub use record::SystemRecord;

use super::order::membership::member_address;
use super::order::{Membership, Order};
use super::prng::Prng;
use super::{Action, Actions, ReplyTo, Tick};

/// A radiant's own state (seed `radiant.md`): `RESET` while it starts, `UNASSOCIATED`
/// until it belongs to a system, `ASSOCIATED` once it does, `LOCKED` while its order is
/// locked, `ERROR` when it must not take part (another cluster refused it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RadiantState {
    /// Starting; no tick seen yet.
    Reset,
    /// Looking for its system (beacons, bootstrap election, join).
    Unassociated,
    /// Part of a committed configuration.
    Associated,
    /// Associated, and its order is locked (a membership change in flight).
    Locked,
    /// Refused by the system it tried to reach; needs the operator.
    Error,
}

impl RadiantState {
    /// The upper-case name used in status output and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            RadiantState::Reset => "RESET",
            RadiantState::Unassociated => "UNASSOCIATED",
            RadiantState::Associated => "ASSOCIATED",
            RadiantState::Locked => "LOCKED",
            RadiantState::Error => "ERROR",
        }
    }
}

/// Settings from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemOptions {
    /// This radiant's peer address, as others reach it.
    pub peer_address: String,
    /// This radiant's client address.
    pub client_address: String,
    /// This radiant's RESP address; empty when it serves no RESP.
    pub resp_address: String,
    /// The one neighbour it beacons (none for a radiant others point at).
    pub neighbor: Option<String>,
    /// Radiants that form a brand-new system.
    pub bootstrap_expect: u32,
    /// Target members per order.
    pub order_size: u32,
    /// Shards of the key space.
    pub shard_count: u32,
    /// Upper bound of the random wait before the first beacon, in ticks.
    pub bootstrap_backoff_ticks: u64,
    /// Ticks between beacons.
    pub beacon_interval_ticks: u64,
    /// The orders' election timeout; council timeouts are a multiple of it.
    pub election_timeout_ticks: u64,
    /// Ticks between a controller's heartbeats.
    pub heartbeat_interval_ticks: u64,
}

/// The controller as this radiant last heard from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerView {
    /// Its council term.
    pub term: Term,
    /// Its order (none for the bootstrap controller).
    pub order_id: Option<OrderId>,
    /// The controller radiant (none for the bootstrap controller).
    pub member: Option<MemberId>,
    /// Its peer address.
    pub address: String,
    /// When it was last heard.
    pub heard_at: Tick,
}

/// An order as its herald last reported it to the controller (`CouncilAppendAck`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderReport {
    /// When the controller heard it.
    pub heard_at: Tick,
    /// The herald that reported.
    pub herald: MemberId,
    /// The order's state in the seed's spelling.
    pub state: String,
    /// Why it is not `ACTIVE` (empty when it is).
    pub reason: String,
    /// Each member with the ticks since the herald last heard from it.
    pub members: Vec<(MemberId, u64)>,
}

/// Who holds a configuration, as the controller counts: an order, or before
/// configuration 1 a bootstrap radiant (by address).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Holder {
    Order(OrderId),
    Radiant(String),
}

/// The controller role: held by the bootstrap winner until configuration 1 commits,
/// then by the herald the council elects.
#[derive(Clone, Debug)]
struct Controller {
    term: Term,
    latest: Configuration,
    committed: Option<Configuration>,
    held: BTreeMap<Holder, u64>,
    heralds: BTreeMap<OrderId, MemberId>,
    pending_joins: BTreeMap<String, MemberId>,
    /// Admin requests answered once the configuration number given commits.
    pending_admin: Vec<(ReplyTo, u64)>,
    /// Each order's last report: the configuration it has adopted and how many of its
    /// shards are still moving.
    shard_reports: BTreeMap<OrderId, (u64, u32)>,
    /// Each order's state and members' liveness as its herald last reported them.
    order_reports: BTreeMap<OrderId, OrderReport>,
    /// Where each order's herald answered from: heartbeats go there too, so a herald the
    /// newest configuration removed still hears it (and hands over).
    herald_addresses: BTreeMap<OrderId, String>,
    heartbeat_elapsed: u64,
}

impl Controller {
    /// Counts one tick; true every `interval` ticks, and at once after a change (which
    /// sets `heartbeat_elapsed` to `u64::MAX`).
    fn heartbeat_due(&mut self, interval: u64) -> bool {
        self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
        if self.heartbeat_elapsed < interval.max(1) {
            return false;
        }
        self.heartbeat_elapsed = 0;
        true
    }
}

/// A radiant's system-level state machine.
#[derive(Debug)]
pub struct System {
    options: SystemOptions,
    prng: Prng,
    now: Tick,
    record: SystemRecord,
    state: RadiantState,
    error: Option<String>,
    // Beacon phase.
    known: BTreeMap<String, RadiantAddress>,
    /// Radiants this one heard from directly (reachable).
    heard: BTreeSet<String>,
    /// When the neighbour last beaconed us: while it does, it is in charge and we do
    /// not beacon it (breaks two-node cycles); if it stops (a restart lost its table),
    /// we beacon it again.
    neighbor_beaconed_at: Option<Tick>,
    next_beacon: Tick,
    gossip_cursor: usize,
    temporary_ids: BTreeMap<String, u64>,
    join_via: Option<String>,
    // Bootstrap election (before configuration 1).
    bootstrap_deadline: Option<Tick>,
    bootstrap_votes: Option<BTreeSet<String>>,
    // The council (after configuration 1).
    controller_view: Option<ControllerView>,
    heralds: BTreeMap<OrderId, MemberId>,
    council_deadline: Tick,
    candidacy: Option<(Term, BTreeSet<OrderId>)>,
    /// The council term this radiant proposed its own order's candidacy for.
    standing: Option<Term>,
    controller: Option<Controller>,
    vote_replies: BTreeMap<Term, (OrderId, String)>,
    ack_to: Option<String>,
    proposal_pending: bool,
    loopback: VecDeque<SystemMessage>,
    /// A herald's shard migration work (volatile).
    migration: migration::MigrationWork,
    /// The committed configurations this radiant has seen since it started (the
    /// newest `CONFIGURATION_HISTORY`), for `QueryConfiguration`.
    history: VecDeque<Configuration>,
    /// The numbers of the held, accepted and proposed configurations
    /// `check_invariants` last checked whole.
    checked_configurations: std::cell::Cell<[u64; 3]>,
}

/// Committed configurations a radiant keeps in memory for `QueryConfiguration`.
pub const CONFIGURATION_HISTORY: usize = 64;

/// What `radiant status` shows of the system, from this radiant's view.
#[derive(Clone, Debug)]
pub struct SystemStatus<'a> {
    /// This radiant's state.
    pub state: RadiantState,
    /// Why it is in `ERROR`, if it is.
    pub error: Option<&'a str>,
    /// The cluster id (unset while forming).
    pub cluster: ClusterId,
    /// Its permanent id.
    pub member: Option<MemberId>,
    /// The newest committed configuration it knows.
    pub configuration: Option<&'a Configuration>,
    /// The newest configuration its order holds (may be ahead of `configuration`).
    pub accepted: Option<&'a Configuration>,
    /// The controller it last heard.
    pub controller: Option<&'a ControllerView>,
    /// Each order's herald, as the controller reports them.
    pub heralds: &'a BTreeMap<OrderId, MemberId>,
    /// Whether this radiant is the controller.
    pub is_controller: bool,
    /// As the controller: every order's last report (empty elsewhere).
    pub order_reports: Option<&'a BTreeMap<OrderId, OrderReport>>,
    /// The system's clock, to age `order_reports` and the controller view.
    pub now: Tick,
    /// Radiants it knows by address (beacon phase).
    pub known: usize,
    /// `bootstrap_expect`.
    pub bootstrap_expect: u32,
}

impl System {
    /// A radiant resuming from `record` (the default record for a brand-new one).
    pub fn new(options: SystemOptions, record: SystemRecord, seed: u64) -> Self {
        let mut prng = Prng::new(seed ^ 0x5157_u64.rotate_left(40));
        let backoff = prng.range(0, options.bootstrap_backoff_ticks.max(1));
        let mut known = BTreeMap::new();
        let me = RadiantAddress {
            peer: options.peer_address.clone(),
            client: options.client_address.clone(),
            resp: options.resp_address.clone(),
        };
        known.insert(options.peer_address.clone(), me);
        let mut system = System {
            prng,
            now: Tick(0),
            state: RadiantState::Reset,
            error: None,
            known,
            heard: BTreeSet::new(),
            neighbor_beaconed_at: None,
            next_beacon: Tick(backoff),
            gossip_cursor: 0,
            temporary_ids: BTreeMap::new(),
            join_via: None,
            bootstrap_deadline: None,
            bootstrap_votes: None,
            controller_view: None,
            heralds: BTreeMap::new(),
            council_deadline: Tick(0),
            candidacy: None,
            standing: None,
            controller: None,
            vote_replies: BTreeMap::new(),
            ack_to: None,
            proposal_pending: false,
            loopback: VecDeque::new(),
            migration: migration::MigrationWork::default(),
            history: VecDeque::new(),
            checked_configurations: std::cell::Cell::new([0; 3]),
            record,
            options,
        };
        let held = [system.record.configuration.clone(), system.record.accepted.clone()];
        for configuration in held.iter().flatten() {
            system.learn_addresses(configuration);
        }
        system.history.extend(system.record.configuration.clone());
        system.council_deadline = Tick(system.council_timeout());
        system
    }

    /// The persistent record (for the driver at startup and for tests).
    pub fn record(&self) -> &SystemRecord {
        &self.record
    }

    /// This radiant's permanent id, once associated.
    pub fn member(&self) -> Option<MemberId> {
        self.record.member
    }

    /// The cluster id (unset while forming).
    pub fn cluster(&self) -> ClusterId {
        self.record.cluster
    }

    /// Each order's herald, as the controller last reported them.
    pub fn heralds(&self) -> &BTreeMap<OrderId, MemberId> {
        &self.heralds
    }

    /// Whether this radiant is the controller now.
    pub fn is_controller(&self) -> bool {
        self.controller.as_ref().is_some_and(|controller| controller.committed.is_some())
    }

    /// The controller's last report from `order_id`: the configuration it has adopted and
    /// its shards in flight (only on the controller).
    pub fn shard_report(&self, order_id: OrderId) -> Option<(u64, u32)> {
        self.controller.as_ref()?.shard_reports.get(&order_id).copied()
    }

    /// The controller's council term, when this radiant is the controller.
    pub fn controller_term(&self) -> Option<Term> {
        self.controller.as_ref().filter(|c| c.committed.is_some()).map(|c| c.term)
    }

    /// What this radiant's system state keeps true after every step, like
    /// `Order::check_invariants` (the simulators check it after every step too, so a
    /// violation is a found bug). Checking a whole configuration walks every radiant and
    /// shard, so that part runs in debug builds (tests and the simulator's test sweeps).
    pub fn check_invariants(&self) {
        let record = &self.record;
        let committed = record.configuration.as_ref().map_or(0, |c| c.number);
        assert!(
            committed <= record.committed,
            "the committed configuration {committed} is newer than the committed number {}",
            record.committed
        );
        if record.is_associated() {
            assert!(record.cluster.is_set(), "an associated radiant has no cluster id");
        }
        if let Some(controller) = &self.controller {
            let controller_committed = controller.committed.as_ref().map_or(0, |c| c.number);
            assert!(
                controller_committed <= controller.latest.number,
                "the controller committed configuration {controller_committed} but proposes \
                 only {}",
                controller.latest.number
            );
            assert!(
                controller.term >= controller.latest.council_term,
                "controller of council term {} proposes configuration {} of term {}",
                controller.term,
                controller.latest.number,
                controller.latest.council_term
            );
        }
        if let (Some(committed), Some(accepted), Some(member)) =
            (&record.configuration, &record.accepted, record.member)
        {
            // A radiant that is still listed holds, as accepted, at least what committed.
            if committed.radiants.contains_key(&member) {
                assert!(
                    accepted.number >= committed.number,
                    "radiant {member} accepted configuration {} below its committed {}",
                    accepted.number,
                    committed.number
                );
            }
        }
        if cfg!(debug_assertions) {
            let held = [record.configuration.as_ref(), record.accepted.as_ref()];
            let proposed = self.controller.as_ref().map(|controller| &controller.latest);
            let all = [held[0], held[1], proposed];
            let numbers = all.map(|configuration| configuration.map_or(0, |c| c.number));
            // Configurations are replaced whole, with a new number: check each one once.
            if self.checked_configurations.replace(numbers) != numbers {
                self.check_successions();
                for configuration in all.into_iter().flatten() {
                    if let Err(reason) = configuration.check() {
                        panic!("configuration {} is malformed: {reason}", configuration.number);
                    }
                }
            }
        }
    }

    /// Where this radiant holds a configuration and the one directly after it (committed
    /// and accepted; the controller's committed and its proposal), the second follows the
    /// first by the controller's rules (`Configuration::check_successor`).
    fn check_successions(&self) {
        let record = &self.record;
        let mut pairs = vec![(record.configuration.as_ref(), record.accepted.as_ref())];
        if let Some(controller) = &self.controller {
            pairs.push((controller.committed.as_ref(), Some(&controller.latest)));
        }
        for (earlier, later) in pairs {
            let (Some(earlier), Some(later)) = (earlier, later) else { continue };
            if later.number == earlier.number + 1 {
                if let Err(reason) = earlier.check_successor(later) {
                    panic!(
                        "configuration {} cannot follow {}: {reason}",
                        later.number, earlier.number
                    );
                }
            }
        }
    }

    /// A view for `radiant status`.
    pub fn status(&self, order: Option<&Order>) -> SystemStatus<'_> {
        // LOCKED while the order changes membership or receives a snapshot (not while it
        // merely elects a herald: that is the order's state, not the radiant's).
        let locked = order.is_some_and(|order| {
            !order.membership().learners.is_empty()
                || matches!(
                    order.state(),
                    super::OrderState::Locked(
                        radiant_protocol::OrderStateOp::MembershipUpdate
                            | radiant_protocol::OrderStateOp::Replicating
                    )
                )
        });
        let state = match self.state {
            RadiantState::Associated if locked => RadiantState::Locked,
            state => state,
        };
        SystemStatus {
            state,
            error: self.error.as_deref(),
            cluster: self.record.cluster,
            member: self.record.member,
            configuration: self.record.configuration.as_ref(),
            accepted: self.record.accepted.as_ref(),
            controller: self.controller_view.as_ref(),
            heralds: &self.heralds,
            is_controller: self.is_controller(),
            order_reports: self.controller.as_ref().map(|controller| &controller.order_reports),
            now: self.now,
            known: self.known.len(),
            bootstrap_expect: self.options.bootstrap_expect,
        }
    }

    /// The order's council state, encoded for a snapshot (the record's council fields).
    pub fn council_snapshot(&self) -> bytes::Bytes {
        SystemRecord {
            configuration: self.record.configuration.clone(),
            committed: self.record.committed,
            accepted: self.record.accepted.clone(),
            council_term: self.record.council_term,
            council_vote: self.record.council_vote,
            ..SystemRecord::default()
        }
        .encode()
    }

    /// A snapshot from the herald carried its order's council state: council entries it
    /// covers were never applied here, so take whatever is newer than the record.
    pub fn on_snapshot_council(&mut self, council: &bytes::Bytes, actions: &mut Actions) {
        let Ok(carried) = SystemRecord::decode(council) else {
            tracing::error!("system: a snapshot's council section does not decode; ignored");
            return;
        };
        if carried.council_term > self.record.council_term {
            self.record.council_term = carried.council_term;
            self.record.council_vote = carried.council_vote;
        } else if carried.council_term == self.record.council_term
            && self.record.council_vote.is_none()
        {
            self.record.council_vote = carried.council_vote;
        }
        if let Some(accepted) = carried.accepted {
            if self.record.accepted.as_ref().is_none_or(|held| newer(&accepted, held)) {
                self.record.accepted = Some(accepted);
            }
        }
        self.persist(actions);
        if let Some(configuration) = carried.configuration {
            let cluster = self.record.cluster;
            self.adopt_committed(cluster, configuration, actions);
        }
    }

    /// Whether another system refused this radiant: it serves nobody until the operator
    /// acts (the reason is in `status`).
    pub fn is_refused(&self) -> bool {
        self.state == RadiantState::Error
    }

    /// Why a radiant with no order (or one its system refused) is not ready, for the
    /// error reply and `radiant status`.
    pub fn unavailable_reason(&self) -> String {
        match self.state {
            RadiantState::Error => format!(
                "not ready: radiant is in ERROR: {}",
                self.error.as_deref().unwrap_or("refused by its system")
            ),
            RadiantState::Associated | RadiantState::Locked => format!(
                "not ready: radiant {} is a spare (in no order yet); send requests to a radiant \
                 of an order",
                MemberId::to_wire(self.record.member)
            ),
            RadiantState::Reset | RadiantState::Unassociated => format!(
                "not ready: radiant is UNASSOCIATED: forming a system ({} of bootstrap_expect = \
                 {} radiants known); retry shortly",
                self.known.len(),
                self.options.bootstrap_expect
            ),
        }
    }

    // ===== inputs =====

    /// One tick passed.
    pub fn on_tick(&mut self, now: Tick, order: Option<&mut Order>, actions: &mut Actions) {
        self.now = now;
        if self.state == RadiantState::Reset {
            self.state = if self.record.is_associated() {
                RadiantState::Associated
            } else {
                RadiantState::Unassociated
            };
        }
        if self.state == RadiantState::Error {
            return;
        }
        if self.record.is_associated() {
            self.tick_council(order, actions);
            self.beacon_neighbor_slowly(actions);
        } else {
            self.tick_forming(actions);
        }
    }

    /// A system message arrived.
    pub fn on_message(
        &mut self,
        now: Tick,
        message: SystemMessage,
        order: Option<&mut Order>,
        actions: &mut Actions,
    ) {
        self.now = now;
        if self.refuses(&message, actions) {
            return;
        }
        let SystemMessage { cluster, from, body } = message;
        match body {
            SystemBody::BeaconHandshake(handshake) => {
                self.on_handshake(cluster, from, handshake, actions)
            }
            SystemBody::BeaconResponse(response) => self.on_beacon_response(from, response),
            SystemBody::BeaconRefused { reason } => self.on_refused(cluster, from, reason),
            SystemBody::JoinSystem(join) => self.on_join(join, actions),
            SystemBody::JoinAccepted(accepted) => self.on_join_accepted(cluster, accepted, actions),
            SystemBody::CouncilRequestVote(request) => match request.candidate_order {
                None => self.on_bootstrap_request_vote(from, request, actions),
                Some(_) => self.on_council_request_vote(from, request, order, actions),
            },
            SystemBody::CouncilVote(vote) => match vote.order_id {
                None => self.on_bootstrap_vote(from, vote, actions),
                Some(_) => self.on_council_vote(vote, order, actions),
            },
            SystemBody::CouncilAppend(append) => match append.controller_order {
                None => self.on_bootstrap_append(cluster, from, *append, actions),
                Some(_) => self.on_council_append(cluster, from, *append, order, actions),
            },
            SystemBody::CouncilAppendAck(ack) => self.on_append_ack(from, ack, actions),
            SystemBody::ShardChunk(chunk) => {
                self.on_shard_chunk(cluster, from, *chunk, order, actions)
            }
            SystemBody::ShardChunkAck(ack) => self.on_shard_chunk_ack(cluster, ack, order),
        }
    }

    /// Work after every step: council entries the order applied, messages this radiant
    /// sent itself. Returns the messages to itself for the caller to feed back.
    pub fn after_step(&mut self, order: Option<&mut Order>, actions: &mut Actions) {
        if let Some(order) = order {
            self.apply_council_entries(order, actions);
            self.answer_installs(order, actions);
        }
    }

    /// Messages this radiant addressed to itself (the controller is also a herald).
    pub fn take_loopback(&mut self) -> Option<SystemMessage> {
        self.loopback.pop_front()
    }

    // ===== helpers shared by the files of this module =====

    /// Refuses a message from another cluster once this radiant's system is committed.
    fn refuses(&mut self, message: &SystemMessage, actions: &mut Actions) -> bool {
        let mine = self.record.cluster;
        let theirs = message.cluster;
        if self.record.committed == 0 || !theirs.is_set() || theirs == mine {
            return false;
        }
        if matches!(message.body, SystemBody::BeaconRefused { .. }) {
            return false;
        }
        let peer = &message.from;
        tracing::warn!(%peer, %theirs, %mine, "system: refused a radiant of another cluster");
        let reason = format!(
            "radiant {} belongs to cluster {mine}, and {} presented cluster {theirs}: two systems \
             never merge. If {} should join this system, stop it, empty its data_dir and start \
             it again",
            self.options.peer_address, message.from, message.from
        );
        self.send(&message.from.clone(), SystemBody::BeaconRefused { reason }, actions);
        true
    }

    fn on_refused(&mut self, theirs: ClusterId, from: String, reason: String) {
        // Only the radiant the operator pointed us at can tell us we are in the wrong
        // system; anyone else refusing us is itself the stranger (or lying).
        if self.options.neighbor.as_deref() != Some(from.as_str()) {
            let why = "system: refused by a radiant that is not our neighbour; ignored";
            tracing::warn!(peer = %from, %reason, "{why}");
            return;
        }
        // Not proof of another system: a forming radiant has only a provisional id to be
        // refused for (its bootstrap lost to another: it joins that one), and a refusal
        // from a radiant of this radiant's own cluster answers what it sent before it
        // joined. Taking either for ERROR left a radiant that had joined, herald of its
        // order, refusing every client for good (simulator seed 20096, sharded).
        if self.record.committed == 0 || theirs == self.record.cluster {
            let why = "system: a refusal of a provisional cluster id or a stale one; ignored";
            tracing::info!(peer = %from, %reason, "{why}");
            return;
        }
        tracing::error!(peer = %from, %reason, "system: refused; this radiant stops taking part");
        self.state = RadiantState::Error;
        self.error = Some(reason);
    }

    /// Sends `body` to the radiant at `to` (to itself through the loopback queue).
    fn send(&mut self, to: &str, body: SystemBody, actions: &mut Actions) {
        // A cluster id is claimed only once committed: a forming radiant may hold one
        // from a bootstrap controller that lost to another, and must not be refused
        // for it. The bootstrap controller's configuration carries the id it proposes.
        let claims = self.record.committed > 0 || matches!(body, SystemBody::CouncilAppend(_));
        let message = SystemMessage {
            cluster: if claims { self.record.cluster } else { ClusterId::UNSET },
            from: self.options.peer_address.clone(),
            body,
        };
        if to == self.options.peer_address {
            self.loopback.push_back(message);
        } else {
            actions.push(Action::SendSystem { to: to.to_string(), message });
        }
    }

    /// The controller's heartbeat to each of `peers`.
    fn send_to_all(
        &mut self,
        peers: &[String],
        append: &radiant_protocol::CouncilAppend,
        actions: &mut Actions,
    ) {
        for peer in peers {
            self.send(peer, SystemBody::CouncilAppend(Box::new(append.clone())), actions);
        }
    }

    fn persist(&self, actions: &mut Actions) {
        actions.push(Action::PersistSystem(Box::new(self.record.clone())));
    }

    fn learn_addresses(&mut self, configuration: &Configuration) {
        for address in configuration.radiants.values() {
            self.known.insert(address.peer.clone(), address.clone());
        }
    }

    /// A council or bootstrap election timeout: random in `[4E, 8E)` ticks, longer
    /// than an order's herald failover so a council does not churn while an order elects.
    fn council_timeout(&mut self) -> u64 {
        let base = self.options.election_timeout_ticks.max(1) * 4;
        self.now.0 + self.prng.range(base, base * 2)
    }

    /// This radiant's entry in configurations.
    fn my_address(&self) -> RadiantAddress {
        RadiantAddress {
            peer: self.options.peer_address.clone(),
            client: self.options.client_address.clone(),
            resp: self.options.resp_address.clone(),
        }
    }

    /// Adopts `configuration` (committed) as this radiant's view; associates this
    /// radiant when it lists it. Persists the record.
    fn adopt_committed(
        &mut self,
        cluster: ClusterId,
        configuration: Configuration,
        actions: &mut Actions,
    ) {
        if configuration.check().is_err() || configuration.number <= self.record.committed {
            return;
        }
        let me = configuration
            .radiants
            .iter()
            .find(|(_, address)| address.peer == self.options.peer_address)
            .map(|(&member, _)| member);
        let Some(me) = me else {
            // Removed from the system (or never in it): keep the view, take no part.
            if self.record.member.is_some() {
                self.remember(&configuration);
                self.record.configuration = Some(configuration.clone());
                self.record.committed = configuration.number;
                self.persist(actions);
            }
            return;
        };
        self.learn_addresses(&configuration);
        if self.record.council_term == 0 {
            self.record.council_term = configuration.council_term;
        }
        if self.record.accepted.as_ref().is_none_or(|held| newer(&configuration, held)) {
            self.record.accepted = Some(configuration.clone());
        }
        self.record.cluster = cluster;
        self.record.member = Some(me);
        self.record.committed = configuration.number;
        if self.record.order_id.is_none() {
            if let Some(order_id) = configuration.order_of(me) {
                self.record.order_id = Some(order_id);
                self.record.initial_membership = initial_membership(&configuration, order_id);
            }
        }
        self.remember(&configuration);
        self.record.configuration = Some(configuration);
        if self.state != RadiantState::Error {
            self.state = RadiantState::Associated;
        }
        self.join_via = None;
        self.bootstrap_votes = None;
        self.persist(actions);
    }
}

impl System {
    /// Keeps a newly committed configuration for `QueryConfiguration`.
    fn remember(&mut self, configuration: &Configuration) {
        if self.history.back().is_some_and(|newest| newest.number >= configuration.number) {
            return;
        }
        if self.history.len() == CONFIGURATION_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(configuration.clone());
    }

    /// Committed configuration `number` (0: the newest this radiant knows), or why not.
    pub fn query(&self, number: u64) -> Result<Configuration, radiant_protocol::ErrorResponse> {
        let found = match number {
            0 => self.history.back(),
            _ => self.history.iter().find(|configuration| configuration.number == number),
        };
        found.cloned().ok_or_else(|| {
            let reason = match (self.history.front(), self.history.back()) {
                (Some(oldest), Some(newest)) if number < oldest.number => format!(
                    "configuration {number} is older than this radiant keeps (it keeps {} to \
                     {}, the last {CONFIGURATION_HISTORY} it saw committed since it started)",
                    oldest.number, newest.number
                ),
                (Some(_), Some(newest)) => format!(
                    "configuration {number} is not committed yet as far as this radiant knows \
                     (its newest is {}); ask the controller (`radiant status` names it)",
                    newest.number
                ),
                _ => "this radiant holds no committed configuration yet (the system is \
                      forming)"
                    .to_string(),
            };
            radiant_protocol::ErrorResponse::BadRequest { reason }
        })
    }
}

/// Whether `a` is newer than `b`: a higher number, or the same number from a later term.
fn newer(a: &Configuration, b: &Configuration) -> bool {
    (a.number, a.council_term) > (b.number, b.council_term)
}

/// The membership a radiant starts its replica of `order_id` with: the order's target
/// members, all voters. A radiant added to a running order learns the order's real
/// membership from the herald's log; until its own promotion its vote counts nowhere.
pub fn initial_membership(configuration: &Configuration, order_id: OrderId) -> Membership {
    let members = configuration.orders.get(&order_id).into_iter().flatten();
    Membership::with_voters(members.filter_map(|member| {
        let address = configuration.radiants.get(member)?;
        Some((*member, member_address(&address.peer, &address.client)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options of a test radiant at 10.0.0.1:`port` (shared by this module's tests).
    pub(crate) fn options(port: u16) -> SystemOptions {
        SystemOptions {
            peer_address: format!("10.0.0.1:{port}"),
            client_address: format!("10.0.0.1:{}", port + 1),
            resp_address: format!("10.0.0.1:{}", port + 2),
            neighbor: None,
            bootstrap_expect: 1,
            order_size: 3,
            shard_count: 4,
            bootstrap_backoff_ticks: 1,
            beacon_interval_ticks: 1,
            election_timeout_ticks: 5,
            heartbeat_interval_ticks: 1,
        }
    }

    #[test]
    fn a_snapshot_carries_the_council_state_a_lagging_member_never_applied() {
        let peers: BTreeMap<String, RadiantAddress> = [7400u16, 7410]
            .iter()
            .map(|port| {
                let address = RadiantAddress {
                    peer: format!("10.0.0.1:{port}"),
                    client: format!("10.0.0.1:{}", port + 1),
                    resp: String::new(),
                };
                (address.peer.clone(), address)
            })
            .collect();
        let first = shape::initial_configuration(1, &peers, 3, 4);
        let second = Configuration { number: 2, council_term: 6, ..first.clone() };
        let order_id = OrderId::new(1).expect("nonzero");
        let base = SystemRecord {
            cluster: ClusterId(9),
            member: MemberId::new(1),
            committed: 1,
            configuration: Some(first.clone()),
            accepted: Some(first.clone()),
            council_term: 1,
            order_id: Some(order_id),
            ..SystemRecord::default()
        };
        let herald_record = SystemRecord {
            committed: 2,
            configuration: Some(second.clone()),
            accepted: Some(second.clone()),
            council_term: 6,
            council_vote: Some(order_id),
            ..base.clone()
        };
        let herald = System::new(options(7400), herald_record, 1);
        let mut lagging =
            System::new(options(7410), SystemRecord { member: MemberId::new(2), ..base }, 2);
        let mut actions = Actions::new();
        lagging.on_snapshot_council(&herald.council_snapshot(), &mut actions);
        let record = lagging.record();
        assert_eq!((record.council_term, record.council_vote), (6, Some(order_id)));
        assert_eq!(record.accepted.as_ref().map(|c| c.number), Some(2));
        assert_eq!(record.committed, 2);
        assert_eq!(record.member, MemberId::new(2), "identity is not taken from the snapshot");
        assert!(actions.drain().any(|action| matches!(action, Action::PersistSystem(_))));
    }
}
