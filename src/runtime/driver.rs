//! One node on an event loop: its endpoint, socket, send queue, seeds and
//! counters, and the [`Mailbox`] through which other threads hand it work.
//! A driver only moves bytes, time and commands between the OS and the
//! [`Endpoint`]; every protocol decision is the endpoint's (when a leave
//! is done: [`Endpoint::leave_finished`]; whether seeds are still needed:
//! [`Endpoint::needs_seeds`]). What stays here is the caller's patience
//! (a leave's timeout) and name resolution, which is I/O.
//!
//! The driver knows nothing of the loop it runs on: the loop gives it a
//! mailbox when it adds it, so this file sits below `reactor`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_channel::Sender;
use mio::net::UdpSocket;

use super::fanout::Subscribers;
use super::handlers::{HandlerOutcome, QueryHandlers, Responder};
use super::query::IncomingQuery;
use super::resolve::{self, Resolution, Seeds};
use super::socket::{Bound, Outbox};
use super::stats::{log_doubling, NodeStats, RuntimeStats};
use crate::{Endpoint, Event, Time};

/// Work for a driver, run on its loop with the current time.
pub(crate) type Call = Box<dyn FnOnce(&mut Driver, Time) + Send>;

/// Sends work to one driver from any thread (helper threads use it). Made
/// by the loop the driver runs on; work for a driver gone by then is
/// dropped.
#[derive(Clone)]
pub(crate) struct Mailbox(Arc<dyn Fn(Call) + Send + Sync>);

impl Mailbox {
    /// A mailbox that delivers with `post`.
    pub(crate) fn new(post: impl Fn(Call) + Send + Sync + 'static) -> Mailbox {
        Mailbox(Arc::new(post))
    }

    /// Queues `call` for the driver.
    pub(crate) fn post(&self, call: Call) {
        (self.0)(call);
    }

    /// Where the query handlers' outcomes go: back to this driver's loop.
    fn responder(&self) -> Responder {
        let mailbox = self.clone();
        Arc::new(move |query, outcome| {
            mailbox.post(Box::new(move |d: &mut Driver, now| {
                d.handler_finished(now, &query, outcome)
            }));
        })
    }
}

/// A graceful leave in progress.
struct Leaving {
    deadline: Time,
    /// Dropped with the driver: the caller of `Node::leave` waits for the
    /// channel to close, which is when the node is gone from its loop.
    _done: Sender<()>,
}

pub(crate) struct Driver {
    endpoint: Endpoint,
    socket: UdpSocket,
    local: SocketAddr,
    outbox: Outbox,
    seeds: Seeds,
    subscribers: Arc<Subscribers>,
    handlers: Arc<QueryHandlers>,
    /// Reused between flushes so that fan-out allocates nothing per event
    /// batch beyond the events themselves.
    events: Vec<Event>,
    stats: RuntimeStats,
    leaving: Option<Leaving>,
    mailbox: Option<Mailbox>,
    /// Made from the mailbox once, not per query handed to a handler.
    responder: Option<Responder>,
    /// More datagrams may be waiting: a read batch ended on its budget, not
    /// on "would block".
    pub(crate) readable: bool,
}

impl Driver {
    pub(crate) fn new(
        endpoint: Endpoint,
        bound: Bound,
        seeds: Vec<String>,
        subscribers: Arc<Subscribers>,
        handlers: Arc<QueryHandlers>,
        send_queue: usize,
    ) -> Driver {
        Driver {
            endpoint,
            local: bound.local,
            socket: bound.socket,
            outbox: Outbox::new(send_queue),
            seeds: Seeds::new(seeds),
            subscribers,
            handlers,
            events: Vec::new(),
            stats: RuntimeStats {
                recv_buffer: bound.recv_buffer,
                send_buffer: bound.send_buffer,
                ..RuntimeStats::default()
            },
            leaving: None,
            mailbox: None,
            responder: None,
            readable: false,
        }
    }

    pub(crate) fn endpoint_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    pub(crate) fn socket_mut(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Called once the driver is on its loop: `mailbox` reaches it there.
    pub(crate) fn start(&mut self, now: Time, mailbox: Mailbox) {
        self.responder = Some(mailbox.responder());
        self.mailbox = Some(mailbox);
        self.resolve_seeds(now);
    }

    /// Reads up to `budget` datagrams into the endpoint.
    pub(crate) fn on_readable(&mut self, now: Time, buf: &mut [u8], budget: usize) {
        for _ in 0..budget {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    if let Err(e) = self.endpoint.handle_packet(now, from, &buf[..n]) {
                        // Counted by the endpoint under the error's name.
                        log::debug!("{}: dropped a datagram from {from}: {e}", self.local);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.recv_errors += 1;
                    log_doubling(
                        self.stats.recv_errors,
                        format_args!("{}: receive: {e}", self.local),
                    );
                }
            }
        }
        self.readable = true;
    }

    pub(crate) fn on_writable(&mut self) {
        self.outbox.flush(&self.socket, &mut self.stats);
    }

    /// Runs whatever is due at `now`.
    pub(crate) fn on_timer(&mut self, now: Time) {
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        if self.seeds.retry_at.is_some_and(|t| t <= now) {
            self.seeds.retry_at = None;
            if self.endpoint.needs_seeds() {
                self.resolve_seeds(now);
            }
        }
    }

    /// Sends what the endpoint wants sent, hands the queries it received
    /// to the query handlers and its events to the subscribers.
    pub(crate) fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.outbox.send(&self.socket, t, &mut self.stats);
        }
        self.events
            .extend(std::iter::from_fn(|| self.endpoint.poll_event()));
        self.stats.events += self.events.len() as u64;
        self.handlers
            .dispatch(&self.events, self.responder.as_ref(), &mut self.stats);
        self.subscribers.deliver(&mut self.events);
    }

    /// Acts on what a query handler produced. A response the endpoint
    /// refuses (the query is over: the handler took longer than its
    /// timeout; or the response is too large) is counted and logged, like
    /// a panicked handler: the handler's work is lost, and its author
    /// should know.
    fn handler_finished(&mut self, now: Time, query: &IncomingQuery, outcome: HandlerOutcome) {
        let refused = match outcome {
            HandlerOutcome::Respond(payload) => {
                match self.endpoint.respond(now, &query.id, &payload) {
                    Ok(()) => return,
                    Err(e) => Some(e),
                }
            }
            HandlerOutcome::Panicked => None,
        };
        self.stats.query_handler_failures += 1;
        if let Some(e) = refused {
            log_doubling(
                self.stats.query_handler_failures,
                format_args!(
                    "{}: response of the handler of query {:?} ({}) refused: {e}",
                    self.local, query.name, query.id
                ),
            );
        }
    }

    /// Whether datagrams wait for the socket to become writable.
    pub(crate) fn wants_writable(&self) -> bool {
        self.outbox.is_blocked()
    }

    /// When [`Driver::on_timer`] next has work.
    pub(crate) fn deadline(&self) -> Option<Time> {
        [
            self.endpoint.poll_timeout(),
            self.seeds.retry_at,
            self.leaving.as_ref().map(|l| l.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts a graceful leave; the driver is finished once the news is
    /// out or `timeout` has passed.
    pub(crate) fn leave(&mut self, now: Time, timeout: std::time::Duration, done: Sender<()>) {
        self.endpoint.leave(now);
        self.leaving = Some(Leaving {
            deadline: now + timeout,
            _done: done,
        });
    }

    /// Whether a leave has ended: the endpoint says the news is out, or the
    /// caller's time is up.
    pub(crate) fn is_finished(&self, now: Time) -> bool {
        self.leaving
            .as_ref()
            .is_some_and(|l| now >= l.deadline || self.endpoint.leave_finished())
    }

    /// Last chance to send what waits for writability, before the socket
    /// closes.
    pub(crate) fn shut_down(&mut self) {
        self.outbox.flush(&self.socket, &mut self.stats);
        if self.outbox.is_blocked() {
            log::warn!(
                "{}: stopped with datagrams still queued for sending",
                self.local
            );
        }
    }

    pub(crate) fn stats(&self) -> NodeStats {
        NodeStats {
            endpoint: self.endpoint.stats().clone(),
            runtime: RuntimeStats {
                subscribers: self.subscribers.stats(),
                ..self.stats.clone()
            },
        }
    }

    /// Resolves the seeds: at once if they are IP literals, else on a helper
    /// thread whose result comes back through the mailbox.
    fn resolve_seeds(&mut self, now: Time) {
        if self.seeds.specs.is_empty() || self.seeds.in_flight {
            return;
        }
        let ipv6 = self.local.is_ipv6();
        if resolve::all_literal(&self.seeds.specs) {
            let found = resolve::resolve_all(&self.seeds.specs, ipv6);
            self.seeds_resolved(now, found);
            return;
        }
        let Some(mailbox) = self.mailbox.clone() else {
            return;
        };
        let specs = self.seeds.specs.clone();
        let spawned = std::thread::Builder::new()
            .name("vinery-resolve".into())
            .spawn(move || {
                let found = resolve::resolve_all(&specs, ipv6);
                mailbox.post(Box::new(move |d: &mut Driver, now| {
                    d.seeds_resolved(now, found)
                }));
            });
        match spawned {
            Ok(_) => self.seeds.in_flight = true,
            Err(e) => {
                self.stats.resolve_failures += 1;
                log::warn!("{}: cannot start seed resolution: {e}", self.local);
                self.retry_later(now);
            }
        }
    }

    fn seeds_resolved(&mut self, now: Time, found: Resolution) {
        self.seeds.in_flight = false;
        for (spec, why) in &found.failures {
            self.stats.resolve_failures += 1;
            log_doubling(
                self.stats.resolve_failures,
                format_args!("{}: seed {spec}: {why}", self.local),
            );
        }
        if self.seeds.merge(&found) {
            self.endpoint.join(now, &self.seeds.known);
        }
        if !found.failures.is_empty() {
            self.retry_later(now);
        }
    }

    fn retry_later(&mut self, now: Time) {
        self.seeds.retry_at = Some(now + self.endpoint.config().join_retry_interval);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The endpoint goes with the driver: its queries will never end,
        // so whoever waits on one learns it now rather than never.
        self.subscribers.end_queries();
    }
}
