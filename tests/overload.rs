//! Overload without deadlock (issue 12, finding 6): a radiant whose WAL fsyncs slowly,
//! whose queue to the WAL is tiny (as if the disk had stalled long) and whose shard
//! workers apply slowly (test-only switches) is flooded by many pipelined clients, so
//! every queue between its threads fills at once. It must not hang: it
//! keeps answering during the flood, answers at once after it, takes a write, and its
//! memory stays bounded. Before the state thread's completions had a channel of their
//! own, the WAL writer answered on the state thread's bounded inbox, which the flood
//! filled, while the state thread waited on the WAL writer's full queue: no request was
//! answered for as long as the flood lasted.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{run_bounded, write_config, Daemon};

/// The flood: connections, requests in flight on each, seconds.
const CONNECTIONS: &str = "64";
const PIPELINE: &str = "512";
const FLOOD_SECONDS: &str = "4";
/// The radiant must answer this soon after the flood (nothing owed is left but what the
/// slowed WAL still syncs).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// Answers the flood must get (about 40,000 here; none before the fix).
const MIN_ANSWERED: u64 = 1_000;
/// Peak resident memory allowed, in KiB: the queues are bounded, so the flood's memory is.
const MAX_PEAK_RSS_KIB: u64 = 1 << 20;

#[test]
fn a_flooded_radiant_with_a_slow_wal_and_slow_workers_does_not_hang() {
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("radiant");
    let config = write_config(&data_dir, "max_inflight_per_connection = 1024\n");
    let slow = [
        ("RADIANT_TEST_SLOW_WAL_MS", "100"),
        ("RADIANT_TEST_SLOW_WORKER_US", "50"),
        ("RADIANT_TEST_WAL_QUEUE_CAPACITY", "2"),
    ];
    let daemon = Daemon::start_with_environment(&data_dir, &config, &slow);
    daemon.wait_until_ready();
    let address = daemon.client_address.to_string();
    // The flood's own errors (timeouts while the radiant is behind) do not matter here.
    let flood = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_radiant"))
            .args(["bench", "--addr", &address, "--connections", CONNECTIONS])
            .args(["--pipeline", PIPELINE, "--duration", FLOOD_SECONDS, "--warmup", "0"])
            .args(["--value-bytes", "16", "--keys", "1000", "--json"])
            .env("RADIANT_TOKEN", common::ADMIN_TOKEN),
        Duration::from_secs(120),
    );
    let report = String::from_utf8_lossy(&flood.stdout);
    println!("flood: {report}");
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("a JSON report");
    // The radiant keeps answering during the flood. Before the fix it answered nothing:
    // every one of the 32,768 requests in flight timed out, the state thread and the WAL
    // writer each waiting on the other's full queue.
    let answered = report["ops"].as_u64().unwrap_or(0);
    assert!(answered >= MIN_ANSWERED, "the flood got {answered} answers: {report}");

    let started = Instant::now();
    let mut client = loop {
        if let Some(mut client) = daemon.client() {
            if client.ping().is_ok() && client.put(b"after-the-flood", b"v").is_ok() {
                break client;
            }
        }
        assert!(
            started.elapsed() < ANSWER_WITHIN,
            "the radiant hangs after the flood; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(client.get(b"after-the-flood").expect("get").as_deref(), Some(&b"v"[..]));
    let peak = daemon.peak_rss_kib();
    println!("answered {:?} after the flood; peak RSS {peak} KiB", started.elapsed());
    assert!(peak < MAX_PEAK_RSS_KIB, "peak RSS {peak} KiB under the flood");
}

/// Finding 7: memory is bounded per process, not only per connection. Three hundred
/// clients each send the first MiB of a 16 MiB put and stop; without a process-wide
/// budget the radiant would hold all 300 MiB of partial frames. With
/// `max_buffered_bytes = 64 MiB` it holds at most that (plus a small request's headroom
/// per connection), still answers `status` and small requests, and is whole again once
/// they leave.
#[test]
fn clients_together_hold_no_more_than_max_buffered_bytes() {
    const BUDGET_BYTES: u64 = 64 << 20;
    const SENDERS: usize = 300;
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("radiant");
    let config = write_config(&data_dir, &format!("max_buffered_bytes = {BUDGET_BYTES}\n"));
    let daemon = Daemon::start_with_config(&data_dir, &config);
    daemon.wait_until_ready();
    let mut put = bytes::BytesMut::new();
    let value = bytes::Bytes::from(vec![7u8; 16 << 20]);
    let key = bytes::Bytes::from_static(b"big");
    let request = radiant_protocol::ClientRequest::Put { key, value, session: None };
    radiant_protocol::Message::Request(request).encode(1, &mut put);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(daemon.client_address).expect("connect");
            stream.set_write_timeout(Some(Duration::from_secs(5))).expect("timeout");
            // A write the paused radiant no longer takes times out; that is the point.
            let _ = std::io::Write::write_all(&mut stream, &put[..1 << 20]);
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let status = common::status(&daemon).expect("status answers while the budget is spent");
    let memory = &status["memory"];
    println!("memory with {SENDERS} partial 16 MiB puts: {memory}");
    let held = memory["connection_bytes"].as_u64().expect("connection_bytes");
    let headroom = (SENDERS as u64 + 1) * 4096;
    assert!(held >= BUDGET_BYTES / 2, "the senders were not read: {memory}");
    assert!(held <= BUDGET_BYTES + headroom, "over max_buffered_bytes: {memory}");
    assert!(memory["client_reads_paused"].as_u64() > Some(0), "{memory}");
    let peak = daemon.peak_rss_kib();
    println!("peak RSS {peak} KiB");
    assert!(peak < 200 << 10, "peak RSS {peak} KiB with a 64 MiB budget");
    drop(senders);
    let started = Instant::now();
    loop {
        let status = common::status(&daemon);
        let freed = status.as_ref().and_then(|s| s["memory"]["connection_bytes"].as_u64());
        if freed == Some(0) {
            break;
        }
        assert!(started.elapsed() < ANSWER_WITHIN, "the senders' bytes stay held: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut client = daemon.client().expect("client");
    client.put(b"after", b"v").expect("a put once the budget is free");
}
