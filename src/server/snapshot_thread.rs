//! The snapshot thread: all snapshot file work, off every latency-critical thread.
//! It writes local snapshots from the shard copies the workers take at a barrier,
//! reads chunks of the newest snapshot for a member that is behind, and stores chunks
//! of a snapshot arriving from the herald, verifying the whole file before it is
//! renamed into place. The snapshot file itself is the transfer format.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use radiant_protocol::{
    InstallSnapshot, LogIndex, Message, PeerBody, PeerHeader, PeerMessage, Term,
};
use tracing::{info, warn};

use super::channels::ReactorSender;
use super::reactor::ReactorEvent;
use super::shard_worker::ShardDump;
use super::state_thread::StateEvent;
use crate::core::order::Membership;
use crate::storage::file_system::DataDir;
use crate::storage::snapshot::{SnapshotError, SnapshotLimits};
use crate::storage::state_snapshot::{self, read_chunk, OrderSections, ReceiveLimits};

/// Work for the snapshot thread.
#[derive(Debug)]
pub enum SnapshotJob {
    /// Write a local snapshot at `index` from the workers' copies.
    Write {
        /// Last included index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The membership as of `index`.
        membership: Membership,
        /// The order's council state as of `index`, if it has one.
        council: Option<Bytes>,
        /// The order's shard table as of `index`, encoded.
        shards: Bytes,
        /// The shard copies; the channel closes when every worker has sent its own.
        parts: Receiver<ShardDump>,
    },
    /// Send a chunk of local snapshot `snapshot_index` to `address`.
    SendChunk {
        /// The member's peer address.
        address: SocketAddr,
        /// Header of the `InstallSnapshot` message.
        header: PeerHeader,
        /// Which snapshot.
        snapshot_index: LogIndex,
        /// Its term.
        snapshot_term: Term,
        /// Where to read from.
        offset: u64,
        /// Most bytes to send.
        max_bytes: u64,
    },
    /// Store a chunk of a snapshot arriving from the herald.
    ReceiveChunk(InstallSnapshot),
}

/// What the snapshot thread needs.
pub struct SnapshotThreadLinks {
    /// The data directory.
    pub data_dir: DataDir,
    /// Shards in the state machine.
    pub shard_count: u32,
    /// Limits for verifying received snapshots.
    pub limits: SnapshotLimits,
    /// Results go to the state thread.
    pub state: Sender<StateEvent>,
    /// Chunks go out through the reactor.
    pub reactor: ReactorSender<ReactorEvent>,
}

/// Starts the snapshot thread.
pub fn spawn(
    jobs: Receiver<SnapshotJob>,
    links: SnapshotThreadLinks,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("radiant-snapshot".into()).spawn(move || {
        let mut panic_armed = super::test_switches::panics("radiant-snapshot");
        let fail_writes = super::test_switches::count(super::test_switches::FAIL_SNAPSHOTS) > 0;
        for job in jobs.iter() {
            super::test_switches::panic_if(&mut panic_armed, "its first job");
            if fail_writes && matches!(job, SnapshotJob::Write { .. }) {
                let reason = format!("test switch {}", super::test_switches::FAIL_SNAPSHOTS);
                let _ = links.state.send(StateEvent::SnapshotFailed { reason });
                continue;
            }
            if let Some(event) = run_job(job, &links) {
                let _ = links.state.send(event);
            }
        }
    })
}

fn run_job(job: SnapshotJob, links: &SnapshotThreadLinks) -> Option<StateEvent> {
    match job {
        SnapshotJob::Write { index, term, membership, council, shards, parts } => {
            let sections = (&membership, council.as_ref(), &shards);
            Some(match write(links, index, term, sections, &parts) {
                Ok((path, pairs)) => {
                    info!(index, pairs, path = %path.display(), "snapshot: written");
                    StateEvent::Core(crate::core::Input::SnapshotWritten { index, term })
                }
                Err(error) => StateEvent::SnapshotFailed { reason: crate::error_chain(&error) },
            })
        }
        SnapshotJob::SendChunk {
            address,
            header,
            snapshot_index,
            snapshot_term,
            offset,
            max_bytes,
        } => {
            match read_chunk(&links.data_dir, snapshot_index, offset, max_bytes) {
                Ok((chunk, total_bytes)) => {
                    let done = offset + chunk.len() as u64 == total_bytes;
                    let body = InstallSnapshot {
                        snapshot_index,
                        snapshot_term,
                        offset,
                        total_bytes,
                        done,
                        chunk,
                    };
                    let mut frame = BytesMut::new();
                    Message::Peer(PeerMessage { header, body: PeerBody::InstallSnapshot(body) })
                        .encode(0, &mut frame);
                    let _ = links
                        .reactor
                        .send(ReactorEvent::SendPeer { address, frame: frame.freeze() });
                }
                // A newer snapshot replaced it; the herald restarts the transfer later.
                Err(error) => {
                    warn!(snapshot_index, %error, "snapshot: cannot read a chunk to send")
                }
            }
            None
        }
        SnapshotJob::ReceiveChunk(chunk) => received(links, &chunk),
    }
}

fn write(
    links: &SnapshotThreadLinks,
    index: LogIndex,
    term: Term,
    (membership, council, shards): (&Membership, Option<&Bytes>, &Bytes),
    parts: &Receiver<ShardDump>,
) -> Result<(PathBuf, u64), SnapshotError> {
    // The parts end when every worker dropped its sender: a worker that died before the
    // barrier sent nothing, and `write` refuses a snapshot without its shards.
    let sections = OrderSections { membership, council, shards };
    state_snapshot::write(&links.data_dir, (index, term), links.shard_count, sections, parts.iter())
}

/// Stores a received chunk and says what became of it: the next offset wanted, the whole
/// snapshot received, or nothing (unusable: the herald resends).
fn received(links: &SnapshotThreadLinks, chunk: &InstallSnapshot) -> Option<StateEvent> {
    let snapshot_index = chunk.snapshot_index;
    match receive_chunk(links, chunk) {
        Ok(next_offset) if !chunk.done => {
            Some(StateEvent::Core(crate::core::Input::SnapshotChunkWritten {
                snapshot_index,
                next_offset,
            }))
        }
        Ok(_) => {
            Some(StateEvent::SnapshotReceived { index: snapshot_index, term: chunk.snapshot_term })
        }
        Err(error) => {
            let why = "snapshot: a received snapshot is unusable; the herald will resend";
            let error = crate::error_chain(&error);
            warn!(snapshot_index, %error, "{why}");
            None
        }
    }
}

/// Stores a received chunk (see `state_snapshot::receive_chunk`).
fn receive_chunk(
    links: &SnapshotThreadLinks,
    chunk: &InstallSnapshot,
) -> Result<u64, SnapshotError> {
    let checks = ReceiveLimits { limits: links.limits, shard_count: links.shard_count };
    let next = state_snapshot::receive_chunk(&links.data_dir, chunk, checks)?;
    if chunk.done {
        let index = chunk.snapshot_index;
        info!(index, "snapshot: received from the herald, verified and installed on disk");
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::snapshot::{self, SnapshotWriter};
    use crate::storage::state_snapshot::{section, SECTION_SHARDS};
    use radiant_protocol::slots::ShardId;
    use std::path::Path;

    const LIMITS: SnapshotLimits = SnapshotLimits { max_key_bytes: 1024, max_value_bytes: 1024 };

    /// Links for a snapshot thread on `data_dir` (the poll must outlive them).
    fn links(data_dir: &Path, shard_count: u32, poll: &mio::Poll) -> SnapshotThreadLinks {
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (reactor, _) = super::super::channels::reactor_channel(4, waker);
        let (state, _) = crossbeam_channel::unbounded();
        let data_dir = DataDir::real(data_dir);
        SnapshotThreadLinks { data_dir, shard_count, limits: LIMITS, state, reactor }
    }

    /// A chunk of snapshot `index` at `offset` of `total_bytes`, term 2.
    fn chunk(
        (index, offset, total_bytes): (u64, u64, u64),
        bytes: &[u8],
        done: bool,
    ) -> InstallSnapshot {
        InstallSnapshot {
            snapshot_index: index,
            snapshot_term: 2,
            offset,
            total_bytes,
            done,
            chunk: Bytes::copy_from_slice(bytes),
        }
    }

    #[test]
    fn a_received_snapshot_with_a_bad_section_is_not_installed() {
        let (directory, sender) =
            (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        let sender_dir = DataDir::real(sender.path());
        let mut writer = SnapshotWriter::create(&sender_dir, 7, 2, 2).expect("create");
        writer.write_key_value(ShardId(0), b"k", b"v").expect("write");
        writer.write_opaque(&section(SECTION_SHARDS, &Bytes::from_static(b"\xff"))).expect("write");
        let bytes = std::fs::read(writer.finish().expect("finish")).expect("read");
        let poll = mio::Poll::new().expect("poll");
        let links = links(directory.path(), 2, &poll);
        let error = receive_chunk(&links, &chunk((7, 0, bytes.len() as u64), &bytes, true))
            .expect_err("refused");
        assert!(error.to_string().contains("unreadable shards section"), "{error}");
        let installed = snapshot::load_latest(&links.data_dir, LIMITS).expect("no damage");
        assert!(installed.is_none(), "a snapshot that cannot load became the newest on disk");
    }

    #[test]
    fn a_received_snapshot_cannot_grow_past_its_announced_size_or_the_free_space() {
        use crate::storage::{DiskFaults, MemoryFileSystem};
        let checks = ReceiveLimits { limits: LIMITS, shard_count: 2 };
        let faults = DiskFaults { capacity_bytes: 4096, ..DiskFaults::default() };
        let disk = MemoryFileSystem::new(1, faults);
        let data_dir = DataDir { file_system: Arc::new(disk), path: "/radiant".into() };
        let bytes = [7u8; 100];
        // Announced as 150 bytes: the first 100 fit, the next 100 would end at 200.
        let next =
            state_snapshot::receive_chunk(&data_dir, &chunk((9, 0, 150), &bytes, false), checks)
                .expect("the first chunk fits");
        let second = chunk((9, next, 150), &bytes, false);
        let error = state_snapshot::receive_chunk(&data_dir, &second, checks)
            .expect_err("past the announced size");
        assert!(error.to_string().contains("past the 150 bytes"), "{error}");
        // Announced as more than the disk has free: refused before the first byte.
        let larger = chunk((10, 0, 1 << 20), &bytes, false);
        let error = state_snapshot::receive_chunk(&data_dir, &larger, checks)
            .expect_err("larger than the free space");
        let reason = crate::error_chain(&error);
        assert!(reason.contains("1048576 bytes and") && reason.contains("are free"), "{reason}");
    }

    #[test]
    fn a_snapshot_missing_a_shard_is_not_written_and_reported_failed() {
        let directory = tempfile::tempdir().expect("temp dir");
        let poll = mio::Poll::new().expect("poll");
        let links = links(directory.path(), 2, &poll);
        let limits = LIMITS;
        // Shard 1's worker died before the barrier: only shard 0 arrives.
        let (sink, parts) = crossbeam_channel::unbounded();
        let pairs = vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))];
        sink.send(ShardDump { shard: ShardId(0), pairs, sessions: Bytes::new() }).expect("send");
        drop(sink);
        let job = SnapshotJob::Write {
            index: 5,
            term: 1,
            membership: Membership::default(),
            council: None,
            shards: Bytes::new(),
            parts,
        };
        let event = run_job(job, &links);
        let Some(StateEvent::SnapshotFailed { reason }) = event else {
            panic!("an incomplete snapshot was reported written");
        };
        assert!(reason.contains("1 of its 2 shards never arrived"), "{reason}");
        let loaded = snapshot::load_latest(&links.data_dir, limits).expect("no damage");
        assert!(loaded.is_none(), "an incomplete snapshot file was installed");
    }
}
