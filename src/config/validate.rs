//! Configuration checks. Every problem names the key, its value and what would be
//! accepted; all problems are reported at once so an operator fixes a file in one pass.

use std::fmt;
use std::path::PathBuf;

use super::Config;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("{origin}: {message}")]
    Parse {
        /// Where the text came from.
        origin: String,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// The file parsed, but values are out of range or contradict each other.
    #[error("{origin}: {} invalid value(s):\n{}", problems.len(), list(problems))]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// One rejected key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The TOML key.
    pub key: &'static str,
    /// The value as written.
    pub value: String,
    /// Why it was rejected and what would be accepted.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config key `{}` = {} {}", self.key, self.value, self.reason)
    }
}

fn list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|problem| format!("  - {problem}")).collect();
    lines.join("\n")
}

/// Collects problems; `check` records one when its condition fails.
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn check(&mut self, ok: bool, key: &'static str, value: impl fmt::Display, reason: String) {
        if !ok {
            self.problems.push(Problem { key, value: value.to_string(), reason });
        }
    }

    fn range(&mut self, key: &'static str, value: u64, min: u64, max: u64) {
        let ok = (min..=max).contains(&value);
        self.check(ok, key, value, format!("must be between {min} and {max}"));
    }
}

/// The largest number of shards: one per hash slot.
const MAX_SHARD_COUNT: u64 = 16_384;
/// Bytes a request frame needs beyond its key and value (header, lengths, session).
const REQUEST_OVERHEAD_BYTES: u64 = 64;
/// Levels `log_level` accepts.
const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

impl Config {
    /// Checks ranges and relations between keys; reports every problem found.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let mut checker = Checker { problems: Vec::new() };
        self.validate_addresses(&mut checker);
        self.validate_timing(&mut checker);
        self.validate_sizes(&mut checker);
        self.validate_runtime(&mut checker);
        self.validate_members(&mut checker);
        if checker.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { origin: origin.to_string(), problems: checker.problems })
        }
    }

    fn validate_addresses(&self, checker: &mut Checker) {
        let both = self.neighbor_ip.is_some() == self.neighbor_port.is_some();
        let shown = format!("{:?}/{:?}", self.neighbor_ip, self.neighbor_port);
        let reason = "is half a neighbour: set both `neighbor_ip` and `neighbor_port`, or neither";
        checker.check(both, "neighbor_port", shown, reason.to_string());
        if let Some(port) = self.neighbor_port {
            checker.check(port != 0, "neighbor_port", port, "must name a real port".into());
        }
        let same =
            self.my_port != 0 && self.my_port == self.client_port && self.my_ip == self.client_ip;
        let reason = "is also `my_port`: peers and clients need separate ports".to_string();
        checker.check(!same, "client_port", self.client_port, reason);
        if let Some(resp) = self.resp_addr().filter(|resp| resp.port() != 0) {
            let clash = [self.peer_addr(), self.client_addr()].contains(&resp);
            let reason =
                "is also `my_port` or `client_port`: RESP needs a port of its own".to_string();
            checker.check(!clash, "resp_port", resp.port(), reason);
        }
        for (key, secret) in [
            ("cluster_secret", &self.cluster_secret),
            ("cluster_secret_accepted", &self.cluster_secret_accepted),
        ] {
            if let Some(secret) = secret {
                let reason = "must be at least 16 bytes long to be worth having".to_string();
                checker.check(secret.0.len() >= 16, key, "\"…\"", reason);
            }
        }
        let reason = "is set without `cluster_secret`: it is only accepted beside one, while \
                      the secret rotates"
            .to_string();
        let alone = self.cluster_secret_accepted.is_some() && self.cluster_secret.is_none();
        checker.check(!alone, "cluster_secret_accepted", "\"…\"", reason);
        let reason = "is unset, and this radiant is one of several (bootstrap_expect > 1, a \
                      neighbour or a static order): peers prove it to each other, so without \
                      it anyone who reaches the peer port can take the system over. Give every \
                      radiant the same secret of 16 bytes or more (e.g. `openssl rand -hex 32`), \
                      or set `insecure = true` on a network nobody else can reach"
            .to_string();
        let unguarded = self.expects_peers() && self.cluster_secret.is_none() && !self.insecure;
        checker.check(!unguarded, "cluster_secret", "unset", reason);
        let tls = [&self.tls_cert_file, &self.tls_key_file, &self.tls_ca_file];
        let set = tls.iter().filter(|file| file.is_some()).count();
        let reason = "is set without the other two: TLS needs `tls_cert_file`, `tls_key_file` \
                      and `tls_ca_file` together"
            .to_string();
        for (key, file) in ["tls_cert_file", "tls_key_file", "tls_ca_file"].into_iter().zip(tls) {
            if let Some(path) = file {
                checker.check(set == 3, key, format!("{path:?}"), reason.clone());
            }
        }
        let reason = "and `cluster_secret` are both set: choose one".to_string();
        let both = self.insecure && self.cluster_secret.is_some();
        checker.check(!both, "insecure", true, reason);
        let empty = self.data_dir.as_os_str().is_empty();
        checker.check(!empty, "data_dir", "\"\"", "must name a directory".into());
    }

    fn validate_timing(&self, checker: &mut Checker) {
        checker.range("tick_ms", self.tick_ms, 1, 1_000);
        checker.range("heartbeat_interval", self.heartbeat_interval, 1, 10_000);
        checker.range("election_timeout", self.election_timeout, 2, 100_000);
        let reason = format!(
            "must be at least twice `heartbeat_interval` ({}) so a healthy herald is not deposed",
            self.heartbeat_interval
        );
        let ok = self.election_timeout >= 2 * self.heartbeat_interval;
        checker.check(ok, "election_timeout", self.election_timeout, reason);
        checker.range("bootstrap_backoff", self.bootstrap_backoff, 0, 100_000);
        checker.range("beacon_interval", self.beacon_interval, 1, 100_000);
        checker.range("write_stall_timeout_ms", self.write_stall_timeout_ms, 100, 3_600_000);
        checker.range("client_idle_timeout_ms", self.client_idle_timeout_ms, 100, 86_400_000);
    }

    fn validate_sizes(&self, checker: &mut Checker) {
        use radiant_protocol::limits::{MAX_KEY_BYTES_LIMIT, MAX_VALUE_BYTES_LIMIT};
        checker.range("max_key_bytes", self.max_key_bytes.into(), 1, MAX_KEY_BYTES_LIMIT.into());
        let max_value = MAX_VALUE_BYTES_LIMIT.into();
        checker.range("max_value_bytes", self.max_value_bytes.into(), 1, max_value);
        let needed = u64::from(self.max_key_bytes) + u64::from(self.max_value_bytes);
        let needed = needed + REQUEST_OVERHEAD_BYTES;
        let frame = u64::from(self.max_frame_bytes);
        let reason = format!(
            "must be at least `max_key_bytes` + `max_value_bytes` + {REQUEST_OVERHEAD_BYTES} \
             ({needed}) so the largest allowed put fits in a frame"
        );
        checker.check(frame >= needed, "max_frame_bytes", frame, reason);
        let limit = u64::from(radiant_protocol::limits::MAX_FRAME_BYTES_LIMIT);
        checker.range("max_frame_bytes", frame, 1 << 10, limit);
        let replication = u64::from(self.replication_max_bytes);
        checker.range("replication_max_bytes", replication, 1 << 10, 1 << 30);
        let reason =
            format!("must not exceed `max_frame_bytes` ({frame}): a batch travels in one frame");
        checker.check(replication <= frame, "replication_max_bytes", replication, reason);
        let high_water = self.connection_write_high_water_bytes;
        let reason = format!("must be at least `max_frame_bytes` ({frame}) so one reply fits");
        checker.check(high_water >= frame, "connection_write_high_water_bytes", high_water, reason);
        let cap = self.connection_write_max_bytes;
        let reason = format!("must exceed `connection_write_high_water_bytes` ({high_water})");
        checker.check(cap > high_water, "connection_write_max_bytes", cap, reason);
        let budget = self.max_buffered_bytes;
        let reason = format!(
            "must be at least twice `max_frame_bytes` ({frame}): one largest request read while \
             another's reply is written"
        );
        checker.check(budget >= 2 * frame, "max_buffered_bytes", budget, reason);
        checker.range("wal_segment_max_bytes", self.wal_segment_max_bytes, 1 << 16, 1 << 40);
    }

    fn validate_runtime(&self, checker: &mut Checker) {
        checker.range("bootstrap_expect", self.bootstrap_expect.into(), 1, 1_000);
        checker.range("order_size", self.order_size.into(), 1, 9);
        checker.range("shard_count", self.shard_count.into(), 1, MAX_SHARD_COUNT);
        checker.range("shard_workers", self.shard_workers.into(), 1, 256);
        checker.range("max_connections", self.max_connections.into(), 1, 1_000_000);
        checker.range("max_peer_connections", self.max_peer_connections.into(), 4, 65_536);
        let inflight = self.max_inflight_per_connection.into();
        checker.range("max_inflight_per_connection", inflight, 1, 1_000_000);
        let snapshot = self.snapshot_interval_entries;
        checker.range("snapshot_interval_entries", snapshot, 100, 1 << 40);
        let bytes = self.snapshot_interval_bytes;
        checker.range("snapshot_interval_bytes", bytes, 1 << 20, 1 << 40);
        let level_ok = LOG_LEVELS.contains(&self.log_level.as_str());
        let reason = format!("must be one of {}", LOG_LEVELS.join(", "));
        checker.check(level_ok, "log_level", format!("{:?}", self.log_level), reason);
    }
}

impl Config {
    fn validate_members(&self, checker: &mut Checker) {
        checker.check(self.member_id != 0, "member_id", 0, "must be nonzero".to_string());
        if self.members.is_empty() {
            return;
        }
        let count = self.members.len() as u64;
        checker.range("members", count, 1, 9);
        let mut ids: Vec<u64> = self.members.iter().map(|member| member.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let reason = "must list each member once, with a nonzero id".to_string();
        let unique = ids.len() == self.members.len() && !ids.contains(&0);
        checker.check(unique, "members", format!("{:?}", ids), reason);
        // A radiant whose id is not listed is joining: it waits to be added by
        // `radiant admin add-member`. One that is listed must match its own addresses.
        let me = self.members.iter().find(|member| member.id == self.member_id);
        if let Some(me) = me {
            let reason = format!(
                "must match this radiant's own addresses (`my_ip`:`my_port` = {}, \
                 `client_ip`:`client_port` = {}) in its `members` entry",
                self.peer_addr(),
                self.client_addr()
            );
            let same = me.peer == self.peer_addr() && me.client == self.client_addr();
            checker.check(same, "members", format!("{{ id = {} }}", me.id), reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<Problem> {
        match Config::from_toml_str(toml, "test.toml") {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected invalid values, got {other:?}"),
        }
    }

    #[test]
    fn election_timeout_below_twice_the_heartbeat_is_rejected_with_both_values() {
        let found = problems("election_timeout = 5\nheartbeat_interval = 3\n");
        assert_eq!(found.len(), 1, "{found:?}");
        let message = found[0].to_string();
        assert!(message.starts_with("config key `election_timeout` = 5"), "{message}");
        assert!(message.contains("`heartbeat_interval` (3)"), "{message}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems("tick_ms = 0\nshard_count = 0\nlog_level = \"loud\"\n");
        let keys: Vec<&str> = found.iter().map(|problem| problem.key).collect();
        assert_eq!(keys, ["tick_ms", "shard_count", "log_level"]);
    }

    #[test]
    fn a_listed_member_whose_addresses_differ_from_its_own_is_rejected() {
        let toml = "member_id = 1\n[[members]]\nid = 1\npeer = \"127.0.0.1:9999\"\n\
                    client = \"127.0.0.1:7401\"\n";
        let found = problems(toml);
        assert!(found.iter().any(|problem| problem.key == "members"), "{found:?}");
    }

    #[test]
    fn a_joining_radiant_may_be_missing_from_members() {
        let toml = "member_id = 4\n[[members]]\nid = 1\npeer = \"127.0.0.1:7500\"\n\
                    client = \"127.0.0.1:7501\"\n";
        assert!(Config::from_toml_str(toml, "join.toml").is_ok());
    }

    #[test]
    fn half_a_neighbour_is_rejected() {
        let found = problems("neighbor_ip = \"127.0.0.1\"\n");
        assert_eq!(found[0].key, "neighbor_port");
    }

    #[test]
    fn frame_too_small_for_the_largest_value_is_rejected() {
        let found = problems("max_value_bytes = 1048576\nmax_frame_bytes = 1048576\n");
        assert!(found.iter().any(|problem| problem.key == "max_frame_bytes"), "{found:?}");
    }

    #[test]
    fn the_error_message_lists_each_problem_on_its_own_line() {
        let error = Config::from_toml_str("order_size = 0\n", "cluster.toml").unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("cluster.toml: 1 invalid value(s):"), "{message}");
        assert!(message.contains("config key `order_size` = 0 must be between 1 and 9"));
    }
}
