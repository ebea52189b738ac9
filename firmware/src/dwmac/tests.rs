//! The rings against a model of the MAC's DMA, written from RM0090's description of it (33.6):
//! it walks each ring from its list address in 16-byte steps, going back to the start after a
//! descriptor with the end-of-ring bit; it receives into a descriptor only while it owns it
//! (else the frame is lost, as when the ring is full), splitting a frame over as many
//! descriptors as it needs (first and last marked, the length in the last), and clears OWN
//! when done; it sends a transmit descriptor's buffer while it owns it, then clears OWN.

#![allow(clippy::cast_possible_truncation)] // small test counters as frame tags

extern crate std;

use std::boxed::Box;
use std::cell::Cell;
use std::vec;
use std::vec::Vec;

use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant;

use super::*;

/// The chip's side: poll demands counted, the link as the test sets it.
#[derive(Default)]
struct TestMac {
    rx_demands: Cell<u32>,
    tx_demands: Cell<u32>,
    down: bool,
}

impl Mac for TestMac {
    fn rx_demand(&self) {
        self.rx_demands.set(self.rx_demands.get() + 1);
    }
    fn tx_demand(&self) {
        self.tx_demands.set(self.tx_demands.get() + 1);
    }
    fn link_up(&mut self, _: Instant) -> bool {
        !self.down
    }
}

/// The DMA's side, holding nothing but the list addresses and its own positions.
struct Dma {
    rx_list: u32,
    tx_list: u32,
    /// Where the rings really are (host addresses are wider than the bus's 32 bits): a bus
    /// address is mapped back by its offset from the rings' own.
    base: *const Rings,
    rx_at: u32,
    tx_at: u32,
}

const NOW: Instant = Instant::from_micros_const(0);

impl Dma {
    fn new(dev: &Dwmac<TestMac>) -> Self {
        let (rx_list, tx_list) = dev.lists();
        Dma { rx_list, tx_list, base: dev.rings, rx_at: rx_list, tx_at: tx_list }
    }

    fn ptr(&self, addr: u32) -> *mut u8 {
        let off = addr.wrapping_sub(bus(self.base)) as usize;
        assert!(off < core::mem::size_of::<Rings>(), "bus address {addr:#x} outside the rings");
        // SAFETY: within the rings (checked).
        unsafe { self.base.cast::<u8>().cast_mut().add(off) }
    }

    fn word(&self, desc: u32, w: u32) -> u32 {
        // SAFETY: a descriptor word within the rings (`ptr` checks), 4-aligned.
        unsafe { core::ptr::read_volatile(self.ptr(desc + 4 * w).cast::<u32>()) }
    }

    fn set_word(&self, desc: u32, w: u32, v: u32) {
        // SAFETY: as in `word`.
        unsafe { core::ptr::write_volatile(self.ptr(desc + 4 * w).cast::<u32>(), v) }
    }

    /// Receives `frame` (its FCS appended here) with `errors` in the status of its last
    /// descriptor; false if the DMA did not own enough descriptors (the frame is lost).
    fn receive(&mut self, frame: &[u8], errors: u32) -> bool {
        let mut wire = frame.to_vec();
        wire.extend_from_slice(&[0xfc; 4]);
        let mut chunks = Vec::new();
        let mut at = self.rx_at;
        let mut rest = &wire[..];
        while !rest.is_empty() {
            if self.word(at, 0) & (1 << 31) == 0 {
                return false;
            }
            let size = (self.word(at, 1) & 0x1fff) as usize;
            let n = size.min(rest.len());
            chunks.push((at, &rest[..n]));
            rest = &rest[n..];
            at = self.next(at, self.rx_list, self.word(at, 1) & (1 << 15) != 0);
        }
        let last = chunks.len() - 1;
        for (i, (desc, bytes)) in chunks.iter().enumerate() {
            let buf = self.ptr(self.word(*desc, 2));
            // SAFETY: the descriptor's buffer, at least `size` >= bytes.len() long.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
            let mut s = 0;
            if i == 0 {
                s |= 1 << 9;
            }
            if i == last {
                s |= (1 << 8) | (u32::try_from(wire.len()).unwrap() << 16) | errors;
            }
            self.set_word(*desc, 0, s);
        }
        self.rx_at = at;
        true
    }

    /// Sends every frame the CPU has handed over, in ring order, with `status` in TDES0 after.
    fn send(&mut self, status: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let s = self.word(self.tx_at, 0);
            if s & (1 << 31) == 0 {
                return out;
            }
            assert_eq!(s & (3 << 28), 3 << 28, "every frame is one segment, first and last");
            let len = (self.word(self.tx_at, 1) & 0x1fff) as usize;
            let buf = self.ptr(self.word(self.tx_at, 2));
            // SAFETY: the descriptor's buffer, `len` long (the CPU set it).
            out.push(unsafe { core::slice::from_raw_parts(buf, len) }.to_vec());
            self.set_word(self.tx_at, 0, (s & !(1 << 31)) | status);
            self.tx_at = self.next(self.tx_at, self.tx_list, s & (1 << 21) != 0);
        }
    }

    fn next(&self, at: u32, list: u32, end: bool) -> u32 {
        if end { list } else { at + 16 }
    }
}

fn device(mac: TestMac) -> Dwmac<TestMac> {
    Dwmac::new(mac, Box::leak(Box::new(Rings::new())))
}

fn frame(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ tag).collect()
}

fn recv(dev: &mut Dwmac<TestMac>) -> Option<Vec<u8>> {
    let (rx, _) = dev.receive(NOW)?;
    Some(rx.consume(|b| b.to_vec()))
}

#[test]
fn frames_arrive_whole_in_order_across_many_turns_of_the_ring() {
    let mut dev = device(TestMac::default());
    let mut dma = Dma::new(&dev);
    let mut tag = 0u8;
    // Three rings' worth, in bursts of 1, 3 and a full ring; edge sizes among them.
    let bursts = [1, 3, RX_LEN, 5, RX_LEN, 2];
    for burst in bursts {
        let sent: Vec<Vec<u8>> = (0..burst)
            .map(|i| {
                tag = tag.wrapping_add(1);
                frame([14, 60, MTU, BUF - 4, 342][(i + usize::from(tag)) % 5], tag)
            })
            .collect();
        for f in &sent {
            assert!(dma.receive(f, 0), "the DMA owns a free descriptor");
        }
        for f in &sent {
            assert_eq!(recv(&mut dev).as_ref(), Some(f), "the frame, without its FCS");
        }
        assert_eq!(recv(&mut dev), None, "nothing more");
    }
    assert_eq!(dev.counts(), Counts::default());
    let frames: usize = bursts.iter().sum();
    assert_eq!(dev.mac().rx_demands.get() as usize, frames, "one poll demand per frame handed back");
}

#[test]
fn a_full_ring_loses_frames_until_the_cpu_hands_a_descriptor_back() {
    let mut dev = device(TestMac::default());
    let mut dma = Dma::new(&dev);
    for i in 0..RX_LEN {
        assert!(dma.receive(&frame(100, i as u8), 0));
    }
    assert!(!dma.receive(&frame(100, 0xee), 0), "no descriptor left: lost");
    assert_eq!(recv(&mut dev), Some(frame(100, 0)));
    assert!(dma.receive(&frame(100, 0xaa), 0), "the handed-back descriptor takes the next");
    for i in 1..RX_LEN {
        assert_eq!(recv(&mut dev), Some(frame(100, i as u8)));
    }
    assert_eq!(recv(&mut dev), Some(frame(100, 0xaa)));
    assert_eq!(recv(&mut dev), None);
}

#[test]
fn bad_frames_are_dropped_and_counted_and_the_good_ones_around_them_kept() {
    let mut dev = device(TestMac::default());
    let mut dma = Dma::new(&dev);
    let good = [frame(60, 1), frame(200, 2), frame(MTU, 3)];
    assert!(dma.receive(&good[0], 0));
    assert!(dma.receive(&frame(80, 9), 1 << 15 | 1 << 1), "a CRC error (error summary set)");
    assert!(dma.receive(&frame(2000, 9), 0), "too long for a buffer: spans two descriptors");
    assert!(dma.receive(&good[1], 0));
    assert!(dma.receive(&frame(10, 9), 0), "a runt: no room for a header and an FCS");
    assert!(dma.receive(&good[2], 0));
    for g in &good {
        assert_eq!(recv(&mut dev).as_ref(), Some(g));
    }
    assert_eq!(recv(&mut dev), None);
    assert_eq!(dev.counts().rx_dropped, 4, "the CRC error, both halves of the long frame, the runt");
    // Every descriptor went back to the DMA: a full ring fits again.
    for i in 0..RX_LEN {
        assert!(dma.receive(&frame(64, i as u8), 0));
    }
}

#[test]
fn an_unconsumed_frame_stays_for_the_next_receive() {
    let mut dev = device(TestMac::default());
    let mut dma = Dma::new(&dev);
    assert!(dma.receive(&frame(64, 7), 0));
    assert!(dev.receive(NOW).is_some(), "offered, then the tokens are dropped unused");
    assert_eq!(recv(&mut dev), Some(frame(64, 7)));
}

#[test]
fn frames_go_out_whole_in_order_and_a_full_ring_waits_for_the_dma() {
    let mut dev = device(TestMac::default());
    let mut dma = Dma::new(&dev);
    let mut all = Vec::new();
    for round in 0..3u8 {
        let sent: Vec<Vec<u8>> =
            (0..TX_LEN).map(|i| frame([14, 60, MTU, 1000][i], round * 16 + i as u8)).collect();
        for f in &sent {
            let tx = dev.transmit(NOW).expect("a free descriptor");
            tx.consume(f.len(), |b| b.copy_from_slice(f));
        }
        assert!(dev.transmit(NOW).is_none(), "every descriptor is the DMA's");
        assert_eq!(dma.send(0), sent);
        all.extend(sent);
    }
    assert_eq!(dev.mac().tx_demands.get() as usize, all.len(), "one poll demand per frame");
    // An error reported on a sent frame is counted once, when its descriptor is reused.
    let tx = dev.transmit(NOW).unwrap();
    tx.consume(64, |b| b.fill(1));
    assert_eq!(dma.send(1 << 15).len(), 1);
    for _ in 0..TX_LEN {
        assert!(dev.transmit(NOW).is_some());
    }
    assert_eq!(dev.counts().tx_errors, 0, "not yet back at that descriptor");
    for _ in 0..TX_LEN {
        dev.transmit(NOW).unwrap().consume(64, |b| b.fill(2));
    }
    dma.send(0);
    assert_eq!(dev.counts().tx_errors, 1);
}

#[test]
fn a_frame_longer_than_the_mtu_is_cut_to_it() {
    let mut dev = device(TestMac::default());
    let mut dma = Dma::new(&dev);
    let n = dev.transmit(NOW).unwrap().consume(MTU + 100, |b| b.len());
    assert_eq!(n, MTU);
    assert_eq!(dma.send(0)[0].len(), MTU);
}

#[test]
fn a_received_frame_comes_with_room_for_an_answer_or_waits() {
    let mut dev = device(TestMac::default());
    let mut dma = Dma::new(&dev);
    for _ in 0..TX_LEN {
        dev.transmit(NOW).unwrap().consume(64, |b| b.fill(0));
    }
    assert!(dma.receive(&frame(64, 5), 0));
    assert!(dev.receive(NOW).is_none(), "no transmit descriptor free: the frame waits");
    assert_eq!(dma.send(0).len(), TX_LEN);
    let (rx, tx) = dev.receive(NOW).expect("now both");
    assert_eq!(rx.consume(|b| b.to_vec()), frame(64, 5));
    tx.consume(60, |b| b.fill(3));
    assert_eq!(dma.send(0), vec![vec![3; 60]]);
}

#[test]
fn nothing_moves_while_the_link_is_down() {
    let mut dev = device(TestMac { down: true, ..TestMac::default() });
    let mut dma = Dma::new(&dev);
    assert!(dma.receive(&frame(64, 1), 0));
    assert!(dev.receive(NOW).is_none());
    assert!(dev.transmit(NOW).is_none());
    dev.mac.down = false;
    assert_eq!(recv(&mut dev), Some(frame(64, 1)));
}

#[test]
fn the_rings_are_laid_out_as_the_dma_reads_them() {
    let dev = device(TestMac::default());
    let (rx, tx) = dev.lists();
    assert_eq!(rx % 16, 0, "descriptors word-aligned (16 here)");
    assert_eq!(tx % 16, 0);
    let dma = Dma::new(&dev);
    for i in 0..RX_LEN as u32 {
        let d = rx + 16 * i;
        assert_eq!(dma.word(d, 0), 1 << 31, "handed to the DMA");
        let end = if i as usize == RX_LEN - 1 { 1 << 15 } else { 0 };
        assert_eq!(dma.word(d, 1), end | BUF as u32, "buffer size, end of ring on the last");
        assert_eq!(dma.word(d, 2) % 16, 0, "buffers aligned");
    }
    for i in 0..TX_LEN as u32 {
        let d = tx + 16 * i;
        let end = if i as usize == TX_LEN - 1 { 1 << 21 } else { 0 };
        assert_eq!(dma.word(d, 0), end, "the CPU's, end of ring on the last");
    }
}

#[test]
fn station_addresses_are_local_unicast_stable_and_apart() {
    let id = |last: u8| {
        let mut id = [0x33u8; 12];
        id[11] = last;
        id
    };
    let mut seen = std::collections::BTreeSet::new();
    for last in 0..=255 {
        let a = station_address(&id(last));
        assert_eq!(a[0] & 0b11, 0b10, "locally administered, unicast: {a:02x?}");
        assert_eq!(a, station_address(&id(last)), "the same at every boot");
        assert!(seen.insert(a), "chips one bit of ID apart get different addresses");
    }
    // Not the chip ID's own bytes.
    assert_ne!(station_address(&id(0))[1..], id(0)[..5]);
}

mod tcp;
