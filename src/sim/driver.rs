//! The one simulator driver. Every mode of `radiant sim` is a [`Scenario`] over it: the
//! driver keeps the tick, the radiants and their disks, the seeded network, the crashes
//! and partitions of the faulty phase, restarts through the daemon's own recovery, and
//! the executor's queues; a scenario says how its radiants start (members of one static
//! order, or system radiants forming through their neighbours), what its clients and
//! operator do, and what it checks.
//!
//! One tick is one batch of the daemon's state thread: the faulty phase's crashes and
//! partitions and the scenario's own faults; radiants due start; fsyncs due complete;
//! messages due arrive; every radiant ticks; the clients act; every radiant flushes the
//! batch (writes and replicates what it appended); the scenario checks.

use std::collections::VecDeque;

use radiant_protocol::{ClientResponse, ErrorResponse, OrderId};

use super::disk::{SimStorage, StartFailure};
use super::invariants::OrderChecks;
use super::network::{Endpoint, Network, NetworkFaults, SimMessage};
use super::radiant::{self, SimRadiant};
use crate::core::order::{Membership, RecoveredOrder};
use crate::core::prng::Prng;
use crate::core::shards::ShardTable;
use crate::core::{Actions, ConnectionId, Input, ReplyTo};
use crate::storage::memory_file_system::DiskFaults;

/// Fault rates of the faulty phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFaults {
    /// Network loss, duplication and delay.
    pub network: NetworkFaults,
    /// Chance per tick that a live radiant crashes.
    pub crash_per_million: u64,
    /// Ticks a crashed radiant stays down (range, both ends included).
    pub down_ticks: (u64, u64),
    /// Chance per tick that a partition starts (when none is active).
    pub partition_per_million: u64,
    /// Ticks a partition lasts (range, both ends included).
    pub partition_ticks: (u64, u64),
    /// Longest fsync, ticks.
    pub fsync_max_ticks: u64,
    /// The disks' faults. Bit flips hit only the first radiant's disk, so at most one
    /// radiant refuses to start and its order keeps a majority.
    pub disk: DiskFaults,
}

/// The client endpoint of admin and operator requests: answers to it go to the
/// scenario, never to a simulated client.
pub const ADMIN_CLIENT: usize = usize::MAX / 2;

/// The peer address of radiant `index` (what its membership entry and the system's
/// configuration name it by).
pub fn address(index: usize) -> String {
    format!("10.0.{}.{}:7400", index / 250, index % 250 + 1)
}

/// The radiant at peer address `address`.
pub fn index_of(address: &str) -> Option<usize> {
    let host = address.strip_suffix(":7400")?.strip_prefix("10.0.")?;
    let (high, low) = host.split_once('.')?;
    Some(high.parse::<usize>().ok()? * 250 + low.parse::<usize>().ok()?.checked_sub(1)?)
}

/// What a run's faults did, for its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Crashes (including radiants stopped by a disk error).
    pub crashes: u64,
    /// Radiants that refused to start on a damaged disk (for good).
    pub refusals: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Snapshots radiants wrote of their own state.
    pub snapshots_written: u64,
    /// Snapshots radiants installed from their herald.
    pub snapshots_installed: u64,
}

/// The radiants, their network and disks, and the clock of one run.
#[derive(Debug)]
pub struct Driver {
    /// The run's seed.
    pub seed: u64,
    /// Every random choice of the run.
    pub prng: Prng,
    /// The tick.
    pub now: u64,
    /// The clients' clock for the history, nanoseconds: advanced at every delivery and
    /// every client turn, so no two events share an instant.
    pub clock_ns: u64,
    /// Every radiant, by index.
    pub radiants: Vec<SimRadiant>,
    /// The seeded network.
    pub network: Network<SimMessage>,
    /// The faults of the faulty phase.
    pub faults: SimFaults,
    /// Whether this is the faulty phase.
    pub faults_on: bool,
    /// Raft's safety properties across every order's replicas.
    pub order_checks: OrderChecks,
    /// What the faults did.
    pub counts: FaultCounts,
    partition_until: Option<u64>,
    /// The buffer `radiant::step` collects a core's actions in.
    pub(super) actions: Actions,
    /// Inputs the radiants' own effects produced, fed back after the current step.
    pub(super) followups: VecDeque<(usize, Input)>,
    /// The first bug found, with its tick.
    failure: Option<(u64, String)>,
}

/// One mode of the simulator.
pub trait Scenario {
    /// The driver it runs on.
    fn driver(&mut self) -> &mut Driver;
    /// Starts every radiant that is down and due (how it starts is the scenario's).
    fn start_due(&mut self);
    /// The scenario's own faults of the faulty phase, after the driver's crashes and
    /// partitions (membership changes, a herald lost as a radiant joins).
    fn inject_faults(&mut self);
    /// An answer reached client `client` (or [`ADMIN_CLIENT`]).
    fn on_reply(
        &mut self,
        client: usize,
        correlation: u64,
        result: Result<ClientResponse, ErrorResponse>,
    );
    /// The clients' and the operator's turn, inside the radiants' batch.
    fn run_clients(&mut self);
    /// The scenario's checks after the tick; a found bug goes to [`Driver::fail`].
    fn check(&mut self);
}

/// Runs one tick of `scenario`; the first bug found, with its tick, is the error.
pub fn tick<S: Scenario>(scenario: &mut S) -> Result<(), (u64, String)> {
    let driver = scenario.driver();
    driver.now += 1;
    if driver.faults_on {
        driver.crash_and_partition_at_random();
        scenario.inject_faults();
    }
    scenario.start_due();
    let driver = scenario.driver();
    for index in 0..driver.radiants.len() {
        if let Err(message) = radiant::complete_due_fsyncs(driver, index) {
            driver.fail(message);
        }
    }
    loop {
        let driver = scenario.driver();
        let now = driver.now;
        let Some((from, to, message)) = driver.network.next_due(now) else { break };
        driver.clock_ns += 1;
        match (from, to, message) {
            (_, Endpoint::Client(client), SimMessage::Reply { correlation, result }) => {
                scenario.on_reply(client, correlation, result);
            }
            (_, Endpoint::Radiant(index), SimMessage::Peer(message)) => {
                driver.step(index, Input::Message(message));
            }
            (_, Endpoint::Radiant(index), SimMessage::System(message)) => {
                driver.step(index, Input::System(message));
            }
            (Endpoint::Client(client), Endpoint::Radiant(index), request) => {
                let SimMessage::Request { correlation, request } = request else {
                    panic!("sim: client {client} sent {request:?}");
                };
                let reply_to = ReplyTo {
                    connection: ConnectionId(client as u64),
                    correlation_id: correlation,
                };
                driver.step(index, Input::Client { reply_to, request });
            }
            (from, to, message) => panic!("sim: {message:?} from {from:?} delivered to {to:?}"),
        }
    }
    let driver = scenario.driver();
    for index in 0..driver.radiants.len() {
        driver.step(index, Input::Tick);
    }
    scenario.run_clients();
    let driver = scenario.driver();
    for index in 0..driver.radiants.len() {
        driver.step(index, Input::Flush);
    }
    scenario.check();
    scenario.driver().failure.take().map_or(Ok(()), Err)
}

impl Driver {
    /// Radiants `0..radiants`, down and empty, each on its own disk seeded from `seed`
    /// (bit flips only on radiant 0's), serving `shard_count` shards.
    pub fn new(
        seed: u64,
        prng: Prng,
        radiants: usize,
        shard_count: u32,
        faults: SimFaults,
    ) -> Self {
        let radiants = (0..radiants)
            .map(|index| {
                let mut disk_faults = faults.disk;
                if index != 0 {
                    disk_faults.bit_flip_per_million = 0;
                }
                let disk_seed = seed ^ ((index as u64 + 1) << 48);
                SimRadiant::new(SimStorage::new(disk_seed, disk_faults), shard_count)
            })
            .collect();
        Driver {
            seed,
            prng,
            now: 0,
            clock_ns: 0,
            radiants,
            network: Network::new(),
            faults,
            faults_on: true,
            order_checks: OrderChecks::new(),
            counts: FaultCounts::default(),
            partition_until: None,
            actions: Actions::new(),
            followups: VecDeque::new(),
            failure: None,
        }
    }

    /// Runs radiant `index`'s core on `input` (nothing when it is down) and carries out
    /// what it asks for; a core assertion is a found bug.
    pub fn step(&mut self, index: usize, input: Input) {
        if let Err(message) = radiant::step(self, index, input) {
            self.fail(message);
        }
    }

    /// A found bug; the run ends after this tick with the first one.
    pub fn fail(&mut self, message: String) {
        let now = self.now;
        self.failure.get_or_insert((now, message));
    }

    /// Takes the bug found outside a tick (a hand-written scenario's own step).
    pub fn take_failure(&mut self) -> Option<(u64, String)> {
        self.failure.take()
    }

    /// The network's faults now: none once the faulty phase is over.
    fn network_faults(&self) -> NetworkFaults {
        if self.faults_on {
            self.faults.network.clone()
        } else {
            NetworkFaults::none()
        }
    }

    /// Sends `message` over the seeded network with this tick's faults.
    pub fn send(&mut self, from: Endpoint, to: Endpoint, message: SimMessage) {
        let faults = self.network_faults();
        self.network.send(self.now, from, to, message, &faults, &mut self.prng);
    }

    /// The tick a persist issued now has its fsync done.
    pub fn fsync_done_at(&mut self) -> u64 {
        self.now + self.prng.range(0, self.faults.fsync_max_ticks + 1)
    }

    /// Whether the snapshot being written is cut short by a crash, and after how many
    /// pairs: one snapshot in twenty of the faulty phase.
    pub fn snapshot_cut_short(&mut self) -> Option<usize> {
        let cut = self.faults_on && self.prng.chance(1, 20);
        cut.then(|| self.prng.range(0, 64) as usize)
    }

    /// The seed of radiant `index`'s core in its current incarnation.
    pub fn core_seed(&self, index: usize) -> u64 {
        self.seed ^ ((index as u64 + 1) << 40) ^ self.radiants[index].incarnation
    }

    /// A draw from a range given with both ends included.
    fn draw(&mut self, (low, high): (u64, u64)) -> u64 {
        self.prng.range(low, high + 1)
    }

    /// A power loss: the process and everything its disk had not made durable are gone;
    /// it restarts after a while.
    pub fn crash(&mut self, index: usize) {
        self.counts.crashes += 1;
        let down = self.draw(self.faults.down_ticks);
        self.radiants[index].crash(self.now + down);
    }

    /// A write or sync failed: the radiant stops (fail-stop, as the daemon does) and is
    /// restarted later from what its disk holds; the rest of its order carries on.
    pub fn stop_on_disk_error(&mut self, index: usize, error: &dyn std::fmt::Display) {
        self.radiants[index].disk.assert_error_was_injected(error);
        self.crash(index);
    }

    /// Radiant `index` could not start now (a disk error): it tries again later.
    pub fn start_later(&mut self, index: usize) {
        let down = self.draw(self.faults.down_ticks);
        self.radiants[index].restart_at = self.now + down;
    }

    /// Whether radiant `index` is down and may start now.
    pub fn due(&self, index: usize) -> bool {
        let radiant = &self.radiants[index];
        radiant.core.is_none() && self.now >= radiant.restart_at
    }

    /// Recovers radiant `index`'s order state from its disk through the daemon's own
    /// recovery, from `start` when the disk holds nothing, and checks it kept every
    /// promise, counting a new incarnation; `None` when it cannot start now (a disk
    /// error: later) or ever (damage: it refuses, a found bug unless a bit of its disk
    /// was flipped).
    pub fn recover(
        &mut self,
        index: usize,
        start: (Membership, (OrderId, ShardTable)),
    ) -> Option<RecoveredOrder> {
        let radiant = &mut self.radiants[index];
        radiant.machine.clear();
        match radiant.disk.recover(&radiant.machine, start) {
            Ok((broken, recovered)) => {
                if let Some(broken) = broken {
                    self.fail(format!("radiant {index} recovered less than it synced: {broken}"));
                }
                self.radiants[index].incarnation += 1;
                Some(recovered)
            }
            Err(StartFailure::Refused { reason, disk_was_damaged }) => {
                self.refuse(index, &reason, disk_was_damaged);
                None
            }
            Err(StartFailure::DiskError(_)) => {
                self.start_later(index);
                None
            }
        }
    }

    /// Radiant `index` refuses to start on its damaged disk: it stays down for good (a
    /// damaged log is repaired by replacing the radiant); a found bug when no bit of its
    /// disk was flipped.
    pub fn refuse(&mut self, index: usize, reason: &str, disk_was_damaged: bool) {
        self.radiants[index].restart_at = u64::MAX;
        self.counts.refusals += 1;
        if !disk_was_damaged {
            self.fail(format!("radiant {index} refused to start: {reason}"));
        }
    }

    /// Whether radiant `index` refused its damaged disk (it never starts again).
    pub fn refused(&self, index: usize) -> bool {
        self.radiants[index].restart_at == u64::MAX
    }

    /// The faulty phase's crashes and partitions for this tick.
    fn crash_and_partition_at_random(&mut self) {
        for index in 0..self.radiants.len() {
            if self.radiants[index].core.is_some()
                && self.prng.chance(self.faults.crash_per_million, 1_000_000)
            {
                self.crash(index);
            }
        }
        match self.partition_until {
            Some(until) if self.now >= until => {
                self.network.heal();
                self.partition_until = None;
            }
            None if self.prng.chance(self.faults.partition_per_million, 1_000_000) => {
                self.start_partition();
            }
            _ => {}
        }
    }

    /// Cuts a random radiant off one way from each other (a third of the time), or a
    /// run of up to half the radiants off both ways.
    fn start_partition(&mut self) {
        self.counts.partitions += 1;
        let all: Vec<Endpoint> = (0..self.radiants.len()).map(Endpoint::Radiant).collect();
        let isolated = self.prng.range(0, all.len() as u64) as usize;
        if self.prng.chance(1, 3) {
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
        let until = self.now + self.draw(self.faults.partition_ticks);
        self.partition_until = Some(until);
    }

    /// Ends the faulty phase: the network heals, the disks stop failing, and every
    /// radiant that is down starts at once, except one that refused its damaged disk.
    pub fn heal(&mut self) {
        self.faults_on = false;
        self.network.heal();
        self.partition_until = None;
        let now = self.now;
        for radiant in &mut self.radiants {
            radiant.disk.calm();
            // `u64::MAX`: it refused its damaged disk.
            if radiant.restart_at != u64::MAX {
                radiant.restart_at = radiant.restart_at.min(now);
            }
        }
    }

    /// Cuts radiant `index` off from every other radiant, both ways.
    pub fn isolate(&mut self, index: usize) {
        let all: Vec<Endpoint> = (0..self.radiants.len()).map(Endpoint::Radiant).collect();
        self.network.partition(&[Endpoint::Radiant(index)], &all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_back_to_their_radiant() {
        for index in [0, 1, 249, 250, 999] {
            assert_eq!(index_of(&address(index)), Some(index));
        }
        assert_eq!(index_of("10.0.0.0:7400"), None);
    }
}
