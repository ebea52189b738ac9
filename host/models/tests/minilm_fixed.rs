//! MiniLM-L6 on the engine: the plaintext fixed-point reference (same integer arithmetic as the
//! secure run) against the float model.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::path::PathBuf;

use ditto_core::fixed::decode;
use ditto_models::bert::Bert;
use ditto_models::config::BertConfig;
use ditto_models::quant::QuantConfig;
use ditto_models::secure_bert::{BertShare, SecureBert, one_hot};
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;
use ditto_mpc::{Engine, Shared};

fn model_dir() -> PathBuf {
    let cache = std::env::var_os("DITTO_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"))
            .join("ditto")
    });
    cache.join("all-minilm-l6-v2")
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
