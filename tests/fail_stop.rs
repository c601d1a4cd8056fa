//! Fail-stop on a real daemon: a panic in any server thread ends the whole process with
//! exit status 70 and a log line naming the thread, instead of leaving a half-alive
//! radiant (the reactor answering pings while nothing serves). Each kind of thread is
//! made to panic in turn by the test-only switch `RADIANT_TEST_PANIC_THREAD`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::write_config;
use radiant::client::{Client, ClientOptions};
use radiant::server::{test_switches, EXIT_PANIC};

/// Longest a radiant may take to stop once its thread panicked (generous: a busy
/// machine; it is measured and printed, not asserted tighter).
const EXIT_LIMIT: Duration = Duration::from_secs(20);

/// A radiant process with `thread` set to panic, killed by PID if the test fails.
struct Panicking {
    child: Child,
    log_path: std::path::PathBuf,
    data_dir: std::path::PathBuf,
}

impl Drop for Panicking {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Panicking {
    fn start(root: &std::path::Path, thread: &str, extra: &str) -> Panicking {
        let data_dir = root.join(thread);
        let config = write_config(&data_dir, extra);
        let log_path = data_dir.with_extension("log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_radiant"))
            .args(["start", "--config"])
            .arg(&config)
            .env(test_switches::PANIC_THREAD, thread)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn radiant");
        Panicking { child, log_path, data_dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Its client address once it wrote the address file, unless it exited first.
    fn client_address(&mut self) -> Option<String> {
        let deadline = Instant::now() + EXIT_LIMIT;
        while Instant::now() < deadline {
            if let Some((client, _)) = radiant::server::read_address_file(&self.data_dir) {
                return Some(client.to_string());
            }
            if self.child.try_wait().expect("try_wait").is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("radiant neither served nor exited within {EXIT_LIMIT:?}; log:\n{}", self.log());
    }

    /// Waits (bounded) for the exit; returns its code and how long it took.
    fn exit_code(&mut self, since: Instant) -> (i32, Duration) {
        let deadline = Instant::now() + EXIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let code = status.code().expect("exited with a status, not a signal");
                return (code, since.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "still running {EXIT_LIMIT:?} after the panic was due: half-alive; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Starts a radiant whose `thread` panics, sets it off with `trigger` (given the client
/// address, when it serves), and checks it stops with `EXIT_PANIC`, naming the thread.
fn check(root: &std::path::Path, thread: &str, extra: &str, trigger: impl Fn(&str, u32)) {
    let started = Instant::now();
    let mut radiant = Panicking::start(root, thread, extra);
    let mut triggered = Instant::now();
    if let Some(address) = radiant.client_address() {
        trigger(&address, radiant.child.id());
        triggered = Instant::now();
    }
    let (code, took) = radiant.exit_code(triggered);
    let log = radiant.log();
    let total = started.elapsed();
    println!("{thread}: exit status {code}, {took:?} after its trigger ({total:?} after start)");
    assert_eq!(code, i32::from(EXIT_PANIC), "{thread}: log:\n{log}");
    let line = log.lines().find(|line| line.contains("a thread panicked")).unwrap_or_default();
    assert!(line.contains(&format!("thread={thread}")), "{thread} is not named: {log}");
}

fn wait_until_ready(address: &str) {
    let mut client = Client::connect(address, ClientOptions::default()).expect("connect");
    client.wait_until_ready(EXIT_LIMIT).expect("the radiant becomes ready");
}

/// Sends one put and does not wait for it: the radiant dies of it.
fn send_put(address: &str) {
    let Ok(mut client) = Client::connect(address, ClientOptions::default()) else { return };
    let request = radiant_protocol::ClientRequest::Put {
        key: bytes::Bytes::from_static(b"k"),
        value: bytes::Bytes::from_static(b"v"),
        session: None,
    };
    let _ = client.send(&request);
}

/// Puts keys until one fails (they fail once the radiant is gone; that is the point).
fn put_keys(address: &str, count: usize) {
    let options = ClientOptions { timeout: Duration::from_secs(1), ..ClientOptions::default() };
    let Ok(mut client) = Client::connect(address, options) else { return };
    for key in 0..count {
        if client.put(format!("k{key}").as_bytes(), b"v").is_err() {
            return;
        }
    }
}

#[test]
fn a_panic_in_any_server_thread_ends_the_process_with_exit_status_70() {
    let root = tempfile::tempdir().expect("temp dir");
    let put_one = |address: &str, _: u32| send_put(address);
    check(root.path(), "main", "", put_one);
    check(root.path(), "radiant-state", "", put_one);
    // The log is written at the first tick (the radiant elects itself), before it serves.
    check(root.path(), "radiant-wal", "", put_one);
    // A put is applied only once the radiant is ready (before, it is refused as not ready).
    check(root.path(), "radiant-shard", "", |address, _| {
        wait_until_ready(address);
        send_put(address);
    });
    let snapshot_soon = "snapshot_interval_entries = 100\n";
    check(root.path(), "radiant-snapshot", snapshot_soon, |address, _| put_keys(address, 300));
    check(root.path(), "radiant-signals", "", |address, pid| {
        // Signals are caught once it serves; before that SIGTERM would just end it.
        wait_until_ready(address);
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        assert!(status.expect("kill runs").success(), "SIGTERM sent");
    });
}

/// Snapshots that keep failing stop the radiant (exit 74) with the cause, instead of a log
/// that is never compacted growing without bound.
#[test]
fn snapshots_that_keep_failing_stop_the_radiant_with_exit_74() {
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("radiant");
    let config = write_config(&data_dir, "snapshot_interval_entries = 100\n");
    let switch = [("RADIANT_TEST_FAIL_SNAPSHOTS", "1")];
    let mut daemon = common::Daemon::start_with_environment(&data_dir, &config, &switch);
    daemon.wait_until_ready();
    let mut client = daemon.connect();
    let started = Instant::now();
    let mut put = 0;
    while daemon.is_running() {
        assert!(started.elapsed() < Duration::from_secs(60), "still running:\n{}", daemon.log());
        // Answers stop once it stops; only the exit matters.
        let _ = client.put(format!("key-{put}").as_bytes(), b"v");
        put += 1;
    }
    let code = daemon.exit_code().expect("exited");
    let log = daemon.log();
    assert_eq!(code, i32::from(radiant::server::EXIT_STORAGE_FAILED), "log:\n{log}");
    assert!(log.contains("3 snapshots in a row failed"), "the cause was not logged:\n{log}");
    assert!(log.contains("RADIANT_TEST_FAIL_SNAPSHOTS"), "the last failure's reason:\n{log}");
}
