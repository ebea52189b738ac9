//! A small BERT-shaped model with seeded random weights and a byte-level tokenizer, built from
//! code so that `ditto demo` runs out of the box with nothing to download. Its outputs mean
//! nothing linguistically; it exists to exercise the whole secure pipeline (and says so).

use ditto_core::prg::Prg;
use ditto_core::rand_core::Rng;

use crate::bert::{Bert, Dense, Embeddings, Layer, Norm};
use crate::config::BertConfig;

/// Vocabulary: 256 bytes, then [CLS] and [SEP].
pub const VOCAB: usize = 258;
/// [CLS].
pub const CLS: u32 = 256;
/// [SEP].
pub const SEP: u32 = 257;

/// The seeded model's config: 2 layers, hidden 64, 4 heads, FFN 256, 64 positions.
pub fn config() -> BertConfig {
    BertConfig {
        vocab_size: VOCAB,
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 256,
        hidden_act: "gelu".into(),
        max_position_embeddings: 64,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        architectures: Vec::new(),
        id2label: std::collections::BTreeMap::new(),
    }
}

/// `n` values uniform in [-scale, scale) from `rng` (seeded test and demo weights).
pub fn uniform(rng: &mut Prg, n: usize, scale: f32) -> Vec<f32> {
    #[allow(clippy::cast_precision_loss)]
    (0..n).map(|_| ((rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale).collect()
}

/// The model for `seed`.
pub fn model(seed: u8) -> Bert {
    bert_of(config(), seed)
}

/// A BERT encoder of any shape with seeded random weights (benchmarks at published shapes).
#[allow(clippy::cast_precision_loss)]
pub fn bert_of(cfg: BertConfig, seed: u8) -> Bert {
    let mut rng = Prg::with_counter(&[seed; 16], 0);
    let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
    let mut dense = |din: usize, dout: usize| Dense {
        w: uniform(&mut rng, din * dout, (3.0 / din as f32).sqrt()),
        b: uniform(&mut rng, dout, 0.05),
        din,
        dout,
    };
    let norm = || Norm { g: vec![1.0; h], b: vec![0.0; h] };
    let layers = (0..cfg.num_hidden_layers)
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
        word: uniform(&mut rng, cfg.vocab_size * h, 1.0),
        position: uniform(&mut rng, cfg.max_position_embeddings * h, 0.2),
        token_type: uniform(&mut rng, cfg.type_vocab_size * h, 0.2),
        norm: norm(),
    };
    Bert { cfg, emb, layers, head: None }
}

/// Labels of [`classifier`].
pub const LABELS: [&str; 2] = ["negative", "positive"];

/// The seeded model with a seeded two-label classification head (`ditto demo --model
/// seeded-classifier`; its labels mean nothing).
pub fn classifier(seed: u8) -> Bert {
    with_head(model(seed), &LABELS, seed)
}

/// Adds a seeded classification head with the given label names to `bert` (its config then
/// says `BertForSequenceClassification`).
#[allow(clippy::cast_precision_loss)]
pub fn with_head(mut bert: Bert, labels: &[&str], seed: u8) -> Bert {
    let h = bert.cfg.hidden_size;
    let mut rng = Prg::with_counter(&[seed; 16], 1);
    let mut dense = |din: usize, dout: usize, scale: f32| Dense {
        w: uniform(&mut rng, din * dout, scale * (3.0 / din as f32).sqrt()),
        b: uniform(&mut rng, dout, 0.1),
        din,
        dout,
    };
    let pooler = dense(h, h, 1.0);
    let classifier = dense(h, labels.len(), 1.0);
    bert.cfg.architectures = vec!["BertForSequenceClassification".into()];
    bert.cfg.id2label = labels.iter().enumerate().map(|(i, l)| (i.to_string(), (*l).to_string())).collect();
    bert.head = Some(crate::bert::Head { pooler, classifier });
    bert
}

/// Byte-level tokens: [CLS], the UTF-8 bytes of `text`, [SEP].
pub fn tokenize(text: &str) -> Vec<u32> {
    std::iter::once(CLS).chain(text.bytes().map(u32::from)).chain(std::iter::once(SEP)).collect()
}

/// A seeded GPT-2-shaped model on byte tokens (vocab 256): 2 layers, hidden 64, 4 heads,
/// 128 positions. Random weights: the text it writes is noise; the secure pipeline is real.
pub fn gpt2(seed: u8) -> crate::gpt2::Gpt2 {
    let cfg = crate::config::Gpt2Config {
        vocab_size: 256,
        n_positions: 128,
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        n_inner: None,
        activation_function: "gelu_new".into(),
        layer_norm_epsilon: 1e-5,
    };
    gpt2_of(cfg, seed)
}

/// A GPT-2 decoder of any shape with seeded random weights (benchmarks at published shapes).
#[allow(clippy::cast_precision_loss)]
pub fn gpt2_of(cfg: crate::config::Gpt2Config, seed: u8) -> crate::gpt2::Gpt2 {
    let mut rng = Prg::with_counter(&[seed; 16], 1);
    gpt2_with(
        cfg,
        &mut rng,
        |rng, din, dout, residual| crate::gpt2::Conv1D {
            w: uniform(rng, din * dout, if residual { 2.0 } else { 1.0 } * (3.0 / din as f32).sqrt()),
            b: uniform(rng, dout, 0.05),
            din,
            dout,
        },
        (1.0, 2.0),
    )
}

/// A GPT-2 whose Conv1D layers come from `conv(rng, din, dout, residual projection)` in block
/// order, then token and position embeddings uniform within the given scales.
fn gpt2_with(
    cfg: crate::config::Gpt2Config,
    rng: &mut Prg,
    mut conv: impl FnMut(&mut Prg, usize, usize, bool) -> crate::gpt2::Conv1D,
    (wte_scale, wpe_scale): (f32, f32),
) -> crate::gpt2::Gpt2 {
    use crate::gpt2::{Block, Gpt2};
    let (h, f) = (cfg.n_embd, cfg.inner());
    let norm = || Norm { g: vec![1.0; h], b: vec![0.0; h] };
    let blocks = (0..cfg.n_layer)
        .map(|_| Block {
            ln1: norm(),
            attn: conv(rng, h, 3 * h, false),
            proj: conv(rng, h, h, true),
            ln2: norm(),
            fc: conv(rng, h, f, false),
            fc_proj: conv(rng, f, h, true),
        })
        .collect();
    let wte = uniform(rng, cfg.vocab_size * h, wte_scale);
    let wpe = uniform(rng, cfg.n_positions * h, wpe_scale);
    Gpt2 { cfg, wte, wpe, blocks, ln_f: norm() }
}

/// Text of byte tokens (ids above 255 become '?'), lossy UTF-8.
pub fn decode_bytes(ids: &[u32]) -> String {
    String::from_utf8_lossy(&ids.iter().map(|&i| u8::try_from(i).unwrap_or(b'?')).collect::<Vec<_>>())
        .into_owned()
}

/// A GPT-2 to train from scratch, initialised as GPT-2 is (weights with standard deviation
/// 0.02, the residual projections 0.02 / sqrt(2 n_layer); here uniform rather than normal;
/// biases 0, LayerNorms 1 and 0), from a 64-bit seed.
#[allow(clippy::cast_precision_loss)]
pub fn gpt2_init(cfg: crate::config::Gpt2Config, seed: u64) -> crate::gpt2::Gpt2 {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut rng = Prg::with_counter(&key, 1);
    let a = 0.02 * 3f32.sqrt();
    let res = a / (2.0 * cfg.n_layer as f32).sqrt();
    gpt2_with(
        cfg,
        &mut rng,
        |rng, din, dout, residual| crate::gpt2::Conv1D {
            w: uniform(rng, din * dout, if residual { res } else { a }),
            b: vec![0.0; dout],
            din,
            dout,
        },
        (a, a / 2.0),
    )
}
