//! `vinery agent`: runs a node, prints its events (membership, keys and
//! the event bus; see `event_lines`), answers queries as `--answer` and
//! `--answer-cmd` say (see `answer`), answers its control socket, and
//! leaves gracefully on SIGINT, SIGTERM or `vinery leave`. With
//! `--keyring-file`, keyring changes made through the control socket are
//! written back to the file, so that a restarted agent still speaks the
//! cluster's current key.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args};
use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use log::LevelFilter;
use serde_json::{json, Map, Value as Json};
use signal_hook::consts::{SIGINT, SIGTERM};
use vinery::runtime::{EventFilter, Node, NodeConfig, NodeError, QueryEvent, QueryHandle};
use vinery::security::{Cidr, SecretKey};
use vinery::{Config, Event, EventKind, KeyPattern, Member, MemberState, QueryFilter};

use crate::answer::{self, CommandLimits};
use crate::client::{parse_duration, parse_key, parse_pair};
use crate::cluster_keys::{self, KeyOp};
use crate::control::{self, Request};
use crate::control_server::{self, ClientWriter, ControlStats, Fields, Reply};
use crate::event_lines::{event_line, print_event};
use crate::join_watch::JoinWatch;
use crate::{config_flags, keyfile, logger, metrics};

/// Arguments of `vinery agent`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("keyring").args(["key", "key_file", "keyring_file"])))]
#[command(after_help = "\
The control socket defaults to $XDG_RUNTIME_DIR/vinery/<name>.sock, or \
/tmp/vinery-<uid>/<name>.sock when XDG_RUNTIME_DIR is unset; the client \
commands (members, stats, leave, join, info, get, set, delete, kv, keys, \
event, query, election, vote, monitor) find it the same way from --name (or take \
--control). It is made 0600 (a directory the agent creates, 0700) whatever \
the umask; an existing path is replaced only if it is a socket nobody \
listens on.\n\n\
Encryption: --key-file, --keyring-file, --key (repeatable) or the \
VINERY_KEY environment variable (base64 keys separated by commas); one of \
them, the first key is the primary. --key shows the key to every local \
user in the process list: prefer the others (VINERY_KEY is readable only \
by the same user and root, and --answer-cmd commands do not inherit it). \
Key files must be at most 64 KiB. Moving a running plaintext cluster to \
encryption: restart each agent with the key, --send-plaintext and --accept-plaintext; then each \
with only --accept-plaintext; then with neither. Or live, each step on \
every agent before the next: vinery keys --send-plaintext on, \
--accept-plaintext on, --local --install KEY, --send-plaintext off, \
--accept-plaintext off.\n\n\
Queries: --answer GLOB=TEXT responds to queries whose name matches GLOB \
with TEXT; --answer-cmd GLOB=COMMAND runs `sh -c COMMAND` with the query's \
payload on stdin and VINERY_QUERY_NAME, VINERY_QUERY_FROM and \
VINERY_QUERY_ID set, and responds with its stdout if it exits 0 within \
--answer-timeout and prints at most max_event_payload (512) bytes. Both \
are repeatable; the first match answers (--answer flags first), on a \
thread of its own, never delaying the node. Unmatched queries are \
acknowledged without a response.\n\n\
Events go to stdout, one per line (JSON objects with --json): membership, \
keys, and the event bus as `KIND field=value…` (user_event name=deploy \
from=a id=a/17 lamport=3 payload=\"v2\"; query, query_ack, \
query_response, query_done, election_started, quorum, election_expired), \
payloads quoted and escaped. Log lines go to stderr, timestamped (JSON \
objects with --log-json); RUST_LOG filters them as env_logger reads it.\n\n\
Joining: the seeds are retried until one answers; a warning names them \
after three unanswered rounds. Durations take units: 250ms, 10s, 5m, \
1h 30m (a bare number is seconds).\n\n\
Exit status: 0 after a graceful leave, 1 if the node cannot start or no \
seed answered within --join-timeout, 2 on bad arguments.")]
pub struct AgentArgs {
    /// UDP address to bind.
    #[arg(long, default_value = "127.0.0.1:7946")]
    bind: SocketAddr,
    /// Address peers send to, if not the bound one (NAT); required when
    /// binding 0.0.0.0 or [::].
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// A member to join through: ip:port, [ipv6]:port or name:port
    /// (repeatable).
    #[arg(long = "join", value_name = "ADDR")]
    join: Vec<String>,
    /// Cluster name; nodes of other clusters are ignored.
    #[arg(long, default_value = "vinery")]
    cluster: String,
    /// This node's name, unique in the cluster [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// Protocol timers: lan, wan or local (memberlist's presets).
    #[arg(long, default_value = "lan", value_parser = ["lan", "wan", "local"])]
    profile: String,
    /// Metadata (tags) gossiped with this node, e.g. role=web.
    #[arg(long, default_value = "")]
    meta: String,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
    /// Control socket path [default: see below].
    #[arg(long)]
    control: Option<PathBuf>,
    /// How long a graceful leave may take before the agent exits anyway.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    leave_timeout: Duration,
    /// Exit with status 1 if no seed has answered within this time (for
    /// supervisors) [default: retry forever, warning after the first
    /// unanswered rounds].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "join")]
    join_timeout: Option<Duration>,
    /// Log level on stderr: off, error, warn, info, debug or trace
    /// [default: info, or as RUST_LOG says; RUST_LOG's per-module
    /// directives, e.g. vinery::runtime=debug, apply either way].
    #[arg(long, value_parser = parse_level)]
    log_level: Option<LevelFilter>,
    /// Log lines as JSON objects (ts, level, target, msg).
    #[arg(long)]
    log_json: bool,
    /// Set one of this node's keys once started (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    set: Vec<(String, String)>,
    /// Time to live of the --set keys, e.g. 10s, 5m, 250ms [default: none].
    #[arg(long, value_parser = parse_duration, requires = "set")]
    ttl: Option<Duration>,
    /// An encryption key in base64, as `vinery keygen` prints (repeatable;
    /// the first is the primary). Visible to every local user in the
    /// process list: prefer --key-file or VINERY_KEY.
    #[arg(long = "key", value_name = "BASE64", value_parser = parse_key)]
    key: Vec<SecretKey>,
    /// A file of encryption keys, as a keyring file but never rewritten:
    /// one base64 key per line, the primary first, `#` comments.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// A keyring file: one base64 key per line, the primary first, `#`
    /// comments. Rewritten (comments dropped) when `vinery keys` changes
    /// the keyring.
    #[arg(long, value_name = "PATH")]
    keyring_file: Option<PathBuf>,
    /// Accept datagrams only from this network, e.g. 10.0.0.0/8 or a bare
    /// address (repeatable) [default: any source].
    #[arg(long = "allow", value_name = "CIDR")]
    allow: Vec<Cidr>,
    /// With keys: keep sending plaintext (migration to encryption).
    #[arg(long)]
    send_plaintext: bool,
    /// With keys: keep accepting plaintext (migration to encryption).
    #[arg(long)]
    accept_plaintext: bool,
    /// Respond to queries whose name matches GLOB with TEXT (repeatable).
    #[arg(long = "answer", value_name = "GLOB=TEXT", value_parser = parse_pair)]
    answer: Vec<(String, String)>,
    /// Respond to queries whose name matches GLOB with the stdout of
    /// `sh -c COMMAND` (repeatable; see below).
    #[arg(long = "answer-cmd", value_name = "GLOB=COMMAND", value_parser = parse_pair)]
    answer_cmd: Vec<(String, String)>,
    /// How long an --answer-cmd command may run before it is killed
    /// (no response then).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    answer_timeout: Duration,
    /// Serve metrics in the Prometheus text format over HTTP at
    /// http://ADDR/metrics, e.g. 127.0.0.1:9946 [default: no metrics].
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

/// What the agent's request handler needs besides the node.
pub struct Settings {
    leave_timeout: Duration,
    keyring_file: Option<PathBuf>,
    /// The `--profile`, for `vinery info`.
    profile: String,
    /// Where metrics are served (`--metrics`, its port chosen if 0), for
    /// `vinery info`.
    metrics: Option<SocketAddr>,
}

fn parse_level(s: &str) -> Result<LevelFilter, String> {
    s.parse()
        .map_err(|_| format!("must be off, error, warn, info, debug or trace, got {s}"))
}

/// Runs `vinery agent`.
pub fn run(args: AgentArgs) -> ExitCode {
    logger::init(args.log_level, args.log_json);
    match start(args) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

fn start(args: AgentArgs) -> Result<ExitCode, String> {
    let name = args.name.unwrap_or_else(control::default_name);
    let mut protocol = Config::preset(&args.profile)
        .expect("clap accepts only known presets")
        .with_name(name.clone());
    protocol.cluster_name = args.cluster;
    protocol.meta = args.meta.into_bytes();
    protocol.keys = keyfile::agent_keys(
        args.key,
        args.key_file.as_deref(),
        args.keyring_file.as_deref(),
    )?;
    if protocol.keys.is_empty() && (args.send_plaintext || args.accept_plaintext) {
        return Err(
            "--send-plaintext and --accept-plaintext need keys (--key-file, --keyring-file, \
             --key or VINERY_KEY)"
                .into(),
        );
    }
    protocol.allowed_sources = args.allow;
    protocol.send_plaintext = args.send_plaintext;
    protocol.accept_plaintext = args.accept_plaintext;
    let join_round = protocol.join_retry_interval;
    let mut config = NodeConfig::new(protocol, args.bind).with_seeds(args.join.iter().cloned());
    config.advertise = args.advertise;
    config_flags::validate(&config)?;
    let metrics_listener = args.metrics.map(metrics::listen).transpose()?;
    let settings = Arc::new(Settings {
        metrics: metrics_listener.as_ref().and_then(|l| l.local_addr().ok()),
        leave_timeout: args.leave_timeout,
        keyring_file: args.keyring_file,
        profile: args.profile,
    });

    let path = args.control.unwrap_or_else(|| control::default_path(&name));
    let (listener, _socket_file) = control_server::listen(&path)?;
    // Before the node starts, so that a signal from then on means "leave".
    let signals = forward_signals()?;
    // Node methods take &self: the control clients, the metrics server,
    // the keys query's handler and this loop share it without waiting on
    // each other.
    let node = Arc::new(Node::new(config));
    let events = node.subscribe();
    // Before the node starts, so that no query arrives unanswered.
    let limits = CommandLimits {
        timeout: args.answer_timeout,
        max_output: node.config().protocol.max_event_payload,
    };
    // First, so that no --answer glob takes the agents' own query.
    cluster_keys::register(&node, settings.clone())?;
    answer::register(&node, args.answer, args.answer_cmd, limits)?;
    node.start()
        .map_err(|e| config_flags::start_error(e, &node.config()))?;
    log::info!(
        "{name}: bound {}, advertising {}, control socket {}{}",
        node.local_addr().expect("running"),
        node.advertise_addr().expect("running"),
        path.display(),
        match node.config().protocol.keys.first() {
            Some(k) => format!(", sealing with key {}", k.fingerprint()),
            None => String::new(),
        }
    );
    for (key, value) in &args.set {
        let set = match args.ttl {
            Some(ttl) => node.set_with_ttl(key, value.as_bytes(), ttl),
            None => node.set(key, value.as_bytes()),
        };
        if let Err(e) = set {
            // Started and perhaps joined: leave, so peers see no failure.
            if let Err(le) = node.leave(settings.leave_timeout) {
                log::warn!("{name}: leaving after the failed --set: {le}");
            }
            return Err(config_flags::set_error(key, e));
        }
    }

    let mut join = JoinWatch::new(args.join, join_round, args.join_timeout);
    let leave_timeout = settings.leave_timeout;
    let settings_metrics = settings.metrics;
    let control_stats = Arc::new(ControlStats::default());
    let handler = {
        let (node, control_stats) = (node.clone(), control_stats.clone());
        move |request: Request| {
            let counters_asked = matches!(request, Request::Stats | Request::Info);
            let mut reply = answer(&node, request, &settings)?;
            if let (true, Reply::Now(fields)) = (counters_asked, &mut reply) {
                if let Some(Json::Object(stats)) = fields.get_mut("stats") {
                    stats.insert("control".into(), control_stats.json());
                }
            }
            Ok(reply)
        }
    };
    if let (Some(metrics_listener), Some(bound)) = (metrics_listener, settings_metrics) {
        let (node, control_stats) = (node.clone(), control_stats.clone());
        let source = move || metrics_snapshot(&node, &control_stats);
        metrics::serve(metrics_listener, Arc::new(source));
        log::info!("{name}: metrics at http://{bound}/metrics");
    }
    let mut left = control_server::serve(listener, Arc::new(handler), control_stats);
    let human = !args.json;
    loop {
        select! {
            recv(events) -> e => {
                if let Ok(e) = e {
                    print_event(&e, human);
                }
            }
            recv(left) -> done => {
                if done.is_ok() {
                    return Ok(ExitCode::SUCCESS);
                }
                // The control socket's thread is gone (reported on stderr):
                // serve on without it rather than spin.
                left = crossbeam_channel::never();
            }
            recv(join.rounds) -> _ => join.round(&node),
            recv(join.deadline) -> _ => {
                if let Err(e) = join.deadline_passed(&node) {
                    // Nobody knows this node: nothing to leave.
                    node.stop();
                    return Err(e);
                }
            }
            recv(signals) -> sig => {
                log::info!("{name}: signal {}, leaving", sig.unwrap_or_default());
                // A leave asked on the control socket may be under way:
                // the node is then no longer running, nothing to do twice.
                if node.is_running() {
                    node.leave(leave_timeout).map_err(|e| e.to_string())?;
                }
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

/// What a metrics scrape shows, read from the node.
fn metrics_snapshot(node: &Node, control: &ControlStats) -> Result<metrics::Snapshot, String> {
    let text = |e: NodeError| e.to_string();
    Ok(metrics::Snapshot {
        stats: node.stats().map_err(text)?,
        members: node.member_counts().map_err(text)?,
        broadcast_queue: node.pending_broadcasts().map_err(text)?,
        keys: node.keys().map_err(text)?.len(),
        health_score: node.health_score().map_err(text)?,
        control: control.by_name(),
    })
}

fn forward_signals() -> Result<Receiver<i32>, String> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let (tx, rx): (Sender<i32>, _) = crossbeam_channel::bounded(4);
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if tx.send(sig).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

fn answer(node: &Arc<Node>, request: Request, settings: &Arc<Settings>) -> Result<Reply, String> {
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
