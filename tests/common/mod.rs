//! Shared helpers for multi-process tests: a `Daemon` guard that runs the real
//! `radiant` binary on 127.0.0.1 with port 0, finds its bound addresses through
//! `DATA_DIR/radiant.addr`, and kills its PID when dropped (also when a test fails).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use radiant::client::{Client, ClientOptions};

pub mod load;
pub mod system;

/// Longest a daemon may take to start and answer a ping.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a clean shutdown may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `radiant` process, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its config file.
    pub config_path: PathBuf,
    /// Its client address.
    pub client_address: SocketAddr,
    /// Its peer address.
    pub peer_address: SocketAddr,
    /// Where its stderr goes.
    pub log_path: PathBuf,
    /// TLS to its client port, when its config names a CA (`tls_ca_file`).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Whether a test that needs something this machine may lack (root, a tool) can run:
/// when `available` is false it says so and skips, unless `.ci/run` set
/// `RADIANT_REQUIRE_PRIVILEGED_TESTS=1`, under which a skip is a failure.
pub fn can_run(available: bool, test: &str, needs: &str) -> bool {
    if !available {
        let required = std::env::var("RADIANT_REQUIRE_PRIVILEGED_TESTS").is_ok_and(|v| v == "1");
        assert!(!required, "{test} needs {needs}, and CI requires it to run");
        eprintln!("{test}: skipped: needs {needs}");
    }
    available
}

/// Whether `tool` is on the PATH.
pub fn tool_available(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A RESP request as redis-cli sends it: an array of bulk strings.
pub fn resp_command(words: &[&str]) -> Vec<u8> {
    let mut bytes = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        bytes.extend_from_slice(format!("${}\r\n{word}\r\n", word.len()).as_bytes());
    }
    bytes
}

/// One RESP request and its whole reply, read until `done` says it is complete.
pub fn resp_ask(port: u16, words: &[&str], done: impl Fn(&str) -> bool) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(&resp_command(words)).expect("send");
    let mut reply = String::new();
    let mut chunk = [0u8; 4096];
    while !done(&reply) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => reply.push_str(&String::from_utf8_lossy(&chunk[..read])),
        }
    }
    reply
}

/// Runs `redis-benchmark ARGS` (killed by PID after `timeout`), fails the test if it
/// failed or reported an error, and returns what it printed.
pub fn redis_benchmark(args: &[&str], timeout: Duration) -> String {
    let output = run_bounded(Command::new("redis-benchmark").args(args), timeout);
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "redis-benchmark {args:?} failed:\n{text}");
    assert!(!text.contains("Error"), "redis-benchmark {args:?} saw errors:\n{text}");
    text
}

/// The Python that can `import module`: the virtual environment `.ci/run` makes
/// (`target/resp-venv`, with redis-py and prometheus-client), or one named by
/// `RADIANT_TEST_PYTHON`; none if it cannot.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let python = std::env::var_os("RADIANT_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/resp-venv/bin/python")
    });
    let works = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    works.then_some(python)
}

/// The value of one sample (`name` or `name{labels}`, exactly as scraped) from the
/// radiant whose `metrics_addr` port is `port`; `None` if it cannot be read.
pub fn metric_value(port: u16, sample: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let line =
        answer.lines().find(|line| line.rsplit_once(' ').is_some_and(|(s, _)| s == sample))?;
    line.rsplit_once(' ')?.1.parse().ok()
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    root
}

/// The cluster secret every test radiant proves to its peers.
pub const CLUSTER_SECRET: &str = "radiant test cluster secret";
/// The admin token of every test radiant; `radiant()` presents it (RADIANT_TOKEN).
pub const ADMIN_TOKEN: &str = "radiant test admin token";

/// The config lines that guard a test radiant: the cluster secret and an admin token
/// file (written beside `data_dir`).
pub fn security_lines(data_dir: &Path) -> String {
    let token_file = data_dir.with_extension("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).expect("write admin token file");
    format!(
        "cluster_secret = {CLUSTER_SECRET:?}\nadmin_token_file = {:?}\n",
        token_file.display().to_string()
    )
}

/// Writes a config for a radiant with its data in `data_dir`, loopback port 0, the test
/// secret and admin token (`security_lines`), plus `extra` TOML lines; returns its path.
pub fn write_config(data_dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(data_dir).expect("create data dir");
    let path = data_dir.with_extension("toml");
    let text = format!(
        "my_ip = \"127.0.0.1\"\nmy_port = 0\nclient_ip = \"127.0.0.1\"\nclient_port = 0\n\
         data_dir = {:?}\nlog_level = \"info\"\n{}{extra}\n",
        data_dir.display().to_string(),
        security_lines(data_dir),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

impl Daemon {
    /// Starts a radiant on `data_dir` (created if missing) with `extra` config lines.
    /// The radiant is a single-node system, so this also waits until it is ready: it
    /// has elected itself herald and adopted configuration 1 (before that it refuses
    /// keyed requests as not ready).
    pub fn start(data_dir: &Path, extra: &str) -> Daemon {
        let config_path = write_config(data_dir, extra);
        let daemon = Daemon::start_with_config(data_dir, &config_path);
        daemon.wait_until_ready();
        daemon
    }

    /// Waits (bounded) until this radiant says it is ready to take keyed requests.
    pub fn wait_until_ready(&self) {
        let waited = self.connect().wait_until_ready(START_TIMEOUT);
        if let Err(error) = waited {
            panic!("not ready within {START_TIMEOUT:?}: {error}; log:\n{}", self.log());
        }
    }

    /// Starts a radiant with an existing config file whose data_dir is `data_dir`.
    pub fn start_with_config(data_dir: &Path, config_path: &Path) -> Daemon {
        Daemon::start_with_environment(data_dir, config_path, &[])
    }

    /// As `start_with_config`, with `environment` variables set for the process (the
    /// test-only fault switches).
    pub fn start_with_environment(
        data_dir: &Path,
        config_path: &Path,
        environment: &[(&str, &str)],
    ) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_radiant"));
        command.envs(environment.iter().copied());
        Daemon::start_command(data_dir, config_path, command)
    }

    /// As `start_with_config`, inside the network namespace `namespace` (`ip netns exec`
    /// execs the radiant, so the child's PID is the radiant's).
    pub fn start_in_namespace(data_dir: &Path, config_path: &Path, namespace: &str) -> Daemon {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace]).arg(env!("CARGO_BIN_EXE_radiant"));
        Daemon::start_command(data_dir, config_path, command)
    }

    /// Runs `command start --config CONFIG` (the command names the radiant binary, or a
    /// wrapper that execs it) and waits until it serves.
    fn start_command(data_dir: &Path, config_path: &Path, mut command: Command) -> Daemon {
        // A stale address file from an earlier run would point at a dead port.
        let _ = std::fs::remove_file(data_dir.join(radiant::server::ADDRESS_FILE));
        let log_path = data_dir.with_extension(format!("log.{}", unique_suffix()));
        let log = std::fs::File::create(&log_path).expect("create log file");
        let child = command
            .arg("start")
            .arg("--config")
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn radiant");
        let config = radiant::config::Config::load(config_path).expect("a valid config");
        let tls = config.tls_ca_file.map(|ca| radiant::tls::client_config(&ca).expect("the CA"));
        let mut daemon = Daemon {
            tls,
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            config_path: config_path.to_path_buf(),
            client_address: "127.0.0.1:1".parse().expect("literal"),
            peer_address: "127.0.0.1:1".parse().expect("literal"),
            log_path,
        };
        daemon.wait_until_serving();
        daemon
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit_status() {
                panic!("radiant exited during start-up with {status}; log:\n{}", self.log());
            }
            if let Some((client, peer)) = radiant::server::read_address_file(&self.data_dir) {
                self.client_address = client;
                self.peer_address = peer;
                if self.client().and_then(|mut client| client.ping().ok()).is_some() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "radiant did not serve within {START_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client connected to this radiant, or `None` if it cannot connect.
    pub fn client(&self) -> Option<Client> {
        let timeout = Duration::from_secs(10);
        let options = ClientOptions { timeout, tls: self.tls.clone(), ..ClientOptions::default() };
        Client::connect(&self.client_address.to_string(), options).ok()
    }

    /// A connected client; panics with the log if it cannot connect.
    pub fn connect(&self) -> Client {
        self.client().unwrap_or_else(|| {
            panic!("cannot connect to {}; log:\n{}", self.client_address, self.log())
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: `pid` is our own child, not yet reaped, so it cannot have been reused.
        #[allow(unsafe_code)]
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill(SIGTERM) failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit_status() {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!("radiant ignored SIGTERM for {STOP_TIMEOUT:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// The exit code once the process has exited (`None` while it runs, or if a signal
    /// ended it).
    pub fn exit_code(&mut self) -> Option<i32> {
        self.try_exit_status().and_then(|status| status.code())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_exit_status().is_none()
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Resident memory of the process in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS:")
    }

    /// The most resident memory the process has had, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }

    /// Virtual memory of the process in KiB (reserved, touched or not), from /proc.
    pub fn virtual_kib(&self) -> u64 {
        self.proc_status_kib("VmSize:")
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A seed for randomised tests: `RADIANT_TEST_SEED` if set, else the clock. Printed so a
/// failure can be rerun with the same choices.
pub fn test_seed(test: &str) -> u64 {
    let seed = std::env::var("RADIANT_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        });
    eprintln!("{test}: seed {seed} (rerun with RADIANT_TEST_SEED={seed})");
    seed
}

/// Runs `command` to completion, killing it (by PID) if it outlives `timeout`.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "{command:?} outlived {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A port that was free a moment ago on 127.0.0.1, for configs that must name
/// addresses before the daemons start (static orders, neighbours).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Why: ports for port 0 and for outgoing connections come from the ephemeral range
    // (32768-60999 on Linux). A port picked there can be taken by some radiant's outgoing
    // peer connection before the radiant meant to listen on it starts, so test ports
    // come from below that range, spread by process id, and are checked free.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = u64::from(std::process::id());
    for _ in 0..2_000 {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let mixed = (process.wrapping_mul(7_919) + step.wrapping_mul(104_729)) % 12_000;
        let port = 20_000 + mixed as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range after 2000 tries");
}

/// Config for radiant `me` = `(id, peer port, client port)` of a static order whose
/// members are `(id, peer, client)`; `me` need not be listed (a joiner).
pub fn order_member_config(
    data_dir: &Path,
    me: (u64, u16, u16),
    members: &[(u64, u16, u16)],
    extra: &str,
) -> PathBuf {
    order_member_config_with_resp(data_dir, me, members, &[], extra)
}

/// As `order_member_config`, where member `members[i]` serves RESP on `resp_ports[i]`
/// (each member's `resp` entry, and `resp_port` for `me`).
pub fn order_member_config_with_resp(
    data_dir: &Path,
    me: (u64, u16, u16),
    members: &[(u64, u16, u16)],
    resp_ports: &[u16],
    extra: &str,
) -> PathBuf {
    std::fs::create_dir_all(data_dir).expect("create data dir");
    let resp_of = |member: u64| {
        let position = members.iter().position(|(id, _, _)| *id == member)?;
        resp_ports.get(position).copied()
    };
    let (id, peer, client) = me;
    let mut text = format!(
        "member_id = {id}\nmy_ip = \"127.0.0.1\"\nmy_port = {peer}\nclient_ip = \"127.0.0.1\"\n\
         client_port = {client}\ndata_dir = {:?}\nlog_level = \"info\"\n{}{extra}\n",
        data_dir.display().to_string(),
        security_lines(data_dir),
    );
    if let Some(resp) = resp_of(id) {
        text.push_str(&format!("resp_port = {resp}\n"));
    }
    for (member, peer, client) in members {
        text.push_str(&format!(
            "\n[[members]]\nid = {member}\npeer = \"127.0.0.1:{peer}\"\n\
             client = \"127.0.0.1:{client}\"\n"
        ));
        if let Some(resp) = resp_of(*member) {
            text.push_str(&format!("resp = \"127.0.0.1:{resp}\"\n"));
        }
    }
    let path = data_dir.with_extension("toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The status document of the radiant at `daemon`.
pub fn status(daemon: &Daemon) -> Option<serde_json::Value> {
    let mut client = daemon.client()?;
    match client.call(radiant_protocol::ClientRequest::Status).ok()? {
        radiant_protocol::ClientResponse::Status { json } => serde_json::from_str(&json).ok(),
        _ => None,
    }
}

/// Runs `radiant ARGS` to completion (killed by PID if it outlives 30 s), presenting the
/// test admin token; returns the exit code, stdout and stderr.
pub fn radiant(args: &[&str]) -> (i32, String, String) {
    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_radiant")).args(args).env("RADIANT_TOKEN", ADMIN_TOKEN),
        Duration::from_secs(30),
    );
    let code = output.status.code().expect("exited normally");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (code, text(&output.stdout), text(&output.stderr))
}
