//! Decoding limits: the bounds every decoder checks before it trusts a length.
//!
//! This module owns the numbers only. It must not read configuration files; the daemon
//! builds a `Limits` from its configuration and hands it to the decoders.

/// The largest `max_frame_bytes` a radiant accepts (2 GiB): no frame, and so no log entry,
/// can be longer, whatever a radiant is configured with.
pub const MAX_FRAME_BYTES_LIMIT: u32 = 1 << 31;
/// The largest `max_key_bytes` a radiant accepts (1 MiB).
pub const MAX_KEY_BYTES_LIMIT: u32 = 1 << 20;
/// The largest `max_value_bytes` a radiant accepts (1 GiB).
pub const MAX_VALUE_BYTES_LIMIT: u32 = 1 << 30;

/// The most bytes an `ErrorResponse` reason (`Unavailable`, `BadRequest`, `OutcomeUnknown`)
/// may hold.
pub const MAX_REASON_BYTES: usize = 1024;

/// The most bytes a radiant's address (`host:port`) may hold: the `NotHerald` hint, the
/// address of `AddMember` and of a `MembershipChange::AddLearner`.
pub const MAX_ADDRESS_BYTES: usize = 255;

/// Per-connection decoding limits. A length field larger than its limit is rejected
/// before any byte is sliced or any buffer grows, so a peer cannot make a radiant
/// allocate more than `max_frame_bytes` per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest accepted value of a frame's length field (everything after the
    /// 4-byte length prefix: version, kind, correlation id and payload).
    pub max_frame_bytes: u32,
    /// The largest accepted key, in bytes.
    pub max_key_bytes: u32,
    /// The largest accepted value, in bytes.
    pub max_value_bytes: u32,
}

impl Limits {
    /// What a command in the log may hold: the largest limits any configuration accepts.
    /// Log entries are decoded with these (on followers, at apply, in recovery), never
    /// with a radiant's configured limits, which bound only the requests a herald
    /// accepts: an entry committed under one radiant's limits must apply on every member
    /// and after every restart, whatever they are configured with now (a smaller
    /// `max_value_bytes` used to make a restarted radiant skip an acknowledged put).
    pub const LOG_COMMANDS: Limits = Limits {
        max_frame_bytes: MAX_FRAME_BYTES_LIMIT,
        max_key_bytes: MAX_KEY_BYTES_LIMIT,
        max_value_bytes: MAX_VALUE_BYTES_LIMIT,
    };

    /// 64 KiB keys, 16 MiB values, and frames of 16 MiB + 1 MiB so that the largest
    /// `Put` (key, value, session and headers) always fits in one frame.
    pub const DEFAULT: Limits = Limits {
        max_frame_bytes: 16 * 1024 * 1024 + 1024 * 1024,
        max_key_bytes: 64 * 1024,
        max_value_bytes: 16 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The bytes a `Put` request needs beyond its key and value: frame header, session,
/// and two length prefixes, rounded up generously.
const PUT_OVERHEAD_BYTES: u64 = 64;

// Why: the defaults must let the largest legal `Put` through; a frame limit below it
// would make a key and value that pass their own limits impossible to send.
const _: () = assert!(
    Limits::DEFAULT.max_frame_bytes as u64
        >= Limits::DEFAULT.max_key_bytes as u64
            + Limits::DEFAULT.max_value_bytes as u64
            + PUT_OVERHEAD_BYTES
);
const _: () = assert!(MAX_REASON_BYTES <= u16::MAX as usize);
const _: () = assert!(MAX_ADDRESS_BYTES <= u16::MAX as usize);
