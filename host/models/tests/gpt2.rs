//! GPT-2 in the Hugging Face layout, on safetensors this test writes itself (no real GPT-2
//! weights are obtainable here): loader checks, float forward with the KV cache equal to the
//! full recomputation, and greedy generation of 8 tokens run securely with a client in the
//! loop, identical to the fixed-point reference; the real GPT-2 tokenizer from npm.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, clippy::cast_possible_wrap)]

use std::path::{Path, PathBuf};

use ditto_core::prg::Prg;
use ditto_core::rand_core::Rng;
use ditto_models::config::Gpt2Config;
use ditto_models::generate::{Reveal, generate_local, generate_reference};
use ditto_models::gpt2::{Gpt2, KvCache, argmax};
use ditto_models::quant::QuantConfig;
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;
use ditto_mpc::local::Local;
use safetensors::tensor::{Dtype, TensorView};

const VOCAB: usize = 50257;
const H: usize = 32;

/// A tensor's shape and little-endian f32 bytes.
type Raw = (Vec<usize>, Vec<u8>);

/// Writes a seeded GPT-2-layout model (config.json + model.safetensors) to `dir`.
fn write_model(dir: &Path, prefix: &str, skip: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!(
            r#"{{"vocab_size": {VOCAB}, "n_positions": 64, "n_embd": {H}, "n_layer": 2, "n_head": 2,
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "model_type": "gpt2"}}"#
        ),
    )
    .unwrap();
    let mut rng = Prg::with_counter(&[42; 16], 0);
    let mut t = |shape: &[usize], scale: f32| -> Raw {
        let n: usize = shape.iter().product();
        let v: Vec<u8> = (0..n)
            .flat_map(|_| {
                ((((rng.next_u32() >> 8) as f32) / (1u32 << 24) as f32 * 2.0 - 1.0) * scale).to_le_bytes()
            })
            .collect();
        (shape.to_vec(), v)
    };
    let mut tensors: Vec<(String, Raw)> = vec![
        ("wte.weight".into(), t(&[VOCAB, H], 1.0)),
        ("wpe.weight".into(), t(&[64, H], 2.0)),
        ("ln_f.weight".into(), (vec![H], (0..H).flat_map(|_| 1f32.to_le_bytes()).collect())),
        ("ln_f.bias".into(), t(&[H], 0.1)),
    ];
    for l in 0..2 {
        let p = format!("h.{l}");
        for (n, s, sc) in [
            ("ln_1.bias", vec![H], 0.1),
            ("attn.c_attn.weight", vec![H, 3 * H], 0.3),
            ("attn.c_attn.bias", vec![3 * H], 0.05),
            ("attn.c_proj.weight", vec![H, H], 0.3),
            ("attn.c_proj.bias", vec![H], 0.05),
            ("ln_2.bias", vec![H], 0.1),
            ("mlp.c_fc.weight", vec![H, 4 * H], 0.3),
            ("mlp.c_fc.bias", vec![4 * H], 0.05),
            ("mlp.c_proj.weight", vec![4 * H, H], 0.15),
            ("mlp.c_proj.bias", vec![H], 0.05),
        ] {
            tensors.push((format!("{p}.{n}"), t(&s, sc)));
        }
        for n in ["ln_1.weight", "ln_2.weight"] {
            tensors.push((format!("{p}.{n}"), (vec![H], (0..H).flat_map(|_| 1f32.to_le_bytes()).collect())));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .filter(|(n, _)| Some(n.as_str()) != skip)
        .map(|(n, (s, d))| (format!("{prefix}{n}"), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    let bytes = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
}

fn load(dir: &Path) -> Result<Gpt2, ditto_models::ModelError> {
    let cfg = Gpt2Config::load(&dir.join("config.json"))?;
    Gpt2::load(&cfg, &Weights::load(&dir.join("model.safetensors"))?)
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ditto-gpt2-{}-{name}", std::process::id()))
}

#[test]
fn real_gpt2_tokenizer() {
    let d = ditto_models::cache_dir().join("gpt2-tokenizer");
    let tok = Tokenizer::gpt2(&d.join("encoder.json"), &d.join("vocab.bpe")).unwrap();
    assert_eq!(tok.encode("Hello world!", 64).unwrap(), vec![15496, 995, 0]);
    assert_eq!(tok.decode(&[15496, 995, 0]).unwrap(), "Hello world!");
    assert_eq!(tok.vocab_size(), VOCAB);
}

#[test]
fn loader_accepts_the_hf_layout_and_names_what_is_wrong() {
    let a = tmp("plain");
    write_model(&a, "", None);
    let m = load(&a).unwrap();
    // The GPT2LMHeadModel naming (transformer. prefix) loads the same weights.
    let b = tmp("prefixed");
    write_model(&b, "transformer.", None);
    assert_eq!(load(&b).unwrap().wte, m.wte);
    let c = tmp("missing");
    write_model(&c, "", Some("h.1.mlp.c_fc.bias"));
    let e = load(&c).unwrap_err().to_string();
    assert!(e.contains("missing tensor h.1.mlp.c_fc.bias"), "{e}");
    std::fs::write(
        c.join("config.json"),
        r#"{"vocab_size": 10, "n_positions": 8, "n_embd": 30, "n_layer": 1, "n_head": 4}"#,
    )
    .unwrap();
    assert!(load(&c).unwrap_err().to_string().contains("not a multiple of n_head"));
    std::fs::write(c.join("config.json"), r#"{"vocab_size": 10, "n_positions": 8, "n_embd": 32, "n_layer": 1, "n_head": 4, "activation_function": "swish"}"#).unwrap();
    assert!(load(&c).unwrap_err().to_string().contains("swish"));
    // The KV cache gives the same logits as recomputing the whole sequence.
    let ids = [15496u32, 995, 0, 314];
    let mut c1 = KvCache::default();
    let full = m.forward(&ids, &mut c1).unwrap();
    let mut c2 = KvCache::default();
    m.forward(&ids[..3], &mut c2).unwrap();
    let inc = m.forward(&ids[3..], &mut c2).unwrap();
    let err = full.iter().zip(&inc).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err < 1e-4, "{err}");
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_greedy_generation_equals_the_fixed_point_reference() {
    greedy_generation(&QuantConfig::accurate(), "accurate").await;
}

/// Ditto mode: weights and activations at the same scale (8 fractional bits), Quad GeLU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_greedy_generation_in_ditto_mode_equals_the_fixed_point_reference() {
    greedy_generation(&QuantConfig::ditto(), "ditto").await;
}

async fn greedy_generation(q: &QuantConfig, tag: &str) {
    let dir = tmp(&format!("gen-{tag}"));
    write_model(&dir, "", None);
    let m = load(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let q = q.clone();
    let prompt = [15496u32, 995, 0];
    let steps = 8;
    let (reference, _, _) = generate_reference(&m, &q, &prompt, steps, Reveal::Logits).await.unwrap();
    // Float model, for information (the fixed-point model may pick differently where logits are close).
    let mut cache = KvCache::default();
    let mut float_tokens = vec![argmax(&m.forward(&prompt, &mut cache).unwrap())];
    for _ in 1..steps {
        let t = *float_tokens.last().unwrap();
        float_tokens.push(argmax(&m.forward(&[t], &mut cache).unwrap()));
    }
    println!("fixed-point tokens {reference:?}, float tokens {float_tokens:?}");
    // Secure, with the client in the loop.
    let local = Local { test_seeds: Some(([5; 16], [6; 16])), ..Local::default() };
    let mut rng = Prg::with_counter(&[3; 16], 0);
    let g =
        generate_local(&m, &q, &prompt, (steps, Reveal::Logits), &local, &mut rng, |_, _| {}).await.unwrap();
    let tokens = g.tokens;
    // Secure equals the reference within its truncation ulps, so the two may pick apart only
    // at a near-tie, after which the fed-back tokens differ: up to the first difference the
    // tokens agree, and there the secure logits of the two picks differ by at most 2^-7 (a few ulps).
    let same = tokens.iter().zip(&reference).take_while(|(a, b)| a == b).count();
    if same < steps {
        let l = &g.logits[same];
        let real =
            |t: u32| f64::from(l[t as usize] as i32) * 2f64.powi(-((q.act_frac + q.weight_frac) as i32));
        let gap = real(tokens[same]) - real(reference[same]);
        println!("step {same}: secure picks {} over {} by {gap}", tokens[same], reference[same]);
        assert!(
            (0.0..=2f64.powi(-7)).contains(&gap),
            "secure and fixed-point greedy generation differ at step {same} by {gap}: {tokens:?} vs {reference:?}"
        );
    }
    assert_eq!(tokens.len(), steps);
    assert!(tokens.windows(2).any(|w| w[0] != w[1]), "the fed-back tokens must matter: {tokens:?}");
    // The parties pick the tokens (secure argmax): the same tokens, the client sees no logits,
    // and the reference's own argmax program agrees with argmax_signed of its logits.
    let (ref_token, _, _) = generate_reference(&m, &q, &prompt, steps, Reveal::Token).await.unwrap();
    assert_eq!(ref_token, reference, "the argmax program picks argmax_signed's token");
    let g =
        generate_local(&m, &q, &prompt, (steps, Reveal::Token), &local, &mut rng, |_, _| {}).await.unwrap();
    assert_eq!(g.tokens, reference, "secure argmax generation differs from the reference");
    assert!(g.logits.is_empty(), "the client saw logits");
    // Per token: a tournament over the vocabulary, ceil(log2 V) levels of a sign and a product.
    let levels = m.cfg.vocab_size.next_power_of_two().trailing_zeros() as usize;
    let logits_plan =
        ditto_models::plans::gpt2("t", &m.cfg, &q, (prompt.len(), steps), Reveal::Logits).await.unwrap();
    assert_eq!(g.plan.steps.len(), logits_plan.steps.len() + steps * levels * 2);
}

#[test]
fn gpt2_calibration_respects_the_ring_bounds() {
    let dir = tmp("calib");
    write_model(&dir, "", None);
    let m = load(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = m.weight_ranges();
    for ids in [vec![15496u32, 995, 0], vec![464, 3139, 7586, 21831, 18045, 625, 262, 16931, 3290]] {
        m.forward_ranges(&ids, &mut KvCache::default(), Some(&mut r)).unwrap();
    }
    let q = r.choose();
    let lim = 2f64.powi(29);
    assert!(f64::from(r.linear) * 2f64.powi((q.act_frac + q.weight_frac) as i32) < lim, "{r:?} {q:?}");
    assert!(f64::from(r.scores) * 2f64.powi((2 * q.act_frac) as i32) < lim, "{r:?} {q:?}");
    assert!(f64::from(r.residual) * 2f64.powi(q.act_frac as i32) < lim, "{r:?} {q:?}");
    assert!(r.linear > 0.0 && r.scores > 0.0 && r.variance.1 > 0.0, "{r:?}");
}
