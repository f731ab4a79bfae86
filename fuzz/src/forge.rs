//! A sequence of forged datagrams from several sources against a small
//! simulated cluster, then the invariant that matters: once forging stops,
//! the cluster recovers. Every member is alive everywhere at its real
//! address and every owner's value is what it wrote, within a few recovery
//! bounds (`docs/SECURITY.md`).
//!
//! Input: 16-byte steps (at most [`MAX_STEPS`]), each one forged message:
//! byte 0 picks the sender, 1 the receiver and the pause after it, 2 the
//! kind, 3 the member it is about, 4..8 an incarnation, 8..16 a generation
//! or version (and the port of a forged address).

use std::time::Duration;

use vinery::sim::{NetworkConfig, NodeId, Sim};
use vinery::wire::{self, Bytes, ClusterTag, DatagramBuilder, Header, Message};
use vinery::{Config, MemberState};

/// Nodes in the cluster: small, so a run stays short.
const NODES: usize = 4;
/// Steps read from one input.
pub const MAX_STEPS: usize = 48;

fn u32_at(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// The forged message a step describes, about `name`.
fn message<'a>(step: &[u8], name: &'a str, from: &'a str, at: std::net::SocketAddr) -> Message<'a> {
    let (incarnation, wide) = (u32_at(&step[4..]), u64_at(&step[8..]));
    match step[2] % 5 {
        0 => Message::Suspect(wire::Suspect {
            name,
            incarnation,
            from,
        }),
        1 => Message::Dead(wire::Dead {
            name,
            incarnation,
            from,
        }),
        2 => {
            let mut addr = at;
            addr.set_port(wide as u16);
            Message::Alive(wire::Alive {
                name,
                addr,
                incarnation,
                meta: Bytes(b""),
            })
        }
        3 => Message::Left(wire::Left { name, incarnation }),
        _ => Message::KvEntry(wire::KvEntry {
            node: name,
            generation: if step[2] & 0x80 != 0 {
                wide
            } else {
                u64::from(incarnation)
            },
            base: 0,
            version: wide.rotate_left(17) % 8 + 1,
            key: "k",
            value: Bytes(b"forged"),
            expires_ms: 0,
            deleted: step[2] & 0x40 != 0,
        }),
    }
}

/// Whether every node sees every other alive at its address, holding its
/// value of "k".
fn recovered(sim: &Sim, nodes: &[NodeId]) -> bool {
    nodes.iter().all(|&x| {
        let ep = sim.endpoint(x);
        nodes.iter().filter(|&&y| y != x).all(|&y| {
            let name = sim.name(y);
            ep.member(name)
                .is_some_and(|m| m.state == MemberState::Alive && m.addr == sim.addr(y))
                && ep.peer_value(name, "k") == Some(name.as_bytes())
        })
    })
}

/// How long a forged claim may outlive the forger (`docs/SECURITY.md`).
pub fn recovery_bound(c: &Config, n: usize) -> Duration {
    let scale = ((n as f64) + 1.0).log10().ceil() as u32;
    let dissemination = c.gossip_interval * c.retransmit_mult * scale;
    2 * dissemination + 2 * (c.probe_interval + c.sync_interval)
}

/// Runs the forged sequence in `data` and checks that the cluster recovers
/// within three recovery bounds of the last forged datagram. Returns how
/// often members had to answer claims about themselves (refutations of
/// incarnations and generations), which shows the forgeries landed.
pub fn check_forge_sequence(data: &[u8]) -> u64 {
    let config = Config::lan();
    let mut sim = Sim::new(1, NetworkConfig::ideal());
    let nodes = sim.add_nodes(NODES, &config);
    sim.join_all(&nodes, Duration::from_secs(10))
        .expect("a clean cluster converges");
    for &x in &nodes {
        let name = sim.name(x).to_owned();
        sim.with_endpoint(x, |ep, now| {
            ep.set(now, "k", name.as_bytes()).expect("fits")
        });
    }
    // Past every node's youth, so a forged claim cannot make one yield.
    sim.run_for(Duration::from_secs(6));
    assert!(recovered(&sim, &nodes), "the clean cluster is settled");
    let cluster = ClusterTag::from_name(&config.cluster_name);
    for step in data.chunks_exact(16).take(MAX_STEPS) {
        let (from, to) = (
            nodes[step[0] as usize % NODES],
            nodes[step[1] as usize % NODES],
        );
        let about = nodes[step[3] as usize % NODES];
        let (name, sender) = (sim.name(about).to_owned(), sim.name(from).to_owned());
        let msg = message(step, &name, &sender, sim.addr(about));
        let mut b = DatagramBuilder::new(Header::new(cluster), wire::DEFAULT_DATAGRAM);
        b.push(&msg).expect("one forged message fits");
        sim.send_raw(from, to, b.finish());
        sim.run_for(Duration::from_millis(u64::from(step[1] >> 4) * 25));
    }
    let bound = 3 * recovery_bound(&config, NODES);
    let start = sim.now();
    let healed = sim.wait_until(Duration::from_millis(100), bound, |s| recovered(s, &nodes));
    assert!(
        healed.is_some(),
        "no recovery within {bound:?} after forging stopped (at {start:?})"
    );
    nodes
        .iter()
        .map(|&x| {
            let stats = sim.endpoint(x).stats();
            stats.refutations + stats.kv_generation_refutations
        })
        .sum()
}
