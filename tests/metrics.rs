//! Prometheus metrics on a real daemon: `GET /metrics` on `metrics_addr` parses with the
//! Prometheus project's own OpenMetrics parser (Python's `prometheus_client`, which
//! `.ci/run` installs into `target/resp-venv`), and the figures move when load runs:
//! requests by operation and result, their latency, fsyncs, log positions, keys. Other
//! paths get 404, other methods 405, an endless request head 431.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_port, run_bounded, Daemon};

/// Puts, then gets, of the load between the two scrapes.
const KEYS: u64 = 200;

/// One HTTP request to `port`; the whole answer.
fn http(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics_addr");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Scrapes `/metrics` and parses it with the real parser: every sample by name and labels.
fn scrape(port: u16, python: &Path, root: &Path) -> BTreeMap<String, f64> {
    let answer = http(port, b"GET /metrics HTTP/1.1\r\nHost: radiant\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    let file = root.join("scrape.txt");
    std::fs::write(&file, body).expect("write the scrape");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/parse_metrics.py");
    let output = run_bounded(Command::new(python).arg(&script).arg(&file), Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the parser refused the scrape: {stderr}\n{body}");
    serde_json::from_slice(&output.stdout).expect("the parser's JSON")
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| panic!("no sample {key}; have {:?}", samples.keys()))
}

#[test]
fn metrics_parse_with_the_prometheus_parser_and_move_under_load() {
    let Some(python) = common::python_with("prometheus_client.openmetrics.parser") else {
        common::can_run(false, "metrics", "a Python with prometheus_client (.ci/run makes one)");
        return;
    };
    let root = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let extra = format!("metrics_addr = \"127.0.0.1:{port}\"\n");
    let daemon = Daemon::start(&root.path().join("radiant"), &extra);
    let before = scrape(port, &python, root.path());

    let mut client = daemon.connect();
    for key in 0..KEYS {
        client.put(format!("key-{key}").as_bytes(), b"value").expect("put");
    }
    for key in 0..KEYS {
        client.get(format!("key-{key}").as_bytes()).expect("get");
    }
    let after = scrape(port, &python, root.path());

    let grew = |key: &str| sample(&after, key) - sample(&before, key);
    let puts = r#"radiant_requests_total{op="put",result="ok"}"#;
    assert!(grew(puts) >= KEYS as f64, "{puts} grew by {}", grew(puts));
    let gets = r#"radiant_requests_total{op="get",result="ok"}"#;
    assert!(grew(gets) >= KEYS as f64, "{gets} grew by {}", grew(gets));
    let put_latency = r#"radiant_request_duration_seconds_count{op="put"}"#;
    assert!(grew(put_latency) >= KEYS as f64, "{put_latency} grew by {}", grew(put_latency));
    assert!(grew(r#"radiant_request_duration_seconds_sum{op="put"}"#) > 0.0);
    let fsyncs = "radiant_wal_fsyncs_total{}";
    assert!(grew(fsyncs) >= 1.0, "no fsync counted: {}", grew(fsyncs));
    assert!(grew("radiant_wal_fsync_duration_seconds_count{}") >= 1.0);
    assert!(grew("radiant_log_commit_index{}") >= KEYS as f64);
    assert_eq!(sample(&after, "radiant_keys{}"), KEYS as f64);
    assert_eq!(sample(&after, "radiant_is_herald{}"), 1.0);
    assert_eq!(sample(&after, "radiant_shards_served{}"), 64.0);
    assert!(sample(&after, "radiant_configuration{}") >= 1.0);
    assert!(sample(&after, r#"radiant_data_dir_bytes{part="wal"}"#) > 0.0);
    assert!(sample(&after, r#"radiant_connections{kind="client"}"#) >= 1.0);
    assert!(sample(&after, "radiant_disk_free_bytes{}") > 0.0);
    assert_eq!(sample(&after, "radiant_disk_alarm{}"), 0.0);
    assert_eq!(sample(&after, r#"radiant_info{member="1",order="1"}"#), 1.0);

    assert!(http(port, b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(port, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    // Exactly the limit, all of it read before the answer (more, left unread, would make
    // the close a reset that could beat the answer to the test).
    let endless = vec![b'a'; 8 * 1024];
    assert!(http(port, &endless).starts_with("HTTP/1.1 431"), "an endless head was read");
    // Still serving after all that.
    scrape(port, &python, root.path());
    client.ping().expect("the radiant still answers");
}
