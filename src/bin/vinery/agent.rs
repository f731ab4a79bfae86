//! `vinery agent`: runs a node, prints its events (membership and keys),
//! answers its control socket, and leaves gracefully on SIGINT, SIGTERM or
//! `vinery leave`. With `--keyring-file`, keyring changes made through the
//! control socket are written back to the file, so that a restarted agent
//! still speaks the cluster's current key.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{ArgGroup, Args};
use crossbeam_channel::{select, Receiver, Sender};
use log::LevelFilter;
use serde_json::{json, Map, Value as Json};
use signal_hook::consts::{SIGINT, SIGTERM};
use vinery::runtime::{Node, NodeConfig};
use vinery::security::{Cidr, SecretKey};
use vinery::{Config, Event, KeyPattern};

use crate::client::{parse_duration, parse_key};
use crate::control::{self, Request};
use crate::logger;

/// Arguments of `vinery agent`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("keyring").args(["key", "keyring_file"])))]
#[command(after_help = "\
The control socket defaults to $XDG_RUNTIME_DIR/vinery/<name>.sock, or \
/tmp/vinery-<uid>/<name>.sock when XDG_RUNTIME_DIR is unset; the client \
commands (members, stats, leave, get, set, delete, kv, keys) find it the \
same way from --name (or take --control).\n\n\
Encryption: --key (repeatable) or --keyring-file, not both; the first key \
is the primary. Moving a running plaintext cluster to encryption: restart \
each agent with the key, --send-plaintext and --accept-plaintext; then each \
with only --accept-plaintext; then with neither.\n\n\
Events go to stdout, one per line (JSON objects with --json); log lines go \
to stderr. Exit status: 0 after a graceful leave, 1 if the node cannot \
start, 2 on bad arguments.")]
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
    /// Seconds a graceful leave may take before the agent exits anyway.
    #[arg(long, default_value_t = 5.0)]
    leave_timeout: f64,
    /// Log level on stderr: off, error, warn, info, debug or trace.
    #[arg(long, default_value = "info", value_parser = parse_level)]
    log_level: LevelFilter,
    /// Set one of this node's keys once started (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    set: Vec<(String, String)>,
    /// Time to live of the --set keys, e.g. 10s, 5m, 250ms [default: none].
    #[arg(long, value_parser = parse_duration, requires = "set")]
    ttl: Option<Duration>,
    /// An encryption key in base64, as `vinery keygen` prints (repeatable;
    /// the first is the primary).
    #[arg(long = "key", value_name = "BASE64", value_parser = parse_key)]
    key: Vec<SecretKey>,
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
    #[arg(long, requires = "keyring")]
    send_plaintext: bool,
    /// With keys: keep accepting plaintext (migration to encryption).
    #[arg(long, requires = "keyring")]
    accept_plaintext: bool,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Reads a keyring file: one base64 key per line, the primary first;
/// blank lines and `#` comments skipped. Warns if others may read it.
fn read_keyring(path: &Path) -> Result<Vec<SecretKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--keyring-file {}: {e}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "keyring file {} is accessible to other users (chmod 600 it)",
                path.display()
            );
        }
    }
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = SecretKey::from_base64(line)
            .map_err(|e| format!("--keyring-file {} line {}: {e}", path.display(), i + 1))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(format!("--keyring-file {}: no key in it", path.display()));
    }
    Ok(keys)
}

/// Replaces the keyring file with `keys` (mode 0600): a new file renamed
/// over the old one, so a crash leaves one or the other, never half.
fn write_keyring(path: &Path, keys: &[SecretKey]) -> std::io::Result<()> {
    let mut text = String::from(
        "# vinery keyring, primary first (rewritten by the agent when `vinery keys` changes it)\n",
    );
    for k in keys {
        text.push_str(&k.to_base64());
        text.push('\n');
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What the agent's request handler needs besides the node.
struct Settings {
    leave_timeout: Duration,
    keyring_file: Option<PathBuf>,
}

fn parse_level(s: &str) -> Result<LevelFilter, String> {
    s.parse()
        .map_err(|_| format!("must be off, error, warn, info, debug or trace, got {s}"))
}

/// A control connection with its request, handed to the main thread.
type Incoming = (Result<Request, String>, UnixStream);

/// Removes the control socket when the agent exits normally.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `vinery agent`.
pub fn run(args: AgentArgs) -> ExitCode {
    logger::init(args.log_level);
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
    protocol.keys = match &args.keyring_file {
        Some(path) => read_keyring(path)?,
        None => args.key,
    };
    protocol.allowed_sources = args.allow;
    protocol.send_plaintext = args.send_plaintext;
    protocol.accept_plaintext = args.accept_plaintext;
    let mut config = NodeConfig::new(protocol, args.bind).with_seeds(args.join);
    config.advertise = args.advertise;
    let settings = Settings {
        leave_timeout: Duration::try_from_secs_f64(args.leave_timeout)
            .map_err(|e| format!("--leave-timeout: {e}"))?,
        keyring_file: args.keyring_file,
    };

    let path = args.control.unwrap_or_else(|| control::default_path(&name));
    let listener = listen(&path)?;
    let _socket_file = SocketFile(path.clone());
    // Before the node starts, so that a signal from then on means "leave".
    let signals = forward_signals()?;
    let mut node = Node::new(config);
    let events = node.subscribe();
    node.start().map_err(|e| e.to_string())?;
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
            return Err(format!("--set {key}: {e}"));
        }
    }

    let mut requests = accept_requests(listener);
    let human = !args.json;
    loop {
        select! {
            recv(events) -> e => {
                if let Ok(e) = e {
                    print_event(&e, human);
                }
            }
            recv(requests) -> r => {
                let Ok((request, stream)) = r else {
                    // The accepting thread panicked (reported on stderr): serve on
                    // without a control socket rather than spin.
                    requests = crossbeam_channel::never();
                    continue;
                };
                let leaving = request == Ok(Request::Leave);
                let response = request.and_then(|r| answer(&mut node, r, &settings));
                control::write_response(&stream, response);
                if leaving {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            recv(signals) -> sig => {
                log::info!("{name}: signal {}, leaving", sig.unwrap_or_default());
                node.leave(settings.leave_timeout).map_err(|e| e.to_string())?;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

/// Binds the control socket, replacing a stale one (left by an agent that
/// was killed) but never a live one.
fn listen(path: &Path) -> Result<UnixListener, String> {
    let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    control::prepare_dir(path).map_err(|e| fail("control socket directory for", e))?;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "an agent is already listening on {} (choose another --name or --control)",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| fail("cannot remove the stale socket", e))?;
    }
    UnixListener::bind(path).map_err(|e| fail("cannot listen on", e))
}

/// Accepts control connections on a thread and reads their request; the
/// main thread answers, since it owns the node.
fn accept_requests(listener: UnixListener) -> Receiver<Incoming> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("control socket: {e}");
                    continue;
                }
            };
            // A client that connects and says nothing must not block others.
            if let Err(e) = stream.set_read_timeout(Some(Duration::from_secs(5))) {
                log::warn!("control socket: {e}");
                continue;
            }
            let request = control::read_request(&stream);
            if tx.send((request, stream)).is_err() {
                return;
            }
        }
    });
    rx
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

fn answer(
    node: &mut Node,
    request: Request,
    settings: &Settings,
) -> Result<Map<String, Json>, String> {
    let mut fields = Map::new();
    let text = |e: vinery::runtime::NodeError| e.to_string();
    match request {
        Request::Members => {
            let mut members = node.all_peers().map_err(text)?;
            members.push(node.local_member().map_err(text)?);
            members.sort_by(|a, b| a.name.cmp(&b.name));
            let list = members.iter().map(control::member_json).collect();
            fields.insert("members".into(), Json::Array(list));
        }
        Request::Stats => {
            let stats = node.stats().map_err(text)?;
            fields.insert("stats".into(), control::stats_json(&stats));
        }
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
        } => {
            change_keyring(node, install, use_key, remove, settings)?;
            let keys = node.list_keys().map_err(text)?;
            fields.insert("keys".into(), control::keyring_json(&keys));
        }
    }
    Ok(fields)
}

/// Applies at most one keyring change, logs it, and saves the keyring to
/// the keyring file if there is one.
fn change_keyring(
    node: &mut Node,
    install: Option<String>,
    use_key: Option<String>,
    remove: Option<String>,
    settings: &Settings,
) -> Result<(), String> {
    let key = |b64: &str| SecretKey::from_base64(b64).map_err(|e| e.to_string());
    let done = match (install, use_key, remove) {
        (None, None, None) => return Ok(()),
        (Some(k), None, None) => {
            let k = key(&k)?;
            let print = k.fingerprint();
            node.install_key(k)
                .map(|()| format!("installed key {print}"))
        }
        (None, Some(k), None) => {
            let k = key(&k)?;
            node.use_key(&k)
                .map(|()| format!("now sealing with key {}", k.fingerprint()))
        }
        (None, None, Some(k)) => {
            let k = key(&k)?;
            node.remove_key(&k)
                .map(|()| format!("removed key {}", k.fingerprint()))
        }
        _ => return Err("one keyring change at a time (install, use or remove)".into()),
    }
    .map_err(|e| e.to_string())?;
    match &settings.keyring_file {
        Some(path) => {
            log::info!(
                "{}: {done}; saving the keyring to {}",
                node.name(),
                path.display()
            );
            write_keyring(path, &node.config().protocol.keys).map_err(|e| {
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

fn print_event(e: &Event, human: bool) {
    let time_ms = control::millis_since_epoch(SystemTime::now());
    let line = match (e.member(), human) {
        (Some(m), true) => format!(
            "{:<16} {} {} {} incarnation {}",
            e.kind(),
            m.name,
            m.addr,
            m.state.name(),
            m.incarnation
        ),
        (Some(m), false) => {
            json!({"time_ms": time_ms, "event": e.kind(), "member": control::member_json(m)})
                .to_string()
        }
        (None, human) => key_event_line(e, human, time_ms),
    };
    // stdout closed (piped into `head`): the agent keeps running.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
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
            "event": e.kind(),
            "node": e.node(),
            "key": key,
            "value": text,
            "version": version,
        })
        .to_string()
    }
}
