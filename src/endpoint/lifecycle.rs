//! The endpoint's answers about its own place in the cluster, which a
//! driver acts on without deciding anything itself: whether it still needs
//! seeds to find its cluster, and whether its graceful leave is done. A runtime asks these instead of
//! combining counters into rules of its own.

use std::fmt;

use super::merge::Via;
use super::Endpoint;
use crate::{MemberState, Time};

/// Why [`Endpoint::force_leave`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForceLeaveError {
    /// No member has that name.
    Unknown(String),
    /// The name is this node's own: [`Endpoint::leave`] is its way out.
    Local,
    /// The member is alive as far as this node knows: marking it left
    /// would only make it refute (and a mistyped name would hit a healthy
    /// node). Wait until it is suspected or failed.
    Alive(String),
}

impl fmt::Display for ForceLeaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForceLeaveError::Unknown(name) => write!(f, "no member is named {name}"),
            ForceLeaveError::Local => f.write_str("this node itself: leave instead"),
            ForceLeaveError::Alive(name) => write!(
                f,
                "{name} is alive (only a suspected or failed member can be forced out)"
            ),
        }
    }
}

impl std::error::Error for ForceLeaveError {}

impl Endpoint {
    /// Whether this node still needs its seeds: it has not left and knows
    /// no other live member. The endpoint resends its join to the seed
    /// addresses it was given while this holds; a runtime that resolves
    /// seed names should keep retrying the names that failed for as long.
    pub fn needs_seeds(&self) -> bool {
        !self.has_left() && self.num_live() <= 1
    }

    /// Whether a graceful leave ([`Endpoint::leave`]) has done all it can:
    /// every pending update, the departure among them, was sent as often
    /// as dissemination wants, or no live member is left to tell. Until
    /// then the endpoint should be driven on (a runtime may still give up
    /// earlier, at a deadline of its caller's choosing). False before a
    /// leave.
    pub fn leave_finished(&self) -> bool {
        self.has_left() && (self.pending_broadcasts() == 0 || self.num_live() == 0)
    }

    /// Marks the failed (or suspected) member `name` as left, here and,
    /// through gossip, everywhere (serf's `force-leave`): it is no longer
    /// listed as failed, and is forgotten after `dead_retention` like any
    /// departure. Its incarnation is kept, so if it is in fact running it
    /// refutes and comes back alive. A member left already is no error.
    pub fn force_leave(&mut self, now: Time, name: &str) -> Result<(), ForceLeaveError> {
        self.observe_time(now);
        if name == self.config.name {
            return Err(ForceLeaveError::Local);
        }
        let id = self
            .members
            .find(name)
            .ok_or_else(|| ForceLeaveError::Unknown(name.to_string()))?;
        let record = self.members.rec(id);
        match record.state {
            MemberState::Alive => Err(ForceLeaveError::Alive(name.to_string())),
            MemberState::Left => Ok(()),
            MemberState::Suspect | MemberState::Dead => {
                let incarnation = record.incarnation;
                self.apply_left(now, name, incarnation, Via::Gossip);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, MemberCounts};

    fn endpoint(name: &str, port: u16) -> Endpoint {
        let addr = ([127, 0, 0, 1], port).into();
        Endpoint::new(Config::lan().with_name(name), addr, 7).unwrap()
    }

    #[test]
    fn a_lone_node_needs_seeds_until_it_leaves() {
        let mut a = endpoint("a", 1);
        assert_eq!(
            a.member_counts(),
            MemberCounts {
                alive: 1,
                ..MemberCounts::default()
            }
        );
        assert!(a.needs_seeds() && !a.leave_finished());
        a.leave(Time::from_nanos(1));
        let counts = a.member_counts();
        assert_eq!((counts.left, counts.live(), counts.known()), (1, 0, 1));
        assert_eq!(counts.of(MemberState::Left), 1);
        assert!(!a.needs_seeds());
        assert!(a.leave_finished(), "nobody is left to tell");
    }

    /// Hands every datagram `from` wants sent to `to`; whether there was any.
    fn pump(now: Time, from: &mut Endpoint, to: &mut Endpoint) -> bool {
        let mut moved = false;
        while let Some(t) = from.poll_transmit() {
            let _ = to.handle_packet(now, from.addr(), &t.data);
            moved = true;
        }
        moved
    }

    /// Moves datagrams both ways until neither endpoint has any to send.
    fn exchange(now: Time, a: &mut Endpoint, b: &mut Endpoint) {
        while pump(now, a, b) | pump(now, b, a) {}
    }

    /// Delivers every datagram of `nodes` to its destination among them
    /// (those to anyone else are lost) until none is left to send.
    fn route(now: Time, nodes: &mut [&mut Endpoint]) {
        loop {
            let mut sent = Vec::new();
            for n in nodes.iter_mut() {
                while let Some(t) = n.poll_transmit() {
                    sent.push((n.addr(), t));
                }
            }
            if sent.is_empty() {
                return;
            }
            for (from, t) in sent {
                if let Some(to) = nodes.iter_mut().find(|n| n.addr() == t.to) {
                    let _ = to.handle_packet(now, from, &t.data);
                }
            }
        }
    }

    #[test]
    fn a_failed_member_forced_out_is_left_everywhere_and_a_live_one_is_not() {
        let (mut a, mut b, mut c) = (endpoint("a", 1), endpoint("b", 2), endpoint("c", 3));
        let now = Time::from_secs(1);
        a.join(now, &[b.addr(), c.addr()]);
        route(now, &mut [&mut a, &mut b, &mut c]);
        assert_eq!(a.member_counts().alive, 3);
        assert_eq!(
            a.force_leave(now, "b"),
            Err(ForceLeaveError::Alive("b".into()))
        );
        assert_eq!(a.force_leave(now, "a"), Err(ForceLeaveError::Local));
        assert_eq!(
            a.force_leave(now, "zz"),
            Err(ForceLeaveError::Unknown("zz".into()))
        );
        // c stops: a and b declare it failed.
        let mut t = now;
        let failed = |n: &Endpoint| n.member("c").unwrap().state == MemberState::Dead;
        while !failed(&a) || !failed(&b) {
            t = a
                .poll_timeout()
                .unwrap()
                .min(b.poll_timeout().unwrap())
                .max(t);
            a.handle_timeout(t);
            b.handle_timeout(t);
            route(t, &mut [&mut a, &mut b]);
            assert!(
                t < now + std::time::Duration::from_secs(120),
                "c never failed"
            );
        }
        assert_eq!(a.force_leave(t, "c"), Ok(()));
        assert_eq!(a.member("c").unwrap().state, MemberState::Left);
        route(t, &mut [&mut a, &mut b]);
        let mut t2 = t;
        while b.member("c").unwrap().state != MemberState::Left {
            t2 = a.poll_timeout().unwrap().max(t2);
            a.handle_timeout(t2);
            b.handle_timeout(t2);
            route(t2, &mut [&mut a, &mut b]);
            assert!(
                t2 < t + std::time::Duration::from_secs(30),
                "never gossiped"
            );
        }
        assert_eq!(a.force_leave(t2, "c"), Ok(()), "left already");
    }

    #[test]
    fn a_leave_is_finished_once_its_news_is_sent() {
        let (mut a, mut b) = (endpoint("a", 1), endpoint("b", 2));
        let now = Time::from_secs(1);
        a.join(now, &[b.addr()]);
        exchange(now, &mut a, &mut b);
        assert_eq!(a.member_counts().alive, 2);
        assert!(!a.needs_seeds(), "joined");
        a.leave(now);
        assert!(!a.leave_finished(), "the departure is still to be sent");
        let mut t = now;
        while !a.leave_finished() {
            t = a.poll_timeout().unwrap().max(t);
            a.handle_timeout(t);
            b.handle_timeout(t);
            exchange(t, &mut a, &mut b);
            assert!(t < now + std::time::Duration::from_secs(60));
        }
        assert_eq!(a.pending_broadcasts(), 0);
        assert_eq!(b.member_counts().left, 1, "b heard of the departure");
    }
}
