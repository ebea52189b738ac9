//! The DMA descriptor rings of the Synopsys Ethernet MAC that STM32F4 (and F7) chips carry as
//! their "ETH" peripheral, as a smoltcp device: polled, no interrupts, frames copied in and
//! out of fixed buffers. The chip's registers (clocks, pins, the MAC, the PHY's link) are the
//! board's ([`Mac`]; for the STM32F4: `stm32f4::eth`); this module is only the memory the DMA
//! and the CPU share, so it builds and is tested on the host against a model of the DMA
//! (`dwmac/tests.rs`).
//!
//! Layout (ST's RM0090, section 33.6.7-8; normal descriptors, ring mode, contiguous: the DMA's
//! descriptor skip length is 0, so a ring is an array of 16-byte descriptors whose last has the
//! end-of-ring bit):
//!
//! * receive: RDES0 = OWN (31), frame length with the FCS (29:16), error summary (15), first
//!   (9) and last (8) descriptor of the frame; RDES1 = end of ring (15), buffer size (12:0);
//!   RDES2 = the buffer's address. A frame is taken only whole in one buffer, error-free and at
//!   least a header and an FCS long; anything else is handed back and counted as dropped.
//! * transmit: TDES0 = OWN (31), last (29) and first (28) segment, end of ring (21), error
//!   summary (15) once sent; TDES1 = the frame's length (12:0); TDES2 = the buffer's address.
//!   The MAC appends the FCS and pads short frames.
//!
//! Ownership: the CPU writes a descriptor's other words, then a barrier, then the word with
//! OWN, then a barrier, then the poll demand ([`Mac::rx_demand`], [`Mac::tx_demand`]) that wakes
//! a suspended DMA; it reads a buffer only after seeing OWN clear, behind a barrier.
#![allow(unsafe_code)] // memory shared with the DMA

use core::cell::UnsafeCell;
use core::sync::atomic::{Ordering, fence};

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Receive descriptors (and buffers).
pub const RX_LEN: usize = 8;
/// Transmit descriptors (and buffers).
pub const TX_LEN: usize = 4;
/// One buffer: a whole frame with its FCS (a multiple of 16, as the DMA's bursts want).
pub const BUF: usize = 1536;
/// Largest frame without its FCS.
pub const MTU: usize = 1514;

/// Descriptor owned by the DMA (RDES0, TDES0).
const OWN: u32 = 1 << 31;
/// RDES0: error summary, first and last descriptor of the frame.
const RDES0_ES: u32 = 1 << 15;
const RDES0_FS: u32 = 1 << 9;
const RDES0_LS: u32 = 1 << 8;
/// RDES1: end of ring.
const RDES1_RER: u32 = 1 << 15;
/// TDES0: last and first segment, end of ring, error summary.
const TDES0_LS: u32 = 1 << 29;
const TDES0_FS: u32 = 1 << 28;
const TDES0_TER: u32 = 1 << 21;
const TDES0_ES: u32 = 1 << 15;

/// What the device needs from the chip's registers.
pub trait Mac {
    /// Tells the DMA the receive ring has a descriptor for it again (receive poll demand).
    fn rx_demand(&self);
    /// Tells the DMA the transmit ring has a frame for it (transmit poll demand).
    fn tx_demand(&self);
    /// Whether the link is up; the implementation asks the PHY as often as it sees fit and sets
    /// the MAC's speed and duplex when the link comes up.
    fn link_up(&mut self, now: Instant) -> bool;
}

/// One descriptor (four words; the DMA reads and writes it).
#[repr(C, align(16))]
pub struct Desc(UnsafeCell<[u32; 4]>);

impl Desc {
    const fn zero() -> Desc {
        Desc(UnsafeCell::new([0; 4]))
    }

    fn get(&self, w: usize) -> u32 {
        let w = w.min(3);
        // SAFETY: an in-bounds word of the descriptor; volatile, as the DMA writes it.
        unsafe { core::ptr::read_volatile(self.0.get().cast::<u32>().add(w)) }
    }

    fn set(&self, w: usize, v: u32) {
        let w = w.min(3);
        // SAFETY: as in `get`; the CPU writes only descriptors it owns (or OWN to hand one over).
        unsafe { core::ptr::write_volatile(self.0.get().cast::<u32>().add(w), v) }
    }
}

/// One frame buffer.
#[repr(C, align(16))]
pub struct Buf(UnsafeCell<[u8; BUF]>);

impl Buf {
    const fn zero() -> Buf {
        Buf(UnsafeCell::new([0; BUF]))
    }
}

/// The rings and their buffers, all zero (a `static` of them goes to `.bss`). They must be in
/// memory the Ethernet DMA reaches (on the STM32F4: SRAM, not the CCM).
#[repr(C)]
pub struct Rings {
    rx: [Desc; RX_LEN],
    tx: [Desc; TX_LEN],
    rx_buf: [Buf; RX_LEN],
    tx_buf: [Buf; TX_LEN],
}

impl Rings {
    /// Empty rings (for a `static`).
    pub const fn new() -> Self {
        Rings {
            rx: [const { Desc::zero() }; RX_LEN],
            tx: [const { Desc::zero() }; TX_LEN],
            rx_buf: [const { Buf::zero() }; RX_LEN],
            tx_buf: [const { Buf::zero() }; TX_LEN],
        }
    }
}

impl Default for Rings {
    fn default() -> Self {
        Self::new()
    }
}

/// An address as the DMA sees it (the chip's are 32 bits; on the host, for the tests' model of
/// the DMA, the low 32 bits, which it maps back by offset).
#[allow(clippy::cast_possible_truncation)]
fn bus<T>(p: *const T) -> u32 {
    p as usize as u32
}

/// A board's station address from its chip's unique ID (the STM32F4's 96 bits): a locally
/// administered unicast address (first byte xxxxxx10), the same at every boot (a DHCP server
/// can reserve an address for it) and, through SHA-256 under its own label, unlikely to match
/// another chip's even where their IDs share most bytes (the same wafer, the same lot).
pub fn station_address(chip_id: &[u8]) -> [u8; 6] {
    use sha2::{Digest, Sha256};
    let d = Sha256::new().chain_update(b"ditto-firmware station address").chain_update(chip_id).finalize();
    [(d[0] & 0xfc) | 0x02, d[1], d[2], d[3], d[4], d[5]]
}

/// What the device has counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Frames received and dropped: errors, runts, frames spanning buffers.
    pub rx_dropped: u32,
    /// Frames the MAC reported an error for on sending.
    pub tx_errors: u32,
}

/// The device: the rings, where the CPU is in each, and the chip's [`Mac`].
pub struct Dwmac<M> {
    mac: M,
    rings: &'static Rings,
    /// The next receive descriptor the CPU will look at.
    rx: usize,
    /// The next transmit descriptor the CPU will fill.
    tx: usize,
    counts: Counts,
}

impl<M: Mac> Dwmac<M> {
    /// Lays out the rings: every receive descriptor handed to the DMA, every transmit one the
    /// CPU's. The DMA is started afterwards, at [`Dwmac::lists`].
    pub fn new(mac: M, rings: &'static mut Rings) -> Self {
        let rings: &'static Rings = rings;
        for (i, (d, b)) in rings.tx.iter().zip(&rings.tx_buf).enumerate() {
            d.set(1, 0);
            d.set(2, bus(b.0.get()));
            d.set(3, 0);
            d.set(0, if i == TX_LEN - 1 { TDES0_TER } else { 0 });
        }
        for (i, (d, b)) in rings.rx.iter().zip(&rings.rx_buf).enumerate() {
            d.set(1, if i == RX_LEN - 1 { RDES1_RER } else { 0 } | bus_len(BUF));
            d.set(2, bus(b.0.get()));
            d.set(3, 0);
        }
        fence(Ordering::SeqCst);
        for d in &rings.rx {
            d.set(0, OWN);
        }
        fence(Ordering::SeqCst);
        Dwmac { mac, rings, rx: 0, tx: 0, counts: Counts::default() }
    }

    /// The bus addresses of the receive and transmit descriptor lists (for the DMA's list
    /// address registers).
    pub fn lists(&self) -> (u32, u32) {
        (bus(self.rings.rx.as_ptr()), bus(self.rings.tx.as_ptr()))
    }

    /// The chip's side.
    pub fn mac(&self) -> &M {
        &self.mac
    }

    /// What has been counted so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The next whole, good received frame's length (without its FCS), handing back and
    /// counting every bad one before it; `None` while the DMA owns the next descriptor. Looks
    /// at no more than a ring's worth, so a flood cannot hold the CPU here.
    fn next_frame(&mut self) -> Option<usize> {
        for _ in 0..RX_LEN {
            let d = &self.rings.rx[self.rx];
            let s = d.get(0);
            if s & OWN != 0 {
                return None;
            }
            fence(Ordering::SeqCst);
            let len = ((s >> 16) & 0x3fff) as usize;
            let whole = s & (RDES0_FS | RDES0_LS) == RDES0_FS | RDES0_LS;
            if whole && s & RDES0_ES == 0 && (14 + 4..=BUF).contains(&len) {
                return Some(len - 4);
            }
            self.counts.rx_dropped = self.counts.rx_dropped.wrapping_add(1);
            give_back(&self.rings.rx, &mut self.rx, &self.mac);
        }
        None
    }

    /// Whether the next transmit descriptor is the CPU's (counting the error its last frame had).
    fn tx_free(&mut self) -> bool {
        let d = &self.rings.tx[self.tx];
        let s = d.get(0);
        if s & OWN != 0 {
            return false;
        }
        if s & TDES0_ES != 0 {
            self.counts.tx_errors = self.counts.tx_errors.wrapping_add(1);
            d.set(0, s & TDES0_TER);
        }
        true
    }
}

/// A length as a descriptor's 13-bit size field.
#[allow(clippy::cast_possible_truncation)]
const fn bus_len(n: usize) -> u32 {
    (n as u32) & 0x1fff
}

/// Hands receive descriptor `*at` back to the DMA and moves on.
fn give_back<M: Mac>(ring: &[Desc; RX_LEN], at: &mut usize, mac: &M) {
    fence(Ordering::SeqCst);
    ring[*at].set(0, OWN);
    fence(Ordering::SeqCst);
    mac.rx_demand();
    *at = (*at + 1) % RX_LEN;
}

/// A received frame, still in its buffer.
pub struct Rx<'a, M: Mac> {
    rings: &'a Rings,
    at: &'a mut usize,
    len: usize,
    mac: &'a M,
}

/// A free transmit descriptor and its buffer.
pub struct Tx<'a, M: Mac> {
    rings: &'a Rings,
    at: &'a mut usize,
    mac: &'a M,
}

impl<M: Mac> phy::RxToken for Rx<'_, M> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let buf = &self.rings.rx_buf[*self.at];
        // SAFETY: the CPU owns this descriptor (OWN was seen clear, behind a barrier), so the
        // DMA does not write its buffer until `give_back`; `len` <= BUF.
        let r = f(unsafe { core::slice::from_raw_parts(buf.0.get().cast::<u8>(), self.len.min(BUF)) });
        give_back(&self.rings.rx, self.at, self.mac);
        r
    }
}

impl<M: Mac> phy::TxToken for Tx<'_, M> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let n = len.min(MTU);
        let (d, buf) = (&self.rings.tx[*self.at], &self.rings.tx_buf[*self.at]);
        // SAFETY: the CPU owns this descriptor (`tx_free`), so the DMA does not read its buffer
        // until OWN is set below; `n` <= MTU < BUF.
        let r = f(unsafe { core::slice::from_raw_parts_mut(buf.0.get().cast::<u8>(), n) });
        d.set(1, bus_len(n));
        fence(Ordering::SeqCst);
        d.set(0, OWN | TDES0_LS | TDES0_FS | (d.get(0) & TDES0_TER));
        fence(Ordering::SeqCst);
        self.mac.tx_demand();
        *self.at = (*self.at + 1) % TX_LEN;
        r
    }
}

impl<M: Mac> phy::Device for Dwmac<M> {
    type RxToken<'a>
        = Rx<'a, M>
    where
        M: 'a;
    type TxToken<'a>
        = Tx<'a, M>
    where
        M: 'a;

    /// A frame, with room for an answer (else the frame waits in its descriptor).
    fn receive(&mut self, now: Instant) -> Option<(Rx<'_, M>, Tx<'_, M>)> {
        if !self.mac.link_up(now) {
            return None;
        }
        let len = self.next_frame()?;
        if !self.tx_free() {
            return None;
        }
        let rx = Rx { rings: self.rings, at: &mut self.rx, len, mac: &self.mac };
        Some((rx, Tx { rings: self.rings, at: &mut self.tx, mac: &self.mac }))
    }

    /// Room for a frame, while the link is up and the DMA has handed a descriptor back.
    fn transmit(&mut self, now: Instant) -> Option<Tx<'_, M>> {
        if !self.mac.link_up(now) || !self.tx_free() {
            return None;
        }
        Some(Tx { rings: self.rings, at: &mut self.tx, mac: &self.mac })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = MTU;
        // smoltcp caps the TCP window it advertises at this many segments of (MTU - 40) bytes,
        // a little more than a real segment (1460): one less than the ring's frames keeps a
        // full window within the receive ring.
        c.max_burst_size = Some(RX_LEN - 1);
        c
    }
}

#[cfg(test)]
mod tests;
