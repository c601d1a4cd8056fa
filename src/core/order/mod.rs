//! This radiant's replica of its order: a Raft group whose leader is the herald.
//!
//! What it implements, by file: `election.rs` (randomised timeouts, pre-vote,
//! check-quorum, herald transfer), `replication.rs` (pipelined `Append`, log matching
//! and conflict truncation, commit at majority, snapshots to lagging members),
//! `reads.rs` (read-index, lease and stale reads), `client.rs` (requests, replies,
//! membership changes), `log.rs` and `membership.rs` (data).
//!
//! Durability gates speech: every message that reveals state the radiant must not
//! forget (a vote, an acknowledgement, a request for votes) waits until every
//! `Persist` issued before it is reported durable (raft-rs's "persisted messages").
//! Like all of `core`, it does no I/O, reads no clock and starts no thread.

mod client;
mod election;
pub mod log;
pub mod membership;
mod reads;
mod replication;
mod reset;
mod state;

use std::collections::{BTreeMap, VecDeque};

use radiant_protocol::{
    ClusterId, Command, CouncilEntry, ErrorResponse, Limits, LogEntry, LogIndex, MemberId, OrderId,
    PeerBody, PeerHeader, PeerMessage, Term,
};

pub use membership::Membership;
pub use state::{
    OrderError, OrderRole, OrderState, OrderStateError, MEMBER_DOWN_ELECTION_TIMEOUTS,
};

use self::log::OrderLog;
use self::reads::ReadQueue;
use self::replication::Progress;
use super::prng::Prng;
use super::shards::{ShardState, ShardTable};
use super::{Action, Actions, ReplyTo, Tick};

/// Settings the order takes from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderOptions {
    /// The system this order belongs to; stamped on every message it sends.
    pub cluster: ClusterId,
    /// The order's id.
    pub order_id: OrderId,
    /// Number of shards keys hash into.
    pub shard_count: u32,
    /// Take a snapshot after this many entries were applied since the last one.
    pub snapshot_interval_entries: u64,
    /// Take a snapshot when the log held in memory has this many bytes of entry data,
    /// whatever the count (entries can be 16 MiB each).
    pub snapshot_interval_bytes: u64,
    /// Minimum ticks without a herald before standing for election.
    pub election_timeout_ticks: u64,
    /// Ticks between a herald's heartbeats.
    pub heartbeat_interval_ticks: u64,
    /// Largest `Append` batch, in bytes of entry data.
    pub replication_max_bytes: u64,
    /// `Append` messages in flight per follower before waiting for acknowledgements.
    pub max_inflight_appends: usize,
    /// Entries kept past a local snapshot so a member a little behind catches up from
    /// the log instead of a whole snapshot; never more than a quarter of
    /// `snapshot_interval_bytes` of them, so a compacted log is not due again at once.
    pub catch_up_entries: u64,
    /// Decoder limits for commands found in the log.
    pub limits: Limits,
    /// A deliberate bug for the simulator's own tests; ignored outside `cargo test`.
    pub injected_bug: InjectedBug,
}

/// Bugs the simulator's tests switch on to prove its checkers catch them. They take
/// effect only in the library's own test build (`cfg!(test)`), never in a release.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InjectedBug {
    /// No bug.
    #[default]
    None,
    /// Acknowledge appended entries before they are durable.
    AcknowledgeBeforeDurable,
    /// Grant a vote to a second candidate of a term without recording it.
    VoteTwice,
    /// Keep serving a shard after it froze for a move (its writes are then lost).
    ServeAfterFreeze,
}

impl OrderOptions {
    pub(crate) fn bug(&self, bug: InjectedBug) -> bool {
        cfg!(test) && self.injected_bug == bug
    }
}

/// A `Persist` whose durability has not been reported yet.
#[derive(Clone, Copy, Debug)]
struct PendingPersist {
    sequence: u64,
    last_index: LogIndex,
    truncated_from: Option<LogIndex>,
}

/// The Raft state that must survive a restart besides the log itself: the order decides
/// it, the write-ahead log stores it (`storage::wal`), so it lives here, below both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this radiant has seen.
    pub term: Term,
    /// The member voted for in `term`; 0 means no vote.
    pub voted_for: u64,
    /// The highest log index known to be committed.
    pub commit: LogIndex,
}

impl HardState {
    /// Whether this (a hard state read back after a crash) keeps every promise `promised`
    /// (one made durable before it) made: no older term, no lower commit, and in the same
    /// term the same vote, if one was cast.
    pub fn keeps_promise_of(&self, promised: &HardState) -> bool {
        let same_vote = self.term > promised.term
            || promised.voted_for == 0
            || self.voted_for == promised.voted_for;
        self.term >= promised.term && self.commit >= promised.commit && same_vote
    }
}

/// What the driver recovered from disk for the order.
#[derive(Clone, Debug, Default)]
pub struct RecoveredOrder {
    /// Term, vote and last persisted commit index.
    pub hard_state: HardState,
    /// The newest snapshot's last index and term (0, 0 without one).
    pub snapshot_index: LogIndex,
    /// Term of `snapshot_index`.
    pub snapshot_term: Term,
    /// Membership as of the snapshot and every committed change the driver replayed.
    pub membership: Membership,
    /// Every log entry after the snapshot.
    pub entries: Vec<LogEntry>,
    /// The driver already applied everything through this index to the shard map.
    pub applied_index: LogIndex,
    /// The shard table as of `applied_index` (none: a static order's, serving every
    /// shard).
    pub shards: Option<ShardTable>,
}

/// A client whose request the herald appended at `index`, answered once it commits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Waiting {
    /// The herald's term when it appended the entry; another term's entry at that index
    /// is not this client's.
    pub(super) term: Term,
    pub(super) reply_to: ReplyTo,
    /// Whether a retry of the request is harmless (its session makes it apply once): if
    /// the herald loses its role, such a client is sent on; any other is told the
    /// outcome is unknown.
    pub(super) retry_safe: bool,
}

/// One replica of an order.
#[derive(Debug)]
pub struct Order {
    me: MemberId,
    options: OrderOptions,
    prng: Prng,
    now: Tick,
    // Persistent state (mirrored by the driver's hard state and log).
    term: Term,
    voted_for: Option<MemberId>,
    log: OrderLog,
    membership: Membership,
    // Volatile state.
    role: OrderRole,
    herald: Option<MemberId>,
    commit_index: LogIndex,
    applied_index: LogIndex,
    election_elapsed: u64,
    randomized_election_timeout: u64,
    heartbeat_elapsed: u64,
    votes: BTreeMap<MemberId, bool>,
    // Herald state.
    progress: BTreeMap<MemberId, Progress>,
    waiting: BTreeMap<LogIndex, Waiting>,
    reads: ReadQueue,
    pending_membership_index: Option<LogIndex>,
    transfer: Option<(MemberId, Tick)>,
    /// Members removed from the order that still get heartbeats until the tick given.
    departing: BTreeMap<MemberId, Tick>,
    // Durability tracking.
    persisted_hard_state: HardState,
    next_persist_sequence: u64,
    pending_persists: VecDeque<PendingPersist>,
    durable_index: LogIndex,
    deferred: VecDeque<(u64, PeerMessage)>,
    /// Entries a herald appended since the last flush, not yet handed to `Persist`.
    unsent_entries: Vec<LogEntry>,
    // Snapshots.
    local_snapshot: Option<(LogIndex, Term)>,
    snapshot_in_progress: bool,
    incoming_snapshot: Option<replication::IncomingSnapshot>,
    error: Option<OrderStateError>,
    /// Council entries applied since the radiant last drained them.
    council_applied: Vec<(LogIndex, CouncilEntry)>,
    /// Which shards the order serves, and the moves in flight.
    shards: ShardTable,
    /// When each member was last heard from (any message), for majority-loss recovery.
    heard_at: BTreeMap<MemberId, Tick>,
    /// When a herald (this replica or another) was last heard from.
    herald_heard_at: Tick,
    /// A `MembershipChange::Reset` this herald appended and has not applied: until then
    /// it alone counts for commitment (`reset.rs`).
    pending_reset: Option<LogIndex>,
}

impl Order {
    /// A replica resuming from `recovered`. `seed` fixes its election timeouts.
    pub fn new(me: MemberId, options: OrderOptions, recovered: RecoveredOrder, seed: u64) -> Self {
        let log =
            OrderLog::new(recovered.snapshot_index, recovered.snapshot_term, recovered.entries);
        let hard_state = recovered.hard_state;
        let commit_index = hard_state.commit.clamp(recovered.applied_index, log.last_index());
        assert!(
            recovered.applied_index >= log.snapshot_index()
                && recovered.applied_index <= log.last_index(),
            "recovered applied index {} outside the log {}..={}",
            recovered.applied_index,
            log.snapshot_index(),
            log.last_index()
        );
        let local_snapshot = (recovered.snapshot_index > 0)
            .then_some((recovered.snapshot_index, recovered.snapshot_term));
        let mut order = Order {
            me,
            prng: Prng::new(seed),
            now: Tick(0),
            term: hard_state.term,
            voted_for: MemberId::new(hard_state.voted_for),
            durable_index: log.last_index(),
            log,
            membership: recovered.membership,
            role: OrderRole::Follower,
            herald: None,
            commit_index,
            applied_index: recovered.applied_index,
            election_elapsed: 0,
            randomized_election_timeout: 0,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            waiting: BTreeMap::new(),
            reads: ReadQueue::new(seed),
            pending_membership_index: None,
            transfer: None,
            departing: BTreeMap::new(),
            persisted_hard_state: hard_state,
            next_persist_sequence: 1,
            pending_persists: VecDeque::new(),
            deferred: VecDeque::new(),
            unsent_entries: Vec::new(),
            local_snapshot,
            snapshot_in_progress: false,
            incoming_snapshot: None,
            error: None,
            council_applied: Vec::new(),
            heard_at: BTreeMap::new(),
            herald_heard_at: Tick(0),
            pending_reset: None,
            shards: recovered
                .shards
                .unwrap_or_else(|| ShardTable::serving_all(options.shard_count)),
            options,
        };
        order.reset_election_timeout();
        order
    }

    // ===== getters (status, tests, simulator checkers) =====

    /// This member.
    pub fn me(&self) -> MemberId {
        self.me
    }
    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// This replica's role.
    pub fn role(&self) -> OrderRole {
        self.role
    }
    /// Heartbeat rounds this replica started as herald (read-index and leases; also the
    /// periodic heartbeats); the simulator's scenarios count them.
    pub fn read_rounds_started(&self) -> u64 {
        self.reads.current_round()
    }
    /// The herald this replica follows, if known.
    pub fn herald(&self) -> Option<MemberId> {
        self.herald
    }
    /// Highest committed index known here.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }
    /// Highest index applied (handed to the shard workers).
    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }
    /// Highest index known durable here.
    pub fn durable_index(&self) -> LogIndex {
        self.durable_index
    }
    /// Last log index.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }
    /// The log's entries from `from` (for checkers), empty where compacted.
    pub fn log_entry(&self, index: LogIndex) -> Option<&LogEntry> {
        self.log.entry(index)
    }
    /// Term of the entry at `index`, if still in the log.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }
    /// The log's snapshot point.
    pub fn snapshot_index(&self) -> LogIndex {
        self.log.snapshot_index()
    }
    /// The applied membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    /// The vote cast in the current term.
    pub fn voted_for(&self) -> Option<MemberId> {
        self.voted_for
    }
    /// The order state (seed vocabulary).
    pub fn state(&self) -> OrderState {
        state::order_state(self)
    }

    // ===== inputs =====

    /// A peer message. Validates addressing, applies Raft's term rules, dispatches.
    pub(crate) fn on_message(&mut self, message: PeerMessage, actions: &mut Actions) {
        let PeerMessage { header, body } = message;
        if header.order_id != self.options.order_id
            || header.to != self.me
            || header.from == self.me
        {
            tracing::warn!(?header, "order: dropping a message not addressed to this replica");
            return;
        }
        if self.membership.contains(header.from) {
            self.heard_at.insert(header.from, self.now);
        }
        if !self.accept_term(&header, &body, actions) {
            return;
        }
        if matches!(body, PeerBody::Append(_) | PeerBody::InstallSnapshot(_)) {
            self.herald_heard_at = self.now;
        }
        match body {
            PeerBody::RequestVote(request) => self.on_request_vote(header, request, actions),
            PeerBody::Vote(vote) => self.on_vote(header, vote, actions),
            PeerBody::TimeoutNow => self.on_timeout_now(header, actions),
            PeerBody::Append(append) => {
                if self.role != OrderRole::Follower {
                    // A candidate hearing the herald of its own term yields to it.
                    self.become_follower(header.term, Some(header.from), actions);
                }
                self.on_append(header, append, actions);
            }
            PeerBody::AppendAck(ack) => self.on_append_ack(header, ack, actions),
            PeerBody::InstallSnapshot(chunk) => {
                if self.role != OrderRole::Follower {
                    self.become_follower(header.term, Some(header.from), actions);
                }
                self.on_install_snapshot(header, chunk, actions);
            }
            PeerBody::InstallSnapshotAck(ack) => self.on_install_snapshot_ack(header, ack, actions),
            PeerBody::ReadIndex(request) => self.on_read_index(header, request, actions),
            PeerBody::ReadIndexAck(ack) => self.on_read_index_ack(header, ack, actions),
        }
    }

    /// Raft's term rules. Returns false when the message is stale or ignored.
    fn accept_term(&mut self, header: &PeerHeader, body: &PeerBody, actions: &mut Actions) -> bool {
        let from_herald = matches!(
            body,
            PeerBody::Append(_) | PeerBody::InstallSnapshot(_) | PeerBody::TimeoutNow
        );
        if header.term > self.term {
            if let PeerBody::RequestVote(request) = body {
                // Check-quorum's other half: while a live herald is heard from, vote
                // requests for later terms are ignored (unless the herald asked).
                let herald_alive = self.herald.is_some()
                    && self.election_elapsed < self.options.election_timeout_ticks;
                if herald_alive && !request.transfer {
                    return false;
                }
                if request.pre_vote {
                    return true;
                }
            }
            if let PeerBody::Vote(vote) = body {
                if vote.pre_vote && vote.granted {
                    return true;
                }
            }
            let herald = from_herald.then_some(header.from);
            self.become_follower(header.term, herald, actions);
            return true;
        }
        if header.term < self.term {
            match body {
                PeerBody::Append(_) | PeerBody::InstallSnapshot(_) => {
                    // Tell a stale herald about the newer term so it steps down.
                    let ack = radiant_protocol::AppendAck {
                        success: false,
                        match_index: 0,
                        reject_hint: 0,
                        read_round: 0,
                    };
                    self.send(header.from, PeerBody::AppendAck(ack), actions);
                }
                PeerBody::RequestVote(request) if request.pre_vote => {
                    let vote = radiant_protocol::Vote { granted: false, pre_vote: true };
                    self.send(header.from, PeerBody::Vote(vote), actions);
                }
                _ => {}
            }
            return false;
        }
        true
    }

    /// The end of a batch of inputs: write and replicate what the batch appended.
    pub(crate) fn on_flush(&mut self, actions: &mut Actions) {
        self.ask_read_index(actions);
        if self.role == OrderRole::Herald {
            self.start_wanted_round(actions);
        }
        if self.unsent_entries.is_empty() {
            return;
        }
        self.persist(None, Vec::new(), actions);
        if self.role == OrderRole::Herald {
            self.broadcast_append(actions);
        }
    }

    pub(crate) fn on_durable_input(&mut self, sequence: u64, actions: &mut Actions) {
        self.on_durable(sequence, actions);
    }

    pub(crate) fn on_snapshot_written_input(
        &mut self,
        index: LogIndex,
        term: Term,
        actions: &mut Actions,
    ) {
        self.on_snapshot_written(index, term, actions);
    }

    pub(crate) fn on_snapshot_failed_input(&mut self) {
        self.on_snapshot_failed();
    }

    pub(crate) fn on_snapshot_chunk_written_input(
        &mut self,
        index: LogIndex,
        next_offset: u64,
        actions: &mut Actions,
    ) {
        self.on_snapshot_chunk_written(index, next_offset, actions);
    }

    pub(crate) fn on_snapshot_installed_input(
        &mut self,
        index: LogIndex,
        term: Term,
        membership: Membership,
        shards: Option<ShardTable>,
        actions: &mut Actions,
    ) {
        if let Some(shards) = shards {
            self.shards = shards;
        }
        self.on_snapshot_installed(index, term, membership, actions);
    }

    // ===== persistence and sending =====

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: MemberId::to_wire(self.voted_for),
            commit: self.commit_index,
        }
    }

    /// Emits a `Persist` of the hard state (if changed), an optional truncation and
    /// `entries`, and remembers it until the driver reports it durable.
    fn persist(
        &mut self,
        truncate_from: Option<LogIndex>,
        entries: Vec<LogEntry>,
        actions: &mut Actions,
    ) {
        // Entries appended before this persist must reach the disk first, so the WAL
        // always holds a prefix of the in-memory log.
        let entries = if self.unsent_entries.is_empty() {
            entries
        } else {
            assert!(truncate_from.is_none(), "a herald with unsent entries never truncates");
            let mut all = std::mem::take(&mut self.unsent_entries);
            all.extend(entries);
            all
        };
        let hard_state = self.hard_state();
        let vote_changed = (hard_state.term, hard_state.voted_for)
            != (self.persisted_hard_state.term, self.persisted_hard_state.voted_for);
        // The commit index rides along when something else is written; alone it is not
        // worth an fsync (recovery relearns it from the herald).
        if !vote_changed && truncate_from.is_none() && entries.is_empty() {
            return;
        }
        let hard_state_changed = hard_state != self.persisted_hard_state;
        self.persisted_hard_state = hard_state;
        let sequence = self.next_persist_sequence;
        self.next_persist_sequence += 1;
        if let Some(from) = truncate_from {
            self.durable_index = self.durable_index.min(from - 1);
        }
        self.pending_persists.push_back(PendingPersist {
            sequence,
            last_index: self.log.last_index(),
            truncated_from: truncate_from,
        });
        actions.push(Action::Persist {
            sequence,
            hard_state: hard_state_changed.then_some(hard_state),
            truncate_from,
            entries,
        });
    }

    /// The driver made every `Persist` through `sequence` durable.
    fn on_durable(&mut self, sequence: u64, actions: &mut Actions) {
        let mut last = None;
        while self.pending_persists.front().is_some_and(|pending| pending.sequence <= sequence) {
            last = self.pending_persists.pop_front();
        }
        if let Some(last) = last {
            // A truncation still in flight caps what may be called durable: entries
            // past it in memory are not the ones on disk.
            let floor =
                self.pending_persists.iter().filter_map(|pending| pending.truncated_from).min();
            let candidate = last.last_index.min(floor.map_or(LogIndex::MAX, |from| from - 1));
            self.durable_index = self.durable_index.max(candidate).min(self.log.last_index());
        }
        while self.deferred.front().is_some_and(|(gate, _)| *gate <= sequence) {
            let (_, message) = self.deferred.pop_front().expect("front exists");
            actions.push(Action::Send(message));
        }
        if self.role == OrderRole::Herald {
            self.maybe_commit(actions);
        }
    }

    fn header(&self, to: MemberId) -> PeerHeader {
        PeerHeader {
            cluster: self.options.cluster,
            order_id: self.options.order_id,
            from: self.me,
            to,
            term: self.term,
        }
    }

    /// The membership elections use: the applied one plus the change appended but not
    /// yet applied, if any (Raft decides votes by the newest configuration in the log).
    /// Counting votes by the applied membership alone let a candidate whose log already
    /// held "remove 2" but had not applied it win with radiant 2's vote while another
    /// won by the newer membership in the same term (found by the order simulator).
    pub(super) fn election_membership(&self) -> Membership {
        let mut membership = self.membership.clone();
        for index in self.applied_index + 1..=self.log.last_index() {
            let Some(entry) = self.log.entry(index) else { continue };
            if entry.data.first() != Some(&client::MEMBERSHIP_COMMAND_TAG) {
                continue;
            }
            if let Ok(Command::Membership(change)) =
                Command::decode(entry.data.clone(), &radiant_protocol::Limits::LOG_COMMANDS)
            {
                membership.apply(&change);
            }
        }
        membership
    }

    // ===== the radiant's hooks (council state lives in the order's log) =====

    /// The order's id.
    pub fn order_id(&self) -> OrderId {
        self.options.order_id
    }

    /// `Ok` when this replica can take keyed requests (serve them or send the client
    /// to the herald or owning order); otherwise why not, for `Radiant::readiness`.
    pub fn readiness(&self) -> Result<(), String> {
        if let Some(error) = self.error {
            return Err(format!(
                "not ready: its order replica is in ERROR({error}) (see the log); it serves no \
                 requests"
            ));
        }
        if !self.shards.is_assigned() {
            return Err(super::shards::NOT_ADOPTED.to_string());
        }
        if self.herald.is_none() {
            return Err(format!(
                "not ready: order {} has no herald known here yet (it is electing one, or this \
                 radiant has not heard from it since it started); retry shortly",
                self.options.order_id
            ));
        }
        let own_term_committed = self.log.term_at(self.commit_index) == Some(self.term);
        if self.role == OrderRole::Herald && !own_term_committed {
            return Err(format!(
                "not ready: this radiant is herald of term {} but has not yet committed an entry \
                 of its term, so its log past index {} is not yet known committed (just elected \
                 or restarted); retry shortly",
                self.term, self.commit_index
            ));
        }
        Ok(())
    }

    /// Whether this order serves `shard` now (see `ShardTable::admit`).
    pub(crate) fn admit(
        &self,
        shard: radiant_protocol::slots::ShardId,
    ) -> Result<(), ErrorResponse> {
        let frozen = matches!(self.shards.state(shard.0), ShardState::Outgoing { .. });
        if frozen && self.options.bug(InjectedBug::ServeAfterFreeze) {
            return Ok(());
        }
        self.shards.admit(shard)
    }

    /// The order's settings.
    pub fn options(&self) -> &OrderOptions {
        &self.options
    }

    /// Which shards the order serves and which are moving, as of the applied index.
    pub fn shards(&self) -> &ShardTable {
        &self.shards
    }

    /// Council entries committed and applied since the last call, in log order.
    pub fn drain_council_applied(&mut self) -> Vec<(LogIndex, CouncilEntry)> {
        std::mem::take(&mut self.council_applied)
    }

    /// Whether this replica is the herald and has committed an entry of its own term,
    /// so its committed state is the order's (a new herald's first entry commits first).
    pub fn is_settled_herald(&self) -> bool {
        self.role == OrderRole::Herald
            && self.transfer.is_none()
            && self.log.term_at(self.commit_index) == Some(self.term)
    }

    /// Hands the herald role to the most caught-up other voter (a herald the controller
    /// removed from its order). The member it hands over to.
    pub fn hand_over(&mut self, actions: &mut Actions) -> Result<MemberId, String> {
        if self.role != OrderRole::Herald || self.transfer.is_some() {
            return Err("not a settled herald".to_string());
        }
        self.start_transfer(None, actions)
    }

    /// Appends `command` as herald (council entries, membership changes decided by the
    /// controller). `None` when this replica is not a settled herald, or a membership
    /// change is still in flight.
    pub fn propose(&mut self, command: &Command) -> Option<LogIndex> {
        if !self.is_settled_herald() {
            return None;
        }
        if let Command::Membership(change) = command {
            if self.check_membership_change(change).is_err() {
                return None;
            }
        }
        Some(self.append_command(command, None))
    }

    /// A member the order's membership no longer lists is in
    /// `ERROR(RECOVERABLE(MEMBERSHIP))`, and recovers when a later change or an
    /// installed snapshot lists it again (the controller added it back: it kept its log
    /// and votes, so it may take part as before). Before, the error stayed for good, and
    /// a herald handing its role to such a member waited forever (sharded simulator,
    /// seed 6445 with removals).
    fn check_own_membership(&mut self) {
        let removed = Some(OrderStateError::Recoverable(OrderError::Membership));
        let listed = self.membership.contains(self.me);
        if !listed && self.log.last_index() > 0 {
            self.error = removed;
        } else if listed && self.error == removed {
            tracing::info!("order: this member is in its order's membership again");
            self.error = None;
        }
    }

    /// Whether a membership change is appended but not yet applied.
    pub fn membership_change_pending(&self) -> bool {
        self.pending_membership_index.is_some()
    }

    /// Sends now: for messages that promise nothing about durable state.
    fn send(&self, to: MemberId, body: PeerBody, actions: &mut Actions) {
        actions.push(Action::Send(PeerMessage { header: self.header(to), body }));
    }

    /// Sends once every `Persist` issued so far is durable.
    fn send_after_persist(&mut self, to: MemberId, body: PeerBody, actions: &mut Actions) {
        let message = PeerMessage { header: self.header(to), body };
        if self.options.bug(InjectedBug::AcknowledgeBeforeDurable) {
            actions.push(Action::Send(message));
            return;
        }
        match self.pending_persists.back() {
            Some(pending) => self.deferred.push_back((pending.sequence, message)),
            None => actions.push(Action::Send(message)),
        }
    }

    fn reset_election_timeout(&mut self) {
        let timeout = self.options.election_timeout_ticks;
        self.randomized_election_timeout = self.prng.range(timeout, 2 * timeout);
        self.election_elapsed = 0;
    }

    /// Cheap invariants, checked after every step.
    pub fn check_invariants(&self) {
        assert!(
            self.applied_index <= self.commit_index,
            "applied {} > commit {}",
            self.applied_index,
            self.commit_index
        );
        assert!(
            self.commit_index <= self.log.last_index(),
            "commit {} > last {}",
            self.commit_index,
            self.log.last_index()
        );
        assert!(
            self.durable_index <= self.log.last_index(),
            "durable {} > last {}",
            self.durable_index,
            self.log.last_index()
        );
        assert!(
            self.log.snapshot_index() <= self.applied_index,
            "snapshot {} > applied {}",
            self.log.snapshot_index(),
            self.applied_index
        );
        if self.role != OrderRole::Herald {
            assert!(self.unsent_entries.is_empty(), "only a herald holds unsent entries");
        }
        if self.role == OrderRole::Herald {
            assert_eq!(self.herald, Some(self.me), "a herald must follow itself");
            assert_eq!(self.voted_for, Some(self.me), "a herald voted for itself in its term");
        }
        if self.role == OrderRole::Candidate {
            assert_eq!(self.voted_for, Some(self.me), "a candidate votes for itself");
        }
        if let Some(index) = self.pending_reset {
            assert_eq!(self.role, OrderRole::Herald, "only a herald holds a pending reset");
            assert!(
                index > self.applied_index && index <= self.log.last_index(),
                "pending reset {index} outside the unapplied log {}..={}",
                self.applied_index,
                self.log.last_index()
            );
        }
    }
}
