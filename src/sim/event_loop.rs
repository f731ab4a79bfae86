//! The event loop: pops the queue, hands datagrams and timer expiries to
//! the endpoints, and routes what they send through the network model.
//!
//! After every call into an endpoint the loop drains its transmits
//! (routing each through the network) and its events (handing each to the
//! observer, `observe.rs`), then re-arms the node's timer from
//! [`Endpoint::poll_timeout`](crate::Endpoint::poll_timeout): a queue entry
//! is pushed only when the deadline changed, and entries that no longer
//! match are skipped when popped. Each step costs O(log queue) plus the
//! endpoint's own work; nothing is O(N).
//!
//! The faults (`faults.rs`) only change the state the loop reads — a
//! node's status, the partition groups, the links — and queue a resume;
//! every random draw of a run happens here (routing a datagram, delaying a
//! slow node's input), so their order is fixed by the order of events.

use rand::Rng;

use super::node::{node_index, Arrival, NodeId, NodeStatus};
use super::observe::PacketRecord;
use super::schedule::{Action, Entry, MAX_IMMEDIATE_RERUNS, TIMER_RESOLUTION};
use super::Sim;
use crate::{Time, Transmit};

impl Sim {
    /// Runs every event up to and including time `t`, then sets the clock
    /// to `t` (if it is later than now).
    pub fn run_until(&mut self, t: Time) {
        self.flush_dirty();
        while let Some(entry) = self.schedule.pop_due(t) {
            self.now = entry.at;
            self.dispatch(entry);
        }
        self.now = self.now.max(t);
    }

    /// Queues `action` at `at`, counting a datagram as in flight.
    pub(super) fn push(&mut self, at: Time, action: Action) {
        if let Action::Deliver { data, .. } = &action {
            let s = &mut self.stats;
            s.in_flight += 1;
            s.in_flight_bytes += data.len() as u64;
            s.peak_in_flight_bytes = s.peak_in_flight_bytes.max(s.in_flight_bytes);
        }
        self.schedule.push(at, action);
    }

    fn dispatch(&mut self, entry: Entry) {
        let now = entry.at;
        match entry.action {
            Action::Deliver {
                to,
                from,
                sent,
                data,
            } => {
                self.stats.in_flight -= 1;
                self.stats.in_flight_bytes -= data.len() as u64;
                let arrival = Arrival {
                    arrived: now,
                    sent,
                    from,
                    data,
                };
                let node = &self.nodes[to as usize];
                if node.status == NodeStatus::Up && node.slow.is_some() {
                    self.handle_late(to, Some(arrival));
                } else {
                    self.deliver(to, arrival);
                }
            }
            Action::Timer { node: i } => {
                let node = &mut self.nodes[i as usize];
                if node.timer != Some(now) || node.status != NodeStatus::Up {
                    return;
                }
                node.timer = None;
                if node.slow.is_some() {
                    node.timer_late = true;
                    self.handle_late(i, None);
                } else {
                    self.run_timers(i);
                }
            }
            Action::Late {
                node: i,
                life,
                arrival,
            } => {
                let node = &mut self.nodes[i as usize];
                if node.restarts != life || node.status == NodeStatus::Crashed {
                    // Ready in a previous life, or the node died first.
                    self.stats.dropped_crashed += u64::from(arrival.is_some());
                    return;
                }
                match arrival {
                    Some(a) => self.deliver(i, a),
                    None => {
                        node.timer_late = false;
                        // A paused node runs its due timers when it resumes.
                        if node.status == NodeStatus::Up {
                            self.run_timers(i);
                        }
                    }
                }
            }
            Action::Resume { node: i } => {
                let node = &mut self.nodes[i as usize];
                if node.status != (NodeStatus::Paused { until: now }) {
                    return;
                }
                node.status = NodeStatus::Up;
                let backlog = std::mem::take(&mut node.backlog);
                for a in backlog {
                    self.handle_packet(i, a.from, a.sent, a.arrived, &a.data);
                    self.drain(i);
                }
                let node = &mut self.nodes[i as usize];
                let ran = node.ep.poll_timeout().is_some_and(|t| t <= now);
                if ran {
                    node.ep.handle_timeout(now);
                    self.stats.timer_fires += 1;
                    self.drain(i);
                }
                self.rearm(i, ran);
            }
        }
    }

    /// Hands a datagram to node `to` now: handled if it is up, queued if it
    /// is paused, dropped if it crashed.
    fn deliver(&mut self, to: u32, a: Arrival) {
        let node = &mut self.nodes[to as usize];
        match node.status {
            NodeStatus::Crashed => self.stats.dropped_crashed += 1,
            NodeStatus::Paused { .. } => {
                self.stats.buffered_paused += 1;
                node.backlog.push(a);
            }
            NodeStatus::Up => {
                self.handle_packet(to, a.from, a.sent, a.arrived, &a.data);
                self.drain(to);
                self.rearm(to, false);
            }
        }
    }

    /// Runs node `i`'s due timers now.
    fn run_timers(&mut self, i: u32) {
        self.nodes[i as usize].ep.handle_timeout(self.now);
        self.stats.timer_fires += 1;
        self.drain(i);
        self.rearm(i, true);
    }

    /// Schedules slow node `i` to handle `arrival` (or its timer, `None`)
    /// one lateness draw from now, and never before its previous input.
    fn handle_late(&mut self, i: u32, arrival: Option<Arrival>) {
        let node = &self.nodes[i as usize];
        let slow = node.slow.expect("only slow nodes handle input late");
        let (busy, life) = (node.slow_busy_until, node.restarts);
        let late = Time::from_nanos(self.now.as_nanos() + slow.draw_nanos(&mut self.rng));
        // Equal times keep push order in the heap: first ready, first
        // handled.
        let at = late.max(busy);
        self.nodes[i as usize].slow_busy_until = at;
        self.stats.slowed += 1;
        self.push(
            at,
            Action::Late {
                node: i,
                life,
                arrival,
            },
        );
    }

    fn handle_packet(&mut self, to: u32, from: u32, sent: Time, arrived: Time, data: &[u8]) {
        let now = self.now;
        let from_addr = self.nodes[from as usize].addr;
        self.stats.packets_delivered += 1;
        if self.nodes[to as usize]
            .ep
            .handle_packet(now, from_addr, data)
            .is_err()
        {
            self.stats.rejected += 1;
        }
        self.observer.packet(PacketRecord {
            sent,
            arrived,
            handled: now,
            from: NodeId(from),
            to: NodeId(to),
            len: data.len(),
        });
    }

    /// Routes everything node `i` sent and records everything it emitted.
    fn drain(&mut self, i: u32) {
        while let Some(tx) = self.nodes[i as usize].ep.poll_transmit() {
            self.route(i, tx);
        }
        while let Some(ev) = self.nodes[i as usize].ep.poll_event() {
            self.stats.events += 1;
            self.observer.event(self.now, i, &ev, &self.names);
        }
    }

    /// Arms node `i`'s timer from its endpoint's next deadline. `ran_timers`
    /// says the endpoint just ran its timers at `now`, so a deadline still
    /// due is a spin.
    pub(super) fn rearm(&mut self, i: u32, ran_timers: bool) {
        let now = self.now;
        let node = &mut self.nodes[i as usize];
        // A late timer run is pending: it handles whatever falls due before
        // it, since a slow node handles nothing earlier anyway.
        if node.status != NodeStatus::Up || node.timer_late {
            return;
        }
        let Some(mut t) = node.ep.poll_timeout() else {
            node.timer = None;
            return;
        };
        if t <= now {
            if ran_timers {
                self.stats.timer_spins += 1;
                if node.spin_streak < MAX_IMMEDIATE_RERUNS {
                    node.spin_streak += 1;
                    t = now;
                } else {
                    t = now + TIMER_RESOLUTION;
                }
            } else {
                t = now;
            }
        } else if ran_timers {
            node.spin_streak = 0;
        }
        if node.timer != Some(t) {
            node.timer = Some(t);
            self.push(t, Action::Timer { node: i });
        }
    }

    /// After a call into node `i` from outside the loop.
    pub(super) fn settle_call(&mut self, i: u32) {
        match self.nodes[i as usize].status {
            NodeStatus::Crashed => {
                // A crashed node's output goes nowhere.
                let ep = &mut self.nodes[i as usize].ep;
                while ep.poll_transmit().is_some() {}
                while ep.poll_event().is_some() {}
            }
            _ => {
                self.drain(i);
                self.rearm(i, false);
            }
        }
    }

    pub(super) fn flush_dirty(&mut self) {
        while let Some(i) = self.dirty.pop() {
            self.nodes[i as usize].dirty = false;
            self.settle_call(i);
        }
    }

    pub(super) fn route(&mut self, from: u32, tx: Transmit) {
        let now = self.now;
        let len = tx.data.len();
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        self.stats.largest_datagram = self.stats.largest_datagram.max(len);
        let to = node_index(tx.to, self.nodes.len());
        self.observer.transmit(now, from, to, len);
        let Some(to) = to else {
            self.stats.dropped_unroutable += 1;
            return;
        };
        if self.partitioned && self.groups[from as usize] != self.groups[to as usize] {
            self.stats.dropped_partition += 1;
            return;
        }
        let link = if self.links.is_empty() {
            self.net.link()
        } else {
            self.links
                .get(&(from, to))
                .copied()
                .unwrap_or_else(|| self.net.link())
        };
        if link.lost(&mut self.rng) {
            self.stats.dropped_loss += 1;
            return;
        }
        let duplicate = (self.net.duplicate > 0.0 && self.rng.random::<f64>() < self.net.duplicate)
            .then(|| tx.data.clone());
        self.stats.duplicated += u64::from(duplicate.is_some());
        for data in std::iter::once(tx.data).chain(duplicate) {
            // Each copy gets its own delay, so a duplicate may overtake.
            let at = Time::from_nanos(now.as_nanos() + link.delay_nanos(&mut self.rng));
            self.push(
                at,
                Action::Deliver {
                    to,
                    from,
                    sent: now,
                    data,
                },
            );
        }
    }
}
