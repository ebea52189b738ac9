//! STM32F407 (e.g. the STM32F4DISCOVERY board): 168 MHz from the PLL (8 MHz HSE crystal, or the
//! 16 MHz HSI if no crystal starts), USART2 on PA2 (TX) / PA3 (RX) at [`BAUD`], 8N1, the
//! hardware TRNG (clocked at 48 MHz from the PLL), and the key page in flash sector 11
//! ([`KEY_PAGE`], outside the image: memory.x stops the image's flash below it).
//!
//! Registers as in ST's RM0090; every wait on the hardware is bounded.
#![allow(unsafe_code)] // memory-mapped registers and the key page

use crate::{Board, BoardError, NoEthernet, clock};

/// Flash sector 11 (128 KiB), where `board-keys.bin` is written.
pub const KEY_PAGE: usize = 0x080E_0000;
/// Core clock.
pub const CORE_HZ: u32 = 168_000_000;
/// APB1 clock (USART2): core / 4.
const APB1_HZ: u32 = CORE_HZ / 4;
/// UART line speed (set the host side to match: `stty -F DEV 921600 raw -echo`).
pub const BAUD: u32 = 921_600;

const RCC: usize = 0x4002_3800;
const FLASH: usize = 0x4002_3C00;
const GPIOA: usize = 0x4002_0000;
const USART2: usize = 0x4000_4400;
const RNG: usize = 0x5006_0800;

/// Spins allowed for a clock or a TRNG value to become ready (far above what they need).
const SPINS: u32 = 2_000_000;

fn rd(addr: usize) -> u32 {
    // SAFETY: a peripheral register of this chip (the constants above plus RM0090 offsets).
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn wr(addr: usize, v: u32) {
    // SAFETY: as in `rd`; this module is the only user of these peripherals.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

fn modify(addr: usize, clear: u32, set: u32) {
    wr(addr, (rd(addr) & !clear) | set);
}

fn wait(addr: usize, mask: u32, want: u32) -> bool {
    (0..SPINS).any(|_| rd(addr) & mask == want)
}

/// The board.
pub struct Stm32f407 {
    /// The TRNG's previous value (continuous test).
    last: Option<u32>,
    /// Whether the crystal started (logged).
    pub hse: bool,
}

impl Stm32f407 {
    /// Clocks the chip to 168 MHz and starts the clock, USART2 and the TRNG.
    pub fn init(p: cortex_m::Peripherals) -> Self {
        let hse = clocks();
        clock::start(p.SYST, CORE_HZ);
        // GPIOA, USART2, RNG clocks.
        modify(RCC + 0x30, 0, 1);
        modify(RCC + 0x40, 0, 1 << 17);
        modify(RCC + 0x34, 0, 1 << 6);
        // PA2, PA3: alternate function 7 (USART2), PA3 pulled up, PA2 high speed.
        modify(GPIOA, 0b1111 << 4, 0b1010 << 4);
        modify(GPIOA + 0x20, 0xff << 8, 0x77 << 8);
        modify(GPIOA + 0x0C, 0b11 << 6, 0b01 << 6);
        modify(GPIOA + 0x08, 0b11 << 4, 0b10 << 4);
        // USART2: 16x oversampling, BRR = f_APB1 / baud; enable, TX, RX.
        wr(USART2 + 0x08, (APB1_HZ + BAUD / 2) / BAUD);
        wr(USART2 + 0x0C, (1 << 13) | (1 << 3) | (1 << 2));
        // TRNG on.
        wr(RNG, 1 << 2);
        let mut b = Stm32f407 { last: None, hse };
        // The first value only seeds the continuous test (RM0090, 24.3.1).
        let _ = b.rng_word();
        b
    }

    fn rng_word(&mut self) -> Result<u32, BoardError> {
        for _ in 0..SPINS {
            let sr = rd(RNG + 0x04);
            // SECS/SEIS: seed error; CECS/CEIS: clock error.
            if sr & 0b110_0110 != 0 {
                return Err(BoardError::EntropyFault);
            }
            if sr & 1 != 0 {
                let v = rd(RNG + 0x08);
                if self.last == Some(v) {
                    return Err(BoardError::EntropyRepeat);
                }
                self.last = Some(v);
                return Ok(v);
            }
        }
        Err(BoardError::EntropyTimeout)
    }
}

/// HSE (8 MHz) or HSI (16 MHz) -> PLL: VCO 336 MHz, SYSCLK 168 MHz, 48 MHz for the TRNG; AHB /1,
/// APB1 /4, APB2 /2; flash 5 wait states with caches and prefetch. Returns whether HSE started;
/// stops (logged) if the PLL does not lock.
fn clocks() -> bool {
    modify(RCC, 0, 1 << 16);
    let hse = wait(RCC, 1 << 17, 1 << 17);
    if !hse {
        modify(RCC, 1 << 16, 0);
    }
    let (m, src) = if hse { (8, 1 << 22) } else { (16, 0) };
    // PLLM, PLLN, PLLP (/2), PLLSRC, PLLQ; the reserved bits keep their reset values.
    modify(RCC + 0x04, 0x0F43_7FFF, m | (336 << 6) | src | (7 << 24));
    modify(RCC, 0, 1 << 24);
    if !wait(RCC, 1 << 25, 1 << 25) {
        defmt::error!("the PLL did not lock: the clocks, the UART and the TRNG cannot be set up");
        loop {
            cortex_m::asm::wfi();
        }
    }
    wr(FLASH, 5 | (1 << 8) | (1 << 9) | (1 << 10));
    // HPRE /1, PPRE1 /4, PPRE2 /2.
    modify(RCC + 0x08, 0xfcf0, (0b100 << 13) | (0b101 << 10));
    modify(RCC + 0x08, 0b11, 0b10);
    let _ = wait(RCC + 0x08, 0b1100, 0b1000);
    hse
}

impl Board for Stm32f407 {
    const NAME: &'static str = "stm32f407";
    type Uart = Usart2;
    // The STM32F407 has an Ethernet MAC, but the DISCOVERY board no PHY: UART only.
    type Eth = NoEthernet;
    fn uart(&mut self) -> Usart2 {
        Usart2 { _private: () }
    }
    fn ethernet(&mut self) -> Option<(NoEthernet, [u8; 6])> {
        None
    }
    fn entropy(&mut self, out: &mut [u8]) -> Result<(), BoardError> {
        for chunk in out.chunks_mut(4) {
            let w = self.rng_word()?.to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        Ok(())
    }
    fn now_us() -> u64 {
        clock::now_us()
    }
    fn key_page(&self) -> &'static [u8] {
        // SAFETY: flash sector 11 is mapped and read-only while we run.
        unsafe { crate::key_page_at(KEY_PAGE) }
    }
    fn halt(&mut self) -> ! {
        loop {
            cortex_m::asm::wfi();
        }
    }
}

/// USART2, polled.
pub struct Usart2 {
    _private: (),
}

/// A byte lost on reception (the host sent faster than the board read).
#[derive(Debug)]
pub struct Overrun;

impl core::fmt::Display for Overrun {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("UART receive overrun: a byte from the host was lost")
    }
}

impl core::error::Error for Overrun {}

impl embedded_io::Error for Overrun {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

impl embedded_io::ErrorType for Usart2 {
    type Error = Overrun;
}

impl embedded_io::Read for Usart2 {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Overrun> {
        let mut n = 0;
        while n < buf.len() {
            let sr = rd(USART2);
            if sr & (1 << 3) != 0 {
                // ORE: reading SR then DR clears it; the request fails with a clear error.
                let _ = rd(USART2 + 0x04);
                return Err(Overrun);
            }
            if sr & (1 << 5) == 0 {
                if n > 0 {
                    break;
                }
                continue;
            }
            buf[n] = rd(USART2 + 0x04).to_le_bytes()[0];
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for Usart2 {
    fn read_ready(&mut self) -> Result<bool, Overrun> {
        Ok(rd(USART2) & (1 << 5) != 0)
    }
}

impl embedded_io::Write for Usart2 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Overrun> {
        for &b in buf {
            while rd(USART2) & (1 << 7) == 0 {}
            wr(USART2 + 0x04, u32::from(b));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Overrun> {
        // TC: the last byte has left the shift register.
        while rd(USART2) & (1 << 6) == 0 {}
        Ok(())
    }
}
