//! What the simulator records about a run: the trace hash, the event log,
//! the packet log and the event hook.
//!
//! The event loop reports every transmit, every endpoint event and every
//! datagram handled to one [`Observer`]; what it keeps is chosen from
//! outside ([`Sim::log_events`](super::Sim::log_events),
//! [`Sim::log_packets`](super::Sim::log_packets),
//! [`Sim::on_event`](super::Sim::on_event)). Recording never changes the
//! run: nothing here draws a random number or touches a node.

use std::collections::HashMap;

use super::node::NodeId;
use super::trace::Fnv;
use crate::{Event, EventKind, MemberState, Time};

/// The code the trace hash records for an event of `kind`: not the enum's
/// discriminant, because every event-bus kind shares one code (9), and the
/// codes must never change, or every trace hash pinned by the golden tests
/// would.
fn trace_code(kind: EventKind) -> u8 {
    match kind {
        EventKind::MemberJoined => 0,
        EventKind::MemberRecovered => 1,
        EventKind::MemberSuspect => 2,
        EventKind::MemberFailed => 3,
        EventKind::MemberLeft => 4,
        EventKind::MemberUpdated => 5,
        EventKind::KeyUpdated => 6,
        EventKind::KeyDeleted => 7,
        EventKind::KeyExpired => 8,
        EventKind::UserEvent
        | EventKind::Query
        | EventKind::QueryAck
        | EventKind::QueryResponse
        | EventKind::QueryDone
        | EventKind::ElectionStarted
        | EventKind::Quorum
        | EventKind::ElectionExpired => 9,
        EventKind::MemberConflict => 10,
        EventKind::SelfAccused => 11,
    }
}

/// One endpoint event, as recorded by the event log
/// ([`Sim::log_events`](super::Sim::log_events)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// When it happened.
    pub time: Time,
    /// The node that emitted it.
    pub node: NodeId,
    /// What happened.
    pub kind: EventKind,
    /// The node it is about, if its name is a simulated node's.
    pub member: Option<NodeId>,
    /// The member's incarnation in the event.
    pub incarnation: u32,
    /// The member's state in the event.
    pub state: MemberState,
}

/// One datagram handled by a node, as recorded by the packet log
/// ([`Sim::log_packets`](super::Sim::log_packets)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketRecord {
    /// When the sender sent it.
    pub sent: Time,
    /// When it reached the receiver.
    pub arrived: Time,
    /// When the receiver handled it (later than `arrived` if it was
    /// paused or slow).
    pub handled: Time,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Payload length in bytes.
    pub len: usize,
}

type EventHook = Box<dyn FnMut(Time, NodeId, &Event) + Send>;

/// The records of a run. See the module docs.
#[derive(Default)]
pub(super) struct Observer {
    trace: Fnv,
    /// The kinds logged (see [`EventKind::set`]).
    log_mask: u32,
    event_log: Vec<LoggedEvent>,
    log_packets: bool,
    packet_log: Vec<PacketRecord>,
    hook: Option<EventHook>,
}

impl Observer {
    /// The trace hash so far.
    pub(super) fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    /// Logs the events of `kinds` from now on (none: off).
    pub(super) fn log_events(&mut self, kinds: &[EventKind]) {
        self.log_mask = EventKind::set(kinds.iter().copied());
    }

    pub(super) fn event_log(&self) -> &[LoggedEvent] {
        &self.event_log
    }

    pub(super) fn take_event_log(&mut self) -> Vec<LoggedEvent> {
        std::mem::take(&mut self.event_log)
    }

    pub(super) fn set_hook(&mut self, hook: Option<EventHook>) {
        self.hook = hook;
    }

    pub(super) fn log_packets(&mut self, on: bool) {
        self.log_packets = on;
    }

    pub(super) fn packet_log(&self) -> &[PacketRecord] {
        &self.packet_log
    }

    pub(super) fn take_packet_log(&mut self) -> Vec<PacketRecord> {
        std::mem::take(&mut self.packet_log)
    }

    /// Node `from` sent `len` bytes at `now` to node `to` (`None`: to an
    /// address that is no node).
    pub(super) fn transmit(&mut self, now: Time, from: u32, to: Option<u32>, len: usize) {
        let t = &mut self.trace;
        t.u8(b'T');
        t.u64(now.as_nanos());
        t.u32(from);
        t.u32(to.unwrap_or(u32::MAX));
        t.u32(len as u32);
    }

    /// Node `node` handled a datagram.
    pub(super) fn packet(&mut self, record: PacketRecord) {
        if self.log_packets {
            self.packet_log.push(record);
        }
    }

    /// Node `i` emitted `ev` at `now`; `names` maps node names to indices.
    pub(super) fn event(&mut self, now: Time, i: u32, ev: &Event, names: &HashMap<String, u32>) {
        let kind = ev.kind();
        let t = &mut self.trace;
        t.u8(b'E');
        t.u64(now.as_nanos());
        t.u32(i);
        t.u8(trace_code(kind));
        t.bytes(ev.node().as_bytes());
        let Some(m) = ev.member() else {
            // Key events and self-accusations: the trace covers them; the
            // event log is for membership (they reach `on_event` hooks).
            if let Event::KeyUpdated { key, version, .. }
            | Event::KeyDeleted { key, version, .. }
            | Event::KeyExpired { key, version, .. } = ev
            {
                t.bytes(key.as_bytes());
                t.u64(*version);
            }
            if let Event::SelfAccused {
                state,
                incarnation,
                by,
                ..
            } = ev
            {
                t.u8(*state as u8);
                t.u32(*incarnation);
                t.bytes(by.as_bytes());
            }
            if let Some(hook) = &mut self.hook {
                hook(now, NodeId(i), ev);
            }
            return;
        };
        t.u32(m.incarnation);
        t.u8(m.state as u8);
        if self.log_mask & kind.bit() != 0 {
            self.event_log.push(LoggedEvent {
                time: now,
                node: NodeId(i),
                kind,
                member: names.get(m.name.as_str()).copied().map(NodeId),
                incarnation: m.incarnation,
                state: m.state,
            });
        }
        if let Some(hook) = &mut self.hook {
            hook(now, NodeId(i), ev);
        }
    }
}
