//! The rings Z_2^l used for shares: `u16`, `u32` and `u64` with wrapping arithmetic.
//!
//! Values are stored unsigned; the signed interpretation (two's complement) is
//! [`Ring::to_i64`]. Lifting moves a value of a small ring into a large one (zero- or
//! sign-extended); reducing keeps the low bits.

use core::fmt::Debug;

/// Identifies a ring on the wire and in plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RingId {
    /// Z_2^32: linear layers.
    Z32,
    /// Z_2^64: non-linear layers.
    Z64,
}

impl RingId {
    /// Ring width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            RingId::Z32 => 32,
            RingId::Z64 => 64,
        }
    }

    /// Bytes per element on the wire.
    pub const fn bytes(self) -> usize {
        match self {
            RingId::Z32 => 4,
            RingId::Z64 => 8,
        }
    }
}

/// A ring Z_2^l of machine words with wrapping arithmetic.
pub trait Ring:
    Copy + Default + Eq + Ord + Debug + Send + Sync + core::hash::Hash + bytemuck::Pod + 'static
{
    /// l, the ring width in bits.
    const BITS: u32;
    /// Bytes per element on the wire (little-endian).
    const BYTES: usize;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The ring id, where the ring is one the plan knows.
    const ID: Option<RingId>;

    /// x + y mod 2^l.
    fn add(self, y: Self) -> Self;
    /// x - y mod 2^l.
    fn sub(self, y: Self) -> Self;
    /// x * y mod 2^l.
    fn mul(self, y: Self) -> Self;
    /// -x mod 2^l.
    fn neg(self) -> Self;
    /// Logical right shift (k < l).
    fn shr(self, k: u32) -> Self;
    /// Left shift mod 2^l (k < l).
    fn shl(self, k: u32) -> Self;
    /// Bitwise and.
    fn and(self, y: Self) -> Self;
    /// Bitwise xor.
    fn xor(self, y: Self) -> Self;
    /// The low l bits of `v`.
    fn from_u64(v: u64) -> Self;
    /// The value as an unsigned 64-bit integer.
    fn to_u64(self) -> u64;
    /// Two's-complement signed interpretation.
    fn to_i64(self) -> i64;
    /// The low l bits of a signed value.
    fn from_i64(v: i64) -> Self {
        Self::from_u64(v.cast_unsigned())
    }
    /// Reads one element from `BYTES` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
    /// Writes one element as `BYTES` little-endian bytes.
    fn write_le(self, out: &mut [u8]);

    /// The most significant bit (0 or 1): the sign of the signed interpretation.
    fn msb(self) -> u32 {
        u32::from(self.shr(Self::BITS - 1) == Self::ONE)
    }
    /// 2^k mod 2^l (0 when k >= l).
    fn pow2(k: u32) -> Self {
        if k >= Self::BITS { Self::ZERO } else { Self::ONE.shl(k) }
    }
    /// The mask 2^k - 1 (all ones when k >= l).
    fn low_mask(k: u32) -> Self {
        Self::pow2(k).sub(Self::ONE)
    }
    /// The low k bits (x mod 2^k).
    fn low_bits(self, k: u32) -> Self {
        if k >= Self::BITS { self } else { self.and(Self::low_mask(k)) }
    }
    /// Bit i (0 or 1).
    fn bit(self, i: u32) -> u64 {
        self.shr(i).to_u64() & 1
    }
    /// 0 or 1 as a ring element.
    fn from_bit(b: u64) -> Self {
        Self::from_u64(b & 1)
    }
}

macro_rules! impl_ring {
    ($t:ty, $id:expr) => {
        impl Ring for $t {
            const BITS: u32 = <$t>::BITS;
            const BYTES: usize = core::mem::size_of::<$t>();
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const ID: Option<RingId> = $id;

            #[inline(always)]
            fn add(self, y: Self) -> Self {
                self.wrapping_add(y)
            }
            #[inline(always)]
            fn sub(self, y: Self) -> Self {
                self.wrapping_sub(y)
            }
            #[inline(always)]
            fn mul(self, y: Self) -> Self {
                self.wrapping_mul(y)
            }
            #[inline(always)]
            fn neg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            fn shr(self, k: u32) -> Self {
                self >> k
            }
            #[inline(always)]
            fn shl(self, k: u32) -> Self {
                self << k
            }
            #[inline(always)]
            fn and(self, y: Self) -> Self {
                self & y
            }
            #[inline(always)]
            fn xor(self, y: Self) -> Self {
                self ^ y
            }
            #[inline(always)]
            #[allow(clippy::cast_possible_truncation, trivial_numeric_casts)] // reducing mod 2^l
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            #[inline(always)]
            #[allow(clippy::useless_conversion)]
            fn to_u64(self) -> u64 {
                u64::from(self)
            }
            #[inline(always)]
            #[allow(clippy::useless_conversion)]
            fn to_i64(self) -> i64 {
                i64::from(self.cast_signed())
            }
            #[inline(always)]
            fn from_le(bytes: &[u8]) -> Self {
                let mut b = [0u8; core::mem::size_of::<$t>()];
                b.copy_from_slice(&bytes[..core::mem::size_of::<$t>()]);
                <$t>::from_le_bytes(b)
            }
            #[inline(always)]
            fn write_le(self, out: &mut [u8]) {
                out[..core::mem::size_of::<$t>()].copy_from_slice(&self.to_le_bytes());
            }
        }
    };
}

impl_ring!(u16, None);
impl_ring!(u32, Some(RingId::Z32));
impl_ring!(u64, Some(RingId::Z64));

/// Zero-extends a value of a small ring into a larger one (the unsigned integer is kept).
pub fn lift<S: Ring, L: Ring>(x: S) -> L {
    debug_assert!(S::BITS <= L::BITS);
    L::from_u64(x.to_u64())
}

/// Sign-extends a value of a small ring into a larger one (the signed integer is kept).
pub fn lift_signed<S: Ring, L: Ring>(x: S) -> L {
    debug_assert!(S::BITS <= L::BITS);
    L::from_i64(x.to_i64())
}

/// Reduces a value of a large ring into a smaller one (keeps the low bits).
pub fn reduce<L: Ring, S: Ring>(x: L) -> S {
    debug_assert!(S::BITS <= L::BITS);
    S::from_u64(x.to_u64())
}

/// Writes `xs` as little-endian ring elements into `out` (exactly `xs.len() * R::BYTES` bytes).
pub fn encode_slice<R: Ring>(xs: &[R], out: &mut [u8]) -> Result<(), crate::Error> {
    check_len("encoded ring slice", xs.len() * R::BYTES, out.len())?;
    for (x, o) in xs.iter().zip(out.chunks_exact_mut(R::BYTES)) {
        x.write_le(o);
    }
    Ok(())
}

/// Reads little-endian ring elements from `bytes` (exactly `out.len() * R::BYTES` bytes).
pub fn decode_slice<R: Ring>(bytes: &[u8], out: &mut [R]) -> Result<(), crate::Error> {
    check_len("encoded ring slice", out.len() * R::BYTES, bytes.len())?;
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(R::BYTES)) {
        *o = R::from_le(b);
    }
    Ok(())
}

/// `Error::Length` unless `got == expected`.
pub fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), crate::Error> {
    if expected == got { Ok(()) } else { Err(crate::Error::Length { what, expected, got }) }
}

/// out[i] = a[i] + b[i]: reconstructs an opened value from the two parties' messages.
pub fn add_into<R: Ring>(a: &[R], b: &[R], out: &mut [R]) -> Result<(), crate::Error> {
    check_len("add operand", a.len(), b.len())?;
    check_len("add output", a.len(), out.len())?;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x.add(*y);
    }
    Ok(())
}
