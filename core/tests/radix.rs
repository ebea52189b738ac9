//! The radix comparison ([`ditto_core::radix`]) against the plain sign of the input: both
//! circuit rings, the narrow form (Z_2^32 circuit, Z_2^64 result), with and without a
//! multiplicand. Beside random and edge inputs, inputs are built from the dealer's mask r so
//! that the opened y = x + r matches r in every chunk, or in all but one bit: the paths where
//! "equal so far" propagates through every level.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap, missing_docs)]

mod common;

use common::{Cost, Harness, PARTIES, per_party, reveal, ring_id, zeros};
use ditto_core::bits::xor_into;
use ditto_core::plan::{Op, Step};
use ditto_core::prg::Purpose;
use ditto_core::radix::{self, Circuit, RadixMaterial, RadixShape};
use ditto_core::ring::{RingId, encode_slice, reduce};
use ditto_core::{Ring, compare};

const STEP: u32 = 12;

/// One party's correlation.
struct Mat<R, O> {
    r: Vec<R>,
    msb: Vec<u64>,
    onehot: Vec<u64>,
    masks: Vec<u64>,
    prods: Vec<u64>,
    db: Vec<u64>,
    da: Vec<O>,
    a: Vec<O>,
    c: Vec<O>,
}

fn open_sum<R: Ring>(m: &[Vec<R>; 2]) -> Vec<R> {
    reveal(m)
}

/// Runs the radix step on shares of `x` (ring O; the circuit on ring R: each party reduces
/// its share), with multiplicand `v` if given; returns the opened result and the cost.
fn run<R: Ring, O: Ring>(h: &mut Harness, x: &[O], v: Option<&[O]>) -> (Vec<O>, Cost) {
    let n = x.len();
    let mul = v.is_some();
    let step = Step::bare(Op::SignRadixA { ring: ring_id::<R>(), out: ring_id::<O>(), len: n as u32, mul });
    let corr = h.deal(STEP, &step);
    let xs = h.share(x);
    let vs = v.map(|v| h.share(v));
    let sh = RadixShape::new(R::BITS, n);
    let g = sh.groups();
    let t = per_party(h, &corr, |_, s, c| {
        let mut m = Mat {
            r: zeros(n),
            msb: vec![0; g],
            onehot: vec![0; g * sh.onehot_words()],
            masks: vec![0; g * sh.mask_words()],
            prods: vec![0; g * sh.prod_words()],
            db: vec![0; g],
            da: zeros(n),
            a: zeros(if mul { n } else { 0 }),
            c: zeros(if mul { n } else { 0 }),
        };
        let mut view = RadixMaterial {
            c: Circuit {
                r: &mut m.r,
                msb: &mut m.msb,
                onehot: &mut m.onehot,
                masks: &mut m.masks,
                prods: &mut m.prods,
            },
            dabit_b: &mut m.db,
            dabit_a: &mut m.da,
            mul_a: &mut m.a,
            mul_c: &mut m.c,
        };
        radix::expand_radix(s, STEP, c, &mut view).unwrap();
        m
    });
    let mut cost = Cost::default();
    // Round 1: y = x + r (and f = v - a).
    let ys = [0, 1].map(|i| xs[i].iter().zip(&t[i].r).map(|(x, r)| reduce::<O, R>(*x).add(*r)).collect());
    let y: Vec<R> = open_sum(&ys);
    let f: Option<Vec<O>> = vs
        .as_ref()
        .map(|vs| open_sum(&[0, 1].map(|i| vs[i].iter().zip(&t[i].a).map(|(v, a)| v.sub(*a)).collect())));
    let mut wire = vec![0u8; n * R::BYTES];
    encode_slice(&ys[0], &mut wire).unwrap();
    cost.bytes += (wire.len() + if mul { n * O::BYTES } else { 0 }) as u64;
    cost.rounds += 1;
    let mut state = [0, 1].map(|i| {
        let mut st = vec![0u64; g * sh.state_words()];
        radix::radix_leaves(&y, &t[i].onehot, &mut st).unwrap();
        st
    });
    for level in 0..sh.levels() {
        let msgs = [0, 1].map(|i| {
            let mut m = vec![0u64; g * sh.level_msg_words(level)];
            radix::radix_level_open(&sh, level, &state[i], &t[i].masks, &mut m).unwrap();
            m
        });
        cost.bytes += msgs[0].len() as u64 * 8;
        cost.rounds += 1;
        let mut opened = vec![0u64; msgs[0].len()];
        xor_into(&msgs[0], &msgs[1], &mut opened).unwrap();
        for i in 0..2 {
            radix::radix_level_finish(
                PARTIES[i],
                &sh,
                level,
                &mut state[i],
                &opened,
                &t[i].masks,
                &t[i].prods,
            )
            .unwrap();
        }
    }
    let msgs = [0, 1].map(|i| {
        let mut m = vec![0u64; g];
        radix::radix_b2a_open(PARTIES[i], &y, &t[i].msb, &state[i], &t[i].db, &mut m).unwrap();
        m
    });
    cost.bytes += g as u64 * 8;
    cost.rounds += 1;
    let mut e = vec![0u64; g];
    xor_into(&msgs[0], &msgs[1], &mut e).unwrap();
    let z = [0, 1].map(|i| {
        let mut z = zeros(n);
        match (&vs, &f) {
            (Some(vs), Some(f)) => radix::radix_mul_finish(&e, f, &vs[i], &t[i].da, &t[i].c, &mut z).unwrap(),
            _ => compare::sign_b2a_finish(PARTIES[i], &e, &t[i].da, &mut z).unwrap(),
        }
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party(), "online bytes of {step:?}");
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}

/// The dealer's r for the step (r0 + r1), as the test knows the seeds.
fn dealer_r<R: Ring>(h: &Harness, n: usize) -> Vec<R> {
    let mut r = [zeros::<R>(n), zeros::<R>(n)];
    for (i, p) in PARTIES.iter().enumerate() {
        h.streams(*p).prg(STEP, Purpose::R).fill_ring(&mut r[i]);
    }
    reveal(&r)
}

/// Inputs whose opened y equals r, or r with one bit flipped, or r plus or minus 1, cycling
/// over the lanes (every bit position, so every chunk and level decides once).
fn adversarial<R: Ring>(h: &Harness, n: usize) -> Vec<R> {
    let r = dealer_r::<R>(h, n);
    (0..n)
        .map(|i| {
            let y = match i % (R::BITS as usize + 3) {
                0 => r[i],
                1 => r[i].add(R::ONE),
                2 => r[i].sub(R::ONE),
                b => r[i].xor(R::pow2(b as u32 - 3)),
            };
            y.sub(r[i])
        })
        .collect()
}

fn sign_of<R: Ring>(x: &[R]) -> Vec<u64> {
    x.iter().map(|v| u64::from(v.to_i64() < 0)).collect()
}

fn check<R: Ring>(tag: u8) {
    let mut h = Harness::new(tag);
    for n in [1usize, 63, 64, 65, 300] {
        let mut x =
            vec![R::ZERO, R::ONE, R::from_i64(-1), R::pow2(R::BITS - 1), R::pow2(R::BITS - 1).sub(R::ONE)];
        x.extend(h.rand::<R>(n));
        let (z, _) = run::<R, R>(&mut h, &x, None);
        assert_eq!(z, sign_of(&x).into_iter().map(R::from_u64).collect::<Vec<_>>(), "n={n}");
    }
    for n in [67usize, 1000] {
        let x = adversarial::<R>(&h, n);
        let (z, _) = run::<R, R>(&mut h, &x, None);
        assert_eq!(z, sign_of(&x).into_iter().map(R::from_u64).collect::<Vec<_>>(), "adversarial n={n}");
        // With a multiplicand: [x < 0] * v.
        let v = h.rand::<R>(n);
        let x = adversarial::<R>(&h, n);
        let (z, _) = run::<R, R>(&mut h, &x, Some(&v));
        let want: Vec<R> =
            sign_of(&x).iter().zip(&v).map(|(s, v)| if *s == 1 { *v } else { R::ZERO }).collect();
        assert_eq!(z, want, "select n={n}");
    }
}

#[test]
fn radix_sign_z32() {
    check::<u32>(40);
}

#[test]
fn radix_sign_z64() {
    check::<u64>(41);
}

/// Z_2^64 values below 2^31 in magnitude compared on their low 32 bits, the result in Z_2^64.
#[test]
fn radix_sign_narrow() {
    let mut h = Harness::new(42);
    let lim = (1i64 << 31) - 1;
    let mut x: Vec<u64> =
        [0, 1, -1, lim, -lim, -lim - 1, 1 << 30, -(1 << 30)].iter().map(|&v| v as u64).collect();
    x.extend(h.rand::<u64>(500).into_iter().map(|r| (((r as i64) << 32) >> 32) as u64));
    let want: Vec<u64> = sign_of(&x);
    assert_eq!(run::<u32, u64>(&mut h, &x, None).0, want);
    let v = h.rand::<u64>(x.len());
    let (z, _) = run::<u32, u64>(&mut h, &x, Some(&v));
    let sel: Vec<u64> = want.iter().zip(&v).map(|(s, v)| s * v).collect();
    assert_eq!(z, sel);
}

/// Costs from the design: 4 rounds in both rings; for 64 values, l = 32: y 256 B, level
/// messages 13 + 2 words, one B2A word; P1 gets msb, 120 one-hot and 38 product words and 64 D.
#[test]
fn radix_costs() {
    let cost = |op| {
        let s = Step::bare(op);
        (s.online_bytes_per_party(), s.p1_correction_bytes(), s.rounds())
    };
    let (z32, z64) = (RingId::Z32, RingId::Z64);
    assert_eq!(
        cost(Op::SignRadixA { ring: z32, out: z32, len: 64, mul: false }),
        (256 + 16 * 8, (1 + 120 + 38) * 8 + 256, 4)
    );
    // l = 64: 16 chunks (15 of 4 bits, one of 3): 248 one-hot words; level 0: four nodes
    // (6 + 3 x 7 opened words, 15 + 3 x 22 products), level 1: one node (6, 15).
    assert_eq!(
        cost(Op::SignRadixA { ring: z64, out: z64, len: 64, mul: false }),
        (512 + (27 + 6 + 1) * 8, (1 + 248 + 96) * 8 + 512, 4)
    );
    // The narrow form with a multiplicand: f travels in Z_2^64; D and D a in Z_2^64.
    assert_eq!(
        cost(Op::SignRadixA { ring: z32, out: z64, len: 64, mul: true }),
        (256 + 512 + 16 * 8, (1 + 120 + 38) * 8 + 2 * 512, 4)
    );
    let bad = Step::bare(Op::SignRadixA { ring: z64, out: z32, len: 64, mul: false });
    assert!(bad.validate(0).is_err());
}
