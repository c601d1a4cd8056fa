//! systemd's notify protocol on a real daemon, with the test standing in for systemd: a
//! Unix datagram socket named by `NOTIFY_SOCKET` and a 200 ms `WATCHDOG_USEC`. The radiant
//! says `READY=1` once it serves, a `STATUS=` line that turns to "ready" once it elected
//! itself, pings `WATCHDOG=1` from its state thread while that thread loops, stops pinging
//! when the state thread hangs (so systemd would restart it), and says `STOPPING=1` on
//! SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{write_config, Daemon};
use radiant_protocol::ClientRequest;

/// The watchdog interval the test gives, in microseconds (the radiant pings at half).
const WATCHDOG_USEC: &str = "200000";
/// Longest the test waits for any one notification.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The stand-in for systemd's notify socket.
struct NotifySocket {
    socket: UnixDatagram,
    path: String,
}

impl NotifySocket {
    fn bind(root: &Path) -> NotifySocket {
        let path = root.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
        NotifySocket { socket, path: path.display().to_string() }
    }

    /// Every notification line that arrives within `window`.
    fn lines_within(&self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut lines = Vec::new();
        let mut datagram = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(length) = self.socket.recv(&mut datagram) {
                let text = String::from_utf8_lossy(&datagram[..length]).into_owned();
                lines.extend(text.lines().map(str::to_string));
            }
        }
        lines
    }

    /// Waits (bounded) for a line `wanted` accepts from `daemon`; returns every line up to it.
    fn wait_for(&self, daemon: &Daemon, what: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let lines = self.lines_within(Duration::from_millis(100));
            let found = lines.iter().any(|line| wanted(line));
            seen.extend(lines);
            if found {
                return seen;
            }
        }
        panic!("no {what} within {NOTIFY_TIMEOUT:?}; saw {seen:?}; log:\n{}", daemon.log());
    }
}

fn start(root: &Path, name: &str, notify: &NotifySocket, hang: bool) -> Daemon {
    let data_dir = root.join(name);
    let config = write_config(&data_dir, "");
    let mut environment = vec![("NOTIFY_SOCKET", notify.path.as_str())];
    environment.push(("WATCHDOG_USEC", WATCHDOG_USEC));
    if hang {
        environment.push(("RADIANT_TEST_HANG_THREAD", "radiant-state"));
    }
    Daemon::start_with_environment(&data_dir, &config, &environment)
}

#[test]
fn the_radiant_says_ready_pings_the_watchdog_and_stops_pinging_when_its_state_thread_hangs() {
    let root = tempfile::tempdir().expect("temp dir");
    let notify = NotifySocket::bind(root.path());
    let daemon = start(root.path(), "hangs", &notify, true);
    let ready_status = |line: &str| line.starts_with("STATUS=ready: member 1");
    let seen = notify.wait_for(&daemon, "a ready STATUS", ready_status);
    assert!(seen.iter().any(|line| line == "READY=1"), "no READY=1 before {seen:?}");
    let pings = notify.lines_within(Duration::from_secs(2));
    let count = pings.iter().filter(|line| *line == "WATCHDOG=1").count();
    // Every 100 ms: 20 in two seconds on an idle machine; a busy one may delay a few.
    assert!(count >= 5, "{count} watchdog pings in 2 s; saw {pings:?}; log:\n{}", daemon.log());

    // The first keyed request hangs the state thread (the test switch).
    let mut client = daemon.connect();
    let put = ClientRequest::Put {
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"v"),
        session: None,
    };
    client.send(&put).expect("send a put");
    // A ping may have left in the loop before the one that hung.
    notify.lines_within(Duration::from_millis(500));
    let after = notify.lines_within(Duration::from_secs(2));
    assert!(
        !after.iter().any(|line| line == "WATCHDOG=1"),
        "the watchdog was pinged although the state thread hangs: {after:?}; log:\n{}",
        daemon.log()
    );
    assert!(daemon.log().contains("hanging for good"), "the switch did not act:\n{}", daemon.log());
}

#[test]
fn sigterm_says_stopping_to_systemd() {
    let root = tempfile::tempdir().expect("temp dir");
    let notify = NotifySocket::bind(root.path());
    let mut daemon = start(root.path(), "stops", &notify, false);
    notify.wait_for(&daemon, "READY=1", |line| line == "READY=1");
    let status = daemon.terminate();
    assert!(status.success(), "SIGTERM exit {status}; log:\n{}", daemon.log());
    notify.wait_for(&daemon, "STOPPING=1", |line| line == "STOPPING=1");
}
