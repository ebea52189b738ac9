//! Row-wise maxima by tournament: the softmax's max (in the comparison's own rounds, or on the
//! low 32 bits of Z_2^64 values, results right modulo 2^32) and the argmax of a generated
//! token.

use ditto_core::Ring;
use ditto_core::ring::reduce;

use crate::engine::Engine;
use crate::range::Bound;
use crate::{MpcError, Shared};

impl Engine {
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
        if cols == 0 {
            return Err(MpcError::Shape { what: "max_rows", expected: vec![rows, 1], got: x.shape.clone() });
        }
        let mut cur = x.clone();
        while cols > 1 {
            let half = cols / 2;
            let (a, bb) = level_pairs(&cur.data, rows, cols);
            let (a, bb) = (
                Shared { data: a, shape: vec![rows, half], frac: cur.frac },
                Shared { data: bb, shape: vec![rows, half], frac: cur.frac },
            );
            // max(a, b) = b + [b - a < 0] (a - b), the product in the comparison's rounds.
            let d = self.sub(&bb, &a)?;
            let (_, sel) = self.sign_mul_fit(&d, &self.neg(&d), narrow).await?;
            let m = self.add(&bb, &sel)?;
            let next_cols = cols.div_ceil(2);
            cur = Shared {
                data: level_next(&m.data, &cur.data, rows, cols),
                shape: vec![rows, next_cols],
                frac: cur.frac,
            };
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

    /// The maximum of each row of Z_2^64 values whose entries of a row lie within 2^31 of each
    /// other, right modulo 2^32 only: the tournament runs on the low 32 bits with Z_2^32
    /// selections (half the result-ring bytes of [`Engine::max_rows_with`] narrow), and the
    /// maxima's shares come back zero-extended, for consumers that read the low 32 bits alone (the
    /// softmax's x - max, whose exp opens f + 6 bits and whose clamp compares 32). Those bits
    /// equal the narrow tournament's; entries farther apart are reported by the range check as
    /// there.
    pub async fn max_rows_low32<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        if R::BITS != 64 {
            return Err(MpcError::Ring { what: "max_rows_low32", expected: "Z_2^64", bits: R::BITS });
        }
        let [rows, cols] = x.shape[..] else {
            return Err(MpcError::Shape { what: "max_rows", expected: vec![0, 0], got: x.shape.clone() });
        };
        if cols == 0 {
            return Err(MpcError::Shape { what: "max_rows", expected: vec![rows, 1], got: x.shape.clone() });
        }
        self.check_spread(x);
        let low = x.with_data(x.data.iter().map(|v| reduce::<R, u32>(*v)).collect(), x.frac);
        let m = self.max_rows_with(&low, false).await?;
        Ok(self.widen32(&m))
    }

    /// Maxima modulo 2^32 back in Z_2^64: shares zero-extended (right modulo 2^32), the
    /// reference's values, which are the maxima themselves, sign-extended (the Z_2^64 maxima).
    pub(crate) fn widen32<R: Ring>(&self, m: &Shared<u32>) -> Shared<R> {
        let plain = self.is_plaintext();
        let widen =
            |v: u32| if plain { R::from_i64(i64::from(v.cast_signed())) } else { R::from_u64(u64::from(v)) };
        Shared { data: m.data.iter().map(|v| widen(*v)).collect(), shape: m.shape.clone(), frac: m.frac }
    }

    /// The range check of a tournament on the low 32 bits of x (rows x cols, Z_2^64): every
    /// compared difference is one of two entries of a row, so within the row's max - min,
    /// which must be below 2^31 (reported as the narrow comparison's).
    pub(crate) fn check_spread<R: Ring>(&mut self, x: &Shared<R>) {
        let Some(&cols) = x.shape.last() else { return };
        if !self.is_plaintext() || cols == 0 {
            return;
        }
        let spread: Vec<R> = x
            .data
            .chunks_exact(cols)
            .flat_map(|row| {
                let lo = row.iter().map(|v| v.to_i64()).min().unwrap_or(0);
                row.iter().map(move |v| R::from_i64(v.to_i64().wrapping_sub(lo)))
            })
            .collect();
        self.check_range("sign_low_a", &x.with_data(spread, x.frac), Bound::pow2(31, false));
    }
}

/// The pairs of a tournament level over rows x cols: (left entries, right entries), row-major,
/// cols / 2 per row.
pub(crate) fn level_pairs<T: Copy>(data: &[T], rows: usize, cols: usize) -> (Vec<T>, Vec<T>) {
    let half = cols / 2;
    let (mut a, mut b) = (Vec::with_capacity(rows * half), Vec::with_capacity(rows * half));
    for r in 0..rows {
        for j in 0..half {
            a.push(data[r * cols + 2 * j]);
            b.push(data[r * cols + 2 * j + 1]);
        }
    }
    (a, b)
}

/// The next level's rows: each row's maxima `m` (cols / 2 per row), then its odd last entry of
/// `cur`, which passes through.
pub(crate) fn level_next<T: Copy>(m: &[T], cur: &[T], rows: usize, cols: usize) -> Vec<T> {
    let half = cols / 2;
    let mut next = Vec::with_capacity(rows * cols.div_ceil(2));
    for r in 0..rows {
        next.extend_from_slice(&m[r * half..(r + 1) * half]);
        if cols % 2 == 1 {
            next.push(cur[r * cols + cols - 1]);
        }
    }
    next
}
