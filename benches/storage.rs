//! Storage benchmarks: shard-map operations under several threads (ops/s), and WAL
//! append with group commit (entries/s; each iteration is one batch and one fsync,
//! so fsyncs/s = batches/s) on the real disk and, where present, on tmpfs.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use radiant::storage::shard_map::ShardMap;
use radiant::storage::wal::{Wal, WalOptions};
use radiant_protocol::slots::key_shard;
use radiant_protocol::LogEntry;

const SHARDS: u32 = 64;
const KEYS: usize = 100_000;
const OPS_PER_THREAD: usize = 20_000;

fn keys() -> Vec<Bytes> {
    (0..KEYS).map(|index| Bytes::from(format!("key-{index:08}"))).collect()
}

/// Each thread does OPS_PER_THREAD operations: 90% gets, 10% puts, over shared keys.
fn shard_map(criterion: &mut Criterion) {
    let keys = Arc::new(keys());
    let map = Arc::new(ShardMap::new(SHARDS));
    let value = Bytes::from(vec![1u8; 100]);
    for key in keys.iter() {
        map.put(key_shard(key, SHARDS), key.clone(), value.clone());
    }
    let mut group = criterion.benchmark_group("shard_map_90get_10put");
    for threads in [1usize, 2, 4] {
        group.throughput(Throughput::Elements((threads * OPS_PER_THREAD) as u64));
        group.bench_function(BenchmarkId::from_parameter(threads), |bencher| {
            bencher.iter(|| {
                std::thread::scope(|scope| {
                    for thread in 0..threads {
                        let (map, keys, value) = (&map, &keys, &value);
                        scope.spawn(move || {
                            for op in 0..OPS_PER_THREAD {
                                let key = &keys[(op * 7919 + thread * 104_729) % KEYS];
                                let shard = key_shard(key, SHARDS);
                                if op % 10 == 0 {
                                    map.put(shard, key.clone(), value.clone());
                                } else {
                                    std::hint::black_box(map.get(shard, key));
                                }
                            }
                        });
                    }
                });
            });
        });
    }
    group.finish();
}

fn wal_group_commit_in(criterion: &mut Criterion, label: &str, parent: &Path) {
    let directory = tempfile::tempdir_in(parent).expect("temp dir");
    let options = WalOptions { segment_max_bytes: 64 << 20, max_record_bytes: 1 << 20 };
    let (mut wal, _) =
        Wal::open(&radiant::storage::DataDir::real(directory.path()), options).expect("open wal");
    let data = Bytes::from(vec![3u8; 100]);
    let mut group = criterion.benchmark_group(format!("wal_group_commit_{label}"));
    group.sample_size(20);
    for batch in [1usize, 16, 128, 1024] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("entries_per_fsync", batch), |bencher| {
            bencher.iter(|| {
                let first = wal.last_index() + 1;
                let entries: Vec<LogEntry> = (0..batch as u64)
                    .map(|offset| LogEntry { term: 1, index: first + offset, data: data.clone() })
                    .collect();
                wal.append(&entries).expect("append");
                wal.sync().expect("sync");
            });
        });
    }
    group.finish();
}

fn wal_group_commit(criterion: &mut Criterion) {
    wal_group_commit_in(criterion, "disk", Path::new(env!("CARGO_TARGET_TMPDIR")));
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        wal_group_commit_in(criterion, "tmpfs", shm);
    }
}

criterion_group!(benches, shard_map, wal_group_commit);
criterion_main!(benches);
