//! Truncation fused with the products that consume its output, 1 round in all
//! (DESIGN.md §5, round fusion).
//!
//! The truncation ([`crate::trunc`]) opens y = x + 2^(l-2) + r and gives every party a share of
//! t = Y - R_b, where Y = (y >> k) - 2^(l-2-k) is public and R_b is known to the dealer up to
//! the public bit b = msb(y): R_1 = r >> k, R_0 = (r >> k) - 2^(l-k) msb(r). So t is already
//! "public minus a dealer-known mask", which is all a Beaver product needs of an operand; no
//! second opening is needed to multiply it. With the dealer's shares of the products of
//! R_0 and R_1 with the other operand's mask:
//!
//! * square: t^2 = Y^2 - 2 Y R_b + R_b^2;
//! * mul by a shared v, whose v - a is opened in the same round as y:
//!   t v = Y f + Y a - f R_b - R_b a with f = v - a;
//! * pair, lanes i and j = i + h of one truncation of 2h lanes: t_i t_j =
//!   Y_i Y_j - Y_i R_j - Y_j R_i + R_i R_j.
//!
//! The dealer's products need not come twice, once per b: with mu = msb(r), R_0 = R_1 -
//! 2^(l-k) mu, and every difference is 2^(l-k) times something that matters modulo 2^k only:
//! R_0^2 = R_1^2 - 2^(l-k) (2 mu R_1 - 2^(l-k) mu), R_0 a = R_1 a - 2^(l-k) mu a, and
//! R_(i,bi) R_(j,bj) = R_i1 R_j1 - [bj = 0] 2^(l-k) mu_j R_i1 - [bi = 0] 2^(l-k) mu_i R_j1 +
//! [bi = bj = 0] 2^(2(l-k)) mu_i mu_j, whose last term vanishes for 2k <= l (which pairs
//! require). So each product costs one ring element and k bits per correction, not two elements.
//!
//! A product's operand may repeat along the lanes (`Op::TruncMulColsA`: lanes are the elements
//! of a rows x cols matrix and v_ij = v_j, LayerNorm's gamma): then a, f and v have one value
//! per column, f_j = v_j - a_j opens once per column, and the dealer's products R_1 a and mu a
//! take the lane's column's a; the formula and the per-lane corrections are unchanged.
//!
//! Each output is exactly the product of the truncated value (floor(x / 2^k) or one more, as
//! [`crate::trunc`] gives) with its operand: the plaintext reference of a fused step is the
//! truncation followed by exact products. Admitted range as for truncation.
//!
//! Correlation per lane: the truncation's (r; rh, msb as [`crate::trunc`]); for squares
//! [R_1^2, W = 2 mu R_1 - 2^(l-k) mu mod 2^k] (stream FuseSq, P0; P1 correction); for products
//! the mask a (stream A, both) and [R_1 a, V = mu a mod 2^k] (FuseMul, P0; P1 correction); for
//! pairs, on the lanes i < h, [R_i1 R_j1, U_i = mu_j R_i1 mod 2^k, U_j = mu_i R_j1 mod 2^k]
//! (FusePair, P0; P1 correction). P1's corrections per lane i: [the truncation's record]
//! [R_1^2 (l/8 bytes), W (ceil(k/8) bytes)][R_1 a, V][R_i1 R_j1, U_i, U_j if i < h], each part
//! present only if the step asks for it; k-bit values little-endian like the truncation's msb.

use core::ops::Range;

use embedded_io::Write;

use crate::corr::{Corrections, DealerStreams, Streams, at, put_ring};
use crate::prg::Purpose;
use crate::ring::{RingId, check_len};
use crate::trunc::msb_bytes;
use crate::{Error, Party, Ring};

/// The widths of a fused step. The masked input is opened modulo 2^`open` (bits of the
/// ring l for `Op::TruncMulA`; fewer for `Op::TruncMulNarrowA`): the input must lie in
/// [-2^(open-2), 2^(open-2)) and its shares need only be right modulo 2^open, so the mask r is
/// uniform in Z_2^open and y = x + 2^(open-2) + r mod 2^open travels in ceil(open/8) bytes;
/// every formula of the module docs holds with l replaced by `open`. The outputs (t and its
/// products, and the operand v and its opened f) are right modulo 2^`out` (open <= out <= l),
/// so the dealer's ring elements take ceil(out/8) bytes and its msb corrections, which appear
/// multiplied by 2^(open-k), out - open + k bits. A chain of steps whose values are known to
/// be small (the exp's squarings: values in [0, 1] at scale 2f) opens and deals fewer bytes;
/// its last step gives outputs right modulo 2^l again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Width {
    /// Bits of the opened masked input.
    pub open: u32,
    /// Bits modulo which the outputs are right.
    pub out: u32,
}

impl Width {
    /// The ring's full width (`Op::TruncMulA`).
    pub const fn full(bits: u32) -> Self {
        Width { open: bits, out: bits }
    }

    /// Bits of the msb-derived corrections for shift `k`: out - open + k (saturating, for
    /// widths that [`Width::fits`] refuses).
    pub const fn mbits(self, k: u32) -> u32 {
        (self.out.saturating_add(k)).saturating_sub(self.open)
    }

    /// Whether the widths fit a ring of `bits` and shift `k`: k + 3 <= open <= out <= bits,
    /// and msb corrections of at most 64 bits.
    pub const fn fits(self, bits: u32, k: u32) -> bool {
        k >= 1 && k + 3 <= self.open && self.open <= self.out && self.out <= bits && self.mbits(k) <= 64
    }
}

/// Which products a fused step computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Products {
    /// t^2.
    pub square: bool,
    /// t v for a second operand v.
    pub mul: bool,
    /// t_i t_(i+h) over the two halves.
    pub pair: bool,
}

/// Rounds.
pub const ROUNDS: u32 = 1;

/// P1 correction bytes.
pub fn correction_bytes(ring: RingId, len: u32, shift: u8, p: Products) -> u64 {
    correction_bytes_w(len, shift, p, Width::full(ring.bits()))
}

/// P1 correction bytes at widths `w`: per lane the truncation's [r >> k, msb] and per product
/// [element, msb-derived value], elements in ceil(out/8) bytes, the others in
/// ceil(mbits/8).
pub fn correction_bytes_w(len: u32, shift: u8, p: Products, w: Width) -> u64 {
    let (e, kb) = (msb_bytes(w.out) as u64, msb_bytes(w.mbits(u32::from(shift))) as u64);
    let per = 1 + u64::from(p.square) + u64::from(p.mul);
    let pairs = if p.pair { u64::from(len / 2) * (e + 2 * kb) } else { 0 };
    u64::from(len) * per * (e + kb) + pairs
}

/// Online bytes per party: y, and f = v - a for a product.
pub fn online_bytes(ring: RingId, len: u32, p: Products) -> u64 {
    online_bytes_w(len, p, Width::full(ring.bits()))
}

/// Online bytes per party at widths `w`: y in ceil(open/8) bytes, f in ceil(out/8).
pub fn online_bytes_w(len: u32, p: Products, w: Width) -> u64 {
    u64::from(len) * (msb_bytes(w.open) + if p.mul { msb_bytes(w.out) } else { 0 }) as u64
}

/// Online bytes per party of a product by a per-column operand (`Op::TruncMulColsA`): y per
/// element, f per column.
pub fn cols_online_bytes(ring: RingId, rows: u32, cols: u32) -> u64 {
    ring.bytes() as u64 * (u64::from(rows) * u64::from(cols) + u64::from(cols))
}

/// A party's correlation in caller-provided buffers: the truncation's (r, rh, m: len each),
/// the squares' (2 len or empty), the product's mask a (len, one per column for a per-column
/// operand, or empty) and its products
/// (2 len or empty), the pairs' (3 per pair or empty), laid out as the module docs list them
/// (the k-bit values reduced modulo 2^k).
#[derive(Debug)]
pub struct FuseMaterial<'a, R> {
    /// Mask r.
    pub r: &'a mut [R],
    /// r >> k.
    pub rh: &'a mut [R],
    /// msb(r) mod 2^k.
    pub m: &'a mut [R],
    /// [R_1^2, W] per lane.
    pub sq: &'a mut [R],
    /// The second operand's mask a.
    pub a: &'a mut [R],
    /// [R_1 a, V] per lane.
    pub ra: &'a mut [R],
    /// [R_i1 R_j1, U_i, U_j] per pair (j = i + h).
    pub pair: &'a mut [R],
}

/// Expands a party's fused-truncation correlation (shift `k`, products `p`, widths `w`).
pub fn expand_fuse<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    (k, w): (u32, Width),
    p: Products,
    corr: &mut Corrections<'_>,
    m: &mut FuseMaterial<'_, R>,
) -> Result<(), Error> {
    if !w.fits(R::BITS, k) || (p.pair && w != Width::full(R::BITS)) {
        return Err(Error::BadScale { bits: R::BITS, frac: k });
    }
    let (e, mb) = (w.out, w.mbits(k));
    let n = m.r.len();
    let (h, want) = (n / 2, |on: bool, len: usize| if on { len } else { 0 });
    check_len("fused square products", want(p.square, 2 * n), m.sq.len())?;
    if p.mul != (!m.a.is_empty() && n.is_multiple_of(m.a.len())) {
        return Err(Error::Length {
            what: "fused operand mask (a divisor of the lanes)",
            expected: n,
            got: m.a.len(),
        });
    }
    check_len("fused operand products", want(p.mul, 2 * n), m.ra.len())?;
    check_len("fused pair products", want(p.pair, 3 * h), m.pair.len())?;
    check_len("truncation r >> k", n, m.rh.len())?;
    check_len("truncation msb", n, m.m.len())?;
    s.prg(step, Purpose::R).fill_ring(m.r);
    s.prg(step, Purpose::A).fill_ring(m.a);
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::RHigh).fill_ring(m.rh);
            s.prg(step, Purpose::Msb).fill_ring(m.m);
            m.m.iter_mut().for_each(|v| *v = v.low_bits(mb));
            s.prg(step, Purpose::FuseSq).fill_ring(m.sq);
            s.prg(step, Purpose::FuseMul).fill_ring(m.ra);
            s.prg(step, Purpose::FusePair).fill_ring(m.pair);
            // The msb-derived entries: every odd one of sq and ra, the last two of each pair.
            for v in m.sq.iter_mut().chain(m.ra.iter_mut()).skip(1).step_by(2) {
                *v = v.low_bits(mb);
            }
            for pr in m.pair.chunks_exact_mut(3) {
                pr[1] = pr[1].low_bits(k);
                pr[2] = pr[2].low_bits(k);
            }
        }
        Party::P1 => {
            for i in 0..n {
                // [rh, m] is the truncation's record (trunc::read_hi_msb) at full width.
                (m.rh[i], m.m[i]) = (read_low(corr, e)?, read_low(corr, mb)?);
                if p.square {
                    m.sq[2 * i] = read_low(corr, e)?;
                    m.sq[2 * i + 1] = read_low(corr, mb)?;
                }
                if p.mul {
                    m.ra[2 * i] = read_low(corr, e)?;
                    m.ra[2 * i + 1] = read_low(corr, mb)?;
                }
                if p.pair && i < h {
                    m.pair[3 * i] = read_elem(corr)?;
                    m.pair[3 * i + 1] = read_low(corr, k)?;
                    m.pair[3 * i + 2] = read_low(corr, k)?;
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn read_elem<R: Ring>(corr: &mut Corrections<'_>) -> Result<R, Error> {
    Ok(R::from_le(corr.read_bytes(R::BYTES)?))
}

/// A k-bit correction (little-endian, ceil(k/8) bytes).
pub(crate) fn read_low<R: Ring>(corr: &mut Corrections<'_>, k: u32) -> Result<R, Error> {
    let b = corr.read_bytes(msb_bytes(k))?;
    let mut w = [0u8; 8];
    w[..b.len()].copy_from_slice(b);
    Ok(R::from_u64(u64::from_le_bytes(w)).low_bits(k))
}

/// Writes one ring element, or with `k` its low k bits in ceil(k/8) bytes.
pub(crate) fn put<R: Ring, W: Write>(w: &mut W, v: R, k: Option<u32>) -> Result<(), Error> {
    match k {
        None => put_ring(w, &[v]),
        Some(k) => {
            let b = v.low_bits(k).to_u64().to_le_bytes();
            w.write_all(&b[..msb_bytes(k)]).map_err(crate::corr::io_err)
        }
    }
}

/// Dealer: P1's corrections for lanes `units` of a fused step of `len` lanes whose product
/// operand repeats every `cols` lanes (`len` for a per-lane operand).
pub fn deal_fuse<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    (len, cols): (usize, usize),
    (k, wd): (u32, Width),
    p: Products,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    if !wd.fits(R::BITS, k) || (p.pair && wd != Width::full(R::BITS)) {
        return Err(Error::BadStep { step, reason: "fused truncation widths" });
    }
    let (e, mb) = (Some(wd.out), Some(wd.mbits(k)));
    if cols == 0 || !len.is_multiple_of(cols) {
        return Err(Error::BadStep { step, reason: "fused operand columns" });
    }
    let (s, h) = (units.start, len / 2);
    let stream = |q, i: usize| (at::<R>(d.p0.prg(step, q), i), at::<R>(d.p1.prg(step, q), i));
    let (mut r0, mut r1) = stream(Purpose::R, s);
    // The partner lane's mask, for pairs.
    let (mut q0, mut q1) = stream(Purpose::R, s.min(h) + h);
    let (mut a0, mut a1) = stream(Purpose::A, s % cols);
    let mut h0 = at::<R>(d.p0.prg(step, Purpose::RHigh), s);
    let mut m0 = at::<R>(d.p0.prg(step, Purpose::Msb), s);
    let mut sq0 = at::<R>(d.p0.prg(step, Purpose::FuseSq), 2 * s);
    let mut ra0 = at::<R>(d.p0.prg(step, Purpose::FuseMul), 2 * s);
    let mut pr0 = at::<R>(d.p0.prg(step, Purpose::FusePair), 3 * s.min(h));
    let wrap = R::pow2(wd.open - k);
    // r uniform modulo 2^open, its msb is bit open - 1.
    let mask = |r: R| r.low_bits(wd.open);
    let mu = |r: R| R::from_u64(r.bit(wd.open - 1));
    for i in units {
        let r = mask(r0.next_elem::<R>().add(r1.next_elem::<R>()));
        let (r1v, m) = (r.shr(k), mu(r));
        // The truncation's record, as trunc::deal_trunc writes it at full width.
        put(w, r1v.sub(h0.next_elem::<R>()), e)?;
        put(w, m.sub(m0.next_elem::<R>()), mb)?;
        if p.square {
            put(w, r1v.mul(r1v).sub(sq0.next_elem::<R>()), e)?;
            let wv = r1v.mul(m).add(r1v.mul(m)).sub(wrap.mul(m));
            put(w, wv.sub(sq0.next_elem::<R>()), mb)?;
        }
        if p.mul {
            if i % cols == 0 && i > s {
                (a0, a1) = stream(Purpose::A, 0);
            }
            let a = a0.next_elem::<R>().add(a1.next_elem::<R>());
            put(w, r1v.mul(a).sub(ra0.next_elem::<R>()), e)?;
            put(w, m.mul(a).sub(ra0.next_elem::<R>()), mb)?;
        }
        if p.pair && i < h {
            let q = q0.next_elem::<R>().add(q1.next_elem::<R>());
            let (q1v, mq) = (q.shr(k), mu(q));
            put(w, r1v.mul(q1v).sub(pr0.next_elem::<R>()), e)?;
            put(w, mq.mul(r1v).sub(pr0.next_elem::<R>()), mb)?;
            put(w, m.mul(q1v).sub(pr0.next_elem::<R>()), mb)?;
        }
    }
    Ok(())
}

/// Online, round 1: this party's message y_i (see [`crate::trunc::trunc_a_open`]) and, for a
/// product, f_i = v_i - a_i.
pub fn fuse_open<R: Ring>(
    party: Party,
    w: Width,
    (x, r): (&[R], &[R]),
    (v, a): (&[R], &[R]),
    y: &mut [R],
    f: &mut [R],
) -> Result<(), Error> {
    check_len("mask", x.len(), r.len())?;
    check_len("masked output", x.len(), y.len())?;
    let bias = if party.is_p0() { R::pow2(w.open - 2) } else { R::ZERO };
    for i in 0..x.len() {
        y[i] = x[i].add(r[i]).add(bias).low_bits(w.open);
    }
    check_len("fused operand", a.len(), v.len())?;
    check_len("fused operand message", a.len(), f.len())?;
    for i in 0..a.len() {
        f[i] = v[i].sub(a[i]);
    }
    Ok(())
}

/// This party's shares after the round, from the opened (y, f): t, then each product asked
/// for, in `out` = [t (n)][t^2 (n)][t v (n)][t_i t_(i+h) (h)] (parts present as asked).
pub fn fuse_finish<R: Ring>(
    party: Party,
    (k, w): (u32, Width),
    p: Products,
    (y, f): (&[R], &[R]),
    v: &[R],
    m: &FuseMaterial<'_, R>,
    out: &mut [R],
) -> Result<(), Error> {
    let n = y.len();
    let h = n / 2;
    let parts = 1 + usize::from(p.square) + usize::from(p.mul);
    check_len("fused output", parts * n + if p.pair { h } else { 0 }, out.len())?;
    let (t, rest) = out.split_at_mut(n);
    for (what, l) in [("trunc r>>k", m.rh.len()), ("trunc msb", m.m.len())] {
        check_len(what, n, l)?;
    }
    // y is opened modulo 2^open; b is its bit open - 1.
    let y_msb = |i: usize| y[i].bit(w.open - 1);
    let unbias = R::pow2(w.open - 2).shr(k);
    let wrap = R::pow2(w.open - k);
    let pub_y = |i: usize| y[i].low_bits(w.open).shr(k).sub(unbias);
    // A product's share for lane i's b: the R_1 form, less 2^(open-k) times its msb-derived
    // correction when b = 0.
    let low = |i: usize, v: R, c: R| if y_msb(i) == 0 { v.sub(wrap.mul(c)) } else { v };
    // This party's share of R_b: rh - [b = 0] 2^(open-k) m.
    let rsh = |i: usize| if y_msb(i) == 0 { m.rh[i].sub(wrap.mul(m.m[i])) } else { m.rh[i] };
    let p0 = |v: R| if party.is_p0() { v } else { R::ZERO };
    // t = [P0] Y - R_b (trunc::trunc_a_finish at full width).
    for (i, o) in t.iter_mut().enumerate() {
        *o = p0(pub_y(i)).sub(rsh(i));
    }
    let mut rest = rest;
    if p.square {
        let (sq, r) = rest.split_at_mut(n);
        for (i, o) in sq.iter_mut().enumerate() {
            let yy = pub_y(i);
            *o = p0(yy.mul(yy)).sub(yy.add(yy).mul(rsh(i))).add(low(i, m.sq[2 * i], m.sq[2 * i + 1]));
        }
        rest = r;
    }
    if p.mul {
        // One value of a, f and v per lane, or per column.
        let c = m.a.len();
        if c == 0 || n % c != 0 {
            return Err(Error::Length {
                what: "fused operand mask (a divisor of the lanes)",
                expected: n,
                got: c,
            });
        }
        check_len("fused operand", c, v.len())?;
        check_len("fused opened operand", c, f.len())?;
        check_len("fused operand products", 2 * n, m.ra.len())?;
        let (tv, r) = rest.split_at_mut(n);
        for (i, o) in tv.iter_mut().enumerate() {
            let (yy, j) = (pub_y(i), i % c);
            let ra = low(i, m.ra[2 * i], m.ra[2 * i + 1]);
            *o = p0(yy.mul(f[j])).add(yy.mul(m.a[j])).sub(f[j].mul(rsh(i))).sub(ra);
        }
        rest = r;
    }
    if p.pair {
        for (i, o) in rest[..h].iter_mut().enumerate() {
            let (j, yi, yj) = (i + h, pub_y(i), pub_y(i + h));
            let c = low(j, low(i, m.pair[3 * i], m.pair[3 * i + 2]), m.pair[3 * i + 1]);
            *o = p0(yi.mul(yj)).sub(yi.mul(rsh(j))).sub(yj.mul(rsh(i))).add(c);
        }
    }
    Ok(())
}
