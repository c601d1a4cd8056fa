//! `radiant bench` against a real daemon: it reports rates and latencies as one JSON
//! line, stops at exactly `--ops` measured operations, and fails cleanly without a server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{run_bounded, Daemon};

/// Longest one bench run may take before the test kills it.
const BENCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `radiant bench ARGS`; returns the exit code, stdout and stderr.
fn bench(args: &[&str]) -> (i32, String, String) {
    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_radiant")).arg("bench").args(args),
        BENCH_TIMEOUT,
    );
    let code = output.status.code().expect("exited normally");
    (
        code,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn parse(stdout: &str) -> serde_json::Value {
    let mut lines = stdout.lines();
    let line = lines.next().expect("one JSON line");
    assert_eq!(lines.next(), None, "exactly one line: {stdout}");
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))
}

fn number(report: &serde_json::Value, field: &str) -> f64 {
    report[field].as_f64().unwrap_or_else(|| panic!("`{field}` is not a number in {report}"))
}

#[test]
fn mixed_load_with_prefill_reports_puts_and_gets_without_errors() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), "");
    let address = daemon.client_address.to_string();
    let (code, stdout, stderr) = bench(&[
        "--addr",
        &address,
        "--connections",
        "4",
        "--duration",
        "2",
        "--get-ratio",
        "0.5",
        "--reads",
        "mixed",
        "--prefill",
        "--keys",
        "1000",
        "--json",
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let report = parse(&stdout);
    assert_eq!(report["reads"], "mixed", "{report}");
    assert!(number(&report, "puts_per_s") > 0.0, "{report}");
    assert!(number(&report, "gets_per_s") > 0.0, "{report}");
    for prefix in ["put_", "get_", ""] {
        let p50 = number(&report, &format!("{prefix}p50_us"));
        let p99 = number(&report, &format!("{prefix}p99_us"));
        let max = number(&report, &format!("{prefix}max_us"));
        assert!(p50 <= p99 && p99 <= max, "{prefix}: {report}");
    }
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    assert_eq!(number(&report, "prefill_puts"), 1000.0, "{report}");
    assert_eq!(number(&report, "get_misses"), 0.0, "prefill makes gets hit: {report}");
    assert_eq!(number(&report, "connections"), 4.0);
    assert!(number(&report, "client_cpu_s") >= 0.0, "{report}");
}

#[test]
fn ops_limit_measures_exactly_that_many_pipelined_operations() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), "");
    let address = daemon.client_address.to_string();
    let (code, stdout, stderr) = bench(&[
        "--addr",
        &address,
        "--connections",
        "4",
        "--ops",
        "500",
        "--pipeline",
        "8",
        "--warmup",
        "0",
        "--get-ratio",
        "0.3",
        "--json",
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let report = parse(&stdout);
    assert_eq!(number(&report, "measured_ops"), 500.0, "{report}");
    assert_eq!(number(&report, "errors"), 0.0, "{report}");
    let recorded = number(&report, "put_ops") + number(&report, "get_ops");
    assert_eq!(recorded, 500.0, "{report}");
    assert_eq!(number(&report, "ops"), 500.0, "{report}");
    assert_eq!(number(&report, "pipeline"), 8.0);
}

#[test]
fn human_report_has_a_line_per_class() {
    let directory = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&directory.path().join("radiant"), "");
    let address = daemon.client_address.to_string();
    let (code, stdout, stderr) =
        bench(&["--addr", &address, "--connections", "2", "--ops", "200", "--warmup", "0"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    for prefix in ["puts:", "gets:", "total:", "errors: 0", "client cpu:"] {
        assert!(
            stdout.lines().any(|line| line.starts_with(prefix)),
            "no `{prefix}` line in:\n{stdout}"
        );
    }
    assert!(stdout.contains("p99.9"), "{stdout}");
}

#[test]
fn without_a_server_it_exits_1_with_a_reason() {
    // Bind and drop a listener to find a port nobody is listening on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    drop(listener);
    let (code, stdout, stderr) = bench(&["--addr", &address, "--duration", "1", "--json"]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("no connection"), "{stderr}");
}

#[test]
fn rejects_arguments_out_of_range() {
    for args in [
        &["--connections", "0"][..],
        &["--connections", "1025"],
        &["--get-ratio", "1.5"],
        &["--key-bytes", "4"],
        &["--keys", "0"],
        &["--duration", "0"],
        &["--pipeline", "0"],
    ] {
        let (code, _, stderr) = bench(args);
        assert_ne!(code, 0, "{args:?} accepted");
        assert!(!stderr.is_empty(), "{args:?}: no reason given");
    }
}
