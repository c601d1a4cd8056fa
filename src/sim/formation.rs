//! The formation simulator (`radiant sim --formation`): brand-new radiants, each knowing
//! one neighbour (a ring or a star), form a system over a seeded faulty network while
//! some crash and restart from what they made durable and the network partitions; later
//! radiants join, half of the time as the herald of a random order crashes. Every tick it checks:
//!
//! - at most one controller per council term (over the whole run);
//! - every radiant that holds committed configuration n holds the same configuration n;
//! - every committed configuration is well formed: every shard belongs to exactly one
//!   existing order, every radiant is in one order or a spare;
//! - every associated radiant has a non-zero permanent id and the system's cluster id.
//!
//! Then the network heals and every radiant must converge on one configuration that
//! lists them all, with one controller and a herald in every order.

mod sharded;

use std::collections::BTreeMap;

use radiant_protocol::{
    ClientResponse, ClusterId, Configuration, ErrorResponse, Limits, OrderId, Term,
};

use super::driver::{self, address, Driver, Scenario, SimFaults};
use super::network::NetworkFaults;
use super::order::swarm_disk_faults;
use crate::core::order::{InjectedBug, OrderOptions, OrderRole, RecoveredOrder};
use crate::core::prng::Prng;
use crate::core::shards::ShardTable;
use crate::core::system::SystemOptions;
use crate::core::Radiant;
use crate::storage::memory_file_system::DiskFaults;
use crate::storage::system_file;
pub use sharded::Workload;

/// Ticks the healed network gets to converge.
const LIVENESS_TICKS: u64 = 6_000;

impl FormationOptions {
    /// Sizes the workload of a sharded run: `clients` clients sharing `operations` in
    /// all, with enough ticks for them (about twelve a client's operation takes, so the
    /// faulty phase holds most of them).
    pub fn with_workload(mut self, clients: Option<usize>, operations: Option<u64>) -> Self {
        let Some(workload) = self.workload.as_mut() else { return self };
        if let Some(clients) = clients {
            workload.clients = clients.max(1);
        }
        if let Some(operations) = operations {
            workload.operations_per_client = operations.div_ceil(workload.clients as u64);
            self.ticks = self.ticks.max(workload.operations_per_client * 12);
        }
        self
    }
}

/// Two seeds in three snapshot every 8 to 80 entries, the rest never (drawn apart from
/// the other choices, so adding it left every other choice of a seed as it was).
fn snapshot_interval_entries(seed: u64) -> u64 {
    let mut prng = Prng::new(seed ^ 0x5E5E_5E5E);
    if prng.chance(2, 3) {
        prng.range(8, 81)
    } else {
        u64::MAX / 2
    }
}

/// How the radiants point at their neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Radiant i beacons radiant i+1 (mod the founders).
    Ring,
    /// Everyone beacons radiant 0; radiant 0 beacons radiant 1.
    Star,
}

/// One formation run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormationOptions {
    /// Fixes every random choice.
    pub seed: u64,
    /// Radiants that form the system (`bootstrap_expect`).
    pub founders: usize,
    /// Radiants that join later.
    pub joiners: usize,
    /// Target order size.
    pub order_size: u32,
    /// Shards.
    pub shard_count: u32,
    /// Ticks of the faulty phase.
    pub ticks: u64,
    /// Neighbour layout.
    pub topology: Topology,
    /// The faults of the faulty phase. Bit flips (radiant 0's disk only) start once the
    /// system has formed.
    pub faults: SimFaults,
    /// Clients, an operator moving shards, and the shard invariants (the sharded
    /// simulator); none for formation alone.
    pub workload: Option<Workload>,
    /// Entries between an order's snapshots (`u64::MAX / 2`: none). A snapshot holds
    /// every section the daemon writes: data, sessions, membership, council, shard table.
    pub snapshot_interval_entries: u64,
}

impl FormationOptions {
    /// A random run for `seed`: 1 to 7 founders, 0 to 4 joiners, ring or star, with
    /// lost and delayed messages, crashes and partitions.
    pub fn swarm(seed: u64) -> Self {
        let mut prng = Prng::new(seed ^ 0xF0F0_F0F0);
        let founders = prng.range(1, 8) as usize;
        FormationOptions {
            seed,
            founders,
            joiners: prng.range(0, 5) as usize,
            order_size: 3,
            shard_count: 16,
            ticks: 3_000,
            topology: if prng.chance(1, 2) { Topology::Ring } else { Topology::Star },
            faults: SimFaults {
                network: NetworkFaults {
                    loss_per_million: prng.range(0, 150_000),
                    duplicate_per_million: prng.range(0, 20_000),
                    delay_min_ticks: 1,
                    delay_max_ticks: prng.range(1, 12),
                },
                crash_per_million: prng.range(0, 400),
                down_ticks: (20, 399),
                partition_per_million: prng.range(0, 1_500),
                partition_ticks: (50, 599),
                fsync_max_ticks: 3,
                disk: swarm_disk_faults(&mut prng),
            },
            workload: None,
            snapshot_interval_entries: snapshot_interval_entries(seed),
        }
        .with_bit_flips()
    }

    /// Half the runs of three or more founders in orders of three flip bits in radiant
    /// 0's synced data once the system has formed (drawn apart from the other choices):
    /// it may then refuse its damaged disk and stay down for good, which an order of
    /// three survives. Smaller orders or a system still forming would not (an operator
    /// replaces such a radiant; these runs do not play that), so those runs flip none.
    fn with_bit_flips(mut self) -> Self {
        let mut prng = Prng::new(self.seed ^ 0xB17F_11B5);
        let survivable = self.founders >= 3 && self.order_size == 3;
        self.faults.disk.bit_flip_per_million =
            if survivable && prng.chance(1, 2) { prng.range(100_000, 1_000_001) as u32 } else { 0 };
        self
    }

    /// A random sharded run for `seed`: a formation swarm of 4 to 7 founders in orders
    /// of 2 or 3 (so two or three orders) and 0 to 4 joiners, with 2 to 5 clients over
    /// 8 keys and an operator who moves shards and now and then dissolves an order.
    pub fn sharded(seed: u64) -> Self {
        let mut options = FormationOptions::sharded_with_removals(seed);
        if let Some(workload) = options.workload.as_mut() {
            workload.remove_per_million = 0;
        }
        options.with_bit_flips()
    }

    /// As `sharded`, and the operator also removes random radiants now and then (kept
    /// apart so the default sweep's figures stay comparable). No bit flips: removals can
    /// shrink an order to two, which a member refusing its damaged disk would leave
    /// without a majority until an operator recovered it.
    pub fn sharded_with_removals(seed: u64) -> Self {
        let mut options = FormationOptions::swarm(seed);
        let mut prng = Prng::new(seed ^ 0x5AA5_5AA5);
        options.founders = prng.range(4, 8) as usize;
        options.order_size = prng.range(2, 4) as u32;
        options.workload = Some(Workload {
            clients: prng.range(2, 6) as usize,
            operations_per_client: prng.range(30, 120),
            keys: 8,
            move_per_million: prng.range(0, 4_000),
            leave_per_million: prng.range(0, 400),
            remove_per_million: prng.range(0, 400),
            injected_bug: InjectedBug::None,
        });
        options.faults.disk.bit_flip_per_million = 0;
        options
    }

    /// The command that replays this run.
    pub fn reproduce_command(&self) -> String {
        let kind = match &self.workload {
            Some(workload) if workload.remove_per_million > 0 => "sharded --remove-radiants",
            Some(_) => "sharded",
            None => "formation",
        };
        format!("radiant sim --{kind} --seed {}", self.seed)
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct FormationReport {
    /// Radiants in the end (founders and joiners).
    pub radiants: usize,
    /// The final configuration number.
    pub configuration: u64,
    /// The final order sizes.
    pub orders: Vec<usize>,
    /// Distinct controller terms seen.
    pub controller_terms: usize,
    /// Crashes injected.
    pub crashes: u64,
    /// Radiants that refused their damaged disk (bit flips) and stayed down.
    pub refusals: u64,
    /// Partitions injected.
    pub partitions: u64,
    /// Snapshots written by radiants and installed from heralds.
    pub snapshots: (u64, u64),
    /// Tick at which the healed system had converged.
    pub converged_at: u64,
    /// Messages delivered and dropped.
    pub messages: (u64, u64),
    /// Client operations answered and started (sharded runs).
    pub operations: (usize, usize),
    /// Operator moves, leaves and radiant removals requested (sharded runs).
    pub operator: (u64, u64, u64),
    /// The clients' history (sharded runs), for an outside checker.
    pub history: Vec<crate::sim::history::Operation>,
}

/// A formation or sharded run: a scenario of the [`Driver`].
struct Formation {
    driver: Driver,
    options: FormationOptions,
    /// When each radiant first starts.
    start_at: Vec<u64>,
    controllers: BTreeMap<Term, usize>,
    configurations: BTreeMap<u64, Configuration>,
    cluster: ClusterId,
    report: FormationReport,
    /// Clients and shard invariants (sharded runs).
    shards: Option<sharded::Shards>,
    /// Whether radiant 0's disk flips bits yet (once the system has formed).
    flipping: bool,
    /// The neighbour each radiant beacons in its current start.
    neighbors: Vec<Option<usize>>,
}

/// Runs one formation simulation.
pub fn run(options: FormationOptions) -> Result<FormationReport, String> {
    let mut formation = Formation::new(options);
    formation.run()
}

impl Formation {
    fn new(options: FormationOptions) -> Self {
        let mut prng = Prng::new(options.seed);
        let total = options.founders + options.joiners;
        let start_at = (0..total)
            .map(|index| {
                if index < options.founders {
                    prng.range(0, 60)
                } else {
                    prng.range(options.ticks / 4, options.ticks * 3 / 4)
                }
            })
            .collect();
        let shard_count = options.shard_count;
        let driver = Driver::new(options.seed, prng, total, shard_count, options.faults.clone());
        let unflipped = DiskFaults { bit_flip_per_million: 0, ..options.faults.disk };
        driver.radiants[0].disk.set_faults(unflipped);
        Formation {
            driver,
            start_at,
            controllers: BTreeMap::new(),
            configurations: BTreeMap::new(),
            cluster: ClusterId::UNSET,
            report: FormationReport { radiants: total, ..FormationReport::default() },
            shards: options.workload.as_ref().map(|workload| sharded::Shards::new(workload, total)),
            flipping: false,
            neighbors: vec![None; total],
            options,
        }
    }

    fn run(&mut self) -> Result<FormationReport, String> {
        while self.driver.now < self.options.ticks {
            self.tick()?;
        }
        self.driver.heal();
        let limit = self.driver.now + LIVENESS_TICKS.max(self.options.ticks);
        while self.driver.now < limit {
            self.tick()?;
            if self.driver.now.is_multiple_of(50) && self.converged() && self.workload_finished() {
                let driver = &self.driver;
                self.report.converged_at = driver.now;
                self.report.controller_terms = self.controllers.len();
                self.report.messages = (driver.network.delivered, driver.network.dropped);
                self.report.crashes = driver.counts.crashes;
                self.report.refusals = driver.counts.refusals;
                self.report.partitions = driver.counts.partitions;
                let counts = driver.counts;
                self.report.snapshots = (counts.snapshots_written, counts.snapshots_installed);
                self.check_history()?;
                if let Some(shards) = &mut self.shards {
                    self.report.operations = shards.operations();
                    self.report.operator = (shards.moves, shards.leaves, shards.removes);
                    self.report.history = std::mem::take(&mut shards.history);
                }
                return Ok(self.report.clone());
            }
        }
        let converged = self.converged();
        let workload = self.shards.as_ref().map(|shards| {
            let number = self.report.configuration;
            (
                shards.clients_done(),
                self.shards_settled(number),
                shards.operations(),
                shards.stuck(),
            )
        });
        Err(format!(
            "no convergence within {LIVENESS_TICKS} healed ticks (system converged: {converged}; \
             clients done, shards settled, operations answered/started: {workload:?}): {}",
            self.describe()
        ))
    }

    /// Every client finished and every order settled on the final configuration.
    fn workload_finished(&self) -> bool {
        let Some(shards) = &self.shards else { return true };
        let number = self.report.configuration;
        shards.clients_done() && self.shards_settled(number)
    }

    fn tick(&mut self) -> Result<(), String> {
        driver::tick(self).map_err(|(tick, message)| format!("tick {tick}: {message}"))
    }

    /// A join during a herald failover: the herald of a random order dies as the
    /// newcomer arrives.
    fn crash_a_herald(&mut self) {
        let driver = &mut self.driver;
        let heralds: Vec<usize> = (0..driver.radiants.len())
            .filter(|&index| {
                let order = driver.radiants[index].core.as_ref().and_then(Radiant::order);
                order.is_some_and(|order| order.role() == OrderRole::Herald)
            })
            .collect();
        if !heralds.is_empty() {
            let pick = driver.prng.range(0, heralds.len() as u64) as usize;
            driver.crash(heralds[pick]);
        }
    }

    /// The radiant `index` beacons: its place in the topology, or, when that radiant
    /// refused its damaged disk, the next founder that did not (as an operator would
    /// restart a radiant whose neighbour is gone with another one).
    fn neighbor(&self, index: usize) -> Option<usize> {
        let founders = self.options.founders;
        let first = match self.options.topology {
            _ if founders == 1 && index == 0 => None,
            Topology::Ring if index < founders => Some((index + 1) % founders),
            Topology::Ring => Some(index % founders),
            Topology::Star if index == 0 => Some(1),
            Topology::Star => Some(0),
        }?;
        (0..founders)
            .map(|offset| (first + offset) % founders)
            .find(|&candidate| candidate != index && !self.driver.refused(candidate))
    }

    /// Reads the radiant's system file, then recovers its order's state through the
    /// daemon's own recovery, checking both kept every promise; `None` when it cannot
    /// start now (a disk error: it tries again later) or a found bug stops the run.
    fn recover_storage(&mut self, index: usize) -> Option<RecoveredOrder> {
        let shard_count = self.options.shard_count;
        let radiant = &mut self.driver.radiants[index];
        let on_disk = match system_file::read(&radiant.disk.data_dir()) {
            Ok(record) => record.unwrap_or_default(),
            Err(system_file::SystemFileError::Read { .. }) => {
                self.driver.start_later(index);
                return None;
            }
            Err(damaged) => {
                let reason = format!("its system file: {damaged}");
                let disk_was_damaged = radiant.disk.was_damaged();
                self.driver.refuse(index, &reason, disk_was_damaged);
                return None;
            }
        };
        if on_disk != radiant.record && radiant.record_unsure.as_ref() != Some(&on_disk) {
            let message = format!(
                "radiant {index}: the system file holds {on_disk:?}, not the record last \
                 written {:?}",
                radiant.record
            );
            self.driver.fail(message);
            return None;
        }
        radiant.record = on_disk;
        radiant.record_unsure = None;
        // As the daemon starts a system radiant: before the record names an order there
        // is nothing to replay, and the order is moot.
        let order_id = radiant.record.order_id.unwrap_or(OrderId::new(1).expect("nonzero"));
        let membership = radiant.record.initial_membership.clone();
        let start = (membership, (order_id, ShardTable::unassigned(shard_count)));
        self.driver.recover(index, start)
    }

    /// Starts (or restarts) a radiant from its durable record and log.
    fn start(&mut self, index: usize) {
        let founders = self.options.founders;
        let neighbor = self.neighbor(index);
        self.neighbors[index] = neighbor;
        let options = SystemOptions {
            peer_address: address(index),
            client_address: format!("client-{index}"),
            resp_address: format!("resp-{index}"),
            neighbor: neighbor.map(address),
            bootstrap_expect: founders as u32,
            order_size: self.options.order_size,
            shard_count: self.options.shard_count,
            bootstrap_backoff_ticks: 20,
            beacon_interval_ticks: 10,
            election_timeout_ticks: 20,
            heartbeat_interval_ticks: 4,
        };
        let bug = self.options.workload.as_ref().map_or(InjectedBug::None, |w| w.injected_bug);
        let Some(recovered) = self.recover_storage(index) else { return };
        let record = self.driver.radiants[index].record.clone();
        if let Some(order_id) = record.order_id {
            self.driver.order_checks.restarted(index, order_id, recovered.applied_index);
        }
        let seed = self.driver.core_seed(index);
        let template = order_template(&self.options, bug);
        let core = Radiant::forming(options, record, template, recovered, seed);
        self.driver.radiants[index].run(core);
    }

    // ===== invariants =====

    fn check_system(&mut self) -> Result<(), String> {
        // The replicas of the system's own orders: a bootstrap that lost (another cluster
        // id, or none yet) may have run an order of the same id with another log.
        let cluster = self.cluster;
        let replicas: Vec<(usize, &crate::core::Order)> = self
            .driver
            .radiants
            .iter()
            .enumerate()
            .filter(|(_, node)| node.record.is_associated() && node.record.cluster == cluster)
            .filter_map(|(index, node)| Some((index, node.core.as_ref()?.order()?)))
            .collect();
        let deep = self.driver.now.is_multiple_of(16);
        self.driver.order_checks.check(&replicas, deep, |_, _, _| {})?;
        for index in 0..self.driver.radiants.len() {
            let node = &self.driver.radiants[index];
            if let Some(term) =
                node.core.as_ref().and_then(Radiant::system).and_then(|s| s.controller_term())
            {
                let first = *self.controllers.entry(term).or_insert(index);
                if first != index {
                    return Err(format!(
                        "radiants {first} and {index} are both controller in council term {term}"
                    ));
                }
            }
            if let Some(configuration) = node.record.configuration.clone() {
                self.check_configuration(index, &configuration)?;
            }
            let record = &self.driver.radiants[index].record;
            // ERROR means "you hold another system's data": never true of a radiant
            // whose record holds this system's cluster id.
            let system = self.driver.radiants[index].core.as_ref().and_then(Radiant::system);
            let refused = system.is_some_and(|system| system.is_refused());
            if refused && record.is_associated() && record.cluster == self.cluster {
                return Err(format!("radiant {index} of the system's own cluster is in ERROR"));
            }
            if record.is_associated() {
                let member = record
                    .member
                    .ok_or_else(|| format!("radiant {index} associated without an id"))?;
                let listed = record.configuration.as_ref().is_some_and(|c| {
                    c.radiants.get(&member).is_some_and(|a| a.peer == address(index))
                });
                if !listed
                    && record
                        .configuration
                        .as_ref()
                        .is_some_and(|c| c.radiants.values().any(|a| a.peer == address(index)))
                {
                    return Err(format!(
                        "radiant {index} has id {member} but its configuration lists it otherwise"
                    ));
                }
                if !record.cluster.is_set() {
                    return Err(format!("radiant {index} is associated without a cluster id"));
                }
                if !self.cluster.is_set() {
                    self.cluster = record.cluster;
                } else if self.cluster != record.cluster {
                    return Err(format!(
                        "two cluster ids: {} and {}",
                        self.cluster, record.cluster
                    ));
                }
            }
        }
        Ok(())
    }

    /// A committed configuration is well formed and the same as every other holder's.
    fn check_configuration(
        &mut self,
        index: usize,
        configuration: &Configuration,
    ) -> Result<(), String> {
        configuration.check().map_err(|reason| {
            format!(
                "radiant {index} holds a malformed configuration {}: {reason}",
                configuration.number
            )
        })?;
        if configuration.shards.len() != self.options.shard_count as usize {
            return Err(format!(
                "configuration {} has {} shards",
                configuration.number,
                configuration.shards.len()
            ));
        }
        // A controller re-stamps a configuration it inherited with its own council
        // term (as a new Raft leader commits through an entry of its own): the
        // same configuration with a later stamp.
        let content = Configuration { council_term: 0, ..configuration.clone() };
        let number = configuration.number;
        if let Some(known) = self.configurations.get(&number) {
            if *known != content {
                return Err(format!(
                    "radiant {index} holds a different committed configuration \
                     {number}:\n{configuration:?}\nvs\n{known:?}"
                ));
            }
            return Ok(());
        }
        // A new committed configuration: it must follow the one before and lead to the
        // one after, where those are known (the controller's rules of change).
        let before = self.configurations.get(&(number - 1));
        let after = self.configurations.get(&(number + 1));
        let pairs = [before.map(|before| (before, &content)), after.map(|after| (&content, after))];
        for (earlier, later) in pairs.into_iter().flatten() {
            earlier
                .check_successor(later)
                .map_err(|reason| format!("committed configurations break a rule: {reason}"))?;
        }
        self.configurations.insert(number, content);
        Ok(())
    }

    /// Everyone holds one configuration listing everyone, one controller is heard by
    /// all, and every order has a herald.
    fn converged(&mut self) -> bool {
        let Some(newest) = self.configurations.values().next_back().cloned() else {
            return false;
        };
        let listed = |configuration: &Configuration, index: usize| {
            configuration.radiants.values().any(|radiant| radiant.peer == address(index))
        };
        // Radiants an order's `leave` removed are out of the system: they need not agree;
        // nor need one that refused its damaged disk (it never starts again).
        let removed = |index: usize| {
            let left =
                !listed(&newest, index) && self.configurations.values().any(|c| listed(c, index));
            left || self.driver.refused(index)
        };
        let mut controllers = Vec::new();
        let mut heralds: BTreeMap<OrderId, usize> = BTreeMap::new();
        for (index, node) in
            self.driver.radiants.iter().enumerate().filter(|(index, _)| !removed(*index))
        {
            let Some(core) = &node.core else { return false };
            let Some(configuration) = &node.record.configuration else { return false };
            if configuration.number != newest.number || !listed(&newest, index) {
                return false;
            }
            if core.system().is_some_and(|system| system.is_controller()) {
                controllers.push(index);
            }
            if let Some(order) = core.order() {
                if order.role() == OrderRole::Herald
                    && newest.orders.contains_key(&order.order_id())
                {
                    *heralds.entry(order.order_id()).or_default() += 1;
                }
            }
        }
        if controllers.len() == 1 && heralds.len() == newest.orders.len() {
            self.report.configuration = newest.number;
            self.report.orders = newest.orders.values().map(|members| members.len()).collect();
            return true;
        }
        false
    }

    fn describe(&self) -> String {
        self.driver
            .radiants
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let core = node.core.as_ref();
                let system = core.and_then(Radiant::system);
                let state = system.map(|s| {
                    let status = s.status(core.and_then(Radiant::order));
                    format!("{} knows {}", status.state.as_str(), status.known)
                });
                format!(
                    "\n  radiant {index} ({}): member {:?}, configuration {}, accepted {:?}, \
                     controller {:?}, order {:?} (role, term, commit, last) {:?}",
                    state.unwrap_or_else(|| "down".into()),
                    node.record.member.map(|m| m.get()),
                    node.record.committed,
                    node.record.accepted.as_ref().map(|c| c.number),
                    system.and_then(|s| s.controller_term()),
                    core.and_then(Radiant::order).map(|o| o.order_id().get()),
                    core.and_then(Radiant::order).map(|o| (
                        o.role(),
                        o.term(),
                        o.commit_index(),
                        o.last_index(),
                        o.applied_index(),
                        o.membership().voters.iter().map(|m| m.get()).collect::<Vec<_>>(),
                        o.shards().moving(),
                        o.state().to_string()
                    )),
                )
            })
            .collect()
    }
}

fn order_template(options: &FormationOptions, injected_bug: InjectedBug) -> OrderOptions {
    OrderOptions {
        cluster: ClusterId::UNSET,
        order_id: OrderId::new(1).expect("nonzero"),
        shard_count: options.shard_count,
        snapshot_interval_entries: options.snapshot_interval_entries,
        snapshot_interval_bytes: u64::MAX / 2,
        election_timeout_ticks: 20,
        heartbeat_interval_ticks: 4,
        replication_max_bytes: 64 << 10,
        max_inflight_appends: 4,
        // A lagging member past this many entries gets a snapshot: small enough here that
        // snapshotting seeds also install them.
        catch_up_entries: (options.snapshot_interval_entries / 2).clamp(4, 1_000),
        limits: Limits::DEFAULT,
        injected_bug,
    }
}

impl Scenario for Formation {
    fn driver(&mut self) -> &mut Driver {
        &mut self.driver
    }

    /// Founders start at their drawn tick; joiners at theirs once the system exists, as
    /// an operator would start them, half of the time as a herald crashes.
    fn start_due(&mut self) {
        for index in 0..self.driver.radiants.len() {
            // A radiant still looking for its system through a neighbour that refused its
            // damaged disk is restarted with another (what its operator would do).
            let radiant = &self.driver.radiants[index];
            let lost = self.neighbors[index].is_some_and(|neighbor| self.driver.refused(neighbor));
            if radiant.core.is_some() && !radiant.record.is_associated() && lost {
                self.driver.crash(index);
            }
            let formed = index < self.options.founders || !self.configurations.is_empty();
            if !formed || self.driver.now < self.start_at[index] || !self.driver.due(index) {
                continue;
            }
            let first_join =
                index >= self.options.founders && self.driver.radiants[index].incarnation == 0;
            self.start(index);
            if first_join && self.driver.faults_on && self.driver.prng.chance(1, 2) {
                self.crash_a_herald();
            }
        }
    }

    /// Now and then, in a sharded run, a herald moving a shard crashes; once the system
    /// has formed, radiant 0's disk starts flipping bits (where the run flips any).
    fn inject_faults(&mut self) {
        if self.shards.is_some() {
            self.crash_during_a_move();
        }
        if !self.flipping && !self.configurations.is_empty() {
            self.flipping = true;
            self.driver.radiants[0].disk.set_faults(self.options.faults.disk);
        }
    }

    fn on_reply(
        &mut self,
        client: usize,
        correlation: u64,
        result: Result<ClientResponse, ErrorResponse>,
    ) {
        self.on_client_reply(client, correlation, result);
    }

    fn run_clients(&mut self) {
        self.tick_clients();
    }

    fn check(&mut self) {
        if let Err(message) = self.check_system().and_then(|()| self.check_shards()) {
            self.driver.fail(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_ring_of_six_forms_two_orders_of_three() {
        let options = FormationOptions {
            seed: 7,
            founders: 6,
            joiners: 3,
            order_size: 3,
            shard_count: 16,
            ticks: 1_500,
            topology: Topology::Ring,
            faults: SimFaults {
                network: NetworkFaults::none(),
                crash_per_million: 0,
                down_ticks: (20, 399),
                partition_per_million: 0,
                partition_ticks: (50, 599),
                fsync_max_ticks: 3,
                disk: DiskFaults::default(),
            },
            workload: None,
            snapshot_interval_entries: 16,
        };
        let report = run(options).expect("forms");
        assert_eq!(report.orders, [3, 3, 3]);
    }

    /// The first sharded seed of 1..=300 that fails with `bug` injected, and how.
    fn first_failure_with(bug: InjectedBug) -> Option<(u64, String)> {
        (1..=300).find_map(|seed| {
            let mut options = FormationOptions::sharded(seed);
            if let Some(workload) = options.workload.as_mut() {
                workload.injected_bug = bug;
            }
            Some((seed, run(options).err()?))
        })
    }

    #[test]
    fn an_order_that_keeps_serving_a_frozen_shard_is_caught() {
        let (seed, failure) = first_failure_with(InjectedBug::ServeAfterFreeze)
            .expect("no seed caught the losing order serving a frozen shard");
        println!("caught at seed {seed}: {failure}");
        assert!(failure.contains("not linearizable"), "seed {seed} failed otherwise: {failure}");
    }

    #[test]
    fn an_order_whose_members_vote_twice_in_a_term_is_caught_by_the_order_checks() {
        // Two heralds of one order's term: before the order checks were shared, the
        // formation simulator judged orders only through the clients' history.
        let (seed, failure) = first_failure_with(InjectedBug::VoteTwice)
            .expect("no seed saw two heralds of an order in one term");
        println!("caught at seed {seed}: {failure}");
        assert!(failure.contains("election safety"), "seed {seed} failed otherwise: {failure}");
    }

    fn first_seeds_pass(seeds: std::ops::RangeInclusive<u64>, make: fn(u64) -> FormationOptions) {
        for seed in seeds {
            let options = make(seed);
            if let Err(failure) = run(options.clone()) {
                panic!("seed {seed} ({options:?}): {failure}");
            }
        }
    }

    #[test]
    fn the_first_sharded_seeds_keep_every_invariant_and_converge() {
        first_seeds_pass(1..=10, FormationOptions::sharded);
    }

    #[test]
    fn a_radiant_that_refuses_its_damaged_disk_stays_down_and_the_rest_converge() {
        // Seeds 20 and 24 flip bits on radiant 0's disk that it then refuses.
        let refusals: u64 = (20..=24)
            .map(|seed| match run(FormationOptions::swarm(seed)) {
                Ok(report) => report.refusals,
                Err(failure) => panic!("seed {seed}: {failure}"),
            })
            .sum();
        assert!(refusals > 0, "no seed of 20..=24 refused a damaged disk");
    }

    #[test]
    fn the_first_swarm_seeds_keep_every_invariant_and_converge() {
        first_seeds_pass(1..=20, FormationOptions::swarm);
    }
}
