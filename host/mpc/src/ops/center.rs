//! LayerNorm's centring and square fused with the mean's truncation (`ditto_core::center`):
//! the mean t = u / 2^k per row, d = x - t and d^2 in the truncation's round.

use ditto_core::Ring;
use ditto_core::center::{self, CenterMaterial};
use ditto_core::plan::Op;

use super::{len32, ring_id, scale};
use crate::engine::{Engine, Started};
use crate::plain;
use crate::range::Bound;
use crate::{MpcError, Shared};

/// A centring's d with what its round opened: public plus a mask the dealer knows
/// (`ditto_core::rows`, a centred operand), for the one row product
/// ([`Engine::trunc_mul_rows_centred`]) that takes d without opening it.
#[must_use = "a centring's d is for its row product"]
pub struct Centred<R> {
    pub(crate) index: u32,
    pub(crate) shift: u32,
    pub(crate) d: Shared<R>,
    /// The opened (y, f); empty when planning or in plaintext.
    pub(crate) opened: (Vec<R>, Vec<R>),
}

impl<R> Centred<R> {
    /// d = x - t.
    pub fn d(&self) -> &Shared<R> {
        &self.d
    }
}

impl Engine {
    /// For x (rows x cols) and per-row u (rows, at x's scale + k): t = u / 2^k (as
    /// [`Engine::trunc_a`]: floor or one more), d = x - t (t broadcast over each row) and d^2
    /// (scale 2 frac), in one round. d^2 is exactly the square of the d returned.
    pub async fn center_square<R: Ring>(
        &mut self,
        u: &Shared<R>,
        x: &Shared<R>,
        k: u32,
    ) -> Result<(Centred<R>, Shared<R>), MpcError> {
        let [rows, cols] = x.shape[..] else {
            return Err(MpcError::Shape {
                what: "centring input",
                expected: vec![0, 0],
                got: x.shape.clone(),
            });
        };
        if u.len() != rows || u.frac != x.frac + k {
            return Err(MpcError::Shape {
                what: "centring row sums",
                expected: vec![rows],
                got: u.shape.clone(),
            });
        }
        let f = x.frac;
        let shift = u8::try_from(k)
            .map_err(|_| MpcError::Scale { what: "centring", detail: format!("shift {k}") })?;
        let op = Op::TruncCenterSquareA {
            ring: ring_id::<R>()?,
            rows: len32("centring", rows)?,
            cols: len32("centring", cols)?,
            shift,
        };
        let index = len32("centring", self.steps_begun())?;
        let done = |d: Vec<R>, sq: Vec<R>, opened| {
            (Centred { index, shift: k, d: x.with_data(d, f), opened }, x.with_data(sq, 2 * f))
        };
        let b = match self.begin(op, scale("centring", u.frac, 2 * f)?).await? {
            Started::Run(b) => b,
            Started::Planned => {
                return Ok(done(vec![R::ZERO; x.len()], vec![R::ZERO; x.len()], (Vec::new(), Vec::new())));
            }
            Started::Plain => {
                self.check_range("center_square", u, Bound::pow2(R::BITS - 2, false));
                let t = plain::trunc_round(&u.data, k);
                let d: Vec<R> = x.data.iter().enumerate().map(|(e, v)| v.sub(t[e / cols])).collect();
                let sq = d.iter().map(|v| v.mul(*v)).collect();
                return Ok(done(d, sq, (Vec::new(), Vec::new())));
            }
        };
        let z = |l: usize| vec![R::ZERO; l];
        let (mut r, mut rh, mut m, mut a, mut sqm) = (z(rows), z(rows), z(rows), z(x.len()), z(2 * x.len()));
        let mut mat = CenterMaterial { r: &mut r, rh: &mut rh, m: &mut m, a: &mut a, pairs: &mut sqm };
        self.expand(&b, |s, corr| center::expand_center(s, b.index, k, corr, &mut mat))?;
        let (mut y, mut fm) = (z(rows), z(x.len()));
        center::center_open(self.party(), (&u.data, &x.data), &mat, &mut y, &mut fm)?;
        let (y, fm) = self.open_two(b.index, &y, &fm).await?;
        let (mut t, mut d, mut sq) = (z(rows), z(x.len()), z(x.len()));
        center::center_finish(self.party(), k, (&y, &fm), &x.data, &mat, (&mut t, &mut d, &mut sq))?;
        Ok(done(d, sq, (y, fm)))
    }
}
