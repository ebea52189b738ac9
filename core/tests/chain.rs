//! Conversions chained with a truncation ([`ditto_core::chain`]) against the exact integer
//! results: truncate-then-downcast gives floor(t / 2^k2) or one more for t = floor(x / 2^k1) or
//! one more; upcast-then-truncate gives floor(c x / 2^k) or one more; at the edges of the
//! admitted ranges and on random values.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap, missing_docs)]

mod common;

use common::{Harness, PARTIES, per_party, reveal};
use ditto_core::chain;
use ditto_core::plan::{Op, PLAN_VERSION, PlanHeader, Step, plan_hash};
use ditto_core::trunc;

const STEP: u32 = 33;

/// A truncate-then-downcast opening `open` bits (64: `TruncDowncastA`), on shares right modulo
/// 2^open only (P0's bits above are garbage), checking the bytes and that the mask is
/// (r >> (k1 + k2)) mod 2^32 of the step's r, as the product after it takes it.
fn trunc_down(h: &mut Harness, x: &[u64], (k1, k2): (u32, u32), open: u32) -> Vec<u32> {
    let n = x.len();
    let (len, shift, down) = (n as u32, k1 as u8, k2 as u8);
    let step = Step::bare(if open == 64 {
        Op::TruncDowncastA { len, shift, down }
    } else {
        Op::TruncDowncastNarrowA { len, shift, down, open: open as u8 }
    });
    let corr = h.deal(STEP, &step);
    let mut xs = h.share(x);
    if open < 64 {
        let junk = h.rand::<u64>(n);
        for (s, j) in xs[0].iter_mut().zip(junk) {
            *s = s.wrapping_add(j << open);
        }
    }
    let mats = per_party(h, &corr, |_, s, c| {
        let (mut r, mut d) = (vec![0u64; n], vec![0u32; n]);
        chain::expand_trunc_down(s, STEP, c, &mut r, &mut d).unwrap();
        (r, d)
    });
    let ys = [0, 1].map(|i| {
        let mut y = vec![0u64; n];
        chain::trunc_down_open(PARTIES[i], open, &xs[i], &mats[i].0, &mut y).unwrap();
        y
    });
    let y: Vec<u64> =
        reveal(&ys).iter().map(|v| if open == 64 { *v } else { v & ((1 << open) - 1) }).collect();
    assert_eq!(step.online_bytes_per_party(), u64::from(open.div_ceil(8)) * n as u64);
    assert_eq!(step.p1_correction_bytes(), 4 * n as u64);
    let r: Vec<u64> = reveal(&[mats[0].0.clone(), mats[1].0.clone()]);
    let d: Vec<u32> = reveal(&[mats[0].1.clone(), mats[1].1.clone()]);
    assert!(r.iter().zip(&d).all(|(r, d)| *d == (r >> (k1 + k2)) as u32), "the mask of the product after");
    let z = [0, 1].map(|i| {
        let mut z = vec![0u32; n];
        chain::trunc_down_finish(PARTIES[i], (k1, k2, open), &y, &mats[i].1, &mut z).unwrap();
        z
    });
    reveal(&z)
}

/// Each output is floor(t / 2^k2) or one more, t = floor(x / 2^k1) or one more.
fn check_down(x: &[u64], z: &[u32], (k1, k2): (u32, u32), open: u32) {
    for (xi, zi) in x.iter().zip(z) {
        let t = (*xi as i64) >> k1;
        let ok = [t, t + 1].iter().any(|t| {
            let f = (t >> k2) as u32;
            *zi == f || *zi == f.wrapping_add(1)
        });
        assert!(ok, "x = {}, k1 = {k1}, k2 = {k2}, open = {open}: got {zi}", *xi as i64);
    }
}

fn up_trunc(h: &mut Harness, x: &[u32], c: u64, k: u32) -> Vec<u64> {
    let n = x.len();
    let step = Step::bare(Op::UpcastTruncA { len: n as u32, scale: c, shift: k as u8 });
    let corr = h.deal(STEP, &step);
    let xs = h.share(x);
    let mats = per_party(h, &corr, |_, s, cr| {
        let (mut r, mut hh, mut m) = (vec![0u32; n], vec![0u64; 2 * n], vec![0u64; 2 * n]);
        chain::expand_up_trunc(s, STEP, k, cr, &mut r, &mut hh, &mut m).unwrap();
        (r, hh, m)
    });
    let ys = [0, 1].map(|i| {
        let mut y = vec![0u32; n];
        ditto_core::convert::upcast_a_open(PARTIES[i], &xs[i], &mats[i].0, &mut y).unwrap();
        y
    });
    let y = reveal(&ys);
    assert_eq!(step.online_bytes_per_party(), 4 * n as u64);
    let z = [0, 1].map(|i| {
        let mut z = vec![0u64; n];
        chain::up_trunc_finish(PARTIES[i], (c, k), &y, &mats[i].1, &mats[i].2, &mut z).unwrap();
        z
    });
    reveal(&z)
}

#[test]
fn truncate_then_downcast() {
    let mut h = Harness::new(60);
    for (k1, k2) in [(18u32, 10u32), (20, 12), (1, 0), (8, 24)] {
        let lim = 1i64 << 62;
        let mut x: Vec<u64> =
            [0, 1, -1, lim - 1, -lim, -lim + 1, 1 << 40, -(1 << 40) - 3].iter().map(|&v| v as u64).collect();
        x.extend(h.rand::<u64>(700).into_iter().map(|r| ((r << 1) as i64 >> 1) as u64));
        let z = trunc_down(&mut h, &x, (k1, k2), 64);
        check_down(&x, &z, (k1, k2), 64);
    }
    assert!(Step::bare(Op::TruncDowncastA { len: 4, shift: 20, down: 13 }).validate(0).is_err());
}

/// The narrow form (the GeLU's: open 43, k1 11, k2 0) at the edges of its admitted range
/// [-2^(open-2), 2^(open-2)), on shares right modulo 2^open only; its limits are refused.
#[test]
fn narrow_truncate_then_downcast() {
    let mut h = Harness::new(62);
    for ((k1, k2), open) in
        [((11u32, 0u32), 43u32), ((1, 0), 33), ((18, 10), 60), ((3, 5), 40), ((20, 0), 63)]
    {
        let lim = 1i64 << (open - 2);
        let edges = [0, 1, -1, lim - 1, -lim, -lim + 1, lim / 3, -(lim / 5) - 3, (1 << k1) - 1, -(1 << k1)];
        let mut x: Vec<u64> = edges.iter().map(|&v| v as u64).collect();
        x.extend(h.rand::<u64>(700).into_iter().map(|r| ((r << (66 - open)) as i64 >> (66 - open)) as u64));
        let z = trunc_down(&mut h, &x, (k1, k2), open);
        check_down(&x, &z, (k1, k2), open);
    }
    let narrow = |shift, down, open| Step::bare(Op::TruncDowncastNarrowA { len: 4, shift, down, open });
    assert!(narrow(11, 0, 43).validate(0).is_ok() && narrow(1, 0, 33).validate(0).is_ok());
    for bad in [narrow(11, 0, 42), narrow(0, 0, 40), narrow(11, 1, 43), narrow(30, 0, 65), narrow(1, 0, 3)] {
        assert!(bad.validate(0).is_err(), "{bad:?}");
    }
    // A product takes the narrow output as it takes the full width's.
    let hash = |steps: &[Step]| {
        let header =
            PlanHeader { version: PLAN_VERSION, name: "t".try_into().unwrap(), n_steps: steps.len() as u32 };
        plan_hash(&header, steps)
    };
    let down = Step::bare(Op::TruncDowncastNarrowA { len: 6, shift: 11, down: 0, open: 43 });
    let mm = |shift| Step::bare(Op::MatMulDownA { n: 2, k: 3, m: 4, weight: 1, shift });
    assert!(hash(&[down, mm(11)]).is_ok());
    // Its mask serves one product, right after it: another shift, size or a second product is
    // refused.
    assert!(hash(&[down, mm(12)]).is_err() && hash(&[narrow(11, 0, 43), mm(11)]).is_err());
    assert!(hash(&[down, mm(11), mm(11)]).is_err());
}

#[test]
fn upcast_then_truncate() {
    let mut h = Harness::new(61);
    for (c, k) in [(1u64, 1u32), (131_072, 18), ((1 << 31) - 1, 30), (3, 2)] {
        let mut x: Vec<u32> = [0i32, 1, -1, 1 << 30, -(1 << 30), (1 << 30) - 1, -(1 << 30) + 1]
            .iter()
            .map(|&v| v as u32)
            .collect();
        x.extend(h.rand::<u32>(700).into_iter().map(|r| ((r << 1) as i32 >> 1) as u32));
        let z = up_trunc(&mut h, &x, c, k);
        for (xi, zi) in x.iter().zip(&z) {
            let f = (i64::from(*xi as i32) * c as i64) >> k;
            assert!(
                *zi == f as u64 || *zi == (f + 1) as u64,
                "x = {}, c = {c}, k = {k}: got {}",
                *xi as i32,
                *zi as i64
            );
        }
    }
    let s = Step::bare(Op::UpcastTruncA { len: 10, scale: 5, shift: 18 });
    assert_eq!((s.p1_correction_bytes(), s.rounds()), (10 * 2 * (8 + 3), 1));
    assert!(Step::bare(Op::UpcastTruncA { len: 4, scale: 0, shift: 18 }).validate(0).is_err());
}

/// A fixed-mask matmul of a truncate-then-downcast's output, the step right after it: the
/// parties open nothing more, take E = the downcast's public part and A = minus its mask, and
/// get exactly x W for the downcast output x; the dealer's C1 follows from the step before's r.
#[test]
fn matmul_after_a_downcast_is_exact_without_an_opening() {
    use ditto_core::beaver::{self, Dims};
    let mut h = Harness::new(0x3d);
    let (n, k, m, weight, (k1, k2)) = (5usize, 70usize, 33usize, 4u32, (18u32, 10u32));
    let x: Vec<u64> = h.rand::<u64>(n * k).into_iter().map(|v| ((v as i64) >> 24) as u64).collect();
    let down = Step::bare(Op::TruncDowncastA { len: (n * k) as u32, shift: k1 as u8, down: k2 as u8 });
    let mm =
        Step::bare(Op::MatMulDownA { n: n as u32, k: k as u32, m: m as u32, weight, shift: (k1 + k2) as u8 });
    assert_eq!(
        (mm.rounds(), mm.online_bytes_per_party(), mm.p1_correction_bytes()),
        (0, 0, 4 * (n * m) as u64)
    );
    // The plan refuses the matmul anywhere but right after its downcast.
    let hash = |steps: &[Step]| {
        let header =
            PlanHeader { version: PLAN_VERSION, name: "t".try_into().unwrap(), n_steps: steps.len() as u32 };
        plan_hash(&header, steps)
    };
    assert!(hash(&[down, mm]).is_ok());
    let other = Step::bare(Op::TruncDowncastA { len: 7, shift: 18, down: 10 });
    let wrong_shift = Step::bare(Op::TruncDowncastA { len: (n * k) as u32, shift: 17, down: 10 });
    for bad in [&[mm][..], &[mm, down], &[other, mm], &[wrong_shift, mm]] {
        assert!(hash(bad).is_err(), "{bad:?}");
    }
    let (c0, c1) = (h.deal(STEP, &down), h.deal(STEP + 1, &mm));
    let xs = h.share(&x);
    let mats = per_party(&h, &c0, |_, s, c| {
        let (mut r, mut d) = (vec![0u64; n * k], vec![0u32; n * k]);
        chain::expand_trunc_down(s, STEP, c, &mut r, &mut d).unwrap();
        (r, d)
    });
    let ys = [0, 1].map(|i| {
        let mut y = vec![0u64; n * k];
        trunc::masked_open(PARTIES[i], &xs[i], &mats[i].0, &mut y).unwrap();
        y
    });
    let y = reveal(&ys);
    let outs = [0, 1].map(|i| {
        let mut z = vec![0u32; n * k];
        chain::trunc_down_finish(PARTIES[i], (k1, k2, 64), &y, &mats[i].1, &mut z).unwrap();
        z
    });
    let xd: Vec<u32> = reveal(&outs);
    let e: Vec<u32> = y.iter().map(|v| chain::trunc_down_public((k1, k2, 64), *v)).collect();
    // W and its mask B_W (both parties' model shares); F = W - B_W is public.
    let d = Dims::new(n as u32, k as u32, m as u32);
    let bw = per_party(&h, &[], |_, s, _| {
        let mut b = vec![0u32; k * m];
        s.model_prg(weight).fill_ring(&mut b);
        b
    });
    let w: Vec<u32> = h.rand::<u32>(k * m);
    let bsum: Vec<u32> = reveal(&bw);
    let f: Vec<u32> = w.iter().zip(&bsum).map(|(w, b)| w.wrapping_sub(*b)).collect();
    let gemm = |a: &[u32], b: &[u32], z: &mut [u32]| {
        for i in 0..n {
            for kk in 0..k {
                for j in 0..m {
                    z[i * m + j] = z[i * m + j].wrapping_add(a[i * k + kk].wrapping_mul(b[kk * m + j]));
                }
            }
        }
    };
    let zs = per_party(&h, &c1, |p, s, c| {
        let mut z = vec![0u32; n * m];
        beaver::expand_matmul_c(s, STEP + 1, d, c, &mut z).unwrap();
        gemm(&outs[p.index()], &f, &mut z);
        gemm(&e, &bw[p.index()], &mut z);
        z
    });
    let mut want = vec![0u32; n * m];
    gemm(&xd, &w, &mut want);
    assert_eq!(reveal(&zs), want);
}

#[test]
fn batched_product_after_a_downcast_uses_its_earlier_opening() {
    use ditto_core::beaver::{self, Dims};
    let mut h = Harness::new(0x3e);
    let (t, n, k, m, (k1, k2)) = (3usize, 5usize, 19usize, 17usize, (18u32, 10u32));
    let (nk, km, nm) = (n * k, k * m, n * m);
    let open_at = STEP - 1;
    let x: Vec<u64> = h.rand::<u64>(t * nk).into_iter().map(|v| ((v as i64) >> 24) as u64).collect();
    let mut y: Vec<u32> = h.rand::<u32>(t * km);
    // Edge values of Y: 0, -1, the extremes.
    y[..4].copy_from_slice(&[0, u32::MAX, 1 << 31, (1 << 31) - 1]);
    let open = Step::bare(Op::OpenBesideA { len: (t * km) as u32 });
    let down = Step::bare(Op::TruncDowncastA { len: (t * nk) as u32, shift: k1 as u8, down: k2 as u8 });
    let mm = |open| {
        let (b, nn, kk, mm) = (t as u32, n as u32, k as u32, m as u32);
        Step::bare(Op::MatMulDownAA { batch: b, n: nn, k: kk, m: mm, shift: (k1 + k2) as u8, open })
    };
    assert_eq!(
        (open.rounds(), open.online_bytes_per_party(), open.p1_correction_bytes()),
        (0, 4 * (t * km) as u64, 0)
    );
    assert_eq!(
        (mm(0).rounds(), mm(0).online_bytes_per_party(), mm(0).p1_correction_bytes()),
        (0, 0, 4 * (t * nm) as u64)
    );
    // The plan takes the product only right after its downcast, naming the last unused opening
    // of its Y: no opening, a second opening before the first is used, a reused opening, an
    // opening of another size, or a product naming another step are refused.
    let hash = |steps: &[Step]| {
        let header =
            PlanHeader { version: PLAN_VERSION, name: "t".try_into().unwrap(), n_steps: steps.len() as u32 };
        plan_hash(&header, steps)
    };
    assert!(hash(&[open, down, mm(0)]).is_ok());
    assert!(hash(&[open, down, mm(0), open, down, mm(3)]).is_ok());
    let small = Step::bare(Op::OpenBesideA { len: (t * km - 1) as u32 });
    for bad in [
        &[down, mm(0)][..],
        &[open, open, down, mm(1)],
        &[open, down, mm(0), down, mm(0)],
        &[small, down, mm(0)],
        &[open, down, mm(1)],
        &[open, mm(0)],
        &[down, open, mm(1)],
    ] {
        assert!(hash(bad).is_err(), "{bad:?}");
    }
    // An opening at or after the product's own step is refused by the step itself, so a
    // dealer handed one step alone never reads a B it has not dealt yet.
    assert!(mm(7).validate(7).is_err() && mm(8).validate(7).is_err() && mm(6).validate(7).is_ok());
    let (c0, c1) = (h.deal(STEP, &down), h.deal(STEP + 1, &mm(open_at)));
    assert!(h.deal(open_at, &open).is_empty());
    // The downcast: x's truncation opened as E plus the dealer's mask.
    let xs = h.share(&x);
    let mats = per_party(&h, &c0, |_, s, c| {
        let (mut r, mut d) = (vec![0u64; t * nk], vec![0u32; t * nk]);
        chain::expand_trunc_down(s, STEP, c, &mut r, &mut d).unwrap();
        (r, d)
    });
    let ys = [0, 1].map(|i| {
        let mut out = vec![0u64; t * nk];
        trunc::masked_open(PARTIES[i], &xs[i], &mats[i].0, &mut out).unwrap();
        out
    });
    let yo = reveal(&ys);
    let outs = [0, 1].map(|i| {
        let mut z = vec![0u32; t * nk];
        chain::trunc_down_finish(PARTIES[i], (k1, k2, 64), &yo, &mats[i].1, &mut z).unwrap();
        z
    });
    let xd: Vec<u32> = reveal(&outs);
    let e: Vec<u32> = yo.iter().map(|v| chain::trunc_down_public((k1, k2, 64), *v)).collect();
    // The earlier opening: F = Y - B with B from each party's own stream of that step.
    let bs = per_party(&h, &[], |_, s, _| {
        let mut b = vec![0u32; t * km];
        beaver::expand_open_beside(s, open_at, &mut b);
        b
    });
    let yshares = h.share(&y);
    let f: Vec<u32> =
        reveal(&[0, 1].map(|i| yshares[i].iter().zip(&bs[i]).map(|(y, b)| y.wrapping_sub(*b)).collect()));
    let gemm = |a: &[u32], b: &[u32], z: &mut [u32]| {
        for i in 0..n {
            for kk in 0..k {
                for j in 0..m {
                    z[i * m + j] = z[i * m + j].wrapping_add(a[i * k + kk].wrapping_mul(b[kk * m + j]));
                }
            }
        }
    };
    let d = Dims::new(n as u32, k as u32, m as u32);
    let zs = per_party(&h, &c1, |p, s, c| {
        let mut z = vec![0u32; t * nm];
        beaver::expand_matmul_c_batch(s, STEP + 1, t, d, c, &mut z).unwrap();
        for b in 0..t {
            let zb = &mut z[b * nm..(b + 1) * nm];
            gemm(&outs[p.index()][b * nk..(b + 1) * nk], &f[b * km..(b + 1) * km], zb);
            gemm(&e[b * nk..(b + 1) * nk], &bs[p.index()][b * km..(b + 1) * km], zb);
        }
        z
    });
    let mut want = vec![0u32; t * nm];
    for b in 0..t {
        gemm(&xd[b * nk..(b + 1) * nk], &y[b * km..(b + 1) * km], &mut want[b * nm..(b + 1) * nm]);
    }
    assert_eq!(reveal(&zs), want);
}
