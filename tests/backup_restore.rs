//! `radiant backup` of a running six-radiant system (two orders) under writes, then
//! `radiant restore` into a brand-new single node: the restored data is exactly what the
//! backup promised, none of what was written after it, and the checksums hold. A damaged
//! backup and a non-empty target are refused. Bounded; every process is killed by PID on
//! drop.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::load::Load;
use common::system::{start_ring, two_orders_of_three_settled, wait_for};
use common::Daemon;
use serde_json::Value;

/// Keys written once before the backup and overwritten after it.
const STEADY_KEYS: usize = 1_000;
/// Keys the writer overwrites while the backup runs.
const HOT_KEYS: u64 = 20;
/// Keys `Load` writes (`radiant bench --keys`).
const LOAD_KEYS: u64 = 300;
/// Seconds of checked load around the backup.
const LOAD_SECONDS: u64 = 6;
/// Longest the writer may run.
const WRITER_LIMIT: Duration = Duration::from_secs(120);

/// The hot key written by write number `n`, and its value.
fn hot_write(n: u64) -> (String, String) {
    (format!("hot{}", n % HOT_KEYS), format!("{n:010}"))
}

/// Overwrites the hot keys in turn until `stop`; counts the writes begun (`begun`) and
/// acknowledged (`acked`: every write up to it was acknowledged).
fn start_writer(
    daemon: &Daemon,
    stop: Arc<AtomicBool>,
    begun: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let mut client = daemon.connect();
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut n = HOT_KEYS;
        while !stop.load(Ordering::SeqCst) && started.elapsed() < WRITER_LIMIT {
            begun.store(n, Ordering::SeqCst);
            let (key, value) = hot_write(n);
            client.put(key.as_bytes(), value.as_bytes()).expect("hot write");
            acked.store(n, Ordering::SeqCst);
            n += 1;
        }
    })
}

/// The manifest lists every shard, both orders, the keys written before the backup, and
/// for each shard an index its order had committed.
fn check_manifest(manifest: &Value, daemons: &[Option<Daemon>]) {
    let shards = manifest["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 64, "{manifest}");
    // The steady and hot keys, and those of the checked load (at most `LOAD_KEYS`).
    let keys = manifest["keys"].as_u64().unwrap_or(0);
    let ours = STEADY_KEYS as u64 + HOT_KEYS;
    assert!((ours..=ours + LOAD_KEYS).contains(&keys), "{keys} keys: {manifest}");
    let orders: std::collections::BTreeSet<u64> =
        shards.iter().filter_map(|shard| shard["order"].as_u64()).collect();
    assert_eq!(orders.len(), 2, "both orders' shards are in the backup: {manifest}");
    let statuses: Vec<Value> = daemons.iter().flatten().filter_map(common::status).collect();
    for shard in shards {
        let commit = statuses
            .iter()
            .filter(|status| status["order"] == shard["order"])
            .filter_map(|status| status["commit_index"].as_u64())
            .max()
            .unwrap_or(0);
        let index = shard["index"].as_u64().expect("index");
        assert!(index > 0 && index <= commit, "shard index {index} not committed ({commit})");
    }
}

/// The restored node holds the steady keys as they were before the backup, none of the
/// keys written after it, and hot keys of writes made while it ran.
fn check_restored(target: &Daemon, acked_before: u64, begun_after: u64) {
    let mut restored = target.connect();
    for i in 0..STEADY_KEYS {
        let value = restored.get(format!("k{i}").as_bytes()).expect("get");
        assert_eq!(value.as_deref(), Some(format!("before-{i}").as_bytes()), "k{i}");
    }
    for i in 0..100 {
        assert_eq!(restored.get(format!("new{i}").as_bytes()).expect("get"), None, "new{i}");
    }
    // Each hot key holds a write that the writer had begun before the backup ended, and
    // no older one than the last it had acknowledged before the backup began.
    for key in 0..HOT_KEYS {
        let value = restored.get(format!("hot{key}").as_bytes()).expect("get").expect("present");
        let n: u64 = String::from_utf8_lossy(&value).parse().expect("a write number");
        assert_eq!(n % HOT_KEYS, key, "hot{key} holds write {n}");
        let newest_acked_before = (0..=acked_before).rev().find(|m| m % HOT_KEYS == key);
        assert!(n >= newest_acked_before.unwrap_or(0), "hot{key}: write {n} is older");
        assert!(n <= begun_after, "hot{key}: write {n} began after the backup ended");
    }
}

#[test]
fn a_backup_under_writes_restores_into_a_fresh_node_as_exactly_what_it_promised() {
    let root = tempfile::tempdir().expect("tempdir");
    let daemons = start_ring(root.path(), 6);
    wait_for(&daemons, "six radiants form two orders of three", two_orders_of_three_settled);
    let source = daemons[0].as_ref().expect("running");
    let mut client = source.connect();
    for i in 0..STEADY_KEYS {
        client.put(format!("k{i}").as_bytes(), format!("before-{i}").as_bytes()).expect("put");
    }
    for n in 0..HOT_KEYS {
        let (key, value) = hot_write(n);
        client.put(key.as_bytes(), value.as_bytes()).expect("put");
    }

    let (stop, begun, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    // A checked load runs through the backup too: it must see every operation answered
    // and a linearizable history (writes never stop).
    let load_entry = daemons[1].as_ref().expect("running").client_address.to_string();
    let history = root.path().join("history.jsonl");
    let load = Load::start(&load_entry, &history, root.path().join("bench.json"), LOAD_SECONDS);
    let writer = start_writer(source, Arc::clone(&stop), Arc::clone(&begun), Arc::clone(&acked));
    // Long enough for the load process to be writing when the backup starts.
    std::thread::sleep(Duration::from_millis(1000));
    let acked_before = acked.load(Ordering::SeqCst);
    let backup_dir = root.path().join("backup");
    let entry = daemons[3].as_ref().expect("running").client_address.to_string();
    let out = backup_dir.to_str().expect("utf-8 path");
    let (code, stdout, stderr) =
        common::radiant(&["backup", "--addr", &entry, "--out", out, "--page-bytes", "64"]);
    assert_eq!(code, 0, "backup failed: {stdout}{stderr}");
    let begun_after = begun.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let report = load.finish_checked();
    assert_eq!(report["failed"], 0, "the load saw failed operations during the backup: {report}");
    println!("{stdout}");
    assert!(acked_before > HOT_KEYS, "the writer wrote before the backup began");
    assert!(begun_after > acked_before, "the writer went on during the backup");

    // After the backup: every steady key changes and new keys appear.
    for i in 0..STEADY_KEYS {
        client.put(format!("k{i}").as_bytes(), format!("after-{i}").as_bytes()).expect("put");
    }
    for i in 0..100 {
        client.put(format!("new{i}").as_bytes(), b"after").expect("put");
    }

    let manifest: Value = serde_json::from_slice(
        &std::fs::read(backup_dir.join("manifest.json")).expect("manifest written"),
    )
    .expect("manifest is JSON");
    check_manifest(&manifest, &daemons);
    let shards = manifest["shards"].as_array().expect("shards");

    let target = Daemon::start(&root.path().join("restored"), "");
    let target_address = target.client_address.to_string();
    let dir = backup_dir.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = common::radiant(&["restore", dir, "--addr", &target_address]);
    assert_eq!(code, 0, "restore failed: {stdout}{stderr}");
    assert!(stdout.contains("exactly the backup"), "{stdout}");

    check_restored(&target, acked_before, begun_after);

    // A second restore into the now non-empty node is refused, and so is a damaged file.
    let (code, _, stderr) = common::radiant(&["restore", dir, "--addr", &target_address]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already holds keys"), "{stderr}");
    let file = shards.iter().find_map(|shard| shard["file"].as_str()).expect("a shard file");
    let path = backup_dir.join(file);
    let mut bytes = std::fs::read(&path).expect("read shard file");
    bytes[6] ^= 0x40;
    std::fs::write(&path, bytes).expect("damage shard file");
    let (code, _, stderr) = common::radiant(&["restore", dir, "--addr", &target_address]);
    assert_eq!(code, 1);
    assert!(stderr.contains("damaged") && stderr.contains(file), "{stderr}");
}
