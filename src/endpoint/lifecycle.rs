//! The endpoint's answers about its own place in the cluster, which a
//! driver acts on without deciding anything itself: whether it still needs
//! seeds to find its cluster, and whether its graceful leave is done. A runtime asks these instead of
//! combining counters into rules of its own.

use super::Endpoint;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, MemberCounts, MemberState, Time};

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
