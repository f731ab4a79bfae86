//! Codec benchmarks.
//!
//! * `full_datagram/{encode,decode,decode_all,encode_decode}`: a ping
//!   carrying a full 1400-byte datagram of piggybacked `Alive` updates (the
//!   corpus's `seed-full-budget`), built with [`DatagramBuilder::push`] and
//!   decoded with [`Datagram::parse`] plus its message iterator (`decode`)
//!   or [`Datagram::decode_all`] into a vector, as the endpoint decodes
//!   (`decode_all`, and `encode_decode`). Throughput is in
//!   updates, so criterion reports time per update; the target is
//!   encode+decode ≤ 30 ns per update.
//! * `message/{encode,decode}/<kind>`: one message of each kind from
//!   [`example_messages`], through [`encode_message`] and [`decode_message`].
//!
//! Run: `cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3`.

#[allow(dead_code)] // the benchmark needs only the full-datagram helpers
#[path = "../fuzz/src/seeds.rs"]
mod seeds;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vinery::wire::fuzzing::{
    decode_message, decode_message_reference, encode_message, encode_message_reference,
    example_messages,
};
use vinery::wire::{ClusterTag, Datagram, DEFAULT_DATAGRAM, HEADER_LEN};

/// Parses the datagram and decodes every message; returns how many.
fn decode(bytes: &[u8], cluster: ClusterTag) -> usize {
    let d = Datagram::parse(bytes, cluster).expect("valid datagram");
    let mut n = 0;
    for m in d.messages() {
        black_box(m.expect("valid message"));
        n += 1;
    }
    n
}

/// Parses the datagram and decodes every message with
/// [`Datagram::decode_all`], into a vector with room for `expected`
/// messages (one allocation per datagram, not the growth steps); returns
/// how many.
fn decode_all(bytes: &[u8], cluster: ClusterTag, expected: usize) -> usize {
    let d = Datagram::parse(bytes, cluster).expect("valid datagram");
    let mut out = Vec::with_capacity(expected);
    d.decode_all(&mut out).expect("valid messages");
    black_box(&out);
    out.len()
}

fn full_datagram(c: &mut Criterion) {
    let names = seeds::member_names(DEFAULT_DATAGRAM / 8);
    let (bytes, msgs) = seeds::full_datagram(DEFAULT_DATAGRAM, &names);
    let (ping, n) = (msgs[0], msgs.len() - 1);
    let cluster = seeds::corpus_header().cluster;
    assert_eq!(
        seeds::encode_datagram(&msgs),
        bytes,
        "the benchmark encodes the seed"
    );
    assert_eq!(decode(&bytes, cluster), 1 + n);
    let update_bytes = bytes.len() - HEADER_LEN - encode_message(&ping).len();
    eprintln!(
        "full datagram: {} bytes = {HEADER_LEN} header + ping {} + {n} alive updates \
         of {:.1} bytes each",
        bytes.len(),
        encode_message(&ping).len(),
        update_bytes as f64 / n as f64
    );

    let mut g = c.benchmark_group("full_datagram");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("encode", |b| {
        b.iter(|| seeds::encode_datagram(black_box(&msgs)))
    });
    g.bench_function("decode", |b| {
        b.iter(|| decode(black_box(&bytes), black_box(cluster)))
    });
    g.bench_function("decode_all", |b| {
        b.iter(|| decode_all(black_box(&bytes), black_box(cluster), 1 + n))
    });
    // Decoded as the endpoint decodes a received datagram, with
    // `Datagram::decode_all`.
    g.bench_function("encode_decode", |b| {
        b.iter(|| {
            let bytes = seeds::encode_datagram(black_box(&msgs));
            decode_all(&bytes, black_box(cluster), 1 + n)
        })
    });
    // The baseline, in the same run: the same bytes through serde and
    // bincode (the format's definition, which the hand-written codec is
    // held to).
    g.bench_function("encode_decode_bincode_baseline", |b| {
        b.iter(|| {
            let mut bytes = seeds::corpus_header().to_bytes().to_vec();
            for m in black_box(&msgs) {
                bytes.extend(encode_message_reference(m));
            }
            let mut rest = &bytes[HEADER_LEN..];
            let mut n = 0;
            while !rest.is_empty() {
                let (m, used) = decode_message_reference(rest).expect("valid");
                black_box(m);
                rest = &rest[used..];
                n += 1;
            }
            n
        })
    });
    g.finish();
}

fn each_message(c: &mut Criterion) {
    let mut g = c.benchmark_group("message");
    for msg in example_messages() {
        let kind = msg.kind().name();
        let encoded = encode_message(&msg);
        g.throughput(Throughput::Bytes(encoded.len() as u64));
        g.bench_function(format!("encode/{kind}"), |b| {
            b.iter(|| encode_message(black_box(&msg)))
        });
        g.bench_function(format!("decode/{kind}"), |b| {
            b.iter(|| decode_message(black_box(&encoded)).expect("valid message"))
        });
    }
    g.finish();
}

criterion_group!(benches, full_datagram, each_message);
criterion_main!(benches);
