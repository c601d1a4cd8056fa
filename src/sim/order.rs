//! The order simulator: the radiants of one static order, their disks (the daemon's own
//! storage code on `MemoryFileSystem`) and state machines, a seeded network and clients,
//! all in one thread. Every random choice comes from one PRNG seeded by `--seed`, so a
//! failing seed replays exactly.
//!
//! A run has two phases (TigerBeetle's VOPR): a safety phase with faults (loss,
//! duplication, delay, partitions, power loss with torn and out-of-order writes, bit
//! flips and I/O errors on the disks), checked
//! every tick for election safety, log matching, leader completeness, state-machine
//! safety and durability of committed entries; then a liveness phase on a healed
//! network in which every client must finish its operations. The client history is
//! then checked for linearizability.

use std::collections::VecDeque;

use radiant_protocol::{
    ClientRequest, ClientResponse, Command, ErrorResponse, Limits, LogIndex, MemberId, OrderId,
    PeerMessage, ReadConsistency, Term,
};

use super::disk::{SimStorage, StartFailure};
use super::history::Operation;
use super::invariants::OrderChecks;
use super::network::{Endpoint, Network, NetworkFaults, SimMessage};
use super::radiant::{self, SimRadiant, SimWorld};
use super::workload::{ClientContext, ClientTiming, Send, SimClient};
use crate::core::order::membership::member_address;
use crate::core::order::{InjectedBug, Membership, OrderOptions, RecoveredOrder};
use crate::core::prng::Prng;
use crate::core::shards::ShardTable;
use crate::core::{Actions, ConnectionId, Input, OrderRole, Radiant, ReplyTo};
use crate::storage::memory_file_system::DiskFaults;

/// Fault rates for the safety phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFaults {
    /// Network loss, duplication and delay.
    pub network: NetworkFaults,
    /// Chance per tick that a live radiant crashes.
    pub crash_per_million: u64,
    /// Ticks a crashed radiant stays down (range).
    pub down_ticks: (u64, u64),
    /// Chance per tick that a partition starts (when none is active).
    pub partition_per_million: u64,
    /// Ticks a partition lasts (range).
    pub partition_ticks: (u64, u64),
    /// Longest fsync, ticks.
    pub fsync_max_ticks: u64,
    /// The disks' faults. Bit flips hit only the first radiant's disk, so at most one
    /// radiant refuses to start and its order keeps a majority.
    pub disk: DiskFaults,
}

/// Everything a run depends on. The same options give the same run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// The seed of every random choice.
    pub seed: u64,
    /// Radiants simulated.
    pub radiants: usize,
    /// The first `voters` radiants form the order; the rest wait to be added.
    pub voters: usize,
    /// Ticks of the safety phase.
    pub ticks: u64,
    /// Most ticks of the liveness phase.
    pub liveness_ticks: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations each client issues in the safety phase.
    pub operations_per_client: u64,
    /// Operations each client issues in the liveness phase (all must complete).
    pub liveness_operations_per_client: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Faults of the safety phase.
    pub faults: SimFaults,
    /// Snapshot interval.
    pub snapshot_interval_entries: u64,
    /// Snapshot when the in-memory log holds this many bytes of entry data.
    pub snapshot_interval_bytes: u64,
    /// Entries kept past a snapshot for lagging members.
    pub catch_up_entries: u64,
    /// Election timeout, ticks.
    pub election_timeout_ticks: u64,
    /// Heartbeat interval, ticks.
    pub heartbeat_interval_ticks: u64,
    /// Largest append batch, bytes.
    pub replication_max_bytes: u64,
    /// A deliberate bug to switch on (only in `cargo test` builds).
    pub injected_bug: InjectedBug,
    /// Chance per tick of the safety phase that an admin adds a spare radiant or removes
    /// a voter (never below `voters`), through a random radiant.
    pub membership_changes_per_million: u64,
}

impl SimOptions {
    /// Swarm testing: fault rates and sizes drawn from the seed, so different seeds
    /// stress different mixes (TigerBeetle's `options_swarm`).
    pub fn swarm(seed: u64, radiants: usize, ticks: u64) -> SimOptions {
        let mut prng = Prng::new(seed ^ 0x5EED_5A7A_0F5A);
        let delay_max = prng.range(1, 8);
        let mut options = SimOptions {
            seed,
            radiants,
            voters: radiants,
            ticks,
            liveness_ticks: 4_000,
            clients: prng.range(2, 7) as usize,
            operations_per_client: prng.range(20, 80),
            liveness_operations_per_client: 3,
            keys: prng.range(1, 6),
            faults: SimFaults {
                network: NetworkFaults {
                    loss_per_million: prng.range(0, 100_000),
                    duplicate_per_million: prng.range(0, 50_000),
                    delay_min_ticks: 1,
                    delay_max_ticks: delay_max,
                },
                crash_per_million: prng.range(0, 3_000),
                down_ticks: (10, prng.range(20, 200)),
                partition_per_million: prng.range(0, 10_000),
                partition_ticks: (10, prng.range(20, 300)),
                fsync_max_ticks: prng.range(0, 4),
                disk: DiskFaults::default(),
            },
            snapshot_interval_entries: prng.range(20, 200),
            snapshot_interval_bytes: u64::MAX / 2,
            catch_up_entries: prng.range(0, 30),
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 2,
            replication_max_bytes: prng.range(64, 4096),
            injected_bug: InjectedBug::None,
            membership_changes_per_million: 0,
        };
        // Drawn last, so every other knob of a seed is what it was before this existed.
        if prng.chance(1, 2) {
            // One spare radiant joins as a learner, is promoted, and later a voter leaves.
            options.radiants += 1;
            options.membership_changes_per_million = prng.range(500, 5_000);
        }
        options.faults.disk = swarm_disk_faults(&mut prng);
        // Its own stream, so every knob drawn above is what it was before this existed:
        // half the seeds also snapshot by the bytes of the log held in memory.
        let mut bytes = Prng::new(seed ^ 0x5eed_b7e5);
        if bytes.chance(1, 2) {
            options.snapshot_interval_bytes = bytes.range(200, 4_000);
        }
        options
    }

    /// Sizes the workload: `clients` clients sharing `operations` in all, with phases
    /// long enough for them (about ten ticks a client's operation takes).
    pub fn with_workload(mut self, clients: Option<usize>, operations: Option<u64>) -> Self {
        if let Some(clients) = clients {
            self.clients = clients.max(1);
        }
        if let Some(operations) = operations {
            self.operations_per_client = operations.div_ceil(self.clients as u64);
            self.ticks = self.ticks.max(self.operations_per_client * 10);
            self.liveness_ticks = self.liveness_ticks.max(self.operations_per_client * 10);
        }
        self
    }

    /// The command that replays this run.
    pub fn reproduce_command(&self) -> String {
        format!(
            "radiant sim --seed {} --radiants {} --ticks {}",
            self.seed, self.voters, self.ticks
        )
    }
}

/// Disk faults for a swarm seed: every crash tears and reorders unsynced writes; about
/// half the seeds also get I/O errors, and about half bit flips.
pub fn swarm_disk_faults(prng: &mut Prng) -> DiskFaults {
    let errors = prng.chance(1, 2);
    DiskFaults {
        write_error_per_million: if errors { prng.range(0, 300) as u32 } else { 0 },
        sync_error_per_million: if errors { prng.range(0, 300) as u32 } else { 0 },
        bit_flip_per_million: if prng.chance(1, 2) { prng.range(0, 200_000) as u32 } else { 0 },
        out_of_order_per_million: prng.range(0, 500_000) as u32,
        capacity_bytes: 0,
    }
}

/// What a run found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Ticks run, both phases.
    pub ticks: u64,
    /// Operations in the history.
    pub operations: usize,
    /// Of which completed with an answer.
    pub completed: usize,
    /// Heralds elected (distinct terms with a herald).
    pub heralds: usize,
    /// Crashes injected (including radiants stopped by a disk error).
    pub crashes: u64,
    /// Radiants that refused to start because their disk was damaged (bit flips).
    pub refusals: u64,
    /// Highest committed index.
    pub committed: LogIndex,
    /// Snapshots installed on lagging members.
    pub snapshots_installed: u64,
    /// Membership changes committed (learner added, promoted, voter removed).
    pub membership_changes: u64,
    /// Messages delivered and dropped.
    pub messages: (u64, u64),
}

/// Why a run failed. Always carries the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimFailure {
    /// A safety invariant broke.
    Invariant {
        /// The seed.
        seed: u64,
        /// The tick.
        tick: u64,
        /// What broke.
        message: String,
    },
    /// Clients could not finish on a healed network.
    Liveness {
        /// The seed.
        seed: u64,
        /// What was still pending.
        message: String,
    },
    /// The history is not linearizable (or the checker could not decide).
    History {
        /// The seed.
        seed: u64,
        /// The checker's verdict.
        message: String,
    },
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimFailure::Invariant { seed, tick, message } => {
                write!(f, "seed {seed}: invariant broken at tick {tick}: {message}")
            }
            SimFailure::Liveness { seed, message } => {
                write!(f, "seed {seed}: no progress on a healed network: {message}")
            }
            SimFailure::History { seed, message } => {
                write!(f, "seed {seed}: history not linearizable: {message}")
            }
        }
    }
}

/// Radiant `id` (member `id`, at index `id - 1`) before its first start. Bit flips hit
/// only the first radiant's disk.
fn fresh_radiant(id: u64, seed: u64, mut faults: DiskFaults) -> SimRadiant {
    if id != 1 {
        faults.bit_flip_per_million = 0;
    }
    SimRadiant::new(SimStorage::new(seed ^ id.rotate_left(48), faults), 8)
}

/// The member radiant `index` is (static orders number their members from 1).
fn member_at(index: usize) -> MemberId {
    MemberId::new(index as u64 + 1).expect("nonzero")
}

/// The simulator.
pub struct Simulator {
    options: SimOptions,
    prng: Prng,
    now: u64,
    clock_ns: u64,
    radiants: Vec<SimRadiant>,
    network: Network<SimMessage>,
    clients: Vec<SimClient>,
    history: Vec<Operation>,
    initial_membership: Membership,
    actions: Actions,
    followups: VecDeque<(usize, Input)>,
    // Checker state.
    order_checks: OrderChecks,
    /// The membership after every committed change, and the one before the last change.
    committed_membership: Membership,
    previous_membership: Membership,
    membership_changes: u64,
    /// Members an admin request asked to remove (never added back).
    ever_removed: std::collections::BTreeSet<MemberId>,
    crashes: u64,
    refusals: u64,
    partition_until: Option<u64>,
    snapshots_installed: u64,
    faults_on: bool,
    liveness_start_ns: Option<u64>,
    next_admin_correlation: u64,
    admin_replies: Vec<(u64, Result<ClientResponse, ErrorResponse>)>,
    failure: Option<SimFailure>,
}

impl Simulator {
    /// A simulator with every radiant up and empty.
    pub fn new(options: SimOptions) -> Simulator {
        assert!(options.radiants >= 1, "a simulation needs a radiant");
        assert!(
            options.voters >= 1 && options.voters <= options.radiants,
            "voters must be 1..=radiants"
        );
        let initial_membership = Membership::with_voters((1..=options.voters as u64).map(|id| {
            let member = MemberId::new(id).expect("ids start at 1");
            (member, member_address(&format!("sim-{id}"), &format!("sim-{id}")))
        }));
        let initial_membership_for_checks = initial_membership.clone();
        let mut prng = Prng::new(options.seed);
        let radiants = (1..=options.radiants as u64)
            .map(|id| fresh_radiant(id, options.seed, options.faults.disk))
            .collect();
        let election = options.election_timeout_ticks;
        let timing = ClientTiming {
            attempt_timeout_ticks: 4 * election,
            deadline_ticks: 30 * election,
            first_backoff_ticks: 1,
            max_backoff_ticks: (election / 2).max(1),
        };
        let clients = (0..options.clients)
            .map(|index| {
                let mut client = SimClient::new(
                    index,
                    options.radiants,
                    options.operations_per_client,
                    prng.range(0, options.radiants as u64) as usize,
                    timing,
                );
                client.lease_reads = prng.chance(1, 2);
                client.follower_reads = prng.chance(1, 2);
                client
            })
            .collect();
        let mut simulator = Simulator {
            prng,
            now: 0,
            clock_ns: 0,
            radiants,
            network: Network::new(),
            clients,
            history: Vec::new(),
            initial_membership,
            actions: Actions::new(),
            followups: VecDeque::new(),
            order_checks: OrderChecks::new(),
            ever_removed: std::collections::BTreeSet::new(),
            committed_membership: initial_membership_for_checks.clone(),
            previous_membership: initial_membership_for_checks,
            membership_changes: 0,
            crashes: 0,
            refusals: 0,
            partition_until: None,
            snapshots_installed: 0,
            faults_on: true,
            liveness_start_ns: None,
            next_admin_correlation: 0,
            admin_replies: Vec::new(),
            failure: None,
            options,
        };
        for index in 0..simulator.radiants.len() {
            simulator.start(index);
        }
        simulator
    }

    /// Runs both phases and checks the history.
    pub fn run(mut self) -> Result<(SimReport, Vec<Operation>), SimFailure> {
        for _ in 0..self.options.ticks {
            self.step_tick();
            if let Some(failure) = self.failure.take() {
                return Err(failure);
            }
        }
        self.enter_liveness_phase();
        let deadline = self.now + self.options.liveness_ticks;
        while self.now < deadline && !self.all_clients_done() {
            self.step_tick();
            if let Some(failure) = self.failure.take() {
                return Err(failure);
            }
        }
        if !self.all_clients_done() {
            let busy =
                self.clients.iter().filter(|client| client.busy() || client.remaining > 0).count();
            let heralds = self.current_heralds();
            let message = format!(
                "{busy} clients unfinished after {} healed ticks; heralds now {heralds:?}",
                self.options.liveness_ticks
            );
            return Err(SimFailure::Liveness { seed: self.options.seed, message });
        }
        self.check_liveness_completions()?;
        self.check_history()?;
        Ok((self.report(), self.history))
    }

    fn report(&self) -> SimReport {
        SimReport {
            seed: self.options.seed,
            ticks: self.now,
            operations: self.history.len(),
            completed: self
                .history
                .iter()
                .filter(|operation| operation.return_ns.is_some())
                .count(),
            heralds: self.order_checks.herald_terms(),
            crashes: self.crashes,
            refusals: self.refusals,
            committed: self
                .order_checks
                .last_committed(static_order_id())
                .map_or(0, |(index, _)| index),
            snapshots_installed: self.snapshots_installed,
            membership_changes: self.membership_changes,
            messages: (self.network.delivered, self.network.dropped),
        }
    }

    fn check_history(&self) -> Result<(), SimFailure> {
        use super::checker::linearizability::{check, Verdict};
        match check(&self.history, 5_000_000) {
            Verdict::Linearizable { .. } => Ok(()),
            other => {
                Err(SimFailure::History { seed: self.options.seed, message: format!("{other:?}") })
            }
        }
    }

    /// Operations started in the liveness phase must all have completed.
    fn check_liveness_completions(&self) -> Result<(), SimFailure> {
        let liveness_start = self.liveness_started_ns();
        let unknown = self
            .history
            .iter()
            .filter(|operation| {
                operation.call_ns >= liveness_start && operation.return_ns.is_none()
            })
            .count();
        if unknown > 0 {
            let message =
                format!("{unknown} operations issued on the healed network never completed");
            return Err(SimFailure::Liveness { seed: self.options.seed, message });
        }
        Ok(())
    }

    fn liveness_started_ns(&self) -> u64 {
        self.liveness_start_ns.unwrap_or(u64::MAX)
    }
}

// ===== hand-written scenarios =====

/// Client index whose answers the scenario API collects (no simulated client has it).
const ADMIN_CLIENT: usize = usize::MAX / 2;

impl Simulator {
    /// A simulator without faults or clients, for hand-written scenarios.
    pub fn quiet(seed: u64, radiants: usize, voters: usize) -> Simulator {
        let mut options = SimOptions::swarm(seed, radiants, 0);
        options.voters = voters;
        options.clients = 0;
        options.faults.crash_per_million = 0;
        options.faults.partition_per_million = 0;
        options.faults.network = NetworkFaults::none();
        let mut simulator = Simulator::new(options);
        simulator.faults_on = false;
        simulator
    }

    /// Runs `ticks` ticks, checking every invariant; panics on a violation.
    pub fn run_ticks(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.step_tick();
            if let Some(failure) = self.failure.take() {
                panic!("{failure}");
            }
        }
    }

    /// Cuts `radiant` off from every other radiant, both ways.
    pub fn isolate(&mut self, radiant: usize) {
        let all: Vec<Endpoint> = (0..self.radiants.len()).map(Endpoint::Radiant).collect();
        self.network.partition(&[Endpoint::Radiant(radiant)], &all);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.network.heal();
    }

    /// The radiant currently herald of the highest term, with that term.
    pub fn herald(&self) -> Option<(usize, Term)> {
        let heralds = self.radiants.iter().enumerate().filter_map(|(index, radiant)| {
            let order = radiant.core.as_ref()?.order()?;
            (order.role() == OrderRole::Herald).then_some((index, order.term()))
        });
        heralds.max_by_key(|(_, term)| *term)
    }

    /// Hands `message` straight to radiant `radiant`, as if a peer had sent it (for
    /// scenarios that play a buggy or hostile peer).
    pub fn inject(&mut self, radiant: usize, message: PeerMessage) {
        self.step(radiant, Input::Message(message));
        if let Some(failure) = self.failure.take() {
            panic!("{failure}");
        }
    }

    /// Radiant `radiant`'s replica of the order, if it is up.
    pub fn order(&self, radiant: usize) -> Option<&crate::core::Order> {
        self.radiants[radiant].core.as_ref().and_then(Radiant::order)
    }

    /// Sends `request` to `radiant` over the network and runs until it is answered
    /// (at most `limit` ticks).
    pub fn request(
        &mut self,
        radiant: usize,
        request: ClientRequest,
        limit: u64,
    ) -> Result<ClientResponse, ErrorResponse> {
        let mut answers = self.requests(radiant, vec![request], limit);
        answers.pop().expect("one answer per request")
    }

    /// Sends every request to `radiant` at once (they arrive in one tick) and runs until
    /// all are answered (at most `limit` ticks); the answers in request order.
    pub fn requests(
        &mut self,
        radiant: usize,
        requests: Vec<ClientRequest>,
        limit: u64,
    ) -> Vec<Result<ClientResponse, ErrorResponse>> {
        let faults = self.network_faults();
        let mut correlations = Vec::new();
        for request in requests {
            self.next_admin_correlation += 1;
            let correlation = self.next_admin_correlation;
            correlations.push(correlation);
            self.network.send(
                self.now,
                Endpoint::Client(ADMIN_CLIENT),
                Endpoint::Radiant(radiant),
                SimMessage::Request { correlation, request },
                &faults,
                &mut self.prng,
            );
        }
        for _ in 0..limit {
            self.run_ticks(1);
            let answered = |id: &u64| self.admin_replies.iter().any(|(answered, _)| answered == id);
            if correlations.iter().all(answered) {
                let mut answers = Vec::new();
                for id in correlations {
                    let position =
                        self.admin_replies.iter().position(|(answered, _)| *answered == id);
                    answers.push(self.admin_replies.remove(position.expect("answered")).1);
                }
                return answers;
            }
        }
        panic!("no answer to every scenario request within {limit} ticks");
    }
}

// ===== the tick loop =====

impl Simulator {
    fn step_tick(&mut self) {
        self.now += 1;
        if self.faults_on {
            self.inject_faults();
        }
        self.restart_due();
        for index in 0..self.radiants.len() {
            if let Err(message) = radiant::complete_due_fsyncs(self, index) {
                self.fail(message);
            }
        }
        while let Some((from, to, message)) = self.network.next_due(self.now) {
            self.clock_ns += 1;
            self.deliver(from, to, message);
        }
        for index in 0..self.radiants.len() {
            if self.radiants[index].core.is_some() {
                self.step(index, Input::Tick);
            }
        }
        self.run_clients();
        // The end of the tick's batch: heralds write and replicate what it appended.
        for index in 0..self.radiants.len() {
            if self.radiants[index].core.is_some() {
                self.step(index, Input::Flush);
            }
        }
        self.check_invariants();
    }

    fn deliver(&mut self, from: Endpoint, to: Endpoint, message: SimMessage) {
        match (to, message) {
            (Endpoint::Radiant(index), SimMessage::Peer(message)) => {
                if self.radiants[index].core.is_some() {
                    self.step(index, Input::Message(message));
                }
            }
            (Endpoint::Radiant(index), SimMessage::Request { correlation, request }) => {
                let Endpoint::Client(client) = from else {
                    return;
                };
                if self.radiants[index].core.is_some() {
                    let reply_to = ReplyTo {
                        connection: ConnectionId(client as u64),
                        correlation_id: correlation,
                    };
                    self.step(index, Input::Client { reply_to, request });
                }
            }
            (Endpoint::Client(ADMIN_CLIENT), SimMessage::Reply { correlation, result }) => {
                self.admin_replies.push((correlation, result));
            }
            (Endpoint::Client(client), SimMessage::Reply { correlation, result }) => {
                let context = ClientContext {
                    now: self.now,
                    clock_ns: self.clock_ns,
                    radiants: self.radiants.len(),
                };
                let history = &mut self.history;
                let resend = self.clients[client].on_reply(context, correlation, result, history);
                if let Some(send) = resend {
                    self.client_send(client, send);
                }
            }
            (to, message) => panic!("sim: {message:?} delivered to {to:?}"),
        }
    }

    fn run_clients(&mut self) {
        let radiants = self.radiants.len();
        for client in 0..self.clients.len() {
            self.clock_ns += 1;
            let sent =
                self.clients[client].on_tick(self.now, self.clock_ns, radiants, &mut self.history);
            if let Some(send) = sent {
                self.client_send(client, send);
            }
            self.clock_ns += 1;
            let keys = self.options.keys;
            if let Some(mut send) = self.clients[client].maybe_start(
                self.now,
                self.clock_ns,
                keys,
                &mut self.prng,
                &mut self.history,
            ) {
                // A follower read goes to any member, as a client spreading reads would.
                if matches!(
                    send.request,
                    ClientRequest::Get { consistency: ReadConsistency::Follower, .. }
                ) {
                    send.radiant = self.prng.range(0, radiants as u64) as usize;
                    self.clients[client].set_target(send.radiant);
                }
                self.client_send(client, send);
            }
        }
    }

    fn client_send(&mut self, client: usize, send: Send) {
        let Send { radiant, correlation, request } = send;
        let message = SimMessage::Request { correlation, request };
        let faults = self.network_faults();
        self.network.send(
            self.now,
            Endpoint::Client(client),
            Endpoint::Radiant(radiant),
            message,
            &faults,
            &mut self.prng,
        );
    }

    fn network_faults(&self) -> NetworkFaults {
        if self.faults_on {
            self.options.faults.network.clone()
        } else {
            NetworkFaults::none()
        }
    }

    fn all_clients_done(&self) -> bool {
        self.clients.iter().all(|client| !client.busy() && client.remaining == 0)
    }

    fn current_heralds(&self) -> Vec<(MemberId, Term)> {
        self.radiants
            .iter()
            .filter_map(|radiant| radiant.core.as_ref())
            .filter(|core| static_order(core).role() == OrderRole::Herald)
            .map(|core| (static_member(core), static_order(core).term()))
            .collect()
    }

    fn enter_liveness_phase(&mut self) {
        self.faults_on = false;
        for radiant in &self.radiants {
            radiant.disk.calm();
        }
        self.network.heal();
        self.partition_until = None;
        for index in 0..self.radiants.len() {
            // A radiant that refused its damaged disk stays down (`restart_at` never comes).
            let refused = self.radiants[index].restart_at == u64::MAX;
            if self.radiants[index].core.is_none() && !refused {
                self.start(index);
            }
        }
        self.liveness_start_ns = Some(self.clock_ns + 1);
        for client in &mut self.clients {
            client.remaining += self.options.liveness_operations_per_client;
        }
    }
}

// ===== faults, crashes and recovery =====

impl Simulator {
    fn inject_faults(&mut self) {
        let faults = self.options.faults.clone();
        for index in 0..self.radiants.len() {
            if self.radiants[index].core.is_some()
                && self.prng.chance(faults.crash_per_million, 1_000_000)
            {
                self.crash(index);
            }
        }
        if self.prng.chance(self.options.membership_changes_per_million, 1_000_000) {
            self.change_membership_at_random();
        }
        match self.partition_until {
            Some(until) if self.now >= until => {
                self.network.heal();
                self.partition_until = None;
            }
            None if self.prng.chance(faults.partition_per_million, 1_000_000) => {
                self.start_partition()
            }
            _ => {}
        }
    }

    /// Asks a random radiant to add a spare radiant not yet in the order, or else to
    /// remove a random voter while there are more than `voters`. Answers are ignored:
    /// a refused request (not herald, locked) simply did not happen.
    fn change_membership_at_random(&mut self) {
        self.admin_replies.clear();
        let newest = self
            .radiants
            .iter()
            .filter_map(|radiant| radiant.core.as_ref())
            .map(static_order)
            .max_by_key(|order| (order.term(), order.commit_index()));
        let Some(membership) = newest.map(|order| order.membership().clone()) else { return };
        let spare = (self.options.voters..self.radiants.len())
            .map(member_at)
            .find(|member| !membership.contains(*member) && !self.ever_removed.contains(member));
        let request = if let Some(member) = spare {
            let address = member_address(&format!("sim-{member}"), &format!("sim-{member}"));
            ClientRequest::AddMember { member, address }
        } else if membership.voters.len() > self.options.voters {
            let voters: Vec<MemberId> = membership.voters.iter().copied().collect();
            let member = voters[self.prng.range(0, voters.len() as u64) as usize];
            self.ever_removed.insert(member);
            ClientRequest::RemoveMember { member }
        } else {
            return;
        };
        self.next_admin_correlation += 1;
        let message = SimMessage::Request { correlation: self.next_admin_correlation, request };
        let target = Endpoint::Radiant(self.prng.range(0, self.radiants.len() as u64) as usize);
        let faults = self.network_faults();
        self.network.send(
            self.now,
            Endpoint::Client(ADMIN_CLIENT),
            target,
            message,
            &faults,
            &mut self.prng,
        );
    }

    fn start_partition(&mut self) {
        let all: Vec<Endpoint> = (0..self.radiants.len()).map(Endpoint::Radiant).collect();
        let isolated = self.prng.range(0, all.len() as u64) as usize;
        if self.prng.chance(1, 3) {
            // Asymmetric: the isolated radiant can send but not receive (or the reverse).
            for other in all.iter().filter(|&&other| other != all[isolated]) {
                if self.prng.chance(1, 2) {
                    self.network.cut_one_way(*other, all[isolated]);
                } else {
                    self.network.cut_one_way(all[isolated], *other);
                }
            }
        } else {
            let size = self.prng.range(1, (all.len() as u64 / 2).max(1) + 1) as usize;
            let side: Vec<Endpoint> =
                (0..size).map(|offset| all[(isolated + offset) % all.len()]).collect();
            self.network.partition(&side, &all);
        }
        let (low, high) = self.options.faults.partition_ticks;
        self.partition_until = Some(self.now + self.prng.range(low, high + 1));
    }

    /// A power loss: the process and everything its disk had not made durable are gone.
    fn crash(&mut self, index: usize) {
        self.crashes += 1;
        let (low, high) = self.options.faults.down_ticks;
        let down = self.prng.range(low, high + 1);
        self.radiants[index].crash(self.now + down);
    }

    /// A write or sync failed: the radiant stops (fail-stop, as the daemon does) and is
    /// restarted later from what its disk holds; the rest of its order carries on.
    fn stop_on_disk_error(&mut self, index: usize, error: &dyn std::fmt::Display) {
        self.radiants[index].disk.assert_error_was_injected(error);
        self.crash(index);
    }

    /// Recovers the radiant's state from its disk through the daemon's own recovery and
    /// checks it kept every promise; `None` when the radiant cannot start now (a disk
    /// error: later) or ever (damage: it refuses).
    fn recover_storage(
        &mut self,
        index: usize,
        start: (Membership, (OrderId, ShardTable)),
    ) -> Option<RecoveredOrder> {
        let radiant = &mut self.radiants[index];
        match radiant.disk.recover(&radiant.machine, start) {
            Ok((broken, recovered)) => {
                if let Some(broken) = broken {
                    self.fail(format!(
                        "radiant {} recovered less than it synced: {broken}",
                        index + 1
                    ));
                }
                Some(recovered)
            }
            Err(StartFailure::Refused { reason, disk_was_damaged }) => {
                // It stays down for good: a damaged log is repaired by replacing the radiant.
                self.radiants[index].restart_at = u64::MAX;
                self.refusals += 1;
                if !disk_was_damaged {
                    self.fail(format!("radiant {} refused to start: {reason}", index + 1));
                }
                None
            }
            Err(StartFailure::DiskError(_)) => {
                let (low, high) = self.options.faults.down_ticks;
                self.radiants[index].restart_at = self.now + self.prng.range(low, high + 1);
                None
            }
        }
    }

    fn restart_due(&mut self) {
        for index in 0..self.radiants.len() {
            if self.radiants[index].core.is_none() && self.now >= self.radiants[index].restart_at {
                self.start(index);
            }
        }
    }

    fn order_options(&self, shard_count: u32) -> OrderOptions {
        OrderOptions {
            cluster: radiant_protocol::ClusterId::UNSET,
            order_id: static_order_id(),
            shard_count,
            snapshot_interval_entries: self.options.snapshot_interval_entries,
            snapshot_interval_bytes: self.options.snapshot_interval_bytes,
            election_timeout_ticks: self.options.election_timeout_ticks,
            heartbeat_interval_ticks: self.options.heartbeat_interval_ticks,
            replication_max_bytes: self.options.replication_max_bytes,
            max_inflight_appends: 4,
            catch_up_entries: self.options.catch_up_entries,
            limits: Limits::DEFAULT,
            injected_bug: self.options.injected_bug,
        }
    }

    /// Recovers a radiant from its disk, as the daemon does: snapshot, then the log
    /// replayed through the persisted commit index; the rest goes to the core. A static
    /// order serves every shard.
    fn start(&mut self, index: usize) {
        let radiant = &mut self.radiants[index];
        radiant.machine.clear();
        let shard_count = radiant.machine.shard_count();
        let shards = ShardTable::serving_all(shard_count);
        let start = (self.initial_membership.clone(), (static_order_id(), shards));
        let Some(recovered) = self.recover_storage(index, start) else { return };
        let options = self.order_options(shard_count);
        let radiant = &mut self.radiants[index];
        radiant.incarnation += 1;
        let applied = recovered.applied_index;
        let member = member_at(index);
        let seed = self.options.seed ^ (member.get() << 32) ^ radiant.incarnation;
        radiant.core = Some(Radiant::new(member, options, recovered, seed));
        self.order_checks.restarted(index, static_order_id(), applied);
    }
}

// ===== carrying out actions =====

impl Simulator {
    fn step(&mut self, index: usize, input: Input) {
        if let Err(message) = radiant::step(self, index, input) {
            self.fail(message);
        }
    }

    fn fail(&mut self, message: String) {
        if self.failure.is_none() {
            self.failure =
                Some(SimFailure::Invariant { seed: self.options.seed, tick: self.now, message });
        }
    }
}

// ===== cross-radiant invariants =====

impl Simulator {
    fn check_invariants(&mut self) {
        let replicas: Vec<(usize, &crate::core::Order)> = self
            .radiants
            .iter()
            .enumerate()
            .filter_map(|(index, radiant)| Some((index, static_order(radiant.core.as_ref()?))))
            .collect();
        let deep = self.now.is_multiple_of(16);
        let mut changes = Vec::new();
        let checked = self.order_checks.check(&replicas, deep, |_, _, data| {
            if let Ok(Command::Membership(change)) = Command::decode(data.clone(), &Limits::DEFAULT)
            {
                changes.push(change);
            }
        });
        for change in changes {
            self.membership_changes += 1;
            self.previous_membership = self.committed_membership.clone();
            self.committed_membership.apply(&change);
        }
        if let Err(violation) = checked {
            self.fail(violation);
        }
        self.check_durability();
    }

    /// Every committed entry is durable on a majority (so no acknowledged write can
    /// be lost to crashes of a minority).
    fn check_durability(&mut self) {
        let Some((index, term)) = self.order_checks.last_committed(static_order_id()) else {
            return;
        };
        let holders =
            self.radiants.iter().filter(|radiant| radiant.disk.promised.holds(index, term)).count();
        // The committed membership, as of the entries committed so far. Entries committed
        // around a single-member change may have been counted under the membership before
        // it, so the smaller of the two majorities is the bound (consecutive majorities
        // overlap, which is what keeps such entries safe).
        let quorum = self.committed_membership.quorum().min(self.previous_membership.quorum());
        if holders < quorum {
            self.fail(format!(
                "durability: committed ({term}, {index}) is durable on {holders} radiants, fewer \
                 than a majority ({quorum})"
            ));
        }
    }
}

/// The id of the simulated static order.
fn static_order_id() -> OrderId {
    OrderId::new(1).expect("nonzero")
}

/// The simulated radiants run static orders, so each has its replica from the start.
fn static_order(core: &Radiant) -> &crate::core::Order {
    core.order().expect("a simulated radiant runs a static order")
}

fn static_member(core: &Radiant) -> radiant_protocol::MemberId {
    core.member_id().expect("a simulated radiant has a static member id")
}

impl SimWorld for Simulator {
    fn now(&self) -> u64 {
        self.now
    }

    fn radiant(&mut self, index: usize) -> &mut SimRadiant {
        &mut self.radiants[index]
    }

    fn actions(&mut self) -> &mut Actions {
        &mut self.actions
    }

    fn followups(&mut self) -> &mut VecDeque<(usize, Input)> {
        &mut self.followups
    }

    fn send(&mut self, from: usize, to: Endpoint, message: SimMessage) {
        let faults = self.network_faults();
        let from = Endpoint::Radiant(from);
        self.network.send(self.now, from, to, message, &faults, &mut self.prng);
    }

    fn peer_index(&self, _from: usize, member: MemberId) -> Option<usize> {
        (member.get() as usize).checked_sub(1).filter(|&index| index < self.radiants.len())
    }

    /// A static order has no system.
    fn system_index(&self, _address: &str) -> Option<usize> {
        None
    }

    fn fsync_done_at(&mut self) -> u64 {
        self.now + self.prng.range(0, self.options.faults.fsync_max_ticks + 1)
    }

    fn stop_on_disk_error(&mut self, index: usize, error: &dyn std::fmt::Display) {
        Simulator::stop_on_disk_error(self, index, error);
    }

    fn snapshot_cut_short(&mut self) -> Option<usize> {
        let cut = self.faults_on && self.prng.chance(1, 20);
        cut.then(|| self.prng.range(0, 64) as usize)
    }

    fn crash(&mut self, index: usize) {
        Simulator::crash(self, index);
    }

    fn fail(&mut self, message: String) {
        Simulator::fail(self, message);
    }

    fn snapshot_installed(&mut self, _index: usize) {
        self.snapshots_installed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::injected_bugs::StorageBug;

    fn sweep(bug: InjectedBug, seeds: std::ops::Range<u64>) -> Vec<SimFailure> {
        seeds
            .filter_map(|seed| {
                let mut options = SimOptions::swarm(seed, 3, 1_500);
                options.injected_bug = bug;
                crate::cli::sim::run_one(options).err()
            })
            .collect()
    }

    #[test]
    fn a_seed_replays_identically() {
        let run = || Simulator::new(SimOptions::swarm(77, 3, 1_500)).run().expect("seed 77 passes");
        let (first_report, first_history) = run();
        let (second_report, second_history) = run();
        assert_eq!(first_report, second_report);
        assert_eq!(first_history, second_history);
        assert!(first_report.crashes > 0 && first_report.heralds > 1, "{first_report:?}");
    }

    #[test]
    fn acknowledging_before_durable_is_caught() {
        let failures = sweep(InjectedBug::AcknowledgeBeforeDurable, 0..40);
        assert!(!failures.is_empty(), "40 seeds never noticed acknowledgements before fsync");
        let caught = failures.iter().any(|failure| failure.to_string().contains("durab"));
        assert!(caught, "caught, but not by the durability check: {failures:?}");
    }

    #[test]
    fn voting_twice_in_a_term_is_caught() {
        let failures = sweep(InjectedBug::VoteTwice, 0..80);
        let caught = failures.iter().any(|failure| failure.to_string().contains("election safety"));
        assert!(caught, "80 seeds never saw two heralds in one term: {failures:?}");
    }

    /// The first seed of `seeds` (order mode, 3 radiants) that fails with `bug` in the
    /// storage code, and its failure; checks the seed fails the same way again.
    fn first_caught(
        bug: StorageBug,
        seeds: std::ops::Range<u64>,
        adjust: fn(&mut SimOptions),
    ) -> (u64, SimFailure) {
        let _bug = crate::storage::injected_bugs::inject(bug);
        let run = |seed| {
            let mut options = SimOptions::swarm(seed, 3, 1_500);
            adjust(&mut options);
            crate::cli::sim::run_one(options).err()
        };
        let caught = seeds.clone().find_map(|seed| run(seed).map(|failure| (seed, failure)));
        let (seed, failure) =
            caught.unwrap_or_else(|| panic!("no seed of {seeds:?} caught {bug:?}"));
        assert_eq!(run(seed).as_ref(), Some(&failure), "seed {seed} replays exactly");
        (seed, failure)
    }

    #[test]
    fn a_wal_that_skips_the_directory_sync_of_a_new_segment_is_caught() {
        let (seed, failure) = first_caught(StorageBug::SkipSegmentDirectorySync, 0..200, |_| {});
        let message = failure.to_string();
        assert!(message.contains("recovered less than it synced"), "seed {seed}: {message}");
    }

    #[test]
    fn recovery_that_cuts_damaged_records_is_caught() {
        let (seed, failure) = first_caught(StorageBug::CutDamagedRecords, 0..400, |options| {
            // A flip at every crash of the first radiant, so some hits its newest record.
            options.faults.disk.bit_flip_per_million = 1_000_000;
        });
        let message = failure.to_string();
        assert!(message.contains("recovered less than it synced"), "seed {seed}: {message}");
    }

    #[test]
    fn the_real_storage_passes_with_a_bit_flip_at_every_crash() {
        let failures: Vec<SimFailure> = (0..100)
            .filter_map(|seed| {
                let mut options = SimOptions::swarm(seed, 3, 1_500);
                options.faults.disk.bit_flip_per_million = 1_000_000;
                crate::cli::sim::run_one(options).err()
            })
            .collect();
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn writing_a_snapshot_over_its_final_file_is_caught() {
        let (seed, failure) = first_caught(StorageBug::OverwriteSnapshotInPlace, 0..200, |_| {});
        let message = failure.to_string();
        assert!(message.contains("refused to start"), "seed {seed}: {message}");
    }

    #[test]
    fn the_clean_core_passes_the_same_seeds() {
        let failures = sweep(InjectedBug::None, 0..40);
        assert!(failures.is_empty(), "{failures:?}");
    }
}
