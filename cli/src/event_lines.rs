//! How `vinery agent` prints the events it sees on stdout: one line per
//! event, for people or (with `--json`) as JSON objects, always starting
//! with the event's kind (`Event::kind`), so that `grep` and scripts can
//! pick them out.
//!
//! Membership: `member_joined    b 10.0.0.2:7946 alive incarnation 0`.
//! Keys: `key_updated      b color=blue (v3)`. The event bus, as
//! `key=value` fields after the kind:
//!
//! ```text
//! user_event       name=deploy.web from=a id=a/17 lamport=3 payload="v2"
//! query            name=ping from=a id=a/18 lamport=4 payload=""
//! query_ack        id=a/18 from=b
//! query_response   id=a/18 from=b payload="pong"
//! query_done       id=a/18 acks=9 responses=5
//! election_started topic=leader creator=a min=3 total=5
//! quorum           topic=leader creator=a voters=b,c,d
//! election_expired topic=leader creator=a yes=1
//! ```
//!
//! Payloads are always quoted and escaped (`\n`, `\"`, `\u{7f}`, and
//! `\xNN` for bytes that are not UTF-8), so binary never reaches the
//! terminal and a line is always one line; names, topics and node names
//! are printed bare when they are plain words, quoted the same way
//! otherwise. With `--json`, payloads are text plus `payload_base64` when
//! they are not UTF-8 (as key values are).

use std::borrow::Cow;
use std::io::Write;
use std::time::SystemTime;

use serde_json::{json, Map, Value as Json};
use vinery::Event;

use crate::cluster_keys::KEYS_QUERY;
use crate::control;

/// Prints `e` on stdout as one line.
pub fn print_event(e: &Event, human: bool) {
    let line = event_line(e, human);
    // stdout closed (piped into `head`): the agent keeps running.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// `e` as the one line the agent prints (for people, or JSON).
pub fn event_line(e: &Event, human: bool) -> String {
    let time_ms = control::millis_since_epoch(SystemTime::now());
    match (e.member(), human) {
        (Some(m), true) => format!(
            "{:<16} {} {} {} incarnation {}",
            e.kind(),
            m.name,
            m.addr,
            m.state.name(),
            m.incarnation
        ),
        (Some(m), false) => {
            json!({"time_ms": time_ms, "event": e.kind().name(), "member": control::member_json(m)})
                .to_string()
        }
        (None, human) => match bus_fields(e) {
            Some(fields) if human => human_line(e.kind().name(), &fields),
            Some(fields) => json_line(e.kind().name(), time_ms, &fields),
            None => key_event_line(e, human, time_ms),
        },
    }
}

/// A key event as a line: `key_updated node key=value (v3)`, or JSON.
fn key_event_line(e: &Event, human: bool, time_ms: u128) -> String {
    let (value, version) = match e {
        Event::KeyUpdated { value, version, .. } => (Some(value), *version),
        Event::KeyDeleted { version, .. } | Event::KeyExpired { version, .. } => (None, *version),
        _ => (None, 0),
    };
    let key = e.key().unwrap_or_default();
    let text = value.map(|v| String::from_utf8_lossy(v).into_owned());
    if human {
        match &text {
            Some(t) => format!("{:<16} {} {key}={t} (v{version})", e.kind(), e.node()),
            None => format!("{:<16} {} {key} (v{version})", e.kind(), e.node()),
        }
    } else {
        json!({
            "time_ms": time_ms,
            "event": e.kind().name(),
            "node": e.node(),
            "key": key,
            "value": text,
            "version": version,
        })
        .to_string()
    }
}

/// One field of a bus event's line.
#[derive(Debug)]
enum Field<'a> {
    /// A name: bare if it is a plain word.
    Word(&'a str),
    /// An id (`origin/seq`), printed as is.
    Id(String),
    Number(u64),
    /// A payload: always quoted.
    Bytes(&'a [u8]),
    /// Node names, `a,b,c` (a JSON array).
    Names(&'a [String]),
}

/// The fields of a bus event (or a name conflict), in the order printed;
/// `None` for the other events.
fn bus_fields(e: &Event) -> Option<Vec<(&'static str, Field<'_>)>> {
    use Field::*;
    let fields = match e {
        Event::UserEvent {
            origin,
            seq,
            lamport,
            name,
            payload,
        } => vec![
            ("name", Word(name)),
            ("from", Word(origin)),
            ("id", Id(format!("{origin}/{seq}"))),
            ("lamport", Number(*lamport)),
            ("payload", Bytes(payload)),
        ],
        Event::Query {
            id,
            from,
            name,
            payload,
            lamport,
        } => vec![
            ("name", Word(name)),
            ("from", Word(from)),
            ("id", Id(id.to_string())),
            ("lamport", Number(*lamport)),
            // The agents' keyring requests carry keys: never printed.
            (
                "payload",
                Bytes(if name == KEYS_QUERY {
                    b"(keyring request)"
                } else {
                    payload
                }),
            ),
        ],
        Event::QueryAck { id, from } => vec![("id", Id(id.to_string())), ("from", Word(from))],
        Event::QueryResponse { id, from, payload } => vec![
            ("id", Id(id.to_string())),
            ("from", Word(from)),
            ("payload", Bytes(payload)),
        ],
        Event::QueryDone {
            id,
            acks,
            responses,
        } => vec![
            ("id", Id(id.to_string())),
            ("acks", Number(*acks as u64)),
            ("responses", Number(*responses as u64)),
        ],
        Event::ElectionStarted {
            topic,
            creator,
            min,
            total,
        } => vec![
            ("topic", Word(topic)),
            ("creator", Word(creator)),
            ("min", Number(u64::from(*min))),
            ("total", Number(u64::from(*total))),
        ],
        Event::Quorum {
            topic,
            creator,
            voters,
        } => vec![
            ("topic", Word(topic)),
            ("creator", Word(creator)),
            ("voters", Names(voters)),
        ],
        Event::ElectionExpired {
            topic,
            creator,
            yes,
        } => vec![
            ("topic", Word(topic)),
            ("creator", Word(creator)),
            ("yes", Number(*yes as u64)),
        ],
        // Not a bus event, but like one a line of named fields.
        Event::MemberConflict { name, ours, theirs } => vec![
            ("name", Word(name)),
            ("ours", Id(ours.to_string())),
            ("theirs", Id(theirs.to_string())),
        ],
        Event::SelfAccused {
            name,
            state,
            incarnation,
            by,
        } => vec![
            ("name", Word(name)),
            ("state", Word(state.name())),
            ("incarnation", Number(u64::from(*incarnation))),
            ("by", Word(by)),
        ],
        _ => return None,
    };
    Some(fields)
}

fn human_line(kind: &str, fields: &[(&str, Field<'_>)]) -> String {
    let mut line = format!("{kind:<16}");
    for (key, value) in fields {
        let value = match value {
            Field::Word(w) => word(w).into_owned(),
            Field::Id(id) => id.clone(),
            Field::Number(n) => n.to_string(),
            Field::Bytes(b) => quoted(b),
            Field::Names(names) => names.iter().map(|n| word(n)).collect::<Vec<_>>().join(","),
        };
        line.push_str(&format!(" {key}={value}"));
    }
    line
}

fn json_line(kind: &str, time_ms: u128, fields: &[(&str, Field<'_>)]) -> String {
    let mut j = Map::new();
    j.insert("time_ms".into(), json!(time_ms));
    j.insert("event".into(), json!(kind));
    for (key, value) in fields {
        match value {
            Field::Word(w) => {
                j.insert((*key).into(), json!(w));
            }
            Field::Id(id) => {
                j.insert((*key).into(), json!(id));
            }
            Field::Number(n) => {
                j.insert((*key).into(), json!(n));
            }
            Field::Bytes(b) => control::insert_bytes(&mut j, key, b),
            Field::Names(names) => {
                j.insert((*key).into(), json!(names));
            }
        }
    }
    Json::Object(j).to_string()
}

/// `s` bare when it is a plain word (printable, no space, quote, comma or
/// backslash: it cannot be mistaken for another field), quoted otherwise.
fn word(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, '"' | '\\' | ','));
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(quoted(s.as_bytes()))
    }
}

/// `bytes` in double quotes, escaped: text as Rust writes a string literal
/// (`\n`, `\"`, `\u{1b}`), bytes that are not UTF-8 as `\xNN`.
fn quoted(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("\"{}\"", bytes.escape_ascii()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_quoted_and_escaped_and_plain_names_are_bare() {
        assert_eq!(quoted(b"pong"), r#""pong""#);
        assert_eq!(quoted(b"a \"b\"\nc\x1b"), r#""a \"b\"\nc\u{1b}""#);
        assert_eq!(quoted(&[0xff, b'a', 0]), r#""\xffa\x00""#);
        assert_eq!(quoted("é".as_bytes()), "\"é\"");
        assert_eq!(word("deploy.web"), "deploy.web");
        assert_eq!(word("two words"), r#""two words""#);
        assert_eq!(word("a,b"), r#""a,b""#);
        assert_eq!(word(""), r#""""#);
    }

    #[test]
    fn keyring_requests_are_printed_without_their_keys() {
        let e = Event::Query {
            id: vinery::QueryId {
                origin: "a".into(),
                seq: 3,
            },
            from: "a".into(),
            name: KEYS_QUERY.into(),
            payload: br#"{"op":"install","key":"SECRET"}"#.to_vec(),
            lamport: 1,
        };
        for human in [true, false] {
            let line = event_line(&e, human);
            assert!(!line.contains("SECRET"), "{line}");
            assert!(line.contains("keyring request"), "{line}");
        }
    }

    #[test]
    fn a_self_accusation_names_the_claim_and_the_accuser() {
        let e = Event::SelfAccused {
            name: "a".into(),
            state: vinery::MemberState::Suspect,
            incarnation: 4,
            by: "b".into(),
        };
        let fields = bus_fields(&e).unwrap();
        assert_eq!(
            human_line(e.kind().name(), &fields),
            "self_accused     name=a state=suspect incarnation=4 by=b"
        );
    }

    #[test]
    fn bus_events_print_as_fields_after_their_kind() {
        let e = Event::UserEvent {
            origin: "a".into(),
            seq: 17,
            lamport: 3,
            name: "deploy.web".into(),
            payload: b"v\n2".to_vec(),
        };
        let fields = bus_fields(&e).unwrap();
        assert_eq!(
            human_line(e.kind().name(), &fields),
            r#"user_event       name=deploy.web from=a id=a/17 lamport=3 payload="v\n2""#
        );
        let j: Json = serde_json::from_str(&json_line(e.kind().name(), 5, &fields)).unwrap();
        assert_eq!(j["event"], "user_event");
        assert_eq!(
            (&j["id"], &j["payload"], &j["lamport"]),
            (&json!("a/17"), &json!("v\n2"), &json!(3))
        );
        assert!(j.get("payload_base64").is_none());

        let q = Event::Quorum {
            topic: "leader".into(),
            creator: "a".into(),
            voters: vec!["b".into(), "c d".into()],
        };
        let fields = bus_fields(&q).unwrap();
        assert_eq!(
            human_line(q.kind().name(), &fields),
            r#"quorum           topic=leader creator=a voters=b,"c d""#
        );
        let j: Json = serde_json::from_str(&json_line(q.kind().name(), 5, &fields)).unwrap();
        assert_eq!(j["voters"], json!(["b", "c d"]));

        let binary = Event::QueryResponse {
            id: vinery::QueryId {
                origin: "a".into(),
                seq: 1,
            },
            from: "b".into(),
            payload: vec![0xff],
        };
        let j: Json = serde_json::from_str(&json_line(
            binary.kind().name(),
            5,
            &bus_fields(&binary).unwrap(),
        ))
        .unwrap();
        assert_eq!(j["payload_base64"], "/w==");
        assert!(bus_fields(&Event::KeyExpired {
            node: "a".into(),
            key: "k".into(),
            version: 1
        })
        .is_none());
    }
}
