//! ditto-firmware: the dealer appliance for Cortex-M boards.
//!
//! The board binary (`src/main.rs`) wires a UART and the board's entropy to
//! [`ditto_dealer::board::serve`], which answers a host's requests for sealed dealer streams.
//! This library holds what the host side shares with it: the test-only provisioning that the
//! QEMU image is built with.
#![no_std]
#![deny(missing_docs)]

pub use ditto_core;
pub use ditto_dealer;

/// TEST ONLY provisioning of the QEMU image (`qemu-test-seed` feature): QEMU's board has no
/// entropy source, so its dealer seeds and party keys are these fixed values, which the
/// end-to-end test also uses on the host to check the board's streams byte for byte.
pub mod test_provisioning {
    use ditto_core::prg::Seed;
    use ditto_dealer::keys::{DealerSeeds, PartyKey};

    /// Master seed (session seeds derive from it).
    pub const MASTER: [u8; 16] = *b"ditto-qemu-TEST!";
    /// Model-mask seed.
    pub const MODEL: [u8; 16] = *b"ditto-qemu-model";
    /// P0's and P1's keys.
    pub const KEYS: [[u8; 16]; 2] = [*b"ditto-qemu-key-0", *b"ditto-qemu-key-1"];

    /// The dealer seeds.
    pub fn seeds() -> DealerSeeds {
        DealerSeeds::new(Seed::from_bytes(MASTER), Seed::from_bytes(MODEL))
    }

    /// The party keys.
    pub fn keys() -> [PartyKey; 2] {
        [PartyKey::from_bytes(KEYS[0]), PartyKey::from_bytes(KEYS[1])]
    }
}
