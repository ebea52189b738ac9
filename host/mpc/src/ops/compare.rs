//! Comparisons: the sign bit (x < 0) as an arithmetic share by the radix comparison, 4 rounds
//! in Z_2^32 and Z_2^64 (`ditto_core::radix`), optionally times a shared value in the same
//! rounds, and what is built on it: ReLU and the row-wise maximum (a tree of comparisons whose
//! selections ride on them, ceil(log2 cols) levels of 4 rounds).

use ditto_core::Ring;
use ditto_core::plan::Op;
use ditto_core::radix::top::{self, TopMaterial, TopShape};
use ditto_core::radix::{self, RadixMaterial, RadixShape};
use ditto_core::ring::{RingId, reduce};

use super::machines::{CircuitBufs, RadixMachine, RadixParts, TopMachine, TopParts};
use super::{len32, ring_id, scale};
use crate::beside::{Machine, Pending};
use crate::engine::{Begun, Engine, Started};
use crate::plain;
use crate::{MpcError, Shared};

/// Whether a comparison step of `len` values on a `bits`-bit circuit spends the 3-round
/// form's dealer material (`Engine::sign_mul_top`): a 32-bit comparison with a product deals
/// 8 ring elements per value instead of 2, a 64-bit one 44 instead of 2. The limits keep
/// BERT-base/128 within its 1 GB dealer budget: its LayerNorm octaves (3,968 values on 64
/// bits), every level of its max tree (98,304 pairs and fewer), the
/// softmax's reciprocal octaves (12,288 values, on 32 bits since the row sums are small), and
/// every comparison of GPT-2's steps of 32 rows or of a generated token take 3 rounds.
pub fn top_pays(bits: u32, len: usize) -> bool {
    len <= if bits <= 32 { TOP_MAX_LEN_32 } else { TOP_MAX_LEN_64 }
}

/// The largest 32-bit comparison step in 3 rounds.
pub const TOP_MAX_LEN_32: usize = 98_304;
/// The largest 64-bit comparison step in 3 rounds.
pub const TOP_MAX_LEN_64: usize = 4096;

impl Engine {
    /// [x < 0] as a share of 0 or 1 (scale 0).
    pub async fn sign_a<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        let r = ring_id::<R>()?;
        let op = Op::SignRadixA { ring: r, out: r, len: len32("sign", x.len())?, mul: false };
        let b = match self.begin(op, scale("sign", x.frac, 0)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&x.shape, 0)),
            Started::Plain => return Ok(x.with_data(plain::sign(&x.data), 0)),
        };
        let m = self.radix_machine::<R, R>(&b, x.data.clone(), None)?;
        let (z, _) = self.run_machine::<R>(b.index, Box::new(m)).await?;
        Ok(x.with_data(z, 0))
    }

    /// [x < 0] for Z_2^64 shares of values with |x| < 2^31: each party reduces its share to the
    /// low 32 bits and the comparison runs in Z_2^32, with the result in Z_2^64 (about half the
    /// bytes of [`Engine::sign_a`] in Z_2^64). Outside that range the result is the sign of the
    /// low 32 bits, in the secure run and in the plaintext reference alike.
    pub async fn sign_low_a<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        Ok(self.sign32_run(x, None, false).await?.0)
    }

    /// [`Engine::sign_low_a`] when `narrow` (the caller has proven |x| < 2^31), else
    /// [`Engine::sign_a`].
    pub async fn sign_with<R: Ring>(&mut self, x: &Shared<R>, narrow: bool) -> Result<Shared<R>, MpcError> {
        if narrow { self.sign_low_a(x).await } else { self.sign_a(x).await }
    }

    /// ([x < 0], [x < 0] * v (v's scale)) in the rounds of the sign alone: v - a is opened
    /// beside the masked x and the product rides on the last round (`ditto_core::radix`).
    /// `narrow` as in [`Engine::sign_with`].
    pub async fn sign_mul<R: Ring>(
        &mut self,
        x: &Shared<R>,
        v: &Shared<R>,
        narrow: bool,
    ) -> Result<(Shared<R>, Shared<R>), MpcError> {
        x.same_shape(v, "sign_mul")?;
        if narrow {
            return self.sign32_run(x, Some(v), false).await;
        }
        self.sign_mul_full(x, v, false).await
    }

    /// ([x < 0], [x < 0] v) on a circuit of R's full width; `top`: the 3-round form.
    async fn sign_mul_full<R: Ring>(
        &mut self,
        x: &Shared<R>,
        v: &Shared<R>,
        top: bool,
    ) -> Result<(Shared<R>, Shared<R>), MpcError> {
        let (r, len) = (ring_id::<R>()?, len32("sign", x.len())?);
        let op = if top {
            Op::SignRadixTopA { ring: r, out: r, len, mul: true }
        } else {
            Op::SignRadixA { ring: r, out: r, len, mul: true }
        };
        let b = match self.begin(op, scale("sign", x.frac, v.frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok((Shared::zeros(&x.shape, 0), Shared::zeros(&x.shape, v.frac))),
            Started::Plain => {
                let s = plain::sign(&x.data);
                let sv = plain::select(&s, &v.data);
                return Ok((x.with_data(s, 0), x.with_data(sv, v.frac)));
            }
        };
        let (xd, vd) = (x.data.clone(), Some(v.data.clone()));
        let m: Box<dyn Machine> = if top {
            Box::new(self.top_machine::<R, R>(&b, xd, (vd, false))?)
        } else {
            Box::new(self.radix_machine::<R, R>(&b, xd, vd)?)
        };
        let (s, sv) = self.run_machine::<R>(b.index, m).await?;
        Ok((x.with_data(s, 0), x.with_data(sv, v.frac)))
    }

    /// [x < 0] as [`Engine::sign_with`] computes it, started beside the following steps: its
    /// rounds ride on their exchanges (`crate::beside`; plan op `SignRadixBesideA`, no round
    /// of its own). [`Engine::land`] gives (the sign's data, empty) where it is needed.
    pub(crate) async fn sign_beside<R: Ring>(
        &mut self,
        x: &Shared<R>,
        narrow: bool,
    ) -> Result<Pending<(Vec<R>, Vec<R>)>, MpcError> {
        let out = ring_id::<R>()?;
        let narrow = narrow && R::BITS == 64;
        let ring = if narrow { RingId::Z32 } else { out };
        let op = Op::SignRadixBesideA { ring, out, len: len32("sign", x.len())?, mul: false };
        let b = match self.begin(op, scale("sign", x.frac, 0)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Pending::Ready((vec![R::ZERO; x.len()], Vec::new()))),
            Started::Plain if narrow => {
                self.check_range("sign_low_a", x, crate::range::Bound::pow2(31, false));
                let low: Vec<u32> = x.data.iter().map(|v| reduce::<R, u32>(*v)).collect();
                let s = plain::sign(&low).into_iter().map(|v| R::from_u64(u64::from(v))).collect();
                return Ok(Pending::Ready((s, Vec::new())));
            }
            Started::Plain => return Ok(Pending::Ready((plain::sign(&x.data), Vec::new()))),
        };
        let m: Box<dyn Machine> = if narrow {
            let low: Vec<u32> = x.data.iter().map(|v| reduce::<R, u32>(*v)).collect();
            Box::new(self.radix_machine::<u32, R>(&b, low, None)?)
        } else {
            Box::new(self.radix_machine::<R, R>(&b, x.data.clone(), None)?)
        };
        self.ride(b.index, m);
        Ok(Pending::Riding(b.index))
    }

    /// ([x < 0], [x < 0] * v) in 3 rounds (`ditto_core::radix::top`): the same results as
    /// [`Engine::sign_mul`] (`narrow` as there), one round fewer; the dealer deals more per
    /// value (8 ring elements instead of 2 for a 32-bit circuit, 44 for a 64-bit one), so
    /// callers spend it where values are few ([`top_pays`]).
    pub async fn sign_mul_top<R: Ring>(
        &mut self,
        x: &Shared<R>,
        v: &Shared<R>,
        narrow: bool,
    ) -> Result<(Shared<R>, Shared<R>), MpcError> {
        x.same_shape(v, "sign_mul")?;
        if R::BITS == 32 || narrow {
            return self.sign32_run(x, Some(v), true).await;
        }
        self.sign_mul_full(x, v, true).await
    }

    /// [`Engine::sign_mul_top`] where [`top_pays`] for `len` values on the circuit, else
    /// [`Engine::sign_mul`].
    pub async fn sign_mul_fit<R: Ring>(
        &mut self,
        x: &Shared<R>,
        v: &Shared<R>,
        narrow: bool,
    ) -> Result<(Shared<R>, Shared<R>), MpcError> {
        let bits = if narrow { 32 } else { R::BITS };
        if top_pays(bits, x.len()) {
            self.sign_mul_top(x, v, narrow).await
        } else {
            self.sign_mul(x, v, narrow).await
        }
    }

    /// The sign on a 32-bit circuit, result in R (for R = Z_2^64 the narrow sign: each party
    /// reduces its share to the low 32 bits), and its product with `v` if given (else empty);
    /// `top`: the 3-round form.
    async fn sign32_run<R: Ring>(
        &mut self,
        x: &Shared<R>,
        v: Option<&Shared<R>>,
        top: bool,
    ) -> Result<(Shared<R>, Shared<R>), MpcError> {
        let out = ring_id::<R>()?;
        if out == RingId::Z32 && !top {
            return Err(MpcError::Ring { what: "sign_low_a", expected: "Z_2^64", bits: R::BITS });
        }
        let frac_out = v.map_or(0, |v| v.frac);
        let (len, mul) = (len32("sign", x.len())?, v.is_some());
        let op = if top {
            Op::SignRadixTopA { ring: RingId::Z32, out, len, mul }
        } else {
            Op::SignRadixA { ring: RingId::Z32, out, len, mul }
        };
        let started = self.begin(op, scale("sign", x.frac, frac_out)?).await?;
        let none = || Shared::zeros(&[0], frac_out);
        if matches!(started, Started::Planned) {
            let sv = v.map_or_else(none, |_| Shared::zeros(&x.shape, frac_out));
            return Ok((Shared::zeros(&x.shape, 0), sv));
        }
        let low: Vec<u32> = x.data.iter().map(|v| reduce::<R, u32>(*v)).collect();
        let b = match started {
            Started::Run(b) => b,
            Started::Planned | Started::Plain => {
                if out == RingId::Z64 {
                    self.check_range("sign_low_a", x, crate::range::Bound::pow2(31, false));
                }
                let s: Vec<R> = plain::sign(&low).into_iter().map(|v| R::from_u64(u64::from(v))).collect();
                let sv = v.map_or_else(none, |v| x.with_data(plain::select(&s, &v.data), frac_out));
                return Ok((x.with_data(s, 0), sv));
            }
        };
        let vd = v.map(|v| v.data.clone());
        let m: Box<dyn Machine> = if top {
            Box::new(self.top_machine::<u32, R>(&b, low, (vd, false))?)
        } else {
            Box::new(self.radix_machine::<u32, R>(&b, low, vd)?)
        };
        let (s, sv) = self.run_machine::<R>(b.index, m).await?;
        let sv = if v.is_some() { x.with_data(sv, frac_out) } else { none() };
        Ok((x.with_data(s, 0), sv))
    }

    /// The radix comparison's machine for a begun step: circuit on ring `C`, result (and
    /// multiplicand) in ring `O`.
    fn radix_machine<C: Ring, O: Ring>(
        &self,
        b: &Begun,
        x: Vec<C>,
        v: Option<Vec<O>>,
    ) -> Result<RadixMachine<C, O>, MpcError> {
        let n = x.len();
        let sh = RadixShape::new(C::BITS, n);
        let (g, k) = (sh.groups(), v.as_ref().map_or(0, |_| n));
        let mut p = RadixParts {
            c: CircuitBufs::new(&sh, n, (sh.mask_words(), sh.prod_words())),
            db: vec![0u64; g],
            da: vec![O::ZERO; n],
            ma: vec![O::ZERO; k],
            mc: vec![O::ZERO; k],
        };
        self.expand(b, |s, corr| {
            let mut m = RadixMaterial {
                c: p.c.view(),
                dabit_b: &mut p.db,
                dabit_a: &mut p.da,
                mul_a: &mut p.ma,
                mul_c: &mut p.mc,
            };
            radix::expand_radix(s, b.index, corr, &mut m)
        })?;
        Ok(RadixMachine::new(self.party(), p, x, v))
    }

    /// The 3-round comparison's machine for a begun step (`ditto_core::radix::top`): circuit
    /// on ring `C`, result (and multiplicand) in ring `O`.
    pub(crate) fn top_machine<C: Ring, O: Ring>(
        &self,
        b: &Begun,
        x: Vec<C>,
        (v, late): (Option<Vec<O>>, bool),
    ) -> Result<TopMachine<C, O>, MpcError> {
        let n = x.len();
        let sh = TopShape::new(C::BITS, n);
        let (k, mn) = (if v.is_some() || late { n } else { 0 }, sh.monomials());
        let mut p = TopParts {
            c: CircuitBufs::new(&sh.radix, n, (sh.mask_words(), sh.prod_words())),
            mono: vec![O::ZERO; mn * n],
            ma: vec![O::ZERO; k],
            mc: vec![O::ZERO; mn * k],
        };
        self.expand(b, |s, corr| {
            let mut m = TopMaterial { c: p.c.view(), mono: &mut p.mono, mul_a: &mut p.ma, mul_c: &mut p.mc };
            top::expand_radix_top(s, b.index, corr, &mut m)
        })?;
        Ok(TopMachine::new(self.party(), p, x, v, late))
    }

    /// Runs a comparison machine with exchanges of its own step; (sign, product or empty).
    async fn run_machine<O: Ring>(
        &mut self,
        index: u32,
        m: Box<dyn Machine>,
    ) -> Result<(Vec<O>, Vec<O>), MpcError> {
        self.ride(index, m);
        self.land(Pending::Riding(index)).await
    }

    /// [x < y] as a share of 0 or 1 (scale 0).
    pub async fn lt<R: Ring>(&mut self, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>, MpcError> {
        let d = self.sub(x, y)?;
        self.sign_a(&d).await
    }

    /// max(x, 0) = x * (1 - [x < 0]) (one sign and one mul; same scale as x).
    pub async fn relu<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        let s = self.sign_a(x).await?;
        let keep = self.add_const(&self.neg(&s), R::ONE);
        self.mul_aa(x, &keep).await
    }
}
