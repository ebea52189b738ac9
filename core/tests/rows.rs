//! A row's value truncated once and multiplied by its row ([`ditto_core::rows`]): each row's t
//! is floor(x / 2^k) or one more, the same for the whole row, and every product is exactly
//! t v, in both rings, for both values of the truncation's public bit (x on both sides of zero
//! and at the edges of the admitted range), on random values; costs against the plan.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap, missing_docs)]

mod common;

use common::{Harness, PARTIES, per_party, reveal, ring_id, zeros};
use ditto_core::Ring;
use ditto_core::center::{self, CenterMaterial};
use ditto_core::plan::{Op, Step};
use ditto_core::plan::{PlanHasher, PlanHeader};
use ditto_core::ring::RingId;
use ditto_core::rows::{self, CentredMaterial, RowsMaterial};
use ditto_core::trunc;

const STEP: u32 = 31;

type Mat<R> = (Vec<R>, Vec<R>, Vec<R>, Vec<R>, Vec<R>);

fn view<R>(t: &mut Mat<R>) -> RowsMaterial<'_, R> {
    RowsMaterial { r: &mut t.0, rh: &mut t.1, m: &mut t.2, a: &mut t.3, pairs: &mut t.4 }
}

/// Runs the step on x (rows) and v (rows x cols); returns the opened products.
fn run<R: Ring>(h: &mut Harness, x: &[R], v: &[R], k: u32) -> Vec<R> {
    let (nr, n) = (x.len(), v.len());
    let op =
        Op::TruncMulRowsA { ring: ring_id::<R>(), rows: nr as u32, cols: (n / nr) as u32, shift: k as u8 };
    let step = Step::bare(op);
    step.validate(0).unwrap();
    let corr = h.deal(STEP, &step);
    let (xs, vs) = (h.share(x), h.share(v));
    let mats = per_party(h, &corr, |_, s, c| {
        let mut t: Mat<R> = (zeros(nr), zeros(nr), zeros(nr), zeros(n), zeros(2 * n));
        rows::expand_rows(s, STEP, k, c, &mut view(&mut t)).unwrap();
        t
    });
    let msgs = [0, 1].map(|i| {
        let (mut y, mut f) = (zeros(nr), zeros(n));
        let mut t = mats[i].clone();
        rows::rows_open(PARTIES[i], (&xs[i], &vs[i]), &view(&mut t), &mut y, &mut f).unwrap();
        (y, f)
    });
    assert_eq!(((nr + n) * R::BYTES) as u64, step.online_bytes_per_party());
    assert_eq!(step.rounds(), 1);
    let y = reveal(&[msgs[0].0.clone(), msgs[1].0.clone()]);
    let f = reveal(&[msgs[0].1.clone(), msgs[1].1.clone()]);
    let outs = [0, 1].map(|i| {
        let mut out = zeros(n);
        let mut t = mats[i].clone();
        rows::rows_finish(PARTIES[i], k, (&y, &f), &view(&mut t), &mut out).unwrap();
        out
    });
    reveal(&outs)
}

fn check<R: Ring>(tag: u8, k: u32) {
    let mut h = Harness::new(tag);
    let lim = (1i64 << (R::BITS - 2).min(62)) - 1;
    for (nr, cols) in [(1usize, 1usize), (9, 7), (40, 33)] {
        let mut x: Vec<R> = [0, 1, -1, lim, -lim - 1, 1 << k, -(1 << k), (1 << k) - 1, -(1 << k) + 1]
            .iter()
            .map(|v| R::from_i64(*v))
            .take(nr)
            .collect();
        for r in h.rand::<R>(nr - x.len()) {
            x.push(R::from_i64(r.shl(1).to_i64() >> 1));
        }
        // The first element of each row is 1, so its product is the row's t.
        let mut v = h.rand::<R>(nr * cols);
        for i in 0..nr {
            v[i * cols] = R::ONE;
        }
        let out = run(&mut h, &x, &v, k);
        for i in 0..nr {
            let t = out[i * cols];
            let floor = R::from_i64(x[i].to_i64() >> k);
            assert!(
                t == floor || t == floor.add(R::ONE),
                "row {i}: {} >> {k} gave {}",
                x[i].to_i64(),
                t.to_i64()
            );
            for e in i * cols..(i + 1) * cols {
                assert_eq!(out[e], t.mul(v[e]), "row {i}, element {e}");
            }
        }
    }
}

#[test]
fn row_products_z32() {
    check::<u32>(70, 8);
    check::<u32>(71, 17);
}

#[test]
fn row_products_z64() {
    check::<u64>(72, 18);
    check::<u64>(73, 40);
}

/// Costs: one round; y per row and f per element online; a truncation record per row and an
/// element and k bits per element from the dealer.
#[test]
fn row_product_costs() {
    let s = Step::bare(Op::TruncMulRowsA { ring: RingId::Z64, rows: 12, cols: 128, shift: 18 });
    assert_eq!(s.online_bytes_per_party(), 8 * (12 + 12 * 128));
    assert_eq!(s.p1_correction_bytes(), 12 * (8 + 3) + 12 * 128 * (8 + 3));
    assert!(
        Step::bare(Op::TruncMulRowsA { ring: RingId::Z32, rows: 2, cols: 3, shift: 30 }).validate(0).is_err()
    );
    assert!(
        Step::bare(Op::TruncMulRowsA { ring: RingId::Z32, rows: 2, cols: 0, shift: 8 }).validate(0).is_err()
    );
}

const CENTER: u32 = 29;

type CMat<R> = (Vec<R>, Vec<R>, Vec<R>, Vec<R>, Vec<R>);

fn cview<R>(t: &mut CMat<R>) -> CentredMaterial<'_, R> {
    CentredMaterial { r: &mut t.0, rh: &mut t.1, m: &mut t.2, cross: &mut t.3, pairs: &mut t.4 }
}

/// A centring (mean u / 2^kc, d = x - mean) at step CENTER, then the row products of the rows'
/// values z truncated by k with that d at step STEP; returns (the opened d, the opened
/// products).
fn run_centred<R: Ring>(
    h: &mut Harness,
    (u, x): (&[R], &[R]),
    z: &[R],
    (k, kc): (u32, u32),
) -> (Vec<R>, Vec<R>) {
    let (nr, n) = (u.len(), x.len());
    let (ring, rows, cols) = (ring_id::<R>(), nr as u32, (n / nr) as u32);
    let c_step = Step::bare(Op::TruncCenterSquareA { ring, rows, cols, shift: kc as u8 });
    let op = Op::TruncMulRowsCenteredA {
        ring,
        rows,
        cols,
        shift: k as u8,
        center: CENTER,
        center_shift: kc as u8,
    };
    let step = Step::bare(op);
    step.validate(STEP).unwrap();
    // The centring.
    let c_corr = h.deal(CENTER, &c_step);
    let (us, xs) = (h.share(u), h.share(x));
    let c_mats = per_party(h, &c_corr, |_, s, c| {
        let mut t: Mat<R> = (zeros(nr), zeros(nr), zeros(nr), zeros(n), zeros(2 * n));
        let mut v = CenterMaterial { r: &mut t.0, rh: &mut t.1, m: &mut t.2, a: &mut t.3, pairs: &mut t.4 };
        center::expand_center(s, CENTER, kc, c, &mut v).unwrap();
        t
    });
    let c_msgs = [0, 1].map(|i| {
        let (mut y, mut f) = (zeros(nr), zeros(n));
        let mut t = c_mats[i].clone();
        center::center_open(PARTIES[i], (&us[i], &xs[i]), &view(&mut t), &mut y, &mut f).unwrap();
        (y, f)
    });
    let yc = reveal(&[c_msgs[0].0.clone(), c_msgs[1].0.clone()]);
    let fc = reveal(&[c_msgs[0].1.clone(), c_msgs[1].1.clone()]);
    let ds = [0, 1].map(|i| {
        let (mut t, mut d, mut sq) = (zeros(nr), zeros(n), zeros(n));
        let mut m = c_mats[i].clone();
        center::center_finish(PARTIES[i], kc, (&yc, &fc), &xs[i], &view(&mut m), (&mut t, &mut d, &mut sq))
            .unwrap();
        d
    });
    // The row products.
    let corr = h.deal(STEP, &step);
    let zs = h.share(z);
    let mut mats = per_party(h, &corr, |_, s, c| {
        let mut t: CMat<R> = (zeros(nr), zeros(nr), zeros(nr), zeros(nr), zeros(2 * n));
        rows::expand_centred(s, STEP, (k, kc), c, &mut cview(&mut t)).unwrap();
        t
    });
    let ys = [0, 1].map(|i| {
        let mut y = zeros(nr);
        trunc::trunc_a_open(PARTIES[i], &zs[i], &mats[i].0, &mut y).unwrap();
        y
    });
    assert_eq!((nr * R::BYTES) as u64, step.online_bytes_per_party());
    assert_eq!(step.rounds(), 1);
    let y = reveal(&ys);
    let outs = [0, 1].map(|i| {
        let mut out = zeros(n);
        rows::centred_finish(PARTIES[i], (k, kc), &y, (&yc, &fc, &ds[i]), &cview(&mut mats[i]), &mut out)
            .unwrap();
        out
    });
    (reveal(&ds), reveal(&outs))
}

fn check_centred<R: Ring>(tag: u8, (k, kc): (u32, u32)) {
    let mut h = Harness::new(tag);
    let lim = (1i64 << (R::BITS - 2).min(62)) - 1;
    let edges = |k: u32| [0, 1, -1, lim, -lim - 1, 1 << k, -(1 << k), (1 << k) - 1, -(1 << k) + 1];
    for (nr, cols) in [(1usize, 1usize), (9, 7), (64, 5)] {
        let signed = |h: &mut Harness, n: usize| -> Vec<R> {
            h.rand::<R>(n).into_iter().map(|r| R::from_i64(r.shl(1).to_i64() >> 1)).collect()
        };
        let mut u: Vec<R> = edges(kc).iter().map(|v| R::from_i64(*v)).take(nr).collect();
        let more = signed(&mut h, nr - u.len());
        u.extend(more);
        let mut z: Vec<R> = edges(k).iter().rev().map(|v| R::from_i64(*v)).take(nr).collect();
        let more = signed(&mut h, nr - z.len());
        z.extend(more);
        let x = h.rand::<R>(nr * cols);
        let (d, out) = run_centred(&mut h, (&u, &x), &z, (k, kc));
        for i in 0..nr {
            let floor = R::from_i64(z[i].to_i64() >> k);
            let row = i * cols..(i + 1) * cols;
            let fits = |t: R| row.clone().all(|e| out[e] == t.mul(d[e]));
            assert!(fits(floor) || fits(floor.add(R::ONE)), "row {i}: {} >> {k}", z[i].to_i64());
            // The centring's d is x less its row's truncated mean.
            let mean = x[i * cols].sub(d[i * cols]);
            let fm = R::from_i64(u[i].to_i64() >> kc);
            assert!(mean == fm || mean == fm.add(R::ONE), "row {i}: mean");
        }
    }
}

#[test]
fn centred_row_products() {
    check_centred::<u32>(74, (8, 8));
    check_centred::<u32>(75, (17, 15));
    check_centred::<u64>(76, (18, 18));
    check_centred::<u64>(77, (40, 24));
}

/// Costs, shapes refused, and the plan's rule: a centred product names the last centring of
/// its shape that no other product used.
#[test]
fn centred_row_product_costs_and_plan_rule() {
    let c = |index| Op::TruncMulRowsCenteredA {
        ring: RingId::Z64,
        rows: 12,
        cols: 128,
        shift: 18,
        center: index,
        center_shift: 18,
    };
    let s = Step::bare(c(0));
    assert_eq!(s.online_bytes_per_party(), 8 * 12);
    assert_eq!(s.p1_correction_bytes(), 12 * (8 + 3) + 12 * 3 + 12 * 128 * (8 + 3));
    for (ring, shift, cs) in
        [(RingId::Z32, 17u8, 16u8), (RingId::Z64, 0, 18), (RingId::Z64, 18, 0), (RingId::Z64, 40, 30)]
    {
        let op = Op::TruncMulRowsCenteredA { ring, rows: 2, cols: 3, shift, center: 0, center_shift: cs };
        assert!(Step::bare(op).validate(1).is_err(), "{ring:?} {shift} {cs}");
    }
    assert!(s.validate(0).is_err(), "the centring comes before");
    let centring = |cols| Op::TruncCenterSquareA { ring: RingId::Z64, rows: 12, cols, shift: 18 };
    let t = Op::TruncA { ring: RingId::Z64, len: 12, shift: 18 };
    let hash = |ops: &[Op]| {
        let header = PlanHeader {
            version: ditto_core::plan::PLAN_VERSION,
            name: heapless::String::new(),
            n_steps: ops.len() as u32,
        };
        let mut hs = PlanHasher::new(&header).unwrap();
        ops.iter().try_for_each(|op| hs.push(&Step::bare(*op))).and_then(|()| hs.finish()).is_ok()
    };
    assert!(hash(&[centring(128), t, c(0)]));
    assert!(!hash(&[t, c(0)]), "no centring");
    assert!(!hash(&[centring(64), t, c(0)]), "another shape");
    assert!(!hash(&[centring(128), centring(128), c(0)]), "not the last centring");
    assert!(!hash(&[centring(128), t, c(0), c(0)]), "used twice");
    assert!(!hash(&[centring(128), t, c(1)]), "not a centring");
}
