//! Ring conversions, 1 round each: upcast Z_2^32 -> Z_2^64 (exact) and downcast
//! Z_2^64 -> Z_2^32 with truncation by k (truncate-reduce; floor or one more, mod 2^32).
//!
//! Upcast (MSB trick, DESIGN.md §5). Admitted input x in [-2^30, 2^30] (2^30 itself works
//! too). Outside it the result is still right modulo 2^32 but off by a multiple of 2^32 with
//! probability (x' - 2^31) / 2^31 for x' = x + 2^30 mod 2^32 in [2^31, 2^32).
//! Open y = x + 2^30 + r mod 2^32; then x = y - r + 2^32 msb(r)(1 - msb(y)) - 2^30 exactly,
//! evaluated in Z_2^64. Correlation: r uniform in Z_2^32, shared in Z_2^32; r as an integer,
//! shared in Z_2^64; msb(r) shared modulo 2^32 (it is only used multiplied by 2^32).
//! P0: r0 (R, u32), R0 (RHigh, u64), m0 (Msb, reduced mod 2^32). P1: r1 (R, u32);
//! corrections per element: [R1 (8 bytes), m1 (4 bytes)].
//!
//! Downcast. (x >> k) mod 2^32 depends only on x mod 2^(32+k): open
//! y = x + r mod 2^(32+k) (ceil((32+k)/8) bytes per element on the wire) and take
//! (y >> k) - (r >> k) mod 2^32. Any x is admitted. Correlation: r uniform in Z_2^(32+k)
//! (shares drawn as u64 and reduced); r >> k shared in Z_2^32. P0: r0 (R, u64 reduced),
//! rh0 (RHigh, u32). P1: r1 (R); corrections: [rh1] (u32).

use embedded_io::Write;

use core::ops::Range;

use crate::corr::{CHUNK, Corrections, DealerStreams, Streams, at, fill_or_read, put_ring};
use crate::prg::Purpose;
use crate::ring::check_len;
use crate::trunc::{deal_msb_mask, expand_msb_mask, masked_open};
use crate::{Error, Party, Ring};

/// Rounds of upcast and of downcast.
pub const ROUNDS: u32 = 1;
/// Largest downcast shift: 32 + k must fit in 64 bits.
pub const MAX_DOWNCAST_SHIFT: u32 = 32;
/// Admitted upcast input: x in [-2^UPCAST_BOUND_BITS, 2^UPCAST_BOUND_BITS).
pub const UPCAST_BOUND_BITS: u32 = 30;

/// P1 correction bytes of an upcast: r in Z_2^64 and msb(r) mod 2^32 (it only appears
/// multiplied by 2^32).
pub fn upcast_correction_bytes(len: u32) -> u64 {
    12 * u64::from(len)
}

/// Online bytes per party of an upcast: y in Z_2^32.
pub fn upcast_online_bytes(len: u32) -> u64 {
    4 * u64::from(len)
}

/// P1 correction bytes of a downcast: r >> k in Z_2^32.
pub fn downcast_correction_bytes(len: u32) -> u64 {
    4 * u64::from(len)
}

/// Bytes per element of the downcast opening: ceil((32 + k) / 8).
pub const fn downcast_open_width(shift: u8) -> usize {
    (32 + shift as usize).div_ceil(8)
}

/// Online bytes per party of a downcast.
pub fn downcast_online_bytes(len: u32, shift: u8) -> u64 {
    u64::from(len) * downcast_open_width(shift) as u64
}

/// Expands a party's upcast mask shares: r (Z_2^32), r as integer and msb(r) (Z_2^64).
pub fn expand_upcast(
    s: &Streams<'_>,
    step: u32,
    corr: &mut Corrections<'_>,
    r: &mut [u32],
    r_big: &mut [u64],
    m: &mut [u64],
) -> Result<(), Error> {
    expand_msb_mask(s, step, 32, corr, r, r_big, m)
}

/// Dealer: P1's corrections [r - R0 (Z_2^64), msb(r) - m0 (mod 2^32)] per element.
pub fn deal_upcast<W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    deal_msb_mask::<u32, u64, W>(d, step, units, u64::from, 32, w)
}

/// Online: this party's upcast message y_i = x_i + r_i (+ 2^30 for P0) in Z_2^32.
pub fn upcast_a_open(party: Party, x: &[u32], r: &[u32], y: &mut [u32]) -> Result<(), Error> {
    masked_open(party, x, r, y)
}

/// Online: z_i = [P0](y - 2^30) - R_i + 2^32 (1 - msb(y)) m_i in Z_2^64, from the opened y.
pub fn upcast_a_finish(
    party: Party,
    y: &[u32],
    r_big: &[u64],
    m: &[u64],
    z: &mut [u64],
) -> Result<(), Error> {
    for (what, l) in [("upcast r", r_big.len()), ("upcast msb", m.len()), ("upcast output", z.len())] {
        check_len(what, y.len(), l)?;
    }
    for i in 0..y.len() {
        let mut v = r_big[i].wrapping_neg();
        if y[i].msb() == 0 {
            v = v.wrapping_add(m[i] << 32);
        }
        if party.is_p0() {
            v = v.wrapping_add(u64::from(y[i])).wrapping_sub(1 << UPCAST_BOUND_BITS);
        }
        z[i] = v;
    }
    Ok(())
}

fn width_mask(k: u32) -> u64 {
    u64::low_mask(32 + k)
}

/// Expands a party's downcast mask shares: r (Z_2^(32+k), held in u64) and r >> k (Z_2^32).
pub fn expand_downcast(
    s: &Streams<'_>,
    step: u32,
    k: u32,
    corr: &mut Corrections<'_>,
    r: &mut [u64],
    rh: &mut [u32],
) -> Result<(), Error> {
    check_len("downcast r>>k", r.len(), rh.len())?;
    s.prg(step, Purpose::R).fill_ring(r);
    let mask = width_mask(k);
    r.iter_mut().for_each(|v| *v &= mask);
    fill_or_read(s.party, || s.prg(step, Purpose::RHigh), corr, rh)
}

/// Dealer: P1's corrections ((r0 + r1 mod 2^(32+k)) >> k) - rh0 in Z_2^32.
pub fn deal_downcast<W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    units: Range<usize>,
    k: u32,
    w: &mut W,
) -> Result<(), Error> {
    let s = units.start;
    let mut r0 = at::<u64>(d.p0.prg(step, Purpose::R), s);
    let mut r1 = at::<u64>(d.p1.prg(step, Purpose::R), s);
    let mut h0 = at::<u32>(d.p0.prg(step, Purpose::RHigh), s);
    let (mut x0, mut x1, mut y0) = ([0u64; CHUNK], [0u64; CHUNK], [0u32; CHUNK]);
    let mask = width_mask(k);
    for start in units.clone().step_by(CHUNK) {
        let n = CHUNK.min(units.end - start);
        r0.fill_ring(&mut x0[..n]);
        r1.fill_ring(&mut x1[..n]);
        h0.fill_ring(&mut y0[..n]);
        for i in 0..n {
            let r = x0[i].wrapping_add(x1[i]) & mask;
            y0[i] = u32::from_u64(r >> k).wrapping_sub(y0[i]);
        }
        put_ring(w, &y0[..n])?;
    }
    Ok(())
}

/// Online: this party's downcast message y_i = x_i + r_i mod 2^(32+k).
pub fn downcast_a_open(k: u32, x: &[u64], r: &[u64], y: &mut [u64]) -> Result<(), Error> {
    check_len("downcast mask", x.len(), r.len())?;
    check_len("downcast output", x.len(), y.len())?;
    let mask = width_mask(k);
    for i in 0..x.len() {
        y[i] = x[i].wrapping_add(r[i]) & mask;
    }
    Ok(())
}

/// Online: z_i = [P0](y >> k) - rh_i mod 2^32, from y opened mod 2^(32+k).
pub fn downcast_a_finish(party: Party, k: u32, y: &[u64], rh: &[u32], z: &mut [u32]) -> Result<(), Error> {
    check_len("downcast r>>k", y.len(), rh.len())?;
    check_len("downcast output", y.len(), z.len())?;
    let mask = width_mask(k);
    for i in 0..y.len() {
        let mut v = rh[i].wrapping_neg();
        if party.is_p0() {
            v = v.wrapping_add(u32::from_u64((y[i] & mask) >> k));
        }
        z[i] = v;
    }
    Ok(())
}

/// Packs downcast openings (each < 2^(32+k)) into `downcast_open_width(k)` bytes apiece.
pub fn pack_open(k: u8, y: &[u64], out: &mut [u8]) -> Result<(), Error> {
    let w = downcast_open_width(k);
    check_len("packed downcast opening", y.len() * w, out.len())?;
    for (v, o) in y.iter().zip(out.chunks_exact_mut(w)) {
        o.copy_from_slice(&v.to_le_bytes()[..w]);
    }
    Ok(())
}

/// Unpacks downcast openings (high bits beyond 32 + k are cleared).
pub fn unpack_open(k: u8, bytes: &[u8], y: &mut [u64]) -> Result<(), Error> {
    let w = downcast_open_width(k);
    check_len("packed downcast opening", y.len() * w, bytes.len())?;
    let mask = width_mask(u32::from(k));
    for (v, b) in y.iter_mut().zip(bytes.chunks_exact(w)) {
        let mut full = [0u8; 8];
        full[..w].copy_from_slice(b);
        *v = u64::from_le_bytes(full) & mask;
    }
    Ok(())
}
