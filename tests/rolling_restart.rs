//! A rolling restart under checked load, as an operator upgrading a six-radiant system
//! would do it: one radiant at a time, a herald first hands its role over (`radiant admin
//! transfer-herald`), then it is stopped with SIGTERM (a clean drain) and started again,
//! and the next one waits until the system is whole. The load must see no failed
//! operation, its history must be linearizable, and the whole roll must take less than a
//! minute. Bounded; every process is killed by PID on drop.

mod common;

use std::time::{Duration, Instant};

use common::load::Load;
use common::system::{start_ring, two_orders_of_three_settled, wait_for};
use common::Daemon;

/// Seconds of checked load; the roll happens inside it.
const LOAD_SECONDS: u64 = 20;
/// The longest the roll may take.
const ROLL_LIMIT: Duration = Duration::from_secs(60);
/// Longest a herald may take to hand its role over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(20);

/// If `daemon` leads its order, hands the role to another member and waits until it has;
/// whether it did.
fn hand_over_if_herald(daemon: &Daemon) -> bool {
    let status = common::status(daemon).expect("status");
    if status["herald"] != status["member"] {
        return false;
    }
    let address = daemon.client_address.to_string();
    let deadline = Instant::now() + HANDOVER_TIMEOUT;
    loop {
        // A transfer can be refused while the order is busy (a member catching up);
        // asked again, it goes through.
        let (code, _, stderr) = common::radiant(&["admin", "transfer-herald", "--addr", &address]);
        let status = common::status(daemon).expect("status");
        if code == 0 && status["herald"] != status["member"] && !status["herald"].is_null() {
            return true;
        }
        assert!(Instant::now() < deadline, "the herald kept its role: {stderr}; {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_radiant_restarts_in_turn_under_checked_load_in_less_than_a_minute() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut daemons = start_ring(root.path(), 6);
    wait_for(&daemons, "six radiants form two orders of three", two_orders_of_three_settled);
    // The load reads the system's shard map at the radiant restarted last, then sends to
    // each order's herald, following it (and the client library's fallbacks) as it moves.
    let entry = daemons[5].as_ref().expect("running").client_address.to_string();
    let history = root.path().join("history.jsonl");
    let load = Load::start(&entry, &history, root.path().join("bench.json"), LOAD_SECONDS);
    std::thread::sleep(Duration::from_secs(1));

    let began = Instant::now();
    let mut handovers = 0;
    for index in 0..daemons.len() {
        let daemon = daemons[index].as_mut().expect("running");
        handovers += usize::from(hand_over_if_herald(daemon));
        let order_id = common::status(daemon).expect("status")["order"].clone();
        let exit = daemon.terminate();
        assert!(exit.success(), "radiant {index} stopped with {exit}; log:\n{}", daemon.log());
        let (data_dir, config) = (daemon.data_dir.clone(), daemon.config_path.clone());
        daemons[index] = Some(Daemon::start_with_config(&data_dir, &config));
        // Whole again, and the restarted radiant has applied what its order had committed
        // when it came back.
        let statuses = wait_for(
            &daemons,
            &format!("the system is whole after r{index}"),
            two_orders_of_three_settled,
        );
        let committed = statuses
            .iter()
            .filter(|(_, status)| status["order"] == order_id)
            .filter_map(|(_, status)| status["commit_index"].as_u64())
            .max()
            .unwrap_or(0);
        wait_for(&daemons, &format!("r{index} catches up to {committed}"), |statuses| {
            statuses.iter().any(|(at, status)| {
                *at == index && status["applied_index"].as_u64().unwrap_or(0) >= committed
            })
        });
        println!("r{index} restarted; {:?} into the roll", began.elapsed());
    }
    let roll = began.elapsed();
    println!("the roll took {roll:?}, handing the herald over {handovers} times");
    assert!(handovers >= 2, "each order's herald hands over at least once: {handovers}");
    assert!(roll < ROLL_LIMIT, "the roll took {roll:?}");
    assert!(
        roll < Duration::from_secs(LOAD_SECONDS - 1),
        "the roll outlasted the load ({roll:?}); part of it was not under load"
    );

    let report = load.finish_checked();
    println!("{report}");
    assert_eq!(report["failed"], 0, "the load saw failed operations: {report}");
    assert!(report["completed"].as_u64().unwrap_or(0) > 100, "{report}");
}
