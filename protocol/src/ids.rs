//! Identifiers. Member, order and client ids are never 0: a 0 on the wire means
//! "not set", so the types make 0 unrepresentable and decoding maps it to `None`.

use std::fmt;
use std::num::NonZeroU64;

/// An election epoch of an order (or of the council). 0 is the term before any election.
pub type Term = u64;

/// The position of an entry in an order's replicated log. Index 0 is "before the first entry".
pub type LogIndex = u64;

macro_rules! nonzero_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(NonZeroU64);

        impl $name {
            /// Wraps `value`; `None` for 0, which means "not set" on the wire.
            pub fn new(value: u64) -> Option<Self> {
                NonZeroU64::new(value).map(Self)
            }

            /// The raw value, never 0.
            pub fn get(self) -> u64 {
                self.0.get()
            }

            /// The wire form of an optional id: 0 stands for `None`.
            pub fn to_wire(id: Option<Self>) -> u64 {
                id.map_or(0, Self::get)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

nonzero_id!(
    /// A radiant's permanent identity within a system.
    MemberId
);
nonzero_id!(
    /// An order's (replica group's) identity.
    OrderId
);
nonzero_id!(
    /// A client session's identity, used with a sequence number for exactly-once writes.
    ClientId
);

/// A system's identity: a random 128-bit value fixed by the first controller election
/// and persisted by every radiant. 0 means "not set" (a radiant not yet associated).
/// Radiants refuse peers that present another cluster id, so two systems never merge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(pub u128);

impl ClusterId {
    /// "Not set".
    pub const UNSET: ClusterId = ClusterId(0);

    /// Whether a cluster id has been fixed.
    pub fn is_set(self) -> bool {
        self.0 != 0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}
