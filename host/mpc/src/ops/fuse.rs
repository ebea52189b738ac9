//! A truncation and the products of its output in one round (`ditto_core::fuse`): where a
//! multiplication consumes a fresh truncation, the pair costs the truncation's round alone.

use ditto_core::Ring;
use ditto_core::fuse::{self, FuseMaterial, Products, Width};
use ditto_core::plan::Op;

use super::{len32, ring_id, scale};
use crate::engine::{Engine, Started};
use crate::plain;
use crate::range::Bound;
use crate::{MpcError, Shared};

/// What a fused truncation returns: t = x / 2^k (scale frac - k) and the products asked for
/// (a product not asked for is empty).
#[derive(Debug)]
pub struct Fused<R> {
    /// x / 2^k.
    pub t: Shared<R>,
    /// t^2 (scale 2 (frac - k)).
    pub square: Shared<R>,
    /// t v (scale frac - k + v.frac).
    pub mul: Shared<R>,
    /// t_i t_(i + n/2) over the two halves (scale 2 (frac - k), n/2 values).
    pub pair: Shared<R>,
}

/// The products a fused truncation computes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Want<'a, R> {
    /// t^2.
    pub square: bool,
    /// t v.
    pub mul: Option<&'a Shared<R>>,
    /// t_i t_(i + n/2).
    pub pair: bool,
}

impl Engine {
    /// x / 2^k (as [`Engine::trunc_a`]: floor or one more) and, in the same round, the
    /// products of the result that `want` asks for. The products are exact: t^2, t v,
    /// t_i t_(i+n/2) of the very t returned.
    pub async fn trunc_mul<R: Ring>(
        &mut self,
        x: &Shared<R>,
        k: u32,
        want: Want<'_, R>,
    ) -> Result<Fused<R>, MpcError> {
        self.trunc_mul_w(x, k, want, None).await
    }

    /// [`Engine::trunc_mul`], at narrower widths when `narrow` (Z_2^64 only,
    /// `Op::TruncMulNarrowA`, no pairs): x in [-2^(open-2), 2^(open-2)) with shares right
    /// modulo 2^open, the outputs (and `want.mul`) right modulo 2^out ([`fuse::Width`]). The
    /// reference is [`Engine::trunc_mul`]'s, without its range check: callers narrow where the
    /// values are small by construction or discarded (the exp's values below its clamp).
    pub(crate) async fn trunc_mul_w<R: Ring>(
        &mut self,
        x: &Shared<R>,
        k: u32,
        want: Want<'_, R>,
        narrow: Option<Width>,
    ) -> Result<Fused<R>, MpcError> {
        let n = x.len();
        if let Some(v) = want.mul {
            x.same_shape(v, "fused truncation operand")?;
        }
        let p = Products { square: want.square, mul: want.mul.is_some(), pair: want.pair };
        let shift = u8::try_from(k)
            .map_err(|_| MpcError::Scale { what: "fused truncation", detail: format!("shift {k}") })?;
        let len = len32("fused truncation", n)?;
        let (op, w) = match narrow {
            None => {
                let op = Op::TruncMulA {
                    ring: ring_id::<R>()?,
                    len,
                    shift,
                    square: p.square,
                    mul: p.mul,
                    pair: p.pair,
                };
                (op, Width::full(R::BITS))
            }
            Some(w) => {
                let bits = |b: u32| {
                    u8::try_from(b).map_err(|_| MpcError::Scale {
                        what: "fused truncation",
                        detail: format!("width {b}"),
                    })
                };
                let (open, out) = (bits(w.open)?, bits(w.out)?);
                if R::BITS != 64 || p.pair {
                    return Err(MpcError::Ring {
                        what: "narrow fused truncation",
                        expected: "Z_2^64, no pairs",
                        bits: R::BITS,
                    });
                }
                (Op::TruncMulNarrowA { len, shift, open, out, square: p.square, mul: p.mul }, w)
            }
        };
        self.fused(op, (k, w), x, p, want.mul, narrow.is_none()).await
    }

    /// t_ij v_j for x (rows x cols, row-major, any shape of that size) truncated by k (as
    /// [`Engine::trunc_a`]: floor or one more, per element) and v with one value per column,
    /// in one round (`Op::TruncMulColsA`): v - a opens once per column, not once per element.
    /// Scale x.frac - k + v.frac, x's shape.
    pub async fn trunc_mul_cols<R: Ring>(
        &mut self,
        x: &Shared<R>,
        k: u32,
        v: &Shared<R>,
    ) -> Result<Shared<R>, MpcError> {
        let (n, cols) = (x.len(), v.len());
        if cols == 0 || n % cols != 0 {
            return Err(MpcError::Shape {
                what: "column products",
                expected: vec![0, cols],
                got: x.shape.clone(),
            });
        }
        let shift = u8::try_from(k)
            .map_err(|_| MpcError::Scale { what: "column products", detail: format!("shift {k}") })?;
        let op = Op::TruncMulColsA {
            ring: ring_id::<R>()?,
            rows: len32("column products", n / cols)?,
            cols: len32("column products", cols)?,
            shift,
        };
        let p = Products { mul: true, ..Products::default() };
        Ok(self.fused(op, (k, Width::full(R::BITS)), x, p, Some(v), true).await?.mul)
    }

    /// Runs fused step `op` (truncation by k at widths w, products p; `v` per lane or per
    /// column, its length dividing x's), with the range check of full-width steps.
    async fn fused<R: Ring>(
        &mut self,
        op: Op,
        (k, w): (u32, Width),
        x: &Shared<R>,
        p: Products,
        v: Option<&Shared<R>>,
        check: bool,
    ) -> Result<Fused<R>, MpcError> {
        let n = x.len();
        let frac = x.frac.checked_sub(k).ok_or(MpcError::Scale {
            what: "fused truncation",
            detail: format!("cannot drop {k} bits from scale {}", x.frac),
        })?;
        // One operand value per lane, or per column.
        let nv = v.map_or(0, |v| v.len());
        let vfrac = v.map_or(0, |v| v.frac);
        let h = n / 2;
        // x's shape, [n/2] for pairs, [0] for a product not asked for.
        let shape = |data: Vec<R>, f: u32, full: bool| match (data.is_empty(), full) {
            (true, _) => Shared { data, shape: vec![0], frac: f },
            (false, true) => x.with_data(data, f),
            (false, false) => Shared { data, shape: vec![h], frac: f },
        };
        let assemble = |t: Vec<R>, sq: Option<Vec<R>>, tv: Option<Vec<R>>, pr: Option<Vec<R>>| Fused {
            square: shape(sq.unwrap_or_default(), 2 * frac, true),
            mul: shape(tv.unwrap_or_default(), frac + vfrac, true),
            pair: shape(pr.unwrap_or_default(), 2 * frac, false),
            t: shape(t, frac, true),
        };
        let b = match self.begin(op, scale("fused truncation", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => {
                let z = || vec![R::ZERO; n];
                return Ok(assemble(z(), p.square.then(z), p.mul.then(z), p.pair.then(|| vec![R::ZERO; h])));
            }
            Started::Plain => {
                if check {
                    self.check_range("trunc_mul", x, Bound::pow2(R::BITS - 2, false));
                }
                let t = plain::trunc_round(&x.data, k);
                let sq = p.square.then(|| t.iter().map(|a| a.mul(*a)).collect());
                let tv = v.map(|v| t.iter().enumerate().map(|(i, a)| a.mul(v.data[i % nv])).collect());
                let pr = p.pair.then(|| (0..h).map(|i| t[i].mul(t[i + h])).collect());
                return Ok(assemble(t, sq, tv, pr));
            }
        };
        let on = |b: bool, l: usize| if b { l } else { 0 };
        let z = |l: usize| vec![R::ZERO; l];
        let (mut r, mut rh, mut m) = (z(n), z(n), z(n));
        let (mut sq, mut a, mut ra, mut pr) =
            (z(on(p.square, 2 * n)), z(on(p.mul, nv)), z(on(p.mul, 2 * n)), z(on(p.pair, 3 * h)));
        let mut mat = FuseMaterial {
            r: &mut r,
            rh: &mut rh,
            m: &mut m,
            sq: &mut sq,
            a: &mut a,
            ra: &mut ra,
            pair: &mut pr,
        };
        self.expand(&b, |s, corr| fuse::expand_fuse(s, b.index, (k, w), p, corr, &mut mat))?;
        let v: &[R] = v.map_or(&[], |v| &v.data);
        let (mut y, mut f) = (z(n), z(on(p.mul, nv)));
        fuse::fuse_open(self.party(), w, (&x.data, mat.r), (v, mat.a), &mut y, &mut f)?;
        let (y, f) = self.open_two_bits(b.index, (&y, &f), (w.open, w.out)).await?;
        let parts = 1 + usize::from(p.square) + usize::from(p.mul);
        let mut out = z(parts * n + on(p.pair, h));
        fuse::fuse_finish(self.party(), (k, w), p, (&y, &f), v, &mat, &mut out)?;
        let mut it = out.chunks(n);
        let mut next = || it.next().map(<[R]>::to_vec).unwrap_or_default();
        let t = next();
        let sq = p.square.then(&mut next);
        let tv = p.mul.then(&mut next);
        let pr = p.pair.then(|| out[parts * n..].to_vec());
        Ok(assemble(t, sq, tv, pr))
    }
}
