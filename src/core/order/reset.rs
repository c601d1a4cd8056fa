//! Majority-loss recovery (the seed's `RECOVER_RESET`): an order that lost a majority of
//! its voters for good cannot elect a herald or commit anything, so an operator names
//! one survivor (`radiant admin recover-order`), which becomes the order's sole voter,
//! keeping its log.
//!
//! The survivor does it unilaterally, in three steps within one input: it moves to a new
//! term voting for itself, becomes herald of that term, and appends
//! `MembershipChange::Reset` naming itself. Unlike every other membership change, the
//! reset counts for commitment from the moment it is appended (`pending_reset`): the old
//! majority it replaces is gone, so nothing else could commit it. Once committed it is
//! applied like any change, and a restart replays it from the log.
//!
//! What may be lost: entries the lost members had committed among themselves that the
//! survivor never received (acknowledged writes among them). Everything in the survivor's
//! log, committed or not, is kept and committed. The lost members must never come back
//! with their data: they hold the old membership, under which two of them are a majority.
//!
//! A retry after the reset committed (the survivor is the order's only voter) answers
//! success, so an operator can run the command again after any later step failed.
//!
//! Refused unless the loss is real as far as the survivor can tell: it is a voter, not
//! herald, has heard no herald and fewer than a majority of voters (itself included) for
//! `MEMBER_DOWN_ELECTION_TIMEOUTS` election timeouts.

use radiant_protocol::{
    ClientResponse, Command, ErrorResponse, LogIndex, MemberId, MembershipChange, OrderId,
};

use super::state::MEMBER_DOWN_ELECTION_TIMEOUTS;
use super::{Order, OrderRole};
use crate::core::{Action, Actions, ReplyTo};

impl Order {
    /// `RecoverOrder`: carries out the reset, or says why not.
    pub(super) fn on_recover_order(
        &mut self,
        (order_id, survivor): (OrderId, MemberId),
        reply_to: ReplyTo,
        actions: &mut Actions,
    ) {
        if self.already_recovered(order_id, survivor) {
            // A retried recovery (its first answer lost, or the operator running the
            // command again after a later step failed) finds the work done: say so.
            actions.push(Action::Reply { reply_to, result: Ok(ClientResponse::Done) });
            return;
        }
        if let Err(reason) = self.recover_refusal(order_id, survivor) {
            let result = Err(ErrorResponse::BadRequest { reason });
            actions.push(Action::Reply { reply_to, result });
            return;
        }
        tracing::warn!(
            term = self.term + 1,
            last_index = self.log.last_index(),
            commit_index = self.commit_index,
            dropped = ?self.membership.others(self.me),
            "order: RECOVER_RESET: becoming the sole member of the order"
        );
        self.term += 1;
        self.voted_for = Some(self.me);
        self.role = OrderRole::Candidate;
        self.herald = None;
        self.persist(None, Vec::new(), actions);
        self.become_herald();
        let reset = Command::Membership(MembershipChange::Reset { member: self.me });
        let index = self.append_command(&reset, Some(reply_to));
        self.pending_membership_index = Some(index);
        self.pending_reset = Some(index);
        // The dropped members get nothing more from this herald.
        self.progress.clear();
    }

    /// Whether `survivor` already is the only voter of `order_id`, its reset committed.
    fn already_recovered(&self, order_id: OrderId, survivor: MemberId) -> bool {
        order_id == self.options.order_id
            && survivor == self.me
            && self.pending_reset.is_none()
            && self.membership.voters.len() == 1
            && self.membership.voters.contains(&self.me)
    }

    /// Why this replica may not reset its order now, if it may not.
    fn recover_refusal(&self, order_id: OrderId, survivor: MemberId) -> Result<(), String> {
        if order_id != self.options.order_id {
            return Err(format!(
                "this radiant is of order {}, not order {order_id}: send recover-order to the \
                 survivor of order {order_id}",
                self.options.order_id
            ));
        }
        if survivor != self.me {
            return Err(format!(
                "this radiant is member {}, not member {survivor}: send recover-order to the \
                 survivor itself",
                self.me
            ));
        }
        if !self.membership.voters.contains(&self.me) {
            return Err(format!("member {} is not a voter of order {order_id}", self.me));
        }
        if self.pending_reset.is_some() {
            return Err(format!(
                "member {} is committing a reset of order {order_id} already: retry in a moment",
                self.me
            ));
        }
        if self.role == OrderRole::Herald {
            return Err(format!(
                "member {} is the herald of order {order_id}: it has a majority",
                self.me
            ));
        }
        let window = MEMBER_DOWN_ELECTION_TIMEOUTS * self.options.election_timeout_ticks.max(1);
        let since_herald = self.now.0.saturating_sub(self.herald_heard_at.0);
        if since_herald < window {
            return Err(format!(
                "order {order_id} had a herald {since_herald} ticks ago; a recovery is allowed \
                 only after {window} ticks ({MEMBER_DOWN_ELECTION_TIMEOUTS} election timeouts) \
                 without one. Wait, and check that the lost members are really gone"
            ));
        }
        let heard: Vec<MemberId> = self
            .membership
            .voters
            .iter()
            .copied()
            .filter(|&voter| {
                voter == self.me
                    || self
                        .heard_at
                        .get(&voter)
                        .is_some_and(|&at| self.now.0.saturating_sub(at.0) < window)
            })
            .collect();
        if heard.len() >= self.membership.quorum() {
            return Err(format!(
                "voters {heard:?} of order {order_id} were heard within {window} ticks: a majority \
                 is reachable, so the order can elect a herald by itself; fix the network \
                 instead"
            ));
        }
        Ok(())
    }

    /// The index of a reset appended but not yet committed, if the newest uncommitted
    /// membership change is one (a survivor restarted before its reset committed).
    pub(super) fn uncommitted_reset(&self) -> Option<LogIndex> {
        let index = self.uncommitted_membership_change()?;
        let entry = self.log.entry(index)?;
        match Command::decode(entry.data.clone(), &radiant_protocol::Limits::LOG_COMMANDS) {
            Ok(Command::Membership(MembershipChange::Reset { member })) if member == self.me => {
                Some(index)
            }
            _ => None,
        }
    }
}
