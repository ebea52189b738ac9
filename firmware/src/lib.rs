//! ditto-firmware: the dealer appliance for Cortex-M boards.
//!
//! A board image is a short `main` (`src/bin/*.rs`) that initialises its [`Board`] and hands it
//! to `app::run`, which reads the key page, seeds the dealer from the board's TRNG and answers
//! a host's requests for sealed dealer streams over the UART and, on a board with Ethernet, over
//! TCP ([`ditto_dealer::board`]). Boards:
//!
//! * `mps2::Mps2`: QEMU's MPS2 AN386 (Cortex-M4F), the CI board, with its LAN9118 Ethernet. It
//!   has no entropy source, so it deals only when built with the test-only `qemu-test-seed`
//!   feature;
//! * `stm32f4::Stm32f4<Discovery407>`: an STM32F4DISCOVERY (STM32F407) at 168 MHz, USART2 (PA2
//!   TX, PA3 RX) and the hardware TRNG;
//! * `stm32f4::Stm32f4<Nucleo439>`: a NUCLEO-F439ZI (STM32F439) at 168 MHz, USART3 (PD8 TX, PD9
//!   RX, through the ST-LINK), its Ethernet (the MAC's DMA rings in [`dwmac`], the LAN8742A
//!   PHY over RMII), the TRNG and the CRYP processor as the PRG's AES ([`cryp`]).
//!
//! Logging is defmt: semihosting under QEMU, RTT through a debug probe (`probe-rs run`).
#![no_std]
#![deny(missing_docs)]

use ditto_core::prg::Seed;
use sha2::{Digest, Sha256};

pub use ditto_core;
pub use ditto_dealer;

#[cfg(target_os = "none")]
pub mod app;
#[cfg(target_os = "none")]
pub mod clock;
pub mod cryp;
pub mod dwmac;
#[cfg(target_os = "none")]
pub mod lan9118;
#[cfg(target_os = "none")]
pub mod link;
#[cfg(target_os = "none")]
pub mod mps2;
#[cfg(target_os = "none")]
pub mod net;
pub mod phy;
#[cfg(target_os = "none")]
pub mod stm32f4;

/// The key page mapped at `addr`.
///
/// # Safety
/// `addr` must map [`ditto_dealer::keys::Provisioning::PAGE_LEN`] readable bytes that nothing
/// writes while the program runs (flash, or RAM the emulator loaded).
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub(crate) unsafe fn key_page_at(addr: usize) -> &'static [u8] {
    // SAFETY: the caller's guarantee.
    unsafe { core::slice::from_raw_parts(addr as *const u8, ditto_dealer::keys::Provisioning::PAGE_LEN) }
}

/// A static that hands out one `&'static mut` to its value, once: large buffers live in
/// `.bss`, neither on the stack nor built at run time.
pub struct TakeOnce<T> {
    value: core::cell::UnsafeCell<T>,
    taken: core::sync::atomic::AtomicBool,
}

// SAFETY: the value is reachable only through the one `&mut` that `take` hands out.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    /// A static holding `value`.
    pub const fn new(value: T) -> Self {
        TakeOnce {
            value: core::cell::UnsafeCell::new(value),
            taken: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The value, the first time; `None` after.
    #[allow(unsafe_code)]
    #[allow(clippy::mut_from_ref)] // handed out once: the flag makes it the only reference
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, core::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag was clear, and is now set for good: no other reference exists or will.
        Some(unsafe { &mut *self.value.get() })
    }
}

/// What the dealer needs from a board.
pub trait Board {
    /// The board's name, logged at start-up.
    const NAME: &'static str;
    /// The UART to the host.
    type Uart: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady;
    /// The Ethernet controller ([`NoEthernet`] on boards without one).
    type Eth: smoltcp::phy::Device;
    /// Hands out the UART (called once).
    fn uart(&mut self) -> Self::Uart;
    /// Brings up the Ethernet controller, if the board has one that answers: the device and
    /// its station address (called once).
    fn ethernet(&mut self) -> Option<(Self::Eth, [u8; 6])>;
    /// Fills `out` from the board's hardware TRNG.
    fn entropy(&mut self, out: &mut [u8]) -> Result<(), BoardError>;
    /// Microseconds since start-up (monotonic).
    fn now_us() -> u64;
    /// The flash region holding the key page ([`ditto_dealer::keys::Provisioning`]).
    fn key_page(&self) -> &'static [u8];
    /// Stops for good after a fatal error (under QEMU: exits with a failure status).
    fn halt(&mut self) -> !;
}

/// The Ethernet of a board without one: no value exists.
pub enum NoEthernet {}

impl smoltcp::phy::Device for NoEthernet {
    type RxToken<'a> = NoToken;
    type TxToken<'a> = NoToken;
    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(NoToken, NoToken)> {
        match *self {}
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<NoToken> {
        match *self {}
    }
    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        match *self {}
    }
}

/// The tokens of [`NoEthernet`]: no value exists either.
pub enum NoToken {}

impl smoltcp::phy::RxToken for NoToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, _: F) -> R {
        match self {}
    }
}

impl smoltcp::phy::TxToken for NoToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _: usize, _: F) -> R {
        match self {}
    }
}

/// Longest wait for the next byte on a board's UART once a read has started: a host that
/// stops mid-request (killed, unplugged) fails the request instead of holding the board.
pub const BYTE_TIMEOUT_US: u64 = 2_000_000;
/// After a failed request the board drains its UART until the line has been idle this long,
/// then hunts for the next request's magic.
pub const DRAIN_IDLE_US: u64 = 50_000;

/// Why a UART read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartError {
    /// A byte was lost: the receiver was not emptied in time.
    Overrun,
    /// A byte arrived without its stop bit (wrong line speed, a break, a cable unplugged).
    Framing,
    /// The receiver saw noise on the line.
    Noise,
    /// A byte failed its parity check.
    Parity,
    /// No byte came within [`BYTE_TIMEOUT_US`].
    Timeout,
}

impl core::fmt::Display for UartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            UartError::Overrun => "UART receive overrun: a byte from the host was lost",
            UartError::Framing => "UART framing error: a byte without its stop bit (line speed? a break?)",
            UartError::Noise => "UART noise error on the line",
            UartError::Parity => "UART parity error",
            UartError::Timeout => "UART: the host sent nothing more in time",
        })
    }
}

impl core::error::Error for UartError {}

impl embedded_io::Error for UartError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            UartError::Timeout => embedded_io::ErrorKind::TimedOut,
            _ => embedded_io::ErrorKind::InvalidData,
        }
    }
}

/// A board failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardError {
    /// The board has no entropy source.
    NoEntropy,
    /// The TRNG reported a seed or clock error.
    EntropyFault,
    /// The TRNG produced no value in time.
    EntropyTimeout,
    /// The TRNG repeated its previous value (continuous test, FIPS 140-2).
    EntropyRepeat,
}

impl core::fmt::Display for BoardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BoardError::NoEntropy => "this board has no entropy source",
            BoardError::EntropyFault => "the TRNG reports a seed or clock error",
            BoardError::EntropyTimeout => "the TRNG produced no value in time",
            BoardError::EntropyRepeat => "the TRNG repeated a value (continuous test failed)",
        })
    }
}

/// Where the dealer's master seed comes from.
#[derive(Clone, Copy)]
pub enum MasterSeed {
    /// The board's TRNG, at every start-up.
    Trng,
    /// TEST ONLY: a fixed seed (the `qemu-test-seed` build of the QEMU image), announced at start-up.
    TestOnly([u8; 16]),
}

/// TRNG bytes hashed into one master seed: four times the seed's size, then SHA-256, so that
/// a source with as little as a quarter bit of entropy per bit still gives a full seed.
pub const TRNG_BYTES: usize = 64;

/// Draws the master seed: [`TRNG_BYTES`] from the board's TRNG conditioned with SHA-256, or the
/// test-only seed.
pub fn master_seed<B: Board>(board: &mut B, source: MasterSeed) -> Result<Seed, BoardError> {
    match source {
        MasterSeed::TestOnly(s) => Ok(Seed::from_bytes(s)),
        MasterSeed::Trng => {
            let mut raw = [0u8; TRNG_BYTES];
            board.entropy(&mut raw)?;
            let mut h = Sha256::digest(raw);
            raw.fill(0);
            let mut s = [0u8; 16];
            s.copy_from_slice(&h[..16]);
            h.fill(0);
            Ok(Seed::from_bytes(s))
        }
    }
}

/// The seed of the TCP/IP stack's own choices (initial sequence numbers, DHCP transaction
/// ids): SHA-256 of the master seed under its own label, so it changes with every master seed
/// (every boot) and says nothing about it or about the seeds derived from it.
pub fn network_seed(master: &Seed) -> u64 {
    let mut h = Sha256::new();
    h.update(b"ditto-firmware network stack seed");
    h.update(master.expose());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// A new master seed when the served-session set is full: fresh from the TRNG, or (test-only
/// seed) the SHA-256 of the current one, so a test image never repeats a master seed either.
pub fn next_master_seed<B: Board>(
    board: &mut B,
    source: MasterSeed,
    current: &ditto_dealer::keys::DealerSeeds,
) -> Result<Seed, BoardError> {
    match source {
        MasterSeed::Trng => master_seed(board, source),
        MasterSeed::TestOnly(_) => Ok(current.successor_test_master()),
    }
}

/// TEST ONLY provisioning for the QEMU image and the tests that check its streams: QEMU's board
/// has no entropy source, so the `qemu-test-seed` image uses [`MASTER`](test_provisioning::MASTER)
/// as its master seed. Keys and the model-mask seed come from the key page as on a real board;
/// the tests load [`page`](test_provisioning::page) there.
pub mod test_provisioning {
    use ditto_core::prg::Seed;
    use ditto_dealer::keys::{DealerSeeds, PartyKey, Provisioning, RelayKey};

    /// Master seed (session seeds derive from it).
    pub const MASTER: [u8; 16] = *b"ditto-qemu-TEST!";
    /// Model-mask seed of the tests' key page.
    pub const MODEL: [u8; 16] = *b"ditto-qemu-model";
    /// P0's and P1's keys in the tests' key page.
    pub const KEYS: [[u8; 16]; 2] = [*b"ditto-qemu-key-0", *b"ditto-qemu-key-1"];
    /// The relay key in the tests' key page.
    pub const RELAY: [u8; 16] = *b"ditto-qemu-relay";

    /// The dealer seeds of the test image with the tests' key page.
    pub fn seeds() -> DealerSeeds {
        DealerSeeds::new(Seed::from_bytes(MASTER), Seed::from_bytes(MODEL))
    }

    /// The party keys of the tests' key page.
    pub fn keys() -> [PartyKey; 2] {
        [PartyKey::from_bytes(KEYS[0]), PartyKey::from_bytes(KEYS[1])]
    }

    /// The relay key of the tests' key page.
    pub fn relay() -> RelayKey {
        RelayKey::from_bytes(RELAY)
    }

    /// The tests' key page.
    pub fn page() -> [u8; Provisioning::PAGE_LEN] {
        Provisioning { keys: keys(), model: Seed::from_bytes(MODEL), relay: relay() }.to_page()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Result<u8, BoardError>);
    struct NoUart;
    impl embedded_io::ErrorType for NoUart {
        type Error = core::convert::Infallible;
    }
    impl embedded_io::Read for NoUart {
        fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
            Ok(0)
        }
    }
    impl embedded_io::Write for NoUart {
        fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> {
            Ok(b.len())
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }
    impl embedded_io::ReadReady for NoUart {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(false)
        }
    }
    impl Board for Fake {
        const NAME: &'static str = "fake";
        type Uart = NoUart;
        type Eth = NoEthernet;
        fn uart(&mut self) -> Self::Uart {
            unreachable!()
        }
        fn ethernet(&mut self) -> Option<(NoEthernet, [u8; 6])> {
            None
        }
        fn entropy(&mut self, out: &mut [u8]) -> Result<(), BoardError> {
            out.fill(self.0?);
            Ok(())
        }
        fn now_us() -> u64 {
            0
        }
        fn key_page(&self) -> &'static [u8] {
            &[]
        }
        fn halt(&mut self) -> ! {
            unreachable!()
        }
    }

    #[test]
    fn the_network_seed_follows_the_master_seed_under_its_own_label() {
        let (a, b) = (Seed::from_bytes([1; 16]), Seed::from_bytes([2; 16]));
        // Two boots (two master seeds) never share it.
        assert_ne!(network_seed(&a), network_seed(&b));
        assert_eq!(network_seed(&a), network_seed(&Seed::from_bytes([1; 16])));
        // Bound to its label: not the plain hash of the master seed, nor its bytes.
        let plain = Sha256::digest(a.expose());
        assert_ne!(network_seed(&a).to_le_bytes()[..], plain[..8]);
        assert_ne!(network_seed(&a).to_le_bytes()[..], a.expose()[..8]);
    }

    #[test]
    fn a_take_once_static_is_handed_out_once() {
        static CELL: TakeOnce<[u8; 4]> = TakeOnce::new([1, 2, 3, 4]);
        let v = CELL.take().unwrap();
        v[0] = 9;
        assert_eq!(v, &[9, 2, 3, 4]);
        assert!(CELL.take().is_none());
    }

    #[test]
    fn master_seed_is_the_hashed_trng_output_or_the_declared_test_seed() {
        let s = master_seed(&mut Fake(Ok(7)), MasterSeed::Trng).unwrap();
        assert_eq!(s.expose()[..], Sha256::digest([7u8; TRNG_BYTES])[..16]);
        let e = master_seed(&mut Fake(Err(BoardError::EntropyRepeat)), MasterSeed::Trng);
        assert_eq!(e.err(), Some(BoardError::EntropyRepeat));
        // The test seed needs no entropy at all.
        let t = master_seed(&mut Fake(Err(BoardError::NoEntropy)), MasterSeed::TestOnly([9; 16]));
        assert_eq!(t.unwrap().expose(), &[9; 16]);
    }
}
