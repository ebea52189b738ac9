//! The STM32F4's Ethernet MAC over RMII to the board's PHY (on the NUCLEO-F439ZI a LAN8742A at
//! MDIO address 0; any IEEE 802.3 PHY is found by scanning): clocks, pins, the MAC and its DMA
//! set up as RM0090 (section 33) describes, the descriptor rings in [`crate::dwmac`].
//!
//! * Bring-up ([`start`]): RMII selected in SYSCFG_PMC while the MAC's clocks are off, the MAC
//!   reset, the DMA's software reset (it completes only with the PHY's 50 MHz reference clock
//!   present: [`EthError::NoRefClock`] otherwise), MDC at HCLK/102 (1.6 MHz), the PHY reset and
//!   auto-negotiating, the station address, store-and-forward both ways, the rings' addresses,
//!   then transmitter, receiver and DMA on. Interrupts stay off: the board polls.
//! * The link is asked of the PHY at most every [`LINK_POLL_MS`] ms; when it comes up the MAC
//!   takes the negotiated speed and duplex (the best mode both ends advertise, IEEE 802.3 clause
//!   28), so a cable plugged in after start-up, or moved to another switch, just works.
//! * The errata sheet of these chips (ES0182 for the F405/407/415/417, ES0206 for the F42x/43x:
//!   "Successive write operations to the same register might not be fully taken into
//!   account") asks for MAC and DMA configuration writes to be read back, then written again
//!   after four clocks of the MAC (`set`).
use smoltcp::time::{Duration, Instant};

use super::{RCC, modify, rd, wr};
use crate::TakeOnce;
use crate::clock;
use crate::dwmac::{Dwmac, Mac, Rings};
use crate::phy::{
    ANAR, ANLPAR, BMCR, BMCR_ANEN, BMCR_RESET, BMCR_RESTART_AN, BMSR, BMSR_LINK, LinkMode, PHYID1, link_mode,
};

const ETH: usize = 0x4002_8000;
const MACCR: usize = ETH;
const MACFFR: usize = ETH + 0x04;
const MACMIIAR: usize = ETH + 0x10;
const MACMIIDR: usize = ETH + 0x14;
const MACA0HR: usize = ETH + 0x40;
const MACA0LR: usize = ETH + 0x44;
const DMABMR: usize = ETH + 0x1000;
const DMATPDR: usize = ETH + 0x1004;
const DMARPDR: usize = ETH + 0x1008;
const DMARDLAR: usize = ETH + 0x100C;
const DMATDLAR: usize = ETH + 0x1010;
const DMASR: usize = ETH + 0x1014;
const DMAOMR: usize = ETH + 0x1018;
const DMAIER: usize = ETH + 0x101C;
const SYSCFG_PMC: usize = 0x4001_3804;
/// GPIO port A; port n is 0x400 further per letter.
const GPIOA: usize = 0x4002_0000;

/// MACCR: fast Ethernet (100 Mbit/s), full duplex, transmitter and receiver enable.
const MACCR_FES: u32 = 1 << 14;
const MACCR_DM: u32 = 1 << 11;
const MACCR_TE: u32 = 1 << 3;
const MACCR_RE: u32 = 1 << 2;
/// MACMIIAR: clock range HCLK/102 (HCLK 150-168 MHz), write, busy.
const MII_CR: u32 = 0b100 << 2;
const MII_MW: u32 = 1 << 1;
const MII_MB: u32 = 1;
/// DMABMR: address-aligned beats, separate RX burst length (32 beats), fixed bursts, TX burst
/// length 32 beats; normal (not enhanced) descriptors, descriptor skip 0.
const DMABMR_SR: u32 = 1;
const DMABMR_ON: u32 = (1 << 25) | (1 << 23) | (32 << 17) | (1 << 16) | (32 << 8);
/// DMAOMR: receive and transmit store-and-forward, operate on a second frame; start
/// transmission and reception.
const DMAOMR_MODE: u32 = (1 << 25) | (1 << 21) | (1 << 2);
const DMAOMR_ST: u32 = 1 << 13;
const DMAOMR_SR: u32 = 1 << 1;
/// DMASR: fatal bus error (the DMA has stopped).
const DMASR_FBES: u32 = 1 << 13;

/// How often the PHY is asked for the link.
pub const LINK_POLL_MS: u64 = 500;
/// Longest wait for the DMA's reset, an MDIO access or the PHY's reset.
const WAIT_US: u64 = 500_000;

/// The rings (static: see [`crate::TakeOnce`]; in SRAM, which the DMA reaches).
static RINGS: TakeOnce<Rings> = TakeOnce::new(Rings::new());

/// Why the Ethernet could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EthError {
    /// The DMA's reset did not complete: no 50 MHz reference clock from the PHY (no PHY, not
    /// powered, or the REF_CLK pin not connected).
    NoRefClock,
    /// No PHY answered on MDIO at any address.
    NoPhy,
    /// The PHY did not come out of its reset.
    PhyReset,
    /// The Ethernet was brought up before (its rings are taken).
    Taken,
}

impl defmt::Format for EthError {
    fn format(&self, f: defmt::Formatter<'_>) {
        let why = match self {
            EthError::NoRefClock => "no 50 MHz reference clock from the PHY (the DMA reset did not complete)",
            EthError::NoPhy => "no PHY answers on MDIO",
            EthError::PhyReset => "the PHY did not come out of its reset",
            EthError::Taken => "brought up twice",
        };
        defmt::write!(f, "{=str}", why);
    }
}

fn waited(since: u64) -> bool {
    clock::now_us().saturating_sub(since) > WAIT_US
}

/// Waits until `reg & mask == 0`, at most [`WAIT_US`].
fn clear(reg: usize, mask: u32) -> bool {
    let since = clock::now_us();
    while rd(reg) & mask != 0 {
        if waited(since) {
            return false;
        }
    }
    true
}

/// A MAC or DMA configuration write, as the errata sheet asks: written, read back, written
/// again after at least four clocks of the MAC (10 us: four clocks at 10 Mbit/s are 1.6 us).
fn set(reg: usize, v: u32) {
    wr(reg, v);
    let _ = rd(reg);
    let since = clock::now_us();
    while clock::now_us().saturating_sub(since) < 10 {}
    wr(reg, v);
}

/// Turns on peripheral clocks `bits` in RCC register `reg` and reads it back: the errata's
/// workaround for a first access to the peripheral too soon after its clock is enabled.
fn enable(reg: usize, bits: u32) {
    modify(reg, 0, bits);
    let _ = rd(reg);
}

/// The MDIO bus to the PHY.
struct Mdio {
    phy: u32,
}

impl Mdio {
    fn read(&self, reg: u32) -> Option<u16> {
        if !clear(MACMIIAR, MII_MB) {
            return None;
        }
        wr(MACMIIAR, (self.phy << 11) | (reg << 6) | MII_CR | MII_MB);
        clear(MACMIIAR, MII_MB).then(|| rd(MACMIIDR)).and_then(|v| u16::try_from(v & 0xffff).ok())
    }

    fn write(&self, reg: u32, v: u16) -> bool {
        if !clear(MACMIIAR, MII_MB) {
            return false;
        }
        wr(MACMIIDR, u32::from(v));
        wr(MACMIIAR, (self.phy << 11) | (reg << 6) | MII_CR | MII_MW | MII_MB);
        clear(MACMIIAR, MII_MB)
    }

    /// The first address whose identifier reads as a PHY's (an empty address reads all ones).
    fn scan() -> Option<Mdio> {
        (0..32).map(|phy| Mdio { phy }).find(|m| m.read(PHYID1).is_some_and(|id| id != 0xffff && id != 0))
    }

    /// Resets the PHY and starts auto-negotiation (advertising what its straps allow).
    fn reset(&self) -> Result<(), EthError> {
        if !self.write(BMCR, BMCR_RESET) {
            return Err(EthError::PhyReset);
        }
        let since = clock::now_us();
        while self.read(BMCR).is_none_or(|c| c & BMCR_RESET != 0) {
            if waited(since) {
                return Err(EthError::PhyReset);
            }
        }
        if self.write(BMCR, BMCR_ANEN | BMCR_RESTART_AN) { Ok(()) } else { Err(EthError::PhyReset) }
    }

    /// Whether the link stayed up since the last look and whether it is up now (the status bit
    /// latches low: the first read says whether it went down meanwhile, the second is the
    /// present).
    fn link(&self) -> (bool, bool) {
        let up = |s: Option<u16>| s.is_some_and(|s| s & BMSR_LINK != 0);
        (up(self.read(BMSR)), up(self.read(BMSR)))
    }

    /// The link's speed and duplex ([`link_mode`]).
    fn mode(&self) -> LinkMode {
        let r = |reg| self.read(reg).unwrap_or(0);
        link_mode(r(BMCR), r(ANAR), r(ANLPAR))
    }
}

/// The chip's side of the device: poll demands, the PHY's link.
pub struct StmMac {
    mdio: Mdio,
    up: bool,
    next_poll: Instant,
    /// A fatal DMA bus error was logged.
    bus_error: bool,
}

impl Mac for StmMac {
    fn rx_demand(&self) {
        wr(DMARPDR, 0);
    }

    fn tx_demand(&self) {
        wr(DMATPDR, 0);
    }

    fn link_up(&mut self, now: Instant) -> bool {
        if now < self.next_poll {
            return self.up;
        }
        self.next_poll = now + Duration::from_millis(LINK_POLL_MS);
        if rd(DMASR) & DMASR_FBES != 0 && !self.bus_error {
            // Cannot happen with the rings in SRAM; the DMA stops, and only a restart helps.
            defmt::error!("ethernet: the DMA stopped on a bus error (restart the board)");
            self.bus_error = true;
        }
        // A link that went down and came back up between two looks (a cable moved to another
        // switch) may have a new mode: it is set up again.
        let (stayed, up) = self.mdio.link();
        if self.up && !stayed {
            defmt::warn!("ethernet: link down");
        }
        if up && !(self.up && stayed) {
            let LinkMode { fast, full } = self.mdio.mode();
            // Transmitter and receiver off while the mode changes, then on again.
            let off = rd(MACCR) & !(MACCR_FES | MACCR_DM | MACCR_TE | MACCR_RE);
            let mode = if fast { MACCR_FES } else { 0 } | if full { MACCR_DM } else { 0 };
            set(MACCR, off);
            set(MACCR, off | mode | MACCR_TE | MACCR_RE);
            defmt::info!(
                "ethernet: link up, {=str} Mbit/s {=str} duplex",
                if fast { "100" } else { "10" },
                if full { "full" } else { "half" }
            );
        }
        self.up = up;
        up
    }
}

/// The Ethernet device.
pub type Eth = Dwmac<StmMac>;

/// Brings up the MAC over RMII on `pins` ((port, pin): port 0 is A), AF11, with station
/// address `mac`.
pub fn start(pins: &[(usize, usize)], mac: [u8; 6]) -> Result<Eth, EthError> {
    // SYSCFG's clock; RMII selected while the MAC's clocks are off (RM0090, 9.2.3).
    enable(RCC + 0x44, 1 << 14);
    modify(RCC + 0x30, 0b111 << 25, 0);
    modify(SYSCFG_PMC, 0, 1 << 23);
    for &(port, pin) in pins {
        let gpio = GPIOA + 0x400 * port;
        enable(RCC + 0x30, 1 << port);
        // Alternate function 11, very high speed, push-pull, no pull.
        modify(gpio, 0b11 << (2 * pin), 0b10 << (2 * pin));
        modify(gpio + 0x08, 0, 0b11 << (2 * pin));
        modify(gpio + 0x0C, 0b11 << (2 * pin), 0);
        let (afr, at) = if pin < 8 { (gpio + 0x20, 4 * pin) } else { (gpio + 0x24, 4 * (pin - 8)) };
        modify(afr, 0xf << at, 11 << at);
    }
    // The MAC's, its transmitter's and receiver's clocks; the MAC reset.
    enable(RCC + 0x30, 0b111 << 25);
    modify(RCC + 0x10, 0, 1 << 25);
    modify(RCC + 0x10, 1 << 25, 0);
    // The DMA's software reset needs the PHY's reference clock to complete.
    wr(DMABMR, rd(DMABMR) | DMABMR_SR);
    if !clear(DMABMR, DMABMR_SR) {
        return Err(EthError::NoRefClock);
    }
    wr(MACMIIAR, MII_CR);
    let mdio = Mdio::scan().ok_or(EthError::NoPhy)?;
    mdio.reset()?;
    defmt::info!("ethernet: PHY at MDIO address {=u32}, auto-negotiating", mdio.phy);
    let rings = RINGS.take().ok_or(EthError::Taken)?;
    // Own unicast address and broadcast (the reset filter); the station address.
    set(MACFFR, 0);
    set(MACA0HR, (1 << 31) | u32::from(mac[4]) | (u32::from(mac[5]) << 8));
    set(MACA0LR, u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
    wr(DMAIER, 0);
    set(DMABMR, DMABMR_ON);
    let dev = Dwmac::new(StmMac { mdio, up: false, next_poll: Instant::ZERO, bus_error: false }, rings);
    let (rx, tx) = dev.lists();
    wr(DMARDLAR, rx);
    wr(DMATDLAR, tx);
    // 100 Mbit/s full duplex until the link says otherwise; transmitter and receiver on (the
    // MACCR's reserved bit 15 keeps its reset value), then the DMA.
    set(MACCR, rd(MACCR) | MACCR_FES | MACCR_DM | MACCR_TE | MACCR_RE);
    set(DMAOMR, DMAOMR_MODE);
    set(DMAOMR, DMAOMR_MODE | DMAOMR_ST | DMAOMR_SR);
    Ok(dev)
}
