//! A row's value truncated once and multiplied by its row ([`ditto_core::rows`]): each row's t
//! is floor(x / 2^k) or one more, the same for the whole row, and every product is exactly
//! t v, in both rings, for both values of the truncation's public bit (x on both sides of zero
//! and at the edges of the admitted range), on random values; costs against the plan.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap, missing_docs)]

mod common;

use common::{Harness, PARTIES, per_party, reveal, ring_id, zeros};
use ditto_core::Ring;
use ditto_core::plan::{Op, Step};
use ditto_core::ring::RingId;
use ditto_core::rows::{self, RowsMaterial};

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
