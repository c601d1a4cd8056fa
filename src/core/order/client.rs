//! Client requests on an order replica: writes become log entries on the herald,
//! reads go to `reads.rs`, admin requests change membership or hand over the herald
//! role. A request this replica cannot serve gets `NotHerald` with the herald's
//! client address when known, or `Locked(op)` while the order is voting.

use radiant_protocol::{
    Batch, ClientRequest, ClientResponse, Command, ErrorResponse, LogIndex, MemberId,
    MembershipChange, OrderStateOp,
};

use super::membership::member_client_address;
use super::{Order, OrderRole, Waiting};
use crate::core::{Action, Actions, ReplyTo, Tick};

/// The first byte of an encoded `Command::Membership` (its tag).
pub(super) const MEMBERSHIP_COMMAND_TAG: u8 = 4;

impl Order {
    pub(crate) fn on_client(
        &mut self,
        reply_to: ReplyTo,
        request: ClientRequest,
        actions: &mut Actions,
    ) {
        if let Some(key) = request.key() {
            let shard = radiant_protocol::slots::key_shard(key, self.options.shard_count);
            if let Err(error) = self.admit(shard) {
                actions.push(Action::Reply { reply_to, result: Err(error) });
                return;
            }
        }
        let Some(command) = self.command_for(request, reply_to, actions) else {
            return;
        };
        if self.role != OrderRole::Herald || self.transfer.is_some() {
            self.refuse(reply_to, actions);
            return;
        }
        if let Command::Membership(change) = &command {
            if let Err(error) = self.check_membership_change(change) {
                actions.push(Action::Reply { reply_to, result: Err(error) });
                return;
            }
        }
        self.append_command(&command, Some(reply_to));
    }

    /// The log command for a write or membership request; `None` when the request was
    /// answered here (reads, pings, transfers, status).
    fn command_for(
        &mut self,
        request: ClientRequest,
        reply_to: ReplyTo,
        actions: &mut Actions,
    ) -> Option<Command> {
        Some(match request {
            ClientRequest::Get { key, consistency } => {
                if !self.read(key, consistency, reply_to, actions) {
                    self.refuse(reply_to, actions);
                }
                return None;
            }
            ClientRequest::ReadShard { shard, cursor, .. } => {
                self.on_read_shard(shard, cursor, reply_to, actions);
                return None;
            }
            ClientRequest::Ping => {
                let response = ClientResponse::Pong { member_id: Some(self.me) };
                actions.push(Action::Reply { reply_to, result: Ok(response) });
                return None;
            }
            ClientRequest::Put { key, value, session } => Command::Put { key, value, session },
            ClientRequest::Delete { key, session } => Command::Delete { key, session },
            ClientRequest::Cas { key, expected, new, session } => {
                Command::Cas { key, expected, new, session }
            }
            ClientRequest::Update { key, update, session } => {
                Command::Update { key, update, session }
            }
            ClientRequest::Batch { batch, session } => {
                if let Err(reason) = self.batch_in_one_shard(&batch) {
                    let result = Err(ErrorResponse::BadRequest { reason });
                    actions.push(Action::Reply { reply_to, result });
                    return None;
                }
                Command::Batch { batch, session }
            }
            ClientRequest::AddMember { member, address } => {
                Command::Membership(MembershipChange::AddLearner { member, address })
            }
            ClientRequest::RemoveMember { member } => {
                Command::Membership(MembershipChange::Remove { member })
            }
            ClientRequest::TransferHerald { to } => {
                self.on_transfer_request(to, reply_to, actions);
                return None;
            }
            ClientRequest::RecoverOrder { order_id, survivor } => {
                self.on_recover_order((order_id, survivor), reply_to, actions);
                return None;
            }
            ClientRequest::AddRadiant { .. }
            | ClientRequest::RemoveRadiant { .. }
            | ClientRequest::MoveShard { .. }
            | ClientRequest::LeaveOrder { .. }
            | ClientRequest::QueryConfiguration { .. } => {
                let reason = "this radiant runs a static order (the `members` config key), \
                              which has no controller: use `radiant admin add-member` or \
                              `remove-member`";
                return Self::refuse_as_bad(reply_to, reason, actions);
            }
            ClientRequest::Status | ClientRequest::Authenticate { .. } => {
                // The driver answers status from its own view, and the reactor answers
                // `Authenticate` for its connection; the core never sees either.
                let reason = "status and authentication are answered by the radiant, not \
                              the order";
                return Self::refuse_as_bad(reply_to, reason, actions);
            }
        })
    }

    /// A backup's `ReadShard`: cursor 0 asks for a new copy of the shard; any other
    /// reaches the core only when the radiant holds no such copy.
    fn on_read_shard(&mut self, shard: u32, cursor: u64, reply_to: ReplyTo, actions: &mut Actions) {
        let reason = if cursor != 0 {
            format!(
                "shard copy {cursor} is not held here (the radiant that took it restarted, \
                 or it expired): start the shard again with cursor 0"
            )
        } else if shard >= self.options.shard_count {
            format!(
                "shard {shard} does not exist: this system has {} shards",
                self.options.shard_count
            )
        } else {
            self.copy_shard(radiant_protocol::slots::ShardId(shard), reply_to, actions);
            return;
        };
        let result = Err(ErrorResponse::BadRequest { reason });
        actions.push(Action::Reply { reply_to, result });
    }

    /// Answers `BadRequest` with `reason`; no command.
    fn refuse_as_bad(reply_to: ReplyTo, reason: &str, actions: &mut Actions) -> Option<Command> {
        let result = Err(ErrorResponse::BadRequest { reason: reason.to_string() });
        actions.push(Action::Reply { reply_to, result });
        None
    }

    /// A batch is one entry applied under one shard's lock, so its keys must all be of
    /// one shard (the first key's, which `on_client` admitted).
    fn batch_in_one_shard(&self, batch: &Batch) -> Result<(), String> {
        let shard_of =
            |key: &[u8]| radiant_protocol::slots::key_shard(key, self.options.shard_count);
        let Some(first) = batch.first_key() else {
            return Err("a batch needs at least one write".to_string());
        };
        let shard = shard_of(first);
        match batch.writes.iter().find(|write| shard_of(&write.key) != shard) {
            None => Ok(()),
            Some(other) => Err(format!(
                "the keys of a batch must be of one shard: {:?} is in {shard}, {:?} in {}; \
                 give related keys one {{hash tag}} to put them in one slot",
                String::from_utf8_lossy(first),
                String::from_utf8_lossy(&other.key),
                shard_of(&other.key)
            )),
        }
    }

    /// Appends `command` as herald; it is written and replicated at the next flush.
    pub(super) fn append_command(
        &mut self,
        command: &Command,
        reply_to: Option<ReplyTo>,
    ) -> LogIndex {
        assert_eq!(self.role, OrderRole::Herald, "only a herald appends");
        let entry = radiant_protocol::LogEntry {
            term: self.term,
            index: self.log.last_index() + 1,
            data: command.to_bytes(),
        };
        let index = entry.index;
        if matches!(command, Command::Membership(_)) {
            self.pending_membership_index = Some(index);
        }
        if let Some(reply_to) = reply_to {
            let retry_safe = command.session().is_some();
            self.waiting.insert(index, Waiting { term: self.term, reply_to, retry_safe });
        }
        self.log.append(entry.clone());
        // Written and replicated at the end of the batch (`Input::Flush`).
        self.unsent_entries.push(entry);
        index
    }

    /// Why this replica does not serve: `Unavailable` with the reason when it is in
    /// ERROR, `Locked(VOTING)` during an election (back off and retry), otherwise
    /// `NotHerald` naming the herald if known.
    pub(super) fn refuse(&self, reply_to: ReplyTo, actions: &mut Actions) {
        let voting = matches!(self.role, OrderRole::Candidate | OrderRole::PreCandidate)
            || self.transfer.is_some();
        let error = if let (Some(_), Err(reason)) = (self.error, self.readiness()) {
            // A replica in ERROR (a member removed from its order, above all) hears its
            // order no more, so the herald it knew is stale: naming it sent clients to a
            // radiant that had long stopped answering (simulator seed 16854).
            ErrorResponse::Unavailable { reason }
        } else if voting {
            ErrorResponse::Locked(OrderStateOp::Voting)
        } else {
            let address =
                self.herald.and_then(|herald| member_client_address(&self.membership, herald));
            ErrorResponse::NotHerald { herald: self.herald, address }
        };
        actions.push(Action::Reply { reply_to, result: Err(error) });
    }

    pub(super) fn check_membership_change(
        &self,
        change: &MembershipChange,
    ) -> Result<(), ErrorResponse> {
        // One change at a time, and an added member counts as in flight until it is
        // promoted; removing that learner (to cancel a stuck addition) is allowed.
        if let MembershipChange::Reset { .. } = change {
            let reason = "a reset is appended only by `radiant admin recover-order` at the \
                          survivor"
                .to_string();
            return Err(ErrorResponse::BadRequest { reason });
        }
        let learners = &self.membership.learners;
        let cancels_learner =
            matches!(change, MembershipChange::Remove { member } if learners.contains(member));
        let in_flight =
            self.pending_membership_index.is_some() || !self.membership.learners.is_empty();
        if in_flight && !cancels_learner {
            return Err(ErrorResponse::Locked(OrderStateOp::MembershipUpdate));
        }
        let mut next = self.membership.clone();
        if !next.apply(change) {
            let reason =
                format!("membership change {change:?} does not apply to the current membership");
            return Err(ErrorResponse::BadRequest { reason });
        }
        Ok(())
    }

    fn on_transfer_request(
        &mut self,
        to: Option<MemberId>,
        reply_to: ReplyTo,
        actions: &mut Actions,
    ) {
        if self.role != OrderRole::Herald {
            self.refuse(reply_to, actions);
            return;
        }
        let result = match self.start_transfer(to, actions) {
            Ok(target) => {
                tracing::info!(%target, "order: handing the herald role over");
                Ok(ClientResponse::Done)
            }
            Err(reason) => Err(ErrorResponse::BadRequest { reason }),
        };
        actions.push(Action::Reply { reply_to, result });
    }

    /// A committed membership change takes effect now.
    pub(super) fn apply_membership_change(
        &mut self,
        index: LogIndex,
        change: &MembershipChange,
        reply_to: Option<ReplyTo>,
        actions: &mut Actions,
    ) {
        if self.pending_membership_index == Some(index) {
            self.pending_membership_index = None;
        }
        if self.pending_reset == Some(index) {
            self.pending_reset = None;
        }
        let applied = self.membership.apply(change);
        tracing::info!(index, ?change, applied, "order: membership change committed");
        if applied {
            actions.push(Action::MembershipChanged(self.membership.clone()));
            self.after_membership_change(change);
        }
        if let Some(reply_to) = reply_to {
            actions.push(Action::Reply { reply_to, result: Ok(ClientResponse::Done) });
        }
        if self.role == OrderRole::Herald && !self.membership.voters.contains(&self.me) {
            // A herald removed from the order stops leading; the others elect anew.
            tracing::info!("order: this herald was removed from the order, stepping down");
            self.become_follower(self.term, None, actions);
        }
    }

    fn after_membership_change(&mut self, change: &MembershipChange) {
        self.check_own_membership();
        if self.role != OrderRole::Herald {
            return;
        }
        let next_index = self.log.last_index() + 1;
        match change {
            MembershipChange::AddLearner { member, .. } => {
                self.progress
                    .insert(*member, super::replication::Progress::new(next_index, self.now));
            }
            MembershipChange::Remove { member } => {
                // Keep sending for two election timeouts so the removed member hears
                // the commit of its removal (and reports it) instead of waiting forever.
                let until = Tick(self.now.0 + 2 * self.options.election_timeout_ticks);
                self.departing.insert(*member, until);
            }
            MembershipChange::Promote { .. } => {}
            MembershipChange::Reset { .. } => {
                let membership = &self.membership;
                self.progress.retain(|member, _| membership.contains(*member));
                self.departing.clear();
            }
        }
    }

    /// A learner that has caught up with the commit index is promoted to voter.
    pub(super) fn maybe_promote_learner(&mut self, member: MemberId) {
        let caught_up = self
            .progress
            .get(&member)
            .is_some_and(|progress| progress.match_index >= self.commit_index);
        if self.membership.learners.contains(&member)
            && caught_up
            && self.pending_membership_index.is_none()
        {
            tracing::info!(%member, "order: learner caught up, promoting it to voter");
            self.append_command(&Command::Membership(MembershipChange::Promote { member }), None);
        }
    }

    /// Clients waiting on this replica as herald: their requests may or may not commit
    /// under the next herald. One whose session makes a retry apply once (and every
    /// read) is sent on to retry there; any other is told the outcome is unknown, since
    /// a redirect would invite a blind retry that could apply it twice.
    pub(super) fn fail_waiting_clients(&mut self, actions: &mut Actions) {
        for (index, waiting) in std::mem::take(&mut self.waiting) {
            if waiting.retry_safe {
                self.refuse(waiting.reply_to, actions);
            } else {
                let reason = format!(
                    "radiant {} appended the request at log index {index} as herald of term \
                     {}, then lost the role before it committed; it may still commit under the \
                     next herald",
                    self.me, waiting.term
                );
                let result = Err(ErrorResponse::OutcomeUnknown { reason });
                actions.push(Action::Reply { reply_to: waiting.reply_to, result });
            }
        }
        for reply_to in self.take_pending_reads(actions) {
            self.refuse(reply_to, actions);
        }
    }
}
