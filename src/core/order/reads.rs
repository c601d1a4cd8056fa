//! Reads. Linearizable reads (the default) use read-index: the herald notes its
//! commit index, proves it is still herald with a heartbeat round a majority
//! acknowledges, waits until that index is applied, then reads. A lease read skips
//! the round while a majority acknowledged a round sent less than a lease ago (the
//! members it reached will not vote for anyone else before their election timeout).
//! A stale read is served from whatever this member has applied.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use radiant_protocol::{LogIndex, ReadConsistency};

use super::{Order, OrderRole};
use crate::core::{Action, Actions, ReplyTo, Tick};
use radiant_protocol::slots::ShardId;

/// Rounds whose send time is remembered (for leases); older ones are forgotten.
const REMEMBERED_ROUNDS: usize = 64;

/// A linearizable read waiting for its round or for its index to be applied.
#[derive(Clone, Debug)]
struct PendingRead {
    round: u64,
    index: LogIndex,
    shard: ShardId,
    key: Bytes,
    reply_to: ReplyTo,
    confirmed: bool,
}

/// The herald's reads in flight and its heartbeat rounds.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadQueue {
    current_round: u64,
    round_sent_at: BTreeMap<u64, Tick>,
    confirmed_round: u64,
    /// The tick the newest confirmed round was sent: the lease starts there.
    lease_start: Option<Tick>,
    pending: VecDeque<PendingRead>,
}

impl ReadQueue {
    /// Starts a new round; its number goes out in the heartbeats.
    pub(crate) fn start_round(&mut self, now: Tick) -> u64 {
        self.current_round += 1;
        self.round_sent_at.insert(self.current_round, now);
        while self.round_sent_at.len() > REMEMBERED_ROUNDS {
            self.round_sent_at.pop_first();
        }
        self.current_round
    }

    /// The newest round started.
    pub(crate) fn current_round(&self) -> u64 {
        self.current_round
    }

    fn drain(&mut self) -> Vec<PendingRead> {
        self.pending.drain(..).collect()
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
        if self.role != OrderRole::Herald {
            return false;
        }
        let index = self.commit_index;
        let lease_valid = consistency == ReadConsistency::Lease && self.lease_valid();
        let round = if lease_valid || self.membership.quorum() <= 1 {
            0
        } else {
            self.reads.current_round + 1
        };
        self.reads.pending.push_back(PendingRead {
            round,
            index,
            shard,
            key,
            reply_to,
            confirmed: round == 0,
        });
        if round > 0 {
            // Start the round now rather than at the next heartbeat: lower latency.
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(actions);
        }
        self.serve_ready_reads(actions);
        true
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
        for read in &mut self.reads.pending {
            if read.round <= round {
                read.confirmed = true;
            }
        }
        self.serve_ready_reads(actions);
    }

    /// Serves confirmed reads whose index is applied, in arrival order. A herald that
    /// has not yet committed an entry of its own term does not know the true commit
    /// index, so it serves nothing until it has.
    pub(super) fn serve_ready_reads(&mut self, actions: &mut Actions) {
        let term_committed = self.log.term_at(self.commit_index) == Some(self.term);
        if !term_committed {
            return;
        }
        while let Some(read) = self.reads.pending.front() {
            let index = read.index.max(self.first_index_of_current_term());
            if !read.confirmed || self.applied_index < index {
                break;
            }
            let read = self.reads.pending.pop_front().expect("front exists");
            // The shard may have frozen between the read's arrival and now.
            if let Err(error) = self.admit(read.shard) {
                actions.push(Action::Reply { reply_to: read.reply_to, result: Err(error) });
                continue;
            }
            actions.push(Action::Read {
                shard: read.shard,
                key: read.key,
                reply_to: read.reply_to,
            });
        }
    }

    fn first_index_of_current_term(&self) -> LogIndex {
        self.log.first_index_of_term_at(self.commit_index)
    }

    /// Reads that can no longer be served here (lost the herald role).
    pub(super) fn take_pending_reads(&mut self) -> Vec<ReplyTo> {
        self.reads.lease_start = None;
        self.reads.drain().into_iter().map(|read| read.reply_to).collect()
    }
}
