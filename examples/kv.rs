//! A key/value tour over loopback UDP: node a writes, node b reads a's
//! keys and follows a prefix subscription; a TTL runs out, a key is
//! deleted, and a scan lists what is left.
//!
//! `cargo run --release --example kv`

use std::time::{Duration, Instant};

use vinery::runtime::{EventFilter, Node, NodeConfig, Receiver};
use vinery::{Config, Event, KeyPattern};

fn node(name: &str, seed: Option<&Node>) -> Node {
    let seeds = seed.map(|s| s.local_addr().expect("running").to_string());
    let config = NodeConfig::loopback(Config::local().with_name(name)).with_seeds(seeds);
    let node = Node::new(config);
    node.start().expect("start");
    node
}

/// The next event on `rx`, printed; a minute without one is a failure.
fn next(rx: &Receiver<Event>, started: Instant) -> Event {
    let e = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("an event within a minute");
    let value = match &e {
        Event::KeyUpdated { value, .. } => format!(" = {}", String::from_utf8_lossy(value)),
        _ => String::new(),
    };
    println!(
        "{:6.2}s  b's config/ subscription: {} {}'s {}{value}",
        started.elapsed().as_secs_f64(),
        e.kind(),
        e.node(),
        e.key().unwrap_or_default()
    );
    e
}

fn main() {
    let started = Instant::now();
    let a = node("a", None);
    let b = node("b", Some(&a));
    // Only a's key events under config/ (updates, deletes, expiries).
    let config = b.subscribe_filtered(EventFilter::keys(KeyPattern::prefix("config/")));
    while !a.live_peers().is_ok_and(|p| p.len() == 1) {
        std::thread::sleep(Duration::from_millis(10));
    }

    // One write reaches b in one hop: a pushes it at once.
    a.set("config/color", b"blue").expect("set");
    a.set("status", b"up").expect("set");
    assert!(matches!(next(&config, started), Event::KeyUpdated { .. }));
    let color = b.peer_value("a", "config/color").expect("running");
    println!(
        "b reads a's config/color: {:?}",
        color.map(|v| String::from_utf8_lossy(&v).into_owned())
    );

    // A TTL: every node hides the key when it runs out, by its own clock.
    a.set_with_ttl("config/lease", b"held", Duration::from_secs(2))
        .expect("set with a TTL");
    assert!(matches!(next(&config, started), Event::KeyUpdated { .. }));
    assert!(matches!(next(&config, started), Event::KeyExpired { .. }));

    // A delete spreads as a versioned tombstone.
    a.delete("config/color").expect("delete");
    assert!(matches!(next(&config, started), Event::KeyDeleted { .. }));

    // `status` is outside the subscription; a scan still sees it.
    let rest = b.scan(&KeyPattern::Any).expect("running");
    for e in &rest {
        println!(
            "b's scan: {}'s {} = {} (v{})",
            e.node,
            e.key,
            String::from_utf8_lossy(&e.value),
            e.version
        );
    }
    assert_eq!(rest.len(), 1);
    assert!(config.try_recv().is_err(), "status never reached it");
}
