//! Comparisons: the sign bit (x < 0) as an arithmetic share by the radix comparison, 4 rounds
//! in Z_2^32 and Z_2^64 (`ditto_core::radix`), optionally times a shared value in the same
//! rounds, and what is built on it: ReLU and the row-wise maximum (a tree of comparisons whose
//! selections ride on them, ceil(log2 cols) levels of 4 rounds).

use ditto_core::compare;
use ditto_core::plan::Op;
use ditto_core::radix::{self, RadixMaterial, RadixShape};
use ditto_core::ring::{RingId, decode_slice, encode_slice, reduce};
use ditto_core::{Ring, bits};

use super::{len32, ring_id, scale};
use crate::engine::{Begun, Engine, Started};
use crate::plain;
use crate::{MpcError, Shared};

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
        let (z, _) = self.radix_run::<R, R>(&b, &x.data, None).await?;
        Ok(x.with_data(z, 0))
    }

    /// [x < 0] for Z_2^64 shares of values with |x| < 2^31: each party reduces its share to the
    /// low 32 bits and the comparison runs in Z_2^32, with the result in Z_2^64 (about half the
    /// bytes of [`Engine::sign_a`] in Z_2^64). Outside that range the result is the sign of the
    /// low 32 bits, in the secure run and in the plaintext reference alike.
    pub async fn sign_low_a<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        Ok(self.sign_low_run(x, None).await?.0)
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
            return self.sign_low_run(x, Some(v)).await;
        }
        let r = ring_id::<R>()?;
        let op = Op::SignRadixA { ring: r, out: r, len: len32("sign", x.len())?, mul: true };
        let b = match self.begin(op, scale("sign", x.frac, v.frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok((Shared::zeros(&x.shape, 0), Shared::zeros(&x.shape, v.frac))),
            Started::Plain => {
                let s = plain::sign(&x.data);
                let sv = plain::select(&s, &v.data);
                return Ok((x.with_data(s, 0), x.with_data(sv, v.frac)));
            }
        };
        let (s, sv) = self.radix_run::<R, R>(&b, &x.data, Some(&v.data)).await?;
        Ok((x.with_data(s, 0), x.with_data(sv, v.frac)))
    }

    /// The narrow sign (circuit on the low 32 bits, result in Z_2^64) and its product with `v`
    /// if given (else empty).
    async fn sign_low_run<R: Ring>(
        &mut self,
        x: &Shared<R>,
        v: Option<&Shared<R>>,
    ) -> Result<(Shared<R>, Shared<R>), MpcError> {
        if R::BITS != 64 {
            return Err(MpcError::Ring { what: "sign_low_a", expected: "Z_2^64", bits: R::BITS });
        }
        let frac_out = v.map_or(0, |v| v.frac);
        let op = Op::SignRadixA {
            ring: RingId::Z32,
            out: RingId::Z64,
            len: len32("sign", x.len())?,
            mul: v.is_some(),
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
                self.check_range("sign_low_a", x, crate::range::Bound::pow2(31, false));
                let s: Vec<R> = plain::sign(&low).into_iter().map(|v| R::from_u64(u64::from(v))).collect();
                let sv = v.map_or_else(none, |v| x.with_data(plain::select(&s, &v.data), frac_out));
                return Ok((x.with_data(s, 0), sv));
            }
        };
        let (s, sv) = self.radix_run::<u32, R>(&b, &low, v.map(|v| &v.data[..])).await?;
        let sv = if v.is_some() { x.with_data(sv, frac_out) } else { none() };
        Ok((x.with_data(s, 0), sv))
    }

    /// The radix comparison for a begun step: circuit on ring `C`, result (and multiplicand)
    /// in ring `O`; the sign, and its product with `v` if given (else empty).
    async fn radix_run<C: Ring, O: Ring>(
        &mut self,
        b: &Begun,
        x: &[C],
        v: Option<&[O]>,
    ) -> Result<(Vec<O>, Vec<O>), MpcError> {
        let n = x.len();
        let sh = RadixShape::new(C::BITS, n);
        let (g, mul) = (sh.groups(), v.map_or(0, |_| n));
        let mut r = vec![C::ZERO; n];
        let (mut msb, mut onehot) = (vec![0u64; g], vec![0u64; g * sh.onehot_words()]);
        let (mut masks, mut prods) = (vec![0u64; g * sh.mask_words()], vec![0u64; g * sh.prod_words()]);
        let (mut db, mut da) = (vec![0u64; g], vec![O::ZERO; n]);
        let (mut ma, mut mc) = (vec![O::ZERO; mul], vec![O::ZERO; mul]);
        self.expand(b, |s, corr| {
            let mut m = RadixMaterial {
                r: &mut r,
                msb: &mut msb,
                onehot: &mut onehot,
                masks: &mut masks,
                prods: &mut prods,
                dabit_b: &mut db,
                dabit_a: &mut da,
                mul_a: &mut ma,
                mul_c: &mut mc,
            };
            radix::expand_radix(s, b.index, corr, &mut m)
        })?;
        // Round 1: y = x + r, and f = v - a beside it.
        let y: Vec<C> = x.iter().zip(&r).map(|(x, r)| x.add(*r)).collect();
        let (y, f) = match v {
            None => (self.open(b.index, &y).await?, Vec::new()),
            Some(v) => {
                let f: Vec<O> = v.iter().zip(&ma).map(|(v, a)| v.sub(*a)).collect();
                let mut wire = vec![0u8; n * (C::BYTES + O::BYTES)];
                let (wy, wf) = wire.split_at_mut(n * C::BYTES);
                encode_slice(&y, wy)?;
                encode_slice(&f, wf)?;
                let peer = self.exchange_bytes(b.index, &wire).await?;
                if peer.len() != wire.len() {
                    let e =
                        ditto_net::NetError::Length { step: b.index, expected: wire.len(), got: peer.len() };
                    return Err(e.into());
                }
                let (py, pf) = peer.split_at(n * C::BYTES);
                let (mut ty, mut tf) = (vec![C::ZERO; n], vec![O::ZERO; n]);
                decode_slice(py, &mut ty)?;
                decode_slice(pf, &mut tf)?;
                let add = |a: &[C], b: &[C]| a.iter().zip(b).map(|(a, b)| a.add(*b)).collect::<Vec<_>>();
                (add(&y, &ty), f.iter().zip(&tf).map(|(a, b)| a.add(*b)).collect())
            }
        };
        let mut state = vec![0u64; g * sh.state_words()];
        radix::radix_leaves(&y, &onehot, &mut state)?;
        for level in 0..sh.levels() {
            let mut msg = vec![0u64; g * sh.level_msg_words(level)];
            radix::radix_level_open(&sh, level, &state, &masks, &mut msg)?;
            let peer = self.exchange_ring(b.index, &msg).await?;
            let mut opened = vec![0u64; msg.len()];
            bits::xor_into(&msg, &peer, &mut opened)?;
            radix::radix_level_finish(self.party(), &sh, level, &mut state, &opened, &masks, &prods)?;
        }
        let mut e = vec![0u64; g];
        radix::radix_b2a_open(self.party(), &y, &msb, &state, &db, &mut e)?;
        let peer = self.exchange_ring(b.index, &e).await?;
        let mut opened = vec![0u64; g];
        bits::xor_into(&e, &peer, &mut opened)?;
        let mut s = vec![O::ZERO; n];
        compare::sign_b2a_finish(self.party(), &opened, &da, &mut s)?;
        let mut sv = Vec::new();
        if let Some(v) = v {
            sv = vec![O::ZERO; n];
            radix::radix_mul_finish(&opened, &f, v, &da, &mc, &mut sv)?;
        }
        Ok((s, sv))
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

    /// The maximum of each row of x (rows x cols): ceil(log2 cols) levels, each one sign with
    /// its selection over all pairs of the level (the odd element passes through).
    pub async fn max_rows<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        self.max_rows_with(x, false).await
    }

    /// [`Engine::max_rows`]; `narrow`: every difference of two entries fits 31 bits (Z_2^64),
    /// so the comparisons run on 32 bits ([`Engine::sign_low_a`]).
    pub async fn max_rows_with<R: Ring>(
        &mut self,
        x: &Shared<R>,
        narrow: bool,
    ) -> Result<Shared<R>, MpcError> {
        let [rows, mut cols] = x.shape[..] else {
            return Err(MpcError::Shape { what: "max_rows", expected: vec![0, 0], got: x.shape.clone() });
        };
        let mut cur = x.clone();
        while cols > 1 {
            let half = cols / 2;
            let (mut a, mut bb) = (Vec::with_capacity(rows * half), Vec::with_capacity(rows * half));
            for r in 0..rows {
                for j in 0..half {
                    a.push(cur.data[r * cols + 2 * j]);
                    bb.push(cur.data[r * cols + 2 * j + 1]);
                }
            }
            let (a, bb) = (
                Shared { data: a, shape: vec![rows, half], frac: cur.frac },
                Shared { data: bb, shape: vec![rows, half], frac: cur.frac },
            );
            // max(a, b) = b + [b - a < 0] (a - b), the product in the comparison's rounds.
            let d = self.sub(&bb, &a)?;
            let (_, sel) = self.sign_mul(&d, &self.neg(&d), narrow).await?;
            let m = self.add(&bb, &sel)?;
            let next_cols = cols.div_ceil(2);
            let mut next = Vec::with_capacity(rows * next_cols);
            for r in 0..rows {
                next.extend_from_slice(&m.data[r * half..(r + 1) * half]);
                if cols % 2 == 1 {
                    next.push(cur.data[r * cols + cols - 1]);
                }
            }
            cur = Shared { data: next, shape: vec![rows, next_cols], frac: cur.frac };
            cols = next_cols;
        }
        Ok(cur)
    }

    /// The maximum of each row of x (rows x cols) and its column index (the first, on ties),
    /// as shares in x's ring (the index at scale 0): a tournament of ceil(log2 cols) levels,
    /// each one sign and one mul over all pairs of the level (the odd element passes through).
    /// With a = the left and b = the right entry of a pair, s = [a - b < 0] picks b:
    /// max = a + s (b - a) and index = i_a + s (i_b - i_a), both in one product, so ties keep
    /// the left (lower) index, which the tournament carries up: the first index of the maximum.
    /// Differences must fit the ring's sign (|a - b| < 2^(l-1)).
    pub async fn argmax_rows<R: Ring>(&mut self, x: &Shared<R>) -> Result<(Shared<R>, Shared<R>), MpcError> {
        let [rows, mut cols] = x.shape[..] else {
            return Err(MpcError::Shape { what: "argmax_rows", expected: vec![0, 0], got: x.shape.clone() });
        };
        let p0 = self.party().is_p0();
        let mut val = x.data.clone();
        // Public indices: P0 holds them, P1 holds zero.
        let mut idx: Vec<R> =
            (0..rows * cols).map(|i| if p0 { R::from_u64((i % cols) as u64) } else { R::ZERO }).collect();
        while cols > 1 {
            let half = cols / 2;
            let pick = |v: &[R], off: usize| -> Vec<R> {
                (0..rows)
                    .flat_map(|r| (0..half).map(move |j| (r, j)))
                    .map(|(r, j)| v[r * cols + 2 * j + off])
                    .collect()
            };
            let (a, b, ia, ib) = (pick(&val, 0), pick(&val, 1), pick(&idx, 0), pick(&idx, 1));
            let n = a.len();
            let d: Vec<R> = a.iter().zip(&b).map(|(a, b)| a.sub(*b)).collect();
            let s = self.sign_a(&Shared { data: d, shape: vec![n], frac: x.frac }).await?;
            // One product for both selections: [s, s] * [b - a, i_b - i_a] (raw integers; the
            // label `frac` of the concatenation does not enter the product).
            let ss = Shared { data: [s.data.clone(), s.data].concat(), shape: vec![2 * n], frac: 0 };
            let diff: Vec<R> = b.iter().zip(&a).chain(ib.iter().zip(&ia)).map(|(b, a)| b.sub(*a)).collect();
            let sel = self.mul_aa(&ss, &Shared { data: diff, shape: vec![2 * n], frac: x.frac }).await?;
            let next_cols = cols.div_ceil(2);
            let (mut nv, mut ni) =
                (Vec::with_capacity(rows * next_cols), Vec::with_capacity(rows * next_cols));
            for r in 0..rows {
                for j in 0..half {
                    let k = r * half + j;
                    nv.push(a[k].add(sel.data[k]));
                    ni.push(ia[k].add(sel.data[n + k]));
                }
                if cols % 2 == 1 {
                    nv.push(val[r * cols + cols - 1]);
                    ni.push(idx[r * cols + cols - 1]);
                }
            }
            (val, idx, cols) = (nv, ni, next_cols);
        }
        Ok((
            Shared { data: val, shape: vec![rows, 1], frac: x.frac },
            Shared { data: idx, shape: vec![rows, 1], frac: 0 },
        ))
    }
}
