//! Non-linear functions (DESIGN.md §6), written once on the engine so that the same code runs
//! securely, as the plaintext fixed-point reference ([`Engine::plaintext`]) and as a planner.
//!
//! * `exp_neg`: e^x for x <= 0 by the limit form (1 + x/2^n)^(2^n), n = 5 by default; inputs
//!   below -14 give exactly 0. Rounds: sign (8 in Z_2^64) + 1 + 2n + 1.
//! * `reciprocal` (x in [2^lo, 2^hi)) and `rsqrt` (x in [2^lo, 2^hi)): the octave of x from one
//!   batched comparison against the powers of two; on z = x / 2^(octave+1) in [0.5, 1) the
//!   initial guesses 48/17 - 32/17 z and 1.80168 - 0.828427 z (relative error <= 1/17 and
//!   <= 2.7%), Newton iterations, then a scaling by the public per-octave factor. Reciprocal:
//!   3 of w(2 - zw) (relative error 1/17 -> 3.5e-3 -> 1.2e-5 -> 1.5e-10). Rsqrt: 3 of
//!   (3 w - z w^3) / 2 with z w and w^2 in one batched product, 4 rounds each (2.7% -> 1.1e-3
//!   -> 1.8e-6 -> 5e-12; the third step is kept for variances outside the calibrated octaves,
//!   where the initial guess is off by more: MiniLM with calibrated scales needs it).
//! * `gelu_quad`: 0.125x^2 + 0.25x + 0.5 (Ditto / MPCFormer), one square and one truncation.
//! * `gelu_poly`: PUMA's piecewise polynomial: 0 below -4, a cubic on [-4, -1.95), a degree-6
//!   polynomial on [-1.95, 3], x above 3. Measured max error against the exact GeLU: 0.0199,
//!   at x = 3 (PUMA quotes about 0.014).
//! * `softmax` (in [`crate::softmax`]): row-wise, optional public mask (masked entries get
//!   exactly 0), max subtraction.
//! * `layernorm`: mean, variance, rsqrt(var + eps) (its octaves compared on var's sum beside
//!   var's truncation, [`crate::octave`]), affine with shared gamma (opened once per column) and
//!   beta.
//! * `clip`: lo + relu(x - lo) - relu(x - hi).
//! * `tanh` (BERT's pooler): s (2 / (1 + e^(-2|x|)) - 1) with s = 1 - 2[x < 0], from one sign,
//!   `exp_neg` and a reciprocal on [1, 2]; within 4 ulps of ±1 once |x| > 7.

use ditto_core::Ring;
use ditto_core::radix;
use ditto_core::ring::RingId;

use crate::beside::Pending;
use crate::engine::Engine;
use crate::octave::OctavesBeside;
use crate::ops::fuse::Want;
use crate::ops::ring_id;
use crate::{MpcError, Shared};

/// The same values under another scale label.
fn relabel<R: Ring>(x: &Shared<R>, frac: u32) -> Shared<R> {
    Shared { frac, ..x.clone() }
}

/// A public real as an integer at `frac` fractional bits.
pub fn fx<R: Ring>(v: f64, frac: u32) -> Result<R, MpcError> {
    Ok(ditto_core::fixed::encode(v, frac)?)
}

/// Per-row broadcast of a vector (rows) to rows x cols.
pub(crate) fn broadcast_rows<R: Ring>(v: &Shared<R>, rows: usize, cols: usize) -> Shared<R> {
    let data = (0..rows * cols).map(|i| v.data[i / cols]).collect();
    Shared { data, shape: vec![rows, cols], frac: v.frac }
}

/// Per-column broadcast of a vector (cols) to rows x cols.
fn broadcast_cols<R: Ring>(v: &Shared<R>, rows: usize, cols: usize) -> Shared<R> {
    let data = (0..rows * cols).map(|i| v.data[i % cols]).collect();
    Shared { data, shape: vec![rows, cols], frac: v.frac }
}

/// Row sums of rows x cols (local).
pub(crate) fn row_sums<R: Ring>(x: &Shared<R>, rows: usize, cols: usize) -> Shared<R> {
    let data =
        (0..rows).map(|r| x.data[r * cols..(r + 1) * cols].iter().fold(R::ZERO, |a, b| a.add(*b))).collect();
    Shared { data, shape: vec![rows], frac: x.frac }
}

pub(crate) fn concat<R: Ring>(parts: &[&Shared<R>]) -> Shared<R> {
    let data: Vec<R> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
    let n = data.len();
    Shared { data, shape: vec![n], frac: parts.first().map_or(0, |p| p.frac) }
}

pub(crate) fn part<R: Ring>(x: &Shared<R>, i: usize, n: usize, shape: &[usize]) -> Shared<R> {
    Shared { data: x.data[i * n..(i + 1) * n].to_vec(), shape: shape.to_vec(), frac: x.frac }
}

pub(crate) fn rows_cols(x: &Shared<impl Ring>, what: &'static str) -> Result<(usize, usize), MpcError> {
    match x.shape[..] {
        [r, c] => Ok((r, c)),
        _ => Err(MpcError::Shape { what, expected: vec![0, 0], got: x.shape.clone() }),
    }
}

/// The exp chain's widths in Z_2^64 ([`ditto_core::fuse::Width`]; none in Z_2^32 or when
/// 2f + 3 exceeds 64). An input kept by the clamp has |x| <= 14 < 2^4, so the first truncation (by n) opens
/// f + 6 bits; every (t + 1)^2 and later square lies in [0, 1 + a few ulps] at scale 2f, below
/// 2^(2f+1), so the squarings open and compute modulo 2^(2f+3); the last step (the product with
/// the clamp's mask) gives full-width outputs. An input below the clamp leaves the range, and
/// its garbage is multiplied by 0.
pub(crate) fn exp_widths<R: Ring>(f: u32, n: u32) -> [Option<ditto_core::fuse::Width>; 3] {
    use ditto_core::fuse::Width;
    let sq = 2 * f + 3;
    let first = Width { open: f + 6, out: sq };
    if R::BITS != 64 || !first.fits(64, n) || !Width::full(sq).fits(64, f) {
        return [None; 3];
    }
    [Some(first), Some(Width::full(sq)), Some(Width { open: sq, out: 64 })]
}

impl Engine {
    /// x / 2^k at the same scale (a truncation relabelled).
    pub async fn div_pow2<R: Ring>(&mut self, x: &Shared<R>, k: u32) -> Result<Shared<R>, MpcError> {
        let t = self.trunc_a(x, k).await?;
        Ok(Shared { frac: x.frac, ..t })
    }

    /// x * y at x's scale (y at scale `y.frac`), one mul and one truncation.
    pub async fn mul_fx<R: Ring>(&mut self, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>, MpcError> {
        let p = self.mul_aa(x, y).await?;
        self.trunc_a(&p, y.frac).await
    }

    /// e^x for x <= 0 (see the module docs); `n` squarings.
    pub async fn exp_neg<R: Ring>(&mut self, x: &Shared<R>, n: u32) -> Result<Shared<R>, MpcError> {
        self.exp_neg_with(x, n, false).await
    }

    /// [`Engine::exp_neg`]; `narrow`: |x| < 2^30 as ring integers (Z_2^64), so the clamp's
    /// comparison runs on 32 bits ([`Engine::sign_low_a`]).
    pub async fn exp_neg_with<R: Ring>(
        &mut self,
        x: &Shared<R>,
        n: u32,
        narrow: bool,
    ) -> Result<Shared<R>, MpcError> {
        let f = x.frac;
        let shifted = self.add_const(x, fx(14.0, f)?);
        // The clamp's comparison rides on the chain's rounds before the last (n of them) when
        // they are enough to carry it; it is needed only by the last.
        let ring = if narrow && R::BITS == 64 { RingId::Z32 } else { ring_id::<R>()? };
        let below = if n >= radix::rounds(ring) {
            self.sign_beside(&shifted, narrow).await?
        } else {
            Pending::Ready((self.sign_with(&shifted, narrow).await?.data, Vec::new()))
        };
        // t_0 = x / 2^n + 1 and each t_(i+1) = t_i^2 / 2^f: every truncation carries the next
        // square (or, last, the product with the mask) in its round.
        let [first_w, mid_w, last_w] = exp_widths::<R>(f, n);
        let sq_want = Want { square: true, ..Want::default() };
        let first = self.trunc_mul_w(x, n, sq_want, first_w).await?;
        let t0 = relabel(&first.t, f);
        let c = fx::<R>(1.0, f)?;
        // (t0 + c)^2 = t0^2 + 2 c t0 + c^2 at scale 2f.
        let sq = relabel(&first.square, 2 * f);
        let mut sq = self.add_const(&self.add(&sq, &self.mul_const(&t0, c.add(c), f))?, c.mul(c));
        for _ in 1..n {
            sq = self.trunc_mul_w(&sq, f, sq_want, mid_w).await?.square;
        }
        let (below, _) = self.land(below).await?;
        let keep = self.add_const(&self.neg(&shifted.with_data(below, 0)), R::ONE);
        Ok(self.trunc_mul_w(&sq, f, Want { mul: Some(&keep), ..Want::default() }, last_w).await?.mul)
    }

    /// tanh(x) (see the module docs); `n` squarings in the exp.
    pub async fn tanh<R: Ring>(&mut self, x: &Shared<R>, n: u32) -> Result<Shared<R>, MpcError> {
        let (f, shape) = (x.frac, x.shape.clone());
        let x = &Shared { shape: vec![x.len()], ..x.clone() };
        let neg = self.sign_a(x).await?;
        let s = self.add_const(&self.mul_const(&neg, fx(-2.0, 0)?, 0), R::ONE);
        let a = self.mul_aa(x, &s).await?;
        let t = self.exp_neg(&self.mul_const(&a, fx(-2.0, 0)?, 0), n).await?;
        let r = self.reciprocal(&self.add_const(&t, fx(1.0, f)?), 0, 2).await?;
        let th = self.add_const(&self.mul_const(&r, fx(2.0, 0)?, 0), fx(-1.0, f)?);
        Ok(Shared { shape, ..self.mul_aa(&th, &s).await? })
    }

    /// 1/x for x in [2^lo, 2^hi) at x's scale (see the module docs). Newton runs on the
    /// normalised z = x / 2^(octave+1) in [0.5, 1), where every intermediate is near 1 and
    /// keeps full precision; the result is 2^-(octave+1) / z.
    pub async fn reciprocal<R: Ring>(
        &mut self,
        x: &Shared<R>,
        lo: i32,
        hi: i32,
    ) -> Result<Shared<R>, MpcError> {
        let wp = self.reciprocal_pre(x, lo, hi).await?;
        self.trunc_a(&wp, x.frac).await
    }

    /// [`Engine::reciprocal`] before its last truncation (scale 2f), for a caller that fuses
    /// that truncation with its own product.
    pub async fn reciprocal_pre<R: Ring>(
        &mut self,
        x: &Shared<R>,
        lo: i32,
        hi: i32,
    ) -> Result<Shared<R>, MpcError> {
        let f = x.frac;
        let (o, z) = self.normalise(x, (lo, hi), None, "reciprocal").await?;
        let p = self.weigh(&o, |j| 2f64.powi(-(j + 1)), lo, f)?;
        let g = self.add_const(&self.mul_const(&z, fx(-32.0 / 17.0, f)?, f), fx(48.0 / 17.0, 2 * f)?);
        // w = g / 2^f with w z in its round; then per step zw = (w z) / 2^f with zw w in its
        // round, and w' = (2w - zw w) / 2^f with the next w' z (or, last, w' p) in its round.
        let r = self.trunc_mul(&g, f, Want { mul: Some(&z), ..Want::default() }).await?;
        let (mut w, mut pre) = (r.t, r.mul);
        for i in 0..3 {
            let r = self.trunc_mul(&pre, f, Want { mul: Some(&w), ..Want::default() }).await?;
            let zww = r.mul;
            let wu = self.sub(&self.mul_const(&w, fx(2.0, f)?, f), &zww)?;
            let next = if i < 2 { &z } else { &p };
            let r = self.trunc_mul(&wu, f, Want { mul: Some(next), ..Want::default() }).await?;
            (w, pre) = (r.t, r.mul);
        }
        Ok(pre)
    }

    /// 1/sqrt(x) for x in [2^lo, 2^hi) at x's scale (see the module docs). Newton runs on the
    /// normalised z = x / 2^(octave+1) in [0.5, 1); the result is 2^-(octave+1)/2 / sqrt(z).
    pub async fn rsqrt<R: Ring>(&mut self, x: &Shared<R>, lo: i32, hi: i32) -> Result<Shared<R>, MpcError> {
        let wq = self.rsqrt_pre(x, lo, hi).await?;
        self.trunc_a(&wq, x.frac).await
    }

    /// [`Engine::rsqrt`] before its last truncation (scale 2f), for a caller that fuses that
    /// truncation with its own product.
    pub async fn rsqrt_pre<R: Ring>(
        &mut self,
        x: &Shared<R>,
        lo: i32,
        hi: i32,
    ) -> Result<Shared<R>, MpcError> {
        self.rsqrt_pre_with(x, (lo, hi), None).await
    }

    /// [`Engine::rsqrt_pre`] with the octave comparison already started beside x's
    /// truncation ([`Engine::octaves_beside`]) when given.
    pub async fn rsqrt_pre_with<R: Ring>(
        &mut self,
        x: &Shared<R>,
        (lo, hi): (i32, i32),
        started: Option<OctavesBeside<R>>,
    ) -> Result<Shared<R>, MpcError> {
        let f = x.frac;
        let (o, z) = self.normalise(x, (lo, hi), started, "rsqrt").await?;
        let q = self.weigh(&o, |j| 2f64.powf(-f64::from(j + 1) / 2.0), lo, f)?;
        let g = self.add_const(&self.mul_const(&z, fx(-0.828_427, f)?, f), fx(1.801_68, 2 * f)?);
        // Each step: [w^2, z w] ride on the round that truncates w, and v = (z w) (w^2) on the
        // round that truncates both; w' = (3 w - v) / 2 at scale f.
        let want_wz = Want { square: true, mul: Some(&z), pair: false };
        let r = self.trunc_mul(&g, f, want_wz).await?;
        let (mut w, mut w2, mut wz) = (r.t, r.square, r.mul);
        for _ in 0..2 {
            let t = self.rsqrt_step(&w, &w2, &wz, f).await?;
            let r = self.trunc_mul(&t, f + 1, want_wz).await?;
            (w, w2, wz) = (relabel(&r.t, f), relabel(&r.square, 2 * f), relabel(&r.mul, 2 * f));
        }
        let t = self.rsqrt_step(&w, &w2, &wz, f).await?;
        let r = self.trunc_mul(&t, f + 1, Want { mul: Some(&q), ..Want::default() }).await?;
        Ok(relabel(&r.mul, 2 * f))
    }

    /// One rsqrt Newton step before its truncation: 3 w 2^f - z w^3 at scale 2f (to be
    /// truncated by f + 1), with v = (z w) (w^2) on the round that truncates both.
    async fn rsqrt_step<R: Ring>(
        &mut self,
        w: &Shared<R>,
        w2: &Shared<R>,
        wz: &Shared<R>,
        f: u32,
    ) -> Result<Shared<R>, MpcError> {
        let both = self.trunc_mul(&concat(&[w2, wz]), f, Want { pair: true, ..Want::default() }).await?;
        let v = Shared { shape: w.shape.clone(), ..both.pair };
        self.sub(&self.mul_const(w, fx(3.0, f)?, f), &v)
    }

    /// 0.125x^2 + 0.25x + 0.5 at x's scale (Z_2^32 in Ditto mode).
    pub async fn gelu_quad<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        let sq = self.square_a(x).await?;
        self.gelu_quad_of(x, &sq).await
    }

    /// [`Engine::gelu_quad`] of x = u / 2^k, the truncation carrying the square in its round.
    pub async fn gelu_quad_pre<R: Ring>(&mut self, u: &Shared<R>, k: u32) -> Result<Shared<R>, MpcError> {
        let r = self.trunc_mul(u, k, Want { square: true, ..Want::default() }).await?;
        self.gelu_quad_of(&r.t, &r.square).await
    }

    /// [`Engine::gelu_quad_pre`] of a Z_2^32 u whose result a fixed-weight product takes next:
    /// the last truncation is a truncate-then-downcast, so that product opens nothing
    /// ([`Engine::matmul_after_down`]) and its round is gone. The truncation of u opens its
    /// 32 bits as before but gives x and x^2 right modulo 2^(f + 35) (`TruncMulNarrowA`,
    /// open 32, out f + 35), so s = x^2 + 2^(f+1) x + 2^(2f+2) is right modulo 2^(f+35) and its
    /// truncation by f + 3 opens f + 35 bits (`TruncDowncastNarrowA`: the wrap past 2^(f+35)
    /// costs 2^32, nothing modulo 2^32). Same values as [`Engine::gelu_quad_pre`] wherever that
    /// one's Z_2^32 square and sum stay in range (|s| < 2^30); beyond, this one stays exact up
    /// to |s| < 2^(f+33) and the output's own Z_2^32 range. Falls back to
    /// [`Engine::gelu_quad_pre`] when f + 35 > 63.
    pub async fn gelu_quad_down(&mut self, u: &Shared<u32>, k: u32) -> Result<Shared<u32>, MpcError> {
        let f = u.frac.checked_sub(k).ok_or(MpcError::Scale {
            what: "GeLU",
            detail: format!("cannot drop {k} bits from scale {}", u.frac),
        })?;
        let open = f + 35;
        if open > 63 {
            return self.gelu_quad_pre(u, k).await;
        }
        // The full-width truncation's admitted range; the narrow step skips its own check.
        self.check_range("trunc_mul", u, crate::range::Bound::pow2(30, false));
        // Any extension of a Z_2^32 share does (only its low 32 bits are opened); the
        // reference's value needs its sign.
        let wide =
            u.with_data(u.data.iter().map(|v| i64::from(v.cast_signed()).cast_unsigned()).collect(), u.frac);
        let w = ditto_core::fuse::Width { open: 32, out: open };
        let r = self.trunc_mul_w(&wide, k, Want { square: true, ..Want::default() }, Some(w)).await?;
        let lin = self.mul_const(&r.t, 1u64 << (f + 1), f);
        let s = self.add_const(&self.add(&r.square, &lin)?, 1u64 << (2 * f + 2));
        // s / 2^(2f+3) is the GeLU; one truncation by f + 3 leaves it at scale f.
        let g = self.trunc_downcast_narrow(&Shared { frac: 2 * f + 3, ..s }, (f + 3, 0), open).await?;
        Ok(g)
    }

    /// The Quad GeLU from x and x^2.
    async fn gelu_quad_of<R: Ring>(&mut self, x: &Shared<R>, sq: &Shared<R>) -> Result<Shared<R>, MpcError> {
        let f = x.frac;
        // (x^2 + 2x + 4) / 8: at scale 2f, then one truncation by f + 3.
        let lin = self.mul_const(x, R::pow2(f + 1), f);
        let s = self.add_const(&self.add(sq, &lin)?, R::pow2(2 * f + 2));
        let t = self.trunc_a(&s, f + 3).await?;
        Ok(Shared { frac: f, ..t })
    }

    /// PUMA's piecewise-polynomial GeLU at x's scale (Z_2^64 in accurate mode).
    pub async fn gelu_poly<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        const F0: [f64; 4] = [
            -0.505_403_119_970_817_4,
            -0.422_265_811_519_838_66,
            -0.118_076_129_511_819_53,
            -0.011_034_134_030_615_728,
        ];
        const F1: [f64; 7] = [
            0.008_526_321_541_038_084,
            0.5,
            0.360_329_269_278_962_9,
            0.0,
            -0.037_688_200_365_904_236,
            0.0,
            0.001_806_746_260_614_118_7,
        ];
        let (f, n) = (x.frac, x.len());
        let shape = x.shape.clone();
        // Selectors: [x < -4], [x < -1.95], [3 - x < 0].
        let a = self.add_const(x, fx(4.0, f)?);
        let b = self.add_const(x, fx(1.95, f)?);
        let c = self.add_const(&self.neg(x), fx(3.0, f)?);
        let s = self.sign_a(&concat(&[&a, &b, &c])).await?;
        let (c0, c1, c2) = (part(&s, 0, n, &shape), part(&s, 1, n, &shape), part(&s, 2, n, &shape));
        // Powers.
        let x2 = self.mul_fx(x, x).await?;
        let x34 = self.mul_fx(&concat(&[&x2, &x2]), &concat(&[x, &x2])).await?;
        let (x3, x4) = (part(&x34, 0, n, &shape), part(&x34, 1, n, &shape));
        let x6 = self.mul_fx(&x2, &x4).await?;
        let pw = [x.clone(), x2, x3, x4, Shared::zeros(&shape, f), x6];
        // Coefficients carry CF fractional bits (x^6 multiplies the quantisation error of
        // its coefficient by up to 729 on [-1.95, 3]); one truncation by CF brings each
        // polynomial back to scale f.
        const CF: u32 = 30;
        let poly = |e: &Engine, coef: &[f64]| -> Result<Shared<R>, MpcError> {
            let mut acc = e.add_const(&Shared::zeros(&shape, f + CF), fx(coef[0], f + CF)?);
            for (k, c) in coef.iter().enumerate().skip(1) {
                if *c != 0.0 {
                    acc = e.add(&acc, &e.mul_const(&pw[k - 1], fx(*c, CF)?, CF))?;
                }
            }
            Ok(acc)
        };
        let (p0, p1) = (poly(self, &F0)?, poly(self, &F1)?);
        let p01 = self.trunc_a(&concat(&[&p0, &p1]), CF).await?;
        let (p0, p1) = (part(&p01, 0, n, &shape), part(&p01, 1, n, &shape));
        // gelu = (c1 - c0) F0 + (1 - c1 - c2) F1 + c2 x.
        let w0 = self.sub(&c1, &c0)?;
        let w1 = self.add_const(&self.neg(&self.add(&c1, &c2)?), R::ONE);
        let prod = self.mul_aa(&concat(&[&w0, &w1, &c2]), &concat(&[&p0, &p1, x])).await?;
        let sum = self.add(
            &self.add(&part(&prod, 0, n, &shape), &part(&prod, 1, n, &shape))?,
            &part(&prod, 2, n, &shape),
        )?;
        Ok(sum)
    }

    /// LayerNorm over the rows of x (rows x h): (x - mean) / sqrt(var + eps) * gamma + beta,
    /// with var + eps in [2^lo, 2^hi).
    pub async fn layernorm<R: Ring>(
        &mut self,
        x: &Shared<R>,
        gamma: &Shared<R>,
        beta: &Shared<R>,
        eps: f64,
        octaves: (i32, i32),
    ) -> Result<Shared<R>, MpcError> {
        let (pre, k) = self.layernorm_pre(x, gamma, beta, eps, octaves).await?;
        let y = self.trunc_a(&pre, k).await?;
        Ok(Shared { frac: x.frac, ..y })
    }

    /// [`Engine::layernorm`] before its last truncation, and that truncation's shift: the
    /// product with gamma plus beta at gamma's scale more (adding beta 2^k before rounding
    /// equals adding beta after it), for a caller that fuses the truncation.
    pub async fn layernorm_pre<R: Ring>(
        &mut self,
        x: &Shared<R>,
        gamma: &Shared<R>,
        beta: &Shared<R>,
        eps: f64,
        (lo, hi): (i32, i32),
    ) -> Result<(Shared<R>, u32), MpcError> {
        let (rows, h) = rows_cols(x, "layernorm")?;
        let f = x.frac;
        let inv_h = fx::<R>(1.0 / h as f64, f)?;
        // The mean's truncation carries the centring and its square in its round.
        let (d, d2) = self.center_square(&self.mul_const(&row_sums(x, rows, h), inv_h, f), x, f).await?;
        let sq = self.trunc_a(&d2, f).await?;
        // var + eps's octaves are compared on var's sum, beside var's truncation.
        let (u, e) = (self.mul_const(&row_sums(&sq, rows, h), inv_h, f), fx::<R>(eps, f)?);
        let started = self.octaves_beside(&u, (f, e), (lo, hi)).await?;
        let var = self.trunc_a(&u, f).await?;
        let ve = self.add_const(&var, e);
        // rsqrt's last truncation (once per row) carries the products with its row of d (which
        // travels as what the centring opened), and that product's truncation the product with
        // gamma (opened once per column).
        let r = self.rsqrt_pre_with(&ve, (lo, hi), started).await?;
        let rd = self.trunc_mul_rows_centred(&r, f, d).await?;
        if gamma.len() != h {
            return Err(MpcError::Shape {
                what: "layernorm gamma",
                expected: vec![h],
                got: gamma.shape.clone(),
            });
        }
        let yg = self.trunc_mul_cols(&rd, f, gamma).await?;
        let b = self.rescale_up(&broadcast_cols(beta, rows, h), gamma.frac);
        Ok((self.add(&yg, &b)?, gamma.frac))
    }

    /// min(max(x, lo), hi) for public lo < hi (one batched ReLU).
    pub async fn clip<R: Ring>(&mut self, x: &Shared<R>, lo: f64, hi: f64) -> Result<Shared<R>, MpcError> {
        let f = x.frac;
        let a = self.add_const(x, fx(-lo, f)?);
        let b = self.add_const(x, fx(-hi, f)?);
        let r = self.relu(&concat(&[&a, &b])).await?;
        let n = x.len();
        let d = self.sub(&part(&r, 0, n, &x.shape), &part(&r, 1, n, &x.shape))?;
        Ok(self.add_const(&d, fx(lo, f)?))
    }
}
