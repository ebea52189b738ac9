//! Every primitive, both rings, in memory: secure result == plaintext fixed-point computation
//! (exact, or floor/floor+1 where a truncation occurs), on edge and random values, with the
//! bytes and rounds each party sent equal to the cost the plan states.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]

mod common;

use common::*;
use ditto_core::Ring;
use ditto_core::beaver::Dims;

/// Edge values of a ring plus `extra` random ones.
fn edges<R: Ring>(h: &mut Harness, extra: usize) -> Vec<R> {
    let l = R::BITS;
    let mut v: Vec<R> = [0i64, 1, -1, 2, -2]
        .iter()
        .map(|&x| R::from_i64(x))
        .chain([R::pow2(l - 1), R::pow2(l - 1).sub(R::ONE), R::pow2(l - 1).add(R::ONE)])
        .chain([R::pow2(l - 2), R::pow2(l - 2).neg(), R::pow2(l - 2).sub(R::ONE)])
        .collect();
    v.extend(h.rand::<R>(extra));
    v
}

/// Random values with |x| < 2^bits (signed), plus the edges of that range.
fn bounded<R: Ring>(h: &mut Harness, bits: u32, extra: usize) -> Vec<R> {
    let lim = 1i64 << (bits - 1) << 1; // 2^bits without overflow at bits = 63
    let mut v: Vec<R> = [0, 1, -1, lim - 1, -(lim - 1), -lim, lim / 2, -lim / 2 - 7]
        .iter()
        .map(|&x| R::from_i64(x))
        .collect();
    for r in h.rand::<R>(extra) {
        // keep bits+1 low bits, sign-extend: uniform in [-2^bits, 2^bits)
        let s = (r.to_i64() << (63 - bits)) >> (63 - bits);
        v.push(R::from_i64(s));
    }
    v
}

fn check_mul<R: Ring>(tag: u8) {
    let mut h = Harness::new(tag);
    for n in [1usize, 7, 64, 200] {
        let x = edges::<R>(&mut h, n);
        let y: Vec<R> = h.rand(x.len());
        let (z, _) = run_mul(&mut h, &x, &y);
        let want: Vec<R> =
            x.iter().zip(&y).map(|(a, b)| R::from_u64(a.to_u64().wrapping_mul(b.to_u64()))).collect();
        assert_eq!(z, want);
    }
}

fn check_square<R: Ring>(tag: u8) {
    let mut h = Harness::new(tag);
    let x = edges::<R>(&mut h, 300);
    let (z, _) = run_square(&mut h, &x);
    let want: Vec<R> = x.iter().map(|a| R::from_i64(a.to_i64().wrapping_mul(a.to_i64()))).collect();
    assert_eq!(z, want);
}

/// Reference product in i128 arithmetic, reduced mod 2^l.
fn matmul_ref<R: Ring>(x: &[R], y: &[R], d: Dims) -> Vec<R> {
    let mut out = vec![R::ZERO; d.n * d.m];
    for i in 0..d.n {
        for j in 0..d.m {
            let mut acc: i128 = 0;
            for k in 0..d.k {
                acc = acc
                    .wrapping_add(i128::from(x[i * d.k + k].to_i64()) * i128::from(y[k * d.m + j].to_i64()));
            }
            out[i * d.m + j] = R::from_u64(acc as u64);
        }
    }
    out
}

fn check_matmul<R: Ring>(tag: u8) {
    let mut h = Harness::new(tag);
    for d in [Dims { n: 1, k: 1, m: 1 }, Dims { n: 3, k: 5, m: 17 }, Dims { n: 8, k: 33, m: 16 }] {
        let x = h.rand::<R>(d.n * d.k);
        let w = h.rand::<R>(d.k * d.m);
        let (z, _) = run_matmul_fixed(&mut h, &x, &w, d, 42);
        assert_eq!(z, matmul_ref(&x, &w, d), "fixed {d:?}");
        let batch = 3;
        let x = h.rand::<R>(batch * d.n * d.k);
        let y = h.rand::<R>(batch * d.k * d.m);
        let (z, _) = run_matmul_aa(&mut h, &x, &y, batch, d);
        let (nk, km) = (d.n * d.k, d.k * d.m);
        let want: Vec<R> = (0..batch)
            .flat_map(|b| matmul_ref(&x[b * nk..(b + 1) * nk], &y[b * km..(b + 1) * km], d))
            .collect();
        assert_eq!(z, want, "fresh {d:?}");
    }
}

fn check_trunc<R: Ring>(tag: u8) {
    let mut h = Harness::new(tag);
    let l = R::BITS;
    for k in [1u32, 8, 10, 18, l - 2] {
        // Admitted range: x in [-2^(l-2), 2^(l-2)).
        let x = bounded::<R>(&mut h, l - 2, 3000);
        let x: Vec<R> = x.into_iter().filter(|v| v.to_i64() < (1i64 << (l - 2 - 1) << 1)).collect();
        let (z, _) = run_trunc(&mut h, &x, k);
        for (xi, zi) in x.iter().zip(&z) {
            let e = xi.to_i64() >> k;
            let got = zi.to_i64();
            assert!(got == e || got == e + 1, "trunc l={l} k={k} x={} got {got} want {e}", xi.to_i64());
        }
    }
}

/// Outside the admitted range the result is documented to be right modulo 2^(l-k) (floor or
/// floor+1) and off by a multiple of 2^(l-k) with probability (x' - 2^(l-1)) / 2^(l-1), where
/// x' = x + 2^(l-2) mod 2^l: rarely just outside, about half the time near ±2^(l-1).
fn check_trunc_outside<R: Ring>(tag: u8) {
    let mut h = Harness::new(tag);
    let l = R::BITS;
    let k = 8;
    let lim = R::pow2(l - 2);
    let top = R::pow2(l - 1);
    let near: Vec<R> =
        (0..500u64).flat_map(|i| [lim.add(R::from_u64(i)), lim.neg().sub(R::from_u64(i + 1))]).collect();
    let far: Vec<R> =
        (0..1000u64).flat_map(|i| [top.sub(R::from_u64(i + 1)), top.add(R::from_u64(i))]).collect();
    for (x, lo, hi) in [(near, 0, 5), (far, 800, 1200)] {
        let (z, _) = run_trunc(&mut h, &x, k);
        let mut wrapped = 0;
        for (xi, zi) in x.iter().zip(&z) {
            let d = zi.sub(R::from_i64(xi.to_i64() >> k));
            let dm = d.low_bits(l - k);
            assert!(dm == R::ZERO || dm == R::ONE, "outside range: off by {d:?}");
            if d.shr(l - k) != R::ZERO {
                wrapped += 1;
            }
        }
        assert!((lo..=hi).contains(&wrapped), "{wrapped} of {} wrapped, expected {lo}..={hi}", x.len());
    }
}

fn check_sign<R: Ring>(tag: u8) {
    let mut h = Harness::new(tag);
    for n in [1usize, 63, 64, 65, 300] {
        let x = edges::<R>(&mut h, n);
        let (z, _) = run_sign(&mut h, &x);
        let want: Vec<R> = x.iter().map(|v| R::from_u64(u64::from(v.to_i64() < 0))).collect();
        assert_eq!(z, want, "sign n={n}");
    }
}

macro_rules! both_rings {
    ($name:ident, $check:ident) => {
        mod $name {
            #[test]
            fn z32() {
                super::$check::<u32>(32);
            }
            #[test]
            fn z64() {
                super::$check::<u64>(64);
            }
        }
    };
}

both_rings!(mul, check_mul);
both_rings!(square, check_square);
both_rings!(matmul, check_matmul);
both_rings!(trunc, check_trunc);
both_rings!(trunc_outside_range, check_trunc_outside);
both_rings!(sign, check_sign);

#[test]
fn upcast_exact_in_range() {
    let mut h = Harness::new(1);
    let mut x: Vec<u32> = [0i64, 1, -1, (1 << 30) - 1, -(1 << 30) + 1, -(1 << 30), 1 << 30]
        .iter()
        .map(|&v| u32::from_i64(v))
        .collect();
    for r in h.rand::<u32>(5000) {
        x.push(u32::from_i64((i64::from(r.cast_signed()) << 33) >> 33)); // [-2^30, 2^30)
    }
    let (z, _) = run_upcast(&mut h, &x);
    for (xi, zi) in x.iter().zip(&z) {
        assert_eq!(zi.to_i64(), xi.to_i64(), "upcast {}", xi.to_i64());
    }
}

/// Outside [-2^30, 2^30] the result is documented to be right modulo 2^32 (off by a multiple
/// of 2^32 in Z_2^64); with values near -2^31 about half of them are off.
#[test]
fn upcast_outside_range_is_right_mod_2_32() {
    let mut h = Harness::new(2);
    let x: Vec<u32> = (0..2000i64).map(|i| u32::from_i64(-(1 << 30) - 1 - i * 500_000)).collect();
    let (z, _) = run_upcast(&mut h, &x);
    let mut off = 0;
    for (xi, zi) in x.iter().zip(&z) {
        assert_eq!(*zi as u32, *xi, "low 32 bits");
        if zi.to_i64() != xi.to_i64() {
            off += 1;
        }
    }
    assert!(off > 200 && off < 1800, "{off} of 2000 off by 2^32");
}

#[test]
fn downcast_truncate_reduce() {
    let mut h = Harness::new(3);
    for k in [0u8, 1, 10, 18, 32] {
        let mut x: Vec<u64> =
            [0i64, 1, -1, (1 << 40) - 1, -(1 << 40), (1 << 62) - 1, -(1 << 62), i64::MAX, i64::MIN]
                .iter()
                .map(|&v| v as u64)
                .collect();
        x.extend(h.rand::<u64>(3000));
        let (z, _) = run_downcast(&mut h, &x, k);
        for (xi, zi) in x.iter().zip(&z) {
            let e = ((xi.cast_signed()) >> k) as u32;
            assert!(*zi == e || *zi == e.wrapping_add(1), "downcast k={k} x={xi:#x} got {zi:#x} want {e:#x}");
        }
    }
}

#[test]
fn sign_rounds_match_design() {
    use ditto_core::compare::{and_count, rounds};
    use ditto_core::ring::RingId;
    assert_eq!(rounds(RingId::Z32), 7);
    assert_eq!(rounds(RingId::Z64), 8);
    assert_eq!(and_count(32), 55);
    assert_eq!(and_count(64), 118);
}

/// Fixed-point pipeline on real numbers: encode, multiply securely, truncate securely, decode;
/// compare with the f64 product within the documented error (1 ulp of truncation + rounding).
#[test]
fn fixed_point_product_matches_float() {
    use ditto_core::fixed::{decode, encode};
    let mut h = Harness::new(4);
    let f = 8;
    let xs: Vec<f64> = (0..400).map(|i| (i as f64 - 200.0) * 0.173).collect();
    let ys: Vec<f64> = (0..400).map(|i| ((i * 37 % 400) as f64 - 200.0) * 0.051).collect();
    let x: Vec<u32> = xs.iter().map(|&v| encode(v, f).unwrap()).collect();
    let y: Vec<u32> = ys.iter().map(|&v| encode(v, f).unwrap()).collect();
    let (p, _) = run_mul(&mut h, &x, &y);
    let (z, _) = run_trunc(&mut h, &p, f);
    for i in 0..xs.len() {
        let got = decode(z[i], f);
        let err = (got - xs[i] * ys[i]).abs();
        // Input rounding (0.5 ulp each, scaled by the other operand) + truncation (1 ulp).
        let bound = (xs[i].abs() + ys[i].abs() + 1.0) * 0.5 / 256.0 + 1.0 / 256.0;
        assert!(err <= bound, "{} * {}: got {got}, err {err} > {bound}", xs[i], ys[i]);
    }
}
