//! `vinery agent`: runs a node, prints its events, answers its control
//! socket, and leaves gracefully on SIGINT, SIGTERM or `vinery leave`.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use crossbeam_channel::{select, Receiver, Sender};
use log::LevelFilter;
use serde_json::{json, Map, Value as Json};
use signal_hook::consts::{SIGINT, SIGTERM};
use vinery::runtime::{Node, NodeConfig};
use vinery::{Config, Event};

use crate::control::{self, Request};
use crate::logger;

/// Arguments of `vinery agent`.
#[derive(Debug, Args)]
#[command(after_help = "\
The control socket defaults to $XDG_RUNTIME_DIR/vinery/<name>.sock, or \
/tmp/vinery-<uid>/<name>.sock when XDG_RUNTIME_DIR is unset; `vinery \
members`, `vinery stats` and `vinery leave` find it the same way from \
--name (or take --control).\n\n\
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
    let mut config = NodeConfig::new(protocol, args.bind).with_seeds(args.join);
    config.advertise = args.advertise;
    let leave_timeout = Duration::try_from_secs_f64(args.leave_timeout)
        .map_err(|e| format!("--leave-timeout: {e}"))?;

    let path = args.control.unwrap_or_else(|| control::default_path(&name));
    let listener = listen(&path)?;
    let _socket_file = SocketFile(path.clone());
    // Before the node starts, so that a signal from then on means "leave".
    let signals = forward_signals()?;
    let mut node = Node::new(config);
    let events = node.subscribe();
    node.start().map_err(|e| e.to_string())?;
    log::info!(
        "{name}: bound {}, advertising {}, control socket {}",
        node.local_addr().expect("running"),
        node.advertise_addr().expect("running"),
        path.display()
    );

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
                let response = request.and_then(|r| answer(&mut node, r, leave_timeout));
                control::write_response(&stream, response);
                if leaving {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            recv(signals) -> sig => {
                log::info!("{name}: signal {}, leaving", sig.unwrap_or_default());
                node.leave(leave_timeout).map_err(|e| e.to_string())?;
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
    leave_timeout: Duration,
) -> Result<Map<String, Json>, String> {
    let mut fields = Map::new();
    match request {
        Request::Members => {
            let mut members = node.all_peers().map_err(|e| e.to_string())?;
            members.push(node.local_member().map_err(|e| e.to_string())?);
            members.sort_by(|a, b| a.name.cmp(&b.name));
            let list = members.iter().map(control::member_json).collect();
            fields.insert("members".into(), Json::Array(list));
        }
        Request::Stats => {
            let stats = node.stats().map_err(|e| e.to_string())?;
            fields.insert("stats".into(), control::stats_json(&stats));
        }
        Request::Leave => {
            log::info!("{}: leave requested on the control socket", node.name());
            node.leave(leave_timeout).map_err(|e| e.to_string())?;
        }
    }
    Ok(fields)
}

fn print_event(e: &Event, human: bool) {
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
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
