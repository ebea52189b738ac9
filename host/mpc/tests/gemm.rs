//! The fast GEMM equals the textbook product (i128 arithmetic reduced mod 2^l) for every
//! instruction-set variant, thread count and awkward shape (edges of the 4 x 16 register tile
//! and of the 256-deep inner block).
#![allow(clippy::cast_possible_truncation)]

use ditto_core::Ring;
use ditto_core::beaver::{Dims, Gemm};
use ditto_mpc::gemm::{FastGemm, Isa};

fn data<R: Ring>(n: usize, seed: u64) -> Vec<R> {
    (0..n as u64)
        .map(|i| R::from_u64((i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)))
        .collect()
}

fn reference<R: Ring>(c: &[R], a: &[R], b: &[R], d: Dims) -> Vec<R> {
    let mut out = c.to_vec();
    for i in 0..d.n {
        for j in 0..d.m {
            let mut acc: u128 = 0;
            for k in 0..d.k {
                acc = acc
                    .wrapping_add(u128::from(a[i * d.k + k].to_u64()) * u128::from(b[k * d.m + j].to_u64()));
            }
            out[i * d.m + j] = out[i * d.m + j].add(R::from_u64(acc as u64));
        }
    }
    out
}

fn check<R: Ring + std::fmt::Debug>() {
    let isas: Vec<Isa> = match Isa::detect() {
        Isa::Avx512 => vec![Isa::Avx512, Isa::Avx2, Isa::Portable],
        Isa::Avx2 => vec![Isa::Avx2, Isa::Portable],
        Isa::Portable => vec![Isa::Portable],
    };
    for (n, k, m) in
        [(1, 1, 1), (3, 5, 7), (4, 16, 16), (5, 17, 33), (9, 300, 20), (17, 513, 47), (64, 64, 64)]
    {
        let d = Dims { n, k, m };
        let (a, b, c) = (data::<R>(n * k, 1), data::<R>(k * m, 2), data::<R>(n * m, 3));
        let want = reference(&c, &a, &b, d);
        for &isa in &isas {
            for threads in [1, 2, 3] {
                let mut out = c.clone();
                FastGemm { threads, isa }.gemm_acc(&mut out, &a, &b, d);
                assert!(out == want, "{n}x{k}x{m} {isa:?} threads {threads}");
            }
        }
    }
}

#[test]
fn fast_gemm_u32() {
    check::<u32>();
}

#[test]
fn fast_gemm_u64() {
    check::<u64>();
}
