//! The RESP front end: Redis clients on `resp_port`, served by the same reactor, the
//! same limits and the same core paths as the binary protocol. Each RESP command either
//! is answered here (connection, introspection and routing commands) or becomes one or
//! more `ClientRequest`s to the state thread; their answers are turned back into RESP
//! replies and written in request order, so pipelining works as Redis clients expect.
//!
//! This module owns the mapping between Redis commands and Radiant requests, errors
//! worded as Redis words them. It must not decide what a write does; the core and the
//! state machine do (`ClientRequest::Update` carries the read-modify-write commands).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use radiant_protocol::resp::{decode_request, RespLimits, RespValue, RespVersion};
use radiant_protocol::slots::key_slot;
use radiant_protocol::{
    Batch, BatchCondition, BatchOutcome, BatchWrite, ClientRequest, ClientResponse, ErrorResponse,
    Message, ReadConsistency, SetCondition, Update, UpdateOutcome, MAX_BATCH_WRITES,
};
use smallvec::SmallVec;
use tracing::warn;

use super::resp_routes::{self, node_id, RespRoutes};
use super::{Reactor, SecurityCounters};
use crate::core::{ConnectionId, ReplyTo};
use crate::server::memory_budget::QueuedCharge;
use crate::server::state_thread::StateEvent;
use crate::storage::update::parse_integer;

/// The version `INFO` and `HELLO` report: the Redis command set these replies follow,
/// for clients that switch behaviour on it.
const REDIS_COMPATIBLE_VERSION: &str = "7.2.0";

/// Most keys one `MGET`, `EXISTS`, `DEL` or `MSET` may name: as many as one batch holds
/// (`MSET` and a `DEL` of several keys are one batch; `MGET` and `EXISTS` become one read
/// per key).
pub(crate) const MAX_KEYS_PER_COMMAND: usize = MAX_BATCH_WRITES as usize;

/// A RESP connection's state beyond its buffers.
#[derive(Default)]
pub(crate) struct RespSession {
    version: RespVersion,
    name: Option<Bytes>,
    /// Replies in request order; the front ones are written as soon as they are ready.
    pending: VecDeque<PendingReply>,
    next_correlation_id: u64,
    /// Requests held back so that this connection's commands take effect in the order
    /// it sent them (see `forward_resp`).
    deferred: VecDeque<Deferred>,
    /// Write requests sent to the state thread and not answered yet.
    writes_in_flight: usize,
    /// Read requests sent to the state thread and not answered yet.
    reads_in_flight: usize,
    /// After `READONLY`: reads are follower reads (linearizable, served by whichever
    /// member of the order this radiant is), as a Redis Cluster replica serves them.
    read_only: bool,
}

/// A command's requests: most commands are one request, kept on the stack.
type Requests = SmallVec<[ClientRequest; 1]>;

/// A command's requests waiting for the writes sent before it to be answered.
struct Deferred {
    /// The correlation id of the first request; the others follow it.
    first_correlation_id: u64,
    requests: Requests,
    writes: bool,
    charge: QueuedCharge,
}

/// One command's reply while (some of) its requests are with the state thread.
struct PendingReply {
    first_correlation_id: u64,
    answers: SmallVec<[Option<Message>; 1]>,
    shape: Shape,
    slot: u16,
    ready: Option<RespValue>,
    /// `QUIT`: close the connection once this reply is written.
    close_after: bool,
    /// Its requests are writes (counted in `writes_in_flight` while unanswered, reads
    /// in `reads_in_flight`).
    writes: bool,
}

/// How a command's answers become its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `GET`: the value or null.
    Value,
    /// `STRLEN`: the value's length, 0 if absent.
    Length,
    /// Plain `SET` and `MSET`: `+OK`.
    Ok,
    /// `SET` with options: with `GET` the old value, else `+OK` or null if not written.
    Set { answer_previous: bool },
    /// `SETNX`, `MSETNX`: 1 if written, else 0.
    Written,
    /// `GETSET`, `GETDEL`: the old value.
    Previous,
    /// `INCR` and friends, `APPEND`: an integer.
    Integer,
    /// `DEL`, `UNLINK`: how many keys existed.
    CountExisted,
    /// `EXISTS`: how many keys are present.
    CountPresent,
    /// `MGET`: the values.
    Values,
}

impl Shape {
    /// Whether the command's requests write.
    fn writes(self) -> bool {
        !matches!(self, Shape::Value | Shape::Length | Shape::CountPresent | Shape::Values)
    }
}

/// What a command asks of the reactor.
enum Handling {
    /// Answer at once.
    Reply(RespValue),
    /// Answer, then close the connection (`QUIT`).
    ReplyAndClose(RespValue),
    /// Send these requests to the state thread; answer by `shape` in the key's slot.
    Forward { requests: Requests, shape: Shape, slot: u16 },
}

fn error(text: impl Into<String>) -> RespValue {
    RespValue::Error(text.into())
}

fn wrong_arity(name: &str) -> RespValue {
    error(format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
}

const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX_ERROR: &str = "ERR syntax error";
const UNEXPECTED_ANSWER: &str = "ERR internal error: the radiant answered an unexpected kind";

impl Reactor {
    /// Decodes and handles up to `MAX_FRAMES_PER_TURN` buffered RESP requests.
    pub(super) fn process_resp_requests(&mut self, id: ConnectionId, now: Instant) {
        let limits = RespLimits {
            max_request_bytes: self.options.limits.max_frame_bytes as usize,
            max_arguments: MAX_KEYS_PER_COMMAND * 2 + 2,
        };
        for _ in 0..crate::limits::MAX_FRAMES_PER_TURN {
            if self.is_paused(id) {
                return;
            }
            let Some(connection) = self.connections.get_mut(id) else {
                return;
            };
            let before = connection.read_buffer.len();
            match decode_request(&mut connection.read_buffer, &limits) {
                Ok(None) => return,
                Ok(Some(arguments)) => {
                    connection.last_activity = now;
                    let request_bytes = before - connection.read_buffer.len();
                    self.on_resp_command(id, arguments, request_bytes, now);
                }
                Err(protocol_error) => {
                    self.counters.closed_for_protocol_error += 1;
                    let peer = connection.peer_address;
                    warn!(%peer, %protocol_error, "reactor: closing a RESP connection");
                    connection.read_buffer.clear();
                    self.resp_reply(id, error(format!("ERR {protocol_error}")), true, now);
                    return;
                }
            }
        }
        self.revisit.push(id);
    }

    fn on_resp_command(
        &mut self,
        id: ConnectionId,
        arguments: Vec<Bytes>,
        request_bytes: usize,
        now: Instant,
    ) {
        let Some((access, read_only)) = self.connections.get_mut(id).map(|connection| {
            let read_only = connection.resp.as_ref().is_some_and(|session| session.read_only);
            (connection.access, read_only)
        }) else {
            return;
        };
        let mut name_buffer = [0u8; MAX_COMMAND_NAME_BYTES];
        let name = command_name(arguments.first().map_or(&[][..], |name| name), &mut name_buffer);
        let handling = match self.local_command(id, name, &arguments) {
            Some(handling) => handling,
            None => data_command(name, &arguments, self.options.limits.max_value_bytes),
        };
        match handling {
            Handling::Reply(value) => self.resp_reply(id, value, false, now),
            Handling::ReplyAndClose(value) => self.resp_reply(id, value, true, now),
            Handling::Forward { mut requests, shape, slot } => {
                if read_only {
                    for request in &mut requests {
                        if let ClientRequest::Get { consistency, .. } = request {
                            *consistency = ReadConsistency::Follower;
                        }
                    }
                }
                let Some(first) = requests.first() else {
                    return self.resp_reply(id, wrong_arity(name), false, now);
                };
                if self.authorize(access, first).is_err() {
                    SecurityCounters::add(&self.options.security.unauthorized_requests);
                    return self.resp_reply(
                        id,
                        error("NOAUTH Authentication required."),
                        false,
                        now,
                    );
                }
                let limits = self.options.limits;
                if let Some(refusal) = requests.iter().find_map(|r| outside_limits(r, &limits)) {
                    return self.resp_reply(id, refusal, false, now);
                }
                self.forward_resp(id, requests, shape, slot, request_bytes);
            }
        }
    }

    /// Hands a command's requests to the state thread and holds its place in the replies.
    ///
    /// A Redis client expects a connection's commands to take effect in the order sent,
    /// pipelined or not; the core orders only what it has received. Writes of one
    /// connection reach the log in the order sent, but a read sent behind an unanswered
    /// write could be served at a read index before that write (it is concurrent with
    /// it, so linearizability allows it, and a pipelined `SET` then `GET` read nothing),
    /// and a write sent behind an unanswered read could be applied before the read is
    /// served. So a command waits here while commands of the other kind sent before it
    /// are unanswered, and everything behind a waiting command waits with it: runs of
    /// reads, and runs of writes, still pipeline.
    fn forward_resp(
        &mut self,
        id: ConnectionId,
        requests: Requests,
        shape: Shape,
        slot: u16,
        request_bytes: usize,
    ) {
        let charge = self.options.memory.charge_queued(request_bytes);
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let Some(session) = connection.resp.as_deref_mut() else {
            return;
        };
        let first_correlation_id = session.next_correlation_id;
        session.next_correlation_id += requests.len() as u64;
        let writes = shape.writes();
        session.pending.push_back(PendingReply {
            first_correlation_id,
            answers: SmallVec::from_elem(None, requests.len()),
            shape,
            slot,
            ready: None,
            close_after: false,
            writes,
        });
        connection.inflight += requests.len() as u32;
        session.deferred.push_back(Deferred { first_correlation_id, requests, writes, charge });
        self.send_deferred(id);
    }

    /// Sends the held-back commands that may go now: the first one once no command of
    /// the other kind is unanswered, and so on.
    fn send_deferred(&mut self, id: ConnectionId) {
        while let Some(command) = self.next_sendable(id) {
            let Deferred { first_correlation_id, requests, charge, .. } = command;
            let mut charge = Some(charge);
            for (request, correlation_id) in requests.into_iter().zip(first_correlation_id..) {
                let reply_to = ReplyTo { connection: id, correlation_id };
                let charge = charge.take().unwrap_or_else(|| self.options.memory.charge_queued(0));
                self.hand_to_state(id, StateEvent::Client { reply_to, request, charge });
            }
        }
    }

    /// The first held-back command, if no command of the other kind is unanswered; it
    /// counts as in flight from here.
    fn next_sendable(&mut self, id: ConnectionId) -> Option<Deferred> {
        let session = self.connections.get_mut(id)?.resp.as_deref_mut()?;
        let front = session.deferred.front()?;
        let other_kind_in_flight =
            if front.writes { session.reads_in_flight } else { session.writes_in_flight };
        if other_kind_in_flight > 0 {
            return None;
        }
        let command = session.deferred.pop_front()?;
        if command.writes {
            session.writes_in_flight += command.requests.len();
        } else {
            session.reads_in_flight += command.requests.len();
        }
        Some(command)
    }

    /// Queues `value` behind the replies still owed on the connection.
    fn resp_reply(&mut self, id: ConnectionId, value: RespValue, close_after: bool, now: Instant) {
        let Some(session) = self.connections.get_mut(id).and_then(|c| c.resp.as_deref_mut()) else {
            return;
        };
        session.pending.push_back(PendingReply {
            first_correlation_id: session.next_correlation_id,
            answers: SmallVec::new(),
            shape: Shape::Ok,
            slot: 0,
            ready: Some(value),
            close_after,
            writes: false,
        });
        self.write_ready_resp_replies(id, now);
    }

    /// The state thread's answer to one of a RESP command's requests.
    pub(super) fn on_resp_answer(&mut self, reply_to: ReplyTo, message: Message, now: Instant) {
        let id = reply_to.connection;
        let Some(session) = self.connections.get_mut(id).and_then(|c| c.resp.as_deref_mut()) else {
            return;
        };
        let position = session
            .pending
            .partition_point(|pending| pending.first_correlation_id <= reply_to.correlation_id);
        let Some(pending) = position.checked_sub(1).and_then(|at| session.pending.get_mut(at))
        else {
            return;
        };
        let in_flight = if pending.writes {
            &mut session.writes_in_flight
        } else {
            &mut session.reads_in_flight
        };
        *in_flight = in_flight.saturating_sub(1);
        let offset = reply_to.correlation_id - pending.first_correlation_id;
        let Some(answer) = usize::try_from(offset).ok().and_then(|at| pending.answers.get_mut(at))
        else {
            return;
        };
        *answer = Some(message);
        if pending.answers.iter().all(Option::is_some) {
            let answers = std::mem::take(&mut pending.answers);
            let (shape, slot) = (pending.shape, pending.slot);
            let reply = self.reply_to_answers(shape, slot, &answers);
            let session = self.connections.get_mut(id).and_then(|c| c.resp.as_deref_mut());
            if let Some(pending) = session.and_then(|session| session.pending.get_mut(position - 1))
            {
                pending.ready = Some(reply);
            }
        }
        self.send_deferred(id);
        self.write_ready_resp_replies(id, now);
    }

    /// The reply once every answer is in (a `None` left would be a bug: it is answered as
    /// an unexpected kind).
    fn reply_to_answers(&self, shape: Shape, slot: u16, answers: &[Option<Message>]) -> RespValue {
        if let Some(failure) = answers.iter().find_map(|answer| match answer {
            Some(Message::Error(failure)) => Some(failure),
            _ => None,
        }) {
            return self.resp_error(failure, slot);
        }
        reply_of(shape, answers)
    }

    /// Writes the replies at the front of the queue that are ready, in order.
    fn write_ready_resp_replies(&mut self, id: ConnectionId, now: Instant) {
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let Some(mut session) = connection.resp.take() else {
            return;
        };
        let version = session.version;
        let mut close = false;
        let mut wrote = false;
        while session.pending.front().is_some_and(|pending| pending.ready.is_some()) {
            let Some(pending) = session.pending.pop_front() else { break };
            if let Some(value) = pending.ready {
                value.encode(version, connection.write_buffer_mut(now));
                wrote = true;
            }
            if pending.close_after {
                close = true;
                session.pending.clear();
                break;
            }
        }
        connection.resp = Some(session);
        if close {
            connection.closing = true;
            connection.read_buffer.clear();
        }
        if wrote || close {
            self.after_queue(id);
            self.account(id);
        }
    }

    /// A Radiant error as a Redis client understands it: `MOVED` to the herald, `TRYAGAIN`
    /// while the shard is busy, `CLUSTERDOWN` without a herald, otherwise `ERR …`.
    fn resp_error(&self, failure: &ErrorResponse, slot: u16) -> RespValue {
        match failure {
            ErrorResponse::NotHerald { herald, .. } => {
                let routes = self.resp_routes.as_ref();
                match herald.and_then(|herald| routes?.address_of(herald)) {
                    Some(address) => error(format!("MOVED {slot} {address}")),
                    None => match herald {
                        None => error(
                            "CLUSTERDOWN the order of this slot has no herald now (an election \
                             is under way); retry shortly",
                        ),
                        Some(herald) => error(format!(
                            "ERR this radiant is not the herald of its order (radiant {herald} \
                             is) and knows no RESP address for it: give every member a `resp` \
                             address in `members`, or connect to the herald's resp_port"
                        )),
                    },
                }
            }
            ErrorResponse::WrongOrder { config_num } => {
                match self.resp_routes.as_ref().and_then(|routes| routes.node_for_slot(slot)) {
                    Some(node) => error(format!("MOVED {slot} {}", node.address)),
                    None => error(format!(
                        "CLUSTERDOWN slot {slot} is served by another order (configuration \
                         {config_num}) and this radiant knows no RESP address of its members"
                    )),
                }
            }
            ErrorResponse::Locked(op) => {
                error(format!("TRYAGAIN the order serving slot {slot} is busy ({op}); retry"))
            }
            ErrorResponse::Unavailable { reason } => error(format!("CLUSTERDOWN {reason}")),
            ErrorResponse::BadRequest { reason } => error(format!("ERR {reason}")),
            // Why: never MOVED or TRYAGAIN here: Redis clients retry those on their own,
            // and this write may still commit, so a retry could apply it twice.
            ErrorResponse::OutcomeUnknown { reason } => {
                error(format!("ERR outcome unknown, the write may or may not apply: {reason}"))
            }
            ErrorResponse::Unauthorized { .. } => error("NOAUTH Authentication required."),
        }
    }
}

/// The reply to a command whose answers all succeeded.
fn reply_of(shape: Shape, answers: &[Option<Message>]) -> RespValue {
    let response = |at: usize| match answers.get(at) {
        Some(Some(Message::Response(response))) => Some(response),
        _ => None,
    };
    let unexpected = || error(UNEXPECTED_ANSWER);
    match (shape, response(0)) {
        (Shape::Value, Some(ClientResponse::GetResult { value })) => {
            RespValue::optional(value.clone())
        }
        (Shape::Length, Some(ClientResponse::GetResult { value })) => {
            RespValue::Integer(value.as_ref().map_or(0, |value| value.len() as i64))
        }
        (Shape::Ok, Some(ClientResponse::PutResult | ClientResponse::BatchResult(_))) => {
            RespValue::ok()
        }
        (Shape::Written, Some(ClientResponse::BatchResult(BatchOutcome { written, .. }))) => {
            RespValue::Integer(i64::from(*written))
        }
        (Shape::CountExisted, Some(ClientResponse::BatchResult(BatchOutcome { existed, .. }))) => {
            RespValue::Integer(i64::from(*existed))
        }
        (Shape::Set { answer_previous }, Some(ClientResponse::UpdateResult(outcome))) => {
            match outcome {
                UpdateOutcome::Set { previous, .. } if answer_previous => {
                    RespValue::optional(previous.clone())
                }
                UpdateOutcome::Set { written: true, .. } => RespValue::ok(),
                UpdateOutcome::Set { written: false, .. } => RespValue::Null,
                _ => unexpected(),
            }
        }
        (
            Shape::Written,
            Some(ClientResponse::UpdateResult(UpdateOutcome::Set { written, .. })),
        ) => RespValue::Integer(i64::from(*written)),
        (
            Shape::Previous,
            Some(ClientResponse::UpdateResult(
                UpdateOutcome::Set { previous, .. } | UpdateOutcome::Taken { previous },
            )),
        ) => RespValue::optional(previous.clone()),
        (Shape::Integer, Some(ClientResponse::UpdateResult(outcome))) => match outcome {
            UpdateOutcome::Incremented { value } => RespValue::Integer(*value),
            UpdateOutcome::Appended { length } => {
                RespValue::Integer(i64::try_from(*length).unwrap_or(i64::MAX))
            }
            UpdateOutcome::NotAnInteger => error(NOT_AN_INTEGER),
            UpdateOutcome::Overflow => error("ERR increment or decrement would overflow"),
            UpdateOutcome::TooLong { length } => error(format!(
                "ERR string exceeds maximum allowed size ({length} bytes would pass this \
                 radiant's max_value_bytes)"
            )),
            _ => unexpected(),
        },
        (Shape::CountExisted | Shape::CountPresent | Shape::Values, _) => {
            reply_of_many(shape, answers)
        }
        _ => unexpected(),
    }
}

/// `DEL` of one key, `EXISTS`, `MGET`: a count or the values of one answer per key.
fn reply_of_many(shape: Shape, answers: &[Option<Message>]) -> RespValue {
    let mut count = 0;
    let mut values = Vec::with_capacity(answers.len());
    for answer in answers {
        match answer {
            Some(Message::Response(ClientResponse::DeleteResult { existed })) => {
                count += i64::from(*existed);
            }
            Some(Message::Response(ClientResponse::GetResult { value })) => {
                count += i64::from(value.is_some());
                values.push(RespValue::optional(value.clone()));
            }
            _ => return error(UNEXPECTED_ANSWER),
        }
    }
    match shape {
        Shape::Values => RespValue::Array(values),
        _ => RespValue::Integer(count),
    }
}

/// The refusal of a request whose key or value the binary protocol's decoder would have
/// refused (empty key, key over `max_key_bytes`, value over `max_value_bytes`): RESP
/// builds requests itself, and nothing past these limits may reach the log, whose
/// entries every member must be able to decode.
fn outside_limits(request: &ClientRequest, limits: &radiant_protocol::Limits) -> Option<RespValue> {
    let (key, value) = match request {
        ClientRequest::Get { key, .. } | ClientRequest::Delete { key, .. } => (key, None),
        ClientRequest::Put { key, value, .. } => (key, Some(value)),
        ClientRequest::Update { key, update, .. } => match update {
            Update::Set { value, .. } => (key, Some(value)),
            Update::Append { suffix, .. } => (key, Some(suffix)),
            Update::IncrementBy { .. } | Update::Take => (key, None),
        },
        ClientRequest::Batch { batch, .. } => {
            return batch.writes.iter().find_map(|write| {
                key_value_outside_limits(&write.key, write.value.as_ref(), limits)
            });
        }
        _ => return None,
    };
    key_value_outside_limits(key, value, limits)
}

fn key_value_outside_limits(
    key: &Bytes,
    value: Option<&Bytes>,
    limits: &radiant_protocol::Limits,
) -> Option<RespValue> {
    if key.is_empty() {
        return Some(error("ERR Radiant keys must not be empty"));
    }
    if key.len() > limits.max_key_bytes as usize {
        return Some(error(format!(
            "ERR key of {} bytes is longer than this radiant's max_key_bytes ({})",
            key.len(),
            limits.max_key_bytes
        )));
    }
    let value_bytes = value.map_or(0, Bytes::len);
    if value_bytes > limits.max_value_bytes as usize {
        return Some(error(format!(
            "ERR value of {value_bytes} bytes is longer than this radiant's max_value_bytes ({})",
            limits.max_value_bytes
        )));
    }
    None
}

/// The single slot every key of `keys` hashes to, or the `CROSSSLOT` error.
fn one_slot(keys: &[Bytes]) -> Result<u16, RespValue> {
    let slot = keys.first().map_or(0, |key| key_slot(key));
    if keys.iter().all(|key| key_slot(key) == slot) {
        Ok(slot)
    } else {
        Err(error("CROSSSLOT Keys in request don't hash to the same slot"))
    }
}

fn forward_one(request: ClientRequest, shape: Shape, key: &Bytes) -> Handling {
    Handling::Forward { requests: smallvec::smallvec![request], shape, slot: key_slot(key) }
}

/// Longer than any command name this radiant knows; a longer name is unknown.
const MAX_COMMAND_NAME_BYTES: usize = 16;

/// The command's name in upper case, in `buffer` (no allocation per command); empty for
/// a name too long or not UTF-8, which no command has, so it is answered as unknown.
fn command_name<'a>(name: &[u8], buffer: &'a mut [u8; MAX_COMMAND_NAME_BYTES]) -> &'a str {
    let Some(upper) = buffer.get_mut(..name.len()) else {
        return "";
    };
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    std::str::from_utf8(upper).unwrap_or_default()
}

fn get(key: &Bytes) -> ClientRequest {
    ClientRequest::Get { key: key.clone(), consistency: ReadConsistency::Linearizable }
}

fn update(key: &Bytes, update: Update) -> ClientRequest {
    ClientRequest::Update { key: key.clone(), update, session: None }
}

/// A data command as the requests it becomes (or the error it gets).
fn data_command(name: &str, arguments: &[Bytes], max_value_bytes: u32) -> Handling {
    let rest = arguments.get(1..).unwrap_or_default();
    let reply = Handling::Reply;
    match (name, rest) {
        ("GET", [key]) => forward_one(get(key), Shape::Value, key),
        ("STRLEN", [key]) => forward_one(get(key), Shape::Length, key),
        ("SET", [key, value, options @ ..]) => set_command(key, value, options),
        ("SETNX", [key, value]) => {
            let set = Update::Set { value: value.clone(), condition: SetCondition::IfAbsent };
            forward_one(update(key, set), Shape::Written, key)
        }
        ("GETSET", [key, value]) => {
            let set = Update::Set { value: value.clone(), condition: SetCondition::Always };
            forward_one(update(key, set), Shape::Previous, key)
        }
        ("GETDEL", [key]) => forward_one(update(key, Update::Take), Shape::Previous, key),
        ("APPEND", [key, suffix]) => {
            let append = Update::Append { suffix: suffix.clone(), max_value_bytes };
            forward_one(update(key, append), Shape::Integer, key)
        }
        ("INCR", [key]) => increment(key, 1),
        ("DECR", [key]) => increment(key, -1),
        ("INCRBY", [key, delta]) => match parse_integer(delta) {
            Some(delta) => increment(key, delta),
            None => reply(error(NOT_AN_INTEGER)),
        },
        ("DECRBY", [key, delta]) => match parse_integer(delta).map(i64::checked_neg) {
            Some(Some(delta)) => increment(key, delta),
            Some(None) => reply(error("ERR decrement would overflow")),
            None => reply(error(NOT_AN_INTEGER)),
        },
        ("DEL" | "UNLINK" | "EXISTS" | "MGET", keys) if !keys.is_empty() => many_keys(name, keys),
        ("MSET" | "MSETNX", pairs) if !pairs.is_empty() && pairs.len() % 2 == 0 => {
            set_many(name, pairs)
        }
        (
            "GET" | "STRLEN" | "SET" | "SETNX" | "GETSET" | "GETDEL" | "APPEND" | "INCR" | "DECR"
            | "INCRBY" | "DECRBY" | "DEL" | "UNLINK" | "EXISTS" | "MGET" | "MSET" | "MSETNX",
            _,
        ) => reply(wrong_arity(name)),
        _ => reply(unknown_command(arguments)),
    }
}

fn unknown_command(arguments: &[Bytes]) -> RespValue {
    let name = arguments.first().map(|name| String::from_utf8_lossy(name)).unwrap_or_default();
    let mut text = format!("ERR unknown command '{name}', with args beginning with: ");
    for argument in arguments.iter().skip(1).take(8) {
        text.push_str(&format!("'{}' ", String::from_utf8_lossy(argument)));
    }
    error(text)
}

fn increment(key: &Bytes, delta: i64) -> Handling {
    forward_one(update(key, Update::IncrementBy { delta }), Shape::Integer, key)
}

fn many_keys(name: &str, keys: &[Bytes]) -> Handling {
    if keys.len() > MAX_KEYS_PER_COMMAND {
        return Handling::Reply(error(format!(
            "ERR {name} names {} keys; this radiant takes at most {MAX_KEYS_PER_COMMAND} in one \
             command",
            keys.len()
        )));
    }
    let slot = match one_slot(keys) {
        Ok(slot) => slot,
        Err(refusal) => return Handling::Reply(refusal),
    };
    let (requests, shape) = match name {
        "DEL" | "UNLINK" if keys.len() == 1 => (
            keys.iter()
                .map(|key| ClientRequest::Delete { key: key.clone(), session: None })
                .collect(),
            Shape::CountExisted,
        ),
        "DEL" | "UNLINK" => {
            let writes = keys.iter().map(|key| BatchWrite { key: key.clone(), value: None });
            let batch = Batch { condition: BatchCondition::Always, writes: writes.collect() };
            (
                smallvec::smallvec![ClientRequest::Batch { batch, session: None }],
                Shape::CountExisted,
            )
        }
        "EXISTS" => (keys.iter().map(get).collect(), Shape::CountPresent),
        _ => (keys.iter().map(get).collect(), Shape::Values),
    };
    Handling::Forward { requests, shape, slot }
}

/// `MSET` and `MSETNX`: one batch, so every key is written or (`MSETNX` with a key
/// present) none is, and no reader sees some of the keys written and not others.
fn set_many(name: &str, pairs: &[Bytes]) -> Handling {
    let keys: Vec<Bytes> = pairs.iter().step_by(2).cloned().collect();
    if keys.len() > MAX_KEYS_PER_COMMAND {
        return Handling::Reply(error(format!(
            "ERR {name} names {} keys; this radiant takes at most {MAX_KEYS_PER_COMMAND} in one \
             command",
            keys.len()
        )));
    }
    let slot = match one_slot(&keys) {
        Ok(slot) => slot,
        Err(refusal) => return Handling::Reply(refusal),
    };
    let writes = pairs
        .chunks_exact(2)
        .filter_map(|pair| match pair {
            [key, value] => Some(BatchWrite { key: key.clone(), value: Some(value.clone()) }),
            _ => None,
        })
        .collect();
    let (condition, shape) = match name {
        "MSETNX" => (BatchCondition::IfAllAbsent, Shape::Written),
        _ => (BatchCondition::Always, Shape::Ok),
    };
    let batch = ClientRequest::Batch { batch: Batch { condition, writes }, session: None };
    Handling::Forward { requests: smallvec::smallvec![batch], shape, slot }
}

/// `SET key value [NX|XX] [GET]`; expiry options are refused until keys can expire.
fn set_command(key: &Bytes, value: &Bytes, options: &[Bytes]) -> Handling {
    let mut condition = SetCondition::Always;
    let mut answer_previous = false;
    for option in options {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" if condition == SetCondition::Always => condition = SetCondition::IfAbsent,
            b"XX" if condition == SetCondition::Always => condition = SetCondition::IfPresent,
            b"GET" => answer_previous = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" => {
                return Handling::Reply(error(
                    "ERR Radiant keys do not expire yet: SET's EX, PX, EXAT, PXAT and KEEPTTL \
                     are not supported",
                ))
            }
            _ => return Handling::Reply(error(SYNTAX_ERROR)),
        }
    }
    if condition == SetCondition::Always && !answer_previous {
        let put = ClientRequest::Put { key: key.clone(), value: value.clone(), session: None };
        return forward_one(put, Shape::Ok, key);
    }
    let set = Update::Set { value: value.clone(), condition };
    forward_one(update(key, set), Shape::Set { answer_previous }, key)
}

// ===== commands answered by the radiant itself =====

impl Reactor {
    /// Connection, introspection and routing commands; `None` for data commands.
    fn local_command(
        &mut self,
        id: ConnectionId,
        name: &str,
        arguments: &[Bytes],
    ) -> Option<Handling> {
        let rest = arguments.get(1..).unwrap_or_default();
        let reply = |value| Some(Handling::Reply(value));
        match (name, rest) {
            ("PING", []) => reply(RespValue::Simple("PONG".into())),
            ("PING" | "ECHO", [message]) => reply(RespValue::Bulk(message.clone())),
            ("QUIT", _) => Some(Handling::ReplyAndClose(RespValue::ok())),
            ("SELECT", [database]) => reply(if database.as_ref() == b"0" {
                RespValue::ok()
            } else {
                error("ERR DB index is out of range")
            }),
            ("READONLY" | "READWRITE", []) => {
                let session = self.connections.get_mut(id).and_then(|c| c.resp.as_deref_mut());
                if let Some(session) = session {
                    session.read_only = name == "READONLY";
                }
                reply(RespValue::ok())
            }
            ("AUTH", [password] | [_, password]) => reply(self.resp_authenticate(id, password)),
            ("HELLO", _) => reply(self.hello(id, rest)),
            ("CLIENT", [subcommand, more @ ..]) => reply(self.client_command(id, subcommand, more)),
            ("COMMAND", _) => reply(command_command(rest)),
            ("CONFIG", [subcommand, patterns @ ..]) if subcommand.eq_ignore_ascii_case(b"GET") => {
                reply(config_get(patterns))
            }
            ("INFO", sections) => reply(RespValue::Verbatim(self.info(sections))),
            ("DBSIZE", []) => {
                let keys = self.resp_routes.as_ref().map_or(0, |routes| routes.machine.map().len());
                reply(RespValue::Integer(keys as i64))
            }
            ("CLUSTER", [subcommand, more @ ..]) => reply(self.cluster_command(subcommand, more)),
            (
                "PING" | "ECHO" | "SELECT" | "AUTH" | "CLIENT" | "CLUSTER" | "READONLY"
                | "READWRITE",
                _,
            ) => reply(wrong_arity(name)),
            _ => None,
        }
    }

    fn resp_authenticate(&mut self, id: ConnectionId, password: &Bytes) -> RespValue {
        match self.authenticate(id, password) {
            Message::Response(_) => RespValue::ok(),
            _ => error("WRONGPASS invalid username-password pair or user is disabled."),
        }
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
    fn hello(&mut self, id: ConnectionId, arguments: &[Bytes]) -> RespValue {
        let mut version = None;
        let mut rest = arguments;
        if let [requested, more @ ..] = rest {
            version = match requested.as_ref() {
                b"2" => Some(RespVersion::Two),
                b"3" => Some(RespVersion::Three),
                _ => return error("NOPROTO unsupported protocol version"),
            };
            rest = more;
        }
        let mut name = None;
        while let [option, more @ ..] = rest {
            match (option.to_ascii_uppercase().as_slice(), more) {
                (b"AUTH", [_, password, after @ ..]) => {
                    if let RespValue::Error(refusal) = self.resp_authenticate(id, password) {
                        return RespValue::Error(refusal);
                    }
                    rest = after;
                }
                (b"SETNAME", [client_name, after @ ..]) => {
                    name = Some(client_name.clone());
                    rest = after;
                }
                _ => return error(SYNTAX_ERROR),
            }
        }
        let role = self.resp_role();
        let Some(session) = self.connections.get_mut(id).and_then(|c| c.resp.as_deref_mut()) else {
            return RespValue::Null;
        };
        if let Some(version) = version {
            session.version = version;
        }
        if name.is_some() {
            session.name = name;
        }
        let protocol = if session.version == RespVersion::Three { 3 } else { 2 };
        RespValue::Map(vec![
            (RespValue::text("server"), RespValue::text("redis")),
            (RespValue::text("version"), RespValue::text(REDIS_COMPATIBLE_VERSION)),
            (RespValue::text("proto"), RespValue::Integer(protocol)),
            (RespValue::text("id"), RespValue::Integer(id.0 as i64)),
            (RespValue::text("mode"), RespValue::text("cluster")),
            (RespValue::text("role"), RespValue::text(role)),
            (RespValue::text("modules"), RespValue::Array(Vec::new())),
        ])
    }

    fn resp_role(&self) -> &'static str {
        let routes = self.resp_routes.as_ref();
        let herald = routes.and_then(RespRoutes::herald);
        if herald.is_some() && herald == routes.and_then(RespRoutes::me) {
            "master"
        } else {
            "replica"
        }
    }

    fn client_command(
        &mut self,
        id: ConnectionId,
        subcommand: &Bytes,
        rest: &[Bytes],
    ) -> RespValue {
        let Some(connection) = self.connections.get_mut(id) else {
            return RespValue::Null;
        };
        let peer = connection.peer_address;
        let Some(session) = connection.resp.as_deref_mut() else {
            return RespValue::Null;
        };
        match (subcommand.to_ascii_uppercase().as_slice(), rest) {
            (b"SETNAME", [name]) => {
                if name.iter().any(|byte| byte.is_ascii_whitespace()) {
                    return error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                session.name = Some(name.clone()).filter(|name| !name.is_empty());
                RespValue::ok()
            }
            (b"GETNAME", []) => RespValue::optional(session.name.clone()),
            (b"ID", []) => RespValue::Integer(id.0 as i64),
            (b"SETINFO", [_, _]) => RespValue::ok(),
            (b"INFO", []) => {
                let name = session.name.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                let resp = if session.version == RespVersion::Three { 3 } else { 2 };
                RespValue::Verbatim(format!(
                    "id={} addr={peer} name={name} db=0 resp={resp}\n",
                    id.0
                ))
            }
            _ => error(format!(
                "ERR unknown subcommand or wrong number of arguments for 'CLIENT|{}'",
                String::from_utf8_lossy(subcommand)
            )),
        }
    }

    /// `INFO [section ...]`: server, clients, replication and keyspace.
    fn info(&self, sections: &[Bytes]) -> String {
        let wanted = |section: &str| {
            sections.is_empty()
                || sections.iter().any(|asked| {
                    asked.eq_ignore_ascii_case(section.as_bytes())
                        || asked.eq_ignore_ascii_case(b"all")
                        || asked.eq_ignore_ascii_case(b"everything")
                })
        };
        let mut text = String::new();
        if wanted("server") {
            text.push_str(&format!(
                "# Server\r\nredis_version:{REDIS_COMPATIBLE_VERSION}\r\nradiant_version:{}\r\n\
                 redis_mode:cluster\r\nprocess_id:{}\r\n\r\n",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            ));
        }
        if wanted("clients") {
            text.push_str(&format!(
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
                self.client_connections, self.options.max_connections
            ));
        }
        let routes = self.resp_routes.as_ref();
        if wanted("replication") {
            let role = if self.resp_role() == "master" { "master" } else { "slave" };
            text.push_str(&format!("# Replication\r\nrole:{role}\r\n"));
            let herald = routes.and_then(RespRoutes::herald);
            if let Some(address) = herald.and_then(|herald| routes?.address_of(herald)) {
                if role == "slave" {
                    text.push_str(&format!(
                        "master_host:{}\r\nmaster_port:{}\r\nmaster_link_status:up\r\n",
                        address.ip(),
                        address.port()
                    ));
                }
            }
            text.push_str(&format!(
                "radiant_herald:{}\r\n\r\n",
                herald.map_or_else(|| "none".to_string(), |herald| herald.to_string())
            ));
        }
        if wanted("keyspace") {
            let keys = routes.map_or(0, |routes| routes.machine.map().len());
            text.push_str(&format!("# Keyspace\r\ndb0:keys={keys},expires=0,avg_ttl=0\r\n"));
        }
        text
    }

    fn cluster_command(&self, subcommand: &Bytes, rest: &[Bytes]) -> RespValue {
        let routes = self.resp_routes.as_ref();
        let ranges = || routes.map(RespRoutes::slot_ranges).unwrap_or_default();
        match (subcommand.to_ascii_uppercase().as_slice(), rest) {
            (b"KEYSLOT", [key]) => RespValue::Integer(i64::from(key_slot(key))),
            (b"MYID", []) => match routes.and_then(RespRoutes::me) {
                Some(member) => RespValue::text(node_id(member)),
                None => error("ERR this radiant has no member id yet (it has not joined)"),
            },
            (b"SLOTS", []) => resp_routes::cluster_slots(&ranges()),
            (b"SHARDS", []) => resp_routes::cluster_shards(&ranges()),
            (b"NODES", []) => {
                resp_routes::cluster_nodes(&ranges(), routes.and_then(RespRoutes::me))
            }
            (b"INFO", []) => resp_routes::cluster_info(&ranges()),
            _ => error(format!(
                "ERR unknown subcommand or wrong number of arguments for 'CLUSTER|{}'",
                String::from_utf8_lossy(subcommand)
            )),
        }
    }
}

/// `CONFIG GET pattern...`: the few Redis settings clients probe, answered with what
/// Radiant does (no snapshots on a timer, every acknowledged write durable on a majority
/// as with `appendfsync always`); Radiant's own settings live in its config file.
fn config_get(patterns: &[Bytes]) -> RespValue {
    const SETTINGS: &[(&str, &str)] = &[
        ("save", ""),
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("databases", "1"),
        ("cluster-enabled", "yes"),
    ];
    let pairs = SETTINGS
        .iter()
        .filter(|(name, _)| {
            patterns.iter().any(|pattern| {
                pattern.as_ref() == b"*" || pattern.eq_ignore_ascii_case(name.as_bytes())
            })
        })
        .map(|(name, value)| (RespValue::text(*name), RespValue::text(*value)))
        .collect();
    RespValue::Map(pairs)
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS`, `COMMAND INFO`: enough for clients that
/// probe them (names, arities and key positions of the commands served).
fn command_command(arguments: &[Bytes]) -> RespValue {
    // name, arity (negative: at least), first key, last key, step
    const COMMANDS: &[(&str, i64, i64, i64, i64)] = &[
        ("get", 2, 1, 1, 1),
        ("set", -3, 1, 1, 1),
        ("setnx", 3, 1, 1, 1),
        ("getset", 3, 1, 1, 1),
        ("getdel", 2, 1, 1, 1),
        ("strlen", 2, 1, 1, 1),
        ("append", 3, 1, 1, 1),
        ("incr", 2, 1, 1, 1),
        ("decr", 2, 1, 1, 1),
        ("incrby", 3, 1, 1, 1),
        ("decrby", 3, 1, 1, 1),
        ("del", -2, 1, -1, 1),
        ("unlink", -2, 1, -1, 1),
        ("exists", -2, 1, -1, 1),
        ("mget", -2, 1, -1, 1),
        ("mset", -3, 1, -1, 2),
        ("msetnx", -3, 1, -1, 2),
        ("ping", -1, 0, 0, 0),
        ("echo", 2, 0, 0, 0),
        ("hello", -1, 0, 0, 0),
        ("auth", -2, 0, 0, 0),
        ("client", -2, 0, 0, 0),
        ("command", -1, 0, 0, 0),
        ("config", -2, 0, 0, 0),
        ("info", -1, 0, 0, 0),
        ("select", 2, 0, 0, 0),
        ("quit", -1, 0, 0, 0),
        ("readonly", 1, 0, 0, 0),
        ("readwrite", 1, 0, 0, 0),
        ("cluster", -2, 0, 0, 0),
    ];
    let info = |(name, arity, first, last, step): &(&str, i64, i64, i64, i64)| {
        RespValue::Array(vec![
            RespValue::text(*name),
            RespValue::Integer(*arity),
            RespValue::Set(Vec::new()),
            RespValue::Integer(*first),
            RespValue::Integer(*last),
            RespValue::Integer(*step),
        ])
    };
    let subcommand = arguments.first().map(|word| word.to_ascii_uppercase());
    match subcommand.as_deref() {
        None => RespValue::Array(COMMANDS.iter().map(info).collect()),
        Some(b"COUNT") => RespValue::Integer(COMMANDS.len() as i64),
        Some(b"INFO") => RespValue::Array(
            arguments
                .get(1..)
                .unwrap_or_default()
                .iter()
                .map(|asked| {
                    COMMANDS
                        .iter()
                        .find(|command| asked.eq_ignore_ascii_case(command.0.as_bytes()))
                        .map_or(RespValue::Null, info)
                })
                .collect(),
        ),
        Some(b"DOCS") => RespValue::Map(Vec::new()),
        Some(_) => error("ERR unknown subcommand for 'COMMAND'"),
    }
}
