//! Order state operations as they travel on the wire (inside `Locked` errors).
//!
//! This module owns the names and the one-byte codes. It must not hold the order
//! state machine itself; that lives in the daemon's core.

use std::fmt;

/// The operation an order is busy with while it is `LOCKED`. A client that receives
/// `Locked(op)` retries after a back-off; the operation finishes on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OrderStateOp {
    /// A member is being added to or removed from the order.
    MembershipUpdate = 1,
    /// The order's whole membership is being replaced.
    MembershipSet = 2,
    /// A shard is being copied to or from the order.
    Replicating = 3,
    /// The order is electing a herald.
    Voting = 4,
    /// The order is probing its members' liveness.
    Probe = 5,
}

impl OrderStateOp {
    /// Every operation, in code order.
    pub const ALL: [OrderStateOp; 5] = [
        OrderStateOp::MembershipUpdate,
        OrderStateOp::MembershipSet,
        OrderStateOp::Replicating,
        OrderStateOp::Voting,
        OrderStateOp::Probe,
    ];

    /// The operation with wire code `code`, or `None` for an unknown code.
    pub fn from_u8(code: u8) -> Option<OrderStateOp> {
        match code {
            1 => Some(OrderStateOp::MembershipUpdate),
            2 => Some(OrderStateOp::MembershipSet),
            3 => Some(OrderStateOp::Replicating),
            4 => Some(OrderStateOp::Voting),
            5 => Some(OrderStateOp::Probe),
            _ => None,
        }
    }

    /// The seed's spelling, used in logs and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStateOp::MembershipUpdate => "MEMBERSHIP_UPDATE",
            OrderStateOp::MembershipSet => "MEMBERSHIP_SET",
            OrderStateOp::Replicating => "REPLICATING",
            OrderStateOp::Voting => "VOTING",
            OrderStateOp::Probe => "PROBE",
        }
    }
}

impl fmt::Display for OrderStateOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_through_its_code() {
        for op in OrderStateOp::ALL {
            assert_eq!(OrderStateOp::from_u8(op as u8), Some(op));
        }
        assert_eq!(OrderStateOp::from_u8(0), None);
        assert_eq!(OrderStateOp::from_u8(6), None);
    }

    #[test]
    fn display_prints_the_seed_spelling() {
        assert_eq!(OrderStateOp::MembershipUpdate.to_string(), "MEMBERSHIP_UPDATE");
        assert_eq!(OrderStateOp::MembershipSet.to_string(), "MEMBERSHIP_SET");
        assert_eq!(OrderStateOp::Replicating.to_string(), "REPLICATING");
        assert_eq!(OrderStateOp::Voting.to_string(), "VOTING");
        assert_eq!(OrderStateOp::Probe.to_string(), "PROBE");
    }
}
