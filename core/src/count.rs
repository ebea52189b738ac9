//! Work counters for the dealer's cost model (feature `count`, off in every shipped build):
//! AES-128 blocks of PRG keystream and the multiply-adds of matrix products, process-wide.
//! With the feature off the calls compile to nothing.

#[cfg(all(feature = "count", target_has_atomic = "64"))]
mod on {
    use core::sync::atomic::{AtomicU64, Ordering};
    pub static BLOCKS: AtomicU64 = AtomicU64::new(0);
    pub static MACS: AtomicU64 = AtomicU64::new(0);
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Work counted since the process started (all zero without the `count` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    /// AES-128 block encryptions of PRG keystream (16 bytes each), key derivations excluded.
    pub prg_blocks: u64,
    /// Ring multiply-adds of matrix products.
    pub macs: u64,
}

/// Counts `n` PRG blocks.
#[inline]
pub(crate) fn prg_blocks(n: u64) {
    #[cfg(all(feature = "count", target_has_atomic = "64"))]
    on::add(&on::BLOCKS, n);
    let _ = n;
}

/// Counts `n` multiply-adds.
#[inline]
pub(crate) fn macs(n: u64) {
    #[cfg(all(feature = "count", target_has_atomic = "64"))]
    on::add(&on::MACS, n);
    let _ = n;
}

/// The work counted so far.
pub fn work() -> Work {
    #[cfg(all(feature = "count", target_has_atomic = "64"))]
    return Work { prg_blocks: on::get(&on::BLOCKS), macs: on::get(&on::MACS) };
    #[allow(unreachable_code)]
    Work::default()
}
