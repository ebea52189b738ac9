//! MiniLM-L6 on the engine: the plaintext fixed-point reference (same integer arithmetic as the
//! secure run) against the float model.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, clippy::cast_possible_wrap)]

use std::path::PathBuf;

use ditto_core::fixed::decode;
use ditto_models::bert::Bert;
use ditto_models::bert::secure::{BertShare, SecureBert};
use ditto_models::blocks::one_hot;
use ditto_models::config::BertConfig;
use ditto_models::quant::QuantConfig;
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;
use ditto_mpc::{Engine, Shared};

fn model_dir() -> PathBuf {
    ditto_models::cache_dir().join("all-minilm-l6-v2")
}

fn cosine(a: &[f64], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * f64::from(*y)).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|y| f64::from(*y).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_point_reference_tracks_the_float_model() {
    let dir = model_dir();
    let cfg = BertConfig::load(&dir.join("config.json")).unwrap();
    let bert = Bert::load(&cfg, &Weights::load(&dir.join("model.safetensors")).unwrap()).unwrap();
    let tok = Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let q = QuantConfig::accurate();
    for text in ["a man is eating food.", "the new movie is awesome, i loved it."] {
        let ids = tok.encode(text, 128).unwrap();
        let n = ids.len();
        let mut e = Engine::plaintext();
        let model = SecureBert::setup(&mut e, BertShare::plaintext(&bert, &q).unwrap()).await.unwrap();
        let x = Shared::new(one_hot(&ids, cfg.vocab_size).unwrap(), &[n, cfg.vocab_size], 0).unwrap();
        let sum = model.pooled_sum(&mut e, &x).await.unwrap();
        let emb: Vec<f64> = sum.data.iter().map(|v| decode(*v, sum.frac) / n as f64).collect();
        let want = bert.embed(&ids).unwrap();
        let c = cosine(&emb, &want);
        println!("{text:?}: cosine {c:.6}");
        assert!(c >= 0.999, "{text:?}: cosine {c}");
    }
}

/// Calibration on sample text picks scales that keep every recorded value inside its ring
/// with headroom, and the fixed-point model with them still tracks the float model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibration_respects_the_ring_bounds() {
    let dir = model_dir();
    let cfg = BertConfig::load(&dir.join("config.json")).unwrap();
    let bert = Bert::load(&cfg, &Weights::load(&dir.join("model.safetensors")).unwrap()).unwrap();
    let tok = Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let mut r = bert.weight_ranges();
    for t in ["the stock market fell sharply.", "how many people live in berlin?", "a man is eating food."] {
        bert.forward_ranges(&tok.encode(t, 128).unwrap(), Some(&mut r)).unwrap();
    }
    let q = r.choose();
    let lim = 2f64.powi(29);
    assert!(f64::from(r.linear) * 2f64.powi((q.act_frac + q.weight_frac) as i32) < lim, "{r:?} {q:?}");
    assert!(f64::from(r.scores) * 2f64.powi((2 * q.act_frac) as i32) < lim);
    assert!(f64::from(r.residual) * 2f64.powi(q.act_frac as i32) < lim);
    assert!(q.act_frac >= 8 && q.weight_frac >= 8, "{q:?}");
    // Per linear layer: never fewer bits than the global choice, and within that layer's bounds.
    assert_eq!(r.dense.len(), 4 * cfg.num_hidden_layers);
    for (name, d) in &r.dense {
        let wf = q.weight_frac_of(name);
        let bits = |b: u32| 2f64.powi(b as i32);
        assert!(wf >= q.weight_frac, "{name}");
        assert!(
            f64::from(d.out) * bits(q.act_frac + wf) < lim && f64::from(d.bias) * bits(q.act_frac + wf) < lim
        );
        assert!(f64::from(d.weight) * bits(wf) < lim, "{name} {d:?} {wf}");
    }
    assert!(!q.dense_frac.is_empty(), "MiniLM's layers differ in range: {r:?}");
    let ids = tok.encode("a man is eating a piece of bread.", 128).unwrap();
    let n = ids.len();
    let want = bert.embed(&ids).unwrap();
    let mut global = q.clone();
    global.dense_frac.clear();
    let mut cos = Vec::new();
    for q in [&q, &global] {
        let mut e = Engine::plaintext();
        let model = SecureBert::setup(&mut e, BertShare::plaintext(&bert, q).unwrap()).await.unwrap();
        let x = Shared::new(one_hot(&ids, cfg.vocab_size).unwrap(), &[n, cfg.vocab_size], 0).unwrap();
        let sum = model.pooled_sum(&mut e, &x).await.unwrap();
        let emb: Vec<f64> = sum.data.iter().map(|v| decode(*v, sum.frac) / n as f64).collect();
        cos.push(cosine(&emb, &want));
    }
    println!(
        "per-layer weight bits {:?}: cosine {:.6}; global {} bits: {:.6}",
        q.dense_frac, cos[0], q.weight_frac, cos[1]
    );
    assert!(cos[0] >= 0.999 && cos[0] >= cos[1] - 1e-5, "{cos:?}");
}

/// Parties with another model or QuantConfig derive another plan, so the handshake refuses them
/// (the refusal itself is tested in ditto-mpc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_model_or_quant_config_gives_another_plan_hash() {
    let cfg = BertConfig::load(&model_dir().join("config.json")).unwrap();
    let h = |p: ditto_core::plan::Plan| p.hash().unwrap();
    let base = h(ditto_models::plans::bert("m", &cfg, &QuantConfig::accurate(), 8).await.unwrap());
    assert_ne!(base, h(ditto_models::plans::bert("m", &cfg, &QuantConfig::ditto(), 8).await.unwrap()));
    let mut q = QuantConfig::accurate();
    q.act_frac += 1;
    assert_ne!(base, h(ditto_models::plans::bert("m", &cfg, &q, 8).await.unwrap()));
    let mut c2 = cfg.clone();
    c2.num_hidden_layers -= 1;
    assert_ne!(base, h(ditto_models::plans::bert("m", &c2, &QuantConfig::accurate(), 8).await.unwrap()));
    assert_ne!(base, h(ditto_models::plans::bert("m", &cfg, &QuantConfig::accurate(), 9).await.unwrap()));
}

/// [CLS] pooling on the engine (plaintext reference) tracks the float model's [CLS] state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cls_pooling_tracks_the_float_model() {
    let dir = model_dir();
    let cfg = BertConfig::load(&dir.join("config.json")).unwrap();
    let bert = Bert::load(&cfg, &Weights::load(&dir.join("model.safetensors")).unwrap()).unwrap();
    let ids =
        Tokenizer::load(&dir.join("tokenizer.json")).unwrap().encode("please pass the salt", 128).unwrap();
    let n = ids.len();
    let mut e = Engine::plaintext();
    let model = SecureBert::setup(&mut e, BertShare::plaintext(&bert, &QuantConfig::accurate()).unwrap())
        .await
        .unwrap();
    let x = Shared::new(one_hot(&ids, cfg.vocab_size).unwrap(), &[n, cfg.vocab_size], 0).unwrap();
    let c = model.cls(&mut e, &x).await.unwrap();
    let got: Vec<f64> = c.data.iter().map(|v| decode(*v, c.frac)).collect();
    assert!(cosine(&got, &bert.cls(&ids).unwrap()) >= 0.999);
}
