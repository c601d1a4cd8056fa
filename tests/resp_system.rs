//! Redis Cluster clients against a six-radiant system of two orders on 127.0.0.1, every
//! radiant serving RESP: `CLUSTER SLOTS` lists both orders from any radiant; `redis-cli
//! -c` writes keys of both orders through one radiant, following `MOVED`;
//! `redis-benchmark --cluster` completes without an error; and redis-py's `RedisCluster`
//! writes and reads back one key in every hash slot while the herald of one order is
//! killed (-9) and a shard is moved. Bounded; every process is killed by PID on drop.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::system::{agreed_shape, one_controller, ports, shards_settled, start_with, wait_for};
use common::{can_run, free_port, redis_benchmark, resp_ask, run_bounded, tool_available, Daemon};

/// Six radiants forming two orders of three, each with a RESP port.
struct RespSystem {
    daemons: Vec<Option<Daemon>>,
    resp_ports: Vec<u16>,
    _root: tempfile::TempDir,
}

impl RespSystem {
    fn start() -> RespSystem {
        let root = tempfile::tempdir().expect("tempdir");
        let all = ports(6);
        let resp_ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let daemons: Vec<Option<Daemon>> = (0..6)
            .map(|index| {
                let ends = (all[index], Some(all[(index + 1) % 6]));
                let extra = format!("resp_port = {}\n", resp_ports[index]);
                Some(start_with(root.path(), &format!("r{index}"), ends, 6, &extra))
            })
            .collect();
        wait_for(&daemons, "six radiants form two orders of three", |statuses| {
            agreed_shape(statuses).is_some_and(|(_, sizes)| sizes == [3, 3])
                && one_controller(statuses).is_some()
                && shards_settled(statuses, &[32])
        });
        RespSystem { daemons, resp_ports, _root: root }
    }

    fn ports_argument(&self) -> Vec<String> {
        self.resp_ports.iter().map(u16::to_string).collect()
    }
}

#[test]
fn redis_cli_and_redis_benchmark_use_both_orders_of_a_six_radiant_system() {
    let system = RespSystem::start();
    for port in &system.resp_ports {
        // Two ranges of three nodes: each range line is `*5`, each node `*3`.
        let slots =
            resp_ask(*port, &["CLUSTER", "SLOTS"], |reply| reply.matches("$40\r\n").count() == 6);
        assert!(slots.starts_with("*2\r\n*5\r\n:0\r\n:8191\r\n"), "from {port}: {slots:?}");
        assert!(slots.contains("*5\r\n:8192\r\n:16383\r\n"), "from {port}: {slots:?}");
    }
    let tools = tool_available("redis-cli") && tool_available("redis-benchmark");
    if !can_run(tools, "redis_cli_and_redis_benchmark", "redis-cli and redis-benchmark") {
        return;
    }
    let (first, last) = (system.resp_ports[0].to_string(), system.resp_ports[5].to_string());
    let cli = |port: &str, words: &[&str]| {
        let output = run_bounded(
            Command::new("redis-cli").args(["-c", "-p", port]).args(words),
            Duration::from_secs(20),
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    // `a` hashes to slot 15495 (order 2's half), `b` to 3300 (order 1's).
    for key in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(cli(&first, &["SET", key, &format!("v{key}")]), "OK", "SET {key}");
    }
    for key in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(cli(&last, &["GET", key]), format!("v{key}"), "GET {key}");
    }
    let text = redis_benchmark(
        &["--cluster", "-p", &first, "-t", "set,get,incr", "-n", "20000", "-c", "20", "-q"],
        Duration::from_secs(180),
    );
    assert!(text.contains("Cluster has 2 master nodes"), "{text}");
}

/// The index of the herald of order `order_id`, from any radiant's status.
fn herald_of(system: &RespSystem, order_id: u64) -> usize {
    let statuses = wait_for(&system.daemons, "every order has a herald", |statuses| {
        agreed_shape(statuses).is_some()
    });
    let member = statuses
        .iter()
        .find_map(|(_, status)| {
            status["system"]["orders"]
                .as_array()?
                .iter()
                .find(|order| order["order"] == order_id)?["herald"]
                .as_u64()
        })
        .expect("the order has a herald");
    statuses
        .iter()
        .find(|(_, status)| status["member"].as_u64() == Some(member))
        .map(|(index, _)| *index)
        .expect("the herald is one of the six")
}

#[test]
fn redis_py_keeps_a_key_in_every_slot_through_a_herald_kill_and_a_shard_move() {
    let Some(python) = common::python_with("redis.cluster") else {
        assert!(!can_run(false, "redis_py_cluster", "a Python with redis-py (.ci/run makes one)"));
        return;
    };
    let mut system = RespSystem::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/redis_cluster_client.py");
    let history = system._root.path().join("redis-py-history.jsonl");
    let mut client = ChildGuard(Some(
        Command::new(&python)
            .arg(&script)
            .arg(&history)
            .args(system.ports_argument())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Python client"),
    ));
    let child = client.0.as_mut().expect("spawned");
    // Reading its output blocks; should the client hang, the watchdog kills it (by PID),
    // which ends the output and fails the test.
    let watchdog = Watchdog::start(child.id(), Duration::from_secs(300));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let mut wait_for_line = |wanted: &str| -> Vec<String> {
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("read the client's output");
            seen.push(line.clone());
            if line.starts_with(wanted) {
                return seen;
            }
        }
        panic!("the client ended before printing {wanted:?}: {seen:?}");
    };
    wait_for_line("written 2000");
    // Kill the herald of order 2 while the client writes, then move a shard of order 1
    // to order 2 (its new herald takes it).
    let victim = herald_of(&system, 2);
    system.daemons[victim].take().expect("running").kill9();
    // The killed herald may have been the controller: until the council elects another
    // (a few seconds), the move is refused, as an operator would see; they retry.
    let entry = system.daemons[(victim + 3) % 6].as_ref().expect("running").client_address;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _, stderr) =
            common::radiant(&["admin", "move", "0", "2", "--addr", &entry.to_string()]);
        if code == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "admin move 0 2 for 30 s: {stderr}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let finished = wait_for_line("verified");
    assert!(
        finished.iter().any(|line| line == "written 4000"),
        "the client wrote nothing after the kill: {finished:?}"
    );
    drop(watchdog);
    let status = client.0.take().expect("running").wait().expect("client exit");
    let mut stderr = String::new();
    let _ = stderr_pipe.read_to_string(&mut stderr);
    assert!(status.success(), "the Python client failed: {finished:?}\n{stderr}");
    println!("redis-py: {}", finished.last().cloned().unwrap_or_default());
    let history = history.display().to_string();
    let (code, verdict, stderr) = common::radiant(&["check-history", &history]);
    assert_eq!(code, 0, "the redis-py history is not linearizable:\n{verdict}\n{stderr}");
    wait_for(&system.daemons, "shard 0 moves to order 2", |statuses| {
        statuses.iter().all(|(_, status)| status["system"]["shard_owners"][0] == 2)
    });
}

/// Kills process `pid` if it is still running when `limit` has passed, unless dropped
/// first.
struct Watchdog {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(pid: u32, limit: Duration) -> Watchdog {
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + limit;
            while std::time::Instant::now() < deadline {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !flag.load(Ordering::Relaxed) {
                eprintln!("watchdog: process {pid} outlived {limit:?}; killing it");
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        });
        Watchdog { done, thread: Some(thread) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A child process killed (by PID) and reaped when dropped, also when the test fails.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
