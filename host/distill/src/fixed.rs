//! The plaintext fixed-point reference of `ditto-mpc` (its `Engine::plaintext` mode), emulated
//! on candle tensors that hold the real values `integer * 2^-f`: every truncation is
//! `floor(x 2^f + 1/2) / 2^f` (the reference rounds halves up), every public constant is
//! encoded as `ditto_core::fixed::encode` does (halves away from zero), and the non-linear
//! functions repeat the engine's steps one for one (`host/mpc/src/nonlinear.rs`): the exp limit
//! form, the octave selection, the Newton iterations of reciprocal and rsqrt. In f64, with
//! values in the ranges the QuantConfig admits, every step is exact, so the result equals the
//! reference bit for bit; in f32 (training) it is the same computation rounded.
//!
//! None of these functions has a useful gradient (floors, comparisons): the student combines
//! each with the float function it approximates through [`ste`].

use candle_core::{D, Result, Tensor};

/// 2^e.
pub(crate) fn p2(e: i64) -> f64 {
    2f64.powi(i32::try_from(e).unwrap_or(i32::MAX))
}

/// The public constant v at f fractional bits, as a real (`ditto_core::fixed::encode`).
pub fn fxr(v: f64, f: u32) -> f64 {
    (v * p2(i64::from(f))).round() / p2(i64::from(f))
}

/// round(x 2^f) / 2^f, halves up: the reference's truncation to f fractional bits.
pub fn rnd(x: &Tensor, f: u32) -> Result<Tensor> {
    x.affine(p2(i64::from(f)), 0.5)?.floor()?.affine(p2(-i64::from(f)), 0.0)
}

/// x encoded at f fractional bits with halves away from zero (how weights are encoded).
pub fn encode(x: &Tensor, f: u32) -> Result<Tensor> {
    x.affine(p2(i64::from(f)), 0.0)?.round()?.affine(p2(-i64::from(f)), 0.0)
}

/// The straight-through estimator: the value of `fixed`, the gradient of `float`.
pub fn ste(float: &Tensor, fixed: &Tensor) -> Result<Tensor> {
    float + (fixed - float)?.detach()
}

/// e^d for d <= 0 by (1 + d/2^n)^(2^n), exactly 0 below -14 (`Engine::exp_neg`).
pub fn exp_neg(d: &Tensor, n: u32, f: u32) -> Result<Tensor> {
    let keep = d.affine(1.0, fxr(14.0, f))?.ge(0.0)?.to_dtype(d.dtype())?;
    let mut t = rnd(&d.affine(p2(-i64::from(n)), 0.0)?, f)?.affine(1.0, fxr(1.0, f))?;
    for _ in 0..n {
        t = rnd(&t.sqr()?, f)?;
    }
    t * keep
}

/// sum over the octaves j in lo..hi of [2^j <= x < 2^(j+1)] * fx(c(j), f), the octave of x
/// clamped to lo..hi like the engine's one-hot selection (written as a telescoping sum of the
/// indicators [x >= 2^j]).
fn weigh(x: &Tensor, lo: i32, hi: i32, f: u32, c: impl Fn(i32) -> f64) -> Result<Tensor> {
    let mut acc = x.zeros_like()?.affine(1.0, fxr(c(lo), f))?;
    for j in lo + 1..hi {
        let b = x.ge(fxr(2f64.powi(j), f))?.to_dtype(x.dtype())?;
        acc = (acc + b.affine(fxr(c(j), f) - fxr(c(j - 1), f), 0.0)?)?;
    }
    Ok(acc)
}

/// 1/x for x in [2^lo, 2^hi) (`Engine::reciprocal`).
pub fn reciprocal(x: &Tensor, lo: i32, hi: i32, f: u32) -> Result<Tensor> {
    let p = weigh(x, lo, hi, f, |j| 2f64.powi(-(j + 1)))?;
    let z = rnd(&(x * &p)?, f)?;
    let mut w = rnd(&z.affine(fxr(-32.0 / 17.0, f), fxr(48.0 / 17.0, 2 * f))?, f)?;
    for _ in 0..3 {
        let zw = rnd(&(&z * &w)?, f)?;
        let u = zw.affine(-1.0, fxr(2.0, f))?;
        w = rnd(&(&w * u)?, f)?;
    }
    rnd(&(w * p)?, f)
}

/// 1/sqrt(x) for x in [2^lo, 2^hi) (`Engine::rsqrt`).
pub fn rsqrt(x: &Tensor, lo: i32, hi: i32, f: u32) -> Result<Tensor> {
    let p = weigh(x, lo, hi, f, |j| 2f64.powi(-(j + 1)))?;
    let q = weigh(x, lo, hi, f, |j| 2f64.powf(-f64::from(j + 1) / 2.0))?;
    let z = rnd(&(x * &p)?, f)?;
    let mut w = rnd(&z.affine(fxr(-0.828_427, f), fxr(1.801_68, 2 * f))?, f)?;
    for _ in 0..3 {
        let w2 = rnd(&w.sqr()?, f)?;
        let zw = rnd(&(&z * &w)?, f)?;
        let t = (w.affine(fxr(3.0, f), 0.0)? - (zw * w2)?)?;
        w = rnd(&t.affine(0.5, 0.0)?, f)?;
    }
    rnd(&(w * q)?, f)
}

/// Row-wise softmax over the last dimension at f fractional bits with n exp squarings
/// (`Engine::softmax`). `keep` (0/1, broadcastable to x) masks entries to exactly 0; it must
/// keep the first column of every row (causal and key-padding masks do), which masked entries
/// copy before the maximum is taken, as the engine does.
pub fn softmax(x: &Tensor, keep: Option<&Tensor>, n: u32, f: u32) -> Result<Tensor> {
    let cols = x.dim(D::Minus1)?;
    let x = match keep {
        Some(k) => {
            let first = x.narrow(D::Minus1, 0, 1)?.broadcast_as(x.shape())?;
            k.broadcast_as(x.shape())?.ne(0.0)?.where_cond(x, &first)?
        }
        None => x.clone(),
    };
    let m = x.max_keepdim(D::Minus1)?;
    let mut e = exp_neg(&x.broadcast_sub(&m)?, n, f)?;
    if let Some(k) = keep {
        e = e.broadcast_mul(k)?;
    }
    let s = e.sum_keepdim(D::Minus1)?;
    let hi = i32::try_from(usize::BITS - cols.leading_zeros()).unwrap_or(31) + 1;
    let r = reciprocal(&s, 0, hi, f)?;
    rnd(&e.broadcast_mul(&r)?, f)
}

/// LayerNorm over the last dimension at f fractional bits, var + eps in [2^lo, 2^hi)
/// (`Engine::layernorm`); gamma and beta already encoded at f.
pub fn layernorm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    (lo, hi): (i32, i32),
    f: u32,
) -> Result<Tensor> {
    #[allow(clippy::cast_precision_loss)]
    let inv_h = fxr(1.0 / x.dim(D::Minus1)? as f64, f);
    let mean = rnd(&x.sum_keepdim(D::Minus1)?.affine(inv_h, 0.0)?, f)?;
    let d = x.broadcast_sub(&mean)?;
    let sq = rnd(&d.sqr()?, f)?;
    let var = rnd(&sq.sum_keepdim(D::Minus1)?.affine(inv_h, 0.0)?, f)?;
    let r = rsqrt(&var.affine(1.0, fxr(eps, f))?, lo, hi, f)?;
    let y = rnd(&d.broadcast_mul(&r)?, f)?;
    rnd(&y.broadcast_mul(gamma)?, f)?.broadcast_add(beta)
}

/// 0.125 x^2 + 0.25 x + 0.5 at f fractional bits (`Engine::gelu_quad`).
pub fn gelu_quad(x: &Tensor, f: u32) -> Result<Tensor> {
    rnd(&(x.sqr()? + x.affine(2.0, 4.0)?)?.affine(0.125, 0.0)?, f)
}

/// The float Quad GeLU (the function [`gelu_quad`] computes in fixed point).
pub fn gelu_quad_float(x: &Tensor) -> Result<Tensor> {
    x.sqr()?.affine(0.125, 0.0)? + x.affine(0.25, 0.5)?
}
