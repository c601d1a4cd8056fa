//! Message kinds: the byte after the version in every frame header.
//!
//! This module owns the kind numbers and their family ranges. It must not decode
//! payloads; each family's file under `message/` does that.
//!
//! Each family owns a range of kind bytes so that later kinds never renumber earlier
//! ones and a radiant can tell which family an unknown kind belongs to:
//!
//! | range       | family                                        |
//! |-------------|-----------------------------------------------|
//! | 0x00        | never used (a zeroed buffer is not a message) |
//! | 0x01 – 0x0F | beacon (handshake, address table exchange)    |
//! | 0x10 – 0x1F | join (join system, admin add/remove)          |
//! | 0x20 – 0x2F | vote (order and council elections)            |
//! | 0x30 – 0x3F | replication (append, ack, snapshot chunks)    |
//! | 0x40 – 0x4F | controller (configuration, shard transfer)    |
//! | 0x50 – 0x5F | client requests                               |
//! | 0x60 – 0x6F | client responses                              |
//! | 0x70        | error response                                |
//! | 0x71 – 0x7F | unassigned                                    |
//! | 0x80 – 0x8F | client requests, continued (0x50–0x5F is full) |
//! | 0x90 – 0xFF | unassigned                                    |

use std::fmt;

/// A message family: a group of kinds that share a range and a file under `message/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Discovery between radiants, kinds 0x01–0x0F.
    Beacon,
    /// Joining a system, kinds 0x10–0x1F.
    Join,
    /// Elections of heralds and of the controller, kinds 0x20–0x2F. Order elections
    /// (`RequestVote`, `Vote`, `TimeoutNow`) and council votes (`CouncilRequestVote`,
    /// `CouncilVote`).
    Vote,
    /// Log replication inside an order, kinds 0x30–0x3F: `Append` (also the heartbeat),
    /// `AppendAck`, `InstallSnapshot`, `InstallSnapshotAck`.
    Replication,
    /// The controller's configurations (and, later, shard transfer), kinds 0x40–0x4F.
    Controller,
    /// Requests from clients, kinds 0x50–0x5F and 0x80–0x8F.
    ClientRequest,
    /// Responses to clients, kinds 0x60–0x6F.
    ClientResponse,
    /// The error response, kind 0x70.
    Error,
}

impl Family {
    /// The family whose reserved range holds `kind`, or `None` for 0x00, 0x71–0x7F and 0x90–0xFF.
    /// Works for kinds this version does not know, which makes errors more helpful.
    pub fn of_byte(kind: u8) -> Option<Family> {
        match kind {
            0x01..=0x0F => Some(Family::Beacon),
            0x10..=0x1F => Some(Family::Join),
            0x20..=0x2F => Some(Family::Vote),
            0x30..=0x3F => Some(Family::Replication),
            0x40..=0x4F => Some(Family::Controller),
            0x50..=0x5F => Some(Family::ClientRequest),
            0x60..=0x6F => Some(Family::ClientResponse),
            0x70 => Some(Family::Error),
            0x80..=0x8F => Some(Family::ClientRequest),
            _ => None,
        }
    }

    /// A lowercase name for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Beacon => "beacon",
            Family::Join => "join",
            Family::Vote => "vote",
            Family::Replication => "replication",
            Family::Controller => "controller",
            Family::ClientRequest => "client request",
            Family::ClientResponse => "client response",
            Family::Error => "error",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a frame's payload. Unknown kind bytes have no variant: `decode_frame`
/// reports them as `DecodeError::UnknownKind` after consuming the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A radiant announces itself to its neighbour (system message).
    BeaconHandshake = 0x01,
    /// The answer to `BeaconHandshake`: a temporary id and the responder's view.
    BeaconResponse = 0x02,
    /// A handshake refused (another cluster id).
    BeaconRefused = 0x03,
    /// The first frame on a peer link, from the radiant that dialled: its fresh nonce,
    /// its peer address and cluster id (`LinkMessage::Hello`).
    LinkHello = 0x04,
    /// The dialled radiant's nonce, address, cluster id and proof of the secret.
    LinkChallenge = 0x05,
    /// The dialling radiant's proof of the secret; the link is trusted after it.
    LinkProof = 0x06,
    /// A link handshake refused; the reason says why and what to do.
    LinkRefused = 0x07,
    /// A newcomer asks to join an established system.
    JoinSystem = 0x10,
    /// The controller admits a newcomer.
    JoinAccepted = 0x11,
    /// A candidate for controller asks for a vote.
    CouncilRequestVote = 0x23,
    /// The answer to `CouncilRequestVote`.
    CouncilVote = 0x24,
    /// The controller's heartbeat with its newest configuration.
    CouncilAppend = 0x40,
    /// The answer to `CouncilAppend`.
    CouncilAppendAck = 0x41,
    /// A piece of a shard's data, from the order losing it to the order gaining it.
    ShardChunk = 0x42,
    /// The gaining order's answer to `ShardChunk`.
    ShardChunkAck = 0x43,
    /// A candidate (or pre-candidate) asks for a member's vote.
    RequestVote = 0x20,
    /// A member's answer to `RequestVote`.
    Vote = 0x21,
    /// The herald tells the member it hands over to: start an election now.
    TimeoutNow = 0x22,
    /// The herald sends log entries (none for a heartbeat) and its commit index.
    Append = 0x30,
    /// A member's answer to `Append`.
    AppendAck = 0x31,
    /// The herald sends one chunk of a snapshot to a lagging member.
    InstallSnapshot = 0x32,
    /// A member's answer to `InstallSnapshot`.
    InstallSnapshotAck = 0x33,
    /// A follower asks the herald for a read index (follower reads).
    ReadIndex = 0x34,
    /// The herald's answer to `ReadIndex`.
    ReadIndexAck = 0x35,
    /// Read one key.
    Get = 0x50,
    /// Write one key.
    Put = 0x51,
    /// Delete one key.
    Delete = 0x52,
    /// Compare-and-set one key.
    Cas = 0x53,
    /// Check that a radiant answers.
    Ping = 0x54,
    /// Admin: add a radiant to the system.
    AddMember = 0x55,
    /// Admin: remove a radiant from the system.
    RemoveMember = 0x56,
    /// Admin: make the herald of an order hand over to another member.
    TransferHerald = 0x57,
    /// Admin: ask a radiant for its status.
    Status = 0x58,
    /// Admin: admit a running radiant into the system.
    AddRadiant = 0x59,
    /// Admin: remove a radiant from the system.
    RemoveRadiant = 0x5A,
    /// Admin: move one shard to a given order.
    MoveShard = 0x5B,
    /// Admin: move every shard off an order and dissolve it.
    LeaveOrder = 0x5C,
    /// Ask for configuration n (0: the newest committed).
    QueryConfiguration = 0x5D,
    /// Present a token (the client token or the admin token) for this connection.
    Authenticate = 0x5E,
    /// Read-modify-write one key (conditional set, append, increment, take).
    Update = 0x5F,
    /// The answer to `Get`.
    GetResult = 0x60,
    /// The answer to `Put`.
    PutResult = 0x61,
    /// The answer to `Delete`.
    DeleteResult = 0x62,
    /// The answer to `Cas`.
    CasResult = 0x63,
    /// The answer to `Ping`.
    Pong = 0x64,
    /// The answer to `AddMember`, `RemoveMember` and `TransferHerald`: carried out.
    Done = 0x65,
    /// The answer to `Status` (`ClientResponse::Status`): a JSON document.
    StatusResult = 0x66,
    /// The answer to `QueryConfiguration`: a configuration.
    ConfigurationResult = 0x67,
    /// The answer to `Update`: what it did.
    UpdateResult = 0x68,
    /// The answer to `Batch`: whether it wrote, and how many of its keys existed.
    BatchResult = 0x69,
    /// The answer to `ReadShard`: a page of a shard's copy at one committed index.
    ShardPage = 0x6A,
    /// A request failed; the payload says why and what to do.
    Error = 0x70,
    /// Write several keys of one shard as one log entry.
    Batch = 0x80,
    /// Read a whole shard, page by page, as of one committed index (for backups).
    ReadShard = 0x81,
    /// Admin: make a survivor the sole member of an order that lost its majority.
    RecoverOrder = 0x82,
}

impl Kind {
    /// Every kind this version knows, in byte order.
    pub const ALL: [Kind; 55] = [
        Kind::BeaconHandshake,
        Kind::BeaconResponse,
        Kind::BeaconRefused,
        Kind::LinkHello,
        Kind::LinkChallenge,
        Kind::LinkProof,
        Kind::LinkRefused,
        Kind::JoinSystem,
        Kind::JoinAccepted,
        Kind::RequestVote,
        Kind::Vote,
        Kind::TimeoutNow,
        Kind::CouncilRequestVote,
        Kind::CouncilVote,
        Kind::Append,
        Kind::AppendAck,
        Kind::InstallSnapshot,
        Kind::InstallSnapshotAck,
        Kind::ReadIndex,
        Kind::ReadIndexAck,
        Kind::CouncilAppend,
        Kind::CouncilAppendAck,
        Kind::ShardChunk,
        Kind::ShardChunkAck,
        Kind::Get,
        Kind::Put,
        Kind::Delete,
        Kind::Cas,
        Kind::Ping,
        Kind::AddMember,
        Kind::RemoveMember,
        Kind::TransferHerald,
        Kind::Status,
        Kind::AddRadiant,
        Kind::RemoveRadiant,
        Kind::MoveShard,
        Kind::LeaveOrder,
        Kind::QueryConfiguration,
        Kind::Authenticate,
        Kind::Update,
        Kind::GetResult,
        Kind::PutResult,
        Kind::DeleteResult,
        Kind::CasResult,
        Kind::Pong,
        Kind::Done,
        Kind::StatusResult,
        Kind::ConfigurationResult,
        Kind::UpdateResult,
        Kind::BatchResult,
        Kind::ShardPage,
        Kind::Error,
        Kind::Batch,
        Kind::ReadShard,
        Kind::RecoverOrder,
    ];

    /// The kind with wire byte `byte`, or `None` if this version does not know it.
    pub fn from_u8(byte: u8) -> Option<Kind> {
        match byte {
            0x01 => Some(Kind::BeaconHandshake),
            0x02 => Some(Kind::BeaconResponse),
            0x03 => Some(Kind::BeaconRefused),
            0x04 => Some(Kind::LinkHello),
            0x05 => Some(Kind::LinkChallenge),
            0x06 => Some(Kind::LinkProof),
            0x07 => Some(Kind::LinkRefused),
            0x10 => Some(Kind::JoinSystem),
            0x11 => Some(Kind::JoinAccepted),
            0x20 => Some(Kind::RequestVote),
            0x21 => Some(Kind::Vote),
            0x22 => Some(Kind::TimeoutNow),
            0x23 => Some(Kind::CouncilRequestVote),
            0x24 => Some(Kind::CouncilVote),
            0x40 => Some(Kind::CouncilAppend),
            0x41 => Some(Kind::CouncilAppendAck),
            0x42 => Some(Kind::ShardChunk),
            0x43 => Some(Kind::ShardChunkAck),
            0x30 => Some(Kind::Append),
            0x31 => Some(Kind::AppendAck),
            0x32 => Some(Kind::InstallSnapshot),
            0x33 => Some(Kind::InstallSnapshotAck),
            0x34 => Some(Kind::ReadIndex),
            0x35 => Some(Kind::ReadIndexAck),
            0x50 => Some(Kind::Get),
            0x51 => Some(Kind::Put),
            0x52 => Some(Kind::Delete),
            0x53 => Some(Kind::Cas),
            0x54 => Some(Kind::Ping),
            0x55 => Some(Kind::AddMember),
            0x56 => Some(Kind::RemoveMember),
            0x57 => Some(Kind::TransferHerald),
            0x58 => Some(Kind::Status),
            0x59 => Some(Kind::AddRadiant),
            0x5A => Some(Kind::RemoveRadiant),
            0x5B => Some(Kind::MoveShard),
            0x5C => Some(Kind::LeaveOrder),
            0x5D => Some(Kind::QueryConfiguration),
            0x5E => Some(Kind::Authenticate),
            0x5F => Some(Kind::Update),
            0x60 => Some(Kind::GetResult),
            0x61 => Some(Kind::PutResult),
            0x62 => Some(Kind::DeleteResult),
            0x63 => Some(Kind::CasResult),
            0x64 => Some(Kind::Pong),
            0x65 => Some(Kind::Done),
            0x66 => Some(Kind::StatusResult),
            0x67 => Some(Kind::ConfigurationResult),
            0x68 => Some(Kind::UpdateResult),
            0x69 => Some(Kind::BatchResult),
            0x6A => Some(Kind::ShardPage),
            0x70 => Some(Kind::Error),
            0x80 => Some(Kind::Batch),
            0x81 => Some(Kind::ReadShard),
            0x82 => Some(Kind::RecoverOrder),
            _ => None,
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// The family this kind belongs to.
    pub fn family(self) -> Family {
        match self {
            Kind::BeaconHandshake
            | Kind::BeaconResponse
            | Kind::BeaconRefused
            | Kind::LinkHello
            | Kind::LinkChallenge
            | Kind::LinkProof
            | Kind::LinkRefused => Family::Beacon,
            Kind::JoinSystem | Kind::JoinAccepted => Family::Join,
            Kind::RequestVote
            | Kind::Vote
            | Kind::TimeoutNow
            | Kind::CouncilRequestVote
            | Kind::CouncilVote => Family::Vote,
            Kind::CouncilAppend
            | Kind::CouncilAppendAck
            | Kind::ShardChunk
            | Kind::ShardChunkAck => Family::Controller,
            Kind::Append
            | Kind::AppendAck
            | Kind::InstallSnapshot
            | Kind::InstallSnapshotAck
            | Kind::ReadIndex
            | Kind::ReadIndexAck => Family::Replication,
            Kind::Get
            | Kind::Put
            | Kind::Delete
            | Kind::Cas
            | Kind::Ping
            | Kind::AddMember
            | Kind::RemoveMember
            | Kind::TransferHerald
            | Kind::Status
            | Kind::AddRadiant
            | Kind::RemoveRadiant
            | Kind::MoveShard
            | Kind::LeaveOrder
            | Kind::QueryConfiguration
            | Kind::Authenticate
            | Kind::Update
            | Kind::Batch
            | Kind::ReadShard
            | Kind::RecoverOrder => Family::ClientRequest,
            Kind::GetResult
            | Kind::PutResult
            | Kind::DeleteResult
            | Kind::CasResult
            | Kind::Pong
            | Kind::Done
            | Kind::StatusResult
            | Kind::ConfigurationResult
            | Kind::UpdateResult
            | Kind::BatchResult
            | Kind::ShardPage => Family::ClientResponse,
            Kind::Error => Family::Error,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_kind_round_trips_through_its_byte() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_u8(kind.to_u8()), Some(kind));
        }
    }

    #[test]
    fn every_byte_maps_to_at_most_one_kind_and_matches_its_family_range() {
        for byte in 0..=u8::MAX {
            if let Some(kind) = Kind::from_u8(byte) {
                assert_eq!(kind.to_u8(), byte);
                assert_eq!(Family::of_byte(byte), Some(kind.family()));
            }
        }
    }

    #[test]
    fn all_lists_every_known_byte_once_in_byte_order() {
        let known: Vec<u8> = (0..=u8::MAX).filter(|&byte| Kind::from_u8(byte).is_some()).collect();
        let listed: Vec<u8> = Kind::ALL.iter().map(|kind| kind.to_u8()).collect();
        assert_eq!(listed, known);
    }

    #[test]
    fn peer_kinds_belong_to_the_vote_and_replication_families() {
        assert_eq!(Kind::RequestVote.family(), Family::Vote);
        assert_eq!(Kind::TimeoutNow.family(), Family::Vote);
        assert_eq!(Kind::Append.family(), Family::Replication);
        assert_eq!(Kind::InstallSnapshotAck.family(), Family::Replication);
        assert_eq!(Kind::Status.family(), Family::ClientRequest);
        assert_eq!(Kind::StatusResult.family(), Family::ClientResponse);
    }

    #[test]
    fn zero_and_high_bytes_belong_to_no_family() {
        assert_eq!(Family::of_byte(0x00), None);
        assert_eq!(Family::of_byte(0x71), None);
        assert_eq!(Family::of_byte(0x90), None);
        assert_eq!(Family::of_byte(0xFF), None);
        assert_eq!(Family::of_byte(0x31), Some(Family::Replication));
        assert_eq!(Family::of_byte(0x8F), Some(Family::ClientRequest));
    }
}
