//! LayerNorm's centring and square fused with the mean's truncation, 1 round
//! (`TruncCenterSquareA`; DESIGN.md §5, round fusion).
//!
//! A LayerNorm over rows of x (rows x cols) truncates each row's scaled sum u_i to the mean
//! t_i = floor(u_i / 2^k) or one more ([`crate::trunc`]), centres d_ij = x_ij - t_i and squares
//! it. The truncation opens y_i = u_i + 2^(l-2) + r_i and gives t_i = Y_i - R_(b_i) with Y_i
//! public and R_b dealer-known up to the public bit b_i = msb(y_i) (R_1 = r >> k, R_0 = R_1 -
//! 2^(l-k) mu, mu = msb(r)), as in [`crate::fuse`]. Opening f_ij = x_ij - a_ij in the same round,
//!
//!   d_ij = P_ij + M_ij with P_ij = f_ij - Y_i public and M_ij = a_ij + R_(b_i),
//!   d_ij^2 = P_ij^2 + 2 P_ij M_ij + M_ij^2,
//!
//! and a party's share of M is its share of d less [P0] P. With m = a + R_1 and c = 2^(l-k),
//! M = m - [b = 0] c mu, so M^2 = m^2 - [b = 0] c W with W = 2 mu m - c mu, which matters modulo
//! 2^k only: the dealer deals m^2 (one ring element) and W mod 2^k per element, not two squares.
//! The result is exactly (x - t)^2 for the truncated mean t: the plaintext reference is the
//! truncation, the subtraction and the square apart (one round fewer than that: the square's
//! opening f rides on the truncation's). Admitted range as for truncation.
//!
//! Correlation: per row the truncation's (r; rh, msb as [`crate::trunc`]); per element the mask
//! a (stream A, both parties) and [m^2, W mod 2^k] (stream FuseSq, P0; P1 correction). P1's
//! corrections per row: [the truncation's record][per element of the row: m^2 (l/8 bytes),
//! W (ceil(k/8) bytes)].

use core::ops::Range;

use embedded_io::Write;

use crate::corr::{Corrections, DealerStreams, Streams, at};
use crate::prg::Purpose;
use crate::ring::{RingId, check_len};
use crate::trunc::{self, msb_bytes};
use crate::{Error, Party, Ring, fuse};

/// Rounds.
pub const ROUNDS: u32 = 1;

/// P1 correction bytes of `rows` x `cols` with a mean truncated by `k`.
pub fn correction_bytes(ring: RingId, rows: u32, cols: u32, k: u8) -> u64 {
    let per = ring.bytes() as u64 + msb_bytes(u32::from(k)) as u64;
    trunc::correction_bytes(ring, rows, k) + u64::from(rows) * u64::from(cols) * per
}

/// Online bytes per party: y per row, f per element.
pub fn online_bytes(ring: RingId, rows: u32, cols: u32) -> u64 {
    ring.bytes() as u64 * (u64::from(rows) + u64::from(rows) * u64::from(cols))
}

/// A party's correlation of a row-wise step (this module and [`crate::rows`]) in
/// caller-provided buffers: per row r, rh, m (the truncation's); per element the mask a and a
/// pair (2 per element, the second reduced modulo 2^k): [m^2, W] for the centring, [R_1 a, V]
/// for the row products.
#[derive(Debug)]
pub struct RowMaterial<'a, R> {
    /// Mask r (rows).
    pub r: &'a mut [R],
    /// r >> k (rows).
    pub rh: &'a mut [R],
    /// msb(r) mod 2^k (rows).
    pub m: &'a mut [R],
    /// The per-element mask a (rows x cols).
    pub a: &'a mut [R],
    /// The pair per element.
    pub pairs: &'a mut [R],
}

/// The centring's correlation.
pub type CenterMaterial<'a, R> = RowMaterial<'a, R>;

/// Expands a party's correlation for step `step` (mean truncated by `k`).
pub fn expand_center<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    k: u32,
    corr: &mut Corrections<'_>,
    m: &mut CenterMaterial<'_, R>,
) -> Result<(), Error> {
    expand_row_pairs(s, step, (k, Purpose::FuseSq), corr, m)
}

/// Dealer: P1's corrections for rows `units` of `rows` x `cols` (mean truncated by `k`).
pub fn deal_center<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    cols: usize,
    k: u32,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let wrap = R::pow2(R::BITS - k);
    deal_row_pairs(d, step, (cols, k, Purpose::FuseSq), units, w, |r1v: R, mu: R, a: R| {
        let mm = a.add(r1v);
        (mm.mul(mm), mu.mul(mm).add(mu.mul(mm)).sub(wrap.mul(mu)))
    })
}

/// The correlation layout of the row-wise steps (this module and [`crate::rows`]): per row a
/// truncation's (r; rh, msb mod 2^k), per element a mask a (stream A, both parties) and a pair
/// [ring element, k-bit value] (P0 from stream `purpose`; P1 from its corrections: per row the
/// truncation's record, then the pairs of the row's elements).
pub(crate) fn expand_row_pairs<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    (k, purpose): (u32, Purpose),
    corr: &mut Corrections<'_>,
    mat: &mut RowMaterial<'_, R>,
) -> Result<(), Error> {
    let RowMaterial { r, rh, m, a, pairs } = mat;
    let (rows, n) = (r.len(), a.len());
    if rows == 0 || n % rows != 0 {
        return Err(Error::Length { what: "row-wise step (rows x cols)", expected: rows, got: n });
    }
    let cols = n / rows;
    check_len("truncation r >> k", rows, rh.len())?;
    check_len("truncation msb", rows, m.len())?;
    check_len("row-wise pairs", 2 * n, pairs.len())?;
    s.prg(step, Purpose::R).fill_ring(r);
    s.prg(step, Purpose::A).fill_ring(a);
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::RHigh).fill_ring(rh);
            s.prg(step, Purpose::Msb).fill_ring(m);
            m.iter_mut().for_each(|v| *v = v.low_bits(k));
            s.prg(step, purpose).fill_ring(pairs);
            pairs.iter_mut().skip(1).step_by(2).for_each(|v| *v = v.low_bits(k));
        }
        Party::P1 => {
            for i in 0..rows {
                (rh[i], m[i]) = trunc::read_hi_msb(corr, k)?;
                for e in i * cols..(i + 1) * cols {
                    pairs[2 * e] = fuse::read_elem(corr)?;
                    pairs[2 * e + 1] = fuse::read_low(corr, k)?;
                }
            }
        }
    }
    Ok(())
}

/// Dealer side of [`expand_row_pairs`] for rows `units`: `pair(r >> k, msb(r), a)` gives each
/// element's true pair.
pub(crate) fn deal_row_pairs<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    (cols, k, purpose): (usize, u32, Purpose),
    units: Range<usize>,
    w: &mut W,
    pair: impl Fn(R, R, R) -> (R, R),
) -> Result<(), Error> {
    let s = units.start;
    let stream = |q, i: usize| (at::<R>(d.p0.prg(step, q), i), at::<R>(d.p1.prg(step, q), i));
    let (mut r0, mut r1) = stream(Purpose::R, s);
    let (mut a0, mut a1) = stream(Purpose::A, s * cols);
    let mut h0 = at::<R>(d.p0.prg(step, Purpose::RHigh), s);
    let mut m0 = at::<R>(d.p0.prg(step, Purpose::Msb), s);
    let mut p0 = at::<R>(d.p0.prg(step, purpose), 2 * s * cols);
    for _ in units {
        let r = r0.next_elem::<R>().add(r1.next_elem::<R>());
        let (r1v, mu) = (r.shr(k), R::from_u64(u64::from(r.msb())));
        let mut rec = [0u8; 16];
        let rec = &mut rec[..R::BYTES + msb_bytes(k)];
        trunc::hi_msb_record(rec, (r1v, mu), (h0.next_elem::<R>(), m0.next_elem::<R>()), k);
        w.write_all(rec).map_err(crate::corr::io_err)?;
        for _ in 0..cols {
            let (e, low) = pair(r1v, mu, a0.next_elem::<R>().add(a1.next_elem::<R>()));
            fuse::put(w, e.sub(p0.next_elem::<R>()), None)?;
            fuse::put(w, low.sub(p0.next_elem::<R>()), Some(k))?;
        }
    }
    Ok(())
}

/// Online, the round: this party's y_i (per row, [`crate::trunc::trunc_a_open`] of the scaled
/// sums `u`) and f_ij = x_ij - a_ij.
pub fn center_open<R: Ring>(
    party: Party,
    (u, x): (&[R], &[R]),
    m: &CenterMaterial<'_, R>,
    y: &mut [R],
    f: &mut [R],
) -> Result<(), Error> {
    trunc::trunc_a_open(party, u, m.r, y)?;
    check_len("centred input", m.a.len(), x.len())?;
    check_len("centring message", m.a.len(), f.len())?;
    for i in 0..x.len() {
        f[i] = x[i].sub(m.a[i]);
    }
    Ok(())
}

/// This party's shares after the round: the mean t (rows), d = x - t and d^2 (rows x cols).
pub fn center_finish<R: Ring>(
    party: Party,
    k: u32,
    (y, f): (&[R], &[R]),
    x: &[R],
    m: &CenterMaterial<'_, R>,
    (t, d, sq): (&mut [R], &mut [R], &mut [R]),
) -> Result<(), Error> {
    let (rows, n) = (y.len(), x.len());
    for (what, l) in
        [("opened centring", f.len()), ("centred output", d.len()), ("centred squares", sq.len())]
    {
        check_len(what, n, l)?;
    }
    trunc::trunc_a_finish(party, k, y, m.rh, m.m, t)?;
    let cols = n / rows.max(1);
    let unbias = R::pow2(R::BITS - 2).shr(k);
    let wrap = R::pow2(R::BITS - k);
    let p0 = |v: R| if party.is_p0() { v } else { R::ZERO };
    for i in 0..rows {
        let yy = y[i].shr(k).sub(unbias);
        let b0 = y[i].msb() == 0;
        for e in i * cols..(i + 1) * cols {
            let p = f[e].sub(yy);
            d[e] = x[e].sub(t[i]);
            let ms = d[e].sub(p0(p));
            let m2 = if b0 { m.pairs[2 * e].sub(wrap.mul(m.pairs[2 * e + 1])) } else { m.pairs[2 * e] };
            sq[e] = p0(p.mul(p)).add(p.add(p).mul(ms)).add(m2);
        }
    }
    Ok(())
}
