//! Arm's MPS2 AN386 (Cortex-M4F) as QEMU's `mps2-an386` models it: CMSDK UART0 at 0x4000_4000,
//! the LAN9118 Ethernet controller at 0x4020_0000 ([`crate::lan9118`]), 25 MHz core clock, semihosting for the exit status. No entropy source. The key page is read
//! from [`KEY_PAGE`] in the RAM that `-kernel` loads into (QEMU's `-device loader` puts
//! `board-keys.bin` there).
#![allow(unsafe_code)] // memory-mapped registers and the key page

use cortex_m_semihosting::debug;

use crate::lan9118::Lan9118;
use crate::{BYTE_TIMEOUT_US, Board, BoardError, UartError, clock};

/// Where the key page is read (outside the image: memory.x ends the image's region below it).
pub const KEY_PAGE: usize = 0x003F_F000;
/// The core clock QEMU models.
pub const CORE_HZ: u32 = 25_000_000;
/// CMSDK UART0: DATA +0x0, STATE +0x4 (bit 0 TX full, bit 1 RX full), CTRL +0x8, BAUDDIV +0x10.
const UART0: usize = 0x4000_4000;

/// The board.
pub struct Mps2 {
    _private: (),
}

impl Mps2 {
    /// Starts the clock and the UART.
    pub fn init(p: cortex_m::Peripherals) -> Self {
        clock::start(p.SYST, CORE_HZ);
        // SAFETY: UART0's BAUDDIV and CTRL registers on this board; nothing else uses them.
        unsafe {
            core::ptr::write_volatile(Uart::reg(0x10), 16);
            core::ptr::write_volatile(Uart::reg(0x8), 0b11);
        }
        Mps2 { _private: () }
    }
}

/// Exits QEMU with a failure status.
pub fn exit_failure() -> ! {
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

impl Board for Mps2 {
    const NAME: &'static str = "mps2-an386 (QEMU)";
    type Uart = Uart;
    type Eth = Lan9118;
    fn uart(&mut self) -> Uart {
        Uart { _private: () }
    }
    fn ethernet(&mut self) -> Option<(Lan9118, [u8; 6])> {
        match Lan9118::init() {
            Ok(e) => {
                let mac = e.mac();
                Some((e, mac))
            }
            Err(e) => {
                defmt::warn!("no Ethernet: LAN9118 {}", defmt::Debug2Format(&e));
                None
            }
        }
    }
    fn entropy(&mut self, _out: &mut [u8]) -> Result<(), BoardError> {
        Err(BoardError::NoEntropy)
    }
    fn now_us() -> u64 {
        clock::now_us()
    }
    fn key_page(&self) -> &'static [u8] {
        // SAFETY: RAM-backed memory QEMU maps at this address; nothing writes it while we run.
        unsafe { crate::key_page_at(KEY_PAGE) }
    }
    fn halt(&mut self) -> ! {
        exit_failure()
    }
}

/// CMSDK UART0, polled.
pub struct Uart {
    _private: (),
}

impl Uart {
    fn reg(off: usize) -> *mut u32 {
        (UART0 + off) as *mut u32
    }
    fn state() -> u32 {
        // SAFETY: reading UART0's STATE register has no side effect.
        unsafe { core::ptr::read_volatile(Self::reg(0x4)) }
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = UartError;
}

impl embedded_io::Read for Uart {
    /// What has arrived, waiting at most [`BYTE_TIMEOUT_US`] for a first byte. (QEMU's UART
    /// holds bytes back until they are read: it reports no overrun, framing or noise.)
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
        let mut n = 0;
        let since = clock::now_us();
        while n < buf.len() {
            if Self::state() & 2 == 0 {
                if n > 0 {
                    break;
                }
                if clock::now_us().saturating_sub(since) > BYTE_TIMEOUT_US {
                    return Err(UartError::Timeout);
                }
                continue;
            }
            // SAFETY: reading DATA pops the received byte; RX full was just seen.
            buf[n] = unsafe { core::ptr::read_volatile(Self::reg(0x0)) }.to_le_bytes()[0];
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        Ok(Self::state() & 2 != 0)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        for &b in buf {
            while Self::state() & 1 != 0 {}
            // SAFETY: writing DATA sends a byte; TX full was just seen clear.
            unsafe { core::ptr::write_volatile(Self::reg(0x0), u32::from(b)) };
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), UartError> {
        Ok(())
    }
}
