//! The state thread (the seed's `RadiantController`; "controller" alone means the
//! shard controller, so it is not called that here). It owns the core, feeds it
//! inputs in arrival order, and carries out the actions it returns: WAL batches to
//! the WAL writer, applies and reads to shard workers, replies to the reactor.
//!
//! It holds no protocol logic of its own: every decision is the core's.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use radiant_protocol::{ClientRequest, ErrorResponse, LogIndex, Message};
use tracing::{error, info, info_span, warn};

use super::channels::ReactorSender;
use super::reactor::ReactorEvent;
use super::shard_worker::{worker_of, ShardDump, WorkerRequest};
use super::snapshot_thread::SnapshotJob;
use super::wal_thread::WalRequest;
use crate::core::{Action, Actions, Input, Radiant, ReplyTo, Tick};
use crate::limits::STATE_INBOX_CAPACITY;

/// Inputs to the state thread, from the reactor, the WAL writer and the snapshot writer.
#[derive(Debug)]
pub enum StateEvent {
    /// One tick of `tick_ms` passed.
    Tick,
    /// A client request.
    Client {
        /// Where the answer goes.
        reply_to: ReplyTo,
        /// The request.
        request: ClientRequest,
    },
    /// The WAL is durable through `index`.
    Durable {
        /// Highest durable index.
        index: LogIndex,
    },
    /// A snapshot through `index` is durable.
    SnapshotWritten {
        /// Its last included index.
        index: LogIndex,
    },
    /// A snapshot could not be written; the log keeps growing until one succeeds.
    SnapshotFailed {
        /// Why.
        reason: String,
    },
    /// The WAL cannot write or fsync: nothing more may be acknowledged.
    WalFailed {
        /// Why.
        reason: String,
    },
    /// Stop after passing shutdown on to the WAL writer and the workers.
    Shutdown,
}

/// The channels the state thread drives.
pub struct StateThreadLinks {
    /// Its own inbox.
    pub inbox: Receiver<StateEvent>,
    /// To the WAL writer.
    pub wal: Sender<WalRequest>,
    /// To each shard worker, by worker number.
    pub workers: Vec<Sender<WorkerRequest>>,
    /// To the snapshot writer.
    pub snapshots: Sender<SnapshotJob>,
    /// Replies to clients.
    pub reactor: ReactorSender<ReactorEvent>,
}

/// How the state thread ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StateThreadExit {
    /// Shut down on request.
    Clean,
    /// The WAL failed; the daemon must exit non-zero.
    WalFailed(String),
}

/// Starts the state thread with the core `radiant`.
pub fn spawn(
    radiant: Radiant,
    links: StateThreadLinks,
) -> std::io::Result<JoinHandle<StateThreadExit>> {
    std::thread::Builder::new()
        .name("radiant-state".into())
        .spawn(move || {
            let span = info_span!("radiant", member = %radiant.member_id());
            let _entered = span.enter();
            StateThread {
                radiant,
                links,
                now: Tick(0),
                actions: Actions::new(),
                wal_failed: None,
            }
            .run()
        })
}

struct StateThread {
    radiant: Radiant,
    links: StateThreadLinks,
    now: Tick,
    actions: Actions,
    wal_failed: Option<String>,
}

impl StateThread {
    fn run(mut self) -> StateThreadExit {
        let mut batch = Vec::with_capacity(STATE_INBOX_CAPACITY);
        while let Ok(first) = self.links.inbox.recv() {
            batch.push(first);
            batch.extend(self.links.inbox.try_iter().take(STATE_INBOX_CAPACITY));
            let mut shutdown = false;
            for event in batch.drain(..) {
                shutdown |= self.on_event(event);
            }
            self.carry_out_actions();
            if shutdown {
                return self.shut_down();
            }
        }
        self.shut_down()
    }

    /// Steps the core with one event; true when it is the shutdown request.
    fn on_event(&mut self, event: StateEvent) -> bool {
        let input = match event {
            StateEvent::Tick => {
                self.now = Tick(self.now.0 + 1);
                Input::Tick
            }
            StateEvent::Client { reply_to, request } => {
                if let Some(reason) = &self.wal_failed {
                    let reason = format!(
                        "this radiant's write-ahead log failed ({reason}); it is shutting down"
                    );
                    self.reply(
                        reply_to,
                        Message::Error(ErrorResponse::Unavailable { reason }),
                    );
                    return false;
                }
                Input::Client { reply_to, request }
            }
            StateEvent::Durable { index } => Input::Durable { index },
            StateEvent::SnapshotWritten { index } => Input::SnapshotWritten { index },
            StateEvent::SnapshotFailed { reason } => {
                warn!(%reason, "state: snapshot failed; will retry at the next interval");
                Input::SnapshotFailed
            }
            StateEvent::WalFailed { reason } => {
                error!(%reason, "state: write-ahead log failed; stopping");
                self.wal_failed = Some(reason);
                let _ = self.links.reactor.send(ReactorEvent::Shutdown);
                return false;
            }
            StateEvent::Shutdown => return true,
        };
        self.radiant.step(self.now, input, &mut self.actions);
        false
    }

    fn reply(&self, reply_to: ReplyTo, message: Message) {
        let _ = self
            .links
            .reactor
            .send(ReactorEvent::Reply { reply_to, message });
    }

    /// Carries out the step's actions in order. Consecutive `Persist` actions become
    /// one WAL batch, so a burst of writes costs one channel message and one fsync.
    fn carry_out_actions(&mut self) {
        let mut pending: Option<WalRequest> = None;
        let actions: Vec<Action> = self.actions.drain().collect();
        for action in actions {
            if let Action::Persist {
                hard_state,
                entries,
            } = action
            {
                pending = Some(match pending.take() {
                    Some(WalRequest::Append {
                        hard_state: first,
                        entries: mut batch,
                    }) if hard_state.is_none() => {
                        batch.extend(entries);
                        WalRequest::Append {
                            hard_state: first,
                            entries: batch,
                        }
                    }
                    Some(previous) => {
                        self.send_wal(previous);
                        WalRequest::Append {
                            hard_state,
                            entries,
                        }
                    }
                    None => WalRequest::Append {
                        hard_state,
                        entries,
                    },
                });
                continue;
            }
            if let Some(batch) = pending.take() {
                self.send_wal(batch);
            }
            self.carry_out(action);
        }
        if let Some(batch) = pending {
            self.send_wal(batch);
        }
    }

    fn send_wal(&mut self, request: WalRequest) {
        if self.links.wal.send(request).is_err() && self.wal_failed.is_none() {
            self.wal_failed = Some("the WAL writer exited".to_string());
        }
    }

    fn carry_out(&mut self, action: Action) {
        let workers = self.links.workers.len();
        match action {
            Action::Persist { .. } => unreachable!("persist actions are batched by the caller"),
            Action::Apply {
                shard,
                index,
                command,
                reply_to,
            } => {
                let request = WorkerRequest::Apply {
                    shard,
                    index,
                    command,
                    reply_to,
                };
                let _ = self.links.workers[worker_of(shard, workers)].send(request);
            }
            Action::Read {
                shard,
                key,
                reply_to,
            } => {
                let request = WorkerRequest::Read {
                    shard,
                    key,
                    reply_to,
                };
                let _ = self.links.workers[worker_of(shard, workers)].send(request);
            }
            Action::Reply { reply_to, result } => {
                let message = match result {
                    Ok(response) => Message::Response(response),
                    Err(error) => Message::Error(error),
                };
                self.reply(reply_to, message);
            }
            Action::Snapshot { index, term } => self.start_snapshot(index, term),
            Action::CompactLog { through } => self.send_wal(WalRequest::Compact { through }),
        }
    }

    /// Every worker copies its shards when the barrier reaches the front of its queue,
    /// i.e. after every apply through `index` and before any later one.
    fn start_snapshot(&mut self, index: LogIndex, term: u64) {
        let (sink, parts) = crossbeam_channel::unbounded::<ShardDump>();
        for worker in &self.links.workers {
            let barrier = WorkerRequest::SnapshotBarrier {
                index,
                term,
                sink: sink.clone(),
            };
            let _ = worker.send(barrier);
        }
        drop(sink);
        info!(index, term, "state: snapshot started");
        let _ = self
            .links
            .snapshots
            .send(SnapshotJob { index, term, parts });
    }

    fn shut_down(self) -> StateThreadExit {
        let _ = self.links.wal.send(WalRequest::Shutdown);
        // Dropping the senders ends the workers and the snapshot writer once drained.
        match self.wal_failed {
            Some(reason) => StateThreadExit::WalFailed(reason),
            None => StateThreadExit::Clean,
        }
    }
}
