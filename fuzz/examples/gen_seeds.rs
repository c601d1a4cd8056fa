//! Writes the seed corpora in `fuzz/seeds/<target>/` from the real encoders, so a seed
//! is a valid input by construction and stays valid when the encoding changes (rerun
//! this after changing `docs/protocol.md`):
//!
//! ```text
//! cd fuzz && cargo run --example gen_seeds
//! ```
//!
//! Seeds only give libFuzzer a head start past the length and tag checks; each target
//! also runs without them. The set is kept small on purpose (fewer than 50 files).

use std::fs;
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use radiant::config::Config;
use radiant_protocol::{
    Batch, BatchCondition, BatchOutcome, BatchWrite, ClientId, ClientRequest, ClientResponse,
    Command, ErrorResponse, MemberId, Message, OrderStateOp, ReadConsistency, Session,
    SetCondition, Update, UpdateOutcome,
};

fn main() -> std::io::Result<()> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let messages = sample_messages();
    write_message_seeds(&seeds.join("decode_message"), &messages)?;
    write_frame_seeds(&seeds.join("decode_frame"), &messages)?;
    write_command_seeds(&seeds.join("decode_command"))?;
    write_config_seeds(&seeds.join("config"))?;
    write_disk_seeds(&seeds)?;
    write_link_seeds(&seeds.join("link_handshake"))?;
    Ok(())
}

/// Seeds for the link handshake: a hello (to the acceptor) and a challenge (to the
/// dialler), each behind the selector byte.
fn write_link_seeds(directory: &Path) -> std::io::Result<()> {
    use radiant_protocol::{ClusterId, LinkIntroduction, LinkMessage};
    let introduction = LinkIntroduction {
        nonce: [3; 32],
        address: "127.0.0.1:7410".to_string(),
        cluster: ClusterId::UNSET,
        insecure: false,
    };
    let hello = Message::Link(LinkMessage::Hello(introduction.clone()));
    let challenge = Message::Link(LinkMessage::Challenge { introduction, proof: [4; 32] });
    for (selector, name, message) in [(0u8, "hello.bin", hello), (1, "challenge.bin", challenge)] {
        let mut bytes = BytesMut::new();
        bytes.put_u8(selector);
        message.encode(0, &mut bytes);
        write(directory, name, &bytes)?;
    }
    Ok(())
}

/// Seeds for the disk-format targets, each behind the targets' selector byte (0: the
/// bytes as they are on disk).
fn write_disk_seeds(seeds: &Path) -> std::io::Result<()> {
    use radiant::storage::wal::WalRecord;
    let entry =
        radiant_protocol::LogEntry { term: 3, index: 9, data: Bytes::from_static(b"\x01put") };
    let hard_state = radiant::core::HardState { term: 3, voted_for: 2, commit: 8 };
    let mut records = vec![0u8];
    WalRecord::Entry(entry).encode_into(&mut records);
    WalRecord::HardState(hard_state).encode_into(&mut records);
    write(&seeds.join("decode_wal_record"), "entry_and_hard_state.bin", &records)?;

    let record = radiant::core::system::SystemRecord::default();
    let system = [&[0u8][..], &record.encode()].concat();
    write(&seeds.join("system_file"), "unassociated.bin", &system)?;

    // Written on a simulated disk by the real writer: nothing to clean up after.
    use radiant::storage::{DataDir, DiskFaults, MemoryFileSystem};
    let disk = MemoryFileSystem::new(0, DiskFaults::default());
    let directory = DataDir { file_system: std::sync::Arc::new(disk), path: "/seeds".into() };
    let mut writer = radiant::storage::snapshot::SnapshotWriter::create(&directory, 5, 2, 64)
        .map_err(std::io::Error::other)?;
    writer
        .write_key_value(radiant_protocol::slots::ShardId(0), b"k", b"v")
        .map_err(std::io::Error::other)?;
    let path = writer.finish().map_err(std::io::Error::other)?;
    let snapshot = [&[0u8][..], &directory.fs().read(&path)?].concat();
    write(&seeds.join("snapshot_file"), "one_pair.bin", &snapshot)
}

fn session() -> Option<Session> {
    let client_id = ClientId::new(42)?;
    Some(Session { client_id, sequence: 7 })
}

/// One message of every kind this protocol version defines, named for its file.
fn sample_messages() -> Vec<(&'static str, Message)> {
    let mut messages = sample_requests();
    messages.extend(sample_replies(Bytes::from_static(b"radiant")));
    messages
}

/// One request of every kind, with and without sessions and optional fields.
fn sample_requests() -> Vec<(&'static str, Message)> {
    let key = Bytes::from_static(b"user:{42}:name");
    let value = Bytes::from_static(b"radiant");
    vec![
        ("ping", Message::Request(ClientRequest::Ping)),
        (
            "get",
            Message::Request(ClientRequest::Get {
                key: key.clone(),
                consistency: ReadConsistency::Linearizable,
            }),
        ),
        (
            "get_stale",
            Message::Request(ClientRequest::Get {
                key: key.clone(),
                consistency: ReadConsistency::Stale,
            }),
        ),
        (
            "put",
            Message::Request(ClientRequest::Put {
                key: key.clone(),
                value: value.clone(),
                session: session(),
            }),
        ),
        ("delete", Message::Request(ClientRequest::Delete { key: key.clone(), session: None })),
        (
            "cas",
            Message::Request(ClientRequest::Cas {
                key: key.clone(),
                expected: Some(value.clone()),
                new: None,
                session: session(),
            }),
        ),
        (
            "update_set_if_absent",
            Message::Request(ClientRequest::Update {
                key: key.clone(),
                update: Update::Set { value: value.clone(), condition: SetCondition::IfAbsent },
                session: None,
            }),
        ),
        (
            "update_increment",
            Message::Request(ClientRequest::Update {
                key: key.clone(),
                update: Update::IncrementBy { delta: -3 },
                session: session(),
            }),
        ),
        (
            "batch",
            Message::Request(ClientRequest::Batch { batch: batch(&key, &value), session: None }),
        ),
        (
            "read_shard",
            Message::Request(ClientRequest::ReadShard {
                shard: 5,
                cursor: 77,
                after: Some(key.clone()),
                max_bytes: 1 << 20,
            }),
        ),
    ]
}

/// A batch of a set and a delete, as `MSETNX` and `DEL` of several keys make.
fn batch(key: &Bytes, value: &Bytes) -> Batch {
    let writes = vec![
        BatchWrite { key: key.clone(), value: Some(value.clone()) },
        BatchWrite { key: Bytes::from_static(b"{k}other"), value: None },
    ];
    Batch { condition: BatchCondition::IfAllAbsent, writes }
}

/// One reply of every response and error kind.
fn sample_replies(value: Bytes) -> Vec<(&'static str, Message)> {
    vec![
        ("get_result", Message::Response(ClientResponse::GetResult { value: Some(value.clone()) })),
        ("put_result", Message::Response(ClientResponse::PutResult)),
        ("delete_result", Message::Response(ClientResponse::DeleteResult { existed: true })),
        (
            "cas_result",
            Message::Response(ClientResponse::CasResult {
                succeeded: false,
                current: Some(value.clone()),
            }),
        ),
        ("pong", Message::Response(ClientResponse::Pong { member_id: MemberId::new(3) })),
        (
            "update_result_set",
            Message::Response(ClientResponse::UpdateResult(UpdateOutcome::Set {
                written: true,
                previous: Some(value.clone()),
            })),
        ),
        (
            "update_result_incremented",
            Message::Response(ClientResponse::UpdateResult(UpdateOutcome::Incremented {
                value: 42,
            })),
        ),
        (
            "batch_result",
            Message::Response(ClientResponse::BatchResult(BatchOutcome {
                written: true,
                existed: 1,
            })),
        ),
        (
            "shard_page",
            Message::Response(ClientResponse::ShardPage(radiant_protocol::ShardPage {
                shard: 5,
                cursor: 77,
                index: 120,
                total_keys: 2,
                after: None,
                pairs: vec![
                    (Bytes::from_static(b"a"), value.clone()),
                    (Bytes::from_static(b"b"), value.clone()),
                ],
                last: true,
            })),
        ),
        (
            "not_herald",
            Message::Error(ErrorResponse::NotHerald {
                herald: MemberId::new(2),
                address: Some("127.0.0.1:7411".to_string()),
            }),
        ),
        ("wrong_order", Message::Error(ErrorResponse::WrongOrder { config_num: 9 })),
        ("locked", Message::Error(ErrorResponse::Locked(OrderStateOp::Replicating))),
        (
            "unavailable",
            Message::Error(ErrorResponse::Unavailable { reason: "no majority".to_string() }),
        ),
        (
            "bad_request",
            Message::Error(ErrorResponse::BadRequest { reason: "empty key".to_string() }),
        ),
    ]
}

fn encode(message: &Message, correlation_id: u64) -> BytesMut {
    let mut dst = BytesMut::new();
    message.encode(correlation_id, &mut dst);
    dst
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)
}

/// One valid frame per message kind.
fn write_message_seeds(dir: &Path, messages: &[(&str, Message)]) -> std::io::Result<()> {
    for (index, (name, message)) in messages.iter().enumerate() {
        let correlation_id = index as u64 + 1;
        write(dir, &format!("{name}.bin"), &encode(message, correlation_id))?;
    }
    Ok(())
}

/// Streams a connection might carry: pipelined frames, a frame cut short, a frame of an
/// unknown kind followed by a good one, and each fatal header error.
fn write_frame_seeds(dir: &Path, messages: &[(&str, Message)]) -> std::io::Result<()> {
    let mut pipelined = BytesMut::new();
    for (index, (_, message)) in messages.iter().take(6).enumerate() {
        pipelined.extend_from_slice(&encode(message, index as u64 + 1));
    }
    write(dir, "pipelined.bin", &pipelined)?;
    write(dir, "truncated.bin", &pipelined[..pipelined.len() - 3])?;

    let ping = encode(&messages[0].1, 1);
    let mut unknown_kind = ping.clone();
    unknown_kind[5] = 0x31; // a reserved replication kind this version does not know
    unknown_kind.extend_from_slice(&ping);
    write(dir, "unknown_kind_then_ping.bin", &unknown_kind)?;

    let mut bad_version = ping.clone();
    bad_version[4] = 1; // the version before this one
    write(dir, "bad_version.bin", &bad_version)?;

    let mut too_short = BytesMut::new();
    too_short.put_u32(9);
    too_short.extend_from_slice(&[1; 9]);
    write(dir, "too_short.bin", &too_short)?;

    let mut too_large = BytesMut::new();
    too_large.put_u32(u32::MAX);
    too_large.extend_from_slice(&ping[4..]);
    write(dir, "too_large.bin", &too_large)
}

/// One log command of every tag.
fn write_command_seeds(dir: &Path) -> std::io::Result<()> {
    let key = Bytes::from_static(b"k");
    let value = Bytes::from_static(b"v1");
    let commands = [
        ("noop", Command::Noop),
        ("put", Command::Put { key: key.clone(), value: value.clone(), session: session() }),
        ("put_no_session", Command::Put { key: key.clone(), value: Bytes::new(), session: None }),
        ("delete", Command::Delete { key: key.clone(), session: session() }),
        (
            "cas_insert",
            Command::Cas {
                key: key.clone(),
                expected: None,
                new: Some(value.clone()),
                session: None,
            },
        ),
        (
            "cas_delete",
            Command::Cas {
                key: key.clone(),
                expected: Some(value.clone()),
                new: None,
                session: session(),
            },
        ),
        (
            "update_append",
            Command::Update {
                key: key.clone(),
                update: Update::Append { suffix: value.clone(), max_value_bytes: 1024 },
                session: None,
            },
        ),
        ("batch", Command::Batch { batch: batch(&key, &value), session: session() }),
        ("update_take", Command::Update { key, update: Update::Take, session: session() }),
    ];
    for (name, command) in commands {
        write(dir, &format!("{name}.bin"), &command.to_bytes())?;
    }
    Ok(())
}

/// The shipped example configs plus a few that exercise optional keys and validation.
/// The shipped ones must be valid: a broken example is a bug this catches early.
fn write_config_seeds(dir: &Path) -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shipped = [("single.toml", "config/single.toml"), ("systemd.toml", "systemd/radiant.toml")];
    for (name, relative) in shipped {
        let path = root.join(relative);
        let text = fs::read_to_string(&path)?;
        if let Err(error) = Config::from_toml_str(&text, relative) {
            let message = format!("shipped config is invalid: {error}");
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
        }
        write(dir, name, text.as_bytes())?;
    }
    let joiner = "my_ip = \"::1\"\nmy_port = 0\nclient_port = 0\n\
                  neighbor_ip = \"::1\"\nneighbor_port = 7400\nbootstrap_expect = 3\n\
                  cluster_secret = \"sixteen bytes at least\"\n";
    write(dir, "joiner.toml", joiner.as_bytes())?;
    let invalid = "tick_ms = 0\nelection_timeout = 3\nheartbeat_interval = 2\n\
                   max_value_bytes = 1073741824\nlog_level = \"loud\"\n";
    write(dir, "invalid_values.toml", invalid.as_bytes())?;
    write(dir, "unknown_key.toml", b"electon_timeout = 5\n[extra]\nx = [1, 2.5, \"s\"]\n")
}
