//! Shard workers: threads that apply committed commands to the shard map and answer
//! reads. Shard `s` belongs to worker `s % workers`, and each worker takes its
//! requests in order, so a read queued after an apply for the same shard sees it.
//!
//! Workers decide outcomes (a CAS succeeds or not) but never what is committed.

use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use radiant_protocol::{ClientResponse, Command, LogIndex, Message, Term};

use super::channels::ReactorSender;
use super::reactor::ReactorEvent;
use crate::core::slots::ShardId;
use crate::core::ReplyTo;
use crate::storage::shard_map::ShardMap;

/// One shard's contents at a snapshot point.
#[derive(Debug)]
pub struct ShardDump {
    /// The shard.
    pub shard: ShardId,
    /// Its key-value pairs.
    pub pairs: Vec<(Bytes, Bytes)>,
}

/// Work for a shard worker.
#[derive(Debug)]
pub enum WorkerRequest {
    /// Apply a committed command.
    Apply {
        /// The shard of the command's key.
        shard: ShardId,
        /// The entry's index (for logs).
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
        /// Last index the copy includes.
        index: LogIndex,
        /// That entry's term.
        term: Term,
        /// Where the copies go.
        sink: Sender<ShardDump>,
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
    map: Arc<ShardMap>,
    requests: Receiver<WorkerRequest>,
    reactor: ReactorSender<ReactorEvent>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("radiant-shard-{number}"))
        .spawn(move || {
            for request in requests.iter() {
                handle(&map, request, number, workers, &reactor);
            }
        })
}

fn handle(
    map: &ShardMap,
    request: WorkerRequest,
    number: usize,
    workers: usize,
    reactor: &ReactorSender<ReactorEvent>,
) {
    match request {
        WorkerRequest::Apply {
            shard,
            index: _,
            command,
            reply_to,
        } => {
            let response = apply(map, shard, command);
            if let Some(reply_to) = reply_to {
                let _ = reactor.send(ReactorEvent::Reply {
                    reply_to,
                    message: Message::Response(response),
                });
            }
        }
        WorkerRequest::Read {
            shard,
            key,
            reply_to,
        } => {
            let value = map.get(shard, &key);
            let message = Message::Response(ClientResponse::GetResult { value });
            let _ = reactor.send(ReactorEvent::Reply { reply_to, message });
        }
        WorkerRequest::SnapshotBarrier {
            index: _,
            term: _,
            sink,
        } => {
            let owned = (0..map.shard_count())
                .map(ShardId)
                .filter(|&shard| worker_of(shard, workers) == number);
            for shard in owned {
                let _ = sink.send(ShardDump {
                    shard,
                    pairs: map.clone_shard(shard),
                });
            }
        }
    }
}

/// Applies one command and returns what its client is told. Recovery uses it too, so a
/// replayed log reaches exactly the state the live radiant had.
pub fn apply(map: &ShardMap, shard: ShardId, command: Command) -> ClientResponse {
    match command {
        Command::Noop => ClientResponse::PutResult,
        Command::Put {
            key,
            value,
            session: _,
        } => {
            map.put(shard, key, value);
            ClientResponse::PutResult
        }
        Command::Delete { key, session: _ } => ClientResponse::DeleteResult {
            existed: map.delete(shard, &key),
        },
        Command::Cas {
            key,
            expected,
            new,
            session: _,
        } => {
            let outcome = map.cas(shard, key, expected.as_deref(), new);
            ClientResponse::CasResult {
                succeeded: outcome.succeeded,
                current: outcome.current,
            }
        }
    }
}
