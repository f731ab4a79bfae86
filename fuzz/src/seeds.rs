//! The seed datagrams of the fuzz corpora, and the full-budget datagram the
//! codec benchmark measures.
//!
//! Like `checks`, this file is a module of the fuzz crate and is included
//! by path elsewhere (`tests/corpus.rs`, which writes and verifies the
//! checked-in corpus files, and `benches/codec.rs`), so the corpus, its
//! test and the benchmark all use the same datagrams.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use vinery::wire::fuzzing::example_messages;
use vinery::wire::{Alive, Bytes, ClusterTag, DatagramBuilder, Header, Message, DEFAULT_DATAGRAM};

/// Cluster name in the header of every seed datagram (the default one, so
/// the seeds reach the fuzzed endpoint's message handlers).
pub const CORPUS_CLUSTER: &str = "vinery";

/// The header of every seed datagram.
pub fn corpus_header() -> Header {
    Header::new(ClusterTag::from_name(CORPUS_CLUSTER))
}

/// Names of `n` members, `node-0000`, `node-0001`, …
pub fn member_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i:04}")).collect()
}

/// The `i`-th membership update of a full datagram: `name` alive at an
/// IPv4 address, a small incarnation, no metadata.
pub fn alive_update(name: &str, i: usize) -> Message<'_> {
    let [hi, lo] = (i as u16).to_be_bytes();
    Message::Alive(Alive {
        name,
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, hi, lo)), 7946),
        incarnation: (i % 7) as u32 + 1,
        meta: Bytes(b""),
    })
}

/// The probe that leads the full datagram (the example ping).
pub fn full_datagram_ping() -> Message<'static> {
    example_messages()[0]
}

/// Builds a datagram of at most `budget` bytes: [`full_datagram_ping`],
/// then [`alive_update`]s for `names` in order until the next does not
/// fit. Returns the datagram and its messages (the ping first). `names`
/// must hold more names than fit (`budget / 8` is plenty: an update takes
/// more than 8 bytes).
pub fn full_datagram(budget: usize, names: &[String]) -> (Vec<u8>, Vec<Message<'_>>) {
    let mut b = DatagramBuilder::new(corpus_header(), budget);
    let ping = full_datagram_ping();
    b.push(&ping).expect("a ping fits any budget");
    let mut msgs = vec![ping];
    for (i, name) in names.iter().enumerate() {
        let update = alive_update(name, i);
        if b.push(&update).is_err() {
            break;
        }
        msgs.push(update);
    }
    assert!(
        msgs.len() <= names.len(),
        "not enough names to fill the budget"
    );
    (b.finish(), msgs)
}

/// Packs `msgs` into one [`DEFAULT_DATAGRAM`]-byte datagram with the
/// corpus header, as an endpoint's piggyback does (what the codec
/// benchmarks measure); they must fit.
pub fn encode_datagram(msgs: &[Message<'_>]) -> Vec<u8> {
    let mut b = DatagramBuilder::new(corpus_header(), DEFAULT_DATAGRAM);
    for msg in msgs {
        b.push(msg).expect("the messages fit one datagram");
    }
    b.finish()
}

/// Every seed file, as (file name, contents): one datagram per message kind
/// (`seed-<kind>`, from [`example_messages`]), one of all examples
/// (`seed-compound`), and one full [`DEFAULT_DATAGRAM`]-byte datagram
/// (`seed-full-budget`, see [`full_datagram`]).
pub fn seed_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let examples = example_messages();
    for msg in &examples {
        let seed = encode_datagram(std::slice::from_ref(msg));
        files.push((format!("seed-{}", msg.kind().name()), seed));
    }
    files.push(("seed-compound".to_string(), encode_datagram(&examples)));
    let names = member_names(DEFAULT_DATAGRAM / 8);
    let (full, _) = full_datagram(DEFAULT_DATAGRAM, &names);
    files.push(("seed-full-budget".to_string(), full));
    files
}
