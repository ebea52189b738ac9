//! A batched product X Y after a truncate-then-downcast, whose Y was opened beside earlier
//! steps (`Op::OpenBesideA`, `Op::MatMulDownAA`): the attention's P V, in no round of its own.
//!
//! The downcast opened its output X plus a mask the dealer knows, so X = E + A with E public
//! and A = -mask ([`Engine::trunc_downcast`]); F = Y - B travelled beside the steps between
//! (its round rides on their flights, `crate::beside`), with B from the opening step's streams.
//! With C = A B from the dealer: X Y = E F + E B + A F + A B, so party i's share is
//! Z_i = C_i + x_i F + E B_i (x_i = [P0] E + A_i). Each product uses its own opening once
//! (the plan hasher refuses a second use or a second opening before the first is used).

use ditto_core::beaver::{self, Gemm};
use ditto_core::plan::Op;

use super::arith::batched_dims;
use super::machines::OpenMachine;
use super::{len32, scale};
use crate::beside::Pending;
use crate::engine::{Engine, Started};
use crate::{MpcError, Shared};

/// Y - B opened beside the following steps, for [`Engine::matmul_aa_after_down`].
#[must_use = "an opening beside others is for one product"]
pub struct Opened {
    index: u32,
    len: usize,
    frac: u32,
    /// (the opened Y - B, this party's B) once landed; empty when planning or in plaintext.
    pending: Pending<(Vec<u32>, Vec<u32>)>,
}

impl Engine {
    /// Starts opening y - B beside the following steps (plan op `OpenBesideA`, no round of its
    /// own): its one round travels in the next exchange's flight.
    pub async fn open_beside(&mut self, y: &Shared<u32>) -> Result<Opened, MpcError> {
        let (index, len) = (len32("opening", self.steps_begun())?, y.len());
        let op = Op::OpenBesideA { len: len32("opening", len)? };
        let ready = |pending| Opened { index, len, frac: y.frac, pending };
        let b = match self.begin(op, scale("opening", y.frac, y.frac)?).await? {
            Started::Run(b) => b,
            Started::Planned | Started::Plain => return Ok(ready(Pending::Ready((Vec::new(), Vec::new())))),
        };
        let mut mask = vec![0u32; len];
        self.expand(&b, |s, _| {
            beaver::expand_open_beside(s, b.index, &mut mask);
            Ok(())
        })?;
        self.ride(b.index, Box::new(OpenMachine::new(y.data.clone(), mask)));
        Ok(ready(Pending::Riding(b.index)))
    }

    /// The batched product x y ([t, n, k] by [t, k, m]) of `x`, the output of the
    /// [`Engine::trunc_downcast`] just before, and `y`, opened by `opened` (see the module docs;
    /// `Op::MatMulDownAA`, no round, no online bytes). Any other x is refused.
    pub async fn matmul_aa_after_down(
        &mut self,
        x: &Shared<u32>,
        y: &Shared<u32>,
        opened: Opened,
    ) -> Result<Shared<u32>, MpcError> {
        let (t, d) = batched_dims(x, y)?;
        if opened.len != y.len() || opened.frac != y.frac {
            return Err(MpcError::Shape {
                what: "opened operand",
                expected: vec![opened.len],
                got: vec![y.len()],
            });
        }
        let mark = self.take_down_mark(x, "a batched matmul after a downcast")?;
        let op = Op::MatMulDownAA {
            batch: len32("matmul", t)?,
            n: len32("matmul", d.n)?,
            k: len32("matmul", d.k)?,
            m: len32("matmul", d.m)?,
            shift: mark.shift,
            open: opened.index,
        };
        let started = self.begin(op, scale("matmul", x.frac, x.frac + y.frac)?).await?;
        let (f, mask) = self.land(opened.pending).await?;
        let b = match started {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&[t, d.n, d.m], x.frac + y.frac)),
            Started::Plain => return Ok(self.batched_plain(x, y, t, d)),
        };
        let (nk, km, nm) = (d.n * d.k, d.k * d.m, d.n * d.m);
        if f.len() != t * km || mark.public.len() != t * nk {
            return Err(MpcError::Mode { what: "a batched matmul after a downcast", mode: "a secure run" });
        }
        let mut z = vec![0u32; t * nm];
        self.expand(&b, |s, corr| beaver::expand_matmul_c_batch(s, b.index, t, d, corr, &mut z))?;
        for i in 0..t {
            let zi = &mut z[i * nm..(i + 1) * nm];
            self.gemm.gemm_acc(zi, &x.data[i * nk..(i + 1) * nk], &f[i * km..(i + 1) * km], d);
            self.gemm.gemm_acc(zi, &mark.public[i * nk..(i + 1) * nk], &mask[i * km..(i + 1) * km], d);
        }
        Ok(Shared { data: z, shape: vec![t, d.n, d.m], frac: x.frac + y.frac })
    }
}
