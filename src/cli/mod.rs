//! The `radiant` command line: `start` runs the daemon, `check-config` validates a
//! file, `check-history` judges a client history for linearizability, `sim` runs the
//! deterministic simulator, `get`/`put`/`delete`/`cas` talk to a running radiant, and
//! `bench` loads one.
//!
//! Exit status: 0 success; 1 error (message on stderr); 2 a definite negative answer
//! (`get`/`delete` of an absent key, a `cas` whose expected value did not match).
//! `check-history` exits 0 only for a linearizable history: a violation, an undecided
//! search and an unreadable file all exit 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::error_chain;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod backup;
mod bench;
mod recover;
pub mod sim;
mod status;

use crate::client::{Client, ClientOptions};
use crate::config::Config;
use crate::sim::checker::{self, DEFAULT_MAX_STEPS_PER_KEY};
use crate::sim::history;

/// Exit status for a definite negative answer.
const EXIT_NEGATIVE: u8 = 2;

/// Radiant: a sharded, replicated, strongly consistent key-value store.
#[derive(Debug, Parser)]
#[command(name = "radiant", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Debug, clap::Args)]
struct Target {
    /// Client address of a radiant, or several separated by commas: the first that
    /// answers is used, the others are fallen back on if it goes away.
    #[arg(long, default_value = "127.0.0.1:7401")]
    addr: String,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// A file holding the token to present: the client token, or the admin token for
    /// admin commands [default: the RADIANT_TOKEN environment variable, if set].
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Speak TLS 1.3 to the radiant, trusting the CA certificate (PEM) in this file.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

/// A TLS configuration trusting the CA in `ca_file`, if one is given.
fn tls(
    ca_file: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
    ca_file.map(crate::tls::client_config).transpose().map_err(|error| error.to_string())
}

/// The token to present: the contents of `token_file` (surrounding whitespace is not
/// part of it), else `RADIANT_TOKEN`, else none.
fn token(token_file: Option<&std::path::Path>) -> Result<Option<bytes::Bytes>, String> {
    let text = match token_file {
        Some(path) => std::fs::read(path)
            .map_err(|error| format!("cannot read --token-file {}: {error}", path.display()))?,
        None => match std::env::var_os("RADIANT_TOKEN") {
            Some(value) => value.into_encoded_bytes(),
            None => return Ok(None),
        },
    };
    let token = text.trim_ascii();
    if token.is_empty() {
        return Err("the token (--token-file or RADIANT_TOKEN) is empty".to_string());
    }
    Ok(Some(bytes::Bytes::copy_from_slice(token)))
}

#[derive(Debug, clap::Args)]
struct CheckHistoryArgs {
    /// The history file.
    file: PathBuf,
    /// Search steps allowed per key before giving up as undecided.
    #[arg(long, default_value_t = DEFAULT_MAX_STEPS_PER_KEY)]
    max_steps_per_key: u64,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Admit a running, unassociated radiant into the system; the controller gives it
    /// an id and an order. Returns once the configuration listing it is committed.
    Add {
        /// The radiant's peer address (IP:PORT).
        #[arg(long)]
        peer: std::net::SocketAddr,
        /// The radiant's client address (IP:PORT).
        #[arg(long)]
        client: std::net::SocketAddr,
        /// The radiant's RESP address (IP:PORT), if it serves Redis clients (its
        /// `resp_port`), so that `CLUSTER SLOTS` and `MOVED` can name it.
        #[arg(long)]
        resp: Option<std::net::SocketAddr>,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a radiant from the system; its order drops it. Returns once the
    /// configuration without it is committed.
    Remove {
        /// Its member id (see `radiant status`).
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Move one shard to another order. Waits (retrying until --timeout) while earlier
    /// moves finish; returns once the configuration is committed. The data follows:
    /// `radiant status` lists the move until the new order serves the shard.
    Move {
        /// The shard number (see `radiant shards`).
        shard: u32,
        /// The order to serve it (its order id).
        order: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Dissolve an order: its shards move to the other orders, then it and its radiants
    /// leave the system. Returns once the move has started; `radiant status` shows it.
    Leave {
        /// The order's order id.
        order: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Static orders (`members` config key): add a radiant to the order; it catches up
    /// as a learner, then is promoted.
    AddMember {
        /// Its member id.
        id: u64,
        /// Its peer address (IP:PORT).
        peer: std::net::SocketAddr,
        /// Its client address (IP:PORT).
        client: std::net::SocketAddr,
        #[command(flatten)]
        target: Target,
    },
    /// Static orders: remove a radiant from the order.
    RemoveMember {
        /// Its member id.
        id: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Majority-loss recovery: make a surviving member the sole member of an order that
    /// has lost a majority of its radiants for good, keeping the survivor's data, and
    /// drop the lost members from the configuration. Writes the lost majority committed
    /// after the survivor's last entry are lost, and the lost radiants must never be
    /// started again with their data. Refused while the order has a herald or a majority
    /// of it is heard from. See docs/operations.md "Recovering an order that lost its
    /// majority".
    RecoverOrder {
        /// The order's order id.
        #[arg(long)]
        order: u64,
        /// The surviving member to keep (pick the one with the highest last index in
        /// `radiant status`).
        #[arg(long)]
        from: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Hand the herald role to another member (before a planned restart).
    TransferHerald {
        /// The member to hand over to (default: the most caught-up one).
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a radiant's view of itself and its order.
    Status {
        /// Print the JSON document instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Show which order serves which shards and hash-slot ranges.
    Shards {
        #[command(flatten)]
        target: Target,
    },
    /// Show a committed configuration: its orders, their members and shard counts, the
    /// leaving orders, spares and radiants (`Query` of the shard-controller design).
    Configuration {
        /// Its number (default: the newest the radiant knows).
        number: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Change the order's membership or hand over the herald role.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Run a radiant (without --config: a single-node system on 127.0.0.1).
    Start {
        /// TOML configuration file (see config/ for examples).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Copy every shard of a running system into a new directory, without stopping
    /// writes: each shard as of one committed index of its order, with a manifest
    /// (configuration, per-shard index, checksums). See docs/operations.md "Backups".
    Backup {
        /// The directory to create (it must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Bytes of keys and values to ask for per page (the radiant caps a page at
        /// 4 MiB; a page holds at least one pair).
        #[arg(long, default_value_t = backup::DEFAULT_PAGE_BYTES)]
        page_bytes: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Seed a brand-new system (or a single node), which must hold no key, with exactly
    /// the data of a backup; every file is checked first and the result after.
    Restore {
        /// The backup directory (written by `radiant backup`).
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Validate configuration files and print every problem found; given every config of
    /// one system, also check that their neighbours link all its radiants together.
    CheckConfig {
        /// The file to check, or every radiant's file of one system.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
    /// Check a JSON-lines client history for linearizability (the format: "History
    /// files" in docs/operations.md; `radiant bench --history` and `radiant sim
    /// --history` write it).
    CheckHistory(CheckHistoryArgs),
    /// Print the value of KEY.
    Get {
        /// The key.
        key: String,
        /// Read at the radiant named by --addr itself, linearizably, even if it is a
        /// follower (a follower read: it asks its herald for a read index first).
        #[arg(long)]
        follower: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Store VALUE under KEY (durable when this returns).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete KEY.
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Run the deterministic simulator (one seed, or a sweep with --seeds).
    Sim(sim::SimArgs),
    /// Compare-and-set: replace KEY's value if it currently equals --expected.
    Cas {
        /// The key.
        key: String,
        /// The value KEY must hold; omit to require that KEY is absent.
        #[arg(long)]
        expected: Option<String>,
        /// The value to store on a match; omit to delete KEY on a match.
        #[arg(long)]
        new: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Load a running radiant with puts and gets and report rates and latencies.
    Bench(bench::BenchArgs),
}

/// Parses the arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("radiant: {message}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Start { config } => start(config),
        Command::Sim(args) => sim::run(&args),
        Command::Status { json, target } => status(json, &target),
        Command::Shards { target } => shards(&target),
        Command::Configuration { number, target } => configuration(number.unwrap_or(0), &target),
        Command::Admin(command) => admin(command),
        Command::Backup { out, page_bytes, target } => {
            backup::run_backup(&mut connect(&target)?, &out, page_bytes)
        }
        Command::Restore { dir, target } => backup::run_restore(&mut connect(&target)?, &dir),
        Command::Bench(args) => bench::run(&args),
        Command::CheckConfig { files } => match files.as_slice() {
            [file] => {
                let config = Config::load(file).map_err(|error| error_chain(&error))?;
                println!(
                    "{}: ok (clients on {}, peers on {}, data in {})",
                    file.display(),
                    config.client_addr(),
                    config.peer_addr(),
                    config.data_dir.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            files => check_system_configs(files),
        },
        Command::CheckHistory(arguments) => check_history(&arguments),
        Command::Get { key, follower, target } => get(&key, follower, &target),
        Command::Put { key, value, target } => {
            connect(&target)?
                .put(key.as_bytes(), value.as_bytes())
                .map_err(|error| error_chain(&error))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete { key, target } => {
            let existed =
                connect(&target)?.delete(key.as_bytes()).map_err(|error| error_chain(&error))?;
            if existed {
                Ok(ExitCode::SUCCESS)
            } else {
                negative(&format!("key `{key}` not found"))
            }
        }
        Command::Cas { key, expected, new, target } => {
            let outcome = connect(&target)?
                .cas(
                    key.as_bytes(),
                    expected.as_deref().map(str::as_bytes),
                    new.as_deref().map(str::as_bytes),
                )
                .map_err(|error| error_chain(&error))?;
            if outcome.succeeded {
                return Ok(ExitCode::SUCCESS);
            }
            let current = match &outcome.current {
                Some(value) => format!("holds `{}`", String::from_utf8_lossy(value)),
                None => "is absent".to_string(),
            };
            negative(&format!("cas on `{key}` did not match: the key {current}"))
        }
    }
}

/// Validates every config of one system, then checks their association graph. Invalid
/// files are reported on stderr and stop the check (the graph of broken configs would
/// only repeat their problems); the graph report goes to stdout, and any problem exits 1.
fn check_system_configs(files: &[PathBuf]) -> Result<ExitCode, String> {
    let mut configs = Vec::with_capacity(files.len());
    let mut invalid = 0;
    for file in files {
        match Config::load(file) {
            Ok(config) => configs.push((file.display().to_string(), config)),
            Err(error) => {
                eprintln!("radiant: {}", error_chain(&error));
                invalid += 1;
            }
        }
    }
    if invalid > 0 {
        let total = files.len();
        eprintln!("radiant: {invalid} of {total} config files invalid; graph not checked");
        return Ok(ExitCode::FAILURE);
    }
    let report = crate::config::graph::check(&configs);
    for (origin, config) in &configs {
        let neighbour = config.neighbor_addr().map_or("(none)".to_string(), |at| at.to_string());
        println!("{origin}: peer {} -> neighbour {neighbour}", config.peer_addr());
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    if report.is_ok() {
        println!("association graph: ok ({} radiants, weakly connected)", report.radiants);
        return Ok(ExitCode::SUCCESS);
    }
    println!("association graph: {} problem(s):", report.problems.len());
    for problem in &report.problems {
        println!("  - {problem}");
    }
    Ok(ExitCode::FAILURE)
}

/// Prints the verdict on stdout; only a linearizable history exits 0.
fn check_history(arguments: &CheckHistoryArgs) -> Result<ExitCode, String> {
    let path = &arguments.file;
    let cannot_read = |error: &dyn std::error::Error| {
        format!("cannot read history {}: {}", path.display(), error_chain(error))
    };
    let file = std::fs::File::open(path).map_err(|error| cannot_read(&error))?;
    let operations =
        history::read_jsonl(std::io::BufReader::new(file)).map_err(|error| cannot_read(&error))?;
    let verdict = checker::check(&operations, arguments.max_steps_per_key);
    println!("{}: {verdict}", path.display());
    if verdict.is_linearizable() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

fn status(json: bool, target: &Target) -> Result<ExitCode, String> {
    let document = connect(target)?.status().map_err(|error| error_chain(&error))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&document).map_err(|error| format!("unreadable status: {error}"))?;
    merge_controller_view(&mut value, target);
    if json {
        println!("{value}");
    } else {
        print!("{}", status::render(&value));
    }
    Ok(ExitCode::SUCCESS)
}

/// Only the controller hears every order's herald: when the radiant asked is not the
/// controller, its orders' states and radiants' liveness are replaced by the controller's
/// (`system.seen_by` names it) and the summary is made again. If the controller cannot
/// be asked, the radiant's own view stays, and says so.
fn merge_controller_view(value: &mut serde_json::Value, target: &Target) {
    let system = &value["system"];
    if system["is_controller"] == true || !system["controller"].is_object() {
        return;
    }
    let controller_peer = &system["controller"]["address"];
    let radiants = system["radiants"].as_array().into_iter().flatten();
    let Some(client) = radiants
        .filter(|radiant| radiant["peer"] == *controller_peer)
        .find_map(|radiant| radiant["client"].as_str().map(str::to_string))
    else {
        return;
    };
    let asked = Target { addr: client, ..target.clone() };
    let controller_document = connect(&asked)
        .and_then(|mut client| client.status_document().map_err(|error| error_chain(&error)));
    let seen_by = match controller_document {
        Ok(controller) if controller["system"]["is_controller"] == true => {
            for field in ["orders", "radiants", "down_after_ms"] {
                value["system"][field] = controller["system"][field].clone();
            }
            controller["member"].clone()
        }
        _ => serde_json::Value::String("this radiant (the controller did not answer)".into()),
    };
    value["system"]["seen_by"] = seen_by;
    value["summary"] = serde_json::Value::String(crate::server::status::summary(value));
}

fn shards(target: &Target) -> Result<ExitCode, String> {
    let document = connect(target)?.status().map_err(|error| error_chain(&error))?;
    let value: serde_json::Value =
        serde_json::from_str(&document).map_err(|error| format!("unreadable status: {error}"))?;
    match crate::client::ShardRoutes::from_status(&value) {
        Some(map) => print!("{}", status::render_shards(&map)),
        None => println!(
            "this radiant has no shard map (a static order, or a system still forming): its \
             order serves every key"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn configuration(number: u64, target: &Target) -> Result<ExitCode, String> {
    let found = connect(target)?.query_configuration(number).map_err(|e| error_chain(&e))?;
    print!("{}", status::render_configuration(&found));
    Ok(ExitCode::SUCCESS)
}

fn admin(command: AdminCommand) -> Result<ExitCode, String> {
    use radiant_protocol::{ClientRequest, MemberId, OrderId};
    let member = |id: u64| MemberId::new(id).ok_or_else(|| "member ids are nonzero".to_string());
    let order_id = |id: u64| OrderId::new(id).ok_or_else(|| "order ids are nonzero".to_string());
    let (request, target) = match command {
        AdminCommand::AddMember { id, peer, client, target } => {
            let address = crate::core::order::membership::member_address(
                &peer.to_string(),
                &client.to_string(),
            );
            (ClientRequest::AddMember { member: member(id)?, address }, target)
        }
        AdminCommand::Add { peer, client, resp, target } => {
            let (peer, client) = (peer.to_string(), client.to_string());
            let resp = resp.map(|resp| resp.to_string()).unwrap_or_default();
            (ClientRequest::AddRadiant { peer, client, resp }, target)
        }
        AdminCommand::Remove { id, target } => {
            (ClientRequest::RemoveRadiant { member: member(id)? }, target)
        }
        AdminCommand::Move { shard, order, target } => {
            (ClientRequest::MoveShard { shard, to: order_id(order)? }, target)
        }
        AdminCommand::Leave { order, target } => {
            (ClientRequest::LeaveOrder { order_id: order_id(order)? }, target)
        }
        AdminCommand::RemoveMember { id, target } => {
            (ClientRequest::RemoveMember { member: member(id)? }, target)
        }
        AdminCommand::TransferHerald { to, target } => {
            let to = to.map(member).transpose()?;
            (ClientRequest::TransferHerald { to }, target)
        }
        AdminCommand::RecoverOrder { order, from, target } => {
            return recover::recover_order(order_id(order)?, member(from)?, &target);
        }
    };
    connect(&target)?.admin(request).map_err(|error| error_chain(&error))?;
    Ok(ExitCode::SUCCESS)
}

fn negative(message: &str) -> Result<ExitCode, String> {
    eprintln!("radiant: {message}");
    Ok(ExitCode::from(EXIT_NEGATIVE))
}

fn connect(target: &Target) -> Result<Client, String> {
    let timeout = Duration::try_from_secs_f64(target.timeout)
        .map_err(|_| format!("--timeout {} is not a usable number of seconds", target.timeout))?;
    let token = token(target.token_file.as_deref())?;
    let tls = tls(target.tls_ca.as_deref())?;
    let options = ClientOptions { timeout, token, tls, ..ClientOptions::default() };
    let addresses: Vec<&str> = target.addr.split(',').map(str::trim).collect();
    Client::connect_any(&addresses, options).map_err(|error| error_chain(&error))
}

/// `radiant get`: prints the value, or says the key is absent (exit 1).
fn get(key: &str, follower: bool, target: &Target) -> Result<ExitCode, String> {
    let consistency = if follower {
        radiant_protocol::ReadConsistency::Follower
    } else {
        radiant_protocol::ReadConsistency::Linearizable
    };
    let value = connect(target)?
        .get_with(key.as_bytes(), consistency)
        .map_err(|error| error_chain(&error))?;
    match value {
        Some(value) => {
            let mut stdout = std::io::stdout().lock();
            let written = stdout.write_all(&value).and_then(|()| stdout.write_all(b"\n"));
            written.map_err(|error| format!("cannot write to stdout: {error}"))?;
            Ok(ExitCode::SUCCESS)
        }
        None => negative(&format!("key `{key}` not found")),
    }
}

fn start(path: Option<PathBuf>) -> Result<ExitCode, String> {
    let config = match &path {
        Some(path) => Config::load(path).map_err(|error| error_chain(&error))?,
        None => Config::embedded_default(),
    };
    init_logging(&config.log_level);
    match &path {
        Some(path) => tracing::info!(config = %path.display(), "radiant: starting"),
        None => {
            tracing::info!("radiant: starting a single-node system on the embedded default config")
        }
    }
    crate::server::install_panic_hook();
    if let Err(error) = crate::server::run(config) {
        eprintln!("radiant: {}", error_chain(&error));
        return Ok(ExitCode::from(error.exit_status()));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn init_logging(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colour only for a person at a terminal; journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    let _ = subscriber.with_writer(std::io::stderr).try_init();
}
