//! Key/value benchmarks:
//!
//! * `kv/merge_1000`: a replica applies a delta of 1,000 keys (16-byte
//!   keys, 32-byte values) from one owner, arriving as full datagrams
//!   through [`Endpoint::handle_packet`]; throughput in keys.
//! * `kv/digest_10k`: a node holding the state of 10,000 owners builds its
//!   anti-entropy datagrams ([`Endpoint::sync_with`]: membership bucket
//!   hashes and a rotating digest).
//! * `kv/delta_10k`: the same node answers a digest listing 60 owners it
//!   is ahead on (scuttle-depth ordering, packing to the round budget).
//! * `kv/datagram/{encode,decode}`: a full 1400-byte datagram of
//!   key/value entries; throughput in entries.
//!
//! Run: `cargo bench --bench kv -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vinery::wire::{
    self, Bytes, ClusterTag, Datagram, DatagramBuilder, Header, KvEntry, Message, DEFAULT_DATAGRAM,
};
use vinery::{Config, Endpoint, Time};

const OWNER: &str = "owner-000001";

fn addr(i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::from(([10, b, c, d], 7946))
}

fn header(config: &Config) -> Header {
    Header::new(ClusterTag::from_name(&config.cluster_name))
}

/// Packs `msgs` into as few datagrams as the default budget allows.
fn pack(config: &Config, msgs: &[Message<'_>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = DatagramBuilder::new(header(config), DEFAULT_DATAGRAM);
    for m in msgs {
        if b.push(m).is_err() {
            out.push(
                std::mem::replace(
                    &mut b,
                    DatagramBuilder::new(header(config), DEFAULT_DATAGRAM),
                )
                .finish(),
            );
            b.push(m).expect("fits an empty datagram");
        }
    }
    if !b.is_empty() {
        out.push(b.finish());
    }
    out
}

fn alive(name: &str, i: u32) -> Message<'_> {
    Message::Alive(wire::Alive {
        name,
        addr: addr(i),
        incarnation: 1,
        meta: Bytes(b""),
    })
}

/// One entry of `node`, version `v`, in a chain starting at 0.
fn entry<'a>(node: &'a str, key: &'a str, value: &'a [u8], v: u64) -> Message<'a> {
    Message::KvEntry(KvEntry {
        node,
        generation: 1,
        base: v - 1,
        version: v,
        key,
        value: Bytes(value),
        expires_ms: 0,
        deleted: false,
    })
}

fn replica(config: &Config) -> Endpoint {
    Endpoint::new(config.clone().with_name("replica"), addr(0), 7).expect("valid config")
}

fn merge_1000(c: &mut Criterion) {
    let config = Config::lan();
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i:012}")).collect();
    let value = [0x5a; 32];
    let mut msgs = vec![alive(OWNER, 1)];
    msgs.extend(
        keys.iter()
            .enumerate()
            .map(|(i, k)| entry(OWNER, k, &value, i as u64 + 1)),
    );
    let datagrams = pack(&config, &msgs);
    eprintln!("merge_1000: 1000 keys in {} datagrams", datagrams.len());
    let mut g = c.benchmark_group("kv");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("merge_1000", |b| {
        b.iter_batched(
            || replica(&config),
            |mut ep| {
                for d in &datagrams {
                    ep.handle_packet(Time::from_secs(1), addr(1), d)
                        .expect("valid datagram");
                }
                while ep.poll_event().is_some() {}
                ep
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// A node that knows 10,000 owners with one key each.
fn big_node(config: &Config) -> (Endpoint, Vec<String>) {
    let names: Vec<String> = (0..10_000).map(|i| format!("node-{i:06}")).collect();
    let mut ep = replica(config);
    let mut msgs: Vec<Message<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| alive(n, i as u32 + 1))
        .collect();
    msgs.extend(names.iter().map(|n| entry(n, "service.port", b"8080", 1)));
    for d in pack(config, &msgs) {
        ep.handle_packet(Time::from_secs(1), addr(1), &d)
            .expect("valid datagram");
    }
    while ep.poll_event().is_some() {}
    while ep.poll_transmit().is_some() {}
    assert_eq!(ep.kv_nodes().len(), 10_000);
    (ep, names)
}

fn at_10k(c: &mut Criterion) {
    let config = Config::lan();
    let (mut ep, names) = big_node(&config);
    let mut g = c.benchmark_group("kv");
    let mut now = Time::from_secs(2);
    g.bench_function("digest_10k", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            ep.sync_with(now, addr(2));
            let mut bytes = 0;
            while let Some(t) = ep.poll_transmit() {
                bytes += t.data.len();
            }
            black_box(bytes)
        })
    });
    // A digest claiming version 0 of 60 owners: the node sends all 60.
    let mut msgs = vec![Message::KvPull(wire::KvPull {
        reply: false,
        complete: false,
    })];
    msgs.extend(names.iter().step_by(166).take(60).map(|n| {
        Message::KvDigest(wire::KvDigest {
            node: n,
            generation: 1,
            heartbeat: 0,
            max_version: 0,
        })
    }));
    let pull = pack(&config, &msgs);
    assert_eq!(pull.len(), 1, "the digest fits one datagram");
    g.bench_function("delta_10k", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            ep.handle_packet(now, addr(3), &pull[0]).expect("valid");
            let mut entries = 0;
            while let Some(t) = ep.poll_transmit() {
                entries += t.data.len();
            }
            black_box(entries)
        })
    });
    g.finish();
}

fn delta_datagram(c: &mut Criterion) {
    let config = Config::lan();
    let keys: Vec<String> = (0..64).map(|i| format!("key-{i:012}")).collect();
    let value = [0x5a; 32];
    let msgs: Vec<Message<'_>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| entry(OWNER, k, &value, i as u64 + 1))
        .collect();
    let encode = |msgs: &[Message<'_>]| {
        let mut b = DatagramBuilder::new(header(&config), DEFAULT_DATAGRAM);
        let mut n = 0;
        for m in msgs {
            if b.push(m).is_err() {
                break;
            }
            n += 1;
        }
        (b.finish(), n)
    };
    let (bytes, n) = encode(&msgs);
    eprintln!(
        "delta datagram: {} bytes, {n} entries of {:.1} bytes",
        bytes.len(),
        (bytes.len() - wire::HEADER_LEN) as f64 / n as f64
    );
    let cluster = ClusterTag::from_name(&config.cluster_name);
    let mut g = c.benchmark_group("kv/datagram");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("encode", |b| b.iter(|| encode(black_box(&msgs[..n]))));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let d = Datagram::parse(black_box(&bytes), cluster).expect("valid");
            let mut n = 0;
            for m in d.messages() {
                black_box(m.expect("valid"));
                n += 1;
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, merge_1000, at_10k, delta_datagram);
criterion_main!(benches);
