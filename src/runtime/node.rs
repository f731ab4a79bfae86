//! [`Node`]: the handle a program holds, with a blocking API, and its
//! [`NodeConfig`]. Every call either runs on the node's event loop and
//! waits for the answer, or reads state the handle keeps (subscriptions,
//! addresses, the configuration). Every method takes `&self`, so one node
//! may be shared between threads (`Arc<Node>`): commands reach the loop
//! over a channel, and the little state the handle keeps is behind locks
//! that are never held while waiting for the loop.
//!
//! The handle's membership, keyring and subscription calls live here; its
//! key/value calls in `kv`, its event bus calls in `bus`.

use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::driver::Driver;
use super::error::NodeError;
use super::fanout::Subscribers;
use super::handlers::QueryHandlers;
use super::reactor::{NodeId, ReactorHandle};
use super::resolve;
use super::socket;
use super::stats::NodeStats;
use super::subscribe::EventFilter;
use crate::security::{KeyError, SecretKey};
use crate::{Config, ConfigError, Endpoint, Event, Member, MemberCounts, MemberState, Time};

/// Everything a [`Node`] needs: where to listen, what to advertise, whom
/// to join, and the protocol [`Config`] (cluster name, node name, timers).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// The protocol configuration; `protocol.name` must be set.
    pub protocol: Config,
    /// Address the UDP socket binds. Port 0 picks a free port (kept across
    /// a stop and start when it is still free).
    pub bind: SocketAddr,
    /// Address peers send to, when it differs from the bound one (NAT,
    /// port forwarding). Required when `bind` is a wildcard (`0.0.0.0`,
    /// `[::]`); a port of 0 means the bound port. Default: the bound address.
    pub advertise: Option<SocketAddr>,
    /// Members to join through: `ip:port`, `[ipv6]:port` or `name:port`.
    /// Names are resolved by the runtime, again on every join retry while
    /// the node is alone. Default: none (the first node of a cluster).
    pub seeds: Vec<String>,
    /// Socket receive and send buffer sizes requested, in bytes; the OS may
    /// grant less (see [`RuntimeStats`](super::RuntimeStats)). Default: 4 MiB.
    pub socket_buffer: usize,
    /// Datagrams held while the socket would block; beyond it they are
    /// dropped and counted. Default: 1024.
    pub send_queue: usize,
    /// Events buffered per subscription; beyond it a slow subscriber loses
    /// events (counted). Also the queries that may wait for the query
    /// handlers ([`Node::on_query`]). Default: 1024.
    pub event_buffer: usize,
}

impl NodeConfig {
    /// A node running `protocol`, bound to `bind`, with default runtime
    /// settings and no seeds.
    pub fn new(protocol: Config, bind: SocketAddr) -> NodeConfig {
        NodeConfig {
            protocol,
            bind,
            advertise: None,
            seeds: Vec::new(),
            socket_buffer: 4 << 20,
            send_queue: 1024,
            event_buffer: 1024,
        }
    }

    /// A node running `protocol` on an ephemeral loopback port: what
    /// examples, tests and single-machine experiments start from.
    pub fn loopback(protocol: Config) -> NodeConfig {
        NodeConfig::new(protocol, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// This config with `seeds` to join through.
    pub fn with_seeds<S: Into<String>>(mut self, seeds: impl IntoIterator<Item = S>) -> NodeConfig {
        self.seeds = seeds.into_iter().map(Into::into).collect();
        self
    }

    /// This config advertising `addr`.
    pub fn with_advertise(mut self, addr: SocketAddr) -> NodeConfig {
        self.advertise = Some(addr);
        self
    }

    /// Checks the runtime's fields and the protocol config, naming the
    /// first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| Err(ConfigError { field, reason });
        self.protocol.validate()?;
        match self.advertise {
            None if self.bind.ip().is_unspecified() => {
                return bad(
                    "advertise",
                    format!(
                        "must be set when binding the wildcard address {}: peers need an \
                         address they can reach",
                        self.bind
                    ),
                );
            }
            Some(a) if a.ip().is_unspecified() => {
                return bad("advertise", format!("must be a reachable address, got {a}"));
            }
            Some(a) if a.is_ipv6() != self.bind.is_ipv6() => {
                return bad(
                    "advertise",
                    format!(
                        "must be of the same address family as bind ({}), got {a}",
                        self.bind
                    ),
                );
            }
            _ => {}
        }
        if self.send_queue == 0 {
            return bad("send_queue", "must be at least 1".into());
        }
        if self.event_buffer == 0 {
            return bad("event_buffer", "must be at least 1".into());
        }
        Ok(())
    }
}

/// A cluster member running over real UDP.
///
/// A standalone node ([`Node::new`]) runs its own thread while started; a
/// hosted one ([`Host::node`](super::Host::node)) runs on its host's thread.
/// Either way the API is the same, and subscriptions survive
/// [`Node::stop`] and [`Node::start`]. Dropping a node stops it (without
/// leaving: to the cluster that is a crash).
///
/// Every method takes `&self`: a node can be shared between threads
/// through an `Arc<Node>`, and calls from several threads are applied one
/// at a time on the node's loop. Methods named like the
/// [`Endpoint`]'s do what the endpoint's method of that name does.
///
/// ```no_run
/// use vinery::runtime::{Node, NodeConfig};
/// use vinery::Config;
///
/// let config = NodeConfig::new(Config::lan().with_name("node-1"), "127.0.0.1:7946".parse()?)
///     .with_seeds(["127.0.0.1:7947", "seed.example:7946"]);
/// let node = Node::new(config);
/// let events = node.subscribe();
/// node.start()?;
/// for event in events.iter().take(3) {
///     println!("{event:?}");
/// }
/// println!("{:?}", node.live_peers()?);
/// node.leave(std::time::Duration::from_secs(5))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Node {
    /// The protocol config's name, which nothing changes.
    name: String,
    /// The configuration, with the changes made through the handle
    /// (metadata, keyring, migration switches) applied on the node's loop
    /// in the order the endpoint applied them, so that a restarted node
    /// comes back as it was.
    config: Arc<Mutex<NodeConfig>>,
    pub(super) subscribers: Arc<Subscribers>,
    /// Query handlers, kept here so that they survive stop and start.
    pub(super) handlers: Arc<QueryHandlers>,
    /// The host's loop, for a hosted node.
    host: Option<Arc<ReactorHandle>>,
    /// Held through a start or stop, so that they happen one at a time.
    run: Mutex<RunState>,
}

#[derive(Default)]
struct RunState {
    running: Option<Running>,
    /// The address the last run bound, so that a restart keeps its port.
    last_local: Option<SocketAddr>,
}

/// A started node: where its driver lives. Dropping it takes the driver off
/// its loop (closing the socket), and for a standalone node ends the thread.
struct Running {
    reactor: Arc<ReactorHandle>,
    id: NodeId,
    local: SocketAddr,
    advertise: SocketAddr,
}

impl Running {
    fn is(&self, reactor: &Arc<ReactorHandle>, id: NodeId) -> bool {
        Arc::ptr_eq(&self.reactor, reactor) && self.id == id
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.reactor.remove(self.id);
    }
}

/// Locks `m`. What the handle's locks guard is replaced whole (a config
/// field, the running state), so a panic while holding one leaves nothing
/// half-done worth refusing.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// A standalone node, not started yet.
    pub fn new(config: NodeConfig) -> Node {
        Node::placed(config, None)
    }

    pub(super) fn placed(config: NodeConfig, host: Option<Arc<ReactorHandle>>) -> Node {
        let capacity = config.event_buffer.max(1);
        Node {
            name: config.protocol.name.clone(),
            subscribers: Arc::new(Subscribers::new(capacity)),
            handlers: Arc::new(QueryHandlers::new(capacity)),
            config: Arc::new(Mutex::new(config)),
            host,
            run: Mutex::default(),
        }
    }

    /// The configuration, as changed through this handle since (metadata,
    /// keyring, migration switches): what the next [`Node::start`] uses.
    pub fn config(&self) -> NodeConfig {
        lock(&self.config).clone()
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Binds the socket, creates a fresh [`Endpoint`] (new random seed,
    /// incarnation 0) and starts joining the seeds. A node that ran before
    /// under the same name refutes its old record and is alive again.
    pub fn start(&self) -> Result<(), NodeError> {
        let mut run = lock(&self.run);
        if run.running.is_some() {
            return Err(NodeError::AlreadyRunning);
        }
        let config = self.config();
        config.validate()?;
        let bound = bind(&config, run.last_local)?;
        let local = bound.local;
        let advertise = match config.advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), local.port()),
            Some(a) => a,
            None => local,
        };
        let endpoint = Endpoint::new(config.protocol, advertise, fresh_seed(local))?;
        let driver = Driver::new(
            endpoint,
            bound,
            config.seeds,
            self.subscribers.clone(),
            self.handlers.clone(),
            config.send_queue,
        );
        let reactor = match &self.host {
            Some(host) => host.clone(),
            None => Arc::new(ReactorHandle::spawn(format!("vinery {}", self.name()))?),
        };
        let id = reactor.add(driver)?;
        run.last_local = Some(local);
        run.running = Some(Running {
            reactor,
            id,
            local,
            advertise,
        });
        Ok(())
    }

    /// Stops at once, without telling the cluster (peers will find the node
    /// failed). Does nothing if not running.
    pub fn stop(&self) {
        let stopped = lock(&self.run).running.take();
        // Outside the lock: taking the driver off its loop waits for the loop.
        drop(stopped);
    }

    /// Leaves gracefully: broadcasts the departure, keeps running until the
    /// news is out ([`Endpoint::leave_finished`]) or `timeout` has passed,
    /// then stops.
    pub fn leave(&self, timeout: Duration) -> Result<(), NodeError> {
        let (reactor, id) = self.target()?;
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        reactor.call(id, move |d, now| d.leave(now, timeout, done_tx))?;
        // The driver holds `done_tx` until it is off the loop.
        let _ = done_rx.recv();
        let mut run = lock(&self.run);
        // Another thread may have stopped the node meanwhile, and started it
        // again: that run is not the one that left.
        if run.running.as_ref().is_some_and(|r| r.is(&reactor, id)) {
            let left = run.running.take();
            drop(run);
            drop(left);
        }
        Ok(())
    }

    /// Whether the node is started (and has not stopped or left).
    pub fn is_running(&self) -> bool {
        lock(&self.run).running.is_some()
    }

    /// The address the socket is bound to, while running.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        lock(&self.run).running.as_ref().map(|r| r.local)
    }

    /// The address peers know this node by, while running.
    pub fn advertise_addr(&self) -> Option<SocketAddr> {
        lock(&self.run).running.as_ref().map(|r| r.advertise)
    }

    /// Every event from now on, through a channel of
    /// [`NodeConfig::event_buffer`] events. Subscriptions outlive stop and
    /// start; dropping the receiver ends one.
    pub fn subscribe(&self) -> Receiver<Event> {
        self.subscribers.add(EventFilter::all())
    }

    /// The events `filter` selects, from now on.
    pub fn subscribe_filtered(&self, filter: EventFilter) -> Receiver<Event> {
        self.subscribers.add(filter)
    }

    /// The first event `filter` selects, then nothing: the subscription
    /// ends once it has delivered one, and the receiver sees the channel
    /// disconnected after taking it (for "tell me when X happens").
    pub fn subscribe_once(&self, filter: EventFilter) -> Receiver<Event> {
        self.subscribers.add_once(filter)
    }

    /// Every member known, in any state, this node included.
    pub fn members(&self) -> Result<Vec<Member>, NodeError> {
        self.with_endpoint(|ep, _| ep.members())
    }

    /// One member by name (this node included), in any state; only that
    /// member is copied off the node's loop.
    pub fn member(&self, name: &str) -> Result<Option<Member>, NodeError> {
        let name = name.to_owned();
        self.with_endpoint(move |ep, _| ep.member(&name))
    }

    /// Whether `name` is a live member: alive, or suspect (a suspect is a
    /// member until it is declared failed; [`Node::member`] tells the two
    /// apart). False for a member failed, left or unknown.
    pub fn is_alive(&self, name: &str) -> Result<bool, NodeError> {
        let name = name.to_owned();
        self.with_endpoint(move |ep, _| {
            ep.member(&name)
                .is_some_and(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
        })
    }

    /// How many members are known in each state, this node included,
    /// counted on the node's loop (no member list is copied).
    pub fn member_counts(&self) -> Result<MemberCounts, NodeError> {
        self.with_endpoint(|ep, _| ep.member_counts())
    }

    /// Every other member known, in any state.
    pub fn all_peers(&self) -> Result<Vec<Member>, NodeError> {
        self.peers(|_| true)
    }

    /// Other members alive or suspect.
    pub fn live_peers(&self) -> Result<Vec<Member>, NodeError> {
        self.peers(|s| matches!(s, MemberState::Alive | MemberState::Suspect))
    }

    /// Other members failed or departed (until they are forgotten, after
    /// [`Config::dead_retention`]).
    pub fn dead_peers(&self) -> Result<Vec<Member>, NodeError> {
        self.peers(|s| matches!(s, MemberState::Dead | MemberState::Left))
    }

    fn peers(&self, keep: fn(MemberState) -> bool) -> Result<Vec<Member>, NodeError> {
        let me = self.name.clone();
        self.with_endpoint(move |ep, _| {
            let mut members = ep.members();
            members.retain(|m| m.name != me && keep(m.state));
            members
        })
    }

    /// This node's own record.
    pub fn local_member(&self) -> Result<Member, NodeError> {
        self.with_endpoint(|ep, _| ep.local_member())
    }

    /// The 4-byte hash of this node's membership and key/value state that
    /// peers compare on every probe (equal hashes: nothing to exchange).
    /// Unchanged means nothing this node knows has changed.
    pub fn state_hash(&self) -> Result<[u8; 4], NodeError> {
        self.with_endpoint(|ep, _| ep.state_hash())
    }

    /// Lifeguard's local health score (0 is healthy; see
    /// [`Endpoint::health_score`]).
    pub fn health_score(&self) -> Result<u32, NodeError> {
        self.with_endpoint(|ep, _| ep.health_score())
    }

    /// Membership updates queued for gossip (see
    /// [`Endpoint::pending_broadcasts`]): a queue that keeps growing means
    /// changes arrive faster than gossip spreads them.
    pub fn pending_broadcasts(&self) -> Result<usize, NodeError> {
        self.with_endpoint(|ep, _| ep.pending_broadcasts())
    }

    /// Marks the failed or suspected member `name` as left cluster-wide
    /// (see [`Endpoint::force_leave`]); refused for this node, an unknown
    /// name or a member alive.
    pub fn force_leave(&self, name: &str) -> Result<(), NodeError> {
        let name = name.to_owned();
        Ok(self.with_endpoint(move |ep, now| ep.force_leave(now, &name))??)
    }

    /// Joins (also) through `seeds` (each `ip:port`, `[ipv6]:port` or
    /// `name:port`, resolved here, on the caller's thread): how a running
    /// node is pointed at a cluster it was not seeded with. Nothing is
    /// joined if any seed does not resolve.
    pub fn join<S: AsRef<str>>(&self, seeds: &[S]) -> Result<(), NodeError> {
        let ipv6 = self.local_addr().ok_or(NodeError::NotRunning)?.is_ipv6();
        let specs: Vec<String> = seeds.iter().map(|s| s.as_ref().to_owned()).collect();
        let found = resolve::resolve_all(&specs, ipv6);
        if let Some((spec, why)) = found.failures.into_iter().next() {
            return Err(NodeError::Resolve { spec, reason: why });
        }
        self.with_endpoint(move |ep, now| ep.join(now, &found.addrs))
    }

    /// Replaces this node's metadata (see [`Endpoint::set_meta`]). Kept in
    /// [`Node::config`] like the keyring, so a restarted node keeps its
    /// tags (which query filters match on).
    pub fn set_meta(&self, meta: &[u8]) -> Result<(), NodeError> {
        let meta = meta.to_vec();
        Ok(self.with_endpoint_and_config(move |ep, config, now| {
            ep.set_meta(now, &meta)?;
            config.protocol.meta = meta;
            Ok::<_, ConfigError>(())
        })??)
    }

    /// Adds `key` to the keyring: datagrams sealed with it are accepted
    /// from now on. On a node without keys it becomes the primary and the
    /// node starts sealing (unless sending plaintext). Rotation without
    /// downtime: `install_key(new)` on every node, then `use_key(new)` on
    /// every node, then `remove_key(old)` (`docs/PROTOCOL.md` §10).
    ///
    /// Keyring changes are also kept in [`Node::config`], so a restarted
    /// node comes back with the keyring it had.
    pub fn install_key(&self, key: SecretKey) -> Result<(), NodeError> {
        self.change_keys(move |ep| {
            ep.install_key(key);
            Ok(())
        })
    }

    /// Makes the installed `key` the primary: the one this node seals with.
    pub fn use_key(&self, key: &SecretKey) -> Result<(), NodeError> {
        let key = key.clone();
        self.change_keys(move |ep| ep.use_key(&key))
    }

    /// Removes `key` from the keyring; the primary cannot be removed.
    pub fn remove_key(&self, key: &SecretKey) -> Result<(), NodeError> {
        let key = key.clone();
        self.change_keys(move |ep| ep.remove_key(&key))
    }

    /// The keyring, primary first.
    pub fn keys(&self) -> Result<Vec<SecretKey>, NodeError> {
        self.with_endpoint(|ep, _| ep.keys().to_vec())
    }

    fn change_keys(
        &self,
        change: impl FnOnce(&mut Endpoint) -> Result<(), KeyError> + Send + 'static,
    ) -> Result<(), NodeError> {
        Ok(self.with_endpoint_and_config(move |ep, config, _| {
            change(ep)?;
            config.protocol.keys = ep.keys().to_vec();
            Ok::<_, KeyError>(())
        })??)
    }

    /// Migration switch (`Config::send_plaintext`): with keys, keep sending
    /// plaintext. Kept in [`Node::config`] like the keyring.
    pub fn set_send_plaintext(&self, on: bool) -> Result<(), NodeError> {
        self.with_endpoint_and_config(move |ep, config, _| {
            ep.set_send_plaintext(on);
            config.protocol.send_plaintext = on;
        })
    }

    /// Migration switch (`Config::accept_plaintext`): with keys, keep
    /// accepting plaintext. Kept in [`Node::config`] like the keyring.
    pub fn set_accept_plaintext(&self, on: bool) -> Result<(), NodeError> {
        self.with_endpoint_and_config(move |ep, config, _| {
            ep.set_accept_plaintext(on);
            config.protocol.accept_plaintext = on;
        })
    }

    /// The endpoint's counters and the runtime's.
    pub fn stats(&self) -> Result<NodeStats, NodeError> {
        self.call(|d, _| d.stats())
    }

    /// The loop the node runs on and its driver's id there.
    fn target(&self) -> Result<(Arc<ReactorHandle>, NodeId), NodeError> {
        let run = lock(&self.run);
        let r = run.running.as_ref().ok_or(NodeError::NotRunning)?;
        Ok((r.reactor.clone(), r.id))
    }

    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Driver, Time) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let (reactor, id) = self.target()?;
        reactor.call(id, f)
    }

    /// Runs `f` on the endpoint, on the node's loop, with the current time;
    /// what it makes the endpoint send or report goes out right after.
    pub(super) fn with_endpoint<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Endpoint, Time) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        self.call(move |d, now| f(d.endpoint_mut(), now))
    }

    /// [`Node::with_endpoint`], with the handle's configuration too, for a
    /// change to be kept for the next start: changes from several threads
    /// reach the configuration in the order the endpoint applied them.
    fn with_endpoint_and_config<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Endpoint, &mut NodeConfig, Time) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let config = self.config.clone();
        self.with_endpoint(move |ep, now| f(ep, &mut lock(&config), now))
    }
}

/// Binds the socket `config` asks for; after an earlier run bound `last`,
/// an ephemeral request tries that port first.
fn bind(config: &NodeConfig, last: Option<SocketAddr>) -> Result<socket::Bound, NodeError> {
    let bind = config.bind;
    if let Some(last) = last.filter(|_| bind.port() == 0) {
        // Peers still know the old port: keeping it lets them reach the
        // restarted node before they hear of its new address.
        if let Ok(b) = socket::bind(
            SocketAddr::new(bind.ip(), last.port()),
            config.socket_buffer,
        ) {
            return Ok(b);
        }
    }
    socket::bind(bind, config.socket_buffer).map_err(|source| NodeError::Io {
        what: format!("bind {bind}"),
        source,
    })
}

/// A new seed for every run, so that a restarted node does not replay its
/// previous life's random choices.
fn fresh_seed(local: SocketAddr) -> u64 {
    // RandomState is seeded from the OS; no other random source is linked in.
    std::collections::hash_map::RandomState::new().hash_one((std::time::SystemTime::now(), local))
}
