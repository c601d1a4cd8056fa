//! Telling systemd how the radiant is (the notify protocol of `Type=notify` units):
//! `READY=1` once recovery is done and every listener is bound, `WATCHDOG=1` from the
//! state thread's own loop, a one-line `STATUS=` when it changes, `STOPPING=1` on the
//! way out. Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.
//!
//! Why the watchdog is fed by the state thread: it is the thread every request passes
//! through, and it loops at least once a tick (the reactor's tick events wake it). A
//! state thread stuck in a call, a deadlock or an endless loop stops the pings, and
//! systemd kills and restarts the radiant (`WatchdogSec=` in the unit). A hung reactor
//! stops the tick events and so the pings as well.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::warn;

/// How often `STATUS=` is refreshed when no watchdog asks for more.
const STATUS_REFRESH: Duration = Duration::from_secs(1);

/// Whether this process was started by a service manager that listens.
fn listening() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `states`. A failure is logged (each time), never fatal: systemd may be
/// restarting, and the radiant serves all the same.
fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        warn!(%error, "service manager: cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// Recovery is done and every listener is bound: systemd may start what depends on us.
pub fn ready(status: &str) {
    if listening() {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }
}

/// The radiant is shutting down (`reason` goes into `STATUS=`).
pub fn stopping(reason: &str) {
    if listening() {
        send(&[NotifyState::Stopping, NotifyState::Status(reason)]);
    }
}

/// The state thread's side: pings the watchdog and refreshes the status line, each at
/// most as often as needed (a datagram per loop would cost a syscall per request batch).
pub struct Watchdog {
    /// Half the watchdog interval systemd gave (`WATCHDOG_USEC`), as sd_watchdog_enabled(3)
    /// advises; `None` without a watchdog.
    ping_every: Option<Duration>,
    /// Whether anyone listens at all.
    listening: bool,
    last_sent: Instant,
    last_status: String,
}

impl Watchdog {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` once.
    pub fn from_environment() -> Watchdog {
        Watchdog {
            ping_every: sd_notify::watchdog_enabled().map(|interval| interval / 2),
            listening: listening(),
            last_sent: Instant::now(),
            last_status: String::new(),
        }
    }

    /// Called once per state-thread loop: when due, pings the watchdog and sends the
    /// status line `status()` makes if it changed.
    pub fn on_loop(&mut self, status: impl FnOnce() -> String) {
        if !self.listening {
            return;
        }
        let due = self.ping_every.unwrap_or(STATUS_REFRESH).min(STATUS_REFRESH);
        if self.last_sent.elapsed() < due {
            return;
        }
        self.last_sent = Instant::now();
        let status = status();
        let changed = status != self.last_status;
        let mut states = Vec::with_capacity(2);
        if self.ping_every.is_some() {
            states.push(NotifyState::Watchdog);
        }
        if changed {
            states.push(NotifyState::Status(&status));
        }
        if !states.is_empty() {
            send(&states);
        }
        if changed {
            self.last_status = status;
        }
    }
}
