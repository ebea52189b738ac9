//! Rescaling and ring conversions, one round each (DESIGN.md §5): truncation by k (floor or
//! one more, inputs in [-2^(l-2), 2^(l-2))), upcast Z_2^32 -> Z_2^64 (exact, inputs in
//! [-2^30, 2^30]), downcast Z_2^64 -> Z_2^32 with truncation by k (floor or one more, mod 2^32).

use ditto_core::plan::Op;
use ditto_core::{Ring, convert, trunc};

use super::{len32, ring_id, scale};
use crate::engine::{Engine, Started};
use crate::plain;
use crate::range::Bound;
use crate::{MpcError, Shared};

impl Engine {
    /// x / 2^k (scale frac - k).
    pub async fn trunc_a<R: Ring>(&mut self, x: &Shared<R>, k: u32) -> Result<Shared<R>, MpcError> {
        let frac = x.frac.checked_sub(k).ok_or(MpcError::Scale {
            what: "truncation",
            detail: format!("cannot drop {k} bits from scale {}", x.frac),
        })?;
        let n = x.len();
        let shift = u8::try_from(k)
            .map_err(|_| MpcError::Scale { what: "truncation", detail: format!("shift {k}") })?;
        let op = Op::TruncA { ring: ring_id::<R>()?, len: len32("truncation", n)?, shift };
        let b = match self.begin(op, scale("truncation", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&x.shape, frac)),
            Started::Plain => {
                self.check_range("trunc_a", x, Bound::pow2(R::BITS - 2, false));
                return Ok(x.with_data(plain::trunc_round(&x.data, k), frac));
            }
        };
        let (mut r, mut rh, mut m) = (vec![R::ZERO; n], vec![R::ZERO; n], vec![R::ZERO; n]);
        self.expand(&b, |s, corr| trunc::expand_trunc(s, b.index, k, corr, &mut r, &mut rh, &mut m))?;
        let mut y = vec![R::ZERO; n];
        trunc::trunc_a_open(self.party(), &x.data, &r, &mut y)?;
        let opened = self.open(b.index, &y).await?;
        let mut z = vec![R::ZERO; n];
        trunc::trunc_a_finish(self.party(), k, &opened, &rh, &m, &mut z)?;
        Ok(x.with_data(z, frac))
    }

    /// The same values in Z_2^64 (scale unchanged).
    pub async fn upcast_a(&mut self, x: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
        let n = x.len();
        let op = Op::UpcastA { len: len32("upcast", n)? };
        let b = match self.begin(op, scale("upcast", x.frac, x.frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&x.shape, x.frac)),
            Started::Plain => {
                self.check_range("upcast_a", x, Bound::pow2(30, true));
                return Ok(x.with_data(plain::upcast(&x.data), x.frac));
            }
        };
        let (mut r, mut rb, mut m) = (vec![0u32; n], vec![0u64; n], vec![0u64; n]);
        self.expand(&b, |s, corr| convert::expand_upcast(s, b.index, corr, &mut r, &mut rb, &mut m))?;
        let mut y = vec![0u32; n];
        convert::upcast_a_open(self.party(), &x.data, &r, &mut y)?;
        let opened = self.open(b.index, &y).await?;
        let mut z = vec![0u64; n];
        convert::upcast_a_finish(self.party(), &opened, &rb, &m, &mut z)?;
        Ok(x.with_data(z, x.frac))
    }

    /// x / 2^k reduced into Z_2^32 (scale frac - k).
    pub async fn downcast_a(&mut self, x: &Shared<u64>, k: u32) -> Result<Shared<u32>, MpcError> {
        let frac = x.frac.checked_sub(k).ok_or(MpcError::Scale {
            what: "downcast",
            detail: format!("cannot drop {k} bits from scale {}", x.frac),
        })?;
        let n = x.len();
        let shift = u8::try_from(k)
            .map_err(|_| MpcError::Scale { what: "downcast", detail: format!("shift {k}") })?;
        let op = Op::DowncastA { len: len32("downcast", n)?, shift };
        let b = match self.begin(op, scale("downcast", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&x.shape, frac)),
            Started::Plain => {
                self.check_range("downcast_a", x, Bound::pow2(31 + k, false));
                return Ok(x.with_data(plain::downcast_round(&x.data, k), frac));
            }
        };
        let (mut r, mut rh) = (vec![0u64; n], vec![0u32; n]);
        self.expand(&b, |s, corr| convert::expand_downcast(s, b.index, k, corr, &mut r, &mut rh))?;
        let mut y = vec![0u64; n];
        convert::downcast_a_open(k, &x.data, &r, &mut y)?;
        // Only 32 + k bits travel.
        let mut wire = vec![0u8; n * convert::downcast_open_width(shift)];
        convert::pack_open(shift, &y, &mut wire)?;
        let peer = self.exchange_bytes(b.index, &wire).await?;
        let mut theirs = vec![0u64; n];
        convert::unpack_open(shift, &peer, &mut theirs)?;
        let opened: Vec<u64> = y.iter().zip(&theirs).map(|(a, b)| a.wrapping_add(*b)).collect();
        let mut z = vec![0u32; n];
        convert::downcast_a_finish(self.party(), k, &opened, &rh, &mut z)?;
        Ok(x.with_data(z, frac))
    }
}
