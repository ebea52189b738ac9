//! The row-wise softmax (DESIGN.md §6): x - max over each row (a tournament of comparisons),
//! e^(x - max) by the limit form with its clamp beside it, the row sums' reciprocal, and one
//! row product. When the scores arrive in Z_2^32 and are upcast into it, the tournament's first
//! level compares the Z_2^32 scores beside the upcast ([`Engine::softmax_pre_upcast`]).

use ditto_core::Ring;
use ditto_core::plan::Tag;
use ditto_core::ring::reduce;

use crate::engine::Engine;
use crate::nonlinear::{broadcast_rows, exp_widths, row_sums, rows_cols};
use crate::ops::compare::top_pays;
use crate::ops::max::{level_next, level_pairs};
use crate::{MpcError, Shared};

/// Whether the exp of x - max (x at scale `frac`, `n` squarings, `narrow` comparisons) reads
/// its input modulo 2^32 alone, so the max may be computed modulo 2^32.
fn low32<R: Ring>(frac: u32, n: u32, narrow: bool) -> bool {
    narrow && R::BITS == 64 && exp_widths::<R>(frac, n)[0].is_some_and(|w| w.open <= 32)
}

impl Engine {
    /// Row-wise softmax of x (rows x cols) at x's scale; `keep` (public, rows x cols) masks
    /// entries to exactly 0 (e.g. GPT-2's causal mask; every row must keep one); `n` exp
    /// squarings. `narrow`: the caller guarantees |x| < 2^30 as ring integers (Z_2^64), so every
    /// difference of two entries fits 31 bits and the comparisons (row maximum, exp clamp) run
    /// on 32 bits ([`Engine::sign_low_a`]).
    pub async fn softmax<R: Ring>(
        &mut self,
        x: &Shared<R>,
        keep: Option<&[bool]>,
        n: u32,
        narrow: bool,
    ) -> Result<Shared<R>, MpcError> {
        let (pre, k) = self.softmax_pre(x, keep, n, narrow).await?;
        self.trunc_a(&pre, k).await
    }

    /// [`Engine::softmax`] before its last truncation, and that truncation's shift, for a
    /// caller that fuses the truncation with what follows.
    pub async fn softmax_pre<R: Ring>(
        &mut self,
        x: &Shared<R>,
        keep: Option<&[bool]>,
        n: u32,
        narrow: bool,
    ) -> Result<(Shared<R>, u32), MpcError> {
        let (_, cols) = rows_cols(x, "softmax")?;
        let x = &masked(x, keep, cols)?;
        // Where the exp reads x - max modulo 2^32 alone (its first truncation opens at most 32
        // bits, its clamp compares the low 32), the max is computed modulo 2^32.
        let m = if low32::<R>(x.frac, n, narrow) {
            self.max_rows_low32(x).await?
        } else {
            self.max_rows_with(x, narrow).await?
        };
        self.softmax_after_max(x, &m, keep, n, narrow).await
    }

    /// The softmax's steps after the row maxima m of the masked x.
    async fn softmax_after_max<R: Ring>(
        &mut self,
        x: &Shared<R>,
        m: &Shared<R>,
        keep: Option<&[bool]>,
        n: u32,
        narrow: bool,
    ) -> Result<(Shared<R>, u32), MpcError> {
        let (rows, cols) = rows_cols(x, "softmax")?;
        let m = Shared { shape: vec![rows], ..m.clone() };
        let d = self.sub(x, &broadcast_rows(&m, rows, cols))?;
        let mut e = self.exp_neg_with(&d, n, narrow).await?;
        if let Some(k) = keep {
            e =
                self.mul_public(&e, &k.iter().map(|&kv| R::from_bit(u64::from(kv))).collect::<Vec<_>>(), 0)?;
        }
        let s = row_sums(&e, rows, cols);
        let hi = i32::try_from(usize::BITS - cols.leading_zeros()).unwrap_or(31) + 1;
        // The reciprocal's last truncation, once per row, carries the products with its row of e.
        let r = self.reciprocal_pre(&s, 0, hi).await?;
        Ok((self.trunc_mul_rows(&r, e.frac, &e).await?, e.frac))
    }

    /// [`Engine::softmax_pre`] of the Z_2^64 scores `upcast_trunc(s, c, c_frac, k)` of the Z_2^32
    /// scores s (rows x cols), with the upcast (tagged `tags.0`; the rest `tags.1`) and the
    /// tournament's first level in the same rounds where the max is computed modulo 2^32: that
    /// level compares s itself, its comparison's first round riding on the upcast's and its
    /// selections taking the upcast's output. Since c > 0 and the upcast rounds monotonically,
    /// [a < b] on s picks the larger upcast value (either one on a tie of the upcast values),
    /// so the reference's maxima are unchanged; securely each is one of the row's values, within
    /// the truncation's ulp of the reference's.
    pub async fn softmax_pre_upcast(
        &mut self,
        s: &Shared<u32>,
        (c, c_frac, k): (u64, u32, u32),
        keep: Option<&[bool]>,
        n: u32,
        (narrow, tags): (bool, (Tag, Tag)),
    ) -> Result<(Shared<u64>, u32), MpcError> {
        let (rows, cols) = rows_cols(s, "softmax")?;
        let frac = (s.frac + c_frac).saturating_sub(k);
        let half = cols / 2;
        if !low32::<u64>(frac, n, narrow) || half == 0 || !top_pays(32, rows * half) {
            self.set_tag(tags.0);
            let s64 = self.upcast_trunc(s, c, c_frac, k).await?;
            self.set_tag(tags.1);
            return self.softmax_pre(&s64, keep, n, narrow).await;
        }
        // Level 1 on the Z_2^32 scores: max(a, b) = b + [b - a < 0] (a - b).
        let raw = masked(s, keep, cols)?;
        let (a, b) = level_pairs(&raw.data, rows, cols);
        let d: Vec<u32> = b.iter().zip(&a).map(|(b, a)| b.wrapping_sub(*a)).collect();
        self.set_tag(tags.1);
        let started = self
            .sign_mul_top_beside(&Shared { data: d, shape: vec![rows * half], frac: s.frac }, frac, false)
            .await?;
        self.set_tag(tags.0);
        let s64 = self.upcast_trunc(s, c, c_frac, k).await?;
        self.set_tag(tags.1);
        let x = masked(&s64, keep, cols)?;
        self.check_spread(&x);
        let low: Vec<u32> = x.data.iter().map(|v| reduce::<u64, u32>(*v)).collect();
        let (a, b) = level_pairs(&low, rows, cols);
        let v: Vec<u32> = a.iter().zip(&b).map(|(a, b)| a.wrapping_sub(*b)).collect();
        let (_, sel) =
            self.land_sign_mul(started, &Shared { data: v, shape: vec![rows * half], frac }).await?;
        let m1: Vec<u32> = b.iter().zip(&sel.data).map(|(b, s)| b.wrapping_add(*s)).collect();
        let next_cols = cols.div_ceil(2);
        let next = Shared { data: level_next(&m1, &low, rows, cols), shape: vec![rows, next_cols], frac };
        let m = self.max_rows_with(&next, false).await?;
        let m = self.widen32(&m);
        self.softmax_after_max(&x, &m, keep, n, narrow).await
    }
}

/// x with each masked entry replaced by a copy of its row's first kept entry: the maximum is
/// unchanged, every value stays in range, and its exp is zeroed later.
fn masked<R: Ring>(x: &Shared<R>, keep: Option<&[bool]>, cols: usize) -> Result<Shared<R>, MpcError> {
    Ok(match keep {
        Some(k) => {
            if k.len() != x.len() {
                return Err(MpcError::Shape {
                    what: "softmax mask",
                    expected: x.shape.clone(),
                    got: vec![k.len()],
                });
            }
            let mut data = x.data.clone();
            for (r, row) in k.chunks_exact(cols).enumerate() {
                let Some(first) = row.iter().position(|&kv| kv) else {
                    return Err(MpcError::EmptyMaskRow { row: r });
                };
                for c in (0..cols).filter(|&c| !row[c]) {
                    data[r * cols + c] = data[r * cols + first];
                }
            }
            Shared { data, ..x.clone() }
        }
        None => x.clone(),
    })
}
