//! Operators' direct changes and the cluster id on real daemons: `radiant admin add` and
//! `remove` through the controller, a restarted radiant rejoining as the member it was,
//! and a radiant whose data directory belongs to another system being refused. Bounded;
//! every radiant is killed by PID when its guard drops.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, radiant, status, Daemon};
use serde_json::Value;

const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn config(
    root: &Path,
    name: &str,
    ports: (u16, u16),
    neighbor: Option<u16>,
    expect: u32,
) -> Daemon {
    let data_dir = root.join(name);
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let neighbor = neighbor.map_or(String::new(), |port| {
        format!("neighbor_ip = \"127.0.0.1\"\nneighbor_port = {port}\n")
    });
    let text = format!(
        "my_ip = \"127.0.0.1\"\nmy_port = {}\nclient_ip = \"127.0.0.1\"\nclient_port = {}\n\
         data_dir = {:?}\n{neighbor}bootstrap_expect = {expect}\ntick_ms = 10\n{}",
        ports.0,
        ports.1,
        data_dir.display().to_string(),
        common::security_lines(&data_dir),
    );
    let path = data_dir.with_extension("toml");
    std::fs::write(&path, text).expect("config");
    Daemon::start_with_config(&data_dir, &path)
}

fn wait_until(daemon: &Daemon, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(status) = status(daemon).filter(|status| done(status)) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: not within {STEP_TIMEOUT:?}\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_controller(status: &Value) -> bool {
    status["system"]["is_controller"] == true
}

/// The controller, ready to take keyed requests (it has adopted its configuration).
fn is_ready_controller(status: &Value) -> bool {
    is_controller(status) && status["ready"] == true
}

fn voters(status: &Value) -> usize {
    let members = status["members"].as_array().cloned().unwrap_or_default();
    members.iter().filter(|member| member["role"] == "voter").count()
}

#[test]
fn admin_add_and_remove_go_through_the_controller_and_a_restart_keeps_identity() {
    let root = tempfile::tempdir().expect("tempdir");
    let a_ports = (free_port(), free_port());
    let mut a = config(root.path(), "a", a_ports, None, 1);
    let formed = wait_until(&a, "a single radiant forms its system", is_ready_controller);
    let cluster = formed["system"]["cluster"].clone();
    a.connect().put(b"kept", b"across restarts").expect("put");

    // B expects a partner it never hears from, so it stays UNASSOCIATED until admitted.
    let b_ports = (free_port(), free_port());
    let b = config(root.path(), "b", b_ports, None, 2);
    let waiting = wait_until(&b, "b waits", |status| status["state"] == "UNASSOCIATED");
    assert!(waiting["system"]["configuration"] == 0);
    let peer = format!("127.0.0.1:{}", b_ports.0);
    let client = format!("127.0.0.1:{}", b_ports.1);
    let a_client = a.client_address.to_string();
    // b serves no Redis clients here; the address is recorded all the same, for
    // CLUSTER SLOTS and MOVED.
    let resp = "127.0.0.1:1";
    let (code, _, stderr) = radiant(&[
        "admin", "add", "--peer", &peer, "--client", &client, "--resp", resp, "--addr", &a_client,
    ]);
    assert_eq!(code, 0, "admin add: {stderr}");
    let joined = wait_until(&b, "b joins a's order", |status| {
        status["state"] == "ASSOCIATED" && status["order"] == 1
    });
    assert_eq!(joined["system"]["cluster"], cluster);
    let b_id = joined["member"].as_u64().expect("b has an id");
    let radiants = joined["system"]["radiants"].as_array().cloned().unwrap_or_default();
    let b_entry = radiants.iter().find(|radiant| radiant["id"] == b_id);
    assert_eq!(
        b_entry.map(|radiant| &radiant["resp"]),
        Some(&serde_json::json!(resp)),
        "{radiants:?}"
    );
    wait_until(&a, "a's order promotes b", |status| voters(status) == 2);

    let (code, _, stderr) = radiant(&["admin", "remove", &b_id.to_string(), "--addr", &a_client]);
    assert_eq!(code, 0, "admin remove: {stderr}");
    wait_until(&a, "a's order drops b", |status| {
        voters(status) == 1 && status["system"]["radiants"].as_array().is_some_and(|r| r.len() == 1)
    });
    let (code, _, stderr) = radiant(&["admin", "remove", "1", "--addr", &a_client]);
    assert_ne!(code, 0, "removing the last radiant must be refused");
    assert!(stderr.contains("is the last order"), "{stderr}");

    // kill -9 and restart: the same member of the same system, with its data.
    let member = formed["member"].clone();
    a.kill9();
    let a = Daemon::start_with_config(&a.data_dir, &a.config_path);
    let back = wait_until(&a, "a comes back as controller", is_ready_controller);
    assert_eq!(back["member"], member);
    assert_eq!(back["system"]["cluster"], cluster);
    let value = a.connect().get(b"kept").expect("get");
    assert_eq!(value.as_deref(), Some(&b"across restarts"[..]));
}

#[test]
fn a_radiant_of_another_system_is_refused_with_a_clear_error() {
    let root = tempfile::tempdir().expect("tempdir");
    let a_ports = (free_port(), free_port());
    let a = config(root.path(), "a", a_ports, None, 1);
    let a_status = wait_until(&a, "a forms", is_controller);
    let c_ports = (free_port(), free_port());
    let mut c = config(root.path(), "c", c_ports, None, 1);
    wait_until(&c, "c forms a system of its own", is_controller);
    assert!(c.terminate().success(), "c stops cleanly");

    // The same data directory, now pointed at A: the two systems must not merge.
    let c = config(root.path(), "c", c_ports, Some(a_ports.0), 1);
    let refused = wait_until(&c, "c is refused", |status| status["state"] == "ERROR");
    let reason = refused["system"]["error"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("cluster") && reason.contains("data_dir"), "{reason}");
    let c_client = c.client_address.to_string();
    let (code, _, stderr) = radiant(&["put", "k", "v", "--addr", &c_client]);
    assert_ne!(code, 0, "a refused radiant must not serve");
    assert!(stderr.contains("ERROR"), "{stderr}");
    let a_after = status(&a).expect("a answers");
    assert_eq!(a_after["system"]["cluster"], a_status["system"]["cluster"]);
    assert_eq!(a_after["system"]["radiants"].as_array().map(Vec::len), Some(1));
}
