//! Process pauses on real daemons: a herald stopped (SIGSTOP) for longer than an election
//! timeout, while the rest of its order elects another herald and takes a write, must
//! not answer a lease read from its old lease when it resumes (SIGCONT), even when
//! nothing from the newer term reaches it first (the new herald is paused in turn). Its
//! clock is ticks, and a paused process used to lose the ticks of the pause, so its lease
//! looked as fresh as when it stopped. (On this machine the resumed herald still reads
//! the newer term's heartbeats, buffered in its socket during the pause, before the
//! client's read, so the old daemon passes this test too; the catch-up of ticks in the
//! state thread closes the window whatever the order of arrival.)

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{free_port, order_member_config, status, Daemon};
use radiant::client::{Client, ClientOptions};
use radiant_protocol::{ClientRequest, ClientResponse, Message, ReadConsistency};

/// 10 ms ticks, heartbeat 50 ms, election timeout 300-600 ms (a lease is 225 ms).
const TIMING: &str = "tick_ms = 10\nheartbeat_interval = 5\nelection_timeout = 30\n";
const LIMIT: Duration = Duration::from_secs(30);

fn signal(daemon: &Daemon, signal: libc::c_int) {
    // SAFETY: the pid is our own child, alive (the guard kills and reaps it only on drop).
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(daemon.pid() as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({signal}) failed");
}

/// Resumes a stopped radiant when dropped, so a failing test still lets it be killed.
struct Stopped<'a>(&'a Daemon);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

/// An order of three; its directory, its radiants and the index of its ready herald.
fn start_order() -> (tempfile::TempDir, Vec<Daemon>, usize) {
    let directory = tempfile::tempdir().expect("temp dir");
    let members: Vec<(u64, u16, u16)> = (1..=3).map(|id| (id, free_port(), free_port())).collect();
    let daemons: Vec<Daemon> = members
        .iter()
        .map(|&member| {
            let data_dir = directory.path().join(format!("radiant-{}", member.0));
            let config = order_member_config(&data_dir, member, &members, TIMING);
            Daemon::start_with_config(&data_dir, &config)
        })
        .collect();
    let deadline = Instant::now() + LIMIT;
    let herald = loop {
        let ready_herald = |daemon: &Daemon| {
            status(daemon).is_some_and(|s| s["role"] == "herald" && s["ready"] == true)
        };
        if let Some(index) = daemons.iter().position(ready_herald) {
            break index;
        }
        assert!(Instant::now() < deadline, "no ready herald within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    (directory, daemons, herald)
}

#[test]
fn a_herald_paused_past_its_lease_does_not_answer_a_lease_read_from_it_when_it_resumes() {
    let (_directory, daemons, herald) = start_order();
    let mut at_herald = daemons[herald].connect();
    at_herald.put(b"k", b"old").expect("put old");
    for _ in 0..5 {
        let read = at_herald.get_with(b"k", ReadConsistency::Lease).expect("lease get");
        assert_eq!(read.as_deref(), Some(&b"old"[..]));
    }

    let stopped = Stopped(&daemons[herald]);
    signal(&daemons[herald], libc::SIGSTOP);
    // The others elect a herald and take a write that replaces the value.
    let others: Vec<String> = (0..3)
        .filter(|&index| index != herald)
        .map(|index| daemons[index].client_address.to_string())
        .collect();
    let given: Vec<&str> = others.iter().map(String::as_str).collect();
    let options = ClientOptions { timeout: LIMIT, ..ClientOptions::default() };
    let mut at_others = Client::connect_any(&given, options).expect("connect");
    at_others.put(b"k", b"new").expect("the majority takes the write");
    // The new herald pauses too, so nothing from the newer term reaches the old herald
    // before it judges the read: only its own clock can tell it that its lease is over.
    let new_herald = (0..3)
        .filter(|&index| index != herald)
        .find(|&index| status(&daemons[index]).is_some_and(|s| s["role"] == "herald"))
        .expect("a new herald");
    let _new_herald_stopped = Stopped(&daemons[new_herald]);
    signal(&daemons[new_herald], libc::SIGSTOP);
    // Only now, after the write completed, the read is sent to the paused herald.
    let read =
        ClientRequest::Get { key: Bytes::from_static(b"k"), consistency: ReadConsistency::Lease };
    let correlation_id = at_herald.send(&read).expect("send");
    drop(stopped); // SIGCONT
    let answer = at_herald.receive(correlation_id, Instant::now() + LIMIT).expect("an answer");
    println!("the resumed herald answered {answer:?}");
    assert_ne!(
        answer,
        Message::Response(ClientResponse::GetResult { value: Some(Bytes::from_static(b"old")) }),
        "a lease read sent after the write completed returned the value it replaced"
    );
}

/// A herald stopped (SIGSTOP) longer than an election timeout under a checked load, then
/// resumed (SIGCONT): the order elects another meanwhile, and the whole history, with the
/// reads and writes that waited on the stopped herald, passes `radiant check-history`.
#[test]
fn a_herald_paused_under_a_checked_load_leaves_a_linearizable_history() {
    let (directory, daemons, herald) = start_order();
    let entry = daemons[(herald + 1) % 3].client_address.to_string();
    let history = directory.path().join("history.jsonl");
    let load = common::load::Load::start_with_reads(
        &entry,
        &history,
        directory.path().join("b.json"),
        10,
        "mixed",
    );
    std::thread::sleep(Duration::from_secs(2));
    {
        let _resumed_on_drop = Stopped(&daemons[herald]);
        signal(&daemons[herald], libc::SIGSTOP);
        // Three election timeouts at most, and more than one.
        std::thread::sleep(Duration::from_millis(1_500));
    }
    load.finish_checked();
}
