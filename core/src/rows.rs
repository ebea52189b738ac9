//! A value per row, truncated once and multiplied by every element of its row, 1 round
//! (`TruncMulRowsA`; DESIGN.md §5, round fusion): softmax's e_ij (1/s_i) and LayerNorm's
//! (x_ij - mean_i) rsqrt(var_i), where the row's factor arrives before its last truncation.
//!
//! The truncation of row i opens y_i = x_i + 2^(l-2) + r_i and gives t_i = Y_i - R_(b_i) as in
//! [`crate::fuse`] (Y_i public, R_1 = r >> k, R_0 = R_1 - 2^(l-k) mu, b_i = msb(y_i)). Opening
//! f_ij = v_ij - a_ij in the same round,
//!
//!   t_i v_ij = Y_i f_ij + Y_i a_ij - f_ij R_(b_i) - R_(b_i) a_ij,
//!
//! with R_0 a = R_1 a - 2^(l-k) mu a, so the dealer deals R_1 a (one ring element) and
//! V = mu a mod 2^k per element, as a fused product does. Truncating the row's value once
//! instead of once per element (a broadcast before [`crate::fuse`]) opens one y per row rather
//! than per element: the element's message is f alone. Each output is exactly t_i v_ij for the
//! row's truncated t_i (floor(x_i / 2^k) or one more): the plaintext reference is the
//! truncation, the broadcast and the products apart. Admitted range as for truncation.
//!
//! Correlation: per row the truncation's (r; rh, msb as [`crate::trunc`]); per element the mask
//! a (stream A, both parties) and [R_1 a, V mod 2^k] (stream FuseMul, P0; P1 correction). P1's
//! corrections per row: [the truncation's record][per element of the row: R_1 a (l/8 bytes),
//! V (ceil(k/8) bytes)] (the centring's layout, [`crate::center`]).

use core::ops::Range;

use embedded_io::Write;

use crate::corr::{Corrections, DealerStreams, Streams};
use crate::prg::Purpose;
use crate::ring::{RingId, check_len};
use crate::{Error, Party, Ring, center, trunc};

/// Rounds.
pub const ROUNDS: u32 = 1;

/// P1 correction bytes of `rows` x `cols` with the rows' values truncated by `k`: a record per
/// row and an element and k bits per element, as the centring's.
pub fn correction_bytes(ring: RingId, rows: u32, cols: u32, k: u8) -> u64 {
    center::correction_bytes(ring, rows, cols, k)
}

/// Online bytes per party: y per row, f per element.
pub fn online_bytes(ring: RingId, rows: u32, cols: u32) -> u64 {
    center::online_bytes(ring, rows, cols)
}

/// A party's correlation: the row-wise layout ([`center::RowMaterial`]) with [R_1 a, V] as the
/// pair per element.
pub type RowsMaterial<'a, R> = center::RowMaterial<'a, R>;

/// Expands a party's correlation for step `step` (rows' values truncated by `k`).
pub fn expand_rows<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    k: u32,
    corr: &mut Corrections<'_>,
    m: &mut RowsMaterial<'_, R>,
) -> Result<(), Error> {
    center::expand_row_pairs(s, step, (k, Purpose::FuseMul), corr, m)
}

/// Dealer: P1's corrections for rows `units` of `rows` x `cols` (values truncated by `k`).
pub fn deal_rows<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    cols: usize,
    k: u32,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    center::deal_row_pairs(d, step, (cols, k, Purpose::FuseMul), units, w, |r1v: R, mu: R, a: R| {
        (r1v.mul(a), mu.mul(a))
    })
}

/// Online, the round: this party's y_i (per row, [`crate::trunc::trunc_a_open`] of the rows'
/// values `x`) and f_ij = v_ij - a_ij.
pub fn rows_open<R: Ring>(
    party: Party,
    (x, v): (&[R], &[R]),
    m: &RowsMaterial<'_, R>,
    y: &mut [R],
    f: &mut [R],
) -> Result<(), Error> {
    trunc::trunc_a_open(party, x, m.r, y)?;
    check_len("row operand", m.a.len(), v.len())?;
    check_len("row operand message", m.a.len(), f.len())?;
    for i in 0..v.len() {
        f[i] = v[i].sub(m.a[i]);
    }
    Ok(())
}

/// This party's shares after the round: t_i v_ij (rows x cols) for the truncated t_i.
pub fn rows_finish<R: Ring>(
    party: Party,
    k: u32,
    (y, f): (&[R], &[R]),
    m: &RowsMaterial<'_, R>,
    out: &mut [R],
) -> Result<(), Error> {
    let (rows, n) = (y.len(), m.a.len());
    for (what, l) in [("opened row operand", f.len()), ("row products", out.len())] {
        check_len(what, n, l)?;
    }
    for (what, l) in [("trunc r>>k", m.rh.len()), ("trunc msb", m.m.len())] {
        check_len(what, rows, l)?;
    }
    let cols = n / rows.max(1);
    let unbias = R::pow2(R::BITS - 2).shr(k);
    let wrap = R::pow2(R::BITS - k);
    let p0 = |v: R| if party.is_p0() { v } else { R::ZERO };
    for (i, yi) in y.iter().enumerate() {
        let yy = yi.shr(k).sub(unbias);
        let b0 = yi.msb() == 0;
        // This party's share of R_b: rh - [b = 0] 2^(l-k) m.
        let rsh = if b0 { m.rh[i].sub(wrap.mul(m.m[i])) } else { m.rh[i] };
        for e in i * cols..(i + 1) * cols {
            let ra = if b0 { m.pairs[2 * e].sub(wrap.mul(m.pairs[2 * e + 1])) } else { m.pairs[2 * e] };
            out[e] = p0(yy.mul(f[e])).add(yy.mul(m.a[e])).sub(f[e].mul(rsh)).sub(ra);
        }
    }
    Ok(())
}
