//! SMSC LAN9118 Ethernet controller (as on Arm's MPS2 boards, and as QEMU's `mps2-*` machines
//! model it at [`BASE`]) under smoltcp: polled, no interrupts, one frame at a time through the
//! controller's FIFOs in 32-bit PIO mode.
//!
//! Registers (SMSC LAN9118 data sheet, section 5): RX data FIFO +0x00, TX data FIFO +0x20, RX
//! status FIFO +0x40, TX status FIFO +0x48, then the control and status registers from +0x50.
//! The MAC's own registers (MAC_CR, the address) are reached through MAC_CSR_CMD / MAC_CSR_DATA.
//!
//! Receive: RX_FIFO_INF counts waiting frames; each has a status word (length with the FCS in
//! bits 29:16, error summary bit 15) and `ceil(length / 4)` data words, little-endian. A frame
//! with an error, or too long for the buffer, is read out and dropped.
//!
//! Transmit: TX command A (first and last segment, buffer size), command B (tag, frame length),
//! then the frame as little-endian words; TX_FIFO_INF says how many bytes the data FIFO takes.
//! Status words are drained after every frame (TX_CFG also lets them overrun: they are not
//! needed).
#![allow(unsafe_code)] // memory-mapped registers

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::TakeOnce;

/// Where QEMU's MPS2 machines map the controller.
pub const BASE: usize = 0x4020_0000;

const RX_DATA: usize = 0x00;
const TX_DATA: usize = 0x20;
const RX_STATUS: usize = 0x40;
const TX_STATUS: usize = 0x48;
const ID_REV: usize = 0x50;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

/// MAC registers (through MAC_CSR_CMD).
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
/// MAC_CR: full duplex, transmitter and receiver on (and not promiscuous).
const MAC_CR_ON: u32 = (1 << 20) | (1 << 3) | (1 << 2);
/// TX_CFG: status FIFO may overrun (TXSAO), transmitter on (TX_ON).
const TX_CFG_ON: u32 = (1 << 2) | (1 << 1);
/// Largest Ethernet frame without its FCS.
pub const MTU: usize = 1514;
/// Receive buffer: a whole frame with its FCS, in words.
const RX_BUF: usize = 1536;
/// Spins allowed for the controller to finish a reset or a MAC register access.
const SPINS: u32 = 100_000;

fn rd(off: usize) -> u32 {
    // SAFETY: a register of the controller at BASE (offsets from the data sheet); this module
    // is its only user.
    unsafe { core::ptr::read_volatile((BASE + off) as *const u32) }
}

fn wr(off: usize, v: u32) {
    // SAFETY: as in `rd`.
    unsafe { core::ptr::write_volatile((BASE + off) as *mut u32, v) }
}

fn mac_wait() -> bool {
    (0..SPINS).any(|_| rd(MAC_CSR_CMD) & (1 << 31) == 0)
}

fn mac_read(reg: u32) -> Option<u32> {
    wr(MAC_CSR_CMD, (1 << 31) | (1 << 30) | reg);
    mac_wait().then(|| rd(MAC_CSR_DATA))
}

fn mac_write(reg: u32, v: u32) -> bool {
    wr(MAC_CSR_DATA, v);
    wr(MAC_CSR_CMD, (1 << 31) | reg);
    mac_wait()
}

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lan9118Error {
    /// BYTE_TEST did not read back its fixed pattern: no controller at [`BASE`].
    Absent,
    /// The soft reset, the ready flag or a MAC register access did not complete.
    NotReady,
    /// The controller was brought up before (its buffers are taken).
    Taken,
}

/// The frame buffers (static: see [`crate::TakeOnce`]).
pub struct Frames {
    rx: [u8; RX_BUF],
    tx: [u8; MTU],
}

static FRAMES: TakeOnce<Frames> = TakeOnce::new(Frames { rx: [0; RX_BUF], tx: [0; MTU] });

/// The controller, brought up.
pub struct Lan9118 {
    mac: [u8; 6],
    rx: &'static mut [u8; RX_BUF],
    tx: &'static mut [u8; MTU],
    /// Frames dropped on reception (errors, oversize).
    pub dropped: u32,
}

impl Lan9118 {
    /// Resets the controller and turns its MAC on; the station address is the one it loaded
    /// from its EEPROM (QEMU: `-nic ...,mac=`), or a fixed locally administered one if none.
    pub fn init() -> Result<Self, Lan9118Error> {
        if rd(BYTE_TEST) != 0x8765_4321 {
            return Err(Lan9118Error::Absent);
        }
        wr(HW_CFG, 1);
        let ready = (0..SPINS).any(|_| rd(HW_CFG) & 1 == 0) && (0..SPINS).any(|_| rd(PMT_CTRL) & 1 == 1);
        if !ready {
            return Err(Lan9118Error::NotReady);
        }
        wr(INT_EN, 0);
        wr(INT_STS, u32::MAX);
        wr(RX_CFG, 0);
        wr(TX_CFG, TX_CFG_ON);
        let (l, h) = (mac_read(MAC_ADDRL), mac_read(MAC_ADDRH));
        let (Some(l), Some(h)) = (l, h) else { return Err(Lan9118Error::NotReady) };
        let (l, h) = (l.to_le_bytes(), h.to_le_bytes());
        let mut mac = [l[0], l[1], l[2], l[3], h[0], h[1]];
        // No address loaded (all zero, all ones, or a group address): a locally administered one.
        if mac == [0; 6] || mac[0] & 1 == 1 {
            mac = [0x02, 0x64, 0x69, 0x74, 0x74, 0x6f];
            let ok = mac_write(MAC_ADDRL, u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]))
                && mac_write(MAC_ADDRH, u32::from(mac[4]) | (u32::from(mac[5]) << 8));
            if !ok {
                return Err(Lan9118Error::NotReady);
            }
        }
        if !mac_write(MAC_CR, MAC_CR_ON) {
            return Err(Lan9118Error::NotReady);
        }
        let Frames { rx, tx } = FRAMES.take().ok_or(Lan9118Error::Taken)?;
        Ok(Lan9118 { mac, rx, tx, dropped: 0 })
    }

    /// The station address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The chip's ID and revision (LAN9118: 0x0118_xxxx).
    pub fn id() -> u32 {
        rd(ID_REV)
    }

    /// The next good frame into `rx`: its length without the FCS.
    fn pop_frame(&mut self) -> Option<usize> {
        while (rd(RX_FIFO_INF) >> 16) & 0xff != 0 {
            let status = rd(RX_STATUS);
            let len = ((status >> 16) & 0x3fff) as usize;
            let good = status & (1 << 15) == 0 && (14 + 4..=RX_BUF).contains(&len);
            for i in 0..len.div_ceil(4) {
                let w = rd(RX_DATA).to_le_bytes();
                if let Some(d) = self.rx.get_mut(4 * i..4 * i + 4).filter(|_| good) {
                    d.copy_from_slice(&w);
                }
            }
            if good {
                return Some(len - 4);
            }
            self.dropped = self.dropped.wrapping_add(1);
        }
        None
    }
}

/// Sends `frame` (at most [`MTU`] bytes); a frame the data FIFO has no room for in time is
/// dropped (TCP sends it again).
fn send(frame: &[u8]) {
    let Ok(len) = u32::try_from(frame.len()) else { return };
    if frame.len() > MTU || !(0..SPINS).any(|_| (rd(TX_FIFO_INF) & 0xffff) as usize >= frame.len() + 8) {
        return;
    }
    // Command A: first and last segment, buffer size; command B: tag (the length), length.
    wr(TX_DATA, (1 << 13) | (1 << 12) | len);
    wr(TX_DATA, (len << 16) | len);
    for c in frame.chunks(4) {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        wr(TX_DATA, u32::from_le_bytes(w));
    }
    while (rd(TX_FIFO_INF) >> 16) & 0xff != 0 {
        let _ = rd(TX_STATUS);
    }
}

/// A received frame.
pub struct Rx<'a>(&'a [u8]);
/// Room for a frame to send.
pub struct Tx<'a>(&'a mut [u8; MTU]);

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let n = len.min(MTU);
        let r = f(&mut self.0[..n]);
        send(&self.0[..n]);
        r
    }
}

impl phy::Device for Lan9118 {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;
    fn receive(&mut self, _: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let n = self.pop_frame()?;
        Some((Rx(&self.rx[..n]), Tx(self.tx)))
    }
    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = MTU;
        c
    }
}
