//! The dealer's serial protocol over TCP on a board's Ethernet (smoltcp): the board takes its
//! address by DHCP and listens on [`ditto_dealer::board::TCP_PORT`], with the same requests
//! and frames as on the UART ([`ditto_dealer::board`]).
//!
//! * [`CONNECTIONS`] sockets, their requests served one at a time (in turn). One is always left
//!   listening: when a connection takes the last, the board drops the connection that has been
//!   open longest without a request served on it and without a request waiting (smoltcp sends
//!   a reset), so connections that send nothing cannot lock the relay out; a connection that has
//!   carried a served request (it holds the relay key) is never dropped for room. Between
//!   requests a connection stays open; a host that goes away is noticed by TCP keep-alive
//!   ([`KEEP_ALIVE`]) and dropped after [`TIMEOUT`] without an answer.
//! * Within a request, a read or write that makes no progress for [`IDLE`] fails the request.
//! * After a failed request the board sends its FAIL frame, waits for its acknowledgement and
//!   resets the connection: whatever the host had in flight cannot be taken for the start of
//!   the next request (the TCP form of resynchronising), and the host connects again.
//! * Written bytes go out when a full segment is queued, at every flush (each NEED_STEP and END
//!   frame) and between requests; Nagle's algorithm is off, as the protocol answers every
//!   request at once.

use defmt::{Display2Format, info, warn};
use embedded_io::ErrorKind;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpCidr};

use ditto_dealer::board::TCP_PORT;

/// TCP receive window per connection (requests and plan steps: small).
const RX: usize = 4096;
/// TCP send buffer per connection (stream frames: two chunks in flight).
const TX: usize = 8 * 1024;
/// TCP sockets (requests are served one at a time; one is kept listening, see the module docs).
pub const CONNECTIONS: usize = 3;
/// Longest wait for a failed request's FAIL frame to be acknowledged before the reset.
const LINGER_US: u64 = 1_000_000;
/// Keep-alive probes while a host is connected and idle.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A connection whose host answers nothing (not even keep-alives) for this long is dropped.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for progress within a request.
pub const IDLE: u64 = 60_000_000;
/// Queued bytes that make a write push them out (one full segment).
const SEGMENT: usize = 1460;

/// The TCP buffers: all zero, so a `static` of them goes to `.bss` and costs no flash (kept
/// apart from the socket slots, whose empty value is not all zero bits).
pub struct NetBuffers {
    rx: [[u8; RX]; CONNECTIONS],
    tx: [[u8; TX]; CONNECTIONS],
}

impl NetBuffers {
    /// Zeroed buffers (for a `static`).
    pub const fn new() -> Self {
        NetBuffers { rx: [[0; RX]; CONNECTIONS], tx: [[0; TX]; CONNECTIONS] }
    }
}

impl Default for NetBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Empty socket slots (the DHCP client's and the TCP connections').
pub const SOCKETS: [SocketStorage<'static>; CONNECTIONS + 1] = [SocketStorage::EMPTY; CONNECTIONS + 1];

/// The network side of the board: the Ethernet device, its interface and its sockets (the
/// DHCP client, the dealer's TCP listeners).
pub struct Net<D: Device> {
    dev: D,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: [SocketHandle; CONNECTIONS],
    /// Per socket: whether its connection has carried a served request.
    served: [bool; CONNECTIONS],
    /// Per socket: when its connection was first seen open.
    since: [Option<u64>; CONNECTIONS],
    /// The connection whose request is being served.
    active: usize,
    dhcp: SocketHandle,
    now: fn() -> u64,
}

impl<D: Device> Net<D> {
    /// Brings the interface up with station address `mac`; `seed` seeds smoltcp's choices
    /// (initial sequence numbers, DHCP transaction ids); `now` is the board's microsecond clock.
    pub fn new(
        mut dev: D,
        mac: [u8; 6],
        seed: u64,
        now: fn() -> u64,
        sockets: &'static mut [SocketStorage<'static>; CONNECTIONS + 1],
        buffers: &'static mut NetBuffers,
    ) -> Self {
        let NetBuffers { rx, tx } = buffers;
        let mut config = Config::new(EthernetAddress(mac).into());
        config.random_seed = seed;
        let iface = Interface::new(config, &mut dev, stamp(now()));
        let mut sockets = SocketSet::new(&mut sockets[..]);
        let mut buffers = rx.iter_mut().zip(tx.iter_mut());
        let tcp = core::array::from_fn(|_| {
            let (rx, tx) = buffers.next().map(|(r, t)| (&mut r[..], &mut t[..])).unwrap_or_default();
            let mut t = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
            t.set_nagle_enabled(false);
            t.set_keep_alive(Some(KEEP_ALIVE));
            t.set_timeout(Some(TIMEOUT));
            sockets.add(t)
        });
        let dhcp = sockets.add(dhcpv4::Socket::new());
        Net {
            dev,
            iface,
            sockets,
            tcp,
            served: [false; CONNECTIONS],
            since: [None; CONNECTIONS],
            active: 0,
            dhcp,
            now,
        }
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp[self.active])
    }

    /// Moves frames in and out and applies DHCP's news.
    pub fn poll(&mut self) {
        let t = stamp((self.now)());
        self.iface.poll(t, &mut self.dev, &mut self.sockets);
        match self.sockets.get_mut::<dhcpv4::Socket>(self.dhcp).poll() {
            None => {}
            Some(dhcpv4::Event::Configured(c)) => {
                let (address, router) = (c.address, c.router);
                self.iface.update_ip_addrs(|a| {
                    a.clear();
                    let _ = a.push(IpCidr::Ipv4(address));
                });
                match router {
                    Some(r) => {
                        let _ = self.iface.routes_mut().add_default_ipv4_route(r);
                    }
                    None => {
                        let _ = self.iface.routes_mut().remove_default_ipv4_route();
                    }
                }
                info!("ethernet: {} (DHCP), serving on TCP port {=u16}", Display2Format(&address), TCP_PORT);
            }
            Some(dhcpv4::Event::Deconfigured) => {
                // Also the DHCP client's first event, before any lease.
                if !self.iface.ip_addrs().is_empty() {
                    warn!("ethernet: DHCP lease lost, no address");
                }
                self.iface.update_ip_addrs(|a| a.clear());
                let _ = self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
    }

    /// Between requests: polls, closes connections their hosts have closed, listens again on
    /// every socket whose connection is gone; whether a request's first bytes are waiting on a
    /// connection (which then becomes the active one; the next connection in turn is looked at
    /// first the next time, so two hosts are served alternately).
    pub fn ready(&mut self) -> bool {
        self.poll();
        let now = (self.now)();
        for i in 0..CONNECTIONS {
            let s = self.sockets.get_mut::<tcp::Socket>(self.tcp[i]);
            if s.state() == tcp::State::CloseWait && !s.can_recv() {
                s.close();
            }
            if !s.is_open() {
                self.listen_again(i);
            } else if s.is_active() && self.since[i].is_none() {
                self.since[i] = Some(now);
            }
        }
        self.make_room();
        for k in 1..=CONNECTIONS {
            let i = (self.active + k) % CONNECTIONS;
            if self.sockets.get_mut::<tcp::Socket>(self.tcp[i]).can_recv() {
                self.active = i;
                return true;
            }
        }
        false
    }

    /// Keeps a socket listening: when every socket holds a connection, drops the oldest one that
    /// has carried no served request and has none waiting (see the module docs).
    fn make_room(&mut self) {
        let listening =
            self.tcp.iter().any(|&h| self.sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen);
        if listening {
            return;
        }
        let idle = (0..CONNECTIONS).filter(|&i| {
            let s = self.sockets.get::<tcp::Socket>(self.tcp[i]);
            !self.served[i] && s.is_active() && !s.can_recv()
        });
        if let Some(i) = idle.min_by_key(|&i| self.since[i]) {
            // The reset goes out at once and the socket listens again before any frame is
            // taken in: a poll (frames in, then out) could hand the next host's SYN to a board
            // with no socket listening, and it would be refused.
            self.sockets.get_mut::<tcp::Socket>(self.tcp[i]).abort();
            self.iface.poll_egress(stamp((self.now)()), &mut self.dev, &mut self.sockets);
            // `abort` closes the socket at once but keeps its peer until the reset is out (a
            // `listen` now would forget the peer and the reset). If the device had no room for
            // it, the socket listens again at the next `ready`, whose poll sends the reset first.
            if self.sockets.get::<tcp::Socket>(self.tcp[i]).remote_endpoint().is_none() {
                self.listen_again(i);
            }
            info!(
                "ethernet: every socket taken: dropped a connection that carried no request, to keep one listening"
            );
        }
    }

    /// Socket `i`, closed, listens for the next connection, which starts with no history.
    fn listen_again(&mut self, i: usize) {
        (self.served[i], self.since[i]) = (false, None);
        if self.sockets.get_mut::<tcp::Socket>(self.tcp[i]).listen(TCP_PORT).is_err() {
            warn!("ethernet: cannot listen on TCP port {=u16}", TCP_PORT);
        }
    }

    /// After a request served on the active connection: it holds the relay key, and is never
    /// dropped to make room.
    pub fn served_active(&mut self) {
        self.served[self.active] = true;
    }

    /// After a failed request: waits (at most `LINGER_US`) until the host has acknowledged
    /// what is queued (the FAIL frame), then resets the connection; the other socket listens
    /// meanwhile, so the host can connect again at once.
    pub fn drop_connection(&mut self) {
        let since = (self.now)();
        while self.socket().send_queue() > 0 && (self.now)().saturating_sub(since) < LINGER_US {
            self.poll();
        }
        self.socket().abort();
        self.poll();
    }

    fn waited(&self, since: u64) -> Result<(), ErrorKind> {
        if (self.now)().saturating_sub(since) > IDLE { Err(ErrorKind::TimedOut) } else { Ok(()) }
    }
}

fn stamp(us: u64) -> Instant {
    Instant::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
}

impl<D: Device> embedded_io::ErrorType for Net<D> {
    type Error = ErrorKind;
}

impl<D: Device> embedded_io::Read for Net<D> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let since = (self.now)();
        loop {
            let s = self.socket();
            if s.can_recv() {
                return s.recv_slice(buf).map_err(|_| ErrorKind::BrokenPipe);
            }
            if !s.may_recv() {
                return Err(ErrorKind::BrokenPipe);
            }
            self.waited(since)?;
            self.poll();
        }
    }
}

impl<D: Device> embedded_io::Write for Net<D> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        let since = (self.now)();
        loop {
            let s = self.socket();
            if !s.may_send() {
                return Err(ErrorKind::BrokenPipe);
            }
            let n = if s.can_send() { s.send_slice(buf).map_err(|_| ErrorKind::BrokenPipe)? } else { 0 };
            let queued = s.send_queue();
            if queued >= SEGMENT || n == 0 {
                self.poll();
            }
            if n > 0 {
                return Ok(n);
            }
            self.waited(since)?;
        }
    }
    fn flush(&mut self) -> Result<(), ErrorKind> {
        self.poll();
        Ok(())
    }
}
