//! The USART to the host: received by DMA (DMA1, the variant's stream and channel, circular)
//! into [`RING`], sent polled.
//!
//! At 921600 baud a byte arrives every ~1,800 core cycles; the one-byte receive register
//! overruns whenever the board is busy for longer (a log line, the stack scan after a request,
//! generation between step requests). The DMA empties it within a few bus cycles of every byte
//! whatever the core does, and the ring holds [`RING_LEN`] bytes: more than a request (at most
//! 43 + 256 bytes) while the board is busy between requests; a step batch is read as it comes.
//! The host sends nothing unasked (each message answers the board's), so the ring never wraps
//! over unread bytes in a working exchange; a flooding host garbles its own requests, which then
//! fail and are resynchronised on.
#![allow(unsafe_code)] // memory-mapped registers, the DMA's ring

use core::marker::PhantomData;

use super::{Variant, bus, modify, rd, wait, wr};
use crate::{BYTE_TIMEOUT_US, UartError, clock};

/// Receive ring size.
pub const RING_LEN: usize = 1024;

/// The DMA's receive ring: written by the DMA only, read volatile by [`Usart`].
struct Ring(core::cell::UnsafeCell<[u8; RING_LEN]>);

// SAFETY: the CPU only reads it (volatile); the DMA is its only writer.
unsafe impl Sync for Ring {}

static RING: Ring = Ring(core::cell::UnsafeCell::new([0; RING_LEN]));

const DMA1: usize = 0x4002_6000;
/// USART registers: SR, DR, CR3.
const SR: usize = 0x00;
const DR: usize = 0x04;
const CR3: usize = 0x14;
/// SR error flags: PE (0), FE (1), NF (2), ORE (3).
const SR_ERRORS: u32 = 0b1111;

/// The USART of variant `V`.
pub struct Usart<V> {
    /// Ring index of the next byte to read.
    tail: usize,
    _variant: PhantomData<V>,
}

impl<V: Variant> Usart<V> {
    /// The stream's registers: CR, then NDTR, PAR, M0AR.
    const SCR: usize = DMA1 + 0x10 + 0x18 * V::DMA_RX.0;

    /// Starts the receive DMA (the USART's clock and pins are already on).
    pub(super) fn start() -> Self {
        let (stream, channel) = V::DMA_RX;
        modify(0x4002_3800 + 0x30, 0, 1 << 21);
        modify(Self::SCR, 1, 0);
        let _ = wait(Self::SCR, 1, 0);
        // The stream's flags (FEIF, DMEIF, TEIF, HTIF, TCIF) in LIFCR (streams 0-3) or HIFCR.
        let ifcr = DMA1 + if stream < 4 { 0x08 } else { 0x0C };
        wr(ifcr, 0b11_1101 << [0, 6, 16, 22][stream % 4]);
        wr(Self::SCR + 0x08, bus(V::USART + DR));
        wr(Self::SCR + 0x0C, bus(RING.0.get() as usize));
        wr(Self::SCR + 0x04, bus(RING_LEN));
        // The channel, high priority, memory increment, circular, peripheral to memory, bytes.
        wr(Self::SCR, (channel << 25) | (0b10 << 16) | (1 << 10) | (1 << 8));
        modify(Self::SCR, 0, 1);
        // CR3.DMAR: the USART asks the DMA for every received byte.
        modify(V::USART + CR3, 0, 1 << 6);
        Usart { tail: 0, _variant: PhantomData }
    }

    /// Where the DMA writes next.
    fn head() -> usize {
        (RING_LEN - (rd(Self::SCR + 0x04) as usize).min(RING_LEN)) % RING_LEN
    }

    /// A line error, if the USART flagged one (then cleared: SR read, then DR).
    fn line_error() -> Result<(), UartError> {
        let sr = rd(V::USART + SR);
        if sr & SR_ERRORS == 0 {
            return Ok(());
        }
        let _ = rd(V::USART + DR);
        Err(if sr & (1 << 3) != 0 {
            UartError::Overrun
        } else if sr & (1 << 1) != 0 {
            UartError::Framing
        } else if sr & (1 << 2) != 0 {
            UartError::Noise
        } else {
            UartError::Parity
        })
    }
}

impl<V> embedded_io::ErrorType for Usart<V> {
    type Error = UartError;
}

impl<V: Variant> embedded_io::ReadReady for Usart<V> {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        Self::line_error()?;
        Ok(Self::head() != self.tail)
    }
}

impl<V: Variant> embedded_io::Read for Usart<V> {
    /// What the ring holds (up to `buf.len()`), waiting at most [`BYTE_TIMEOUT_US`] for a
    /// first byte; a framing, noise, parity or overrun error fails the read (the bytes are not
    /// passed on as data).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        let since = clock::now_us();
        while Self::head() == self.tail {
            Self::line_error()?;
            if clock::now_us().saturating_sub(since) > BYTE_TIMEOUT_US {
                return Err(UartError::Timeout);
            }
        }
        Self::line_error()?;
        let head = Self::head();
        let mut n = 0;
        while n < buf.len() && self.tail != head {
            // SAFETY: an index inside the ring; the DMA has written this byte (it lies between
            // our tail and its head) and does not write it again before we move past it.
            buf[n] = unsafe { core::ptr::read_volatile(RING.0.get().cast::<u8>().add(self.tail)) };
            self.tail = (self.tail + 1) % RING_LEN;
            n += 1;
        }
        Ok(n)
    }
}

impl<V: Variant> embedded_io::Write for Usart<V> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        for &b in buf {
            while rd(V::USART + SR) & (1 << 7) == 0 {}
            wr(V::USART + DR, u32::from(b));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), UartError> {
        // TC: the last byte has left the shift register.
        while rd(V::USART + SR) & (1 << 6) == 0 {}
        Ok(())
    }
}
