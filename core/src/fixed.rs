//! Dyadic fixed point: a real x is stored as the ring element round(x * 2^f), read back as
//! signed(v) * 2^-f. Encoding rounds to nearest (ties away from zero) and refuses values the
//! ring cannot hold instead of wrapping.

use crate::{Error, Ring};

/// 2^k as f64 (exact for every k this crate uses).
fn pow2f(k: i32) -> f64 {
    libm::ldexp(1.0, k)
}

/// The largest fractional-bit count accepted for a ring: one integer bit must remain besides
/// the sign.
pub const fn max_frac<R: Ring>() -> u32 {
    R::BITS - 2
}

fn check_frac<R: Ring>(frac: u32) -> Result<i32, Error> {
    if frac > max_frac::<R>() {
        return Err(Error::BadScale { bits: R::BITS, frac });
    }
    // frac <= 62 here, so the cast is lossless.
    Ok(i32::try_from(frac).unwrap_or(i32::MAX))
}

/// Encodes `x` with `frac` fractional bits: round(x * 2^frac) as a ring element.
///
/// Errors: `FixedNotFinite` for NaN/inf, `FixedOutOfRange` when the rounded integer is
/// outside [-2^(l-1), 2^(l-1)), `BadScale` when `frac > l - 2`.
pub fn encode<R: Ring>(x: f64, frac: u32) -> Result<R, Error> {
    let f = check_frac::<R>(frac)?;
    if !x.is_finite() {
        return Err(Error::FixedNotFinite);
    }
    let v = libm::round(x * pow2f(f));
    let half = pow2f(i32::try_from(R::BITS - 1).unwrap_or(63));
    if v < -half || v >= half {
        return Err(Error::FixedOutOfRange { bits: R::BITS, frac });
    }
    // |v| <= 2^63 and v is an integer: the conversion is exact.
    #[allow(clippy::cast_possible_truncation)]
    let i = v as i64;
    Ok(R::from_i64(i))
}

/// Encodes `x` like [`encode`], additionally requiring |round(x * 2^frac)| < 2^bound_bits
/// (the admitted range of a protocol, e.g. 2^(l-2) for truncation).
pub fn encode_bounded<R: Ring>(x: f64, frac: u32, bound_bits: u32) -> Result<R, Error> {
    let v = encode::<R>(x, frac)?;
    let lim = pow2f(i32::try_from(bound_bits).unwrap_or(i32::MAX));
    #[allow(clippy::cast_precision_loss)]
    let s = v.to_i64() as f64;
    if s >= lim || s <= -lim {
        return Err(Error::FixedOutOfRange { bits: bound_bits + 1, frac });
    }
    Ok(v)
}

/// Encodes an f32 (see [`encode`]).
pub fn encode_f32<R: Ring>(x: f32, frac: u32) -> Result<R, Error> {
    encode(f64::from(x), frac)
}

/// Decodes a ring element with `frac` fractional bits to the nearest f64.
pub fn decode<R: Ring>(v: R, frac: u32) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let s = v.to_i64() as f64;
    s * pow2f(-i32::try_from(frac).unwrap_or(i32::MAX))
}

/// Decodes to f32.
pub fn decode_f32<R: Ring>(v: R, frac: u32) -> f32 {
    #[allow(clippy::cast_possible_truncation)]
    let d = decode(v, frac) as f32;
    d
}

/// Encodes a slice; stops at the first value that does not fit.
pub fn encode_slice<R: Ring>(xs: &[f64], frac: u32, out: &mut [R]) -> Result<(), Error> {
    crate::ring::check_len("fixed-point output", xs.len(), out.len())?;
    for (o, x) in out.iter_mut().zip(xs) {
        *o = encode(*x, frac)?;
    }
    Ok(())
}
