//! A secure BERT run at a published shape with seeded random weights, dealer + P0 + P1 in one
//! process: `cargo run --release -p ditto-models --example secure_bert_shape -- [bert-base|minilm|bert-tiny] [seq] [ditto|accurate] [threads]`.
//! Prints dealer and online time, bytes per party and rounds. (A stepping stone to `ditto bench`.)
#![allow(missing_docs, clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use ditto_core::prg::Prg;
use ditto_models::bert::{Bert, Dense, Embeddings, Layer, Norm};
use ditto_models::config::BertConfig;
use ditto_models::quant::QuantConfig;
use ditto_models::secure_bert::{SecureBert, one_hot, share_bert};
use ditto_models::seeded::uniform;
use ditto_mpc::local::{Local, plan_of, run};
use ditto_mpc::tensor::share;
use ditto_mpc::{Engine, Shared};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arch = args.first().map_or("bert-base", String::as_str);
    let seq: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(128);
    let q = if args.get(2).map(String::as_str) == Some("accurate") {
        QuantConfig::accurate()
    } else {
        QuantConfig::ditto()
    };
    let threads: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let (layers, h, heads, f) = match arch {
        "bert-tiny" => (2, 128, 2, 512),
        "minilm" => (6, 384, 12, 1536),
        _ => (12, 768, 12, 3072),
    };
    let cfg = BertConfig {
        vocab_size: 30522,
        hidden_size: h,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        intermediate_size: f,
        hidden_act: "gelu".into(),
        max_position_embeddings: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        architectures: Vec::new(),
        id2label: std::collections::BTreeMap::new(),
    };
    let mut rng = Prg::with_counter(&[9; 16], 0);
    let mut dense = |din: usize, dout: usize| Dense {
        w: uniform(&mut rng, din * dout, 0.05),
        b: uniform(&mut rng, dout, 0.02),
        din,
        dout,
    };
    let norm = || Norm { g: vec![1.0; h], b: vec![0.0; h] };
    let ls = (0..layers)
        .map(|_| Layer {
            q: dense(h, h),
            k: dense(h, h),
            v: dense(h, h),
            o: dense(h, h),
            norm1: norm(),
            up: dense(h, f),
            down: dense(f, h),
            norm2: norm(),
        })
        .collect();
    let emb = Embeddings {
        word: uniform(&mut rng, 30522 * h, 0.05),
        position: uniform(&mut rng, 512 * h, 0.02),
        token_type: uniform(&mut rng, 2 * h, 0.02),
        norm: norm(),
    };
    let bert = Bert { cfg: cfg.clone(), emb, layers: ls, head: None };
    let shares = share_bert(&bert, &q, &mut rng).unwrap();
    let ids: Vec<u32> = (0..seq as u32).map(|i| 1000 + i * 7).collect();
    let x = one_hot(&ids, cfg.vocab_size).unwrap();
    let xs = share(&x, &mut rng);
    let program = async |e: &mut Engine, p: ditto_core::Party| {
        let m = SecureBert::setup(e, shares[p.index()].clone()).await?;
        m.pooled_sum(e, &Shared::new(xs[p.index()].clone(), &[seq, cfg.vocab_size], 0)?).await
    };
    let plan = plan_of(arch, &program).await.unwrap();
    let local = Local { threads, ..Local::default() };
    let t = std::time::Instant::now();
    let res = run(&plan, &local, program).await.unwrap();
    let total = t.elapsed().as_secs_f64();
    let setup = res.counters[0].step(ditto_mpc::engine::SETUP_STEP);
    let c = res.counters[0].total();
    println!(
        "{arch} seq {seq} ({} steps): dealer {:.2} s ({:.1} MB to P1); setup+online {:.2} s; total {total:.2} s; \
         inference bytes per party {:.1} MB, rounds {}; weight setup {:.1} MB per party",
        plan.steps.len(),
        res.dealer_time.as_secs_f64(),
        res.dealer_bytes[1] as f64 / 1e6,
        res.online_time.as_secs_f64(),
        (c.sent - setup.sent) as f64 / 1e6,
        c.rounds - setup.rounds,
        setup.sent as f64 / 1e6
    );
}
