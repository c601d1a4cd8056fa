//! The order states of the seed notes (`seeds/order.md`), derived from the replica's
//! Raft state so they can never disagree with it. `docs/order_states.dot` draws them.

use std::fmt;

use radiant_protocol::OrderStateOp;

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
