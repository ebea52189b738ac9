//! Beaver-style products: elementwise mul (triple), square (pair), matmul with a model-fixed
//! weight mask, matmul of two fresh shared tensors.
//!
//! Correlations (per step, P1's correction stream in brackets):
//! * mul: a, b, c = a*b. P0: a0, b0, c0 from streams A, B, C. P1: a1, b1 from A, B; [c1].
//! * square: a, c = a^2. P0: a0, c0 from A, C. P1: a1 from A; [c1].
//! * matmul, fixed mask: A (n x k), B_W (k x m) fixed per model, C = A B_W. P_i's share of
//!   B_W comes from its model share seed; P0: A0, C0 from A, C (row-major); P1: A1 from A;
//!   [C1 in BLOCK x BLOCK blocks: blocks row-major, each block row-major, edge blocks partial].
//!   Block order lets a dealer with a few KiB of RAM produce C1 for any shape.
//! * matmul, fresh: per batch A (n x k), B (k x m), C = A B. P0: A0, B0, C0; P1: A1, B1;
//!   [C1 of each product in block order, batch after batch].
//!
//! Online (1 round): open E = X - A (and F = Y - B); then
//! Z_i = C_i + E*B_i + A_i*F + [P0] E*F, computed as (A_i + [P0] E) F + E B_i + C_i.

use embedded_io::Write;

use core::ops::Range;

use crate::corr::{CHUNK, Corrections, DealerStreams, Streams, Tile, at, fill_or_read, put_ring};
use crate::prg::{Prg, Purpose};
use crate::ring::{RingId, check_len};
use crate::{Error, Party, Ring};

/// Rounds of every protocol in this module.
pub const ROUNDS: u32 = 1;

fn n_bytes(ring: RingId, elems: u64) -> u64 {
    elems * ring.bytes() as u64
}

/// P1 correction bytes of a mul or square step (one ring element per product).
pub fn elementwise_correction_bytes(ring: RingId, len: u32) -> u64 {
    n_bytes(ring, u64::from(len))
}

/// P1 correction bytes of a matmul step: one element per output.
pub fn matmul_correction_bytes(ring: RingId, batch: u32, n: u32, m: u32) -> u64 {
    n_bytes(ring, u64::from(batch) * u64::from(n) * u64::from(m))
}

/// Online bytes per party of mul: e and f (2l bits per element).
pub fn mul_online_bytes(ring: RingId, len: u32) -> u64 {
    2 * n_bytes(ring, u64::from(len))
}

/// Online bytes per party of square: e (l bits per element).
pub fn square_online_bytes(ring: RingId, len: u32) -> u64 {
    n_bytes(ring, u64::from(len))
}

/// Online bytes per party of a fixed-mask matmul: E (n*k elements).
pub fn matmul_fixed_online_bytes(ring: RingId, n: u32, k: u32) -> u64 {
    n_bytes(ring, u64::from(n) * u64::from(k))
}

/// Online bytes per party of a fresh matmul: E and F.
pub fn matmul_aa_online_bytes(ring: RingId, batch: u32, n: u32, k: u32, m: u32) -> u64 {
    n_bytes(ring, u64::from(batch) * (u64::from(n) * u64::from(k) + u64::from(k) * u64::from(m)))
}

/// Online bytes per party of an opening of y - B beside other steps (`Op::OpenBesideA`).
pub fn open_beside_online_bytes(len: u32) -> u64 {
    n_bytes(RingId::Z32, u64::from(len))
}

/// Matrix dimensions of X (n x k) times Y (k x m).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Rows of X.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of Y.
    pub m: usize,
}

impl Dims {
    /// From plan dimensions.
    pub fn new(n: u32, k: u32, m: u32) -> Self {
        Dims { n: n as usize, k: k as usize, m: m as usize }
    }
}

/// A wrapping matrix product kernel. The host plugs in its SIMD GEMM; [`NaiveGemm`] is the
/// reference.
pub trait Gemm<R: Ring> {
    /// out (n x m) += a (n x k) * b (k x m), all row-major.
    fn gemm_acc(&self, out: &mut [R], a: &[R], b: &[R], d: Dims);
}

/// The triple loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct NaiveGemm;

impl<R: Ring> Gemm<R> for NaiveGemm {
    fn gemm_acc(&self, out: &mut [R], a: &[R], b: &[R], d: Dims) {
        for i in 0..d.n {
            for kk in 0..d.k {
                let x = a[i * d.k + kk];
                let row = &b[kk * d.m..(kk + 1) * d.m];
                for (o, y) in out[i * d.m..(i + 1) * d.m].iter_mut().zip(row) {
                    *o = o.add(x.mul(*y));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- elementwise mul / square

/// Expands a party's Beaver triple shares for a mul step of `a.len()` elements.
pub fn expand_mul<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    corr: &mut Corrections<'_>,
    a: &mut [R],
    b: &mut [R],
    c: &mut [R],
) -> Result<(), Error> {
    check_len("triple b", a.len(), b.len())?;
    check_len("triple c", a.len(), c.len())?;
    s.prg(step, Purpose::A).fill_ring(a);
    s.prg(step, Purpose::B).fill_ring(b);
    fill_or_read(s.party, || s.prg(step, Purpose::C), corr, c)
}

/// Expands a party's square-pair shares.
pub fn expand_square<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    corr: &mut Corrections<'_>,
    a: &mut [R],
    c: &mut [R],
) -> Result<(), Error> {
    check_len("square c", a.len(), c.len())?;
    s.prg(step, Purpose::A).fill_ring(a);
    fill_or_read(s.party, || s.prg(step, Purpose::C), corr, c)
}

/// Dealer: P1's corrections c1 = (a0 + a1)(b0 + b1) - c0 for elements `units` of a mul step.
pub fn deal_mul<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let s = units.start;
    let (mut a0, mut b0, mut c0) = (
        at::<R>(d.p0.prg(step, Purpose::A), s),
        at::<R>(d.p0.prg(step, Purpose::B), s),
        at::<R>(d.p0.prg(step, Purpose::C), s),
    );
    let (mut a1, mut b1) = (at::<R>(d.p1.prg(step, Purpose::A), s), at::<R>(d.p1.prg(step, Purpose::B), s));
    let mut buf = [[R::ZERO; CHUNK]; 5];
    for start in units.clone().step_by(CHUNK) {
        let n = CHUNK.min(units.end - start);
        let [x0, y0, z0, x1, y1] = &mut buf;
        a0.fill_ring(&mut x0[..n]);
        b0.fill_ring(&mut y0[..n]);
        c0.fill_ring(&mut z0[..n]);
        a1.fill_ring(&mut x1[..n]);
        b1.fill_ring(&mut y1[..n]);
        for i in 0..n {
            z0[i] = x0[i].add(x1[i]).mul(y0[i].add(y1[i])).sub(z0[i]);
        }
        put_ring(w, &z0[..n])?;
    }
    Ok(())
}

/// Dealer: P1's corrections c1 = (a0 + a1)^2 - c0 for elements `units` of a square step.
pub fn deal_square<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let s = units.start;
    let (mut a0, mut c0, mut a1) = (
        at::<R>(d.p0.prg(step, Purpose::A), s),
        at::<R>(d.p0.prg(step, Purpose::C), s),
        at::<R>(d.p1.prg(step, Purpose::A), s),
    );
    let mut buf = [[R::ZERO; CHUNK]; 3];
    for start in units.clone().step_by(CHUNK) {
        let n = CHUNK.min(units.end - start);
        let [x0, z0, x1] = &mut buf;
        a0.fill_ring(&mut x0[..n]);
        c0.fill_ring(&mut z0[..n]);
        a1.fill_ring(&mut x1[..n]);
        for i in 0..n {
            let a = x0[i].add(x1[i]);
            z0[i] = a.mul(a).sub(z0[i]);
        }
        put_ring(w, &z0[..n])?;
    }
    Ok(())
}

/// Online, mul: this party's message (e_i, f_i) = (x_i - a_i, y_i - b_i).
pub fn mul_aa_open<R: Ring>(
    x: &[R],
    y: &[R],
    a: &[R],
    b: &[R],
    e: &mut [R],
    f: &mut [R],
) -> Result<(), Error> {
    sub_into(x, a, e)?;
    sub_into(y, b, f)
}

/// Online, mul: z_i = c_i + e b_i + f a_i + [P0] e f, from the opened e and f.
pub fn mul_aa_finish<R: Ring>(
    party: Party,
    e: &[R],
    f: &[R],
    a: &[R],
    b: &[R],
    c: &[R],
    z: &mut [R],
) -> Result<(), Error> {
    for (what, l) in [("f", f.len()), ("a", a.len()), ("b", b.len()), ("c", c.len()), ("z", z.len())] {
        check_len(what, e.len(), l)?;
    }
    for i in 0..e.len() {
        let mut v = c[i].add(e[i].mul(b[i])).add(f[i].mul(a[i]));
        if party.is_p0() {
            v = v.add(e[i].mul(f[i]));
        }
        z[i] = v;
    }
    Ok(())
}

/// Online, square: this party's message e_i = x_i - a_i.
pub fn square_a_open<R: Ring>(x: &[R], a: &[R], e: &mut [R]) -> Result<(), Error> {
    sub_into(x, a, e)
}

/// Online, square: z_i = c_i + 2 e a_i + [P0] e^2.
pub fn square_a_finish<R: Ring>(party: Party, e: &[R], a: &[R], c: &[R], z: &mut [R]) -> Result<(), Error> {
    for (what, l) in [("a", a.len()), ("c", c.len()), ("z", z.len())] {
        check_len(what, e.len(), l)?;
    }
    for i in 0..e.len() {
        let mut v = c[i].add(e[i].add(e[i]).mul(a[i]));
        if party.is_p0() {
            v = v.add(e[i].mul(e[i]));
        }
        z[i] = v;
    }
    Ok(())
}

/// out_i = x_i - y_i.
pub fn sub_into<R: Ring>(x: &[R], y: &[R], out: &mut [R]) -> Result<(), Error> {
    check_len("sub operand", x.len(), y.len())?;
    check_len("sub output", x.len(), out.len())?;
    for ((o, p), q) in out.iter_mut().zip(x).zip(y) {
        *o = p.sub(*q);
    }
    Ok(())
}

// ---------------------------------------------------------------- matmul

/// Expands a party's fixed-mask matmul shares: A (n*k), this party's B_W share (k*m), C (n*m).
/// The B_W share is the same for every session; a host may expand it once and keep it.
#[allow(clippy::too_many_arguments)]
pub fn expand_matmul_fixed<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    weight: u32,
    d: Dims,
    corr: &mut Corrections<'_>,
    a: &mut [R],
    b: &mut [R],
    c: &mut [R],
) -> Result<(), Error> {
    check_len("matmul B", d.k * d.m, b.len())?;
    s.model_prg(weight).fill_ring(b);
    expand_matmul_fixed_ac(s, step, d, corr, a, c)
}

/// [`expand_matmul_fixed`] without B_W, for a party that holds its share of B_W from the weight
/// setup (it is the same in every session): expands A and C only.
pub fn expand_matmul_fixed_ac<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    d: Dims,
    corr: &mut Corrections<'_>,
    a: &mut [R],
    c: &mut [R],
) -> Result<(), Error> {
    check_len("matmul A", d.n * d.k, a.len())?;
    s.prg(step, Purpose::A).fill_ring(a);
    expand_matmul_c(s, step, d, corr, c)
}

/// Expands a party's fresh matmul triple shares for `batch` products (batch-major buffers).
#[allow(clippy::too_many_arguments)]
pub fn expand_matmul_aa<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    batch: usize,
    d: Dims,
    corr: &mut Corrections<'_>,
    a: &mut [R],
    b: &mut [R],
    c: &mut [R],
) -> Result<(), Error> {
    check_len("matmul A", batch * d.n * d.k, a.len())?;
    check_len("matmul B", batch * d.k * d.m, b.len())?;
    check_len("matmul C", batch * d.n * d.m, c.len())?;
    s.prg(step, Purpose::A).fill_ring(a);
    s.prg(step, Purpose::B).fill_ring(b);
    expand_c(s, step, d, corr, c)
}

/// Side of the square blocks in which matmul corrections travel (edge blocks are partial).
pub const BLOCK: usize = 16;

/// The blocks of an n x m product: (block rows, block columns).
pub fn block_grid(d: Dims) -> (usize, usize) {
    (d.n.div_ceil(BLOCK), d.m.div_ceil(BLOCK))
}

/// Rows i0..i1 and columns j0..j1 of block `b` (row-major block order).
pub fn block_bounds(d: Dims, b: usize) -> (usize, usize, usize, usize) {
    let (_, bm) = block_grid(d);
    let (i0, j0) = ((b / bm) * BLOCK, (b % bm) * BLOCK);
    (i0, (i0 + BLOCK).min(d.n), j0, (j0 + BLOCK).min(d.m))
}

/// Reads P1's C1 (block order, see [`BLOCK`]) into row-major `c` (n x m).
fn read_blocks<R: Ring>(corr: &mut Corrections<'_>, d: Dims, c: &mut [R]) -> Result<(), Error> {
    let (bn, bm) = block_grid(d);
    for b in 0..bn * bm {
        let (i0, i1, j0, j1) = block_bounds(d, b);
        for i in i0..i1 {
            corr.read_ring(&mut c[i * d.m + j0..i * d.m + j1])?;
        }
    }
    Ok(())
}

/// C part of a product for one party: P0 from stream C (row-major), P1 from the corrections.
fn expand_c<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    d: Dims,
    corr: &mut Corrections<'_>,
    c: &mut [R],
) -> Result<(), Error> {
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::C).fill_ring(c);
            Ok(())
        }
        Party::P1 => {
            let nm = d.n * d.m;
            for prod in c.chunks_mut(nm) {
                read_blocks(corr, d, prod)?;
            }
            Ok(())
        }
    }
}

/// Element offsets of product `t` in the A, B and C streams.
fn product_offsets(d: Dims, t: u64, fixed_b: bool) -> [u64; 3] {
    let (nk, km, nm) = ((d.n * d.k) as u64, (d.k * d.m) as u64, (d.n * d.m) as u64);
    [t * nk, if fixed_b { 0 } else { t * km }, t * nm]
}

/// Where the dealer reads a product's A from.
pub enum ASource {
    /// A = A0 + A1 from the parties' A streams.
    Streams([Prg; 2]),
    /// A = -((r0 + r1) >> k) mod 2^l, from the parties' R streams (Z_2^64) of the
    /// truncate-then-downcast before the product ([`crate::chain`]): its output's mask.
    NegDown {
        /// r0, r1.
        r: [Prg; 2],
        /// k1 + k2 of the truncate-then-downcast.
        k: u32,
    },
}

impl ASource {
    /// The A of a product at `step` whose X is the output of the truncate-then-downcast by `k`
    /// at `step - 1`: minus that output's mask, from that step's R streams.
    fn neg_down(ds: &DealerStreams<'_>, step: u32, k: u32) -> Result<Self, Error> {
        let prev = step
            .checked_sub(1)
            .ok_or(Error::BadStep { step, reason: "a matmul after a downcast at step 0" })?;
        Ok(ASource::NegDown { r: [ds.p0.prg(prev, Purpose::R), ds.p1.prg(prev, Purpose::R)], k })
    }

    /// Reads `out.len()` elements of A from element `at`, using `tmp`.
    fn read<R: Ring>(&mut self, at: u64, out: &mut [R], tmp: &mut [R]) {
        match self {
            ASource::Streams(pair) => ProductStreams::sum_at(pair, at, out, tmp),
            ASource::NegDown { r, k } => {
                r[0].seek_elem::<u64>(at);
                r[1].seek_elem::<u64>(at);
                let mut buf = [[0u64; CHUNK]; 2];
                for chunk in out.chunks_mut(CHUNK) {
                    let n = chunk.len();
                    r[0].fill_ring(&mut buf[0][..n]);
                    r[1].fill_ring(&mut buf[1][..n]);
                    for (i, o) in chunk.iter_mut().enumerate() {
                        *o = R::from_u64(buf[0][i].wrapping_add(buf[1][i]) >> *k).neg();
                    }
                }
            }
        }
    }
}

/// The streams one product is dealt from.
pub struct ProductStreams {
    /// A.
    pub a: ASource,
    /// B0, B1 (session streams, or the model share streams of B_W).
    pub b: [Prg; 2],
    /// P0's C0.
    pub c0: Prg,
}

impl ProductStreams {
    /// Streams of a fixed-mask matmul step.
    pub fn fixed(ds: &DealerStreams<'_>, step: u32, weight: u32) -> Self {
        ProductStreams {
            a: ASource::Streams([ds.p0.prg(step, Purpose::A), ds.p1.prg(step, Purpose::A)]),
            b: [ds.p0.model_prg(weight), ds.p1.model_prg(weight)],
            c0: ds.p0.prg(step, Purpose::C),
        }
    }

    /// Streams of a fixed-mask matmul step whose input is the output of the truncate-then-
    /// downcast by `k` = k1 + k2 at step `step - 1` (A is that output's mask, negated).
    pub fn fixed_after_down(ds: &DealerStreams<'_>, step: u32, weight: u32, k: u32) -> Result<Self, Error> {
        Ok(ProductStreams {
            a: ASource::neg_down(ds, step, k)?,
            b: [ds.p0.model_prg(weight), ds.p1.model_prg(weight)],
            c0: ds.p0.prg(step, Purpose::C),
        })
    }

    /// Streams of a batched product whose X is the output of the truncate-then-downcast by
    /// `k` = k1 + k2 at step `step - 1` and whose Y - B step `open` opened (`Op::MatMulDownAA`).
    pub fn down_opened(ds: &DealerStreams<'_>, step: u32, open: u32, k: u32) -> Result<Self, Error> {
        Ok(ProductStreams {
            a: ASource::neg_down(ds, step, k)?,
            b: [ds.p0.prg(open, Purpose::B), ds.p1.prg(open, Purpose::B)],
            c0: ds.p0.prg(step, Purpose::C),
        })
    }

    /// Streams of a fresh matmul step.
    pub fn fresh(ds: &DealerStreams<'_>, step: u32) -> Self {
        ProductStreams {
            a: ASource::Streams([ds.p0.prg(step, Purpose::A), ds.p1.prg(step, Purpose::A)]),
            b: [ds.p0.prg(step, Purpose::B), ds.p1.prg(step, Purpose::B)],
            c0: ds.p0.prg(step, Purpose::C),
        }
    }

    /// Reads `out.len()` elements of A0 + A1 (or B0 + B1) from element `at`, using `tmp`.
    fn sum_at<R: Ring>(pair: &mut [Prg; 2], at: u64, out: &mut [R], tmp: &mut [R]) {
        let tmp = &mut tmp[..out.len()];
        pair[0].seek_elem::<R>(at);
        pair[0].fill_ring(out);
        pair[1].seek_elem::<R>(at);
        pair[1].fill_ring(tmp);
        for (o, t) in out.iter_mut().zip(tmp.iter()) {
            *o = o.add(*t);
        }
    }
}

/// Dealer, bounded memory: P1's corrections C1 = (A0 + A1)(B0 + B1) - C0 of blocks
/// `blocks` of product `t` (block order, see [`BLOCK`]). Working state is a few KiB
/// (a BLOCK x KC slice of A, a KC x BLOCK slice of B, one block of C; KC >= BLOCK) whatever
/// the shapes; A and B are regenerated by seeking.
pub fn deal_product_blocks<R: Ring, W: Write, const KC: usize>(
    st: &mut ProductStreams,
    d: Dims,
    t: u64,
    fixed_b: bool,
    blocks: core::ops::Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let [a_off, b_off, c_off] = product_offsets(d, t, fixed_b);
    let mut a = [[R::ZERO; KC]; BLOCK];
    let mut b = [[R::ZERO; BLOCK]; KC];
    let mut acc = [R::ZERO; BLOCK * BLOCK];
    let mut tmp = [R::ZERO; KC];
    for blk in blocks {
        let (i0, i1, j0, j1) = block_bounds(d, blk);
        let (rows, cols) = (i1 - i0, j1 - j0);
        acc[..rows * cols].fill(R::ZERO);
        for k0 in (0..d.k).step_by(KC) {
            let kc = KC.min(d.k - k0);
            for (r, row) in a[..rows].iter_mut().enumerate() {
                let at = a_off + ((i0 + r) * d.k + k0) as u64;
                st.a.read(at, &mut row[..kc], &mut tmp);
            }
            for (kk, row) in b[..kc].iter_mut().enumerate() {
                let at = b_off + ((k0 + kk) * d.m + j0) as u64;
                ProductStreams::sum_at(&mut st.b, at, &mut row[..cols], &mut tmp);
            }
            for (r, arow) in a[..rows].iter().enumerate() {
                let out = &mut acc[r * cols..(r + 1) * cols];
                for (x, brow) in arow[..kc].iter().zip(&b[..kc]) {
                    for (o, y) in out.iter_mut().zip(&brow[..cols]) {
                        *o = o.add(x.mul(*y));
                    }
                }
            }
        }
        crate::count::macs((rows * cols * d.k) as u64);
        for r in 0..rows {
            st.c0.seek_elem::<R>(c_off + ((i0 + r) * d.m + j0) as u64);
            st.c0.fill_ring(&mut tmp[..cols]);
            let out = &mut acc[r * cols..(r + 1) * cols];
            for (o, c) in out.iter_mut().zip(&tmp[..cols]) {
                *o = o.sub(*c);
            }
        }
        put_ring(w, &acc[..rows * cols])?;
    }
    Ok(())
}

/// Dealer: P1's corrections C1 = A B_W - C0 for blocks `units` of a fixed-mask matmul.
pub fn deal_matmul_fixed<R: Ring, W: Write>(
    ds: &DealerStreams<'_>,
    step: u32,
    d: Dims,
    weight: u32,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    deal_fixed_tiled::<R, W>(ds.tile, &mut ProductStreams::fixed(ds, step, weight), d, units, w)
}

/// [`deal_product_blocks`] of a fixed-mask product with the tile's inner slice.
fn deal_fixed_tiled<R: Ring, W: Write>(
    tile: Tile,
    st: &mut ProductStreams,
    d: Dims,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    match tile {
        Tile::K16 => deal_product_blocks::<R, W, 16>(st, d, 0, true, units, w),
        Tile::K32 => deal_product_blocks::<R, W, 32>(st, d, 0, true, units, w),
        Tile::K64 => deal_product_blocks::<R, W, 64>(st, d, 0, true, units, w),
        Tile::K128 => deal_product_blocks::<R, W, 128>(st, d, 0, true, units, w),
    }
}

/// Dealer: P1's corrections C1 = A B_W - C0 for blocks `units` of a fixed-mask matmul of the
/// truncate-then-downcast output of the step before (by `k` = k1 + k2): A = -(that output's
/// mask), so that X - A is the value that step opened ([`crate::chain`]).
pub fn deal_matmul_after_down<R: Ring, W: Write>(
    ds: &DealerStreams<'_>,
    step: u32,
    d: Dims,
    (weight, k): (u32, u32),
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let mut st = ProductStreams::fixed_after_down(ds, step, weight, k)?;
    deal_fixed_tiled::<R, W>(ds.tile, &mut st, d, units, w)
}

/// Expands a party's C of a fixed-mask matmul whose A it does not need (see
/// [`deal_matmul_after_down`]).
pub fn expand_matmul_c<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    d: Dims,
    corr: &mut Corrections<'_>,
    c: &mut [R],
) -> Result<(), Error> {
    expand_matmul_c_batch(s, step, 1, d, corr, c)
}

/// Expands a party's share of the mask B of an opening beside others (`Op::OpenBesideA`):
/// from its own B stream of that step, for P0 and P1 alike.
pub fn expand_open_beside<R: Ring>(s: &Streams<'_>, step: u32, b: &mut [R]) {
    s.prg(step, Purpose::B).fill_ring(b);
}

/// Expands a party's C of `batch` products whose A and B it does not need
/// (see [`deal_matmul_down_aa`]).
pub fn expand_matmul_c_batch<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    batch: usize,
    d: Dims,
    corr: &mut Corrections<'_>,
    c: &mut [R],
) -> Result<(), Error> {
    check_len("matmul C", batch * d.n * d.m, c.len())?;
    expand_c(s, step, d, corr, c)
}

/// Dealer: P1's corrections C1 = A B - C0 for blocks `units` of a fresh matmul step, blocks
/// numbered across the batch (product t holds blocks t * per..(t + 1) * per).
pub fn deal_matmul_aa<R: Ring, W: Write>(
    ds: &DealerStreams<'_>,
    step: u32,
    d: Dims,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    deal_batched::<R, W>(ds.tile, &mut ProductStreams::fresh(ds, step), d, units, w)
}

/// Dealer: P1's corrections C1 = A B - C0 for blocks `units` of a batched product of the
/// truncate-then-downcast output of the step before (by `k` = k1 + k2; A = minus its mask) and
/// a Y whose Y - B step `open` opened (B from that step's streams): `Op::MatMulDownAA`.
pub fn deal_matmul_down_aa<W: Write>(
    ds: &DealerStreams<'_>,
    step: u32,
    d: Dims,
    (open, k): (u32, u32),
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let mut st = ProductStreams::down_opened(ds, step, open, k)?;
    deal_batched::<u32, W>(ds.tile, &mut st, d, units, w)
}

/// [`deal_product_blocks`] of a batch of fresh products, blocks numbered across the batch.
fn deal_batched<R: Ring, W: Write>(
    tile: Tile,
    st: &mut ProductStreams,
    d: Dims,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let (bn, bm) = block_grid(d);
    let per = bn * bm;
    let mut b = units.start;
    while b < units.end {
        let t = b / per;
        let hi = units.end.min((t + 1) * per);
        let (t64, range) = (t as u64, b - t * per..hi - t * per);
        match tile {
            Tile::K16 => deal_product_blocks::<R, W, 16>(st, d, t64, false, range, w)?,
            Tile::K32 => deal_product_blocks::<R, W, 32>(st, d, t64, false, range, w)?,
            Tile::K64 => deal_product_blocks::<R, W, 64>(st, d, t64, false, range, w)?,
            Tile::K128 => deal_product_blocks::<R, W, 128>(st, d, t64, false, range, w)?,
        }
        b = hi;
    }
    Ok(())
}

/// Online, fixed-mask matmul: this party's message E_i = X_i - A_i.
pub fn matmul_fixed_open<R: Ring>(x: &[R], a: &[R], e: &mut [R]) -> Result<(), Error> {
    sub_into(x, a, e)
}

/// Online, fresh matmul: this party's messages E_i = X_i - A_i and F_i = Y_i - B_i.
pub fn matmul_aa_open<R: Ring>(
    x: &[R],
    y: &[R],
    a: &[R],
    b: &[R],
    e: &mut [R],
    f: &mut [R],
) -> Result<(), Error> {
    sub_into(x, a, e)?;
    sub_into(y, b, f)
}

/// Online, one product: Z_i = (A_i + [P0] E) F + E B_i + C_i, from the opened E (n x k) and
/// F (k x m; for the fixed-mask matmul F = W - B_W, opened once at setup). `scratch` holds
/// n*k elements.
#[allow(clippy::too_many_arguments)]
pub fn matmul_finish<R: Ring, G: Gemm<R>>(
    party: Party,
    gemm: &G,
    d: Dims,
    e: &[R],
    f: &[R],
    a: &[R],
    b: &[R],
    c: &[R],
    scratch: &mut [R],
    z: &mut [R],
) -> Result<(), Error> {
    check_len("matmul E", d.n * d.k, e.len())?;
    check_len("matmul A", d.n * d.k, a.len())?;
    check_len("matmul F", d.k * d.m, f.len())?;
    check_len("matmul B", d.k * d.m, b.len())?;
    check_len("matmul C", d.n * d.m, c.len())?;
    check_len("matmul Z", d.n * d.m, z.len())?;
    check_len("matmul scratch", d.n * d.k, scratch.len())?;
    for i in 0..scratch.len() {
        scratch[i] = if party.is_p0() { a[i].add(e[i]) } else { a[i] };
    }
    z.copy_from_slice(c);
    gemm.gemm_acc(z, scratch, f, d);
    gemm.gemm_acc(z, e, b, d);
    Ok(())
}
