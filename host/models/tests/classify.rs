//! The optional classification head (`BertForSequenceClassification`: pooler, tanh,
//! classifier): loading by HF names, secure logits vs the plaintext fixed-point reference and
//! vs the float model, on the seeded model and on the real MiniLM encoder with its real pooler.
#![allow(clippy::cast_precision_loss)]

use ditto_core::fixed::decode;
use ditto_core::prg::Prg;
use ditto_models::bert::Bert;
use ditto_models::bert::secure::{BertShare, SecureBert, share_bert};
use ditto_models::blocks::one_hot;
use ditto_models::config::BertConfig;
use ditto_models::quant::QuantConfig;
use ditto_models::weights::Weights;
use ditto_models::{ModelError, seeded};
use ditto_mpc::local::{Local, plan_of, run};
use ditto_mpc::tensor::{reveal, share};
use ditto_mpc::{Engine, Shared};

fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
}

/// Secure and fixed-point logits (as reals) of `bert` on `ids`.
async fn logits(bert: &Bert, q: &QuantConfig, ids: &[u32]) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Prg::with_counter(&[3; 16], 0);
    let shares = share_bert(bert, q, &mut rng).unwrap();
    let (n, v) = (ids.len(), bert.cfg.vocab_size);
    let x = one_hot(ids, v).unwrap();
    let xs = share(&x, &mut rng);
    let program = async |e: &mut Engine, p: ditto_core::Party| {
        let m = SecureBert::setup(e, shares[p.index()].clone()).await?;
        m.classify(e, &Shared::new(xs[p.index()].clone(), &[n, v], 0)?).await
    };
    let plan = plan_of("classify", &program).await.unwrap();
    // The plan derived from the config alone (what a party process uses) is the same.
    let from_config = ditto_models::plans::bert("classify", &bert.cfg, q, n).await.unwrap();
    assert_eq!(plan.hash().unwrap(), from_config.hash().unwrap());
    let res = run(&plan, &Local { share_set: shares[0].share_set(), ..Local::default() }, program).unwrap();
    let f = res.out[0].frac;
    let secure = reveal(&res.out[0].data, &res.out[1].data).iter().map(|v| decode(*v, f)).collect();
    let mut pe = Engine::plaintext();
    let pm = SecureBert::setup(&mut pe, BertShare::plaintext(bert, q).unwrap()).await.unwrap();
    let r = pm.classify(&mut pe, &Shared::new(x, &[n, v], 0).unwrap()).await.unwrap();
    (secure, r.data.iter().map(|v| decode(*v, r.frac)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_head_secure_matches_fixed_point_and_float() {
    let bert = seeded::with_head(seeded::model(3), &["negative", "neutral", "positive"], 9);
    assert_eq!(bert.cfg.num_labels(), Some(3));
    let q = QuantConfig::accurate();
    for text in ["a good day", "the worst film ever made", "x"] {
        let ids = seeded::tokenize(text);
        let (s, p) = logits(&bert, &q, &ids).await;
        let fl: Vec<f64> = bert.classify(&ids).unwrap().iter().map(|v| f64::from(*v)).collect();
        let d_sp = s.iter().zip(&p).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let d_sf = s.iter().zip(&fl).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!("{text:?}: secure {s:.4?} fixed {p:.4?} float {fl:.4?}");
        // Secure and reference run the same program; they differ by the truncation carries,
        // amplified through the layers (stated bound 0.01 in logits of magnitude ~1).
        assert!(d_sp <= 0.01, "{text:?}: secure vs fixed-point {d_sp}");
        assert!(d_sf <= 0.05, "{text:?}: secure vs float {d_sf}");
        assert_eq!(argmax(&s), argmax(&fl), "{text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilm_with_its_pooler_and_a_classifier_loads_and_runs_securely() {
    let dir = ditto_models::cache_dir().join("all-minilm-l6-v2");
    let mut cfg = BertConfig::load(&dir.join("config.json")).unwrap();
    let mut w = Weights::load(&dir.join("model.safetensors")).unwrap();
    let h = cfg.hidden_size;
    cfg.architectures = vec!["BertForSequenceClassification".into()];
    // A config that says "classifier" but weights without one: the missing tensor is named.
    match Bert::load(&cfg, &w) {
        Err(ModelError::MissingTensor { name, .. }) => assert_eq!(name, "classifier.weight"),
        other => panic!("{other:?}"),
    }
    let mut rng = Prg::with_counter(&[5; 16], 0);
    w.insert("classifier.weight", &[2, h], seeded::uniform(&mut rng, 2 * h, 0.2));
    w.insert("classifier.bias", &[2], vec![0.05, -0.05]);
    let bert = Bert::load(&cfg, &w).unwrap();
    let tok = ditto_models::tokenizer::Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let ids = tok.encode("the new movie is awesome, i loved it.", 64).unwrap();
    let (s, p) = logits(&bert, &QuantConfig::accurate(), &ids).await;
    let fl: Vec<f64> = bert.classify(&ids).unwrap().iter().map(|v| f64::from(*v)).collect();
    println!("MiniLM + classifier: secure {s:.5?} fixed {p:.5?} float {fl:.5?}");
    for i in 0..2 {
        assert!((s[i] - p[i]).abs() <= 0.01 && (s[i] - fl[i]).abs() <= 0.02, "{s:?} {p:?} {fl:?}");
    }
}
