//! LayerNorm's centring fused with the mean's truncation ([`ditto_core::center`]): the mean is
//! floor(u / 2^k) or one more, d = x - t exactly and d^2 its exact square, in both rings, for
//! both values of the truncation's public bit b (u on both sides of zero and at the edges of
//! the admitted range), on random values.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap, missing_docs)]

mod common;

use common::{Harness, PARTIES, per_party, reveal, ring_id, zeros};
use ditto_core::Ring;
use ditto_core::center::{self, CenterMaterial};
use ditto_core::plan::{Op, Step};
use ditto_core::ring::RingId;

const STEP: u32 = 29;

/// Runs the step on u (rows) and x (rows x cols); returns the opened (t, d, d^2).
fn run<R: Ring>(h: &mut Harness, u: &[R], x: &[R], k: u32) -> (Vec<R>, Vec<R>, Vec<R>) {
    let (rows, n) = (u.len(), x.len());
    let cols = n / rows;
    let op =
        Op::TruncCenterSquareA { ring: ring_id::<R>(), rows: rows as u32, cols: cols as u32, shift: k as u8 };
    let step = Step::bare(op);
    step.validate(0).unwrap();
    let corr = h.deal(STEP, &step);
    let (us, xs) = (h.share(u), h.share(x));
    let mats = per_party(h, &corr, |_, s, c| {
        let (mut r, mut rh, mut m, mut a, mut sq) =
            (zeros(rows), zeros(rows), zeros(rows), zeros(n), zeros(2 * n));
        let mut v = CenterMaterial { r: &mut r, rh: &mut rh, m: &mut m, a: &mut a, pairs: &mut sq };
        center::expand_center(s, STEP, k, c, &mut v).unwrap();
        (r, rh, m, a, sq)
    });
    let msgs = [0, 1].map(|i| {
        let (mut y, mut f) = (zeros(rows), zeros(n));
        let mut t = mats[i].clone();
        let v = CenterMaterial { r: &mut t.0, rh: &mut t.1, m: &mut t.2, a: &mut t.3, pairs: &mut t.4 };
        center::center_open(PARTIES[i], (&us[i], &xs[i]), &v, &mut y, &mut f).unwrap();
        (y, f)
    });
    assert_eq!(((rows + n) * R::BYTES) as u64, step.online_bytes_per_party());
    assert_eq!(step.rounds(), 1);
    let y = reveal(&[msgs[0].0.clone(), msgs[1].0.clone()]);
    let f = reveal(&[msgs[0].1.clone(), msgs[1].1.clone()]);
    let outs = [0, 1].map(|i| {
        let (mut tt, mut d, mut sq) = (zeros(rows), zeros(n), zeros(n));
        let mut t = mats[i].clone();
        let m = CenterMaterial { r: &mut t.0, rh: &mut t.1, m: &mut t.2, a: &mut t.3, pairs: &mut t.4 };
        center::center_finish(PARTIES[i], k, (&y, &f), &xs[i], &m, (&mut tt, &mut d, &mut sq)).unwrap();
        (tt, d, sq)
    });
    let [(t0, d0, s0), (t1, d1, s1)] = outs;
    (reveal(&[t0, t1]), reveal(&[d0, d1]), reveal(&[s0, s1]))
}

fn check<R: Ring>(tag: u8, k: u32) {
    let mut h = Harness::new(tag);
    let l = R::BITS;
    let lim = (1i64 << (l - 2).min(62)) - 1;
    for (rows, cols) in [(1usize, 1usize), (3, 7), (20, 33)] {
        let mut u: Vec<R> =
            h.rand::<R>(rows).into_iter().map(|v| R::from_i64((v.to_i64() >> 3).clamp(-lim, lim))).collect();
        // Edges of the admitted range and both signs.
        for (slot, e) in u.iter_mut().zip([lim, -lim, 0, -1, 1]) {
            *slot = R::from_i64(e);
        }
        let x: Vec<R> =
            h.rand::<R>(rows * cols).into_iter().map(|v| R::from_i64(v.to_i64() >> (l / 2))).collect();
        let (t, d, sq) = run::<R>(&mut h, &u, &x, k);
        for i in 0..rows {
            let fl = u[i].to_i64() >> k;
            let ti = t[i].to_i64();
            assert!(ti == fl || ti == fl + 1, "mean {ti} of {} >> {k}", u[i].to_i64());
            for j in 0..cols {
                let e = i * cols + j;
                assert_eq!(d[e], x[e].sub(t[i]), "d[{i},{j}]");
                assert_eq!(sq[e], d[e].mul(d[e]), "d^2[{i},{j}]");
            }
        }
    }
}

#[test]
fn centring_z64() {
    check::<u64>(51, 18);
    check::<u64>(52, 40);
}

#[test]
fn centring_z32() {
    check::<u32>(53, 8);
}

/// Costs: one round; per row the truncation's record, per element one ring element and
/// ceil(k/8) bytes; online y per row and f per element.
#[test]
fn centring_costs() {
    let s = Step::bare(Op::TruncCenterSquareA { ring: RingId::Z64, rows: 128, cols: 768, shift: 18 });
    let trunc = Step::bare(Op::TruncA { ring: RingId::Z64, len: 128, shift: 18 });
    let square = Step::bare(Op::SquareA { ring: RingId::Z64, len: 128 * 768 });
    assert_eq!(s.online_bytes_per_party(), trunc.online_bytes_per_party() + square.online_bytes_per_party());
    assert_eq!(s.p1_correction_bytes(), trunc.p1_correction_bytes() + 128 * 768 * (8 + 3));
    assert_eq!((s.rounds(), trunc.rounds() + square.rounds()), (1, 2));
    assert!(
        Step::bare(Op::TruncCenterSquareA { ring: RingId::Z64, rows: 1, cols: 1, shift: 0 })
            .validate(0)
            .is_err()
    );
}
