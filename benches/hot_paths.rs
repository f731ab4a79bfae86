//! The hot paths whose instruction counts guard against performance
//! regressions (`.ci/instruction-counts` runs each one under callgrind and
//! compares with `benches/hot_paths.baseline`).
//!
//! Each path runs [`ITERATIONS`] times inside one `#[inline(never)]`
//! function whose name starts with `measured_`; callgrind counts only
//! inside it (`--toggle-collect`), so building inputs and endpoints and
//! dropping them are left out, and the count is the same on every run of
//! the same binary.
//!
//! * `encode_decode`: the codec benchmark's full datagram (a ping and 68
//!   `Alive` updates) packed with [`DatagramBuilder::push`], then parsed and
//!   every message decoded.
//! * `handle_packet`: that datagram handed to a fresh endpoint
//!   ([`Endpoint::handle_packet`]: admission, decode, and 68 new members).
//! * `kv_merge`: a full datagram of key/value entries of one owner handed
//!   to a fresh replica (decode and merge of every entry).
//!
//! Run one: `cargo bench --bench hot_paths -- <path>`; without a path
//! (as `cargo bench` runs it) every path runs once.

#[allow(dead_code)] // only the full-datagram helpers are needed here
#[path = "../fuzz/src/seeds.rs"]
mod seeds;

use std::hint::black_box;
use std::net::SocketAddr;

use vinery::wire::{Bytes, Datagram, DatagramBuilder, KvEntry, Message, DEFAULT_DATAGRAM};
use vinery::{Config, Endpoint, Time};

/// Runs of the path per measurement: enough that one-time costs (the
/// allocator's first requests) weigh little in the count.
const ITERATIONS: usize = 100;

/// The paths, by the name the script passes.
const PATHS: [(&str, fn()); 3] = [
    ("encode_decode", encode_decode),
    ("handle_packet", handle_packet),
    ("kv_merge", kv_merge),
];

fn main() {
    // cargo bench passes `--bench`; any argument that is not a path name is
    // ignored, so `cargo bench` runs every path once.
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let selected: Vec<_> = PATHS
        .iter()
        .filter(|(name, _)| wanted.iter().any(|w| w == name))
        .collect();
    let run = if selected.is_empty() {
        PATHS.iter().collect()
    } else {
        selected
    };
    for (name, path) in run {
        path();
        println!("{name} iterations={ITERATIONS}");
    }
}

fn peer(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 7000 + i))
}

fn endpoint() -> Endpoint {
    Endpoint::new(Config::lan().with_name("receiver"), peer(0), 7).expect("valid config")
}

fn encode_decode() {
    let names = seeds::member_names(DEFAULT_DATAGRAM / 8);
    let (bytes, msgs) = seeds::full_datagram(DEFAULT_DATAGRAM, &names);
    let n = msgs.len() - 1;
    let decoded = measured_encode_decode(&msgs);
    assert_eq!(decoded, ITERATIONS * (1 + n));
    assert_eq!(
        seeds::encode_datagram(&msgs),
        bytes,
        "encodes the seed datagram"
    );
}

#[inline(never)]
fn measured_encode_decode(msgs: &[Message<'_>]) -> usize {
    let cluster = seeds::corpus_header().cluster;
    let mut decoded = 0;
    for _ in 0..ITERATIONS {
        let bytes = seeds::encode_datagram(black_box(msgs));
        let d = Datagram::parse(&bytes, cluster).expect("valid datagram");
        for m in d.messages() {
            black_box(m.expect("valid message"));
            decoded += 1;
        }
    }
    decoded
}

fn handle_packet() {
    let names = seeds::member_names(DEFAULT_DATAGRAM / 8);
    let (bytes, msgs) = seeds::full_datagram(DEFAULT_DATAGRAM, &names);
    let n = msgs.len() - 1;
    let receivers = measured_handle_packet((0..ITERATIONS).map(|_| endpoint()).collect(), &bytes);
    for ep in &receivers {
        assert_eq!(ep.num_known(), 1 + n, "every update is a new member");
    }
}

/// Returns the endpoints so that dropping them is not counted.
#[inline(never)]
fn measured_handle_packet(mut receivers: Vec<Endpoint>, datagram: &[u8]) -> Vec<Endpoint> {
    for ep in &mut receivers {
        ep.handle_packet(Time::from_secs(1), peer(1), black_box(datagram))
            .expect("valid datagram");
    }
    receivers
}

/// The owner of the merged keys.
const OWNER: &str = "owner-0001";

fn kv_merge() {
    let keys: Vec<String> = (0..DEFAULT_DATAGRAM / 8)
        .map(|i| format!("key-{i:06}"))
        .collect();
    let value = [0x5a; 16];
    let mut b = DatagramBuilder::new(seeds::corpus_header(), DEFAULT_DATAGRAM);
    // The owner first: entries of an unknown node are dropped.
    b.push(&seeds::alive_update(OWNER, 0)).expect("fits");
    let mut n = 0;
    for (i, key) in keys.iter().enumerate() {
        let version = i as u64 + 1;
        let entry = Message::KvEntry(KvEntry {
            node: OWNER,
            generation: 1,
            base: version - 1,
            version,
            key,
            value: Bytes(&value),
            expires_ms: 0,
            deleted: false,
        });
        if b.push(&entry).is_err() {
            break;
        }
        n += 1;
    }
    let bytes = b.finish();
    let replicas = measured_handle_packet((0..ITERATIONS).map(|_| endpoint()).collect(), &bytes);
    for ep in &replicas {
        assert_eq!(
            ep.stats().kv_entries_applied,
            n as u64,
            "every entry merged"
        );
    }
}
