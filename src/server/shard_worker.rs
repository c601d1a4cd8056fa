//! Shard workers: threads that apply committed commands to the state machine and
//! answer reads. Shard `s` belongs to worker `s % workers`, and each worker takes its
//! requests in order, so a read queued after an apply for the same shard sees it.
//!
//! Workers compute outcomes (a CAS succeeds or not, a retried write is recognised by
//! its session) through `StateMachine::apply`, never what is committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::Sender;
use radiant_protocol::{ClientResponse, Command, Limits, LogIndex, Message};

use super::channels::ReactorSender;
use super::reactor::ReactorEvent;
use super::state_thread::StateEvent;
use crate::core::shards::ShardEffect;
use crate::core::ReplyTo;
use crate::storage::state_machine::StateMachine;
use radiant_protocol::slots::ShardId;

pub use crate::storage::state_snapshot::ShardDump;

/// Work for a shard worker.
#[derive(Debug)]
pub enum WorkerRequest {
    /// Apply a committed command.
    Apply {
        /// The shard of the command's key.
        shard: ShardId,
        /// The entry's index.
        index: LogIndex,
        /// The command.
        command: Command,
        /// Who to answer.
        reply_to: Option<ReplyTo>,
    },
    /// Read a key.
    Read {
        /// The key's shard.
        shard: ShardId,
        /// The key.
        key: Bytes,
        /// Who to answer.
        reply_to: ReplyTo,
    },
    /// Copy this worker's shards as of this point in its queue into `sink`.
    SnapshotBarrier {
        /// Where the copies go.
        sink: Sender<ShardDump>,
    },
    /// Carry out a migration entry's change to a shard's data.
    ShardData(ShardEffect),
    /// Read a piece of a frozen shard and send it to the state thread.
    ReadChunk {
        /// The shard.
        shard: ShardId,
        /// The configuration that moved it.
        number: u64,
        /// Where the piece starts.
        after: Option<Bytes>,
        /// At most this many bytes of pairs.
        max_bytes: u64,
        /// The state thread's inbox.
        reply: Sender<StateEvent>,
    },
    /// Copy a shard for a backup and send it to the state thread.
    CopyShard {
        /// The shard.
        shard: ShardId,
        /// The applied index the copy is of.
        index: LogIndex,
        /// The backup to answer.
        reply_to: ReplyTo,
        /// The state thread's inbox.
        reply: Sender<StateEvent>,
    },
    /// Report when everything queued before this is done (before a snapshot install
    /// replaces the state machine under the workers).
    Quiesce {
        /// Receives one message when the worker reaches this point.
        done: Sender<()>,
    },
}

/// The state thread's end of one worker's queue: it sends every request through here,
/// so it knows when the worker has carried out all of them.
#[derive(Debug)]
pub struct WorkerQueue {
    sender: Sender<WorkerRequest>,
    /// Requests the worker has finished, counted by the worker.
    handled: Arc<AtomicU64>,
    /// Requests sent to the worker.
    queued: u64,
}

impl WorkerQueue {
    /// Queues `request` behind everything sent before it. Fails only when the worker has
    /// exited (then the request is moot: the radiant is stopping).
    pub fn send(&mut self, request: WorkerRequest) {
        self.queued += 1;
        let _ = self.sender.send(request);
    }

    /// Whether the worker has carried out every request sent to it: then its shards
    /// hold every apply queued so far, and the sender (the only one) may read them
    /// itself rather than queue a read behind nothing.
    pub fn is_idle(&self) -> bool {
        // Acquire: pairs with the worker's Release, so the worker's writes to the
        // state machine are visible once its count is.
        self.handled.load(Ordering::Acquire) == self.queued
    }
}

/// Which worker owns `shard`.
pub fn worker_of(shard: ShardId, workers: usize) -> usize {
    shard.0 as usize % workers
}

/// Starts worker `number` of `workers`, taking at most `capacity` queued requests;
/// returns the queue into it.
pub fn spawn(
    (number, workers): (usize, usize),
    capacity: usize,
    machine: Arc<StateMachine>,
    reactor: ReactorSender<ReactorEvent>,
    limits: Limits,
) -> std::io::Result<(WorkerQueue, JoinHandle<()>)> {
    let (sender, requests) = crossbeam_channel::bounded::<WorkerRequest>(capacity);
    let handled = Arc::new(AtomicU64::new(0));
    let queue = WorkerQueue { sender, handled: Arc::clone(&handled), queued: 0 };
    let thread = std::thread::Builder::new().name(format!("radiant-shard-{number}"));
    let worker = thread.spawn(move || {
        let mut panic_armed = super::test_switches::panics(&format!("radiant-shard-{number}"));
        let slow = std::time::Duration::from_micros(super::test_switches::count(
            super::test_switches::SLOW_WORKER_US,
        ));
        for request in requests.iter() {
            if matches!(request, WorkerRequest::Apply { .. }) {
                super::test_switches::panic_if(&mut panic_armed, "its first applied write");
                if !slow.is_zero() {
                    std::thread::sleep(slow);
                }
            }
            handle(&machine, request, (number, workers), &reactor, &limits);
            handled.fetch_add(1, Ordering::Release);
        }
    })?;
    Ok((queue, worker))
}

fn handle(
    machine: &StateMachine,
    request: WorkerRequest,
    (number, workers): (usize, usize),
    reactor: &ReactorSender<ReactorEvent>,
    limits: &Limits,
) {
    match request {
        WorkerRequest::Apply { shard, index, command, reply_to } => {
            let response = machine.apply(shard, index, command);
            if let Some(reply_to) = reply_to {
                let message = Message::Response(response);
                let _ = reactor.send(ReactorEvent::Reply { reply_to, message });
            }
        }
        WorkerRequest::Read { shard, key, reply_to } => {
            let value = machine.get(shard, &key);
            let message = Message::Response(ClientResponse::GetResult { value });
            let _ = reactor.send(ReactorEvent::Reply { reply_to, message });
        }
        WorkerRequest::SnapshotBarrier { sink } => {
            let owned = (0..machine.shard_count())
                .map(ShardId)
                .filter(|&shard| worker_of(shard, workers) == number);
            for shard in owned {
                let pairs = machine.map().clone_shard(shard);
                let sessions = machine.encode_sessions(shard);
                let _ = sink.send(ShardDump { shard, pairs, sessions });
            }
        }
        WorkerRequest::ShardData(effect) => machine.apply_shard_effect(effect, limits),
        WorkerRequest::ReadChunk { shard, number, after, max_bytes, reply } => {
            let chunk = machine.read_chunk(shard, number, after, max_bytes);
            let _ = reply.send(StateEvent::Core(crate::core::Input::ShardChunkRead(chunk)));
        }
        WorkerRequest::CopyShard { shard, index, reply_to, reply } => {
            let pairs = machine.map().clone_shard(shard);
            let _ = reply.send(StateEvent::ShardCopied { shard, index, pairs, reply_to });
        }
        WorkerRequest::Quiesce { done } => {
            let _ = done.send(());
        }
    }
}
