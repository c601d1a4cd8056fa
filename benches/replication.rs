//! The replication pipeline, end to end through real cores, the real codec and real WALs:
//! three in-process replicas of one order (one herald, two followers) driven on one thread.
//!
//! What one iteration measures: the herald receives N client `Put`s, and the driver runs
//! rounds until the herald has applied all N (`Action::Apply` with a `reply_to`), which is
//! the moment the daemon would answer the clients. A round is:
//! 1. deliver every frame sent in the previous round: each `Action::Send` was encoded with
//!    `Message::Peer(..).encode` into the receiver's byte stream, and is taken back out with
//!    `decode_frame` + `Message::decode`, as the reactor does;
//! 2. each `Action::Persist` was written to that replica's own `Wal` when it was emitted
//!    (hard state, truncation, entries: the order `server/wal_thread.rs` uses); now every
//!    replica that wrote something syncs once (group commit: one fsync covers the whole
//!    round) and is told `Input::Durable` for the highest sequence it wrote.
//!
//! How it maps to the daemon: the core, the codec and the WAL calls are the daemon's. The
//! state thread's batching of a burst of `Persist` actions into one fsync is the round.
//! Cases: value size 100 B and 4 KiB, 1/16/128 puts per iteration, `replication_max_bytes`
//! 1 MiB, the WAL on the real disk (`CARGO_TARGET_TMPDIR`) and on tmpfs (`/dev/shm`).
//!
//! What it leaves out: the reactor's sockets and the loopback network, the state, WAL and
//! shard-worker threads (so nothing overlaps: the three replicas' fsyncs of one round run one
//! after another, where three machines would run them at once), the state machine (applies
//! are counted, not executed), ticks (logical time stands still during the workload, so no
//! heartbeats or election timers interfere) and snapshots (the interval is huge). To keep
//! memory and disk bounded, a cluster is rebuilt, untimed, once its log passes 64 MiB.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;
use radiant::core::effects;
use radiant::core::order::membership::member_address;
use radiant::core::order::InjectedBug;
use radiant::core::shards::ShardEffect;
use radiant::core::system::SystemRecord;
use radiant::core::HardState;
use radiant::core::{
    Action, Actions, ConnectionId, Input, Membership, OrderOptions, OrderRole, Radiant,
    RecoveredOrder, ReplyTo, Tick,
};
use radiant::storage::wal::{Wal, WalOptions};
use radiant_protocol::slots::ShardId;
use radiant_protocol::{
    decode_frame, ClientRequest, ClientResponse, Command, ErrorResponse, Limits, LogEntry,
    LogIndex, MemberId, Message, OrderId, PeerHeader, PeerMessage, SystemMessage, Term,
};
use tempfile::TempDir;

/// Replicas in the order.
const REPLICAS: usize = 3;
/// Most ticks to wait for a herald after start.
const MAX_ELECTION_TICKS: u64 = 1_000;
/// Most rounds one workload (or one settling) may take before the bench calls it stuck.
const MAX_ROUNDS: u64 = 10_000;
/// Entry data a cluster accumulates (in memory and on disk) before it is rebuilt.
const REBUILD_AFTER_BYTES: u64 = 64 << 20;
/// The daemon's default `replication_max_bytes`.
const REPLICATION_MAX_BYTES: u64 = 1 << 20;
const VALUE_SIZES_BYTES: [usize; 2] = [100, 4096];
const BATCH_SIZES: [usize; 3] = [1, 16, 128];

/// Counters of the timed part of the iterations, to explain the figures.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    iterations: u64,
    rounds: u64,
    syncs: u64,
    sync_time: Duration,
    frames: u64,
    frame_bytes: u64,
    elapsed: Duration,
}

impl Stats {
    fn merge(&mut self, other: &Stats) {
        self.iterations += other.iterations;
        self.rounds += other.rounds;
        self.syncs += other.syncs;
        self.sync_time += other.sync_time;
        self.frames += other.frames;
        self.frame_bytes += other.frame_bytes;
        self.elapsed += other.elapsed;
    }
}

/// One replica: its core and its own WAL in its own directory.
struct Replica {
    core: Radiant,
    // Declared before the directory so the segment file closes before the directory goes.
    wal: Wal,
    /// The highest `Persist` sequence written since the last sync.
    written: Option<u64>,
    _directory: TempDir,
}

impl Replica {
    fn new(parent: &Path, member: MemberId, options: OrderOptions) -> Replica {
        let directory = tempfile::tempdir_in(parent).expect("create a WAL directory");
        let (wal, recovered) =
            Wal::open(&radiant::storage::DataDir::real(directory.path()), WalOptions::default())
                .expect("open a fresh WAL");
        assert!(recovered.entries.is_empty(), "a fresh WAL holds no entries");
        let recovered = RecoveredOrder { membership: membership(), ..RecoveredOrder::default() };
        let seed = 0x5EED_0000 ^ member.get();
        let core = Radiant::new(member, options, recovered, seed);
        Replica { core, wal, written: None, _directory: directory }
    }

    /// Writes one `Persist` (not synced), in the order the WAL thread uses.
    fn persist(
        &mut self,
        sequence: u64,
        hard_state: Option<HardState>,
        truncate_from: Option<LogIndex>,
        entries: &[LogEntry],
    ) {
        assert!(
            self.written.is_none_or(|written| written < sequence),
            "persist sequence {sequence} after {:?}",
            self.written
        );
        if let Some(hard_state) = hard_state {
            self.wal.save_hard_state(hard_state).expect("wal: save hard state");
        }
        if let Some(from) = truncate_from {
            self.wal.truncate_suffix(from).expect("wal: truncate suffix");
        }
        self.wal.append(entries).expect("wal: append");
        self.written = Some(sequence);
    }
}

fn member(index: usize) -> MemberId {
    MemberId::new(index as u64 + 1).expect("member ids start at 1")
}

fn membership() -> Membership {
    Membership::with_voters((0..REPLICAS).map(|index| {
        let name = format!("bench-{}", index + 1);
        (member(index), member_address(&name, &name))
    }))
}

fn order_options(replication_max_bytes: u64) -> OrderOptions {
    OrderOptions {
        cluster: radiant_protocol::ClusterId::UNSET,
        order_id: OrderId::new(1).expect("nonzero"),
        shard_count: 64,
        snapshot_interval_entries: u64::MAX / 2,
        snapshot_interval_bytes: u64::MAX / 2,
        election_timeout_ticks: 30,
        heartbeat_interval_ticks: 5,
        replication_max_bytes,
        max_inflight_appends: 8,
        catch_up_entries: 1_000,
        limits: Limits::DEFAULT,
        injected_bug: InjectedBug::None,
    }
}

/// Three replicas, the byte streams between them, and the herald's apply count.
struct Cluster {
    replicas: Vec<Replica>,
    /// Frames addressed to each replica, delivered in the next round.
    inbound: [BytesMut; REPLICAS],
    now: Tick,
    actions: Actions,
    herald: usize,
    /// Puts the herald applied (each would be answered).
    applied: u64,
    /// Entry data put since the cluster was built.
    put_bytes: u64,
    limits: Limits,
    stats: Stats,
    /// Latency of each fsync, microseconds, since the case last took them.
    sync_latencies_us: Vec<u64>,
}

impl Cluster {
    /// Three fresh replicas with WALs under `parent`, ticked until one is herald and its
    /// first entry (the herald's no-op) is committed everywhere it needs to be.
    fn new(parent: &Path, replication_max_bytes: u64) -> Cluster {
        let options = order_options(replication_max_bytes);
        let replicas =
            (0..REPLICAS).map(|index| Replica::new(parent, member(index), options.clone()));
        let mut cluster = Cluster {
            replicas: replicas.collect(),
            inbound: Default::default(),
            now: Tick(0),
            actions: Actions::new(),
            herald: usize::MAX,
            applied: 0,
            put_bytes: 0,
            limits: Limits::DEFAULT,
            stats: Stats::default(),
            sync_latencies_us: Vec::new(),
        };
        cluster.herald = cluster.elect();
        cluster
    }

    fn elect(&mut self) -> usize {
        for _ in 0..MAX_ELECTION_TICKS {
            self.now.0 += 1;
            for index in 0..REPLICAS {
                self.step(index, Input::Tick);
                self.step(index, Input::Flush);
            }
            self.settle();
            let heralds: Vec<usize> = (0..REPLICAS)
                .filter(|&index| {
                    self.replicas[index].core.order().expect("static order").role()
                        == OrderRole::Herald
                })
                .collect();
            if let [herald] = heralds[..] {
                let order = self.replicas[herald].core.order().expect("static order");
                assert_eq!(order.commit_index(), order.last_index(), "herald's no-op committed");
                return herald;
            }
        }
        panic!("no herald among {REPLICAS} replicas within {MAX_ELECTION_TICKS} ticks");
    }

    /// Steps one core and carries out what it asks for.
    fn step(&mut self, index: usize, input: Input) {
        let mut actions = std::mem::take(&mut self.actions);
        self.replicas[index].core.step(self.now, input, &mut actions);
        for action in actions.drain() {
            self.execute(index, action);
        }
        self.actions = actions;
    }

    fn execute(&mut self, index: usize, action: Action) {
        effects::carry_out(action, &mut ReplicaEffects { cluster: self, index });
    }

    /// Encodes `message` onto the receiver's stream, as the state thread does for the reactor.
    fn send(&mut self, message: PeerMessage) {
        let to = message.header.to.get() as usize - 1;
        let stream = &mut self.inbound[to];
        let before = stream.len();
        Message::Peer(message).encode(0, stream);
        self.stats.frames += 1;
        self.stats.frame_bytes += (stream.len() - before) as u64;
    }

    /// Delivers what the last round sent, then syncs every WAL written and reports it
    /// durable. Messages emitted meanwhile wait for the next round.
    fn round(&mut self) {
        self.stats.rounds += 1;
        let arrived = std::mem::take(&mut self.inbound);
        for (index, mut stream) in arrived.into_iter().enumerate() {
            let max_frame_bytes = self.limits.max_frame_bytes;
            while let Some(frame) = decode_frame(&mut stream, max_frame_bytes).expect("frame") {
                let message = Message::decode(frame, &self.limits).expect("peer message decodes");
                let Message::Peer(message) = message else {
                    panic!("only peer messages travel between replicas: {message:?}");
                };
                self.step(index, Input::Message(message));
            }
            assert!(stream.is_empty(), "{} bytes of a partial frame left", stream.len());
        }
        for index in 0..REPLICAS {
            let Some(sequence) = self.replicas[index].written.take() else {
                continue;
            };
            let started = Instant::now();
            self.replicas[index].wal.sync().expect("wal: fsync");
            let took = started.elapsed();
            self.stats.sync_time += took;
            self.sync_latencies_us.push(took.as_micros() as u64);
            self.stats.syncs += 1;
            self.step(index, Input::Durable { sequence });
        }
        // The end of a batch, as the daemon's state thread does after each one.
        for index in 0..REPLICAS {
            self.step(index, Input::Flush);
        }
    }

    /// Nothing in flight: no frame queued, no write waiting for its fsync.
    fn quiescent(&self) -> bool {
        self.inbound.iter().all(BytesMut::is_empty)
            && self.replicas.iter().all(|replica| replica.written.is_none())
    }

    /// Runs rounds until nothing is in flight.
    fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            if self.quiescent() {
                return;
            }
            self.round();
        }
        panic!("the order did not settle within {MAX_ROUNDS} rounds");
    }

    /// Hands `requests` to the herald and runs rounds until it has applied them all.
    fn replicate(&mut self, requests: &[ClientRequest]) {
        let target = self.applied + requests.len() as u64;
        for (correlation_id, request) in requests.iter().enumerate() {
            let reply_to =
                ReplyTo { connection: ConnectionId(0), correlation_id: correlation_id as u64 };
            let input = Input::Client { reply_to, request: request.clone() };
            self.step(self.herald, input);
        }
        self.step(self.herald, Input::Flush);
        for _ in 0..MAX_ROUNDS {
            if self.applied >= target {
                return;
            }
            assert!(
                !self.quiescent(),
                "pipeline stalled: {} of {} puts applied and nothing in flight",
                self.applied + requests.len() as u64 - target,
                requests.len()
            );
            self.round();
        }
        panic!("{} puts not applied within {MAX_ROUNDS} rounds", requests.len());
    }
}

/// What replica `index`'s actions do here: a healthy static order under puts, so
/// snapshot transfers and shard moves are failures of the benchmark, and local snapshots,
/// compactions, reads and system records are not measured.
struct ReplicaEffects<'a> {
    cluster: &'a mut Cluster,
    index: usize,
}

impl ReplicaEffects<'_> {
    fn unexpected(&self, what: &str) -> ! {
        panic!("replica {}: {what} in a healthy static order under puts", self.index + 1)
    }
}

impl effects::Network for ReplicaEffects<'_> {
    fn send_peer(&mut self, message: PeerMessage) {
        self.cluster.send(message);
    }

    fn send_system(&mut self, _to: String, _message: SystemMessage) {}

    fn reply(&mut self, reply_to: ReplyTo, result: Result<ClientResponse, ErrorResponse>) {
        if let Err(error) = result {
            panic!("replica {} refused put {reply_to:?}: {error:?}", self.index + 1)
        }
    }

    fn membership_changed(&mut self, _membership: Membership) {}
}

impl effects::LogStore for ReplicaEffects<'_> {
    fn persist(
        &mut self,
        sequence: u64,
        hard_state: Option<HardState>,
        truncate_from: Option<LogIndex>,
        entries: Vec<LogEntry>,
    ) {
        self.cluster.replicas[self.index].persist(sequence, hard_state, truncate_from, &entries);
    }

    fn compact_log(&mut self, _through: LogIndex) {}

    fn reset_log(&mut self, _snapshot_index: LogIndex) {
        self.unexpected("a snapshot transfer")
    }
}

impl effects::SnapshotStore for ReplicaEffects<'_> {
    fn write_snapshot(&mut self, _position: (LogIndex, Term), _state: effects::SnapshotState) {}

    fn send_snapshot_chunk(
        &mut self,
        _header: PeerHeader,
        _position: (LogIndex, Term),
        _offset: u64,
        _max_bytes: u64,
    ) {
        self.unexpected("a snapshot transfer")
    }

    fn write_snapshot_chunk(&mut self, _chunk: radiant_protocol::InstallSnapshot) {
        self.unexpected("a snapshot transfer")
    }
}

impl effects::SystemStore for ReplicaEffects<'_> {
    fn persist_system(&mut self, _record: SystemRecord) {}
}

impl effects::Apply for ReplicaEffects<'_> {
    fn apply(
        &mut self,
        _shard: ShardId,
        _index: LogIndex,
        _command: Command,
        reply_to: Option<ReplyTo>,
    ) {
        if reply_to.is_some() {
            assert_eq!(self.index, self.cluster.herald, "only the herald answers clients");
            self.cluster.applied += 1;
        }
    }

    fn read(&mut self, _shard: ShardId, _key: Bytes, _reply_to: ReplyTo) {}

    fn copy_shard(&mut self, _shard: ShardId, _index: LogIndex, _reply_to: ReplyTo) {
        self.unexpected("a backup")
    }

    fn shard_data(&mut self, _effect: ShardEffect) {
        self.unexpected("a shard move")
    }

    fn read_shard_chunk(
        &mut self,
        _shard: ShardId,
        _number: u64,
        _after: Option<Bytes>,
        _max_bytes: u64,
    ) {
        self.unexpected("a shard move")
    }
}

/// One benchmark case: its requests, its (lazily built) cluster and its counters.
struct Case {
    parent: PathBuf,
    requests: Vec<ClientRequest>,
    value_bytes: usize,
    cluster: Option<Cluster>,
    totals: Stats,
    /// fsync latencies inside the timed part, microseconds.
    sync_histogram: Histogram<u64>,
}

impl Case {
    fn new(parent: &Path, batch: usize, value_bytes: usize) -> Case {
        let value = Bytes::from(vec![0xA5u8; value_bytes]);
        let requests = (0..batch)
            .map(|index| ClientRequest::Put {
                key: Bytes::from(format!("key-{index:06}")),
                value: value.clone(),
                session: None,
            })
            .collect();
        let parent = parent.to_path_buf();
        let sync_histogram = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Case {
            parent,
            requests,
            value_bytes,
            cluster: None,
            totals: Stats::default(),
            sync_histogram,
        }
    }

    /// Criterion's `iter_custom`: times only the replication itself. Settling what is left
    /// in flight and rebuilding a cluster whose log grew large happen outside the clock.
    fn run(&mut self, iterations: u64) -> Duration {
        let batch_bytes = (self.requests.len() * self.value_bytes) as u64;
        let mut elapsed = Duration::ZERO;
        for _ in 0..iterations {
            let stale = self.cluster.as_ref().is_none_or(|c| c.put_bytes > REBUILD_AFTER_BYTES);
            if stale {
                self.cluster = None;
                self.cluster = Some(Cluster::new(&self.parent, REPLICATION_MAX_BYTES));
            }
            let cluster = self.cluster.as_mut().expect("built above");
            cluster.stats = Stats::default();
            cluster.sync_latencies_us.clear();
            let started = Instant::now();
            cluster.replicate(&self.requests);
            let took = started.elapsed();
            elapsed += took;
            cluster.stats.iterations = 1;
            cluster.stats.elapsed = took;
            self.totals.merge(&cluster.stats);
            for &latency_us in &cluster.sync_latencies_us {
                self.sync_histogram.saturating_record(latency_us.max(1));
            }
            cluster.put_bytes += batch_bytes;
            cluster.settle();
        }
        elapsed
    }

    /// One line on how the timed iterations (warm-up included) went: rounds, fsyncs and
    /// frames per iteration, fsync latency and its share of the time.
    fn report(&self, name: &str) {
        let totals = &self.totals;
        if totals.iterations == 0 {
            return;
        }
        let per_iteration = |count: u64| count as f64 / totals.iterations as f64;
        let sync_share = totals.sync_time.as_secs_f64() / totals.elapsed.as_secs_f64();
        let sync_us = |quantile| self.sync_histogram.value_at_quantile(quantile);
        eprintln!(
            "{name}: per iteration {:.1} rounds, {:.1} fsyncs, {:.1} frames ({:.0} bytes); \
             fsync p50 {} us, p99 {} us; {:.0}% of the time in fsync",
            per_iteration(totals.rounds),
            per_iteration(totals.syncs),
            per_iteration(totals.frames),
            per_iteration(totals.frame_bytes),
            sync_us(0.5),
            sync_us(0.99),
            sync_share * 100.0,
        );
    }
}

fn size_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

/// Every case, twice: once counted in entries/s, once in bytes/s of values.
fn replication_on(criterion: &mut Criterion, storage: &str, parent: &Path) {
    for unit in ["entries", "bytes"] {
        let group_name = format!("replication_3_{storage}/{unit}");
        let mut group = criterion.benchmark_group(&group_name);
        for value_bytes in VALUE_SIZES_BYTES {
            for batch in BATCH_SIZES {
                let throughput = match unit {
                    "entries" => Throughput::Elements(batch as u64),
                    _ => Throughput::Bytes((batch * value_bytes) as u64),
                };
                group.throughput(throughput);
                let value = format!("value_{}", size_label(value_bytes));
                let id = BenchmarkId::new(&value, format!("batch_{batch}"));
                let mut case = Case::new(parent, batch, value_bytes);
                group.bench_function(id, |bencher| {
                    bencher.iter_custom(|iterations| case.run(iterations))
                });
                case.report(&format!("{group_name}/{value}/batch_{batch}"));
            }
        }
        group.finish();
    }
}

fn replication(criterion: &mut Criterion) {
    replication_on(criterion, "disk", Path::new(env!("CARGO_TARGET_TMPDIR")));
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        replication_on(criterion, "tmpfs", shm);
    } else {
        eprintln!("replication: /dev/shm is missing, skipping the tmpfs cases");
    }
}

criterion_group! {
    name = benches;
    // Short samples keep the 24 cases near two minutes; the command line can override.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = replication
}
criterion_main!(benches);
