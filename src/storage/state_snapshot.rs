//! The one codec of a radiant's state in a snapshot file, for the daemon and the simulator:
//! the key-values of every shard plus tagged opaque sections (membership, council state,
//! shard table, one session table per shard), written at a barrier, sent in chunks to a
//! member that is behind, checked section by section before anything is replaced.
//!
//! A section is one tag byte then its bytes: `1` membership, `2` one shard's session
//! table, `3` the order's council state, `4` the order's shard table. `snapshot.rs` owns
//! the file format around them; this module owns what the sections mean.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use bytes::{Buf, Bytes};
use radiant_protocol::slots::{key_shard, ShardId};
use radiant_protocol::{LogIndex, Term};

use crate::core::order::Membership;
use crate::core::shards::ShardTable;
use crate::storage::file_system::{parent_directory, DataDir};
use crate::storage::snapshot::SnapshotWriter;
use crate::storage::snapshot::{self, LoadedSnapshot, SnapshotError, SnapshotLimits};
use crate::storage::state_machine::{ShardSessions, StateMachine};

/// Tag of the snapshot section holding the membership.
pub const SECTION_MEMBERSHIP: u8 = 1;
/// Tag of a snapshot section holding one shard's session table.
pub const SECTION_SESSIONS: u8 = 2;
/// Tag of the snapshot section holding the order's council state.
pub const SECTION_COUNCIL: u8 = 3;
/// Tag of the snapshot section holding the order's shard table.
pub const SECTION_SHARDS: u8 = 4;

/// A section for a snapshot: its tag, then its bytes.
pub fn section(tag: u8, bytes: &Bytes) -> Vec<u8> {
    let mut section = Vec::with_capacity(bytes.len() + 1);
    section.push(tag);
    section.extend_from_slice(bytes);
    section
}

/// One shard's copy taken at the snapshot barrier.
#[derive(Debug)]
pub struct ShardDump {
    /// The shard.
    pub shard: ShardId,
    /// Its key-value pairs, sorted by key.
    pub pairs: Vec<(Bytes, Bytes)>,
    /// Its session table, encoded.
    pub sessions: Bytes,
}

impl ShardDump {
    /// `shard`'s copy from `machine` (the simulator's barrier: nothing else runs).
    pub fn of(machine: &StateMachine, shard: ShardId) -> ShardDump {
        ShardDump {
            shard,
            pairs: machine.map().clone_shard(shard),
            sessions: machine.encode_sessions(shard),
        }
    }
}

/// What an order's snapshot holds besides the shards' data.
#[derive(Clone, Copy, Debug)]
pub struct OrderSections<'a> {
    pub membership: &'a Membership,
    pub council: Option<&'a Bytes>,
    /// The shard table, encoded.
    pub shards: &'a Bytes,
}

/// Writes and publishes the snapshot at (`index`, `term`) of a radiant with `shard_count`
/// shards from `dumps`; returns its path and the pairs written. A snapshot missing a
/// shard (its worker stopped before the barrier) is never published.
pub fn write(
    data_dir: &DataDir,
    (index, term): (LogIndex, Term),
    shard_count: u32,
    sections: OrderSections<'_>,
    dumps: impl IntoIterator<Item = ShardDump>,
) -> Result<(PathBuf, u64), SnapshotError> {
    let mut writer = SnapshotWriter::create(data_dir, index, term, shard_count)?;
    writer.write_opaque(&section(SECTION_MEMBERSHIP, &sections.membership.encode()))?;
    if let Some(council) = sections.council {
        writer.write_opaque(&section(SECTION_COUNCIL, council))?;
    }
    writer.write_opaque(&section(SECTION_SHARDS, sections.shards))?;
    let mut pairs = 0u64;
    let mut shards_written = std::collections::BTreeSet::new();
    for dump in dumps {
        writer.write_opaque(&section(SECTION_SESSIONS, &dump.sessions))?;
        for (key, value) in &dump.pairs {
            writer.write_key_value(dump.shard, key, value)?;
            pairs += 1;
        }
        shards_written.insert(dump.shard);
    }
    let written = u32::try_from(shards_written.len()).unwrap_or(u32::MAX);
    if written != shard_count {
        return Err(SnapshotError::Incomplete {
            index,
            missing: shard_count.saturating_sub(written),
            shard_count,
        });
    }
    Ok((writer.finish()?, pairs))
}

/// Every section of a snapshot, decoded and checked, before anything is replaced.
#[derive(Debug)]
pub struct DecodedSections {
    membership: Option<Membership>,
    council: Option<Bytes>,
    shards: Option<ShardTable>,
    sessions: Vec<(u32, ShardSessions)>,
}

/// Decodes and checks every section of `snapshot` for a radiant of `shard_count` shards
/// and keys of at most `max_key_bytes`, so a snapshot with a bad section replaces nothing.
pub fn decode_sections(
    snapshot: &LoadedSnapshot,
    shard_count: u32,
    max_key_bytes: u32,
) -> Result<DecodedSections, SnapshotError> {
    let mut decoded =
        DecodedSections { membership: None, council: None, shards: None, sessions: Vec::new() };
    // Session tables hold answers to logged commands: the log's limits, not the client's.
    let limits = radiant_protocol::Limits::LOG_COMMANDS;
    for section in &snapshot.opaque {
        let broken = |section: &str| SnapshotError::Corrupt {
            path: snapshot.path.clone(),
            reason: format!("an unreadable {section} section"),
        };
        let mut section = section.clone();
        if !section.has_remaining() {
            return Err(broken("empty"));
        }
        match section.get_u8() {
            SECTION_MEMBERSHIP => {
                decoded.membership =
                    Some(Membership::decode(section).ok_or_else(|| broken("membership"))?)
            }
            SECTION_SESSIONS => {
                let (shard, sessions) = StateMachine::decode_sessions(section, &limits)
                    .filter(|(shard, _)| *shard < shard_count)
                    .ok_or_else(|| broken("sessions"))?;
                decoded.sessions.push((shard, sessions));
            }
            SECTION_COUNCIL => decoded.council = Some(section),
            SECTION_SHARDS => {
                let table = ShardTable::decode(section, shard_count, max_key_bytes);
                decoded.shards = Some(table.ok_or_else(|| broken("shards"))?);
            }
            _ => return Err(broken("unknown")),
        }
    }
    Ok(decoded)
}

/// The opaque snapshot sections a load fills in.
pub struct Sections<'a> {
    /// The membership (replaced when the snapshot has one).
    pub membership: &'a mut Membership,
    /// The order's council state, opaque here.
    pub council: &'a mut Option<Bytes>,
    /// The order's shard table.
    pub shards: &'a mut Option<ShardTable>,
}

/// Loads a snapshot's key-values into `machine` and its sections into `sections`; returns
/// its index and term. Every section is decoded first: on an error nothing has changed.
pub fn load(
    snapshot: LoadedSnapshot,
    (shard_count, max_key_bytes): (u32, u32),
    machine: &StateMachine,
    sections: Sections<'_>,
) -> Result<(LogIndex, Term), SnapshotError> {
    let decoded = decode_sections(&snapshot, shard_count, max_key_bytes)?;
    machine.clear();
    // Shards are recomputed from the keys, so a changed shard_count still loads.
    for (_, key, value) in snapshot.key_values {
        machine.map().put(key_shard(&key, shard_count), key, value);
    }
    for (shard, sessions) in decoded.sessions {
        machine.install_sessions(shard, sessions);
    }
    if let Some(membership) = decoded.membership {
        *sections.membership = membership;
    }
    if decoded.council.is_some() {
        *sections.council = decoded.council;
    }
    if decoded.shards.is_some() {
        *sections.shards = decoded.shards;
    }
    Ok((snapshot.last_index, snapshot.last_term))
}

/// Reads up to `max_bytes` of local snapshot `index` from `offset`, for a member that is
/// behind; returns the chunk and the file's length.
pub fn read_chunk(
    data_dir: &DataDir,
    index: LogIndex,
    offset: u64,
    max_bytes: u64,
) -> std::io::Result<(Bytes, u64)> {
    let path = snapshot::snapshot_path(&data_dir.path, index);
    let mut file = data_dir.fs().open_read(&path)?;
    let total = data_dir.fs().file_len(&path)?;
    let length = max_bytes.min(total.saturating_sub(offset));
    file.seek(SeekFrom::Start(offset))?;
    let mut chunk = vec![0u8; length as usize];
    file.read_exact(&mut chunk)?;
    Ok((Bytes::from(chunk), total))
}

fn incoming_path(data_dir: &DataDir) -> PathBuf {
    data_dir.join("snapshots").join("incoming.part")
}

/// Checks that a received snapshot passes before it is installed.
#[derive(Clone, Copy, Debug)]
pub struct ReceiveLimits {
    pub limits: SnapshotLimits,
    pub shard_count: u32,
}

/// Appends a chunk of snapshot `index` arriving from the herald; on the last one, syncs,
/// verifies (every section too) and installs the file. Returns the next expected offset.
pub fn receive_chunk(
    data_dir: &DataDir,
    chunk: &radiant_protocol::InstallSnapshot,
    checks: ReceiveLimits,
) -> Result<u64, SnapshotError> {
    let (index, offset, total_bytes) = (chunk.snapshot_index, chunk.offset, chunk.total_bytes);
    let (data, done) = (&chunk.chunk[..], chunk.done);
    let path = incoming_path(data_dir);
    let io = |operation| {
        move |source| SnapshotError::Io { operation, path: incoming_path(data_dir), source }
    };
    let fs = data_dir.fs();
    let end = offset.saturating_add(data.len() as u64);
    if end > total_bytes {
        let reason = format!(
            "a chunk ends at byte {end}, past the {total_bytes} bytes the snapshot was announced as"
        );
        return Err(SnapshotError::Corrupt { path, reason });
    }
    if offset == 0 {
        // Room for the whole snapshot before its first byte, so a transfer cannot fill the
        // disk under the log (which would stop this radiant).
        let free = fs.available_bytes(&parent_directory(&path)).unwrap_or(u64::MAX);
        if total_bytes > free {
            return Err(SnapshotError::Io {
                operation: "make room for",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!("the snapshot needs {total_bytes} bytes and {free} are free"),
                ),
            });
        }
    }
    fs.create_dir_all(&parent_directory(&path)).map_err(io("create directory"))?;
    let mut file = if offset == 0 {
        fs.create(&path, false).map_err(io("create"))?
    } else {
        let length = fs.file_len(&path).map_err(io("stat"))?;
        if length != offset {
            return Err(SnapshotError::Corrupt {
                path,
                reason: format!("chunk at {offset} but {length} bytes stored"),
            });
        }
        fs.open_append(&path).map_err(io("open"))?
    };
    file.write_all(data).map_err(io("write"))?;
    if !done {
        return Ok(offset + data.len() as u64);
    }
    file.sync().map_err(io("fsync"))?;
    drop(file);
    // Every section is checked before the file replaces the local snapshot: one that
    // would not load must not become the newest snapshot on disk.
    let loaded = snapshot::load_file(fs, &path, checks.limits)?;
    decode_sections(&loaded, checks.shard_count, checks.limits.max_key_bytes)?;
    snapshot::install_file(data_dir, &path, index)?;
    Ok(offset + data.len() as u64)
}
