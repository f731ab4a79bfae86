//! Invariants of the wire decoder and of the endpoint under hostile input.
//!
//! This one file is the `checks` module of the fuzz crate (`fuzz/src/lib.rs`)
//! and is also included by path into the main crate's `tests/corpus.rs`, so
//! the fuzz targets and the corpus replay test cannot drift apart. It uses
//! only vinery's public API. Every function panics, with a message naming
//! the broken invariant, when an invariant does not hold; a clean return
//! means the input was handled correctly (accepted or rejected).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use vinery::wire::{
    self, fuzzing, Alive, Bytes, ClusterTag, Datagram, DatagramBuilder, Header, Message, Suspect,
    WireError, HEADER_LEN,
};
use vinery::{Config, Endpoint, Event, Member, MemberState, PacketError, Time};

/// What one datagram decoded to, as established by [`check_decode`].
#[derive(Debug)]
pub struct Decoded<'a> {
    /// `Ok` if the whole datagram decodes (header and every message),
    /// otherwise the first error.
    pub result: Result<(), WireError>,
    /// The messages decoded before the first error (all of them on success).
    pub messages: Vec<Message<'a>>,
    /// The offset just past each of `messages`, header included; strictly
    /// increasing. The datagram cut at one of these offsets is itself a
    /// valid datagram of the messages before the cut.
    pub ends: Vec<usize>,
}

/// Decodes `bytes` as a datagram of whatever cluster its header names, by
/// every decoding API, and checks that they agree (the hand-written decoder
/// with the bincode definition too, on the whole input and on each message:
/// see [`check_same_decode`]), that each step consumes at least one byte
/// and stays inside the datagram, and that every decoded message
/// round-trips (see [`check_round_trip`]).
pub fn check_decode(bytes: &[u8]) -> Decoded<'_> {
    // The raw input as one message, header or not: the widest differential
    // test of the hand-written decoder against the bincode definition.
    // Either outcome is fine; only agreement matters.
    let _ = check_same_decode(bytes);
    let fail = |e: WireError| Decoded {
        result: Err(e),
        messages: Vec::new(),
        ends: Vec::new(),
    };
    let header = match Header::parse(bytes) {
        Ok((header, body)) => {
            assert_eq!(body, &bytes[HEADER_LEN..], "header must be the first bytes");
            assert_eq!(
                header.to_bytes()[..],
                bytes[..HEADER_LEN],
                "an accepted header re-encodes to the same bytes"
            );
            header
        }
        Err(e) => {
            // Header errors come before the cluster check, whatever the tag.
            for tag in [ClusterTag(0), ClusterTag::from_name("vinery")] {
                assert_eq!(
                    Datagram::parse(bytes, tag).err(),
                    Some(e),
                    "Datagram::parse disagrees with Header::parse"
                );
            }
            return fail(e);
        }
    };
    assert_eq!(
        Datagram::parse(bytes, ClusterTag(header.cluster.0 ^ 1)).err(),
        Some(WireError::WrongCluster),
        "a datagram of another cluster must be rejected"
    );
    let datagram = match Datagram::parse(bytes, header.cluster) {
        Ok(d) => d,
        Err(WireError::NoKey) => {
            assert_ne!(
                header.flags & wire::FLAG_ENCRYPTED,
                0,
                "only sealed datagrams need a key"
            );
            return fail(WireError::NoKey);
        }
        Err(e) => {
            assert_eq!(e, WireError::Empty, "only an empty body fails here");
            assert_eq!(
                bytes.len(),
                HEADER_LEN,
                "Empty means nothing after the header"
            );
            return fail(e);
        }
    };
    assert_eq!(datagram.header, header);

    // Step through the body with decode_message, which reports how much
    // each message used.
    let mut messages = Vec::new();
    let mut ends = Vec::new();
    let mut error = None;
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        match check_same_decode(&bytes[offset..]) {
            Ok((msg, used)) => {
                assert!(used > 0, "a message consumed no bytes at offset {offset}");
                assert!(
                    used <= bytes.len() - offset,
                    "a message at offset {offset} claims {used} bytes, past the end"
                );
                check_round_trip(&msg, used);
                offset += used;
                assert!(ends.last().copied() < Some(offset), "offsets must increase");
                ends.push(offset);
                messages.push(msg);
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }

    // The iterator yields the same messages, then the error, then stops.
    let mut expected: Vec<Result<Message<'_>, WireError>> =
        messages.iter().copied().map(Ok).collect();
    expected.extend(error.map(Err));
    let iterated: Vec<_> = datagram.messages().collect();
    assert_eq!(
        iterated, expected,
        "messages() disagrees with decode_message"
    );

    // decode_all accepts or rejects the datagram whole.
    let mut all = Vec::new();
    let result = datagram.decode_all(&mut all);
    match error {
        None => {
            assert_eq!(result, Ok(()), "decode_all rejected a good datagram");
            assert_eq!(all, messages, "decode_all disagrees with decode_message");
        }
        Some(e) => assert_eq!(result, Err(e), "decode_all disagrees on the error"),
    }
    if result.is_ok() {
        check_repack(header, bytes.len(), &messages);
    }
    Decoded {
        result,
        messages,
        ends,
    }
}

/// Decodes one message from the start of `bytes` with
/// [`fuzzing::decode_message`] (the hand-written decoder) and checks that
/// [`fuzzing::decode_message_reference`] (serde + bincode, the format's
/// definition) gives the same: the same message and length, or the same
/// error. Returns the result.
pub fn check_same_decode(bytes: &[u8]) -> Result<(Message<'_>, usize), WireError> {
    let fast = fuzzing::decode_message(bytes);
    assert_eq!(
        fast,
        fuzzing::decode_message_reference(bytes),
        "the hand-written decoder disagrees with bincode"
    );
    fast
}

/// Checks that a message decoded from `used` bytes is valid, re-encodes
/// (with [`fuzzing::encode_message`] and with [`DatagramBuilder::push`], to the
/// bytes [`fuzzing::encode_message_reference`] gives) into no more than `used`
/// bytes, decodes back equal, and that the builder refuses it, unchanged,
/// when one byte short.
pub fn check_round_trip(msg: &Message<'_>, used: usize) {
    assert_eq!(
        fuzzing::validate(msg),
        Ok(()),
        "a decoded message must be valid"
    );
    let encoded = fuzzing::encode_message(msg);
    assert!(!encoded.is_empty(), "a valid message must encode");
    assert_eq!(
        encoded,
        fuzzing::encode_message_reference(msg),
        "the hand-written encoder disagrees with bincode"
    );
    assert!(
        encoded.len() <= used,
        "{:?} re-encodes to {} bytes, more than the {used} it was decoded from",
        msg.kind(),
        encoded.len()
    );
    let (back, n) = fuzzing::decode_message(&encoded).expect("a re-encoded message must decode");
    assert_eq!(
        n,
        encoded.len(),
        "decoding the re-encoding must use all of it"
    );
    assert_eq!(&back, msg, "round trip changed the message");
    assert_eq!(
        fuzzing::encode_message(&back),
        encoded,
        "encoding is not stable"
    );

    let header = Header::new(ClusterTag(0));
    let mut exact = DatagramBuilder::new(header, HEADER_LEN + encoded.len());
    assert_eq!(exact.push(msg), Ok(()), "a message must fit its own size");
    assert_eq!(exact.remaining(), 0);
    assert_eq!(
        &exact.finish()[HEADER_LEN..],
        &encoded[..],
        "builder encodes differently"
    );
    let mut short = DatagramBuilder::new(header, HEADER_LEN + encoded.len() - 1);
    assert!(
        short.push(msg).is_err(),
        "a message must not fit one byte less"
    );
    assert!(
        short.is_empty() && short.len() == HEADER_LEN,
        "a failed push changed the builder"
    );
}

/// Packs the messages of a good datagram of `len` bytes again: into a
/// builder of the same budget they must all fit (re-encoding never grows a
/// message) and decode to the same messages; into a builder of half the
/// body's budget, pushes fail cleanly and the result stays within budget.
fn check_repack(header: Header, len: usize, messages: &[Message<'_>]) {
    let mut b = DatagramBuilder::new(header, len);
    for m in messages {
        b.push(m)
            .expect("re-encoded messages fit their own datagram");
    }
    assert_eq!(b.message_count(), messages.len());
    let repacked = b.finish();
    assert!(repacked.len() <= len);
    let d = Datagram::parse(&repacked, header.cluster).expect("repacked datagram parses");
    let mut again = Vec::new();
    d.decode_all(&mut again).expect("repacked datagram decodes");
    assert_eq!(again, messages, "repacking changed the messages");

    let budget = HEADER_LEN + (len - HEADER_LEN) / 2;
    let mut b = DatagramBuilder::new(header, budget);
    for m in messages {
        let before = (b.len(), b.message_count());
        if b.push(m).is_err() {
            assert_eq!((b.len(), b.message_count()), before, "a failed push wrote");
        }
        assert!(b.len() <= budget, "builder went over its budget");
    }
    assert!(b.finish().len() <= budget);
}

/// Name of the fuzzed endpoint.
pub const ENDPOINT_NAME: &str = "fuzz";
/// Seed of the fuzzed endpoint's random generator.
pub const ENDPOINT_SEED: u64 = 0x5eed_f022;
/// Names of the members the fuzzed endpoint knows before the fuzzed
/// datagram arrives. The last one is suspect.
pub const PEERS: [&str; 3] = ["node-0001", "node-0002", "node-0003"];
/// How far past the fuzzed datagram the timers are stepped one deadline
/// at a time (covers the probe timeout, indirect probes and gossip ticks).
pub const STEP_HORIZON: Duration = Duration::from_secs(3);
/// Later times the timers are then jumped to: past every suspicion
/// timeout, and past `dead_retention` so failed members are forgotten.
pub const JUMPS: [Duration; 2] = [Duration::from_secs(40), Duration::from_secs(2 * 3600)];
/// Most timer steps allowed within [`STEP_HORIZON`] before the endpoint is
/// deemed to be spinning.
pub const MAX_STEPS: usize = 500;

/// Address of the fuzzed endpoint.
pub fn endpoint_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 7946)
}

/// Address of `PEERS[i]`. Fuzzed datagrams come from `peer_addr(0)`.
pub fn peer_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + i as u8)), 7946)
}

/// The fuzzed endpoint's configuration: the LAN preset, named
/// [`ENDPOINT_NAME`], default cluster and datagram budget.
pub fn endpoint_config() -> Config {
    Config::lan().with_name(ENDPOINT_NAME)
}

/// The datagram that introduces [`PEERS`] to the fuzzed endpoint: an alive
/// record for each (the first with metadata) and a suspicion of the last.
pub fn setup_datagram() -> Vec<u8> {
    let config = endpoint_config();
    let header = Header::new(ClusterTag::from_name(&config.cluster_name));
    let mut b = DatagramBuilder::new(header, config.max_datagram);
    for (i, name) in PEERS.iter().enumerate() {
        let meta: &[u8] = if i == 0 { b"role=web" } else { b"" };
        let alive = Message::Alive(Alive {
            name,
            addr: peer_addr(i),
            incarnation: 1,
            meta: Bytes(meta),
        });
        b.push(&alive).expect("setup fits");
    }
    let suspect = Message::Suspect(Suspect {
        name: PEERS[2],
        incarnation: 1,
        from: PEERS[0],
    });
    b.push(&suspect).expect("setup fits");
    b.finish()
}

/// A fuzzed endpoint ready for input: it has taken in [`setup_datagram`]
/// from `peer_addr(0)` and run its timers until its first probe is in
/// flight; every output so far is checked and drained. Returns it with
/// the current time.
pub fn fuzz_endpoint() -> (Endpoint, Time) {
    let mut ep =
        Endpoint::new(endpoint_config(), endpoint_addr(), ENDPOINT_SEED).expect("valid config");
    let mut now = Time::ZERO;
    ep.handle_packet(now, peer_addr(0), &setup_datagram())
        .expect("setup datagram is valid");
    drain(&mut ep);
    assert_eq!(ep.num_known(), 1 + PEERS.len(), "setup taught the peers");
    while ep.stats().probes == 0 {
        now = step(&mut ep, now).expect("a probe is always scheduled");
    }
    (ep, now)
}

/// Everything observable about an endpoint that a rejected datagram must
/// not change.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    /// [`Endpoint::members`].
    pub members: Vec<Member>,
    /// [`Endpoint::state_hash`]: membership and key/value state.
    pub hash: [u8; 4],
    /// [`Endpoint::pending_broadcasts`].
    pub pending: usize,
    /// [`Endpoint::health_score`].
    pub health: u32,
    /// [`Endpoint::poll_timeout`].
    pub timeout: Option<Time>,
}

impl Snapshot {
    /// Takes a snapshot of `ep`.
    pub fn of(ep: &Endpoint) -> Snapshot {
        Snapshot {
            members: ep.members(),
            hash: ep.state_hash(),
            pending: ep.pending_broadcasts(),
            health: ep.health_score(),
            timeout: ep.poll_timeout(),
        }
    }
}

/// Feeds `bytes` to a fresh [`fuzz_endpoint`] as a datagram from
/// `peer_addr(0)`, then, if it was accepted, runs its timers (one deadline
/// at a time for [`STEP_HORIZON`], then the [`JUMPS`]). Checks that the
/// endpoint accepts exactly the datagrams the decoder accepts, that a
/// rejected datagram changes nothing observable and produces no output,
/// that every datagram it sends fits its budget and decodes (see
/// [`check_output`]), that its timers always move forward, and that it
/// never gives up its own liveness. Returns what `handle_packet` returned.
pub fn check_endpoint(bytes: &[u8]) -> Result<(), PacketError> {
    check_endpoint_each(&[bytes])[0]
}

/// [`check_endpoint`] for each of `inputs`, returning each result, but
/// faster for inputs that are mostly rejected: rejected inputs are fed one
/// after another to the same endpoint (a rejection must change nothing, so
/// it still is a fresh one, and this checks that rejections do not add up
/// either); after an accepted input, the next one gets a new endpoint.
pub fn check_endpoint_each(inputs: &[&[u8]]) -> Vec<Result<(), PacketError>> {
    let mut fresh: Option<(Endpoint, Time)> = None;
    let mut results = Vec::with_capacity(inputs.len());
    for bytes in inputs {
        let (ep, now) = fresh.get_or_insert_with(fuzz_endpoint);
        let now = *now;
        let result = feed(ep, now, bytes);
        if result.is_ok() {
            let (mut ep, _) = fresh.take().expect("inserted above");
            drain(&mut ep);
            run_timers(&mut ep, now);
        }
        results.push(result);
    }
    results
}

/// Hands `bytes` to `ep` at `now`, checking the endpoint agrees with the
/// decoder and, if it rejects the datagram, that nothing observable changed.
fn feed(ep: &mut Endpoint, now: Time, bytes: &[u8]) -> Result<(), PacketError> {
    let cluster = ClusterTag::from_name(&ep.config().cluster_name);
    let expected = Datagram::parse(bytes, cluster).and_then(|d| d.decode_all(&mut Vec::new()));
    let before = Snapshot::of(ep);
    let result = ep.handle_packet(now, peer_addr(0), bytes);
    // The endpoint's gate refuses what the decoder cannot read (a sealed
    // datagram without a key) under the same name.
    assert_eq!(
        result.map_err(PacketError::name),
        expected.map_err(WireError::name),
        "endpoint and decoder disagree"
    );
    if result.is_err() {
        assert_eq!(
            Snapshot::of(ep),
            before,
            "a rejected datagram changed state"
        );
        assert!(
            ep.poll_transmit().is_none(),
            "a rejected datagram was answered"
        );
        assert!(
            ep.poll_event().is_none(),
            "a rejected datagram raised an event"
        );
    }
    result
}

/// Steps `ep`'s timers one deadline at a time from `now` to
/// [`STEP_HORIZON`] later, then jumps them by each of [`JUMPS`], checking
/// and draining the output after each.
fn run_timers(ep: &mut Endpoint, now: Time) {
    let mut t = now;
    let mut steps = 0;
    while ep
        .poll_timeout()
        .is_some_and(|next| next <= now + STEP_HORIZON)
    {
        t = step(ep, t).expect("checked above");
        steps += 1;
        assert!(steps <= MAX_STEPS, "timers spin: {steps} steps by {t}");
    }
    for jump in JUMPS {
        ep.handle_timeout(now + jump);
        drain(ep);
    }
}

/// Runs the endpoint's next deadline (at `now` if it is already due) and
/// checks that the next one is later; returns the time it ran at, or
/// `None` if no deadline is set.
fn step(ep: &mut Endpoint, now: Time) -> Option<Time> {
    let at = ep.poll_timeout()?.max(now);
    ep.handle_timeout(at);
    drain(ep);
    if let Some(next) = ep.poll_timeout() {
        assert!(
            next > at,
            "handle_timeout({at}) left a deadline due at {next}"
        );
    }
    Some(at)
}

/// Checks and drains every datagram and event `ep` has queued, and checks
/// the endpoint itself: it is alive in its own view and knows each member
/// once.
fn drain(ep: &mut Endpoint) {
    while let Some(t) = ep.poll_transmit() {
        check_output(ep.config(), &t.data);
    }
    while let Some(event) = ep.poll_event() {
        let node = event.node();
        // Only these two are about the endpoint itself by design: a claim
        // it refuted, and another node heard under its name.
        let about_self = matches!(
            event,
            Event::SelfAccused { .. } | Event::MemberConflict { .. }
        );
        if !about_self {
            assert_ne!(
                node, ENDPOINT_NAME,
                "an event about the endpoint itself: {event:?}"
            );
        }
        assert!(!node.is_empty() && node.len() <= wire::MAX_NAME_LEN);
    }
    assert_eq!(
        ep.local_member().state,
        MemberState::Alive,
        "the endpoint gave itself up"
    );
    let members = ep.members();
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), members.len(), "a member is listed twice");
    assert_eq!(ep.num_known(), members.len());
}

/// Checks one datagram an endpoint with `config` sent: within its budget,
/// of its cluster, and decoding whole. (Round trips of what the encoder
/// produces are [`check_decode`]'s business; repeating them for every
/// datagram sent would slow the endpoint fuzzer several times over.)
pub fn check_output(config: &Config, data: &[u8]) {
    assert!(
        data.len() <= config.max_datagram,
        "sent {} bytes over a {}-byte budget",
        data.len(),
        config.max_datagram
    );
    let cluster = ClusterTag::from_name(&config.cluster_name);
    let d = Datagram::parse(data, cluster).expect("a sent datagram must parse");
    d.decode_all(&mut Vec::new())
        .expect("a sent datagram must decode");
}
