use super::fuzzing::example_messages;
use super::*;

fn cluster() -> ClusterTag {
    ClusterTag::from_name("test")
}

fn datagram_of(msgs: &[Message<'_>]) -> Vec<u8> {
    let mut b = DatagramBuilder::new(Header::new(cluster()), MAX_DATAGRAM);
    for m in msgs {
        b.push(m).unwrap();
    }
    b.finish()
}

#[test]
fn every_message_kind_round_trips() {
    let msgs = example_messages();
    let kinds: Vec<MessageKind> = msgs.iter().map(Message::kind).collect();
    assert_eq!(
        kinds,
        MessageKind::ALL.to_vec(),
        "examples cover every kind in tag order"
    );
    let bytes = datagram_of(&msgs);
    let d = Datagram::parse(&bytes, cluster()).unwrap();
    let mut out = Vec::new();
    d.decode_all(&mut out).unwrap();
    assert_eq!(out, msgs);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for msg in example_messages() {
        let bytes = datagram_of(&[msg]);
        for cut in 0..bytes.len() {
            let res = Datagram::parse(&bytes[..cut], cluster()).and_then(|d| {
                let mut out = Vec::new();
                d.decode_all(&mut out)
            });
            assert!(res.is_err(), "{:?} cut at {cut} decoded", msg.kind());
        }
    }
}

#[test]
fn header_checks_reject_foreign_datagrams() {
    let good = datagram_of(&[example_messages()[0]]);
    assert!(Datagram::parse(&good, cluster()).is_ok());
    assert_eq!(
        Datagram::parse(&good, ClusterTag::from_name("other")).unwrap_err(),
        WireError::WrongCluster
    );
    let mut bad = good.clone();
    bad[0] = b'x';
    assert_eq!(
        Datagram::parse(&bad, cluster()).unwrap_err(),
        WireError::BadMagic
    );
    let mut bad = good.clone();
    bad[2] = PROTOCOL_VERSION + 1;
    assert_eq!(
        Datagram::parse(&bad, cluster()).unwrap_err(),
        WireError::UnsupportedVersion(PROTOCOL_VERSION + 1)
    );
    let mut bad = good.clone();
    bad[3] = 0x80;
    assert_eq!(
        Datagram::parse(&bad, cluster()).unwrap_err(),
        WireError::UnknownFlags(0x80)
    );
    assert_eq!(
        Datagram::parse(&good[..HEADER_LEN], cluster()).unwrap_err(),
        WireError::Empty
    );
    assert_eq!(
        Datagram::parse(&vec![0; MAX_DATAGRAM + 1], cluster()).unwrap_err(),
        WireError::Oversized
    );
}

#[test]
fn limits_are_enforced_on_decode() {
    let long = "x".repeat(MAX_NAME_LEN + 1);
    let bytes = datagram_of(&[Message::Left(Left {
        name: &long,
        incarnation: 1,
    })]);
    let d = Datagram::parse(&bytes, cluster()).unwrap();
    assert_eq!(
        d.messages().next().unwrap().unwrap_err(),
        WireError::BadName
    );

    let meta = vec![0u8; MAX_META_LEN + 1];
    let addr = "127.0.0.1:1".parse().unwrap();
    let bytes = datagram_of(&[Message::Alive(Alive {
        name: "a",
        addr,
        incarnation: 0,
        meta: Bytes(&meta),
    })]);
    let d = Datagram::parse(&bytes, cluster()).unwrap();
    assert_eq!(
        d.messages().next().unwrap().unwrap_err(),
        WireError::BadMeta
    );

    let bytes = datagram_of(&[Message::SyncRequest(SyncRequest {
        id: 1,
        from: "a",
        buckets: Bytes(&[0; 12]),
    })]);
    let d = Datagram::parse(&bytes, cluster()).unwrap();
    assert_eq!(
        d.messages().next().unwrap().unwrap_err(),
        WireError::BadBuckets
    );
}

#[test]
fn a_huge_length_claim_is_refused_without_allocating_it() {
    // Tag of Alive, then a name length of u64::MAX (varint 0xFF + 8 bytes).
    let mut bytes = Header::new(cluster()).to_bytes().to_vec();
    bytes.push(4);
    bytes.push(0xff);
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    let d = Datagram::parse(&bytes, cluster()).unwrap();
    assert!(d.messages().next().unwrap().is_err());
}

#[test]
fn builder_never_exceeds_its_budget() {
    let alive = Message::Alive(Alive {
        name: "node-123456",
        addr: "192.168.100.200:7946".parse().unwrap(),
        incarnation: 123_456,
        meta: Bytes(b"role=db,zone=eu-west-1c"),
    });
    let encoded = encode_message(&alive);
    for budget in [MIN_DATAGRAM, 600, 1000, DEFAULT_DATAGRAM, 9000] {
        let mut b = DatagramBuilder::new(Header::new(cluster()), budget);
        let mut pushed = 0;
        while b.push(&alive).is_ok() {
            pushed += 1;
        }
        while b.push_encoded(&encoded).is_ok() {
            pushed += 1;
        }
        assert!(b.remaining() < encoded.len());
        let bytes = b.finish();
        assert!(bytes.len() <= budget, "{} > {budget}", bytes.len());
        assert_eq!(
            Datagram::parse(&bytes, cluster())
                .unwrap()
                .messages()
                .count(),
            pushed
        );
    }
}

#[test]
fn a_failed_push_leaves_the_datagram_unchanged() {
    let mut b = DatagramBuilder::new(Header::new(cluster()), 20);
    b.push(&Message::Nack(Nack { seq: 1 })).unwrap();
    let before = b.len();
    let big = Message::Left(Left {
        name: "a-rather-long-member-name",
        incarnation: 1,
    });
    assert!(b.push(&big).is_err());
    assert_eq!(b.len(), before);
    assert_eq!(b.message_count(), 1);
    let bytes = b.finish();
    assert_eq!(
        Datagram::parse(&bytes, cluster())
            .unwrap()
            .messages()
            .count(),
        1
    );
}

#[test]
fn cluster_tags_differ_by_name() {
    assert_ne!(
        ClusterTag::from_name("prod"),
        ClusterTag::from_name("staging")
    );
    assert_eq!(ClusterTag::from_name("prod"), ClusterTag::from_name("prod"));
}

#[test]
fn a_message_stays_small() {
    // Every decoded message is moved at least once (into the caller's
    // vector); the bus variants made it 136 bytes, which is where it must
    // stay: a larger variant belongs behind a reference or out of line.
    assert!(
        std::mem::size_of::<Message<'_>>() <= 136,
        "Message is {} bytes",
        std::mem::size_of::<Message<'_>>()
    );
}
