//! Every online operation at two real parties, over both rings and both links (in memory and
//! loopback TCP), against the plaintext fixed-point reference: exact where no truncation
//! happens, floor or one more per truncation; bytes and rounds per step equal the plan's costs
//! (checked in `common::run2`).
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

mod common;

use common::{NETS, rng, run2};
use ditto_core::Ring;
use ditto_core::rand_core::Rng;
use ditto_mpc::tensor::{reveal, share};
use ditto_mpc::{Shared, plain};

fn rand<R: Ring>(g: &mut impl Rng, n: usize) -> Vec<R> {
    (0..n).map(|_| R::from_u64(g.next_u64())).collect()
}

/// Random values in [-2^bits, 2^bits) plus the edges of that range.
fn bounded<R: Ring>(g: &mut impl Rng, n: usize, bits: u32) -> Vec<R> {
    let lim = 1i64 << bits;
    let mut v: Vec<R> = [0, 1, -1, lim - 1, -lim].iter().map(|&x| R::from_i64(x)).collect();
    v.extend((0..n).map(|_| R::from_i64(((g.next_u64() as i64) << (63 - bits)) >> (63 - bits))));
    v
}

async fn products<R: Ring>() {
    for net in NETS {
        let mut g = rng(1);
        let (x, y) = (rand::<R>(&mut g, 200), rand::<R>(&mut g, 200));
        let (xs, ys) = (share(&x, &mut g), share(&y, &mut g));
        let (n, k, m, t) = (5, 37, 19, 3);
        let (a, w) = (rand::<R>(&mut g, n * k), rand::<R>(&mut g, k * m));
        let (aa, ws) = (share(&a, &mut g), share(&w, &mut g));
        let (p, q) = (rand::<R>(&mut g, t * n * k), rand::<R>(&mut g, t * k * m));
        let (ps, qs) = (share(&p, &mut g), share(&q, &mut g));
        let (out, _, plan) = run2(net, async |e, party| {
            let i = party.index();
            let xv = Shared::new(xs[i].clone(), &[200], 0)?;
            let yv = Shared::new(ys[i].clone(), &[200], 0)?;
            let prod = e.mul_aa(&xv, &yv).await?;
            let sq = e.square_a(&xv).await?;
            let weight = e.setup_weight(7, &Shared::new(ws[i].clone(), &[k, m], 0)?).await?;
            let lin = e.matmul_fixed(&Shared::new(aa[i].clone(), &[n, k], 0)?, &weight).await?;
            let att = e
                .matmul_aa(
                    &Shared::new(ps[i].clone(), &[t, n, k], 0)?,
                    &Shared::new(qs[i].clone(), &[t, k, m], 0)?,
                )
                .await?;
            Ok([prod.data, sq.data, lin.data, att.data])
        })
        .await;
        assert_eq!(plan.steps.len(), 4);
        assert_eq!(reveal(&out[0][0], &out[1][0]), plain::mul(&x, &y), "{net:?}");
        assert_eq!(reveal(&out[0][1], &out[1][1]), plain::mul(&x, &x));
        assert_eq!(reveal(&out[0][2], &out[1][2]), plain::matmul(&a, &w, n, k, m));
        let want: Vec<R> = (0..t)
            .flat_map(|b| {
                plain::matmul(&p[b * n * k..(b + 1) * n * k], &q[b * k * m..(b + 1) * k * m], n, k, m)
            })
            .collect();
        assert_eq!(reveal(&out[0][3], &out[1][3]), want);
    }
}

async fn truncation_and_comparisons<R: Ring>() {
    for net in NETS {
        let mut g = rng(2);
        let l = R::BITS;
        let x = bounded::<R>(&mut g, 300, l - 3);
        let xs = share(&x, &mut g);
        let full = rand::<R>(&mut g, 130);
        let full: Vec<R> = full
            .into_iter()
            .chain([R::pow2(l - 1), R::pow2(l - 1).sub(R::ONE), R::ZERO, R::ONE.neg()])
            .collect();
        let fs = share(&full, &mut g);
        let (rows, cols) = (7, 13);
        let mx = bounded::<R>(&mut g, rows * cols - 5, l - 4);
        let ms = share(&mx, &mut g);
        let nx = x.len();
        let nf = full.len();
        let (out, _, _) = run2(net, async |e, party| {
            let i = party.index();
            let xv = Shared::new(xs[i].clone(), &[nx], 12)?;
            let t = e.trunc_a(&xv, 7).await?;
            assert_eq!(t.frac, 5);
            let fv = Shared::new(fs[i].clone(), &[nf], 0)?;
            let s = e.sign_a(&fv).await?;
            let r = e.relu(&xv).await?;
            let m = e.max_rows(&Shared::new(ms[i].clone(), &[rows, cols], 0)?).await?;
            let half = Shared::new(xs[i][..nx / 2].to_vec(), &[nx / 2], 12)?;
            let other = Shared::new(xs[i][nx / 2..nx / 2 * 2].to_vec(), &[nx / 2], 12)?;
            let lt = e.lt(&half, &other).await?;
            Ok([t.data, s.data, r.data, m.data, lt.data])
        })
        .await;
        assert!(
            plain::within_ulps(&reveal(&out[0][0], &out[1][0]), &plain::trunc(&x, 7), 1),
            "{net:?} trunc"
        );
        assert_eq!(reveal(&out[0][1], &out[1][1]), plain::sign(&full), "{net:?} sign");
        assert_eq!(reveal(&out[0][2], &out[1][2]), plain::relu(&x), "{net:?} relu");
        assert_eq!(reveal(&out[0][3], &out[1][3]), plain::max_rows(&mx, rows, cols), "{net:?} max");
        let want: Vec<R> =
            (0..nx / 2).map(|j| R::from_bit(u64::from(x[j].to_i64() < x[nx / 2 + j].to_i64()))).collect();
        assert_eq!(reveal(&out[0][4], &out[1][4]), want, "{net:?} lt");
    }
}

macro_rules! both_rings {
    ($name:ident, $f:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn z32() {
                super::$f::<u32>().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn z64() {
                super::$f::<u64>().await;
            }
        }
    };
}

both_rings!(products, products);
both_rings!(truncation_and_comparisons, truncation_and_comparisons);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_between_rings() {
    for net in NETS {
        let mut g = rng(3);
        let x = bounded::<u32>(&mut g, 500, 30);
        let x: Vec<u32> = x.into_iter().chain([1 << 30]).collect();
        let xs = share(&x, &mut g);
        let y: Vec<u64> =
            rand::<u64>(&mut g, 400).into_iter().chain([0, 1, u64::MAX, 1 << 63, (1 << 63) - 1]).collect();
        let ys = share(&y, &mut g);
        let (nx, ny) = (x.len(), y.len());
        let (out, _, _) = run2(net, async |e, party| {
            let i = party.index();
            let up = e.upcast_a(&Shared::new(xs[i].clone(), &[nx], 8)?).await?;
            let up = e.rescale_up(&up, 10);
            assert_eq!(up.frac, 18);
            let down = e.downcast_a(&Shared::new(ys[i].clone(), &[ny], 18)?, 10).await?;
            assert_eq!(down.frac, 8);
            Ok((up.data, down.data))
        })
        .await;
        let up = reveal(&out[0].0, &out[1].0);
        let want: Vec<u64> = plain::upcast(&x).iter().map(|v| v << 10).collect();
        assert_eq!(up, want, "{net:?} upcast");
        assert!(
            plain::within_ulps(&reveal(&out[0].1, &out[1].1), &plain::downcast(&y, 10), 1),
            "{net:?} downcast"
        );
    }
}

/// The sign of Z_2^64 values with |x| < 2^31 from their low 32 bits (circuit in Z_2^32, result
/// in Z_2^64), and the row maximum built on it: exact against the plaintext reference, over
/// both links, at the edges of the range; outside the range it is the sign of the low 32 bits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_of_the_low_32_bits() {
    let lim = 1u64 << 31;
    let mut g = rng(6);
    let mut x: Vec<u64> = bounded::<u64>(&mut g, 200, 31);
    x.extend([0, 1, u64::MAX, lim - 1, 0u64.wrapping_sub(lim), 0u64.wrapping_sub(lim - 1), 2]);
    // Beyond the range: 2^31 (low bits negative), -(2^31 + 1) (low bits positive), 2^40 - 1.
    x.extend([lim, 0u64.wrapping_sub(lim + 1), (1 << 40) - 1]);
    let xs = share(&x, &mut g);
    // 45 columns: an odd element passes through some levels (each level compares in 3 rounds).
    let (rows, cols) = (5, 45);
    let mx = bounded::<u64>(&mut g, rows * cols - 5, 29);
    let ms = share(&mx, &mut g);
    let n = x.len();
    for net in NETS {
        let (out, _, _) = run2(net, async |e, party| {
            let i = party.index();
            let s = e.sign_low_a(&Shared::new(xs[i].clone(), &[n], 0)?).await?;
            let m = e.max_rows_with(&Shared::new(ms[i].clone(), &[rows, cols], 0)?, true).await?;
            Ok([s.data, m.data])
        })
        .await;
        let want: Vec<u64> = x.iter().map(|v| u64::from((*v as u32) >> 31)).collect();
        assert_eq!(reveal(&out[0][0], &out[1][0]), want, "{net:?} sign_low");
        for (v, s) in x.iter().zip(&want).take(n - 3) {
            assert_eq!(*s, u64::from((*v as i64) < 0), "in range: the true sign of {}", *v as i64);
        }
        assert_eq!(&want[n - 3..], &[1, 0, 1]);
        assert_eq!(reveal(&out[0][1], &out[1][1]), plain::max_rows(&mx, rows, cols), "{net:?} max");
    }
    // Planning records the narrow step; 32-bit ring shares are refused.
    let mut e = ditto_mpc::Engine::planner();
    e.sign_low_a(&Shared::new(vec![0u64; 3], &[3], 0).unwrap()).await.unwrap();
    assert!(e.sign_low_a(&Shared::new(vec![0u32; 3], &[3], 0).unwrap()).await.is_err());
}

/// The argmax tournament against the plaintext reference's first maximal index, on rows built
/// for its edges: ties (first index wins), the maximum last in an odd row, negative values
/// only, all equal, extreme values 2^(l-2) apart, a single column, and random rows.
async fn argmax<R: Ring>() {
    let lim = 1i64 << (R::BITS - 3);
    let cols = 7;
    let mut m: Vec<i64> = vec![
        3,
        9,
        9,
        1,
        9,
        0,
        2, // ties: index 1
        0,
        1,
        2,
        3,
        4,
        5,
        6, // last of an odd row
        -5,
        -3,
        -9,
        -3,
        -7,
        -4,
        -6, // negatives, tie: index 1
        4,
        4,
        4,
        4,
        4,
        4,
        4, // all equal: index 0
        -lim,
        lim - 1,
        0,
        -lim,
        lim - 1,
        1,
        -1, // extremes
    ];
    let mut g = rng(9);
    for _ in 0..4 {
        m.extend((0..cols).map(|_| ((g.next_u64() as i64) << 40) >> 40));
    }
    let rows = m.len() / cols;
    let x: Vec<R> = m.iter().map(|&v| R::from_i64(v)).collect();
    let single: Vec<R> = vec![R::from_i64(-8), R::from_i64(5)];
    let xs = share(&x, &mut g);
    let ss = share(&single, &mut g);
    for net in NETS {
        let (out, _, _) = run2(net, async |e, party| {
            let i = party.index();
            let (v, k) = e.argmax_rows(&Shared::new(xs[i].clone(), &[rows, cols], 3)?).await?;
            let (v1, k1) = e.argmax_rows(&Shared::new(ss[i].clone(), &[2, 1], 3)?).await?;
            assert_eq!((v.frac, k.frac, &k.shape[..]), (3, 0, &[rows, 1][..]));
            Ok([v.data, k.data, v1.data, k1.data])
        })
        .await;
        let want = plain::argmax_rows(&x, rows, cols);
        assert_eq!(reveal(&out[0][0], &out[1][0]), want.iter().map(|w| w.0).collect::<Vec<R>>(), "{net:?}");
        let idx: Vec<u64> = reveal(&out[0][1], &out[1][1]).iter().map(|v| v.to_u64()).collect();
        assert_eq!(idx, want.iter().map(|w| w.1).collect::<Vec<u64>>(), "{net:?}");
        assert_eq!(&idx[..5], &[1, 6, 1, 0, 1], "{net:?}: the edge rows");
        assert_eq!(reveal(&out[0][2], &out[1][2]), single, "{net:?}: one column is its own maximum");
        assert_eq!(reveal(&out[0][3], &out[1][3]), vec![R::ZERO; 2], "{net:?}");
    }
}

both_rings!(argmax_tournament, argmax);
