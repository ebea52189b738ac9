//! STM32F407 (e.g. the STM32F4DISCOVERY board): 168 MHz from the PLL (8 MHz HSE crystal watched
//! by the clock security system, or the 16 MHz HSI if no crystal starts), USART2 on PA2 (TX) /
//! PA3 (RX) at [`BAUD`], 8N1, received by DMA, the hardware TRNG (clocked at 48 MHz from the
//! PLL, its seed and clock errors recovered), and the key page in flash sector 11 ([`KEY_PAGE`],
//! outside the image: memory.x stops the image's flash below it).
//!
//! Registers as in ST's RM0090; every wait on the hardware is bounded.
#![allow(unsafe_code)] // memory-mapped registers and the key page

use crate::{BYTE_TIMEOUT_US, Board, BoardError, NoEthernet, UartError, clock};

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

/// An address or count as the 32-bit bus sees it (this chip's addresses are 32 bits).
#[allow(clippy::cast_possible_truncation)]
fn bus(v: usize) -> u32 {
    v as u32
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

    /// Restarts the TRNG (RNGEN off, on) and seeds the continuous test anew with its first
    /// value, which is not used (RM0090, 24.3.1).
    fn restart_rng(&mut self) {
        modify(RNG, 1 << 2, 0);
        modify(RNG, 0, 1 << 2);
        self.last = None;
        if let Ok(v) = self.raw_word() {
            self.last = Some(v);
        }
    }

    /// One TRNG value, without error recovery.
    fn raw_word(&mut self) -> Result<u32, BoardError> {
        for _ in 0..SPINS {
            let sr = rd(RNG + 0x04);
            // SECS/SEIS: seed error; CECS/CEIS: clock error.
            if sr & 0b110_0110 != 0 {
                return Err(BoardError::EntropyFault);
            }
            if sr & 1 != 0 {
                return Ok(rd(RNG + 0x08));
            }
        }
        Err(BoardError::EntropyTimeout)
    }

    /// One TRNG value that passed the continuous test, recovering from seed and clock errors
    /// as RM0090 (24.3.2) prescribes, at most [`RNG_RETRIES`] times: a seed error discards the
    /// value, clears SEIS and restarts the generator; a clock error clears CEIS and waits for
    /// the clock (CECS clears itself once the 48 MHz clock is right again).
    fn rng_word(&mut self) -> Result<u32, BoardError> {
        for _ in 0..=RNG_RETRIES {
            match self.raw_word() {
                Ok(v) if self.last == Some(v) => return Err(BoardError::EntropyRepeat),
                Ok(v) => {
                    self.last = Some(v);
                    return Ok(v);
                }
                Err(BoardError::EntropyFault) => {
                    let sr = rd(RNG + 0x04);
                    // SEIS and CEIS are cleared by writing 0 (the other bits are read-only).
                    wr(RNG + 0x04, sr & !0b110_0000);
                    if sr & 0b100_0100 != 0 {
                        self.restart_rng();
                    } else {
                        let _ = wait(RNG + 0x04, 0b10, 0);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(BoardError::EntropyFault)
    }
}

/// Recoveries from TRNG seed or clock errors per value before the board gives up.
const RNG_RETRIES: u32 = 3;

/// Called by the image's NMI handler: the clock security system saw the crystal fail. The chip
/// has switched to its internal oscillator and stopped the PLL, so the UART's line speed and the
/// TRNG's clock are wrong: the board stops dealing.
pub fn clock_failed() -> ! {
    // CSSC: clear the CSS interrupt flag, else the NMI fires again at once.
    modify(RCC + 0x0C, 0, 1 << 23);
    defmt::error!("the crystal failed (clock security system): the board stops dealing");
    loop {
        cortex_m::asm::wfi();
    }
}

/// HSE (8 MHz) or HSI (16 MHz) -> PLL input 2 MHz (RM0090 recommends it, for the least PLL
/// jitter) -> VCO 336 MHz -> SYSCLK 168 MHz, 48 MHz for the TRNG; AHB /1, APB1 /4, APB2 /2;
/// flash 5 wait states (read back before the switch: running at 168 MHz with fewer corrupts
/// instruction fetches) with caches and prefetch; the clock security system on when the crystal
/// runs (its failure is an NMI: [`clock_failed`]). Returns whether HSE started; stops (logged)
/// if the PLL does not lock or the flash does not take its wait states.
fn clocks() -> bool {
    modify(RCC, 0, 1 << 16);
    let hse = wait(RCC, 1 << 17, 1 << 17);
    if !hse {
        modify(RCC, 1 << 16, 0);
    }
    let (m, src) = if hse { (4, 1 << 22) } else { (8, 0) };
    // PLLM, PLLN, PLLP (/2), PLLSRC, PLLQ; the reserved bits keep their reset values.
    modify(RCC + 0x04, 0x0F43_7FFF, m | (168 << 6) | src | (7 << 24));
    modify(RCC, 0, 1 << 24);
    if !wait(RCC, 1 << 25, 1 << 25) {
        stop("the PLL did not lock: the clocks, the UART and the TRNG cannot be set up");
    }
    let acr = 5 | (1 << 8) | (1 << 9) | (1 << 10);
    wr(FLASH, acr);
    if rd(FLASH) & 0x70f != acr {
        stop("the flash did not take 5 wait states: staying on the slow clock is not supported");
    }
    // HPRE /1, PPRE1 /4, PPRE2 /2.
    modify(RCC + 0x08, 0xfcf0, (0b100 << 13) | (0b101 << 10));
    modify(RCC + 0x08, 0b11, 0b10);
    let _ = wait(RCC + 0x08, 0b1100, 0b1000);
    if hse {
        // CSSON.
        modify(RCC, 0, 1 << 19);
    }
    hse
}

/// Logs why the board cannot run and stops.
fn stop(why: &str) -> ! {
    defmt::error!("{=str}", why);
    loop {
        cortex_m::asm::wfi();
    }
}

impl Board for Stm32f407 {
    const NAME: &'static str = "stm32f407";
    type Uart = Usart2;
    // The STM32F407 has an Ethernet MAC, but the DISCOVERY board no PHY: UART only.
    type Eth = NoEthernet;
    fn uart(&mut self) -> Usart2 {
        Usart2::start()
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

/// USART2: received by DMA (DMA1 stream 5, channel 4, circular) into [`RING`], sent polled.
///
/// At 921600 baud a byte arrives every ~1,800 core cycles; the one-byte receive register
/// overruns whenever the board is busy for longer (a log line, the stack scan after a request,
/// generation between step requests). The DMA empties it within a few bus cycles of every byte
/// whatever the core does, and the ring holds [`RING_LEN`] bytes: more than a request (at most
/// 43 + 256 bytes) while the board is busy between requests; a step batch is read as it comes.
/// The host sends nothing unasked (each message answers the board's), so the ring never wraps
/// over unread bytes in a working exchange; a flooding host garbles its own requests, which then
/// fail and are resynchronised on.
pub struct Usart2 {
    /// Ring index of the next byte to read.
    tail: usize,
}

/// Receive ring size.
pub const RING_LEN: usize = 1024;

/// The DMA's receive ring: written by the DMA only, read volatile by [`Usart2`].
struct Ring(core::cell::UnsafeCell<[u8; RING_LEN]>);

// SAFETY: the CPU only reads it (volatile); the DMA is its only writer.
unsafe impl Sync for Ring {}

static RING: Ring = Ring(core::cell::UnsafeCell::new([0; RING_LEN]));

const DMA1: usize = 0x4002_6000;
/// Stream 5's registers: CR, NDTR, PAR, M0AR.
const S5CR: usize = DMA1 + 0x10 + 0x18 * 5;
const S5NDTR: usize = S5CR + 0x04;
const S5PAR: usize = S5CR + 0x08;
const S5M0AR: usize = S5CR + 0x0C;
/// HIFCR: stream 5's flags (FEIF5, DMEIF5, TEIF5, HTIF5, TCIF5).
const DMA1_HIFCR: usize = DMA1 + 0x0C;
const S5_FLAGS: u32 = 0b1111_0100_0000;

/// SR error flags: PE (0), FE (1), NF (2), ORE (3).
const SR_ERRORS: u32 = 0b1111;

impl Usart2 {
    /// Starts the receive DMA (USART2's clock and pins are already on).
    fn start() -> Self {
        modify(RCC + 0x30, 0, 1 << 21);
        modify(S5CR, 1, 0);
        let _ = wait(S5CR, 1, 0);
        wr(DMA1_HIFCR, S5_FLAGS);
        wr(S5PAR, bus(USART2 + 0x04));
        wr(S5M0AR, bus(RING.0.get() as usize));
        wr(S5NDTR, bus(RING_LEN));
        // Channel 4, high priority, memory increment, circular, peripheral to memory, bytes.
        wr(S5CR, (4 << 25) | (0b10 << 16) | (1 << 10) | (1 << 8));
        modify(S5CR, 0, 1);
        // CR3.DMAR: the USART asks the DMA for every received byte.
        modify(USART2 + 0x14, 0, 1 << 6);
        Usart2 { tail: 0 }
    }

    /// Where the DMA writes next.
    fn head() -> usize {
        (RING_LEN - (rd(S5NDTR) as usize).min(RING_LEN)) % RING_LEN
    }

    /// A line error, if the USART flagged one (then cleared: SR read, then DR).
    fn line_error() -> Result<(), UartError> {
        let sr = rd(USART2);
        if sr & SR_ERRORS == 0 {
            return Ok(());
        }
        let _ = rd(USART2 + 0x04);
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

impl embedded_io::ErrorType for Usart2 {
    type Error = UartError;
}

impl embedded_io::ReadReady for Usart2 {
    fn read_ready(&mut self) -> Result<bool, UartError> {
        Self::line_error()?;
        Ok(Self::head() != self.tail)
    }
}

impl embedded_io::Read for Usart2 {
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

impl embedded_io::Write for Usart2 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
        for &b in buf {
            while rd(USART2) & (1 << 7) == 0 {}
            wr(USART2 + 0x04, u32::from(b));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), UartError> {
        // TC: the last byte has left the shift register.
        while rd(USART2) & (1 << 6) == 0 {}
        Ok(())
    }
}
