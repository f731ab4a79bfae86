//! The agent's side of the control socket: creating it safely, and serving
//! clients so that none of them can stall the node.
//!
//! Each connection gets a thread of its own (at most
//! [`MAX_CONNECTIONS`] at once; more are told "busy" and closed). Its
//! request must arrive whole, newline-terminated, within
//! [`REQUEST_WITHIN`] and [`MAX_REQUEST`] bytes, and each line of its
//! answer (a streamed query's answers come as lines before the last) must
//! be taken within [`ANSWER_WITHIN`]; a client that dribbles, stays
//! silent, sends an endless line or never reads is cut off, counted in
//! [`ControlStats`] and logged. Nothing here runs on the agent's main
//! thread, a query's wait for its answers included, so the agent's events
//! and signal handling never wait on a client.
//!
//! The socket file is made so that nobody else can connect, whatever the
//! umask: it is bound inside a fresh private directory (mode 0700), made
//! 0600, and only then linked at its path. An existing path is never
//! replaced unless it is a socket nobody answers on (an agent that was
//! killed), and on exit the agent removes the socket only if it is still
//! the one it made.

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde_json::{json, Map, Value as Json};

use crate::control::{self, Request};

/// Control connections served at once; beyond, a client gets "busy".
pub const MAX_CONNECTIONS: usize = 16;
/// The longest request line, in bytes (a request is a short JSON object;
/// the largest, a `set`, carries one value of at most a datagram).
pub const MAX_REQUEST: usize = 64 << 10;
/// How long a client has to send its whole request line.
pub const REQUEST_WITHIN: Duration = Duration::from_secs(5);
/// How long a client has to take its whole answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The fields of a successful answer.
pub type Fields = Map<String, Json>;

/// Waits for an answer that is not ready yet, perhaps writing lines to
/// the client meanwhile (a streamed query's answers, as they arrive).
pub type Waiting = Box<dyn FnOnce(&mut ClientWriter) -> Result<Fields, String> + Send>;

/// An answer to a control request: ready now, or once `Later` returns (a
/// query's, once answered or timed out; the connection's thread waits for
/// it, never the agent's main thread).
pub enum Reply {
    /// The answer.
    Now(Fields),
    /// What waits for the answer.
    Later(Waiting),
}

/// Computes the answer to one request (called on the connection's thread).
pub type Handler = dyn Fn(Request) -> Result<Reply, String> + Send + Sync;

/// What happened to control connections, for `vinery stats`: every client
/// cut off is counted by reason.
#[derive(Debug, Default)]
pub struct ControlStats {
    connections: AtomicU64,
    refused_busy: AtomicU64,
    request_timeouts: AtomicU64,
    requests_too_long: AtomicU64,
    bad_requests: AtomicU64,
    answer_timeouts: AtomicU64,
}

impl ControlStats {
    /// Every counter by name, with what it counts (for `stats` and the
    /// metrics' help lines).
    pub fn by_name(&self) -> [(&'static str, u64, &'static str); 6] {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "connections",
                n(&self.connections),
                "Control connections accepted.",
            ),
            (
                "refused_busy",
                n(&self.refused_busy),
                "Control connections refused: too many open.",
            ),
            (
                "request_timeouts",
                n(&self.request_timeouts),
                "Control clients cut off: no whole request in time.",
            ),
            (
                "requests_too_long",
                n(&self.requests_too_long),
                "Control clients cut off: request line too long.",
            ),
            (
                "bad_requests",
                n(&self.bad_requests),
                "Control requests that did not parse.",
            ),
            (
                "answer_timeouts",
                n(&self.answer_timeouts),
                "Control clients cut off: answer not taken in time.",
            ),
        ]
    }

    /// The counters as JSON.
    pub fn json(&self) -> Json {
        let counters = self.by_name().into_iter();
        Json::Object(
            counters
                .map(|(name, n, _)| (name.into(), json!(n)))
                .collect(),
        )
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Serves the clients of `listener` from threads of their own, answering
/// each request with `handler`. The returned channel gets a message once a
/// `leave` request has been answered (the agent then exits).
pub fn serve(
    listener: UnixListener,
    handler: Arc<Handler>,
    stats: Arc<ControlStats>,
) -> Receiver<()> {
    let (left_tx, left_rx) = crossbeam_channel::bounded(1);
    let accepting = std::thread::Builder::new()
        .name("vinery control".into())
        .spawn(move || accept_loop(&listener, &handler, &stats, &left_tx));
    if let Err(e) = accepting {
        // The listener went with the closure: clients cannot connect, and
        // the agent serves on without its control socket.
        log::error!("control socket: cannot start its thread: {e}");
    }
    left_rx
}

fn accept_loop(
    listener: &UnixListener,
    handler: &Arc<Handler>,
    stats: &Arc<ControlStats>,
    left: &Sender<()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("control socket: {e}");
                // Out of file descriptors, say: give the ones in use a
                // moment to close rather than spin on the error.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        count(&stats.connections);
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            count(&stats.refused_busy);
            log::warn!(
                "control socket: {MAX_CONNECTIONS} clients connected already; one more refused"
            );
            // Never wait on this client: one try, then close.
            let busy = control::response_line(Err(format!(
                "busy: {MAX_CONNECTIONS} control connections are open; try again"
            )));
            if stream.set_nonblocking(true).is_ok() {
                let _ = stream.write(&busy);
            }
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            open: open.clone(),
            stats: stats.clone(),
        };
        let (handler, left) = (handler.clone(), left.clone());
        let spawned = std::thread::Builder::new()
            .name("vinery client".into())
            .spawn(move || connection.serve(stream, &*handler, &left));
        if let Err(e) = spawned {
            // The connection (and its slot) went with the closure.
            log::error!("control socket: cannot start a thread for a client: {e}");
        }
    }
}

/// One client's connection; frees its slot when done.
struct Connection {
    open: Arc<AtomicUsize>,
    stats: Arc<ControlStats>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a request could not be read.
enum Unread {
    TimedOut,
    TooLong,
    Bad(String),
    /// Hung up without a word (another agent checking whether this one
    /// is alive, say): nothing to answer.
    Empty,
    Io(io::Error),
}

impl Connection {
    fn serve(self, mut stream: UnixStream, handler: &Handler, left: &Sender<()>) {
        let request = match read_request(&mut stream) {
            Ok(request) => request,
            Err(unread) => {
                let (counter, error) = match unread {
                    Unread::TimedOut => (
                        &self.stats.request_timeouts,
                        format!("no whole request line within {REQUEST_WITHIN:?}"),
                    ),
                    Unread::TooLong => (
                        &self.stats.requests_too_long,
                        format!("request longer than {MAX_REQUEST} bytes"),
                    ),
                    Unread::Bad(e) => (&self.stats.bad_requests, format!("bad request: {e}")),
                    Unread::Empty => return,
                    Unread::Io(e) => {
                        log::debug!("control socket: reading a request: {e}");
                        return;
                    }
                };
                count(counter);
                log::warn!("control socket: client cut off: {error}");
                ClientWriter::new(&mut stream, &self.stats).answer(Err(error));
                return;
            }
        };
        let leaving = request == Request::Leave;
        let mut client = ClientWriter::new(&mut stream, &self.stats);
        let result = match handler(request) {
            Ok(Reply::Now(fields)) => Ok(fields),
            Ok(Reply::Later(wait)) => wait(&mut client),
            Err(e) => Err(e),
        };
        client.answer(result);
        if leaving {
            // The node has left (or could not): the agent's work is done.
            let _ = left.try_send(());
        }
    }
}

/// Writes the lines of an answer to its client, each taken within
/// [`ANSWER_WITHIN`] or the client is cut off (counted): it gets nothing
/// more, and whatever waits for the answer can stop.
pub struct ClientWriter<'a> {
    stream: &'a mut UnixStream,
    stats: &'a ControlStats,
    /// How long the client has to take each line.
    within: Duration,
    cut_off: bool,
}

impl<'a> ClientWriter<'a> {
    fn new(stream: &'a mut UnixStream, stats: &'a ControlStats) -> Self {
        ClientWriter {
            stream,
            stats,
            within: ANSWER_WITHIN,
            cut_off: false,
        }
    }

    /// Writes a line that comes before the answer; false once the client
    /// is cut off (it stopped reading, or hung up): nobody will read the
    /// answer.
    pub fn progress(&mut self, line: &Json) -> bool {
        self.write(&control::json_line(line))
    }

    /// Whether the client hung up (or was cut off): how an answer with
    /// nothing to write for a while notices that nobody waits for it.
    pub fn hung_up(&mut self) -> bool {
        if !self.cut_off {
            let mut byte = [0u8; 1];
            // A peek that never waits: end of stream means gone; a client
            // sending more after its request is still there.
            let peeked = self
                .stream
                .set_nonblocking(true)
                .and_then(|()| self.stream.read(&mut byte));
            let _ = self.stream.set_nonblocking(false);
            self.cut_off = match peeked {
                Ok(n) => n == 0,
                Err(e) => !is_timeout(&e) && e.kind() != io::ErrorKind::Interrupted,
            };
        }
        self.cut_off
    }

    /// Writes the answer (the line with `ok`), unless the client was cut
    /// off.
    fn answer(mut self, result: Result<Fields, String>) {
        self.write(&control::response_line(result));
    }

    fn write(&mut self, line: &[u8]) -> bool {
        if self.cut_off {
            return false;
        }
        match write_within(self.stream, line, Instant::now() + self.within) {
            Ok(()) => return true,
            Err(e) if is_timeout(&e) => {
                count(&self.stats.answer_timeouts);
                log::warn!(
                    "control socket: client cut off: it did not take a {}-byte line of its \
                     answer within {:?}",
                    line.len(),
                    self.within
                );
            }
            // A client that hung up has nobody to tell.
            Err(e) => log::debug!("control socket: writing an answer: {e}"),
        }
        self.cut_off = true;
        false
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads one request line, whole within [`REQUEST_WITHIN`] (not per read:
/// a client sending a byte now and then is cut off all the same) and at
/// most [`MAX_REQUEST`] bytes long. The end of the stream also ends the
/// line.
fn read_request(stream: &mut UnixStream) -> Result<Request, Unread> {
    let deadline = Instant::now() + REQUEST_WITHIN;
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Unread::TimedOut);
        }
        stream.set_read_timeout(Some(left)).map_err(Unread::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) if line.is_empty() => return Err(Unread::Empty),
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(Unread::TimedOut),
            Err(e) => return Err(Unread::Io(e)),
        };
        let newline = chunk[..n].iter().position(|&b| b == b'\n');
        line.extend_from_slice(&chunk[..newline.unwrap_or(n)]);
        if line.len() > MAX_REQUEST {
            return Err(Unread::TooLong);
        }
        if newline.is_some() {
            break;
        }
    }
    serde_json::from_slice(&line).map_err(|e| Unread::Bad(e.to_string()))
}

/// A stream whose writes can be given a timeout (the control socket's,
/// and the metrics server's).
pub trait TimedWrite: Write {
    /// Writes fail with a timeout after `limit`.
    fn limit_writes(&self, limit: Duration) -> io::Result<()>;
}

impl TimedWrite for UnixStream {
    fn limit_writes(&self, limit: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(limit))
    }
}

impl TimedWrite for std::net::TcpStream {
    fn limit_writes(&self, limit: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(limit))
    }
}

/// Writes all of `bytes` before `deadline`, or fails with a timeout.
pub fn write_within(
    stream: &mut impl TimedWrite,
    mut bytes: &[u8],
    deadline: Instant,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.limit_writes(left)?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The control socket's file, removed when the agent exits if it is still
/// the socket this agent made (not one another agent put there since).
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates the control socket at `path` (the `--control` flag's value, or
/// its default), readable and writable by this user only.
///
/// A path that exists is refused unless it is a stale socket (nothing
/// listening), which is replaced. Errors name `--control`.
pub fn listen(path: &Path) -> Result<(UnixListener, SocketFile), String> {
    let shown = path.display();
    control::prepare_dir(path)
        .map_err(|e| format!("--control {shown}: its directory cannot be used: {e}"))?;
    remove_if_stale(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Nobody else can enter this directory, so nobody can connect to the
    // socket before it is 0600, whatever the umask made of it.
    let private = dir.join(format!(".vinery.{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| format!("--control {shown}: creating {}: {e}", private.display()))?;
    let bound = bind_private(&private, path);
    let _ = std::fs::remove_dir_all(&private);
    let listener = bound.map_err(|e| format!("--control {shown}: {e}"))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("--control {shown}: {e}"))?;
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok((listener, file))
}

/// Binds a socket in `private`, makes it 0600 and links it at `path`; a
/// path that appeared meanwhile is left alone (the link fails).
fn bind_private(private: &Path, path: &Path) -> io::Result<UnixListener> {
    std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o700))?;
    let inside = private.join("s");
    let listener = UnixListener::bind(&inside)?;
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600))?;
    std::fs::hard_link(&inside, path)?;
    Ok(listener)
}

/// Removes `path` if it is a socket nobody listens on (left by an agent
/// that was killed); refuses anything else that exists.
fn remove_if_stale(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("--control {shown}: {e}")),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "--control {shown}: exists and is not a socket; not replacing it \
             (choose another path)"
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(format!(
            "another agent is using --control {shown} (choose another --name or --control)"
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|e| format!("--control {shown}: removing the stale socket: {e}")),
        Err(e) => Err(format!(
            "--control {shown}: cannot tell whether an agent is using it: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_timeouts(stats: &ControlStats) -> u64 {
        stats.answer_timeouts.load(Ordering::Relaxed)
    }

    #[test]
    fn a_client_that_stops_reading_a_streamed_answer_is_cut_off_once() {
        let (mut agent_side, mut client_side) = UnixStream::pair().unwrap();
        let stats = ControlStats::default();
        let mut writer = ClientWriter::new(&mut agent_side, &stats);
        writer.within = Duration::from_millis(200);
        let line = json!({"event": "query_response", "from": "b", "payload": "x".repeat(4096)});
        let started = Instant::now();
        let mut taken = 0;
        while writer.progress(&line) {
            taken += 1;
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{taken} lines written to a client that reads nothing"
            );
        }
        assert!(taken > 0, "not even the socket's buffer took a line");
        assert_eq!(answer_timeouts(&stats), 1);
        // Cut off: nothing more is written, nor waited for, nor counted.
        let again = Instant::now();
        assert!(!writer.progress(&line));
        writer.answer(Ok(Fields::new()));
        assert!(again.elapsed() < Duration::from_millis(100));
        assert_eq!(answer_timeouts(&stats), 1);
        drop(agent_side);
        let mut read = String::new();
        client_side.read_to_string(&mut read).unwrap();
        assert!(!read.contains("\"ok\""), "the answer came after the cut");
    }

    #[test]
    fn a_client_that_hung_up_is_cut_off_without_a_timeout() {
        let (mut agent_side, client_side) = UnixStream::pair().unwrap();
        drop(client_side);
        let stats = ControlStats::default();
        let mut writer = ClientWriter::new(&mut agent_side, &stats);
        assert!(!writer.progress(&json!({"event": "query_ack", "from": "b"})));
        assert_eq!(answer_timeouts(&stats), 0);
    }
}
