//! Which shards an order serves, and where each moving shard stands (DESIGN §8).
//!
//! The table is replicated state: it changes only by applying `Command::Migration`
//! entries of the order's log, so every member, recovery's replay and a snapshot agree
//! on it at every index. A shard is served only in state `Serving`; a shard the order
//! loses freezes (`Outgoing`) at the index where it adopts the configuration that moves
//! it, and stays frozen, data kept, until the gaining order confirms it holds the data;
//! a shard it gains is `Incoming` until its last piece (with the duplicate-detection
//! table) is applied. Pure: no I/O, no clock.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use radiant_protocol::{ErrorResponse, MigrationEntry, OrderId, OrderStateOp, ShardChunk};

use radiant_protocol::slots::ShardId;

/// Why an order that has adopted no configuration serves nothing yet: the `Unavailable`
/// reason keyed requests get, and what `radiant status` says (see `Radiant::readiness`).
pub const NOT_ADOPTED: &str = "not ready: this radiant's order has not adopted a configuration \
                               yet (the system is forming, or the radiant is catching up after \
                               a restart); retry shortly";

/// One shard as this order sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardState {
    /// Not this order's (or not yet: the configuration giving it is not adopted).
    Absent,
    /// This order serves it.
    Serving,
    /// Gained in configuration `number`; its data is arriving. Pieces must continue
    /// after `after` (none: nothing received yet).
    Incoming {
        /// The configuration that gave it.
        number: u64,
        /// The last key received.
        after: Option<Bytes>,
    },
    /// Lost in configuration `number` to `to`; frozen, kept until `to` holds it.
    Outgoing {
        /// The configuration that took it.
        number: u64,
        /// The order that gains it.
        to: OrderId,
    },
}

/// What applying a migration entry asks of the key-value store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardEffect {
    /// Forget the shard's pairs and sessions.
    Clear(ShardId),
    /// Add these pairs to the shard and, when given, replace its session table.
    Load {
        /// The shard.
        shard: ShardId,
        /// Pairs to store.
        pairs: Vec<(Bytes, Bytes)>,
        /// The shard's encoded session table (the last piece only).
        sessions: Option<Bytes>,
    },
}

impl ShardEffect {
    /// The shard it changes.
    pub fn shard(&self) -> ShardId {
        match self {
            ShardEffect::Clear(shard) | ShardEffect::Load { shard, .. } => *shard,
        }
    }
}

/// Every shard's state for one order, and the configuration it implements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardTable {
    adopted: u64,
    states: Vec<ShardState>,
}

impl ShardTable {
    /// A static order's table: it serves every shard and nothing ever moves.
    pub fn serving_all(shard_count: u32) -> Self {
        ShardTable { adopted: 0, states: vec![ShardState::Serving; shard_count as usize] }
    }

    /// An order of a formed system before it adopts a configuration: it serves nothing.
    pub fn unassigned(shard_count: u32) -> Self {
        ShardTable { adopted: 0, states: vec![ShardState::Absent; shard_count as usize] }
    }

    /// The newest configuration whose assignment the order implements (0: none).
    pub fn adopted(&self) -> u64 {
        self.adopted
    }

    /// Each shard's state, by shard number.
    pub fn states(&self) -> &[ShardState] {
        &self.states
    }

    /// One shard's state (`Absent` for a shard number out of range).
    pub fn state(&self, shard: u32) -> &ShardState {
        self.states.get(shard as usize).unwrap_or(&ShardState::Absent)
    }

    /// Shards still arriving or still to hand over.
    pub fn moving(&self) -> u32 {
        let moving = self.states.iter().filter(|state| {
            matches!(state, ShardState::Incoming { .. } | ShardState::Outgoing { .. })
        });
        u32::try_from(moving.count()).unwrap_or(u32::MAX)
    }

    /// Whether the table implements an assignment: a configuration was adopted, or it
    /// is a static order's (which serves every shard without one). Before that the
    /// order serves nothing and knows no owner to send a client to: it is not ready.
    pub fn is_assigned(&self) -> bool {
        self.adopted > 0 || !self.states.contains(&ShardState::Absent)
    }

    /// `Ok` when the order serves `shard`; otherwise what the client is told: go
    /// elsewhere (`WrongOrder`), wait while its data arrives (`Locked(REPLICATING)`),
    /// or, before any configuration is adopted, wait until it is ("not ready": a
    /// `WrongOrder` for configuration 0 would send the client looking for an owner no
    /// configuration names).
    pub fn admit(&self, shard: ShardId) -> Result<(), ErrorResponse> {
        match self.state(shard.0) {
            ShardState::Serving => Ok(()),
            ShardState::Incoming { .. } => Err(ErrorResponse::Locked(OrderStateOp::Replicating)),
            ShardState::Absent if !self.is_assigned() => {
                Err(ErrorResponse::Unavailable { reason: NOT_ADOPTED.to_string() })
            }
            ShardState::Absent | ShardState::Outgoing { .. } => {
                Err(ErrorResponse::WrongOrder { config_num: self.adopted })
            }
        }
    }

    /// Applies one committed migration entry of the order `me` and returns what the
    /// key-value store must do. Entries that no longer apply (a repeated adoption, a
    /// piece that does not continue where the shard stands, a second release) change
    /// nothing: heralds resend, and every member must skip the same ones.
    pub fn apply(&mut self, me: OrderId, entry: &MigrationEntry) -> Vec<ShardEffect> {
        match entry {
            MigrationEntry::Adopt { number, shards } => self.adopt(me, *number, shards),
            MigrationEntry::Install(chunk) => self.install(chunk),
            MigrationEntry::Release { shard, .. } => match self.states.get_mut(*shard as usize) {
                Some(state @ ShardState::Outgoing { .. }) => {
                    *state = ShardState::Absent;
                    vec![ShardEffect::Clear(ShardId(*shard))]
                }
                _ => Vec::new(),
            },
        }
    }

    fn adopt(&mut self, me: OrderId, number: u64, shards: &[OrderId]) -> Vec<ShardEffect> {
        if number <= self.adopted || shards.len() != self.states.len() {
            return Vec::new();
        }
        // The first adoption finds every shard it is given fresh: shards move only
        // once every order has adopted a configuration (the controller waits for it).
        let first = self.adopted == 0;
        let mut effects = Vec::new();
        for (index, (state, &owner)) in self.states.iter_mut().zip(shards).enumerate() {
            let mine = owner == me;
            let shard = ShardId(u32::try_from(index).expect("at most MAX_SHARDS shards"));
            let next = match (&*state, mine) {
                (_, true) if first => ShardState::Serving,
                (_, false) if first => ShardState::Absent,
                (ShardState::Serving, true) => ShardState::Serving,
                (ShardState::Serving, false) => ShardState::Outgoing { number, to: owner },
                (ShardState::Absent, true) => {
                    effects.push(ShardEffect::Clear(shard));
                    ShardState::Incoming { number, after: None }
                }
                (ShardState::Absent, false) => ShardState::Absent,
                (ShardState::Incoming { .. }, true) => continue,
                (ShardState::Incoming { .. }, false) => {
                    // Never while the controller waits for moves to finish; if it
                    // happens, the holder sends the shard to its newest owner instead.
                    effects.push(ShardEffect::Clear(shard));
                    ShardState::Absent
                }
                (ShardState::Outgoing { number, .. }, false) => {
                    ShardState::Outgoing { number: *number, to: owner }
                }
                // Our frozen copy may be older than what the gaining order has served
                // since; it stays frozen until that order confirms.
                (ShardState::Outgoing { .. }, true) => continue,
            };
            *state = next;
        }
        self.adopted = number;
        effects
    }

    /// Whether `chunk` holds only what belongs to its shard: every key hashes there and
    /// its session table is that shard's. A piece from a peer is untrusted; one that
    /// fails is never committed (and would change nothing if it were).
    pub fn chunk_fits(&self, chunk: &ShardChunk) -> bool {
        let Ok(shard_count) = u32::try_from(self.states.len()) else { return false };
        let keys_fit = chunk
            .pairs
            .iter()
            .all(|(key, _)| radiant_protocol::slots::key_shard(key, shard_count).0 == chunk.shard);
        let sessions_fit = chunk.sessions.as_ref().is_none_or(|table| {
            table.get(..4).is_some_and(|prefix| prefix == chunk.shard.to_be_bytes())
        });
        keys_fit && sessions_fit
    }

    fn install(&mut self, chunk: &ShardChunk) -> Vec<ShardEffect> {
        if !self.chunk_fits(chunk) {
            return Vec::new();
        }
        let Some(state) = self.states.get_mut(chunk.shard as usize) else { return Vec::new() };
        let ShardState::Incoming { number, after } = state else { return Vec::new() };
        if *after != chunk.after {
            return Vec::new();
        }
        let shard = ShardId(chunk.shard);
        if chunk.sessions.is_some() {
            *state = ShardState::Serving;
        } else if let Some((last, _)) = chunk.pairs.last() {
            *state = ShardState::Incoming { number: *number, after: Some(last.clone()) };
        }
        vec![ShardEffect::Load {
            shard,
            pairs: chunk.pairs.clone(),
            sessions: chunk.sessions.clone(),
        }]
    }

    /// The table for a snapshot: `u64` adopted, `u32` count, then per shard a tag
    /// (0 absent, 1 serving, 2 incoming + `u64` number + optional key, 3 outgoing +
    /// `u64` number + `u64` order).
    pub fn encode(&self) -> Bytes {
        let mut buffer = BytesMut::new();
        buffer.put_u64(self.adopted);
        buffer.put_u32(u32::try_from(self.states.len()).expect("at most MAX_SHARDS shards"));
        for state in &self.states {
            match state {
                ShardState::Absent => buffer.put_u8(0),
                ShardState::Serving => buffer.put_u8(1),
                ShardState::Incoming { number, after } => {
                    buffer.put_u8(2);
                    buffer.put_u64(*number);
                    let after = after.as_deref().unwrap_or_default();
                    buffer.put_u32(u32::try_from(after.len()).expect("keys fit u32"));
                    buffer.put_slice(after);
                }
                ShardState::Outgoing { number, to } => {
                    buffer.put_u8(3);
                    buffer.put_u64(*number);
                    buffer.put_u64(to.get());
                }
            }
        }
        buffer.freeze()
    }

    /// Reads `encode`'s output; `None` if it is malformed or lists another number of
    /// shards than `shard_count`.
    pub fn decode(mut bytes: Bytes, shard_count: u32, max_key_bytes: u32) -> Option<Self> {
        if bytes.remaining() < 12 {
            return None;
        }
        let adopted = bytes.get_u64();
        if bytes.get_u32() != shard_count {
            return None;
        }
        let mut states = Vec::with_capacity(shard_count as usize);
        for _ in 0..shard_count {
            if !bytes.has_remaining() {
                return None;
            }
            let state = match bytes.get_u8() {
                0 => ShardState::Absent,
                1 => ShardState::Serving,
                2 if bytes.remaining() >= 12 => {
                    let number = bytes.get_u64();
                    let length = bytes.get_u32();
                    if length > max_key_bytes || bytes.remaining() < length as usize {
                        return None;
                    }
                    let key = bytes.split_to(length as usize);
                    ShardState::Incoming { number, after: (!key.is_empty()).then_some(key) }
                }
                3 if bytes.remaining() >= 16 => {
                    let number = bytes.get_u64();
                    ShardState::Outgoing { number, to: OrderId::new(bytes.get_u64())? }
                }
                _ => return None,
            };
            states.push(state);
        }
        bytes.is_empty().then_some(ShardTable { adopted, states })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_id(id: u64) -> OrderId {
        OrderId::new(id).expect("non-zero")
    }

    /// A key named `name` that hashes into `shard` of `shard_count` (by a hash tag).
    fn key_in(name: &str, shard: u32, shard_count: u32) -> Bytes {
        let tag = (0u32..)
            .map(|n| format!("{{t{n}}}"))
            .find(|tag| radiant_protocol::slots::key_shard(tag.as_bytes(), shard_count).0 == shard)
            .expect("some tag hashes into every shard");
        Bytes::from(format!("{name}{tag}"))
    }

    /// A piece of `shard` (of 2 shards, or 3 for shard 2) with keys named `keys`.
    fn chunk(
        shard: u32,
        after: Option<&'static str>,
        keys: &[&'static str],
        last: bool,
    ) -> ShardChunk {
        let count = if shard == 2 { 3 } else { 2 };
        let mut sessions = shard.to_be_bytes().to_vec();
        sessions.extend_from_slice(b"sessions");
        ShardChunk {
            shard,
            number: 2,
            after: after.map(|name| key_in(name, shard, count)),
            pairs: keys
                .iter()
                .map(|name| (key_in(name, shard, count), Bytes::from_static(b"v")))
                .collect(),
            sessions: last.then(|| Bytes::from(sessions)),
        }
    }

    #[test]
    fn a_piece_with_a_key_or_sessions_of_another_shard_is_not_installed() {
        let (a, b) = (order_id(1), order_id(2));
        let mut gainer = ShardTable::unassigned(2);
        gainer.apply(b, &MigrationEntry::Adopt { number: 1, shards: vec![a, a] });
        gainer.apply(b, &MigrationEntry::Adopt { number: 2, shards: vec![a, b] });
        let mut foreign = chunk(1, None, &["a"], false);
        foreign.pairs.push((key_in("z", 0, 2), Bytes::from_static(b"v")));
        assert!(!gainer.chunk_fits(&foreign));
        assert!(gainer.apply(b, &MigrationEntry::Install(foreign)).is_empty());
        let mut wrong_table = chunk(1, None, &["a"], true);
        wrong_table.sessions = Some(Bytes::from_static(&[0, 0, 0, 0]));
        assert!(gainer.apply(b, &MigrationEntry::Install(wrong_table)).is_empty());
        assert!(gainer.apply(b, &MigrationEntry::Install(chunk(1, None, &["a"], true))).len() == 1);
    }

    #[test]
    fn a_moved_shard_freezes_on_the_loser_and_serves_on_the_gainer_only_when_complete() {
        let (a, b) = (order_id(1), order_id(2));
        let mut loser = ShardTable::unassigned(2);
        let mut gainer = ShardTable::unassigned(2);
        let first = MigrationEntry::Adopt { number: 1, shards: vec![a, a] };
        loser.apply(a, &first);
        gainer.apply(b, &first);
        assert_eq!(loser.admit(ShardId(1)), Ok(()));
        assert!(gainer.admit(ShardId(1)).is_err());

        let moved = MigrationEntry::Adopt { number: 2, shards: vec![a, b] };
        loser.apply(a, &moved);
        assert_eq!(gainer.apply(b, &moved), vec![ShardEffect::Clear(ShardId(1))]);
        assert_eq!(loser.admit(ShardId(1)), Err(ErrorResponse::WrongOrder { config_num: 2 }));
        assert_eq!(gainer.admit(ShardId(1)), Err(ErrorResponse::Locked(OrderStateOp::Replicating)));
        assert_eq!(loser.moving(), 1);

        let piece = MigrationEntry::Install(chunk(1, None, &["a", "b"], false));
        assert_eq!(gainer.apply(b, &piece).len(), 1);
        // The same piece again (a resend) and a piece that skips ahead are ignored.
        assert!(gainer.apply(b, &piece).is_empty());
        let skipped = MigrationEntry::Install(chunk(1, Some("x"), &["y"], true));
        assert!(gainer.apply(b, &skipped).is_empty());
        assert!(gainer.admit(ShardId(1)).is_err());
        let last = MigrationEntry::Install(chunk(1, Some("b"), &["c"], true));
        assert_eq!(gainer.apply(b, &last).len(), 1);
        assert_eq!(gainer.admit(ShardId(1)), Ok(()));
        assert_eq!(gainer.moving(), 0);

        let release = MigrationEntry::Release { shard: 1, number: 2 };
        assert_eq!(loser.apply(a, &release), vec![ShardEffect::Clear(ShardId(1))]);
        assert!(loser.apply(a, &release).is_empty(), "a second release changes nothing");
        assert_eq!(loser.moving(), 0);
        assert_eq!(loser.admit(ShardId(0)), Ok(()));
    }

    #[test]
    fn an_old_or_malformed_adoption_changes_nothing() {
        let a = order_id(1);
        let mut table = ShardTable::unassigned(2);
        table.apply(a, &MigrationEntry::Adopt { number: 3, shards: vec![a, a] });
        let before = table.clone();
        table
            .apply(a, &MigrationEntry::Adopt { number: 2, shards: vec![order_id(2), order_id(2)] });
        table.apply(a, &MigrationEntry::Adopt { number: 4, shards: vec![order_id(2)] });
        assert_eq!(table, before);
    }

    #[test]
    fn the_table_survives_an_encode_and_decode_and_rejects_damage() {
        let (a, b) = (order_id(1), order_id(2));
        let mut table = ShardTable::unassigned(3);
        table.apply(a, &MigrationEntry::Adopt { number: 1, shards: vec![a, a, b] });
        table.apply(a, &MigrationEntry::Adopt { number: 2, shards: vec![b, a, a] });
        table.apply(a, &MigrationEntry::Install(chunk(2, None, &["k"], false)));
        let encoded = table.encode();
        assert_eq!(ShardTable::decode(encoded.clone(), 3, 64), Some(table));
        assert_eq!(ShardTable::decode(encoded.clone(), 4, 64), None);
        for end in 0..encoded.len() {
            assert_eq!(ShardTable::decode(encoded.slice(..end), 3, 64), None, "prefix {end}");
        }
    }
}
