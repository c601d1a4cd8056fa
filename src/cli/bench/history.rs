//! `radiant bench --history FILE`: load that is checked, not only timed.
//!
//! Each connection is a full client (`client::Client`): it finds the order owning each
//! key from the shard map, follows `WrongOrder` and `NotHerald`, backs off on
//! `Locked` and `Unavailable`, and sends every write with its session so a retry
//! applies once. So this mode rides through herald failovers and shard moves, where the
//! pipelined mode only counts refusals. Every put writes a value no other put writes,
//! and every operation goes to FILE as a history line (`sim::history` format) for
//! `radiant check-history`. One request in flight per connection.

use std::fs::File;
use std::io::BufWriter;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{histogram, on_threads, Settings, GET_RATIO_SCALE};
use crate::client::Client;
use crate::core::prng::Prng;
use crate::sim::history::{write_jsonl, OpKind, Operation};

/// Deadline of one operation, retries included: long enough to ride out a herald
/// election or a shard move.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// What one connection did.
struct Lane {
    operations: Vec<Operation>,
    latency_us: Histogram<u64>,
    failed: u64,
    first_error: Option<String>,
}

/// Runs the checked load and writes the history to `path`. Exit status 0 only when
/// every operation was answered (none failed or timed out).
pub(super) fn run(settings: &Settings, path: &std::path::Path) -> Result<u8, String> {
    let file = File::create(path)
        .map_err(|error| format!("cannot create history file {}: {error}", path.display()))?;
    let start = Instant::now();
    let end = start + settings.warmup + settings.duration;
    let lanes: Vec<usize> = (0..settings.connections).collect();
    let results = on_threads("bench-history", lanes, |index, _| lane(settings, index, start, end))?;
    let elapsed_s = start.elapsed().as_secs_f64().max(1e-9);
    let mut operations = Vec::new();
    let mut latency_us = histogram();
    let (mut failed, mut first_error) = (0, None);
    for result in results {
        let result = result?;
        operations.extend(result.operations);
        latency_us.add(&result.latency_us).map_err(|error| error.to_string())?;
        failed += result.failed;
        first_error = first_error.or(result.first_error);
    }
    let mut writer = BufWriter::new(file);
    write_jsonl(&operations, &mut writer)
        .map_err(|error| format!("cannot write history file {}: {error}", path.display()))?;
    let completed = operations.len() as u64 - failed;
    let report = serde_json::json!({
        "mode": "history",
        "history": path.display().to_string(),
        "operations": operations.len(),
        "completed": completed,
        "failed": failed,
        "first_error": first_error,
        "ops_per_s": (completed as f64 / elapsed_s).round(),
        "p50_us": latency_us.value_at_quantile(0.5),
        "p99_us": latency_us.value_at_quantile(0.99),
        "max_us": latency_us.max(),
    });
    if settings.json {
        println!("{report}");
    } else {
        println!(
            "history mode: {} operations, {completed} answered, {failed} failed, {} ops/s; \
             latency p50 {} us, p99 {} us, max {} us; history in {}",
            operations.len(),
            report["ops_per_s"],
            report["p50_us"],
            report["p99_us"],
            report["max_us"],
            path.display()
        );
        if let Some(error) = &first_error {
            println!("first failure: {error}");
        }
    }
    Ok(u8::from(failed > 0 || completed == 0))
}

fn lane(settings: &Settings, index: usize, start: Instant, end: Instant) -> Result<Lane, String> {
    let options = settings.client_options(OPERATION_TIMEOUT);
    let mut client = Client::connect(&settings.address, options).map_err(|e| e.to_string())?;
    let mut prng = Prng::new(settings.seed ^ index as u64);
    let mut lane =
        Lane { operations: Vec::new(), latency_us: histogram(), failed: 0, first_error: None };
    let client_id = index as u64 + 1;
    let pad = settings.value.len();
    // Bounded by time and by the operation cap.
    for sequence in 0..settings.max_ops {
        if Instant::now() >= end {
            break;
        }
        let key = settings.key(prng.range(0, settings.keys));
        let get = prng.chance(settings.get_chance, GET_RATIO_SCALE);
        let value = (!get).then(|| format!("{:<pad$}", format!("c{client_id}-{sequence}")));
        let call = Instant::now();
        let outcome = match &value {
            None => client.get_with(&key, settings.reads.pick(&mut prng)).map(Some),
            Some(value) => client.put(&key, value.as_bytes()).map(|()| None),
        };
        let returned = Instant::now();
        let nanos = |at: Instant| at.duration_since(start).as_nanos() as u64;
        let mut operation = Operation {
            client: client_id,
            op: if get { OpKind::Get } else { OpKind::Put },
            key: String::from_utf8_lossy(&key).into_owned(),
            value: value.clone(),
            expected: None,
            call_ns: nanos(call),
            return_ns: None,
            output: None,
            ok: false,
        };
        match outcome {
            Ok(read) => {
                operation.return_ns = Some(nanos(returned));
                operation.ok = true;
                operation.output =
                    read.flatten().map(|value| String::from_utf8_lossy(&value).into_owned());
                let micros = returned.duration_since(call).as_micros() as u64;
                let _ = lane.latency_us.record(micros.max(1));
            }
            Err(error) => {
                lane.failed += 1;
                lane.first_error.get_or_insert_with(|| error.to_string());
            }
        }
        lane.operations.push(operation);
    }
    Ok(lane)
}
