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
//! **A centred operand** (`TruncMulRowsCenteredA`, LayerNorm's d rsqrt(var)): when v is the d of a
//! [`crate::center`] step c (shift kc), v needs no opening: that step opened y^c and f^c, so
//! d_ij = P_ij + M_ij with P_ij = f^c_ij - Y^c_i public and M_ij = m_ij - [b^c_i = 0] 2^(l-kc)
//! mu^c_i dealer-known (m = a + R^c_1, b^c = msb(y^c)), and
//!
//!   t_i d_ij = Y_i P_ij + Y_i M_ij - P_ij R_(b_i) - R_(b_i) M_ij,
//!   R_b M = R_1 m - [b^c = 0] 2^(l-kc) mu^c R_1 - [b = 0] 2^(l-k) mu m,
//!
//! the product of the two corrections carrying 2^(2l-k-kc), which vanishes for k + kc <= l. The
//! dealer deals R_1 m (a ring element) and mu m mod 2^k per element, mu^c R_1 mod 2^kc per row;
//! a party's share of M is its share of d less [P0] P. The round opens y alone: one value per
//! row. The output is exactly t_i d_ij, as above.
//!
//! Correlation: per row the truncation's (r; rh, msb as [`crate::trunc`]); per element the mask
//! a (stream A, both parties) and [R_1 a, V mod 2^k] (stream FuseMul, P0; P1 correction). P1's
//! corrections per row: [the truncation's record][per element of the row: R_1 a (l/8 bytes),
//! V (ceil(k/8) bytes)] (the centring's layout, [`crate::center`]). A centred operand: no mask a;
//! per row [the truncation's record][mu^c R_1 (ceil(kc/8) bytes)][per element: R_1 m, mu m]
//! (stream CrossMask for the per-row value, FuseMul for the pairs, P0).

use core::ops::Range;

use embedded_io::Write;

use crate::corr::{Corrections, DealerStreams, Streams, at};
use crate::prg::Purpose;
use crate::ring::{RingId, check_len};
use crate::trunc::msb_bytes;
use crate::{Error, Party, Ring, center, fuse, trunc};

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

/// P1 correction bytes of a centred operand's row products (rows' values truncated by `k`, the
/// centring's mean by `kc`): the row products' and ceil(kc/8) bytes per row.
pub fn centred_correction_bytes(ring: RingId, rows: u32, cols: u32, (k, kc): (u8, u8)) -> u64 {
    correction_bytes(ring, rows, cols, k) + u64::from(rows) * msb_bytes(u32::from(kc)) as u64
}

/// Online bytes per party of a centred operand's row products: y per row.
pub fn centred_online_bytes(ring: RingId, rows: u32) -> u64 {
    ring.bytes() as u64 * u64::from(rows)
}

/// A party's correlation for the row products of a centred operand, in caller-provided
/// buffers.
#[derive(Debug)]
pub struct CentredMaterial<'a, R> {
    /// Mask r (rows).
    pub r: &'a mut [R],
    /// r >> k (rows).
    pub rh: &'a mut [R],
    /// msb(r) mod 2^k (rows).
    pub m: &'a mut [R],
    /// mu^c R_1 mod 2^kc (rows).
    pub cross: &'a mut [R],
    /// [R_1 m, mu m mod 2^k] per element.
    pub pairs: &'a mut [R],
}

/// Expands a party's correlation for step `step` (rows' values truncated by `k`, the centring's
/// mean by `kc`).
pub fn expand_centred<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    (k, kc): (u32, u32),
    corr: &mut Corrections<'_>,
    mat: &mut CentredMaterial<'_, R>,
) -> Result<(), Error> {
    let CentredMaterial { r, rh, m, cross, pairs } = mat;
    let (rows, n2) = (r.len(), pairs.len());
    if rows == 0 || !n2.is_multiple_of(2 * rows) {
        return Err(Error::Length { what: "centred row products (rows x cols)", expected: rows, got: n2 });
    }
    let cols = n2 / (2 * rows);
    for (what, l) in [("truncation r >> k", rh.len()), ("truncation msb", m.len()), ("cross", cross.len())] {
        check_len(what, rows, l)?;
    }
    s.prg(step, Purpose::R).fill_ring(r);
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::RHigh).fill_ring(rh);
            s.prg(step, Purpose::Msb).fill_ring(m);
            m.iter_mut().for_each(|v| *v = v.low_bits(k));
            s.prg(step, Purpose::CrossMask).fill_ring(cross);
            cross.iter_mut().for_each(|v| *v = v.low_bits(kc));
            s.prg(step, Purpose::FuseMul).fill_ring(pairs);
            pairs.iter_mut().skip(1).step_by(2).for_each(|v| *v = v.low_bits(k));
        }
        Party::P1 => {
            for i in 0..rows {
                (rh[i], m[i]) = trunc::read_hi_msb(corr, k)?;
                cross[i] = fuse::read_low(corr, kc)?;
                for e in i * cols..(i + 1) * cols {
                    pairs[2 * e] = fuse::read_elem(corr)?;
                    pairs[2 * e + 1] = fuse::read_low(corr, k)?;
                }
            }
        }
    }
    Ok(())
}

/// Dealer: P1's corrections for rows `units` of the row products of a centred operand, the
/// centring being step `center` (its mean truncated by `kc`).
pub fn deal_centred<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    (center, kc): (u32, u32),
    (cols, k): (usize, u32),
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let s = units.start;
    let stream = |at_step, q, i: usize| (at::<R>(d.p0.prg(at_step, q), i), at::<R>(d.p1.prg(at_step, q), i));
    let (mut r0, mut r1) = stream(step, Purpose::R, s);
    let (mut c0, mut c1) = stream(center, Purpose::R, s);
    let (mut a0, mut a1) = stream(center, Purpose::A, s * cols);
    let mut h0 = at::<R>(d.p0.prg(step, Purpose::RHigh), s);
    let mut m0 = at::<R>(d.p0.prg(step, Purpose::Msb), s);
    let mut x0 = at::<R>(d.p0.prg(step, Purpose::CrossMask), s);
    let mut p0 = at::<R>(d.p0.prg(step, Purpose::FuseMul), 2 * s * cols);
    for _ in units {
        let r = r0.next_elem::<R>().add(r1.next_elem::<R>());
        let (r1v, mu) = (r.shr(k), R::from_u64(u64::from(r.msb())));
        let rc = c0.next_elem::<R>().add(c1.next_elem::<R>());
        let (rc1, muc) = (rc.shr(kc), R::from_u64(u64::from(rc.msb())));
        let mut rec = [0u8; 16];
        let rec = &mut rec[..R::BYTES + msb_bytes(k)];
        trunc::hi_msb_record(rec, (r1v, mu), (h0.next_elem::<R>(), m0.next_elem::<R>()), k);
        w.write_all(rec).map_err(crate::corr::io_err)?;
        fuse::put(w, muc.mul(r1v).sub(x0.next_elem::<R>()), Some(kc))?;
        for _ in 0..cols {
            let mm = a0.next_elem::<R>().add(a1.next_elem::<R>()).add(rc1);
            fuse::put(w, r1v.mul(mm).sub(p0.next_elem::<R>()), None)?;
            fuse::put(w, mu.mul(mm).sub(p0.next_elem::<R>()), Some(k))?;
        }
    }
    Ok(())
}

/// This party's shares after the round: t_i d_ij for the rows' truncated t_i and the centred d,
/// from the opened y (rows), the centring's opened (y^c, f^c) and this party's shares of d.
pub fn centred_finish<R: Ring>(
    party: Party,
    (k, kc): (u32, u32),
    y: &[R],
    (yc, fc, d): (&[R], &[R], &[R]),
    m: &CentredMaterial<'_, R>,
    out: &mut [R],
) -> Result<(), Error> {
    let (rows, n) = (y.len(), d.len());
    if rows == 0 || !n.is_multiple_of(rows) {
        return Err(Error::Length { what: "centred operand (rows x cols)", expected: rows, got: n });
    }
    for (what, l) in
        [("opened centring", fc.len()), ("row products", out.len()), ("centred pairs", m.pairs.len() / 2)]
    {
        check_len(what, n, l)?;
    }
    for (what, l) in [
        ("trunc r>>k", m.rh.len()),
        ("trunc msb", m.m.len()),
        ("cross", m.cross.len()),
        ("opened means", yc.len()),
    ] {
        check_len(what, rows, l)?;
    }
    if u64::from(k) + u64::from(kc) > u64::from(R::BITS) {
        return Err(Error::BadScale { bits: R::BITS, frac: k + kc });
    }
    let cols = n / rows.max(1);
    let (unbias, unbias_c) = (R::pow2(R::BITS - 2).shr(k), R::pow2(R::BITS - 2).shr(kc));
    let (wrap, wrap_c) = (R::pow2(R::BITS - k), R::pow2(R::BITS - kc));
    let p0 = |v: R| if party.is_p0() { v } else { R::ZERO };
    for i in 0..rows {
        let yy = y[i].shr(k).sub(unbias);
        let rsh = if y[i].msb() == 0 { m.rh[i].sub(wrap.mul(m.m[i])) } else { m.rh[i] };
        let ycc = yc[i].shr(kc).sub(unbias_c);
        let cross = if yc[i].msb() == 0 { wrap_c.mul(m.cross[i]) } else { R::ZERO };
        for e in i * cols..(i + 1) * cols {
            let p = fc[e].sub(ycc);
            let ms = d[e].sub(p0(p));
            let mut rm = m.pairs[2 * e].sub(cross);
            if y[i].msb() == 0 {
                rm = rm.sub(wrap.mul(m.pairs[2 * e + 1]));
            }
            out[e] = p0(yy.mul(p)).add(yy.mul(ms)).sub(p.mul(rsh)).sub(rm);
        }
    }
    Ok(())
}
