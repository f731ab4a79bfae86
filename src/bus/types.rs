//! The public types of the event bus (ids, query filters, errors) and the
//! tag syntax of member metadata that filters match.

use std::fmt;
use std::time::Duration;

use crate::kv::KeyPattern;
use crate::wire::{FilterEntries, FilterEntry};

/// Identifies a user event (or a query, see [`QueryId`]): the node that
/// made it and its sequence number there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// The node that made it.
    pub origin: String,
    /// Its sequence number at that node (one sequence for every kind of
    /// bus item, starting at a random point so a restarted node's items
    /// never collide with its previous life's).
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.origin, self.seq)
    }
}

/// Identifies a query: the asker and its sequence number.
pub type QueryId = EventId;

/// Which nodes answer a query. The default (no conditions) is every node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryFilter {
    /// Only nodes with one of these names (`None`: any name).
    pub nodes: Option<Vec<String>>,
    /// Only nodes whose metadata has every one of these tags, each `(key,
    /// glob)` matching the tag's value (see [`tags`] for the syntax and
    /// [`KeyPattern::glob`] for globs).
    pub tags: Vec<(String, String)>,
}

impl QueryFilter {
    /// Only the nodes named in `nodes`.
    pub fn nodes<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> QueryFilter {
        QueryFilter {
            nodes: Some(nodes.into_iter().map(Into::into).collect()),
            tags: Vec::new(),
        }
    }

    /// This filter, also requiring tag `key` with a value matching `glob`.
    pub fn with_tag(mut self, key: impl Into<String>, glob: impl Into<String>) -> QueryFilter {
        self.tags.push((key.into(), glob.into()));
        self
    }

    /// The wire form (see [`FilterEntries`]); an empty name, an empty tag
    /// key, a key containing `=` or an entry over 255 bytes is refused.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, BusError> {
        let mut out = Vec::new();
        for n in self.nodes.iter().flatten() {
            FilterEntry::Node(n)
                .encode(&mut out)
                .ok_or_else(|| BusError::BadFilter(format!("node name {n:?}")))?;
        }
        for (key, pattern) in &self.tags {
            FilterEntry::Tag { key, pattern }
                .encode(&mut out)
                .ok_or_else(|| BusError::BadFilter(format!("tag {key:?}={pattern:?}")))?;
        }
        if self.nodes.as_ref().is_some_and(Vec::is_empty) {
            return Err(BusError::BadFilter(
                "an empty node list matches no node".into(),
            ));
        }
        Ok(out)
    }
}

/// Whether a node named `name` with metadata `meta` matches the encoded
/// filter `filter` (already validated by decoding): its name is among the
/// node entries (if there are any) and every tag entry matches one of its
/// tags.
pub(crate) fn filter_matches(filter: &[u8], name: &str, meta: &[u8]) -> bool {
    let mut named = false;
    let mut any_name = false;
    for entry in FilterEntries::new(filter) {
        match entry {
            Ok(FilterEntry::Node(n)) => {
                any_name = true;
                named |= n == name;
            }
            Ok(FilterEntry::Tag { key, pattern }) => {
                let glob = KeyPattern::glob(pattern);
                if !tags(meta).any(|(k, v)| k == key && glob.matches(v)) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    named || !any_name
}

/// The node names a filter lists, if it lists any.
pub(crate) fn filter_nodes(filter: &[u8]) -> Vec<&str> {
    FilterEntries::new(filter)
        .filter_map(|e| match e {
            Ok(FilterEntry::Node(n)) => Some(n),
            _ => None,
        })
        .collect()
}

/// The tags in member metadata.
///
/// The syntax: metadata that is UTF-8 text holds entries separated by `,`
/// or newlines; each entry, trimmed of ASCII whitespace, is `key=value`
/// (split at the first `=`) or a bare `key` (an empty value). Empty
/// entries are skipped. Metadata that is not UTF-8 has no tags. So
/// `role=web, zone=eu-1` has the tags `role` = `web` and `zone` = `eu-1`.
/// [`encode_tags`] writes it.
pub fn tags(meta: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    std::str::from_utf8(meta)
        .unwrap_or("")
        .split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| e.split_once('=').unwrap_or((e, "")))
}

/// Metadata holding `tags` in the syntax [`tags`] reads (`k=v,k=v`).
/// Keys and values must not contain `,`, newlines or (in keys) `=`, and
/// should not start or end with whitespace; such tags would read back
/// differently.
pub fn encode_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let entries: Vec<String> = tags.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    entries.join(",").into_bytes()
}

/// Why a bus call was refused. Nothing is sent when one is returned; the
/// message names the [`Config`](crate::Config) field behind a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusError {
    /// An event name, query name or election topic is empty or longer than
    /// `Config::max_event_name_len`.
    BadName {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A payload (event, query or response) is larger than
    /// `Config::max_event_payload`.
    PayloadTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A duration, timeout or expiry is zero or longer than
    /// `Config::max_event_duration`.
    BadDuration {
        /// The duration asked for.
        duration: Duration,
        /// The limit.
        max: Duration,
    },
    /// The message would not fit one datagram (a long query filter).
    TooLarge {
        /// Its encoded length with the datagram header.
        len: usize,
        /// The datagram budget.
        max: usize,
    },
    /// A query filter that cannot be encoded.
    BadFilter(String),
    /// `Config::max_active_events` items are alive already.
    TooManyEvents {
        /// The limit.
        max: usize,
    },
    /// `Config::max_pending_queries` queries of this node are running.
    TooManyQueries {
        /// The limit.
        max: usize,
    },
    /// No live query with this id reached this node, or it did not match
    /// the query's filter.
    UnknownQuery,
    /// This node already responded to the query.
    AlreadyResponded,
    /// `Config::max_elections` elections are known already.
    TooManyElections {
        /// The limit.
        max: usize,
    },
    /// A live election on this topic is known already.
    ElectionExists,
    /// No live election on this topic is known.
    UnknownElection,
    /// This node already voted on this topic.
    AlreadyVoted,
    /// `min` is not in `1..=total`, or `total` is above
    /// `Config::max_votes_per_election`.
    BadQuorum {
        /// Yes votes asked for.
        min: u32,
        /// The electorate.
        total: u32,
        /// The limit on `total`.
        max_total: usize,
    },
    /// The node has left the cluster.
    Left,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::BadName { len, max } => write!(
                f,
                "name: {len} bytes, must be 1..=max_event_name_len ({max})"
            ),
            BusError::PayloadTooLarge { len, max } => write!(
                f,
                "payload: {len} bytes, more than max_event_payload ({max})"
            ),
            BusError::BadDuration { duration, max } => write!(
                f,
                "duration: {duration:?}, must be positive and at most max_event_duration ({max:?})"
            ),
            BusError::TooLarge { len, max } => write!(
                f,
                "message: {len} bytes, more than one datagram (max_datagram: {max})"
            ),
            BusError::BadFilter(what) => write!(f, "filter: bad {what}"),
            BusError::TooManyEvents { max } => {
                write!(f, "events: max_active_events ({max}) are alive")
            }
            BusError::TooManyQueries { max } => {
                write!(f, "query: max_pending_queries ({max}) are running")
            }
            BusError::UnknownQuery => f.write_str("query: unknown, expired or not for this node"),
            BusError::AlreadyResponded => f.write_str("query: already responded"),
            BusError::TooManyElections { max } => {
                write!(f, "election: max_elections ({max}) are known")
            }
            BusError::ElectionExists => f.write_str("election: one on this topic is running"),
            BusError::UnknownElection => f.write_str("election: none on this topic is known"),
            BusError::AlreadyVoted => f.write_str("vote: this node voted on this topic already"),
            BusError::BadQuorum {
                min,
                total,
                max_total,
            } => write!(
                f,
                "election: min {min} must be 1..=total ({total}), total at most \
                 max_votes_per_election ({max_total})"
            ),
            BusError::Left => f.write_str("node: has left the cluster"),
        }
    }
}

impl std::error::Error for BusError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_the_documented_syntax() {
        let t: Vec<_> = tags(b"role=web, zone=eu-1\nbare,,x=a=b ").collect();
        assert_eq!(
            t,
            vec![
                ("role", "web"),
                ("zone", "eu-1"),
                ("bare", ""),
                ("x", "a=b")
            ]
        );
        assert_eq!(tags(&[0xff, b'a']).count(), 0);
        let meta = encode_tags([("role", "db"), ("zone", "us")]);
        assert_eq!(meta, b"role=db,zone=us");
        assert_eq!(
            tags(&meta).collect::<Vec<_>>(),
            vec![("role", "db"), ("zone", "us")]
        );
    }

    #[test]
    fn filters_match_names_and_tags() {
        let any = QueryFilter::default().encode().unwrap();
        assert!(filter_matches(&any, "a", b""));
        let named = QueryFilter::nodes(["a", "b"]).encode().unwrap();
        assert!(filter_matches(&named, "b", b""));
        assert!(!filter_matches(&named, "c", b""));
        assert_eq!(filter_nodes(&named), vec!["a", "b"]);
        let web = QueryFilter::default()
            .with_tag("role", "web*")
            .with_tag("zone", "eu-?")
            .encode()
            .unwrap();
        assert!(filter_matches(&web, "x", b"role=web-2,zone=eu-1"));
        assert!(!filter_matches(&web, "x", b"role=web-2,zone=us-1"));
        assert!(!filter_matches(&web, "x", b"role=web-2"));
        assert!(!filter_matches(&web, "x", b"role=db,zone=eu-1"));
        let both = QueryFilter::nodes(["x"])
            .with_tag("role", "db")
            .encode()
            .unwrap();
        assert!(filter_matches(&both, "x", b"role=db"));
        assert!(!filter_matches(&both, "y", b"role=db"));
        assert!(!filter_matches(&both, "x", b"role=web"));
    }

    #[test]
    fn bad_filters_are_refused_with_the_reason() {
        for bad in [
            QueryFilter::nodes([""]),
            QueryFilter::nodes(Vec::<String>::new()),
            QueryFilter::default().with_tag("", "x"),
            QueryFilter::default().with_tag("a=b", "x"),
            QueryFilter::default().with_tag("k", "v".repeat(300)),
        ] {
            let err = bad.encode().unwrap_err();
            assert!(err.to_string().starts_with("filter: "), "{err}");
        }
    }
}
