//! Test-only fault switches: environment variables that make a running radiant misbehave
//! in one named way, so real-process tests can watch what the rest of the system does.
//! Unset in service; a radiant started with one set says so in its log at `warn`.
//!
//! This module owns the switches' names and how they are read. It must not decide what a
//! fault does; each thread that honours a switch does that.

use tracing::warn;

/// Drops the answers to the first N deletes after they were applied (see
/// `ReactorOptions::drop_delete_answers`).
pub const DROP_DELETE_ANSWERS: &str = "RADIANT_TEST_DROP_DELETE_ANSWERS";

/// Names a server thread (`radiant-state`, `radiant-wal`, `radiant-shard` for every
/// shard worker, `radiant-snapshot`, `radiant-signals`, or `main` for the reactor) that
/// panics at its first piece of work: the first keyed request for the reactor and the
/// state thread, the first log write, the first applied write, the first snapshot job,
/// the first signal.
pub const PANIC_THREAD: &str = "RADIANT_TEST_PANIC_THREAD";

/// Milliseconds the WAL writer sleeps before each fsync (a slow disk), for the overload
/// test: the state thread's queue to the WAL fills.
pub const SLOW_WAL_MS: &str = "RADIANT_TEST_SLOW_WAL_MS";

/// Microseconds a shard worker sleeps before each apply (a slow state machine), for the
/// overload test: the state thread's queues to the workers fill.
pub const SLOW_WORKER_US: &str = "RADIANT_TEST_SLOW_WORKER_US";

/// Shrinks the state thread's queue to the WAL writer to this many requests, for the
/// overload test: with a slow WAL it is full at once, as it would be under a long stall.
pub const WAL_QUEUE_CAPACITY: &str = "RADIANT_TEST_WAL_QUEUE_CAPACITY";

/// Set to 1: every snapshot write fails (as on a disk that refuses them), for the test
/// that a radiant stops after `MAX_SNAPSHOT_FAILURES` in a row.
pub const FAIL_SNAPSHOTS: &str = "RADIANT_TEST_FAIL_SNAPSHOTS";

/// Names a server thread, as `PANIC_THREAD` does, that hangs for good at its first piece
/// of work (a deadlock or a call that never returns), for the test that systemd's
/// watchdog stops hearing from a radiant whose state thread is stuck.
pub const HANG_THREAD: &str = "RADIANT_TEST_HANG_THREAD";

/// The count a switch gives: 0 when unset or not a number.
pub fn count(name: &str) -> u64 {
    let count = std::env::var(name).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(0);
    if count > 0 {
        warn!(switch = name, count, "radiant: a test-only fault switch is set; never in service");
    }
    count
}

/// Whether `PANIC_THREAD` names the thread called `thread` (or its kind: `radiant-shard`
/// names `radiant-shard-0`, `radiant-shard-1`, …).
pub fn panics(thread: &str) -> bool {
    names_thread(PANIC_THREAD, thread)
}

/// Whether `HANG_THREAD` names the thread called `thread` (as `panics` reads names).
pub fn hangs(thread: &str) -> bool {
    names_thread(HANG_THREAD, thread)
}

fn names_thread(switch: &str, thread: &str) -> bool {
    let Ok(chosen) = std::env::var(switch) else { return false };
    let named = thread == chosen
        || thread.strip_prefix(chosen.as_str()).is_some_and(|rest| rest.starts_with('-'));
    if named {
        warn!(switch, thread, "radiant: a test-only fault switch is set");
    }
    named
}

/// Hangs the calling thread for good when `armed`: what `HANG_THREAD` asks for.
pub fn hang_if(armed: bool, what: &str) {
    if armed {
        let thread = std::thread::current();
        warn!(switch = HANG_THREAD, thread = thread.name(), what, "radiant: hanging for good");
        loop {
            std::thread::park();
        }
    }
}

/// Panics in the calling thread when `armed`, once: what `PANIC_THREAD` asks for.
pub fn panic_if(armed: &mut bool, what: &str) {
    if std::mem::take(armed) {
        let thread = std::thread::current();
        panic!("test switch {PANIC_THREAD}: {} panics at {what}", thread.name().unwrap_or("?"));
    }
}
