//! ditto-dealer: correlated-randomness generation for a plan.
//!
//! Streaming generation, sealing and the host dealer server arrive with the dealer issue;
//! the per-kind dealing formulas already live in `ditto_core::corr`.
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub use ditto_core::corr::deal_step;
