//! ditto-firmware: the dealer appliance for Cortex-M boards.
//!
//! The board binary (UART, TRNG, QEMU end-to-end test) arrives with the firmware issue; this
//! crate already proves that the no_std core links for thumbv7em-none-eabihf.
#![no_std]
#![deny(missing_docs)]

pub use ditto_core;
