//! Non-linear functions at two real parties: secure vs the plaintext fixed-point reference (the
//! same program on `Engine::plaintext`, truncations rounded to nearest) within a bound in output ulps, and
//! vs the float function within the approximation's documented error.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

mod common;

use common::{NETS, rng, run2};
use ditto_core::Ring;
use ditto_core::fixed::{decode, encode};
use ditto_core::rand_core::Rng;
use ditto_mpc::tensor::{reveal, share};
use ditto_mpc::{Engine, MpcError, Shared};

const F: u32 = 18;

fn uniform(g: &mut impl Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| lo + (hi - lo) * (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64).collect()
}

/// Runs `f` securely (both parties) and on the plaintext reference; returns (secure, plain) as
/// reals.
async fn both<R: Ring>(
    x: &[f64],
    frac: u32,
    shape: &[usize],
    f: impl AsyncFn(&mut Engine, Shared<R>) -> Result<Shared<R>, MpcError>,
) -> (Vec<f64>, Vec<f64>, u32) {
    let xe: Vec<R> = x.iter().map(|v| encode(*v, frac).unwrap()).collect();
    let mut g = rng(9);
    let xs = share(&xe, &mut g);
    // The same program over the in-memory link and over loopback TCP: identical results.
    let mut results = Vec::new();
    for net in NETS {
        let (out, _, _) = run2(net, async |e, party| {
            let r = f(e, Shared::new(xs[party.index()].clone(), shape, frac)?).await?;
            Ok((r.data, r.frac))
        })
        .await;
        results.push((reveal(&out[0].0, &out[1].0), out[0].1));
    }
    assert!(results[0] == results[1], "memory and TCP runs differ");
    let of = results[0].1;
    let secure: Vec<f64> = results[0].0.iter().map(|v| decode(*v, of)).collect();
    let mut pe = Engine::plaintext();
    let p = f(&mut pe, Shared::new(xe.clone(), shape, frac).unwrap()).await.unwrap();
    assert_eq!(p.frac, of);
    (secure, p.data.iter().map(|v| decode(*v, of)).collect(), of)
}

fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp_of_non_positive_inputs() {
    let mut g = rng(1);
    let mut x = uniform(&mut g, 300, -16.0, 0.0);
    x.extend([0.0, -14.0 + 1e-3, -14.001, -16.0, -1.0, -2.0]);
    let n = x.len();
    let (s, p, _) = both::<u64>(&x, F, &[n], async |e, v| e.exp_neg(&v, 5).await).await;
    let fl: Vec<f64> = x.iter().map(|v| if *v < -14.0 { 0.0 } else { v.exp() }).collect();
    assert!(max_err(&s, &p) <= 64.0 / f64::from(1 << F), "secure vs plain {}", max_err(&s, &p));
    // (1 + x/32)^32 differs from e^x by at most 0.0087 on [-14, 0].
    assert!(max_err(&s, &fl) <= 0.0095, "vs float {}", max_err(&s, &fl));
    assert_eq!(s[n - 3], 0.0, "below -14 gives exactly 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tanh_over_both_signs() {
    let mut g = rng(3);
    let mut x = uniform(&mut g, 300, -9.0, 9.0);
    x.extend([0.0, 1e-4, -1e-4, 0.5, -0.5, 7.0, -7.0, 7.01, -7.01, 20.0, -20.0]);
    let n = x.len();
    let (s, p, _) = both::<u64>(&x, F, &[n], async |e, v| e.tanh(&v, 8).await).await;
    let fl: Vec<f64> = x.iter().map(|v| v.tanh()).collect();
    // Each of the exp's 8 squarings doubles the carry differences and adds one ulp (2^9 ulps),
    // and |d tanh / dt| <= 2 for t = e^(-2|x|): bound 2^10 ulps (observed about 170).
    assert!(max_err(&s, &p) <= 1024.0 / f64::from(1 << F), "secure vs plain {}", max_err(&s, &p));
    // The exp's limit form with 8 squarings is the main error: at most 0.0045 in tanh.
    assert!(max_err(&s, &fl) <= 0.0045, "vs float {}", max_err(&s, &fl));
    for (i, v) in x.iter().enumerate() {
        assert!(s[i].abs() <= 1.0 + 4.0 / f64::from(1 << F), "tanh({v}) = {}", s[i]);
        assert!(s[i].signum() == v.signum() || s[i].abs() < 1e-3, "tanh({v}) = {}", s[i]);
        if v.abs() > 7.001 {
            assert!((s[i] - v.signum()).abs() <= 4.0 / f64::from(1 << F), "saturates at {v}: {}", s[i]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reciprocal_and_rsqrt() {
    let mut g = rng(2);
    let mut x = uniform(&mut g, 200, 1.0, 127.0);
    x.extend([1.0, 2.0, 64.0, 127.9]);
    // Each octave boundary and its neighbours one ulp away: the comparisons (on 32 bits here,
    // since 7 + 18 <= 30) must split them exactly as the reference does.
    let ulp = 1.0 / f64::from(1u32 << F);
    for j in 1..7 {
        let b = 2f64.powi(j);
        x.extend([b - ulp, b, b + ulp]);
    }
    let n = x.len();
    let (s, p, _) = both::<u64>(&x, F, &[n], async |e, v| e.reciprocal(&v, 0, 7).await).await;
    let fl: Vec<f64> = x.iter().map(|v| 1.0 / v).collect();
    assert!(max_err(&s, &p) <= 16.0 / f64::from(1 << F), "reciprocal secure vs plain {}", max_err(&s, &p));
    assert!(max_err(&s, &fl) <= 16.0 / f64::from(1 << F), "reciprocal vs float {}", max_err(&s, &fl));

    let mut y: Vec<f64> = uniform(&mut g, 200, -16.0, 14.0).iter().map(|e| 2f64.powf(*e)).collect();
    y.extend([1e-5 + 2f64.powi(-17), 1.0, 0.25, 16000.0]);
    let n = y.len();
    let (s, p, _) = both::<u64>(&y, F, &[n], async |e, v| e.rsqrt(&v, -17, 15).await).await;
    for i in 0..n {
        let want = 1.0 / encode::<u64>(y[i], F).map(|v| decode(v, F)).unwrap().sqrt();
        let tol = 16.0 / f64::from(1 << F) + want * 1e-4;
        assert!((s[i] - want).abs() <= tol, "rsqrt({}) = {} want {want}", y[i], s[i]);
        assert!(
            (s[i] - p[i]).abs() <= tol,
            "rsqrt secure vs plain at {}: {} vs {} want {want}",
            y[i],
            s[i],
            p[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gelu_quad_and_poly() {
    let mut g = rng(3);
    let mut x = uniform(&mut g, 300, -8.0, 8.0);
    x.extend([-4.0, -1.95, 3.0, 0.0, -100.0, 100.0]);
    let n = x.len();
    // Quad in Z_2^32 at f = 8: one truncation.
    let (s, p, of) = both::<u32>(&x, 8, &[n], async |e, v| e.gelu_quad(&v).await).await;
    assert_eq!(of, 8);
    let ulp = 1.0 / 256.0;
    assert!(max_err(&s, &p) <= ulp, "quad secure vs plain {}", max_err(&s, &p));
    let quad: Vec<f64> = x
        .iter()
        .map(|v| {
            let v = decode(encode::<u32>(*v, 8).unwrap(), 8);
            0.125 * v * v + 0.25 * v + 0.5
        })
        .collect();
    assert!(max_err(&s, &quad) <= 2.0 * ulp, "quad vs its polynomial {}", max_err(&s, &quad));
    // PUMA's polynomial in Z_2^64 at f = 18: its own max error against the exact GeLU is
    // 0.0199 (at x = 3), plus the fixed-point error.
    let (s, p, _) = both::<u64>(&x, F, &[n], async |e, v| e.gelu_poly(&v).await).await;
    assert!(max_err(&s, &p) <= 8.0 / f64::from(1 << F), "poly secure vs plain {}", max_err(&s, &p));
    let fl: Vec<f64> = x.iter().map(|v| gelu(*v)).collect();
    assert!(max_err(&s, &fl) <= 0.0205, "poly vs GeLU {}", max_err(&s, &fl));
}

/// The GeLU that ends in a truncate-then-downcast (`gelu_quad_down`: x and x^2 right modulo
/// 2^43, s truncated opening 43 bits): every output is the exact polynomial of x = u / 2^8 or
/// of one more, truncated by 11 or one more; the reference equals the Z_2^32 path's wherever
/// that one is in range, and beyond it (|x| up to 5000) stays exact; the output is marked as a
/// downcast's, so a fixed-weight product takes it without an opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gelu_quad_ending_in_a_downcast() {
    let mut g = rng(5);
    let mut x = uniform(&mut g, 300, -8.0, 8.0);
    x.extend([
        0.0,
        1.0 / 65536.0,
        -1.0 / 65536.0,
        -4.0,
        -1.0,
        -2.0,
        127.99,
        -128.0,
        1000.0,
        -1000.0,
        5000.0,
        -5000.0,
    ]);
    let n = x.len();
    let (s, p, of) = both::<u32>(&x, 16, &[n], async |e, u| {
        let g = e.gelu_quad_down(&u, 8).await?;
        assert!(e.follows_downcast(&g), "the product after takes the GeLU as a downcast's output");
        Ok(g)
    })
    .await;
    assert_eq!(of, 8);
    for (i, v) in x.iter().enumerate() {
        let u = i64::from(encode::<u32>(*v, 16).unwrap().cast_signed());
        let t0 = u >> 8;
        let ok = [t0, t0 + 1].iter().any(|t| {
            let q = (t * t + (t << 9) + (1 << 18)) >> 11;
            [q, q + 1].contains(&((s[i] * 256.0).round() as i64))
        });
        assert!(ok, "x = {v}: secure {}", s[i]);
    }
    // The Z_2^32 path's reference where its square and sum stay below 2^30 (|x| < 128).
    let (_, old, _) = both::<u32>(&x, 16, &[n], async |e, u| e.gelu_quad_pre(&u, 8).await).await;
    for i in 0..n {
        if x[i].abs() < 128.0 {
            assert_eq!(p[i], old[i], "x = {}", x[i]);
        }
        let v = decode(encode::<u32>(x[i], 8).unwrap(), 8);
        let quad = 0.125 * v * v + 0.25 * v + 0.5;
        assert!((p[i] - quad).abs() <= 1.0 / 256.0, "x = {}: reference {} vs {quad}", x[i], p[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softmax_with_and_without_causal_mask() {
    let mut g = rng(4);
    let (rows, cols) = (6, 40);
    let x = uniform(&mut g, rows * cols, -8.0, 8.0);
    let keep: Vec<bool> = (0..rows * cols).map(|i| i % cols <= (i / cols) * 7).collect();
    for mask in [None, Some(&keep[..])] {
        let (s, p, _) =
            both::<u64>(&x, F, &[rows, cols], async |e, v| e.softmax(&v, mask, 5, false).await).await;
        assert!(max_err(&s, &p) <= 32.0 / f64::from(1 << F), "softmax secure vs plain {}", max_err(&s, &p));
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let k = |j: usize| mask.is_none_or(|m| m[r * cols + j]);
            let mx = (0..cols).filter(|&j| k(j)).map(|j| row[j]).fold(f64::MIN, f64::max);
            // The float model of the same approximation ((1 + d/32)^32, 0 below -14), and the
            // exact softmax: the limit form underestimates e^d, which shifts probabilities by
            // up to about 0.03.
            let approx = |d: f64| if d < -14.0 { 0.0 } else { (1.0 + d / 32.0).powi(32) };
            let za: f64 = (0..cols).filter(|&j| k(j)).map(|j| approx(row[j] - mx)).sum();
            let ze: f64 = (0..cols).filter(|&j| k(j)).map(|j| (row[j] - mx).exp()).sum();
            for j in 0..cols {
                let got = s[r * cols + j];
                if !k(j) {
                    assert_eq!(got, 0.0, "masked entries are exactly 0");
                    continue;
                }
                let wa = approx(row[j] - mx) / za;
                let we = (row[j] - mx).exp() / ze;
                assert!((got - wa).abs() <= 1e-3, "row {r} col {j}: {got} vs approximation {wa}");
                assert!((got - we).abs() <= 0.03, "row {r} col {j}: {got} vs softmax {we}");
            }
        }
    }
}

/// The approximation's float model for one row ((1 + d/32)^32 of d = x - max, 0 below -14).
fn softmax_approx(row: &[f64]) -> Vec<f64> {
    let mx = row.iter().copied().fold(f64::MIN, f64::max);
    let approx = |d: f64| if d < -14.0 { 0.0 } else { (1.0 + d / 32.0).powi(32) };
    let z: f64 = row.iter().map(|v| approx(v - mx)).sum();
    row.iter().map(|v| approx(v - mx) / z).collect()
}

/// The narrow softmax (comparisons on 32 bits; the max computed modulo 2^32 since the exp reads
/// x - max modulo 2^32 alone), and the softmax of Z_2^32 scores upcast into it whose max's first
/// level compares the Z_2^32 scores beside the upcast: both against the reference and the
/// float model, with ties and masked rows among the inputs. `both` checks every step's rounds
/// and bytes against the plan (the beside comparison's first round rides on the upcast's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softmax_on_32_bits_and_beside_the_upcast() {
    let mut g = rng(6);
    let (rows, cols) = (6, 37);
    let mut x = uniform(&mut g, rows * cols, -8.0, 8.0);
    // Ties, and neighbours one ulp apart (before and after the upcast's halving).
    x[3] = x[4];
    x[cols] = x[cols + 1] + 1.0 / f64::from(1 << 16);
    x[2 * cols + 5] = 8.0;
    x[2 * cols + 6] = 8.0;
    // Rows whose maximum stands far above the rest, on the left and on the right of its pair
    // and last (passing through the odd levels): a wrong maximum leaves it far from its
    // probability of about 1.
    for (r, at) in [(3, 4), (4, 9), (5, cols - 1)] {
        for j in 0..cols {
            x[r * cols + j] = if j == at { 7.5 } else { -6.0 + 0.01 * j as f64 };
        }
    }
    let keep: Vec<bool> = (0..rows * cols).map(|i| i % cols <= (i / cols) * 7).collect();
    for mask in [None, Some(&keep[..])] {
        let (s, p, _) =
            both::<u64>(&x, F, &[rows, cols], async |e, v| e.softmax(&v, mask, 5, true).await).await;
        assert!(
            max_err(&s, &p) <= 32.0 / f64::from(1 << F),
            "narrow softmax secure vs plain {}",
            max_err(&s, &p)
        );
        // Z_2^32 scores at 16 bits, times 1/2 at the upcast (c = 2^17 at 18 bits, k = 18).
        let tags = (ditto_core::plan::Tag::Conversion, ditto_core::plan::Tag::Other);
        let (su, pu, _) = both::<u32>(&x, 16, &[rows, cols], async |e, v| {
            let (pre, k) = e.softmax_pre_upcast(&v, (1 << 17, 18, 18), mask, 5, (true, tags)).await?;
            let t = e.trunc_a(&pre, k).await?;
            // Back to Z_2^32 at 18 bits for the harness (values in [0, 1]).
            Ok(Shared { data: t.data.iter().map(|v| *v as u32).collect(), shape: t.shape, frac: t.frac })
        })
        .await;
        assert!(
            max_err(&su, &pu) <= 32.0 / f64::from(1 << F),
            "upcast softmax secure vs plain {}",
            max_err(&su, &pu)
        );
        for r in 0..rows {
            let kept: Vec<usize> = (0..cols).filter(|&j| mask.is_none_or(|m| m[r * cols + j])).collect();
            let row: Vec<f64> = kept.iter().map(|&j| x[r * cols + j]).collect();
            let half: Vec<f64> = row.iter().map(|v| v / 2.0).collect();
            for (want, got, what) in
                [(softmax_approx(&row), &s, "narrow"), (softmax_approx(&half), &su, "upcast")]
            {
                for (i, &j) in kept.iter().enumerate() {
                    let v = got[r * cols + j];
                    assert!((v - want[i]).abs() <= 1e-3, "{what} row {r} col {j}: {v} vs {}", want[i]);
                }
            }
            for j in (0..cols).filter(|j| !kept.contains(j)) {
                assert_eq!((s[r * cols + j], su[r * cols + j]), (0.0, 0.0), "masked entries are exactly 0");
            }
        }
    }
}

/// LayerNorm's octave comparison started on var's untruncated sum u beside var's truncation
/// (`octaves_beside`) gives the reference's octaves of var + eps = round(u / 2^f) + eps exactly:
/// at every octave boundary and one unit either side the reference's rsqrt equals the one whose
/// comparison reads var + eps itself, and the secure rsqrt agrees with it within its ulps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octaves_beside_the_truncation_at_every_boundary() {
    let (lo, hi) = (-17, 15);
    let e: u64 = encode(1e-5, F).unwrap();
    let mut u: Vec<f64> = Vec::new();
    for j in lo + 1..hi {
        let c: u64 = encode(2f64.powi(j), F).unwrap();
        let t = ((c - e) << F) - (1 << (F - 1));
        for d in [-1i64, 0, 1] {
            u.push((t.cast_signed() + d) as f64 / 2f64.powi(36));
        }
    }
    let n = u.len();
    let beside = async |e_: &mut Engine, v: Shared<u64>| -> Result<Shared<u64>, MpcError> {
        let started = e_.octaves_beside(&v, (F, e), (lo, hi)).await?;
        assert!(started.is_some(), "the 3-round form pays for {n} x 31 values");
        let var = e_.trunc_a(&v, F).await?;
        let ve = e_.add_const(&var, e);
        let r = e_.rsqrt_pre_with(&ve, (lo, hi), started).await?;
        e_.trunc_a(&r, F).await
    };
    let (s, p, _) = both::<u64>(&u, 2 * F, &[n], beside).await;
    // The reference comparing var + eps itself.
    let mut pe = Engine::plaintext();
    let ue: Vec<u64> = u.iter().map(|v| encode(*v, 2 * F).unwrap()).collect();
    let var = pe.trunc_a(&Shared::new(ue, &[n], 2 * F).unwrap(), F).await.unwrap();
    let ve = pe.add_const(&var, e);
    let r = pe.rsqrt_pre(&ve, lo, hi).await.unwrap();
    let old: Vec<f64> = pe.trunc_a(&r, F).await.unwrap().data.iter().map(|v| decode(*v, F)).collect();
    assert_eq!(p, old, "the octaves of the sum are the reference's");
    // Securely var is round(u / 2^f) or one ulp off it: the rsqrt of var + eps one ulp either
    // side bounds the difference (a third of the value at the lowest octaves, where var + eps
    // is a few ulps).
    let ulp = 1.0 / f64::from(1 << F);
    for i in 0..n {
        let x = decode(ve.data[i], F);
        let spread = (x - ulp).max(ulp).powf(-0.5) - (x + ulp).powf(-0.5);
        let tol = spread + 64.0 * ulp + 1e-5 * p[i].abs();
        assert!(
            (s[i] - p[i]).abs() <= tol,
            "value {i}: secure {} vs reference {} (var + eps {x})",
            s[i],
            p[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layernorm_and_clip() {
    let mut g = rng(5);
    let (rows, h) = (5, 64);
    let x = uniform(&mut g, rows * h, -3.0, 5.0);
    let gamma = uniform(&mut g, h, 0.5, 1.5);
    let beta = uniform(&mut g, h, -0.5, 0.5);
    let enc = |v: &[f64]| v.iter().map(|a| encode::<u64>(*a, F).unwrap()).collect::<Vec<u64>>();
    let (ge, be) = (enc(&gamma), enc(&beta));
    let (s, p, _) = both::<u64>(&x, F, &[rows, h], async |e, v| {
        // gamma and beta are model weights: shared between the parties (P0 holds them here).
        let pick = |w: &Vec<u64>| if e.party().is_p0() { w.clone() } else { vec![0; w.len()] };
        let gm = Shared::new(pick(&ge), &[h], F)?;
        let bt = Shared::new(pick(&be), &[h], F)?;
        e.layernorm(&v, &gm, &bt, 1e-5, (-17, 15)).await
    })
    .await;
    assert!(max_err(&s, &p) <= 64.0 / f64::from(1 << F), "layernorm secure vs plain {}", max_err(&s, &p));
    for r in 0..rows {
        let row = &x[r * h..(r + 1) * h];
        let mean = row.iter().sum::<f64>() / h as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / h as f64;
        for j in 0..h {
            let want = (row[j] - mean) / (var + 1e-5).sqrt() * gamma[j] + beta[j];
            assert!((s[r * h + j] - want).abs() <= 2e-3, "ln {r},{j}: {} vs {want}", s[r * h + j]);
        }
    }
    let n = x.len();
    let (s, p, _) = both::<u64>(&x, F, &[n], async |e, v| e.clip(&v, -1.0, 2.5).await).await;
    assert_eq!(s, p, "clip is exact");
    for i in 0..n {
        let want = decode(encode::<u64>(x[i], F).unwrap(), F).clamp(-1.0, 2.5);
        assert_eq!(s[i], want);
    }
}
