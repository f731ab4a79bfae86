//! The classic demo, over loopback UDP in one process: a seed and 20 peers
//! joined through it (each a standalone node on its own thread, LAN
//! timers); a few seconds later a 21st peer joins and sets a key and
//! another with a 10 s TTL, which every node prints as it learns them and
//! again when the TTL runs out; then one peer is stopped without leaving
//! (a crash, to the others), and every other node reports it failed.
//!
//! `cargo run --release --example cluster` (about 30 s; exits 0 once
//! every node saw everything, 1 if a phase takes over a minute).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use vinery::runtime::{EventFilter, Node, NodeConfig};
use vinery::{Config, Event, EventKind, MemberState};

const PEERS: usize = 20;
const PHASE_LIMIT: Duration = Duration::from_secs(60);

/// A started node named `name`, joining through `seed` if given.
fn node(name: &str, seed: Option<&Node>) -> Node {
    let seeds = seed.map(|s| s.local_addr().expect("running").to_string());
    let config = NodeConfig::loopback(Config::lan().with_name(name)).with_seeds(seeds);
    let node = Node::new(config);
    node.start().expect("start");
    node
}

/// Forwards `node`'s key events and failures, tagged with its name, to
/// the main thread, which prints and tracks them.
fn watch(node: &Node, to: &Sender<(String, Event)>) {
    let events = node.subscribe_filtered(EventFilter::kinds([
        EventKind::KeyUpdated,
        EventKind::KeyExpired,
        EventKind::MemberFailed,
    ]));
    let (name, to) = (node.name().to_string(), to.clone());
    std::thread::spawn(move || {
        for e in events {
            if to.send((name.clone(), e)).is_err() {
                return;
            }
        }
    });
}

/// What the main thread has seen: `(observer, what)` pairs.
struct Seen {
    rx: Receiver<(String, Event)>,
    got: BTreeSet<(String, String)>,
    started: Instant,
}

impl Seen {
    /// Prints events until every observer in `who` has seen `what`;
    /// false if that takes longer than [`PHASE_LIMIT`].
    fn until(&mut self, who: &[String], what: &str) -> bool {
        let end = Instant::now() + PHASE_LIMIT;
        loop {
            let missing: Vec<&String> = who
                .iter()
                .filter(|w| !self.got.contains(&((*w).clone(), what.to_string())))
                .collect();
            if missing.is_empty() {
                return true;
            }
            let Ok((observer, e)) = self.rx.recv_deadline(end) else {
                eprintln!("timed out: {missing:?} did not see {what}");
                return false;
            };
            let line = match &e {
                Event::KeyUpdated {
                    node,
                    key,
                    value,
                    version,
                } => format!(
                    "{} {key}={} (v{version})",
                    node,
                    String::from_utf8_lossy(value)
                ),
                other => format!("{} {}", other.node(), other.key().unwrap_or_default()),
            };
            println!(
                "{:6.2}s  {observer:<8} {:<13} {line}",
                self.started.elapsed().as_secs_f64(),
                e.kind()
            );
            let what = format!("{} {}", e.kind(), e.key().unwrap_or(e.node()));
            self.got.insert((observer, what));
        }
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut seen = Seen {
        rx,
        got: BTreeSet::new(),
        started,
    };
    let seed = node("seed", None);
    watch(&seed, &tx);
    let mut peers: Vec<Node> = (1..=PEERS)
        .map(|i| node(&format!("peer-{i:02}"), Some(&seed)))
        .collect();
    peers.iter().for_each(|p| watch(p, &tx));
    let everyone = |seed: &Node, peers: &[Node]| -> bool {
        std::iter::once(seed).chain(peers).all(|n| {
            n.live_peers().is_ok_and(|l| {
                l.len() == peers.len() && l.iter().all(|m| m.state == MemberState::Alive)
            })
        })
    };
    while !everyone(&seed, &peers) {
        if started.elapsed() > PHASE_LIMIT {
            eprintln!("the cluster did not converge");
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "{:6.2}s  seed and {PEERS} peers: every node sees all {} alive",
        started.elapsed().as_secs_f64(),
        PEERS + 1
    );
    std::thread::sleep(Duration::from_secs(3));

    let late = node("peer-21", Some(&seed));
    watch(&late, &tx);
    let names: Vec<String> = std::iter::once(&seed)
        .chain(&peers)
        .map(|n| n.name().to_string())
        .collect();
    // Joined means known to the seed: writes then reach it at once, and
    // through it everyone.
    while !seed
        .live_peers()
        .is_ok_and(|l| l.iter().any(|m| m.name == "peer-21"))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "{:6.2}s  peer-21 joined; it sets greeting=hello, and session=abc for 10 s",
        started.elapsed().as_secs_f64()
    );
    late.set("greeting", b"hello").expect("set");
    late.set_with_ttl("session", b"abc", Duration::from_secs(10))
        .expect("set with a TTL");
    let all_of_them = names.iter().cloned().chain(["peer-21".into()]);
    let ok = seen.until(&names, "key_updated greeting")
        && seen.until(&names, "key_updated session")
        && seen.until(&all_of_them.collect::<Vec<_>>(), "key_expired session");
    if !ok {
        return ExitCode::FAILURE;
    }

    let victim = peers.remove(6);
    println!(
        "{:6.2}s  stopping {} without leaving",
        started.elapsed().as_secs_f64(),
        victim.name()
    );
    let what = format!("member_failed {}", victim.name());
    drop(victim);
    let survivors: Vec<String> = std::iter::once(&seed)
        .chain(&peers)
        .chain([&late])
        .map(|n| n.name().to_string())
        .collect();
    if !seen.until(&survivors, &what) {
        return ExitCode::FAILURE;
    }
    println!(
        "{:6.2}s  all {} survivors saw every update, the expiry and the failure",
        started.elapsed().as_secs_f64(),
        survivors.len()
    );
    ExitCode::SUCCESS
}
