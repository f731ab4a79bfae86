//! Sealing cost (issue 5): seal + open of a full 1400-byte datagram with
//! the endpoint's [`Sealer`] (AES-256-GCM), against ChaCha20-Poly1305 doing
//! the same work in the same run (the baseline the cipher was chosen over),
//! and a whole datagram through a keyed endpoint versus a plain one.
//!
//! Run: `cargo bench --bench security -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::SocketAddr;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vinery::security::{Keyring, Sealer, SecretKey, SEAL_OVERHEAD};
use vinery::wire::{self, Bytes, ClusterTag, DatagramBuilder, Header, Message, DEFAULT_DATAGRAM};
use vinery::{Config, Endpoint, Time};

/// A plaintext datagram that seals to exactly 1400 bytes.
fn plain() -> Vec<u8> {
    let mut p = Header::new(ClusterTag::from_name("vinery"))
        .to_bytes()
        .to_vec();
    p.resize(DEFAULT_DATAGRAM - SEAL_OVERHEAD, 0x5a);
    p
}

fn ciphers(c: &mut Criterion) {
    let key = SecretKey::from_bytes([7; 32]);
    let mut sealer = Sealer::new(&Keyring::new(key.clone()), [1, 2, 3, 4], 0);
    let plain = plain();
    assert_eq!(sealer.seal(&plain, 1).len(), DEFAULT_DATAGRAM);
    let mut g = c.benchmark_group("seal_open_1400");
    g.throughput(Throughput::Bytes(DEFAULT_DATAGRAM as u64));
    g.bench_function("aes256gcm", |b| {
        b.iter(|| {
            let sealed = sealer.seal(black_box(&plain), 1);
            sealer.open(&sealed).expect("opens")
        })
    });
    let chacha = ChaCha20Poly1305::new(key.as_bytes().into());
    let mut counter = 0u64;
    g.bench_function("chacha20poly1305_baseline", |b| {
        b.iter(|| {
            counter += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_le_bytes());
            let nonce = chacha20poly1305::Nonce::from_slice(&nonce);
            let mut buf = black_box(&plain)[8..].to_vec();
            let tag = chacha
                .encrypt_in_place_detached(nonce, &plain[..8], &mut buf)
                .expect("seals");
            chacha
                .decrypt_in_place_detached(nonce, &plain[..8], &mut buf, &tag)
                .expect("opens");
            buf
        })
    });
    g.finish();
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

/// A full datagram of alive updates into an endpoint, keyed or not.
fn endpoints(c: &mut Criterion) {
    let names: Vec<String> = (0..100).map(|i| format!("node-{i:04}")).collect();
    let mut g = c.benchmark_group("handle_full_datagram");
    for keyed in [false, true] {
        let mut config = Config::lan().with_name("me");
        if keyed {
            config.keys = vec![SecretKey::from_bytes([7; 32])];
        }
        let mut b = DatagramBuilder::new(
            Header::new(ClusterTag::from_name(&config.cluster_name)),
            DEFAULT_DATAGRAM - SEAL_OVERHEAD,
        );
        for (i, n) in names.iter().enumerate() {
            let m = Message::Alive(wire::Alive {
                name: n,
                addr: addr(i as u8),
                incarnation: 1,
                meta: Bytes(b""),
            });
            if b.push(&m).is_err() {
                break;
            }
        }
        let plain = b.finish();
        let data = if keyed {
            vinery::security::seal_datagram(&config.keys[0], &plain, 1000, [9; 12])
        } else {
            plain
        };
        let mut ep = Endpoint::new(config, addr(200), 1).expect("valid");
        let now = Time::from_secs(1);
        let name = if keyed { "sealed" } else { "plain" };
        g.bench_function(name, |b| {
            b.iter(|| {
                ep.handle_packet(now, addr(1), black_box(&data))
                    .expect("valid");
                while ep.poll_transmit().is_some() {}
                while ep.poll_event().is_some() {}
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ciphers, endpoints);
criterion_main!(benches);
