//! The `radiant` binary: every subcommand lives in `radiant::cli`.

fn main() -> std::process::ExitCode {
    radiant::cli::run()
}
