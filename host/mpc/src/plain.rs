//! The plaintext fixed-point reference: the integer arithmetic the secure operations compute,
//! on plaintext ring elements. Where the secure protocol truncates, the engine's plaintext mode
//! rounds to nearest ([`trunc_round`], [`downcast_round`]) and the secure result, the floor or
//! one more (DESIGN.md §5), is within one ulp of it. [`trunc`] and [`downcast`] floor.

use ditto_core::Ring;

/// x_i * y_i mod 2^l.
pub fn mul<R: Ring>(x: &[R], y: &[R]) -> Vec<R> {
    x.iter().zip(y).map(|(a, b)| a.mul(*b)).collect()
}

/// Row-major (n x k) * (k x m) mod 2^l.
pub fn matmul<R: Ring>(x: &[R], y: &[R], n: usize, k: usize, m: usize) -> Vec<R> {
    let mut out = vec![R::ZERO; n * m];
    for i in 0..n {
        for kk in 0..k {
            let a = x[i * k + kk];
            for j in 0..m {
                out[i * m + j] = out[i * m + j].add(a.mul(y[kk * m + j]));
            }
        }
    }
    out
}

/// floor(x / 2^k) (arithmetic shift of the signed value).
pub fn trunc<R: Ring>(x: &[R], k: u32) -> Vec<R> {
    x.iter().map(|v| R::from_i64(v.to_i64() >> k)).collect()
}

/// round(x / 2^k), halves up: the reference the engine's plaintext mode uses. Secure
/// truncation returns floor or floor + 1 with probability equal to the dropped fraction, i.e.
/// it rounds stochastically and without bias; rounding to nearest keeps the reference equally
/// unbiased (floor would drift by half an ulp per truncation) and within one ulp of it.
pub fn trunc_round<R: Ring>(x: &[R], k: u32) -> Vec<R> {
    x.iter().map(|v| R::from_i64((v.to_i64() >> (k - 1)).wrapping_add(1) >> 1)).collect()
}

/// round(x / 2^k) mod 2^32, halves up (see [`trunc_round`]).
pub fn downcast_round(x: &[u64], k: u32) -> Vec<u32> {
    if k == 0 {
        return x.iter().map(|v| u32::from_u64(*v)).collect();
    }
    x.iter().map(|v| u32::from_i64((v.to_i64() >> (k - 1)).wrapping_add(1) >> 1)).collect()
}

/// Sign extension Z_2^32 -> Z_2^64.
pub fn upcast(x: &[u32]) -> Vec<u64> {
    x.iter().map(|v| ditto_core::ring::lift_signed::<u32, u64>(*v)).collect()
}

/// floor(x / 2^k) mod 2^32.
pub fn downcast(x: &[u64], k: u32) -> Vec<u32> {
    x.iter().map(|v| u32::from_i64(v.to_i64() >> k)).collect()
}

/// [x < 0].
pub fn sign<R: Ring>(x: &[R]) -> Vec<R> {
    x.iter().map(|v| R::from_bit(u64::from(v.to_i64() < 0))).collect()
}

/// s_i * v_i for bits s (a selection).
pub fn select<R: Ring>(s: &[R], v: &[R]) -> Vec<R> {
    s.iter().zip(v).map(|(s, v)| s.mul(*v)).collect()
}

/// max(x, 0).
pub fn relu<R: Ring>(x: &[R]) -> Vec<R> {
    x.iter().map(|v| if v.to_i64() < 0 { R::ZERO } else { *v }).collect()
}

/// Row-wise maximum of a rows x cols matrix (signed).
pub fn max_rows<R: Ring>(x: &[R], rows: usize, cols: usize) -> Vec<R> {
    (0..rows)
        .map(|r| *x[r * cols..(r + 1) * cols].iter().max_by_key(|v| v.to_i64()).unwrap_or(&R::ZERO))
        .collect()
}

/// Row-wise maximum and the first column index holding it (signed), as a rows x 2 list.
pub fn argmax_rows<R: Ring>(x: &[R], rows: usize, cols: usize) -> Vec<(R, u64)> {
    (0..rows)
        .map(|r| {
            let row = &x[r * cols..(r + 1) * cols];
            let mut best = 0;
            for (j, v) in row.iter().enumerate() {
                if v.to_i64() > row[best].to_i64() {
                    best = j;
                }
            }
            (row.get(best).copied().unwrap_or(R::ZERO), best as u64)
        })
        .collect()
}

/// True when every secure value is the reference or the reference plus up to `ulps`
/// (truncations each add at most one).
pub fn within_ulps<R: Ring>(secure: &[R], reference: &[R], ulps: u64) -> bool {
    secure.len() == reference.len() && secure.iter().zip(reference).all(|(s, r)| s.sub(*r).to_u64() <= ulps)
}
