//! Endpoint unit tests: a handful of endpoints wired together by hand, or
//! one endpoint fed crafted datagrams. Time is always explicit.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::membership::suspicion::suspicion_timeout;
use crate::wire::{Bytes, ClusterTag, Datagram, DatagramBuilder, Header, MessageKind, WireError};

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 7000 + i))
}

fn endpoint(name: &str, i: u16) -> Endpoint {
    Endpoint::new(Config::lan().with_name(name), addr(i), u64::from(i)).unwrap()
}

fn datagram(msgs: &[Message<'_>]) -> Vec<u8> {
    let mut b = DatagramBuilder::new(Header::new(ClusterTag::from_name("vinery")), 1400);
    for m in msgs {
        b.push(m).unwrap();
    }
    b.finish()
}

fn alive(name: &str, i: u16, incarnation: u32) -> Message<'_> {
    Message::Alive(wire::Alive {
        name,
        addr: addr(i),
        incarnation,
        meta: Bytes(b""),
    })
}

fn suspect<'a>(name: &'a str, incarnation: u32, from: &'a str) -> Message<'a> {
    Message::Suspect(wire::Suspect {
        name,
        incarnation,
        from,
    })
}

fn dead<'a>(name: &'a str, incarnation: u32, from: &'a str) -> Message<'a> {
    Message::Dead(wire::Dead {
        name,
        incarnation,
        from,
    })
}

fn feed(ep: &mut Endpoint, now: Time, msgs: &[Message<'_>]) {
    ep.handle_packet(now, addr(999), &datagram(msgs)).unwrap();
}

fn state_of(ep: &Endpoint, name: &str) -> Option<(MemberState, u32)> {
    ep.member(name).map(|m| (m.state, m.incarnation))
}

fn events(ep: &mut Endpoint) -> Vec<(&'static str, String)> {
    std::iter::from_fn(|| ep.poll_event())
        .map(|e| (e.kind().name(), e.node().to_owned()))
        .collect()
}

/// Every message in every datagram `ep` wants to send, with destinations.
fn sent(ep: &mut Endpoint) -> Vec<(SocketAddr, Vec<MessageKind>)> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| {
            let d = Datagram::parse(&t.data, ClusterTag::from_name("vinery")).unwrap();
            (t.to, d.messages().map(|m| m.unwrap().kind()).collect())
        })
        .collect()
}

/// Delivers everything between `eps` until quiet, then runs timers up to
/// `until` in `step`s, repeating. Loss-free and instantaneous.
fn run(eps: &mut [Endpoint], from: Time, until: Time, step: Duration) {
    let mut now = from;
    while now <= until {
        for ep in eps.iter_mut() {
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
        loop {
            let mut moved = false;
            for i in 0..eps.len() {
                while let Some(t) = eps[i].poll_transmit() {
                    moved = true;
                    let src = eps[i].addr();
                    if let Some(j) = eps.iter().position(|e| e.addr() == t.to) {
                        let _ = eps[j].handle_packet(now, src, &t.data);
                    }
                }
            }
            if !moved {
                break;
            }
        }
        now += step;
    }
}

/// `names` joined through the first of them and run for `settle`, with
/// their join events drained.
fn cluster(names: &[&str], settle: Time) -> Vec<Endpoint> {
    let mut eps: Vec<Endpoint> = names.iter().zip(1..).map(|(n, i)| endpoint(n, i)).collect();
    for ep in &mut eps[1..] {
        ep.join(Time::ZERO, &[addr(1)]);
    }
    run(&mut eps, Time::ZERO, settle, Duration::from_millis(10));
    for e in eps.iter_mut() {
        events(e);
    }
    eps
}

#[test]
fn new_member_is_learned_once_and_rebroadcast() {
    let mut a = endpoint("a", 1);
    feed(&mut a, Time::ZERO, &[alive("b", 2, 0)]);
    feed(&mut a, Time::ZERO, &[alive("b", 2, 0)]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Alive, 0)));
    assert_eq!(events(&mut a), vec![("member_joined", "b".to_string())]);
    assert_eq!(a.pending_broadcasts(), 1);
    assert_eq!(a.num_live(), 2);
}

#[test]
fn precedence_rules() {
    let mut a = endpoint("a", 1);
    let t = Time::ZERO;
    feed(&mut a, t, &[alive("b", 2, 1)]);
    // Suspect(i) beats Alive(j) for i >= j; a stale suspicion does not.
    feed(&mut a, t, &[suspect("b", 0, "c")]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Alive, 1)));
    feed(&mut a, t, &[suspect("b", 1, "c")]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Suspect, 1)));
    // Alive(j) does not beat Suspect(i) unless j > i.
    feed(&mut a, t, &[alive("b", 2, 1)]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Suspect, 1)));
    feed(&mut a, t, &[alive("b", 2, 2)]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Alive, 2)));
    // Dead(i) beats Alive(j) for i >= j, and then Suspect(i) changes nothing.
    feed(&mut a, t, &[dead("b", 2, "c")]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Dead, 2)));
    feed(&mut a, t, &[suspect("b", 2, "c")]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Dead, 2)));
    // Alive at the same incarnation does not revive; a higher one does.
    feed(&mut a, t, &[alive("b", 2, 2)]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Dead, 2)));
    feed(&mut a, t, &[alive("b", 2, 3)]);
    assert_eq!(state_of(&a, "b"), Some((MemberState::Alive, 3)));
    // Left beats Alive at the same incarnation.
    feed(
        &mut a,
        t,
        &[Message::Left(wire::Left {
            name: "b",
            incarnation: 3,
        })],
    );
    assert_eq!(state_of(&a, "b"), Some((MemberState::Left, 3)));
    let kinds: Vec<&str> = events(&mut a).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        vec![
            "member_joined",
            "member_suspect",
            "member_recovered",
            "member_failed",
            "member_recovered",
            "member_left"
        ]
    );
}

#[test]
fn suspicion_of_self_is_refuted_with_a_higher_incarnation() {
    let mut a = endpoint("a", 1);
    feed(&mut a, Time::ZERO, &[alive("b", 2, 0)]);
    let before = a.pending_broadcasts();
    feed(&mut a, Time::ZERO, &[suspect("a", 0, "b")]);
    assert_eq!(a.local_member().incarnation, 1);
    assert_eq!(a.local_member().state, MemberState::Alive);
    assert_eq!(a.stats().refutations, 1);
    assert_eq!(
        a.pending_broadcasts(),
        before + 1,
        "the refutation is queued"
    );
    assert_eq!(
        a.health_score(),
        1,
        "Lifeguard: being suspected hurts local health"
    );
    // An old accusation does not make it refute again.
    feed(&mut a, Time::ZERO, &[suspect("a", 0, "b")]);
    assert_eq!(a.local_member().incarnation, 1);
    // Dead about us at our incarnation: refute again.
    feed(&mut a, Time::ZERO, &[dead("a", 1, "b")]);
    assert_eq!(a.local_member().incarnation, 2);
}

#[test]
fn an_accusation_of_self_is_reported_once_per_refutation() {
    let mut a = endpoint("a", 1);
    feed(&mut a, Time::ZERO, &[alive("b", 2, 0)]);
    events(&mut a);
    let accusations = |a: &mut Endpoint| -> Vec<Event> {
        std::iter::from_fn(|| a.poll_event())
            .filter(|e| e.kind() == crate::EventKind::SelfAccused)
            .collect()
    };
    // The same suspicion twice: one refutation, one event.
    feed(
        &mut a,
        Time::ZERO,
        &[suspect("a", 0, "b"), suspect("a", 0, "b")],
    );
    assert_eq!(a.stats().refutations, 1);
    assert_eq!(
        accusations(&mut a),
        [Event::SelfAccused {
            name: "a".into(),
            state: MemberState::Suspect,
            incarnation: 0,
            by: "b".into(),
        }]
    );
    // A stale claim is not refuted, so not reported.
    feed(&mut a, Time::ZERO, &[dead("a", 0, "b")]);
    assert_eq!(accusations(&mut a), []);
    feed(&mut a, Time::ZERO, &[dead("a", 1, "b")]);
    assert_eq!(a.stats().refutations, 2);
    let told = accusations(&mut a);
    assert!(
        matches!(
            &told[..],
            [Event::SelfAccused { state: MemberState::Dead, incarnation: 1, by, .. }] if by == "b"
        ),
        "{told:?}"
    );
    // A refuted leave (a previous life's, or a forgery) accuses no one.
    feed(
        &mut a,
        Time::ZERO,
        &[Message::Left(wire::Left {
            name: "a",
            incarnation: 2,
        })],
    );
    assert_eq!(a.stats().refutations, 3);
    assert_eq!(accusations(&mut a), []);
}

#[test]
fn a_restarted_node_refutes_its_old_record() {
    // The new process starts at incarnation 0; the cluster remembers it dead
    // at 5. The join reply carries the old record, and it refutes.
    let mut seed = endpoint("seed", 1);
    feed(&mut seed, Time::ZERO, &[alive("r", 2, 5)]);
    feed(&mut seed, Time::ZERO, &[dead("r", 5, "x")]);
    let mut restarted = endpoint("r", 2);
    restarted.join(Time::ZERO, &[addr(1)]);
    let mut eps = [seed, restarted];
    run(
        &mut eps,
        Time::ZERO,
        Time::from_secs(1),
        Duration::from_millis(1),
    );
    let [seed, restarted] = &mut eps;
    assert_eq!(restarted.local_member().incarnation, 6);
    assert_eq!(state_of(seed, "r"), Some((MemberState::Alive, 6)));
    assert!(events(seed).contains(&("member_recovered", "r".to_string())));
}

#[test]
fn two_nodes_join_and_probe_each_other() {
    let mut a = endpoint("a", 1);
    let mut b = endpoint("b", 2);
    b.join(Time::ZERO, &[addr(1)]);
    assert_eq!(b.stats().messages_out.get(MessageKind::Join), 1);
    a.handle_timeout(Time::ZERO);
    let mut eps = [a, b];
    run(
        &mut eps,
        Time::ZERO,
        Time::from_secs(5),
        Duration::from_millis(10),
    );
    for ep in &eps {
        assert_eq!(ep.num_live(), 2);
        assert!(
            ep.stats().probes >= 3,
            "probes every second: {}",
            ep.stats().probes
        );
        assert_eq!(ep.stats().failed_probes, 0);
    }
    assert_eq!(eps[0].membership_hash(), eps[1].membership_hash());
}

#[test]
fn an_unanswered_probe_goes_indirect_then_suspects_then_declares_dead() {
    let mut eps = cluster(&["a", "b", "c", "d"], Time::from_secs(3));
    assert!(eps.iter().all(|e| e.num_live() == 4));
    // d crashes: it is removed from the network.
    eps.pop();
    run(
        &mut eps,
        Time::from_secs(3),
        Time::from_secs(40),
        Duration::from_millis(10),
    );
    for e in eps.iter_mut() {
        assert_eq!(
            state_of(e, "d").map(|s| s.0),
            Some(MemberState::Dead),
            "{}",
            e.name()
        );
        let evs = events(e);
        assert!(
            evs.contains(&("member_suspect", "d".to_string()))
                || evs.contains(&("member_failed", "d".to_string()))
        );
        assert!(evs.contains(&("member_failed", "d".to_string())));
    }
    let total = |f: fn(&Stats) -> u64| eps.iter().map(|e| f(e.stats())).sum::<u64>();
    assert!(total(|s| s.indirect_probes) > 0);
    assert!(total(|s| s.failed_probes) > 0);
    assert!(total(|s| s.deaths_declared) > 0);
    assert!(total(|s| s.messages_out.get(MessageKind::PingReq)) > 0);
    assert!(
        total(|s| s.messages_out.get(MessageKind::Nack)) > 0,
        "relays nack an unanswered target"
    );
}

#[test]
fn graceful_leave_is_reported_as_left_not_failed() {
    let mut eps = cluster(&["a", "b", "c"], Time::from_secs(3));
    eps[2].leave(Time::from_secs(3));
    run(
        &mut eps,
        Time::from_secs(3),
        Time::from_secs(30),
        Duration::from_millis(10),
    );
    for e in eps[..2].iter_mut() {
        assert_eq!(state_of(e, "c").map(|s| s.0), Some(MemberState::Left));
        assert_eq!(events(e), vec![("member_left", "c".to_string())]);
    }
    assert!(eps[2].has_left());
    assert_eq!(
        eps[2].pending_broadcasts(),
        0,
        "the Left broadcast went out"
    );
}

#[test]
fn ping_for_another_name_is_not_acked() {
    let mut a = endpoint("a", 1);
    feed(
        &mut a,
        Time::ZERO,
        &[Message::Ping(wire::Ping {
            seq: 7,
            target: "someone-else",
            hash: [0; 4],
        })],
    );
    assert!(sent(&mut a).is_empty());
    assert_eq!(a.stats().drops_for("misdirected_ping"), 1);
    feed(
        &mut a,
        Time::ZERO,
        &[Message::Ping(wire::Ping {
            seq: 7,
            target: "a",
            hash: [0; 4],
        })],
    );
    assert_eq!(sent(&mut a), vec![(addr(999), vec![MessageKind::Ack])]);
}

#[test]
fn a_bad_datagram_changes_nothing_even_after_good_messages() {
    let mut a = endpoint("a", 1);
    let mut bytes = datagram(&[alive("b", 2, 0), alive("c", 3, 0)]);
    let good_len = bytes.len();
    bytes.push(200); // an unknown message tag after two good messages
    assert_eq!(
        a.handle_packet(Time::ZERO, addr(2), &bytes),
        Err(PacketError::Wire(WireError::Malformed))
    );
    assert_eq!(a.num_known(), 1);
    assert_eq!(a.pending_broadcasts(), 0);
    assert!(a.poll_event().is_none());
    assert_eq!(a.stats().drops_for("malformed"), 1);
    bytes.truncate(good_len);
    let other_cluster = {
        let mut b = DatagramBuilder::new(Header::new(ClusterTag::from_name("other")), 1400);
        b.push(&alive("b", 2, 0)).unwrap();
        b.finish()
    };
    assert_eq!(
        a.handle_packet(Time::ZERO, addr(2), &other_cluster),
        Err(PacketError::Wire(WireError::WrongCluster))
    );
    assert_eq!(a.stats().drops_for("wrong_cluster"), 1);
    assert_eq!(a.num_known(), 1);
    a.handle_packet(Time::ZERO, addr(2), &bytes).unwrap();
    assert_eq!(a.num_known(), 3);
}

#[test]
fn member_cap_refuses_and_counts_new_names() {
    let mut config = Config::lan().with_name("a");
    config.max_members = 3;
    let mut a = Endpoint::new(config, addr(1), 1).unwrap();
    for (i, name) in ["b", "c", "d", "e"].iter().enumerate() {
        feed(&mut a, Time::ZERO, &[alive(name, i as u16 + 2, 0)]);
    }
    assert_eq!(a.num_known(), 3);
    assert_eq!(a.stats().drops_for("member_limit"), 2);
}

#[test]
fn buddy_system_tells_a_suspect_with_the_probe() {
    let mut a = endpoint("a", 1);
    feed(&mut a, Time::ZERO, &[alive("b", 2, 0)]);
    feed(&mut a, Time::ZERO, &[suspect("b", 0, "c")]);
    sent(&mut a);
    // Run until a probes b.
    let ping = loop {
        let now = a.poll_timeout().unwrap();
        a.handle_timeout(now);
        let out = sent(&mut a);
        if let Some((_, kinds)) = out
            .into_iter()
            .find(|(to, k)| *to == addr(2) && k.contains(&MessageKind::Ping))
        {
            break kinds;
        }
        assert!(now < Time::from_secs(10));
    };
    assert_eq!(&ping[..2], &[MessageKind::Suspect, MessageKind::Ping]);
}

#[test]
fn suspicion_timer_shrinks_with_independent_confirmations() {
    // Ten members, so k = mult − 2 = 2 confirmations are expected.
    let run_with = |confirmers: &[&str]| -> Time {
        let mut a = endpoint("a", 1);
        let names: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
        for (i, n) in names.iter().enumerate() {
            feed(&mut a, Time::ZERO, &[alive(n, i as u16 + 2, 0)]);
        }
        feed(&mut a, Time::ZERO, &[suspect("m0", 0, "m1")]);
        for c in confirmers {
            feed(&mut a, Time::ZERO, &[suspect("m0", 0, c)]);
        }
        // Keep everyone else answering; find when m0 is declared dead.
        let mut now = Time::ZERO;
        while state_of(&a, "m0").unwrap().0 != MemberState::Dead {
            now += Duration::from_millis(100);
            a.handle_timeout(now);
            sent(&mut a);
            assert!(now < Time::from_secs(100));
        }
        now
    };
    let min = suspicion_timeout(4, 10, Duration::from_secs(1));
    assert_eq!(min, Duration::from_secs(4));
    let unconfirmed = run_with(&[]);
    let once = run_with(&["m2"]);
    let twice = run_with(&["m2", "m3", "m1", "m2"]);
    assert!(unconfirmed >= Time::ZERO + min * 6, "{unconfirmed}");
    assert!(once < unconfirmed && once > Time::ZERO + min, "{once}");
    assert!(
        twice <= Time::ZERO + min + Duration::from_millis(100),
        "{twice}"
    );
}

#[test]
fn quiet_cluster_arms_only_the_probe_timer() {
    let mut eps = cluster(&["a", "b", "c"], Time::from_secs(20));
    assert!(eps.iter().all(|e| e.pending_broadcasts() == 0));
    let before: Vec<Stats> = eps.iter().map(|e| e.stats().clone()).collect();
    run(
        &mut eps,
        Time::from_secs(20),
        Time::from_secs(30),
        Duration::from_millis(10),
    );
    for (e, b) in eps.iter().zip(before) {
        let per_s = (e.stats().bytes_out - b.bytes_out) as f64 / 10.0;
        // One ping and one ack per second, and no state exchanged.
        assert!(per_s < 80.0, "{} sends {per_s} B/s", e.name());
        for kind in [
            MessageKind::Member,
            MessageKind::SyncRequest,
            MessageKind::Alive,
        ] {
            assert_eq!(
                e.stats().messages_out.get(kind),
                b.messages_out.get(kind),
                "{kind:?}"
            );
        }
    }
}

#[test]
fn metadata_change_reaches_peers_as_an_update() {
    let mut eps = cluster(&["a", "b", "c"], Time::from_secs(3));
    let now = Time::from_secs(3);
    let too_big = vec![0u8; wire::MAX_META_LEN + 1];
    assert_eq!(eps[2].set_meta(now, &too_big).unwrap_err().field, "meta");
    assert_eq!(
        eps[2].local_member().incarnation,
        0,
        "a refused change changes nothing"
    );
    eps[2].set_meta(now, b"role=db").unwrap();
    assert_eq!(eps[2].local_member().incarnation, 1);
    run(&mut eps, now, Time::from_secs(4), Duration::from_millis(10));
    for e in eps[..2].iter_mut() {
        let c = e.member("c").unwrap();
        assert_eq!((c.meta.as_slice(), c.incarnation), (&b"role=db"[..], 1));
        assert_eq!(events(e), vec![("member_updated", "c".to_string())]);
    }
    // Setting the same metadata again is not news.
    eps[2].set_meta(Time::from_secs(4), b"role=db").unwrap();
    assert_eq!(eps[2].local_member().incarnation, 1);
}

#[test]
fn poll_timeout_is_never_before_the_latest_time_given() {
    let mut ep = endpoint("a", 1);
    let t0 = Time::from_secs(100);
    ep.join(t0, &[addr(2)]);
    // A write later than the join's retry deadline runs no timer: the
    // retry is overdue, and due now.
    let later = t0 + 10 * ep.config().join_retry_interval;
    ep.set(later, "k", b"v").unwrap();
    assert_eq!(ep.poll_timeout(), Some(later));
    ep.handle_timeout(later);
    assert!(ep.poll_timeout().is_some_and(|t| t > later));
}

#[test]
fn member_counts_track_states_without_listing_members() {
    let mut ep = endpoint("a", 1);
    let t0 = Time::from_secs(1);
    let bytes = datagram(&[alive("b", 2, 1), alive("c", 3, 1)]);
    ep.handle_packet(t0, addr(2), &bytes).unwrap();
    ep.handle_packet(t0, addr(2), &datagram(&[suspect("c", 1, "b")]))
        .unwrap();
    let counts = ep.member_counts();
    assert_eq!((counts.alive, counts.suspect, counts.dead), (2, 1, 0));
    assert_eq!(counts.live(), ep.num_live());
    assert_eq!(counts.known(), ep.num_known());
}

#[test]
fn first_deadlines_count_from_the_start() {
    let mut ep = endpoint("a", 1);
    let t0 = Time::from_secs(1_000);
    ep.start(t0);
    let first = ep.poll_timeout().expect("the probe timer is armed");
    assert!(first >= t0 && first <= t0 + ep.config().probe_interval);
    // Starting again changes nothing: the clock runs from the first time.
    ep.start(t0 + Duration::from_secs(60));
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(60)));
}
