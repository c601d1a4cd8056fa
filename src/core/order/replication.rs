//! Replication: the herald's per-member progress, pipelined `Append` batches of at
//! most `replication_max_bytes`, heartbeats, log matching and conflict truncation on
//! followers, commit at a majority of durable copies, applying committed entries, and
//! snapshots for members whose next entry was compacted away.

use std::collections::VecDeque;

use radiant_protocol::{
    Append, AppendAck, Command, InstallSnapshot, InstallSnapshotAck, Limits, LogIndex, MemberId,
    PeerBody, PeerHeader, Term,
};

use super::{Order, OrderRole};
use crate::core::{Action, Actions, Tick};
use radiant_protocol::slots::key_shard;

/// Most entries in one `Append`, whatever their size.
const MAX_ENTRIES_PER_APPEND: usize = 4_096;

/// How the herald is sending to one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProgressState {
    /// Looking for where the logs agree: one `Append` at a time.
    Probe { sent_at: Option<Tick> },
    /// Logs agree: stream batches, up to `max_inflight_appends` unacknowledged (each
    /// batch's last index and when it was sent).
    Replicate { inflight: VecDeque<(LogIndex, Tick)> },
    /// Sending a snapshot in chunks.
    Snapshot { index: LogIndex, sent_at: Tick },
}

/// The herald's view of one member.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) match_index: LogIndex,
    pub(crate) next_index: LogIndex,
    pub(crate) state: ProgressState,
    /// Heard from since the last check-quorum round.
    pub(crate) recent_active: bool,
    pub(crate) last_heard: Tick,
    /// Highest heartbeat round this member acknowledged (read-index).
    pub(crate) acknowledged_round: u64,
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex, now: Tick) -> Self {
        Progress {
            match_index: 0,
            next_index,
            state: ProgressState::Probe { sent_at: None },
            recent_active: true,
            last_heard: now,
            acknowledged_round: 0,
        }
    }
}

/// A snapshot arriving in chunks on a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IncomingSnapshot {
    pub(crate) from: MemberId,
    pub(crate) index: LogIndex,
    pub(crate) term: Term,
    pub(crate) next_offset: u64,
}

// ===== herald side =====

impl Order {
    /// Sends `member` what it needs next: entries, a probe, or a snapshot chunk.
    pub(super) fn send_append(&mut self, member: MemberId, actions: &mut Actions) {
        let Some(progress) = self.progress.get(&member) else {
            return;
        };
        if matches!(progress.state, ProgressState::Snapshot { .. }) {
            return;
        }
        if progress.next_index <= self.log.snapshot_index() {
            self.start_snapshot_transfer(member, actions);
            return;
        }
        let next_index = progress.next_index;
        let window_full = match &progress.state {
            ProgressState::Probe { sent_at } => sent_at
                .is_some_and(|sent| self.now.0 < sent.0 + self.options.heartbeat_interval_ticks),
            ProgressState::Replicate { inflight } => {
                inflight.len() >= self.options.max_inflight_appends
                    || next_index > self.log.last_index()
            }
            ProgressState::Snapshot { .. } => true,
        };
        if window_full {
            return;
        }
        let prev_log_index = next_index - 1;
        let prev_log_term =
            self.log.term_at(prev_log_index).expect("next index is past the snapshot point");
        let entries = self.log.entries_from(
            next_index,
            self.options.replication_max_bytes,
            MAX_ENTRIES_PER_APPEND,
        );
        let last_sent = prev_log_index + entries.len() as u64;
        let progress = self.progress.get_mut(&member).expect("checked above");
        match &mut progress.state {
            ProgressState::Probe { sent_at } => *sent_at = Some(self.now),
            ProgressState::Replicate { inflight } => {
                inflight.push_back((last_sent, self.now));
                progress.next_index = last_sent + 1;
            }
            ProgressState::Snapshot { .. } => unreachable!("returned above"),
        }
        let body = Append {
            prev_log_index,
            prev_log_term,
            commit: self.commit_index,
            read_round: 0,
            entries,
        };
        self.send(member, PeerBody::Append(body), actions);
    }

    /// Every member this herald sends to: the membership, plus members just removed,
    /// which keep hearing heartbeats for a while so they learn of their removal.
    fn replication_targets(&self) -> Vec<MemberId> {
        let mut targets = self.membership.others(self.me);
        let departing: Vec<MemberId> =
            self.departing.keys().copied().filter(|member| !targets.contains(member)).collect();
        targets.extend(departing);
        targets
    }

    pub(super) fn broadcast_append(&mut self, actions: &mut Actions) {
        for member in self.replication_targets() {
            self.send_append(member, actions);
        }
    }

    /// A heartbeat to every member, starting a new read round (read-index and leases).
    pub(super) fn broadcast_heartbeat(&mut self, actions: &mut Actions) {
        let round = self.reads.start_round(self.now);
        for member in self.replication_targets() {
            let Some(progress) = self.progress.get(&member) else {
                continue;
            };
            let prev_log_index = progress.match_index.max(self.log.snapshot_index());
            let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
                continue;
            };
            let commit = self.commit_index.min(prev_log_index);
            let body = Append {
                prev_log_index,
                prev_log_term,
                commit,
                read_round: round,
                entries: Vec::new(),
            };
            self.send(member, PeerBody::Append(body), actions);
            self.send_append(member, actions);
        }
        if self.membership.quorum() <= 1 {
            self.on_read_round_confirmed(round, actions);
        }
    }

    /// A member whose pipeline went quiet (messages lost) goes back to probing.
    pub(super) fn expire_stalled_progress(&mut self) {
        let stall = self.options.election_timeout_ticks;
        let now = self.now;
        for progress in self.progress.values_mut() {
            let quiet = now.0.saturating_sub(progress.last_heard.0) >= stall / 2;
            let restart = match &progress.state {
                // Heartbeat acks keep a member "heard from" while a lost batch stays
                // unacknowledged for ever (found by the formation simulator on an idle
                // order): a batch unanswered for half an election timeout was lost.
                ProgressState::Replicate { inflight } => {
                    let lost = inflight
                        .front()
                        .is_some_and(|&(_, sent)| now.0.saturating_sub(sent.0) >= stall / 2);
                    (quiet && !inflight.is_empty()) || lost
                }
                ProgressState::Snapshot { sent_at, .. } => now.0.saturating_sub(sent_at.0) >= stall,
                ProgressState::Probe { .. } => false,
            };
            if restart {
                progress.next_index = progress.match_index + 1;
                progress.state = ProgressState::Probe { sent_at: None };
            }
        }
    }

    /// The progress of `member`, marked as heard from now (check-quorum, stall
    /// detection); `None` for a member this herald does not track.
    fn heard_from(&mut self, member: MemberId) -> Option<&mut Progress> {
        let now = self.now;
        let progress = self.progress.get_mut(&member)?;
        progress.recent_active = true;
        progress.last_heard = now;
        Some(progress)
    }

    pub(super) fn on_append_ack(
        &mut self,
        header: PeerHeader,
        ack: AppendAck,
        actions: &mut Actions,
    ) {
        let member = header.from;
        // A peer cannot acknowledge what this herald never sent: a match past its log or
        // a round it never started is a bug or malice, dropped rather than trusted.
        let (last_index, current_round) = (self.log.last_index(), self.reads.current_round());
        if ack.match_index > last_index || ack.read_round > current_round {
            let why = "order: dropping an impossible AppendAck";
            tracing::warn!(%member, ?ack, last_index, current_round, "{why}");
            return;
        }
        let Some(progress) = self.heard_from(member) else { return };
        progress.acknowledged_round = progress.acknowledged_round.max(ack.read_round);
        if ack.success {
            if ack.match_index > progress.match_index {
                progress.match_index = ack.match_index;
            }
            progress.next_index = progress.next_index.max(progress.match_index + 1);
            let match_index = progress.match_index;
            match &mut progress.state {
                ProgressState::Probe { .. } => {
                    // The logs agree through the match: stream from just after it. (An
                    // acknowledged heartbeat proves no more than that, so the next index
                    // must come back to it, or a lagging member would never get its gap.)
                    progress.next_index = match_index + 1;
                    progress.state = ProgressState::Replicate { inflight: VecDeque::new() }
                }
                ProgressState::Replicate { inflight } => {
                    inflight.retain(|&(last, _)| last > match_index)
                }
                ProgressState::Snapshot { .. } => {}
            }
            self.maybe_commit(actions);
            self.maybe_promote_learner(member);
            self.maybe_finish_transfer(member, actions);
        } else if ack.reject_hint + 1 > progress.match_index {
            // The member's log does not hold our entry at next - 1: retreat to its hint.
            progress.next_index =
                (ack.reject_hint + 1).max(progress.match_index + 1).min(progress.next_index.max(1));
            progress.state = ProgressState::Probe { sent_at: None };
        }
        if ack.read_round > 0 {
            self.check_read_rounds(actions);
        }
        self.send_append(member, actions);
    }

    /// Commits the highest index a majority holds durably, if it is of this term.
    pub(super) fn maybe_commit(&mut self, actions: &mut Actions) {
        if self.role != OrderRole::Herald {
            return;
        }
        // A pending reset makes this herald the only voter already (reset.rs).
        let committed = if self.pending_reset.is_some() {
            self.durable_index
        } else {
            self.membership.committed_index(|member| {
                if member == self.me {
                    self.durable_index
                } else {
                    self.progress.get(&member).map_or(0, |progress| progress.match_index)
                }
            })
        };
        // Raft's rule: only entries of the herald's own term are committed by counting.
        if committed > self.commit_index && self.log.term_at(committed) == Some(self.term) {
            self.commit_index = committed;
            self.apply_committed(actions);
            self.broadcast_append(actions);
        }
    }

    fn maybe_finish_transfer(&mut self, member: MemberId, actions: &mut Actions) {
        let Some((target, _)) = self.transfer else {
            return;
        };
        let caught_up = self
            .progress
            .get(&member)
            .is_some_and(|progress| progress.match_index == self.log.last_index());
        if target == member && caught_up {
            self.send(member, PeerBody::TimeoutNow, actions);
        }
    }

    fn start_snapshot_transfer(&mut self, member: MemberId, actions: &mut Actions) {
        let Some((index, term)) = self.local_snapshot else {
            // The log was compacted by an installed snapshot but none was written here
            // yet; the next local snapshot makes one available.
            return;
        };
        let now = self.now;
        if let Some(progress) = self.progress.get_mut(&member) {
            progress.state = ProgressState::Snapshot { index, sent_at: now };
        }
        tracing::info!(%member, index, "order: sending a snapshot to a member that is behind");
        self.request_snapshot_chunk(member, index, term, 0, actions);
    }

    fn request_snapshot_chunk(
        &mut self,
        member: MemberId,
        index: LogIndex,
        term: Term,
        offset: u64,
        actions: &mut Actions,
    ) {
        actions.push(Action::SendSnapshotChunk {
            header: self.header(member),
            snapshot_index: index,
            snapshot_term: term,
            offset,
            max_bytes: self.options.replication_max_bytes,
        });
    }

    pub(super) fn on_install_snapshot_ack(
        &mut self,
        header: PeerHeader,
        ack: InstallSnapshotAck,
        actions: &mut Actions,
    ) {
        let member = header.from;
        let now = self.now;
        let Some(progress) = self.heard_from(member) else { return };
        let ProgressState::Snapshot { index, .. } = progress.state else {
            return;
        };
        if ack.snapshot_index != index {
            return;
        }
        if ack.done {
            progress.match_index = progress.match_index.max(index);
            progress.next_index = index + 1;
            progress.state = ProgressState::Probe { sent_at: None };
            self.send_append(member, actions);
            return;
        }
        progress.state = ProgressState::Snapshot { index, sent_at: now };
        let term = self.local_snapshot.map_or(0, |(_, term)| term);
        self.request_snapshot_chunk(member, index, term, ack.next_offset, actions);
    }
}

// ===== follower side =====

impl Order {
    pub(super) fn on_append(&mut self, header: PeerHeader, append: Append, actions: &mut Actions) {
        let herald = header.from;
        self.herald = Some(herald);
        self.election_elapsed = 0;
        let reject = |hint: LogIndex| AppendAck {
            success: false,
            match_index: 0,
            reject_hint: hint,
            read_round: append.read_round,
        };
        // Entries at or before our snapshot are committed, hence identical: skip them.
        let snapshot_index = self.log.snapshot_index();
        let (prev_index, prev_term, entries) = if append.prev_log_index < snapshot_index {
            let skip = (snapshot_index - append.prev_log_index) as usize;
            let entries: Vec<_> = append.entries.into_iter().skip(skip).collect();
            (snapshot_index, self.log.snapshot_term(), entries)
        } else {
            (append.prev_log_index, append.prev_log_term, append.entries)
        };
        if self.log.term_at(prev_index) != Some(prev_term) {
            let hint = if prev_index > self.log.last_index() {
                self.log.last_index()
            } else {
                self.log.first_index_of_term_at(prev_index).saturating_sub(1).max(snapshot_index)
            };
            let ack = reject(hint);
            self.send_after_persist(herald, PeerBody::AppendAck(ack), actions);
            return;
        }
        if let Some(bad) = entries
            .iter()
            .find(|entry| Command::decode(entry.data.clone(), &Limits::LOG_COMMANDS).is_err())
        {
            let index = bad.index;
            tracing::warn!(%herald, index, "order: dropping an Append with an undecodable command");
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        let Some((truncate_from, appended)) = self.merge_entries(entries) else {
            tracing::error!(%herald, "order: an Append would overwrite committed entries; dropped");
            return;
        };
        self.persist(truncate_from, appended, actions);
        let commit = append.commit.min(last_new);
        if commit > self.commit_index {
            self.commit_index = commit;
            self.apply_committed(actions);
        }
        let ack = AppendAck {
            success: true,
            match_index: last_new,
            reject_hint: 0,
            read_round: append.read_round,
        };
        self.send_after_persist(herald, PeerBody::AppendAck(ack), actions);
    }

    /// Appends the entries we lack, truncating at the first conflict. `None` if a
    /// conflict lies at or below the commit index (a herald may never cause that).
    fn merge_entries(
        &mut self,
        entries: Vec<radiant_protocol::LogEntry>,
    ) -> Option<(Option<LogIndex>, Vec<radiant_protocol::LogEntry>)> {
        let mut truncate_from = None;
        let mut appended = Vec::new();
        for entry in entries {
            match self.log.term_at(entry.index) {
                Some(term) if term == entry.term && truncate_from.is_none() => continue,
                Some(_) if truncate_from.is_none() => {
                    if entry.index <= self.commit_index {
                        return None;
                    }
                    truncate_from = Some(entry.index);
                    self.log.truncate_from(entry.index);
                    self.waiting.retain(|&index, _| index < entry.index);
                }
                _ => {}
            }
            self.log.append(entry.clone());
            appended.push(entry);
        }
        Some((truncate_from, appended))
    }

    pub(super) fn on_install_snapshot(
        &mut self,
        header: PeerHeader,
        chunk: InstallSnapshot,
        actions: &mut Actions,
    ) {
        self.herald = Some(header.from);
        self.election_elapsed = 0;
        let done_ack = |index, offset| InstallSnapshotAck {
            snapshot_index: index,
            next_offset: offset,
            done: true,
        };
        if chunk.snapshot_index <= self.commit_index {
            // Already have everything it holds.
            let ack = done_ack(chunk.snapshot_index, chunk.total_bytes);
            self.send_after_persist(header.from, PeerBody::InstallSnapshotAck(ack), actions);
            return;
        }
        let expected = match &self.incoming_snapshot {
            Some(incoming)
                if incoming.index == chunk.snapshot_index && incoming.from == header.from =>
            {
                incoming.next_offset
            }
            _ => 0,
        };
        if chunk.offset != expected {
            let ack = InstallSnapshotAck {
                snapshot_index: chunk.snapshot_index,
                next_offset: expected,
                done: false,
            };
            self.send(header.from, PeerBody::InstallSnapshotAck(ack), actions);
            return;
        }
        let next_offset = chunk.offset + chunk.chunk.len() as u64;
        self.incoming_snapshot = Some(IncomingSnapshot {
            from: header.from,
            index: chunk.snapshot_index,
            term: chunk.snapshot_term,
            next_offset,
        });
        actions.push(Action::WriteSnapshotChunk { from: header.from, chunk });
    }

    /// The driver stored a chunk (not the last): ask for the next one.
    pub(super) fn on_snapshot_chunk_written(
        &mut self,
        index: LogIndex,
        next_offset: u64,
        actions: &mut Actions,
    ) {
        let Some(incoming) = &self.incoming_snapshot else {
            return;
        };
        if incoming.index != index {
            return;
        }
        let ack = InstallSnapshotAck { snapshot_index: index, next_offset, done: false };
        self.send(incoming.from, PeerBody::InstallSnapshotAck(ack), actions);
    }

    /// The driver installed a received snapshot into the state machine durably.
    pub(super) fn on_snapshot_installed(
        &mut self,
        index: LogIndex,
        term: Term,
        membership: super::Membership,
        actions: &mut Actions,
    ) {
        let from = self.incoming_snapshot.take().map(|incoming| incoming.from);
        if index <= self.commit_index {
            return;
        }
        let keeps_suffix = self.log.term_at(index) == Some(term);
        self.log.install_snapshot(index, term);
        self.commit_index = index;
        self.applied_index = index;
        self.durable_index = self.durable_index.clamp(index, self.log.last_index());
        self.local_snapshot = Some((index, term));
        self.membership = membership.clone();
        self.check_own_membership();
        self.waiting.clear();
        tracing::info!(index, term, keeps_suffix, "order: installed a snapshot from the herald");
        actions.push(Action::MembershipChanged(membership));
        if keeps_suffix {
            actions.push(Action::CompactLog { through: index });
        } else {
            actions.push(Action::ResetLog { snapshot_index: index, snapshot_term: term });
            self.durable_index = index;
        }
        if let Some(from) = from {
            let ack = InstallSnapshotAck { snapshot_index: index, next_offset: 0, done: true };
            self.send_after_persist(from, PeerBody::InstallSnapshotAck(ack), actions);
        }
    }
}

// ===== applying and local snapshots =====

impl Order {
    /// Hands every newly committed entry to the shard workers (or applies it here,
    /// for membership changes), answers waiting clients, and serves ready reads.
    pub(super) fn apply_committed(&mut self, actions: &mut Actions) {
        while self.applied_index < self.commit_index {
            let index = self.applied_index + 1;
            let entry = self
                .log
                .entry(index)
                .expect("committed entries past the snapshot are in the log")
                .clone();
            self.applied_index = index;
            let waiting = self
                .waiting
                .remove(&index)
                .filter(|waiting| waiting.term == entry.term)
                .map(|waiting| waiting.reply_to);
            let command = match Command::decode(entry.data, &Limits::LOG_COMMANDS) {
                Ok(command) => command,
                Err(error) => {
                    // Entries are validated before they enter the log; a failure here
                    // means a bug, so it is loud, but it must not crash a radiant.
                    let why = "order: committed entry does not decode; skipped";
                    tracing::error!(index, %error, "{why}");
                    continue;
                }
            };
            match command {
                Command::Noop => {}
                Command::Membership(change) => {
                    self.apply_membership_change(index, &change, waiting, actions)
                }
                Command::Council(entry) => self.council_applied.push((index, entry)),
                Command::Migration(entry) => {
                    let effects = self.shards.apply(self.options.order_id, &entry);
                    for effect in effects {
                        actions.push(Action::ShardData(effect));
                    }
                }
                command => {
                    let key = command.key().expect("data commands have keys");
                    let shard = key_shard(key, self.options.shard_count);
                    // Decided at apply time, identically on every member: a write
                    // committed after its shard froze is not applied (its client goes
                    // to the shard's new order).
                    match self.admit(shard) {
                        Ok(()) => {
                            actions.push(Action::Apply { shard, index, command, reply_to: waiting })
                        }
                        Err(error) => {
                            if let Some(reply_to) = waiting {
                                actions.push(Action::Reply { reply_to, result: Err(error) });
                            }
                        }
                    }
                }
            }
        }
        self.serve_ready_reads(actions);
        self.maybe_snapshot(actions);
    }

    fn maybe_snapshot(&mut self, actions: &mut Actions) {
        let since = self.applied_index - self.log.snapshot_index();
        let local = self.local_snapshot.map_or(0, |(index, _)| index);
        let due = self.applied_index.saturating_sub(local)
            >= self.options.snapshot_interval_entries
            || (self.log.data_bytes() >= self.options.snapshot_interval_bytes
                && self.applied_index > local);
        if self.snapshot_in_progress || !due || since == 0 {
            return;
        }
        let term = self.log.term_at(self.applied_index).expect("applied entries are in the log");
        self.snapshot_in_progress = true;
        actions.push(Action::Snapshot {
            council: None,
            index: self.applied_index,
            term,
            membership: self.membership.clone(),
            shards: self.shards.clone(),
        });
    }

    /// A local snapshot through `index` is durable: compact the log behind it, keeping
    /// a margin of entries for members that are only a little behind.
    pub(super) fn on_snapshot_written(
        &mut self,
        index: LogIndex,
        term: Term,
        actions: &mut Actions,
    ) {
        self.snapshot_in_progress = false;
        if self.local_snapshot.is_some_and(|(local, _)| local >= index) {
            return;
        }
        self.local_snapshot = Some((index, term));
        let by_count = index.saturating_sub(self.options.catch_up_entries);
        let by_bytes =
            self.log.compaction_point_for_bytes(self.options.snapshot_interval_bytes / 4);
        let through = by_count.max(by_bytes).min(index).min(self.applied_index);
        if through > self.log.snapshot_index() {
            self.log.compact_through(through);
            actions.push(Action::CompactLog { through });
        }
    }

    pub(super) fn on_snapshot_failed(&mut self) {
        self.snapshot_in_progress = false;
    }
}
