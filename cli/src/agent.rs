//! `vinery agent`: runs a node, prints its events (membership, keys and
//! the event bus; see `event_lines`), answers queries as `--answer` and
//! `--answer-cmd` say (see `answer`), answers its control socket (see
//! `requests`), and leaves gracefully on SIGINT, SIGTERM or `vinery
//! leave`. With `--keyring-file`, keyring changes made through the
//! control socket are written back to the file, so that a restarted agent
//! still speaks the cluster's current key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args};
use crossbeam_channel::{select, Receiver, Sender};
use log::LevelFilter;
use serde_json::Value as Json;
use signal_hook::consts::{SIGINT, SIGTERM};
use vinery::runtime::{Node, NodeConfig, NodeError};
use vinery::security::{Cidr, SecretKey};
use vinery::Config;

use crate::answer::{self, CommandLimits};
use crate::client::{parse_duration, parse_key, parse_pair};
use crate::cluster_keys;
use crate::control::{self, Request};
use crate::control_server::{self, ControlStats, Reply};
use crate::event_lines::print_event;
use crate::join_watch::JoinWatch;
use crate::{config_flags, keyfile, logger, metrics, requests};

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
    pub(crate) leave_timeout: Duration,
    pub(crate) keyring_file: Option<PathBuf>,
    /// The `--profile`, for `vinery info`.
    pub(crate) profile: String,
    /// Where metrics are served (`--metrics`, its port chosen if 0), for
    /// `vinery info`.
    pub(crate) metrics: Option<SocketAddr>,
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
            let mut reply = requests::answer(&node, request, &settings)?;
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
