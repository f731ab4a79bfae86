//! `vinery`: the command-line tool.
//!
//! One subcommand per module: `sim` (the simulator's standard scenarios)
//! lives in `sim_cmd.rs`. Later subcommands (`agent`, `members`, `get`,
//! `set`, …) add a variant to [`Command`] and a module of their own.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod keys_cmd;
mod sim_cmd;

/// Cluster membership and state gossip over raw UDP (SWIM + Lifeguard).
#[derive(Debug, Parser)]
#[command(name = "vinery", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the standard scenarios in the deterministic simulator
    /// (virtual time; the seed is printed so a run can be repeated).
    Sim(sim_cmd::SimArgs),
    /// Print a new random 256-bit encryption key (base64), for `--key`
    /// and keyring files.
    Keygen,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
        Command::Keygen => keys_cmd::keygen(),
    }
}
