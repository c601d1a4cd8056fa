//! The trusted boundary on real daemons (issue 13): an attacker who can reach the peer
//! ports but has no cluster secret sends every kind of peer and system message to a
//! three-radiant order and to a six-radiant system under checked load, and changes
//! nothing; a radiant with another secret is refused with the cause on both sides; admin
//! requests need the admin token and data requests the client token when one is set.
//! Bounded; every process is killed by PID on drop.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::load::Load;
use common::system::{agreed_shape, one_controller, ports, shards_settled, start, wait_for};
use common::{free_port, order_member_config, radiant, status, Daemon, CLUSTER_SECRET};
use radiant::server::link_auth::{LinkHandshake, LinkStep, LinkTrust};
use radiant_protocol::{
    decode_frame, Append, BeaconHandshake, ClusterId, Command, CouncilAppend, CouncilRequestVote,
    InstallSnapshot, JoinSystem, Limits, LinkMessage, LogEntry, MemberId, Message, OrderId,
    PeerBody, PeerHeader, PeerMessage, RadiantAddress, RequestVote, ShardChunk, SystemBody,
    SystemMessage,
};
use serde_json::Value;

/// Seconds of checked load while the attacker works.
const LOAD_SECONDS: u64 = 6;
/// How far above the order's term the attacker's messages claim to be.
const ATTACK_TERMS: u64 = 1_000;
const TIMING: &str = "tick_ms = 10\nheartbeat_interval = 5\nelection_timeout = 30\n";

fn read_frame(stream: &mut TcpStream) -> Option<Message> {
    let mut buffer = BytesMut::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(frame) = decode_frame(&mut buffer, 1 << 20).expect("a valid frame") {
            return Some(Message::decode(frame, &Limits::DEFAULT).expect("a valid message"));
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(count) => buffer.extend_from_slice(&chunk[..count]),
            Err(error) => panic!("reading from the radiant: {error}"),
        }
        assert!(Instant::now() < deadline, "no frame within 10 s");
    }
}

fn write_message(stream: &mut TcpStream, message: &Message) {
    let mut frame = BytesMut::new();
    message.encode(0, &mut frame);
    stream.write_all(&frame).expect("write to the radiant");
}

fn connect(peer: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(peer).expect("connect to the peer port");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    stream
}

/// Sends `message` on a fresh peer connection with no handshake; the radiant must answer
/// `LinkRefused` and close. Returns the reason.
fn send_without_handshake(peer: SocketAddr, message: &Message) -> String {
    let mut stream = connect(peer);
    write_message(&mut stream, message);
    let reason = match read_frame(&mut stream) {
        Some(Message::Link(LinkMessage::Refused { reason })) => reason,
        other => panic!("{:?} without a handshake got {other:?}", message.kind()),
    };
    assert!(read_frame(&mut stream).is_none(), "the connection closes after the refusal");
    reason
}

/// Tries the link handshake with `secret`; the refusal reason if the radiant refuses.
fn handshake_with(peer: SocketAddr, secret: &str) -> Result<TcpStream, String> {
    let trust = LinkTrust::Secret { present: secret.as_bytes().to_vec(), also_accepted: None };
    let nonce = [0x5a; 32];
    let me = "127.0.0.1:9".to_string();
    let (mut handshake, hello) = LinkHandshake::dial(trust.into(), nonce, me, ClusterId::UNSET);
    let mut stream = connect(peer);
    write_message(&mut stream, &Message::Link(hello));
    let Some(Message::Link(challenge)) = read_frame(&mut stream) else {
        return Err("no challenge".to_string());
    };
    match handshake.on_message(challenge).map_err(|refusal| refusal.reason)? {
        LinkStep::Trusted { send: Some(proof), .. } => {
            write_message(&mut stream, &Message::Link(proof));
            Ok(stream)
        }
        other => Err(format!("unexpected step {other:?}")),
    }
}

/// Every kind of peer and system message an attacker could use to take an order or a
/// system over, claiming a term far above `term`, as if from member `from` of `order_id`.
#[allow(clippy::too_many_lines)] // Why: one literal list of messages reads best whole.
fn attack(order_id: u64, from: u64, to: u64, term: u64, last_index: u64) -> Vec<Message> {
    let header = |term| PeerHeader {
        cluster: ClusterId::UNSET,
        order_id: OrderId::new(order_id).expect("order"),
        from: MemberId::new(from).expect("member"),
        to: MemberId::new(to).expect("member"),
        term,
    };
    let high = term + ATTACK_TERMS;
    let put = Command::Put {
        key: Bytes::from_static(b"attacker"),
        value: Bytes::from_static(b"owned"),
        session: None,
    };
    let peer = |term, body| Message::Peer(PeerMessage { header: header(term), body });
    let system = |body| {
        let from = "127.0.0.1:9".to_string();
        Message::System(SystemMessage { cluster: ClusterId::UNSET, from, body })
    };
    let address = RadiantAddress {
        peer: "127.0.0.1:9".into(),
        client: "127.0.0.1:10".into(),
        resp: String::new(),
    };
    vec![
        peer(
            high,
            PeerBody::Append(Append {
                prev_log_index: last_index,
                prev_log_term: term,
                commit: last_index + 1,
                read_round: 0,
                entries: vec![LogEntry { term: high, index: last_index + 1, data: put.to_bytes() }],
            }),
        ),
        peer(
            high,
            PeerBody::RequestVote(RequestVote {
                last_log_index: last_index + 1_000,
                last_log_term: high,
                pre_vote: false,
                transfer: true,
            }),
        ),
        peer(term, PeerBody::TimeoutNow),
        peer(
            high,
            PeerBody::InstallSnapshot(InstallSnapshot {
                snapshot_index: last_index + 1_000,
                snapshot_term: high,
                offset: 0,
                total_bytes: 4,
                done: true,
                chunk: Bytes::from_static(b"evil"),
            }),
        ),
        system(SystemBody::JoinSystem(JoinSystem { joiner: address.clone(), hops: 0 })),
        system(SystemBody::BeaconHandshake(BeaconHandshake {
            client: address.client.clone(),
            member: None,
            bootstrap_expect: 1,
            known: vec![address],
        })),
        system(SystemBody::CouncilRequestVote(CouncilRequestVote {
            term: high,
            candidate_order: OrderId::new(order_id),
            candidate_member: MemberId::new(from),
            last_number: 1_000,
            last_term: high,
        })),
        system(SystemBody::CouncilAppend(Box::new(CouncilAppend {
            term: high,
            controller_order: OrderId::new(order_id),
            controller_member: MemberId::new(from),
            committed: 1_000,
            configuration: None,
            committed_configuration: None,
            heralds: Vec::new(),
        }))),
        system(SystemBody::ShardChunk(Box::new(ShardChunk {
            shard: 0,
            number: 1_000,
            after: None,
            pairs: vec![(Bytes::from_static(b"attacker"), Bytes::from_static(b"owned"))],
            sessions: None,
        }))),
    ]
}

/// Sends the whole attack to `daemon`'s peer port, then tries the handshake with a
/// guessed secret; every attempt must be refused. Returns how many frames were refused
/// as unauthenticated.
fn attack_radiant(daemon: &Daemon, order_id: u64, from: u64, term: u64, last_index: u64) -> u64 {
    let to = status(daemon).and_then(|s| s["member"].as_u64()).unwrap_or(1);
    let messages = attack(order_id, from, to, term, last_index);
    for message in &messages {
        let reason = send_without_handshake(daemon.peer_address, message);
        assert!(reason.contains("before the link handshake"), "{reason}");
    }
    let guessed = handshake_with(daemon.peer_address, "a guessed secret of 16+ bytes");
    let reason = guessed.expect_err("a guessed secret must not link");
    assert!(reason.contains("different cluster_secret"), "{reason}");
    messages.len() as u64
}

fn unauthenticated_frames(daemon: &Daemon) -> u64 {
    status(daemon)
        .and_then(|status| status["security"]["unauthenticated_frames"].as_u64())
        .unwrap_or(0)
}

fn no_attacker_key(address: &str) {
    let (code, stdout, stderr) = radiant(&["get", "attacker", "--addr", address]);
    assert_ne!(code, 0, "the attacker's key must not exist: {stdout}{stderr}");
    assert!(stdout.contains("not found") || stderr.contains("not found"), "{stdout}{stderr}");
}

fn max_term(statuses: &[Value]) -> u64 {
    statuses.iter().filter_map(|status| status["term"].as_u64()).max().unwrap_or(0)
}

/// A static order of three; `edit(member, config text)` may change each config first.
fn start_order(root: &Path, edit: &dyn Fn(u64, String) -> String) -> Vec<Daemon> {
    let members: Vec<(u64, u16, u16)> = (1..=3).map(|id| (id, free_port(), free_port())).collect();
    members
        .iter()
        .map(|&me| {
            let data_dir = root.join(format!("r{}", me.0));
            let config = order_member_config(&data_dir, me, &members, TIMING);
            let text = std::fs::read_to_string(&config).expect("read config");
            std::fs::write(&config, edit(me.0, text)).expect("write config");
            Daemon::start_with_config(&data_dir, &config)
        })
        .collect()
}

fn wait_for_herald(daemons: &[Daemon]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses: Vec<Value> = daemons.iter().filter_map(status).collect();
        let heralds: Vec<u64> =
            statuses.iter().filter_map(|status| status["herald"].as_u64()).collect();
        let agreed = heralds.len() == daemons.len() && heralds.windows(2).all(|w| w[0] == w[1]);
        if agreed && statuses.iter().all(|status| status["ready"] == true) {
            return statuses;
        }
        assert!(Instant::now() < deadline, "no herald within 60 s: {statuses:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_attacker_without_the_secret_changes_nothing_in_an_order_under_load() {
    let root = tempfile::tempdir().expect("tempdir");
    let daemons = start_order(root.path(), &|_, text| text);
    let before = wait_for_herald(&daemons);
    let members_before = without_liveness(&before[0]["members"]);
    let entry = daemons[0].client_address.to_string();
    let history = root.path().join("history.jsonl");
    let load = Load::start(&entry, &history, root.path().join("bench.json"), LOAD_SECONDS);
    std::thread::sleep(Duration::from_secs(1));

    let term = max_term(&before);
    let last_index = before.iter().filter_map(|s| s["last_index"].as_u64()).max().unwrap_or(0);
    let herald = before[0]["herald"].as_u64().expect("a herald");
    let mut refused = 0;
    for daemon in &daemons {
        refused += attack_radiant(daemon, 1, herald, term, last_index);
    }

    load.finish_checked();
    let after: Vec<Value> = daemons.iter().filter_map(status).collect();
    assert_eq!(after.len(), 3, "every radiant still answers");
    assert!(max_term(&after) < term + ATTACK_TERMS, "the attacker's term was adopted: {after:?}");
    for status in &after {
        let members = without_liveness(&status["members"]);
        assert_eq!(members, members_before, "membership changed: {status}");
    }
    no_attacker_key(&entry);
    let counted: u64 = daemons.iter().map(unauthenticated_frames).sum();
    assert!(counted >= refused, "status counts {counted} refusals of {refused} sent");
}

#[test]
fn an_attacker_without_the_secret_changes_nothing_in_a_six_radiant_system_under_load() {
    let root = tempfile::tempdir().expect("tempdir");
    let all = ports(6);
    let daemons: Vec<Option<Daemon>> = (0..6)
        .map(|index| {
            let neighbor = all[(index + 1) % 6];
            Some(start(root.path(), &format!("s{index}"), all[index], Some(neighbor), 6))
        })
        .collect();
    let formed = wait_for(&daemons, "six radiants form two orders with their shards", |all| {
        agreed_shape(all).is_some_and(|(_, sizes)| sizes == [3, 3])
            && one_controller(all).is_some()
            && shards_settled(all, &[32, 32])
    });
    let system_before = formed[0].1["system"].clone();
    let entry = daemons[0].as_ref().map(|d| d.client_address.to_string()).expect("radiant 0");
    let history = root.path().join("history.jsonl");
    let load = Load::start(&entry, &history, root.path().join("bench.json"), LOAD_SECONDS);
    std::thread::sleep(Duration::from_secs(1));

    let mut refused = 0;
    for (index, status) in &formed {
        let daemon = daemons[*index].as_ref().expect("live");
        let order_id = status["order"].as_u64().unwrap_or(1);
        let term = status["term"].as_u64().unwrap_or(0);
        let last_index = status["last_index"].as_u64().unwrap_or(0);
        let herald = status["herald"].as_u64().unwrap_or(1);
        refused += attack_radiant(daemon, order_id, herald, term, last_index);
    }

    load.finish_checked();
    let after: Vec<Value> = daemons.iter().flatten().filter_map(status).collect();
    assert_eq!(after.len(), 6, "every radiant still answers");
    for status in &after {
        let system = &status["system"];
        for field in ["cluster", "configuration", "radiants", "shard_owners"] {
            let (now, then) =
                (without_liveness(&system[field]), without_liveness(&system_before[field]));
            assert_eq!(now, then, "{field} changed: {status}");
        }
        let council_term = system["controller"]["term"].as_u64().unwrap_or(0);
        assert!(council_term < ATTACK_TERMS, "the attacker's council term won: {status}");
    }
    no_attacker_key(&entry);
    let counted: u64 = daemons.iter().flatten().map(unauthenticated_frames).sum();
    assert!(counted >= refused, "status counts {counted} refusals of {refused} sent");
}

#[test]
fn a_radiant_with_another_secret_is_refused_with_the_cause_on_both_sides() {
    let root = tempfile::tempdir().expect("tempdir");
    let other = "cluster_secret = \"another secret, not the order's\"";
    let secret_line = format!("cluster_secret = {CLUSTER_SECRET:?}");
    let daemons = start_order(root.path(), &|member, text| {
        if member == 3 {
            text.replace(&secret_line, other)
        } else {
            text
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs: Vec<String> = daemons.iter().map(Daemon::log).collect();
        let outsider = logs[2].contains("different cluster_secret");
        let insiders = logs[..2].iter().any(|log| log.contains("different cluster_secret"));
        if outsider && insiders {
            break;
        }
        assert!(Instant::now() < deadline, "no refusal logged on both sides:\n{}", logs.join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The two with the secret form the order; the third hears nothing it may believe.
    let statuses: Vec<Value> = daemons.iter().filter_map(status).collect();
    let refused = |status: &Value| status["security"]["links_refused"].as_u64().unwrap_or(0);
    assert!(refused(&statuses[2]) > 0, "the outsider counts its refusals: {}", statuses[2]);
    let insiders: u64 = statuses[..2].iter().map(refused).sum();
    assert!(insiders > 0, "the order counts its refusals: {statuses:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&daemons[0]).and_then(|s| s["herald"].as_u64()).is_none() {
        assert!(Instant::now() < deadline, "the two radiants with the secret elect no herald");
        std::thread::sleep(Duration::from_millis(50));
    }
    let outsider = status(&daemons[2]).expect("the outsider answers");
    assert_ne!(outsider["role"], "herald", "{outsider}");
    assert_eq!(outsider["last_index"].as_u64().unwrap_or(0), 0, "{outsider}");
}

#[test]
fn admin_needs_the_admin_token_and_data_the_client_token() {
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("radiant");
    let client_token_file = root.path().join("client-token");
    std::fs::write(&client_token_file, "a client token of 16+ bytes\n").expect("token file");
    let extra = format!("client_token_file = {:?}\n", client_token_file.display().to_string());
    let config = common::write_config(&data_dir, &extra);
    let daemon = Daemon::start_with_config(&data_dir, &config);
    let address = daemon.client_address.to_string();
    let client_token = client_token_file.display().to_string();
    let wrong_token_file = root.path().join("wrong-token");
    std::fs::write(&wrong_token_file, "not a token of this radiant").expect("token file");
    let wrong = wrong_token_file.display().to_string();
    let run = |args: &[&str]| {
        let output = common::run_bounded(
            std::process::Command::new(env!("CARGO_BIN_EXE_radiant"))
                .args(args)
                .env_remove("RADIANT_TOKEN"),
            Duration::from_secs(30),
        );
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
    };

    // Without a token: data and admin refused as unauthorized; status says only that.
    let (code, _, stderr) = run(&["put", "k", "v", "--addr", &address]);
    assert_ne!(code, 0);
    assert!(stderr.contains("unauthorized") && stderr.contains("client token"), "{stderr}");
    let (code, _, stderr) = run(&["admin", "transfer-herald", "--addr", &address]);
    assert_ne!(code, 0);
    assert!(stderr.contains("unauthorized") && stderr.contains("admin token"), "{stderr}");
    let mut anonymous = daemon.client().expect("a connection");
    let document = anonymous.status().expect("status");
    assert!(document.contains("\"authenticated\":false"), "{document}");
    for hidden in ["term", "commit_index", "cluster", "last_index"] {
        assert!(!document.contains(hidden), "{hidden} shown without a token: {document}");
    }
    // A wrong token is refused.
    let (code, _, stderr) = run(&["get", "k", "--addr", &address, "--token-file", &wrong]);
    assert_ne!(code, 0);
    assert!(stderr.contains("matches neither"), "{stderr}");
    // The client token: data yes, admin no.
    let (code, _, stderr) =
        run(&["put", "k", "v", "--addr", &address, "--token-file", &client_token]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) =
        run(&["get", "k", "--addr", &address, "--token-file", &client_token]);
    assert_eq!((code, stdout.trim()), (0, "v"), "{stderr}");
    let (code, _, stderr) =
        run(&["admin", "transfer-herald", "--addr", &address, "--token-file", &client_token]);
    assert_ne!(code, 0);
    assert!(stderr.contains("admin token"), "{stderr}");
    // The admin token (RADIANT_TOKEN) grants data too.
    let (code, stdout, stderr) = radiant(&["get", "k", "--addr", &address]);
    assert_eq!((code, stdout.trim()), (0, "v"), "{stderr}");
    let token = Some(Bytes::from_static(common::ADMIN_TOKEN.as_bytes()));
    let options = radiant::client::ClientOptions { token, ..Default::default() };
    let mut admin = radiant::client::Client::connect(&address, options).expect("admin client");
    let document: Value = serde_json::from_str(&admin.status().expect("status")).expect("JSON");
    let counted = &document["security"];
    assert!(counted["unauthorized_requests"].as_u64().unwrap_or(0) >= 3, "{counted}");
    assert!(counted["failed_authentications"].as_u64().unwrap_or(0) >= 1, "{counted}");
}

#[test]
fn a_system_of_several_radiants_needs_a_secret_or_an_explicit_insecure() {
    let root = tempfile::tempdir().expect("tempdir");
    let path = root.path().join("three.toml");
    let text = "bootstrap_expect = 3\ndata_dir = \"d\"\n";
    std::fs::write(&path, text).expect("config");
    let path_text = path.display().to_string();
    let (code, _, stderr) = radiant(&["check-config", &path_text]);
    assert_ne!(code, 0);
    assert!(stderr.contains("cluster_secret") && stderr.contains("insecure = true"), "{stderr}");
    std::fs::write(&path, format!("{text}insecure = true\n")).expect("config");
    let (code, _, stderr) = radiant(&["check-config", &path_text]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn an_order_runs_without_a_secret_only_when_told_insecure() {
    let root = tempfile::tempdir().expect("tempdir");
    let secret_line = format!("cluster_secret = {CLUSTER_SECRET:?}");
    let daemons = start_order(root.path(), &|_, text| {
        // No secret and no admin token: links open without proof, admin needs no token.
        let text = text.replace(&secret_line, "insecure = true");
        text.lines()
            .filter(|line| !line.starts_with("admin_token_file"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let statuses = wait_for_herald(&daemons);
    let herald = statuses[0]["herald"].as_u64().expect("a herald");
    let entry = daemons[0].client_address.to_string();
    // A token where the radiant has none is refused, saying so.
    let (code, _, stderr) = radiant(&["put", "k", "v", "--addr", &entry]);
    assert_ne!(code, 0);
    assert!(stderr.contains("has no tokens"), "{stderr}");
    let output = common::run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_radiant"))
            .args(["admin", "transfer-herald", "--addr", &entry])
            .env_remove("RADIANT_TOKEN"),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "admin without a token on an insecure order: {stderr}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&daemons[0]).and_then(|s| s["herald"].as_u64()).is_none_or(|h| h == herald) {
        assert!(Instant::now() < deadline, "the herald did not hand over");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `members` or `radiants` of a status without what changes from one moment to the next
/// (when each was last heard), so what is left is what an attacker must not change.
fn without_liveness(list: &Value) -> Value {
    let mut list = list.clone();
    for entry in list.as_array_mut().into_iter().flatten() {
        if let Some(entry) = entry.as_object_mut() {
            for field in ["last_heard_ms", "down", "heard_by"] {
                entry.remove(field);
            }
        }
    }
    list
}
