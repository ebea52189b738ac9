//! BERT on the MPC engine: one definition that runs securely, as the plaintext fixed-point
//! reference (`Engine::plaintext`) and as the planner (`Engine::planner`).
//!
//! Token ids stay private: the input is a shared one-hot matrix multiplied by the shared
//! word-embedding table; positions and token types are public, so their embedding rows are
//! selected locally. Scales and rings: see [`crate::blocks`].

use std::borrow::Cow;

use ditto_core::plan::Tag;
use ditto_core::rand_core::Rng;
use ditto_mpc::ops::arith::Weight;
use ditto_mpc::{Engine, MpcError, Shared};

use super::Bert;
use crate::ModelError;
use crate::blocks::{
    Dense, LayerSpan, Norm64, attention, down, linear, linear_pre, mlp_pre, norm, norm_of, norm64, norm64_of,
    qkv, residual64, up64,
};
use crate::config::BertConfig;
use crate::quant::QuantConfig;
use crate::sharing::{Arch, Record, Share, Source, Spec, transpose};

/// One party's shares of a BERT model, as the model owner hands them out.
pub type BertShare = Share<BertConfig>;

/// One encoder layer.
struct Layer<W> {
    qkv: Dense<W>,
    o: Dense<W>,
    ln1: Norm64,
    up: Dense<W>,
    down: Dense<W>,
    ln2: Norm64,
}

/// Pooler and classifier of a classification model.
struct Head<W> {
    pooler: Dense<W>,
    classifier: Dense<W>,
}

/// Every tensor of a BERT model, W being what a weight matrix is.
struct Tensors<W> {
    word: W,
    pos: Shared<u32>,
    typ: Shared<u32>,
    emb_ln: Norm64,
    layers: Vec<Layer<W>>,
    head: Option<Head<W>>,
}

impl<W> Tensors<W> {
    /// The architecture's one list of tensors (names as in the share files).
    fn build<S: Source<W = W>>(s: &mut S, c: &BertConfig, q: &QuantConfig) -> Result<Self, MpcError> {
        let (h, f, wf) = (c.hidden_size, c.intermediate_size, q.weight_frac);
        let word = s.weight("word_embeddings", [c.vocab_size, h], wf)?;
        let pos = s.u32("position_embeddings", &[c.max_position_embeddings, h], wf)?;
        let typ = s.u32("token_type_embeddings", &[c.type_vocab_size, h], wf)?;
        let emb_ln = Norm64::build(s, q, "embeddings.LayerNorm", h)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = |n: &str| format!("encoder.layer.{i}.{n}");
            let dense = |s: &mut S, n: &str, din, dout| Dense::build(s, q, (&p(n), &p(n)), din, dout);
            layers.push(Layer {
                qkv: Dense::build(s, q, (&p("attention.self"), &p("qkv")), h, 3 * h)?,
                o: dense(s, "attention.output.dense", h, h)?,
                ln1: Norm64::build(s, q, &p("attention.output.LayerNorm"), h)?,
                up: dense(s, "intermediate.dense", h, f)?,
                down: dense(s, "output.dense", f, h)?,
                ln2: Norm64::build(s, q, &p("output.LayerNorm"), h)?,
            });
        }
        let head = match c.num_labels() {
            Some(n) => Some(Head {
                pooler: Dense::build(s, q, ("pooler.dense", "pooler.dense"), h, h)?,
                classifier: Dense::build(s, q, ("classifier", "classifier"), h, n)?,
            }),
            None => None,
        };
        Ok(Tensors { word, pos, typ, emb_ln, layers, head })
    }
}

impl Arch for BertConfig {
    const NAME: &'static str = "bert";
    fn check(&self) -> Result<(), String> {
        BertConfig::check(self)
    }
    #[allow(private_interfaces)]
    fn specs(&self, q: &QuantConfig) -> Vec<Spec> {
        let mut r = Record::default();
        // Recording never fails.
        let _ = Tensors::build(&mut r, self, q);
        r.specs
    }
}

/// The float model's tensors in the shares' layout: dense weights [in, out], the query, key
/// and value projections fused into one [h, 3h].
fn floats(bert: &Bert) -> Vec<(String, Cow<'_, [f32]>)> {
    let mut v: Vec<(String, Cow<'_, [f32]>)> = vec![
        ("word_embeddings".into(), Cow::Borrowed(&bert.emb.word)),
        ("position_embeddings".into(), Cow::Borrowed(&bert.emb.position)),
        ("token_type_embeddings".into(), Cow::Borrowed(&bert.emb.token_type)),
    ];
    let dense = |v: &mut Vec<_>, name: String, ds: &[&super::Dense]| {
        // Several dense layers with the same input are concatenated along the output dimension.
        let (din, dout) = (ds[0].din, ds.iter().map(|d| d.dout).sum::<usize>());
        let mut wt = vec![0f32; din * dout];
        let mut col = 0;
        for d in ds {
            let t = transpose(&d.w, d.dout, d.din);
            for i in 0..din {
                wt[i * dout + col..i * dout + col + d.dout].copy_from_slice(&t[i * d.dout..(i + 1) * d.dout]);
            }
            col += d.dout;
        }
        v.push((format!("{name}.weight"), Cow::Owned(wt)));
        v.push((format!("{name}.bias"), Cow::Owned(ds.iter().flat_map(|d| d.b.iter().copied()).collect())));
    };
    let norm = |v: &mut Vec<(String, Cow<'_, [f32]>)>, name: &str, n: &'_ super::Norm| {
        v.push((format!("{name}.weight"), Cow::Owned(n.g.clone())));
        v.push((format!("{name}.bias"), Cow::Owned(n.b.clone())));
    };
    norm(&mut v, "embeddings.LayerNorm", &bert.emb.norm);
    for (i, l) in bert.layers.iter().enumerate() {
        let p = |n: &str| format!("encoder.layer.{i}.{n}");
        dense(&mut v, p("qkv"), &[&l.q, &l.k, &l.v]);
        dense(&mut v, p("attention.output.dense"), &[&l.o]);
        norm(&mut v, &p("attention.output.LayerNorm"), &l.norm1);
        dense(&mut v, p("intermediate.dense"), &[&l.up]);
        dense(&mut v, p("output.dense"), &[&l.down]);
        norm(&mut v, &p("output.LayerNorm"), &l.norm2);
    }
    if let Some(hd) = &bert.head {
        dense(&mut v, "pooler.dense".into(), &[&hd.pooler]);
        dense(&mut v, "classifier".into(), &[&hd.classifier]);
    }
    v
}

/// The model owner's step: encodes every tensor at its scale and splits it into two shares.
pub fn share_bert(bert: &Bert, q: &QuantConfig, rng: &mut impl Rng) -> Result<[BertShare; 2], ModelError> {
    Share::split(&bert.cfg, q, floats(bert), rng)
}

impl Share<BertConfig> {
    /// The plaintext model as "shares" held by P0 alone (for `Engine::plaintext`).
    pub fn plaintext(bert: &Bert, q: &QuantConfig) -> Result<Self, ModelError> {
        Share::plaintext_of(&bert.cfg, q, floats(bert))
    }
}

/// What [`SecureBert::infer`] computes (this party's share).
#[derive(Clone, Debug)]
pub enum BertOutput {
    /// Sum over tokens of the final hidden states (h, Z_2^64 at `nl_frac`); the client divides
    /// by the token count and normalises (mean pooling).
    PooledSum(Shared<u64>),
    /// Classification logits (1 x labels, Z_2^32 at `act_frac`).
    Logits(Shared<u32>),
}

/// One party's model after setup (weights opened once as F = W - B_W).
pub struct SecureBert {
    cfg: BertConfig,
    q: QuantConfig,
    t: Tensors<Weight<u32>>,
}

impl std::fmt::Debug for SecureBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecureBert {{ layers: {} }}", self.t.layers.len())
    }
}

impl SecureBert {
    /// Setup: opens F = W - B_W for every weight matrix (outside the plan).
    pub async fn setup(e: &mut Engine, s: BertShare) -> Result<Self, MpcError> {
        let (cfg, q, mut take) = s.setup(e).await?;
        let t = Tensors::build(&mut take, &cfg, &q)?;
        Ok(SecureBert { cfg, q, t })
    }

    /// Final hidden states (B n x h, Z_2^64 at `nl_frac`) for a shared one-hot input (n x vocab,
    /// or a batch of B inputs of n tokens, B x n x vocab; Z_2^32, scale 0): each input's rows
    /// are what it computes alone.
    pub async fn forward(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
        let (b, n) = batch_of(onehot)?;
        let onehot = match onehot.shape.len() {
            2 => std::borrow::Cow::Borrowed(onehot),
            _ => std::borrow::Cow::Owned(onehot.clone().reshape(&[b * n, self.cfg.vocab_size])?),
        };
        let h = self.cfg.hidden_size;
        let (q, t, eps) = (&self.q, &self.t, self.cfg.layer_norm_eps);
        // Padding rows (all-zero one-hot rows: the client pads its input to a length bucket)
        // are keys no query sees, by a secret penalty on their scores.
        let pad = crate::blocks::pad_penalties(e, &onehot);
        // Embeddings: one-hot x table (private ids), plus public position / type rows (each
        // input's positions from 0).
        e.context(Tag::Embedding, 0);
        let x = e.matmul_fixed(&onehot, &t.word).await?;
        let pt: Vec<u32> =
            (0..b * n * h).map(|i| t.pos.data[i % (n * h)].wrapping_add(t.typ.data[i % h])).collect();
        let x = e.add(&x, &Shared { data: pt, shape: vec![b * n, h], frac: q.weight_frac })?;
        // The last LayerNorm's output stays in Z_2^64 (the model's output); every other one
        // feeds a linear layer in Z_2^32.
        let Some((last, rest)) = t.layers.split_last() else {
            return norm64(e, q, &x, &t.emb_ln, eps).await;
        };
        let mut x = norm(e, q, &x, &t.emb_ln, eps).await?;
        for (i, l) in rest.iter().enumerate() {
            let span = LayerSpan::begin(e, "bert", i + 1);
            let x2 = self.block(e, &x, l, (b, &pad)).await?;
            x = norm_of(e, q, &x2, &l.ln2, eps).await?;
            span.end(e);
        }
        let span = LayerSpan::begin(e, "bert", t.layers.len());
        let x2 = self.block(e, &x, last, (b, &pad)).await?;
        let y = norm64_of(e, q, &x2, &last.ln2, eps).await?;
        span.end(e);
        Ok(y)
    }

    /// One encoder layer up to its second LayerNorm: attention, residual, LayerNorm, MLP,
    /// residual (in Z_2^64 at `act_frac`: each residual sum takes its linear layer's
    /// truncation and the upcast in one round, [`residual64`]).
    async fn block(
        &self,
        e: &mut Engine,
        x: &Shared<u32>,
        l: &Layer<Weight<u32>>,
        (batch, pad): (usize, &Shared<u32>),
    ) -> Result<Shared<u64>, MpcError> {
        let (q, eps, heads_n) = (&self.q, self.cfg.layer_norm_eps, self.cfg.num_attention_heads);
        let (qm, km, vm) = qkv(&linear(e, x, &l.qkv).await?);
        let ctx = attention(e, q, (&qm, &km, &vm), (batch, heads_n), (None, Some(pad))).await?;
        let a = linear_pre(e, &ctx, &l.o).await?;
        let x1 = residual64(e, x, &a, l.o.w.frac).await?;
        let x1 = norm_of(e, q, &x1, &l.ln1, eps).await?;
        let d = mlp_pre(e, q, &x1, (&l.up, &l.down)).await?;
        residual64(e, &x1, &d, l.down.w.frac).await
    }

    /// The model's task: [`Self::classify`] for a classification model, else
    /// [`Self::pooled_sum`].
    pub async fn infer(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<BertOutput, MpcError> {
        Ok(if self.t.head.is_some() {
            BertOutput::Logits(self.classify(e, onehot).await?)
        } else {
            BertOutput::PooledSum(self.pooled_sum(e, onehot).await?)
        })
    }

    /// Classification logits (B x labels, Z_2^32 at `act_frac`, one row per input):
    /// classifier(tanh(pooler(h_CLS))), the tanh in Z_2^64 with the softmax's exp iterations.
    pub async fn classify(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<Shared<u32>, MpcError> {
        let Some(hd) = &self.t.head else {
            return Err(MpcError::NoHead);
        };
        let c = self.cls(e, onehot).await?;
        let c = down(e, &self.q, &c).await?;
        e.context(Tag::Other, u16::try_from(self.t.layers.len() + 1).unwrap_or(u16::MAX));
        let p = linear(e, &c, &hd.pooler).await?;
        let p = up64(e, &self.q, &p).await?;
        e.set_tag(Tag::Other);
        let t = e.tanh(&p, self.q.exp_iters).await?;
        let t = down(e, &self.q, &t).await?;
        linear(e, &t, &hd.classifier).await
    }

    /// The final hidden state of each input's first token ([CLS] pooling; B x h, Z_2^64,
    /// `nl_frac`).
    pub async fn cls(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
        let (b, n) = batch_of(onehot)?;
        let x = self.forward(e, onehot).await?;
        let h = x.shape[1];
        let data = (0..b).flat_map(|i| x.data[i * n * h..i * n * h + h].iter().copied()).collect();
        Ok(Shared { data, shape: vec![b, h], frac: x.frac })
    }

    /// Sum over each input's tokens of its final hidden states (B x h, Z_2^64): the client
    /// divides by the token count and normalises to get the sentence embedding (mean pooling is
    /// public arithmetic).
    pub async fn pooled_sum(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
        let (b, n) = batch_of(onehot)?;
        let x = self.forward(e, onehot).await?;
        let h = x.shape[1];
        // The sum over the real rows only, sum_i m_i x_i with m the secret row mask (1 for a
        // real token, 0 for padding): m upcast, then one product m^T X per input.
        e.set_tag(Tag::Other);
        let m = e.upcast_a(&crate::blocks::row_mask(onehot).reshape(&[b, 1, n])?).await?;
        let s = e.matmul_aa(&m, &Shared { shape: vec![b, n, h], ..x }).await?;
        Ok(Shared { shape: vec![b, h], ..s })
    }
}

/// The inputs and tokens per input of a one-hot input: n x vocab (one input) or B x n x vocab.
fn batch_of(onehot: &Shared<u32>) -> Result<(usize, usize), MpcError> {
    match onehot.shape[..] {
        [n, _] => Ok((1, n)),
        [b, n, _] if b > 0 => Ok((b, n)),
        _ => Err(MpcError::Shape {
            what: "a one-hot input",
            expected: vec![0, 0, 0],
            got: onehot.shape.clone(),
        }),
    }
}
