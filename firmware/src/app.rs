//! The dealer loop every board image runs: key page, master seed, then one request after another
//! on the UART or over TCP, each logged with its bytes, its time split between the link and
//! generation, and the stack's high-water mark. Each session is dealt once per master seed: the
//! board keeps the set of sessions it has served ([`ServedSessions`]); when the set is full it
//! draws a new master seed and starts a new set, as a reboot would.
#![allow(unsafe_code)] // stack painting: raw reads and writes below the live frames

use core::cell::RefCell;

use defmt::{Display2Format, error, info, warn};
use ditto_dealer::board::{BoardDealer, ServedSessions};
use ditto_dealer::keys::{DealerSeeds, Provisioning};
use ditto_dealer::stream::scratch_len;

use embedded_io::ReadReady;

use smoltcp::iface::SocketStorage;

use crate::link::Link;
use crate::net::{self, CONNECTIONS, Net, NetBuffers};
use crate::{Board, DRAIN_IDLE_US, MasterSeed, TakeOnce, master_seed, network_seed, next_master_seed};

/// A link with time and byte counters for the log.
struct Timed<U> {
    inner: U,
    now: fn() -> u64,
    /// When this request's first byte came.
    started: Option<u64>,
    /// Time inside UART reads and writes since then.
    io_us: u64,
    /// Bytes sent.
    sent: u64,
}

impl<U: embedded_io::ErrorType> embedded_io::ErrorType for Timed<U> {
    type Error = U::Error;
}

impl<U: embedded_io::Read> embedded_io::Read for Timed<U> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, U::Error> {
        let t = (self.now)();
        let n = self.inner.read(buf)?;
        let t2 = (self.now)();
        match self.started {
            // Waiting for a request is not part of serving it.
            None => self.started = Some(t2),
            Some(_) => self.io_us += t2 - t,
        }
        Ok(n)
    }
}

impl<U: ReadReady> ReadReady for Timed<U> {
    fn read_ready(&mut self) -> Result<bool, U::Error> {
        self.inner.read_ready()
    }
}

impl<U: embedded_io::Write> embedded_io::Write for Timed<U> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, U::Error> {
        let t = (self.now)();
        let n = self.inner.write(buf)?;
        self.io_us += (self.now)() - t;
        self.sent += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), U::Error> {
        self.inner.flush()
    }
}

const SCRATCH: usize = scratch_len(ditto_dealer::DEFAULT_CHUNK);
/// Sessions remembered per master seed (16 bytes each).
const SERVED: usize = 512;
/// Stack bytes painted below the entry frame to measure the high-water mark.
const PAINT: usize = 96 * 1024;
const PATTERN: u32 = 0xDEAD_BEEF;

/// The network stack's socket slots and TCP buffers.
static SOCKETS: TakeOnce<[SocketStorage<'static>; CONNECTIONS + 1]> = TakeOnce::new(net::SOCKETS);
static BUFFERS: TakeOnce<NetBuffers> = TakeOnce::new(NetBuffers::new());

unsafe extern "C" {
    /// Top of the stack (cortex-m-rt's linker script).
    static _stack_start: u32;
}

/// Paints the stack below the current frame; returns the painted region's bottom.
#[inline(never)]
fn paint_stack() -> usize {
    let sp = cortex_m::register::msp::read() as usize;
    let bottom = sp - PAINT;
    for a in (bottom..sp - 1024).step_by(4) {
        // SAFETY: unused stack memory below the live frames (1 KiB margin), word aligned.
        unsafe { core::ptr::write_volatile(a as *mut u32, PATTERN) };
    }
    bottom
}

/// Deepest stack use so far, in bytes from the top of the stack.
fn stack_high_water(bottom: usize) -> usize {
    // Only the address of the linker symbol is taken.
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut a = bottom;
    // SAFETY: reads of the painted region, word aligned, below the live frames.
    while a < top && unsafe { core::ptr::read_volatile(a as *const u32) } == PATTERN {
        a += 4;
    }
    top - a
}

/// Runs the dealer on `board` for good: requests on the UART and, on a board with Ethernet,
/// on its TCP port ([`crate::net`]), one at a time, whichever link has one waiting first.
pub fn run<B: Board>(mut board: B, source: MasterSeed) -> ! {
    info!("ditto dealer firmware {=str} on {=str}", env!("CARGO_PKG_VERSION"), B::NAME);
    if let MasterSeed::TestOnly(_) = source {
        warn!("TEST SEED (qemu-test-seed build): streams are predictable, not for real use");
    }
    let prov = match Provisioning::from_page(board.key_page()) {
        Ok(p) => p,
        Err(e) => {
            error!("cannot deal: {} (write board-keys.bin from `ditto provision`)", Display2Format(&e));
            board.halt()
        }
    };
    let master = match master_seed(&mut board, source) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot deal: no master seed: {}", Display2Format(&e));
            board.halt()
        }
    };
    let stack_seed = network_seed(&master);
    let Provisioning { keys, model, relay } = prov;
    let mut seeds = DealerSeeds::new(master, model);
    let mut salts = seeds.salts();
    let mut served = ServedSessions::<SERVED>::default();
    let mut uart = board.uart();
    let mut net = board.ethernet().and_then(|(eth, mac)| {
        let (sockets, buffers) = (SOCKETS.take()?, BUFFERS.take()?);
        info!("ethernet: controller up, station address {=[u8]:02x}, waiting for a DHCP lease", mac);
        Some(Net::new(eth, mac, stack_seed, B::now_us, sockets, buffers))
    });
    let mut scratch = [0u8; SCRATCH];
    let bottom = paint_stack();
    info!("serving on the UART");
    loop {
        if served.is_full() {
            match next_master_seed(&mut board, source, &seeds) {
                Ok(m) => {
                    seeds.rekey(m);
                    salts = seeds.salts();
                    served.clear();
                    info!("{=usize} sessions served: new master seed drawn, session set cleared", SERVED);
                }
                Err(e) => {
                    error!("cannot draw a new master seed: {}", Display2Format(&e));
                    board.halt()
                }
            }
        }
        // The first link with a request's first bytes waiting.
        let tcp = loop {
            if matches!(uart.read_ready(), Ok(true)) {
                break false;
            }
            if net.as_mut().is_some_and(Net::ready) {
                break true;
            }
        };
        let mut dealer =
            BoardDealer { seeds: &seeds, keys: &keys, relay: &relay, salts: &mut salts, served: &mut served };
        let d = (&mut dealer, &mut scratch[..], bottom);
        let over = if tcp { "TCP" } else { "UART" };
        let link = match net.as_mut().filter(|_| tcp) {
            Some(n) => Link::Tcp(n),
            None => Link::Uart(&mut uart),
        };
        // After a failure: the UART is drained before the FAIL frame goes out; a connection is
        // reset after it (nothing left over can then be misread).
        let ok = serve_one::<B, _>(link, over, d, |l| {
            if let Link::Uart(_) = l.inner {
                let n = drain(l, B::now_us);
                info!("UART: {=u32} bytes drained until the line was idle", n);
            }
        });
        match net.as_mut().filter(|_| tcp) {
            Some(n) if ok => n.served_active(),
            Some(n) => n.drop_connection(),
            None => {}
        }
    }
}

/// Serves one request on `link` and logs it; whether it succeeded.
fn serve_one<B: Board, L: embedded_io::Read + embedded_io::Write>(
    link: L,
    over: &str,
    (dealer, scratch, bottom): (&mut BoardDealer<'_, SERVED>, &mut [u8], usize),
    settle: impl FnOnce(&mut Timed<L>),
) -> bool {
    let link = RefCell::new(Timed { inner: link, now: B::now_us, started: None, io_us: 0, sent: 0 });
    let r = ditto_dealer::board::serve_settling(&link, dealer, scratch, settle);
    let end = B::now_us();
    let l = link.borrow();
    let total = end - l.started.unwrap_or(end);
    let generation = total.saturating_sub(l.io_us);
    match &r {
        Ok(()) => info!(
            "request served over {=str}: {=u64} B sent in {=u64} ms (link {=u64} ms, generation {=u64} ms); \
             stack high-water {=usize} B",
            over,
            l.sent,
            total / 1000,
            l.io_us / 1000,
            generation / 1000,
            stack_high_water(bottom)
        ),
        Err(e @ ditto_dealer::Error::NoRequest { .. }) => warn!("{=str}: {}", over, Display2Format(e)),
        Err(e) => {
            warn!("request over {=str} failed after {=u64} ms: {}", over, total / 1000, Display2Format(e))
        }
    }
    r.is_ok()
}

/// Reads and drops whatever arrives until the line has been idle for [`DRAIN_IDLE_US`]: the
/// rest of a request that failed, or of the host's answer the board no longer waits for.
fn drain<U: embedded_io::Read + ReadReady>(u: &mut U, now: fn() -> u64) -> u32 {
    let mut last = now();
    let mut n = 0u32;
    while now().saturating_sub(last) < DRAIN_IDLE_US {
        if matches!(u.read_ready(), Ok(true)) {
            let mut b = [0u8; 64];
            // A line error here is one more reason to drain; it was cleared by the read.
            n = n.saturating_add(u.read(&mut b).map_or(0, |k| u32::try_from(k).unwrap_or(u32::MAX)));
            last = now();
        }
    }
    n
}
