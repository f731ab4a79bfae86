//! The event loop: one thread, one `mio::Poll`, any number of drivers
//! (one socket each, token = slot), a timer heap over their deadlines, and
//! a command channel woken by a `mio::Waker`. A standalone
//! [`Node`](super::Node) runs a loop of its own with one driver; a
//! [`Host`](super::Host) runs one loop for many.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::clock::WallClock;
use super::driver::{Call, Driver, Mailbox};
use super::error::NodeError;
use crate::Time;

/// A driver's address on its loop. The generation tells a reused slot from
/// the driver that held it before, so late work (a seed resolution that
/// finished after its node stopped) cannot reach the wrong node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeId {
    slot: usize,
    generation: u64,
}

pub(crate) enum Op {
    Add(Box<Driver>, Sender<Result<NodeId, NodeError>>),
    Call(NodeId, Call),
    /// Replies once the driver and its socket are gone.
    Remove(NodeId, Sender<()>),
    Shutdown,
}

fn wake(waker: &Waker) {
    if let Err(e) = waker.wake() {
        log::error!("cannot wake the event loop: {e}");
    }
}

const WAKER: Token = Token(usize::MAX);
/// Datagrams read from one socket before the loop turns to timers, other
/// sockets and commands: a flood on one socket cannot starve the rest.
const READ_BATCH: usize = 256;
/// Largest UDP payload plus slack: no datagram is ever truncated.
const RECV_BUFFER: usize = 65_536;

/// The user side of a loop: sends it work; dropping the last handle stops
/// the thread and joins it.
pub(crate) struct ReactorHandle {
    tx: Sender<Op>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl ReactorHandle {
    /// Starts a loop on a new thread called `name`.
    pub(crate) fn spawn(name: String) -> Result<ReactorHandle, NodeError> {
        let io_err = |what: &str| {
            let what = what.to_string();
            move |source| NodeError::Io { what, source }
        };
        let poll = Poll::new().map_err(io_err("create the poller"))?;
        let waker =
            Arc::new(Waker::new(poll.registry(), WAKER).map_err(io_err("create the waker"))?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let reactor = Reactor {
            poll,
            ops: rx,
            mailbox_tx: tx.clone(),
            waker: waker.clone(),
            slots: Vec::new(),
            free: Vec::new(),
            next_generation: 0,
            timers: BinaryHeap::new(),
            hot: VecDeque::new(),
            clock: WallClock::default(),
        };
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || reactor.run())
            .map_err(io_err("start the event loop thread"))?;
        Ok(ReactorHandle {
            tx,
            waker,
            thread: Some(thread),
        })
    }

    fn send(&self, op: Op) -> Result<(), NodeError> {
        self.tx.send(op).map_err(|_| NodeError::NotRunning)?;
        wake(&self.waker);
        Ok(())
    }

    /// Puts `driver` on the loop.
    pub(crate) fn add(&self, driver: Driver) -> Result<NodeId, NodeError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Op::Add(Box::new(driver), tx))?;
        rx.recv().map_err(|_| NodeError::NotRunning)?
    }

    /// Runs `f` on the driver's loop and returns its result.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        id: NodeId,
        f: impl FnOnce(&mut Driver, Time) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Op::Call(
            id,
            Box::new(move |d, now| {
                // The caller waits on `rx`; it cannot have gone.
                let _ = tx.send(f(d, now));
            }),
        ))?;
        // A driver already gone drops the work, and with it `tx`.
        rx.recv().map_err(|_| NodeError::NotRunning)
    }

    /// Takes the driver off the loop, closing its socket, and waits until
    /// that is done.
    pub(crate) fn remove(&self, id: NodeId) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.send(Op::Remove(id, tx)).is_ok() {
            // An error means the loop is gone, and the driver with it.
            let _ = rx.recv();
        }
    }
}

impl Drop for ReactorHandle {
    fn drop(&mut self) {
        // A loop that already ended (it panicked) has nothing to stop.
        let _ = self.send(Op::Shutdown);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the event loop thread panicked");
            }
        }
    }
}

struct Slot {
    generation: u64,
    driver: Box<Driver>,
    /// The deadline a timer-heap entry is live for; older entries for this
    /// slot are skipped when they come up.
    armed: Option<Time>,
    writable: bool,
}

struct Reactor {
    poll: Poll,
    ops: Receiver<Op>,
    mailbox_tx: Sender<Op>,
    waker: Arc<Waker>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    next_generation: u64,
    timers: BinaryHeap<Reverse<(Time, usize, u64)>>,
    /// Slots whose last read ended on its budget, to be read again before
    /// the loop sleeps.
    hot: VecDeque<usize>,
    clock: WallClock,
}

impl Reactor {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let now = self.clock.now();
            let timeout = if self.hot.is_empty() {
                self.timers.peek().map(|Reverse((t, _, _))| *t - now)
            } else {
                Some(std::time::Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("event loop stopped: poll failed: {e}");
                return;
            }
            let now = self.clock.now();
            // Deadlines passed by `now` run before the datagrams read at
            // `now`, the order the simulator gives them: otherwise a replica
            // whose expiry timer and the owner's tombstone for that key are
            // both due would apply the tombstone first and never report
            // the expiry (measured: ~10% of expiries lost on loopback).
            self.fire_timers(now);
            for event in events.iter() {
                let slot = event.token().0;
                if event.is_readable() {
                    self.mark_readable(slot);
                }
                if event.is_writable() {
                    if let Some(s) = self.slot_mut(slot) {
                        s.driver.on_writable();
                        self.settle(slot, now);
                    }
                }
            }
            for _ in 0..self.hot.len() {
                let Some(slot) = self.hot.pop_front() else {
                    break;
                };
                let Some(s) = self.slot_mut(slot) else {
                    continue;
                };
                s.driver.on_readable(now, &mut buf, READ_BATCH);
                if s.driver.readable {
                    self.hot.push_back(slot);
                }
                self.settle(slot, now);
            }
            while let Ok(op) = self.ops.try_recv() {
                if !self.apply(op, now) {
                    return;
                }
            }
        }
    }

    fn slot_mut(&mut self, slot: usize) -> Option<&mut Slot> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// Queues a readable socket for reading (once, however many events).
    fn mark_readable(&mut self, slot: usize) {
        if let Some(Some(s)) = self.slots.get_mut(slot) {
            if !s.driver.readable {
                s.driver.readable = true;
                self.hot.push_back(slot);
            }
        }
    }

    fn live_slot(&self, id: NodeId) -> bool {
        matches!(self.slots.get(id.slot), Some(Some(s)) if s.generation == id.generation)
    }

    /// Applies one command; false means shut down.
    fn apply(&mut self, op: Op, now: Time) -> bool {
        match op {
            Op::Add(driver, reply) => {
                // The caller waits on the reply; it cannot have gone.
                let _ = reply.send(self.add(driver, now));
            }
            Op::Call(id, call) => {
                if self.live_slot(id) {
                    if let Some(s) = self.slot_mut(id.slot) {
                        call(&mut s.driver, now);
                    }
                    self.settle(id.slot, now);
                }
            }
            Op::Remove(id, done) => {
                if self.live_slot(id) {
                    self.remove(id.slot);
                }
                let _ = done.send(());
            }
            Op::Shutdown => return false,
        }
        true
    }

    fn add(&mut self, mut driver: Box<Driver>, now: Time) -> Result<NodeId, NodeError> {
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let registered =
            self.poll
                .registry()
                .register(driver.socket_mut(), Token(slot), Interest::READABLE);
        if let Err(source) = registered {
            if slot < self.slots.len() {
                self.free.push(slot);
            }
            return Err(NodeError::Io {
                what: "register the socket".into(),
                source,
            });
        }
        let id = NodeId {
            slot,
            generation: self.next_generation,
        };
        self.next_generation += 1;
        let (tx, waker) = (self.mailbox_tx.clone(), self.waker.clone());
        driver.start(
            now,
            Mailbox::new(move |call| {
                // A closed channel means the loop is gone, and the work
                // with it.
                if tx.send(Op::Call(id, call)).is_ok() {
                    wake(&waker);
                }
            }),
        );
        let entry = Some(Slot {
            generation: id.generation,
            driver,
            armed: None,
            writable: false,
        });
        if slot == self.slots.len() {
            self.slots.push(entry);
        } else {
            self.slots[slot] = entry;
        }
        self.settle(slot, now);
        Ok(id)
    }

    fn remove(&mut self, slot: usize) {
        let Some(mut s) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        s.driver.shut_down();
        if let Err(e) = self.poll.registry().deregister(s.driver.socket_mut()) {
            log::warn!("deregistering a socket: {e}");
        }
        self.free.push(slot);
    }

    /// After anything happened to a driver: send what it produced, end a
    /// finished leave, and bring its registration and timer up to date.
    fn settle(&mut self, slot: usize, now: Time) {
        let registry: &Registry = self.poll.registry();
        let Some(s) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        s.driver.flush();
        if s.driver.is_finished(now) {
            self.remove(slot);
            return;
        }
        let writable = s.driver.wants_writable();
        if writable != s.writable {
            let interest = if writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match registry.reregister(s.driver.socket_mut(), Token(slot), interest) {
                Ok(()) => s.writable = writable,
                Err(e) => log::warn!("reregistering a socket: {e}"),
            }
        }
        let deadline = s.driver.deadline();
        if deadline != s.armed {
            s.armed = deadline;
            if let Some(t) = deadline {
                self.timers.push(Reverse((t, slot, s.generation)));
            }
        }
    }

    fn fire_timers(&mut self, now: Time) {
        // Due entries are taken out first, so a deadline that comes back
        // already due waits for the next turn of the loop instead of
        // spinning here.
        let mut due = Vec::new();
        while let Some(&Reverse(entry)) = self.timers.peek() {
            if entry.0 > now {
                break;
            }
            self.timers.pop();
            due.push(entry);
        }
        for (t, slot, generation) in due {
            let Some(s) = self.slot_mut(slot) else {
                continue;
            };
            if s.generation != generation || s.armed != Some(t) {
                continue;
            }
            s.armed = None;
            s.driver.on_timer(now);
            self.settle(slot, now);
        }
    }
}
