//! A full disk on a real daemon: a single radiant whose data directory is on a small
//! tmpfs the test mounts fills it under load. It stops (fail-stop) with exit status 74
//! and the OS error in its log, loses nothing it acknowledged, and once space is freed it
//! restarts with every acknowledged write. Below `min_free_bytes` free, before the disk is
//! full, the disk-space alarm refuses new data, keeps reads and deletes working, shows in
//! status, and clears by itself once space returns.
//!
//! Needs root (it mounts a tmpfs). Run by hand without root it says so and skips;
//! `.ci/run` sets `RADIANT_REQUIRE_PRIVILEGED_TESTS=1`, under which a skip fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Daemon;
use radiant::client::{Client, ClientOptions};
use radiant_protocol::{ClientRequest, ClientResponse, ErrorResponse, Message};

/// The tmpfs size: a few MiB, filled in seconds.
const DISK_BYTES: &str = "8m";
/// Bytes per value.
const VALUE_BYTES: usize = 64 << 10;
/// At most this many puts (far more than fit).
const MAX_PUTS: usize = 1_000;
/// Longest the radiant may take to stop once it failed.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// A tmpfs mounted for the test, unmounted when dropped (also on failure).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let size = format!("size={DISK_BYTES}");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs on {} failed", path.display());
        Tmpfs { path: path.to_path_buf() }
    }

    fn grow(&self, size: &str) {
        let options = format!("remount,size={size}");
        let status =
            Command::new("mount").args(["-o", &options]).arg(&self.path).status().expect("mount");
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Whether this process may mount.
fn privileged() -> bool {
    common::can_run(common::is_root(), "full_disk", "root to mount a tmpfs")
}

#[test]
fn a_full_disk_stops_the_radiant_with_exit_74_and_loses_nothing_acknowledged() {
    if !privileged() {
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let disk = Tmpfs::mount(&root.path().join("disk"));
    // The mount point itself is the data directory, so the config and the log (written
    // beside it) stay off the full disk.
    let data_dir = disk.path.clone();
    // No disk-space alarm: this test is about running into ENOSPC.
    let mut daemon = Daemon::start(&data_dir, "min_free_bytes = 0\n");
    let options = ClientOptions { timeout: Duration::from_secs(5), ..ClientOptions::default() };
    let mut client = Client::connect(&daemon.client_address.to_string(), options).expect("connect");
    let value = vec![b'v'; VALUE_BYTES];
    let mut acknowledged = Vec::new();
    for key in 0..MAX_PUTS {
        let key = format!("key-{key}");
        if client.put(key.as_bytes(), &value).is_err() {
            break;
        }
        acknowledged.push(key);
    }
    assert!(acknowledged.len() < MAX_PUTS, "the disk never filled");
    let deadline = Instant::now() + STOP_LIMIT;
    while daemon.is_running() {
        assert!(Instant::now() < deadline, "still running on a full disk; log:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = daemon.exit_code().expect("exited");
    let log = daemon.log();
    println!("stopped after {} acknowledged puts with exit status {code}", acknowledged.len());
    assert_eq!(code, i32::from(radiant::server::EXIT_STORAGE_FAILED), "log:\n{log}");
    assert!(log.contains("No space left on device"), "the OS error was dropped:\n{log}");

    // Space comes back: the radiant restarts with every write it acknowledged.
    disk.grow("256m");
    let restarted = Daemon::start(&data_dir, "min_free_bytes = 0\n");
    let mut client = restarted.connect();
    for key in &acknowledged {
        let stored = client.get(key.as_bytes()).expect("get");
        assert_eq!(stored.as_deref(), Some(value.as_slice()), "acknowledged {key} lost");
    }
}

/// A full disk under one member of an order: that member stops (74), its order carries
/// on under a checked load and loses nothing acknowledged, and once space is freed the
/// member restarts and catches up.
#[test]
fn a_full_disk_stops_one_member_and_its_order_carries_on() {
    if !privileged() {
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let disk = Tmpfs::mount(&root.path().join("disk"));
    let members: Vec<(u64, u16, u16)> =
        (1..=3).map(|id| (id, common::free_port(), common::free_port())).collect();
    // No disk-space alarm: this test is about running into ENOSPC (an alarmed herald
    // would refuse the puts that are to fill the disk).
    let timing =
        "tick_ms = 10\nheartbeat_interval = 5\nelection_timeout = 30\nmin_free_bytes = 0\n";
    let data_dirs = [root.path().join("r1"), root.path().join("r2"), disk.path.clone()];
    let configs: Vec<PathBuf> = members
        .iter()
        .zip(&data_dirs)
        .map(|(&me, data_dir)| common::order_member_config(data_dir, me, &members, timing))
        .collect();
    let mut daemons: Vec<Daemon> = configs
        .iter()
        .zip(&data_dirs)
        .map(|(config, data_dir)| Daemon::start_with_config(data_dir, config))
        .collect();
    let addresses: Vec<String> = daemons.iter().map(|d| d.client_address.to_string()).collect();
    let history = root.path().join("history.jsonl");
    let load = common::load::Load::start(&addresses[0], &history, root.path().join("b.json"), 12);

    // Large puts fill member 3's 8 MiB within seconds; the order keeps acknowledging.
    let options = ClientOptions { timeout: Duration::from_secs(10), ..ClientOptions::default() };
    let entry: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let mut client = Client::connect_any(&entry, options).expect("connect");
    let value = vec![b'v'; VALUE_BYTES];
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + STOP_LIMIT;
    while daemons[2].is_running() {
        assert!(Instant::now() < deadline, "member 3 never filled its disk");
        let key = format!("big-{}", acknowledged.len());
        if client.put(key.as_bytes(), &value).is_ok() {
            acknowledged.push(key);
        }
    }
    let code = daemons[2].exit_code().expect("exited");
    let log = daemons[2].log();
    assert_eq!(code, i32::from(radiant::server::EXIT_STORAGE_FAILED), "log:\n{log}");
    assert!(log.contains("No space left on device"), "the OS error was dropped:\n{log}");
    // The other two go on: more acknowledged puts with member 3 down.
    for more in 0..20 {
        let key = format!("after-{more}");
        client.put(key.as_bytes(), b"small").expect("the order carries on without member 3");
        acknowledged.push(key);
    }
    load.finish_checked();

    // Space comes back: member 3 restarts, catches up, and holds every acknowledged put.
    disk.grow("256m");
    daemons[2] = Daemon::start_with_config(&data_dirs[2], &configs[2]);
    let commit = |daemon: &Daemon| {
        common::status(daemon).and_then(|s| s["applied_index"].as_u64()).unwrap_or(0)
    };
    let target = commit(&daemons[0]).max(commit(&daemons[1]));
    let deadline = Instant::now() + STOP_LIMIT;
    while commit(&daemons[2]) < target {
        assert!(Instant::now() < deadline, "member 3 did not catch up:\n{}", daemons[2].log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stale = daemons[2].connect();
    for key in &acknowledged {
        let consistency = radiant_protocol::ReadConsistency::Stale;
        let stored = stale.get_with(key.as_bytes(), consistency).expect("a stale read");
        assert!(stored.is_some(), "member 3 lacks acknowledged {key} after catching up");
    }
}

/// One put sent with no retry: its answer as the radiant gave it.
fn put_once(client: &mut Client, key: &str, value: &[u8]) -> Message {
    let request = ClientRequest::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value),
        session: None,
    };
    let correlation_id = client.send(&request).expect("send a put");
    let answer = client.receive(correlation_id, Instant::now() + STOP_LIMIT);
    answer.unwrap_or_else(|error| panic!("no answer to put {key}: {error}"))
}

#[test]
fn below_min_free_bytes_new_data_is_refused_reads_and_deletes_work_and_the_alarm_clears() {
    if !privileged() {
        return;
    }
    let root = tempfile::tempdir().expect("temp dir");
    let disk = Tmpfs::mount(&root.path().join("disk"));
    let data_dir = disk.path.clone();
    // Half of the 8 MiB disk: the alarm trips with about 4 MiB still free.
    let mut daemon = Daemon::start(&data_dir, "min_free_bytes = 4194304\n");
    let mut client = daemon.connect();
    let value = vec![b'v'; VALUE_BYTES];
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for key in 0..MAX_PUTS {
        let key = format!("key-{key}");
        match put_once(&mut client, &key, &value) {
            Message::Response(ClientResponse::PutResult) => acknowledged.push(key),
            Message::Error(ErrorResponse::Unavailable { reason }) => {
                refusal = Some(reason);
                break;
            }
            other => panic!("put {key} got {other:?}; log:\n{}", daemon.log()),
        }
    }
    let refusal = refusal.unwrap_or_else(|| panic!("never refused; log:\n{}", daemon.log()));
    println!("refused after {} puts: {refusal}", acknowledged.len());
    assert!(refusal.contains("min_free_bytes"), "the refusal does not name its cause: {refusal}");
    assert!(refusal.contains(&data_dir.display().to_string()), "no directory: {refusal}");
    assert!(daemon.is_running(), "the alarm must refuse, not stop:\n{}", daemon.log());

    // Reads and deletes go on; status says why writes are refused.
    let stored = client.get(acknowledged[0].as_bytes()).expect("a read under the alarm");
    assert_eq!(stored.as_deref(), Some(value.as_slice()));
    assert!(client.delete(acknowledged[0].as_bytes()).expect("a delete under the alarm"));
    let status = common::status(&daemon).expect("status");
    let alarm = status["disk_alarm"].as_str().unwrap_or_default().to_string();
    assert!(alarm.contains("min_free_bytes"), "status shows no alarm: {status}");
    let address = daemon.client_address.to_string();
    let (code, shown, stderr) = common::radiant(&["status", "--addr", &address]);
    assert_eq!(code, 0, "{stderr}");
    assert!(shown.contains("DISK ALARM"), "`radiant status` hides the alarm:\n{shown}");

    // Space returns: within a few checks the alarm clears and puts succeed again.
    disk.grow("64m");
    let deadline = Instant::now() + STOP_LIMIT;
    loop {
        match put_once(&mut client, "after", b"small") {
            Message::Response(ClientResponse::PutResult) => break,
            Message::Error(ErrorResponse::Unavailable { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("after growing the disk a put got {other:?}:\n{}", daemon.log()),
        }
    }
    let status = common::status(&daemon).expect("status");
    assert!(status["disk_alarm"].is_null(), "the alarm did not clear: {status}");
    assert!(daemon.log().contains("disk alarm: cleared"), "{}", daemon.log());
}
