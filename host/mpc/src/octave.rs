//! The octave of a positive x (reciprocal, rsqrt): one batched comparison of x against the
//! powers of two, whose selections give the products x o_j in its own rounds, and the
//! normalised z = x 2^-(octave+1) in [0.5, 1).
//!
//! Where x = round(u / 2^k) + e is the truncation of a sum u the program holds already
//! (LayerNorm's var + eps), the comparison can start on u beside that truncation
//! ([`Engine::octaves_beside`]): [x < c] = [u < (c - e) 2^k - 2^(k-1)] exactly for the
//! reference's rounding, so the octaves are the reference's, and x (the multiplicand of the
//! selections) is supplied once truncated. The truncation's round then costs no latency.

use ditto_core::Ring;

use crate::engine::Engine;
use crate::nonlinear::{fx, part};
use crate::ops::compare::top_pays;
use crate::ops::sign_beside::SignBeside;
use crate::{MpcError, Shared};

/// The comparison of an x's octaves started beside x's truncation.
pub struct OctavesBeside<R>(SignBeside<R>);

impl Engine {
    /// Starts the octave comparison of x = round(u / 2^k) + e (x in [2^lo, 2^hi) at scale
    /// u.frac - k, e public at that scale) on u, beside the truncation that gives x (the next
    /// step), when the 3-round form pays for its size on a full-width circuit; `None` otherwise
    /// (the caller compares x itself).
    pub async fn octaves_beside<R: Ring>(
        &mut self,
        u: &Shared<R>,
        (k, e): (u32, R),
        (lo, hi): (i32, i32),
    ) -> Result<Option<OctavesBeside<R>>, MpcError> {
        let n = u.len();
        let f = u.frac.checked_sub(k).ok_or(MpcError::Scale {
            what: "octaves beside",
            detail: format!("cannot drop {k} bits from scale {}", u.frac),
        })?;
        let count = usize::try_from(hi - lo - 1)
            .map_err(|_| MpcError::Scale { what: "octaves", detail: format!("{lo}..{hi}") })?;
        let narrow = R::BITS == 64 && i64::from(hi) + i64::from(f) <= 30;
        if k == 0 || count == 0 || narrow || !top_pays(R::BITS, count * n) {
            return Ok(None);
        }
        let mut diffs = Vec::with_capacity(count * n);
        for j in lo + 1..hi {
            // [x < 2^j] = [u < (2^j - e) 2^k - 2^(k-1)].
            let t = fx::<R>(2f64.powi(j), f)?.sub(e).mul(R::pow2(k)).sub(R::pow2(k - 1));
            diffs.extend(u.data.iter().map(|v| if self.party().is_p0() { v.sub(t) } else { *v }));
        }
        let d = Shared { data: diffs, shape: vec![count * n], frac: u.frac };
        Ok(Some(OctavesBeside(self.sign_mul_top_beside(&d, f, false).await?)))
    }

    /// One-hot octave indicators o_j = [2^j <= x < 2^(j+1)], j in lo..hi (x >= 2^lo assumed),
    /// and the products x o_j, from one batched comparison whose selections give x [x < 2^j]
    /// in its own rounds; o_j at scale 0, x o_j at x's scale. When hi + f <= 30 every
    /// difference x - 2^j of an x in range has |x - 2^j| < 2^30, so a Z_2^64 comparison runs on
    /// the low 32 bits ([`Engine::sign_low_a`]: a 32-bit circuit, which also makes the 3-round
    /// form cheap enough for the softmax's row sums); out of range (which the range check
    /// reports) the secure run and the reference alike take the low 32 bits' sign.
    pub(crate) async fn octaves<R: Ring>(
        &mut self,
        x: &Shared<R>,
        (lo, hi): (i32, i32),
        started: Option<OctavesBeside<R>>,
    ) -> Result<(Vec<Shared<R>>, Vec<Shared<R>>), MpcError> {
        let n = x.len();
        let f = x.frac;
        let k = usize::try_from(hi - lo)
            .map_err(|_| MpcError::Scale { what: "octaves", detail: format!("{lo}..{hi}") })?;
        // b_j = [x >= 2^j] = 1 - [x - 2^j < 0] for j = lo+1 .. hi-1; x b_j = x - x [x - 2^j < 0].
        let xs = Shared { data: x.data.repeat(k - 1), shape: vec![(k - 1) * n], frac: f };
        let (s, sx) = match started {
            Some(OctavesBeside(sb)) => self.land_sign_mul(sb, &xs).await?,
            None => {
                let mut diffs = Vec::with_capacity((k - 1) * n);
                for j in lo + 1..hi {
                    let c = fx::<R>(2f64.powi(j), f)?;
                    diffs.extend(x.data.iter().map(|v| if self.party().is_p0() { v.sub(c) } else { *v }));
                }
                let narrow = R::BITS == 64 && i64::from(hi) + i64::from(f) <= 30;
                let d = Shared { data: diffs, shape: vec![(k - 1) * n], frac: f };
                self.sign_mul_fit(&d, &xs, narrow).await?
            }
        };
        let x1 = Shared { shape: vec![n], ..x.clone() };
        let one = |e: &Engine| e.add_const(&Shared::<R>::zeros(&[n], 0), R::ONE);
        let (mut b, mut bx): (Vec<Shared<R>>, Vec<Shared<R>>) = (vec![one(self)], vec![x1.clone()]);
        for j in 0..k - 1 {
            b.push(self.add_const(&self.neg(&part(&s, j, n, &[n])), R::ONE));
            bx.push(self.sub(&x1, &part(&sx, j, n, &[n]))?);
        }
        b.push(Shared::zeros(&[n], 0));
        bx.push(Shared::zeros(&[n], f));
        let o = (0..k).map(|j| self.sub(&b[j], &b[j + 1])).collect::<Result<_, _>>()?;
        let xo = (0..k).map(|j| self.sub(&bx[j], &bx[j + 1])).collect::<Result<_, _>>()?;
        Ok((o, xo))
    }

    /// The octave indicators o_j of x in [2^lo, 2^hi) and z = x 2^-(octave+1) in [0.5, 1) at x's
    /// scale: x p / 2^f with x p = sum_j 2^-(j+1) (x o_j) from the comparison's own products.
    pub(crate) async fn normalise<R: Ring>(
        &mut self,
        x: &Shared<R>,
        (lo, hi): (i32, i32),
        started: Option<OctavesBeside<R>>,
        what: &'static str,
    ) -> Result<(Vec<Shared<R>>, Shared<R>), MpcError> {
        let (o, xo) = self.octaves(x, (lo, hi), started).await?;
        self.check_range(what, x, crate::range::Bound::Octaves { lo, hi });
        let xp = self.weigh(&xo, |j| 2f64.powi(-(j + 1)), lo, x.frac)?;
        Ok((o, self.trunc_a(&xp, x.frac).await?))
    }

    /// Sum of o_j * c_j for public c_j at scale f (local; scale o's + f).
    pub(crate) fn weigh<R: Ring>(
        &self,
        o: &[Shared<R>],
        c: impl Fn(i32) -> f64,
        lo: i32,
        f: u32,
    ) -> Result<Shared<R>, MpcError> {
        let mut acc = Shared::zeros(&o[0].shape, o[0].frac + f);
        for (j, oj) in (lo..).zip(o) {
            acc = self.add(&acc, &self.mul_const(oj, fx(c(j), f)?, f))?;
        }
        Ok(acc)
    }
}
