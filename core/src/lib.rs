//! ditto-core: the `no_std` heart of ditto.
//!
//! Everything here is synchronous, I/O-free (bytes move through `embedded-io` traits or
//! caller-provided slices) and needs no allocator:
//!
//! * [`ring`]: the rings Z_2^16, Z_2^32, Z_2^64 and lifting/reducing between them;
//! * [`fixed`]: dyadic fixed-point encoding (value = integer * 2^-f);
//! * [`prg`]: seeds, session ids and the seekable AES-128-CTR PRG with domain separation;
//! * [`plan`]: plan steps and the stable plan hash;
//! * [`corr`]: how each party expands its correlations (P0 from its seed alone, P1 from its
//!   seed plus the dealer's corrections) and the reference dealer formulas;
//! * [`frame`]: the length-prefixed, checksummed frames the dealer streams;
//! * the protocol families, each with its correlation, dealer formula, party-local halves and
//!   cost constants: [`beaver`] (mul, square, matmul), [`trunc`], [`convert`] (upcast,
//!   downcast), [`compare`] (sign bit, B2A), on top of [`bits`] (bit-sliced AND gates), and
//!   [`radix`] (the sign bit in 4 rounds, with an optional selection), [`fuse`] (a truncation
//!   and the products of its output in one round), [`chain`] (a conversion and a truncation in
//!   one round).
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod beaver;
pub mod bits;
pub mod center;
pub mod chain;
pub mod compare;
pub mod convert;
pub mod corr;
pub mod count;
pub mod deal;
mod error;
pub mod fixed;
pub mod frame;
pub mod fuse;
pub mod plan;
pub mod prg;
pub mod radix;
pub mod ring;
pub mod rows;
pub mod trunc;

pub use error::Error;
pub use rand_core;
pub use ring::Ring;

/// Which of the two computing parties runs a party-local half.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Party {
    /// P0: expands all of its correlations from its 16-byte seed.
    P0,
    /// P1: expands from its seed plus the dealer's correction stream.
    P1,
}

impl Party {
    /// 0 for P0, 1 for P1.
    pub const fn index(self) -> usize {
        match self {
            Party::P0 => 0,
            Party::P1 => 1,
        }
    }

    /// The other party.
    pub const fn peer(self) -> Party {
        match self {
            Party::P0 => Party::P1,
            Party::P1 => Party::P0,
        }
    }

    /// True for P0, the party that adds public constants to its share.
    pub const fn is_p0(self) -> bool {
        matches!(self, Party::P0)
    }
}
