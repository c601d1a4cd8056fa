//! The Radiant wire protocol: frames and typed messages, encoded into `BytesMut`
//! and decoded from `Bytes` without copying keys or values.
//!
//! This crate owns the byte format of every message (see `docs/protocol.md`).
//! It must not do I/O, read a clock, start a thread or panic on any input.
//!
//! A server's read loop:
//!
//! ```
//! use bytes::BytesMut;
//! use radiant_protocol::{decode_frame, ClientRequest, Limits, Message};
//!
//! let mut outgoing = BytesMut::new();
//! Message::Request(ClientRequest::Ping).encode(7, &mut outgoing);
//!
//! let mut incoming = outgoing; // as if it had crossed a socket
//! let limits = Limits::DEFAULT;
//! while let Some(frame) = decode_frame(&mut incoming, limits.max_frame_bytes)? {
//!     let correlation_id = frame.correlation_id;
//!     let message = Message::decode(frame, &limits)?;
//!     assert_eq!((correlation_id, message), (7, Message::Request(ClientRequest::Ping)));
//! }
//! # Ok::<(), radiant_protocol::DecodeError>(())
//! ```
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod codec;
pub mod configuration;
pub mod error;
pub mod frame;
pub mod fuzzing;
pub mod ids;
pub mod kind;
pub mod limits;
pub mod message;
pub mod replication;
pub mod resp;
pub mod slots;
pub mod state;

pub use configuration::{Configuration, RadiantAddress};
pub use error::DecodeError;
pub use frame::{
    decode_frame, encode_frame, Frame, FRAME_HEADER_BYTES, LENGTH_PREFIX_BYTES, MIN_FRAME_LENGTH,
    PROTOCOL_VERSION,
};
pub use ids::{ClientId, ClusterId, LogIndex, MemberId, OrderId, Term};
pub use kind::{Family, Kind};
pub use limits::{Limits, MAX_ADDRESS_BYTES, MAX_REASON_BYTES};
pub use message::{
    Append, AppendAck, ClientRequest, ClientResponse, Command, CouncilEntry, ErrorResponse,
    InstallSnapshot, InstallSnapshotAck, LinkIntroduction, LinkMessage, LinkRole, MembershipChange,
    Message, MigrationEntry, PeerBody, PeerHeader, PeerMessage, ReadConsistency, RequestVote,
    Session, SetCondition, ShardChunk, SystemBody, SystemMessage, Update, UpdateOutcome, Vote,
};
pub use message::{Batch, BatchCondition, BatchOutcome, BatchWrite, MAX_BATCH_WRITES};
pub use message::{
    BeaconHandshake, BeaconResponse, CouncilAppend, CouncilAppendAck, CouncilRequestVote,
    CouncilVote, JoinAccepted, JoinSystem, ShardChunkAck,
};
pub use message::{ReadIndex, ReadIndexAck, ShardPage};
pub use replication::LogEntry;
pub use state::OrderStateOp;
