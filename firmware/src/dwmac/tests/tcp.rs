//! Two smoltcp hosts, each on its own rings, their DMA models joined by a wire: a TCP
//! connection carries a request one way and a long answer the other (the board's pattern),
//! byte for byte, through smoltcp's real use of the device's tokens (ARP, handshake, windows,
//! retransmission after frames lost on the wire or in a full receive ring).

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};

use super::*;

struct Host {
    dev: Dwmac<TestMac>,
    dma: Dma,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
}

fn leak<T>(v: Vec<T>) -> &'static mut [T] {
    Box::leak(v.into_boxed_slice())
}

fn host(last: u8, rx: usize, tx: usize) -> Host {
    let mut dev = device(TestMac::default());
    let dma = Dma::new(&dev);
    let mac = station_address(&[last]);
    let mut iface = Interface::new(Config::new(EthernetAddress(mac).into()), &mut dev, Instant::ZERO);
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(10, 0, 0, last), 24)).unwrap();
    });
    let mut sockets = SocketSet::new(leak(vec![SocketStorage::EMPTY]));
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(leak(vec![0u8; rx])),
        tcp::SocketBuffer::new(leak(vec![0u8; tx])),
    );
    let tcp = sockets.add(socket);
    Host { dev, dma, iface, sockets, tcp }
}

impl Host {
    fn poll(&mut self, now: Instant) {
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
    }
    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp)
    }
}

/// What the wire did.
#[derive(Default, Debug)]
struct Wire {
    frames: usize,
    /// Lost on purpose (every [`LOSE_EVERY`]th frame).
    lost: usize,
    /// Lost because the receiving ring was full.
    overrun: usize,
}

const LOSE_EVERY: usize = 41;

impl Wire {
    /// Moves what `from`'s DMA sends into `to`'s receive ring, losing some on the way.
    fn carry(&mut self, from: &mut Host, to: &mut Host) {
        for f in from.dma.send(0) {
            self.frames += 1;
            if self.frames.is_multiple_of(LOSE_EVERY) {
                self.lost += 1;
            } else if !to.dma.receive(&f, 0) {
                self.overrun += 1;
            }
        }
    }
}

#[test]
fn a_tcp_connection_carries_a_request_and_a_long_answer_through_the_rings() {
    // The host's window and the board's send buffer are far larger than a receive ring.
    let (mut host_side, mut board) = (host(1, 65536, 8192), host(2, 4096, 65536));
    let request: Vec<u8> = frame(3000, 0x5a);
    let answer: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    board.socket().listen(7300).unwrap();
    let cx = host_side.iface.context();
    host_side
        .sockets
        .get_mut::<tcp::Socket>(host_side.tcp)
        .connect(cx, (Ipv4Address::new(10, 0, 0, 2), 7300), 49152)
        .unwrap();
    let (mut sent_req, mut got_req, mut sent_ans, mut got_ans) = (0, Vec::new(), 0, Vec::new());
    let mut wire = Wire::default();
    for ms in 0..200_000u32 {
        let now = Instant::from_millis(i64::from(ms));
        // The host side looks at its ring only every 20 ms: it fills, and frames are lost
        // until TCP sends them again.
        if ms.is_multiple_of(20) {
            host_side.poll(now);
        }
        board.poll(now);
        wire.carry(&mut host_side, &mut board);
        wire.carry(&mut board, &mut host_side);
        let s = host_side.socket();
        if s.can_send() && sent_req < request.len() {
            sent_req += s.send_slice(&request[sent_req..]).unwrap();
        }
        while s.can_recv() {
            s.recv(|b| {
                got_ans.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        let s = board.socket();
        while s.can_recv() {
            s.recv(|b| {
                got_req.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        if got_req.len() == request.len() && s.can_send() && sent_ans < answer.len() {
            sent_ans += s.send_slice(&answer[sent_ans..]).unwrap();
        }
        if got_ans.len() == answer.len() {
            break;
        }
    }
    assert_eq!(got_req, request, "the request, whole");
    assert_eq!(got_ans.len(), answer.len(), "the answer's length ({wire:?})");
    assert!(got_ans == answer, "the answer, byte for byte");
    assert!(
        wire.lost > 0 && wire.overrun > 0,
        "frames were lost on the wire and in a full ring, and TCP made up for them"
    );
    assert_eq!(board.dev.counts(), Counts::default(), "nothing dropped as bad, no send errors");
}
