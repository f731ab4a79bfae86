//! Makes a join that nobody answers loud. The runtime retries its seeds
//! every `join_retry_interval` until one answers, silently; an operator
//! who typed a wrong port would see nothing. The agent checks on the same
//! rhythm whether it knows anybody yet, warns after the first unanswered
//! rounds (again each time the count doubles), and with `--join-timeout`
//! gives up, so that a supervisor sees the failure as an exit status.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use vinery::runtime::Node;

/// Unanswered join rounds before the first warning: one lost datagram or
/// a seed starting a moment later is normal, three in a row is not.
const WARN_AFTER_ROUNDS: u32 = 3;

/// The agent's watch over its join, until some member answers.
pub struct JoinWatch {
    /// The seeds as the operator gave them (`--join`).
    seeds: Vec<String>,
    started: Instant,
    /// Rounds that ended with nobody known.
    unanswered: u32,
    /// The round count of the next warning.
    warn_at: u32,
    warned: bool,
    /// Fires every join round while nobody answered; never afterwards.
    pub rounds: Receiver<Instant>,
    /// Fires at the `--join-timeout`; never without one or once joined.
    pub deadline: Receiver<Instant>,
    timeout: Option<Duration>,
}

impl JoinWatch {
    /// Watches a join through `seeds`, retried every `round`; nothing to
    /// watch without seeds (the first node of a cluster).
    pub fn new(seeds: Vec<String>, round: Duration, timeout: Option<Duration>) -> JoinWatch {
        let watching = !seeds.is_empty();
        JoinWatch {
            seeds,
            started: Instant::now(),
            unanswered: 0,
            warn_at: WARN_AFTER_ROUNDS,
            warned: false,
            rounds: if watching {
                crossbeam_channel::tick(round)
            } else {
                crossbeam_channel::never()
            },
            deadline: match timeout {
                Some(t) if watching => crossbeam_channel::after(t),
                _ => crossbeam_channel::never(),
            },
            timeout,
        }
    }

    /// Ends the watch: some member answered.
    fn joined(&mut self, node: &Node) {
        if self.warned {
            log::info!(
                "{}: joined: a seed answered after {}",
                node.name(),
                self.elapsed()
            );
        }
        self.rounds = crossbeam_channel::never();
        self.deadline = crossbeam_channel::never();
    }

    /// At the end of a join round: done if some member answered, else a
    /// warning when it is time for one.
    pub fn round(&mut self, node: &Node) {
        if knows_anybody(node) {
            return self.joined(node);
        }
        self.unanswered += 1;
        if self.unanswered >= self.warn_at {
            self.warn_at = self.warn_at.saturating_mul(2);
            self.warned = true;
            log::warn!(
                "{}: no seed answered yet: tried {} ({} rounds in {}{})",
                node.name(),
                self.seeds.join(", "),
                self.unanswered,
                self.elapsed(),
                lookup_failures(node)
            );
        }
    }

    /// At the `--join-timeout`: an error (the agent exits with it) unless
    /// some member answered.
    pub fn deadline_passed(&mut self, node: &Node) -> Result<(), String> {
        if knows_anybody(node) {
            self.joined(node);
            return Ok(());
        }
        Err(format!(
            "no seed answered within --join-timeout {}: tried {}{}",
            humantime::format_duration(self.timeout.unwrap_or_default()),
            self.seeds.join(", "),
            lookup_failures(node)
        ))
    }

    fn elapsed(&self) -> String {
        let whole_seconds =
            Duration::from_secs(self.started.elapsed().as_secs_f64().round() as u64);
        humantime::format_duration(whole_seconds).to_string()
    }
}

/// Whether the node knows any member but itself: a seed (or someone it
/// told about us) answered.
fn knows_anybody(node: &Node) -> bool {
    node.all_peers().is_ok_and(|peers| !peers.is_empty())
}

/// `; N name lookups failed` when seed names did not resolve, since a
/// typo in a host name looks the same as a seed that is down.
fn lookup_failures(node: &Node) -> String {
    match node.stats().map(|s| s.runtime.resolve_failures) {
        Ok(n) if n > 0 => format!("; {n} name lookups failed"),
        _ => String::new(),
    }
}
