//! Sealing cost: seal + open of a full 1400-byte datagram with
//! the endpoint's [`Sealer`] (AES-256-GCM, this build's backend), against
//! RustCrypto's AES-256-GCM and ChaCha20-Poly1305 doing the same work in
//! place in the same run (the baselines the backend and the cipher were
//! chosen over), and a whole datagram through a keyed endpoint versus a
//! plain one.
//!
//! Run: `cargo bench --bench security -- --warm-up-time 1 --measurement-time 3`
//! (add `--features ring` for the ring backend).

use std::hint::black_box;
use std::net::SocketAddr;

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use vinery::security::{aead, Keyring, Sealer, SecretKey, SEAL_OVERHEAD};
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

fn raw_seal_open<A: AeadInOut>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    cipher: A,
    plain: &[u8],
) {
    let mut counter = 0u64;
    let mut buf = plain[8..].to_vec();
    g.bench_function(name, |b| {
        b.iter(|| {
            counter += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_le_bytes());
            let nonce = Nonce::<A>::try_from(&nonce[..]).expect("12-byte nonces");
            let tag = cipher
                .encrypt_inout_detached(&nonce, &plain[..8], buf.as_mut_slice().into())
                .expect("seals");
            cipher
                .decrypt_inout_detached(&nonce, &plain[..8], buf.as_mut_slice().into(), &tag)
                .expect("opens");
            black_box(&buf);
        })
    });
}

fn ciphers(c: &mut Criterion) {
    let key = SecretKey::from_bytes([7; 32]);
    let mut sealer = Sealer::new(&Keyring::new(key.clone()), [1, 2, 3, 4], 0);
    let plain = plain();
    assert_eq!(sealer.seal(&plain, 1).len(), DEFAULT_DATAGRAM);
    let mut g = c.benchmark_group("seal_open_1400");
    g.throughput(Throughput::Bytes(DEFAULT_DATAGRAM as u64));
    // Named by backend: run once plain and once with `--features ring` to
    // compare them in one criterion report.
    g.bench_function(format!("aes256gcm_{}", aead::BACKEND), |b| {
        b.iter(|| {
            let sealed = sealer.seal(black_box(&plain), 1);
            sealer.open(&sealed).expect("opens")
        })
    });
    // The raw RustCrypto ciphers on the same bytes, in place (no framing,
    // no allocation): the baselines the Sealer is judged against.
    raw_seal_open(
        &mut g,
        "aes256gcm_rustcrypto_raw",
        Aes256Gcm::new(key.as_bytes().into()),
        &plain,
    );
    raw_seal_open(
        &mut g,
        "chacha20poly1305_baseline",
        ChaCha20Poly1305::new(key.as_bytes().into()),
        &plain,
    );
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
