//! `radiant sim`: runs the deterministic simulator for one seed or a sweep of seeds,
//! prints what each run did, and on a failure the command that replays it exactly.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::sim::formation::{self, FormationOptions, FormationReport};
use crate::sim::history::{write_jsonl, Operation};
use crate::sim::order::{SimFailure, SimOptions, Simulator};

/// Arguments of `radiant sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// The seed (the first seed of a sweep).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many consecutive seeds to run.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Radiants in the order (3 or 5 are typical).
    #[arg(long, default_value_t = 3)]
    radiants: usize,
    /// Ticks of the faulty safety phase.
    #[arg(long, default_value_t = 3_000)]
    ticks: u64,
    /// Write the client history of the (single) run as JSON lines to this file (order and
    /// sharded runs), for `radiant check-history` or any outside checker.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Concurrent clients (instead of the seed's choice; order and sharded runs).
    #[arg(long)]
    clients: Option<usize>,
    /// Client operations in all, shared among the clients (instead of the seed's choice);
    /// the run grows long enough for them.
    #[arg(long)]
    ops: Option<u64>,
    /// Simulate system formation instead (brand-new radiants with one neighbour each,
    /// joins, crashes, partitions); `--radiants` and `--ticks` do not apply, and with no
    /// clients neither do `--clients`, `--ops` and `--history`.
    #[arg(long)]
    formation: bool,
    /// Simulate a sharded system: formation plus clients over shared keys and an
    /// operator moving shards and dissolving orders; the history must be linearizable.
    #[arg(long, conflicts_with = "formation")]
    sharded: bool,
    /// With --sharded: the operator also removes random radiants.
    #[arg(long, requires = "sharded")]
    remove_radiants: bool,
    /// Log the cores' decisions (RUST_LOG filters) to stderr; use with one seed.
    #[arg(long)]
    trace: bool,
}

/// Runs the simulation(s).
pub fn run(args: &SimArgs) -> Result<ExitCode, String> {
    if args.history.is_some() && args.seeds != 1 {
        return Err("--history writes one run's history: use it with --seeds 1".to_string());
    }
    if args.trace {
        super::init_logging("info");
    }
    if args.formation || args.sharded {
        return run_formation(args);
    }
    let mut failures = 0u64;
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let options = SimOptions::swarm(seed, args.radiants, args.ticks)
            .with_workload(args.clients, args.ops);
        let reproduce = options.reproduce_command() + &args.workload_flags();
        match run_one(options) {
            Ok((report, history)) => {
                println!(
                    "seed {seed}: ok: {} ticks, {} ops ({} completed), {} heralds, {} crashes, \
                     {} refused a damaged disk, commit {}, {} snapshots installed, {} \
                     membership changes, messages {}/{} delivered/dropped",
                    report.ticks,
                    report.operations,
                    report.completed,
                    report.heralds,
                    report.crashes,
                    report.refusals,
                    report.committed,
                    report.snapshots_installed,
                    report.membership_changes,
                    report.messages.0,
                    report.messages.1
                );
                if let Some(path) = &args.history {
                    write_history(path, &history)?;
                }
            }
            Err(failure) => {
                failures += 1;
                println!("seed {seed}: FAILED: {failure}\n  reproduce with: {reproduce}");
            }
        }
    }
    if args.seeds > 1 {
        println!("{} seeds, {failures} failed", args.seeds);
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

impl SimArgs {
    /// `--clients` and `--ops` as given, for a command that replays a run.
    fn workload_flags(&self) -> String {
        let clients = self.clients.map(|clients| format!(" --clients {clients}"));
        let ops = self.ops.map(|ops| format!(" --ops {ops}"));
        clients.unwrap_or_default() + &ops.unwrap_or_default()
    }
}

/// Writes a client history as JSON lines.
fn write_history(path: &std::path::Path, history: &[Operation]) -> Result<(), String> {
    let mut file = std::fs::File::create(path)
        .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
    write_jsonl(history, &mut file)
        .and_then(|()| file.flush())
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// Runs one simulation; a panic inside it is reported as a failure of that seed.
pub fn run_one(
    options: SimOptions,
) -> Result<(crate::sim::order::SimReport, Vec<crate::sim::history::Operation>), SimFailure> {
    let seed = options.seed;
    match std::panic::catch_unwind(|| Simulator::new(options).run()) {
        Ok(result) => result,
        Err(panic) => {
            let message = crate::sim::panic_message(panic.as_ref());
            Err(SimFailure::Invariant {
                seed,
                tick: 0,
                message: format!("simulator panicked: {message}"),
            })
        }
    }
}

/// `radiant sim --formation`: formation runs over a sweep of seeds.
fn run_formation(args: &SimArgs) -> Result<ExitCode, String> {
    let mut failures = 0u64;
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let options = match (args.sharded, args.remove_radiants) {
            (true, true) => FormationOptions::sharded_with_removals(seed),
            (true, false) => FormationOptions::sharded(seed),
            (false, _) => FormationOptions::swarm(seed),
        }
        .with_workload(args.clients, args.ops);
        let reproduce = options.reproduce_command() + &args.workload_flags();
        let shape = format!(
            "{} founders + {} joiners, {:?}",
            options.founders, options.joiners, options.topology
        );
        match run_formation_one(options) {
            Ok(report) => {
                if let Some(path) = &args.history {
                    write_history(path, &report.history)?;
                }
                println!(
                "seed {seed}: ok: {shape}: configuration {}, orders {:?}, {} controller terms, \
                 {} crashes, {} refused a damaged disk, {} partitions, converged at tick {}, \
                 messages {}/{} \
                 delivered/dropped, {}/{} operations answered, operator \
                 moves/leaves/removals {:?}, snapshots written/installed {:?}",
                report.configuration,
                report.orders,
                report.controller_terms,
                report.crashes,
                report.refusals,
                report.partitions,
                report.converged_at,
                report.messages.0,
                report.messages.1,
                report.operations.0,
                report.operations.1,
                report.operator,
                report.snapshots,
            )
            }
            Err(failure) => {
                failures += 1;
                println!("seed {seed}: FAILED: {shape}: {failure}\n  reproduce with: {reproduce}");
            }
        }
    }
    if args.seeds > 1 {
        let kind = if args.sharded { "sharded" } else { "formation" };
        println!("{} {kind} seeds, {failures} failed", args.seeds);
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs one formation simulation; a panic inside it is a failure of that seed.
pub fn run_formation_one(options: FormationOptions) -> Result<FormationReport, String> {
    match std::panic::catch_unwind(|| formation::run(options)) {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "formation simulator panicked: {}",
            crate::sim::panic_message(panic.as_ref())
        )),
    }
}
