//! Simulated clients. Each runs one operation at a time with its own session (client
//! id + sequence), like the real client library: it follows `NotHerald` hints, backs
//! off on `Locked`/`Unavailable`, retries a timed-out request elsewhere with the same
//! session, and gives up at a deadline, recording the outcome as unknown. Every
//! operation lands in the history the linearizability checker reads.

use bytes::Bytes;
use radiant_protocol::{
    ClientId, ClientRequest, ClientResponse, ErrorResponse, ReadConsistency, Session,
};

use super::history::{OpKind, Operation};
use crate::core::prng::Prng;

/// Timing of client retries, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTiming {
    /// Resend elsewhere when an attempt gets no answer for this long.
    pub attempt_timeout_ticks: u64,
    /// Give up (outcome unknown) this long after the call.
    pub deadline_ticks: u64,
    /// Wait this long after `Locked`/`Unavailable`.
    pub backoff_ticks: u64,
}

/// What a client needs to know about the moment and the system to act.
#[derive(Clone, Copy, Debug)]
pub struct ClientContext {
    /// The current tick.
    pub now: u64,
    /// The history clock.
    pub clock_ns: u64,
    /// Number of radiants.
    pub radiants: usize,
    /// Retry timing.
    pub timing: ClientTiming,
}

/// One operation in flight.
#[derive(Clone, Debug)]
struct InFlight {
    request: ClientRequest,
    history_index: usize,
    correlations: Vec<u64>,
    called_at_tick: u64,
    sent_at_tick: u64,
    /// Resend at this tick (after a back-off); `None` = waiting for an answer.
    resend_at: Option<u64>,
}

/// What a client wants the simulator to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Send {
    /// Radiant index to send to.
    pub radiant: usize,
    /// Correlation id.
    pub correlation: u64,
    /// The request.
    pub request: ClientRequest,
}

/// A simulated client.
#[derive(Debug)]
pub struct SimClient {
    index: usize,
    client_id: ClientId,
    sequence: u64,
    next_correlation: u64,
    target: usize,
    current: Option<InFlight>,
    /// Operations this client may still start.
    pub remaining: u64,
    /// Whether to use lease reads for some gets.
    pub lease_reads: bool,
    /// Whether to use follower reads for some gets (the simulator sends those to any
    /// member).
    pub follower_reads: bool,
    /// Whether the simulator routes this client by the shard map (a sharded system):
    /// `WrongOrder`, `NotHerald`, `Locked` and timeouts then ask it for a new target
    /// (`take_route`) instead of guessing one.
    pub routed: bool,
    needs_route: bool,
}

impl SimClient {
    /// Client `index`, allowed `operations` operations, starting at radiant `target`.
    pub fn new(index: usize, operations: u64, target: usize) -> Self {
        SimClient {
            index,
            client_id: ClientId::new(index as u64 + 1).expect("index + 1 is nonzero"),
            sequence: 0,
            next_correlation: 1,
            target,
            current: None,
            remaining: operations,
            lease_reads: false,
            follower_reads: false,
            routed: false,
            needs_route: false,
        }
    }

    /// The key of the operation in flight, once, when it needs a new target.
    pub fn take_route(&mut self) -> Option<Bytes> {
        if !std::mem::take(&mut self.needs_route) {
            return None;
        }
        self.current.as_ref()?.request.key().cloned()
    }

    /// Sends the next attempt to radiant `target`.
    pub fn set_target(&mut self, target: usize) {
        self.target = target;
    }

    /// Whether an operation is in flight.
    pub fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// Starts a new operation if idle and allowed; returns the request to send.
    pub fn maybe_start(
        &mut self,
        now: u64,
        clock_ns: u64,
        keys: u64,
        prng: &mut Prng,
        history: &mut Vec<Operation>,
    ) -> Option<Send> {
        if self.current.is_some() || self.remaining == 0 || !prng.chance(1, 3) {
            return None;
        }
        self.remaining -= 1;
        let key = format!("k{}", prng.range(0, keys));
        let (request, operation) = self.plan(key, clock_ns, prng);
        history.push(operation);
        self.current = Some(InFlight {
            request,
            history_index: history.len() - 1,
            correlations: Vec::new(),
            called_at_tick: now,
            sent_at_tick: now,
            resend_at: None,
        });
        Some(self.send_current(now))
    }

    fn plan(&mut self, key: String, clock_ns: u64, prng: &mut Prng) -> (ClientRequest, Operation) {
        let key_bytes = Bytes::from(key.clone().into_bytes());
        let choice = prng.range(0, 10);
        let mut operation = Operation {
            client: self.index as u64,
            op: OpKind::Get,
            key,
            value: None,
            expected: None,
            call_ns: clock_ns,
            return_ns: None,
            output: None,
            ok: false,
        };
        if choice < 4 {
            let consistency = if self.follower_reads && prng.chance(1, 2) {
                ReadConsistency::Follower
            } else if self.lease_reads && prng.chance(1, 2) {
                ReadConsistency::Lease
            } else {
                ReadConsistency::Linearizable
            };
            return (ClientRequest::Get { key: key_bytes, consistency }, operation);
        }
        self.sequence += 1;
        let session = Some(Session { client_id: self.client_id, sequence: self.sequence });
        let value = format!("c{}-{}", self.index, self.sequence);
        let request = match choice {
            4..=6 => {
                operation.op = OpKind::Put;
                operation.value = Some(value.clone());
                ClientRequest::Put {
                    key: key_bytes,
                    value: Bytes::from(value.into_bytes()),
                    session,
                }
            }
            7 => {
                operation.op = OpKind::Delete;
                ClientRequest::Delete { key: key_bytes, session }
            }
            _ => {
                operation.op = OpKind::Cas;
                // Expect a value some client may have written, or absence.
                let expected = prng.chance(1, 3).then(|| {
                    format!("c{}-{}", prng.range(0, 3), prng.range(1, self.sequence.max(2)))
                });
                let new = (!prng.chance(1, 5)).then(|| value.clone());
                operation.expected = expected.clone();
                operation.value = new.clone();
                ClientRequest::Cas {
                    key: key_bytes,
                    expected: expected.map(|text| Bytes::from(text.into_bytes())),
                    new: new.map(|text| Bytes::from(text.into_bytes())),
                    session,
                }
            }
        };
        (request, operation)
    }

    fn send_current(&mut self, now: u64) -> Send {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let current = self.current.as_mut().expect("an operation is in flight");
        current.correlations.push(correlation);
        current.sent_at_tick = now;
        current.resend_at = None;
        Send { radiant: self.target, correlation, request: current.request.clone() }
    }

    /// Timeouts, back-offs and give-ups. `radiants` is the number of radiants.
    pub fn on_tick(
        &mut self,
        now: u64,
        clock_ns: u64,
        radiants: usize,
        timing: ClientTiming,
        history: &mut [Operation],
    ) -> Option<Send> {
        let current = self.current.as_ref()?;
        if now >= current.called_at_tick + timing.deadline_ticks {
            // Outcome unknown: return_ns stays None.
            let _ = (clock_ns, &history[current.history_index]);
            self.current = None;
            return None;
        }
        let resend_due = current.resend_at.is_some_and(|at| now >= at);
        let timed_out = current.resend_at.is_none()
            && now >= current.sent_at_tick + timing.attempt_timeout_ticks;
        if timed_out {
            // As the client library does: an attempt with no answer moves on to the next
            // radiant, so one that is down for good (it refused a damaged disk) is tried
            // once per round, not at random until the deadline.
            self.target = (self.target + 1) % radiants;
            self.needs_route = self.routed;
        }
        (resend_due || timed_out).then(|| self.send_current(now))
    }

    /// An answer arrived. Returns a resend when the answer says "try elsewhere".
    pub fn on_reply(
        &mut self,
        context: ClientContext,
        correlation: u64,
        result: Result<ClientResponse, ErrorResponse>,
        prng: &mut Prng,
        history: &mut [Operation],
    ) -> Option<Send> {
        let ClientContext { now, clock_ns, radiants, timing } = context;
        let current = self.current.as_mut()?;
        if !current.correlations.contains(&correlation) {
            return None;
        }
        match result {
            Ok(response) => {
                complete(&mut history[current.history_index], response, clock_ns);
                self.current = None;
                None
            }
            // No configuration 0 names an owner: a radiant that has adopted none is not
            // ready and must say so (`Unavailable`), not send the client looking.
            Err(ErrorResponse::WrongOrder { config_num: 0 }) => panic!(
                "sim client {}: a radiant answered WrongOrder for configuration 0",
                self.index
            ),
            Err(ErrorResponse::WrongOrder { .. } | ErrorResponse::NotHerald { .. })
                if self.routed =>
            {
                self.needs_route = true;
                current.resend_at = Some(now + timing.backoff_ticks);
                None
            }
            Err(ErrorResponse::NotHerald { herald, .. }) => {
                self.target = match herald {
                    Some(herald) if (herald.get() as usize) <= radiants => {
                        herald.get() as usize - 1
                    }
                    _ => prng.range(0, radiants as u64) as usize,
                };
                if herald.is_some() {
                    Some(self.send_current(now))
                } else {
                    current.resend_at = Some(now + timing.backoff_ticks);
                    None
                }
            }
            Err(ErrorResponse::Locked(_) | ErrorResponse::Unavailable { .. }) => {
                current.resend_at = Some(now + timing.backoff_ticks);
                self.target = prng.range(0, radiants as u64) as usize;
                self.needs_route = self.routed;
                None
            }
            Err(error) => panic!("sim client {}: unexpected error answer {error:?}", self.index),
        }
    }
}

/// Fills in a completed operation's outcome.
fn complete(operation: &mut Operation, response: ClientResponse, clock_ns: u64) {
    operation.return_ns = Some(clock_ns);
    let text =
        |bytes: Option<Bytes>| bytes.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    match (operation.op, response) {
        (OpKind::Get, ClientResponse::GetResult { value }) => {
            operation.output = text(value);
            operation.ok = true;
        }
        (OpKind::Put, ClientResponse::PutResult) => operation.ok = true,
        (OpKind::Delete, ClientResponse::DeleteResult { existed }) => operation.ok = existed,
        (OpKind::Cas, ClientResponse::CasResult { succeeded, current }) => {
            operation.ok = succeeded;
            operation.output = text(current);
        }
        (op, response) => panic!("sim: {op:?} answered with {response:?}"),
    }
}
