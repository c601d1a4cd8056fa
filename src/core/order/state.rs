//! The order states of the seed notes (`seeds/order.md`), derived from the replica's
//! Raft state so they can never disagree with it. `docs/order_states.dot` draws them.

use std::fmt;

use radiant_protocol::{MemberId, OrderStateOp};

use super::Order;

/// This replica's Raft role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderRole {
    /// Follows the herald of the current term (or waits for one).
    Follower,
    /// Asking for pre-votes: would it win if it stood?
    PreCandidate,
    /// Standing for election in a new term.
    Candidate,
    /// Leads the order for the current term.
    Herald,
}

/// Which part of an order is inconsistent (seed `OrderError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderError {
    /// Order state differs across members.
    State,
    /// Membership differs across members, or this member was removed.
    Membership,
    /// Shard data is inconsistent.
    Shard,
    /// Anything else.
    Other,
}

/// How recoverable an error is (seed `OrderStateError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStateError {
    /// Recoverable without a reset.
    Recoverable(OrderError),
    /// Needs an order-wide reset.
    RecoverReset,
    /// Needs a system-wide reset.
    SystemReset,
    /// Cannot be recovered.
    Unrecoverable,
}

/// The order's state as this replica sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// No history at all: a brand-new member that has heard from no herald.
    Bootstrap,
    /// A member with history that has not yet heard from a herald of its term
    /// (after a restart, or after its herald went silent).
    Reset,
    /// A herald serves (this replica is it, or follows it).
    Active,
    /// Locked for an operation; requests that would change state get `Locked(op)`.
    Locked(OrderStateOp),
    /// Something is wrong; see the error.
    Error(OrderStateError),
}

impl fmt::Display for OrderStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderStateError::Recoverable(error) => {
                let name = match error {
                    OrderError::State => "STATE",
                    OrderError::Membership => "MEMBERSHIP",
                    OrderError::Shard => "SHARD",
                    OrderError::Other => "OTHER",
                };
                write!(f, "RECOVERABLE({name})")
            }
            OrderStateError::RecoverReset => write!(f, "RECOVER_RESET"),
            OrderStateError::SystemReset => write!(f, "SYSTEM_RESET"),
            OrderStateError::Unrecoverable => write!(f, "UNRECOVERABLE"),
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderState::Bootstrap => write!(f, "BOOTSTRAP"),
            OrderState::Reset => write!(f, "RESET"),
            OrderState::Active => write!(f, "ACTIVE"),
            OrderState::Locked(op) => write!(f, "LOCKED({op})"),
            OrderState::Error(error) => write!(f, "ERROR({error})"),
        }
    }
}

/// The state of `order`, from its role, herald, and operations in flight.
pub(super) fn order_state(order: &Order) -> OrderState {
    if let Some(error) = order.error {
        return OrderState::Error(error);
    }
    match order.role {
        OrderRole::PreCandidate | OrderRole::Candidate => OrderState::Locked(OrderStateOp::Voting),
        OrderRole::Herald if order.transfer.is_some() => OrderState::Locked(OrderStateOp::Voting),
        OrderRole::Herald
            if order.pending_membership_index.is_some()
                || !order.membership.learners.is_empty() =>
        {
            OrderState::Locked(OrderStateOp::MembershipUpdate)
        }
        OrderRole::Herald => OrderState::Active,
        OrderRole::Follower if order.incoming_snapshot.is_some() => {
            OrderState::Locked(OrderStateOp::Replicating)
        }
        OrderRole::Follower if order.herald.is_some() => OrderState::Active,
        OrderRole::Follower if order.term == 0 && order.log.last_index() == 0 => {
            OrderState::Bootstrap
        }
        OrderRole::Follower => OrderState::Reset,
    }
}

/// A member its herald has not heard from for this many election timeouts counts as down
/// (`DOWN` in status, and its order `ERROR(RECOVERABLE(MEMBERSHIP))` until it is back or
/// replaced): heralds hear every member at least once per heartbeat interval, so this is
/// far beyond a slow answer, and beyond the time a re-election takes.
pub const MEMBER_DOWN_ELECTION_TIMEOUTS: u64 = 4;

impl Order {
    /// Ticks since the herald last heard from each member of the order (0 for itself), in
    /// member order; empty unless this replica is the herald.
    pub fn member_quiet_ticks(&self) -> Vec<(MemberId, u64)> {
        if self.role != OrderRole::Herald {
            return Vec::new();
        }
        self.membership
            .addresses
            .keys()
            .map(|&member| {
                let quiet = match self.progress.get(&member) {
                    _ if member == self.me => 0,
                    Some(progress) => self.now.0.saturating_sub(progress.last_heard.0),
                    None => u64::MAX,
                };
                (member, quiet)
            })
            .collect()
    }

    /// Each member's acknowledged log index as the herald tracks it (its own last index
    /// for the herald itself); empty unless this replica is the herald.
    pub fn member_match_indices(&self) -> Vec<(MemberId, u64)> {
        if self.role != OrderRole::Herald {
            return Vec::new();
        }
        let own = self.log.last_index();
        self.membership
            .addresses
            .keys()
            .map(|&member| match self.progress.get(&member) {
                _ if member == self.me => (member, own),
                Some(progress) => (member, progress.match_index),
                None => (member, 0),
            })
            .collect()
    }

    /// Ticks of silence after which a member counts as down
    /// (`MEMBER_DOWN_ELECTION_TIMEOUTS` election timeouts).
    pub fn member_down_ticks(&self) -> u64 {
        MEMBER_DOWN_ELECTION_TIMEOUTS * self.options.election_timeout_ticks.max(1)
    }

    /// The order's state as its herald reports it to the controller and to status, with
    /// the reason when it is not `ACTIVE`. Unlike `state`, which drives what the replica
    /// does, this also says `ERROR(RECOVERABLE(MEMBERSHIP))` while a member is down: the
    /// order still serves, but one more loss may stop it.
    pub fn health(&self) -> (OrderState, Option<String>) {
        let state = self.state();
        let reason = match state {
            OrderState::Active => None,
            OrderState::Bootstrap => Some("no herald heard yet (new member)".to_string()),
            OrderState::Reset => Some("no herald of the current term heard".to_string()),
            OrderState::Locked(op) => Some(format!("locked for {op}")),
            OrderState::Error(OrderStateError::Recoverable(OrderError::Membership)) => {
                Some("this member is no longer in its order's membership".to_string())
            }
            OrderState::Error(error) => Some(format!("error {error}")),
        };
        if reason.is_some() {
            return (state, reason);
        }
        let down_ticks = self.member_down_ticks();
        let down: Vec<String> = self
            .member_quiet_ticks()
            .into_iter()
            .filter(|&(_, quiet)| quiet >= down_ticks)
            .map(|(member, _)| member.get().to_string())
            .collect();
        if down.is_empty() {
            return (state, None);
        }
        let error = OrderState::Error(OrderStateError::Recoverable(OrderError::Membership));
        let reason = format!(
            "member {} not heard for {down_ticks} ticks or more: restart it, or replace it",
            down.join(", ")
        );
        (error, Some(reason))
    }
}
