//! The dealer appliance image for Arm's MPS2 AN386 (Cortex-M4F) as QEMU models it: the CMSDK
//! UART0 carries the serial protocol of `ditto_dealer::board`, semihosting carries the log and
//! the exit status (a panic or fault exits QEMU with a failure instead of hanging).
//!
//! QEMU has no entropy source, so the image needs the `qemu-test-seed` feature (fixed, test-only
//! seeds and keys, announced at start-up); without it the image refuses to deal.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ditto-dealer-fw runs on Cortex-M: build it with --target thumbv7em-none-eabihf");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image {
    #![allow(unsafe_code)] // the UART's memory-mapped registers

    use core::cell::RefCell;
    use core::convert::Infallible;

    // The critical section implementation (single core) that semihosting needs.
    use cortex_m as _;
    use cortex_m_rt::{ExceptionFrame, entry, exception};
    use cortex_m_semihosting::{debug, hprintln};
    use ditto_dealer::keys::{DealerSeeds, PartyKey};
    use ditto_dealer::stream::scratch_len;

    /// CMSDK UART0: DATA +0x0, STATE +0x4 (bit 0 TX full, bit 1 RX full), CTRL +0x8, BAUDDIV +0x10.
    const UART0: usize = 0x4000_4000;

    struct Uart;

    impl Uart {
        fn reg(off: usize) -> *mut u32 {
            (UART0 + off) as *mut u32
        }
        fn init() -> Self {
            // SAFETY: UART0's BAUDDIV and CTRL registers on this board; nothing else uses them.
            unsafe {
                core::ptr::write_volatile(Self::reg(0x10), 16);
                core::ptr::write_volatile(Self::reg(0x8), 0b11);
            }
            Uart
        }
        fn state() -> u32 {
            // SAFETY: reading UART0's STATE register has no side effect.
            unsafe { core::ptr::read_volatile(Self::reg(0x4)) }
        }
    }

    impl embedded_io::ErrorType for Uart {
        type Error = Infallible;
    }

    impl embedded_io::Read for Uart {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
            let mut n = 0;
            while n < buf.len() {
                if Self::state() & 2 == 0 {
                    if n > 0 {
                        break;
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

    impl embedded_io::Write for Uart {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            for &b in buf {
                while Self::state() & 1 != 0 {}
                // SAFETY: writing DATA sends a byte; TX full was just seen clear.
                unsafe { core::ptr::write_volatile(Self::reg(0x0), u32::from(b)) };
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    const SCRATCH: usize = scratch_len(ditto_dealer::DEFAULT_CHUNK);

    /// Stack bytes painted below the entry frame to measure the high-water mark.
    const PAINT: usize = 96 * 1024;
    const PATTERN: u32 = 0xDEAD_BEEF;

    unsafe extern "C" {
        /// Top of the stack (cortex-m-rt's linker script).
        static _stack_start: u32;
    }

    /// Paints the stack below the current frame; returns the painted region's bottom.
    #[inline(never)]
    fn paint_stack() -> usize {
        let sp = cortex_m::register::msp::read() as usize;
        let bottom = sp - PAINT;
        for a in (bottom..sp - 1024).step_by(4) {
            // SAFETY: unused stack memory below the live frames (1 KiB margin), word aligned.
            unsafe { core::ptr::write_volatile(a as *mut u32, PATTERN) };
        }
        bottom
    }

    /// Deepest stack use so far, in bytes from the top of the stack.
    fn stack_high_water(bottom: usize) -> usize {
        // Only the address of the linker symbol is taken.
        let top = core::ptr::addr_of!(_stack_start) as usize;
        let mut a = bottom;
        // SAFETY: reads of the painted region, word aligned, below the live frames.
        while a < top && unsafe { core::ptr::read_volatile(a as *const u32) } == PATTERN {
            a += 4;
        }
        top - a
    }

    /// The dealer's seeds and the parties' keys.
    #[cfg(feature = "qemu-test-seed")]
    fn provisioning() -> (DealerSeeds, [PartyKey; 2]) {
        hprintln!("ditto dealer firmware: TEST SEEDS (qemu-test-seed), not for real use");
        (ditto_firmware::test_provisioning::seeds(), ditto_firmware::test_provisioning::keys())
    }

    /// The dealer's seeds and the parties' keys: this board has no entropy source to draw them.
    #[cfg(not(feature = "qemu-test-seed"))]
    fn provisioning() -> (DealerSeeds, [PartyKey; 2]) {
        hprintln!("ditto dealer firmware: this board has no entropy source; build with qemu-test-seed");
        fail()
    }

    fn fail() -> ! {
        debug::exit(debug::EXIT_FAILURE);
        #[allow(clippy::empty_loop)]
        loop {}
    }

    #[entry]
    fn main() -> ! {
        let (seeds, keys) = provisioning();
        let link = RefCell::new(Uart::init());
        let mut scratch = [0u8; SCRATCH];
        let bottom = paint_stack();
        hprintln!("ditto dealer firmware: serving on UART0");
        loop {
            match ditto_dealer::board::serve(&link, &seeds, &keys, &mut scratch) {
                Ok(()) => hprintln!("request served; stack high-water {} bytes", stack_high_water(bottom)),
                Err(e) => hprintln!("request failed: {}", e),
            }
        }
    }

    #[exception]
    unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
        hprintln!("hard fault");
        fail()
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        hprintln!("panic: {}", info);
        fail()
    }
}
