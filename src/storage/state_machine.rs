//! The replicated state machine: the shard map plus, per shard, the table of client
//! sessions that makes retried writes apply once. Every member applies the same
//! committed commands in the same order through [`StateMachine::apply`], so the
//! daemon's shard workers, its recovery and the simulator reach identical states.
//!
//! Sessions live per shard so they can move with the shard (DESIGN §8). A client keeps
//! one write in flight per session, so a shard only needs each client's last sequence
//! and the answer it got.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use radiant_protocol::{ClientId, ClientResponse, Command, LogIndex, OrderId, Session, ShardChunk};

use crate::core::shards::{ShardEffect, ShardTable};

use super::shard_map::ShardMap;
use radiant_protocol::slots::ShardId;

/// Client sessions remembered per shard; the least recently used is forgotten first.
pub const MAX_SESSIONS_PER_SHARD: usize = 10_000;
/// Bytes of values the remembered answers of one shard may hold (a failed `cas` answers
/// with the current value, up to 16 MiB); past it the least recently used is forgotten
/// first, as past the count.
pub const MAX_SESSION_VALUE_BYTES_PER_SHARD: u64 = 32 << 20;

/// A client's last write to a shard and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SessionRecord {
    sequence: u64,
    response: ClientResponse,
    applied_at: LogIndex,
}

/// The sessions of one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardSessions {
    records: BTreeMap<ClientId, SessionRecord>,
    /// Bytes of values in the records' answers.
    value_bytes: u64,
}

/// Bytes of values an answer holds.
fn value_bytes(response: &ClientResponse) -> u64 {
    match response {
        ClientResponse::CasResult { current: Some(value), .. }
        | ClientResponse::GetResult { value: Some(value) } => value.len() as u64,
        ClientResponse::UpdateResult(outcome) => outcome.value_bytes(),
        _ => 0,
    }
}

impl ShardSessions {
    /// Remembers `record` for `client`, then forgets the least recently applied records
    /// while the table is over its count or its bytes. Every member applies the same
    /// commands in the same order, so every member forgets the same records.
    fn remember(&mut self, client: ClientId, record: SessionRecord) {
        self.value_bytes += value_bytes(&record.response);
        if let Some(replaced) = self.records.insert(client, record) {
            self.value_bytes -= value_bytes(&replaced.response);
        }
        while self.records.len() > MAX_SESSIONS_PER_SHARD
            || self.value_bytes > MAX_SESSION_VALUE_BYTES_PER_SHARD
        {
            let oldest = self.records.iter().min_by_key(|(_, record)| record.applied_at);
            let Some(oldest) = oldest.map(|(id, _)| *id) else { break };
            if let Some(forgotten) = self.records.remove(&oldest) {
                self.value_bytes -= value_bytes(&forgotten.response);
            }
        }
    }
}

/// The key-value data and the session tables.
#[derive(Debug)]
pub struct StateMachine {
    map: ShardMap,
    sessions: Vec<Mutex<ShardSessions>>,
}

impl StateMachine {
    /// An empty state machine with `shard_count` shards.
    pub fn new(shard_count: u32) -> Self {
        let sessions = (0..shard_count).map(|_| Mutex::new(ShardSessions::default())).collect();
        StateMachine { map: ShardMap::new(shard_count), sessions }
    }

    /// The key-value data.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.map.shard_count()
    }

    /// Applies the committed `command` at `index` to `shard` and returns what its client
    /// is told. A write whose session already applied that sequence is not applied
    /// again: the answer recorded then is returned instead.
    pub fn apply(&self, shard: ShardId, index: LogIndex, command: Command) -> ClientResponse {
        let session = command.session();
        if let Some(Session { client_id, sequence }) = session {
            let sessions = self.sessions[shard.0 as usize].lock();
            if let Some(record) = sessions.records.get(&client_id) {
                if sequence <= record.sequence {
                    return record.response.clone();
                }
            }
        }
        let response = self.apply_command(shard, command);
        if let Some(Session { client_id, sequence }) = session {
            let mut sessions = self.sessions[shard.0 as usize].lock();
            let record = SessionRecord { sequence, response: response.clone(), applied_at: index };
            sessions.remember(client_id, record);
        }
        response
    }

    fn apply_command(&self, shard: ShardId, command: Command) -> ClientResponse {
        match command {
            Command::Noop
            | Command::Membership(_)
            | Command::Council(_)
            | Command::Migration(_) => ClientResponse::Done,
            Command::Put { key, value, session: _ } => {
                self.map.put(shard, key, value);
                ClientResponse::PutResult
            }
            Command::Delete { key, session: _ } => {
                ClientResponse::DeleteResult { existed: self.map.delete(shard, &key) }
            }
            Command::Cas { key, expected, new, session: _ } => {
                let outcome = self.map.cas(shard, key, expected.as_deref(), new);
                ClientResponse::CasResult { succeeded: outcome.succeeded, current: outcome.current }
            }
            Command::Update { key, update, session: _ } => {
                ClientResponse::UpdateResult(self.map.update(shard, key, update))
            }
            Command::Batch { batch, session: _ } => {
                ClientResponse::BatchResult(self.map.apply_batch(shard, batch))
            }
        }
    }

    /// Reads `key`.
    pub fn get(&self, shard: ShardId, key: &[u8]) -> Option<Bytes> {
        self.map.get(shard, key)
    }

    /// The sessions of `shard`, encoded for a snapshot (sorted, so deterministic).
    pub fn encode_sessions(&self, shard: ShardId) -> Bytes {
        let sessions = self.sessions[shard.0 as usize].lock();
        let mut buffer = BytesMut::new();
        buffer.put_u32(shard.0);
        buffer.put_u32(sessions.records.len() as u32);
        for (client, record) in &sessions.records {
            buffer.put_u64(client.get());
            buffer.put_u64(record.sequence);
            buffer.put_u64(record.applied_at);
            let mut response = BytesMut::new();
            radiant_protocol::Message::Response(record.response.clone()).encode(0, &mut response);
            buffer.put_u32(response.len() as u32);
            buffer.put_slice(&response);
        }
        buffer.freeze()
    }

    /// Loads sessions written by `encode_sessions`; `None` if malformed (nothing changes).
    pub fn load_sessions(&self, bytes: Bytes, limits: &radiant_protocol::Limits) -> Option<()> {
        let (shard, sessions) = Self::decode_sessions(bytes, limits)?;
        if shard >= self.shard_count() {
            return None;
        }
        self.install_sessions(shard, sessions);
        Some(())
    }

    /// Replaces the session table of `shard` (from `decode_sessions`, which checked it).
    pub fn install_sessions(&self, shard: u32, sessions: ShardSessions) {
        if let Some(table) = self.sessions.get(shard as usize) {
            *table.lock() = sessions;
        }
    }

    /// Decodes a session table written by `encode_sessions` without installing it: its
    /// shard and records, or `None` if malformed.
    pub fn decode_sessions(
        mut bytes: Bytes,
        limits: &radiant_protocol::Limits,
    ) -> Option<(u32, ShardSessions)> {
        if bytes.remaining() < 8 {
            return None;
        }
        let shard = bytes.get_u32();
        let count = bytes.get_u32();
        let mut sessions = ShardSessions::default();
        for _ in 0..count {
            if bytes.remaining() < 28 {
                return None;
            }
            let client = ClientId::new(bytes.get_u64())?;
            let sequence = bytes.get_u64();
            let applied_at = bytes.get_u64();
            let length = bytes.get_u32() as usize;
            if bytes.remaining() < length {
                return None;
            }
            let mut frame = BytesMut::from(&bytes.split_to(length)[..]);
            let frame =
                radiant_protocol::decode_frame(&mut frame, limits.max_frame_bytes).ok()??;
            let radiant_protocol::Message::Response(response) =
                radiant_protocol::Message::decode(frame, limits).ok()?
            else {
                return None;
            };
            sessions.remember(client, SessionRecord { sequence, response, applied_at });
        }
        bytes.is_empty().then_some((shard, sessions))
    }

    /// Applies committed `command` at `index` as the order `order_id` and its shard workers
    /// did when it was first applied, for replays (recovery, the simulator's restarts):
    /// migration entries through `shards`, writes only to shards it served then.
    /// Membership and council entries are the caller's business and ignored here.
    pub fn replay(
        &self,
        (shards, order_id): (&mut ShardTable, OrderId),
        index: LogIndex,
        command: Command,
        limits: &radiant_protocol::Limits,
    ) {
        match command {
            Command::Noop | Command::Membership(_) | Command::Council(_) => {}
            Command::Migration(entry) => {
                for effect in shards.apply(order_id, &entry) {
                    self.apply_shard_effect(effect, limits);
                }
            }
            command => {
                let Some(key) = command.key() else { return };
                let shard = radiant_protocol::slots::key_shard(key, self.shard_count());
                if shards.admit(shard).is_ok() {
                    self.apply(shard, index, command);
                }
            }
        }
    }

    /// Replays the committed prefix (through `commit`) of `entries` as recovery does: the
    /// membership changes into `membership`, everything else through `replay`. Council
    /// entries were recorded in the system file when first applied. An entry that does not
    /// decode is returned with its index: it passed its checksum, so the log is from an
    /// incompatible version or damaged.
    pub fn replay_committed(
        &self,
        entries: &[radiant_protocol::LogEntry],
        commit: LogIndex,
        membership: &mut crate::core::order::Membership,
        (shards, order_id): (&mut ShardTable, OrderId),
        limits: &radiant_protocol::Limits,
    ) -> Result<(), (LogIndex, radiant_protocol::DecodeError)> {
        for entry in entries.iter().take_while(|entry| entry.index <= commit) {
            let log_limits = radiant_protocol::Limits::LOG_COMMANDS;
            let command = Command::decode(entry.data.clone(), &log_limits)
                .map_err(|error| (entry.index, error))?;
            match command {
                Command::Membership(change) => {
                    membership.apply(&change);
                }
                command => self.replay((&mut *shards, order_id), entry.index, command, limits),
            }
        }
        Ok(())
    }

    /// Carries out what a migration entry asks of `shard`'s data.
    pub fn apply_shard_effect(&self, effect: ShardEffect, limits: &radiant_protocol::Limits) {
        match effect {
            ShardEffect::Clear(shard) => {
                self.map.clear_shard(shard);
                if let Some(sessions) = self.sessions.get(shard.0 as usize) {
                    sessions.lock().records.clear();
                }
            }
            ShardEffect::Load { shard, pairs, sessions } => {
                self.map.load(shard, pairs);
                if let Some(sessions) = sessions {
                    // Checked when the piece was decoded and again by the sender's
                    // encoder; a table that still fails leaves the shard without one.
                    if self.load_sessions(sessions, limits).is_none() {
                        tracing::error!(%shard, "migration: a moved session table is malformed");
                    }
                }
            }
        }
    }

    /// A piece of frozen `shard` for the order gaining it: pairs after `after`,
    /// ascending, at most `max_bytes` of them (at least one); once no pair is left, a
    /// piece of the session table alone (so no piece carries both).
    pub fn read_chunk(
        &self,
        shard: ShardId,
        number: u64,
        after: Option<Bytes>,
        max_bytes: u64,
    ) -> ShardChunk {
        let pairs = self.map.pairs_after(shard, after.as_deref(), max_bytes);
        let sessions = pairs.is_empty().then(|| self.encode_sessions(shard));
        ShardChunk { shard: shard.0, number, after, pairs, sessions }
    }

    /// Forgets everything (before installing a snapshot).
    pub fn clear(&self) {
        self.map.clear();
        for sessions in &self.sessions {
            sessions.lock().records.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &'static str, value: &'static str, client: u64, sequence: u64) -> Command {
        let session = ClientId::new(client).map(|client_id| Session { client_id, sequence });
        Command::Put {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
            session,
        }
    }

    #[test]
    fn a_retried_write_is_applied_once_and_gets_the_first_answer() {
        let machine = StateMachine::new(4);
        let shard = radiant_protocol::slots::key_shard(b"k", 4);
        let cas = |expected: &'static str, new: &'static str, sequence| Command::Cas {
            key: Bytes::from_static(b"k"),
            expected: Some(Bytes::from_static(expected.as_bytes())),
            new: Some(Bytes::from_static(new.as_bytes())),
            session: ClientId::new(7).map(|client_id| Session { client_id, sequence }),
        };
        machine.apply(shard, 1, put("k", "a", 0, 0));
        let first = machine.apply(shard, 2, cas("a", "b", 1));
        assert_eq!(
            first,
            ClientResponse::CasResult { succeeded: true, current: Some(Bytes::from_static(b"b")) }
        );
        // The retry would fail if applied again (the value is now "b"): it must not be.
        let retry = machine.apply(shard, 3, cas("a", "b", 1));
        assert_eq!(retry, first);
        assert_eq!(machine.get(shard, b"k").as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn remembered_answers_are_bounded_by_bytes_oldest_forgotten_first() {
        let machine = StateMachine::new(1);
        let shard = ShardId(0);
        let value = Bytes::from(vec![b'v'; 1 << 20]);
        let cas = |client: u64| Command::Cas {
            key: Bytes::from_static(b"k"),
            expected: None,
            new: Some(value.clone()),
            session: ClientId::new(client).map(|client_id| Session { client_id, sequence: 1 }),
        };
        // 100 clients each remember an answer carrying a 1 MiB value: 100 MiB unbounded.
        for client in 1..=100u64 {
            machine.apply(shard, client, cas(client));
        }
        let sessions = machine.sessions[0].lock().clone();
        assert!(
            sessions.value_bytes <= MAX_SESSION_VALUE_BYTES_PER_SHARD,
            "{}",
            sessions.value_bytes
        );
        let recount: u64 = sessions.records.values().map(|r| value_bytes(&r.response)).sum();
        assert_eq!(recount, sessions.value_bytes, "the byte count drifted");
        assert!(!sessions.records.contains_key(&ClientId::new(1).expect("nonzero")), "oldest kept");
        // The newest client's retry still gets its first answer, not a second application.
        let first = machine.apply(shard, 101, cas(100));
        let remembered = &sessions.records[&ClientId::new(100).expect("nonzero")].response;
        assert_eq!(&first, remembered);
    }

    #[test]
    fn sessions_survive_an_encode_and_load() {
        let machine = StateMachine::new(2);
        let shard = radiant_protocol::slots::key_shard(b"k", 2);
        machine.apply(shard, 1, put("k", "v", 9, 4));
        let encoded = machine.encode_sessions(shard);
        let restored = StateMachine::new(2);
        restored.load_sessions(encoded, &radiant_protocol::Limits::DEFAULT).expect("valid");
        // The restored table still recognises sequence 4 as applied.
        let retry = restored.apply(shard, 2, put("k", "other", 9, 4));
        assert_eq!(retry, ClientResponse::PutResult);
        assert_eq!(restored.get(shard, b"k"), None, "the retry was not applied");
    }
}
