//! The blocking client library: one TCP connection to a radiant, one request at a
//! time (or a window of pipelined requests for load generation), clear errors.
//!
//! A `NotHerald` answer naming the herald's address makes the client reconnect there and
//! resend; `Unavailable` (a radiant not ready yet among them), `Locked` and `NotHerald`
//! without a hint are retried at another radiant it knows, with a capped backoff, until
//! the call's deadline; every other server error is returned. These rules are
//! `policy::CallPolicy`, without I/O, which the simulator's clients run as well.
//!
//! Every write (put, delete, cas) carries a session (client id + sequence), so a resent
//! write applies once and answers what its one application did. That is what lets the
//! client resend a write whose answer never came (no answer within `attempt_timeout`, or
//! the connection broke): reads and session writes are resent on a fresh connection
//! until the deadline. Admin requests have no session: they are never resent blindly,
//! and an `OutcomeUnknown` answer is returned as it is.

pub mod policy;
mod stream;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use self::policy::{Attempt, CallPolicy, CallTiming, Failure, Next, Rotation, SessionRequests};
use self::stream::ClientStream;
pub use radiant_protocol::BatchOutcome;
use radiant_protocol::{
    decode_frame, ClientId, ClientRequest, ClientResponse, DecodeError, ErrorResponse, Limits,
    Message, ReadConsistency,
};
use radiant_protocol::{Batch, BatchCondition, BatchWrite};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address did not resolve.
    #[error("cannot resolve radiant address `{address}`: {reason}")]
    Resolve {
        /// The address as given.
        address: String,
        /// Why.
        reason: String,
    },
    /// No connection could be made.
    #[error(
        "cannot connect to radiant at {address}: {source} (is `radiant start` running there?)"
    )]
    Connect {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed mid-call; the request's outcome is unknown.
    #[error(
        "connection to {address} failed: {source}; the request may or may not have been applied"
    )]
    Io {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No answer before the deadline; the request's outcome is unknown.
    #[error(
        "no answer from {address} within {timeout:?}; the request may or may not have been applied"
    )]
    Timeout {
        /// The address.
        address: SocketAddr,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The server sent bytes that do not decode.
    #[error("radiant at {address} sent an undecodable frame: {source}")]
    Protocol {
        /// The address.
        address: SocketAddr,
        /// Why it does not decode.
        #[source]
        source: DecodeError,
    },
    /// The server answered with an error.
    #[error("radiant at {address} refused the request: {error}")]
    Server {
        /// The address.
        address: SocketAddr,
        /// The error.
        error: ErrorResponse,
    },
    /// The radiant's status document is not what a status is.
    #[error("radiant at {address} sent a status document that {reason}")]
    Status {
        /// The address.
        address: SocketAddr,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server answered with the wrong kind of response.
    #[error("radiant at {address} answered a {request} with an unexpected {response:?}")]
    Unexpected {
        /// The address.
        address: SocketAddr,
        /// What was asked.
        request: &'static str,
        /// What came back.
        response: Box<ClientResponse>,
    },
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Deadline for one call, retries of `Unavailable` included.
    pub timeout: Duration,
    /// How long one attempt of a request that is harmless to resend (a read, a write with
    /// its session) waits for its answer before it is resent on a fresh connection.
    pub attempt_timeout: Duration,
    /// Decoder limits for responses.
    pub limits: Limits,
    /// The token presented on every connection (`Authenticate`) before anything else:
    /// the client token, or the admin token for admin requests. `None`: no token.
    pub token: Option<Bytes>,
    /// TLS 1.3 to every radiant, trusting only this configuration's CA
    /// (`radiant::tls::client_config`). `None`: plain TCP.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// `get` reads with follower reads (`ReadConsistency::Follower`): the radiant the
    /// client is connected to serves them itself, linearizably, herald or follower.
    /// Connect clients to different members to spread reads over an order.
    pub follower_reads: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            limits: Limits::DEFAULT,
            token: None,
            tls: None,
            follower_reads: false,
        }
    }
}

/// Outcome of a compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasOutcome {
    /// Whether the value matched and was replaced.
    pub succeeded: bool,
    /// The value after the call: the new one on success, the existing one on failure.
    pub current: Option<Bytes>,
}

/// A connection to one radiant.
pub struct Client {
    stream: ClientStream,
    address: SocketAddr,
    writes: SessionRequests,
    options: ClientOptions,
    read_buffer: BytesMut,
    write_buffer: BytesMut,
    next_correlation_id: u64,
    /// The system's shard map, fetched after the first `WrongOrder` (a single-order
    /// system never needs it) and refreshed after every later one.
    shard_routes: Option<ShardRoutes>,
    /// Client addresses of radiants to fall back on when the current one cannot be
    /// reached: the ones given at connect, herald hints, the members of every status
    /// document read and the shard map's radiants, least recently used first.
    known: Rotation<String>,
}

/// Most fallback addresses a client remembers.
const MAX_KNOWN_RADIANTS: usize = 64;

/// The client's routing table: which order owns each shard, and where that order's
/// radiants listen (its herald first when known), from a radiant's status document. (The
/// shard map is the radiants' key-value data, `storage::ShardMap`.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardRoutes {
    /// The committed configuration it comes from.
    pub configuration: u64,
    /// The owning order of each shard, by shard number.
    pub owners: Vec<u64>,
    /// Each order's client addresses, its herald's first.
    pub addresses: std::collections::BTreeMap<u64, Vec<String>>,
}

impl ShardRoutes {
    /// Reads the map from the `system` part of a status document; `None` for a radiant
    /// with no committed configuration (or a static order).
    pub fn from_status(status: &serde_json::Value) -> Option<ShardRoutes> {
        let system = &status["system"];
        let owners: Vec<u64> = system["shard_owners"]
            .as_array()?
            .iter()
            .map(serde_json::Value::as_u64)
            .collect::<Option<_>>()?;
        // A status from the network is untrusted: a shard count the key hash cannot
        // map to is no shard map.
        if owners.is_empty() || owners.len() > radiant_protocol::configuration::MAX_SHARDS {
            return None;
        }
        let client_of = |member: &serde_json::Value| {
            let radiants = system["radiants"].as_array()?;
            let radiant = radiants.iter().find(|radiant| radiant["id"] == *member)?;
            radiant["client"].as_str().map(str::to_string)
        };
        let mut addresses = std::collections::BTreeMap::new();
        for order in system["orders"].as_array()? {
            let order_id = order["order"].as_u64()?;
            let herald = &order["herald"];
            let mut list: Vec<String> = client_of(herald).into_iter().collect();
            for member in order["members"].as_array().into_iter().flatten() {
                if member != herald {
                    list.extend(client_of(member));
                }
            }
            addresses.insert(order_id, list);
        }
        Some(ShardRoutes { configuration: system["configuration"].as_u64()?, owners, addresses })
    }

    /// The owning order of `key` and its radiants' client addresses.
    pub fn owner_of(&self, key: &[u8]) -> Option<(u64, &[String])> {
        let shard = radiant_protocol::slots::key_shard(key, u32::try_from(self.owners.len()).ok()?);
        self.owner_of_shard(shard.0)
    }

    /// The owning order of `shard` and its radiants' client addresses.
    pub fn owner_of_shard(&self, shard: u32) -> Option<(u64, &[String])> {
        let order_id = *self.owners.get(shard as usize)?;
        Some((order_id, self.addresses.get(&order_id)?.as_slice()))
    }
}

impl ClientError {
    /// Whether the call failed in transport (no answer in time, a broken or refused
    /// connection), so the radiant's outcome is unknown to the client.
    fn is_transport(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout { .. } | ClientError::Io { .. } | ClientError::Connect { .. }
        )
    }
}

fn resolve(address: &str) -> Result<SocketAddr, ClientError> {
    let resolve_error =
        |reason: String| ClientError::Resolve { address: address.to_string(), reason };
    address
        .to_socket_addrs()
        .map_err(|error| resolve_error(error.to_string()))?
        .next()
        .ok_or_else(|| resolve_error("no addresses".to_string()))
}

/// Connects to `address` (reached as `host`, the name a TLS certificate must carry).
fn open(
    address: SocketAddr,
    host: &str,
    options: &ClientOptions,
) -> Result<ClientStream, ClientError> {
    let socket = TcpStream::connect_timeout(&address, options.timeout)
        .map_err(|source| ClientError::Connect { address, source })?;
    let _ = socket.set_nodelay(true);
    ClientStream::new(socket, host, options.tls.as_ref())
        .map_err(|source| ClientError::Connect { address, source })
}

/// The host part of `host:port` (an IPv6 address keeps its brackets off).
fn host_of(address: &str) -> &str {
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// A client id that is unique in practice: clock nanoseconds, process id and a counter.
fn new_client_id() -> ClientId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let mixed = nanos
        ^ u64::from(std::process::id()).rotate_left(40)
        ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(20);
    ClientId::new(mixed).unwrap_or(ClientId::new(1).expect("nonzero"))
}

/// First wait before retrying (`Unavailable`, no answer, …); later waits double.
const RETRY_INITIAL: Duration = Duration::from_millis(10);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_millis(500);
/// Wait between status polls while waiting for readiness.
const READY_POLL: Duration = Duration::from_millis(20);

impl Client {
    /// Connects to `address` (`host:port`).
    pub fn connect(address: &str, options: ClientOptions) -> Result<Client, ClientError> {
        Client::connect_any(&[address], options)
    }

    /// Connects to the first of `addresses` that answers, and keeps the others to fall
    /// back on when the radiant it talks to cannot be reached (like etcd's endpoints).
    pub fn connect_any(addresses: &[&str], options: ClientOptions) -> Result<Client, ClientError> {
        let mut last_error = ClientError::Resolve {
            address: String::new(),
            reason: "no radiant address given".to_string(),
        };
        for address in addresses {
            match resolve(address)
                .and_then(|resolved| Ok((resolved, open(resolved, host_of(address), &options)?)))
            {
                Ok((resolved, stream)) => {
                    let mut client = Client {
                        stream,
                        address: resolved,
                        writes: SessionRequests::new(new_client_id()),
                        options: options.clone(),
                        read_buffer: BytesMut::with_capacity(4096),
                        write_buffer: BytesMut::with_capacity(4096),
                        next_correlation_id: 1,
                        shard_routes: None,
                        known: Rotation::new(MAX_KNOWN_RADIANTS),
                    };
                    // Known in the order given; the one connected to is used.
                    for known in addresses.iter().rev() {
                        client.known.learn(known.to_string());
                    }
                    client.known.used(&address.to_string());
                    match client.authenticate() {
                        Ok(()) => return Ok(client),
                        Err(error) => last_error = error,
                    }
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// The radiant's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Reads `key` linearizably (at the herald, or with `follower_reads` at the radiant
    /// connected to); `None` if it is absent.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, ClientError> {
        let consistency = if self.options.follower_reads {
            ReadConsistency::Follower
        } else {
            ReadConsistency::Linearizable
        };
        self.get_with(key, consistency)
    }

    /// Reads `key` with the named consistency.
    pub fn get_with(
        &mut self,
        key: &[u8],
        consistency: ReadConsistency,
    ) -> Result<Option<Bytes>, ClientError> {
        let request = ClientRequest::Get { key: Bytes::copy_from_slice(key), consistency };
        match self.call(request)? {
            ClientResponse::GetResult { value } => Ok(value),
            other => Err(self.unexpected("get", other)),
        }
    }

    /// Stores `value` under `key`; returns once it is durable.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        let request = self.writes.put(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        match self.call(request)? {
            ClientResponse::PutResult => Ok(()),
            other => Err(self.unexpected("put", other)),
        }
    }

    /// Deletes `key`; true if it existed (when the delete was applied, once).
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, ClientError> {
        let request = self.writes.delete(Bytes::copy_from_slice(key));
        match self.call(request)? {
            ClientResponse::DeleteResult { existed } => Ok(existed),
            other => Err(self.unexpected("delete", other)),
        }
    }

    /// Sets `key` to `new` if it holds `expected` (`None`: absent; `new` `None`: delete).
    pub fn cas(
        &mut self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<CasOutcome, ClientError> {
        let request = self.writes.cas(
            Bytes::copy_from_slice(key),
            expected.map(Bytes::copy_from_slice),
            new.map(Bytes::copy_from_slice),
        );
        match self.call(request)? {
            ClientResponse::CasResult { succeeded, current } => {
                Ok(CasOutcome { succeeded, current })
            }
            other => Err(self.unexpected("cas", other)),
        }
    }

    /// A page of a shard's copy for a backup (see `ClientRequest::ReadShard`): cursor 0
    /// takes a new copy at the shard's order and answers its first page (no pairs).
    pub fn read_shard(
        &mut self,
        shard: u32,
        cursor: u64,
        after: Option<Bytes>,
        max_bytes: u32,
    ) -> Result<radiant_protocol::ShardPage, ClientError> {
        let request = ClientRequest::ReadShard { shard, cursor, after, max_bytes };
        match self.call(request)? {
            ClientResponse::ShardPage(page) if page.shard == shard => Ok(page),
            other => Err(self.unexpected("read_shard", other)),
        }
    }

    /// Writes several keys of one shard atomically, as one log entry: each pair's key
    /// gets its value (`None` deletes it). With `only_if_all_absent` nothing is written
    /// if any key is present. Keys of several shards are refused (`BadRequest`); give
    /// related keys one `{hash tag}`.
    pub fn write_batch(
        &mut self,
        writes: &[(&[u8], Option<&[u8]>)],
        only_if_all_absent: bool,
    ) -> Result<BatchOutcome, ClientError> {
        let writes = writes
            .iter()
            .map(|(key, value)| BatchWrite {
                key: Bytes::copy_from_slice(key),
                value: value.map(Bytes::copy_from_slice),
            })
            .collect();
        let condition =
            if only_if_all_absent { BatchCondition::IfAllAbsent } else { BatchCondition::Always };
        let request = self.writes.batch(Batch { condition, writes });
        match self.call(request)? {
            ClientResponse::BatchResult(outcome) => Ok(outcome),
            other => Err(self.unexpected("batch", other)),
        }
    }

    /// This radiant's status document (JSON), answered by the radiant itself.
    pub fn status(&mut self) -> Result<String, ClientError> {
        let correlation_id = self.send(&ClientRequest::Status)?;
        let deadline = Instant::now() + self.options.timeout;
        match self.receive(correlation_id, deadline)? {
            Message::Response(ClientResponse::Status { json }) => Ok(json),
            Message::Error(error) => Err(ClientError::Server { address: self.address, error }),
            Message::Response(other) => Err(self.unexpected("status", other)),
            Message::Request(_) | Message::Peer(_) | Message::System(_) | Message::Link(_) => {
                Err(self.unexpected("status", ClientResponse::Done))
            }
        }
    }

    /// This radiant's status document, parsed. The client remembers the members it
    /// lists (their client addresses) to fall back on.
    pub fn status_document(&mut self) -> Result<serde_json::Value, ClientError> {
        let document = self.status()?;
        let status: serde_json::Value = serde_json::from_str(&document)
            .map_err(|_| ClientError::Status { address: self.address, reason: "is not JSON" })?;
        for client in member_client_addresses(&status) {
            self.known.learn(client);
        }
        Ok(status)
    }

    /// Waits until the radiant says it is ready to take keyed requests (its status
    /// `ready`), polling; past `timeout`, fails with the reason it gave last.
    pub fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status_document()?;
            // A radiant older than readiness says nothing of it: take it as ready, as
            // clients did before (its not-ready answers are retried all the same).
            if status["ready"] == true || status.get("ready").is_none() {
                return Ok(());
            }
            let reason = status["not_ready"].as_str().unwrap_or("it does not say it is ready");
            if Instant::now() + READY_POLL >= deadline {
                let reason = format!("still not ready after {timeout:?}: {reason}");
                let error = ErrorResponse::Unavailable { reason };
                return Err(ClientError::Server { address: self.address, error });
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// Runs an admin request (membership change, herald transfer) on the herald.
    pub fn admin(&mut self, request: ClientRequest) -> Result<(), ClientError> {
        match self.call(request)? {
            ClientResponse::Done => Ok(()),
            other => Err(self.unexpected("admin request", other)),
        }
    }

    /// Committed configuration `number` (0: the newest the radiant knows).
    pub fn query_configuration(
        &mut self,
        number: u64,
    ) -> Result<radiant_protocol::Configuration, ClientError> {
        match self.call(ClientRequest::QueryConfiguration { number })? {
            ClientResponse::Configuration(configuration) => Ok(*configuration),
            other => Err(self.unexpected("configuration query", other)),
        }
    }

    /// Checks the radiant answers.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        match self.call(ClientRequest::Ping)? {
            ClientResponse::Pong { .. } => Ok(()),
            other => Err(self.unexpected("ping", other)),
        }
    }

    fn unexpected(&self, request: &'static str, response: ClientResponse) -> ClientError {
        ClientError::Unexpected { address: self.address, request, response: Box::new(response) }
    }

    /// Sends `request` and waits for its answer, retrying as `policy::CallPolicy` decides:
    /// it follows `NotHerald` hints and `WrongOrder` refreshes, backs off and moves to
    /// another radiant after `Unavailable`/`Locked`, and resends a request that is
    /// harmless to resend when an attempt gets no answer or its connection breaks.
    pub fn call(&mut self, request: ClientRequest) -> Result<ClientResponse, ClientError> {
        let started = Instant::now();
        let timing = CallTiming {
            deadline: self.options.timeout,
            attempt_timeout: self.options.attempt_timeout,
            first_backoff: RETRY_INITIAL,
            max_backoff: RETRY_MAX,
        };
        let mut policy = CallPolicy::new(&request, timing);
        let mut no_answer = None;
        loop {
            // Known routes send the request to the owning order at once; stale ones
            // cost one `WrongOrder`, which refreshes them.
            if self.go_to_owner(&request).is_err() {
                self.shard_routes = None;
            }
            let attempt_deadline = Instant::now() + policy.attempt_wait(started.elapsed());
            let attempt = self.attempt(&request, attempt_deadline, &mut no_answer)?;
            let mut next = policy.after(attempt, started.elapsed());
            // Carry out `next` until it says to resend (break) or ends the call.
            loop {
                next = match next {
                    Next::Finish(response) => return Ok(response),
                    Next::Fail(Failure::Refused(error) | Failure::Deadline(Some(error))) => {
                        return Err(ClientError::Server { address: self.address, error })
                    }
                    Next::Fail(Failure::Deadline(None)) => {
                        return Err(no_answer.take().unwrap_or(ClientError::Timeout {
                            address: self.address,
                            timeout: self.options.timeout,
                        }))
                    }
                    Next::FollowHerald { address: Some(herald), .. } => {
                        if self.redirect(&herald).is_ok() {
                            break;
                        }
                        policy.after_failed_move(started.elapsed())
                    }
                    Next::FollowHerald { address: None, .. } => {
                        policy.after_failed_move(started.elapsed())
                    }
                    Next::Reroute { wait } => {
                        std::thread::sleep(wait);
                        if self.route(&request).is_ok() {
                            break;
                        }
                        policy.after_failed_move(started.elapsed())
                    }
                    Next::Resend { wait, elsewhere } => {
                        std::thread::sleep(wait);
                        if elsewhere {
                            let _ = self.reconnect();
                        }
                        break;
                    }
                };
            }
        }
    }

    /// Sends `request` once and waits until `deadline` for its answer. A transport
    /// failure is `Attempt::NoAnswer`, its error kept in `no_answer` for the caller.
    fn attempt(
        &mut self,
        request: &ClientRequest,
        deadline: Instant,
        no_answer: &mut Option<ClientError>,
    ) -> Result<Attempt, ClientError> {
        match self.send(request).and_then(|id| self.receive(id, deadline)) {
            Ok(Message::Response(response)) => Ok(Attempt::Answered(response)),
            Ok(Message::Error(error)) => Ok(Attempt::Refused(error)),
            Ok(Message::Request(_) | Message::Peer(_) | Message::System(_) | Message::Link(_)) => {
                let source = DecodeError::InvalidField {
                    kind: None,
                    field: "kind",
                    reason: "a radiant sent a request on a client connection",
                };
                Err(ClientError::Protocol { address: self.address, source })
            }
            Err(error) if error.is_transport() => {
                *no_answer = Some(error);
                Ok(Attempt::NoAnswer)
            }
            Err(error) => Err(error),
        }
    }

    /// After `WrongOrder`: refreshes the shard map from the radiant's status and
    /// reconnects to a radiant of the order that owns the key's shard.
    fn route(&mut self, request: &ClientRequest) -> Result<(), ClientError> {
        let status = self.status_document()?;
        self.shard_routes = ShardRoutes::from_status(&status);
        if self.shard_routes.is_none() {
            let reason = "has no shard map";
            return Err(ClientError::Status { address: self.address, reason });
        }
        self.go_to_owner(request)
    }

    /// With a cached shard map, makes sure this connection is to a radiant of the order
    /// owning `request`'s key, reconnecting to its herald (or another member) if not.
    fn go_to_owner(&mut self, request: &ClientRequest) -> Result<(), ClientError> {
        let Some(map) = &self.shard_routes else { return Ok(()) };
        let owner = match request {
            // A new copy is taken at the shard's order; later pages are read from the
            // radiant holding the copy, wherever the connection is.
            ClientRequest::ReadShard { shard, cursor: 0, .. } => map.owner_of_shard(*shard),
            _ => request.key().and_then(|key| map.owner_of(key)),
        };
        let Some((order_id, addresses)) = owner else { return Ok(()) };
        let here = self.address.to_string();
        if addresses.contains(&here) {
            return Ok(());
        }
        let addresses = addresses.to_vec();
        let none = ClientError::Resolve {
            address: format!("order {order_id}"),
            reason: "the shard map lists no radiant for it".to_string(),
        };
        self.redirect_to_first(&addresses, none)
    }

    /// Reconnects to the first of `addresses` that answers; `none` if there is none.
    fn redirect_to_first(
        &mut self,
        addresses: &[String],
        none: ClientError,
    ) -> Result<(), ClientError> {
        let mut last_error = none;
        for address in addresses {
            match self.redirect(address) {
                Ok(()) => return Ok(()),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// After an attempt got no answer or lost its connection: a fresh connection to
    /// another radiant it knows (the shard map's radiants among them), the one used
    /// longest ago first, or to the same one when it knows no other. Another first: a
    /// stopped or partitioned radiant still completes TCP handshakes from its listen
    /// backlog, so reconnecting to it would wait for it forever.
    fn reconnect(&mut self) -> Result<(), ClientError> {
        let here = self.address.to_string();
        let mapped: Vec<String> = self
            .shard_routes
            .iter()
            .flat_map(|map| map.addresses.values().flatten().cloned())
            .collect();
        for address in mapped {
            self.known.learn(address);
        }
        self.known.used(&here);
        let mut others: Vec<String> = self.known.elsewhere(here.clone()).cloned().collect();
        others.push(here);
        let none = ClientError::Resolve {
            address: String::new(),
            reason: "no radiant to reconnect to".to_string(),
        };
        self.redirect_to_first(&others, none)
    }

    /// The cached shard map, if this client has needed one.
    pub fn shard_routes(&self) -> Option<&ShardRoutes> {
        self.shard_routes.as_ref()
    }

    /// Reconnects to the herald's client address given in a `NotHerald` answer.
    fn redirect(&mut self, herald: &str) -> Result<(), ClientError> {
        self.known.used(&herald.to_string());
        let address: SocketAddr = herald.parse().map_err(|_| ClientError::Resolve {
            address: herald.to_string(),
            reason: "not an IP:PORT address".to_string(),
        })?;
        self.stream = open(address, host_of(herald), &self.options)?;
        self.address = address;
        self.read_buffer.clear();
        self.authenticate()
    }

    /// Presents the token, if the options have one, on the connection just opened.
    fn authenticate(&mut self) -> Result<(), ClientError> {
        let Some(token) = self.options.token.clone() else {
            return Ok(());
        };
        let correlation_id = self.send(&ClientRequest::Authenticate { token })?;
        let deadline = Instant::now() + self.options.timeout;
        match self.receive(correlation_id, deadline)? {
            Message::Response(ClientResponse::Done) => Ok(()),
            Message::Error(error) => Err(ClientError::Server { address: self.address, error }),
            Message::Response(other) => Err(self.unexpected("authenticate", other)),
            Message::Request(_) | Message::Peer(_) | Message::System(_) | Message::Link(_) => {
                Err(self.unexpected("authenticate", ClientResponse::Done))
            }
        }
    }

    /// Encodes and writes one request; returns its correlation id.
    pub fn send(&mut self, request: &ClientRequest) -> Result<u64, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        self.write_buffer.clear();
        Message::Request(request.clone()).encode(correlation_id, &mut self.write_buffer);
        self.stream
            .write_all(&self.write_buffer)
            .map_err(|source| ClientError::Io { address: self.address, source })?;
        Ok(correlation_id)
    }

    /// Reads frames until the one answering `correlation_id` arrives.
    pub fn receive(
        &mut self,
        correlation_id: u64,
        deadline: Instant,
    ) -> Result<Message, ClientError> {
        loop {
            let (frame_correlation_id, message) = self.receive_any(deadline)?;
            // Id 0 is the server speaking about the connection itself (it is closing).
            if frame_correlation_id == correlation_id || frame_correlation_id == 0 {
                return Ok(message);
            }
        }
    }

    /// Reads the next frame, whatever it answers.
    pub fn receive_any(&mut self, deadline: Instant) -> Result<(u64, Message), ClientError> {
        let address = self.address;
        loop {
            let decoded = decode_frame(&mut self.read_buffer, self.options.limits.max_frame_bytes)
                .map_err(|source| ClientError::Protocol { address, source })?;
            if let Some(frame) = decoded {
                let correlation_id = frame.correlation_id;
                let message = Message::decode(frame, &self.options.limits)
                    .map_err(|source| ClientError::Protocol { address, source })?;
                return Ok((correlation_id, message));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Timeout { address, timeout: self.options.timeout });
            }
            self.stream
                .set_read_timeout(Some(remaining))
                .map_err(|source| ClientError::Io { address, source })?;
            let start = self.read_buffer.len();
            self.read_buffer.resize(start + 64 * 1024, 0);
            let result = self.stream.read(&mut self.read_buffer[start..]);
            let count = *result.as_ref().unwrap_or(&0);
            self.read_buffer.truncate(start + count);
            match result {
                Ok(0) => {
                    let source = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the radiant closed the connection",
                    );
                    return Err(ClientError::Io { address, source });
                }
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::Timeout { address, timeout: self.options.timeout });
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(ClientError::Io { address, source }),
            }
        }
    }
}

/// The client addresses of the members a status document lists (a member's `address`
/// is "PEER CLIENT"), in the order listed.
pub fn member_client_addresses(status: &serde_json::Value) -> Vec<String> {
    let members = status["members"].as_array().into_iter().flatten();
    members
        .filter_map(|member| member["address"].as_str()?.split_whitespace().nth(1))
        .map(str::to_string)
        .collect()
}
