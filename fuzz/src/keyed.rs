//! Checks for the sealed path: the decryptor on arbitrary bytes, and a
//! keyed endpoint fed both arbitrary bytes (which it must refuse: nothing
//! can be forged) and arbitrary messages sealed under its key (which it
//! must treat exactly as a plain endpoint treats them). Shared by the
//! `open_sealed` and `handle_packet_keyed` targets and `tests/corpus.rs`.

use std::time::Duration;

use vinery::security::{open_datagram, seal_datagram, Keyring, SecretKey, SEAL_OVERHEAD};
use vinery::wire::{ClusterTag, Datagram, Header, WireError, FLAG_ENCRYPTED, HEADER_LEN};
use vinery::{Config, Endpoint, MemberState, PacketError, Refusal, Time};

use crate::checks::{
    endpoint_addr, endpoint_config, peer_addr, setup_datagram, Snapshot, ENDPOINT_SEED,
};

/// The fuzzed keyed endpoint's key.
pub const KEY: [u8; 32] = [0x42; 32];

fn key() -> SecretKey {
    SecretKey::from_bytes(KEY)
}

/// The keyed endpoint's configuration: [`endpoint_config`] plus [`KEY`].
pub fn keyed_config() -> Config {
    Config {
        keys: vec![key()],
        ..endpoint_config()
    }
}

fn millis(t: Time) -> u64 {
    t.as_nanos() / 1_000_000
}

/// `plain` sealed under [`KEY`] at `now`, with a nonce drawn from the bytes
/// (nonces only need to be unique per sender in real use).
pub fn seal(plain: &[u8], now: Time) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    for (i, b) in plain.iter().enumerate() {
        nonce[i % 12] ^= b.rotate_left(i as u32 % 8);
    }
    seal_datagram(&key(), plain, millis(now), nonce)
}

/// The decryptor on arbitrary bytes: it never panics; what it opens is
/// exactly one datagram's overhead shorter and flagless; a datagram sealed
/// from the bytes opens back to them, and no single flipped byte of it
/// opens at all.
pub fn check_open(data: &[u8]) {
    let ring = Keyring::new(key());
    if let Ok((plain, _)) = open_datagram(&ring, data) {
        assert_eq!(plain.len() + SEAL_OVERHEAD, data.len());
        assert_eq!(plain[3] & FLAG_ENCRYPTED, 0);
    }
    if data.len() < HEADER_LEN {
        return;
    }
    let sealed = seal(data, Time::from_secs(7));
    let mut want = data.to_vec();
    want[3] &= !FLAG_ENCRYPTED;
    assert_eq!(open_datagram(&ring, &sealed), Ok((want, 7000)));
    let at = usize::from(data[0]) * 131 % sealed.len();
    let mut bad = sealed.clone();
    bad[at] ^= 1 << (data[1] % 8);
    assert_eq!(
        open_datagram(&ring, &bad),
        Err(WireError::WrongKey),
        "a flipped byte {at} still opened"
    );
    let other = Keyring::new(SecretKey::from_bytes([0x43; 32]));
    assert_eq!(open_datagram(&other, &sealed), Err(WireError::WrongKey));
}

/// A keyed endpoint that has taken in the (sealed) setup datagram, with a
/// probe in flight.
pub fn keyed_endpoint() -> (Endpoint, Time) {
    let mut ep =
        Endpoint::new(keyed_config(), endpoint_addr(), ENDPOINT_SEED).expect("valid config");
    let mut now = Time::from_secs(100);
    ep.handle_packet(now, peer_addr(0), &seal(&setup_datagram(), now))
        .expect("sealed setup datagram is valid");
    drain(&mut ep);
    while ep.stats().probes == 0 {
        now = ep.poll_timeout().expect("a probe is scheduled").max(now);
        ep.handle_timeout(now);
        drain(&mut ep);
    }
    (ep, now)
}

/// Everything a keyed endpoint sends is sealed under [`KEY`], within its
/// budget, of its cluster, and decodes once opened.
fn drain(ep: &mut Endpoint) {
    let ring = Keyring::new(key());
    let cluster = ClusterTag::from_name(&ep.config().cluster_name);
    while let Some(t) = ep.poll_transmit() {
        assert!(t.data.len() <= ep.config().max_datagram, "over budget");
        let (plain, _) = open_datagram(&ring, &t.data).expect("a sent datagram is sealed");
        Datagram::parse(&plain, cluster)
            .and_then(|d| d.decode_all(&mut Vec::new()))
            .expect("a sent datagram decodes once opened");
    }
    while ep.poll_event().is_some() {}
    assert_eq!(ep.local_member().state, MemberState::Alive);
}

/// Arbitrary bytes into a keyed endpoint: refused (plaintext, or a seal it
/// cannot open) with nothing changed. Then the bytes as messages, sealed
/// under its key: accepted exactly when a plain decoder accepts them, and
/// if accepted, its timers run and every output checks out.
pub fn check_keyed(data: &[u8]) -> Result<(), PacketError> {
    let (mut ep, now) = keyed_endpoint();
    let before = Snapshot::of(&ep);
    let raw = ep.handle_packet(now, peer_addr(0), data);
    assert!(raw.is_err(), "unsealed or forged bytes were accepted");
    assert_eq!(
        Snapshot::of(&ep),
        before,
        "a refused datagram changed state"
    );
    assert!(ep.poll_transmit().is_none() && ep.poll_event().is_none());

    let config = ep.config().clone();
    let mut plain = Header::new(ClusterTag::from_name(&config.cluster_name))
        .to_bytes()
        .to_vec();
    plain.extend_from_slice(data);
    let expected = Datagram::parse(&plain, ClusterTag::from_name(&config.cluster_name))
        .and_then(|d| d.decode_all(&mut Vec::new()));
    let result = ep.handle_packet(now, peer_addr(0), &seal(&plain, now));
    assert_eq!(
        result,
        expected.map_err(PacketError::Wire),
        "keyed endpoint and decoder disagree"
    );
    if result.is_err() {
        assert_eq!(Snapshot::of(&ep), before);
        return result;
    }
    drain(&mut ep);
    for jump in [Duration::from_secs(1), Duration::from_secs(40)] {
        ep.handle_timeout(now + jump);
        drain(&mut ep);
    }
    // The same datagram much later is a replay: refused unread.
    let late = now + config.replay_window + Duration::from_secs(1);
    let before = Snapshot::of(&ep);
    assert_eq!(
        ep.handle_packet(late, peer_addr(0), &seal(&plain, now)),
        Err(PacketError::Refused(Refusal::StaleTimestamp))
    );
    assert_eq!(Snapshot::of(&ep).members, before.members);
    result
}
