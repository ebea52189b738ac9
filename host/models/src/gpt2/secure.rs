//! GPT-2 on the MPC engine (one definition for secure, fixed-point reference and planning),
//! with a shared KV cache for generation: the client reconstructs the logits of the last
//! position, picks the next token and feeds it back as a private one-hot input.

use std::borrow::Cow;

use ditto_core::plan::Tag;
use ditto_core::rand_core::Rng;
use ditto_mpc::ops::arith::Weight;
use ditto_mpc::{Engine, MpcError, Shared};

use super::Gpt2;
use crate::ModelError;
use crate::blocks::{
    Dense, LayerSpan, Norm64, attention, linear, linear_pre, low32, mlp_pre, norm, norm_of, qkv, residual64,
};
use crate::config::Gpt2Config;
use crate::quant::QuantConfig;
use crate::sharing::{Arch, Record, Share, Source, Spec};

/// One party's shares of a GPT-2 model.
pub type Gpt2Share = Share<Gpt2Config>;

/// One block.
struct Block<W> {
    ln1: Norm64,
    attn: Dense<W>,
    proj: Dense<W>,
    ln2: Norm64,
    fc: Dense<W>,
    fc_proj: Dense<W>,
}

/// Every tensor of a GPT-2 model, W being what a weight matrix is.
struct Tensors<W> {
    wte: W,
    /// The tied LM head: wte^T [h, vocab] as a weight of its own (its own mask B).
    head: W,
    wpe: Shared<u32>,
    blocks: Vec<Block<W>>,
    ln_f: Norm64,
}

impl<W> Tensors<W> {
    /// The architecture's one list of tensors (names as in the share files).
    fn build<S: Source<W = W>>(s: &mut S, c: &Gpt2Config, q: &QuantConfig) -> Result<Self, MpcError> {
        let (h, f, v, wf) = (c.n_embd, c.inner(), c.vocab_size, q.weight_frac);
        let wte = s.weight("wte", [v, h], wf)?;
        let head = s.weight("lm_head", [h, v], wf)?;
        let wpe = s.u32("wpe", &[c.n_positions, h], wf)?;
        let mut blocks = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let p = |n: &str| format!("h.{i}.{n}");
            let dense = |s: &mut S, n: &str, din, dout| Dense::build(s, q, (&p(n), &p(n)), din, dout);
            blocks.push(Block {
                ln1: Norm64::build(s, q, &p("ln_1"), h)?,
                attn: dense(s, "attn.c_attn", h, 3 * h)?,
                proj: dense(s, "attn.c_proj", h, h)?,
                ln2: Norm64::build(s, q, &p("ln_2"), h)?,
                fc: dense(s, "mlp.c_fc", h, f)?,
                fc_proj: dense(s, "mlp.c_proj", f, h)?,
            });
        }
        let ln_f = Norm64::build(s, q, "ln_f", h)?;
        Ok(Tensors { wte, head, wpe, blocks, ln_f })
    }
}

impl Arch for Gpt2Config {
    const NAME: &'static str = "gpt2";
    fn check(&self) -> Result<(), String> {
        Gpt2Config::check(self)
    }
    #[allow(private_interfaces)]
    fn specs(&self, q: &QuantConfig) -> Vec<Spec> {
        let mut r = Record::default();
        // Recording never fails.
        let _ = Tensors::build(&mut r, self, q);
        r.specs
    }
}

/// The float model's tensors in the shares' layout (Conv1D weights are [in, out] already).
fn floats(m: &Gpt2) -> Vec<(String, Cow<'_, [f32]>)> {
    let (v, h) = (m.cfg.vocab_size, m.cfg.n_embd);
    let mut t = vec![0f32; v * h];
    for r in 0..v {
        for j in 0..h {
            t[j * v + r] = m.wte[r * h + j];
        }
    }
    let mut out: Vec<(String, Cow<'_, [f32]>)> = vec![
        ("wte".into(), Cow::Borrowed(&m.wte)),
        ("lm_head".into(), Cow::Owned(t)),
        ("wpe".into(), Cow::Borrowed(&m.wpe)),
    ];
    let mut pair = |name: String, w: &'_ [f32], b: &'_ [f32]| {
        out.push((format!("{name}.weight"), Cow::Owned(w.to_vec())));
        out.push((format!("{name}.bias"), Cow::Owned(b.to_vec())));
    };
    for (i, b) in m.blocks.iter().enumerate() {
        let p = |n: &str| format!("h.{i}.{n}");
        pair(p("ln_1"), &b.ln1.g, &b.ln1.b);
        pair(p("attn.c_attn"), &b.attn.w, &b.attn.b);
        pair(p("attn.c_proj"), &b.proj.w, &b.proj.b);
        pair(p("ln_2"), &b.ln2.g, &b.ln2.b);
        pair(p("mlp.c_fc"), &b.fc.w, &b.fc.b);
        pair(p("mlp.c_proj"), &b.fc_proj.w, &b.fc_proj.b);
    }
    pair("ln_f".into(), &m.ln_f.g, &m.ln_f.b);
    out
}

/// The model owner's step: encodes and splits every tensor.
pub fn share_gpt2(m: &Gpt2, q: &QuantConfig, rng: &mut impl Rng) -> Result<[Gpt2Share; 2], ModelError> {
    Share::split(&m.cfg, q, floats(m), rng)
}

impl Share<Gpt2Config> {
    /// The plaintext model as P0's "share" (for `Engine::plaintext`).
    pub fn plaintext(m: &Gpt2, q: &QuantConfig) -> Result<Self, ModelError> {
        Share::plaintext_of(&m.cfg, q, floats(m))
    }
}

/// Keys and values of earlier positions, per layer (t x h, Z_2^32 at `act_frac`), held as shares.
#[derive(Clone, Debug, Default)]
pub struct SecCache {
    k: Vec<Shared<u32>>,
    v: Vec<Shared<u32>>,
}

impl SecCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.k.first().map_or(0, |k| k.shape[0])
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rows of `b` after those of `a`.
fn append(a: &Shared<u32>, b: &Shared<u32>) -> Shared<u32> {
    let mut d = a.data.clone();
    d.extend_from_slice(&b.data);
    Shared { data: d, shape: vec![a.shape[0] + b.shape[0], b.shape[1]], frac: b.frac }
}

/// One party's GPT-2 after setup.
pub struct SecureGpt2 {
    cfg: Gpt2Config,
    q: QuantConfig,
    t: Tensors<Weight<u32>>,
}

impl std::fmt::Debug for SecureGpt2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecureGpt2 {{ blocks: {} }}", self.t.blocks.len())
    }
}

impl SecureGpt2 {
    /// Setup: opens F = W - B_W for every weight matrix (outside the plan).
    pub async fn setup(e: &mut Engine, s: Gpt2Share) -> Result<Self, MpcError> {
        let (cfg, q, mut take) = s.setup(e).await?;
        let t = Tensors::build(&mut take, &cfg, &q)?;
        Ok(SecureGpt2 { cfg, q, t })
    }

    /// The model config.
    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    /// Feeds `onehot` (n x vocab, scale 0) at the positions after the cache; returns the
    /// logits of the last position (1 x vocab, Z_2^32 at `act_frac + weight_frac`).
    pub async fn forward(
        &self,
        e: &mut Engine,
        onehot: &Shared<u32>,
        cache: &mut SecCache,
    ) -> Result<Shared<u32>, MpcError> {
        let (n, h, heads) = (onehot.shape[0], self.cfg.n_embd, self.cfg.n_head);
        let past = cache.len();
        let (q, t, eps) = (&self.q, &self.t, self.cfg.layer_norm_epsilon);
        if past + n > self.cfg.n_positions {
            return Err(MpcError::Shape {
                what: "positions",
                expected: vec![self.cfg.n_positions],
                got: vec![past + n],
            });
        }
        e.context(Tag::Embedding, 0);
        let x = e.matmul_fixed(onehot, &t.wte).await?;
        let pos = Shared {
            data: t.wpe.data[past * h..(past + n) * h].to_vec(),
            shape: vec![n, h],
            frac: q.weight_frac,
        };
        let x = e.add(&x, &pos)?;
        // Token and position embeddings are at the weights' scale; bring them to the activations'.
        let mut x = match q.weight_frac.cmp(&q.act_frac) {
            std::cmp::Ordering::Greater => e.trunc_a(&x, q.weight_frac - q.act_frac).await?,
            std::cmp::Ordering::Equal => x,
            std::cmp::Ordering::Less => e.rescale_up(&x, q.act_frac - q.weight_frac),
        };
        let keep: Vec<bool> =
            (0..heads * n).flat_map(|r| (0..past + n).map(move |j| j <= past + r % n)).collect();
        if cache.k.is_empty() {
            cache.k = vec![Shared::zeros(&[0, h], q.act_frac); t.blocks.len()];
            cache.v = vec![Shared::zeros(&[0, h], q.act_frac); t.blocks.len()];
        }
        // Each residual sum takes its linear layer's truncation and the upcast into the next
        // LayerNorm in one round (residual64); the stream keeps its Z_2^32 shares beside.
        let mut x64: Option<Shared<u64>> = None;
        let row = |s: &Shared<u32>, r: usize| {
            let w = s.shape[1];
            Shared { data: s.data[r * w..(r + 1) * w].to_vec(), shape: vec![1, w], frac: s.frac }
        };
        let nb = t.blocks.len();
        for (l, b) in t.blocks.iter().enumerate() {
            let span = LayerSpan::begin(e, "gpt2", l + 1);
            let a = match &x64 {
                Some(s) => norm_of(e, q, s, &b.ln1, eps).await?,
                None => norm(e, q, &x, &b.ln1, eps).await?,
            };
            let (qm, km, vm) = qkv(&linear(e, &a, &b.attn).await?);
            cache.k[l] = append(&cache.k[l], &km);
            cache.v[l] = append(&cache.v[l], &vm);
            let ctx =
                attention(e, q, (&qm, &cache.k[l], &cache.v[l]), (1, heads), (Some(&keep), None)).await?;
            let o = linear_pre(e, &ctx, &b.proj).await?;
            let s = residual64(e, &x, &o, b.proj.w.frac).await?;
            x = low32(&s);
            let m = norm_of(e, q, &s, &b.ln2, eps).await?;
            let d = mlp_pre(e, q, &m, (&b.fc, &b.fc_proj)).await?;
            // After the last block only the last position goes on.
            let s = if l + 1 == nb {
                residual64(e, &row(&x, n - 1), &row(&d, n - 1), b.fc_proj.w.frac).await?
            } else {
                residual64(e, &x, &d, b.fc_proj.w.frac).await?
            };
            x = low32(&s);
            x64 = Some(s);
            span.end(e);
        }
        e.context(Tag::Other, 0);
        let last = match x64 {
            Some(s) => norm_of(e, q, &s, &t.ln_f, eps).await?,
            None => {
                let last = Shared { data: x.data[(n - 1) * h..].to_vec(), shape: vec![1, h], frac: x.frac };
                norm(e, q, &last, &t.ln_f, eps).await?
            }
        };
        e.set_tag(Tag::Other);
        crate::blocks::matmul(e, &last, &t.head).await
    }
}
