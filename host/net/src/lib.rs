//! ditto-net: arrives with its issue (see README.md); depends on ditto-core.
#![deny(missing_docs)]

pub use ditto_core;
