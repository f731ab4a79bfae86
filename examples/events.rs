//! Three nodes over loopback UDP in one process: node a prints every
//! membership event it sees while b and c join, c is stopped without
//! leaving (a crash, to the others), and b leaves gracefully.
//!
//! `cargo run --release --example events`

use std::time::{Duration, Instant};

use vinery::runtime::{Node, NodeConfig, Receiver};
use vinery::{Config, Event};

fn node(name: &str, seeds: &[&Node]) -> Node {
    let seeds = seeds.iter().map(|s| s.local_addr().unwrap().to_string());
    let config = NodeConfig::loopback(Config::local().with_name(name)).with_seeds(seeds);
    let node = Node::new(config);
    node.start().expect("start");
    node
}

/// Prints a's events until one satisfies `until`.
fn watch(events: &Receiver<Event>, started: Instant, until: fn(&Event) -> bool) {
    while let Ok(e) = events.recv_timeout(Duration::from_secs(60)) {
        let Some(m) = e.member() else { continue };
        println!(
            "{:6.2}s  a sees {:<16} {} at {} (incarnation {})",
            started.elapsed().as_secs_f64(),
            e.kind(),
            m.name,
            m.addr,
            m.incarnation
        );
        if until(&e) {
            return;
        }
    }
    panic!("no such event within a minute");
}

fn main() {
    let started = Instant::now();
    let a = node("a", &[]);
    let events = a.subscribe();
    let b = node("b", &[&a]);
    let c = node("c", &[&a]);
    watch(
        &events,
        started,
        |e| matches!(e, Event::MemberJoined(m) if m.name == "c"),
    );

    println!("-- stopping c without leaving");
    c.stop();
    watch(
        &events,
        started,
        |e| matches!(e, Event::MemberFailed(m) if m.name == "c"),
    );

    println!("-- b leaves gracefully");
    b.leave(Duration::from_secs(5)).expect("leave");
    watch(
        &events,
        started,
        |e| matches!(e, Event::MemberLeft(m) if m.name == "b"),
    );
    println!("a's stats: {:?}", a.stats().expect("running").runtime);
}
