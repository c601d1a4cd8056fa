//! Readiness on real daemons: a radiant that has not adopted a configuration yet (just
//! started, still forming) refuses keyed requests as "not ready" (`Unavailable`, retry)
//! and never with `WrongOrder` for configuration 0; `radiant status` says whether it is
//! ready and why not; `radiant bench --prefill` and the client library load a radiant
//! the moment it answers a ping, on a debug build, every time.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{radiant, run_bounded, write_config, Daemon};
use radiant_protocol::{ClientRequest, ClientResponse, ErrorResponse, Message};

/// Starts in a row, each loaded at once.
const STARTS: usize = 20;
/// Keys each start's prefill puts.
const PREFILL_KEYS: u64 = 200;

/// Starts a single-node system and returns it as soon as it answers a ping, before it
/// is necessarily ready.
fn start_unready(root: &std::path::Path, name: &str) -> Daemon {
    let data_dir = root.join(name);
    let config = write_config(&data_dir, "");
    Daemon::start_with_config(&data_dir, &config)
}

/// One put sent with no retry: its answer as the radiant gave it.
fn raw_put(daemon: &Daemon) -> Message {
    let mut client = daemon.connect();
    let request = ClientRequest::Put {
        key: Bytes::from_static(b"first"),
        value: Bytes::from_static(b"v"),
        session: None,
    };
    let correlation_id = client.send(&request).expect("send");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    client.receive(correlation_id, deadline).expect("an answer")
}

#[test]
fn a_radiant_loaded_the_moment_it_answers_serves_every_request_twenty_times_in_a_row() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut refused_not_ready = 0;
    for start in 0..STARTS {
        let daemon = start_unready(root.path(), &format!("radiant-{start}"));
        match raw_put(&daemon) {
            Message::Response(ClientResponse::PutResult) => {}
            Message::Error(ErrorResponse::Unavailable { reason })
                if reason.starts_with("not ready") =>
            {
                refused_not_ready += 1;
            }
            other => panic!("start {start}: the first put got {other:?}; log:\n{}", daemon.log()),
        }
        let address = daemon.client_address.to_string();
        let keys = PREFILL_KEYS.to_string();
        let output = run_bounded(
            std::process::Command::new(env!("CARGO_BIN_EXE_radiant")).args([
                "bench",
                "--addr",
                &address,
                "--connections",
                "2",
                "--prefill",
                "--keys",
                &keys,
                "--ops",
                "100",
                "--warmup",
                "0",
                "--json",
            ]),
            Duration::from_secs(60),
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "start {start}: bench failed: {stdout}\n{stderr}");
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
        assert_eq!(report["prefill_puts"], PREFILL_KEYS, "start {start}: {report}");
        assert_eq!(report["prefill_errors"], 0, "start {start}: {report}");
        assert_eq!(report["errors"], 0, "start {start}: {report}");
        // The client library rides through "not ready" as well.
        let mut client = daemon.connect();
        client.put(b"after", b"bench").expect("put");
        assert_eq!(client.get(b"after").expect("get").as_deref(), Some(&b"bench"[..]));
    }
    println!("{refused_not_ready} of {STARTS} first puts were refused as not ready");
}

#[test]
fn status_says_whether_a_radiant_is_ready_and_why_not() {
    let root = tempfile::tempdir().expect("temp dir");
    // bootstrap_expect = 2 with no partner: the radiant forms nothing and stays unready.
    let data_dir = root.path().join("waiting");
    let config = write_config(&data_dir, "bootstrap_expect = 2\ntick_ms = 10\n");
    let waiting = Daemon::start_with_config(&data_dir, &config);
    let address = waiting.client_address.to_string();
    let (code, json, stderr) = radiant(&["status", "--json", "--addr", &address]);
    assert_eq!(code, 0, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(status["ready"], false, "{status}");
    let reason = status["not_ready"].as_str().unwrap_or_default();
    assert!(reason.contains("forming a system") && reason.contains("bootstrap_expect"), "{reason}");
    let (code, table, stderr) = radiant(&["status", "--addr", &address]);
    assert_eq!(code, 0, "{stderr}");
    assert!(table.contains("NOT READY: ") && table.contains("forming a system"), "{table}");
    let (code, _, stderr) = radiant(&["put", "k", "v", "--addr", &address, "--timeout", "1"]);
    assert_eq!(code, 1, "an unready radiant must not take a put");
    assert!(stderr.contains("forming a system"), "the reason reaches the user: {stderr}");

    let ready = Daemon::start(&root.path().join("single"), "");
    let address = ready.client_address.to_string();
    let (code, json, _) = radiant(&["status", "--json", "--addr", &address]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(status["ready"], true, "{status}");
    assert!(status["not_ready"].is_null(), "{status}");
    let (_, table, _) = radiant(&["status", "--addr", &address]);
    assert!(table.lines().any(|line| line.starts_with("ready")), "{table}");
}
