//! An Ethernet PHY's standard registers (IEEE 802.3 clause 22, the same on every PHY reached
//! over MDIO) and what the link's mode is from them; the MDIO access itself is the board's
//! (`stm32f4::eth`).

/// Basic control: reset, speed, auto-negotiation, duplex.
pub const BMCR: u32 = 0;
/// Basic status: link.
pub const BMSR: u32 = 1;
/// PHY identifier, first half (all ones where no PHY answers).
pub const PHYID1: u32 = 2;
/// Auto-negotiation advertisement (what this end offers).
pub const ANAR: u32 = 4;
/// Auto-negotiation link partner ability (what the other end offered).
pub const ANLPAR: u32 = 5;

/// BMCR: software reset (self-clearing).
pub const BMCR_RESET: u16 = 1 << 15;
/// BMCR: 100 Mbit/s when auto-negotiation is off.
pub const BMCR_SPEED100: u16 = 1 << 13;
/// BMCR: auto-negotiation on.
pub const BMCR_ANEN: u16 = 1 << 12;
/// BMCR: restart auto-negotiation (self-clearing).
pub const BMCR_RESTART_AN: u16 = 1 << 9;
/// BMCR: full duplex when auto-negotiation is off.
pub const BMCR_FULL: u16 = 1 << 8;
/// BMSR: link up (latches low until read).
pub const BMSR_LINK: u16 = 1 << 2;

/// ANAR / ANLPAR technology ability bits (clause 28, annex 28B.2).
const TX_FD: u16 = 1 << 8;
const TX: u16 = 1 << 7;
const T10_FD: u16 = 1 << 6;

/// The link's speed and duplex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkMode {
    /// 100 Mbit/s (else 10).
    pub fast: bool,
    /// Full duplex (else half).
    pub full: bool,
}

/// The mode the link runs in: with auto-negotiation, the highest common ability in the priority
/// order of annex 28B.3 (100BASE-TX full, 100BASE-TX, 10BASE-T full, 10BASE-T, the last also
/// when nothing is in common: parallel detection's result on a 10 Mbit/s link); without it, as
/// forced in BMCR.
pub fn link_mode(bmcr: u16, anar: u16, anlpar: u16) -> LinkMode {
    if bmcr & BMCR_ANEN == 0 {
        return LinkMode { fast: bmcr & BMCR_SPEED100 != 0, full: bmcr & BMCR_FULL != 0 };
    }
    let both = anar & anlpar;
    let (fast, full) = if both & TX_FD != 0 {
        (true, true)
    } else if both & TX != 0 {
        (true, false)
    } else if both & T10_FD != 0 {
        (false, true)
    } else {
        (false, false)
    };
    LinkMode { fast, full }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Annex 28B.3's priority table, as (ANAR/ANLPAR bit, speed 100?, full duplex?), highest
    /// first (100BASE-T4, bit 9, is not a mode an RMII MAC can run and is left out).
    const PRIORITY: [(u16, bool, bool); 4] =
        [(8, true, true), (7, true, false), (6, false, true), (5, false, false)];

    #[test]
    fn the_negotiated_mode_is_the_best_both_ends_offer() {
        // Every combination of the four abilities at each end (and stray bits beside them).
        for ours in 0..16u16 {
            for theirs in 0..16u16 {
                let (anar, anlpar) = ((ours << 5) | 0x0001, (theirs << 5) | 0x4001);
                let want = PRIORITY.iter().find(|(bit, _, _)| anar & anlpar & (1 << bit) != 0).map_or(
                    LinkMode { fast: false, full: false },
                    |&(_, fast, full)| LinkMode { fast, full },
                );
                assert_eq!(link_mode(BMCR_ANEN, anar, anlpar), want, "ours {ours:04b}, theirs {theirs:04b}");
            }
        }
        // The NUCLEO's LAN8742A (all four) against a 100 Mbit/s full-duplex switch port.
        assert_eq!(link_mode(BMCR_ANEN, 0x01e1, 0x41e1), LinkMode { fast: true, full: true });
        // Against a 10 Mbit/s half-duplex hub.
        assert_eq!(link_mode(BMCR_ANEN, 0x01e1, 0x0021), LinkMode { fast: false, full: false });
    }

    #[test]
    fn without_auto_negotiation_the_forced_mode_holds() {
        for (bmcr, fast, full) in [
            (0, false, false),
            (BMCR_SPEED100, true, false),
            (BMCR_FULL, false, true),
            (BMCR_SPEED100 | BMCR_FULL, true, true),
        ] {
            // The advertisement registers do not matter then.
            assert_eq!(link_mode(bmcr, 0x01e1, 0x01e1), LinkMode { fast, full });
        }
    }
}
