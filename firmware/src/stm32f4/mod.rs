//! STM32F4 boards: 168 MHz from the PLL (an 8 MHz HSE, crystal or external clock, watched by
//! the clock security system, or the 16 MHz HSI if it does not start), a USART at [`BAUD`],
//! 8N1, received by DMA, the hardware TRNG (clocked at 48 MHz from the PLL, its seed and clock
//! errors recovered), on boards with a PHY the Ethernet ([`eth`]), on chips with one the CRYP
//! processor as the PRG's AES engine ([`crate::cryp`]), and the key page in a flash sector outside the image (memory.x stops
//! the image's flash below it). What differs between boards is a [`Variant`]:
//!
//! * [`Discovery407`]: STM32F4DISCOVERY (STM32F407), USART2 on PA2 (TX) / PA3 (RX), an 8 MHz
//!   crystal, the key page in sector 11;
//! * [`Nucleo439`]: NUCLEO-F439ZI (STM32F439), USART3 on PD8 (TX) / PD9 (RX), which the on-board
//!   ST-LINK carries to the host as a USB serial port, the ST-LINK's 8 MHz clock output as HSE
//!   (bypass), CRYP, the Ethernet MAC over RMII to the board's LAN8742A PHY ([`eth`]), the
//!   key page in sector 23.
//!
//! Registers as in ST's RM0090; every wait on the hardware is bounded.
#![allow(unsafe_code)] // memory-mapped registers and the key page

use core::marker::PhantomData;

use crate::{Board, BoardError, NoEthernet, clock};

pub mod eth;
mod usart;
pub use usart::{RING_LEN, Usart};

/// What differs between the STM32F4 boards.
pub trait Variant {
    /// The board's name, logged at start-up.
    const NAME: &'static str;
    /// The USART to the host: base address, its bit in RCC_APB1ENR.
    const USART: usize;
    /// The USART's bit in RCC_APB1ENR.
    const USART_EN: u32;
    /// The GPIO port of its pins: base address.
    const GPIO: usize;
    /// The port's bit in RCC_AHB1ENR.
    const GPIO_EN: u32;
    /// TX and RX pin numbers (alternate function 7).
    const PINS: [usize; 2];
    /// DMA1 stream and channel of the USART's reception (RM0090, table 42).
    const DMA_RX: (usize, u32);
    /// HSE from an external clock (bypass) rather than a crystal.
    const HSE_BYPASS: bool;
    /// The flash sector holding the key page (`board-keys.bin`).
    const KEY_PAGE: usize;
    /// Whether the chip has the CRYP processor (STM32F415/417/437/439).
    const CRYP: bool;
    /// The board's Ethernet ([`NoEthernet`] where no PHY is fitted).
    type Eth: smoltcp::phy::Device;
    /// Brings the Ethernet up (logged if it does not come up): the device and its station
    /// address.
    fn ethernet() -> Option<(Self::Eth, [u8; 6])>;
}

/// STM32F4DISCOVERY (STM32F407VG).
pub struct Discovery407;

impl Variant for Discovery407 {
    const NAME: &'static str = "stm32f407";
    const USART: usize = 0x4000_4400;
    const USART_EN: u32 = 1 << 17;
    const GPIO: usize = 0x4002_0000;
    const GPIO_EN: u32 = 1;
    const PINS: [usize; 2] = [2, 3];
    const DMA_RX: (usize, u32) = (5, 4);
    const HSE_BYPASS: bool = false;
    // Sector 11 (128 KiB).
    const KEY_PAGE: usize = 0x080E_0000;
    const CRYP: bool = false;
    // The DISCOVERY board has no PHY (its chip's MAC is unused).
    type Eth = NoEthernet;
    fn ethernet() -> Option<(NoEthernet, [u8; 6])> {
        None
    }
}

/// NUCLEO-F439ZI (STM32F439ZI).
pub struct Nucleo439;

impl Variant for Nucleo439 {
    const NAME: &'static str = "nucleo-f439zi";
    const USART: usize = 0x4000_4800;
    const USART_EN: u32 = 1 << 18;
    const GPIO: usize = 0x4002_0C00;
    const GPIO_EN: u32 = 1 << 3;
    const PINS: [usize; 2] = [8, 9];
    const DMA_RX: (usize, u32) = (1, 4);
    const HSE_BYPASS: bool = true;
    // Sector 23 (128 KiB), the last of the second bank.
    const KEY_PAGE: usize = 0x081E_0000;
    const CRYP: bool = true;
    type Eth = eth::Eth;
    fn ethernet() -> Option<(eth::Eth, [u8; 6])> {
        let mac = crate::dwmac::station_address(&unique_id());
        match eth::start(&NUCLEO_RMII, mac) {
            Ok(e) => Some((e, mac)),
            Err(e) => {
                defmt::warn!("no Ethernet: {}", e);
                None
            }
        }
    }
}

/// The NUCLEO-144 boards' RMII pins to their LAN8742A ((port, pin), port 0 = A; UM1974):
/// PA1 REF_CLK, PA2 MDIO, PA7 CRS_DV, PC1 MDC, PC4 RXD0, PC5 RXD1, PG11 TX_EN, PG13 TXD0, PB13
/// TXD1.
const NUCLEO_RMII: [(usize, usize); 9] =
    [(0, 1), (0, 2), (0, 7), (2, 1), (2, 4), (2, 5), (6, 11), (6, 13), (1, 13)];

/// The chip's 96-bit unique ID (RM0090, 39.1).
fn unique_id() -> [u8; 12] {
    let mut id = [0u8; 12];
    for (i, w) in id.chunks_mut(4).enumerate() {
        w.copy_from_slice(&rd(0x1FFF_7A10 + 4 * i).to_le_bytes());
    }
    id
}

/// Core clock.
pub const CORE_HZ: u32 = 168_000_000;
/// APB1 clock (the USARTs): core / 4.
const APB1_HZ: u32 = CORE_HZ / 4;
/// UART line speed (set the host side to match: `stty -F DEV 921600 raw -echo`).
pub const BAUD: u32 = 921_600;

const RCC: usize = 0x4002_3800;
const FLASH: usize = 0x4002_3C00;
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
pub struct Stm32f4<V> {
    /// The TRNG's previous value (continuous test).
    last: Option<u32>,
    /// Whether the HSE started (logged).
    pub hse: bool,
    /// Whether the CRYP processor passed its self-test and computes the PRG's keystream.
    pub cryp: bool,
    _variant: PhantomData<V>,
}

impl<V: Variant> Stm32f4<V> {
    /// Clocks the chip to 168 MHz and starts the clock, the USART, the TRNG and the CRYP.
    pub fn init(p: cortex_m::Peripherals) -> Self {
        let hse = clocks(V::HSE_BYPASS);
        clock::start(p.SYST, CORE_HZ);
        // The port's, the USART's and the RNG's clocks.
        modify(RCC + 0x30, 0, V::GPIO_EN);
        modify(RCC + 0x40, 0, V::USART_EN);
        modify(RCC + 0x34, 0, 1 << 6);
        // TX and RX: alternate function 7, RX pulled up, TX high speed.
        let [tx, rx] = V::PINS;
        for pin in [tx, rx] {
            modify(V::GPIO, 0b11 << (2 * pin), 0b10 << (2 * pin));
            let (afr, at) = if pin < 8 { (V::GPIO + 0x20, 4 * pin) } else { (V::GPIO + 0x24, 4 * (pin - 8)) };
            modify(afr, 0xf << at, 7 << at);
        }
        modify(V::GPIO + 0x0C, 0b11 << (2 * rx), 0b01 << (2 * rx));
        modify(V::GPIO + 0x08, 0b11 << (2 * tx), 0b10 << (2 * tx));
        // 16x oversampling, BRR = f_APB1 / baud; enable, TX, RX.
        wr(V::USART + 0x08, (APB1_HZ + BAUD / 2) / BAUD);
        wr(V::USART + 0x0C, (1 << 13) | (1 << 3) | (1 << 2));
        // TRNG on.
        wr(RNG, 1 << 2);
        let cryp = V::CRYP && start_cryp();
        let mut b = Stm32f4 { last: None, hse, cryp, _variant: PhantomData };
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

/// Called by the image's NMI handler: the clock security system saw the HSE clock fail. The chip
/// has switched to its internal oscillator and stopped the PLL, so the UART's line speed and the
/// TRNG's clock are wrong: the board stops dealing.
pub fn clock_failed() -> ! {
    // CSSC: clear the CSS interrupt flag, else the NMI fires again at once.
    modify(RCC + 0x0C, 0, 1 << 23);
    defmt::error!("the HSE clock failed (clock security system): the board stops dealing");
    loop {
        cortex_m::asm::wfi();
    }
}

/// Starts the CRYP processor and registers it as the PRG's block engine if it passes its
/// self-test (else the software AES stays, logged).
fn start_cryp() -> bool {
    crate::cryp::start();
    if crate::cryp::self_test(crate::cryp::cryp_engine) {
        ditto_core::prg::set_block_engine(Some(crate::cryp::cryp_engine));
        true
    } else {
        defmt::warn!("the CRYP processor failed its AES self-test: software AES");
        false
    }
}

/// HSE (8 MHz) or HSI (16 MHz) -> PLL input 2 MHz (RM0090 recommends it, for the least PLL
/// jitter) -> VCO 336 MHz -> SYSCLK 168 MHz, 48 MHz for the TRNG; AHB /1, APB1 /4, APB2 /2;
/// flash 5 wait states (read back before the switch: running at 168 MHz with fewer corrupts
/// instruction fetches) with caches and prefetch; the clock security system on when the HSE
/// runs (its failure is an NMI: [`clock_failed`]). Returns whether HSE started; stops (logged)
/// if the PLL does not lock or the flash does not take its wait states.
fn clocks(bypass: bool) -> bool {
    // HSEBYP (an external clock, not a crystal), then HSEON.
    if bypass {
        modify(RCC, 0, 1 << 18);
    }
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

impl<V: Variant> Board for Stm32f4<V> {
    const NAME: &'static str = V::NAME;
    type Uart = Usart<V>;
    type Eth = V::Eth;
    fn uart(&mut self) -> Usart<V> {
        Usart::start()
    }
    fn ethernet(&mut self) -> Option<(V::Eth, [u8; 6])> {
        V::ethernet()
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
        // SAFETY: the key page's flash sector is mapped and read-only while we run.
        unsafe { crate::key_page_at(V::KEY_PAGE) }
    }
    fn halt(&mut self) -> ! {
        loop {
            cortex_m::asm::wfi();
        }
    }
}
