//! `vinery`: the command-line tool.
//!
//! One subcommand per module: `sim` (the simulator's standard scenarios)
//! lives in `sim_cmd.rs`, `agent` (a node with a control socket) in
//! `agent.rs`; the client commands talking to a running agent (`members`,
//! `stats`, `leave`) share `client.rs`, and the control socket's protocol is
//! `control.rs`. Later subcommands (`get`, `set`, …) add a variant to
//! [`Command`], a [`control::Request`] and a renderer.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent;
mod client;
mod control;
mod keys_cmd;
mod logger;
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
    /// Run a cluster member over UDP, print its events, and leave
    /// gracefully on SIGINT or SIGTERM.
    Agent(agent::AgentArgs),
    /// List the members a running agent knows.
    Members(client::ClientArgs),
    /// Print a running agent's counters.
    Stats(client::ClientArgs),
    /// Make a running agent leave the cluster gracefully and exit.
    Leave(client::ClientArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
        Command::Keygen => keys_cmd::keygen(),
        Command::Agent(args) => agent::run(args),
        Command::Members(args) => {
            client::run(args, control::Request::Members, client::members_table)
        }
        Command::Stats(args) => client::run(args, control::Request::Stats, client::stats_lines),
        Command::Leave(args) => client::run(args, control::Request::Leave, client::left),
    }
}
