//! Prometheus metrics on `metrics_addr` (`GET /metrics`, the OpenMetrics text format).
//!
//! Every figure has one owner that counts it where it happens — the reactor (requests,
//! their results and latency, connections, refusals), the WAL writer (fsyncs, their
//! latency and batch size), the state thread (log positions, roles, configuration,
//! shards, replication lag, the disk alarm) — in atomics or `prometheus-client`
//! histograms. A scrape reads them all through one `Collector`, on this module's own
//! thread, so scraping never waits on, or slows, the threads that serve requests.
//!
//! The HTTP side is deliberately tiny: one request per connection, a bounded request
//! head read under a timeout, `GET /metrics` or 404. It serves operators' scrapers on a
//! trusted network; like the admin port, bind it to an address only they reach.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use radiant_protocol::{ClientRequest, ErrorResponse, Message};
use tracing::{info, warn};

use super::memory_budget::MemoryBudget;
use super::reactor::{ReactorCounters, SecurityCounters};
use super::wal_thread::WalCounters;

/// Longest a scraper may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read (a scraper's is a few hundred bytes).
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// What a client request asked for, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOp {
    Get,
    Put,
    Delete,
    Cas,
    Update,
    Batch,
    /// Everything else: ping, status, authentication, admin requests.
    Other,
}

const OPS: [RequestOp; 7] = [
    RequestOp::Get,
    RequestOp::Put,
    RequestOp::Delete,
    RequestOp::Cas,
    RequestOp::Update,
    RequestOp::Batch,
    RequestOp::Other,
];

impl RequestOp {
    /// The operation of `request`.
    pub fn of(request: &ClientRequest) -> RequestOp {
        match request {
            ClientRequest::Get { .. } => RequestOp::Get,
            ClientRequest::Put { .. } => RequestOp::Put,
            ClientRequest::Delete { .. } => RequestOp::Delete,
            ClientRequest::Cas { .. } => RequestOp::Cas,
            ClientRequest::Update { .. } => RequestOp::Update,
            ClientRequest::Batch { .. } => RequestOp::Batch,
            _ => RequestOp::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RequestOp::Get => "get",
            RequestOp::Put => "put",
            RequestOp::Delete => "delete",
            RequestOp::Cas => "cas",
            RequestOp::Update => "update",
            RequestOp::Batch => "batch",
            RequestOp::Other => "other",
        }
    }
}

/// The result labels: `ok`, then each error's name (`ErrorResponse::name`).
const RESULTS: [&str; 8] = [
    "ok",
    "not_herald",
    "wrong_order",
    "locked",
    "unavailable",
    "bad_request",
    "outcome_unknown",
    "unauthorized",
];

fn result_index(message: &Message) -> usize {
    let name = match message {
        Message::Error(error) => ErrorResponse::name(error),
        _ => "ok",
    };
    RESULTS.iter().position(|result| *result == name).unwrap_or(0)
}

/// What the reactor counts: every client request answered, by operation and result,
/// with its latency (from the reactor handing it on to the reactor taking its answer),
/// and, published once a tick, its connection figures.
#[derive(Debug)]
pub struct ReactorMetrics {
    answered: [[AtomicU64; RESULTS.len()]; OPS.len()],
    latency: [Histogram; OPS.len()],
    client_connections: AtomicI64,
    inbound_peer_connections: AtomicI64,
    accepted: AtomicU64,
    refused_at_limit: AtomicU64,
    closed_for_protocol_error: AtomicU64,
    closed_for_slow_reader: AtomicU64,
}

impl Default for ReactorMetrics {
    fn default() -> Self {
        // 50 µs to ~3.3 s in 17 doublings: loopback round trips to stalled disks.
        let latency = std::array::from_fn(|_| Histogram::new(exponential_buckets(5e-5, 2.0, 17)));
        ReactorMetrics {
            answered: Default::default(),
            latency,
            client_connections: AtomicI64::new(0),
            inbound_peer_connections: AtomicI64::new(0),
            accepted: AtomicU64::new(0),
            refused_at_limit: AtomicU64::new(0),
            closed_for_protocol_error: AtomicU64::new(0),
            closed_for_slow_reader: AtomicU64::new(0),
        }
    }
}

impl ReactorMetrics {
    /// A request of `op` was answered with `message` after `latency`.
    pub fn answered(&self, op: RequestOp, message: &Message, latency: Duration) {
        let op = OPS.iter().position(|known| *known == op).unwrap_or(OPS.len() - 1);
        self.answered[op][result_index(message)].fetch_add(1, Ordering::Relaxed);
        self.latency[op].observe(latency.as_secs_f64());
    }

    /// The reactor's own counters and open connections, as they stand.
    pub fn publish(&self, counters: &ReactorCounters, clients: usize, inbound_peers: usize) {
        let store = |atomic: &AtomicU64, value: u64| atomic.store(value, Ordering::Relaxed);
        store(&self.accepted, counters.accepted);
        store(&self.refused_at_limit, counters.refused_at_limit);
        store(&self.closed_for_protocol_error, counters.closed_for_protocol_error);
        store(&self.closed_for_slow_reader, counters.closed_for_slow_reader);
        let count = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.client_connections.store(count(clients), Ordering::Relaxed);
        self.inbound_peer_connections.store(count(inbound_peers), Ordering::Relaxed);
    }
}

/// One member's replication as its herald sees it.
#[derive(Clone, Debug, Default)]
pub struct MemberLag {
    pub member: u64,
    /// Entries the herald holds that the member has not acknowledged.
    pub entries: u64,
    /// Milliseconds since the herald last heard from it.
    pub quiet_ms: u64,
}

/// What the state thread publishes once per loop: the core's figures as they stand.
#[derive(Debug, Default)]
pub struct CoreFigures {
    pub last_index: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub durable_index: AtomicU64,
    pub snapshot_index: AtomicU64,
    pub term: AtomicU64,
    /// 1 while this radiant is its order's herald.
    pub is_herald: AtomicU64,
    /// 1 while this radiant is the controller.
    pub is_controller: AtomicU64,
    /// Times this radiant saw its order's herald change (another one elected or none).
    pub herald_changes: AtomicU64,
    /// Times this radiant became its order's herald.
    pub elections_won: AtomicU64,
    /// The newest committed configuration's number.
    pub configuration: AtomicU64,
    pub shards_served: AtomicU64,
    pub shards_moving: AtomicU64,
    /// Bytes of moving shards this radiant sent (`ShardChunk` frames, as herald of the
    /// order handing them over).
    pub shard_bytes_sent: AtomicU64,
    pub keys: AtomicU64,
    pub disk_free_bytes: AtomicU64,
    /// 1 while the disk-space alarm refuses new data.
    pub disk_alarm: AtomicU64,
    /// This radiant's member id and its order's order id (0 until known).
    pub member: AtomicU64,
    pub order_id: AtomicU64,
    /// The members' replication, when this radiant is the herald (else empty).
    pub member_lag: Mutex<Vec<MemberLag>>,
}

/// Everything a scrape reads.
#[derive(Debug)]
pub struct MetricsSources {
    pub reactor: Arc<ReactorMetrics>,
    pub core: Arc<CoreFigures>,
    pub wal: Arc<WalCounters>,
    pub security: Arc<SecurityCounters>,
    pub memory: Arc<MemoryBudget>,
    /// The data directory, measured at each scrape (WAL and snapshot bytes).
    pub data_dir: PathBuf,
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help): (&str, &str),
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, unit): (&str, &str, Option<&Unit>),
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl MetricsSources {
    fn encode_requests(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let reactor = &self.reactor;
        let help = "Client requests answered, by operation and result (ok or the error)";
        let mut family = encoder.encode_descriptor(
            "radiant_requests",
            help,
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (op, results) in OPS.iter().zip(&reactor.answered) {
            for (result, count) in RESULTS.iter().zip(results) {
                let labels = [("op", op.name()), ("result", *result)];
                ConstCounter::new(count.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let help =
            "Client request latency, from the reactor handing a request on to it taking the answer";
        let latency = &reactor.latency;
        let mut family = encoder.encode_descriptor(
            "radiant_request_duration",
            help,
            Some(&Unit::Seconds),
            latency[0].metric_type(),
        )?;
        for (op, histogram) in OPS.iter().zip(latency) {
            histogram.encode(family.encode_family(&[("op", op.name())])?)?;
        }
        Ok(())
    }

    fn encode_connections(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let reactor = &self.reactor;
        let mut family = encoder.encode_descriptor(
            "radiant_connections",
            "Open connections, by kind (client includes RESP; peer_inbound are links peers opened)",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (kind, open) in [
            ("client", &reactor.client_connections),
            ("peer_inbound", &reactor.inbound_peer_connections),
        ] {
            ConstGauge::new(open.load(Ordering::Relaxed))
                .encode(family.encode_family(&[("kind", kind)])?)?;
        }
        counter(
            encoder,
            ("radiant_connections_accepted", "Connections accepted"),
            reactor.accepted.load(Ordering::Relaxed),
        )?;
        let security = &self.security;
        let load = |atomic: &AtomicU64| atomic.load(Ordering::Relaxed);
        let mut family = encoder.encode_descriptor(
            "radiant_refused",
            "Connections, links, frames and requests refused or closed, by reason",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (reason, value) in [
            ("connection_limit", load(&reactor.refused_at_limit)),
            ("protocol_error", load(&reactor.closed_for_protocol_error)),
            ("slow_reader", load(&reactor.closed_for_slow_reader)),
            ("peer_connection_limit", load(&security.peer_connections_refused)),
            ("link_refused", load(&security.links_refused)),
            ("link_handshake_timeout", load(&security.handshake_timeouts)),
            ("unauthenticated_frame", load(&security.unauthenticated_frames)),
            ("failed_authentication", load(&security.failed_authentications)),
            ("unauthorized_request", load(&security.unauthorized_requests)),
        ] {
            ConstCounter::new(value).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        Ok(())
    }

    fn encode_storage(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let wal = &self.wal;
        counter(
            encoder,
            ("radiant_wal_fsyncs", "fsyncs of the write-ahead log"),
            wal.syncs.load(Ordering::Relaxed),
        )?;
        counter(
            encoder,
            ("radiant_wal_entries_synced", "Log entries made durable"),
            wal.entries.load(Ordering::Relaxed),
        )?;
        let histogram = &wal.fsync_seconds;
        histogram.encode(encoder.encode_descriptor(
            "radiant_wal_fsync_duration",
            "Time one fsync of the write-ahead log took",
            Some(&Unit::Seconds),
            histogram.metric_type(),
        )?)?;
        let histogram = &wal.sync_batch_entries;
        histogram.encode(encoder.encode_descriptor(
            "radiant_wal_fsync_batch_entries",
            "Log entries one fsync made durable (group commit)",
            None,
            histogram.metric_type(),
        )?)?;
        Ok(())
    }

    fn encode_disk_and_memory(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "radiant_data_dir",
            "Bytes in the data directory, by part (wal, snapshots, other), measured at the scrape",
            Some(&Unit::Bytes),
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (part, bytes) in data_dir_parts(&self.data_dir) {
            ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX))
                .encode(family.encode_family(&[("part", part)])?)?;
        }
        let core = &self.core;
        let load = |atomic: &AtomicU64| atomic.load(Ordering::Relaxed);
        gauge(
            encoder,
            (
                "radiant_disk_free",
                "Bytes free in the data directory's file system",
                Some(&Unit::Bytes),
            ),
            load(&core.disk_free_bytes),
        )?;
        gauge(
            encoder,
            (
                "radiant_disk_alarm",
                "1 while the disk-space alarm refuses new data (min_free_bytes)",
                None,
            ),
            load(&core.disk_alarm),
        )?;
        let used = self.memory.in_use_bytes() as u64;
        let limit = self.memory.max_buffered_bytes() as u64;
        gauge(
            encoder,
            (
                "radiant_memory_budget_used",
                "Client bytes held (buffers and queued requests) against max_buffered_bytes",
                Some(&Unit::Bytes),
            ),
            used,
        )?;
        gauge(
            encoder,
            ("radiant_memory_budget_limit", "max_buffered_bytes", Some(&Unit::Bytes)),
            limit,
        )?;
        Ok(())
    }

    fn encode_core(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let core = &self.core;
        let load = |atomic: &AtomicU64| atomic.load(Ordering::Relaxed);
        for (name, help, atomic) in [
            ("radiant_log_last_index", "Last index in this radiant's log", &core.last_index),
            ("radiant_log_commit_index", "Highest index known committed", &core.commit_index),
            (
                "radiant_log_applied_index",
                "Highest index applied to the state machine",
                &core.applied_index,
            ),
            (
                "radiant_log_durable_index",
                "Highest index durable on this radiant's disk",
                &core.durable_index,
            ),
            ("radiant_log_snapshot_index", "Index of the newest snapshot", &core.snapshot_index),
            (
                "radiant_order_term",
                "The order's current term (each election raises it)",
                &core.term,
            ),
            ("radiant_is_herald", "1 while this radiant is its order's herald", &core.is_herald),
            (
                "radiant_is_controller",
                "1 while this radiant is the shard controller",
                &core.is_controller,
            ),
            (
                "radiant_configuration",
                "Number of the newest committed configuration",
                &core.configuration,
            ),
            ("radiant_shards_served", "Shards this radiant's order serves", &core.shards_served),
            (
                "radiant_shards_moving",
                "Shards this radiant's order is receiving or handing over",
                &core.shards_moving,
            ),
            ("radiant_keys", "Keys held by this radiant", &core.keys),
        ] {
            gauge(encoder, (name, help, None), load(atomic))?;
        }
        counter(
            encoder,
            ("radiant_herald_changes", "Times this radiant saw its order's herald change"),
            load(&core.herald_changes),
        )?;
        counter(
            encoder,
            ("radiant_elections_won", "Times this radiant became its order's herald"),
            load(&core.elections_won),
        )?;
        counter(
            encoder,
            ("radiant_shard_bytes_sent", "Bytes of moving shards sent to the orders gaining them"),
            load(&core.shard_bytes_sent),
        )?;
        Ok(())
    }

    fn encode_replication(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let member = self.core.member.load(Ordering::Relaxed).to_string();
        let order_id = self.core.order_id.load(Ordering::Relaxed).to_string();
        let mut family = encoder.encode_descriptor(
            "radiant_info",
            "Always 1; labels name this radiant's member id and order (0 until known), to join on",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        let labels = [("member", member.as_str()), ("order", order_id.as_str())];
        ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
        let lag = self.core.member_lag.lock().clone();
        let mut family = encoder.encode_descriptor(
            "radiant_replication_lag_entries",
            "Entries a member has not acknowledged (on the herald only)",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for member in &lag {
            let id = member.member.to_string();
            let value = i64::try_from(member.entries).unwrap_or(i64::MAX);
            ConstGauge::new(value).encode(family.encode_family(&[("member", id.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "radiant_replication_quiet",
            "Time since the herald last heard from a member (on the herald only)",
            Some(&Unit::Seconds),
            ConstGauge::new(0.0f64).metric_type(),
        )?;
        for member in &lag {
            let id = member.member.to_string();
            let seconds = member.quiet_ms as f64 / 1000.0;
            ConstGauge::new(seconds).encode(family.encode_family(&[("member", id.as_str())])?)?;
        }
        Ok(())
    }
}

impl Collector for MetricsSources {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.encode_requests(&mut encoder)?;
        self.encode_connections(&mut encoder)?;
        self.encode_storage(&mut encoder)?;
        self.encode_disk_and_memory(&mut encoder)?;
        self.encode_core(&mut encoder)?;
        self.encode_replication(&mut encoder)
    }
}

/// Bytes of the WAL directory, the snapshot directory and the rest of `data_dir`.
/// One walk of `data_dir`, each top-level entry counted under its part.
fn data_dir_parts(data_dir: &std::path::Path) -> [(&'static str, u64); 3] {
    let mut parts = [("wal", 0u64), ("snapshots", 0), ("other", 0)];
    let entries = std::fs::read_dir(data_dir).into_iter().flatten().flatten();
    for entry in entries {
        let bytes = match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => super::directory_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        };
        let part = match entry.file_name().to_str() {
            Some("wal") => 0,
            Some("snapshots") => 1,
            _ => 2,
        };
        parts[part].1 += bytes;
    }
    parts
}

/// Serves scrapes on `listener` on a thread of its own for the life of the process.
pub fn serve(listener: TcpListener, sources: MetricsSources) -> std::io::Result<()> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources));
    if let Ok(address) = listener.local_addr() {
        info!(%address, "metrics: serving GET /metrics");
    }
    std::thread::Builder::new().name("radiant-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    if let Err(error) = answer(stream, &registry) {
                        warn!(%error, "metrics: a scrape failed");
                    }
                }
                Err(error) => warn!(%error, "metrics: cannot accept a scrape"),
            }
        }
    })?;
    Ok(())
}

/// Reads one request head (bounded in size and time) and answers it.
fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD_BYTES {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", "");
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(chunk.get(..read).unwrap_or_default());
    }
    let request_line = head.split(|byte| *byte == b'\r').next().unwrap_or_default();
    let mut words = request_line.split(|byte| *byte == b' ');
    let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    if method != b"GET" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET\n");
    }
    if path != b"/metrics" {
        return respond(&mut stream, "404 Not Found", "text/plain", "see /metrics\n");
    }
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, registry)
        .map_err(|_| std::io::Error::other("encoding the metrics failed"))?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    respond(&mut stream, "200 OK", content_type, &body)
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}
