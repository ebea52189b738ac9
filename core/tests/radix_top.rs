//! The 3-round radix comparison ([`ditto_core::radix::top`]) against the plain sign of the
//! input (its low 32 bits for the 32-bit circuit): the 32-bit circuit with results in Z_2^32
//! and Z_2^64, the 64-bit one (a top over four nodes, 22 monomials), with and without a
//! multiplicand (whose product and sign are both checked). Beside random and edge inputs, inputs are built from
//! the dealer's mask r so that the opened y matches r in every chunk, or in all but one bit,
//! or by one: every "equal so far" path, for both values of t = msb(r), which the top folds in.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap, missing_docs)]

mod common;

use common::{Cost, Harness, PARTIES, per_party, reveal, ring_id, zeros};
use ditto_core::Ring;
use ditto_core::bits::xor_into;
use ditto_core::plan::{Op, Step};
use ditto_core::prg::Purpose;
use ditto_core::radix::top::{self, TopMaterial, TopMul, TopShape};
use ditto_core::radix::{Circuit, radix_leaves};
use ditto_core::ring::{RingId, encode_slice, reduce};

const STEP: u32 = 13;

struct Mat<C, O> {
    r: Vec<C>,
    msb: Vec<u64>,
    onehot: Vec<u64>,
    masks: Vec<u64>,
    prods: Vec<u64>,
    mono: Vec<O>,
    a: Vec<O>,
    c: Vec<O>,
}

/// Runs the step on shares of `x` (ring O; the circuit on the low 32 bits), with multiplicand
/// `v` if given; returns the opened sign, the opened product (empty without v) and the cost.
fn run<C: Ring, O: Ring>(h: &mut Harness, x: &[O], v: Option<&[O]>) -> (Vec<O>, Vec<O>, Cost) {
    let n = x.len();
    let mul = v.is_some();
    let step =
        Step::bare(Op::SignRadixTopA { ring: ring_id::<C>(), out: ring_id::<O>(), len: n as u32, mul });
    step.validate(0).unwrap();
    let corr = h.deal(STEP, &step);
    let xs = h.share(x);
    let vs = v.map(|v| h.share(v));
    let sh = TopShape::new(C::BITS, n);
    let g = sh.groups();
    let k = if mul { n } else { 0 };
    let t = per_party(h, &corr, |_, s, c| {
        let mut m = Mat {
            r: zeros(n),
            msb: vec![0; g],
            onehot: vec![0; g * sh.radix.onehot_words()],
            masks: vec![0; g * sh.mask_words()],
            prods: vec![0; g * sh.prod_words()],
            mono: zeros(sh.monomials() * n),
            a: zeros(k),
            c: zeros(sh.monomials() * k),
        };
        let mut view = TopMaterial::<C, O> {
            c: Circuit {
                r: &mut m.r,
                msb: &mut m.msb,
                onehot: &mut m.onehot,
                masks: &mut m.masks,
                prods: &mut m.prods,
            },
            mono: &mut m.mono,
            mul_a: &mut m.a,
            mul_c: &mut m.c,
        };
        top::expand_radix_top(s, STEP, c, &mut view).unwrap();
        m
    });
    let mut cost = Cost::default();
    let ys = [0, 1].map(|i| xs[i].iter().zip(&t[i].r).map(|(x, r)| reduce::<O, C>(*x).add(*r)).collect());
    let y: Vec<C> = reveal(&ys);
    let f: Option<Vec<O>> = vs
        .as_ref()
        .map(|vs| reveal(&[0, 1].map(|i| vs[i].iter().zip(&t[i].a).map(|(v, a)| v.sub(*a)).collect())));
    let mut wire = vec![0u8; n * C::BYTES];
    encode_slice(&ys[0], &mut wire).unwrap();
    cost.bytes += (wire.len() + if mul { n * O::BYTES } else { 0 }) as u64;
    cost.rounds += 1;
    let mut state = [0, 1].map(|i| {
        let mut st = vec![0u64; g * sh.radix.state_words()];
        radix_leaves(&y, &t[i].onehot, &mut st).unwrap();
        st
    });
    let msgs = [0, 1].map(|i| {
        let mut m = vec![0u64; g * sh.level_msg_words()];
        top::radix_top_level_open(&sh, &state[i], &t[i].masks, &mut m).unwrap();
        m
    });
    cost.bytes += msgs[0].len() as u64 * 8;
    cost.rounds += 1;
    let mut opened0 = vec![0u64; msgs[0].len()];
    xor_into(&msgs[0], &msgs[1], &mut opened0).unwrap();
    for i in 0..2 {
        top::radix_top_level_finish(PARTIES[i], &sh, &mut state[i], &opened0, &t[i].masks, &t[i].prods)
            .unwrap();
    }
    let msgs = [0, 1].map(|i| {
        let mut m = vec![0u64; g * sh.top.wires()];
        top::radix_top_open(&sh, &state[i], &opened0, &t[i].msb, &t[i].masks, &t[i].prods, &mut m).unwrap();
        m
    });
    cost.bytes += msgs[0].len() as u64 * 8;
    cost.rounds += 1;
    let mut opened = vec![0u64; msgs[0].len()];
    xor_into(&msgs[0], &msgs[1], &mut opened).unwrap();
    let outs = [0, 1].map(|i| {
        let (mut s, mut sv) = (zeros::<O>(n), zeros::<O>(k));
        let m = match (&vs, &f) {
            (Some(vs), Some(f)) => Some(TopMul { f, v: &vs[i], mul_c: &t[i].c }),
            _ => None,
        };
        top::radix_top_finish(PARTIES[i], &sh, &y, &opened, &t[i].mono, m, &mut s, &mut sv).unwrap();
        (s, sv)
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party(), "online bytes of {step:?}");
    assert_eq!(cost.rounds, step.rounds());
    let [(s0, p0), (s1, p1)] = outs;
    (reveal(&[s0, s1]), reveal(&[p0, p1]), cost)
}

/// Inputs whose opened y equals the dealer's r, or r with one bit flipped, or r plus or minus
/// 1, cycling over the lanes (for a circuit narrower than O: in the low bits, the high bits
/// random or the sign extended).
fn adversarial<C: Ring, O: Ring>(h: &mut Harness, n: usize) -> Vec<O> {
    let mut r = [zeros::<C>(n), zeros::<C>(n)];
    for (i, p) in PARTIES.iter().enumerate() {
        h.streams(*p).prg(STEP, Purpose::R).fill_ring(&mut r[i]);
    }
    let r: Vec<C> = reveal(&r);
    let hi = h.rand::<O>(n);
    (0..n)
        .map(|i| {
            let y = match i % (C::BITS as usize + 3) {
                0 => r[i],
                1 => r[i].add(C::ONE),
                2 => r[i].sub(C::ONE),
                b => r[i].xor(C::pow2(b as u32 - 3)),
            };
            let low = y.sub(r[i]);
            if O::BITS == C::BITS || i % 2 == 0 {
                O::from_i64(low.to_i64())
            } else {
                O::from_u64((hi[i].to_u64() >> C::BITS << C::BITS) | low.to_u64())
            }
        })
        .collect()
}

/// [x < 0] of the circuit's low bits.
fn sign_of<C: Ring, O: Ring>(x: &[O]) -> Vec<O> {
    x.iter().map(|v| O::from_u64(u64::from(reduce::<O, C>(*v).to_i64() < 0))).collect()
}

fn check<C: Ring, O: Ring>(tag: u8) {
    let mut h = Harness::new(tag);
    for n in [1usize, 63, 64, 65, 300] {
        let lim = C::pow2(C::BITS - 1);
        let mut x: Vec<O> = [0i64, 1, -1].map(O::from_i64).to_vec();
        x.extend([lim, lim.sub(C::ONE)].map(|v| O::from_i64(v.to_i64())));
        x.extend(h.rand::<O>(n));
        let (s, _, _) = run::<C, O>(&mut h, &x, None);
        assert_eq!(s, sign_of::<C, O>(&x), "n={n}");
    }
    for n in [70usize, 1000] {
        let x = adversarial::<C, O>(&mut h, n);
        let (s, _, _) = run::<C, O>(&mut h, &x, None);
        assert_eq!(s, sign_of::<C, O>(&x), "adversarial n={n}");
        let x = adversarial::<C, O>(&mut h, n);
        let v = h.rand::<O>(n);
        let (s, sv, _) = run::<C, O>(&mut h, &x, Some(&v));
        let want = sign_of::<C, O>(&x);
        assert_eq!(s, want, "sign beside the product, n={n}");
        let sel: Vec<O> = want.iter().zip(&v).map(|(s, v)| s.mul(*v)).collect();
        assert_eq!(sv, sel, "select n={n}");
    }
}

#[test]
fn top_sign_z32() {
    check::<u32, u32>(43);
}

#[test]
fn top_sign_narrow() {
    check::<u32, u64>(44);
}

#[test]
fn top_sign_z64() {
    check::<u64, u64>(45);
}

/// Costs from the design, 64 values: 3 rounds. l = 32: y 256 B, level 0's 13 words and the
/// top's 3; P1 gets msb, 120 one-hot words, 37 level-0 products and 15 t m_S, and 4 monomials
/// per value (8 with a multiplicand). l = 64: level 0's 27 words and the top's 7; 248 one-hot
/// words, 81 level-0 products and 3 x 15 t m_S, 22 monomials. Against the 4-round form: the same
/// online bytes, one round fewer.
#[test]
fn top_costs() {
    let cost = |op| {
        let s = Step::bare(op);
        (s.online_bytes_per_party(), s.p1_correction_bytes(), s.rounds())
    };
    let (z32, z64) = (RingId::Z32, RingId::Z64);
    assert_eq!(
        cost(Op::SignRadixTopA { ring: z32, out: z32, len: 64, mul: false }),
        (256 + 16 * 8, (1 + 120 + 52) * 8 + 4 * 256, 3)
    );
    assert_eq!(
        cost(Op::SignRadixTopA { ring: z32, out: z64, len: 64, mul: true }),
        (256 + 512 + 16 * 8, (1 + 120 + 52) * 8 + 8 * 512, 3)
    );
    assert_eq!(
        cost(Op::SignRadixTopA { ring: z64, out: z64, len: 64, mul: true }),
        (512 + 512 + 34 * 8, (1 + 248 + 81 + 45) * 8 + 44 * 512, 3)
    );
    for (ring, out) in [(z32, z64), (z64, z64)] {
        let (four, _, r4) = cost(Op::SignRadixA { ring, out, len: 64, mul: true });
        let (three, _, r3) = cost(Op::SignRadixTopA { ring, out, len: 64, mul: true });
        assert_eq!((four, r4 - r3), (three, 1));
    }
    assert_eq!(TopShape::new(64, 1).monomials(), 22);
    assert!(Step::bare(Op::SignRadixTopA { ring: z64, out: z32, len: 64, mul: false }).validate(0).is_err());
    // Beside the next step: the same bytes and correlation, its first round in that step's
    // flight.
    for (ring, out, mul) in [(z32, z32, true), (z32, z64, true), (z64, z64, true), (z64, z64, false)] {
        let (b, d, r) = cost(Op::SignRadixTopBesideA { ring, out, len: 300, mul });
        let (b3, d3, r3) = cost(Op::SignRadixTopA { ring, out, len: 300, mul });
        assert_eq!((b, d, r), (b3, d3, r3 - 1));
    }
    assert!(
        Step::bare(Op::SignRadixTopBesideA { ring: z64, out: z32, len: 64, mul: true }).validate(0).is_err()
    );
}

/// The comparison beside the next step deals exactly the 3-round comparison's correlation.
#[test]
fn beside_deals_the_top_correlation() {
    let h = Harness::new(93);
    for (ring, out) in [(RingId::Z32, RingId::Z32), (RingId::Z64, RingId::Z64)] {
        let top = h.deal(STEP, &Step::bare(Op::SignRadixTopA { ring, out, len: 130, mul: true }));
        let beside = h.deal(STEP, &Step::bare(Op::SignRadixTopBesideA { ring, out, len: 130, mul: true }));
        assert_eq!(top, beside);
    }
}
