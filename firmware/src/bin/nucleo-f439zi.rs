//! The dealer image for a NUCLEO-F439ZI (STM32F439): the serial protocol over USART3 (PD8 TX,
//! PD9 RX, the ST-LINK's USB serial port) and over TCP port 7300 on the board's Ethernet (its
//! LAN8742A PHY over RMII, an address by DHCP), the CRYP processor computes the PRG's AES
//! (after a self-test; software AES if it fails), the TRNG seeds the dealer at every start-up,
//! flash sector 23 holds the key page, and the defmt log goes over RTT to `probe-rs run` (see
//! firmware/README.md).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("nucleo-f439zi runs on Cortex-M: build it with --target thumbv7em-none-eabihf");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image {
    #![allow(unsafe_code)] // cortex-m-rt declares the HardFault and NMI handlers `unsafe fn`

    use cortex_m_rt::{ExceptionFrame, entry, exception};
    use defmt_rtt as _;
    use ditto_firmware::MasterSeed;
    use ditto_firmware::stm32f4::{Nucleo439, Stm32f4};
    // Panics are logged over defmt and stop the core (probe-rs reports them).
    use panic_probe as _;

    #[entry]
    fn main() -> ! {
        let Some(p) = cortex_m::Peripherals::take() else { panic!("peripherals taken twice") };
        let board = Stm32f4::<Nucleo439>::init(p);
        if !board.hse {
            defmt::warn!("no 8 MHz clock from the ST-LINK: running the PLL from the internal oscillator");
        }
        if board.cryp {
            defmt::info!("AES from the CRYP processor (self-test passed)");
        }
        // The real board always seeds from its TRNG, whatever features the build has.
        ditto_firmware::app::run(board, MasterSeed::Trng)
    }

    #[exception]
    unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
        panic!("hard fault")
    }

    /// The clock security system's alarm: the HSE clock failed.
    #[exception]
    unsafe fn NonMaskableInt() {
        ditto_firmware::stm32f4::clock_failed()
    }
}
