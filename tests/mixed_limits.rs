//! Issue 12, finding 3: a member configured with smaller limits than its herald must
//! still carry every entry its order accepts. Radiants 1 and 2 take 4 MiB values;
//! radiant 3 takes at most 1 MiB values (and 1.05 MiB frames). With radiant 2 killed,
//! a 4 MiB put through the herald commits only if radiant 3 stores and acknowledges it.
//! Before trusted peer frames were decoded at the format's maxima, radiant 3 refused the
//! herald's append as too long, closed the link, and the put never committed.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, order_member_config, status, Daemon};
use radiant::client::{Client, ClientOptions};

const TIMING: &str = "tick_ms = 10\nheartbeat_interval = 5\nelection_timeout = 30\n";
/// Radiant 3's limits: 1 KiB keys, 1 MiB values, frames just large enough for those.
const SMALL_LIMITS: &str = "max_key_bytes = 1024\nmax_value_bytes = 1048576\n\
                            max_frame_bytes = 1049664\n";
const LIMIT: Duration = Duration::from_secs(30);

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn role(daemon: &Daemon) -> String {
    status(daemon)
        .map(|status| status["role"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn a_member_with_smaller_limits_carries_its_heralds_larger_entries() {
    let directory = tempfile::tempdir().expect("temp dir");
    let members: Vec<(u64, u16, u16)> = (1..=3).map(|id| (id, free_port(), free_port())).collect();
    let data_dir = |id: u64| directory.path().join(format!("radiant-{id}"));
    let config = |id: u64, extra: &str| {
        let extra = format!("{TIMING}{extra}");
        order_member_config(&data_dir(id), members[id as usize - 1], &members, &extra)
    };
    // 1 and 2 first, so the herald is one of them (3 would refuse a 4 MiB put itself).
    let mut big: Vec<Daemon> =
        (1..=2).map(|id| Daemon::start_with_config(&data_dir(id), &config(id, ""))).collect();
    wait_for("radiant 1 or 2 is herald", || big.iter().any(|d| role(d) == "herald"));
    let small = Daemon::start_with_config(&data_dir(3), &config(3, SMALL_LIMITS));
    wait_for("radiant 3 follows", || role(&small) == "follower");
    let herald = big.iter().position(|d| role(d) == "herald").expect("a herald");
    big[1 - herald].kill9();
    let herald = &big[herald];
    let options = ClientOptions { timeout: Duration::from_secs(10), ..ClientOptions::default() };
    let mut client = Client::connect(&herald.client_address.to_string(), options).expect("connect");
    let value = vec![b'v'; 4 << 20];
    client.put(b"large", &value).unwrap_or_else(|error| {
        panic!(
            "a 4 MiB put must commit with radiant 3's ack: {error}; radiant 3's log:\n{}",
            small.log()
        )
    });
    assert_eq!(client.get(b"large").expect("get").as_deref(), Some(&value[..]));
    // Radiant 3 itself still refuses a value over its own limit from a client.
    let mut direct = Client::connect(&small.client_address.to_string(), ClientOptions::default())
        .expect("connect to radiant 3");
    let refused = direct.put(b"direct", &value);
    assert!(refused.is_err(), "radiant 3 took a client value over its max_value_bytes");
}
