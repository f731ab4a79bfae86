//! How the agent answers control requests: `answer` turns each request
//! of the control socket (members, stats and info, joining and leaving,
//! tags, events, queries, the key-value store, elections, keys,
//! monitoring) into the node's doing and a reply. Here too are the
//! helpers only it needs: member and tag filters, the wait for a query's
//! answers, and keyring changes (`change_keys`, also used by the keys
//! query's handler in `cluster_keys`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{json, Map, Value as Json};
use vinery::runtime::{EventFilter, Node, NodeError, QueryEvent, QueryHandle};
use vinery::security::SecretKey;
use vinery::{Event, EventKind, KeyPattern, Member, MemberState, QueryFilter};

use crate::agent::Settings;
use crate::cluster_keys::{self, KeyOp};
use crate::control::{self, Request};
use crate::control_server::{ClientWriter, Fields, Reply};
use crate::event_lines::event_line;
use crate::keyfile;

/// The reply to `request`, read from or done by `node`.
pub(crate) fn answer(
    node: &Arc<Node>,
    request: Request,
    settings: &Arc<Settings>,
) -> Result<Reply, String> {
    let mut fields = Map::new();
    let text = |e: NodeError| e.to_string();
    match request {
        Request::Members {
            status,
            node: name_glob,
            tags,
        } => {
            let members = members_matching(node, &status, name_glob, tags)?;
            let list = members.iter().map(control::member_json).collect();
            fields.insert("members".into(), Json::Array(list));
        }
        Request::Stats => {
            let stats = node.stats().map_err(text)?;
            fields.insert("stats".into(), control::stats_json(&stats));
        }
        Request::Join { addrs } => {
            if addrs.is_empty() {
                return Err("join: no address given".into());
            }
            for addr in &addrs {
                node.join(&[addr])
                    .map_err(|e| format!("join {addr}: {e}"))?;
            }
            log::info!("{}: joining through {}", node.name(), addrs.join(", "));
            fields.insert("joining".into(), json!(addrs));
        }
        Request::Info => fields = info(node, settings)?,
        Request::Leave => {
            log::info!("{}: leave requested on the control socket", node.name());
            node.leave(settings.leave_timeout).map_err(text)?;
        }
        Request::Get { key, node: owner } => {
            let owner = owner.unwrap_or_else(|| node.name().to_string());
            let entry = node.peer_entry(&owner, &key).map_err(text)?;
            let entry = entry.ok_or_else(|| {
                format!("{owner} has no key {key:?} (never set, deleted or expired, as seen here)")
            })?;
            let Json::Object(entry) = control::entry_json(&entry) else {
                unreachable!("entries are JSON objects")
            };
            fields.extend(entry);
        }
        Request::Set { key, value, ttl_ms } => {
            let version = match ttl_ms {
                Some(ms) => node.set_with_ttl(&key, value.as_bytes(), Duration::from_millis(ms)),
                None => node.set(&key, value.as_bytes()),
            }
            .map_err(text)?;
            fields.insert("version".into(), json!(version));
        }
        Request::Delete { key } => {
            let version = node.delete(&key).map_err(text)?;
            fields.insert("version".into(), json!(version));
        }
        Request::Kv { prefix, glob } => {
            let pattern = match (prefix, glob) {
                (Some(_), Some(_)) => return Err("give a prefix or a glob, not both".into()),
                (Some(p), None) => KeyPattern::prefix(&p),
                (None, Some(g)) => KeyPattern::glob(&g),
                (None, None) => KeyPattern::Any,
            };
            let entries = node.scan(&pattern).map_err(text)?;
            let list = entries.iter().map(control::entry_json).collect();
            fields.insert("entries".into(), Json::Array(list));
        }
        Request::Keys {
            install,
            use_key,
            remove,
            list: true,
            cluster: true,
            ..
        } if install.is_none() && use_key.is_none() && remove.is_none() => {
            return Ok(cluster_keys_reply(node, KeyOp::List, settings));
        }
        Request::Keys {
            install,
            use_key,
            remove,
            send_plaintext: None,
            accept_plaintext: None,
            cluster: true,
            list: false,
        } => {
            let ops = [
                install.map(|key| KeyOp::Install { key }),
                use_key.map(|key| KeyOp::Use { key }),
                remove.map(|key| KeyOp::Remove { key }),
            ];
            let mut ops = ops.into_iter().flatten();
            let (Some(op), None) = (ops.next(), ops.next()) else {
                return Err("one change at a time (install, use or remove)".into());
            };
            return Ok(cluster_keys_reply(node, op, settings));
        }
        Request::Keys {
            install,
            use_key,
            remove,
            send_plaintext,
            accept_plaintext,
            ..
        } => {
            let changes = [
                install.map(KeysChange::Install),
                use_key.map(KeysChange::Use),
                remove.map(KeysChange::Remove),
                send_plaintext.map(|on| KeysChange::Plaintext(PlaintextSwitch::Send, on)),
                accept_plaintext.map(|on| KeysChange::Plaintext(PlaintextSwitch::Accept, on)),
            ];
            let mut changes = changes.into_iter().flatten();
            if let Some(change) = changes.next() {
                if changes.next().is_some() {
                    return Err(
                        "one change at a time (install, use, remove, send_plaintext \
                                or accept_plaintext)"
                            .into(),
                    );
                }
                change_keys(node, change, settings)?;
            }
            let keys = node.keys().map_err(text)?;
            fields.insert("keys".into(), control::keyring_json(&keys));
            let protocol = &node.config().protocol;
            fields.insert("send_plaintext".into(), json!(protocol.send_plaintext));
            fields.insert("accept_plaintext".into(), json!(protocol.accept_plaintext));
        }
        Request::Event {
            name,
            payload,
            duration_ms,
            coalesce,
        } => {
            let duration = Duration::from_millis(duration_ms);
            let id = if coalesce {
                node.say_coalesced(&name, payload.as_bytes(), duration)
            } else {
                node.say(&name, payload.as_bytes(), duration)
            }
            .map_err(text)?;
            fields.insert("id".into(), json!(id.to_string()));
            fields.insert("origin".into(), json!(id.origin));
            fields.insert("seq".into(), json!(id.seq));
        }
        Request::Query {
            name,
            payload,
            timeout_ms,
            nodes,
            tags,
            stream,
            no_ack,
        } => {
            let filter = query_filter(nodes, tags)?;
            let timeout = Duration::from_millis(timeout_ms);
            let expected = expected_answerers(node, &filter).map_err(text)?;
            let handle = node
                .query(&name, payload.as_bytes(), timeout, &filter)
                .map_err(text)?;
            let wait = QueryWait {
                handle,
                expected,
                stream,
                no_ack,
            };
            return Ok(Reply::Later(Box::new(move |client| wait.answer(client))));
        }
        Request::Election {
            topic,
            expire_ms,
            min,
            total,
        } => {
            let expire = Duration::from_millis(expire_ms);
            node.election(&topic, expire, min, total).map_err(text)?;
        }
        Request::Vote { topic, yes } => node.vote(&topic, yes).map_err(text)?,
        Request::ForceLeave { node: member } => {
            node.force_leave(&member).map_err(text)?;
            log::info!("{}: {member} forced to leave", node.name());
        }
        Request::Tags { set, delete } => {
            let tags = change_tags(node, &set, &delete)?;
            fields.insert(
                "tags".into(),
                json!(tags.into_iter().collect::<Map<_, _>>()),
            );
        }
        Request::Monitor { kinds, json } => {
            let kinds = kinds
                .iter()
                .map(|k| k.parse::<EventKind>().map_err(|e| format!("--kind: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let filter = if kinds.is_empty() {
                EventFilter::all()
            } else {
                EventFilter::kinds(kinds)
            };
            // Bounded like every subscription: a slow client loses events
            // (counted in its subscriber's `dropped`), the node never waits.
            let events = node.subscribe_filtered(filter);
            return Ok(Reply::Later(Box::new(move |client| {
                monitor(&events, !json, client)
            })));
        }
    }
    Ok(Reply::Now(fields))
}

/// How often a monitor with no events to send checks that its client is
/// still there.
const MONITOR_HANG_UP_CHECK: Duration = Duration::from_secs(1);

/// Writes each event of `events` to `client` as a line until the client
/// hangs up (found by a failed write, or by [`MONITOR_HANG_UP_CHECK`]
/// when there is nothing to write), which ends the subscription.
fn monitor(
    events: &Receiver<Event>,
    human: bool,
    client: &mut ClientWriter,
) -> Result<Fields, String> {
    loop {
        match events.recv_timeout(MONITOR_HANG_UP_CHECK) {
            Ok(e) => {
                if !client.progress(&json!({"line": event_line(&e, human)})) {
                    return Err("monitor: the client went away".into());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if client.hung_up() {
                    return Err("monitor: the client went away".into());
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(Fields::new()),
        }
    }
}

/// Sets and deletes this node's tags live (gossiped as its metadata, in
/// the `k=v,…` syntax query filters and `members --tag` read), keeping
/// the others in their order: the tags after. With no change, the tags.
fn change_tags(
    node: &Node,
    set: &[String],
    delete: &[String],
) -> Result<Vec<(String, Json)>, String> {
    let meta = node.config().protocol.meta;
    let mut tags: Vec<(String, String)> = vinery::bus::tags(&meta)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for tag in set {
        let (key, value) = tag
            .split_once('=')
            .ok_or_else(|| format!("--set {tag:?}: expected KEY=VALUE"))?;
        let bad = |s: &str| s.contains([',', '\n']) || s.trim() != s;
        if key.is_empty() || bad(key) || bad(value) {
            return Err(format!(
                "--set {tag:?}: keys and values cannot hold ',' or newlines, nor start or end \
                 with spaces, and keys cannot be empty"
            ));
        }
        match tags.iter_mut().find(|(k, _)| k == key) {
            Some(existing) => existing.1 = value.to_string(),
            None => tags.push((key.to_string(), value.to_string())),
        }
    }
    tags.retain(|(k, _)| !delete.contains(k));
    if !set.is_empty() || !delete.is_empty() {
        let meta = vinery::bus::encode_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        node.set_meta(&meta).map_err(|e| e.to_string())?;
        log::info!(
            "{}: tags now {}",
            node.name(),
            String::from_utf8_lossy(&meta)
        );
    }
    Ok(tags.into_iter().map(|(k, v)| (k, json!(v))).collect())
}

/// Runs `op` on every member, on the control client's thread.
fn cluster_keys_reply(node: &Arc<Node>, op: KeyOp, settings: &Arc<Settings>) -> Reply {
    let (node, settings) = (node.clone(), settings.clone());
    Reply::Later(Box::new(move |client| {
        cluster_keys::run(&node, op, &settings, client)
    }))
}

/// A query's filter from the control request's `nodes` and `key=glob`
/// `tags` (empty: no condition).
fn query_filter(nodes: Vec<String>, tags: Vec<String>) -> Result<QueryFilter, String> {
    let mut filter = if nodes.is_empty() {
        QueryFilter::default()
    } else {
        QueryFilter::nodes(nodes)
    };
    filter.tags = tag_conditions(tags)?;
    Ok(filter)
}

/// `vinery info`: what the agent is and how it is doing.
fn info(node: &Node, settings: &Settings) -> Result<Fields, String> {
    let text = |e: NodeError| e.to_string();
    let config = node.config();
    let protocol = &config.protocol;
    let peers = node.all_peers().map_err(text)?;
    let by_state: Map<String, Json> = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ]
    .into_iter()
    .map(|state| {
        let n = peers.iter().filter(|m| m.state == state).count();
        (state.name().to_string(), json!(n))
    })
    .collect();
    let address = |a: Option<SocketAddr>| json!(a.map(|a| a.to_string()));
    let mut fields = Map::new();
    fields.insert("name".into(), json!(node.name()));
    fields.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    fields.insert("cluster".into(), json!(protocol.cluster_name));
    fields.insert("profile".into(), json!(settings.profile));
    fields.insert("bound".into(), address(node.local_addr()));
    fields.insert("advertised".into(), address(node.advertise_addr()));
    fields.insert("seeds".into(), json!(config.seeds));
    fields.insert("metrics".into(), address(settings.metrics));
    fields.insert("peers".into(), Json::Object(by_state));
    fields.insert("keys".into(), control::keyring_json(&protocol.keys));
    fields.insert("send_plaintext".into(), json!(protocol.send_plaintext));
    fields.insert("accept_plaintext".into(), json!(protocol.accept_plaintext));
    let stats = node.stats().map_err(text)?;
    fields.insert("stats".into(), control::stats_json(&stats));
    Ok(fields)
}

/// `key=glob` tag conditions, as queries and member listings take them.
fn tag_conditions(tags: Vec<String>) -> Result<Vec<(String, String)>, String> {
    tags.into_iter()
        .map(|tag| match tag.split_once('=') {
            Some((key, glob)) => Ok((key.to_string(), glob.to_string())),
            None => Err(format!("tag {tag:?}: expected KEY=GLOB")),
        })
        .collect()
}

/// Whether member metadata `meta` has, for each condition, the tag with a
/// value matching its glob.
fn has_tags(meta: &[u8], conditions: &[(String, String)]) -> bool {
    conditions.iter().all(|(key, glob)| {
        let glob = KeyPattern::glob(glob);
        vinery::bus::tags(meta).any(|(k, v)| k == key && glob.matches(v))
    })
}

/// The members listed with `status` (any of them; none: every status),
/// a name matching `name_glob` and every tag condition in `tags`.
fn members_matching(
    node: &Node,
    status: &[String],
    name_glob: Option<String>,
    tags: Vec<String>,
) -> Result<Vec<Member>, String> {
    let states = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ];
    if let Some(unknown) = status
        .iter()
        .find(|s| !states.iter().any(|state| state.name() == s.as_str()))
    {
        return Err(format!(
            "status {unknown:?}: expected alive, suspect, dead or left"
        ));
    }
    let tags = tag_conditions(tags)?;
    let name_glob = name_glob.map(|g| KeyPattern::glob(&g));
    let text = |e: NodeError| e.to_string();
    let mut members = node.all_peers().map_err(text)?;
    members.push(node.local_member().map_err(text)?);
    members.retain(|m| {
        (status.is_empty() || status.iter().any(|s| s == m.state.name()))
            && name_glob.as_ref().is_none_or(|g| g.matches(&m.name))
            && has_tags(&m.meta, &tags)
    });
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(members)
}

/// The live members a query with `filter` reaches, as this node knows
/// them: named (if the filter names nodes) and carrying every tag.
pub fn expected_answerers(
    node: &Node,
    filter: &QueryFilter,
) -> Result<BTreeSet<String>, NodeError> {
    Ok(node
        .live_peers()?
        .into_iter()
        .filter(|m| {
            filter
                .nodes
                .as_ref()
                .is_none_or(|names| names.contains(&m.name))
        })
        .filter(|m| has_tags(&m.meta, &filter.tags))
        .map(|m| m.name)
        .collect())
}

/// A query of the control socket, waited for on a thread of its own.
pub struct QueryWait {
    /// The query.
    pub handle: QueryHandle,
    /// The nodes whose answers end the wait before the timeout.
    pub expected: BTreeSet<String>,
    /// Write each answer to the client as it arrives.
    pub stream: bool,
    /// A response is enough: acks are neither waited for nor streamed.
    pub no_ack: bool,
}

impl QueryWait {
    /// Waits until every expected node has responded (and acknowledged,
    /// unless `no_ack`) or the query times out, streaming the answers to
    /// `client` if asked; then the query's id, acks, responses, expected
    /// nodes, those missing, and whether none is. Stops early if the
    /// client is cut off while streaming: nobody would read the answer.
    pub fn answer(self, client: &mut ClientWriter) -> Result<Fields, String> {
        let cut_off = |id: &str| format!("query {id}: the client stopped reading its answers");
        let id = self.handle.id().to_string();
        let mut acks: Vec<String> = Vec::new();
        let mut responses: Vec<(String, Vec<u8>)> = Vec::new();
        let answered = |node: &String, acks: &[String], responses: &[(String, Vec<u8>)]| {
            responses.iter().any(|(from, _)| from == node) && (self.no_ack || acks.contains(node))
        };
        let missing = |acks: &[String], responses: &[(String, Vec<u8>)]| -> Vec<String> {
            let not_yet = |n: &&String| !answered(n, acks, responses);
            self.expected.iter().filter(not_yet).cloned().collect()
        };
        while !missing(&acks, &responses).is_empty() {
            match self.handle.recv() {
                Some(QueryEvent::Ack { from }) => {
                    if self.stream && !self.no_ack {
                        let line = json!({"event": "query_ack", "from": from});
                        if !client.progress(&line) {
                            return Err(cut_off(&id));
                        }
                    }
                    acks.push(from);
                }
                Some(QueryEvent::Response { from, payload }) => {
                    if self.stream {
                        let mut line = Map::new();
                        line.insert("event".into(), json!("query_response"));
                        line.insert("from".into(), json!(from));
                        control::insert_bytes(&mut line, "payload", &payload);
                        if !client.progress(&Json::Object(line)) {
                            return Err(cut_off(&id));
                        }
                    }
                    responses.push((from, payload));
                }
                Some(QueryEvent::Done { .. }) => break,
                None => return Err(format!("query {id} cut short: the node stopped")),
            }
        }
        let missing = missing(&acks, &responses);
        let responses: Vec<Json> = responses
            .iter()
            .map(|(node, payload)| {
                let mut r = Map::new();
                r.insert("node".into(), json!(node));
                control::insert_bytes(&mut r, "payload", payload);
                Json::Object(r)
            })
            .collect();
        let mut fields = Map::new();
        fields.insert("id".into(), json!(id));
        fields.insert("acks".into(), json!(acks));
        fields.insert("responses".into(), Json::Array(responses));
        fields.insert("expected".into(), json!(self.expected));
        fields.insert("complete".into(), json!(missing.is_empty()));
        fields.insert("missing".into(), json!(missing));
        Ok(fields)
    }
}

/// One change of `vinery keys`.
pub enum KeysChange {
    /// Install this key (base64).
    Install(String),
    /// Seal with this installed key (base64).
    Use(String),
    /// Remove this key (base64).
    Remove(String),
    /// A migration switch turned on or off.
    Plaintext(PlaintextSwitch, bool),
}

/// The two migration switches (`Config::send_plaintext`,
/// `Config::accept_plaintext`).
#[derive(Clone, Copy)]
pub enum PlaintextSwitch {
    /// `send_plaintext`.
    Send,
    /// `accept_plaintext`.
    Accept,
}

/// Applies a keyring change or a migration switch, logs it, and saves the
/// keyring to the keyring file if there is one (the switches are not
/// saved: a restarted agent takes them from its command line).
pub fn change_keys(node: &Node, change: KeysChange, settings: &Settings) -> Result<(), String> {
    let key = |b64: &str| SecretKey::from_base64(b64).map_err(|e| e.to_string());
    let done = match change {
        KeysChange::Install(k) => {
            let k = key(&k)?;
            let protocol = node.config().protocol;
            if protocol.keys.is_empty() && !(protocol.send_plaintext && protocol.accept_plaintext) {
                return Err(
                    "this node has no keys: the first one would become its primary and \
                     cut it off from the plaintext cluster; first turn on both migration \
                     switches on every agent (vinery keys --send-plaintext on, then \
                     --accept-plaintext on)"
                        .into(),
                );
            }
            let print = k.fingerprint();
            node.install_key(k)
                .map(|()| format!("installed key {print}"))
        }
        KeysChange::Use(k) => {
            let k = key(&k)?;
            node.use_key(&k)
                .map(|()| format!("now sealing with key {}", k.fingerprint()))
        }
        KeysChange::Remove(k) => {
            let k = key(&k)?;
            node.remove_key(&k)
                .map(|()| format!("removed key {}", k.fingerprint()))
        }
        KeysChange::Plaintext(switch, on) => {
            let (flag, switched) = match switch {
                PlaintextSwitch::Send => ("send-plaintext", node.set_send_plaintext(on)),
                PlaintextSwitch::Accept => ("accept-plaintext", node.set_accept_plaintext(on)),
            };
            switched.map_err(|e| e.to_string())?;
            log::info!(
                "{}: {flag} {} (not saved: a restarted agent takes it from its command line)",
                node.name(),
                if on { "on" } else { "off" }
            );
            return Ok(());
        }
    }
    .map_err(|e| e.to_string())?;
    match &settings.keyring_file {
        Some(path) => {
            log::info!(
                "{}: {done}; saving the keyring to {}",
                node.name(),
                path.display()
            );
            keyfile::write_keyring(path, &node.config().protocol.keys).map_err(|e| {
                format!(
                    "{done}, but saving the keyring to {} failed: {e} (a restarted agent \
                     would use the old keyring)",
                    path.display()
                )
            })
        }
        None => {
            log::info!(
                "{}: {done} (not saved: no --keyring-file; a restarted agent uses its \
                 command line keys)",
                node.name()
            );
            Ok(())
        }
    }
}
