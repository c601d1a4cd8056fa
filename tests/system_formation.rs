//! System formation on real daemons (issue 4): radiants that each know one neighbour
//! form orders, elect a controller and commit configuration 1; newcomers join and form
//! a new order; `kill -9` of the controller yields a new controller with the same
//! configuration. Every step is observed through `radiant status --json`. Bounded in
//! time; every radiant is killed by PID when its guard drops (also on failure).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::system::{
    agreed_shape, controllers, one_controller, ports, shards_settled, start, wait_for,
};
use common::{status, Daemon};
use serde_json::Value;

#[test]
fn a_ring_of_six_forms_two_orders_three_joiners_form_a_third_and_the_controller_survives_kill9() {
    let root = tempfile::tempdir().expect("tempdir");
    let all = ports(9);
    let mut daemons: Vec<Option<Daemon>> = (0..6)
        .map(|index| {
            let neighbor = all[(index + 1) % 6];
            Some(start(root.path(), &format!("r{index}"), all[index], Some(neighbor), 6))
        })
        .collect();
    let formed = wait_for(&daemons, "six radiants form two orders of three", |statuses| {
        agreed_shape(statuses).is_some_and(|(_, sizes)| sizes == [3, 3])
            && one_controller(statuses).is_some()
    });
    let (first, _) = agreed_shape(&formed).expect("agreed");
    assert!(first >= 1, "configuration {first}");

    // Three newcomers, each pointing at a different member of the system.
    for (offset, index) in (6..9).enumerate() {
        let neighbor = all[offset * 2];
        daemons.push(Some(start(root.path(), &format!("r{index}"), all[index], Some(neighbor), 6)));
    }
    let grown = wait_for(&daemons, "three joiners form a third order with its share", |statuses| {
        agreed_shape(statuses).is_some_and(|(_, sizes)| sizes == [3, 3, 3])
            && one_controller(statuses).is_some()
            && shards_settled(statuses, &[21, 22])
    });
    let (number, _) = agreed_shape(&grown).expect("agreed");
    let controller = one_controller(&grown).expect("one controller");
    let term = controllers(&grown)[&controller];
    println!("nine radiants, configuration {number}, controller r{controller} (term {term})");
    let address = daemons[8].as_ref().expect("running").client_address.to_string();
    let (code, table, stderr) = common::radiant(&["status", "--addr", &address]);
    println!("{table}");
    assert_eq!(code, 0, "status failed: {stderr}");
    assert!(table.contains("ASSOCIATED") && table.contains("controller"), "{table}");
    // The ROLE column (the fifth) of the radiant table: "member" or "member," + liveness.
    let members = table
        .lines()
        .filter(|line| {
            line.split_whitespace().nth(4).map(|r| r.trim_end_matches(',')) == Some("member")
        })
        .count();
    assert_eq!(members, 6, "{table}");

    keys_live_only_in_the_order_that_owns_their_shard(&daemons);

    let killed = daemons[controller].take().expect("running");
    let killed_member =
        grown.iter().find(|(i, _)| *i == controller).expect("status").1["member"].clone();
    let (killed_dir, killed_config) = (killed.data_dir.clone(), killed.config_path.clone());
    drop(killed); // kill -9 by PID
    let after = wait_for(&daemons, "a new controller after kill -9", |statuses| {
        one_controller(statuses).is_some_and(|new| new != controller)
            && agreed_shape(statuses).is_some_and(|(n, sizes)| n == number && sizes == [3, 3, 3])
    });
    let new = one_controller(&after).expect("one controller");
    let new_term = controllers(&after)[&new];
    assert!(new_term > term, "new controller term {new_term} not above {term}");

    // The killed radiant restarts from its data directory as the member it was.
    daemons[controller] = Some(Daemon::start_with_config(&killed_dir, &killed_config));
    let back = wait_for(&daemons, "the old controller rejoins as the member it was", |statuses| {
        statuses.iter().any(|(i, status)| {
            *i == controller && status["member"] == killed_member && status["ready"] == true
        }) && agreed_shape(statuses).is_some_and(|(n, sizes)| n == number && sizes == [3, 3, 3])
    });
    assert_eq!(one_controller(&back), Some(new), "the new controller keeps its role");

    // The system still serves writes through a radiant of each order.
    for daemon in daemons.iter().flatten().take(3) {
        let mut client = daemon.connect();
        client.put(b"formed", b"yes").expect("put after controller failover");
        assert_eq!(client.get(b"formed").expect("get").as_deref(), Some(&b"yes"[..]));
    }
}

/// Writes through one radiant land in the order owning each key's shard (the client
/// follows `WrongOrder`), read back through radiants of every order; a radiant asked
/// for a key of another order's shard answers `WrongOrder`.
fn keys_live_only_in_the_order_that_owns_their_shard(daemons: &[Option<Daemon>]) {
    use radiant_protocol::{ClientRequest, ErrorResponse, Message, ReadConsistency};
    let live: Vec<&Daemon> = daemons.iter().flatten().collect();
    let mut writer = live[0].connect();
    for n in 0..40 {
        let key = format!("routed-{n}");
        writer.put(key.as_bytes(), b"v").expect("put routed to the owning order");
    }
    let mut wrong_orders = 0;
    for daemon in &live {
        let mut reader = daemon.connect();
        for n in 0..40 {
            let key = format!("routed-{n}");
            assert_eq!(reader.get(key.as_bytes()).expect("get").as_deref(), Some(&b"v"[..]));
        }
        let mut raw = daemon.connect();
        for n in 0..40 {
            let key = bytes::Bytes::from(format!("routed-{n}"));
            let request = ClientRequest::Get { key, consistency: ReadConsistency::Stale };
            let id = raw.send(&request).expect("send");
            let deadline = Instant::now() + Duration::from_secs(5);
            if let Message::Error(ErrorResponse::WrongOrder { config_num }) =
                raw.receive(id, deadline).expect("answer")
            {
                assert!(config_num >= 1);
                wrong_orders += 1;
            }
        }
    }
    assert!(wrong_orders > 0, "no radiant refused a key of another order's shard");
    let map = writer.shard_routes().expect("the writer cached a shard map after WrongOrder");
    assert_eq!(map.owners.len(), 64);
    let address = live[0].client_address.to_string();
    let (code, table, stderr) = common::radiant(&["shards", "--addr", &address]);
    assert_eq!(code, 0, "radiant shards: {stderr}");
    println!("{table}");
    for order_id in 1..=3 {
        let listed =
            table.lines().any(|line| line.split_whitespace().nth(2) == Some(&order_id.to_string()));
        assert!(listed, "order {order_id} serves no slot range:\n{table}");
    }
    let stored: u64 = live.iter().filter_map(|daemon| status(daemon)?["keys"].as_u64()).sum();
    // Each key is on the three members of exactly one order (nine radiants in all).
    assert_eq!(stored, 40 * 3, "keys stored on {stored} replicas, not 3 per key");
}

/// Starts `count` brand-new radiants in a star: everyone points at radiant 0, which
/// points at radiant 1 (no self-loop); waits until they agree on orders of `sizes`.
fn form_star(
    count: usize,
    sizes: &[usize],
) -> (Vec<Option<Daemon>>, Vec<(usize, Value)>, tempfile::TempDir) {
    let root = tempfile::tempdir().expect("tempdir");
    let all = ports(count);
    let daemons: Vec<Option<Daemon>> = (0..count)
        .map(|index| {
            let neighbor = if index == 0 { all[1] } else { all[0] };
            Some(start(root.path(), &format!("s{index}"), all[index], Some(neighbor), count))
        })
        .collect();
    let what = format!("a star of {count} forms orders of {sizes:?}");
    let formed = wait_for(&daemons, &what, |statuses| {
        agreed_shape(statuses).is_some_and(|(_, agreed)| agreed == sizes)
            && one_controller(statuses).is_some()
    });
    // Fields drop in order: the daemons are killed before their directory goes.
    (daemons, formed, root)
}

#[test]
fn a_star_of_six_forms_two_orders_of_three() {
    form_star(6, &[3, 3]);
}

#[test]
fn a_star_of_seven_forms_one_order_of_four_and_one_of_three() {
    let (_daemons, formed, _root) = form_star(7, &[4, 3]);
    let ids: BTreeSet<u64> =
        formed.iter().filter_map(|(_, status)| status["member"].as_u64()).collect();
    assert_eq!(ids, (1..=7).collect(), "permanent ids 1..=7, none zero");
}
