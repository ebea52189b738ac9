//! A ring conversion chained with a truncation in one round (DESIGN.md §5, round fusion): the
//! first step's output is "public minus a dealer-known mask", which is all the second needs.
//!
//! **Truncate, then downcast** (`TruncDowncastA`, Z_2^64 -> Z_2^32). The truncation by k1 opens
//! y = x + 2^62 + r and its output is t = Y - R_b with Y = (y >> k1) - 2^(62-k1) public and
//! R_1 = r >> k1, R_0 = R_1 - 2^(64-k1) msb(r) ([`crate::fuse`]). A downcast by k2 of t needs
//! t + (a mask) modulo 2^(32+k2) in the clear: Y is that value for the mask R_b, so the
//! downcast is (Y >> k2) - (R_b >> k2) mod 2^32, with no second opening. For k1 + k2 <= 32,
//! R_0 = R_1 modulo 2^(32+k2), so one share of (r >> (k1 + k2)) mod 2^32 serves both b, and the
//! truncation's own shares are not needed at all. The result is floor(t / 2^k2) or one more,
//! t being floor(x / 2^k1) or one more: what the two steps give apart. Correlation: r (R, u64,
//! both); (r >> (k1 + k2)) mod 2^32 (RHigh, u32, P0; P1 correction: 4 bytes per element).
//!
//! *Narrow* (`TruncDowncastNarrowA`): the same with 64 replaced by `open` bits, for an x in
//! [-2^(open-2), 2^(open-2)) whose shares are right modulo 2^open only. y = x + 2^(open-2) + r
//! mod 2^open travels in ceil(open/8) bytes and Y = (y >> k1) - 2^(open-2-k1); the wrap of
//! x + 2^(open-2) + r past 2^open costs 2^(open-k1), which vanishes modulo 2^(32+k2) when
//! open >= k1 + k2 + 32, and the bits of r the mask takes (k1 + k2 .. k1 + k2 + 31) all lie below
//! open, so the correlation and the dealer's correction are the full width's, unchanged. The
//! GeLU's last truncation runs so at open = 43 (k1 = 11, k2 = 0): its x, a square of a Z_2^32
//! value, is computed right modulo 2^43 by the fused step before it.
//!
//! **Upcast, scale, then truncate** (`UpcastTruncA`, Z_2^32 -> Z_2^64): out =
//! (c x) >> k for a public c, x in Z_2^32 with |x| <= 2^30 and |c x| < 2^62. The upcast opens
//! y = x + 2^30 + r mod 2^32 and, with b = msb(y), c x = P - M_b in Z_2^64 for the public
//! P = c (y - 2^30) and M_b = c (r - [b = 0] 2^32 msb(r)). A truncation of c x needs c x + a mask
//! in the clear: P + 2^62 is that value (biased) for the mask M_b, so the MSB trick applies to
//! it with the dealer's shares of M_b >> k and msb(M_b) mod 2^k, for both b. Correlation: r (R,
//! u32, both); [M_0 >> k, msb(M_0), M_1 >> k, msb(M_1)] (RHigh and Msb, two each per element,
//! P0; P1 correction per element: [M_0 >> k (8 bytes), msb(M_0) (ceil(k/8) bytes), M_1 >> k,
//! msb(M_1)]).

use core::ops::Range;

use embedded_io::Write;

use crate::corr::{Corrections, DealerStreams, Streams, at, put_ring};
use crate::prg::Purpose;
use crate::ring::check_len;
use crate::trunc::{expand_hi_msb, hi_msb_record, msb_bytes};
use crate::{Error, Party, Ring};

/// Rounds of either chain.
pub const ROUNDS: u32 = 1;

/// The largest k1 + k2 of a (full-width) truncate-then-downcast.
pub const MAX_TRUNC_DOWN: u32 = 32;

/// Whether a truncate-then-downcast by k1 then k2 fits an opening of `open` bits:
/// k1 >= 1, k1 + 3 <= open <= 64 and open >= k1 + k2 + 32 (for open = 64, k1 + k2 <= 32).
pub const fn trunc_down_fits(k1: u32, k2: u32, open: u32) -> bool {
    k1 >= 1 && k1 + 3 <= open && open <= 64 && k1 + k2 + 32 <= open
}

/// P1 correction bytes of a truncate-then-downcast.
pub fn trunc_down_correction_bytes(len: u32) -> u64 {
    4 * u64::from(len)
}

/// Online bytes per party of a truncate-then-downcast opening `open` bits: y in ceil(open/8)
/// bytes (8 at the full width).
pub fn trunc_down_online_bytes(len: u32, open: u32) -> u64 {
    u64::from(len) * u64::from(open.div_ceil(8))
}

/// P1 correction bytes of an upcast-then-truncate by k.
pub fn up_trunc_correction_bytes(len: u32, k: u8) -> u64 {
    2 * u64::from(len) * (8 + msb_bytes(u32::from(k)) as u64)
}

/// Online bytes per party of an upcast-then-truncate: y in Z_2^32.
pub fn up_trunc_online_bytes(len: u32) -> u64 {
    4 * u64::from(len)
}

/// Expands a party's truncate-then-downcast correlation: r and its share of
/// (r >> (k1 + k2)) mod 2^32.
pub fn expand_trunc_down(
    s: &Streams<'_>,
    step: u32,
    corr: &mut Corrections<'_>,
    r: &mut [u64],
    d: &mut [u32],
) -> Result<(), Error> {
    check_len("chain mask", r.len(), d.len())?;
    s.prg(step, Purpose::R).fill_ring(r);
    match s.party {
        Party::P0 => s.prg(step, Purpose::RHigh).fill_ring(d),
        Party::P1 => corr.read_ring(d)?,
    }
    Ok(())
}

/// Dealer: P1's corrections for elements `units` of a truncate-then-downcast by k1 then k2.
pub fn deal_trunc_down<W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    units: Range<usize>,
    k: u32,
    w: &mut W,
) -> Result<(), Error> {
    let s = units.start;
    let (mut r0, mut r1) =
        (at::<u64>(d.p0.prg(step, Purpose::R), s), at::<u64>(d.p1.prg(step, Purpose::R), s));
    let mut h0 = at::<u32>(d.p0.prg(step, Purpose::RHigh), s);
    for _ in units {
        let r = r0.next_elem::<u64>().wrapping_add(r1.next_elem::<u64>());
        let hi = u32::from_u64((r >> k) & u64::from(u32::MAX));
        put_ring(w, &[hi.wrapping_sub(h0.next_elem::<u32>())])?;
    }
    Ok(())
}

/// Online: this party's message y_i = x_i + r_i (+ 2^(open-2) at P0) mod 2^open.
pub fn trunc_down_open(party: Party, open: u32, x: &[u64], r: &[u64], y: &mut [u64]) -> Result<(), Error> {
    check_len("mask", x.len(), r.len())?;
    check_len("masked output", x.len(), y.len())?;
    if !(3..=64).contains(&open) {
        return Err(Error::BadScale { bits: 64, frac: open });
    }
    let bias = if party.is_p0() { 1u64 << (open - 2) } else { 0 };
    for i in 0..x.len() {
        y[i] = x[i].wrapping_add(r[i]).wrapping_add(bias).low_bits(open);
    }
    Ok(())
}

/// After the round: this party's share of the downcast, [P0]((Y >> k2) mod 2^32) - d_i with
/// Y = (y >> k1) - 2^(open-2-k1) from the opened y (open = 64 at the full width).
pub fn trunc_down_finish(
    party: Party,
    (k1, k2, open): (u32, u32, u32),
    y: &[u64],
    d: &[u32],
    z: &mut [u32],
) -> Result<(), Error> {
    check_len("chain mask", y.len(), d.len())?;
    check_len("chain output", y.len(), z.len())?;
    if !trunc_down_fits(k1, k2, open) {
        return Err(Error::BadScale { bits: open, frac: k1 + k2 });
    }
    for i in 0..y.len() {
        let mut v = d[i].wrapping_neg();
        if party.is_p0() {
            v = v.wrapping_add(trunc_down_public((k1, k2, open), y[i]));
        }
        z[i] = v;
    }
    Ok(())
}

/// The public part of a truncate-then-downcast's output from the opened y: (Y >> k2) mod 2^32
/// with Y = (y >> k1) - 2^(open-2-k1); the output is this minus the mask
/// (r >> (k1 + k2)) mod 2^32, the value a matmul after the downcast uses as its opened E
/// (`Op::MatMulDownA`). Bits of y at or above `open` are ignored.
pub fn trunc_down_public((k1, k2, open): (u32, u32, u32), y: u64) -> u32 {
    let yy = (y.low_bits(open) >> k1).wrapping_sub(1u64 << (open - 2 - k1));
    u32::from_u64((yy >> k2) & u64::from(u32::MAX))
}

/// [M_0, M_1] of an upcast-then-truncate for the Z_2^32 mask r and constant c.
fn up_masks(r: u32, c: u64) -> [u64; 2] {
    let m1 = c.wrapping_mul(u64::from(r));
    let wrap = c.wrapping_mul(u64::from(r >> 31) << 32);
    [m1.wrapping_sub(wrap), m1]
}

/// Expands a party's upcast-then-truncate correlation: r (u32) and, per element, [h_0, h_1]
/// (shares of M_b >> k) and [m_0, m_1] (shares of msb(M_b) mod 2^k).
pub fn expand_up_trunc(
    s: &Streams<'_>,
    step: u32,
    k: u32,
    corr: &mut Corrections<'_>,
    r: &mut [u32],
    h: &mut [u64],
    m: &mut [u64],
) -> Result<(), Error> {
    check_len("chain high parts", 2 * r.len(), h.len())?;
    s.prg(step, Purpose::R).fill_ring(r);
    expand_hi_msb(s, step, k, corr, h, m)
}

/// Dealer: P1's corrections for elements `units` of an upcast-then-truncate.
pub fn deal_up_trunc<W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    units: Range<usize>,
    (c, k): (u64, u32),
    w: &mut W,
) -> Result<(), Error> {
    let s = units.start;
    let (mut r0, mut r1) =
        (at::<u32>(d.p0.prg(step, Purpose::R), s), at::<u32>(d.p1.prg(step, Purpose::R), s));
    let mut h0 = at::<u64>(d.p0.prg(step, Purpose::RHigh), 2 * s);
    let mut m0 = at::<u64>(d.p0.prg(step, Purpose::Msb), 2 * s);
    let mb = msb_bytes(k);
    let mut rec = [0u8; 16];
    for _ in units {
        let r = r0.next_elem::<u32>().wrapping_add(r1.next_elem::<u32>());
        for m in up_masks(r, c) {
            let rec = &mut rec[..8 + mb];
            let p0 = (h0.next_elem::<u64>(), m0.next_elem::<u64>());
            hi_msb_record(rec, (m >> k, u64::from(m.msb())), p0, k);
            w.write_all(rec).map_err(crate::corr::io_err)?;
        }
    }
    Ok(())
}

/// After the round: this party's share of (c x) >> k from the opened y (Z_2^32).
pub fn up_trunc_finish(
    party: Party,
    (c, k): (u64, u32),
    y: &[u32],
    h: &[u64],
    m: &[u64],
    z: &mut [u64],
) -> Result<(), Error> {
    check_len("chain high parts", 2 * y.len(), h.len())?;
    check_len("chain msbs", 2 * y.len(), m.len())?;
    check_len("chain output", y.len(), z.len())?;
    if !(1..=62).contains(&k) {
        return Err(Error::BadScale { bits: 64, frac: k });
    }
    let (bias, unbias, wrap) = (1u64 << 62, 1u64 << (62 - k), 1u64 << (64 - k));
    for i in 0..y.len() {
        let b = usize::from(y[i] >> 31 == 1);
        // Y' = c (y - 2^30) + 2^62, public.
        let yp = c.wrapping_mul(u64::from(y[i]).wrapping_sub(1 << 30)).wrapping_add(bias);
        let mut v = h[2 * i + b].wrapping_neg();
        if yp >> 63 == 0 {
            v = v.wrapping_add(wrap.wrapping_mul(m[2 * i + b]));
        }
        if party.is_p0() {
            v = v.wrapping_add(yp >> k).wrapping_sub(unbias);
        }
        z[i] = v;
    }
    Ok(())
}
