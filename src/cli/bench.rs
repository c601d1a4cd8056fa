//! `radiant bench`: an end-to-end load generator for a running radiant.
//!
//! What it measures: the rate of successful `Put`s and linearizable `Get`s one client
//! process can push through the radiant's client port, and the latency of each request
//! from the moment it is written to the socket to the moment its answer is decoded, in
//! microseconds, as HdrHistogram percentiles (3 significant digits, up to 60 s) kept per
//! thread and merged at the end, separately for puts, gets and both together.
//!
//! How: one thread and one TCP connection per `--connections`; each keeps up to
//! `--pipeline` requests in flight (send until the window is full, then read one answer,
//! record it, send the next). Answers are matched to requests by correlation id, so a
//! server that answers out of order is measured correctly. Keys are drawn from
//! `--keys` by a PRNG seeded with `seed ^ connection`, so a run's key sequence is
//! reproducible. Requests written during `--warmup` are not recorded; requests written in
//! the window but answered after it ends are counted as late, not recorded, so the rate is
//! recorded operations divided by the window, as in the anchor load generator.
//!
//! How it differs from the etcd anchor (`/work/shared/bench/loadgen`, `etcd-put`): that
//! generator runs N logical clients with exactly one request in flight each, multiplexed
//! on a single-threaded tokio runtime over a few gRPC connections, and sorts raw latency
//! samples. Here every connection is its own OS thread with its own socket, and with
//! `--pipeline` above 1 a connection has several requests in flight, which the anchor never
//! does; compare pipeline 1 runs with the anchor's `--clients N`. Both report the client's
//! own CPU seconds, because on a shared 2-core machine the load generator competes with
//! the server it measures.
//!
//! It must not hide trouble: every loop is bounded by time and by an operation count,
//! each request times out after 10 s, errors are counted by kind, a broken connection
//! is replaced (a bounded number of times), and the exit status is 1 when nothing
//! succeeded, more than 1% of the measured operations failed, or every connection gave
//! up before the window closed.

mod history;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use radiant_protocol::{ClientRequest, ClientResponse, ErrorResponse, Message, ReadConsistency};

use crate::client::{member_client_addresses, Client, ClientError, ClientOptions};
use crate::core::prng::Prng;

/// Most connections (and threads) one run may open.
const MAX_CONNECTIONS: u32 = 1024;
/// Most requests one connection may have in flight.
const MAX_PIPELINE: u32 = 1024;
/// The measured-operation cap when `--ops` is not given.
const DEFAULT_MAX_OPS: u64 = 50_000_000;
/// The measured window when `--duration` is not given and `--ops` is not either.
const DEFAULT_DURATION_S: f64 = 10.0;
/// The measured window of a run bounded by `--ops` alone.
const OPS_ONLY_DURATION_S: f64 = 3_600.0;
/// Longest `--duration` accepted.
const MAX_DURATION_S: f64 = 86_400.0;
/// Longest `--warmup` accepted.
const MAX_WARMUP_S: f64 = 600.0;
/// Largest key space accepted.
const MAX_KEYS: u64 = 100_000_000;
/// Shortest key: `k` and seven digits, like the etcd anchor's 8-byte keys.
const MIN_KEY_BYTES: u32 = 8;
/// Longest key accepted (far below the protocol's limit; longer keys measure nothing new).
const MAX_KEY_BYTES: u32 = 1024;
/// One request's deadline; past it the request counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Replacement connections one thread may open before it gives up.
const MAX_RECONNECTS: u32 = 32;
/// First wait before reconnecting.
const RECONNECT_BACKOFF_INITIAL: Duration = Duration::from_millis(20);
/// Longest wait between reconnects.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Longest the prefill may take.
const PREFILL_TIMEOUT: Duration = Duration::from_secs(600);
/// Wait before the prefill resends puts a radiant refused as not ready or locked.
const PREFILL_RESEND_BACKOFF: Duration = Duration::from_millis(20);
/// Longest a run waits for the radiants it loads to be ready (`radiant status`).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Highest latency a histogram tracks; slower answers are recorded as this.
const HISTOGRAM_MAX_US: u64 = 60_000_000;
/// Significant digits kept by the histograms.
const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;
/// `--get-ratio` is applied as an integer chance out of this.
const GET_RATIO_SCALE: u64 = 1_000_000;
/// Clock ticks per second of `/proc/self/stat` (USER_HZ, fixed at 100 in Linux's ABI).
const USER_HZ: f64 = 100.0;
/// Stack of each load thread; they keep their state on the heap.
const THREAD_STACK_BYTES: usize = 256 * 1024;

const _: () = assert!(MIN_KEY_BYTES >= 2);
const _: () = assert!(DEFAULT_DURATION_S <= MAX_DURATION_S);
const _: () = assert!(OPS_ONLY_DURATION_S <= MAX_DURATION_S);

/// Arguments of `radiant bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Client address of the radiant to load.
    #[arg(long, default_value = "127.0.0.1:7401")]
    addr: String,
    /// Connections, one thread each.
    #[arg(long, default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS)))]
    connections: u32,
    /// Seconds to measure [default: 10; 3600 when only --ops is given].
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many measured operations [default: 50000000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    ops: Option<u64>,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Fraction of operations that are gets (the rest are puts).
    #[arg(long, default_value_t = 0.0)]
    get_ratio: f64,
    /// How the gets read: `linearizable` (read index), `lease` (the herald's lease),
    /// `mixed` (each get picks one of the two at random), or `follower` (follower reads:
    /// the connections are spread over every member of each order, and each member
    /// serves its reads itself after asking the herald for a read index; needs
    /// `--get-ratio 1`, since a follower refuses puts).
    #[arg(long, value_enum, default_value_t = Reads::Linearizable)]
    reads: Reads,
    /// Size of the key space.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Bytes per key (`k` and a zero-padded decimal index).
    #[arg(long, default_value_t = 8,
          value_parser = clap::value_parser!(u32)
              .range(i64::from(MIN_KEY_BYTES)..=i64::from(MAX_KEY_BYTES)))]
    key_bytes: u32,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_bytes: u32,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PIPELINE)))]
    pipeline: u32,
    /// Put every key once before measuring, so gets find a value.
    #[arg(long)]
    prefill: bool,
    /// Seed of the key choices (each connection uses seed ^ its index).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON line instead of the human report.
    #[arg(long)]
    json: bool,
    /// Checked load: each connection is a full client (follows shard moves and herald
    /// changes, retries writes exactly once) and every operation is written to this
    /// file as a history for `radiant check-history`. One request in flight each.
    #[arg(long)]
    history: Option<std::path::PathBuf>,
    /// A file holding the token to present (the client token); default: the
    /// RADIANT_TOKEN environment variable, if set.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Speak TLS 1.3, trusting the CA certificate (PEM) in this file.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
}

/// The `--reads` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Reads {
    Linearizable,
    Lease,
    Mixed,
    Follower,
}

impl Reads {
    /// The consistency of the next get.
    fn pick(self, prng: &mut Prng) -> ReadConsistency {
        match self {
            Reads::Linearizable => ReadConsistency::Linearizable,
            Reads::Lease => ReadConsistency::Lease,
            Reads::Mixed if prng.chance(1, 2) => ReadConsistency::Lease,
            Reads::Mixed => ReadConsistency::Linearizable,
            Reads::Follower => ReadConsistency::Follower,
        }
    }
}

/// Validated settings of a run.
struct Settings {
    address: String,
    connections: usize,
    duration: Duration,
    max_ops: u64,
    warmup: Duration,
    get_ratio: f64,
    get_chance: u64,
    reads: Reads,
    keys: u64,
    key_bytes: usize,
    value: Bytes,
    pipeline: usize,
    prefill: bool,
    seed: u64,
    json: bool,
    /// Per connection, the order it loads, when the system has several (see `Routes`).
    routes: Option<Routes>,
    /// The token every connection presents.
    token: Option<Bytes>,
    /// TLS for every connection, when `--tls-ca` is given.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Settings {
    /// Client options with `timeout` and the run's token.
    fn client_options(&self, timeout: Duration) -> ClientOptions {
        let (token, tls) = (self.token.clone(), self.tls.clone());
        ClientOptions { timeout, token, tls, ..ClientOptions::default() }
    }
}

/// Load on a formed system: connection `i` talks to the herald of order `i mod k` and
/// uses only keys of that order's shards, so no request is refused with `WrongOrder` or
/// `NotHerald`, and every order gets the same number of connections.
#[derive(Debug)]
struct Routes {
    /// Per order: the address the connections use (its herald) and its key indices.
    orders: Vec<(String, Vec<u64>)>,
}

impl Routes {
    /// Reads the shard map from the radiant at `settings.address`; `None` for a static
    /// order (or a system still forming), which is loaded through that address as given.
    fn discover(settings: &Settings) -> Result<Option<Routes>, String> {
        let options = settings.client_options(REQUEST_TIMEOUT);
        let mut client = Client::connect(&settings.address, options)
            .map_err(|error| format!("no connection to {} succeeded: {error}", settings.address))?;
        let document = client.status().map_err(|error| format!("status: {error}"))?;
        let status: serde_json::Value =
            serde_json::from_str(&document).map_err(|error| format!("status: {error}"))?;
        let Some(map) = crate::client::ShardRoutes::from_status(&status) else {
            return Ok(Routes::members_for_follower_reads(settings, &status));
        };
        let mut keys: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
        for index in 0..settings.keys {
            if let Some((order_id, _)) = map.owner_of(&settings.key(index)) {
                keys.entry(order_id).or_default().push(index);
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        let mut orders = Vec::new();
        for (order_id, indices) in keys {
            let members = map.addresses.get(&order_id).map(Vec::as_slice).unwrap_or_default();
            let Some(address) = members.first() else {
                return Err(format!("order {order_id} has no known radiant"));
            };
            if settings.reads == Reads::Follower {
                orders.extend(members.iter().map(|member| (member.clone(), indices.clone())));
            } else {
                orders.push((address.clone(), indices));
            }
        }
        Ok(Some(Routes { orders }))
    }

    /// A single order's members (from `status`), each with every key, when the gets
    /// are follower reads; `None` otherwise (every connection then loads `--addr`).
    fn members_for_follower_reads(
        settings: &Settings,
        status: &serde_json::Value,
    ) -> Option<Routes> {
        if settings.reads != Reads::Follower {
            return None;
        }
        let keys: Vec<u64> = (0..settings.keys).collect();
        let orders: Vec<(String, Vec<u64>)> = member_client_addresses(status)
            .into_iter()
            .map(|client| (client, keys.clone()))
            .collect();
        (!orders.is_empty()).then_some(Routes { orders })
    }

    /// The order of connection `lane`: its address, its keys, and the lane's position
    /// among the connections of that order and their number.
    fn of_lane(&self, lane: usize, connections: usize) -> (&str, &[u64], usize, usize) {
        let orders = self.orders.len();
        let (address, keys) = &self.orders[lane % orders];
        let peers = connections / orders + usize::from(lane % orders < connections % orders);
        (address, keys, lane / orders, peers.max(1))
    }
}

impl Settings {
    fn from_args(args: &BenchArgs) -> Result<Settings, String> {
        let seconds = |name: &str, value: f64, max: f64| {
            if value.is_finite() && (0.0..=max).contains(&value) {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(format!("--{name} {value} must be between 0 and {max} seconds"))
            }
        };
        let duration_s = match (args.duration, args.ops) {
            (Some(duration_s), _) => duration_s,
            (None, Some(_)) => OPS_ONLY_DURATION_S,
            (None, None) => DEFAULT_DURATION_S,
        };
        let duration = seconds("duration", duration_s, MAX_DURATION_S)?;
        if duration.is_zero() {
            return Err("--duration must be more than 0 seconds".to_string());
        }
        let warmup = seconds("warmup", args.warmup, MAX_WARMUP_S)?;
        if !(0.0..=1.0).contains(&args.get_ratio) {
            return Err(format!("--get-ratio {} must be between 0 and 1", args.get_ratio));
        }
        if args.reads == Reads::Follower && (args.get_ratio < 1.0 || args.prefill) {
            return Err("--reads follower spreads the connections over every member, and a \
                        follower refuses puts: give --get-ratio 1 without --prefill (prefill \
                        with a run of puts first)"
                .to_string());
        }
        let digits = args.key_bytes - 1;
        let key_space_max = 10u64.checked_pow(digits).unwrap_or(u64::MAX).min(MAX_KEYS);
        if !(1..=key_space_max).contains(&args.keys) {
            return Err(format!(
                "--keys {} must be between 1 and {key_space_max} (keys of {} bytes hold {digits} \
                 digits; at most {MAX_KEYS} keys)",
                args.keys, args.key_bytes
            ));
        }
        let max_value_bytes = radiant_protocol::Limits::DEFAULT.max_value_bytes;
        if args.value_bytes > max_value_bytes {
            return Err(format!(
                "--value-bytes {} exceeds the protocol's limit of {max_value_bytes}",
                args.value_bytes
            ));
        }
        Ok(Settings {
            address: args.addr.clone(),
            token: super::token(args.token_file.as_deref())?,
            tls: super::tls(args.tls_ca.as_deref())?,
            connections: args.connections as usize,
            duration,
            max_ops: args.ops.unwrap_or(DEFAULT_MAX_OPS),
            warmup,
            get_ratio: args.get_ratio,
            get_chance: (args.get_ratio * GET_RATIO_SCALE as f64).round() as u64,
            reads: args.reads,
            keys: args.keys,
            key_bytes: args.key_bytes as usize,
            value: Bytes::from(vec![b'v'; args.value_bytes as usize]),
            pipeline: args.pipeline as usize,
            prefill: args.prefill,
            seed: args.seed,
            json: args.json,
            routes: None,
        })
    }

    /// The key with index `index`: `k` and the index, zero-padded to `key_bytes`.
    fn key(&self, index: u64) -> Bytes {
        let width = self.key_bytes - 1;
        Bytes::from(format!("k{index:0width$}"))
    }

    fn put(&self, index: u64) -> ClientRequest {
        ClientRequest::Put { key: self.key(index), value: self.value.clone(), session: None }
    }

    /// Where connection `lane` connects.
    fn lane_address(&self, lane: usize) -> &str {
        match &self.routes {
            Some(routes) => routes.of_lane(lane, self.connections).0,
            None => &self.address,
        }
    }

    /// The next measured request of connection `lane`: a get with probability
    /// `get_ratio`, else a put, of a key of the lane's order (and that key's index).
    fn next_request(&self, prng: &mut Prng, lane: usize) -> (ClientRequest, Class, u64) {
        let index = match &self.routes {
            Some(routes) => {
                let keys = routes.of_lane(lane, self.connections).1;
                keys[prng.range(0, keys.len() as u64) as usize]
            }
            None => prng.range(0, self.keys),
        };
        if prng.chance(self.get_chance, GET_RATIO_SCALE) {
            let request =
                ClientRequest::Get { key: self.key(index), consistency: self.reads.pick(prng) };
            (request, Class::Get, index)
        } else {
            (self.put(index), Class::Put, index)
        }
    }
}

/// Runs `radiant bench`.
pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode, String> {
    let mut settings = Settings::from_args(args)?;
    if let Some(path) = &args.history {
        if settings.pipeline != 1 || settings.prefill {
            return Err("--history runs one request per connection without --prefill; drop \
                        --pipeline and --prefill"
                .to_string());
        }
        wait_until_ready(&settings.address, &settings)?;
        return history::run(&settings, path).map(ExitCode::from);
    }
    wait_until_ready(&settings.address, &settings)?;
    settings.routes = Routes::discover(&settings)?;
    for (address, _) in settings.routes.iter().flat_map(|routes| &routes.orders) {
        wait_until_ready(address, &settings)?;
    }
    let (lanes, prefill) = prepare(&settings)?;
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let window =
        Window { start: start + settings.warmup, end: start + settings.warmup + settings.duration };
    let tickets = AtomicU64::new(0);
    let results = on_threads("bench", lanes, |index, lane| {
        measure(&settings, &window, &tickets, index, lane)
    })?;
    let finished = Instant::now();
    let client_cpu_s = cpu_before.zip(cpu_seconds()).map(|(before, after)| after - before);
    let mut stats = Stats::new();
    for result in results {
        stats.merge(result);
    }
    // A run cut short by the operation cap ends with its last answer; any other run
    // measures the whole window (or less, if every connection gave up early).
    let capped = tickets.load(Ordering::Relaxed) >= settings.max_ops;
    let end = if capped {
        stats.last_done.unwrap_or(finished).min(window.end)
    } else {
        finished.min(window.end)
    };
    // Every connection gave up (out of reconnects) before the window closed.
    let cut_short = !capped && finished < window.end;
    let duration_s = end.saturating_duration_since(window.start).as_secs_f64().max(1e-9);
    let report =
        Report { settings: &settings, stats, prefill, duration_s, cut_short, client_cpu_s };
    if settings.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    Ok(report.exit_code())
}

/// Waits until the radiant at `address` is ready to take keyed requests: a radiant
/// just started, or still forming its system, refuses them until then.
fn wait_until_ready(address: &str, settings: &Settings) -> Result<(), String> {
    let options = settings.client_options(REQUEST_TIMEOUT);
    let mut client = Client::connect(address, options)
        .map_err(|error| format!("no connection to {address} succeeded: {error}"))?;
    client.wait_until_ready(READY_TIMEOUT).map_err(|error| error.to_string())
}

/// Opens every connection in parallel and, with `--prefill`, puts every key once.
fn prepare(settings: &Settings) -> Result<(Vec<Lane>, Option<Prefill>), String> {
    let started = Instant::now();
    let deadline = started + PREFILL_TIMEOUT;
    let inputs = (0..settings.connections).map(|_| ()).collect();
    let prepared = on_threads("bench-prefill", inputs, |index, ()| {
        let mut lane = Lane::connect(settings.lane_address(index), settings);
        let prefill = settings.prefill.then(|| prefill(settings, index, &mut lane, deadline));
        (lane, prefill)
    })?;
    let connected = prepared.iter().filter(|(lane, _)| lane.client.is_some()).count();
    if connected == 0 {
        let reason =
            prepared.iter().find_map(|(lane, _)| lane.first_error.clone()).unwrap_or_default();
        return Err(format!("no connection to {} succeeded: {reason}", settings.address));
    }
    let mut total = settings.prefill.then(|| Prefill {
        puts: 0,
        errors: ErrorCounts::default(),
        seconds: started.elapsed().as_secs_f64(),
    });
    let mut lanes = Vec::with_capacity(prepared.len());
    for (lane, prefill) in prepared {
        if let (Some(total), Some(prefill)) = (total.as_mut(), prefill) {
            total.puts += prefill.puts;
            total.errors.merge(&prefill.errors);
        }
        lanes.push(lane);
    }
    Ok((lanes, total))
}

/// What the prefill did.
struct Prefill {
    puts: u64,
    errors: ErrorCounts,
    seconds: f64,
}

/// Puts keys `index`, `index + connections`, … on `lane`, `--pipeline` at a time (with
/// routes: the same over the keys of the lane's order and the lanes sharing it).
fn prefill(settings: &Settings, index: usize, lane: &mut Lane, deadline: Instant) -> Prefill {
    let started = Instant::now();
    let (keys, mut next, stride) = match &settings.routes {
        Some(routes) => {
            let (_, keys, position, peers) = routes.of_lane(index, settings.connections);
            (Some(keys), position as u64, peers as u64)
        }
        None => (None, index as u64, settings.connections as u64),
    };
    let key_count = keys.map_or(settings.keys, |keys| keys.len() as u64);
    let mut report = Prefill { puts: 0, errors: ErrorCounts::default(), seconds: 0.0 };
    let mut completions = Vec::with_capacity(settings.pipeline);
    // Puts the radiant refused without carrying out (not ready, locked): sent again
    // after a back-off. The puts have no session, so nothing else is resent.
    let mut refused: VecDeque<u64> = VecDeque::new();
    let mut resend_at = Instant::now();
    // Bounded: at most keys / connections first sends, each answered or failed within
    // the request timeout; resends only of refused puts; no sends after the deadline.
    loop {
        let now = Instant::now();
        let resend_due = !refused.is_empty() && now >= resend_at;
        let can_send = (next < key_count || resend_due)
            && lane.in_flight.len() < settings.pipeline
            && now < deadline
            && lane.ensure_connected(deadline);
        if can_send {
            let resend = if resend_due { refused.pop_front() } else { None };
            let key = match resend {
                Some(key) => key,
                None => {
                    let key = keys.map_or(next, |keys| keys[next as usize]);
                    next += stride;
                    key
                }
            };
            lane.send((&settings.put(key), Class::Put, key), false, &mut completions);
        } else if lane.in_flight.is_empty() {
            if refused.is_empty() || now >= deadline {
                break;
            }
            std::thread::sleep(resend_at.saturating_duration_since(now));
        } else {
            lane.receive(&mut completions);
        }
        for completion in completions.drain(..) {
            match completion.outcome {
                Outcome::Done { .. } => report.puts += 1,
                Outcome::Failed(kind)
                    if kind.was_not_carried_out() && Instant::now() < deadline =>
                {
                    refused.push_back(completion.request.key);
                    resend_at = Instant::now() + PREFILL_RESEND_BACKOFF;
                }
                Outcome::Failed(kind) => report.errors.count(kind),
            }
        }
    }
    for _ in refused.drain(..) {
        report.errors.count(ErrorKind::Unavailable);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// The measured window: requests written in `[start, end)` are measured.
struct Window {
    start: Instant,
    end: Instant,
}

/// One connection's load loop; returns what it measured.
fn measure(
    settings: &Settings,
    window: &Window,
    tickets: &AtomicU64,
    index: usize,
    mut lane: Lane,
) -> Stats {
    let mut prng = Prng::new(settings.seed ^ index as u64);
    let mut stats = Stats::new();
    let mut completions = Vec::with_capacity(settings.pipeline);
    let mut sent: u64 = 0;
    let mut sending = true;
    // Bounded: at most max_ops sends (warmup included), none after the window, and each
    // request in flight is answered or failed within the request timeout.
    loop {
        if sending {
            sending = sent < settings.max_ops
                && Instant::now() < window.end
                && lane.ensure_connected(window.end);
        }
        if sending && lane.in_flight.len() < settings.pipeline {
            let measured = Instant::now() >= window.start;
            // The shared ticket count makes `--ops N` measure exactly N operations.
            if measured && tickets.fetch_add(1, Ordering::Relaxed) >= settings.max_ops {
                sending = false;
                continue;
            }
            let (request, class, key) = settings.next_request(&mut prng, index);
            lane.send((&request, class, key), measured, &mut completions);
            sent += 1;
        } else if lane.in_flight.is_empty() {
            break;
        } else {
            lane.receive(&mut completions);
        }
        for completion in completions.drain(..) {
            stats.record(&completion, window.end);
        }
    }
    stats.connect_failures = lane.connect_failures;
    stats.first_error = lane.first_error;
    stats
}

/// Runs `work(index, input)` for every input on its own named thread and collects the
/// results in input order.
fn on_threads<I, T, F>(name: &str, inputs: Vec<I>, work: F) -> Result<Vec<T>, String>
where
    I: Send,
    T: Send,
    F: Fn(usize, I) -> T + Sync,
{
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.into_iter().enumerate() {
            let work = &work;
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .stack_size(THREAD_STACK_BYTES)
                .spawn_scoped(scope, move || work(index, input))
                .map_err(|error| format!("cannot start thread {name}-{index}: {error}"))?;
            handles.push(handle);
        }
        handles
            .into_iter()
            .map(|handle| handle.join().map_err(|_| format!("a {name} thread panicked")))
            .collect()
    })
}

// ===== Lane: one connection and its requests in flight =====

/// What kind of operation a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Put,
    Get,
}

/// A request written and not yet answered.
struct InFlight {
    correlation_id: u64,
    class: Class,
    /// The index of its key.
    key: u64,
    sent: Instant,
    measured: bool,
}

/// How a request ended.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// Answered as asked; `hit` is false for a get of an absent key.
    Done {
        hit: bool,
    },
    Failed(ErrorKind),
}

/// A request that ended, and when.
struct Completion {
    request: InFlight,
    outcome: Outcome,
    done: Instant,
}

/// One connection with a window of requests in flight. When the connection breaks,
/// every request in flight fails and the next send opens a fresh connection.
struct Lane {
    address: String,
    options: ClientOptions,
    client: Option<Client>,
    in_flight: VecDeque<InFlight>,
    reconnects: u32,
    connect_failures: u64,
    first_error: Option<String>,
}

impl Lane {
    /// A lane connected to `address`, or without a connection if that failed.
    fn connect(address: &str, settings: &Settings) -> Lane {
        let mut lane = Lane {
            address: address.to_string(),
            options: settings.client_options(REQUEST_TIMEOUT),
            client: None,
            in_flight: VecDeque::new(),
            reconnects: 0,
            connect_failures: 0,
            first_error: None,
        };
        lane.open();
        lane
    }

    fn open(&mut self) {
        let options = self.options.clone();
        match Client::connect(&self.address, options) {
            Ok(client) => self.client = Some(client),
            Err(error) => {
                self.connect_failures += 1;
                self.note(&error);
            }
        }
    }

    fn note(&mut self, error: &dyn std::fmt::Display) {
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }

    /// True once there is a connection; reconnects with a capped backoff, giving up after
    /// `MAX_RECONNECTS` attempts in all or when `until` would pass.
    fn ensure_connected(&mut self, until: Instant) -> bool {
        let mut backoff = RECONNECT_BACKOFF_INITIAL;
        while self.client.is_none() {
            if self.reconnects >= MAX_RECONNECTS || Instant::now() + backoff >= until {
                return false;
            }
            self.reconnects += 1;
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
            self.open();
        }
        true
    }

    /// Writes `request` (for the key with index `key`); on failure it and every request
    /// in flight fail.
    fn send(
        &mut self,
        (request, class, key): (&ClientRequest, Class, u64),
        measured: bool,
        completions: &mut Vec<Completion>,
    ) {
        let sent = Instant::now();
        let result = match self.client.as_mut() {
            Some(client) => client.send(request),
            None => Err(ClientError::Io {
                address: ([0, 0, 0, 0], 0).into(),
                source: std::io::ErrorKind::NotConnected.into(),
            }),
        };
        let mut request = InFlight { correlation_id: 0, class, key, sent, measured };
        match result {
            Ok(correlation_id) => {
                request.correlation_id = correlation_id;
                self.in_flight.push_back(request);
            }
            Err(error) => {
                let kind = ErrorKind::of_client_error(&error);
                completions.push(Completion {
                    request,
                    outcome: Outcome::Failed(kind),
                    done: Instant::now(),
                });
                self.fail_all(kind, &error, completions);
            }
        }
    }

    /// Reads one answer (or fails everything in flight if the connection broke or the
    /// oldest request timed out).
    fn receive(&mut self, completions: &mut Vec<Completion>) {
        let Some(oldest) = self.in_flight.front() else {
            return;
        };
        let deadline = oldest.sent + REQUEST_TIMEOUT;
        let Some(client) = self.client.as_mut() else {
            let reason = "requests in flight without a connection";
            self.fail_all(ErrorKind::Io, &reason, completions);
            return;
        };
        match client.receive_any(deadline) {
            // Correlation id 0 is the radiant speaking about the connection: it is closing.
            Ok((0, message)) => {
                let reason = format!("the radiant is closing the connection: {message:?}");
                self.fail_all(ErrorKind::Closed, &reason, completions);
            }
            Ok((correlation_id, message)) => {
                let done = Instant::now();
                let position = self
                    .in_flight
                    .iter()
                    .position(|request| request.correlation_id == correlation_id);
                // An answer to nothing in flight cannot come on a fresh connection; skip it.
                let Some(request) = position.and_then(|at| self.in_flight.remove(at)) else {
                    return;
                };
                let outcome = self.outcome(request.class, message);
                completions.push(Completion { request, outcome, done });
            }
            Err(error) => {
                self.fail_all(ErrorKind::of_client_error(&error), &error, completions);
            }
        }
    }

    fn outcome(&mut self, class: Class, message: Message) -> Outcome {
        match (class, message) {
            (Class::Get, Message::Response(ClientResponse::GetResult { value })) => {
                Outcome::Done { hit: value.is_some() }
            }
            (Class::Put, Message::Response(ClientResponse::PutResult)) => {
                Outcome::Done { hit: true }
            }
            (_, Message::Error(error)) => {
                let kind = ErrorKind::of_error_response(&error);
                self.note(&error);
                Outcome::Failed(kind)
            }
            (class, other) => {
                self.note(&format!("a {class:?} was answered with {other:?}"));
                Outcome::Failed(ErrorKind::Unexpected)
            }
        }
    }

    /// Drops the connection and fails every request in flight with `kind`.
    fn fail_all(
        &mut self,
        kind: ErrorKind,
        error: &dyn std::fmt::Display,
        completions: &mut Vec<Completion>,
    ) {
        self.note(error);
        self.client = None;
        let done = Instant::now();
        completions.extend(self.in_flight.drain(..).map(|request| Completion {
            request,
            outcome: Outcome::Failed(kind),
            done,
        }));
    }
}

// ===== Errors and statistics =====

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorKind {
    NotHerald,
    WrongOrder,
    Locked,
    Unavailable,
    BadRequest,
    OutcomeUnknown,
    Unauthorized,
    Unexpected,
    Timeout,
    Io,
    Closed,
    Protocol,
}

impl ErrorKind {
    const ALL: [ErrorKind; 12] = [
        ErrorKind::NotHerald,
        ErrorKind::WrongOrder,
        ErrorKind::Locked,
        ErrorKind::Unavailable,
        ErrorKind::BadRequest,
        ErrorKind::OutcomeUnknown,
        ErrorKind::Unauthorized,
        ErrorKind::Unexpected,
        ErrorKind::Timeout,
        ErrorKind::Io,
        ErrorKind::Closed,
        ErrorKind::Protocol,
    ];

    fn name(self) -> &'static str {
        match self {
            ErrorKind::NotHerald => "not_herald",
            ErrorKind::WrongOrder => "wrong_order",
            ErrorKind::Locked => "locked",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unexpected => "unexpected",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Closed => "closed",
            ErrorKind::Protocol => "protocol",
        }
    }

    /// Whether the radiant refused the request without carrying it out and asked for a
    /// retry after a back-off (not ready yet, or locked), so sending it again is safe.
    fn was_not_carried_out(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Locked)
    }

    fn of_error_response(error: &ErrorResponse) -> ErrorKind {
        match error {
            ErrorResponse::NotHerald { .. } => ErrorKind::NotHerald,
            ErrorResponse::WrongOrder { .. } => ErrorKind::WrongOrder,
            ErrorResponse::Locked(_) => ErrorKind::Locked,
            ErrorResponse::Unavailable { .. } => ErrorKind::Unavailable,
            ErrorResponse::BadRequest { .. } => ErrorKind::BadRequest,
            ErrorResponse::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            ErrorResponse::Unauthorized { .. } => ErrorKind::Unauthorized,
        }
    }

    fn of_client_error(error: &ClientError) -> ErrorKind {
        match error {
            ClientError::Timeout { .. } => ErrorKind::Timeout,
            ClientError::Protocol { .. } | ClientError::Status { .. } => ErrorKind::Protocol,
            ClientError::Server { error, .. } => ErrorKind::of_error_response(error),
            ClientError::Unexpected { .. } => ErrorKind::Unexpected,
            ClientError::Resolve { .. } | ClientError::Connect { .. } | ClientError::Io { .. } => {
                ErrorKind::Io
            }
        }
    }
}

/// Failed operations by kind.
#[derive(Clone, Debug, Default)]
struct ErrorCounts([u64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    fn count(&mut self, kind: ErrorKind) {
        let slot = ErrorKind::ALL
            .iter()
            .position(|candidate| *candidate == kind)
            .expect("ALL lists every kind");
        self.0[slot] += 1;
    }

    fn merge(&mut self, other: &ErrorCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The kinds that occurred, in a fixed order.
    fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ErrorKind::ALL
            .iter()
            .zip(self.0)
            .filter(|(_, count)| *count > 0)
            .map(|(kind, count)| (kind.name(), count))
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// What one or all connections measured.
struct Stats {
    puts: Histogram<u64>,
    gets: Histogram<u64>,
    errors: ErrorCounts,
    get_misses: u64,
    /// Measured requests answered after the window closed (not recorded).
    late: u64,
    connect_failures: u64,
    last_done: Option<Instant>,
    first_error: Option<String>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            puts: histogram(),
            gets: histogram(),
            errors: ErrorCounts::default(),
            get_misses: 0,
            late: 0,
            connect_failures: 0,
            last_done: None,
            first_error: None,
        }
    }

    fn record(&mut self, completion: &Completion, window_end: Instant) {
        let request = &completion.request;
        if !request.measured {
            return;
        }
        let hit = match completion.outcome {
            Outcome::Failed(kind) => return self.errors.count(kind),
            Outcome::Done { hit } => hit,
        };
        if completion.done > window_end {
            self.late += 1;
            return;
        }
        let latency_us = completion.done.duration_since(request.sent).as_micros();
        let latency_us = u64::try_from(latency_us).unwrap_or(u64::MAX);
        let histogram = match request.class {
            Class::Put => &mut self.puts,
            Class::Get => &mut self.gets,
        };
        histogram.saturating_record(latency_us.max(1));
        if request.class == Class::Get && !hit {
            self.get_misses += 1;
        }
        self.last_done = self.last_done.max(Some(completion.done));
    }

    fn merge(&mut self, other: Stats) {
        let same_bounds = "every histogram has the same bounds";
        self.puts.add(&other.puts).expect(same_bounds);
        self.gets.add(&other.gets).expect(same_bounds);
        self.errors.merge(&other.errors);
        self.get_misses += other.get_misses;
        self.late += other.late;
        self.connect_failures += other.connect_failures;
        self.last_done = self.last_done.max(other.last_done);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn succeeded(&self) -> u64 {
        self.puts.len() + self.gets.len()
    }
}

/// This process's CPU seconds (user + system) from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; the fields after it are fixed.
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    // Field 3 (state) is first here, so utime (14) and stime (15) are the 12th and 13th.
    let user_ticks: u64 = fields.nth(11)?.parse().ok()?;
    let system_ticks: u64 = fields.next()?.parse().ok()?;
    Some((user_ticks + system_ticks) as f64 / USER_HZ)
}

// ===== Report =====

/// One line of numbers: a class's rate and latency percentiles in microseconds.
struct ClassSummary {
    ops: u64,
    per_s: f64,
    /// p50, p90, p99, p99.9, max and mean; `None` without samples.
    latency_us: Option<[f64; 6]>,
}

impl ClassSummary {
    fn of(histogram: &Histogram<u64>, duration_s: f64) -> ClassSummary {
        let ops = histogram.len();
        let latency_us = (ops > 0).then(|| {
            let at = |quantile| histogram.value_at_quantile(quantile) as f64;
            [at(0.5), at(0.9), at(0.99), at(0.999), histogram.max() as f64, histogram.mean()]
        });
        ClassSummary { ops, per_s: ops as f64 / duration_s, latency_us }
    }
}

/// Everything a run found, ready to print.
struct Report<'a> {
    settings: &'a Settings,
    stats: Stats,
    prefill: Option<Prefill>,
    duration_s: f64,
    cut_short: bool,
    client_cpu_s: Option<f64>,
}

const PERCENTILE_NAMES: [&str; 6] = ["p50", "p90", "p99", "p999", "max", "mean"];

impl Report<'_> {
    fn classes(&self) -> [(&'static str, &'static str, ClassSummary); 3] {
        let mut all = self.stats.puts.clone();
        all.add(&self.stats.gets).expect("every histogram has the same bounds");
        [
            ("puts", "put_", ClassSummary::of(&self.stats.puts, self.duration_s)),
            ("gets", "get_", ClassSummary::of(&self.stats.gets, self.duration_s)),
            ("total", "", ClassSummary::of(&all, self.duration_s)),
        ]
    }

    fn measured_ops(&self) -> u64 {
        self.stats.succeeded() + self.stats.errors.total() + self.stats.late
    }

    fn exit_code(&self) -> ExitCode {
        let errors = self.stats.errors.total();
        if self.stats.succeeded() == 0 {
            eprintln!("radiant bench: no operation succeeded");
            return ExitCode::FAILURE;
        }
        if self.cut_short {
            eprintln!(
                "radiant bench: every connection failed and gave up after {:.2} s of the \
                 {:.2} s window",
                self.duration_s,
                self.settings.duration.as_secs_f64()
            );
            return ExitCode::FAILURE;
        }
        if errors * 100 > self.measured_ops() {
            eprintln!(
                "radiant bench: {errors} of {} operations failed (more than 1%)",
                self.measured_ops()
            );
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    }

    fn json(&self) -> String {
        let settings = self.settings;
        let mut object = serde_json::Map::new();
        let mut put = |name: &str, value: serde_json::Value| {
            object.insert(name.to_string(), value);
        };
        put("mode", "radiant-bench".into());
        put("addr", settings.address.clone().into());
        // With follower reads a route is one member of an order, not an order.
        let routes = settings.routes.as_ref().map_or(1, |routes| routes.orders.len());
        let routes_are = if settings.reads == Reads::Follower { "members" } else { "orders" };
        put(routes_are, routes.into());
        put("connections", settings.connections.into());
        put("pipeline", settings.pipeline.into());
        put("value_bytes", settings.value.len().into());
        put("key_bytes", settings.key_bytes.into());
        put("keys", settings.keys.into());
        put("get_ratio", settings.get_ratio.into());
        put("reads", format!("{:?}", settings.reads).to_lowercase().into());
        put("seed", settings.seed.into());
        put("warmup_s", settings.warmup.as_secs_f64().into());
        put("duration_s", round(self.duration_s, 3).into());
        put("cut_short", self.cut_short.into());
        for (label, prefix, summary) in self.classes() {
            let rate_name = if label == "total" { "ops" } else { label };
            put(&format!("{rate_name}_per_s"), round(summary.per_s, 1).into());
            put(&format!("{prefix}ops"), summary.ops.into());
            for (index, name) in PERCENTILE_NAMES.iter().enumerate() {
                let value = summary.latency_us.map(|values| values[index]);
                // Percentiles are histogram values (whole microseconds); the mean is not.
                let value: serde_json::Value = match value {
                    Some(mean_us) if *name == "mean" => round(mean_us, 1).into(),
                    Some(value_us) => (value_us as u64).into(),
                    None => serde_json::Value::Null,
                };
                put(&format!("{prefix}{name}_us"), value);
            }
        }
        put("measured_ops", self.measured_ops().into());
        put("late_ops", self.stats.late.into());
        put("get_misses", self.stats.get_misses.into());
        put("errors", self.stats.errors.total().into());
        let by_kind: serde_json::Map<_, _> = self
            .stats
            .errors
            .nonzero()
            .map(|(name, count)| (name.to_string(), count.into()))
            .collect();
        put("errors_by_kind", by_kind.into());
        put("connect_failures", self.stats.connect_failures.into());
        put("first_error", self.stats.first_error.clone().into());
        put("prefill_puts", self.prefill.as_ref().map(|p| p.puts).into());
        let prefill_errors = self.prefill.as_ref().map(|p| p.errors.total());
        put("prefill_errors", prefill_errors.into());
        put("prefill_s", self.prefill.as_ref().map(|p| round(p.seconds, 3)).into());
        put("client_cpu_s", self.client_cpu_s.map(|cpu_s| round(cpu_s, 2)).into());
        serde_json::Value::Object(object).to_string()
    }

    fn human(&self) -> String {
        let settings = self.settings;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "radiant bench: {}  connections {}  pipeline {}  window {:.1} s  warmup {:.1} s",
            settings.address,
            settings.connections,
            settings.pipeline,
            settings.duration.as_secs_f64(),
            settings.warmup.as_secs_f64(),
        );
        let _ = writeln!(
            text,
            "workload: get ratio {:.2} (linearizable), {} keys of {} bytes, values of {} bytes, \
             seed {}",
            settings.get_ratio,
            thousands(settings.keys),
            settings.key_bytes,
            settings.value.len(),
            settings.seed,
        );
        if let Some(routes) = &settings.routes {
            let _ = writeln!(
                text,
                "routing: {} orders, each connection to one order's herald with that order's \
                 keys",
                routes.orders.len()
            );
        }
        if let Some(prefill) = &self.prefill {
            let _ = writeln!(
                text,
                "prefill: {} puts in {:.2} s, {} errors",
                thousands(prefill.puts),
                prefill.seconds,
                prefill.errors.total()
            );
        }
        let _ = writeln!(text, "measured {:.2} s:", self.duration_s);
        for (label, _, summary) in self.classes() {
            let _ = writeln!(text, "{}", class_line(label, &summary));
        }
        self.human_errors(&mut text);
        text
    }

    fn human_errors(&self, text: &mut String) {
        let stats = &self.stats;
        let kinds: Vec<String> = stats
            .errors
            .nonzero()
            .map(|(name, count)| format!("{name} {}", thousands(count)))
            .collect();
        let _ = write!(text, "errors: {}", thousands(stats.errors.total()));
        if !kinds.is_empty() {
            let _ = write!(text, " ({})", kinds.join(", "));
        }
        let _ = writeln!(
            text,
            "  late answers: {}  get misses: {}  connect failures: {}",
            thousands(stats.late),
            thousands(stats.get_misses),
            thousands(stats.connect_failures),
        );
        if let Some(error) = &stats.first_error {
            let _ = writeln!(text, "first error: {error}");
        }
        if let Some(cpu_s) = self.client_cpu_s {
            let wall_s = self.settings.warmup.as_secs_f64() + self.duration_s;
            let _ = writeln!(
                text,
                "client cpu: {cpu_s:.2} s ({:.0}% of one core over warmup and window)",
                100.0 * cpu_s / wall_s
            );
        }
    }
}

/// `puts: 12,345 ops/s  p50 0.41 ms  p90 …  (123,450 ops)`.
fn class_line(label: &str, summary: &ClassSummary) -> String {
    let mut line =
        format!("{:<6} {:>9} ops/s", format!("{label}:"), thousands(summary.per_s.round() as u64));
    if let Some(latency_us) = summary.latency_us {
        let names = ["p50", "p90", "p99", "p99.9", "max"];
        for (name, value_us) in names.iter().zip(latency_us) {
            let _ = write!(line, "  {name} {:.2} ms", value_us / 1000.0);
        }
    }
    let _ = write!(line, "  ({} ops)", thousands(summary.ops));
    line
}

/// `value` rounded to `decimals` places, so the JSON line stays readable.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `12345` as `12,345`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn keys_are_exactly_key_bytes_long() {
        let args = BenchArgs {
            addr: String::new(),
            connections: 1,
            duration: None,
            ops: None,
            warmup: 0.0,
            get_ratio: 0.5,
            reads: Reads::Linearizable,
            keys: 10_000_000,
            key_bytes: 8,
            value_bytes: 3,
            pipeline: 1,
            prefill: false,
            seed: 1,
            json: false,
            history: None,
            token_file: None,
            tls_ca: None,
        };
        let settings = Settings::from_args(&args).expect("valid");
        assert_eq!(settings.key(0).as_ref(), b"k0000000");
        assert_eq!(settings.key(9_999_999).as_ref(), b"k9999999");
        let too_many = BenchArgs { keys: 10_000_001, ..args };
        assert!(Settings::from_args(&too_many).is_err());
    }

    #[test]
    fn cpu_seconds_reads_proc_self_stat() {
        assert!(cpu_seconds().is_some_and(|seconds| seconds >= 0.0));
    }
}
