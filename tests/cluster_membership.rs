//! Membership changes on real daemons: a fourth radiant, started as a joiner (its id is
//! not in its member list), is added with `radiant admin add-member`, catches up as a
//! learner and is promoted; then a member is removed and the order keeps serving.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, order_member_config, run_bounded, status, Daemon};

const TIMING: &str = "tick_ms = 10\nheartbeat_interval = 5\nelection_timeout = 30\n";
const LIMIT: Duration = Duration::from_secs(30);

fn radiant(args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_radiant"));
    run_bounded(command.args(args).env("RADIANT_TOKEN", common::ADMIN_TOKEN), LIMIT)
}

fn wait_for(
    daemon: &Daemon,
    what: &str,
    predicate: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = status(daemon) {
            if predicate(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{what} did not happen within {LIMIT:?}: {status}");
        }
        assert!(Instant::now() < deadline, "{what}: no status within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_joining_radiant_is_added_promoted_and_a_member_is_removed() {
    let directory = tempfile::tempdir().expect("temp dir");
    let members: Vec<(u64, u16, u16)> = (1..=4).map(|id| (id, free_port(), free_port())).collect();
    let founders = &members[..3];
    let mut daemons: Vec<Daemon> = (1..=3u64)
        .map(|id| {
            let data_dir = directory.path().join(format!("radiant-{id}"));
            let config =
                order_member_config(&data_dir, founders[id as usize - 1], founders, TIMING);
            Daemon::start_with_config(&data_dir, &config)
        })
        .collect();
    // The joiner's config lists the founders only, so it waits to be added.
    let joiner_dir = directory.path().join("radiant-4");
    let (_, joiner_peer, joiner_client) = members[3];
    let config_text = order_member_config(&joiner_dir, members[3], founders, TIMING);
    let joiner = Daemon::start_with_config(&joiner_dir, &config_text);
    assert!(joiner.log().contains("waiting to be added"), "{}", joiner.log());

    daemons.iter().for_each(Daemon::wait_until_ready);
    let any = daemons[0].client_address.to_string();
    for index in 0..50 {
        let output = radiant(&["put", &format!("k{index}"), "v", "--addr", &any]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let peer = format!("127.0.0.1:{joiner_peer}");
    let client = format!("127.0.0.1:{joiner_client}");
    let output = radiant(&["admin", "add-member", "4", &peer, &client, "--addr", &any]);
    assert!(output.status.success(), "add-member: {}", String::from_utf8_lossy(&output.stderr));
    let joined = wait_for(&joiner, "promotion of radiant 4", |status| {
        let members = status["members"].as_array().cloned().unwrap_or_default();
        members.iter().filter(|member| member["role"] == "voter").count() == 4
            && status["applied_index"].as_u64() >= Some(50)
    });
    assert_eq!(joined["herald"].as_u64().map(|herald| herald != 4), Some(true), "{joined}");

    let output = radiant(&["admin", "remove-member", "3", "--addr", &any]);
    assert!(output.status.success(), "remove-member: {}", String::from_utf8_lossy(&output.stderr));
    wait_for(&daemons[0], "removal of radiant 3", |status| {
        status["members"].as_array().is_some_and(|members| {
            members.len() == 3 && !members.iter().any(|member| member["id"] == 3)
        })
    });
    let removed = daemons.remove(2);
    wait_for(&removed, "radiant 3 noticing its removal", |status| {
        status["order_state"] == "ERROR(RECOVERABLE(MEMBERSHIP))"
    });
    let output =
        radiant(&["put", "after-removal", "v", "--addr", &joiner.client_address.to_string()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = radiant(&["get", "k49", "--addr", &joiner.client_address.to_string()]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "v\n");
}
