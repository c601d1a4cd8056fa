//! Shard workers: threads that apply committed commands to the state machine and
//! answer reads. Shard `s` belongs to worker `s % workers`, and each worker takes its
//! requests in order, so a read queued after an apply for the same shard sees it.
//!
//! Workers compute outcomes (a CAS succeeds or not, a retried write is recognised by
//! its session) through `StateMachine::apply`, never what is committed.

use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
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
    /// Report when everything queued before this is done (before a snapshot install
    /// replaces the state machine under the workers).
    Quiesce {
        /// Receives one message when the worker reaches this point.
        done: Sender<()>,
    },
}

/// Which worker owns `shard`.
pub fn worker_of(shard: ShardId, workers: usize) -> usize {
    shard.0 as usize % workers
}

/// Starts worker `number` of `workers`.
pub fn spawn(
    number: usize,
    workers: usize,
    machine: Arc<StateMachine>,
    requests: Receiver<WorkerRequest>,
    reactor: ReactorSender<ReactorEvent>,
    limits: Limits,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(format!("radiant-shard-{number}")).spawn(move || {
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
        }
    })
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
        WorkerRequest::Quiesce { done } => {
            let _ = done.send(());
        }
    }
}
