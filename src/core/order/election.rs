//! Elections: randomised timeouts, pre-vote (a member returning from a partition
//! cannot depose a healthy herald: it first asks whether it *would* win, without
//! raising its term), check-quorum (a herald that hears from no majority for an
//! election timeout steps down) and herald transfer (`TimeoutNow`).

use std::collections::BTreeMap;

use radiant_protocol::{LogIndex, MemberId, PeerBody, PeerHeader, RequestVote, Term, Vote};

use super::replication::Progress;
use super::{Order, OrderRole};
use crate::core::{Actions, Tick};

impl Order {
    /// One tick of logical time.
    pub(crate) fn on_tick(&mut self, now: Tick, actions: &mut Actions) {
        self.now = now;
        self.election_elapsed += 1;
        self.expire_read_index_requests(actions);
        if self.role == OrderRole::Herald {
            self.tick_herald(actions);
            return;
        }
        let timed_out = self.election_elapsed >= self.randomized_election_timeout;
        if self.incoming_snapshot.is_some() || self.error.is_some() {
            return;
        }
        // One look at the membership per tick: it decodes the log's unapplied suffix.
        let voters = self.election_membership().voters;
        // A sole voter is its own majority: nobody can be waiting for it to stand.
        let sole_voter = voters.contains(&self.me) && voters.len() == 1;
        let voter = voters.contains(&self.me) || self.membership.voters.contains(&self.me);
        if voter && (timed_out || sole_voter) {
            self.start_pre_vote(actions);
        }
    }

    /// A voter of the newest membership in its log may stand, and so may a voter of the
    /// applied one that the newest (not yet committed) removes: it may hold the only
    /// up-to-date log, and the change cannot commit without a herald (the Raft
    /// dissertation, §4.2.2). Votes are counted by the newest membership either way.
    fn promotable(&self) -> bool {
        let voter = self.election_membership().voters.contains(&self.me)
            || self.membership.voters.contains(&self.me);
        voter && self.error.is_none()
    }

    fn tick_herald(&mut self, actions: &mut Actions) {
        let now = self.now;
        let departed: Vec<MemberId> = self
            .departing
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(member, _)| *member)
            .collect();
        for member in departed {
            self.departing.remove(&member);
            self.progress.remove(&member);
        }
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.options.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(actions);
        }
        self.expire_stalled_progress();
        if self.election_elapsed >= self.options.election_timeout_ticks {
            self.election_elapsed = 0;
            if let Some((target, deadline)) = self.transfer {
                if self.now >= deadline {
                    tracing::info!(%target, "order: herald transfer timed out, staying herald");
                    self.transfer = None;
                }
            }
            if !self.quorum_recently_active() {
                tracing::warn!(
                    term = self.term,
                    "order: herald cannot hear a majority, stepping down"
                );
                self.become_follower(self.term, None, actions);
                return;
            }
            for progress in self.progress.values_mut() {
                progress.recent_active = false;
            }
        }
    }

    /// Check-quorum: did a majority of voters (this herald included) answer lately?
    fn quorum_recently_active(&self) -> bool {
        let active = self
            .membership
            .voters
            .iter()
            .filter(|&&voter| {
                voter == self.me
                    || self.progress.get(&voter).is_some_and(|progress| progress.recent_active)
            })
            .count();
        active >= self.membership.quorum()
    }

    fn start_pre_vote(&mut self, actions: &mut Actions) {
        self.role = OrderRole::PreCandidate;
        self.herald = None;
        self.votes = BTreeMap::from([(self.me, true)]);
        self.reset_election_timeout();
        tracing::debug!(term = self.term, "order: asking for pre-votes");
        if self.has_quorum_of_votes() {
            self.campaign(false, actions);
            return;
        }
        self.request_votes(self.term + 1, true, false, actions);
    }

    /// Starts an election in a new term. `transfer` = asked to by the herald.
    pub(super) fn campaign(&mut self, transfer: bool, actions: &mut Actions) {
        self.term += 1;
        self.voted_for = Some(self.me);
        self.role = OrderRole::Candidate;
        self.herald = None;
        self.votes = BTreeMap::from([(self.me, true)]);
        self.reset_election_timeout();
        self.persist(None, Vec::new(), actions);
        tracing::info!(term = self.term, transfer, "order: standing for election");
        if self.has_quorum_of_votes() {
            self.become_herald();
            return;
        }
        self.request_votes(self.term, false, transfer, actions);
    }

    fn request_votes(&mut self, term: Term, pre_vote: bool, transfer: bool, actions: &mut Actions) {
        let body = RequestVote {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote,
            transfer,
        };
        let voters: Vec<MemberId> = self
            .election_membership()
            .voters
            .iter()
            .copied()
            .filter(|&voter| voter != self.me)
            .collect();
        for voter in voters {
            let header = PeerHeader { term, ..self.header(voter) };
            let message =
                radiant_protocol::PeerMessage { header, body: PeerBody::RequestVote(body) };
            if pre_vote {
                actions.push(crate::core::Action::Send(message));
            } else {
                // Our own vote must be durable before we ask for others'.
                match self.pending_persists.back() {
                    Some(pending) => self.deferred.push_back((pending.sequence, message)),
                    None => actions.push(crate::core::Action::Send(message)),
                }
            }
        }
    }

    fn has_quorum_of_votes(&self) -> bool {
        let membership = self.election_membership();
        let granted = self
            .votes
            .iter()
            .filter(|(voter, &granted)| granted && membership.voters.contains(voter))
            .count();
        granted >= membership.quorum()
    }

    fn has_quorum_of_rejections(&self) -> bool {
        let rejected = self.votes.values().filter(|&&granted| !granted).count();
        rejected >= self.election_membership().quorum()
    }

    pub(super) fn on_request_vote(
        &mut self,
        header: PeerHeader,
        request: RequestVote,
        actions: &mut Actions,
    ) {
        let candidate = header.from;
        // A radiant that heard from a live herald within the election timeout ignores
        // votes (pre or real): that is what keeps a returning member from deposing it.
        // A transfer is the herald's own request, so it is honoured.
        let herald_is_alive =
            self.herald.is_some() && self.election_elapsed < self.options.election_timeout_ticks;
        if herald_is_alive && !request.transfer && header.term > self.term {
            let term = header.term;
            tracing::debug!(%candidate, term, "order: vote request ignored, herald is alive");
            return;
        }
        let up_to_date = self.log.is_behind(request.last_log_index, request.last_log_term);
        // A voter of this replica's newest membership may be elected, and so may a
        // candidate whose log is strictly ahead of this one: this replica may only lack
        // the entry that promoted it. Refusing such a candidate deadlocked an order of
        // four with one member gone (seed 3978): the lagging replica knew only three
        // voters and refused the promoted one, which held the longest log and so was the
        // only one the third would vote for. Raft's up-to-date rule alone keeps
        // elections safe; this check keeps a learner or a stranger no further ahead than
        // this replica from leading an order it is not part of.
        let strictly_ahead = (request.last_log_term, request.last_log_index)
            > (self.log.last_term(), self.log.last_index());
        let is_voter = self.election_membership().voters.contains(&candidate) || strictly_ahead;
        let grant = if request.pre_vote {
            // A pre-vote is granted for a future term to an up-to-date candidate.
            header.term > self.term && up_to_date && is_voter
        } else {
            let can_vote = self.voted_for == Some(candidate)
                || (self.voted_for.is_none() && self.herald.is_none())
                || self.options.bug(super::InjectedBug::VoteTwice);
            header.term == self.term && can_vote && up_to_date && is_voter
        };
        // The injected bug grants a second vote without recording it: the classic
        // "forgot the vote" bug, which only a cross-radiant check can see.
        let forget = self.options.bug(super::InjectedBug::VoteTwice) && self.voted_for.is_some();
        if grant && !request.pre_vote && !forget {
            self.voted_for = Some(candidate);
            self.election_elapsed = 0;
            self.persist(None, Vec::new(), actions);
        }
        let reply_term = if request.pre_vote && grant { header.term } else { self.term };
        let body = PeerBody::Vote(Vote { granted: grant, pre_vote: request.pre_vote });
        let message = radiant_protocol::PeerMessage {
            header: PeerHeader { term: reply_term, ..self.header(candidate) },
            body,
        };
        match self.pending_persists.back() {
            Some(pending) => self.deferred.push_back((pending.sequence, message)),
            None => actions.push(crate::core::Action::Send(message)),
        }
    }

    pub(super) fn on_vote(&mut self, header: PeerHeader, vote: Vote, actions: &mut Actions) {
        let expected_role =
            if vote.pre_vote { OrderRole::PreCandidate } else { OrderRole::Candidate };
        let expected_term = if vote.pre_vote { self.term + 1 } else { self.term };
        if self.role != expected_role || header.term != expected_term {
            return;
        }
        self.votes.insert(header.from, vote.granted);
        if self.has_quorum_of_votes() {
            if vote.pre_vote {
                self.campaign(false, actions);
            } else {
                self.become_herald();
            }
        } else if self.has_quorum_of_rejections() {
            self.become_follower(self.term, None, actions);
        }
    }

    /// Moves to `term` as a follower of `herald` (if known). Clients waiting on this
    /// replica as herald learn their outcome is unknown.
    pub(super) fn become_follower(
        &mut self,
        term: Term,
        herald: Option<MemberId>,
        actions: &mut Actions,
    ) {
        let was_herald = self.role == OrderRole::Herald;
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        self.role = OrderRole::Follower;
        self.herald = herald;
        self.transfer = None;
        self.reset_election_timeout();
        if was_herald {
            self.pending_reset = None;
            self.progress.clear();
            self.departing.clear();
            self.pending_membership_index = None;
            self.fail_waiting_clients(actions);
        }
        // A former herald's unsent entries are still in its log: write them (persist
        // takes them first), so what it acknowledges later is really on disk.
        if term > self.persisted_hard_state.term || !self.unsent_entries.is_empty() {
            self.persist(None, Vec::new(), actions);
        }
    }

    pub(super) fn become_herald(&mut self) {
        assert_eq!(self.role, OrderRole::Candidate, "only a candidate becomes herald");
        self.role = OrderRole::Herald;
        self.herald = Some(self.me);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        let next_index = self.log.last_index() + 1;
        self.progress = self
            .membership
            .others(self.me)
            .into_iter()
            .map(|member| (member, Progress::new(next_index, self.now)))
            .collect();
        // A pending membership change from an earlier term may still be uncommitted.
        self.pending_membership_index = self.uncommitted_membership_change();
        self.pending_reset = self.uncommitted_reset();
        self.herald_heard_at = self.now;
        tracing::info!(
            term = self.term,
            last_index = self.log.last_index(),
            "order: became herald"
        );
        // A herald commits an entry of its own term before it trusts older entries.
        self.append_command(&radiant_protocol::Command::Noop, None);
    }

    pub(super) fn uncommitted_membership_change(&self) -> Option<LogIndex> {
        (self.commit_index + 1..=self.log.last_index()).rev().find(|&index| {
            self.log.entry(index).is_some_and(|entry| {
                entry.data.first() == Some(&super::client::MEMBERSHIP_COMMAND_TAG)
            })
        })
    }

    /// `TimeoutNow`: the herald asks this member to take over at once.
    pub(super) fn on_timeout_now(&mut self, header: PeerHeader, actions: &mut Actions) {
        if header.term != self.term || !self.promotable() {
            return;
        }
        tracing::info!(from = %header.from, "order: herald asked us to take over");
        self.campaign(true, actions);
    }

    /// Starts handing the herald role to `target` (or the most caught-up voter).
    pub(super) fn start_transfer(
        &mut self,
        target: Option<MemberId>,
        actions: &mut Actions,
    ) -> Result<MemberId, String> {
        let candidates: Vec<MemberId> =
            self.membership.voters.iter().copied().filter(|&voter| voter != self.me).collect();
        let target = match target {
            Some(target) if candidates.contains(&target) => target,
            Some(target) => return Err(format!("member {target} is not a voter of this order")),
            None => *candidates
                .iter()
                .max_by_key(|member| {
                    self.progress.get(member).map_or(0, |progress| progress.match_index)
                })
                .ok_or("this order has no other voter to hand over to")?,
        };
        self.transfer = Some((target, Tick(self.now.0 + self.options.election_timeout_ticks)));
        if self
            .progress
            .get(&target)
            .is_some_and(|progress| progress.match_index == self.log.last_index())
        {
            self.send(target, PeerBody::TimeoutNow, actions);
        } else {
            self.send_append(target, actions);
        }
        Ok(target)
    }
}
