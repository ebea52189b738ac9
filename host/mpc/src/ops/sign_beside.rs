//! A 3-round comparison started beside the one step that follows it, its multiplicand supplied
//! after that step (plan op `SignRadixTopBesideA`): the comparison's first round (the masked
//! input) travels in that step's flight, and f = v - a in its last round, so v may be an output
//! of that step. LayerNorm compares var's untruncated sum while var is truncated, and takes var
//! as the multiplicand: the truncation's round costs no latency of its own.

use ditto_core::Ring;
use ditto_core::plan::Op;
use ditto_core::ring::{RingId, reduce};

use super::{len32, ring_id, scale};
use crate::beside::Pending;
use crate::engine::{Engine, Started};
use crate::plain;
use crate::{MpcError, Shared};

/// A comparison riding beside the next step, waiting for its multiplicand.
#[must_use = "a comparison started beside a step must be landed with its multiplicand"]
pub struct SignBeside<R> {
    shape: Vec<usize>,
    v_frac: u32,
    /// Riding (its index), or the sign computed at once (plaintext) or zeros (planning).
    pending: Pending<Vec<R>>,
}

impl Engine {
    /// Starts ([x < 0], [x < 0] v) in the 3-round form beside the next step, for a multiplicand
    /// at scale `v_frac` given to [`Engine::land_sign_mul`]. `narrow`: the circuit runs on the
    /// low 32 bits of Z_2^64 values (|x| < 2^31, as [`Engine::sign_low_a`]).
    pub async fn sign_mul_top_beside<R: Ring>(
        &mut self,
        x: &Shared<R>,
        v_frac: u32,
        narrow: bool,
    ) -> Result<SignBeside<R>, MpcError> {
        let out = ring_id::<R>()?;
        let narrow = narrow && R::BITS == 64;
        let ring = if narrow { RingId::Z32 } else { out };
        let op = Op::SignRadixTopBesideA { ring, out, len: len32("sign", x.len())?, mul: true };
        let ready = |pending| SignBeside { shape: x.shape.clone(), v_frac, pending };
        let low = || x.data.iter().map(|v| reduce::<R, u32>(*v)).collect::<Vec<u32>>();
        let b = match self.begin(op, scale("sign", x.frac, v_frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(ready(Pending::Ready(vec![R::ZERO; x.len()]))),
            Started::Plain if narrow => {
                self.check_range("sign_low_a", x, crate::range::Bound::pow2(31, false));
                let s = plain::sign(&low()).into_iter().map(|v| R::from_u64(u64::from(v))).collect();
                return Ok(ready(Pending::Ready(s)));
            }
            Started::Plain => return Ok(ready(Pending::Ready(plain::sign(&x.data)))),
        };
        if narrow {
            let m = self.top_machine::<u32, R>(&b, low(), (None, true))?;
            self.ride(b.index, Box::new(m));
        } else {
            let m = self.top_machine::<R, R>(&b, x.data.clone(), (None, true))?;
            self.ride(b.index, Box::new(m));
        }
        Ok(ready(Pending::Riding(b.index)))
    }

    /// Lands a comparison started by [`Engine::sign_mul_top_beside`] with its multiplicand:
    /// ([x < 0], [x < 0] v), its last two rounds run here.
    pub async fn land_sign_mul<R: Ring>(
        &mut self,
        s: SignBeside<R>,
        v: &Shared<R>,
    ) -> Result<(Shared<R>, Shared<R>), MpcError> {
        if v.shape != s.shape || v.frac != s.v_frac {
            return Err(MpcError::Shape {
                what: "late multiplicand",
                expected: s.shape,
                got: v.shape.clone(),
            });
        }
        let (sign, sv) = match s.pending {
            Pending::Ready(sign) => {
                let sv = plain::select(&sign, &v.data);
                (sign, sv)
            }
            Pending::Riding(index) => {
                self.supply(index, Box::new(v.data.clone()))?;
                self.land::<(Vec<R>, Vec<R>)>(Pending::Riding(index)).await?
            }
        };
        Ok((v.with_data(sign, 0), v.with_data(sv, v.frac)))
    }
}
