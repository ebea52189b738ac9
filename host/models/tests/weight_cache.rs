//! The opened weight masks F kept between sessions: a second session with the same share set
//! and model seed skips the opening and computes the same result; parties holding different
//! sharings are refused; a cache held by one party only, or damaged, is handled.

use ditto_core::prg::Prg;
use ditto_models::bert::secure::{BertShare, SecureBert, share_bert};
use ditto_models::blocks::one_hot;
use ditto_models::quant::QuantConfig;
use ditto_models::seeded;
use ditto_mpc::engine::SETUP_STEP;
use ditto_mpc::local::{Local, Outcome, plan_of, run};
use ditto_mpc::tensor::share;
use ditto_mpc::{Engine, MpcError, Shared, WeightStore};

type Run = Result<Outcome<Shared<u64>>, MpcError>;

struct Setup {
    shares: [BertShare; 2],
    xs: [Vec<u32>; 2],
    n: usize,
    v: usize,
}

fn setup(seed: u8) -> Setup {
    let bert = seeded::model(3);
    let mut rng = Prg::with_counter(&[seed; 16], 0);
    let shares = share_bert(&bert, &QuantConfig::ditto(), &mut rng).unwrap();
    let ids = seeded::tokenize("cached masks");
    let v = bert.cfg.vocab_size;
    let x = one_hot(&ids, v).unwrap();
    Setup { xs: share(&x, &mut rng), shares, n: ids.len(), v }
}

async fn session(s: &Setup, p1_share: &BertShare, dirs: Option<&[std::path::PathBuf; 2]>) -> Run {
    stored_session(s, p1_share, dirs, [None, None]).await
}

/// [`session`] with each party's weight store, if any.
async fn stored_session(
    s: &Setup,
    p1_share: &BertShare,
    dirs: Option<&[std::path::PathBuf; 2]>,
    stores: [Option<&WeightStore>; 2],
) -> Run {
    precomputed_session(s, p1_share, dirs, stores, false).await
}

/// [`stored_session`], each party computing its products A_i F from its stream and its store
/// before the online phase when `precompute` (both stores needed).
async fn precomputed_session(
    s: &Setup,
    p1_share: &BertShare,
    dirs: Option<&[std::path::PathBuf; 2]>,
    stores: [Option<&WeightStore>; 2],
    precompute: bool,
) -> Run {
    let never: fn() -> bool = || false;
    held_session(s, p1_share, dirs, stores, precompute.then_some(never)).await
}

/// [`precomputed_session`] with products computed under `hold` when it is some.
async fn held_session(
    s: &Setup,
    p1_share: &BertShare,
    dirs: Option<&[std::path::PathBuf; 2]>,
    stores: [Option<&WeightStore>; 2],
    hold: Option<fn() -> bool>,
) -> Run {
    let program = async |e: &mut Engine, p: ditto_core::Party| {
        if let Some(d) = dirs {
            e.set_weight_cache(&d[p.index()]);
        }
        if let Some(w) = stores[p.index()] {
            e.set_weight_store(w.clone());
        }
        let share = if p.is_p0() { s.shares[0].clone() } else { p1_share.clone() };
        let m = SecureBert::setup(e, share).await?;
        m.pooled_sum(e, &Shared::new(s.xs[p.index()].clone(), &[s.n, s.v], 0)?).await
    };
    let plan = plan_of("cache", &program).await?;
    // Fixed dealer seeds: the same model seed (so the same B_W) and the same session every run,
    // so a run from the cache must reproduce the opening run bit for bit.
    let local = Local {
        test_seeds: Some(([1; 16], [2; 16])),
        share_set: s.shares[0].share_set(),
        precompute: match stores {
            [Some(a), Some(b)] if hold.is_some() => Some([a.clone(), b.clone()]),
            _ => None,
        },
        hold,
        ..Local::default()
    };
    run(&plan, &local, program)
}

/// A fresh temporary directory `NAME-PID` with a cache directory per party.
fn party_dirs(name: &str) -> (std::path::PathBuf, [std::path::PathBuf; 2]) {
    let base = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let dirs = [base.join("p0"), base.join("p1")];
    dirs.iter().for_each(|d| std::fs::create_dir_all(d).unwrap());
    (base, dirs)
}

fn setup_bytes(r: &Outcome<Shared<u64>>) -> [u64; 2] {
    [r.counters[0].step(SETUP_STEP).sent, r.counters[1].step(SETUP_STEP).sent]
}

fn cache_files(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect()
}

#[tokio::test]
async fn second_session_reads_f_from_the_cache_and_computes_the_same() {
    let s = setup(5);
    let (base, dirs) = party_dirs("ditto-fcache");
    let cfg = seeded::config();
    let (h, f, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let f_bytes = 4 * (v * h + cfg.num_hidden_layers * (3 * h * h + h * h + 2 * h * f)) as u64;

    let first = session(&s, &s.shares[1], Some(&dirs)).await.unwrap();
    // 48 bytes: share-set id and cache digest; then every F.
    assert_eq!(setup_bytes(&first), [48 + f_bytes; 2]);
    assert_eq!(cache_files(&dirs[0]).len(), 1);

    let second = session(&s, &s.shares[1], Some(&dirs)).await.unwrap();
    assert_eq!(setup_bytes(&second), [48; 2], "F comes from the cache");
    assert_eq!(first.out[0].data, second.out[0].data);
    assert_eq!(first.out[1].data, second.out[1].data);

    // Only one party holds the cache: both open F again (and the result is unchanged).
    std::fs::remove_file(&cache_files(&dirs[1])[0]).unwrap();
    let third = session(&s, &s.shares[1], Some(&dirs)).await.unwrap();
    assert_eq!(setup_bytes(&third), [48 + f_bytes; 2]);
    assert_eq!(first.out[0].data, third.out[0].data);

    // The same damage in both caches (digests still agree): a clear error, not a wrong result.
    for d in &dirs {
        let p = &cache_files(d)[0];
        let b = std::fs::read(p).unwrap();
        std::fs::write(p, &b[..b.len() - 3]).unwrap();
    }
    let e = session(&s, &s.shares[1], Some(&dirs)).await.unwrap_err().to_string();
    assert!(e.contains("weight cache") && e.contains("truncated"), "{e}");
    let _ = std::fs::remove_dir_all(&base);
}

/// A serving party's store: the first session fills it, later ones take its weights (same
/// result, nothing opened, no file read); a peer without a store reads the same F from its
/// file; a store of another sharing is not taken; a peer whose cache differs makes both open F
/// again, and the store is replaced.
#[tokio::test]
async fn later_sessions_take_the_weights_a_store_prepared() {
    let s = setup(5);
    let (base, dirs) = party_dirs("ditto-wstore");
    let stores = [WeightStore::default(), WeightStore::default()];
    let both = [Some(&stores[0]), Some(&stores[1])];
    let first = stored_session(&s, &s.shares[1], Some(&dirs), both).await.unwrap();
    assert!(setup_bytes(&first)[0] > 48);
    assert!(!stores[0].is_empty() && !stores[1].is_empty());
    // The store is taken even with the file gone (it stands for the file's digest).
    let moved: Vec<_> = dirs.iter().map(|d| cache_files(d)[0].clone()).collect();
    for m in &moved {
        std::fs::rename(m, m.with_extension("away")).unwrap();
    }
    let second = stored_session(&s, &s.shares[1], Some(&dirs), both).await.unwrap();
    assert_eq!(setup_bytes(&second), [48; 2], "the weights come from the stores");
    assert_eq!((&first.out[0].data, &first.out[1].data), (&second.out[0].data, &second.out[1].data));
    for m in &moved {
        std::fs::rename(m.with_extension("away"), m).unwrap();
    }
    // P1 without a store reads the same F from its file; P0 takes its store.
    let third = stored_session(&s, &s.shares[1], Some(&dirs), [Some(&stores[0]), None]).await.unwrap();
    assert_eq!(setup_bytes(&third), [48; 2]);
    assert_eq!(first.out[0].data, third.out[0].data);
    // Another sharing: P0's store does not fit, the parties open F of the new sharing.
    let other = setup(6);
    let fourth = stored_session(&other, &other.shares[1], Some(&dirs), both).await.unwrap();
    assert!(setup_bytes(&fourth)[0] > 48, "a store of another sharing was taken");
    // P1's cache is gone and P1 has no store: both open F again; P0's store now holds the
    // weights of this opening, which the next session with P1's new file takes.
    std::fs::remove_file(&moved[1]).unwrap();
    let fifth = stored_session(&s, &s.shares[1], Some(&dirs), [Some(&stores[0]), None]).await.unwrap();
    assert!(setup_bytes(&fifth)[0] > 48);
    let sixth = stored_session(&s, &s.shares[1], Some(&dirs), [Some(&stores[0]), None]).await.unwrap();
    assert_eq!(setup_bytes(&sixth), [48; 2]);
    assert_eq!(first.out[0].data, sixth.out[0].data);
    let _ = std::fs::remove_dir_all(&base);
}

/// A session whose products A_i F each party computed before the online phase (as a serving
/// party does with pooled sessions) computes bit for bit what the same session computes
/// without them: Z_i = C_i + A_i F + E G_i either way. Without stored weights nothing is
/// precomputed, and the run is the same.
#[tokio::test]
async fn products_computed_ahead_give_the_same_result() {
    let s = setup(5);
    let (base, dirs) = party_dirs("ditto-products");
    let stores = [WeightStore::default(), WeightStore::default()];
    let both = [Some(&stores[0]), Some(&stores[1])];
    // Empty stores: nothing to precompute with.
    let first = precomputed_session(&s, &s.shares[1], Some(&dirs), both, true).await.unwrap();
    assert_eq!(first.precomputed, [0, 0]);
    let plain = stored_session(&s, &s.shares[1], Some(&dirs), both).await.unwrap();
    let ahead = precomputed_session(&s, &s.shares[1], Some(&dirs), both, true).await.unwrap();
    // Every fixed-weight product of the plan: four per layer and the pooler-free embedding.
    let program = async |e: &mut Engine, _p: ditto_core::Party| {
        let m = SecureBert::setup(e, s.shares[0].clone()).await?;
        m.pooled_sum(e, &Shared::new(s.xs[0].clone(), &[s.n, s.v], 0)?).await
    };
    let plan = plan_of("cache", &program).await.unwrap();
    let fixed = plan
        .steps
        .iter()
        .filter(|st| {
            matches!(
                st.op,
                ditto_core::plan::Op::MatMulFixed { .. } | ditto_core::plan::Op::MatMulDownA { .. }
            )
        })
        .count();
    assert!(fixed >= 4, "{fixed}");
    assert_eq!(ahead.precomputed, [fixed; 2]);
    // Held back before each step (as while a request is under way): the first 30 checks say
    // "hold"; the computation then goes on and ends with the same products.
    static CHECKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let hold = || CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 30;
    let held = held_session(&s, &s.shares[1], Some(&dirs), both, Some(hold)).await.unwrap();
    assert_eq!(held.precomputed, [fixed; 2]);
    // Checked before every step at both parties, beyond the 30 held checks.
    let checks = CHECKS.load(std::sync::atomic::Ordering::Relaxed);
    assert!(checks >= 30 + 2 * plan.steps.len(), "{checks} checks, {} steps", plan.steps.len());
    for r in [&first, &ahead, &held] {
        assert_eq!((&plain.out[0].data, &plain.out[1].data), (&r.out[0].data, &r.out[1].data));
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test]
async fn parties_holding_different_sharings_are_refused() {
    let (a, b) = (setup(5), setup(6));
    let e = session(&a, &b.shares[1], None).await.unwrap_err().to_string();
    assert!(e.contains("different sharings"), "{e}");
    // Without a cache the setup still opens every F, and the same sharing works.
    let ok = session(&a, &a.shares[1], None).await.unwrap();
    assert!(setup_bytes(&ok)[0] > 48);
}
