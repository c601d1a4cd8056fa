//! Three radiants on 127.0.0.1 as one order (static members): under client load the
//! herald is `kill -9`ed; a new herald must serve within about two election timeouts,
//! no acknowledged write may be lost, and the old herald, restarted after the log was
//! compacted past it, must catch up through a snapshot.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, order_member_config, status, Daemon};
use radiant::client::{Client, ClientOptions};
use radiant_protocol::ReadConsistency;

/// 10 ms ticks, heartbeat 50 ms, election timeout 300-600 ms; snapshots often.
const TIMING: &str = "tick_ms = 10\nheartbeat_interval = 5\nelection_timeout = 30\n\
                      snapshot_interval_entries = 200\n";
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

struct Order {
    daemons: Vec<Option<Daemon>>,
    configs: Vec<std::path::PathBuf>,
    data_dirs: Vec<std::path::PathBuf>,
    _directory: tempfile::TempDir,
}

impl Order {
    fn start() -> Order {
        let directory = tempfile::tempdir().expect("temp dir");
        let members: Vec<(u64, u16, u16)> =
            (1..=3).map(|id| (id, free_port(), free_port())).collect();
        let data_dirs: Vec<_> =
            (1..=3).map(|id| directory.path().join(format!("radiant-{id}"))).collect();
        let configs: Vec<_> = (1..=3u64)
            .map(|id| {
                order_member_config(
                    &data_dirs[id as usize - 1],
                    members[id as usize - 1],
                    &members,
                    TIMING,
                )
            })
            .collect();
        let daemons = (0..3)
            .map(|index| Some(Daemon::start_with_config(&data_dirs[index], &configs[index])))
            .collect();
        Order { daemons, configs, data_dirs, _directory: directory }
    }

    /// The index of the radiant that reports itself herald and ready, waiting up to
    /// `limit`.
    fn herald(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            for (index, daemon) in self.daemons.iter().enumerate() {
                let Some(daemon) = daemon else { continue };
                let ready_herald = |status: &serde_json::Value| {
                    status["role"] == "herald" && status["ready"] == true
                };
                if status(daemon).is_some_and(|status| ready_herald(&status)) {
                    return index;
                }
            }
            assert!(Instant::now() < deadline, "no herald within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self, index: usize) -> Client {
        let daemon = self.daemons[index].as_ref().expect("running");
        let options = ClientOptions { timeout: Duration::from_secs(5), ..ClientOptions::default() };
        Client::connect(&daemon.client_address.to_string(), options).expect("connect")
    }
}

#[test]
fn killing_the_herald_elects_a_new_one_and_loses_no_acknowledged_write() {
    let mut order = Order::start();
    let herald = order.herald(CLUSTER_TIMEOUT);
    let acknowledged = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let survivors: Vec<usize> = (0..3).filter(|&index| index != herald).collect();
    let addresses: Vec<String> = (0..3)
        .map(|index| order.daemons[index].as_ref().expect("up").client_address.to_string())
        .collect();
    let writer = {
        let (acknowledged, stop, addresses) =
            (Arc::clone(&acknowledged), Arc::clone(&stop), addresses.clone());
        std::thread::spawn(move || write_until_stopped(&addresses, herald, &acknowledged, &stop))
    };
    std::thread::sleep(Duration::from_millis(500));

    let before_kill = acknowledged.lock().expect("not poisoned").len();
    order.daemons[herald].as_mut().expect("up").kill9();
    let killed_at = Instant::now();
    let failover = first_successful_put(&order, &survivors, killed_at);
    eprintln!(
        "failover_ms={} (writes acknowledged before the kill: {before_kill})",
        failover.as_millis()
    );
    assert!(
        failover < Duration::from_secs(5),
        "no write succeeded within 5 s of the kill: {failover:?}"
    );

    // Keep writing on the new herald until its log is compacted past the old herald.
    std::thread::sleep(Duration::from_millis(1_500));
    stop.store(true, Ordering::Release);
    writer.join().expect("writer");
    let new_herald = order.herald(CLUSTER_TIMEOUT);
    fill_past_the_catch_up_margin(&order, new_herald);
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("not poisoned"));
    assert!(acknowledged.len() > before_kill, "no writes after the failover");
    let mut client = order.client(new_herald);
    for (key, value) in &acknowledged {
        let stored = client.get(key.as_bytes()).expect("linearizable get");
        assert_eq!(
            stored.as_deref(),
            Some(value.as_bytes()),
            "acknowledged {key} lost after failover"
        );
    }

    // The old herald comes back and catches up (its next entry was compacted away).
    let restarted = Daemon::start_with_config(&order.data_dirs[herald], &order.configs[herald]);
    let herald_status = status(order.daemons[new_herald].as_ref().expect("up")).expect("status");
    let target = herald_status["commit_index"].as_u64().expect("commit index");
    wait_until_caught_up(&restarted, target);
    let restarted_status = status(&restarted).expect("status");
    assert!(
        restarted_status["snapshot_index"].as_u64().unwrap_or(0) > 0,
        "caught up without a snapshot: {restarted_status}"
    );
    let mut stale_client =
        Client::connect(&restarted.client_address.to_string(), ClientOptions::default())
            .expect("connect");
    for (key, value) in acknowledged.iter().take(200) {
        let stored =
            stale_client.get_with(key.as_bytes(), ReadConsistency::Stale).expect("stale get");
        assert_eq!(stored.as_deref(), Some(value.as_bytes()), "restarted member lacks {key}");
    }
    order.daemons[herald] = Some(restarted);
}

fn write_until_stopped(
    addresses: &[String],
    first: usize,
    acknowledged: &Mutex<BTreeMap<String, String>>,
    stop: &AtomicBool,
) {
    let options = ClientOptions { timeout: Duration::from_secs(2), ..ClientOptions::default() };
    let mut target = first;
    let mut client = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    for sequence in 0u64.. {
        if stop.load(Ordering::Acquire) || Instant::now() > deadline {
            return;
        }
        if client.is_none() {
            client = Client::connect(&addresses[target], options.clone()).ok();
        }
        let Some(connection) = client.as_mut() else {
            target = (target + 1) % addresses.len();
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let (key, value) = (format!("key-{sequence}"), format!("value-{sequence}"));
        match connection.put(key.as_bytes(), value.as_bytes()) {
            Ok(()) => {
                acknowledged.lock().expect("not poisoned").insert(key, value);
            }
            Err(_) => {
                client = None;
                target = (target + 1) % addresses.len();
            }
        }
    }
}

fn first_successful_put(order: &Order, survivors: &[usize], killed_at: Instant) -> Duration {
    let options = ClientOptions { timeout: Duration::from_millis(500), ..ClientOptions::default() };
    for attempt in 0u64.. {
        assert!(killed_at.elapsed() < CLUSTER_TIMEOUT, "no herald after {CLUSTER_TIMEOUT:?}");
        let index = survivors[(attempt as usize) % survivors.len()];
        let address = order.daemons[index].as_ref().expect("survivor").client_address.to_string();
        if let Ok(mut client) = Client::connect(&address, options.clone()) {
            if client.put(format!("probe-{attempt}").as_bytes(), b"p").is_ok() {
                return killed_at.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    unreachable!("the loop returns or panics")
}

fn fill_past_the_catch_up_margin(order: &Order, herald: usize) {
    let mut client = order.client(herald);
    for index in 0..1_400u64 {
        client.put(format!("fill-{index}").as_bytes(), b"f").expect("fill write");
    }
}

fn wait_until_caught_up(daemon: &Daemon, target: u64) {
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    loop {
        let applied =
            status(daemon).and_then(|status| status["applied_index"].as_u64()).unwrap_or(0);
        if applied >= target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "restarted member applied {applied} < {target}; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_herald_stopped_under_load_commits_and_answers_what_it_owes_before_it_exits() {
    let mut order = Order::start();
    let herald = order.herald(CLUSTER_TIMEOUT);
    let addresses: Vec<String> = (0..3)
        .map(|index| order.daemons[index].as_ref().expect("up").client_address.to_string())
        .collect();
    let acknowledged = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (acknowledged, stop, addresses) =
                (Arc::clone(&acknowledged), Arc::clone(&stop), addresses.clone());
            std::thread::spawn(move || {
                write_until_stopped(&addresses, herald, &acknowledged, &stop);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    let exit = order.daemons[herald].as_mut().expect("up").terminate();
    let took = stopping.elapsed();
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.join().expect("writer");
    }
    let log = order.daemons[herald].as_ref().expect("stopped").log();
    let outstanding = log
        .lines()
        .find(|line| line.contains("reactor: shutting down"))
        .unwrap_or_default()
        .to_string();
    println!("herald stopped in {took:?}: {outstanding}");
    assert!(exit.success(), "exit {exit}; log:\n{log}");
    // Before, the drain paused the peer links too: writes in flight never got the
    // acknowledgements that commit them; the herald, hearing no majority, stepped down
    // after an election timeout and sent them away unanswered (or the drain timed out).
    let drain = log.split("reactor: shutting down").nth(1).unwrap_or_default();
    assert!(
        !drain.contains("cannot hear a majority") && !drain.contains("drain timed out"),
        "the owed replies were not committed and delivered: {outstanding}\n{log}"
    );
    assert!(log.contains("shut down cleanly"), "{log}");
}

#[test]
fn a_client_rides_through_the_death_of_the_radiant_it_talks_to() {
    let mut order = Order::start();
    let herald = order.herald(CLUSTER_TIMEOUT);
    // The herald first, the others to fall back on (as `--addr A,B,C` gives them).
    let mut addresses: Vec<String> =
        vec![order.daemons[herald].as_ref().expect("up").client_address.to_string()];
    for (index, daemon) in order.daemons.iter().enumerate() {
        if index != herald {
            addresses.push(daemon.as_ref().expect("up").client_address.to_string());
        }
    }
    let options = ClientOptions { timeout: Duration::from_secs(20), ..ClientOptions::default() };
    let given: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let mut client = Client::connect_any(&given, options).expect("connect");
    client.put(b"before", b"1").expect("put before");
    order.daemons[herald].as_mut().expect("up").kill9();
    // Before, the client kept its dead connection and failed; now it reconnects to another
    // member, follows it to the new herald and resends with the same session.
    client.put(b"after", b"2").expect("put after the radiant it talked to died");
    assert_eq!(client.get(b"before").expect("get").as_deref(), Some(&b"1"[..]));
    assert_eq!(client.get(b"after").expect("get").as_deref(), Some(&b"2"[..]));
    assert_ne!(client.address().to_string(), addresses[0], "still on the dead radiant");
}
