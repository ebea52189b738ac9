//! The fused truncation ([`ditto_core::fuse`]): the truncated value is floor(x / 2^k) or one
//! more, and every product equals the truncated value times its operand exactly, in both rings,
//! at the edges of the admitted range and on random values.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap, missing_docs)]

mod common;

use common::{Cost, Harness, PARTIES, per_party, reveal, ring_id, zeros};
use ditto_core::fuse::{self, FuseMaterial, Products, Width};
use ditto_core::plan::{Op, Step};
use ditto_core::ring::RingId;
use ditto_core::{Ring, trunc};

const STEP: u32 = 21;

struct Mat<R> {
    r: Vec<R>,
    rh: Vec<R>,
    m: Vec<R>,
    sq: Vec<R>,
    a: Vec<R>,
    ra: Vec<R>,
    pair: Vec<R>,
}

/// Runs the fused step; returns the opened outputs [t][t^2][t v][pairs] and the cost.
fn run<R: Ring>(h: &mut Harness, x: &[R], v: &[R], k: u32, p: Products) -> (Vec<R>, Cost) {
    run_w(h, x, v, (k, Form::Lanes), p)
}

/// The step's form: `TruncMulA`, `TruncMulNarrowA` at widths, or `TruncMulColsA` with the
/// operand's values per column (x rows x cols).
#[derive(Clone, Copy)]
enum Form {
    Lanes,
    Narrow(Width),
    Cols(usize),
}

/// [`run`] in `form`: at widths `w` (`TruncMulNarrowA`, Z_2^64) the shares of x are right
/// only modulo 2^open and those of v modulo 2^out (their high bits are garbage), y and f
/// travel in ceil(open/8) and ceil(out/8) bytes; per column, v and f have a value per column.
fn run_w<R: Ring>(h: &mut Harness, x: &[R], v: &[R], (k, form): (u32, Form), p: Products) -> (Vec<R>, Cost) {
    let n = x.len();
    let shift = k as u8;
    let (w, nv) = match form {
        Form::Narrow(w) => (w, n),
        Form::Lanes => (Width::full(R::BITS), n),
        Form::Cols(c) => (Width::full(R::BITS), c),
    };
    assert_eq!(v.len(), if p.mul { nv } else { v.len() });
    let step = Step::bare(match form {
        Form::Cols(c) => {
            assert!(p == Products { mul: true, ..Products::default() });
            Op::TruncMulColsA { ring: ring_id::<R>(), rows: (n / c) as u32, cols: c as u32, shift }
        }
        Form::Lanes => Op::TruncMulA {
            ring: ring_id::<R>(),
            len: n as u32,
            shift,
            square: p.square,
            mul: p.mul,
            pair: p.pair,
        },
        Form::Narrow(w) => Op::TruncMulNarrowA {
            len: n as u32,
            shift,
            open: w.open as u8,
            out: w.out as u8,
            square: p.square,
            mul: p.mul,
        },
    });
    let corr = h.deal(STEP, &step);
    let garble = |h: &mut Harness, s: [Vec<R>; 2], bits: u32| {
        if bits == R::BITS {
            return s;
        }
        let g: Vec<R> = h.rand::<R>(s[0].len()).into_iter().map(|g| g.shl(bits)).collect();
        let g1: Vec<R> = h.rand::<R>(s[0].len()).into_iter().map(|g| g.shl(bits)).collect();
        let [a, b] = s;
        [
            a.iter().zip(&g).map(|(a, g)| a.add(*g)).collect(),
            b.iter().zip(&g1).map(|(b, g)| b.add(*g)).collect(),
        ]
    };
    let xs = h.share(x);
    let xs = garble(h, xs, w.open);
    let vs = h.share(v);
    let vs = garble(h, vs, w.out);
    let on = |b: bool, l: usize| if b { l } else { 0 };
    let mats = per_party(h, &corr, |_, s, c| {
        let mut m = Mat {
            r: zeros(n),
            rh: zeros(n),
            m: zeros(n),
            sq: zeros(on(p.square, 2 * n)),
            a: zeros(on(p.mul, nv)),
            ra: zeros(on(p.mul, 2 * n)),
            pair: zeros(on(p.pair, 3 * (n / 2))),
        };
        let mut view = FuseMaterial {
            r: &mut m.r,
            rh: &mut m.rh,
            m: &mut m.m,
            sq: &mut m.sq,
            a: &mut m.a,
            ra: &mut m.ra,
            pair: &mut m.pair,
        };
        fuse::expand_fuse(s, STEP, (k, w), p, c, &mut view).unwrap();
        m
    });
    let vin = |i: usize| if p.mul { vs[i].clone() } else { Vec::new() };
    let msgs = [0, 1].map(|i| {
        let (mut y, mut f) = (zeros(n), zeros(on(p.mul, nv)));
        fuse::fuse_open(PARTIES[i], w, (&xs[i], &mats[i].r), (&vin(i), &mats[i].a), &mut y, &mut f).unwrap();
        (y, f)
    });
    // What travels: the low ceil(bits/8) bytes of each message, summed modulo 2^bits.
    let wire =
        |m: &[R], bits: u32| -> Vec<R> { m.iter().map(|v| v.low_bits(8 * bits.div_ceil(8))).collect() };
    let opened = |a: &[R], b: &[R], bits: u32| -> Vec<R> {
        reveal(&[wire(a, bits), wire(b, bits)]).into_iter().map(|v| v.low_bits(bits)).collect()
    };
    let y = opened(&msgs[0].0, &msgs[1].0, w.open);
    let f = opened(&msgs[0].1, &msgs[1].1, w.out);
    let bytes = msgs[0].0.len() * w.open.div_ceil(8) as usize + msgs[0].1.len() * w.out.div_ceil(8) as usize;
    let cost = Cost { bytes: bytes as u64, rounds: 1 };
    let parts = 1 + usize::from(p.square) + usize::from(p.mul);
    let mut mats = mats;
    let outs = [0, 1].map(|i| {
        let mut o = zeros(parts * n + on(p.pair, n / 2));
        fuse::fuse_finish(PARTIES[i], (k, w), p, (&y, &f), &vin(i), &mats[i].view(), &mut o).unwrap();
        o
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party(), "online bytes of {step:?}");
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&outs), cost)
}

impl<R: Ring> Mat<R> {
    fn view(&mut self) -> FuseMaterial<'_, R> {
        FuseMaterial {
            r: &mut self.r,
            rh: &mut self.rh,
            m: &mut self.m,
            sq: &mut self.sq,
            a: &mut self.a,
            ra: &mut self.ra,
            pair: &mut self.pair,
        }
    }
}

/// Values in the admitted range [-2^(l-2), 2^(l-2)): its edges and random ones.
fn inputs<R: Ring>(h: &mut Harness, n: usize) -> Vec<R> {
    let b = R::BITS - 2;
    let lim = R::pow2(b);
    let mut x = vec![R::ZERO, R::ONE, R::from_i64(-1), lim.sub(R::ONE), lim.neg(), lim.neg().add(R::ONE)];
    for r in h.rand::<R>(n) {
        // Sign-extend the low l - 1 bits: uniform in [-2^(l-2), 2^(l-2)).
        x.push(R::from_i64(r.shl(1).to_i64() >> 1));
    }
    x
}

fn check<R: Ring>(tag: u8, k: u32) {
    let mut h = Harness::new(tag);
    let all = Products { square: true, mul: true, pair: true };
    for (n, p) in [
        (1usize, Products { square: true, ..Products::default() }),
        (7, Products { mul: true, ..Products::default() }),
        (300, all),
        (301, Products { square: true, mul: true, pair: false }),
    ] {
        // Pairs need 2k <= l; wider shifts check the other corrections' high terms.
        let p = Products { pair: p.pair && 2 * k <= R::BITS, ..p };
        let mut x = inputs::<R>(&mut h, n);
        if p.pair && x.len() % 2 == 1 {
            x.pop();
        }
        let n = x.len();
        let v = h.rand::<R>(n);
        let (out, _) = run(&mut h, &x, &v, k, p);
        let t = &out[..n];
        for (i, (xi, ti)) in x.iter().zip(t).enumerate() {
            let floor = R::from_i64(xi.to_i64() >> k);
            assert!(
                *ti == floor || *ti == floor.add(R::ONE),
                "lane {i}: {} >> {k} gave {}",
                xi.to_i64(),
                ti.to_i64()
            );
        }
        let mut o = n;
        if p.square {
            let want: Vec<R> = t.iter().map(|t| t.mul(*t)).collect();
            assert_eq!(&out[o..o + n], &want[..], "squares");
            o += n;
        }
        if p.mul {
            let want: Vec<R> = t.iter().zip(&v).map(|(t, v)| t.mul(*v)).collect();
            assert_eq!(&out[o..o + n], &want[..], "products");
            o += n;
        }
        if p.pair {
            let hh = n / 2;
            let want: Vec<R> = (0..hh).map(|i| t[i].mul(t[i + hh])).collect();
            assert_eq!(&out[o..], &want[..], "pairs");
        }
    }
}

/// Narrow widths: inputs at the edges of [-2^(open-2), 2^(open-2)) and random ones in it,
/// shares garbled above their widths; t (floor or one more), t^2 and t v right modulo 2^out.
fn check_narrow(tag: u8, k: u32, w: Width) {
    let mut h = Harness::new(tag);
    let lim = 1i64 << (w.open - 2);
    for (n, p) in [
        (1usize, Products { square: true, ..Products::default() }),
        (9, Products { mul: true, ..Products::default() }),
        (301, Products { square: true, mul: true, pair: false }),
    ] {
        let mut x: Vec<u64> = [0, 1, -1, lim - 1, -lim, -lim + 1, (1 << k) - 1, 1 << k, -(1 << k)]
            .iter()
            .map(|v| *v as u64)
            .collect();
        for r in h.rand::<u64>(n) {
            x.push(((r << (65 - w.open)) as i64 >> (65 - w.open)) as u64);
        }
        let n = x.len();
        let v = h.rand::<u64>(n);
        let (out, cost) = run_w(&mut h, &x, &v, (k, Form::Narrow(w)), p);
        let o = |v: u64| v.low_bits(w.out);
        let t: Vec<u64> = out[..n].iter().map(|v| o(*v)).collect();
        for (i, (xi, ti)) in x.iter().zip(&t).enumerate() {
            let floor = o((*xi as i64 >> k) as u64);
            assert!(
                *ti == floor || *ti == o(floor.wrapping_add(1)),
                "lane {i}: {} >> {k} gave {ti} ({w:?})",
                *xi as i64
            );
        }
        let mut at = n;
        if p.square {
            let want: Vec<u64> = t.iter().map(|t| o(t.wrapping_mul(*t))).collect();
            let got: Vec<u64> = out[at..at + n].iter().map(|v| o(*v)).collect();
            assert_eq!(got, want, "squares ({w:?})");
            at += n;
        }
        if p.mul {
            let want: Vec<u64> = t.iter().zip(&v).map(|(t, v)| o(t.wrapping_mul(*v))).collect();
            let got: Vec<u64> = out[at..at + n].iter().map(|v| o(*v)).collect();
            assert_eq!(got, want, "products ({w:?})");
        }
        let per = 1 + u64::from(p.square) + u64::from(p.mul);
        let mb = u64::from(w.mbits(k).div_ceil(8));
        let step = Op::TruncMulNarrowA {
            len: n as u32,
            shift: k as u8,
            open: w.open as u8,
            out: w.out as u8,
            square: p.square,
            mul: p.mul,
        };
        assert_eq!(
            Step::bare(step).p1_correction_bytes(),
            n as u64 * per * (u64::from(w.out.div_ceil(8)) + mb)
        );
        assert_eq!(
            cost.bytes,
            n as u64 * u64::from(w.open.div_ceil(8) + if p.mul { w.out.div_ceil(8) } else { 0 })
        );
    }
}

#[test]
fn narrow_fused_truncation() {
    // The exp chain's widths at f = 18, n = 5: (24, 39) by 5, (39, 39) by 18, (39, 64) by 18.
    check_narrow(60, 5, Width { open: 24, out: 39 });
    check_narrow(61, 18, Width { open: 39, out: 39 });
    check_narrow(62, 18, Width { open: 39, out: 64 });
    check_narrow(63, 8, Width { open: 16, out: 40 });
    check_narrow(64, 20, Width { open: 64, out: 64 });
    // Widths the step refuses.
    for (k, open, out) in [(18u8, 20u8, 39u8), (5, 40, 39), (5, 24, 65), (0, 24, 39)] {
        let op = Op::TruncMulNarrowA { len: 4, shift: k, open, out, square: true, mul: false };
        assert!(Step::bare(op).validate(0).is_err(), "{k} {open} {out}");
    }
}

#[test]
fn fused_truncation_z32() {
    check::<u32>(50, 8);
    check::<u32>(51, 11);
    check::<u32>(54, 20);
}

#[test]
fn fused_truncation_z64() {
    check::<u64>(52, 18);
    check::<u64>(53, 19);
    check::<u64>(55, 40);
}

/// Costs: one round; y (and f with a product) online; the truncation's record plus an element
/// and k bits per square and per product, an element and 2k bits per pair from the dealer.
#[test]
fn fused_costs() {
    let cost = |square, mul, pair| {
        let s = Step::bare(Op::TruncMulA { ring: RingId::Z64, len: 100, shift: 18, square, mul, pair });
        (s.online_bytes_per_party(), s.p1_correction_bytes(), s.rounds())
    };
    let tr = trunc::correction_bytes(RingId::Z64, 100, 18);
    assert_eq!(tr, 100 * (8 + 3));
    assert_eq!(cost(true, false, false), (800, tr + 1100, 1));
    assert_eq!(cost(false, true, false), (1600, tr + 1100, 1));
    assert_eq!(cost(true, true, true), (1600, tr + 2200 + 50 * 14, 1));
    let wide = Op::TruncMulA { ring: RingId::Z32, len: 4, shift: 17, square: false, mul: false, pair: true };
    assert!(Step::bare(wide).validate(0).is_err(), "pairs need 2k <= l");
    assert!(
        Step::bare(Op::TruncMulA {
            ring: RingId::Z64,
            len: 3,
            shift: 18,
            square: false,
            mul: false,
            pair: true
        })
        .validate(0)
        .is_err()
    );
    assert!(
        Step::bare(Op::TruncMulA {
            ring: RingId::Z64,
            len: 4,
            shift: 18,
            square: false,
            mul: false,
            pair: false
        })
        .validate(0)
        .is_err()
    );
}

/// A per-column operand (LayerNorm's gamma): every element truncated, each product exactly t_ij
/// v_j, f opened once per column; the dealer's units split anywhere in a row give the same
/// bytes; costs.
#[test]
fn column_products() {
    fn go<R: Ring>(tag: u8, k: u32) {
        let mut h = Harness::new(tag);
        for (rows, cols) in [(1usize, 1usize), (3, 5), (41, 17)] {
            let mut x = inputs::<R>(&mut h, rows * cols);
            x.truncate(rows * cols);
            let mut v = h.rand::<R>(cols);
            v[0] = R::ONE;
            let p = Products { mul: true, ..Products::default() };
            let (out, cost) = run_w(&mut h, &x, &v, (k, Form::Cols(cols)), p);
            let n = rows * cols;
            for (e, xe) in x.iter().enumerate() {
                let (t, floor) = (out[e], R::from_i64(xe.to_i64() >> k));
                assert!(
                    t == floor || t == floor.add(R::ONE),
                    "element {e}: {} >> {k} gave {}",
                    xe.to_i64(),
                    t.to_i64()
                );
                assert_eq!(out[n + e], t.mul(v[e % cols]), "element {e} (column {})", e % cols);
            }
            assert_eq!(cost.bytes, ((n + cols) * R::BYTES) as u64);
            let step = Step::bare(Op::TruncMulColsA {
                ring: ring_id::<R>(),
                rows: rows as u32,
                cols: cols as u32,
                shift: k as u8,
            });
            let lanes = Step::bare(Op::TruncMulA {
                ring: ring_id::<R>(),
                len: n as u32,
                shift: k as u8,
                square: false,
                mul: true,
                pair: false,
            });
            assert_eq!(step.p1_correction_bytes(), lanes.p1_correction_bytes());
            // A split of the units inside a row deals the same bytes as the whole step.
            let whole = h.deal(STEP, &step);
            let cut = n / 2 + 1;
            let parts =
                [h.deal_part(STEP, &step, 0..cut.min(n)), h.deal_part(STEP, &step, cut.min(n)..n)].concat();
            assert_eq!(whole, parts, "{rows} x {cols}");
        }
    }
    go::<u32>(65, 8);
    go::<u64>(66, 18);
    go::<u64>(67, 40);
    for (ring, shift, cols) in [(RingId::Z32, 30u8, 3u32), (RingId::Z64, 0, 3), (RingId::Z64, 18, 0)] {
        assert!(Step::bare(Op::TruncMulColsA { ring, rows: 2, cols, shift }).validate(0).is_err());
    }
}
