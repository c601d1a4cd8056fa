//! The in-memory key-value state, one `RwLock`ed map per shard so that shard workers applying
//! different shards never contend.
//!
//! This module owns the maps and the single-key operations on them. It must not decide which
//! shard a key belongs to (callers pass `radiant_protocol::slots::key_shard`'s answer) and
//! must not let `HashMap` iteration order reach any output: `clone_shard` returns keys
//! sorted.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use radiant_protocol::slots::{key_shard, ShardId};
use radiant_protocol::{BatchCondition, BatchOutcome};

use super::update::KeyWrite;

/// The result of a compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasOutcome {
    pub succeeded: bool,
    /// The value after the operation on success; the existing value on failure.
    pub current: Option<Bytes>,
}

#[derive(Debug)]
pub struct ShardMap {
    shards: Vec<RwLock<Shard>>,
}

/// One shard's pairs, and its keys in order once a move has asked for them.
#[derive(Debug, Default)]
struct Shard {
    pairs: HashMap<Bytes, Bytes>,
    /// The keys sorted, kept while the shard does not change: a shard being moved is
    /// frozen and read piece by piece, and sorting it again for every piece made a move
    /// quadratic in the shard's size. Every write forgets it.
    sorted_keys: Mutex<Option<Arc<Vec<Bytes>>>>,
}

impl ShardMap {
    pub fn new(shard_count: u32) -> ShardMap {
        assert!(shard_count >= 1, "shard map: shard_count must be at least 1");
        let shards = (0..shard_count).map(|_| RwLock::default()).collect();
        ShardMap { shards }
    }

    pub fn shard_count(&self) -> u32 {
        u32::try_from(self.shards.len()).expect("built from a u32 count")
    }

    fn shard(&self, shard: ShardId, key: &[u8]) -> &RwLock<Shard> {
        self.check_key(shard, key);
        self.shard_lock(shard)
    }

    fn check_key(&self, shard: ShardId, key: &[u8]) {
        debug_assert_eq!(
            key_shard(key, self.shard_count()),
            shard,
            "shard map: key {key:?} does not belong to {shard}"
        );
    }

    /// The pairs of the shard `key` belongs to, to read.
    fn read(&self, shard: ShardId, key: &[u8]) -> MappedRwLockReadGuard<'_, HashMap<Bytes, Bytes>> {
        RwLockReadGuard::map(self.shard(shard, key).read(), |shard| &shard.pairs)
    }

    /// The pairs of `shard`, to change: its sorted keys are forgotten.
    fn write_shard(&self, shard: ShardId) -> MappedRwLockWriteGuard<'_, HashMap<Bytes, Bytes>> {
        RwLockWriteGuard::map(self.shard_lock(shard).write(), |shard| {
            *shard.sorted_keys.get_mut() = None;
            &mut shard.pairs
        })
    }

    /// The pairs of the shard `key` belongs to, to change.
    fn write(
        &self,
        shard: ShardId,
        key: &[u8],
    ) -> MappedRwLockWriteGuard<'_, HashMap<Bytes, Bytes>> {
        self.check_key(shard, key);
        self.write_shard(shard)
    }

    fn shard_lock(&self, shard: ShardId) -> &RwLock<Shard> {
        let position = usize::try_from(shard.0).expect("u32 fits usize");
        self.shards.get(position).unwrap_or_else(|| {
            panic!("shard map: {shard} out of range for {} shards", self.shards.len())
        })
    }

    pub fn get(&self, shard: ShardId, key: &[u8]) -> Option<Bytes> {
        self.read(shard, key).get(key).cloned()
    }

    /// Stores `value` and returns the value it replaced.
    pub fn put(&self, shard: ShardId, key: Bytes, value: Bytes) -> Option<Bytes> {
        self.write(shard, &key).insert(key, value)
    }

    /// Removes `key`; returns whether it was present.
    pub fn delete(&self, shard: ShardId, key: &[u8]) -> bool {
        self.write(shard, key).remove(key).is_some()
    }

    /// Replaces the value of `key` with `new` (deleting it when `new` is `None`) only if the
    /// current value equals `expected` (`None` = the key must be absent).
    pub fn cas(
        &self,
        shard: ShardId,
        key: Bytes,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
    ) -> CasOutcome {
        let mut map = self.write(shard, &key);
        let existing = map.get(&key);
        if existing.map(|value| &value[..]) != expected {
            let current = existing.cloned();
            return CasOutcome { succeeded: false, current };
        }
        match &new {
            Some(value) => map.insert(key, value.clone()),
            None => map.remove(&key),
        };
        CasOutcome { succeeded: true, current: new }
    }

    /// Runs `update` on `key` under the shard's write lock: reads the value, makes the
    /// write `storage::update::decide` chose, and returns its outcome.
    pub fn update(
        &self,
        shard: ShardId,
        key: Bytes,
        update: radiant_protocol::Update,
    ) -> radiant_protocol::UpdateOutcome {
        let mut map = self.write(shard, &key);
        let (write, outcome) = super::update::decide(map.get(&key), update);
        match write {
            KeyWrite::Keep => {}
            KeyWrite::Store(value) => {
                map.insert(key, value);
            }
            KeyWrite::Remove => {
                map.remove(&key);
            }
        }
        outcome
    }

    /// Carries out `batch` under the shard's write lock, so no reader sees part of it:
    /// counts its distinct keys present before it, then makes every write unless its
    /// condition fails. A key written twice takes the later write.
    pub fn apply_batch(&self, shard: ShardId, batch: radiant_protocol::Batch) -> BatchOutcome {
        for write in &batch.writes {
            self.check_key(shard, &write.key);
        }
        let mut map = self.write_shard(shard);
        let mut keys: Vec<&Bytes> = batch.writes.iter().map(|write| &write.key).collect();
        keys.sort_unstable();
        keys.dedup();
        let existed = keys.iter().filter(|key| map.contains_key(**key)).count();
        // At most MAX_BATCH_WRITES (1024) distinct keys.
        let existed = u32::try_from(existed).unwrap_or(u32::MAX);
        let written = match batch.condition {
            BatchCondition::Always => true,
            BatchCondition::IfAllAbsent => existed == 0,
        };
        if written {
            for write in batch.writes {
                match write.value {
                    Some(value) => map.insert(write.key, value),
                    None => map.remove(&write.key),
                };
            }
        }
        BatchOutcome { written, existed }
    }

    /// The number of keys in all shards.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().pairs.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shard_len(&self, shard: ShardId) -> usize {
        self.shard_lock(shard).read().pairs.len()
    }

    /// A copy of one shard's pairs sorted by key, so snapshots are deterministic.
    pub fn clone_shard(&self, shard: ShardId) -> Vec<(Bytes, Bytes)> {
        let mut pairs: Vec<(Bytes, Bytes)> = {
            let map = self.shard_lock(shard).read();
            map.pairs.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
        };
        pairs.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        pairs
    }

    /// Inserts `pairs` into `shard` (used when loading a snapshot or receiving a shard).
    pub fn load(&self, shard: ShardId, pairs: impl IntoIterator<Item = (Bytes, Bytes)>) {
        let mut map = self.write_shard(shard);
        for (key, value) in pairs {
            debug_assert_eq!(key_shard(&key, self.shard_count()), shard, "load: wrong shard");
            map.insert(key, value);
        }
    }

    /// Pairs of `shard` with keys after `after`, ascending, at most `max_bytes` of keys
    /// and values (but at least one pair).
    pub fn pairs_after(
        &self,
        shard: ShardId,
        after: Option<&[u8]>,
        max_bytes: u64,
    ) -> Vec<(Bytes, Bytes)> {
        let locked = self.shard_lock(shard).read();
        let sorted = Arc::clone(locked.sorted_keys.lock().get_or_insert_with(|| {
            let mut keys: Vec<Bytes> = locked.pairs.keys().cloned().collect();
            keys.sort_unstable();
            Arc::new(keys)
        }));
        let start = after.map_or(0, |after| sorted.partition_point(|key| key.as_ref() <= after));
        let mut pairs = Vec::new();
        let mut bytes = 0u64;
        for key in sorted.iter().skip(start) {
            let Some(value) = locked.pairs.get(key) else { continue };
            bytes += (key.len() + value.len()) as u64;
            if !pairs.is_empty() && bytes > max_bytes {
                break;
            }
            pairs.push((key.clone(), value.clone()));
        }
        pairs
    }

    /// Removes every key of `shard`.
    pub fn clear_shard(&self, shard: ShardId) {
        self.write_shard(shard).clear();
    }

    /// Removes every key of every shard.
    pub fn clear(&self) {
        for shard in 0..self.shard_count() {
            self.write_shard(ShardId(shard)).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const SHARD_COUNT: u32 = 8;

    fn shard_of(key: &[u8]) -> ShardId {
        key_shard(key, SHARD_COUNT)
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Get(u8),
        Put(u8, u8),
        Delete(u8),
        Cas(u8, Option<u8>, Option<u8>),
        /// Writes of keys of one slot (`None` deletes); `true`: only if all are absent.
        Batch(Vec<(u8, Option<u8>)>, bool),
        Clear,
    }

    /// A third of the keys share one hash tag (one slot, so one shard), for batches.
    fn key(number: u8) -> Bytes {
        if number.is_multiple_of(3) {
            return tagged_key(number / 3);
        }
        Bytes::from(format!("key-{}", number % 24))
    }

    fn tagged_key(number: u8) -> Bytes {
        Bytes::from(format!("{{t}}k-{}", number % 6))
    }

    fn value(number: u8) -> Bytes {
        Bytes::from(vec![number % 4; 3])
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            any::<u8>().prop_map(Operation::Get),
            (any::<u8>(), any::<u8>()).prop_map(|(key, value)| Operation::Put(key, value)),
            any::<u8>().prop_map(Operation::Delete),
            (any::<u8>(), any::<Option<u8>>(), any::<Option<u8>>())
                .prop_map(|(key, expected, new)| Operation::Cas(key, expected, new)),
            (proptest::collection::vec((any::<u8>(), any::<Option<u8>>()), 1..6), any::<bool>())
                .prop_map(|(writes, if_all_absent)| Operation::Batch(writes, if_all_absent)),
            Just(Operation::Clear),
        ]
    }

    fn apply_batch(
        map: &ShardMap,
        model: &mut BTreeMap<Bytes, Bytes>,
        writes: &[(u8, Option<u8>)],
        if_all_absent: bool,
    ) {
        let writes: Vec<radiant_protocol::BatchWrite> = writes
            .iter()
            .map(|(number, value_number)| radiant_protocol::BatchWrite {
                key: tagged_key(*number),
                value: value_number.map(value),
            })
            .collect();
        let keys: std::collections::BTreeSet<&Bytes> = writes.iter().map(|w| &w.key).collect();
        let existed = keys.iter().filter(|key| model.contains_key(**key)).count() as u32;
        let written = !if_all_absent || existed == 0;
        if written {
            for write in &writes {
                match &write.value {
                    Some(value) => model.insert(write.key.clone(), value.clone()),
                    None => model.remove(&write.key),
                };
            }
        }
        let condition =
            if if_all_absent { BatchCondition::IfAllAbsent } else { BatchCondition::Always };
        let shard = shard_of(&tagged_key(0));
        let outcome = map.apply_batch(shard, radiant_protocol::Batch { condition, writes });
        assert_eq!(outcome, BatchOutcome { written, existed });
    }

    fn apply(map: &ShardMap, model: &mut BTreeMap<Bytes, Bytes>, operation: &Operation) {
        match operation {
            Operation::Get(number) => {
                let key = key(*number);
                assert_eq!(map.get(shard_of(&key), &key), model.get(&key).cloned());
            }
            Operation::Put(number, value_number) => {
                let (key, value) = (key(*number), value(*value_number));
                let old = map.put(shard_of(&key), key.clone(), value.clone());
                assert_eq!(old, model.insert(key, value));
            }
            Operation::Delete(number) => {
                let key = key(*number);
                assert_eq!(map.delete(shard_of(&key), &key), model.remove(&key).is_some());
            }
            Operation::Cas(number, expected, new) => {
                let key = key(*number);
                let expected = expected.map(value);
                let new = new.map(value);
                let outcome =
                    map.cas(shard_of(&key), key.clone(), expected.as_deref(), new.clone());
                let matches = model.get(&key) == expected.as_ref();
                assert_eq!(outcome.succeeded, matches);
                if matches {
                    match &new {
                        Some(value) => model.insert(key.clone(), value.clone()),
                        None => model.remove(&key),
                    };
                    assert_eq!(outcome.current, new);
                } else {
                    assert_eq!(outcome.current, model.get(&key).cloned());
                }
            }
            Operation::Batch(writes, if_all_absent) => {
                apply_batch(map, model, writes, *if_all_absent);
            }
            Operation::Clear => {
                map.clear();
                model.clear();
            }
        }
    }

    /// Every pair of `shard`, read as a move reads it: pieces of at most 16 bytes.
    fn pieces(map: &ShardMap, shard: ShardId) -> Vec<(Bytes, Bytes)> {
        let mut all: Vec<(Bytes, Bytes)> = Vec::new();
        loop {
            let after = all.last().map(|(key, _)| key.clone());
            let piece = map.pairs_after(shard, after.as_deref(), 16);
            if piece.is_empty() {
                return all;
            }
            all.extend(piece);
        }
    }

    proptest! {
        #[test]
        fn shard_map_matches_a_btreemap_model(
            operations in proptest::collection::vec(operation(), 0..200),
        ) {
            let map = ShardMap::new(SHARD_COUNT);
            let mut model = BTreeMap::new();
            for operation in &operations {
                apply(&map, &mut model, operation);
                prop_assert_eq!(map.len(), model.len());
                // Reading a shard piece by piece (as a move does) sees every write so far:
                // the sorted keys it keeps between pieces are forgotten by each write.
                let shard = ShardId(0);
                let expected: Vec<(Bytes, Bytes)> = model
                    .iter()
                    .filter(|(key, _)| shard_of(key) == shard)
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                prop_assert_eq!(pieces(&map, shard), expected);
            }
            let mut all: Vec<(Bytes, Bytes)> = (0..SHARD_COUNT)
                .flat_map(|shard| map.clone_shard(ShardId(shard)))
                .collect();
            all.sort();
            let expected: Vec<(Bytes, Bytes)> = model.into_iter().collect();
            prop_assert_eq!(all, expected);
        }
    }

    #[test]
    fn clone_shard_is_sorted_and_load_restores_it() {
        let map = ShardMap::new(1);
        for number in [5u8, 1, 9, 3] {
            map.put(ShardId(0), key(number), value(number));
        }
        let pairs = map.clone_shard(ShardId(0));
        assert!(pairs.windows(2).all(|pair| pair[0].0 < pair[1].0));
        let copy = ShardMap::new(1);
        copy.load(ShardId(0), pairs.clone());
        assert_eq!(copy.clone_shard(ShardId(0)), pairs);
        assert_eq!(copy.shard_len(ShardId(0)), 4);
    }

    #[test]
    fn concurrent_writers_on_all_shards_lose_no_update() {
        let map = ShardMap::new(SHARD_COUNT);
        let threads = 4;
        let keys_per_thread = 500;
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let map = &map;
                scope.spawn(move || {
                    for number in 0..keys_per_thread {
                        let key = Bytes::from(format!("t{thread}-k{number}"));
                        let shard = shard_of(&key);
                        map.put(shard, key.clone(), Bytes::from_static(b"a"));
                        let outcome = map.cas(shard, key.clone(), Some(b"a"), Some("b".into()));
                        assert!(outcome.succeeded);
                        assert_eq!(map.get(shard, &key).as_deref(), Some(&b"b"[..]));
                    }
                });
            }
        });
        assert_eq!(map.len(), threads * keys_per_thread);
    }
}
