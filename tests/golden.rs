//! Golden pins: the exact behaviour of the protocol, recorded so that a
//! refactor can prove it changed nothing.
//!
//! Three pins, each compared with a value checked in under `tests/golden/`:
//! - the simulator's trace hash of every standard scenario at two seeds
//!   (small clusters, short phases);
//! - a hash of every byte of every datagram (and every event) of a run that
//!   exercises membership, key/value state, the event bus, queries,
//!   elections and sealing, driven here without the simulator;
//! - the exact bytes of one datagram of every message kind.
//!
//! A change that alters behaviour on purpose re-records them with
//! `VINERY_BLESS=1 cargo test --release --test golden` and says why in its
//! commit message. A refactor must leave them untouched.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vinery::security::SecretKey;
use vinery::sim::scenario::{run, Profile, Scenario, ScenarioConfig, Variant};
use vinery::wire::fuzzing::example_messages;
use vinery::wire::ClusterTag;
use vinery::wire::{DatagramBuilder, Header};
use vinery::{Config, Endpoint, QueryFilter, Time};

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the checked-in file, or rewrites the file when
/// `VINERY_BLESS` is set.
fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("VINERY_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (record it with VINERY_BLESS=1)", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("  expected {a}\n  actual   {b}"))
            .collect();
        panic!(
            "{} changed: behaviour is no longer bit-identical.\n{}\n\
             (if the change is on purpose, re-record with VINERY_BLESS=1 and say why)",
            path.display(),
            diff.join("\n")
        );
    }
}

/// The standard scenarios, small and short, at two seeds each.
fn scenario_configs() -> Vec<ScenarioConfig> {
    let mut out = Vec::new();
    for scenario in Scenario::ALL {
        for seed in [1, 2] {
            let mut cfg = ScenarioConfig::new(scenario, 24, seed);
            match scenario {
                Scenario::Fail => cfg.crashes = 3,
                Scenario::Kv => cfg.writes = 5,
                Scenario::Slow => cfg.crashes = 2,
                _ => {}
            }
            if scenario.default_duration().is_some() {
                cfg.duration = Some(Duration::from_secs(if scenario == Scenario::Churn {
                    120
                } else {
                    40
                }));
            }
            out.push(cfg);
        }
    }
    // The ablation variants and the other profiles take other code paths.
    for scenario in [Scenario::Loss, Scenario::Slow] {
        for variant in [Variant::Swim, Variant::Lifeguard] {
            let mut cfg = ScenarioConfig::new(scenario, 24, 3);
            cfg.variant = variant;
            cfg.crashes = 2;
            cfg.duration = Some(Duration::from_secs(40));
            out.push(cfg);
        }
    }
    for profile in [Profile::Wan, Profile::Local] {
        let mut cfg = ScenarioConfig::new(Scenario::Fail, 24, 4).with_profile(profile);
        cfg.crashes = 2;
        out.push(cfg);
    }
    out
}

#[test]
fn scenario_trace_hashes_are_unchanged() {
    let mut text = String::new();
    for cfg in scenario_configs() {
        let report = run(&cfg, &mut |_| {});
        writeln!(
            text,
            "{} {} {} seed={} nodes={} trace={:016x}",
            cfg.scenario, cfg.variant, cfg.profile, cfg.seed, cfg.nodes, report.trace_hash
        )
        .unwrap();
    }
    check_golden("scenario_traces.txt", &text);
}

/// 64-bit FNV-1a, fed as things happen.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// A tiny deterministic network: every datagram arrives 1 ms after it was
/// sent, in send order. Hashes every datagram's bytes and every event.
struct Net {
    eps: Vec<Endpoint>,
    flight: VecDeque<(Time, usize, SocketAddr, Vec<u8>)>,
    now: Time,
    bytes: Fnv,
    events: Fnv,
    datagrams: u64,
    event_count: u64,
}

impl Net {
    fn new(n: usize, keyed: bool) -> Net {
        let eps = (0..n)
            .map(|i| {
                let mut c = Config::lan().with_name(format!("g{i}"));
                if keyed {
                    c.keys = vec![SecretKey::from_bytes([7; 32])];
                }
                Endpoint::new(c, addr(i), 1000 + i as u64).unwrap()
            })
            .collect();
        Net {
            eps,
            flight: VecDeque::new(),
            now: Time::ZERO,
            bytes: Fnv::new(),
            events: Fnv::new(),
            datagrams: 0,
            event_count: 0,
        }
    }

    fn drain(&mut self) {
        for (i, ep) in self.eps.iter_mut().enumerate() {
            while let Some(t) = ep.poll_transmit() {
                self.bytes.u64(i as u64);
                self.bytes.bytes(t.to.to_string().as_bytes());
                self.bytes.u64(t.data.len() as u64);
                self.bytes.bytes(&t.data);
                self.datagrams += 1;
                let to = (t.to.port() - 7000) as usize;
                self.flight
                    .push_back((self.now + Duration::from_millis(1), to, addr(i), t.data));
            }
            while let Some(e) = ep.poll_event() {
                self.events.u64(i as u64);
                self.events.u64(self.now.as_nanos());
                if std::env::var_os("VINERY_GOLDEN_PRINT").is_some() {
                    eprintln!("{} g{i} {e:?}", self.now);
                }
                self.events.bytes(format!("{e:?}").as_bytes());
                self.event_count += 1;
            }
        }
    }

    /// Runs until `until`, stepping to each next deadline or arrival.
    fn run_until(&mut self, until: Time) {
        loop {
            self.drain();
            let arrival = self.flight.front().map(|f| f.0);
            let timer = self
                .eps
                .iter()
                .filter_map(|e| e.poll_timeout())
                .min()
                .map(|t| t.max(self.now));
            let next = match (arrival, timer) {
                (Some(a), Some(t)) => a.min(t),
                (a, t) => a.or(t).unwrap_or(until),
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = next;
            while self.flight.front().is_some_and(|f| f.0 <= self.now) {
                let (_, to, from, data) = self.flight.pop_front().unwrap();
                if to < self.eps.len() {
                    let _ = self.eps[to].handle_packet(self.now, from, &data);
                }
            }
            for ep in &mut self.eps {
                if ep.poll_timeout().is_some_and(|t| t <= self.now) {
                    ep.handle_timeout(self.now);
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

/// A run of six nodes through every feature: join, key/value writes with
/// TTL and deletes, user events (plain and coalesced), a query with
/// responses, an election with votes, a crash, a leave. Returns its
/// summary line.
fn feature_run(keyed: bool) -> String {
    let mut net = Net::new(6, keyed);
    let seeds = [addr(0)];
    for i in 1..6 {
        let now = net.now;
        net.eps[i].join(now, &seeds);
    }
    net.run_for(Duration::from_secs(5));
    let now = net.now;
    net.eps[1].set(now, "alpha", b"one").unwrap();
    net.eps[2]
        .set_with_ttl(now, "beta", b"two", Duration::from_secs(3))
        .unwrap();
    net.run_for(Duration::from_secs(2));
    let now = net.now;
    net.eps[1].delete(now, "alpha").unwrap();
    net.eps[3]
        .say(now, "deploy", b"v2", Duration::from_secs(10))
        .unwrap();
    net.eps[4]
        .say_coalesced(now, "tick", b"1", Duration::from_secs(10))
        .unwrap();
    let q = net.eps[0]
        .query(
            now,
            "who",
            b"?",
            Duration::from_secs(3),
            &QueryFilter::default(),
        )
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let now = net.now;
    for i in 1..6 {
        let _ = net.eps[i].respond(now, &q, format!("me{i}").as_bytes());
    }
    net.eps[5]
        .election(now, "leader", Duration::from_secs(5), 3, 5)
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let now = net.now;
    for i in 0..5 {
        let _ = net.eps[i].vote(now, "leader", i % 2 == 0);
    }
    net.run_for(Duration::from_secs(10));
    // A crash: node 4 stops answering.
    net.eps.truncate(5);
    net.run_for(Duration::from_secs(20));
    let now = net.now;
    net.eps[3].leave(now);
    net.run_for(Duration::from_secs(30));
    format!(
        "keyed={keyed} datagrams={} bytes={:016x} events={} events_hash={:016x}\n",
        net.datagrams, net.bytes.0, net.event_count, net.events.0
    )
}

#[test]
fn feature_run_bytes_are_unchanged() {
    let text = feature_run(false) + &feature_run(true);
    check_golden("feature_run.txt", &text);
}

#[test]
fn datagram_of_every_message_kind_is_unchanged() {
    let header = Header::new(ClusterTag::from_name("golden"));
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    for msg in example_messages() {
        let mut b = DatagramBuilder::new(header, 65_000);
        b.push(&msg).unwrap();
        let hex: String = b.finish().iter().map(|x| format!("{x:02x}")).collect();
        kinds.insert(format!("{:?}", msg.kind()), hex);
    }
    let mut text = String::new();
    for (k, v) in kinds {
        writeln!(text, "{k} {v}").unwrap();
    }
    check_golden("datagrams.txt", &text);
}
