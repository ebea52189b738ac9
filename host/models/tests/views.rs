//! What a party sees does not depend on the private input: for two different fixed inputs, the
//! byte values of everything P1 (and P0) receives over many sessions (fresh dealer seeds and
//! input sharings each time) have indistinguishable distributions (two-sample chi-square over
//! the 256 byte values). An opened value that was not masked by a uniform ring element would
//! move these counts far beyond the bound.
#![allow(clippy::cast_precision_loss)]

use std::sync::{Arc, Mutex};

use ditto_core::prg::Prg;
use ditto_models::bert::secure::{SecureBert, share_bert};
use ditto_models::blocks::one_hot;
use ditto_models::quant::QuantConfig;
use ditto_models::seeded;
use ditto_mpc::local::{Local, plan_of, run};
use ditto_mpc::tensor::share;
use ditto_mpc::{Engine, Shared};

/// Byte-value counts of each party's view over `sessions` runs on `text`.
async fn views(text: &str, sessions: usize) -> [[u64; 256]; 2] {
    let bert = seeded::model(4);
    let q = QuantConfig::ditto();
    let ids = seeded::tokenize(text);
    let (n, v) = (ids.len(), bert.cfg.vocab_size);
    let mut counts = [[0u64; 256]; 2];
    for s in 0..sessions {
        let mut rng = Prg::with_counter(&ditto_mpc_seed(s), 0);
        let shares = share_bert(&bert, &q, &mut rng).unwrap();
        let xs = share(&one_hot(&ids, v).unwrap(), &mut rng);
        let taps: [ditto_net::link::Tap; 2] =
            [Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new()))];
        let program = async |e: &mut Engine, p: ditto_core::Party| {
            e.tap_received(Arc::clone(&taps[p.index()]));
            let m = SecureBert::setup(e, shares[p.index()].clone()).await?;
            m.pooled_sum(e, &Shared::new(xs[p.index()].clone(), &[n, v], 0)?).await
        };
        let plan = plan_of("views", &program).await.unwrap();
        // Fresh dealer seeds from the OS every session.
        run(&plan, &Local { share_set: shares[0].share_set(), ..Local::default() }, program).unwrap();
        for (c, t) in counts.iter_mut().zip(&taps) {
            for &b in t.lock().unwrap().iter() {
                c[usize::from(b)] += 1;
            }
        }
    }
    counts
}

/// Input-sharing randomness per session (fresh and independent of the input).
fn ditto_mpc_seed(s: usize) -> [u8; 16] {
    let mut k = [0u8; 16];
    getrandom::fill(&mut k).unwrap();
    k[0] ^= s.to_le_bytes()[0];
    k
}

/// Two-sample chi-square statistic over 256 bins.
fn chi2(a: &[u64; 256], b: &[u64; 256]) -> f64 {
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    let (ka, kb) = ((nb / na).sqrt(), (na / nb).sqrt());
    a.iter()
        .zip(b)
        .filter(|(x, y)| **x + **y > 0)
        .map(|(&x, &y)| {
            let d = ka * x as f64 - kb * y as f64;
            d * d / (x + y) as f64
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_do_not_depend_on_the_input() {
    let (a, b) = (views("aaaaaaaa", 6).await, views("zq!~Z 9\u{7f}", 6).await);
    for p in 0..2 {
        let total: u64 = a[p].iter().sum();
        let c = chi2(&a[p], &b[p]);
        println!("P{p}: {total} bytes per input, two-sample chi-square {c:.1} (255 degrees of freedom)");
        // chi2(255) has mean 255 and standard deviation 22.6; 420 is beyond 7 deviations.
        assert!(total > 1_000_000, "{total}");
        assert!(c < 420.0, "P{p}'s view depends on the input: chi-square {c}");
    }
    // The statistic does see a difference when there is one: a view with one in 64 bytes forced
    // to zero (as an unmasked small value would) is far off.
    let mut skewed = b[1];
    let shift = skewed.iter().sum::<u64>() / 64;
    skewed[0] += shift;
    skewed[255] -= shift.min(skewed[255]);
    assert!(chi2(&a[1], &skewed) > 1000.0);
}
