//! Status that tells the truth, on a six-radiant system of two orders: after `kill -9` of
//! a follower and then of a herald, `radiant status` asked at a radiant that is not the
//! controller shows the killed radiant `DOWN` within the named timeout, its order
//! `ERROR(RECOVERABLE(MEMBERSHIP))`, and a summary that says what is wrong and what to
//! do; restarted, the radiant is heard again and the summary says `HEALTHY`.

mod common;

use std::time::{Duration, Instant};

use common::system::{agreed_shape, one_controller, shards_settled, start_ring, wait_for};
use common::Daemon;
use serde_json::Value;

/// Longest the status may take to show a change, beyond `down_after_ms`: a re-election,
/// the controller's next report, a busy machine.
const SETTLE: Duration = Duration::from_secs(30);

/// `radiant status` (and `--json`) asked at `daemon`.
fn status_via_cli(daemon: &Daemon) -> (String, Value) {
    let address = daemon.client_address.to_string();
    let (code, text, stderr) = common::radiant(&["status", "--addr", &address]);
    assert_eq!(code, 0, "radiant status: {stderr}");
    let (code, json, stderr) = common::radiant(&["status", "--json", "--addr", &address]);
    assert_eq!(code, 0, "radiant status --json: {stderr}");
    (text, serde_json::from_str(&json).expect("status --json is JSON"))
}

/// Asks `daemon` until `done` holds for what `radiant status` shows (bounded by `SETTLE`
/// past `down_after_ms`); returns the text.
fn wait_for_status(daemon: &Daemon, what: &str, done: impl Fn(&str, &Value) -> bool) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (text, json) = status_via_cli(daemon);
        if done(&text, &json) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}: not within {SETTLE:?}; status:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The radiant's entry in the system's radiant table.
fn radiant_entry(json: &Value, member: u64) -> Value {
    let radiants = json["system"]["radiants"].as_array().cloned().unwrap_or_default();
    radiants.into_iter().find(|radiant| radiant["id"] == member).unwrap_or_default()
}

fn order_state(json: &Value, order_id: &Value) -> Value {
    let orders = json["system"]["orders"].as_array().cloned().unwrap_or_default();
    let order = orders.into_iter().find(|order| order["order"] == *order_id).unwrap_or_default();
    order["state"].clone()
}

/// Kills `victim`, checks that the status at `observer` shows it `DOWN` with a summary
/// naming it, restarts it and checks the summary turns `HEALTHY`.
fn kill_see_down_restart_see_healthy(
    daemons: &mut [Option<Daemon>],
    victim: usize,
    observer: usize,
) {
    let before = common::status(daemons[victim].as_ref().expect("running")).expect("status");
    let member = before["member"].as_u64().expect("a member id");
    let order_id = before["order"].clone();
    let mut killed = daemons[victim].take().expect("running");
    killed.kill9();
    let killed_at = Instant::now();
    let observer = daemons[observer].as_ref().expect("running");
    let text = wait_for_status(observer, "the killed radiant shows DOWN", |text, json| {
        let entry = radiant_entry(json, member);
        entry["down"] == true
            && order_state(json, &order_id) == "ERROR(RECOVERABLE(MEMBERSHIP))"
            && text.starts_with("DEGRADED: ")
            && text.contains(&format!("radiant {member} (order {order_id}) is DOWN"))
    });
    println!("radiant {member} DOWN after {:?}:\n{text}", killed_at.elapsed());
    assert!(text.contains("restart it, or replace it"), "the summary says nothing to do:\n{text}");

    daemons[victim] = Some(Daemon::start_with_config(&killed.data_dir, &killed.config_path));
    let observer = daemons.iter().flatten().next().expect("a radiant");
    let text = wait_for_status(observer, "the restarted radiant is heard again", |text, json| {
        text.starts_with("HEALTHY: ") && radiant_entry(json, member)["down"] == false
    });
    println!("after the restart:\n{text}");
}

/// The index of the daemon whose status says `member`.
fn index_of(statuses: &[(usize, Value)], member: &Value) -> usize {
    let found = statuses.iter().find(|(_, status)| status["member"] == *member);
    found.map(|(index, _)| *index).expect("a radiant with that member id")
}

#[test]
fn a_killed_radiant_shows_down_with_what_to_do_and_healthy_once_restarted() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut daemons = start_ring(root.path(), 6);
    let statuses = wait_for(&daemons, "six radiants form two orders of three", |statuses| {
        agreed_shape(statuses).is_some_and(|(_, sizes)| sizes == [3, 3])
            && one_controller(statuses).is_some()
            && shards_settled(statuses, &[32])
    });
    let controller = one_controller(&statuses).expect("one controller");
    let first = daemons[controller].as_ref().expect("running");
    wait_for_status(first, "a formed system is HEALTHY", |text, _| text.starts_with("HEALTHY: "));

    // Ask at a radiant that is not the controller: `radiant status` merges the
    // controller's view of every order.
    let controller_order = statuses[controller].1["order"].clone();
    let heralds: Vec<Value> = statuses.iter().map(|(_, status)| status["herald"].clone()).collect();
    let plain =
        |index: &usize| *index != controller && !heralds.contains(&statuses[*index].1["member"]);
    let observer = (0..6).find(plain).expect("a follower");
    // A follower of the order the controller does not lead, and its herald.
    let other_order = |index: &usize| statuses[*index].1["order"] != controller_order;
    let follower = (0..6).find(|index| plain(index) && other_order(index) && *index != observer);
    let follower = follower.unwrap_or_else(|| (0..6).rev().find(plain).expect("another follower"));
    kill_see_down_restart_see_healthy(&mut daemons, follower, observer);

    let other_herald = statuses
        .iter()
        .find(|(_, status)| status["order"] != controller_order)
        .map(|(_, status)| index_of(&statuses, &status["herald"]))
        .expect("the other order's herald");
    kill_see_down_restart_see_healthy(&mut daemons, other_herald, observer);
}
