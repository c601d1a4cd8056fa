//! Majority-loss recovery on real processes: in a six-radiant system (two orders of
//! three), two radiants of one order are killed -9 for good. `radiant admin
//! recover-order` is refused while the order is whole, then makes the survivor the
//! order's sole member: the order serves every write the survivor held and takes new
//! ones, the lost radiants leave the configuration, the survivor keeps its one-member
//! order across a restart, and the other order never noticed (same herald, same term,
//! every write to it answered). Bounded; every process is killed by PID on drop.

mod common;

use std::time::{Duration, Instant};

use common::system::{start_ring, two_orders_of_three_settled, wait_for};
use common::Daemon;
use radiant_protocol::slots::key_shard;
use serde_json::Value;

const KEYS: usize = 400;
/// Longest the survivor may take to accept the recovery once its peers are dead.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// `(index, status)` of the radiants of `order_id`.
fn members_of(statuses: &[(usize, Value)], order_id: u64) -> Vec<(usize, Value)> {
    statuses.iter().filter(|(_, status)| status["order"] == order_id).cloned().collect()
}

/// The keys (of `0..KEYS`) whose shard `order_id` owns, per a status's shard map.
fn keys_of(status: &Value, order_id: u64) -> Vec<String> {
    let owners = status["system"]["shard_owners"].as_array().expect("shard map").clone();
    (0..KEYS)
        .map(|i| format!("key{i}"))
        .filter(|key| owners[key_shard(key.as_bytes(), 64).0 as usize] == order_id)
        .collect()
}

/// The other order is untouched: the same herald in the same term, and it takes writes.
fn assert_unnoticed(
    daemons: &[Option<Daemon>],
    other: u64,
    before: &(Value, Value),
    keys: &[String],
) {
    let statuses = wait_for(daemons, "the other order is whole", |statuses| {
        members_of(statuses, other).iter().all(|(_, status)| status["ready"] == true)
    });
    for (_, status) in members_of(&statuses, other) {
        assert_eq!((&status["herald"], &status["term"]), (&before.0, &before.1), "{status}");
    }
    let mut client = daemons.iter().flatten().next().expect("a radiant").connect();
    for key in keys.iter().take(20) {
        client.put(key.as_bytes(), b"still-served").expect("the other order takes writes");
    }
}

/// The reset is in the survivor's log: restarted, it is still its order's only member
/// and serves what it held.
fn restart_keeps_the_reset(
    daemons: &mut [Option<Daemon>],
    survivor_index: usize,
    own_keys: &[String],
) {
    let restarted = daemons[survivor_index].as_mut().expect("running");
    assert!(restarted.terminate().success(), "log:\n{}", restarted.log());
    let (data_dir, config) = (restarted.data_dir.clone(), restarted.config_path.clone());
    daemons[survivor_index] = Some(Daemon::start_with_config(&data_dir, &config));
    let survivor_daemon = daemons[survivor_index].as_ref().expect("running");
    survivor_daemon.wait_until_ready();
    let mut client = survivor_daemon.connect();
    for key in own_keys.iter().take(20) {
        assert_eq!(
            client.get(key.as_bytes()).expect("get").as_deref(),
            Some(&b"after-recovery"[..])
        );
    }
    client.put(own_keys[0].as_bytes(), b"after-restart").expect("writes after the restart");
}

/// Runs `recover` until it succeeds, as an operator would: a run that reset the order but
/// could not yet remove a lost member (no controller heard yet) is completed by the next,
/// which finds the reset done. Checks that, over all runs, both lost members were removed.
fn recover_until_done(recover: &[&str]) {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let mut printed = String::new();
    loop {
        let (code, stdout, stderr) = common::radiant(recover);
        printed.push_str(&stdout);
        if code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "recover-order kept refusing: {stderr}\n{printed}");
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("{printed}");
    assert!(printed.contains("only member"), "{printed}");
    let removed: std::collections::BTreeSet<&str> =
        printed.lines().filter(|line| line.starts_with("removed lost member")).collect();
    assert_eq!(removed.len(), 2, "{printed}");
}

#[test]
fn a_survivor_of_a_lost_majority_becomes_its_order_and_the_rest_never_notices() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut daemons = start_ring(root.path(), 6);
    let statuses =
        wait_for(&daemons, "six radiants form two orders of three", two_orders_of_three_settled);
    let mut client = daemons[0].as_ref().expect("running").connect();
    for i in 0..KEYS {
        client.put(format!("key{i}").as_bytes(), format!("value-{i}").as_bytes()).expect("put");
    }
    let order_id = statuses[0].1["order"].as_u64().expect("order");
    let members = members_of(&statuses, order_id);
    let (survivor_index, survivor_status) = members[0].clone();
    let survivor = survivor_status["member"].as_u64().expect("member");
    let other_status =
        statuses.iter().find(|(_, s)| s["order"] != order_id).expect("other").1.clone();
    let other = other_status["order"].as_u64().expect("other order_id");
    let other_before = (other_status["herald"].clone(), other_status["term"].clone());
    let survivor_address = daemons[survivor_index].as_ref().expect("running").client_address;
    let (order, from, addr) =
        (order_id.to_string(), survivor.to_string(), survivor_address.to_string());
    let recover = ["admin", "recover-order", "--order", &order, "--from", &from, "--addr", &addr];

    // Whole, the order refuses: it has a herald and its majority is heard.
    let (code, _, stderr) = common::radiant(&recover);
    assert_eq!(code, 1, "a whole order must refuse a reset: {stderr}");
    assert!(stderr.contains("herald") || stderr.contains("majority"), "{stderr}");

    // The survivor holds every write before the others die.
    let committed =
        members.iter().filter_map(|(_, s)| s["commit_index"].as_u64()).max().unwrap_or(0);
    wait_for(&daemons, "the survivor has applied every write", |statuses| {
        statuses.iter().any(|(index, status)| {
            *index == survivor_index && status["applied_index"].as_u64().unwrap_or(0) >= committed
        })
    });
    for (index, _) in members.iter().skip(1) {
        let mut lost = daemons[*index].take().expect("running");
        lost.kill9();
    }

    recover_until_done(&recover);

    // The survivor's order drops the lost members (a learner it re-added from the old
    // configuration before the controller removed them included).
    let statuses = wait_for(&daemons, "the survivor's order is the survivor alone", |statuses| {
        statuses.iter().any(|(index, status)| {
            let listed = status["system"]["orders"].as_array().into_iter().flatten();
            let order_entry = listed.into_iter().find(|o| o["order"] == order_id);
            *index == survivor_index
                && status["herald"] == survivor
                && status["order_state"] == "ACTIVE"
                && status["members"].as_array().map(Vec::len) == Some(1)
                && order_entry.is_some_and(|o| o["members"] == serde_json::json!([survivor]))
        })
    });
    let status =
        statuses.iter().find(|(index, _)| *index == survivor_index).expect("survivor").1.clone();
    let survivor_daemon = daemons[survivor_index].as_ref().expect("running");
    let mut client = survivor_daemon.connect();
    for i in 0..KEYS {
        let value = client.get(format!("key{i}").as_bytes()).expect("get");
        assert_eq!(value.as_deref(), Some(format!("value-{i}").as_bytes()), "key{i}");
    }
    let own_keys = keys_of(&status, order_id);
    for key in own_keys.iter().take(20) {
        client.put(key.as_bytes(), b"after-recovery").expect("the recovered order takes writes");
    }
    assert_unnoticed(&daemons, other, &other_before, &keys_of(&status, other));

    restart_keeps_the_reset(&mut daemons, survivor_index, &own_keys);
}
