//! The hand-written codec (`codec.rs`, `bus_codec.rs`) against the
//! definition (serde + bincode, `reference.rs`): same bytes out, same
//! messages, lengths and errors in, for every kind, on every example, on
//! many random messages around every varint and length boundary, and on
//! hostile bytes (every truncation, bit flips, random strings, claims at
//! the size limit).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::codec;
use super::fuzzing::{decode_message_reference, encode_message_reference, example_messages};
use super::primitives::{Reader, Utf8Seen, LIMIT};
use super::reference;
use super::*;

/// Random messages per test; each is also truncated and bit-flipped.
const RANDOM_MESSAGES: usize = 3000;

/// Integers around every varint boundary (and the ends of `u32`).
const U32_EDGES: [u32; 12] = [
    0,
    1,
    250,
    251,
    252,
    255,
    256,
    65_535,
    65_536,
    0x00ff_ffff,
    u32::MAX - 1,
    u32::MAX,
];

/// Characters of 1, 2, 3 and 4 bytes in UTF-8.
const CHARS: [char; 6] = ['a', '-', '7', 'é', '€', '𝄞'];

fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

fn u32_value(rng: &mut SmallRng) -> u32 {
    if rng.random_bool(0.5) {
        U32_EDGES[rng.random_range(0..U32_EDGES.len())]
    } else {
        rng.random()
    }
}

fn u64_value(rng: &mut SmallRng) -> u64 {
    match rng.random_range(0..4) {
        0 => u64::from(u32_value(rng)),
        1 => u64::from(u32::MAX) + rng.random_range(0..3),
        2 => u64::MAX - rng.random_range(0..3),
        _ => rng.random(),
    }
}

/// A string of about `len` bytes (one character less when a wide one would
/// overshoot): plain ASCII most of the time, else mixed widths.
fn name(rng: &mut SmallRng, len: usize) -> &'static str {
    let ascii = rng.random_bool(0.6);
    let mut s = String::new();
    while s.len() < len {
        let c = if ascii {
            CHARS[rng.random_range(0..3)]
        } else {
            CHARS[rng.random_range(0..CHARS.len())]
        };
        if s.len() + c.len_utf8() > len {
            s.push('x');
        } else {
            s.push(c);
        }
    }
    s.leak()
}

/// A name of length 0..=255 (sometimes past the limit, which only
/// validation rejects).
fn any_name(rng: &mut SmallRng) -> &'static str {
    let len = match rng.random_range(0..40) {
        0 => 0,
        1 => rng.random_range(250..=300),
        2..=5 => rng.random_range(0..=255),
        _ => rng.random_range(1..=20),
    };
    name(rng, len)
}

fn bytes(rng: &mut SmallRng, len: usize) -> Bytes<'static> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    Bytes(v.leak())
}

fn meta(rng: &mut SmallRng) -> Bytes<'static> {
    let len = match rng.random_range(0..6) {
        0 => 0,
        1 => rng.random_range(0..=512),
        2 => rng.random_range(240..=260),
        3 => rng.random_range(500..=600),
        _ => rng.random_range(0..=16),
    };
    bytes(rng, len)
}

fn addr(rng: &mut SmallRng) -> SocketAddr {
    if rng.random_bool(0.5) {
        SocketAddr::from((Ipv4Addr::from(rng.random::<u32>()), rng.random::<u16>()))
    } else {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(rng.random::<u128>()),
            rng.random(),
            0,
            0,
        ))
    }
}

fn state(rng: &mut SmallRng) -> WireState {
    [
        WireState::Alive,
        WireState::Suspect,
        WireState::Dead,
        WireState::Left,
    ][rng.random_range(0..4)]
}

fn alive(rng: &mut SmallRng) -> Alive<'static> {
    Alive {
        name: any_name(rng),
        addr: addr(rng),
        incarnation: u32_value(rng),
        meta: meta(rng),
    }
}

/// A random message of a random kind (not necessarily valid).
fn random_message(rng: &mut SmallRng) -> Message<'static> {
    match MessageKind::ALL[rng.random_range(0..MessageKind::ALL.len())] {
        MessageKind::Ping => Message::Ping(Ping {
            seq: u32_value(rng),
            target: any_name(rng),
            hash: rng.random(),
        }),
        MessageKind::PingReq => Message::PingReq(PingReq {
            seq: u32_value(rng),
            target: any_name(rng),
            target_addr: addr(rng),
            nack: rng.random(),
        }),
        MessageKind::Ack => Message::Ack(Ack {
            seq: u32_value(rng),
            hash: rng.random(),
        }),
        MessageKind::Nack => Message::Nack(Nack {
            seq: u32_value(rng),
        }),
        MessageKind::Alive => Message::Alive(alive(rng)),
        MessageKind::Suspect => Message::Suspect(Suspect {
            name: any_name(rng),
            incarnation: u32_value(rng),
            from: any_name(rng),
        }),
        MessageKind::Dead => Message::Dead(Dead {
            name: any_name(rng),
            incarnation: u32_value(rng),
            from: any_name(rng),
        }),
        MessageKind::Left => Message::Left(Left {
            name: any_name(rng),
            incarnation: u32_value(rng),
        }),
        MessageKind::Join => Message::Join(Join { member: alive(rng) }),
        MessageKind::JoinReply => Message::JoinReply(JoinReply {
            known: u32_value(rng),
            from: any_name(rng),
        }),
        MessageKind::SyncRequest => {
            let n = match rng.random_range(0..3) {
                0 => 4 << rng.random_range(0..7),
                1 => 4 * rng.random_range(0..70),
                _ => rng.random_range(0..300),
            };
            Message::SyncRequest(SyncRequest {
                id: u32_value(rng),
                from: any_name(rng),
                buckets: bytes(rng, n),
            })
        }
        MessageKind::SyncReply => Message::SyncReply(SyncReply {
            id: u32_value(rng),
            mask: u64_value(rng),
            from: any_name(rng),
        }),
        MessageKind::Member => Message::Member(MemberEntry {
            name: any_name(rng),
            addr: addr(rng),
            incarnation: u32_value(rng),
            state: state(rng),
            meta: meta(rng),
        }),
        MessageKind::KvEntry => Message::KvEntry(KvEntry {
            node: any_name(rng),
            generation: u64_value(rng),
            base: u64_value(rng),
            version: u64_value(rng),
            key: any_name(rng),
            value: meta(rng),
            expires_ms: u64_value(rng),
            deleted: rng.random(),
        }),
        MessageKind::KvDigest => Message::KvDigest(KvDigest {
            node: any_name(rng),
            generation: u64_value(rng),
            heartbeat: u64_value(rng),
            max_version: u64_value(rng),
        }),
        MessageKind::KvPull => Message::KvPull(KvPull {
            reply: rng.random(),
            complete: rng.random(),
        }),
        MessageKind::KvReset => Message::KvReset(KvReset {
            node: any_name(rng),
            generation: u64_value(rng),
            floor: u64_value(rng),
        }),
        MessageKind::UserEvent => Message::UserEvent(UserEvent {
            head: head(rng),
            name: any_name(rng),
            coalesce: rng.random(),
            payload: meta(rng),
        }),
        MessageKind::Query => Message::Query(Query {
            head: head(rng),
            addr: addr(rng),
            name: any_name(rng),
            filter: filter(rng),
            payload: meta(rng),
        }),
        MessageKind::Election => Message::Election(Election {
            head: head(rng),
            topic: any_name(rng),
            min: u32_value(rng) % 8,
            total: u32_value(rng) % 8,
        }),
        MessageKind::Vote => Message::Vote(Vote {
            head: head(rng),
            creator: any_name(rng),
            election: u64_value(rng),
            yes: rng.random(),
        }),
        MessageKind::QueryReply => Message::QueryReply(QueryReply {
            asker: any_name(rng),
            seq: u64_value(rng),
            from: any_name(rng),
            ack: rng.random_bool(0.2),
            payload: if rng.random_bool(0.5) {
                Bytes(&[])
            } else {
                meta(rng)
            },
        }),
        MessageKind::BusPush => Message::BusPush(BusPush {
            fanout: u32_value(rng) % 24,
        }),
        MessageKind::BusHave => Message::BusHave(BusHave {
            reply_mask: if rng.random_bool(0.5) {
                0
            } else {
                u64_value(rng)
            },
            ids: ids(rng),
        }),
        MessageKind::BusWant => Message::BusWant(BusWant { ids: ids(rng) }),
        MessageKind::BusSync => {
            let n = match rng.random_range(0..3) {
                0 => 0,
                1 => 4 * BUS_BUCKETS,
                _ => rng.random_range(0..100),
            };
            Message::BusSync(BusSync {
                buckets: bytes(rng, n),
            })
        }
    }
}

/// A bus item head (an empty origin or a zero lifetime now and then,
/// which only validation rejects).
fn head(rng: &mut SmallRng) -> BusHead<'static> {
    BusHead {
        origin: any_name(rng),
        seq: u64_value(rng),
        lamport: u64_value(rng),
        at_ms: u64_value(rng),
        ttl_ms: if rng.random_bool(0.05) {
            0
        } else {
            u64_value(rng)
        },
    }
}

/// A query filter: well-formed entries, or random bytes.
fn filter(rng: &mut SmallRng) -> Bytes<'static> {
    if rng.random_bool(0.2) {
        let n = rng.random_range(0..12);
        return bytes(rng, n);
    }
    let mut out = Vec::new();
    for _ in 0..rng.random_range(0..3) {
        let entry = if rng.random_bool(0.5) {
            FilterEntry::Node(any_name(rng))
        } else {
            FilterEntry::Tag {
                key: name(rng, 4),
                pattern: name(rng, 3),
            }
        };
        // Refused entries are left out.
        let _ = entry.encode(&mut out);
    }
    Bytes(out.leak())
}

/// A list of item ids, sometimes not whole ids.
fn ids(rng: &mut SmallRng) -> Bytes<'static> {
    let n = if rng.random_bool(0.9) {
        BUS_ID_LEN * rng.random_range(0..6)
    } else {
        rng.random_range(0..30)
    };
    bytes(rng, n)
}

/// The examples, then `n` random messages.
fn messages(seed: u64, n: usize) -> Vec<Message<'static>> {
    let mut rng = rng(seed);
    let mut all = example_messages();
    all.extend((0..n).map(|_| random_message(&mut rng)));
    all
}

/// Checks that both codecs encode `msg` to the same bytes, by every
/// encoding API, and returns them.
fn check_encode(msg: &Message<'_>) -> Vec<u8> {
    let reference = encode_message_reference(msg);
    assert!(!reference.is_empty());
    assert_eq!(codec::encoded_len(msg), reference.len(), "{msg:?}");
    assert_eq!(encode_message(msg), reference, "{msg:?}");
    // Into slices of every size around the message's: the same bytes, or
    // the same refusal.
    let len = reference.len();
    for size in [
        0,
        1,
        len / 2,
        len.saturating_sub(2),
        len - 1,
        len,
        len + 1,
        len + 9,
    ] {
        let mut a = vec![0xa5; size];
        let mut b = vec![0xa5; size];
        let fast = codec::encode_into(msg, &mut a);
        let slow = reference::encode_into(msg, &mut b);
        assert_eq!(fast, slow, "{msg:?} into {size} bytes");
        if let Ok(n) = fast {
            assert_eq!(a[..n], b[..n]);
        }
    }
    reference
}

/// Checks that both decoders agree on `bytes` (a message from its tag):
/// [`decode_message`] (strings validated alone) and a reader primed with
/// `utf8` as a [`Messages`] iterator is (UTF-8 validated in runs), against
/// [`decode_message_reference`]. Returns the reference result and leaves
/// in `utf8` what the reader knows after it.
fn check_decode<'a>(
    bytes: &'a [u8],
    utf8: &mut Utf8Seen<'a>,
) -> Result<(Message<'a>, usize), WireError> {
    let reference = decode_message_reference(bytes);
    assert_eq!(decode_message(bytes), reference, "{bytes:02x?}");
    let mut r = Reader::new(bytes, *utf8);
    let read = r.message().map(|m| (m, bytes.len() - r.rest.len()));
    assert_eq!(read, reference, "{bytes:02x?}");
    *utf8 = r.utf8();
    reference
}

/// [`check_decode`] on every message of `body` in turn, with one UTF-8
/// state for all of them as [`Messages`] does; also compares with the
/// iterator itself. Returns how many messages decoded.
fn check_decode_all(body: &[u8]) -> usize {
    let mut utf8 = Utf8Seen::new(true);
    let mut rest = body;
    let mut expected = Vec::new();
    while !rest.is_empty() {
        match check_decode(rest, &mut utf8) {
            Ok((m, used)) => {
                expected.push(Ok(m));
                rest = &rest[used..];
            }
            Err(e) => {
                expected.push(Err(e));
                break;
            }
        }
    }
    let iterated: Vec<_> = Messages {
        reader: Reader::new(body, Utf8Seen::new(true)),
    }
    .collect();
    assert_eq!(iterated, expected, "{body:02x?}");
    expected.iter().filter(|m| m.is_ok()).count()
}

/// Every truncation of `bytes`, and `flips` copies with 1 to 3 random bits
/// flipped, through [`check_decode_all`].
fn check_hostile(rng: &mut SmallRng, bytes: &[u8], flips: usize) {
    for cut in 0..=bytes.len() {
        check_decode_all(&bytes[..cut]);
    }
    for _ in 0..flips {
        let mut b = bytes.to_vec();
        for _ in 0..rng.random_range(1..=3) {
            let bit = rng.random_range(0..b.len() * 8);
            b[bit / 8] ^= 1 << (bit % 8);
        }
        check_decode_all(&b);
    }
}

#[test]
fn fast_encoding_is_bincode_byte_for_byte() {
    for msg in messages(1, RANDOM_MESSAGES) {
        check_encode(&msg);
    }
}

#[test]
fn fast_decoding_matches_bincode_on_valid_messages() {
    let mut rng = rng(2);
    for msg in messages(3, RANDOM_MESSAGES) {
        let bytes = check_encode(&msg);
        let decoded = check_decode(&bytes, &mut Utf8Seen::new(true));
        if msg.validate().is_ok() {
            assert_eq!(decoded, Ok((msg, bytes.len())));
        } else {
            assert_eq!(decoded, Err(msg.validate().unwrap_err()));
        }
        // Followed by other bytes: the same message, the same length.
        let mut longer = bytes.clone();
        longer.extend((0..rng.random_range(1..40)).map(|_| rng.random::<u8>()));
        let decoded_longer = check_decode(&longer, &mut Utf8Seen::new(true));
        if let Ok((m, used)) = decoded {
            assert_eq!(decoded_longer, Ok((m, used)));
        }
    }
}

#[test]
fn fast_decoding_matches_bincode_on_truncations_and_bit_flips() {
    let mut rng = rng(4);
    for msg in messages(5, RANDOM_MESSAGES / 3) {
        let bytes = check_encode(&msg);
        check_hostile(&mut rng, &bytes, 64);
    }
}

#[test]
fn fast_decoding_matches_bincode_on_packed_datagram_bodies() {
    // Several messages back to back, as in a datagram: the UTF-8 runs span
    // messages, so flips and cuts land in and around validated text.
    let mut rng = rng(6);
    let msgs = messages(7, RANDOM_MESSAGES);
    let (mut decoded, mut valid) = (0, 0);
    for chunk in msgs.chunks(8) {
        let mut body = Vec::new();
        for m in chunk {
            body.extend(check_encode(m));
        }
        decoded += check_decode_all(&body);
        // Decoding stops at the first invalid message.
        valid += chunk.iter().take_while(|m| m.validate().is_ok()).count();
        check_hostile(&mut rng, &body, 200);
    }
    assert_eq!(decoded, valid);
    assert!(decoded > msgs.len() / 4, "only {decoded} messages decoded");
}

#[test]
fn fast_decoding_matches_bincode_on_random_bytes() {
    let mut rng = rng(8);
    // Bytes biased towards what the decoder branches on: small tags and
    // lengths, varint markers, UTF-8 lead and continuation bytes.
    let interesting = [
        0u8, 1, 2, 4, 5, 6, 7, 12, 13, 18, 250, 251, 252, 253, 254, 255, 0x80, 0xbf, 0xc3, 0xe2,
        0xf0, b'a',
    ];
    for _ in 0..200_000 {
        let len = rng.random_range(0..48);
        let mut b: Vec<u8> = (0..len)
            .map(|_| {
                if rng.random_bool(0.5) {
                    interesting[rng.random_range(0..interesting.len())]
                } else {
                    rng.random()
                }
            })
            .collect();
        if let Some(tag) = b.first_mut() {
            if rng.random_bool(0.9) {
                *tag = rng.random_range(0..MessageKind::ALL.len() as u8 + 2);
            }
        }
        check_decode_all(&b);
    }
}

#[test]
fn strings_that_end_inside_a_character_are_malformed() {
    // A Suspect whose name is "a" and the first byte of "€"; the bytes after
    // it (incarnation 0x82, then the length 0xac of `from`) complete the
    // character, so a run validated from the name is valid UTF-8 and only
    // the boundary check can reject the name.
    let mut body = vec![MessageKind::Suspect as u8, 2, b'a', 0xe2, 0x82, 0xac];
    body.extend([b'z'; 0xac]);
    assert_eq!(
        decode_message_reference(&body),
        Err(WireError::Malformed),
        "the reference rejects it"
    );
    // The same after a valid message, whose name started the run.
    let mut two = encode_message(&Message::Left(Left {
        name: "node-1",
        incarnation: 1,
    }));
    two.extend(&body);
    assert_eq!(check_decode_all(&body), 0);
    assert_eq!(check_decode_all(&two), 1);
    // A name that starts with a continuation byte.
    let mut body = vec![MessageKind::Left as u8, 2, 0x82, b'a', 1];
    assert_eq!(check_decode_all(&body), 0);
    body[2] = b'b';
    assert_eq!(check_decode_all(&body), 1);
}

/// A message of kind `kind` whose strings and byte strings add up to
/// `big` bytes: bincode's claims then reach the limit (65 507) close to
/// where the bytes end.
fn near_limit(kind: MessageKind, big: usize, small: usize) -> Message<'static> {
    let name = || "n".repeat(big).leak() as &'static str;
    let addr: SocketAddr = "10.0.0.1:1".parse().unwrap();
    match kind {
        MessageKind::Ping => Message::Ping(Ping {
            seq: 1,
            target: name(),
            hash: [1, 2, 3, 4],
        }),
        MessageKind::PingReq => Message::PingReq(PingReq {
            seq: 1,
            target: name(),
            target_addr: addr,
            nack: true,
        }),
        MessageKind::Alive | MessageKind::Join => {
            let a = Alive {
                name: "n",
                addr,
                incarnation: 1,
                meta: Bytes(vec![7; big].leak()),
            };
            if kind == MessageKind::Join {
                Message::Join(Join { member: a })
            } else {
                Message::Alive(a)
            }
        }
        MessageKind::Suspect => Message::Suspect(Suspect {
            name: name(),
            incarnation: 1,
            from: "f".repeat(small).leak(),
        }),
        MessageKind::Dead => Message::Dead(Dead {
            name: name(),
            incarnation: u32::MAX,
            from: "f".repeat(small).leak(),
        }),
        MessageKind::Left => Message::Left(Left {
            name: name(),
            incarnation: 1,
        }),
        MessageKind::JoinReply => Message::JoinReply(JoinReply {
            known: 1,
            from: name(),
        }),
        MessageKind::SyncRequest => Message::SyncRequest(SyncRequest {
            id: 1,
            from: name(),
            buckets: Bytes(vec![0; small].leak()),
        }),
        MessageKind::SyncReply => Message::SyncReply(SyncReply {
            id: 1,
            mask: u64::MAX,
            from: name(),
        }),
        MessageKind::Ack | MessageKind::Nack => Message::Ack(Ack {
            seq: 1,
            hash: [0; 4],
        }),
        MessageKind::Member => Message::Member(MemberEntry {
            name: "n",
            addr,
            incarnation: 1,
            state: WireState::Dead,
            meta: Bytes(vec![7; big].leak()),
        }),
        MessageKind::KvEntry => Message::KvEntry(KvEntry {
            node: "n",
            generation: u64::MAX,
            base: 1,
            version: 2,
            key: "k",
            value: Bytes(vec![7; big].leak()),
            expires_ms: u64::MAX,
            deleted: false,
        }),
        MessageKind::KvDigest | MessageKind::KvReset => Message::KvDigest(KvDigest {
            node: name(),
            generation: u64::MAX,
            heartbeat: 1,
            max_version: u64::MAX,
        }),
        MessageKind::KvPull => Message::KvPull(KvPull {
            reply: true,
            complete: false,
        }),
        MessageKind::UserEvent | MessageKind::Vote | MessageKind::Election => {
            Message::UserEvent(UserEvent {
                head: BusHead {
                    origin: "o",
                    seq: u64::MAX,
                    lamport: 1,
                    at_ms: u64::MAX,
                    ttl_ms: 1,
                },
                name: "e",
                coalesce: true,
                payload: Bytes(vec![7; big].leak()),
            })
        }
        MessageKind::Query => Message::Query(Query {
            head: BusHead {
                origin: "o",
                seq: 1,
                lamport: u64::MAX,
                at_ms: 1,
                ttl_ms: u64::MAX,
            },
            addr,
            name: "q",
            filter: Bytes(&[]),
            payload: Bytes(vec![7; big].leak()),
        }),
        MessageKind::QueryReply => Message::QueryReply(QueryReply {
            asker: "a",
            seq: u64::MAX,
            from: "f",
            ack: false,
            payload: Bytes(vec![7; big].leak()),
        }),
        MessageKind::BusPush | MessageKind::BusHave => Message::BusHave(BusHave {
            reply_mask: 1,
            ids: Bytes(vec![0; big / BUS_ID_LEN * BUS_ID_LEN].leak()),
        }),
        MessageKind::BusWant => Message::BusWant(BusWant {
            ids: Bytes(vec![0; big / BUS_ID_LEN * BUS_ID_LEN].leak()),
        }),
        MessageKind::BusSync => Message::BusSync(BusSync {
            buckets: Bytes(vec![0; big].leak()),
        }),
    }
}

#[test]
fn fast_decoding_claims_against_the_limit_as_bincode_does() {
    // Messages whose claims pass 65 507 at each of their last fields, whole
    // and cut near the end: TooLarge and Truncated must come out at the
    // same step. Bodies this long only reach `decode_message` directly,
    // or in a datagram of the largest size.
    let mut too_large = 0;
    for kind in MessageKind::ALL {
        for big in (LIMIT - 40)..=(LIMIT - 4) {
            for small in [0, 3, 20] {
                let bytes = encode_message(&near_limit(kind, big, small));
                let mut utf8 = Utf8Seen::new(true);
                for cut in [bytes.len(), bytes.len() - 1, bytes.len() - 3] {
                    let r = check_decode(&bytes[..cut], &mut utf8);
                    too_large += usize::from(r == Err(WireError::TooLarge));
                }
            }
        }
    }
    assert!(too_large > 100, "the limit was reached {too_large} times");
}

#[test]
fn huge_and_wide_varints_match_bincode() {
    // Every marker byte in every integer and length position of a short
    // message, followed by short and long runs of 0x00/0xff.
    for tag in 0..MessageKind::ALL.len() as u8 {
        for pos in 1..6 {
            for marker in 249..=255u8 {
                for fill in [0u8, 0xff, 0x7f] {
                    for tail in [0, 1, 2, 4, 8, 12] {
                        let mut b = vec![tag];
                        b.extend(std::iter::repeat_n(1u8, pos - 1));
                        b.push(marker);
                        b.extend(std::iter::repeat_n(fill, tail));
                        check_decode_all(&b);
                    }
                }
            }
        }
    }
}
