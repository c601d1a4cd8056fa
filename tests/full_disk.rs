//! A full disk on a real daemon: a single radiant whose data directory is on a small
//! tmpfs the test mounts fills it under load. It stops (fail-stop) with exit status 74
//! and the OS error in its log, loses nothing it acknowledged, and once space is freed it
//! restarts with every acknowledged write.
//!
//! Needs root (it mounts a tmpfs). Run by hand without root it says so and skips;
//! `.ci/run` sets `RADIANT_REQUIRE_PRIVILEGED_TESTS=1`, under which a skip fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Daemon;
use radiant::client::{Client, ClientOptions};

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

/// Whether this process may mount; without root the test skips, unless the switch
/// `.ci/run` sets says skipping is a failure.
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        let required = std::env::var("RADIANT_REQUIRE_PRIVILEGED_TESTS").is_ok_and(|v| v == "1");
        assert!(!required, "this test needs root (it mounts a tmpfs), and CI requires it");
        eprintln!("full_disk: skipped: needs root to mount a tmpfs");
    }
    root
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
    let mut daemon = Daemon::start(&data_dir, "");
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
    let restarted = Daemon::start(&data_dir, "");
    let mut client = restarted.connect();
    for key in &acknowledged {
        let stored = client.get(key.as_bytes()).expect("get");
        assert_eq!(stored.as_deref(), Some(value.as_slice()), "acknowledged {key} lost");
    }
}
