//! The radiant's configuration: one TOML file whose keys are the struct's field names
//! (the seed notes' keys keep their spelling), defaults for every key, and validation
//! that names the offending key, its value and what to do.
//!
//! This module reads a file and checks values. It must not open sockets or data
//! directories: the daemon does that after validation succeeds.

pub mod graph;
mod validate;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use validate::{ConfigError, Problem};

/// The configuration `radiant start` uses when no `--config` is given: a single-node
/// system on loopback with its data under the working directory. It is the same file
/// as `config/single.toml`, so the example and the default cannot drift apart.
pub const EMBEDDED_DEFAULT_TOML: &str = include_str!("../../config/single.toml");

/// Every configuration key of DESIGN §6 plus the runtime limits. Times the seed notes
/// give in ticks stay in ticks (`election_timeout`, `heartbeat_interval`,
/// `bootstrap_backoff`, `beacon_interval`); one tick is `tick_ms` milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address peers reach this radiant on.
    pub my_ip: IpAddr,
    /// Peer port; 0 binds a free port and records it in `DATA_DIR/radiant.addr`.
    pub my_port: u16,
    /// The one neighbour this radiant beacons at start (unset for the first radiant).
    pub neighbor_ip: Option<IpAddr>,
    /// The neighbour's peer port; set together with `neighbor_ip`.
    pub neighbor_port: Option<u16>,
    /// Upper bound, in ticks, of the randomised wait before the first beacon.
    pub bootstrap_backoff: u64,
    /// Ticks between beacons to the neighbour until it answers.
    pub beacon_interval: u64,
    /// Minimum ticks without a herald before a member stands for election; the actual
    /// timeout is drawn from `[election_timeout, 2 * election_timeout)`.
    pub election_timeout: u64,
    /// Ticks between a herald's heartbeats.
    pub heartbeat_interval: u64,
    /// Largest `Append` batch a herald sends, in bytes.
    pub replication_max_bytes: u32,
    /// Length of one tick in milliseconds.
    pub tick_ms: u64,
    /// Where the write-ahead log, snapshots and bound addresses live.
    pub data_dir: PathBuf,
    /// How many radiants form a brand-new system; 1 is a single-node system.
    pub bootstrap_expect: u32,
    /// Target number of members per order.
    pub order_size: u32,
    /// Number of shards the key space is divided into.
    pub shard_count: u32,
    /// Address clients connect to.
    pub client_ip: IpAddr,
    /// Client port; 0 binds a free port and records it in `DATA_DIR/radiant.addr`.
    pub client_port: u16,
    /// Address Redis clients (RESP) connect to.
    pub resp_ip: IpAddr,
    /// RESP port; unset serves no RESP. 0 binds a free port.
    pub resp_port: Option<u16>,
    /// Where Prometheus scrapes `GET /metrics` (`IP:PORT`); unset serves no metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// Largest frame accepted from the network: the frame's length field, in bytes.
    pub max_frame_bytes: u32,
    /// Largest key accepted, in bytes.
    pub max_key_bytes: u32,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: u32,
    /// The shared secret every radiant of a system proves to its peers before a peer
    /// link is trusted (HMAC-SHA256 challenge-response). Required for a system of more
    /// than one radiant unless `insecure = true`.
    pub cluster_secret: Option<Secret>,
    /// A second secret whose proofs are accepted too (never presented): set while the
    /// secret is being rotated, one radiant at a time (`docs/operations.md`, Security).
    pub cluster_secret_accepted: Option<Secret>,
    /// Run peer links without a secret: anyone who can reach the peer port can then
    /// take the system over. Only for a network nobody else can reach.
    pub insecure: bool,
    /// A file holding the admin token: admin requests (membership, moves, transfers)
    /// need it. Without one, admin requests are refused unless `insecure = true`.
    pub admin_token_file: Option<PathBuf>,
    /// A file holding the client token: when set, data requests need it (or the admin
    /// token), like Redis `requirepass`, and status shows nothing to other clients.
    pub client_token_file: Option<PathBuf>,
    /// Most open peer connections from other radiants (a pool apart from the clients').
    pub max_peer_connections: u32,
    /// This radiant's certificate chain (PEM): set with `tls_key_file` and `tls_ca_file`
    /// to serve TLS 1.3 on the client port and mutual TLS on peer links.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) every peer's certificate must chain to.
    pub tls_ca_file: Option<PathBuf>,
    /// Number of shard worker threads applying committed entries and serving reads.
    pub shard_workers: u32,
    /// Most open client connections; further clients get `Unavailable` and are closed.
    pub max_connections: u32,
    /// Most requests one client connection may have in flight (its pipelining depth).
    pub max_inflight_per_connection: u32,
    /// Bytes of unsent replies after which the radiant stops reading from a connection.
    pub connection_write_high_water_bytes: u64,
    /// Bytes of unsent replies after which the connection is closed.
    pub connection_write_max_bytes: u64,
    /// Bytes all client connections together may make the radiant hold before the core
    /// takes them (read and write buffers, requests queued to the state thread); at the
    /// limit client reads pause until replies and commits free room.
    pub max_buffered_bytes: u64,
    /// A connection whose pending replies make no progress for this long is closed.
    pub write_stall_timeout_ms: u64,
    /// A client connection with no traffic for this long is closed.
    pub client_idle_timeout_ms: u64,
    /// Below this many bytes free in the data directory's file system, writes that add
    /// data are refused (`Unavailable`, naming the cause) until space returns; reads and
    /// deletes go on. 0 turns the alarm off (the radiant then runs until a write fails
    /// with ENOSPC, and stops).
    pub min_free_bytes: u64,
    /// Size at which the write-ahead log starts a new segment file.
    pub wal_segment_max_bytes: u64,
    /// A snapshot is written after this many entries have been applied since the last.
    pub snapshot_interval_entries: u64,
    /// A snapshot is also written when the log held in memory reaches this many bytes.
    pub snapshot_interval_bytes: u64,
    /// Default log filter (`error`, `warn`, `info`, `debug`, `trace`); `RUST_LOG` overrides it.
    pub log_level: String,
    /// This radiant's member id in a statically configured order (see `members`).
    pub member_id: u64,
    /// Static bootstrap, like etcd's initial cluster: every member of the order with its
    /// addresses. Empty means a single-node system. Every member must list the same set.
    pub members: Vec<MemberConfig>,
}

/// A secret from the configuration: its `Debug` never shows it, so no log line or panic
/// message can carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret's bytes, for the MAC.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One member of a statically configured order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Its member id (nonzero, unique).
    pub id: u64,
    /// Its peer address (`my_ip:my_port` in its own config).
    pub peer: SocketAddr,
    /// Its client address (`client_ip:client_port` in its own config).
    pub client: SocketAddr,
    /// Its RESP address (`resp_ip:resp_port` in its own config), if it serves RESP:
    /// where a RESP client is sent (`MOVED`) when this member is the herald.
    #[serde(default)]
    pub resp: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Config {
            my_ip: loopback,
            my_port: 7400,
            neighbor_ip: None,
            neighbor_port: None,
            bootstrap_backoff: 20,
            beacon_interval: 10,
            election_timeout: 30,
            heartbeat_interval: 5,
            replication_max_bytes: 1 << 20,
            tick_ms: 10,
            data_dir: PathBuf::from("radiant-data"),
            bootstrap_expect: 1,
            order_size: 3,
            shard_count: 64,
            client_ip: loopback,
            client_port: 7401,
            resp_ip: loopback,
            resp_port: None,
            metrics_addr: None,
            max_frame_bytes: (16 << 20) + (1 << 20),
            max_key_bytes: 64 << 10,
            max_value_bytes: 16 << 20,
            cluster_secret: None,
            cluster_secret_accepted: None,
            insecure: false,
            admin_token_file: None,
            client_token_file: None,
            max_peer_connections: 256,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_file: None,
            shard_workers: 2,
            max_connections: 1024,
            max_inflight_per_connection: 1024,
            connection_write_high_water_bytes: 32 << 20,
            connection_write_max_bytes: 64 << 20,
            max_buffered_bytes: 1 << 30,
            write_stall_timeout_ms: 30_000,
            client_idle_timeout_ms: 600_000,
            min_free_bytes: 128 << 20,
            wal_segment_max_bytes: 64 << 20,
            snapshot_interval_entries: 100_000,
            snapshot_interval_bytes: 256 << 20,
            log_level: "info".to_string(),
            member_id: 1,
            members: Vec::new(),
        }
    }
}

impl Config {
    /// Parses and validates a TOML document. `origin` names it in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_string(),
            message: error.to_string(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::from_toml_str(&text, &path.display().to_string())
    }

    /// The embedded single-node configuration.
    pub fn embedded_default() -> Config {
        Config::from_toml_str(EMBEDDED_DEFAULT_TOML, "embedded default config")
            .expect("the embedded default config is checked by a unit test")
    }

    /// The address peers connect to.
    pub fn peer_addr(&self) -> SocketAddr {
        SocketAddr::new(self.my_ip, self.my_port)
    }

    /// The address clients connect to.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_ip, self.client_port)
    }

    /// The address Redis clients connect to, when RESP is served.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.resp_ip, self.resp_port?))
    }

    /// The neighbour's peer address, when one is configured.
    pub fn neighbor_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.neighbor_ip?, self.neighbor_port?))
    }

    /// Whether this radiant is configured to be one of several: it forms a system of
    /// more than one, beacons a neighbour, or is a member of a static order of several.
    pub fn expects_peers(&self) -> bool {
        self.bootstrap_expect > 1 || self.neighbor_ip.is_some() || self.members.len() > 1
    }

    /// The protocol limits every decoder uses.
    pub fn protocol_limits(&self) -> radiant_protocol::Limits {
        radiant_protocol::Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_matches_the_built_in_defaults() {
        let embedded = Config::embedded_default();
        assert_eq!(embedded.bootstrap_expect, 1);
        assert_eq!(embedded.client_addr().to_string(), "127.0.0.1:7401");
        assert_eq!(embedded.peer_addr().to_string(), "127.0.0.1:7400");
        assert_eq!(embedded.data_dir, PathBuf::from("radiant-data"));
    }

    #[test]
    fn every_example_config_is_valid() {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut checked = 0;
        for entry in std::fs::read_dir(&directory).expect("config/ exists") {
            let path = entry.expect("readable directory entry").path();
            if path.extension().is_some_and(|extension| extension == "toml") {
                Config::load(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                checked += 1;
            }
        }
        assert!(checked >= 1, "no example configs found in {}", directory.display());
    }

    #[test]
    fn several_radiants_need_a_secret_or_an_explicit_insecure_but_not_both() {
        let cases = [
            ("bootstrap_expect = 3\n", Some("cluster_secret")),
            ("neighbor_ip = \"127.0.0.1\"\nneighbor_port = 7500\n", Some("cluster_secret")),
            ("bootstrap_expect = 3\ninsecure = true\n", None),
            ("bootstrap_expect = 3\ncluster_secret = \"sixteen bytes long\"\n", None),
            ("cluster_secret = \"short\"\n", Some("at least 16 bytes")),
            ("insecure = true\ncluster_secret = \"sixteen bytes long\"\n", Some("choose one")),
            ("cluster_secret_accepted = \"sixteen bytes long\"\n", Some("without `cluster")),
            ("", None),
        ];
        for (text, problem) in cases {
            let result = Config::from_toml_str(text, "test.toml");
            match (problem, result) {
                (None, Ok(_)) => {}
                (Some(problem), Err(error)) => {
                    let message = error.to_string();
                    assert!(message.contains(problem), "{text:?}: {message}");
                    assert!(!message.contains("sixteen bytes long"), "secret shown: {message}");
                }
                (problem, result) => panic!("{text:?}: expected {problem:?}, got {result:?}"),
            }
        }
    }

    #[test]
    fn an_empty_file_means_all_defaults() {
        assert_eq!(Config::from_toml_str("", "empty").expect("valid"), Config::default());
    }

    #[test]
    fn unknown_key_is_named_in_the_error() {
        let error = Config::from_toml_str("electon_timeout = 5\n", "test.toml").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("electon_timeout"), "{message}");
        assert!(message.contains("test.toml"), "{message}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let error = Config::from_toml_str("tick_ms = \"fast\"\n", "test.toml").unwrap_err();
        assert!(error.to_string().contains("tick_ms"), "{error}");
    }
}
