//! Redis clients against real radiants on 127.0.0.1: RESP requests pipelined on one
//! connection get every answer in order and worded as Redis words them; a malformed
//! stream gets a protocol error and is closed while the radiant serves on; the client
//! token guards RESP as it guards the binary port; `redis-cli -c` follows `MOVED` from a
//! follower to the herald of a static order; `redis-benchmark` completes without an
//! error and every acknowledged `INCR` counts exactly once.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    can_run, free_port, order_member_config_with_resp, redis_benchmark, resp_ask, resp_command,
    run_bounded, status, tool_available, Daemon,
};

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A single-node radiant serving RESP on a free port, with `extra` config lines.
fn single_node(data_dir: &Path, extra: &str) -> (Daemon, u16) {
    let resp_port = free_port();
    let daemon = Daemon::start(data_dir, &format!("resp_port = {resp_port}\n{extra}"));
    (daemon, resp_port)
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the RESP port");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).expect("read timeout");
    stream
}

/// Sends `requests` in one write and reads until `expected` has arrived (or the
/// connection closes, or `REPLY_TIMEOUT` passes); returns what arrived.
fn exchange(stream: &mut TcpStream, requests: &[u8], expected_bytes: usize) -> String {
    stream.write_all(requests).expect("send");
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while received.len() < expected_bytes && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends one request whose reply is one line (a status or an error) and reads that line.
fn exchange_line(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).expect("send");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn expect_replies(stream: &mut TcpStream, requests: &[&[&str]], expected: &str) {
    let bytes: Vec<u8> = requests.iter().flat_map(|words| resp_command(words)).collect();
    let received = exchange(stream, &bytes, expected.len());
    assert_eq!(received, expected, "replies to {requests:?}");
}

#[test]
fn pipelined_commands_get_every_answer_in_order_worded_as_redis_words_them() {
    let directory = tempfile::tempdir().expect("temp dir");
    let (_daemon, port) = single_node(&directory.path().join("radiant"), "");
    let mut stream = connect(port);
    let requests: &[&[&str]] = &[
        &["PING"],
        &["SET", "{a}x", "1"],
        &["GET", "{a}x"],
        &["INCR", "{a}x"],
        &["INCRBY", "{a}x", "10"],
        &["DECRBY", "{a}x", "2"],
        &["APPEND", "{a}s", "hello"],
        &["APPEND", "{a}s", " world"],
        &["STRLEN", "{a}s"],
        &["INCR", "{a}s"],
        &["SET", "{a}x", "y", "NX"],
        &["SET", "{a}x", "y", "XX", "GET"],
        &["SETNX", "{a}n", "1"],
        &["SETNX", "{a}n", "2"],
        &["GETSET", "{a}n", "3"],
        &["GETDEL", "{a}n"],
        &["GET", "{a}n"],
        &["EXISTS", "{a}x", "{a}s", "{a}n"],
        &["MGET", "{a}x", "{a}n", "{a}s"],
        &["DEL", "{a}x", "{a}n"],
        &["DEL", "one", "two"],
        &["SET", "{a}x", "1", "EX", "10"],
        &["SET", "{a}m", "9223372036854775807"],
        &["INCR", "{a}m"],
        &["INCRBY", "{a}m", "x"],
        &["GET"],
        &["NOSUCH", "arg"],
        &["get", "{a}x"], // deleted above; lower-case names work
        &["AVERYLONGCOMMANDNAMEX"],
        &["CLUSTER", "KEYSLOT", "foo"],
        &["SELECT", "1"],
        &["SET", "", "v"],
        &["ECHO", "done"],
    ];
    let expected = "+PONG\r\n+OK\r\n$1\r\n1\r\n:2\r\n:12\r\n:10\r\n:5\r\n:11\r\n:11\r\n\
         -ERR value is not an integer or out of range\r\n$-1\r\n$2\r\n10\r\n:1\r\n:0\r\n\
         $1\r\n1\r\n$1\r\n3\r\n$-1\r\n:2\r\n*3\r\n$1\r\ny\r\n$-1\r\n$11\r\nhello world\r\n\
         :1\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n\
         -ERR Radiant keys do not expire yet: SET's EX, PX, EXAT, PXAT and KEEPTTL are not \
         supported\r\n+OK\r\n-ERR increment or decrement would overflow\r\n\
         -ERR value is not an integer or out of range\r\n\
         -ERR wrong number of arguments for 'get' command\r\n\
         -ERR unknown command 'NOSUCH', with args beginning with: 'arg' \r\n$-1\r\n\
         -ERR unknown command 'AVERYLONGCOMMANDNAMEX', with args beginning with: \r\n\
         :12182\r\n\
         -ERR DB index is out of range\r\n-ERR Radiant keys must not be empty\r\n\
         $4\r\ndone\r\n";
    expect_replies(&mut stream, requests, expected);
    // RESP3 after HELLO 3: nulls are `_`, and the connection stays on RESP3.
    let hello = exchange(&mut stream, &resp_command(&["HELLO", "3"]), 1);
    assert!(hello.starts_with("%7\r\n"), "HELLO 3 answers a map: {hello:?}");
    // The rest of HELLO's map may arrive with the next read: drain it first.
    std::thread::sleep(Duration::from_millis(100));
    let mut rest = [0u8; 4096];
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
    let _ = stream.read(&mut rest);
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).expect("read timeout");
    expect_replies(&mut stream, &[&["GET", "absent"]], "_\r\n");
}

#[test]
fn a_malformed_stream_gets_a_protocol_error_and_is_closed_while_the_radiant_serves_on() {
    let directory = tempfile::tempdir().expect("temp dir");
    let (_daemon, port) = single_node(&directory.path().join("radiant"), "");
    for (garbage, reason) in [
        (&b"*1\r\n$-5\r\n"[..], "invalid bulk length"),
        (&b"*2\r\n$3\r\nGET\r\n:1\r\n"[..], "expected '$'"),
        (&b"*1\r\n$99999999999\r\n"[..], "invalid bulk length"),
        (&b"*x\r\n"[..], "invalid multibulk length"),
    ] {
        let mut stream = connect(port);
        let received = exchange(&mut stream, garbage, usize::MAX);
        assert!(
            received.starts_with("-ERR Protocol error: ") && received.contains(reason),
            "{garbage:?} got {received:?}"
        );
    }
    let mut stream = connect(port);
    expect_replies(&mut stream, &[&["PING"]], "+PONG\r\n");
}

#[test]
fn keys_and_values_past_the_radiants_limits_are_refused_before_they_reach_the_log() {
    let directory = tempfile::tempdir().expect("temp dir");
    let limits = "max_key_bytes = 16\nmax_value_bytes = 32\n";
    let (_daemon, port) = single_node(&directory.path().join("radiant"), limits);
    let long_key = "k".repeat(17);
    let long_value = "v".repeat(33);
    let mut stream = connect(port);
    expect_replies(
        &mut stream,
        &[
            &["SET", &long_key, "v"],
            &["SET", "k", &long_value],
            &["APPEND", "k", &long_value],
            &["SET", "k", &"v".repeat(20)],
            &["APPEND", "k", &"v".repeat(20)],
            &["STRLEN", "k"],
        ],
        "-ERR key of 17 bytes is longer than this radiant's max_key_bytes (16)\r\n\
         -ERR value of 33 bytes is longer than this radiant's max_value_bytes (32)\r\n\
         -ERR value of 33 bytes is longer than this radiant's max_value_bytes (32)\r\n\
         +OK\r\n\
         -ERR string exceeds maximum allowed size (40 bytes would pass this radiant's \
         max_value_bytes)\r\n:20\r\n",
    );
}

#[test]
fn mset_msetnx_and_a_del_of_several_keys_are_one_write_each() {
    let directory = tempfile::tempdir().expect("temp dir");
    let (_daemon, port) = single_node(&directory.path().join("radiant"), "max_value_bytes = 32\n");
    let mut stream = connect(port);
    let long_value = "v".repeat(33);
    expect_replies(
        &mut stream,
        &[
            &["MSET", "{m}a", "1", "{m}b", "2", "{m}a", "3"],
            &["MGET", "{m}a", "{m}b"],
            &["MSETNX", "{m}a", "9", "{m}c", "3"],
            &["EXISTS", "{m}c"],
            &["MSETNX", "{m}c", "3", "{m}d", "4"],
            &["DEL", "{m}a", "{m}b", "{m}a", "{m}none"],
            &["MGET", "{m}a", "{m}b", "{m}c", "{m}d"],
            &["MSET", "a", "1", "b", "2"],
            &["MSET", "{m}a"],
            &["MSET", "{m}a", "1", "{m}b"],
            &["MSET", "{m}a", "1", "{m}b", &long_value],
            &["EXISTS", "{m}a", "{m}b"],
        ],
        "+OK\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n:0\r\n:0\r\n:1\r\n:2\r\n\
         *4\r\n$-1\r\n$-1\r\n$1\r\n3\r\n$1\r\n4\r\n\
         -CROSSSLOT Keys in request don't hash to the same slot\r\n\
         -ERR wrong number of arguments for 'mset' command\r\n\
         -ERR wrong number of arguments for 'mset' command\r\n\
         -ERR value of 33 bytes is longer than this radiant's max_value_bytes (32)\r\n:0\r\n",
    );
}

#[test]
fn the_client_token_guards_resp_as_it_guards_the_binary_port() {
    let directory = tempfile::tempdir().expect("temp dir");
    let token_file = directory.path().join("client-token");
    std::fs::write(&token_file, "a client token of 16+ bytes\n").expect("token file");
    let extra = format!("client_token_file = {:?}\n", token_file.display().to_string());
    let (_daemon, port) = single_node(&directory.path().join("radiant"), &extra);
    let mut stream = connect(port);
    expect_replies(
        &mut stream,
        &[&["PING"], &["GET", "k"], &["AUTH", "wrong"], &["SET", "k", "v"]],
        "+PONG\r\n-NOAUTH Authentication required.\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         -NOAUTH Authentication required.\r\n",
    );
    let token = "a client token of 16+ bytes";
    expect_replies(&mut stream, &[&["AUTH", "default", token]], "+OK\r\n");
    // The radiant may still be forming its one-node system (CLUSTERDOWN not ready);
    // Daemon::start could not tell, since status without the token says little.
    let deadline = Instant::now() + Duration::from_secs(30);
    while exchange_line(&mut stream, &resp_command(&["SET", "k", "v"])) != "+OK\r\n" {
        assert!(Instant::now() < deadline, "the radiant never took a SET within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    expect_replies(&mut stream, &[&["GET", "k"]], "$1\r\nv\r\n");
}

/// Three radiants of one static order, each serving RESP.
struct RespOrder {
    daemons: Vec<Daemon>,
    resp_ports: Vec<u16>,
    _directory: tempfile::TempDir,
}

impl RespOrder {
    fn start() -> RespOrder {
        let directory = tempfile::tempdir().expect("temp dir");
        let members: Vec<(u64, u16, u16)> =
            (1..=3).map(|id| (id, free_port(), free_port())).collect();
        let resp_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let timing = "tick_ms = 10\nheartbeat_interval = 5\nelection_timeout = 30\n";
        let daemons = members
            .iter()
            .map(|member| {
                let data_dir = directory.path().join(format!("radiant-{}", member.0));
                let config = order_member_config_with_resp(
                    &data_dir,
                    *member,
                    &members,
                    &resp_ports,
                    timing,
                );
                Daemon::start_with_config(&data_dir, &config)
            })
            .collect();
        RespOrder { daemons, resp_ports, _directory: directory }
    }

    /// The RESP ports of the herald and of a follower, once a herald is ready.
    fn herald_and_follower(&self) -> (u16, u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let heralds: Vec<usize> = (0..3)
                .filter(|&index| {
                    status(&self.daemons[index])
                        .is_some_and(|status| status["role"] == "herald" && status["ready"] == true)
                })
                .collect();
            if let [herald] = heralds[..] {
                let follower = (herald + 1) % 3;
                return (self.resp_ports[herald], self.resp_ports[follower]);
            }
            assert!(Instant::now() < deadline, "no single ready herald within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_follower_sends_redis_clients_to_the_herald_and_redis_cli_follows() {
    let order = RespOrder::start();
    let (herald, follower) = order.herald_and_follower();
    let mut stream = connect(follower);
    let slot = 12182; // CLUSTER KEYSLOT foo
    expect_replies(
        &mut stream,
        &[&["SET", "foo", "bar"]],
        &format!("-MOVED {slot} 127.0.0.1:{herald}\r\n"),
    );
    let slots =
        resp_ask(follower, &["CLUSTER", "SLOTS"], |reply| reply.matches("$40\r\n").count() == 3);
    assert!(
        slots.starts_with(&format!(
            "*1\r\n*5\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:{herald}\r\n"
        )),
        "CLUSTER SLOTS lists the herald first: {slots:?}"
    );
    if !can_run(tool_available("redis-cli"), "redis_cli_follows_moved", "redis-cli (redis-tools)") {
        return;
    }
    let cli = |words: &[&str]| {
        let port = follower.to_string();
        let output = run_bounded(
            Command::new("redis-cli").args(["-c", "-p", &port]).args(words),
            Duration::from_secs(20),
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(cli(&["SET", "foo", "bar"]), "OK");
    assert_eq!(cli(&["GET", "foo"]), "bar");
    assert_eq!(cli(&["INCR", "visits"]), "1");
}

/// After `READONLY` a follower serves reads itself, linearizably (a follower read: it
/// asks the herald for a read index, then reads what it has applied), while writes and
/// reads without `READONLY` still go to the herald.
#[test]
fn after_readonly_a_follower_serves_linearizable_reads_itself() {
    let order = RespOrder::start();
    let (herald, follower) = order.herald_and_follower();
    let mut writer = connect(herald);
    let mut reader = connect(follower);
    let slot = 12182; // CLUSTER KEYSLOT foo
    expect_replies(
        &mut reader,
        &[&["GET", "foo"]],
        &format!("-MOVED {slot} 127.0.0.1:{herald}\r\n"),
    );
    expect_replies(&mut reader, &[&["READONLY"]], "+OK\r\n");
    for round in 0..20 {
        let value = format!("v{round}");
        expect_replies(&mut writer, &[&["SET", "foo", &value]], "+OK\r\n");
        // The SET was acknowledged: the follower's read must see it, though the follower
        // may not have heard of its commit yet.
        let round = round.to_string();
        let expected =
            format!("${}\r\n{value}\r\n*2\r\n${}\r\n{round}\r\n$-1\r\n", value.len(), round.len());
        expect_replies(&mut writer, &[&["SET", "{foo}n", &round]], "+OK\r\n");
        expect_replies(
            &mut reader,
            &[&["GET", "foo"], &["MGET", "{foo}n", "{foo}none"]],
            &expected,
        );
    }
    expect_replies(
        &mut reader,
        &[&["SET", "foo", "x"], &["READWRITE"], &["GET", "foo"]],
        &format!("-MOVED {slot} 127.0.0.1:{herald}\r\n+OK\r\n-MOVED {slot} 127.0.0.1:{herald}\r\n"),
    );
}

#[test]
fn redis_benchmark_completes_without_errors_and_every_incr_counts_once() {
    if !can_run(
        tool_available("redis-benchmark"),
        "redis_benchmark",
        "redis-benchmark (redis-tools)",
    ) {
        return;
    }
    let order = RespOrder::start();
    let (herald, _) = order.herald_and_follower();
    let requests = 20_000;
    for pipeline in ["1", "16"] {
        let (port, count) = (herald.to_string(), requests.to_string());
        let text = redis_benchmark(
            &["-p", &port, "-t", "set,get,incr", "-n", &count, "-c", "20", "-P", pipeline, "-q"],
            Duration::from_secs(120),
        );
        for test in ["SET", "GET", "INCR"] {
            assert!(text.contains(&format!("{test}: ")), "no {test} figure in:\n{text}");
        }
    }
    // Without -r every INCR hits the one key `counter:__rand_int__`: two runs of
    // `requests` acknowledged increments must leave exactly twice that.
    let mut stream = connect(herald);
    let value = (2 * requests).to_string();
    expect_replies(
        &mut stream,
        &[&["GET", "counter:__rand_int__"]],
        &format!("${}\r\n{value}\r\n", value.len()),
    );
}
