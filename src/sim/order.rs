//! The order scenario (`radiant sim`, the default mode): the radiants of one static
//! order on the [`Driver`], their disks (the daemon's own storage code on
//! `MemoryFileSystem`) and state machines, a seeded network and clients. Every random
//! choice comes from one PRNG seeded by `--seed`, so a failing seed replays exactly.
//!
//! A run has two phases (TigerBeetle's VOPR): a safety phase with faults (loss,
//! duplication, delay, partitions, power loss with torn and out-of-order writes, bit
//! flips and I/O errors on the disks), checked
//! every tick for election safety, log matching, leader completeness, state-machine
//! safety and durability of committed entries; then a liveness phase on a healed
//! network in which every client must finish its operations. The client history is
//! then checked for linearizability.

use radiant_protocol::{
    ClientRequest, ClientResponse, Command, ErrorResponse, Limits, LogIndex, MemberId, OrderId,
    PeerMessage, ReadConsistency, Term,
};

pub use super::driver::SimFaults;
use super::driver::{self, address, Driver, Scenario, ADMIN_CLIENT};
use super::history::Operation;
use super::network::{Endpoint, NetworkFaults, SimMessage};
use super::workload::{ClientContext, ClientTiming, Send, SimClient};
use crate::core::order::membership::member_address;
use crate::core::order::{InjectedBug, Membership, OrderOptions};
use crate::core::prng::Prng;
use crate::core::shards::ShardTable;
use crate::core::{Input, OrderRole, Radiant};
use crate::storage::memory_file_system::DiskFaults;

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

/// The member radiant `index` is (static orders number their members from 1).
fn member_at(index: usize) -> MemberId {
    MemberId::new(index as u64 + 1).expect("nonzero")
}

/// The membership entry of radiant `index`: its peer and client addresses (the peer
/// address is how the driver finds a member's radiant).
pub fn member_entry(index: usize) -> String {
    member_address(&address(index), &format!("client-{index}"))
}

/// The simulator of one static order: a scenario of the [`Driver`].
pub struct Simulator {
    driver: Driver,
    options: SimOptions,
    clients: Vec<SimClient>,
    history: Vec<Operation>,
    initial_membership: Membership,
    /// The membership after every committed change, and the one before the last change.
    committed_membership: Membership,
    previous_membership: Membership,
    membership_changes: u64,
    /// Members an admin request asked to remove (never added back).
    ever_removed: std::collections::BTreeSet<MemberId>,
    liveness_start_ns: Option<u64>,
    next_admin_correlation: u64,
    admin_replies: Vec<(u64, Result<ClientResponse, ErrorResponse>)>,
}

impl Simulator {
    /// A simulator with every radiant up and empty.
    pub fn new(options: SimOptions) -> Simulator {
        assert!(options.radiants >= 1, "a simulation needs a radiant");
        assert!(
            options.voters >= 1 && options.voters <= options.radiants,
            "voters must be 1..=radiants"
        );
        let initial_membership = Membership::with_voters(
            (0..options.voters).map(|index| (member_at(index), member_entry(index))),
        );
        let mut prng = Prng::new(options.seed);
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
        let driver =
            Driver::new(options.seed, prng, options.radiants, SHARD_COUNT, options.faults.clone());
        let mut simulator = Simulator {
            driver,
            clients,
            history: Vec::new(),
            committed_membership: initial_membership.clone(),
            previous_membership: initial_membership.clone(),
            initial_membership,
            membership_changes: 0,
            ever_removed: std::collections::BTreeSet::new(),
            liveness_start_ns: None,
            next_admin_correlation: 0,
            admin_replies: Vec::new(),
            options,
        };
        simulator.start_due();
        simulator
    }

    /// Runs both phases and checks the history.
    pub fn run(mut self) -> Result<(SimReport, Vec<Operation>), SimFailure> {
        for _ in 0..self.options.ticks {
            self.tick()?;
        }
        self.enter_liveness_phase();
        let deadline = self.driver.now + self.options.liveness_ticks;
        while self.driver.now < deadline && !self.all_clients_done() {
            self.tick()?;
        }
        if !self.all_clients_done() {
            let busy =
                self.clients.iter().filter(|client| client.busy() || client.remaining > 0).count();
            let heralds = self.current_heralds();
            let message = format!(
                "{busy} clients unfinished after {} healed ticks; heralds now {heralds:?}; \
                 radiants:{}",
                self.options.liveness_ticks,
                self.describe()
            );
            return Err(SimFailure::Liveness { seed: self.options.seed, message });
        }
        self.check_liveness_completions()?;
        self.check_history()?;
        Ok((self.report(), self.history))
    }

    fn tick(&mut self) -> Result<(), SimFailure> {
        driver::tick(self).map_err(|(tick, message)| SimFailure::Invariant {
            seed: self.options.seed,
            tick,
            message,
        })
    }

    fn report(&self) -> SimReport {
        let counts = self.driver.counts;
        SimReport {
            seed: self.options.seed,
            ticks: self.driver.now,
            operations: self.history.len(),
            completed: self
                .history
                .iter()
                .filter(|operation| operation.return_ns.is_some())
                .count(),
            heralds: self.driver.order_checks.herald_terms(),
            crashes: counts.crashes,
            refusals: counts.refusals,
            committed: self
                .driver
                .order_checks
                .last_committed(static_order_id())
                .map_or(0, |(index, _)| index),
            snapshots_installed: counts.snapshots_installed,
            membership_changes: self.membership_changes,
            messages: (self.driver.network.delivered, self.driver.network.dropped),
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
        simulator.driver.faults_on = false;
        simulator
    }

    /// Runs `ticks` ticks, checking every invariant; panics on a violation.
    pub fn run_ticks(&mut self, ticks: u64) {
        for _ in 0..ticks {
            if let Err(failure) = self.tick() {
                panic!("{failure}");
            }
        }
    }

    /// Cuts `radiant` off from every other radiant, both ways.
    pub fn isolate(&mut self, radiant: usize) {
        self.driver.isolate(radiant);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.driver.network.heal();
    }

    /// The radiant currently herald of the highest term, with that term.
    pub fn herald(&self) -> Option<(usize, Term)> {
        let heralds = self.driver.radiants.iter().enumerate().filter_map(|(index, radiant)| {
            let order = radiant.core.as_ref()?.order()?;
            (order.role() == OrderRole::Herald).then_some((index, order.term()))
        });
        heralds.max_by_key(|(_, term)| *term)
    }

    /// Hands `message` straight to radiant `radiant`, as if a peer had sent it (for
    /// scenarios that play a buggy or hostile peer).
    pub fn inject(&mut self, radiant: usize, message: PeerMessage) {
        self.driver.step(radiant, Input::Message(message));
        if let Some((tick, message)) = self.driver.take_failure() {
            let failure = SimFailure::Invariant { seed: self.options.seed, tick, message };
            panic!("{failure}");
        }
    }

    /// Radiant `radiant`'s replica of the order, if it is up.
    pub fn order(&self, radiant: usize) -> Option<&crate::core::Order> {
        self.driver.radiants[radiant].core.as_ref().and_then(Radiant::order)
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
        let mut correlations = Vec::new();
        for request in requests {
            self.next_admin_correlation += 1;
            let correlation = self.next_admin_correlation;
            correlations.push(correlation);
            let message = SimMessage::Request { correlation, request };
            self.driver.send(Endpoint::Client(ADMIN_CLIENT), Endpoint::Radiant(radiant), message);
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

// ===== the scenario: clients, membership changes, recovery =====

impl Scenario for Simulator {
    fn driver(&mut self) -> &mut Driver {
        &mut self.driver
    }

    fn start_due(&mut self) {
        for index in 0..self.driver.radiants.len() {
            if self.driver.due(index) {
                self.start(index);
            }
        }
    }

    fn inject_faults(&mut self) {
        let chance = self.options.membership_changes_per_million;
        if self.driver.prng.chance(chance, 1_000_000) {
            self.change_membership_at_random();
        }
    }

    fn on_reply(
        &mut self,
        client: usize,
        correlation: u64,
        result: Result<ClientResponse, ErrorResponse>,
    ) {
        if client == ADMIN_CLIENT {
            self.admin_replies.push((correlation, result));
            return;
        }
        let driver = &self.driver;
        let radiants = driver.radiants.len();
        let context = ClientContext { now: driver.now, clock_ns: driver.clock_ns, radiants };
        let history = &mut self.history;
        let resend = self.clients[client].on_reply(context, correlation, result, history);
        if let Some(send) = resend {
            self.client_send(client, send);
        }
    }

    fn run_clients(&mut self) {
        let radiants = self.driver.radiants.len();
        for client in 0..self.clients.len() {
            let driver = &mut self.driver;
            driver.clock_ns += 1;
            let sent = self.clients[client].on_tick(
                driver.now,
                driver.clock_ns,
                radiants,
                &mut self.history,
            );
            if let Some(send) = sent {
                self.client_send(client, send);
            }
            let driver = &mut self.driver;
            driver.clock_ns += 1;
            let keys = self.options.keys;
            if let Some(mut send) = self.clients[client].maybe_start(
                driver.now,
                driver.clock_ns,
                keys,
                &mut driver.prng,
                &mut self.history,
            ) {
                // A follower read goes to any member, as a client spreading reads would.
                if matches!(
                    send.request,
                    ClientRequest::Get { consistency: ReadConsistency::Follower, .. }
                ) {
                    send.radiant = driver.prng.range(0, radiants as u64) as usize;
                    self.clients[client].set_target(send.radiant);
                }
                self.client_send(client, send);
            }
        }
    }

    fn check(&mut self) {
        self.check_invariants();
    }
}

impl Simulator {
    fn client_send(&mut self, client: usize, send: Send) {
        let Send { radiant, correlation, request } = send;
        let message = SimMessage::Request { correlation, request };
        self.driver.send(Endpoint::Client(client), Endpoint::Radiant(radiant), message);
    }

    /// Each radiant's state, for a failure report.
    fn describe(&self) -> String {
        let radiants = self.driver.radiants.iter().enumerate();
        radiants
            .map(|(index, radiant)| match radiant.core.as_ref() {
                None if radiant.restart_at == u64::MAX => format!("\n  {index}: refused"),
                None => format!("\n  {index}: down until tick {}", radiant.restart_at),
                Some(core) => {
                    let order = static_order(core);
                    format!(
                        "\n  {index}: {} {:?} term {} commit {} last {} voters {:?} peers {:?}",
                        order.state(),
                        order.role(),
                        order.term(),
                        order.commit_index(),
                        order.last_index(),
                        order.membership().voters,
                        radiant.peers,
                    )
                }
            })
            .collect()
    }

    fn all_clients_done(&self) -> bool {
        self.clients.iter().all(|client| !client.busy() && client.remaining == 0)
    }

    fn current_heralds(&self) -> Vec<(MemberId, Term)> {
        self.driver
            .radiants
            .iter()
            .filter_map(|radiant| radiant.core.as_ref())
            .filter(|core| static_order(core).role() == OrderRole::Herald)
            .map(|core| (static_member(core), static_order(core).term()))
            .collect()
    }

    fn enter_liveness_phase(&mut self) {
        self.driver.heal();
        self.liveness_start_ns = Some(self.driver.clock_ns + 1);
        for client in &mut self.clients {
            client.remaining += self.options.liveness_operations_per_client;
        }
    }

    /// Asks a random radiant to add a spare radiant not yet in the order, or else to
    /// remove a random voter while there are more than `voters`. Answers are ignored:
    /// a refused request (not herald, locked) simply did not happen.
    fn change_membership_at_random(&mut self) {
        self.admin_replies.clear();
        let newest = self
            .driver
            .radiants
            .iter()
            .filter_map(|radiant| radiant.core.as_ref())
            .map(static_order)
            .max_by_key(|order| (order.term(), order.commit_index()));
        let Some(membership) = newest.map(|order| order.membership().clone()) else { return };
        let spare = (self.options.voters..self.driver.radiants.len()).find(|&index| {
            let member = member_at(index);
            !membership.contains(member) && !self.ever_removed.contains(&member)
        });
        let request = if let Some(index) = spare {
            ClientRequest::AddMember { member: member_at(index), address: member_entry(index) }
        } else if membership.voters.len() > self.options.voters {
            let voters: Vec<MemberId> = membership.voters.iter().copied().collect();
            let member = voters[self.driver.prng.range(0, voters.len() as u64) as usize];
            self.ever_removed.insert(member);
            ClientRequest::RemoveMember { member }
        } else {
            return;
        };
        self.next_admin_correlation += 1;
        let message = SimMessage::Request { correlation: self.next_admin_correlation, request };
        let radiants = self.driver.radiants.len() as u64;
        let target = Endpoint::Radiant(self.driver.prng.range(0, radiants) as usize);
        self.driver.send(Endpoint::Client(ADMIN_CLIENT), target, message);
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

    /// Starts a member of the static order from its disk, as the daemon does: snapshot,
    /// then the log replayed through the persisted commit index; the rest goes to the
    /// core. A static order serves every shard.
    fn start(&mut self, index: usize) {
        let shards = ShardTable::serving_all(SHARD_COUNT);
        let start = (self.initial_membership.clone(), (static_order_id(), shards));
        let Some(recovered) = self.driver.recover(index, start) else { return };
        let options = self.order_options(SHARD_COUNT);
        let applied = recovered.applied_index;
        let seed = self.driver.core_seed(index);
        let core = Radiant::new(member_at(index), options, recovered, seed);
        self.driver.radiants[index].run(core);
        self.driver.order_checks.restarted(index, static_order_id(), applied);
    }
}

// ===== cross-radiant invariants =====

impl Simulator {
    fn check_invariants(&mut self) {
        let Driver { radiants, order_checks, now, .. } = &mut self.driver;
        let replicas: Vec<(usize, &crate::core::Order)> = radiants
            .iter()
            .enumerate()
            .filter_map(|(index, radiant)| Some((index, static_order(radiant.core.as_ref()?))))
            .collect();
        let deep = now.is_multiple_of(16);
        let mut changes = Vec::new();
        let checked = order_checks.check(&replicas, deep, |_, _, data| {
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
            self.driver.fail(violation);
        }
        self.check_durability();
    }

    /// Every committed entry is durable on a majority (so no acknowledged write can
    /// be lost to crashes of a minority).
    fn check_durability(&mut self) {
        let last = self.driver.order_checks.last_committed(static_order_id());
        let Some((index, term)) = last else { return };
        let holders = self
            .driver
            .radiants
            .iter()
            .filter(|radiant| radiant.disk.promised.holds(index, term))
            .count();
        // The committed membership, as of the entries committed so far. Entries committed
        // around a single-member change may have been counted under the membership before
        // it, so the smaller of the two majorities is the bound (consecutive majorities
        // overlap, which is what keeps such entries safe).
        let quorum = self.committed_membership.quorum().min(self.previous_membership.quorum());
        if holders < quorum {
            self.driver.fail(format!(
                "durability: committed ({term}, {index}) is durable on {holders} radiants, fewer \
                 than a majority ({quorum})"
            ));
        }
    }
}

/// Shards of the simulated static order (it serves them all).
const SHARD_COUNT: u32 = 8;

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
