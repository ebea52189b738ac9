//! Beaver-style products: elementwise mul (triple), square (pair), matmul with a model-fixed
//! weight mask, matmul of two fresh shared tensors.
//!
//! Correlations (per step, P1's correction stream in brackets):
//! * mul: a, b, c = a*b. P0: a0, b0, c0 from streams A, B, C. P1: a1, b1 from A, B; [c1].
//! * square: a, c = a^2. P0: a0, c0 from A, C. P1: a1 from A; [c1].
//! * matmul, fixed mask: A (n x k), B_W (k x m) fixed per model, C = A B_W. P_i's share of
//!   B_W comes from its model share seed; P0: A0, C0 from A, C; P1: A1 from A; [C1 row-major].
//! * matmul, fresh: per batch A (n x k), B (k x m), C = A B. P0: A0, B0, C0; P1: A1, B1;
//!   [C1, batch after batch, row-major].
//!
//! Online (1 round): open E = X - A (and F = Y - B); then
//! Z_i = C_i + E*B_i + A_i*F + [P0] E*F, computed as (A_i + [P0] E) F + E B_i + C_i.

use embedded_io::Write;

use crate::corr::{CHUNK, Corrections, DealerStreams, Streams, fill_or_read, put_ring};
use crate::prg::Purpose;
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

/// Dealer: P1's corrections c1 = (a0 + a1)(b0 + b1) - c0 for a mul step.
pub fn deal_mul<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    len: usize,
    w: &mut W,
) -> Result<(), Error> {
    let (mut a0, mut b0, mut c0) =
        (d.p0.prg(step, Purpose::A), d.p0.prg(step, Purpose::B), d.p0.prg(step, Purpose::C));
    let (mut a1, mut b1) = (d.p1.prg(step, Purpose::A), d.p1.prg(step, Purpose::B));
    let mut buf = [[R::ZERO; CHUNK]; 5];
    for start in (0..len).step_by(CHUNK) {
        let n = CHUNK.min(len - start);
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

/// Dealer: P1's corrections c1 = (a0 + a1)^2 - c0 for a square step.
pub fn deal_square<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    len: usize,
    w: &mut W,
) -> Result<(), Error> {
    let (mut a0, mut c0, mut a1) =
        (d.p0.prg(step, Purpose::A), d.p0.prg(step, Purpose::C), d.p1.prg(step, Purpose::A));
    let mut buf = [[R::ZERO; CHUNK]; 3];
    for start in (0..len).step_by(CHUNK) {
        let n = CHUNK.min(len - start);
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
    check_len("matmul A", d.n * d.k, a.len())?;
    check_len("matmul B", d.k * d.m, b.len())?;
    check_len("matmul C", d.n * d.m, c.len())?;
    s.prg(step, Purpose::A).fill_ring(a);
    s.model_prg(weight).fill_ring(b);
    fill_or_read(s.party, || s.prg(step, Purpose::C), corr, c)
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
    fill_or_read(s.party, || s.prg(step, Purpose::C), corr, c)
}

/// Column tile of the reference matmul dealer.
const TILE: usize = 16;

/// C1 = (A0 + A1)(B0 + B1) - C0 for one product, with A at element offset `a_off` of the A
/// streams, B from `b_src` (offset `b_off`), C0 at `c_off`. Bounded memory: one TILE of
/// accumulators; A rows and B row-segments are regenerated by seeking.
#[allow(clippy::too_many_arguments)]
fn deal_product<R: Ring, W: Write>(
    a: [&mut crate::prg::Prg; 2],
    b: [&mut crate::prg::Prg; 2],
    c0: &mut crate::prg::Prg,
    offs: [u64; 3],
    d: Dims,
    w: &mut W,
) -> Result<(), Error> {
    let [a0, a1] = a;
    let [b0, b1] = b;
    let [a_off, b_off, c_off] = offs;
    let mut acc = [R::ZERO; TILE];
    let (mut s0, mut s1, mut cc) = ([R::ZERO; TILE], [R::ZERO; TILE], [R::ZERO; TILE]);
    c0.seek_elem::<R>(c_off);
    for i in 0..d.n {
        for j0 in (0..d.m).step_by(TILE) {
            let t = TILE.min(d.m - j0);
            acc[..t].fill(R::ZERO);
            a0.seek_elem::<R>(a_off + (i * d.k) as u64);
            a1.seek_elem::<R>(a_off + (i * d.k) as u64);
            for kk in 0..d.k {
                let x = a0.next_elem::<R>().add(a1.next_elem::<R>());
                let at = b_off + (kk * d.m + j0) as u64;
                b0.seek_elem::<R>(at);
                b1.seek_elem::<R>(at);
                b0.fill_ring(&mut s0[..t]);
                b1.fill_ring(&mut s1[..t]);
                for j in 0..t {
                    acc[j] = acc[j].add(x.mul(s0[j].add(s1[j])));
                }
            }
            c0.fill_ring(&mut cc[..t]);
            for j in 0..t {
                acc[j] = acc[j].sub(cc[j]);
            }
            put_ring(w, &acc[..t])?;
        }
    }
    Ok(())
}

/// Dealer: P1's corrections C1 = A B_W - C0 for a fixed-mask matmul.
pub fn deal_matmul_fixed<R: Ring, W: Write>(
    ds: &DealerStreams<'_>,
    step: u32,
    d: Dims,
    weight: u32,
    w: &mut W,
) -> Result<(), Error> {
    let (mut a0, mut a1) = (ds.p0.prg(step, Purpose::A), ds.p1.prg(step, Purpose::A));
    let (mut b0, mut b1) = (ds.p0.model_prg(weight), ds.p1.model_prg(weight));
    let mut c0 = ds.p0.prg(step, Purpose::C);
    deal_product::<R, W>([&mut a0, &mut a1], [&mut b0, &mut b1], &mut c0, [0, 0, 0], d, w)
}

/// Dealer: P1's corrections C1 = A B - C0 for each of `batch` fresh products.
pub fn deal_matmul_aa<R: Ring, W: Write>(
    ds: &DealerStreams<'_>,
    step: u32,
    batch: u32,
    d: Dims,
    w: &mut W,
) -> Result<(), Error> {
    let (mut a0, mut a1) = (ds.p0.prg(step, Purpose::A), ds.p1.prg(step, Purpose::A));
    let (mut b0, mut b1) = (ds.p0.prg(step, Purpose::B), ds.p1.prg(step, Purpose::B));
    let mut c0 = ds.p0.prg(step, Purpose::C);
    for t in 0..u64::from(batch) {
        let offs = [t * (d.n * d.k) as u64, t * (d.k * d.m) as u64, t * (d.n * d.m) as u64];
        deal_product::<R, W>([&mut a0, &mut a1], [&mut b0, &mut b1], &mut c0, offs, d, w)?;
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
