//! A monotonic microsecond clock from SysTick: a 1 kHz interrupt counts milliseconds, the
//! counter's current value gives the fraction. It also stamps the defmt log.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

/// Milliseconds since [`start`] (wraps after 49 days).
static MS: AtomicU32 = AtomicU32::new(0);
/// SysTick ticks per microsecond.
static TICKS_PER_US: AtomicU32 = AtomicU32::new(1);

/// Starts the clock on a core running at `core_hz` (a multiple of 1 MHz).
pub fn start(mut syst: SYST, core_hz: u32) {
    TICKS_PER_US.store(core_hz / 1_000_000, Ordering::Relaxed);
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(core_hz / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Microseconds since [`start`].
pub fn now_us() -> u64 {
    loop {
        let ms = MS.load(Ordering::Acquire);
        let left = SYST::get_current();
        if MS.load(Ordering::Acquire) == ms {
            let into = SYST::get_reload().saturating_sub(left) / TICKS_PER_US.load(Ordering::Relaxed).max(1);
            return u64::from(ms) * 1000 + u64::from(into);
        }
    }
}

#[exception]
fn SysTick() {
    MS.fetch_add(1, Ordering::Release);
}

defmt::timestamp!("{=u64:us}", now_us());
