//! Simulated clients. Each runs one operation at a time and makes its requests and
//! decides its retries with the client library's own logic (`client::policy`): every
//! write carries a session from `SessionRequests`, and after each attempt
//! `CallPolicy` says whether to finish, follow the herald, reroute, back off and resend
//! here or elsewhere, or give up at the deadline (recording the outcome as unknown).
//! What stays here is the part a real client does with sockets: picking the radiant to
//! send to. Every operation lands in the history the linearizability checker reads.

// `core::time` has durations and no clock: the policy counts time the simulator gives it.
use core::time::Duration;

use bytes::Bytes;
use radiant_protocol::{ClientId, ClientRequest, ClientResponse, ErrorResponse, ReadConsistency};

use super::history::{OpKind, Operation};
use crate::client::policy::{
    Attempt, CallPolicy, CallTiming, Failure, Next, Rotation, SessionRequests,
};
use crate::core::prng::Prng;

/// Timing of client retries, in ticks. The client policy counts time as a `Duration`;
/// here one tick stands for one millisecond of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTiming {
    /// Resend elsewhere when an attempt gets no answer for this long.
    pub attempt_timeout_ticks: u64,
    /// Give up (outcome unknown) this long after the call.
    pub deadline_ticks: u64,
    /// The first wait after `Locked`/`Unavailable`/no answer; later ones double.
    pub first_backoff_ticks: u64,
    /// The longest wait.
    pub max_backoff_ticks: u64,
}

impl ClientTiming {
    fn call_timing(self) -> CallTiming {
        CallTiming {
            deadline: Duration::from_millis(self.deadline_ticks),
            attempt_timeout: Duration::from_millis(self.attempt_timeout_ticks),
            first_backoff: Duration::from_millis(self.first_backoff_ticks),
            max_backoff: Duration::from_millis(self.max_backoff_ticks),
        }
    }
}

/// The ticks a policy's `Duration` stands for, rounded up (a wait is never shortened).
fn ticks(duration: Duration) -> u64 {
    duration.as_nanos().div_ceil(1_000_000) as u64
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
}

/// One operation in flight.
#[derive(Clone, Debug)]
struct InFlight {
    request: ClientRequest,
    policy: CallPolicy,
    history_index: usize,
    correlations: Vec<u64>,
    called_at_tick: u64,
    /// The attempt in flight gets no answer if none came by this tick.
    answer_by_tick: u64,
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
    writes: SessionRequests,
    timing: ClientTiming,
    next_correlation: u64,
    target: usize,
    /// The radiants by index, least recently sent to first (the library's rotation).
    rotation: Rotation<usize>,
    current: Option<InFlight>,
    /// Operations this client may still start.
    pub remaining: u64,
    /// Whether to use lease reads for some gets.
    pub lease_reads: bool,
    /// Whether to use follower reads for some gets (the simulator sends those to any
    /// member).
    pub follower_reads: bool,
    /// Whether the simulator routes this client by the shard map (a sharded system):
    /// a move the policy asks for (follow the herald, reroute, go elsewhere) then asks it
    /// for a new target (`take_route`), standing in for the library's status-fetched
    /// `ShardRoutes`, instead of guessing one.
    pub routed: bool,
    needs_route: bool,
}

impl SimClient {
    /// Client `index` of a system of `radiants`, allowed `operations` operations,
    /// starting at radiant `target`.
    pub fn new(
        index: usize,
        radiants: usize,
        operations: u64,
        target: usize,
        timing: ClientTiming,
    ) -> Self {
        let mut rotation = Rotation::new(radiants);
        for radiant in (0..radiants).rev() {
            rotation.learn(radiant);
        }
        SimClient {
            index,
            writes: SessionRequests::new(
                ClientId::new(index as u64 + 1).expect("index + 1 is nonzero"),
            ),
            timing,
            next_correlation: 1,
            target,
            rotation,
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
            policy: CallPolicy::new(&request, self.timing.call_timing()),
            request,
            history_index: history.len() - 1,
            correlations: Vec::new(),
            called_at_tick: now,
            answer_by_tick: now,
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
        let value = format!("c{}-{}", self.index, self.writes.sequence() + 1);
        let request = match choice {
            4..=6 => {
                operation.op = OpKind::Put;
                operation.value = Some(value.clone());
                self.writes.put(key_bytes, Bytes::from(value.into_bytes()))
            }
            7 => {
                operation.op = OpKind::Delete;
                self.writes.delete(key_bytes)
            }
            _ => {
                operation.op = OpKind::Cas;
                // Expect a value some client may have written, or absence.
                let newest = self.writes.sequence() + 1;
                let expected = prng
                    .chance(1, 3)
                    .then(|| format!("c{}-{}", prng.range(0, 3), prng.range(1, newest.max(2))));
                let new = (!prng.chance(1, 5)).then(|| value.clone());
                operation.expected = expected.clone();
                operation.value = new.clone();
                self.writes.cas(
                    key_bytes,
                    expected.map(|text| Bytes::from(text.into_bytes())),
                    new.map(|text| Bytes::from(text.into_bytes())),
                )
            }
        };
        (request, operation)
    }

    fn send_current(&mut self, now: u64) -> Send {
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let current = self.current.as_mut().expect("an operation is in flight");
        current.correlations.push(correlation);
        let elapsed = Duration::from_millis(now - current.called_at_tick);
        current.answer_by_tick = now + ticks(current.policy.attempt_wait(elapsed)).max(1);
        current.resend_at = None;
        self.rotation.used(&self.target);
        Send { radiant: self.target, correlation, request: current.request.clone() }
    }

    /// Back-offs that are over, and attempts that got no answer in time.
    pub fn on_tick(
        &mut self,
        now: u64,
        clock_ns: u64,
        radiants: usize,
        history: &mut [Operation],
    ) -> Option<Send> {
        let current = self.current.as_ref()?;
        match current.resend_at {
            Some(at) if now >= at => Some(self.send_current(now)),
            None if now >= current.answer_by_tick => {
                let context = ClientContext { now, clock_ns, radiants };
                self.carry_out(context, Attempt::NoAnswer, history)
            }
            _ => None,
        }
    }

    /// An answer arrived. Returns a resend when the policy says to send again now.
    pub fn on_reply(
        &mut self,
        context: ClientContext,
        correlation: u64,
        result: Result<ClientResponse, ErrorResponse>,
        history: &mut [Operation],
    ) -> Option<Send> {
        let current = self.current.as_ref()?;
        // An answer to an earlier attempt than the newest, or one that came while the
        // client backs off, still settles the call: it is the same session's answer.
        if !current.correlations.contains(&correlation) {
            return None;
        }
        let attempt = match result {
            Ok(response) => Attempt::Answered(response),
            // No configuration 0 names an owner: a radiant that has adopted none is not
            // ready and must say so (`Unavailable`), not send the client looking.
            Err(ErrorResponse::WrongOrder { config_num: 0 }) => panic!(
                "sim client {}: a radiant answered WrongOrder for configuration 0",
                self.index
            ),
            Err(error) => Attempt::Refused(error),
        };
        self.carry_out(context, attempt, history)
    }

    /// Asks the policy what `attempt` means and does it.
    fn carry_out(
        &mut self,
        context: ClientContext,
        attempt: Attempt,
        history: &mut [Operation],
    ) -> Option<Send> {
        let ClientContext { now, clock_ns, radiants } = context;
        let current = self.current.as_mut()?;
        let elapsed = Duration::from_millis(now - current.called_at_tick);
        let history_index = current.history_index;
        let mut next = current.policy.after(attempt, elapsed);
        loop {
            next = match next {
                Next::Finish(response) => {
                    complete(&mut history[history_index], response, clock_ns);
                    self.current = None;
                    return None;
                }
                // Outcome unknown: return_ns stays None.
                Next::Fail(Failure::Deadline(_)) => {
                    self.current = None;
                    return None;
                }
                Next::Fail(Failure::Refused(error)) => {
                    panic!("sim client {}: unexpected error answer {error:?}", self.index)
                }
                Next::FollowHerald { .. } if self.routed => {
                    self.needs_route = true;
                    return Some(self.send_current(now));
                }
                Next::FollowHerald { herald: Some(herald), .. }
                    if (herald.get() as usize) <= radiants =>
                {
                    self.target = herald.get() as usize - 1;
                    return Some(self.send_current(now));
                }
                Next::FollowHerald { .. } => {
                    self.current.as_mut()?.policy.after_failed_move(elapsed)
                }
                Next::Reroute { wait } => {
                    self.move_elsewhere();
                    return self.resend_after(now, wait);
                }
                Next::Resend { wait, elsewhere } => {
                    if elsewhere {
                        self.move_elsewhere();
                    }
                    return self.resend_after(now, wait);
                }
            };
        }
    }

    /// As the client library's `reconnect`: the radiant sent to longest ago, so one that
    /// is down for good is tried once per round. A routed client asks for its route.
    fn move_elsewhere(&mut self) {
        if self.routed {
            self.needs_route = true;
            return;
        }
        let here = self.target;
        self.target = self.rotation.elsewhere(here).next().copied().unwrap_or(here);
    }

    /// Resends now when `wait` is nothing, else at the tick it ends.
    fn resend_after(&mut self, now: u64, wait: Duration) -> Option<Send> {
        let wait_ticks = ticks(wait);
        if wait_ticks == 0 {
            return Some(self.send_current(now));
        }
        self.current.as_mut()?.resend_at = Some(now + wait_ticks);
        None
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
