//! Correlation relations: P0's part comes only from its seed, P1's from its seed plus the
//! reference dealer's corrections, and together they satisfy each kind's relation exactly.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::needless_range_loop,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]

mod common;

use common::*;
use ditto_core::beaver::{self, Dims};
use ditto_core::compare::{self, SignMaterial, SignShape};
use ditto_core::convert;
use ditto_core::corr::Corrections;
use ditto_core::plan::{Op, Step};
use ditto_core::{Error, Party, Ring, trunc};

fn z<R: Ring>(n: usize) -> Vec<R> {
    vec![R::ZERO; n]
}

fn sum<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(x, y)| x.add(*y)).collect()
}

fn corr_for<'a>(p: Party, bytes: &'a [u8]) -> Corrections<'a> {
    if p.is_p0() { Corrections::none() } else { Corrections::new(bytes) }
}

fn triples<R: Ring>(tag: u8) {
    let h = Harness::new(tag);
    let n = 130;
    let bytes = h.deal(0, &Step::bare(Op::MulAA { ring: ring_id::<R>(), len: n as u32 }));
    let parts = PARTIES.map(|p| {
        let (mut a, mut b, mut c) = (z::<R>(n), z::<R>(n), z::<R>(n));
        let mut corr = corr_for(p, &bytes);
        beaver::expand_mul(&h.streams(p), 0, &mut corr, &mut a, &mut b, &mut c).unwrap();
        corr.finish().unwrap();
        (a, b, c)
    });
    let (a, b, c) =
        (sum(&parts[0].0, &parts[1].0), sum(&parts[0].1, &parts[1].1), sum(&parts[0].2, &parts[1].2));
    for i in 0..n {
        assert_eq!(c[i], a[i].mul(b[i]));
    }
    // Masks are not degenerate: the two parties' a-shares differ and a is not constant.
    assert_ne!(parts[0].0, parts[1].0);
    assert!(a.iter().any(|v| *v != a[0]));

    let bytes = h.deal(1, &Step::bare(Op::SquareA { ring: ring_id::<R>(), len: n as u32 }));
    let parts = PARTIES.map(|p| {
        let (mut a, mut c) = (z::<R>(n), z::<R>(n));
        let mut corr = corr_for(p, &bytes);
        beaver::expand_square(&h.streams(p), 1, &mut corr, &mut a, &mut c).unwrap();
        corr.finish().unwrap();
        (a, c)
    });
    let (a, c) = (sum(&parts[0].0, &parts[1].0), sum(&parts[0].1, &parts[1].1));
    for i in 0..n {
        assert_eq!(c[i], a[i].mul(a[i]));
    }
}

fn matrix<R: Ring>(tag: u8) {
    let h = Harness::new(tag);
    let d = Dims { n: 5, k: 9, m: 20 };
    let bytes =
        h.deal(2, &Step::bare(Op::MatMulFixed { ring: ring_id::<R>(), n: 5, k: 9, m: 20, weight: 7 }));
    let parts = PARTIES.map(|p| {
        let (mut a, mut b, mut c) = (z::<R>(d.n * d.k), z::<R>(d.k * d.m), z::<R>(d.n * d.m));
        let mut corr = corr_for(p, &bytes);
        beaver::expand_matmul_fixed(&h.streams(p), 2, 7, d, &mut corr, &mut a, &mut b, &mut c).unwrap();
        corr.finish().unwrap();
        (a, b, c)
    });
    let (a, b, c) =
        (sum(&parts[0].0, &parts[1].0), sum(&parts[0].1, &parts[1].1), sum(&parts[0].2, &parts[1].2));
    let mut want = z::<R>(d.n * d.m);
    for i in 0..d.n {
        for j in 0..d.m {
            let mut acc = R::ZERO;
            for k in 0..d.k {
                acc = acc.add(a[i * d.k + k].mul(b[k * d.m + j]));
            }
            want[i * d.m + j] = acc;
        }
    }
    assert_eq!(c, want);
    // B_W is fixed per model: another session (another step index too) gives the same B shares.
    let mut h2 = Harness::new(tag);
    h2.session.0[0] ^= 1;
    let mut b2 = z::<R>(d.k * d.m);
    let mut c2 = z::<R>(d.n * d.m);
    let mut a2k = z::<R>(d.n * d.k);
    beaver::expand_matmul_fixed(
        &h2.streams(Party::P0),
        9,
        7,
        d,
        &mut Corrections::none(),
        &mut a2k,
        &mut b2,
        &mut c2,
    )
    .unwrap();
    assert_eq!(b2, parts[0].1, "B_W share is session independent");
    assert_ne!(a2k, parts[0].0, "A is fresh per session");
}

fn trunc_masks<R: Ring>(tag: u8) {
    let h = Harness::new(tag);
    let (n, k) = (100, 13);
    let bytes = h.deal(3, &Step::bare(Op::TruncA { ring: ring_id::<R>(), len: n as u32, shift: k as u8 }));
    let parts = PARTIES.map(|p| {
        let (mut r, mut rh, mut m) = (z::<R>(n), z::<R>(n), z::<R>(n));
        let mut corr = corr_for(p, &bytes);
        trunc::expand_trunc(&h.streams(p), 3, k, &mut corr, &mut r, &mut rh, &mut m).unwrap();
        corr.finish().unwrap();
        (r, rh, m)
    });
    let (r, rh, m) =
        (sum(&parts[0].0, &parts[1].0), sum(&parts[0].1, &parts[1].1), sum(&parts[0].2, &parts[1].2));
    let mut msb_seen = [0; 2];
    for i in 0..n {
        assert_eq!(rh[i], r[i].shr(k));
        // The msb share is defined modulo 2^k (it is only used times 2^(l-k)).
        assert_eq!(m[i].low_bits(k).to_u64(), u64::from(r[i].msb()));
        msb_seen[r[i].msb() as usize] += 1;
    }
    assert!(msb_seen[0] > 20 && msb_seen[1] > 20, "r is uniform over the whole ring: {msb_seen:?}");
}

fn sign_material<R: Ring>(tag: u8) {
    let h = Harness::new(tag);
    let n = 150;
    let sh = SignShape::of::<R>(n);
    let bytes = h.deal(4, &Step::bare(Op::SignA { ring: ring_id::<R>(), len: n as u32 }));
    let parts = PARTIES.map(|p| {
        let mut r = z::<R>(n);
        let mut rbits = vec![0u64; sh.rbits_words()];
        let (mut a, mut b, mut c) =
            (vec![0; sh.and_words()], vec![0; sh.and_words()], vec![0; sh.and_words()]);
        let (mut db, mut da) = (vec![0u64; sh.groups()], z::<R>(n));
        let mut corr = corr_for(p, &bytes);
        let mut m = SignMaterial {
            r: &mut r,
            rbits: &mut rbits,
            and_a: &mut a,
            and_b: &mut b,
            and_c: &mut c,
            dabit_b: &mut db,
            dabit_a: &mut da,
        };
        compare::expand_sign(&h.streams(p), 4, &mut corr, &mut m).unwrap();
        corr.finish().unwrap();
        (r, rbits, a, b, c, db, da)
    });
    let r = sum(&parts[0].0, &parts[1].0);
    let l = R::BITS as usize;
    for i in 0..n {
        let (g, lane) = (i / 64, i % 64);
        for j in 0..l {
            let bit = ((parts[0].1[g * l + j] ^ parts[1].1[g * l + j]) >> lane) & 1;
            assert_eq!(bit, r[i].bit(j as u32), "bit {j} of r[{i}]");
        }
        let d = ((parts[0].5[g] ^ parts[1].5[g]) >> lane) & 1;
        assert_eq!(parts[0].6[i].add(parts[1].6[i]).to_u64(), d, "daBit {i}");
    }
    for t in 0..sh.and_words() {
        let (a, b, c) =
            (parts[0].2[t] ^ parts[1].2[t], parts[0].3[t] ^ parts[1].3[t], parts[0].4[t] ^ parts[1].4[t]);
        assert_eq!(c, a & b, "AND triple {t}");
    }
}

macro_rules! both_rings {
    ($name:ident, $check:ident) => {
        mod $name {
            #[test]
            fn z32() {
                super::$check::<u32>(11);
            }
            #[test]
            fn z64() {
                super::$check::<u64>(12);
            }
        }
    };
}

both_rings!(beaver_triples_and_squares, triples);
both_rings!(matrix_triples, matrix);
both_rings!(truncation_masks, trunc_masks);
both_rings!(sign_material_bits_ands_dabits, sign_material);

#[test]
fn upcast_and_downcast_masks() {
    let h = Harness::new(13);
    let n = 90;
    let bytes = h.deal(5, &Step::bare(Op::UpcastA { len: n as u32 }));
    let parts = PARTIES.map(|p| {
        let (mut r, mut rb, mut m) = (z::<u32>(n), z::<u64>(n), z::<u64>(n));
        let mut corr = corr_for(p, &bytes);
        convert::expand_upcast(&h.streams(p), 5, &mut corr, &mut r, &mut rb, &mut m).unwrap();
        corr.finish().unwrap();
        (r, rb, m)
    });
    for i in 0..n {
        let r = parts[0].0[i].wrapping_add(parts[1].0[i]);
        assert_eq!(parts[0].1[i].wrapping_add(parts[1].1[i]), u64::from(r));
        assert_eq!(parts[0].2[i].wrapping_add(parts[1].2[i]) & 0xffff_ffff, u64::from(r >> 31));
    }
    let k = 10u32;
    let bytes = h.deal(6, &Step::bare(Op::DowncastA { len: n as u32, shift: 10 }));
    let parts = PARTIES.map(|p| {
        let (mut r, mut rh) = (z::<u64>(n), z::<u32>(n));
        let mut corr = corr_for(p, &bytes);
        convert::expand_downcast(&h.streams(p), 6, k, &mut corr, &mut r, &mut rh).unwrap();
        corr.finish().unwrap();
        (r, rh)
    });
    for i in 0..n {
        assert!(parts[0].0[i] < 1 << 42 && parts[1].0[i] < 1 << 42);
        let r = (parts[0].0[i] + parts[1].0[i]) & ((1 << 42) - 1);
        assert_eq!(parts[0].1[i].wrapping_add(parts[1].1[i]), (r >> k) as u32);
    }
}

#[test]
fn p0_needs_nothing_but_its_seed() {
    // P0's expansion is the same whatever P1's seed is (it never reads corrections).
    let h1 = Harness::new(20);
    let mut h2 = Harness::new(20);
    h2.seeds[1] = ditto_core::prg::Seed::from_bytes([9; 16]);
    let expand = |h: &Harness| {
        let (mut a, mut b, mut c) = (z::<u32>(10), z::<u32>(10), z::<u32>(10));
        beaver::expand_mul(&h.streams(Party::P0), 0, &mut Corrections::none(), &mut a, &mut b, &mut c)
            .unwrap();
        (a, b, c)
    };
    assert_eq!(expand(&h1), expand(&h2));
    // ...while P1's corrections do change.
    let step = Step::bare(Op::MulAA { ring: ditto_core::ring::RingId::Z32, len: 10 });
    assert_ne!(h1.deal(0, &step), h2.deal(0, &step));
}

#[test]
fn short_or_long_corrections_are_errors() {
    let h = Harness::new(21);
    let step = Step::bare(Op::MulAA { ring: ditto_core::ring::RingId::Z64, len: 8 });
    let bytes = h.deal(0, &step);
    let (mut a, mut b, mut c) = (z::<u64>(8), z::<u64>(8), z::<u64>(8));
    let mut short = Corrections::new(&bytes[..bytes.len() - 1]);
    let e = beaver::expand_mul(&h.streams(Party::P1), 0, &mut short, &mut a, &mut b, &mut c).unwrap_err();
    assert_eq!(e, Error::CorrectionsShort { needed: 64, available: 63 });
    let mut long = bytes.clone();
    long.push(0);
    let mut corr = Corrections::new(&long);
    beaver::expand_mul(&h.streams(Party::P1), 0, &mut corr, &mut a, &mut b, &mut c).unwrap();
    assert_eq!(corr.finish().unwrap_err(), Error::CorrectionsLong { extra: 1 });
}

/// Any split of a step's units into parts concatenates to the whole step's corrections, so a
/// dealer may generate parts in parallel or resume from any unit.
#[test]
fn parts_concatenate_to_the_whole_step() {
    use ditto_core::deal::deal_step_part;
    use ditto_core::ring::RingId::{Z32, Z64};
    let h = Harness::new(30);
    let mut steps = Vec::new();
    for ring in [Z32, Z64] {
        steps.push(Step::bare(Op::MulAA { ring, len: 300 }));
        steps.push(Step::bare(Op::SquareA { ring, len: 130 }));
        steps.push(Step::bare(Op::MatMulFixed { ring, n: 40, k: 70, m: 33, weight: 1 }));
        steps.push(Step::bare(Op::MatMulAA { ring, batch: 3, n: 17, k: 9, m: 20 }));
        steps.push(Step::bare(Op::TruncA { ring, len: 200, shift: 9 }));
        steps.push(Step::bare(Op::SignA { ring, len: 300 }));
    }
    steps.push(Step::bare(Op::UpcastA { len: 150 }));
    steps.push(Step::bare(Op::DowncastA { len: 150, shift: 10 }));
    steps.push(Step::bare(Op::TruncDowncastA { len: 150, shift: 18, down: 10 }));
    steps.push(Step::bare(Op::UpcastTruncA { len: 150, scale: 131_072, shift: 18 }));
    for (ring, out, mul) in [(Z32, Z32, false), (Z64, Z64, true), (Z32, Z64, true)] {
        steps.push(Step::bare(Op::SignRadixA { ring, out, len: 300, mul }));
    }
    for (ring, out, mul) in [(Z32, Z32, false), (Z32, Z64, true), (Z64, Z64, true)] {
        steps.push(Step::bare(Op::SignRadixTopA { ring, out, len: 300, mul }));
    }
    steps.push(Step::bare(Op::SignRadixBesideA { ring: Z32, out: Z64, len: 300, mul: false }));
    steps.push(Step::bare(Op::TruncDowncastA { len: 40 * 70, shift: 18, down: 10 }));
    steps.push(Step::bare(Op::MatMulDownA { n: 40, k: 70, m: 33, weight: 1, shift: 28 }));
    steps.push(Step::bare(Op::TruncCenterSquareA { ring: Z64, rows: 30, cols: 17, shift: 18 }));
    steps.push(Step::bare(Op::TruncCenterSquareA { ring: Z32, rows: 30, cols: 17, shift: 8 }));
    for (ring, shift) in [(Z32, 8), (Z64, 18)] {
        steps.push(Step::bare(Op::TruncMulA { ring, len: 130, shift, square: true, mul: true, pair: true }));
        steps.push(Step::bare(Op::TruncMulA { ring, len: 77, shift, square: false, mul: true, pair: false }));
    }
    for (i, s) in steps.iter().enumerate() {
        let whole = h.deal(i as u32, s);
        let u = s.units();
        for cuts in [vec![0, u], vec![0, 1, u], vec![0, u / 3, u / 2 + 1, u - 1, u]] {
            let mut parts = Vec::new();
            for w in cuts.windows(2) {
                deal_step_part(&h.dealer(), i as u32, s, w[0]..w[1], &mut parts).unwrap();
            }
            assert_eq!(parts, whole, "step {i} {s:?} cuts {cuts:?}");
        }
    }
    let s = &steps[0];
    let e = deal_step_part(&h.dealer(), 0, s, 0..s.units() + 1, &mut Vec::new()).unwrap_err();
    assert_eq!(e, Error::BadStep { step: 0, reason: "unit range outside the step" });
}

/// The matmul dealer's tile changes its memory, never its bytes.
#[test]
fn matmul_tiles_give_identical_bytes() {
    use ditto_core::corr::Tile;
    use ditto_core::deal::deal_step;
    use ditto_core::ring::RingId::{Z32, Z64};
    let h = Harness::new(31);
    for ring in [Z32, Z64] {
        for op in [
            Op::MatMulFixed { ring, n: 20, k: 300, m: 40, weight: 2 },
            Op::MatMulAA { ring, batch: 2, n: 17, k: 129, m: 18 },
        ] {
            let step = Step::bare(op);
            let want = h.deal(0, &step);
            for tile in [Tile::K16, Tile::K32, Tile::K128] {
                let mut d = h.dealer();
                d.tile = tile;
                let mut got = Vec::new();
                deal_step(&d, 0, &step, &mut got).unwrap();
                assert!(got == want, "{op:?} {tile:?}");
            }
        }
    }
}
