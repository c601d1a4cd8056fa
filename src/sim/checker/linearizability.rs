//! The linearizability checker: is there one order of all operations that respects
//! real time (an operation that returned before another was called comes first) and
//! in which every operation behaves as the single-key sequential spec says?
//!
//! # How
//! - **P-compositionality.** Linearizability is local: a history is linearizable when
//!   each key's sub-history is, so every key is searched on its own, in key order.
//! - **Wing–Gong search with Lowe's memoization.** Call and return events of one key sit
//!   in a doubly linked list sorted by time. The search walks the list from the front:
//!   a call is a candidate to linearize next; meeting a return means the operation that
//!   returns there is still unplaced and nothing called later may go first, so the
//!   search backtracks. This is the "minimal pending call" rule: only operations called
//!   before the earliest pending return are tried. Placing an operation unlinks its two
//!   events; backtracking relinks them (dancing links, strictly last-out-first-in).
//!   A set of (placed operations as a bitset, model state) pairs remembers every
//!   configuration already explored, so no configuration is explored twice.
//! - **Model.** The state is the key's value or absence, with values interned to `u32`
//!   per key (0 = absent) so a state is a word and comparisons are cheap.
//! - **Unknown outcomes** (`return_ns: null`) have no return event: they may take effect
//!   anywhere after their call, or never. Their output and `ok` are not checked; their
//!   effect follows the spec. A get with an unknown outcome constrains nothing and is
//!   dropped before the search.
//!   Known cost: each pending unknown operation doubles the configurations the
//!   search may have to visit, so proving a violation late in a key's history with
//!   many unknown outcomes can exhaust `max_steps_per_key` (an honest `Undecided`).
//!   Passing histories are found quickly because unknown operations are tried in
//!   call order, where they usually took effect.
//! - For completed gets and puts `ok` is not checked: the spec gives it no meaning
//!   beyond "it completed", which `return_ns` already says.
//!
//! # What it must not do
//! Never pass a history it did not finish searching: running out of `max_steps_per_key`
//! is [`Verdict::Undecided`]. It never mutates the history, reads no clock, and its
//! verdict and explanation are the same on every run: keys are visited in `BTreeMap`
//! order, and the memo set is only queried, never iterated.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::BuildHasherDefault;

use crate::sim::history::{OpKind, Operation};

/// What the checker concluded about a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key has an order that respects real time and the spec.
    Linearizable { keys: usize, operations: usize },
    /// `key` has no such order; `explanation` lists the longest valid order found and
    /// the operations that could not come after it, with the reason for each.
    Violation { key: String, explanation: String },
    /// The search on `key` ran out of steps before deciding: not a pass.
    Undecided { key: String, steps: u64 },
}

impl Verdict {
    /// True only for a finished search that found every key linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable { keys, operations } => {
                write!(formatter, "linearizable ({keys} keys, {operations} operations)")
            }
            Verdict::Violation { explanation, .. } => {
                write!(formatter, "not linearizable: {explanation}")
            }
            Verdict::Undecided { key, steps } => write!(
                formatter,
                "undecided: the search on key `{key}` stopped after {steps} steps \
                 without an answer; raise the step bound to decide it"
            ),
        }
    }
}

/// Checks `history`, searching each key for at most `max_steps_per_key` steps (one
/// step = one attempt to place an operation). A violation on any key wins over an
/// undecided key, since it is a definite answer.
pub fn check(history: &[Operation], max_steps_per_key: u64) -> Verdict {
    let by_key = partition(history);
    let mut undecided = None;
    for (key, operations) in &by_key {
        match check_key(operations, max_steps_per_key) {
            KeyOutcome::Linearizable => {}
            KeyOutcome::Violation(explanation) => {
                return Verdict::Violation {
                    key: (*key).to_string(),
                    explanation: format!("key `{key}`: {explanation}"),
                };
            }
            KeyOutcome::Undecided(steps) => {
                undecided
                    .get_or_insert_with(|| Verdict::Undecided { key: (*key).to_string(), steps });
            }
        }
    }
    undecided.unwrap_or(Verdict::Linearizable { keys: by_key.len(), operations: history.len() })
}

/// Groups operations by key, in history order within a key. Gets with an unknown
/// outcome are left out: they change nothing and promised nothing.
fn partition(history: &[Operation]) -> BTreeMap<&str, Vec<&Operation>> {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for operation in history {
        let operations = by_key.entry(operation.key.as_str()).or_default();
        if operation.op != OpKind::Get || operation.completed() {
            operations.push(operation);
        }
    }
    by_key
}

enum KeyOutcome {
    Linearizable,
    Violation(String),
    Undecided(u64),
}

fn check_key(operations: &[&Operation], max_steps: u64) -> KeyOutcome {
    let values = Values::intern(operations);
    let model: Vec<ModelOp> =
        operations.iter().map(|operation| ModelOp::new(operation, &values)).collect();
    let mut search = Search::new(operations, &model, max_steps);
    match search.run() {
        SearchEnd::Found => KeyOutcome::Linearizable,
        SearchEnd::Exhausted => KeyOutcome::Violation(search.explain(&values)),
        SearchEnd::OutOfSteps => KeyOutcome::Undecided(search.steps),
    }
}

// ===== Model =====

/// The interned id of "no value".
const ABSENT: u32 = 0;

/// Every distinct string of one key's operations, numbered from 1 in sorted order.
struct Values<'a> {
    ids: BTreeMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> Values<'a> {
    fn intern(operations: &[&'a Operation]) -> Values<'a> {
        let mut ids = BTreeMap::new();
        for operation in operations {
            let fields = [&operation.value, &operation.expected, &operation.output];
            for value in fields.into_iter().flatten() {
                ids.insert(value.as_str(), 0);
            }
        }
        // Numbering after collecting keeps ids independent of history order.
        let mut names = vec![""];
        for (number, (name, id)) in ids.iter_mut().enumerate() {
            *id = u32::try_from(number + 1).expect("fewer than 2^32 distinct values per key");
            names.push(name);
        }
        Values { ids, names }
    }

    fn id(&self, value: &Option<String>) -> u32 {
        match value {
            Some(value) => self.ids[value.as_str()],
            None => ABSENT,
        }
    }

    fn show(&self, id: u32) -> String {
        match id {
            ABSENT => "absent".to_string(),
            _ => format!("{:?}", self.names[id as usize]),
        }
    }
}

/// An operation reduced to what the sequential spec needs, with interned values.
#[derive(Debug, Clone, Copy)]
struct ModelOp {
    kind: OpKind,
    value: u32,
    expected: u32,
    output: u32,
    ok: bool,
    completed: bool,
}

/// Why an operation cannot be placed on a given state.
#[derive(Debug, Clone, Copy)]
enum Mismatch {
    Read { reported: u32, current: u32 },
    Delete { reported_existed: bool },
    CasOutcome { reported_success: bool, current: u32 },
    CasOutput { reported: u32, after: u32 },
}

impl ModelOp {
    fn new(operation: &Operation, values: &Values<'_>) -> ModelOp {
        ModelOp {
            kind: operation.op,
            value: values.id(&operation.value),
            expected: values.id(&operation.expected),
            output: values.id(&operation.output),
            ok: operation.ok,
            completed: operation.completed(),
        }
    }

    /// The sequential spec: the state after this operation, or why it cannot run on
    /// `state`. Unknown outcomes take effect by the spec but their answers are not
    /// checked, since the client never saw them.
    fn apply(&self, state: u32) -> Result<u32, Mismatch> {
        match self.kind {
            OpKind::Get if self.completed && self.output != state => {
                Err(Mismatch::Read { reported: self.output, current: state })
            }
            OpKind::Get => Ok(state),
            OpKind::Put => Ok(self.value),
            OpKind::Delete if self.completed && self.ok != (state != ABSENT) => {
                Err(Mismatch::Delete { reported_existed: self.ok })
            }
            OpKind::Delete => Ok(ABSENT),
            OpKind::Cas => {
                let matched = state == self.expected;
                let after = if matched { self.value } else { state };
                if self.completed && self.ok != matched {
                    return Err(Mismatch::CasOutcome { reported_success: self.ok, current: state });
                }
                if self.completed && self.output != after {
                    return Err(Mismatch::CasOutput { reported: self.output, after });
                }
                Ok(after)
            }
        }
    }
}

// ===== Event list =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Sentinel,
    Call(usize),
    Return(usize),
}

/// Marks an operation without a return event (unknown outcome).
const NO_NODE: usize = usize::MAX;

/// Call and return events in time order, as a doubly linked list over arrays so that
/// unlinking and relinking an operation's events is O(1). Node 0 is the head
/// sentinel and the last node the tail sentinel.
struct EventList {
    next: Vec<usize>,
    previous: Vec<usize>,
    events: Vec<Event>,
    call_node: Vec<usize>,
    return_node: Vec<usize>,
}

impl EventList {
    fn new(operations: &[&Operation]) -> EventList {
        // (time, 0 for a call / 1 for a return, operation): a call and a return at the
        // same nanosecond overlap, so calls sort first and the two stay concurrent.
        let mut timeline: Vec<(u64, u8, usize)> = Vec::with_capacity(operations.len() * 2);
        for (index, operation) in operations.iter().enumerate() {
            timeline.push((operation.call_ns, 0, index));
            if let Some(return_ns) = operation.return_ns {
                timeline.push((return_ns, 1, index));
            }
        }
        timeline.sort_unstable();
        let node_count = timeline.len() + 2;
        let mut list = EventList {
            next: (1..=node_count).collect(),
            previous: (0..node_count).map(|node| node.wrapping_sub(1)).collect(),
            events: vec![Event::Sentinel; node_count],
            call_node: vec![NO_NODE; operations.len()],
            return_node: vec![NO_NODE; operations.len()],
        };
        for (position, &(_, is_return, operation)) in timeline.iter().enumerate() {
            let node = position + 1;
            if is_return == 0 {
                list.events[node] = Event::Call(operation);
                list.call_node[operation] = node;
            } else {
                list.events[node] = Event::Return(operation);
                list.return_node[operation] = node;
            }
        }
        list
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn unlink(&mut self, node: usize) {
        let (previous, next) = (self.previous[node], self.next[node]);
        self.next[previous] = next;
        self.previous[next] = previous;
    }

    /// Undoes `unlink(node)`; valid only in the reverse order of the unlinks.
    fn relink(&mut self, node: usize) {
        let (previous, next) = (self.previous[node], self.next[node]);
        self.next[previous] = node;
        self.previous[next] = node;
    }

    fn lift(&mut self, operation: usize) {
        self.unlink(self.call_node[operation]);
        if self.return_node[operation] != NO_NODE {
            self.unlink(self.return_node[operation]);
        }
    }

    fn unlift(&mut self, operation: usize) {
        if self.return_node[operation] != NO_NODE {
            self.relink(self.return_node[operation]);
        }
        self.relink(self.call_node[operation]);
    }
}

// ===== Search =====

/// SipHash with fixed keys: the memo set behaves the same in every process.
type FixedHasher = BuildHasherDefault<DefaultHasher>;

/// One placed operation and the state before it, to undo the placement.
struct Frame {
    operation: usize,
    state_before: u32,
}

enum SearchEnd {
    Found,
    Exhausted,
    OutOfSteps,
}

struct Search<'a> {
    operations: &'a [&'a Operation],
    model: &'a [ModelOp],
    list: EventList,
    /// Bit `i` set: operation `i` is placed.
    placed: Vec<u64>,
    memo: HashSet<(Vec<u64>, u32), FixedHasher>,
    stack: Vec<Frame>,
    state: u32,
    /// Completed operations not yet placed; the search succeeds when it reaches zero
    /// (operations with unknown outcomes may stay unplaced: they never happened).
    completed_unplaced: usize,
    steps: u64,
    max_steps: u64,
    /// The longest valid order seen, and the state after it, for the explanation.
    longest: Vec<usize>,
    longest_state: u32,
}

impl<'a> Search<'a> {
    fn new(operations: &'a [&'a Operation], model: &'a [ModelOp], max_steps: u64) -> Self {
        Search {
            operations,
            model,
            list: EventList::new(operations),
            placed: vec![0; operations.len().div_ceil(64)],
            memo: HashSet::default(),
            stack: Vec::with_capacity(operations.len()),
            state: ABSENT,
            completed_unplaced: model.iter().filter(|op| op.completed).count(),
            steps: 0,
            max_steps,
            longest: Vec::new(),
            longest_state: ABSENT,
        }
    }

    fn run(&mut self) -> SearchEnd {
        let mut node = self.list.first();
        loop {
            if self.completed_unplaced == 0 {
                return SearchEnd::Found;
            }
            match self.list.events[node] {
                Event::Call(operation) => {
                    if self.steps >= self.max_steps {
                        return SearchEnd::OutOfSteps;
                    }
                    self.steps += 1;
                    node = if self.try_place(operation) {
                        self.list.first()
                    } else {
                        self.list.next[node]
                    };
                }
                // A pending return: everything called after it must wait for its
                // operation, which cannot be placed here, so undo the last choice.
                Event::Return(_) | Event::Sentinel => match self.undo_last() {
                    Some(operation) => node = self.list.next[self.list.call_node[operation]],
                    None => return SearchEnd::Exhausted,
                },
            }
        }
    }

    /// Places `operation` next if the spec allows it on the current state and the
    /// resulting configuration has not been explored before.
    fn try_place(&mut self, operation: usize) -> bool {
        let op = &self.model[operation];
        let Ok(after) = op.apply(self.state) else {
            return false;
        };
        let (word, bit) = (operation / 64, 1u64 << (operation % 64));
        self.placed[word] |= bit;
        if !self.memo.insert((self.placed.clone(), after)) {
            self.placed[word] &= !bit;
            return false;
        }
        self.stack.push(Frame { operation, state_before: self.state });
        self.state = after;
        self.list.lift(operation);
        if op.completed {
            self.completed_unplaced -= 1;
        }
        if self.stack.len() > self.longest.len() {
            self.longest = self.stack.iter().map(|frame| frame.operation).collect();
            self.longest_state = self.state;
        }
        true
    }

    /// Takes back the most recent placement; `None` when nothing is placed.
    fn undo_last(&mut self) -> Option<usize> {
        let frame = self.stack.pop()?;
        let operation = frame.operation;
        self.placed[operation / 64] &= !(1u64 << (operation % 64));
        self.state = frame.state_before;
        self.list.unlift(operation);
        if self.model[operation].completed {
            self.completed_unplaced += 1;
        }
        Some(operation)
    }

    /// Describes the failure from the longest valid order found: the last operations
    /// of that order, the value after it, and why each operation allowed to come next
    /// by real time does not fit.
    fn explain(&self, values: &Values<'_>) -> String {
        const SHOWN_MAX: usize = 20;
        let total = self.operations.len();
        let mut text = format!(
            "no order of its {total} operations respects real time and the spec. \
             The longest valid order found places {} of them",
            self.longest.len()
        );
        let skipped = self.longest.len().saturating_sub(SHOWN_MAX);
        if skipped > 0 {
            text.push_str(&format!(" (the first {skipped} not shown)"));
        }
        text.push(':');
        for &operation in &self.longest[skipped..] {
            text.push_str(&format!("\n  {}", self.operations[operation]));
        }
        text.push_str(&format!(
            "\nafter which the value is {}. None of the operations that may come next fits:",
            values.show(self.longest_state)
        ));
        for operation in self.candidates_after_longest() {
            let reason = match self.model[operation].apply(self.longest_state) {
                Err(mismatch) => describe(mismatch, &self.model[operation], values),
                Ok(_) => "it fits here, but no order of the remaining operations after it \
                          does"
                    .to_string(),
            };
            text.push_str(&format!("\n  {}: {reason}", self.operations[operation]));
        }
        text
    }

    /// The unplaced operations that real time allows next after the longest order:
    /// those called no later than the earliest return among unplaced operations.
    fn candidates_after_longest(&self) -> Vec<usize> {
        let mut placed = vec![false; self.operations.len()];
        for &operation in &self.longest {
            placed[operation] = true;
        }
        let unplaced = || (0..self.operations.len()).filter(|&index| !placed[index]);
        let earliest_return = unplaced()
            .filter_map(|index| self.operations[index].return_ns)
            .min()
            .unwrap_or(u64::MAX);
        let mut candidates: Vec<usize> =
            unplaced().filter(|&index| self.operations[index].call_ns <= earliest_return).collect();
        candidates.sort_by_key(|&index| (self.operations[index].call_ns, index));
        candidates
    }
}

fn describe(mismatch: Mismatch, op: &ModelOp, values: &Values<'_>) -> String {
    match mismatch {
        Mismatch::Read { reported, current } => {
            format!("it read {} but the value is {}", values.show(reported), values.show(current))
        }
        Mismatch::Delete { reported_existed: true } => {
            "it reported the key existed but the key is absent".to_string()
        }
        Mismatch::Delete { reported_existed: false } => {
            "it reported the key absent but the key holds a value".to_string()
        }
        Mismatch::CasOutcome { reported_success: true, current } => format!(
            "it reported success but the value is {}, not the expected {}",
            values.show(current),
            values.show(op.expected)
        ),
        Mismatch::CasOutcome { reported_success: false, current } => format!(
            "it reported failure but the value {} matches what it expected",
            values.show(current)
        ),
        Mismatch::CasOutput { reported, after } => format!(
            "it reported the value {} but the value after it is {}",
            values.show(reported),
            values.show(after)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: u64 = 1_000_000;

    fn operation(client: u64, op: OpKind, call_ns: u64, return_ns: u64) -> Operation {
        Operation {
            client,
            op,
            key: "x".to_string(),
            value: None,
            expected: None,
            call_ns,
            return_ns: Some(return_ns),
            output: None,
            ok: true,
        }
    }

    fn put(client: u64, value: &str, call_ns: u64, return_ns: u64) -> Operation {
        Operation {
            value: Some(value.to_string()),
            ..operation(client, OpKind::Put, call_ns, return_ns)
        }
    }

    fn get(client: u64, output: Option<&str>, call_ns: u64, return_ns: u64) -> Operation {
        Operation {
            output: output.map(str::to_string),
            ..operation(client, OpKind::Get, call_ns, return_ns)
        }
    }

    fn delete(client: u64, existed: bool, call_ns: u64, return_ns: u64) -> Operation {
        Operation { ok: existed, ..operation(client, OpKind::Delete, call_ns, return_ns) }
    }

    /// `cas(expected → new)` that reports `ok` and `output`.
    fn cas(
        expected: Option<&str>,
        new: Option<&str>,
        ok: bool,
        output: Option<&str>,
        call_ns: u64,
        return_ns: u64,
    ) -> Operation {
        Operation {
            expected: expected.map(str::to_string),
            value: new.map(str::to_string),
            ok,
            output: output.map(str::to_string),
            ..operation(9, OpKind::Cas, call_ns, return_ns)
        }
    }

    fn unknown(operation: Operation) -> Operation {
        Operation { return_ns: None, ..operation }
    }

    fn on(key: &str, operation: Operation) -> Operation {
        Operation { key: key.to_string(), ..operation }
    }

    fn explanation(history: &[Operation]) -> (String, String) {
        match check(history, STEPS) {
            Verdict::Violation { key, explanation } => (key, explanation),
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn sequential_history_following_the_spec_passes() {
        let history = [
            get(1, None, 0, 1),
            put(1, "a", 2, 3),
            get(2, Some("a"), 4, 5),
            delete(1, true, 6, 7),
            delete(2, false, 8, 9),
            get(1, None, 10, 11),
        ];
        assert_eq!(check(&history, STEPS), Verdict::Linearizable { keys: 1, operations: 6 });
    }

    #[test]
    fn sequential_history_with_a_wrong_get_fails_naming_the_key() {
        let history = [put(1, "a", 0, 1), get(1, Some("b"), 2, 3)];
        let (key, explanation) = explanation(&history);
        assert_eq!(key, "x");
        assert!(explanation.starts_with("key `x`: "), "{explanation}");
        assert!(
            explanation.contains(
                "get → \"b\" [called 2 ns, returned 3 ns]: it read \"b\" but the value is \"a\""
            ),
            "{explanation}"
        );
    }

    #[test]
    fn concurrent_get_may_see_the_old_or_the_new_value() {
        for seen in [None, Some("a")] {
            let history = [put(1, "a", 0, 10), get(2, seen, 5, 15)];
            assert!(check(&history, STEPS).is_linearizable(), "saw {seen:?}");
        }
    }

    #[test]
    fn stale_read_after_a_newer_write_returned_is_a_violation() {
        let history = [put(1, "1", 0, 10), put(1, "2", 20, 30), get(2, Some("1"), 40, 50)];
        let (key, explanation) = explanation(&history);
        assert_eq!(key, "x");
        assert!(explanation.contains("places 2 of them"), "{explanation}");
        assert!(explanation.contains("it read \"1\" but the value is \"2\""), "{explanation}");
    }

    #[test]
    fn lost_write_is_a_violation() {
        let history = [put(1, "1", 0, 10), get(2, None, 20, 30)];
        let (_, explanation) = explanation(&history);
        assert!(explanation.contains("it read absent but the value is \"1\""), "{explanation}");
    }

    #[test]
    fn delete_must_report_whether_the_key_existed() {
        assert!(explanation(&[delete(1, true, 0, 1)])
            .1
            .contains("reported the key existed but the key is absent"));
        let history = [put(1, "a", 0, 1), delete(1, false, 2, 3)];
        assert!(explanation(&history)
            .1
            .contains("reported the key absent but the key holds a value"));
    }

    #[test]
    fn cas_succeeds_on_a_match_and_reports_the_new_value() {
        let history = [
            put(1, "a", 0, 1),
            cas(Some("a"), Some("b"), true, Some("b"), 2, 3),
            get(1, Some("b"), 4, 5),
        ];
        assert!(check(&history, STEPS).is_linearizable());
        let wrong_output = [put(1, "a", 0, 1), cas(Some("a"), Some("b"), true, Some("a"), 2, 3)];
        assert!(explanation(&wrong_output)
            .1
            .contains("it reported the value \"a\" but the value after it is \"b\""));
    }

    #[test]
    fn cas_fails_on_a_mismatch_and_reports_the_current_value() {
        let history = [
            put(1, "a", 0, 1),
            cas(Some("z"), Some("b"), false, Some("a"), 2, 3),
            get(1, Some("a"), 4, 5),
        ];
        assert!(check(&history, STEPS).is_linearizable());
        let claims_success = [put(1, "a", 0, 1), cas(Some("z"), Some("b"), true, Some("b"), 2, 3)];
        assert!(explanation(&claims_success)
            .1
            .contains("it reported success but the value is \"a\", not the expected \"z\""));
        let claims_failure = [put(1, "a", 0, 1), cas(Some("a"), Some("b"), false, Some("a"), 2, 3)];
        assert!(explanation(&claims_failure)
            .1
            .contains("it reported failure but the value \"a\" matches"));
    }

    #[test]
    fn cas_expecting_absent_creates_only_when_absent() {
        let history = [
            cas(None, Some("a"), true, Some("a"), 0, 1),
            cas(None, Some("b"), false, Some("a"), 2, 3),
            get(1, Some("a"), 4, 5),
        ];
        assert!(check(&history, STEPS).is_linearizable());
        let created_twice = [
            cas(None, Some("a"), true, Some("a"), 0, 1),
            cas(None, Some("b"), true, Some("b"), 2, 3),
        ];
        assert!(!check(&created_twice, STEPS).is_linearizable());
    }

    #[test]
    fn cas_with_null_new_value_deletes_on_a_match() {
        let history = [
            put(1, "a", 0, 1),
            cas(Some("a"), None, true, None, 2, 3),
            get(1, None, 4, 5),
            delete(1, false, 6, 7),
        ];
        assert!(check(&history, STEPS).is_linearizable());
        let value_survives =
            [put(1, "a", 0, 1), cas(Some("a"), None, true, None, 2, 3), get(1, Some("a"), 4, 5)];
        assert!(!check(&value_survives, STEPS).is_linearizable());
    }

    #[test]
    fn unknown_put_whose_value_later_appears_passes() {
        let history = [unknown(put(1, "a", 0, 0)), get(2, Some("a"), 100, 110)];
        assert!(check(&history, STEPS).is_linearizable());
    }

    #[test]
    fn unknown_put_whose_value_never_appears_passes() {
        let history = [unknown(put(1, "a", 0, 0)), get(2, None, 100, 110), get(2, None, 200, 210)];
        assert!(check(&history, STEPS).is_linearizable());
    }

    #[test]
    fn unknown_put_cannot_appear_and_then_vanish() {
        let history =
            [unknown(put(1, "a", 0, 0)), get(2, Some("a"), 100, 110), get(2, None, 200, 210)];
        assert!(!check(&history, STEPS).is_linearizable());
    }

    #[test]
    fn unknown_outcomes_accept_any_reported_answer() {
        // The client never saw these answers, so whatever was recorded is noise.
        let garbage_cas = Operation {
            ok: true,
            output: Some("garbage".to_string()),
            ..unknown(cas(Some("q"), Some("b"), true, None, 0, 0))
        };
        let garbage_get = unknown(get(3, Some("never written"), 0, 0));
        let history = [garbage_cas, garbage_get, get(2, None, 100, 110)];
        assert!(check(&history, STEPS).is_linearizable());
    }

    #[test]
    fn independent_keys_are_checked_independently() {
        let history = [
            on("a", put(1, "1", 0, 10)),
            on("b", put(2, "1", 0, 10)),
            on("a", get(1, Some("1"), 20, 30)),
            on("b", get(2, Some("2"), 20, 30)),
        ];
        let (key, explanation) = explanation(&history);
        assert_eq!(key, "b");
        assert!(explanation.starts_with("key `b`: "), "{explanation}");
        let fine = &history[..3];
        assert_eq!(check(fine, STEPS), Verdict::Linearizable { keys: 2, operations: 3 });
    }

    #[test]
    fn operations_touching_at_one_instant_are_concurrent() {
        // The put returns at 10 and the get is called at 10: they overlap, so the get
        // may precede the put.
        let history = [put(1, "a", 0, 10), get(2, None, 10, 20)];
        assert!(check(&history, STEPS).is_linearizable());
    }

    #[test]
    fn running_out_of_steps_is_undecided_never_a_pass() {
        let history = [put(1, "1", 0, 10), get(2, Some("1"), 20, 30)];
        assert_eq!(check(&history, 1), Verdict::Undecided { key: "x".to_string(), steps: 1 });
    }

    #[test]
    fn a_violation_outranks_an_undecided_key() {
        let mut history: Vec<Operation> =
            (0..8u64).map(|client| on("a", put(client, "v", 0, 100))).collect();
        history.push(on("b", get(1, Some("never"), 0, 1)));
        assert!(matches!(
            check(&history, 3),
            Verdict::Violation { key, .. } if key == "b"
        ));
    }

    #[test]
    fn long_explanations_show_only_the_end_of_the_order() {
        let mut history: Vec<Operation> = (0..50u64)
            .map(|index| put(1, &index.to_string(), index * 10, index * 10 + 1))
            .collect();
        history.push(get(2, Some("0"), 1000, 1001));
        let (_, explanation) = explanation(&history);
        assert!(
            explanation.contains("places 50 of them (the first 30 not shown)"),
            "{explanation}"
        );
        assert_eq!(explanation.lines().count(), 1 + 20 + 1 + 1, "{explanation}");
    }

    #[test]
    fn many_concurrent_clients_are_searched_efficiently() {
        // 10 clients, each put overlapping all others, then reads pinning the order;
        // memoization keeps this far below the 10! orders a naive search would try.
        let mut history: Vec<Operation> = (0..10u64)
            .map(|client| put(client, &client.to_string(), client, 100 + client))
            .collect();
        history.push(get(1, Some("7"), 200, 210));
        assert!(check(&history, 100_000).is_linearizable());
    }
}
