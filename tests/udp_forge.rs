//! Forged counters and duplicate names over real UDP on loopback: a plain
//! socket sends the forgeries an insider of a plaintext cluster could, at
//! the maximum values; the cluster must recover once it stops.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{converged, standalone_nodes, wait_until, DEADLINE};
use vinery::runtime::Node;
use vinery::wire::{self, Bytes, ClusterTag, DatagramBuilder, Header, Message};
use vinery::{Event, MemberState};

/// Sends `msg` in one plaintext datagram to every node of `to`.
fn forge(to: &[&Node], msg: &Message<'_>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cluster = ClusterTag::from_name(&to[0].config().protocol.cluster_name);
    let mut b = DatagramBuilder::new(Header::new(cluster), wire::DEFAULT_DATAGRAM);
    b.push(msg).unwrap();
    let data = b.finish();
    for n in to {
        socket.send_to(&data, n.local_addr().unwrap()).unwrap();
    }
}

/// Whether every node but `victim` sees it alive at its real address.
fn alive_everywhere(nodes: &[Node], victim: &Node) -> bool {
    let addr = victim.local_addr();
    nodes.iter().filter(|n| n.name() != victim.name()).all(|n| {
        n.member(victim.name())
            .ok()
            .flatten()
            .is_some_and(|m| m.state == MemberState::Alive && Some(m.addr) == addr)
    })
}

#[test]
fn forged_incarnations_at_the_maximum_do_not_outlast_the_forger() {
    let nodes = standalone_nodes(&["fi-a", "fi-b", "fi-c"], "127.0.0.1", |_| {});
    assert!(wait_until(DEADLINE, || converged(&nodes)));
    let victim = &nodes[2];
    let name = victim.name().to_owned();
    let own = victim.local_member().unwrap().incarnation;
    let mut elsewhere = victim.local_addr().unwrap();
    elsewhere.set_port(elsewhere.port().wrapping_add(1).max(1));
    let others = [&nodes[0], &nodes[1]];
    let refutations = || victim.stats().unwrap().endpoint.refutations;
    for incarnation in [u32::MAX, own.wrapping_add((1 << 31) - 1)] {
        forge(
            &others,
            &Message::Dead(wire::Dead {
                name: &name,
                incarnation,
                from: "fi-a",
            }),
        );
        if incarnation != u32::MAX {
            // Newer than the victim's: it must have heard it and answered.
            assert!(wait_until(DEADLINE, || refutations() > 0), "never landed");
        }
        assert!(
            wait_until(DEADLINE, || alive_everywhere(&nodes, victim)),
            "a forged Dead at {incarnation} stuck"
        );
        forge(
            &others,
            &Message::Alive(wire::Alive {
                name: &name,
                addr: elsewhere,
                incarnation: incarnation.wrapping_add(7),
                meta: Bytes(b""),
            }),
        );
        assert!(
            wait_until(DEADLINE, || alive_everywhere(&nodes, victim)),
            "a forged address at {incarnation} stuck"
        );
    }
}

#[test]
fn forged_generations_at_the_maximum_do_not_outlast_the_owners_writes() {
    let nodes = standalone_nodes(&["fg-a", "fg-b", "fg-c"], "127.0.0.1", |_| {});
    assert!(wait_until(DEADLINE, || converged(&nodes)));
    let owner = &nodes[2];
    let name = owner.name().to_owned();
    owner.set("k", b"real").unwrap();
    let holds = |value: &[u8]| {
        nodes[..2]
            .iter()
            .all(|n| n.peer_value(&name, "k").ok().flatten().as_deref() == Some(value))
    };
    assert!(wait_until(DEADLINE, || holds(b"real")));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for generation in [u64::MAX, now_ms + (1 << 62)] {
        forge(
            &[&nodes[0], &nodes[1]],
            &Message::KvEntry(wire::KvEntry {
                node: &name,
                generation,
                base: 0,
                version: 1,
                key: "k",
                value: Bytes(b"forged"),
                expires_ms: 0,
                deleted: false,
            }),
        );
        assert!(
            wait_until(DEADLINE, || holds(b"real")),
            "a forged generation {generation} stuck"
        );
    }
    // The second forgery was newer than the owner's generation: it landed,
    // and the owner moved past it.
    assert!(owner.stats().unwrap().endpoint.kv_generation_refutations > 0);
    owner.set("k", b"later").unwrap();
    assert!(
        wait_until(DEADLINE, || holds(b"later")),
        "the owner's write lost"
    );
}

#[test]
fn a_second_node_with_a_taken_name_is_told_and_the_holder_keeps_it() {
    let nodes = standalone_nodes(&["fd-a", "fd-b", "fd-c"], "127.0.0.1", |_| {});
    assert!(wait_until(DEADLINE, || converged(&nodes)));
    let holder_addr: SocketAddr = nodes[1].local_addr().unwrap();
    let seed = nodes[0].local_addr().unwrap();
    let twin = Node::new(common::node_config("fd-b", "127.0.0.1", &[seed]));
    let events = twin.subscribe();
    twin.start().unwrap();
    let told = wait_until(DEADLINE, || {
        events.try_iter().any(|e| {
            matches!(e, Event::MemberConflict { ref name, theirs, .. }
                if name == "fd-b" && theirs == holder_addr)
        })
    });
    assert!(told, "the newcomer raised no MemberConflict");
    // The holder keeps its name everywhere, throughout.
    let lost = wait_until(Duration::from_secs(3), || {
        !alive_everywhere(&nodes, &nodes[1])
    });
    assert!(!lost, "the holder lost its name");
    twin.stop();
}
