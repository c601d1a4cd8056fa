//! The state thread (the seed's `RadiantController`; "controller" alone means the
//! shard controller, so it is not called that here). It owns the core, feeds it
//! inputs in arrival order, and carries out the actions it returns: WAL batches to
//! the WAL writer, applies and reads to shard workers, messages to peers and replies
//! to clients through the reactor, snapshot file work to the snapshot thread.
//!
//! It holds no protocol logic of its own: every decision is the core's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use radiant_protocol::{
    ClientRequest, ClientResponse, Command, ErrorResponse, LogEntry, LogIndex, MemberId, Message,
    PeerHeader, PeerMessage, SystemMessage, Term,
};
use tracing::{error, info, info_span, warn};

use super::channels::ReactorSender;
use super::memory_budget::QueuedCharge;
use super::reactor::ReactorEvent;
use super::shard_copies::ShardCopies;
use super::shard_worker::{worker_of, ShardDump, WorkerQueue, WorkerRequest};
use super::snapshot_thread::SnapshotJob;
use super::wal_thread::WalRequest;
use crate::config::Config;
use crate::core::effects;
use crate::core::order::membership::member_peer_address;
use crate::core::order::{HardState, Membership};
use crate::core::shards::{ShardEffect, ShardState, ShardTable};
use crate::core::system::SystemRecord;
use crate::core::{Action, Actions, Input, Radiant, ReplyTo, Tick};
use crate::limits::STATE_INBOX_CAPACITY;
use crate::storage::file_system::DataDir;
use crate::storage::recovery;
use crate::storage::state_machine::StateMachine;
use radiant_protocol::slots::ShardId;

/// Inputs to the state thread, from the reactor, the WAL writer and the snapshot thread.
#[derive(Debug)]
pub enum StateEvent {
    /// One tick of `tick_ms` passed.
    Tick,
    /// A client request.
    Client {
        /// Where the answer goes.
        reply_to: ReplyTo,
        /// The request.
        request: ClientRequest,
        /// Its bytes in the memory budget, released when this thread takes it.
        charge: QueuedCharge,
    },
    /// A peer or system message from a trusted link, for the core as it is.
    Peer {
        /// The message.
        input: Input,
        /// Its bytes in the memory budget, released when this thread takes it.
        charge: QueuedCharge,
    },
    /// An input the core takes as it is: a durable persist (`Input::Durable`, from the WAL
    /// writer), a written snapshot or stored chunk (from the snapshot thread), a read shard
    /// piece (from a shard worker).
    Core(Input),
    /// A shard worker copied a shard for a backup (`Action::CopyShard`).
    ShardCopied {
        /// The shard.
        shard: ShardId,
        /// The applied index the copy is of.
        index: LogIndex,
        /// Its pairs, sorted by key.
        pairs: Vec<(bytes::Bytes, bytes::Bytes)>,
        /// The backup to answer.
        reply_to: ReplyTo,
    },
    /// A snapshot could not be written; the log keeps growing until one succeeds.
    SnapshotFailed {
        /// Why.
        reason: String,
    },
    /// A snapshot from the herald is complete, verified and durable on disk.
    SnapshotReceived {
        /// Its last index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// The WAL cannot write or fsync: nothing more may be acknowledged.
    WalFailed {
        /// Why.
        reason: String,
    },
    /// Stop after passing shutdown on to the WAL writer and the workers.
    Shutdown,
}

/// What the state thread drives.
pub struct StateThreadLinks {
    /// Its inbox from the reactor (bounded; the reactor only ever `try_send`s).
    pub inbox: Receiver<StateEvent>,
    /// Answers from the WAL writer, the shard workers and the snapshot thread
    /// (unbounded, so they never wait on this thread; see `server/mod.rs`).
    pub completions: Receiver<StateEvent>,
    /// Into `completions`, for shard workers answering it.
    pub completion_sender: Sender<StateEvent>,
    /// To the WAL writer.
    pub wal: Sender<WalRequest>,
    /// To each shard worker, by worker number.
    pub workers: Vec<WorkerQueue>,
    /// To the snapshot thread.
    pub snapshots: Sender<SnapshotJob>,
    /// Replies to clients, messages to peers.
    pub reactor: ReactorSender<ReactorEvent>,
    /// The state machine the workers apply to (replaced wholesale by an install).
    pub machine: Arc<StateMachine>,
    /// The configuration (snapshot limits, shard count).
    pub config: Config,
    /// The data directory.
    pub data_dir: DataDir,
    /// Where the radiant's cluster id is published for the reactor's link handshakes.
    pub cluster: Arc<parking_lot::Mutex<radiant_protocol::ClusterId>>,
    /// The reactor's refusal counters, for status.
    pub security: Arc<super::reactor::SecurityCounters>,
    /// The memory budget, for status.
    pub memory: Arc<super::memory_budget::MemoryBudget>,
    /// Where this radiant's id and its order's herald are published, for RESP.
    pub order_view: Arc<super::reactor::OrderView>,
    /// Where the core's figures are published, for `/metrics`.
    pub figures: Arc<super::metrics::CoreFigures>,
}

/// How the state thread ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StateThreadExit {
    /// Shut down on request.
    Clean,
    /// The WAL failed; the daemon must exit non-zero.
    WalFailed(String),
}

/// Starts the state thread with the core `radiant`.
pub fn spawn(
    radiant: Radiant,
    links: StateThreadLinks,
) -> std::io::Result<JoinHandle<StateThreadExit>> {
    std::thread::Builder::new().name("radiant-state".into()).spawn(move || {
        let span = info_span!("radiant", member = ?radiant.member_id().map(MemberId::get));
        let _entered = span.enter();
        let links_min_free_bytes = links.config.min_free_bytes;
        let mut thread = StateThread {
            radiant,
            links,
            now: Tick(0),
            actions: Actions::new(),
            wal_failed: None,
            peers: BTreeMap::new(),
            linked: BTreeSet::new(),
            pending_actions: Vec::new(),
            panic_armed: super::test_switches::panics("radiant-state"),
            hang_armed: super::test_switches::hangs("radiant-state"),
            ticked_at: Instant::now(),
            published_cluster: radiant_protocol::ClusterId::UNSET,
            snapshot_failures: 0,
            disk_bytes: None,
            watchdog: super::service_manager::Watchdog::from_environment(),
            herald_seen: None,
            figures_published_at: None,
            disk_alarm: super::disk_alarm::DiskAlarm::new(links_min_free_bytes),
            shard_copies: ShardCopies::new(first_copy_cursor()),
        };
        if let Some(membership) = thread.radiant.order().map(|order| order.membership().clone()) {
            thread.on_membership(&membership);
        }
        thread.run()
    })
}

struct StateThread {
    radiant: Radiant,
    links: StateThreadLinks,
    now: Tick,
    actions: Actions,
    wal_failed: Option<String>,
    peers: BTreeMap<MemberId, SocketAddr>,
    /// Peer addresses the reactor keeps links to.
    linked: BTreeSet<SocketAddr>,
    pending_actions: Vec<Action>,
    /// Test-only fault: panic at the first keyed request (`test_switches::PANIC_THREAD`).
    panic_armed: bool,
    /// Test-only fault: hang at the first keyed request (`test_switches::HANG_THREAD`).
    hang_armed: bool,
    /// The real time the core's clock (`now`) stands at: `now` counts the ticks since.
    ticked_at: Instant,
    /// The cluster id last published to the reactor.
    published_cluster: radiant_protocol::ClusterId,
    /// Snapshots that failed since the last one written.
    snapshot_failures: u32,
    /// The data directory's size and when it was measured, for `status`.
    disk_bytes: Option<(Instant, u64)>,
    /// The herald this radiant last saw leading its order (to count changes), and
    /// whether it was this radiant.
    herald_seen: Option<(Option<MemberId>, bool)>,
    /// The tick at which `publish_figures` last ran.
    figures_published_at: Option<Tick>,
    /// systemd's watchdog and status line, fed from this loop.
    watchdog: super::service_manager::Watchdog,
    /// Refuses requests that add data while the disk is short of space.
    disk_alarm: super::disk_alarm::DiskAlarm,
    /// Shards copied for backups in progress.
    shard_copies: ShardCopies,
}

/// The first cursor of this incarnation's shard copies: from the clock, so a backup
/// still holding a cursor from before a restart names no copy now.
fn first_copy_cursor() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64);
    // Leave room to count up without wrapping in practice.
    nanos >> 8
}

/// How long `status` reuses the data directory's measured size: walking the directory
/// on this thread for every `status` delayed every request behind it.
const DISK_BYTES_REFRESH: Duration = Duration::from_secs(1);

/// Consecutive failed snapshots after which the radiant stops (exit status 74), rather
/// than let its uncompacted log grow without bound.
pub const MAX_SNAPSHOT_FAILURES: u32 = 3;

impl StateThread {
    fn run(mut self) -> StateThreadExit {
        let mut batch = Vec::with_capacity(STATE_INBOX_CAPACITY);
        loop {
            let first = crossbeam_channel::select! {
                recv(self.links.completions) -> event => event,
                recv(self.links.inbox) -> event => event,
            };
            let Ok(first) = first else { break };
            batch.push(first);
            // Completions first: they free room in the queues this thread waits on.
            batch.extend(self.links.completions.try_iter());
            batch.extend(self.links.inbox.try_iter().take(STATE_INBOX_CAPACITY));
            // Time first: nothing in the batch may be judged by a clock that lags.
            self.catch_up_ticks();
            self.disk_alarm.check(&self.links.data_dir);
            let mut shutdown = false;
            for event in batch.drain(..) {
                shutdown |= self.on_event(event);
                // Carry out each event's actions before the next: an install or a
                // status answer must see everything before it done.
                self.carry_out_actions();
            }
            // One write and one Append per member for everything the batch appended.
            self.radiant.step(self.now, Input::Flush, &mut self.actions);
            self.carry_out_actions();
            self.publish_cluster();
            self.publish_order_view();
            self.publish_figures();
            let disk_alarm = self.disk_alarm.refusal();
            self.watchdog.on_loop(|| super::status::status_line(&self.radiant, disk_alarm));
            if shutdown {
                return self.shut_down();
            }
        }
        self.shut_down()
    }

    /// A snapshot failed: the core retries at the next interval, until
    /// `MAX_SNAPSHOT_FAILURES` in a row stop the radiant (`None`: stopping).
    fn on_snapshot_failed(&mut self, reason: &str) -> Option<Input> {
        self.snapshot_failures += 1;
        if self.snapshot_failures >= MAX_SNAPSHOT_FAILURES {
            // Without snapshots the log is never compacted: memory and disk would grow
            // until something else failed. Stop while the cause is clear.
            let reason = format!(
                "{} snapshots in a row failed (the last: {reason}); without one the log can \
                 never be compacted",
                self.snapshot_failures
            );
            error!(%reason, "state: stopping");
            self.wal_failed = Some(reason);
            let _ = self.links.reactor.send(ReactorEvent::Shutdown);
            return None;
        }
        warn!(
            %reason,
            failures = self.snapshot_failures,
            limit = MAX_SNAPSHOT_FAILURES,
            "state: snapshot failed; will retry at the next interval"
        );
        Some(Input::SnapshotFailed)
    }

    /// Tells the reactor (for RESP routing) this radiant's id, its order's herald and,
    /// when a new one committed, the configuration.
    fn publish_order_view(&mut self) {
        let view = &self.links.order_view;
        let herald = self.radiant.order().and_then(|order| order.herald());
        view.publish(self.radiant.member_id(), herald);
        if let Some(system) = self.radiant.system() {
            view.publish_heralds(system.heralds());
            if system.record().committed != view.configuration_number() {
                if let Ok(configuration) = system.query(0) {
                    view.publish_configuration(configuration);
                }
            }
        }
    }

    /// Stores the core's figures where `/metrics` reads them (relaxed atomics: each is
    /// a figure on its own, and a scrape between two stores sees a moment's mix). Once a
    /// tick, not once a loop: counting the keys takes every shard's lock, which the shard
    /// workers applying writes would wait on.
    fn publish_figures(&mut self) {
        if self.figures_published_at == Some(self.now) {
            return;
        }
        self.figures_published_at = Some(self.now);
        let figures = &self.links.figures;
        let set = |atomic: &std::sync::atomic::AtomicU64, value: u64| {
            atomic.store(value, std::sync::atomic::Ordering::Relaxed);
        };
        let add = |atomic: &std::sync::atomic::AtomicU64| {
            atomic.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        if let Some(system) = self.radiant.system() {
            set(&figures.configuration, system.record().committed);
            set(&figures.is_controller, u64::from(system.is_controller()));
        }
        set(&figures.keys, self.links.machine.map().len() as u64);
        set(&figures.member, self.radiant.member_id().map_or(0, MemberId::get));
        set(&figures.disk_free_bytes, self.disk_alarm.free_bytes().unwrap_or(0));
        set(&figures.disk_alarm, u64::from(self.disk_alarm.refusal().is_some()));
        let Some(order) = self.radiant.order() else { return };
        set(&figures.order_id, order.order_id().get());
        set(&figures.last_index, order.last_index());
        set(&figures.commit_index, order.commit_index());
        set(&figures.applied_index, order.applied_index());
        set(&figures.durable_index, order.durable_index());
        set(&figures.snapshot_index, order.snapshot_index());
        set(&figures.term, order.term());
        let herald = order.herald();
        let is_herald = herald.is_some() && herald == self.radiant.member_id();
        set(&figures.is_herald, u64::from(is_herald));
        match self.herald_seen {
            Some((seen, was_herald)) if seen != herald => {
                add(&figures.herald_changes);
                if is_herald && !was_herald {
                    add(&figures.elections_won);
                }
            }
            None if is_herald => add(&figures.elections_won),
            _ => {}
        }
        self.herald_seen = Some((herald, is_herald));
        let states = order.shards().states();
        let serving = states.iter().filter(|state| **state == ShardState::Serving).count();
        set(&figures.shards_served, serving as u64);
        set(&figures.shards_moving, u64::from(order.shards().moving()));
        if is_herald || !figures.member_lag.lock().is_empty() {
            let tick_ms = self.links.config.tick_ms;
            let last = order.last_index();
            let quiet: BTreeMap<MemberId, u64> = order.member_quiet_ticks().into_iter().collect();
            let lag = order
                .member_match_indices()
                .into_iter()
                .map(|(member, matched)| super::metrics::MemberLag {
                    member: member.get(),
                    entries: last.saturating_sub(matched),
                    quiet_ms: quiet.get(&member).copied().unwrap_or(0).saturating_mul(tick_ms),
                })
                .collect();
            *figures.member_lag.lock() = lag;
        }
    }

    /// Tells the reactor the cluster id once the system has one (link handshakes carry
    /// it, so radiants of two systems never link).
    fn publish_cluster(&mut self) {
        let cluster = self.radiant.system().map(crate::core::system::System::cluster);
        if let Some(cluster) = cluster.filter(|cluster| cluster.is_set()) {
            if cluster != self.published_cluster {
                self.published_cluster = cluster;
                *self.links.cluster.lock() = cluster;
            }
        }
    }

    /// Steps the core through every tick of real time since the last one, so its clock
    /// never runs slower than the wall's. The reactor's tick events coalesce when this
    /// thread is behind, and a paused process (SIGSTOP, a VM stall) gets none during the
    /// pause: counting events would stretch a herald's lease past its real length, and a
    /// herald resumed after the others elected a new one would serve lease reads from
    /// its old lease. At most `max_catch_up_ticks` at once: beyond a few election
    /// timeouts more ticks change nothing (leases and elections have long expired).
    fn catch_up_ticks(&mut self) {
        let tick = Duration::from_millis(self.links.config.tick_ms.max(1));
        let elapsed = self.ticked_at.elapsed();
        let due = u64::try_from(elapsed.as_nanos() / tick.as_nanos()).unwrap_or(u64::MAX);
        if due == 0 {
            return;
        }
        self.ticked_at += tick.saturating_mul(u32::try_from(due).unwrap_or(u32::MAX));
        let max_catch_up_ticks = 4 * 2 * self.links.config.election_timeout.max(1);
        for _ in 0..due.min(max_catch_up_ticks) {
            self.now = Tick(self.now.0 + 1);
            self.radiant.step(self.now, Input::Tick, &mut self.actions);
            self.carry_out_actions();
        }
        if due > max_catch_up_ticks {
            // The rest of a long pause: the clock jumps (nothing waits on those ticks).
            self.now = Tick(self.now.0 + (due - max_catch_up_ticks));
        }
    }

    /// A client request: answered here when the radiant refuses it (its WAL failed, the
    /// disk-space alarm) or when it is `status`; otherwise the core's input.
    fn on_client(&mut self, reply_to: ReplyTo, request: ClientRequest) -> Option<Input> {
        if request.key().is_some() {
            let what = "its first keyed request";
            super::test_switches::panic_if(&mut self.panic_armed, what);
            super::test_switches::hang_if(self.hang_armed, what);
        }
        if let Some(reason) = &self.wal_failed {
            let reason =
                format!("this radiant's write-ahead log failed ({reason}); it is shutting down");
            self.send_reply(reply_to, Message::Error(ErrorResponse::Unavailable { reason }));
            return None;
        }
        // Only a herald appends client writes; a follower redirects them as ever.
        let herald = self.radiant.order().and_then(crate::core::order::Order::herald);
        let appends = herald.is_some() && herald == self.radiant.member_id();
        let refusal = self.disk_alarm.refusal().filter(|_| appends && request.adds_data());
        if let Some(reason) = refusal {
            let reason = reason.to_string();
            self.send_reply(reply_to, Message::Error(ErrorResponse::Unavailable { reason }));
            return None;
        }
        // A page of a copy this radiant holds; a cursor it does not hold goes on to the
        // core, which says so (and cursor 0, a new copy, is a read of the order).
        if let ClientRequest::ReadShard { shard, cursor, after, max_bytes } = &request {
            let now = Instant::now();
            let position = (*shard, *cursor);
            if let Some(page) = self.shard_copies.page(position, after.as_deref(), *max_bytes, now)
            {
                let message = Message::Response(ClientResponse::ShardPage(page));
                self.send_reply(reply_to, message);
                return None;
            }
        }
        if request == ClientRequest::Status {
            let disk_bytes = self.disk_bytes();
            let counted = serde_json::json!({
                "security": self.links.security.to_json(),
                "memory": self.links.memory.to_json(),
                "disk_free_bytes": self.disk_alarm.free_bytes(),
                "disk_alarm": self.disk_alarm.refusal(),
            });
            let (radiant, machine) = (&self.radiant, &self.links.machine);
            let figures = (disk_bytes, self.links.config.tick_ms);
            let json = super::status::status_json(radiant, machine, figures, counted);
            self.send_reply(reply_to, Message::Response(ClientResponse::Status { json }));
            return None;
        }
        Some(Input::Client { reply_to, request })
    }

    /// Steps the core with one event; true when it is the shutdown request.
    fn on_event(&mut self, event: StateEvent) -> bool {
        let input = match event {
            // Only a wake-up: `catch_up_ticks` stepped the ticks real time owes.
            StateEvent::Tick => return false,
            StateEvent::Client { reply_to, request, charge } => {
                drop(charge);
                match self.on_client(reply_to, request) {
                    Some(input) => input,
                    None => return false,
                }
            }
            StateEvent::Peer { input, charge } => {
                drop(charge);
                input
            }
            StateEvent::Core(input) => {
                if matches!(input, Input::SnapshotWritten { .. }) {
                    self.snapshot_failures = 0;
                }
                input
            }
            StateEvent::ShardCopied { shard, index, pairs, reply_to } => {
                self.open_shard_copy(shard, index, pairs, reply_to);
                return false;
            }
            StateEvent::SnapshotFailed { reason } => match self.on_snapshot_failed(&reason) {
                Some(input) => input,
                None => return false,
            },
            StateEvent::SnapshotReceived { index, term } => {
                match self.install_snapshot(index, term) {
                    Some((membership, council, shards)) => {
                        Input::SnapshotInstalled { index, term, membership, council, shards }
                    }
                    None => return false,
                }
            }
            StateEvent::WalFailed { reason } => {
                error!(%reason, "state: write-ahead log failed; stopping");
                self.wal_failed = Some(reason);
                let _ = self.links.reactor.send(ReactorEvent::Shutdown);
                return false;
            }
            StateEvent::Shutdown => return true,
        };
        self.radiant.step(self.now, input, &mut self.actions);
        false
    }

    /// Keeps a backup's copy of a shard and answers its first page.
    fn open_shard_copy(
        &mut self,
        shard: ShardId,
        index: LogIndex,
        pairs: Vec<(bytes::Bytes, bytes::Bytes)>,
        reply_to: ReplyTo,
    ) {
        let message = match self.shard_copies.open(shard, index, pairs, Instant::now()) {
            Ok(page) => Message::Response(ClientResponse::ShardPage(page)),
            Err(reason) => Message::Error(ErrorResponse::Unavailable { reason }),
        };
        self.send_reply(reply_to, message);
    }

    /// Loads a received snapshot into the state machine once every worker has finished
    /// what was queued before it. Returns its membership and council section.
    fn install_snapshot(
        &mut self,
        index: LogIndex,
        term: Term,
    ) -> Option<(Membership, Option<bytes::Bytes>, Option<ShardTable>)> {
        let (done, finished) = crossbeam_channel::bounded(self.links.workers.len());
        for worker in &mut self.links.workers {
            worker.send(WorkerRequest::Quiesce { done: done.clone() });
        }
        for _ in 0..self.links.workers.len() {
            let _ = finished.recv();
        }
        let membership =
            self.radiant.order().map(|order| order.membership().clone()).unwrap_or_default();
        let options = super::recovery_options(&self.links.config);
        let (data_dir, machine) = (&self.links.data_dir, &self.links.machine);
        match recovery::load_received(data_dir, &options, machine, (index, term), membership) {
            Ok(received) => Some((received.membership, received.council, received.shards)),
            Err(reason) => {
                error!(index, %reason, "state: cannot load a received snapshot");
                None
            }
        }
    }

    fn send_reply(&self, reply_to: ReplyTo, message: Message) {
        let _ = self.links.reactor.send(ReactorEvent::Reply { reply_to, message });
    }

    /// Carries out the step's actions in order. Consecutive `Persist` actions become
    /// one WAL batch where possible, so a burst of writes costs one fsync.
    fn carry_out_actions(&mut self) {
        // One reused buffer: this runs for every event, client requests included.
        let mut pending = std::mem::take(&mut self.pending_actions);
        self.actions.move_into(&mut pending);
        for action in pending.drain(..) {
            self.carry_out(action);
        }
        self.pending_actions = pending;
    }

    fn send_wal(&mut self, request: WalRequest) {
        if self.links.wal.send(request).is_err() && self.wal_failed.is_none() {
            self.wal_failed = Some("the WAL writer exited".to_string());
        }
    }

    fn carry_out(&mut self, action: Action) {
        effects::carry_out(action, self);
    }

    /// Queues `request` on the worker of `shard`, behind everything queued for it.
    fn queue_on_worker(&mut self, shard: radiant_protocol::slots::ShardId, request: WorkerRequest) {
        let workers = self.links.workers.len();
        self.links.workers[worker_of(shard, workers)].send(request);
    }

    /// Writes the system record before anything after it is carried out (it is small
    /// and rare: formation, council votes, configurations).
    fn write_system_record(&mut self, record: &crate::core::system::SystemRecord) {
        let written = crate::storage::system_file::write(&self.links.data_dir, record);
        if let Err(error) = written {
            let reason = format!("cannot write the system file: {}", crate::error_chain(&error));
            error!(%reason, "state: stopping");
            self.wal_failed = Some(reason);
            let _ = self.links.reactor.send(ReactorEvent::Shutdown);
        }
    }

    fn send_system_message(&mut self, to: &str, message: SystemMessage) {
        let Ok(address) = to.parse::<SocketAddr>() else {
            warn!(%to, "state: a system message names an unusable peer address; dropped");
            return;
        };
        if self.linked.insert(address) {
            let _ = self.links.reactor.send(ReactorEvent::LinkPeer(address));
        }
        let moving = matches!(message.body, radiant_protocol::SystemBody::ShardChunk(_));
        let mut frame = BytesMut::new();
        Message::System(message).encode(0, &mut frame);
        if moving {
            let sent = &self.links.figures.shard_bytes_sent;
            sent.fetch_add(frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = self.links.reactor.send(ReactorEvent::SendPeer { address, frame: frame.freeze() });
    }

    fn send_peer_message(&self, message: PeerMessage) {
        let Some(&address) = self.peers.get(&message.header.to) else {
            warn!(to = %message.header.to, "state: no address for a member; message dropped");
            return;
        };
        let mut frame = BytesMut::new();
        Message::Peer(message).encode(0, &mut frame);
        let _ = self.links.reactor.send(ReactorEvent::SendPeer { address, frame: frame.freeze() });
    }

    /// Keeps a link to every other member's peer address. Addresses are never
    /// forgotten here: a member just removed still gets heartbeats for a while (so it
    /// learns of its removal), and the core decides whom to send to.
    fn on_membership(&mut self, membership: &Membership) {
        let Some(me) = self.radiant.member_id() else { return };
        for member in membership.others(me) {
            let address =
                member_peer_address(membership, member).and_then(|text| text.parse().ok());
            let Some(address) = address else {
                warn!(%member, "state: member has no usable peer address");
                continue;
            };
            if self.peers.insert(member, address) != Some(address) && self.linked.insert(address) {
                info!(%member, %address, "state: linking to order member");
                let _ = self.links.reactor.send(ReactorEvent::LinkPeer(address));
            }
        }
    }

    /// Every worker copies its shards when the barrier reaches the front of its queue,
    /// i.e. after every apply through `index` and before any later one.
    fn start_snapshot(
        &mut self,
        index: LogIndex,
        term: Term,
        membership: Membership,
        (council, shards): (Option<bytes::Bytes>, bytes::Bytes),
    ) {
        let (sink, parts) = crossbeam_channel::unbounded::<ShardDump>();
        for worker in &mut self.links.workers {
            worker.send(WorkerRequest::SnapshotBarrier { sink: sink.clone() });
        }
        drop(sink);
        info!(index, term, "state: snapshot started");
        let job = SnapshotJob::Write { index, term, membership, council, shards, parts };
        let _ = self.links.snapshots.send(job);
    }

    fn shut_down(self) -> StateThreadExit {
        let _ = self.links.wal.send(WalRequest::Shutdown);
        // Dropping the senders ends the workers and the snapshot thread once drained.
        match self.wal_failed {
            Some(reason) => StateThreadExit::WalFailed(reason),
            None => StateThreadExit::Clean,
        }
    }
}

impl StateThread {
    /// The data directory's size, measured at most once per `DISK_BYTES_REFRESH`.
    fn disk_bytes(&mut self) -> u64 {
        let now = Instant::now();
        match self.disk_bytes {
            Some((measured_at, bytes)) if now - measured_at < DISK_BYTES_REFRESH => bytes,
            _ => {
                let bytes = super::directory_bytes(&self.links.data_dir.path);
                self.disk_bytes = Some((now, bytes));
                bytes
            }
        }
    }
}

// ===== the core's actions, through the daemon's threads =====

impl effects::Network for StateThread {
    fn send_peer(&mut self, message: PeerMessage) {
        // After a storage failure nothing durable can be promised any more, so nothing
        // is said.
        if self.wal_failed.is_none() {
            self.send_peer_message(message);
        }
    }

    fn send_system(&mut self, to: String, message: SystemMessage) {
        if self.wal_failed.is_none() {
            self.send_system_message(&to, message);
        }
    }

    fn reply(&mut self, reply_to: ReplyTo, result: Result<ClientResponse, ErrorResponse>) {
        let message = match result {
            Ok(response) => Message::Response(response),
            Err(error) => Message::Error(error),
        };
        self.send_reply(reply_to, message);
    }

    fn membership_changed(&mut self, membership: Membership) {
        self.on_membership(&membership);
    }
}

impl effects::LogStore for StateThread {
    fn persist(
        &mut self,
        sequence: u64,
        hard_state: Option<HardState>,
        truncate_from: Option<LogIndex>,
        entries: Vec<LogEntry>,
    ) {
        self.disk_alarm.note_appended(entries.iter().map(|entry| entry.data.len() as u64).sum());
        self.send_wal(WalRequest::Append { sequence, hard_state, truncate_from, entries });
    }

    fn compact_log(&mut self, through: LogIndex) {
        self.send_wal(WalRequest::Compact { through });
    }

    fn reset_log(&mut self, snapshot_index: LogIndex) {
        self.send_wal(WalRequest::Reset { next_index: snapshot_index + 1 });
    }
}

impl effects::SnapshotStore for StateThread {
    fn write_snapshot(&mut self, (index, term): (LogIndex, Term), state: effects::SnapshotState) {
        let encoded = (state.council, state.shards.encode());
        self.start_snapshot(index, term, state.membership, encoded);
    }

    /// Hands the chunk to the snapshot thread, which reads and sends it.
    fn send_snapshot_chunk(
        &mut self,
        header: PeerHeader,
        (snapshot_index, snapshot_term): (LogIndex, Term),
        offset: u64,
        max_bytes: u64,
    ) {
        let Some(&address) = self.peers.get(&header.to) else { return };
        let _ = self.links.snapshots.send(SnapshotJob::SendChunk {
            address,
            header,
            snapshot_index,
            snapshot_term,
            offset,
            max_bytes,
        });
    }

    fn write_snapshot_chunk(&mut self, chunk: radiant_protocol::InstallSnapshot) {
        let _ = self.links.snapshots.send(SnapshotJob::ReceiveChunk(chunk));
    }
}

impl effects::SystemStore for StateThread {
    fn persist_system(&mut self, record: SystemRecord) {
        self.write_system_record(&record);
    }
}

impl effects::Apply for StateThread {
    fn apply(
        &mut self,
        shard: ShardId,
        index: LogIndex,
        command: Command,
        reply_to: Option<ReplyTo>,
    ) {
        self.queue_on_worker(shard, WorkerRequest::Apply { shard, index, command, reply_to });
    }

    /// Serves a read here when the shard's worker has carried out everything queued for
    /// it (so the shard holds every apply before the read), else queues it behind them.
    /// Reads in a read-heavy load then cost no hand-off to a worker: one thread wake
    /// fewer per read, which on two cores was a tenth of a pipelined get's time.
    fn read(&mut self, shard: ShardId, key: Bytes, reply_to: ReplyTo) {
        let workers = self.links.workers.len();
        if !self.links.workers[worker_of(shard, workers)].is_idle() {
            return self.queue_on_worker(shard, WorkerRequest::Read { shard, key, reply_to });
        }
        let value = self.links.machine.get(shard, &key);
        let message = Message::Response(ClientResponse::GetResult { value });
        let _ = self.links.reactor.send(ReactorEvent::Reply { reply_to, message });
    }

    /// Queues the copy behind the shard worker's applies, always: copying and sorting a
    /// large shard here would hold up every order's progress on this thread.
    fn copy_shard(&mut self, shard: ShardId, index: LogIndex, reply_to: ReplyTo) {
        let reply = self.links.completion_sender.clone();
        self.queue_on_worker(shard, WorkerRequest::CopyShard { shard, index, reply_to, reply });
    }

    fn shard_data(&mut self, effect: ShardEffect) {
        self.queue_on_worker(effect.shard(), WorkerRequest::ShardData(effect));
    }

    fn read_shard_chunk(
        &mut self,
        shard: ShardId,
        number: u64,
        after: Option<Bytes>,
        max_bytes: u64,
    ) {
        let reply = self.links.completion_sender.clone();
        let read = WorkerRequest::ReadChunk { shard, number, after, max_bytes, reply };
        self.queue_on_worker(shard, read);
    }
}
