//! The dealer image for QEMU's `mps2-an386` (the CI board): UART0 carries the serial protocol,
//! semihosting the defmt log and the exit status (a panic or fault exits QEMU with a failure).
//! QEMU has no entropy source: the image deals only when built with the test-only
//! `qemu-test-seed` feature, and then says so at start-up.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("mps2-an386 runs on Cortex-M: build it with --target thumbv7em-none-eabihf");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image {
    #![allow(unsafe_code)] // cortex-m-rt declares the HardFault handler `unsafe fn`

    use cortex_m_rt::{ExceptionFrame, entry, exception};
    use defmt_semihosting as _;
    use ditto_firmware::MasterSeed;
    use ditto_firmware::mps2::{Mps2, exit_failure};

    #[cfg(feature = "qemu-test-seed")]
    const SEED: MasterSeed = MasterSeed::TestOnly(ditto_firmware::test_provisioning::MASTER);
    #[cfg(not(feature = "qemu-test-seed"))]
    const SEED: MasterSeed = MasterSeed::Trng;

    #[entry]
    fn main() -> ! {
        let Some(p) = cortex_m::Peripherals::take() else { exit_failure() };
        ditto_firmware::app::run(Mps2::init(p), SEED)
    }

    #[exception]
    unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
        defmt::error!("hard fault");
        exit_failure()
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        defmt::error!("panic: {}", defmt::Display2Format(info));
        exit_failure()
    }
}
