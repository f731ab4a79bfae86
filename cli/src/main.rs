//! `vinery`: the command-line tool.
//!
//! One subcommand per module: `sim` (the simulator's standard scenarios)
//! lives in `sim_cmd.rs`, `agent` (a node with a control socket) in
//! `agent.rs`, `keygen` in `keys_cmd.rs`; the client commands talking to a
//! running agent (`members`, `stats`, `leave`, `join`, `info`, `get`,
//! `set`, `delete`, `kv`, `keys`, `event`, `query`, `election`, `vote`, `force-leave`, `tags`, `monitor`)
//! share `client.rs`,
//! and the control socket's protocol is `control.rs`, its serving in the
//! agent `control_server.rs`. The agent's output lines are
//! `event_lines.rs`, its query answering `answer.rs`, its watch over a
//! join nobody answers `join_watch.rs`, its log lines `logger.rs`, its metrics server `metrics.rs`, its
//! keys' sources `keyfile.rs`, its configuration errors `config_flags.rs`.
//! A new client command adds a variant to [`Command`], a
//! [`control::Request`], its handling in the agent and a renderer.
//!
//! Naming: `vinery keys` manages the encryption keyring (as serf's `keys`
//! command does), so listing key/value state is `vinery kv`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent;
mod answer;
mod client;
mod cluster_keys;
mod config_flags;
mod control;
mod control_server;
mod event_lines;
mod join_watch;
mod keyfile;
mod keys_cmd;
mod logger;
mod metrics;
mod plot;
mod requests;
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
    Agent(Box<agent::AgentArgs>),
    /// List the members a running agent knows (all, or by state, name
    /// and tags).
    Members(client::MembersArgs),
    /// Print a running agent's counters.
    Stats(client::ClientArgs),
    /// Make a running agent leave the cluster gracefully and exit.
    Leave(client::ClientArgs),
    /// Make a running agent join (also) through these members.
    Join(client::JoinArgs),
    /// Print what a running agent is: name, version, addresses, keyring
    /// fingerprints, peers by state and counters.
    Info(client::ClientArgs),
    /// Print a key of the agent (or of another node, as the agent sees it).
    Get(client::GetArgs),
    /// Set one of the agent's keys; it spreads to every node.
    Set(client::SetArgs),
    /// Delete one of the agent's keys everywhere.
    Delete(client::DeleteArgs),
    /// List every node's keys as the agent sees them.
    Kv(client::KvArgs),
    /// Manage the agent's encryption keyring (install, use, remove, list)
    /// and its plaintext migration switches.
    Keys(client::KeysArgs),
    /// Say a user event to every other node through the agent; prints its
    /// id. The other agents print it as a user_event line.
    Event(client::EventArgs),
    /// Ask the matching nodes through the agent; prints acks and
    /// responses as they arrive, and returns once every expected node has
    /// answered or at the timeout.
    Query(client::QueryArgs),
    /// Create an election on a topic; the agent prints quorum when enough
    /// yes votes arrive in time, else election_expired.
    Election(client::ElectionArgs),
    /// Vote yes or no on the live election on a topic.
    Vote(client::VoteArgs),
    /// Mark a failed member as left on every node, so that it is no
    /// longer listed as failed (refused for a member alive).
    ForceLeave(client::ForceLeaveArgs),
    /// List or change a running agent's tags live (--set K=V, --delete K);
    /// every member sees them.
    Tags(client::TagsArgs),
    /// Print a running agent's events as it prints them, as they happen,
    /// until interrupted.
    Monitor(client::MonitorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
        Command::Keygen => keys_cmd::keygen(),
        Command::Agent(args) => agent::run(*args),
        Command::Members(args) => client::members(args),
        Command::Stats(args) => client::run(args, control::Request::Stats, client::stats_lines),
        Command::Leave(args) => client::run(args, control::Request::Leave, client::left),
        Command::Join(args) => client::join(args),
        Command::Info(args) => client::run(args, control::Request::Info, client::info_lines),
        Command::Get(args) => client::get(args),
        Command::Set(args) => client::set(args),
        Command::Delete(args) => client::delete(args),
        Command::Kv(args) => client::kv(args),
        Command::Keys(args) => client::keys(args),
        Command::Event(args) => client::event(args),
        Command::Query(args) => client::query(args),
        Command::Election(args) => client::election(args),
        Command::Vote(args) => client::vote(args),
        Command::ForceLeave(args) => client::force_leave(args),
        Command::Tags(args) => client::tags(args),
        Command::Monitor(args) => client::monitor(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_positional_name_and_the_name_flag_go_together() {
        for args in [
            &["vinery", "event", "deploy.web", "v2", "--name", "a"][..],
            &[
                "vinery", "query", "ping", "hello", "--name", "c", "--no-ack",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let debug = format!("{cli:?}");
            assert!(
                debug.contains(&format!("name: Some({:?})", args[5])),
                "{debug}"
            );
        }
    }

    #[test]
    fn a_bad_value_is_refused_naming_its_flag() {
        let err = Cli::try_parse_from(["vinery", "agent", "--leave-timeout", "5x"]).unwrap_err();
        assert!(err.to_string().contains("--leave-timeout"), "{err}");
        let ok = Cli::try_parse_from(["vinery", "agent", "--leave-timeout", "5s"]);
        assert!(ok.is_ok(), "{ok:?}");
        let err = Cli::try_parse_from(["vinery", "members", "--status", "gone"]).unwrap_err();
        assert!(err.to_string().contains("--status"), "{err}");
    }
}
