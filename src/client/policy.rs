//! The client's request logic without I/O: which requests carry a session, and what a
//! call does after each attempt (finish, follow the herald, refresh its routes, back off
//! and resend here or elsewhere, or give up). It reads no clock and opens no connection:
//! the caller says how long the call has run. The blocking `Client` and the simulator's
//! clients both run it, so the simulator checks the retry rules real clients follow.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use radiant_protocol::{
    Batch, ClientId, ClientRequest, ClientResponse, ErrorResponse, MemberId, Session,
};

/// Most `NotHerald` redirects and `WrongOrder` refreshes one call follows before it backs
/// off between them (a bound against redirect loops).
pub const MAX_REDIRECTS: u32 = 8;

/// Whether sending `request` again cannot do anything the first send did not: reads and
/// queries, and writes whose session makes the radiant apply them once (answering a
/// resend with what the one application did). Admin requests have no session.
pub fn resend_is_harmless(request: &ClientRequest) -> bool {
    if request.is_admin() {
        return false;
    }
    match request {
        ClientRequest::Get { .. }
        | ClientRequest::Ping
        | ClientRequest::Status
        | ClientRequest::Authenticate { .. }
        | ClientRequest::QueryConfiguration { .. }
        | ClientRequest::ReadShard { .. } => true,
        ClientRequest::Put { session, .. }
        | ClientRequest::Delete { session, .. }
        | ClientRequest::Cas { session, .. }
        | ClientRequest::Update { session, .. }
        | ClientRequest::Batch { session, .. } => session.is_some(),
        // The admin requests (answered above), and any kind added later until it says.
        _ => false,
    }
}

/// Whether `request` means one radiant, so a refusal is retried there and never
/// elsewhere: a `RecoverOrder` names its survivor, and the later pages of a shard copy
/// are held by the radiant that took it.
pub fn bound_to_its_radiant(request: &ClientRequest) -> bool {
    match request {
        ClientRequest::RecoverOrder { .. } => true,
        ClientRequest::ReadShard { cursor, .. } => *cursor != 0,
        _ => false,
    }
}

/// A client's write requests, each with the next session of its client id, so every
/// write the client sends can be resent safely. A resent write reuses its request, and
/// with it its session.
#[derive(Clone, Debug)]
pub struct SessionRequests {
    client_id: ClientId,
    sequence: u64,
}

impl SessionRequests {
    /// Writes of `client_id`, from sequence 1.
    pub fn new(client_id: ClientId) -> Self {
        SessionRequests { client_id, sequence: 0 }
    }

    /// The sequence of the newest write made (0 before the first).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    fn next_session(&mut self) -> Option<Session> {
        self.sequence += 1;
        Some(Session { client_id: self.client_id, sequence: self.sequence })
    }

    /// Stores `value` under `key`.
    pub fn put(&mut self, key: Bytes, value: Bytes) -> ClientRequest {
        ClientRequest::Put { key, value, session: self.next_session() }
    }

    /// Deletes `key`. With its session, a resent delete answers what its first
    /// application found, not the absence that application left.
    pub fn delete(&mut self, key: Bytes) -> ClientRequest {
        ClientRequest::Delete { key, session: self.next_session() }
    }

    /// Sets `key` to `new` if it holds `expected`.
    pub fn cas(
        &mut self,
        key: Bytes,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> ClientRequest {
        ClientRequest::Cas { key, expected, new, session: self.next_session() }
    }

    /// Writes `batch` as one log entry.
    pub fn batch(&mut self, batch: Batch) -> ClientRequest {
        ClientRequest::Batch { batch, session: self.next_session() }
    }
}

/// The radiants a client knows, least recently used first: where "elsewhere" is. A
/// client that moves on after no answer takes the radiant it used longest ago (one it
/// never used first), and every radiant it sends to, herald hints included, goes to the
/// back. So a round of moves reaches every radiant it knows: following hints does not
/// bring it back to the same two radiants, as it did when two members cut off from their
/// order both named a herald that no longer answered (simulator seed 16854).
#[derive(Clone, Debug)]
pub struct Rotation<T> {
    order: VecDeque<T>,
    capacity: usize,
}

impl<T: PartialEq + Clone> Rotation<T> {
    /// An empty rotation of at most `capacity` radiants.
    pub fn new(capacity: usize) -> Self {
        Rotation { order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Knows `radiant`; one not known yet is tried before any used one.
    pub fn learn(&mut self, radiant: T) {
        if self.order.contains(&radiant) {
            return;
        }
        self.order.push_front(radiant);
        if self.order.len() > self.capacity {
            // The most recently used one is dropped: it is re-learned when used again.
            self.order.pop_back();
        }
    }

    /// `radiant` was sent to: it is the last to be tried again.
    pub fn used(&mut self, radiant: &T) {
        self.order.retain(|known| known != radiant);
        self.order.push_back(radiant.clone());
        if self.order.len() > self.capacity {
            self.order.pop_front();
        }
    }

    /// The radiants to move to from `here`, the longest unused first.
    pub fn elsewhere(&self, here: T) -> impl Iterator<Item = &T> + '_ {
        self.order.iter().filter(move |known| **known != here)
    }
}

/// How long a call and its attempts may take, and how it backs off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTiming {
    /// The call fails once this long has passed since it began.
    pub deadline: Duration,
    /// An attempt of a request that is harmless to resend waits this long for its answer
    /// before it is resent elsewhere. (Any other request waits until the deadline.)
    pub attempt_timeout: Duration,
    /// The first back-off; each later one doubles, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest back-off.
    pub max_backoff: Duration,
}

/// What one attempt got.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempt {
    /// The radiant answered.
    Answered(ClientResponse),
    /// The radiant refused.
    Refused(ErrorResponse),
    /// No answer within the attempt's time, or the connection could not be made or
    /// broke: the radiant may or may not have carried the request out.
    NoAnswer,
}

/// Why a call ended without an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The radiant refused with an error that retrying would not change.
    Refused(ErrorResponse),
    /// The deadline came with this error as the last answer (`None`: the last attempt
    /// got no answer, so the request's outcome is unknown).
    Deadline(Option<ErrorResponse>),
}

/// What the call does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The call is done.
    Finish(ClientResponse),
    /// The call failed.
    Fail(Failure),
    /// Resend at once to the herald the refusal named (its id and client address, as
    /// known); if it cannot be reached, call `CallPolicy::after_failed_move`.
    FollowHerald {
        /// The herald's member id.
        herald: Option<MemberId>,
        /// Its client address.
        address: Option<String>,
    },
    /// After `wait`, refresh the routes and resend to a radiant of the order that owns
    /// the request's shard; if that fails, call `CallPolicy::after_failed_move`.
    Reroute {
        /// How long to wait first.
        wait: Duration,
    },
    /// After `wait`, resend: to another radiant when `elsewhere` (one not answering,
    /// not knowing the herald, not ready or locked may stay so for long; another one
    /// names the herald or serves), else to the same one.
    Resend {
        /// How long to wait first.
        wait: Duration,
        /// Whether to move to another radiant.
        elsewhere: bool,
    },
}

/// One call's retry state.
#[derive(Clone, Debug)]
pub struct CallPolicy {
    timing: CallTiming,
    resendable: bool,
    bound: bool,
    backoff: Duration,
    redirects: u32,
}

impl CallPolicy {
    /// The policy of a call sending `request`.
    pub fn new(request: &ClientRequest, timing: CallTiming) -> Self {
        CallPolicy {
            timing,
            resendable: resend_is_harmless(request),
            bound: bound_to_its_radiant(request),
            backoff: timing.first_backoff,
            redirects: 0,
        }
    }

    /// How long an attempt sent when the call has run `elapsed` waits for its answer.
    pub fn attempt_wait(&self, elapsed: Duration) -> Duration {
        let to_deadline = self.timing.deadline.saturating_sub(elapsed);
        if self.resendable {
            to_deadline.min(self.timing.attempt_timeout)
        } else {
            to_deadline
        }
    }

    /// What to do after an attempt got `attempt`, the call having run `elapsed`.
    pub fn after(&mut self, attempt: Attempt, elapsed: Duration) -> Next {
        let error = match attempt {
            Attempt::Answered(response) => return Next::Finish(response),
            // The request may have been applied, which is harmless only to a request
            // that may be resent; any other must not be sent twice blindly.
            Attempt::NoAnswer if self.resendable => return self.back_off(None, true, elapsed),
            Attempt::NoAnswer => return Next::Fail(Failure::Deadline(None)),
            Attempt::Refused(error) => error,
        };
        match error {
            ErrorResponse::NotHerald { herald, address }
                if (herald.is_some() || address.is_some()) && self.redirects < MAX_REDIRECTS =>
            {
                self.redirects += 1;
                Next::FollowHerald { herald, address }
            }
            // While a shard moves, the routes may point at its old order for a moment:
            // refresh at once a few times, then back off between refreshes.
            ErrorResponse::WrongOrder { .. } => {
                self.redirects += 1;
                if self.redirects <= MAX_REDIRECTS {
                    return Next::Reroute { wait: Duration::ZERO };
                }
                match self.back_off(Some(error), false, elapsed) {
                    Next::Resend { wait, .. } => Next::Reroute { wait },
                    other => other,
                }
            }
            ErrorResponse::NotHerald { .. }
            | ErrorResponse::Unavailable { .. }
            | ErrorResponse::Locked(_) => self.back_off(Some(error), !self.bound, elapsed),
            ErrorResponse::BadRequest { .. }
            | ErrorResponse::OutcomeUnknown { .. }
            | ErrorResponse::Unauthorized { .. } => Next::Fail(Failure::Refused(error)),
        }
    }

    /// Following a herald hint or refreshing the routes failed (no connection, no
    /// routes): back off and resend elsewhere.
    pub fn after_failed_move(&mut self, elapsed: Duration) -> Next {
        self.back_off(None, true, elapsed)
    }

    /// Waits the current back-off (doubling the next) unless that passes the deadline.
    fn back_off(
        &mut self,
        last: Option<ErrorResponse>,
        elsewhere: bool,
        elapsed: Duration,
    ) -> Next {
        let wait = self.backoff;
        if elapsed + wait >= self.timing.deadline {
            return Next::Fail(Failure::Deadline(last));
        }
        self.backoff = (self.backoff * 2).min(self.timing.max_backoff);
        Next::Resend { wait, elsewhere }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radiant_protocol::OrderStateOp;

    const TIMING: CallTiming = CallTiming {
        deadline: Duration::from_millis(1_000),
        attempt_timeout: Duration::from_millis(100),
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    };

    fn writes() -> SessionRequests {
        SessionRequests::new(ClientId::new(7).expect("nonzero"))
    }

    fn unavailable() -> Attempt {
        Attempt::Refused(ErrorResponse::Unavailable { reason: "not ready".to_string() })
    }

    #[test]
    fn every_write_carries_the_next_session() {
        let mut writes = writes();
        let key = Bytes::from_static(b"k");
        let requests = [
            writes.put(key.clone(), Bytes::from_static(b"v")),
            writes.delete(key.clone()),
            writes.cas(key, None, None),
        ];
        for (sequence, request) in (1..).zip(&requests) {
            let session = match request {
                ClientRequest::Put { session, .. }
                | ClientRequest::Delete { session, .. }
                | ClientRequest::Cas { session, .. } => *session,
                other => panic!("not a write: {other:?}"),
            };
            assert_eq!(session.map(|session| session.sequence), Some(sequence));
            assert!(resend_is_harmless(request), "{request:?} must be safe to resend");
        }
    }

    #[test]
    fn a_write_without_a_session_is_never_resent_blindly() {
        let request = ClientRequest::Delete { key: Bytes::from_static(b"k"), session: None };
        let mut policy = CallPolicy::new(&request, TIMING);
        assert_eq!(policy.attempt_wait(Duration::from_millis(300)), Duration::from_millis(700));
        let next = policy.after(Attempt::NoAnswer, Duration::from_millis(300));
        assert_eq!(next, Next::Fail(Failure::Deadline(None)));
    }

    #[test]
    fn a_session_write_with_no_answer_is_resent_elsewhere_with_doubling_back_offs() {
        let request = writes().put(Bytes::from_static(b"k"), Bytes::from_static(b"v"));
        let mut policy = CallPolicy::new(&request, TIMING);
        assert_eq!(policy.attempt_wait(Duration::ZERO), TIMING.attempt_timeout);
        let waits: Vec<Next> =
            (0..4).map(|_| policy.after(Attempt::NoAnswer, Duration::ZERO)).collect();
        let expected = [10, 20, 40, 40]
            .map(|ms| Next::Resend { wait: Duration::from_millis(ms), elsewhere: true });
        assert_eq!(waits, expected);
    }

    #[test]
    fn refusals_that_may_pass_move_elsewhere_until_the_deadline() {
        let request = ClientRequest::Get {
            key: Bytes::from_static(b"k"),
            consistency: radiant_protocol::ReadConsistency::Linearizable,
        };
        for refusal in [
            unavailable(),
            Attempt::Refused(ErrorResponse::Locked(OrderStateOp::Voting)),
            Attempt::Refused(ErrorResponse::NotHerald { herald: None, address: None }),
        ] {
            let mut policy = CallPolicy::new(&request, TIMING);
            let next = policy.after(refusal.clone(), Duration::ZERO);
            let wait = TIMING.first_backoff;
            assert_eq!(next, Next::Resend { wait, elsewhere: true }, "{refusal:?}");
            let Attempt::Refused(error) = refusal else { unreachable!() };
            let late = policy.after(Attempt::Refused(error.clone()), Duration::from_millis(995));
            assert_eq!(late, Next::Fail(Failure::Deadline(Some(error))));
        }
    }

    #[test]
    fn a_request_meant_for_one_radiant_is_retried_there() {
        let later_page =
            ClientRequest::ReadShard { shard: 3, cursor: 9, after: None, max_bytes: 64 };
        let recover = ClientRequest::RecoverOrder {
            order_id: radiant_protocol::OrderId::new(1).expect("nonzero"),
            survivor: MemberId::new(2).expect("nonzero"),
        };
        for request in [later_page, recover] {
            let mut policy = CallPolicy::new(&request, TIMING);
            let next = policy.after(unavailable(), Duration::ZERO);
            let wait = TIMING.first_backoff;
            assert_eq!(next, Next::Resend { wait, elsewhere: false }, "{request:?}");
        }
        let first_page =
            ClientRequest::ReadShard { shard: 3, cursor: 0, after: None, max_bytes: 64 };
        let next = CallPolicy::new(&first_page, TIMING).after(unavailable(), Duration::ZERO);
        assert!(matches!(next, Next::Resend { elsewhere: true, .. }), "{next:?}");
    }

    #[test]
    fn herald_hints_are_followed_a_bounded_number_of_times() {
        let request = writes().delete(Bytes::from_static(b"k"));
        let mut policy = CallPolicy::new(&request, TIMING);
        let hint = ErrorResponse::NotHerald {
            herald: MemberId::new(2),
            address: Some("127.0.0.1:7402".to_string()),
        };
        for _ in 0..MAX_REDIRECTS {
            let next = policy.after(Attempt::Refused(hint.clone()), Duration::ZERO);
            assert!(matches!(next, Next::FollowHerald { .. }), "{next:?}");
        }
        let next = policy.after(Attempt::Refused(hint), Duration::ZERO);
        assert!(matches!(next, Next::Resend { elsewhere: true, .. }), "{next:?}");
    }

    #[test]
    fn wrong_order_reroutes_at_once_then_with_back_offs() {
        let request = writes().put(Bytes::from_static(b"k"), Bytes::from_static(b"v"));
        let mut policy = CallPolicy::new(&request, TIMING);
        let wrong = Attempt::Refused(ErrorResponse::WrongOrder { config_num: 3 });
        for _ in 0..MAX_REDIRECTS {
            let next = policy.after(wrong.clone(), Duration::ZERO);
            assert_eq!(next, Next::Reroute { wait: Duration::ZERO });
        }
        let next = policy.after(wrong, Duration::ZERO);
        assert_eq!(next, Next::Reroute { wait: TIMING.first_backoff });
    }

    #[test]
    fn moving_elsewhere_reaches_every_radiant_even_when_hints_point_back() {
        let mut rotation = Rotation::new(8);
        for radiant in [0, 1, 2, 3] {
            rotation.learn(radiant);
        }
        // Radiants 1 and 2 name 0 as herald; 0 never answers; 3 is the herald.
        let mut here = 2;
        rotation.used(&here);
        let mut visited = vec![here];
        for _ in 0..6 {
            if here == 1 || here == 2 {
                here = 0; // follow the hint
            } else {
                here = *rotation.elsewhere(here).next().expect("another radiant");
            }
            rotation.used(&here);
            visited.push(here);
            if here == 3 {
                break;
            }
        }
        assert_eq!(visited.last(), Some(&3), "never reached the herald: {visited:?}");
    }

    #[test]
    fn a_rotation_keeps_its_capacity() {
        let mut rotation = Rotation::new(2);
        for radiant in [1, 2, 3] {
            rotation.learn(radiant);
        }
        rotation.used(&4);
        assert_eq!(rotation.elsewhere(0).count(), 2);
        assert_eq!(rotation.elsewhere(0).last(), Some(&4));
    }

    #[test]
    fn errors_retrying_cannot_change_end_the_call() {
        let request = writes().put(Bytes::from_static(b"k"), Bytes::from_static(b"v"));
        for error in [
            ErrorResponse::BadRequest { reason: "too long".to_string() },
            ErrorResponse::OutcomeUnknown { reason: "lost the role".to_string() },
            ErrorResponse::Unauthorized { reason: "no token".to_string() },
        ] {
            let mut policy = CallPolicy::new(&request, TIMING);
            let next = policy.after(Attempt::Refused(error.clone()), Duration::ZERO);
            assert_eq!(next, Next::Fail(Failure::Refused(error)));
        }
        let mut policy = CallPolicy::new(&request, TIMING);
        let answered = policy.after(Attempt::Answered(ClientResponse::PutResult), Duration::ZERO);
        assert_eq!(answered, Next::Finish(ClientResponse::PutResult));
    }
}
