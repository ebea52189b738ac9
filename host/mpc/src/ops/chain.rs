//! A ring conversion and a truncation in one round (`ditto_core::chain`): a truncation in
//! Z_2^64 whose result is downcast at once, and an upcast whose scaled result is truncated at
//! once. The plaintext reference is the two steps apart.

use ditto_core::beaver::{self, Dims};
use ditto_core::chain;
use ditto_core::convert;
use ditto_core::plan::Op;

use super::arith::Weight;
use super::{len32, scale};
use crate::engine::{Engine, Started};
use crate::plain;
use crate::range::Bound;
use crate::{MpcError, Shared};

/// What a matmul right after a truncate-then-downcast needs of it: which step it was, its
/// shift, its output's scale and size, and (secure runs) the public part of its output and
/// this party's share of the mask, so that the output is [P0] public - mask.
pub(crate) struct DownMark {
    /// Steps begun when it ended.
    after: usize,
    pub(crate) shift: u8,
    frac: u32,
    len: usize,
    pub(crate) public: Vec<u32>,
    mask: Vec<u32>,
}

fn shift8(what: &'static str, k: u32) -> Result<u8, MpcError> {
    u8::try_from(k).map_err(|_| MpcError::Scale { what, detail: format!("shift {k}") })
}

impl Engine {
    /// `downcast_a(trunc_a(x, k1), k2)` in the truncation's round (k1 + k2 <= 32; scale
    /// frac - k1 - k2).
    pub async fn trunc_downcast(
        &mut self,
        x: &Shared<u64>,
        k1: u32,
        k2: u32,
    ) -> Result<Shared<u32>, MpcError> {
        self.trunc_downcast_w(x, (k1, k2), 64).await
    }

    /// [`Engine::trunc_downcast`] of an x in [-2^(open-2), 2^(open-2)) whose shares are right
    /// modulo 2^open only, opening `open` bits (`Op::TruncDowncastNarrowA`;
    /// k1 + k2 + 32 <= open < 64). Its output feeds [`Engine::matmul_after_down`] alike.
    pub async fn trunc_downcast_narrow(
        &mut self,
        x: &Shared<u64>,
        (k1, k2): (u32, u32),
        open: u32,
    ) -> Result<Shared<u32>, MpcError> {
        if open >= 64 {
            return Err(MpcError::Scale {
                what: "narrow truncate-then-downcast",
                detail: format!("an opening of {open} bits is the full width"),
            });
        }
        self.trunc_downcast_w(x, (k1, k2), open).await
    }

    async fn trunc_downcast_w(
        &mut self,
        x: &Shared<u64>,
        (k1, k2): (u32, u32),
        open: u32,
    ) -> Result<Shared<u32>, MpcError> {
        let what = "truncate-then-downcast";
        let frac = x.frac.checked_sub(k1 + k2).ok_or(MpcError::Scale {
            what,
            detail: format!("cannot drop {} bits from scale {}", k1 + k2, x.frac),
        })?;
        if !chain::trunc_down_fits(k1, k2, open) {
            return Err(MpcError::Scale { what, detail: format!("shifts {k1} + {k2} in {open} bits") });
        }
        let n = x.len();
        let (shift, down) = (shift8(what, k1)?, shift8(what, k2)?);
        let len = len32(what, n)?;
        let op = if open == 64 {
            Op::TruncDowncastA { len, shift, down }
        } else {
            Op::TruncDowncastNarrowA { len, shift, down, open: shift8(what, open)? }
        };
        let started = self.begin(op, scale(what, x.frac, frac)?).await?;
        let after = self.steps_begun();
        let mark = |public, mask| DownMark { after, shift: shift + down, frac, len: n, public, mask };
        let b = match started {
            Started::Run(b) => b,
            Started::Planned => {
                self.down_mark = Some(mark(Vec::new(), Vec::new()));
                return Ok(Shared::zeros(&x.shape, frac));
            }
            Started::Plain => {
                self.check_range("trunc_downcast", x, Bound::pow2(open - 2, false));
                let t = x.with_data(plain::trunc_round(&x.data, k1), x.frac - k1);
                self.check_range("trunc_downcast", &t, Bound::pow2(31 + k2, false));
                self.down_mark = Some(mark(Vec::new(), Vec::new()));
                return Ok(x.with_data(plain::downcast_round(&t.data, k2), frac));
            }
        };
        let (mut r, mut d) = (vec![0u64; n], vec![0u32; n]);
        self.expand(&b, |s, corr| chain::expand_trunc_down(s, b.index, corr, &mut r, &mut d))?;
        let mut y = vec![0u64; n];
        chain::trunc_down_open(self.party(), open, &x.data, &r, &mut y)?;
        let opened = self.open_bits(b.index, &y, open).await?;
        let mut z = vec![0u32; n];
        chain::trunc_down_finish(self.party(), (k1, k2, open), &opened, &d, &mut z)?;
        let public = opened.iter().map(|y| chain::trunc_down_public((k1, k2, open), *y)).collect();
        self.down_mark = Some(mark(public, d));
        Ok(x.with_data(z, frac))
    }

    /// Whether `x` has the shape and scale of the output of the [`Engine::trunc_downcast`]
    /// just before (no step in between), so that [`Engine::matmul_after_down`] takes it. The
    /// same in every mode; a secure run also checks the data when the product begins.
    pub fn follows_downcast(&self, x: &Shared<u32>) -> bool {
        self.down_mark
            .as_ref()
            .is_some_and(|m| m.after == self.steps_begun() && m.len == x.len() && m.frac == x.frac)
    }

    /// [`Engine::matmul_fixed`] of `x`, the output of the [`Engine::trunc_downcast`] just
    /// before (no step in between): that step opened x plus a mask the dealer knows, so the
    /// product takes minus that mask as its A and opens nothing (`Op::MatMulDownA`, no round):
    /// Z_i = C_i + A_i F + E G_i with E that step's public part and A_i = -mask_i (so that
    /// A_i + [P0] E = x_i). Any other x is refused.
    pub async fn matmul_after_down(
        &mut self,
        x: &Shared<u32>,
        w: &Weight<u32>,
    ) -> Result<Shared<u32>, MpcError> {
        let (n, k) = super::arith::matmul_dims(x, w)?;
        let mark = self.take_down_mark(x, "a matmul after a downcast")?;
        let frac = x.frac + w.frac;
        let op = Op::MatMulDownA {
            n: len32("matmul", n)?,
            k: len32("matmul", k)?,
            m: len32("matmul", w.m)?,
            weight: w.id,
            shift: mark.shift,
        };
        let b = match self.begin(op, scale("matmul", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&[n, w.m], frac)),
            Started::Plain => return Ok(self.matmul_plain(x, w)),
        };
        let d = Dims { n, k, m: w.m };
        let mut z = vec![0u32; n * w.m];
        self.expand(&b, |s, corr| beaver::expand_matmul_c(s, b.index, d, corr, &mut z))?;
        let (fp, gp) = w.packed_for(w.id)?;
        if !self.add_product(b.index, &mut z)? {
            let a: Vec<u32> = mark.mask.iter().map(|d| d.wrapping_neg()).collect();
            self.gemm.gemm_acc_packed(&mut z, &a, fp, n);
        }
        self.gemm.gemm_acc_packed(&mut z, &mark.public, gp, n);
        Ok(Shared { data: z, shape: vec![n, w.m], frac })
    }

    /// The mark of the [`Engine::trunc_downcast`] just before, if `x` is its output (shape,
    /// scale, and in a secure run the data: x = [P0] public - mask); else an error for `what`.
    pub(crate) fn take_down_mark(
        &mut self,
        x: &Shared<u32>,
        what: &'static str,
    ) -> Result<DownMark, MpcError> {
        let mark = self.down_mark.take();
        let fits = |m: &DownMark| {
            m.after == self.steps_begun()
                && m.len == x.len()
                && m.frac == x.frac
                && (m.public.is_empty()
                    || x.data.iter().zip(&m.public).zip(&m.mask).all(|((x, p), d)| {
                        *x == if self.party().is_p0() { p.wrapping_sub(*d) } else { d.wrapping_neg() }
                    }))
        };
        mark.filter(fits).ok_or(MpcError::Mode {
            what,
            mode: "its input must be the output of the truncate-then-downcast just before it",
        })
    }

    /// `trunc_a(c * upcast_a(x), k)` in the upcast's round, for a public integer c > 0 with
    /// `c_frac` fractional bits (scale frac + c_frac - k).
    pub async fn upcast_trunc(
        &mut self,
        x: &Shared<u32>,
        c: u64,
        c_frac: u32,
        k: u32,
    ) -> Result<Shared<u64>, MpcError> {
        let frac = (x.frac + c_frac).checked_sub(k).ok_or(MpcError::Scale {
            what: "upcast-then-truncate",
            detail: format!("cannot drop {k} bits from scale {}", x.frac + c_frac),
        })?;
        let n = x.len();
        let shift = shift8("upcast-then-truncate", k)?;
        let op = Op::UpcastTruncA { len: len32("upcast-then-truncate", n)?, scale: c, shift };
        let b = match self.begin(op, scale("upcast-then-truncate", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&x.shape, frac)),
            Started::Plain => {
                self.check_range("upcast_trunc", x, Bound::pow2(convert::UPCAST_BOUND_BITS, true));
                let u: Vec<u64> = plain::upcast(&x.data).iter().map(|v| v.wrapping_mul(c)).collect();
                let u = x.with_data(u, x.frac + c_frac);
                self.check_range("upcast_trunc", &u, Bound::pow2(62, false));
                return Ok(x.with_data(plain::trunc_round(&u.data, k), frac));
            }
        };
        let (mut r, mut h, mut m) = (vec![0u32; n], vec![0u64; 2 * n], vec![0u64; 2 * n]);
        self.expand(&b, |s, corr| chain::expand_up_trunc(s, b.index, k, corr, &mut r, &mut h, &mut m))?;
        let mut y = vec![0u32; n];
        convert::upcast_a_open(self.party(), &x.data, &r, &mut y)?;
        let opened = self.open(b.index, &y).await?;
        let mut z = vec![0u64; n];
        chain::up_trunc_finish(self.party(), (c, k), &opened, &h, &m, &mut z)?;
        Ok(x.with_data(z, frac))
    }
}
