//! A value per row truncated once and multiplied by every element of its row
//! (`ditto_core::rows`): softmax's e / s and LayerNorm's d rsqrt(var), one y per row instead of
//! one per element.

use ditto_core::Ring;
use ditto_core::plan::Op;
use ditto_core::rows::{self, CentredMaterial, RowsMaterial};
use ditto_core::trunc;

use super::center::Centred;
use super::{len32, ring_id, scale};
use crate::engine::{Engine, Started};
use crate::plain;
use crate::range::Bound;
use crate::{MpcError, Shared};

impl Engine {
    /// t_i v_ij for the rows' values x (rows) truncated by k (t = x / 2^k, as
    /// [`Engine::trunc_a`]: floor or one more, once per row) and v (rows x cols, any shape of
    /// that size, row-major), in one round; scale x.frac - k + v.frac, v's shape. The products
    /// are exact for the t of each row.
    pub async fn trunc_mul_rows<R: Ring>(
        &mut self,
        x: &Shared<R>,
        k: u32,
        v: &Shared<R>,
    ) -> Result<Shared<R>, MpcError> {
        let (rows, n) = (x.len(), v.len());
        if rows == 0 || n % rows != 0 {
            return Err(MpcError::Shape {
                what: "row products",
                expected: vec![rows, 0],
                got: v.shape.clone(),
            });
        }
        let cols = n / rows;
        let (frac, shift) = row_shift(x, k)?;
        let op = Op::TruncMulRowsA {
            ring: ring_id::<R>()?,
            rows: len32("row products", rows)?,
            cols: len32("row products", cols)?,
            shift,
        };
        let b = match self.begin(op, scale("row products", x.frac, frac + v.frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(v.with_data(vec![R::ZERO; n], frac + v.frac)),
            Started::Plain => return Ok(self.rows_plain(x, k, v, frac)),
        };
        let z = |l: usize| vec![R::ZERO; l];
        let (mut r, mut rh, mut m, mut a, mut ra) = (z(rows), z(rows), z(rows), z(n), z(2 * n));
        let mut mat = RowsMaterial { r: &mut r, rh: &mut rh, m: &mut m, a: &mut a, pairs: &mut ra };
        self.expand(&b, |s, corr| rows::expand_rows(s, b.index, k, corr, &mut mat))?;
        let (mut y, mut f) = (z(rows), z(n));
        rows::rows_open(self.party(), (&x.data, &v.data), &mat, &mut y, &mut f)?;
        let (y, f) = self.open_two(b.index, &y, &f).await?;
        let mut out = z(n);
        rows::rows_finish(self.party(), k, (&y, &f), &mat, &mut out)?;
        Ok(v.with_data(out, frac + v.frac))
    }

    /// t_i d_ij for the rows' values x (rows) truncated by k (as [`Engine::trunc_mul_rows`])
    /// and the d of `centred` (rows x cols), in one round that opens one value per row
    /// (`Op::TruncMulRowsCenteredA`): d travels as what its centring opened. Scale
    /// x.frac - k + d.frac, d's shape.
    pub async fn trunc_mul_rows_centred<R: Ring>(
        &mut self,
        x: &Shared<R>,
        k: u32,
        centred: Centred<R>,
    ) -> Result<Shared<R>, MpcError> {
        let v = &centred.d;
        let (rows, n) = (x.len(), v.len());
        let [vr, cols] = v.shape[..] else {
            return Err(MpcError::Shape {
                what: "centred row products",
                expected: vec![rows, 0],
                got: v.shape.clone(),
            });
        };
        if vr != rows {
            return Err(MpcError::Shape {
                what: "centred row products",
                expected: vec![rows, cols],
                got: v.shape.clone(),
            });
        }
        let (frac, shift) = row_shift(x, k)?;
        let center_shift = u8::try_from(centred.shift).map_err(|_| MpcError::Scale {
            what: "centred row products",
            detail: format!("shift {}", centred.shift),
        })?;
        let op = Op::TruncMulRowsCenteredA {
            ring: ring_id::<R>()?,
            rows: len32("centred row products", rows)?,
            cols: len32("centred row products", cols)?,
            shift,
            center: centred.index,
            center_shift,
        };
        let b = match self.begin(op, scale("centred row products", x.frac, frac + v.frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(v.with_data(vec![R::ZERO; n], frac + v.frac)),
            Started::Plain => return Ok(self.rows_plain(x, k, v, frac)),
        };
        let (yc, fc) = &centred.opened;
        if yc.len() != rows || fc.len() != n {
            return Err(MpcError::Mode { what: "centred row products", mode: "a secure run" });
        }
        let z = |l: usize| vec![R::ZERO; l];
        let (mut r, mut rh, mut m, mut cross, mut pairs) = (z(rows), z(rows), z(rows), z(rows), z(2 * n));
        let mut mat =
            CentredMaterial { r: &mut r, rh: &mut rh, m: &mut m, cross: &mut cross, pairs: &mut pairs };
        let kc = centred.shift;
        self.expand(&b, |s, corr| rows::expand_centred(s, b.index, (k, kc), corr, &mut mat))?;
        let mut y = z(rows);
        trunc::trunc_a_open(self.party(), &x.data, mat.r, &mut y)?;
        let y = self.open(b.index, &y).await?;
        let mut out = z(n);
        rows::centred_finish(self.party(), (k, kc), &y, (yc, fc, &v.data), &mat, &mut out)?;
        Ok(v.with_data(out, frac + v.frac))
    }

    /// The reference of the row products: x truncated per row, times its row of v.
    fn rows_plain<R: Ring>(&mut self, x: &Shared<R>, k: u32, v: &Shared<R>, frac: u32) -> Shared<R> {
        self.check_range("trunc_mul_rows", x, Bound::pow2(R::BITS - 2, false));
        let t = plain::trunc_round(&x.data, k);
        let cols = v.len() / x.len().max(1);
        let tv = v.data.iter().enumerate().map(|(e, a)| t[e / cols].mul(*a)).collect();
        v.with_data(tv, frac + v.frac)
    }
}

/// The scale after dropping k bits from x's, and k as a plan shift.
fn row_shift<R: Ring>(x: &Shared<R>, k: u32) -> Result<(u32, u8), MpcError> {
    let frac = x.frac.checked_sub(k).ok_or(MpcError::Scale {
        what: "row products",
        detail: format!("cannot drop {k} bits from scale {}", x.frac),
    })?;
    let shift = u8::try_from(k)
        .map_err(|_| MpcError::Scale { what: "row products", detail: format!("shift {k}") })?;
    Ok((frac, shift))
}
