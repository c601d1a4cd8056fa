//! Reads. Linearizable reads (the default) use read-index: the herald notes its
//! commit index, proves it is still herald with a heartbeat round a majority
//! acknowledges, waits until that index is applied, then reads. A lease read skips
//! the round while a majority acknowledged a round sent less than a lease ago (the
//! members it reached will not vote for anyone else before their election timeout).
//! A stale read is served from whatever this member has applied.
//!
//! Follower reads (`ReadConsistency::Follower`) are linearizable reads a follower serves
//! itself: at the end of the batch they arrived in, it asks the herald for a read index
//! (`ReadIndex`, one request for all of them); the herald treats the request as one
//! more read of the next round and answers with a committed index once the round is
//! confirmed; the follower serves the reads once it has applied that index. A write
//! acknowledged before a read arrived is committed at or below the herald's commit index
//! when the request reaches it, and the round proves no later herald existed then, so
//! the read sees it. A request unanswered after an election timeout is given up and its
//! reads refused (the client retries them); request ids start at a number drawn from the
//! replica's seed, so an answer meant for an earlier incarnation is never taken.
//!
//! Rounds are shared: at most one is in flight for reads, started at the end of the
//! driver's batch (`Input::Flush`), so every read that arrived in the batch joins it.
//! A read that arrives while a round is in flight joins the next one, started at the
//! first batch end after the one in flight is confirmed (a round must start after the
//! read's index was noted, so it cannot join the one already sent). However many reads
//! arrive, they cost one heartbeat round per round trip, not one each. A read then
//! waits only for its own round and its own index: confirmed reads wait by index, so a
//! read never waits behind another of a later round or a higher index.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use radiant_protocol::{LogIndex, ReadConsistency};

use super::{Order, OrderRole};
use crate::core::prng::Prng;
use crate::core::{Action, Actions, ReplyTo, Tick};
use radiant_protocol::slots::ShardId;
use radiant_protocol::{MemberId, PeerBody, PeerHeader, ReadIndex, ReadIndexAck, Term};

/// Rounds whose send time is remembered (for leases); older ones are forgotten.
const REMEMBERED_ROUNDS: usize = 64;

/// A linearizable read waiting for its round or for its index to be applied.
#[derive(Clone, Debug)]
struct PendingRead {
    /// The round that must be confirmed before it is served (0: none).
    round: u64,
    index: LogIndex,
    target: ReadTarget,
    /// When it arrived (a follower gives up its reads an election timeout later).
    arrived_at: Tick,
}

/// What a read is for.
#[derive(Clone, Debug)]
enum ReadTarget {
    /// A client's get of `key`, or with no key, its copy of the whole shard (a backup's
    /// `ReadShard`).
    Client { shard: ShardId, key: Option<Bytes>, reply_to: ReplyTo },
    /// A follower's request for a read index (on the herald): answered with the index.
    ReadIndex { member: MemberId, request_id: u64 },
}

/// A follower's request for a read index, and the reads it covers.
#[derive(Clone, Debug)]
struct AskedReadIndex {
    herald: MemberId,
    term: Term,
    asked_at: Tick,
    reads: Vec<PendingRead>,
}

/// The herald's reads in flight and its heartbeat rounds.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadQueue {
    current_round: u64,
    round_sent_at: BTreeMap<u64, Tick>,
    confirmed_round: u64,
    /// The tick the newest confirmed round was sent: the lease starts there.
    lease_start: Option<Tick>,
    /// Reads waiting for their round, in arrival order (so by round).
    awaiting_round: VecDeque<PendingRead>,
    /// Reads whose round is confirmed, waiting for their index to be applied; keyed by
    /// index, then arrival, so the ready ones are always first.
    awaiting_index: BTreeMap<(LogIndex, u64), PendingRead>,
    /// Reads that reached `awaiting_index`, to order reads of one index.
    arrivals: u64,
    /// The term in which this herald has applied an entry of its own term: from then
    /// on a read needs only its own index applied. Remembered because finding the
    /// term's first index walks the log, and doing that for every read made pipelined
    /// gets cost 0.2 ms each on a log of a few thousand entries.
    own_term_applied: Option<radiant_protocol::Term>,
    /// Follower reads that arrived in this batch, asked for at its end.
    unasked: Vec<PendingRead>,
    /// Follower reads waiting for the herald's read index, by request id.
    asked: BTreeMap<u64, AskedReadIndex>,
    /// The id of the next `ReadIndex` request.
    next_request_id: u64,
}

impl ReadQueue {
    /// An empty queue whose read-index request ids start at a number drawn from `seed`
    /// (not from the replica's own PRNG, whose sequence fixes its election timeouts).
    pub(crate) fn new(seed: u64) -> ReadQueue {
        let next_request_id = Prng::new(seed ^ 0x5245_4144_494e_4458).next_u64();
        ReadQueue { next_request_id, ..ReadQueue::default() }
    }

    /// Starts a new round; its number goes out in the heartbeats.
    pub(crate) fn start_round(&mut self, now: Tick) -> u64 {
        self.current_round += 1;
        self.round_sent_at.insert(self.current_round, now);
        while self.round_sent_at.len() > REMEMBERED_ROUNDS {
            self.round_sent_at.pop_first();
        }
        self.current_round
    }

    /// The newest round started (every round has a number one above the one before).
    pub(crate) fn current_round(&self) -> u64 {
        self.current_round
    }

    /// A round has been started for reads and not yet confirmed.
    fn round_in_flight(&self) -> bool {
        self.current_round > self.confirmed_round
    }

    fn await_index(&mut self, read: PendingRead) {
        self.arrivals += 1;
        self.awaiting_index.insert((read.index, self.arrivals), read);
    }

    /// Moves the reads whose round is confirmed to wait for their index.
    fn confirm_through(&mut self, round: u64) {
        while self.awaiting_round.front().is_some_and(|read| read.round <= round) {
            let read = self.awaiting_round.pop_front().expect("front exists");
            self.await_index(read);
        }
    }

    /// Whether a read waits for a round not started yet.
    fn wants_next_round(&self) -> bool {
        self.awaiting_round.back().is_some_and(|read| read.round > self.current_round)
    }

    fn drain(&mut self) -> Vec<PendingRead> {
        let waiting = std::mem::take(&mut self.awaiting_index).into_values();
        self.awaiting_round.drain(..).chain(waiting).collect()
    }
}

impl Order {
    /// A `get` arrived. Returns false when this member cannot serve it (not herald).
    pub(super) fn read(
        &mut self,
        key: Bytes,
        consistency: ReadConsistency,
        reply_to: ReplyTo,
        actions: &mut Actions,
    ) -> bool {
        let shard = radiant_protocol::slots::key_shard(&key, self.options.shard_count);
        if let Err(error) = self.admit(shard) {
            actions.push(Action::Reply { reply_to, result: Err(error) });
            return true;
        }
        if consistency == ReadConsistency::Stale {
            actions.push(Action::Read { shard, key, reply_to });
            return true;
        }
        let target = ReadTarget::Client { shard, key: Some(key), reply_to };
        if self.role != OrderRole::Herald {
            if consistency != ReadConsistency::Follower || self.herald.is_none() {
                return false;
            }
            let read = PendingRead { round: 0, index: 0, target, arrived_at: self.now };
            self.reads.unasked.push(read);
            return true;
        }
        self.read_at_herald(target, consistency, actions);
        true
    }

    /// A backup's `ReadShard` for a new copy of `shard`: a linearizable read of the whole
    /// shard, served by the herald only (a follower refuses it, naming the herald).
    pub(super) fn copy_shard(&mut self, shard: ShardId, reply_to: ReplyTo, actions: &mut Actions) {
        if let Err(error) = self.admit(shard) {
            actions.push(Action::Reply { reply_to, result: Err(error) });
            return;
        }
        if self.role != OrderRole::Herald {
            self.refuse(reply_to, actions);
            return;
        }
        let target = ReadTarget::Client { shard, key: None, reply_to };
        self.read_at_herald(target, ReadConsistency::Linearizable, actions);
    }

    /// Queues a linearizable read (a client's, or a follower's request) on the herald.
    fn read_at_herald(
        &mut self,
        target: ReadTarget,
        consistency: ReadConsistency,
        actions: &mut Actions,
    ) {
        let index = self.commit_index;
        let lease_valid = consistency == ReadConsistency::Lease && self.lease_valid();
        let mut read = PendingRead { round: 0, index, target, arrived_at: self.now };
        if lease_valid || self.membership.quorum() <= 1 {
            self.reads.await_index(read);
            self.serve_ready_reads(actions);
            return;
        }
        read.round = self.reads.current_round + 1;
        self.reads.awaiting_round.push_back(read);
    }

    /// At the end of a batch on a follower: one `ReadIndex` request covers every follower
    /// read that arrived in the batch. (A replica that became herald in the batch serves
    /// them as its own linearizable reads.)
    pub(super) fn ask_read_index(&mut self, actions: &mut Actions) {
        if self.reads.unasked.is_empty() {
            return;
        }
        let reads = std::mem::take(&mut self.reads.unasked);
        if self.role == OrderRole::Herald {
            for read in reads {
                self.read_at_herald(read.target, ReadConsistency::Linearizable, actions);
            }
            return;
        }
        let Some(herald) = self.herald.filter(|&herald| herald != self.me) else {
            return self.refuse_reads(reads, actions);
        };
        let request_id = self.reads.next_request_id;
        self.reads.next_request_id = request_id.wrapping_add(1);
        let asked = AskedReadIndex { herald, term: self.term, asked_at: self.now, reads };
        self.reads.asked.insert(request_id, asked);
        self.send(herald, PeerBody::ReadIndex(ReadIndex { request_id }), actions);
    }

    /// On the herald: a follower asks for a read index. It waits like a read of the next
    /// round; a replica that is not herald refuses at once.
    pub(super) fn on_read_index(
        &mut self,
        header: PeerHeader,
        request: ReadIndex,
        actions: &mut Actions,
    ) {
        let request_id = request.request_id;
        if self.role != OrderRole::Herald {
            let refused = ReadIndexAck { request_id, refused: true, index: 0 };
            return self.send(header.from, PeerBody::ReadIndexAck(refused), actions);
        }
        let target = ReadTarget::ReadIndex { member: header.from, request_id };
        self.read_at_herald(target, ReadConsistency::Linearizable, actions);
    }

    /// On a follower: the herald's read index. The reads it covers wait for this replica
    /// to apply it; an answer this replica did not ask for (or asked another herald, or
    /// in another term) is dropped.
    pub(super) fn on_read_index_ack(
        &mut self,
        header: PeerHeader,
        ack: ReadIndexAck,
        actions: &mut Actions,
    ) {
        let matches = self
            .reads
            .asked
            .get(&ack.request_id)
            .is_some_and(|asked| asked.herald == header.from && asked.term == header.term);
        if !matches {
            return;
        }
        let Some(asked) = self.reads.asked.remove(&ack.request_id) else { return };
        if ack.refused {
            return self.refuse_reads(asked.reads, actions);
        }
        debug_assert!(ack.index > 0, "a granted read index is a committed index, never 0");
        for mut read in asked.reads {
            read.index = ack.index;
            self.reads.await_index(read);
        }
        self.serve_ready_reads(actions);
    }

    /// Gives up read-index requests unanswered for an election timeout (the request or
    /// its answer was lost, or the herald is gone), and on a follower the reads that
    /// have waited that long for their index to be applied (cut off from the herald):
    /// their reads are refused, so their clients retry.
    pub(super) fn expire_read_index_requests(&mut self, actions: &mut Actions) {
        let now = self.now.0;
        let timeout = self.options.election_timeout_ticks;
        if self.role != OrderRole::Herald && !self.reads.awaiting_index.is_empty() {
            let (expired, waiting): (BTreeMap<_, _>, BTreeMap<_, _>) =
                std::mem::take(&mut self.reads.awaiting_index)
                    .into_iter()
                    .partition(|(_, read)| now >= read.arrived_at.0 + timeout);
            self.reads.awaiting_index = waiting;
            self.refuse_reads(expired.into_values().collect(), actions);
        }
        let expired: Vec<u64> = self
            .reads
            .asked
            .iter()
            .filter(|(_, asked)| now >= asked.asked_at.0 + timeout)
            .map(|(&request_id, _)| request_id)
            .collect();
        for request_id in expired {
            if let Some(asked) = self.reads.asked.remove(&request_id) {
                self.refuse_reads(asked.reads, actions);
            }
        }
    }

    fn refuse_reads(&mut self, reads: Vec<PendingRead>, actions: &mut Actions) {
        for read in reads {
            if let ReadTarget::Client { reply_to, .. } = read.target {
                self.refuse(reply_to, actions);
            }
        }
    }

    /// At the end of a batch: starts the round reads wait for, unless one is in flight
    /// (a later batch end starts it once that one is confirmed). Started now rather
    /// than at the next heartbeat: lower latency.
    pub(super) fn start_wanted_round(&mut self, actions: &mut Actions) {
        if self.reads.wants_next_round() && !self.reads.round_in_flight() {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(actions);
        }
    }

    /// A lease holds while a majority acknowledged a round sent within three quarters
    /// of an election timeout; the quarter is margin for clock-rate drift.
    fn lease_valid(&self) -> bool {
        let lease_ticks = self.options.election_timeout_ticks * 3 / 4;
        self.reads.lease_start.is_some_and(|start| self.now.0 < start.0 + lease_ticks)
    }

    /// Checks which rounds a majority (this herald included) acknowledged.
    pub(super) fn check_read_rounds(&mut self, actions: &mut Actions) {
        let mut rounds: Vec<u64> = self
            .membership
            .voters
            .iter()
            .map(|&voter| {
                // The herald counts as having acknowledged every round it started (not
                // u64::MAX: alone in its order, that would confirm a round no later
                // read could pass, and reads would wait forever once others join).
                if voter == self.me {
                    self.reads.current_round
                } else {
                    self.progress.get(&voter).map_or(0, |progress| progress.acknowledged_round)
                }
            })
            .collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = rounds.get(self.membership.quorum() - 1).copied().unwrap_or(0);
        if confirmed > self.reads.confirmed_round {
            self.on_read_round_confirmed(confirmed, actions);
        }
    }

    pub(super) fn on_read_round_confirmed(&mut self, round: u64, actions: &mut Actions) {
        self.reads.confirmed_round = self.reads.confirmed_round.max(round);
        if let Some(&sent) = self.reads.round_sent_at.get(&round) {
            self.reads.lease_start =
                Some(self.reads.lease_start.map_or(sent, |start| start.max(sent)));
        }
        self.reads.confirm_through(self.reads.confirmed_round);
        self.serve_ready_reads(actions);
    }

    /// Serves confirmed reads whose index is applied, lowest index first. A herald that
    /// has not yet committed an entry of its own term does not know the true commit
    /// index, so it serves nothing until it has; until then a read's index is at least
    /// the first of this term (the same for every read, so the order by index holds).
    pub(super) fn serve_ready_reads(&mut self, actions: &mut Actions) {
        // Called after every apply: with no read waiting it must cost nothing (finding
        // the first index of the term walks the log).
        if self.reads.awaiting_index.is_empty() {
            return;
        }
        // A follower's reads wait for a read index the herald gave: no term to check.
        let first_of_term =
            if self.role != OrderRole::Herald || self.reads.own_term_applied == Some(self.term) {
                0
            } else {
                let term_committed = self.log.term_at(self.commit_index) == Some(self.term);
                if !term_committed {
                    return;
                }
                let first_of_term = self.first_index_of_current_term();
                if self.applied_index >= first_of_term {
                    self.reads.own_term_applied = Some(self.term);
                }
                first_of_term
            };
        while let Some(entry) = self.reads.awaiting_index.first_entry() {
            let (index, _) = *entry.key();
            if self.applied_index < index.max(first_of_term) {
                break;
            }
            match entry.remove().target {
                ReadTarget::ReadIndex { member, request_id } => {
                    // Applied here, so committed: the follower may serve at it.
                    let index = self.applied_index;
                    let ack = ReadIndexAck { request_id, refused: false, index };
                    self.send(member, PeerBody::ReadIndexAck(ack), actions);
                }
                ReadTarget::Client { shard, key, reply_to } => {
                    // The shard may have frozen between the read's arrival and now.
                    if let Err(error) = self.admit(shard) {
                        actions.push(Action::Reply { reply_to, result: Err(error) });
                        continue;
                    }
                    actions.push(match key {
                        Some(key) => Action::Read { shard, key, reply_to },
                        // Every apply through `applied_index` is ahead of it in action
                        // order, and none after: the copy is of exactly that index.
                        None => Action::CopyShard { shard, index: self.applied_index, reply_to },
                    });
                }
            }
        }
    }

    fn first_index_of_current_term(&self) -> LogIndex {
        self.log.first_index_of_term_at(self.commit_index)
    }

    /// Reads that can no longer be served here (lost the herald role). Followers' read
    /// index requests among them are refused, so those followers need not time out.
    pub(super) fn take_pending_reads(&mut self, actions: &mut Actions) -> Vec<ReplyTo> {
        self.reads.lease_start = None;
        // No read waits for a round of this stint any more: none is in flight for the
        // next one, whose first reads would otherwise wait for a periodic heartbeat.
        self.reads.confirmed_round = self.reads.current_round;
        let mut clients = Vec::new();
        for read in self.reads.drain() {
            match read.target {
                ReadTarget::Client { reply_to, .. } => clients.push(reply_to),
                ReadTarget::ReadIndex { member, request_id } => {
                    let refused = ReadIndexAck { request_id, refused: true, index: 0 };
                    self.send(member, PeerBody::ReadIndexAck(refused), actions);
                }
            }
        }
        clients
    }
}
