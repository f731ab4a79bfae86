//! The UDP socket: made with socket2, read until it would block, written
//! through a bounded queue that waits for writability instead of blocking.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

use super::stats::{log_doubling, RuntimeStats};
use crate::Transmit;

/// A bound, nonblocking socket and what the OS granted for it.
pub(crate) struct Bound {
    pub socket: UdpSocket,
    pub local: SocketAddr,
    /// SO_RCVBUF as read back (Linux reports twice the usable size).
    pub recv_buffer: usize,
    /// SO_SNDBUF as read back.
    pub send_buffer: usize,
}

/// Binds `addr` with `buffer`-byte socket buffers requested. An IPv6 socket
/// is IPv6-only, so that peers' addresses are never IPv4-mapped forms that
/// differ from the addresses they advertise.
///
/// SO_REUSEADDR is deliberately not set, although the design asked for it.
/// UDP has no TIME_WAIT, so a restarted node rebinds its port without it;
/// with it, Linux lets two UDP sockets bind the same port, delivers unicast
/// to only one of them, and even hands out an ephemeral port (port 0) that
/// another reusable socket already holds. Measured: 256 nodes bound to
/// `127.0.0.1:0` in one process got a duplicate port in 4 runs out of 6,
/// leaving one node deaf. Without it, a port in use is a loud `AddrInUse`.
pub(crate) fn bind(addr: SocketAddr, buffer: usize) -> io::Result<Bound> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Large buffers absorb bursts (a join reply, a ping flood); the OS caps
    // the request (Linux: net.core.rmem_max), which is not an error: the
    // granted size is read back and reported in stats.
    if let Err(e) = socket.set_recv_buffer_size(buffer) {
        log::warn!("{addr}: SO_RCVBUF {buffer}: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(buffer) {
        log::warn!("{addr}: SO_SNDBUF {buffer}: {e}");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let recv_buffer = socket.recv_buffer_size()?;
    let send_buffer = socket.send_buffer_size()?;
    let std_socket: std::net::UdpSocket = socket.into();
    let local = std_socket.local_addr()?;
    Ok(Bound {
        socket: UdpSocket::from_std(std_socket),
        local,
        recv_buffer,
        send_buffer,
    })
}

/// Datagrams waiting for the socket to become writable, in order.
pub(crate) struct Outbox {
    queue: VecDeque<Transmit>,
    capacity: usize,
}

impl Outbox {
    /// An empty queue holding at most `capacity` datagrams.
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            capacity,
        }
    }

    /// Whether datagrams wait for writability (the socket must then be
    /// registered for WRITABLE).
    pub(crate) fn is_blocked(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Sends `t` now, or queues it behind datagrams already waiting; when the
    /// queue is full the datagram is dropped and counted.
    pub(crate) fn send(&mut self, socket: &UdpSocket, t: Transmit, stats: &mut RuntimeStats) {
        if self.queue.is_empty() && send_one(socket, &t, stats) {
            return;
        }
        if self.queue.len() >= self.capacity {
            stats.send_queue_drops += 1;
            log_doubling(
                stats.send_queue_drops,
                format_args!("send queue full ({} datagrams): dropping", self.capacity),
            );
            return;
        }
        self.queue.push_back(t);
    }

    /// Sends queued datagrams until the queue is empty or the socket would
    /// block again.
    pub(crate) fn flush(&mut self, socket: &UdpSocket, stats: &mut RuntimeStats) {
        while let Some(t) = self.queue.front() {
            if !send_one(socket, t, stats) {
                return;
            }
            self.queue.pop_front();
        }
    }
}

/// Sends one datagram. Returns false if the socket would block (the
/// datagram is not sent); any other error drops the datagram and counts it.
fn send_one(socket: &UdpSocket, t: &Transmit, stats: &mut RuntimeStats) -> bool {
    loop {
        match socket.send_to(&t.data, t.to) {
            Ok(_) => return true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                stats.send_errors += 1;
                log_doubling(stats.send_errors, format_args!("send to {}: {e}", t.to));
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_shared() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sockets: Vec<Bound> = (0..300).map(|_| bind(any, 1 << 16).unwrap()).collect();
        let mut ports: Vec<u16> = sockets.iter().map(|b| b.local.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(
            ports.len(),
            sockets.len(),
            "an ephemeral port was handed out twice"
        );
        let taken = bind(sockets[0].local, 1 << 16).err().map(|e| e.kind());
        assert_eq!(taken, Some(io::ErrorKind::AddrInUse));
        assert!(sockets[0].recv_buffer > 0 && sockets[0].send_buffer > 0);
    }
}
