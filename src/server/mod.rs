//! The daemon: opens the data directory, recovers state, binds the listeners and runs
//! the threads that drive the core.
//!
//! ```text
//!              ┌──────────── reactor (mio, this thread) ◄───────────┐ replies (Waker)
//!   sockets ◄──┤  StateEvent::Client / Tick                          │
//!              └──────────► state thread (core) ──Apply/Read──► shard workers ──┘
//!                               │   ▲ Durable                        │ barrier copies
//!                         Append│   │                                ▼
//!                               ▼   │                          snapshot writer
//!                           WAL writer (group commit, fsync)
//! ```
//!
//! **Who waits for whom.** Every channel is bounded except the state thread's
//! completions; the wait-for graph has no cycle, so no set of full queues deadlocks:
//!
//! ```text
//!   reactor ──try_send──► state inbox          (never waits: a full inbox pauses reading)
//!   state ──send──► WAL queue, worker queues, snapshot queue   (waits while full)
//!   WAL, workers, snapshot ──send──► state completions         (unbounded: never waits)
//!   workers, snapshot ──send──► reactor inbox  (waits while full; the reactor drains it
//!                                               every turn and waits on nobody)
//! ```
//!
//! The state thread waits only on threads that wait only on the reactor, which waits on
//! nothing. Before, the WAL writer, the workers and the snapshot thread answered on the
//! state inbox, bounded: a flood that filled it while the WAL queue was full left the
//! state thread waiting on the WAL writer and the WAL writer on the state thread. The
//! completions stay small without a bound: each answers a request the state thread sent
//! on a bounded queue, and it drains them before its inbox at every turn.
//! `tests/overload.rs` floods a radiant whose WAL and workers are slowed.
//!
//! Shutdown (SIGTERM/SIGINT): the reactor stops accepting and reading, delivers the
//! replies still owed, then the state thread tells the WAL writer to sync and exit,
//! and the workers finish their queues. Exit status 0 means everything was flushed.

pub mod channels;
pub mod disk_alarm;
pub mod link_auth;
pub mod memory_budget;
pub mod metrics;
pub mod reactor;
pub mod service_manager;
pub mod shard_copies;
pub mod shard_worker;
pub mod snapshot_thread;
pub mod state_thread;
pub mod status;
pub mod test_switches;
pub mod wal_thread;

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use radiant_protocol::{MemberId, OrderId};
use tracing::{error, info};

use self::link_auth::LinkTrust;
use self::memory_budget::MemoryBudget;
use self::reactor::{
    bind_listener, ClientTokens, OrderView, Reactor, ReactorEvent, ReactorOptions, RespRoutes,
    SecurityCounters,
};
use self::state_thread::{StateEvent, StateThreadExit, StateThreadLinks};
use crate::config::Config;
use crate::core::order::membership::member_address;
use crate::core::order::{InjectedBug, Membership};
use crate::core::shards::ShardTable;
use crate::core::system::SystemOptions;
use crate::core::{OrderOptions, Radiant};
use crate::limits::{
    CATCH_UP_ENTRIES, MAX_INFLIGHT_APPENDS, SHARD_WORKER_QUEUE_CAPACITY, STATE_INBOX_CAPACITY,
    WAL_QUEUE_CAPACITY,
};
use crate::storage::file_system::DataDir;
use crate::storage::recovery;
use crate::storage::state_machine::StateMachine;
use crate::storage::system_file;

/// The file, in the data directory, that records the bound addresses.
pub const ADDRESS_FILE: &str = "radiant.addr";
/// The lock file that keeps two radiants off one data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data directory could not be created or used.
    #[error("cannot use data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data directory's lock.
    #[error(
        "data directory {} is in use by another radiant (it holds {}/{LOCK_FILE}); stop it or \
         choose another data_dir",
        path.display(), path.display()
    )]
    DataDirLocked {
        /// The directory.
        path: PathBuf,
    },
    /// Recovery found the data unusable.
    #[error(transparent)]
    Recovery(#[from] recovery::RecoveryError),
    /// The system file is unreadable or damaged.
    #[error(transparent)]
    SystemFile(#[from] system_file::SystemFileError),
    /// A listener could not be bound.
    #[error(
        "cannot listen for {what} on {address}: {source} (is another process using the port?)"
    )]
    Bind {
        /// "clients" or "peers".
        what: &'static str,
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A thread, poll or signal handler could not be set up.
    #[error("cannot start {what}: {source}")]
    Runtime {
        /// What failed.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A token file named in the configuration cannot be used.
    #[error("cannot use {key} {}: {reason}", path.display())]
    TokenFile {
        /// The configuration key (`admin_token_file`, `client_token_file`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A TLS file cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The write-ahead log failed while running; the daemon stopped acknowledging writes.
    #[error("the write-ahead log failed: {0}; no write was acknowledged after the failure")]
    WalFailed(String),
}

impl StartupError {
    /// The process's exit status for this error: `EXIT_DAMAGED_DATA` when the data on
    /// disk is unusable, `EXIT_STORAGE_FAILED` when a write or fsync failed while running
    /// (a restart would not help, and recovery could re-read page-cache data whose
    /// write-back failed: the systemd unit does not restart on either), else 1.
    pub fn exit_status(&self) -> u8 {
        use crate::storage::snapshot::SnapshotError;
        use crate::storage::wal::WalError;
        match self {
            StartupError::Recovery(
                recovery::RecoveryError::Wal(WalError::Io { .. })
                | recovery::RecoveryError::Snapshot(SnapshotError::Io { .. }),
            )
            | StartupError::WalFailed(_) => EXIT_STORAGE_FAILED,
            StartupError::Recovery(_) | StartupError::SystemFile(_) => EXIT_DAMAGED_DATA,
            StartupError::DataDir { .. }
            | StartupError::DataDirLocked { .. }
            | StartupError::Bind { .. }
            | StartupError::TokenFile { .. }
            | StartupError::Tls(_)
            | StartupError::Runtime { .. } => 1,
        }
    }
}

/// Exit status of a radiant that refused to start on damaged data (sysexits' EX_DATAERR).
pub const EXIT_DAMAGED_DATA: u8 = 65;
/// Exit status of a radiant that stopped after a failed write or fsync (EX_IOERR).
pub const EXIT_STORAGE_FAILED: u8 = 74;

/// The order's id while systems have one order (static bootstrap).
pub const STATIC_ORDER_ID: u64 = 1;

/// Runs the daemon until SIGTERM/SIGINT (or a fatal WAL failure).
pub fn run(config: Config) -> Result<(), StartupError> {
    let data_dir = DataDir::real(&prepare_data_dir(&config.data_dir)?);
    let _lock = lock_data_dir(&data_dir.path)?;
    let (client_listener, peer_listener, resp_listener) = bind_listeners(&config, &data_dir.path)?;
    let metrics_listener = bind_metrics(&config)?;
    let resp_address = resp_listener.as_ref().and_then(|listener| listener.local_addr().ok());
    let machine = Arc::new(StateMachine::new(config.shard_count));
    let (radiant, recovered_wal, last_index) = build_radiant(
        &config,
        &data_dir,
        &machine,
        (&client_listener, &peer_listener),
        resp_address,
    )?;
    let (state_sender, state_inbox) = crossbeam_channel::bounded(STATE_INBOX_CAPACITY);
    let shared = SharedWithReactor::new(&config);
    let peer_address = peer_listener.local_addr().map_err(runtime_error("listener"))?;
    let tokens = load_tokens(&config)?;
    let tls = load_tls(&config)?;
    let (reactor, reactor_sender) = Reactor::new(
        reactor_options(&config, radiant.member_id(), (peer_address, tokens, tls), &shared),
        client_listener,
        peer_listener,
        state_sender.clone(),
    )
    .map_err(runtime_error("reactor"))?;
    let reactor = match resp_listener {
        Some(listener) => {
            serve_resp(reactor, listener, &config, radiant.member_id(), &machine, &shared)?
        }
        None => reactor,
    };
    if let Some(neighbor) = config.neighbor_addr() {
        let _ = reactor_sender.send(ReactorEvent::LinkPeer(neighbor));
    }
    let signals = signal_thread(reactor_sender.clone()).map_err(runtime_error("signal handler"))?;
    if let Some(listener) = metrics_listener {
        serve_metrics(listener, &shared, &data_dir)?;
    }
    let threads = Threads::spawn(
        &config,
        &data_dir,
        radiant,
        recovered_wal,
        &machine,
        (state_sender, state_inbox),
        (reactor_sender, shared),
    )?;
    let keys = machine.map().len();
    info!(data_dir = %data_dir.path.display(), keys, last_index, "radiant: serving");
    service_manager::ready(&format!("recovered {keys} keys to log index {last_index}; serving"));
    let reactor_result = reactor.run();
    service_manager::stopping("stopping: draining and syncing the write-ahead log");
    let state_exit = threads.stop();
    drop(signals);
    reactor_result.map_err(runtime_error("reactor"))?;
    exit_of(state_exit)
}

/// How the daemon ends, from how its state thread ended.
fn exit_of(state_exit: StateThreadExit) -> Result<(), StartupError> {
    match state_exit {
        StateThreadExit::Clean => {
            info!("radiant: shut down cleanly; every accepted write is durable");
            Ok(())
        }
        StateThreadExit::WalFailed(reason) => {
            error!(%reason, "radiant: stopped after a write-ahead log failure");
            Err(StartupError::WalFailed(reason))
        }
    }
}

/// The core: a radiant that forms or joins a system (no `members` list), or one of a
/// static order; with its recovered WAL and last log index.
fn build_radiant(
    config: &Config,
    data_dir: &DataDir,
    machine: &StateMachine,
    (client_listener, peer_listener): (&std::net::TcpListener, &std::net::TcpListener),
    resp_address: Option<SocketAddr>,
) -> Result<(Radiant, crate::storage::wal::Wal, u64), StartupError> {
    let seed = startup_seed(config.member_id);
    if config.members.is_empty() {
        let record = system_file::read(data_dir)?.unwrap_or_default();
        let membership = record.initial_membership.clone();
        // Before the record names an order there is nothing to replay; the order is moot.
        let order_id = record.order_id.unwrap_or(static_order());
        let shards = (order_id, ShardTable::unassigned(config.shard_count));
        let recovered = recover(config, data_dir, machine, (membership, shards))?;
        let last_index = last_recovered_index(&recovered.order);
        let options = system_options(config, (client_listener, peer_listener), resp_address);
        info!(
            member = ?record.member.map(MemberId::get),
            configuration = record.committed,
            cluster = %record.cluster,
            "radiant: joining or forming a system"
        );
        let radiant =
            Radiant::forming(options, record, order_options(config), recovered.order, seed);
        Ok((radiant, recovered.wal, last_index))
    } else {
        let member_id = MemberId::new(config.member_id).expect("validated nonzero");
        let membership = initial_membership(config, client_listener, peer_listener);
        if !membership.contains(member_id) {
            info!(
                member = %member_id,
                "radiant: not yet a member of the configured order; waiting to be added \
                 (radiant admin add-member)"
            );
        }
        let shards = (static_order(), ShardTable::serving_all(config.shard_count));
        let recovered = recover(config, data_dir, machine, (membership, shards))?;
        let last_index = last_recovered_index(&recovered.order);
        let radiant = Radiant::new(member_id, order_options(config), recovered.order, seed);
        Ok((radiant, recovered.wal, last_index))
    }
}

/// Recovers the order's state from the data directory (`storage::recovery`).
fn recover(
    config: &Config,
    data_dir: &DataDir,
    machine: &StateMachine,
    start: (Membership, (OrderId, ShardTable)),
) -> Result<recovery::Recovered, recovery::RecoveryError> {
    recovery::recover(data_dir, &recovery_options(config), machine, start, |_| {})
}

/// How this radiant's data directory is written, from its configuration.
fn recovery_options(config: &Config) -> recovery::RecoveryOptions {
    recovery::RecoveryOptions {
        wal: crate::storage::wal::WalOptions {
            segment_max_bytes: config.wal_segment_max_bytes,
            max_record_bytes: crate::storage::wal::MAX_RECORD_BYTES,
        },
        limits: config.protocol_limits(),
    }
}

/// The order id of a static order (the `members` config key).
fn static_order() -> OrderId {
    OrderId::new(STATIC_ORDER_ID).expect("nonzero constant")
}

fn last_recovered_index(order: &crate::core::RecoveredOrder) -> u64 {
    order.entries.last().map_or(order.snapshot_index, |entry| entry.index)
}

/// The system state machine's settings: the bound addresses (port 0 resolved; the RESP
/// address empty without `resp_port`) and the formation keys.
fn system_options(
    config: &Config,
    (client, peer): (&std::net::TcpListener, &std::net::TcpListener),
    resp: Option<SocketAddr>,
) -> SystemOptions {
    let bound = |listener: &std::net::TcpListener, fallback: SocketAddr| {
        listener.local_addr().unwrap_or(fallback).to_string()
    };
    SystemOptions {
        peer_address: bound(peer, config.peer_addr()),
        client_address: bound(client, config.client_addr()),
        resp_address: resp.map(|address| address.to_string()).unwrap_or_default(),
        neighbor: config.neighbor_addr().map(|address| address.to_string()),
        bootstrap_expect: config.bootstrap_expect,
        order_size: config.order_size,
        shard_count: config.shard_count,
        bootstrap_backoff_ticks: config.bootstrap_backoff,
        beacon_interval_ticks: config.beacon_interval,
        election_timeout_ticks: config.election_timeout,
        heartbeat_interval_ticks: config.heartbeat_interval,
    }
}

/// The order as configured: the `members` list, or this radiant alone.
fn initial_membership(
    config: &Config,
    client: &std::net::TcpListener,
    peer: &std::net::TcpListener,
) -> Membership {
    if config.members.is_empty() {
        let bound = |listener: &std::net::TcpListener, fallback: SocketAddr| {
            listener.local_addr().unwrap_or(fallback)
        };
        let address = member_address(
            &bound(peer, config.peer_addr()).to_string(),
            &bound(client, config.client_addr()).to_string(),
        );
        let member = MemberId::new(config.member_id).expect("validated nonzero");
        return Membership::with_voters([(member, address)]);
    }
    Membership::with_voters(config.members.iter().map(|member| {
        let id = MemberId::new(member.id).expect("validated nonzero");
        (id, member_address(&member.peer.to_string(), &member.client.to_string()))
    }))
}

/// The core's settings from the configuration.
pub fn order_options(config: &Config) -> OrderOptions {
    OrderOptions {
        cluster: radiant_protocol::ClusterId::UNSET,
        order_id: static_order(),
        shard_count: config.shard_count,
        snapshot_interval_entries: config.snapshot_interval_entries,
        snapshot_interval_bytes: config.snapshot_interval_bytes,
        election_timeout_ticks: config.election_timeout,
        heartbeat_interval_ticks: config.heartbeat_interval,
        replication_max_bytes: u64::from(config.replication_max_bytes),
        max_inflight_appends: MAX_INFLIGHT_APPENDS,
        catch_up_entries: CATCH_UP_ENTRIES,
        limits: config.protocol_limits(),
        injected_bug: InjectedBug::None,
    }
}

/// The daemon's seed for the core's PRNG. The daemon is not replayed, so the clock
/// and process id are fine here; the core itself never reads them.
fn startup_seed(member_id: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32) ^ member_id
}

fn runtime_error(what: &'static str) -> impl Fn(std::io::Error) -> StartupError {
    move |source| StartupError::Runtime { what, source }
}

/// Binds both listeners, records their addresses in the data directory and says where
/// the radiant serves (on stderr, so `radiant start` in a terminal shows it at once).
fn bind_listeners(config: &Config, data_dir: &Path) -> Result<BoundListeners, StartupError> {
    let bind = |what, address| {
        bind_listener(address).map_err(|source| StartupError::Bind { what, address, source })
    };
    let client_listener = bind("clients", config.client_addr())?;
    let peer_listener = bind("peers", config.peer_addr())?;
    let resp_listener = match config.resp_addr() {
        Some(address) => Some(bind("Redis clients (resp_port)", address)?),
        None => None,
    };
    let client_address = client_listener.local_addr().map_err(runtime_error("listener"))?;
    let peer_address = peer_listener.local_addr().map_err(runtime_error("listener"))?;
    let resp_address = match &resp_listener {
        Some(listener) => Some(listener.local_addr().map_err(runtime_error("listener"))?),
        None => None,
    };
    write_address_file(data_dir, client_address, peer_address, resp_address)
        .map_err(|source| StartupError::DataDir { path: data_dir.to_path_buf(), source })?;
    info!(clients = %client_address, peers = %peer_address, "radiant: listening");
    eprintln!(
        "radiant: serving clients on {client_address}, peers on {peer_address}; data in {}",
        data_dir.display()
    );
    Ok((client_listener, peer_listener, resp_listener))
}

/// The metrics listener, when `metrics_addr` is set (bound at start, so a taken port
/// stops the radiant at once).
fn bind_metrics(config: &Config) -> Result<Option<std::net::TcpListener>, StartupError> {
    let Some(address) = config.metrics_addr else { return Ok(None) };
    // The project's listener (SO_REUSEADDR, so a restart rebinds at once), blocking:
    // the metrics thread waits in accept.
    let listener = reactor::bind_listener(address)
        .and_then(|listener| listener.set_nonblocking(false).map(|()| listener))
        .map_err(|source| StartupError::Bind { what: "metrics (metrics_addr)", address, source })?;
    Ok(Some(listener))
}

/// Starts the metrics thread on `listener`, reading what the other threads count.
fn serve_metrics(
    listener: std::net::TcpListener,
    shared: &SharedWithReactor,
    data_dir: &DataDir,
) -> Result<(), StartupError> {
    let sources = metrics::MetricsSources {
        reactor: Arc::clone(&shared.reactor_metrics),
        core: Arc::clone(&shared.figures),
        wal: Arc::clone(&shared.wal_counters),
        security: Arc::clone(&shared.security),
        memory: Arc::clone(&shared.memory),
        data_dir: data_dir.path.clone(),
    };
    metrics::serve(listener, sources).map_err(runtime_error("metrics thread"))
}

/// The client, peer and (when `resp_port` is set) RESP listeners.
type BoundListeners = (std::net::TcpListener, std::net::TcpListener, Option<std::net::TcpListener>);

/// The threads around the reactor, in the order they must stop.
struct Threads {
    state_sender: crossbeam_channel::Sender<StateEvent>,
    state: JoinHandle<StateThreadExit>,
    wal: JoinHandle<()>,
    others: Vec<JoinHandle<()>>,
}

impl Threads {
    fn spawn(
        config: &Config,
        data_dir: &DataDir,
        radiant: Radiant,
        wal: crate::storage::wal::Wal,
        machine: &Arc<StateMachine>,
        (state_sender, state_inbox): StateChannel,
        (reactor_sender, shared): (channels::ReactorSender<ReactorEvent>, SharedWithReactor),
    ) -> Result<Threads, StartupError> {
        let wal_queue = match test_switches::count(test_switches::WAL_QUEUE_CAPACITY) {
            0 => WAL_QUEUE_CAPACITY,
            shrunk => usize::try_from(shrunk).unwrap_or(WAL_QUEUE_CAPACITY),
        };
        let (wal_sender, wal_requests) = crossbeam_channel::bounded(wal_queue);
        let counters = Arc::clone(&shared.wal_counters);
        // The threads the state thread waits on answer on a channel of their own, which
        // never blocks them (see "Who waits for whom" above).
        let (completion_sender, completions) = crossbeam_channel::unbounded();
        let wal = wal_thread::spawn(wal, wal_requests, completion_sender.clone(), counters)
            .map_err(runtime_error("WAL writer thread"))?;
        let workers = config.shard_workers as usize;
        let mut worker_senders = Vec::with_capacity(workers);
        let mut others = Vec::new();
        for number in 0..workers {
            let machine = Arc::clone(machine);
            let limits = config.protocol_limits();
            let reactor = reactor_sender.clone();
            let capacity = SHARD_WORKER_QUEUE_CAPACITY;
            let (queue, worker) =
                shard_worker::spawn((number, workers), capacity, machine, reactor, limits)
                    .map_err(runtime_error("shard worker thread"))?;
            worker_senders.push(queue);
            others.push(worker);
        }
        let (snapshot_sender, snapshot_jobs) = crossbeam_channel::bounded(64);
        let snapshot_links = snapshot_thread::SnapshotThreadLinks {
            data_dir: data_dir.clone(),
            shard_count: config.shard_count,
            limits: recovery_options(config).snapshot_limits(),
            state: completion_sender.clone(),
            reactor: reactor_sender.clone(),
        };
        let snapshots = snapshot_thread::spawn(snapshot_jobs, snapshot_links)
            .map_err(runtime_error("snapshot thread"))?;
        others.push(snapshots);
        let links = StateThreadLinks {
            inbox: state_inbox,
            completions,
            completion_sender,
            wal: wal_sender,
            workers: worker_senders,
            snapshots: snapshot_sender,
            reactor: reactor_sender,
            machine: Arc::clone(machine),
            config: config.clone(),
            data_dir: data_dir.clone(),
            cluster: shared.cluster,
            security: shared.security,
            memory: shared.memory,
            order_view: shared.order_view,
            figures: shared.figures,
        };
        let state = state_thread::spawn(radiant, links).map_err(runtime_error("state thread"))?;
        Ok(Threads { state_sender, state, wal, others })
    }

    /// Called once the reactor has drained: the state thread passes shutdown on to
    /// the WAL writer (which syncs) and drops the worker queues (which drain).
    fn stop(self) -> StateThreadExit {
        let _ = self.state_sender.send(StateEvent::Shutdown);
        drop(self.state_sender);
        let panicked = || StateThreadExit::WalFailed("the state thread panicked".into());
        let exit = self.state.join().unwrap_or_else(|_| panicked());
        let _ = self.wal.join();
        for thread in self.others {
            let _ = thread.join();
        }
        exit
    }
}

type StateChannel =
    (crossbeam_channel::Sender<StateEvent>, crossbeam_channel::Receiver<StateEvent>);

/// What the reactor and the state thread share: the cluster id handshakes introduce
/// (the state thread publishes it), the refusal counters and the memory budget (status
/// reports them; the state thread releases queued requests from the budget).
struct SharedWithReactor {
    cluster: Arc<parking_lot::Mutex<radiant_protocol::ClusterId>>,
    security: Arc<SecurityCounters>,
    memory: Arc<MemoryBudget>,
    /// This radiant's id and its order's herald, for RESP's `MOVED`.
    order_view: Arc<OrderView>,
    /// What `/metrics` shows: the reactor's, the state thread's and the WAL writer's.
    reactor_metrics: Arc<metrics::ReactorMetrics>,
    figures: Arc<metrics::CoreFigures>,
    wal_counters: Arc<wal_thread::WalCounters>,
}

impl SharedWithReactor {
    fn new(config: &Config) -> SharedWithReactor {
        let max_buffered_bytes = usize::try_from(config.max_buffered_bytes).unwrap_or(usize::MAX);
        SharedWithReactor {
            cluster: Arc::default(),
            security: Arc::default(),
            memory: MemoryBudget::new(max_buffered_bytes),
            order_view: Arc::default(),
            reactor_metrics: Arc::default(),
            figures: Arc::default(),
            wal_counters: Arc::default(),
        }
    }
}

/// Hands the RESP listener to the reactor, with the RESP addresses of the static members
/// (and this radiant's own) to redirect to.
fn serve_resp(
    reactor: Reactor,
    listener: std::net::TcpListener,
    config: &Config,
    member_id: Option<MemberId>,
    machine: &Arc<StateMachine>,
    shared: &SharedWithReactor,
) -> Result<Reactor, StartupError> {
    let bound = listener.local_addr().map_err(runtime_error("listener"))?;
    let addresses = config
        .members
        .iter()
        .filter_map(|member| Some((MemberId::new(member.id)?, member.resp?)))
        .collect();
    shared.order_view.publish(member_id, None);
    info!(resp = %bound, "radiant: serving Redis clients (RESP)");
    eprintln!("radiant: serving Redis clients (RESP) on {bound}");
    let routes = RespRoutes {
        addresses,
        own_address: bound,
        view: Arc::clone(&shared.order_view),
        machine: Arc::clone(machine),
    };
    reactor.with_resp(listener, routes).map_err(runtime_error("reactor"))
}

/// How this radiant's peer links are authenticated, from the configuration.
pub fn link_trust(config: &Config) -> LinkTrust {
    match &config.cluster_secret {
        Some(secret) => LinkTrust::Secret {
            present: secret.as_bytes().to_vec(),
            also_accepted: config.cluster_secret_accepted.as_ref().map(|s| s.as_bytes().to_vec()),
        },
        None if config.insecure => LinkTrust::Insecure,
        None => LinkTrust::Closed,
    }
}

/// The shortest token a token file may hold.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Reads the admin and client token files (one token each; surrounding whitespace,
/// such as the final newline, is not part of it).
fn load_tokens(config: &Config) -> Result<ClientTokens, StartupError> {
    let read = |key: &'static str, path: &Option<PathBuf>| -> Result<_, StartupError> {
        let Some(path) = path else { return Ok(None) };
        let fail = |reason: String| StartupError::TokenFile { key, path: path.clone(), reason };
        let text = std::fs::read(path).map_err(|error| fail(error.to_string()))?;
        let token = text.trim_ascii().to_vec();
        let max = radiant_protocol::message::client::MAX_TOKEN_BYTES as usize;
        if token.len() < MIN_TOKEN_BYTES || token.len() > max {
            return Err(fail(format!(
                "the token is {} bytes; it must be {MIN_TOKEN_BYTES} to {max} bytes (e.g. \
                 `openssl rand -hex 32 > FILE`)",
                token.len()
            )));
        }
        Ok(Some(token))
    };
    let tokens = ClientTokens {
        admin: read("admin_token_file", &config.admin_token_file)?,
        client: read("client_token_file", &config.client_token_file)?,
        admin_open_without_token: config.insecure && config.admin_token_file.is_none(),
    };
    if tokens.admin.is_some() && tokens.admin == tokens.client {
        return Err(StartupError::TokenFile {
            key: "client_token_file",
            path: config.client_token_file.clone().unwrap_or_default(),
            reason: "holds the admin token: give clients a token of their own".to_string(),
        });
    }
    Ok(tokens)
}

fn reactor_options(
    config: &Config,
    member_id: Option<MemberId>,
    (peer_address, tokens, tls): (SocketAddr, ClientTokens, Option<crate::tls::RadiantTls>),
    shared: &SharedWithReactor,
) -> ReactorOptions {
    ReactorOptions {
        limits: config.protocol_limits(),
        max_connections: config.max_connections as usize,
        max_inflight_per_connection: config.max_inflight_per_connection,
        write_high_water_bytes: usize::try_from(config.connection_write_high_water_bytes)
            .unwrap_or(usize::MAX),
        write_max_bytes: usize::try_from(config.connection_write_max_bytes).unwrap_or(usize::MAX),
        write_stall_timeout: Duration::from_millis(config.write_stall_timeout_ms),
        client_idle_timeout: Duration::from_millis(config.client_idle_timeout_ms),
        tick: Duration::from_millis(config.tick_ms),
        member_id,
        seed: u64::from(std::process::id()),
        drop_delete_answers: test_switches::count(test_switches::DROP_DELETE_ANSWERS),
        panic_on_first_keyed_request: test_switches::panics("main"),
        peer_address: peer_address.to_string(),
        link_trust: Arc::new(link_trust(config)),
        max_peer_connections: config.max_peer_connections as usize,
        tokens,
        cluster: Arc::clone(&shared.cluster),
        security: Arc::clone(&shared.security),
        memory: Arc::clone(&shared.memory),
        metrics: Arc::clone(&shared.reactor_metrics),
        tls,
    }
}

/// The TLS configurations, when the config names the three files.
fn load_tls(config: &Config) -> Result<Option<crate::tls::RadiantTls>, StartupError> {
    let (Some(cert), Some(key), Some(ca)) =
        (&config.tls_cert_file, &config.tls_key_file, &config.tls_ca_file)
    else {
        return Ok(None);
    };
    let tls = crate::tls::RadiantTls::load(cert, key, ca)?;
    info!(cert = %cert.display(), ca = %ca.display(), "radiant: TLS on the client and peer ports");
    Ok(Some(tls))
}

/// The exit status of a radiant stopped because one of its threads panicked (EX_SOFTWARE).
pub const EXIT_PANIC: u8 = 70;

/// Makes a panic in any thread end the whole process at once, with `EXIT_PANIC` and a
/// log line naming the thread. Without it a dead state thread leaves the reactor
/// answering pings while every request is dropped, and a dead shard worker leaves the
/// others serving without its shards: a half-alive radiant. The daemon's `start` calls
/// it; the simulators and the tests do not (they catch panics as findings).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        error!(
            thread = %name,
            panic = %info,
            "radiant: a thread panicked; the process stops now (exit status {EXIT_PANIC}) \
             rather than run half-alive; the log above says what it was doing"
        );
        std::process::exit(i32::from(EXIT_PANIC));
    }));
}

fn prepare_data_dir(path: &Path) -> Result<PathBuf, StartupError> {
    let error = |source| StartupError::DataDir { path: path.to_path_buf(), source };
    std::fs::create_dir_all(path).map_err(error)?;
    std::fs::canonicalize(path).map_err(error)
}

/// Holds an exclusive lock on `DATA_DIR/LOCK` for the daemon's lifetime; the kernel
/// releases it when the process dies, even by `kill -9`.
fn lock_data_dir(data_dir: &Path) -> Result<File, StartupError> {
    let path = data_dir.join(LOCK_FILE);
    let error = |source| StartupError::DataDir { path: data_dir.to_path_buf(), source };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StartupError::DataDirLocked { path: data_dir.to_path_buf() })
        }
        Err(std::fs::TryLockError::Error(source)) => Err(error(source)),
    }
}

/// Writes the bound addresses atomically, so tests that bind port 0 can find them.
fn write_address_file(
    data_dir: &Path,
    client: SocketAddr,
    peer: SocketAddr,
    resp: Option<SocketAddr>,
) -> std::io::Result<()> {
    let temporary = data_dir.join(format!("{ADDRESS_FILE}.tmp"));
    let mut file = File::create(&temporary)?;
    writeln!(file, "client={client}")?;
    writeln!(file, "peer={peer}")?;
    if let Some(resp) = resp {
        writeln!(file, "resp={resp}")?;
    }
    file.sync_all()?;
    std::fs::rename(&temporary, data_dir.join(ADDRESS_FILE))
}

/// Reads `client=` and `peer=` from an address file.
pub fn read_address_file(data_dir: &Path) -> Option<(SocketAddr, SocketAddr)> {
    let text = std::fs::read_to_string(data_dir.join(ADDRESS_FILE)).ok()?;
    let field = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    Some((field("client")?, field("peer")?))
}

/// A thread that turns SIGTERM and SIGINT into a reactor shutdown.
fn signal_thread(reactor: channels::ReactorSender<ReactorEvent>) -> std::io::Result<SignalGuard> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new().name("radiant-signals".into()).spawn(move || {
        let mut panic_armed = test_switches::panics("radiant-signals");
        for signal in signals.forever() {
            test_switches::panic_if(&mut panic_armed, "its first signal");
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            info!(signal = name, "radiant: shutting down on signal");
            let _ = reactor.send(ReactorEvent::Shutdown);
        }
    })?;
    Ok(SignalGuard { handle, thread: Some(thread) })
}

struct SignalGuard {
    handle: signal_hook::iterator::Handle,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Bytes used by the files in `directory` and every directory below it (the WAL and
/// snapshot directories); for status and metrics only, so errors count as 0.
pub(crate) fn directory_bytes(directory: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(directory) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}
