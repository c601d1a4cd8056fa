//! `kill -9` never loses an acknowledged write: concurrent clients write keys, the
//! daemon is SIGKILLed at a random point while writes are in flight, and after a
//! restart every acknowledged key holds its acknowledged value.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{test_seed, Daemon};
use radiant::core::prng::Prng;

/// Keys acknowledged before the kill may fire.
const KEYS_BEFORE_KILL_WINDOW: u64 = 10_000;
/// The kill fires after a random number of further acknowledgements below this.
const KILL_WINDOW: u64 = 4_000;
const WRITERS: u64 = 8;
/// Bound on the whole write phase.
const WRITE_PHASE_LIMIT: Duration = Duration::from_secs(240);

fn value_for(key: u64, seed: u64) -> Vec<u8> {
    format!("value-{key}-{seed}-{}", "x".repeat((key % 64) as usize)).into_bytes()
}

#[test]
fn every_acknowledged_write_survives_kill_9_at_a_random_point() {
    let seed = test_seed("kill9");
    let directory = tempfile::tempdir().expect("temp dir");
    let data_dir = directory.path().join("radiant");
    // A small snapshot interval makes the kill land around snapshots and compaction too.
    let extra = "snapshot_interval_entries = 3000\nwal_segment_max_bytes = 262144\n";
    let mut daemon = Daemon::start(&data_dir, extra);
    let kill_after = KEYS_BEFORE_KILL_WINDOW + Prng::new(seed).range(0, KILL_WINDOW);

    let acknowledged = Arc::new(Mutex::new(BTreeMap::<u64, Vec<u8>>::new()));
    let acks = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let next_key = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let client = daemon.connect();
            let (acknowledged, acks, killed, next_key) = (
                Arc::clone(&acknowledged),
                Arc::clone(&acks),
                Arc::clone(&killed),
                Arc::clone(&next_key),
            );
            std::thread::spawn(move || {
                let mut client = client;
                while !killed.load(Ordering::Acquire) && start.elapsed() < WRITE_PHASE_LIMIT {
                    let key = next_key.fetch_add(1, Ordering::Relaxed);
                    let value = value_for(key, seed);
                    match client.put(format!("key-{key}").as_bytes(), &value) {
                        Ok(()) => {
                            acknowledged.lock().expect("not poisoned").insert(key, value);
                            acks.fetch_add(1, Ordering::AcqRel);
                        }
                        // After the kill, outcomes are unknown: not acknowledged.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();

    while acks.load(Ordering::Acquire) < kill_after && start.elapsed() < WRITE_PHASE_LIMIT {
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(
        acks.load(Ordering::Acquire) >= kill_after,
        "writers too slow: {} acks in {WRITE_PHASE_LIMIT:?}",
        acks.load(Ordering::Acquire)
    );
    daemon.kill9();
    killed.store(true, Ordering::Release);
    for writer in writers {
        writer.join().expect("writer thread");
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("not poisoned"));
    eprintln!(
        "kill9: killed after {} acknowledged writes (target {kill_after})",
        acknowledged.len()
    );
    assert!(acknowledged.len() as u64 >= KEYS_BEFORE_KILL_WINDOW);

    let restarted = Daemon::start(&data_dir, extra);
    let mut client = restarted.connect();
    for (key, value) in &acknowledged {
        let stored = client.get(format!("key-{key}").as_bytes()).expect("get after restart");
        assert_eq!(
            stored.as_deref(),
            Some(value.as_slice()),
            "acknowledged key-{key} lost or changed (seed {seed})"
        );
    }
}

#[test]
fn sigterm_shuts_down_cleanly_and_keeps_every_write() {
    let directory = tempfile::tempdir().expect("temp dir");
    let data_dir = directory.path().join("radiant");
    let mut daemon = Daemon::start(&data_dir, "");
    let mut client = daemon.connect();
    for key in 0..500u64 {
        client.put(format!("k{key}").as_bytes(), &value_for(key, 0)).expect("put");
    }
    let status = daemon.terminate();
    assert!(status.success(), "SIGTERM exit status {status}; log:\n{}", daemon.log());
    assert!(daemon.log().contains("shut down cleanly"), "log:\n{}", daemon.log());

    let restarted = Daemon::start(&data_dir, "");
    let mut client = restarted.connect();
    for key in 0..500u64 {
        let stored = client.get(format!("k{key}").as_bytes()).expect("get");
        assert_eq!(stored.as_deref(), Some(value_for(key, 0).as_slice()), "k{key}");
    }
}

#[test]
fn a_second_radiant_on_the_same_data_dir_is_refused() {
    let directory = tempfile::tempdir().expect("temp dir");
    let data_dir = directory.path().join("radiant");
    let _first = Daemon::start(&data_dir, "");
    let config = common::write_config(&data_dir, "");
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_radiant"));
    second.args(["start", "--config"]).arg(&config);
    let output = common::run_bounded(&mut second, Duration::from_secs(30));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is in use by another radiant"), "{stderr}");
}

#[test]
fn a_flipped_bit_in_an_acknowledged_record_is_refused_at_start_not_cut_as_torn() {
    let directory = tempfile::tempdir().expect("temp dir");
    let data_dir = directory.path().join("radiant");
    let mut daemon = Daemon::start(&data_dir, "");
    for key in 1..=20 {
        let address = daemon.client_address.to_string();
        let (key, value) = (format!("key-{key}"), format!("value-{key}"));
        let (code, _, stderr) = common::radiant(&["put", &key, &value, "--addr", &address]);
        assert_eq!(code, 0, "put {key}: {stderr}");
    }
    daemon.kill9();
    let wal_dir = data_dir.join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .expect("wal directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "wal"))
        .collect();
    segments.sort();
    let last = segments.pop().expect("a segment");
    let mut bytes = std::fs::read(&last).expect("read segment");
    let flipped = bytes.len() - 10;
    bytes[flipped] ^= 0x01;
    std::fs::write(&last, &bytes).expect("write segment");

    let config = common::write_config(&data_dir, "");
    let mut start = std::process::Command::new(env!("CARGO_BIN_EXE_radiant"));
    start.args(["start", "--config"]).arg(&config);
    let output = common::run_bounded(&mut start, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Before the fix it started, cut the record as a torn write and lost key-20.
    let code = output.status.code();
    assert_eq!(code, Some(i32::from(radiant::server::EXIT_DAMAGED_DATA)), "{stderr}");
    assert!(stderr.contains("is corrupt at byte offset"), "{stderr}");
    assert!(stderr.contains("restore its data directory from a backup"), "{stderr}");
    assert_eq!(std::fs::read(&last).expect("read segment"), bytes, "the segment was modified");
}

#[test]
fn a_restart_with_smaller_limits_recovers_and_applies_every_large_acknowledged_write() {
    let directory = tempfile::tempdir().expect("temp dir");
    let data_dir = directory.path().join("radiant");
    let large = vec![b'v'; 300 << 10];
    let mut daemon = Daemon::start(&data_dir, "");
    daemon.connect().put(b"large", &large).expect("put a 300 KiB value");
    daemon.kill9();
    // The WAL's record limit is a format constant, and committed entries decode with the
    // format's limits: lowering the frame and value limits must not make recovery cut the
    // 300 KiB record as torn, refuse to start, or skip the committed put at apply.
    let smaller = "max_key_bytes = 1024\nmax_value_bytes = 65536\nmax_frame_bytes = 131072\n\
                   replication_max_bytes = 65536\n";
    let restarted = Daemon::start(&data_dir, smaller);
    let status = common::status(&restarted).expect("status");
    assert_eq!(status["keys"], 1, "{status}");
    assert!(!restarted.log().contains("torn"), "log:\n{}", restarted.log());
    let stored = restarted.connect().get(b"large").expect("get");
    assert_eq!(stored.as_deref(), Some(large.as_slice()));
}
