//! Helpers for tests of formed systems: ports chosen up front, radiants started with a
//! neighbour, and polling every radiant's status until a condition holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, status, Daemon};

/// Longest any formation step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Peer and client ports of one radiant, chosen before anyone starts so neighbours can
/// be named.
#[derive(Clone, Copy)]
pub struct Ports {
    pub peer: u16,
    pub client: u16,
}

pub fn ports(count: usize) -> Vec<Ports> {
    (0..count).map(|_| Ports { peer: free_port(), client: free_port() }).collect()
}

pub fn start(root: &Path, name: &str, me: Ports, neighbor: Option<Ports>, expect: usize) -> Daemon {
    start_with(root, name, (me, neighbor), expect, "")
}

/// Starts `count` radiants named r0, r1, … in a ring (each one's neighbour is the next),
/// every one expecting `count` to bootstrap.
pub fn start_ring(root: &Path, count: usize) -> Vec<Option<Daemon>> {
    let all = ports(count);
    (0..count)
        .map(|index| {
            let neighbor = Some(all[(index + 1) % count]);
            Some(start(root, &format!("r{index}"), all[index], neighbor, count))
        })
        .collect()
}

/// As `start`, with `extra` TOML lines in the config.
pub fn start_with(
    root: &Path,
    name: &str,
    (me, neighbor): (Ports, Option<Ports>),
    expect: usize,
    extra: &str,
) -> Daemon {
    let data_dir = root.join(name);
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let neighbor = neighbor.map_or(String::new(), |neighbor| {
        format!("neighbor_ip = \"127.0.0.1\"\nneighbor_port = {}\n", neighbor.peer)
    });
    let text = format!(
        "my_ip = \"127.0.0.1\"\nmy_port = {}\nclient_ip = \"127.0.0.1\"\nclient_port = {}\n\
         data_dir = {:?}\nlog_level = \"info\"\n{neighbor}bootstrap_expect = {expect}\n\
         order_size = 3\nshard_count = 64\ntick_ms = 10\nelection_timeout = 30\n\
         heartbeat_interval = 5\nbeacon_interval = 10\nbootstrap_backoff = 20\n{}{extra}",
        me.peer,
        me.client,
        data_dir.display().to_string(),
        super::security_lines(&data_dir),
    );
    let config_path = data_dir.with_extension("toml");
    std::fs::write(&config_path, text).expect("write config");
    Daemon::start_with_config(&data_dir, &config_path)
}

/// Polls every live radiant's status until `done` holds for the set, or fails with
/// every status and log tail.
pub fn wait_for(
    daemons: &[Option<Daemon>],
    what: &str,
    done: impl Fn(&[(usize, Value)]) -> bool,
) -> Vec<(usize, Value)> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let statuses: Vec<(usize, Value)> = daemons
            .iter()
            .enumerate()
            .filter_map(|(index, daemon)| Some((index, status(daemon.as_ref()?)?)))
            .collect();
        let live = daemons.iter().filter(|daemon| daemon.is_some()).count();
        if statuses.len() == live && done(&statuses) {
            return statuses;
        }
        if Instant::now() > deadline {
            let logs: String = daemons
                .iter()
                .flatten()
                .map(|daemon| {
                    let log = daemon.log();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    format!("--- {}\n{}\n", daemon.log_path.display(), tail.join("\n"))
                })
                .collect();
            let shown: Vec<String> = statuses.iter().map(|(i, s)| format!("{i}: {s}")).collect();
            panic!("{what}: not within {STEP_TIMEOUT:?}\n{}\n{logs}", shown.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The order sizes every radiant reports, when they all agree on one configuration
/// whose every shard is assigned, whose orders all have heralds, and every radiant in
/// an order says it is ready (has adopted a configuration and knows its herald).
pub fn agreed_shape(statuses: &[(usize, Value)]) -> Option<(u64, Vec<usize>)> {
    let mut views = BTreeSet::new();
    for (_, status) in statuses {
        let system = &status["system"];
        if system["state"] != "ASSOCIATED" || system["cluster"].is_null() {
            return None;
        }
        if status["order"].is_u64() && status["ready"] != true {
            return None;
        }
        let orders = system["orders"].as_array()?;
        let sizes: Vec<usize> =
            orders.iter().map(|order| order["members"].as_array().map_or(0, Vec::len)).collect();
        let shards: u64 = orders.iter().map(|order| order["shards"].as_u64().unwrap_or(0)).sum();
        if shards != 64 || orders.iter().any(|order| order["herald"].is_null()) {
            return None;
        }
        views.insert((system["configuration"].as_u64()?, sizes, system["cluster"].to_string()));
    }
    let mut views = views.into_iter();
    let (number, sizes, _) = views.next()?;
    views.next().is_none().then_some((number, sizes))
}

/// The radiants that say they are the controller, with its council term.
pub fn controllers(statuses: &[(usize, Value)]) -> BTreeMap<usize, u64> {
    statuses
        .iter()
        .filter(|(_, status)| status["system"]["is_controller"] == true)
        .map(|(index, status)| {
            (*index, status["system"]["controller"]["term"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// Every radiant names the same controller, which says it is one.
pub fn one_controller(statuses: &[(usize, Value)]) -> Option<usize> {
    let claimed = controllers(statuses);
    let (&index, _) = claimed.iter().next().filter(|_| claimed.len() == 1)?;
    let (_, status) = statuses.iter().find(|(i, _)| *i == index)?;
    let address = status["system"]["controller"]["address"].clone();
    statuses
        .iter()
        .all(|(_, status)| status["system"]["controller"]["address"] == address)
        .then_some(index)
}

/// Six radiants are whole: two orders of three agree on the configuration, one controller,
/// 32 shards each and nothing in flight.
pub fn two_orders_of_three_settled(statuses: &[(usize, Value)]) -> bool {
    agreed_shape(statuses).is_some_and(|(_, sizes)| sizes == [3, 3])
        && one_controller(statuses).is_some()
        && shards_settled(statuses, &[32])
}

/// Every order serves one of `counts` shards, and no radiant has a shard in flight or
/// a configuration left to adopt.
pub fn shards_settled(statuses: &[(usize, Value)], counts: &[u64]) -> bool {
    statuses.iter().all(|(_, status)| {
        let orders = status["system"]["orders"].as_array().cloned().unwrap_or_default();
        let balanced = orders
            .iter()
            .all(|order| order["shards"].as_u64().is_some_and(|n| counts.contains(&n)));
        let settled = status["moves"].as_array().is_some_and(Vec::is_empty);
        let adopted = status["adopted"] == status["system"]["configuration"];
        balanced && settled && adopted
    })
}
