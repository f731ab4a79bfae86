//! The agent's control socket: a Unix domain socket where each connection
//! carries one JSON request line and gets one JSON response line, the one
//! with `ok` (a streamed query's answers come as lines before it; the
//! agent's limits on both directions, and how it makes the socket, are in
//! `control_server.rs`).
//!
//! Requests are objects tagged by `cmd`, with the command's arguments as
//! fields: `{"cmd":"members"}` (optionally `"status":["alive"]`,
//! `"node":"web-*"`, `"tags":["role=web*"]`: members matching all),
//! `{"cmd":"stats"}`, `{"cmd":"leave"}`, `{"cmd":"join","addrs":["…"]}`,
//! `{"cmd":"info"}`,
//! `{"cmd":"get","key":"k","node":"b"}` (`node` optional: the agent's own
//! key), `{"cmd":"set","key":"k","value":"v","ttl_ms":10000}` (`ttl_ms`
//! optional), `{"cmd":"delete","key":"k"}`, `{"cmd":"kv","prefix":"p"}` or
//! `{"cmd":"kv","glob":"g"}` (neither: every key), and
//! `{"cmd":"keys"}` (list) or `{"cmd":"keys","install":"BASE64"}` (also
//! `use`, `remove`, or a migration switch: `"send_plaintext":false`,
//! `"accept_plaintext":false`; one change per request; the answer lists
//! the keyring and both switches). With `"cluster":true`, `install`,
//! `use`, `remove` or `"list":true` act on every live member and answer
//! `{"ok":true,"summary":"3/3 nodes installed key ab12cd34","results":
//! [{"node":"a","ok":true,"keys":[…]},…],"missing":[]}`; a node's failure
//! or silence makes it `{"ok":false,"error":…}` naming them.
//!
//! The event bus: `{"cmd":"event","name":"deploy","payload":"v2",
//! "duration_ms":30000,"coalesce":false}` → `{"ok":true,"id":"a/17",
//! "origin":"a","seq":17}`; `{"cmd":"query","name":"ping","payload":"",
//! "timeout_ms":5000,"nodes":["b"],"tags":["role=web*"]}` (`nodes` and
//! `tags` optional: absent or empty, no condition) → once every expected
//! node (the live members matching the filter, as the agent knows them)
//! has acknowledged and responded, or else at the timeout,
//! `{"ok":true,"id":…,"acks":["b"],"responses":[{"node":"b",
//! "payload":"…"}],"expected":["b"],"missing":[],"complete":true}`. With
//! `"no_ack":true` a response is enough (acks are not waited for); with
//! `"stream":true` each answer comes first as a line of its own as it
//! arrives, `{"event":"query_ack","from":"b"}` (not with `no_ack`) or
//! `{"event":"query_response","from":"b","payload":"…"}`, and the line
//! with `ok` ends the answer. `{"cmd":"election","topic":"t","expire_ms":30000,
//! "min":2,"total":3}` and `{"cmd":"vote","topic":"t","yes":true}` →
//! `{"ok":true}`. `{"cmd":"tags","set":["role=db"],"delete":["zone"]}`
//! (both optional: none lists) → `{"ok":true,"tags":{"role":"db"}}`.
//! `{"cmd":"monitor","kinds":["member_joined"],"json":false}`
//! (`kinds` optional: every kind) streams the agent's event lines as
//! `{"line":"member_joined    b …"}` until the client hangs up (no line
//! with `ok` comes, unless the agent refuses the request). Payloads are text; a response that is not UTF-8 also
//! comes as `payload_base64`.
//!
//! A response is `{"ok":true, …}` with the command's fields, or
//! `{"ok":false,"error":"…"}`. A new command is a new [`Request`] variant,
//! an arm in the agent's handler and a client subcommand; old clients and
//! agents keep working with each other for the commands they share.
//!
//! Default path: `$XDG_RUNTIME_DIR/vinery/<name>.sock`, or
//! `/tmp/vinery-<uid>/<name>.sock` without `XDG_RUNTIME_DIR`; the directory
//! is created with mode 0700 and must belong to the current user.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use vinery::runtime::{KeyEntry, NodeStats};
use vinery::security::SecretKey;
use vinery::{Member, Stats};

/// One command to a running agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The members the agent knows, itself included: all, or those
    /// matching every condition given.
    Members {
        /// Only members in one of these states (`alive`, `suspect`,
        /// `dead`, `left`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        status: Vec<String>,
        /// Only members whose name matches this glob.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        /// Only members with these tags, each `key=glob`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
    },
    /// The agent's counters.
    Stats,
    /// Leave the cluster gracefully, then exit.
    Leave,
    /// Join (also) through these addresses, at run time.
    Join {
        /// `ip:port`, `[ipv6]:port` or `name:port`.
        addrs: Vec<String>,
    },
    /// What the agent is: name, version, addresses, profile, keyring
    /// fingerprints and switches, peers by state, and its counters.
    Info,
    /// A node's key as the agent sees it.
    Get {
        /// The key.
        key: String,
        /// Its owner; none: the agent itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// Set one of the agent's own keys.
    Set {
        /// The key.
        key: String,
        /// The value (text).
        value: String,
        /// Time to live in milliseconds; none: no expiry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// Delete one of the agent's own keys.
    Delete {
        /// The key.
        key: String,
    },
    /// Every visible key of every node, or those matching a prefix or glob.
    Kv {
        /// Only keys starting with this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// Only keys matching this glob (`*`, `?`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        glob: Option<String>,
    },
    /// The keyring: list it, or change it and list the result. At most one
    /// change per request.
    Keys {
        /// Install this key (base64).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        install: Option<String>,
        /// Make this installed key the primary.
        #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
        use_key: Option<String>,
        /// Remove this key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remove: Option<String>,
        /// Migration switch: with keys, keep sending plaintext.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        send_plaintext: Option<bool>,
        /// Migration switch: with keys, keep accepting plaintext.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accept_plaintext: Option<bool>,
        /// Install, use, remove or list on every live member (through
        /// the internal query `_vinery.keys`), not just this agent.
        #[serde(default, skip_serializing_if = "is_false")]
        cluster: bool,
        /// With `cluster` and no change: list every member's keyring.
        #[serde(default, skip_serializing_if = "is_false")]
        list: bool,
    },
    /// Say a user event to every other node.
    Event {
        /// The event's name.
        name: String,
        /// Its payload (text).
        #[serde(default)]
        payload: String,
        /// How long it lives (and reaches joining nodes), in milliseconds.
        duration_ms: u64,
        /// Receivers keep only the latest of this name per coalescing
        /// window.
        #[serde(default)]
        coalesce: bool,
    },
    /// Ask the matching nodes and wait for their answers, until every
    /// expected node answered or the timeout.
    Query {
        /// The query's name.
        name: String,
        /// Its payload (text).
        #[serde(default)]
        payload: String,
        /// How long answers are taken, in milliseconds.
        timeout_ms: u64,
        /// Only these nodes answer (empty: any node).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        nodes: Vec<String>,
        /// Only nodes with these tags answer, each `key=glob`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
        /// Send each answer as a line as it arrives (an older client
        /// leaves it out and gets the one final line).
        #[serde(default, skip_serializing_if = "is_false")]
        stream: bool,
        /// Finish once every expected node has responded, without waiting
        /// for acks (nor streaming them).
        #[serde(default, skip_serializing_if = "is_false")]
        no_ack: bool,
    },
    /// Create an election.
    Election {
        /// What is being decided.
        topic: String,
        /// How long it runs, in milliseconds.
        expire_ms: u64,
        /// Yes votes it needs.
        min: u32,
        /// The electorate's size.
        total: u32,
    },
    /// Vote on the live election on a topic.
    Vote {
        /// The election's topic.
        topic: String,
        /// Yes or no.
        yes: bool,
    },
    /// Mark a failed member as left, cluster-wide.
    ForceLeave {
        /// The member's name.
        node: String,
    },
    /// This node's tags (its metadata as `k=v,…`): list them, or change
    /// them live (gossiped to every member) and list the result.
    Tags {
        /// Tags to set, each `key=value`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        set: Vec<String>,
        /// Tag keys to delete.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        delete: Vec<String>,
    },
    /// Stream the agent's events, each line as the agent prints it, until
    /// the client hangs up.
    Monitor {
        /// Only events of these kinds (`member_joined`, `user_event`…;
        /// empty: every kind).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kinds: Vec<String>,
        /// The lines as the agent's `--json` prints them.
        #[serde(default, skip_serializing_if = "is_false")]
        json: bool,
    },
}

fn is_false(b: &bool) -> bool {
    !b
}

/// How long a client waits for any answer: a leave waits for the agent to
/// finish leaving.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

impl Request {
    /// How long the client waits for the agent's answer: a query is
    /// answered after its timeout, a monitor never (none: no limit).
    pub fn answer_within(&self) -> Option<Duration> {
        match self {
            Request::Query { timeout_ms, .. } => {
                Some(ANSWER_WITHIN.saturating_add(Duration::from_millis(*timeout_ms)))
            }
            Request::Monitor { .. } => None,
            _ => Some(ANSWER_WITHIN),
        }
    }
}

/// The default control socket of the agent named `name`.
pub fn default_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime_dir) => PathBuf::from(runtime_dir).join("vinery"),
        None => PathBuf::from(format!("/tmp/vinery-{}", current_uid())),
    };
    dir.join(format!("{name}.sock"))
}

fn current_uid() -> u32 {
    // /proc/self belongs to the process's effective user; no libc needed.
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// Creates the socket's directory (mode 0700) if missing, and refuses a
/// directory someone else owns: another user could otherwise swap the
/// socket for theirs.
pub fn prepare_dir(path: &Path) -> io::Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // The umask may have taken bits off the mode; 0700 is what keeps
        // others from reaching the socket.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let owner = std::fs::metadata(dir)?.uid();
    if owner != current_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} belongs to uid {owner}, not to us", dir.display()),
        ));
    }
    Ok(())
}

/// Sends `request` to the agent at `path` and returns its response,
/// waiting for it as long as [`Request::answer_within`] says. Each line
/// that comes before the response (a streamed query's answers) goes to
/// `progress` as it arrives; the response is the line with an `ok` field.
pub fn call(
    path: &Path,
    request: &Request,
    mut progress: impl FnMut(&Json),
) -> Result<Json, String> {
    let fail = |what: &str, e: io::Error| format!("{what} {}: {e}", path.display());
    let mut stream = UnixStream::connect(path).map_err(|e| fail("cannot connect to", e))?;
    stream
        .set_read_timeout(request.answer_within())
        .map_err(|e| fail("cannot use", e))?;
    let line = serde_json::to_string(request).expect("requests serialize");
    // A busy agent answers and hangs up before reading: its answer says
    // more than the failed write would.
    let written = writeln!(stream, "{line}").map_err(|e| fail("cannot write to", e));
    let mut lines = BufReader::new(stream).lines();
    let response = loop {
        let line = match (lines.next(), &written) {
            (Some(Ok(line)), _) => line,
            (_, Err(e)) => return Err(e.clone()),
            (Some(Err(e)), Ok(())) => return Err(fail("no answer from", e)),
            (None, Ok(())) => return Err(format!("{} hung up without answering", path.display())),
        };
        let line: Json = serde_json::from_str(&line)
            .map_err(|e| format!("bad answer from {}: {e}", path.display()))?;
        if line.get("ok").is_some() {
            break line;
        }
        progress(&line);
    };
    if response["ok"] == json!(true) {
        Ok(response)
    } else {
        Err(response["error"]
            .as_str()
            .unwrap_or("the agent refused the request")
            .to_string())
    }
}

/// One response line: `fields` with `"ok":true`, or the error.
pub fn response_line(result: Result<Map<String, Json>, String>) -> Vec<u8> {
    let body = match result {
        Ok(mut fields) => {
            fields.insert("ok".into(), json!(true));
            Json::Object(fields)
        }
        Err(error) => json!({"ok": false, "error": error}),
    };
    json_line(&body)
}

/// `value` as one line of the socket's protocol, newline included.
pub fn json_line(value: &Json) -> Vec<u8> {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// A member as JSON (metadata as a string, lossily if it is not UTF-8).
pub fn member_json(m: &Member) -> Json {
    json!({
        "name": m.name,
        "addr": m.addr.to_string(),
        "state": m.state.name(),
        "incarnation": m.incarnation,
        "meta": String::from_utf8_lossy(&m.meta),
    })
}

/// A key as JSON: owner, key, value (see [`insert_bytes`]), version, and
/// expiry in milliseconds since the Unix epoch (null: none).
pub fn entry_json(e: &KeyEntry) -> Json {
    let mut j = Map::new();
    j.insert("node".into(), json!(e.node));
    j.insert("key".into(), json!(e.key));
    insert_bytes(&mut j, "value", &e.value);
    j.insert("version".into(), json!(e.version));
    j.insert(
        "expires_ms".into(),
        json!(e.expires.map(millis_since_epoch)),
    );
    Json::Object(j)
}

/// Inserts `bytes` as the text field `field` (lossily if it is not UTF-8),
/// plus `<field>_base64` when it is not UTF-8, so that nothing is lost.
pub fn insert_bytes(fields: &mut Map<String, Json>, field: &str, bytes: &[u8]) {
    fields.insert(field.into(), json!(String::from_utf8_lossy(bytes)));
    if std::str::from_utf8(bytes).is_err() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        fields.insert(format!("{field}_base64"), json!(b64));
    }
}

/// A key of the keyring as JSON: its fingerprint (never the key itself)
/// and whether it is the primary.
pub fn keyring_json(keys: &[SecretKey]) -> Json {
    keys.iter()
        .enumerate()
        .map(|(i, k)| json!({"fingerprint": k.fingerprint(), "primary": i == 0}))
        .collect()
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn millis_since_epoch(t: std::time::SystemTime) -> u128 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn per_kind<'a>(counters: impl Iterator<Item = (&'a str, u64)>) -> Json {
    Json::Object(counters.map(|(k, n)| (k.to_string(), json!(n))).collect())
}

/// The endpoint's counters that are one number each, by name, with what
/// they count (for `stats` and the metrics' help lines); the per-kind
/// counters and the drops by reason are the others.
pub fn endpoint_counters(e: &Stats) -> [(&'static str, u64, &'static str); 29] {
    // Naming every field: a new counter fails to compile here until it
    // is listed.
    let Stats {
        packets_in,
        bytes_in,
        packets_out,
        bytes_out,
        probes,
        indirect_probes,
        failed_probes,
        suspicions,
        refutations,
        deaths_declared,
        syncs_started,
        syncs_answered,
        suspicions_vetoed,
        suspicions_held,
        suspicions_withheld,
        name_conflicts,
        kv_tombstones_collected,
        kv_entries_applied,
        kv_pulls,
        kv_pulls_answered,
        kv_resets,
        kv_overflows,
        bus_items_new,
        bus_duplicates,
        bus_wants,
        bus_served,
        bus_packets_out,
        kv_generation_refutations,
        events_coalesced,
        messages_in: _,
        messages_out: _,
        message_bytes_out: _,
        drops: _,
    } = e;
    [
        (
            "packets_in",
            *packets_in,
            "Datagrams received (accepted or not).",
        ),
        ("bytes_in", *bytes_in, "Bytes received."),
        ("packets_out", *packets_out, "Datagrams sent."),
        ("bytes_out", *bytes_out, "Bytes sent (UDP payload)."),
        ("probes", *probes, "Probes started."),
        (
            "indirect_probes",
            *indirect_probes,
            "Probes that fell back to ping-req.",
        ),
        (
            "failed_probes",
            *failed_probes,
            "Probes that failed and raised a suspicion.",
        ),
        (
            "suspicions",
            *suspicions,
            "Members this node started suspecting.",
        ),
        (
            "refutations",
            *refutations,
            "Suspicions of this node that it refuted.",
        ),
        (
            "deaths_declared",
            *deaths_declared,
            "Members this node declared dead.",
        ),
        (
            "syncs_started",
            *syncs_started,
            "Anti-entropy exchanges this node started.",
        ),
        (
            "syncs_answered",
            *syncs_answered,
            "Anti-entropy requests this node answered.",
        ),
        (
            "suspicions_vetoed",
            *suspicions_vetoed,
            "Failed probes whose suspicion phi vetoed.",
        ),
        (
            "suspicions_held",
            *suspicions_held,
            "Failed probes whose suspicion was held back for a confirming probe.",
        ),
        (
            "suspicions_withheld",
            *suspicions_withheld,
            "Held suspicions dropped because this node heard nobody meanwhile.",
        ),
        (
            "name_conflicts",
            *name_conflicts,
            "Times another node was heard alive under this node's name.",
        ),
        (
            "kv_tombstones_collected",
            *kv_tombstones_collected,
            "Key/value tombstones collected after their grace period.",
        ),
        (
            "kv_entries_applied",
            *kv_entries_applied,
            "Key/value entries of other nodes applied.",
        ),
        ("kv_pulls", *kv_pulls, "Key/value digests this node sent."),
        (
            "kv_pulls_answered",
            *kv_pulls_answered,
            "Key/value digests this node answered.",
        ),
        (
            "kv_resets",
            *kv_resets,
            "Replicas reset for being behind a tombstone horizon.",
        ),
        (
            "kv_generation_refutations",
            *kv_generation_refutations,
            "Times this node found state of a previous life and moved to a new generation.",
        ),
        (
            "kv_overflows",
            *kv_overflows,
            "Gossip intervals that overflowed (push rate halved).",
        ),
        (
            "bus_items_new",
            *bus_items_new,
            "Bus items received for the first tim*",
        ),
        (
            "bus_duplicates",
            *bus_duplicates,
            "Bus items received again.",
        ),
        ("bus_wants", *bus_wants, "Bus item ids this node pulled."),
        (
            "bus_served",
            *bus_served,
            "Bus items this node sent in answer to pulls.",
        ),
        (
            "bus_packets_out",
            *bus_packets_out,
            "Datagrams sent carrying only bus traffic.",
        ),
        (
            "events_coalesced",
            *events_coalesced,
            "Coalesced events superseded before delivery.",
        ),
    ]
}

/// Every counter as JSON: `endpoint` (the protocol's) and `runtime`.
pub fn stats_json(s: &NodeStats) -> Json {
    let e = &s.endpoint;
    let r = &s.runtime;
    let mut endpoint: Map<String, Json> = endpoint_counters(e)
        .into_iter()
        .map(|(name, n, _)| (name.to_string(), json!(n)))
        .collect();
    endpoint.insert("messages_in".into(), per_kind(e.messages_in.nonzero()));
    endpoint.insert("messages_out".into(), per_kind(e.messages_out.nonzero()));
    endpoint.insert(
        "message_bytes_out".into(),
        per_kind(e.message_bytes_out.nonzero()),
    );
    endpoint.insert("drops".into(), json!(e.drops));
    let mut runtime: Map<String, Json> = r
        .by_name()
        .into_iter()
        .map(|(name, n)| (name.to_string(), json!(n)))
        .collect();
    let subscribers = r.subscribers.iter().map(|s| {
        json!({
            "id": s.id,
            "delivered": s.delivered,
            "dropped": s.dropped,
        })
    });
    runtime.insert("subscribers".into(), subscribers.collect());
    json!({"endpoint": endpoint, "runtime": runtime})
}

/// The default node name: the host name (so that `vinery members` on a
/// host finds the agent started there without flags).
pub fn default_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "vinery".into())
}
