//! BERT on the MPC engine: one definition that runs securely, as the plaintext fixed-point
//! reference (`Engine::plaintext`) and as the planner (`Engine::planner`).
//!
//! Rings and scales follow the [`QuantConfig`]: linear layers in Z_2^32 (activations with
//! `act_frac`, weights and biases with `weight_frac`, one truncation after each product);
//! attention scores are upcast to Z_2^64 for softmax; LayerNorm (and the PUMA GeLU) run in
//! Z_2^64 with `nl_frac` between an upcast and a downcast. Token ids stay private: the input is
//! a shared one-hot matrix multiplied by the shared word-embedding table; positions and token
//! types are public, so their embedding rows are selected locally.

use ditto_core::Ring;
use ditto_core::plan::{GeluApprox, Tag};
use ditto_core::rand_core::Rng;
use ditto_mpc::ops::arith::Weight;
use ditto_mpc::tensor::share;
use ditto_mpc::{Engine, MpcError, Shared};

use crate::ModelError;
use crate::bert::{Bert, Dense, Norm};
use crate::config::BertConfig;
use crate::quant::{Gelu, QuantConfig};

/// One party's shares of a dense layer: W^T [in, out] and bias [out].
#[derive(Clone)]
pub struct DenseShare {
    pub(crate) w: Shared<u32>,
    pub(crate) b: Shared<u32>,
}

/// One party's shares of a LayerNorm.
#[derive(Clone)]
pub struct NormShare {
    pub(crate) g: Shared<u64>,
    pub(crate) b: Shared<u64>,
}

/// One party's shares of one layer.
#[derive(Clone)]
pub struct LayerShare {
    qkv: DenseShare,
    o: DenseShare,
    ln1: NormShare,
    up: DenseShare,
    down: DenseShare,
    ln2: NormShare,
}

/// One party's shares of a BERT model, as the model owner hands them out.
#[derive(Clone)]
pub struct BertShare {
    /// Random id common to both parties' shares of one sharing (checked at setup).
    pub(crate) share_id: [u8; 16],
    cfg: BertConfig,
    q: QuantConfig,
    word: Shared<u32>,
    pos: Shared<u32>,
    typ: Shared<u32>,
    emb_ln: NormShare,
    layers: Vec<LayerShare>,
    /// Pooler and classifier (classification models).
    head: Option<(DenseShare, DenseShare)>,
}

impl std::fmt::Debug for BertShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BertShare {{ layers: {}, quant: {:?} }}", self.layers.len(), self.q)
    }
}

pub(crate) fn enc<R: Ring>(name: &str, v: &[f32], frac: u32) -> Result<Vec<R>, ModelError> {
    v.iter()
        .map(|x| {
            ditto_core::fixed::encode::<R>(f64::from(*x), frac).map_err(|e| ModelError::Config {
                path: name.into(),
                reason: format!("does not fit its ring at {frac} fractional bits: {e}"),
            })
        })
        .collect()
}

/// [out, in] -> [in, out].
fn transpose(w: &[f32], dout: usize, din: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for o in 0..dout {
        for i in 0..din {
            t[i * dout + o] = w[o * din + i];
        }
    }
    t
}

/// A fresh share-set id.
pub(crate) fn new_share_id(rng: &mut impl Rng) -> [u8; 16] {
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    id
}

/// Splits plaintext ring values into two parties' shares.
pub(crate) fn split<R: Ring>(v: Vec<R>, shape: &[usize], frac: u32, rng: &mut impl Rng) -> [Shared<R>; 2] {
    let [a, b] = share(&v, rng);
    [Shared { data: a, shape: shape.to_vec(), frac }, Shared { data: b, shape: shape.to_vec(), frac }]
}

fn dense_shares(
    name: &str,
    ds: &[&Dense],
    q: &QuantConfig,
    rng: &mut impl Rng,
) -> Result<[DenseShare; 2], ModelError> {
    // Several dense layers with the same input are concatenated along the output dimension.
    let din = ds[0].din;
    let dout: usize = ds.iter().map(|d| d.dout).sum();
    let mut wt = vec![0f32; din * dout];
    let mut b = Vec::with_capacity(dout);
    let mut col = 0;
    for d in ds {
        let t = transpose(&d.w, d.dout, d.din);
        for i in 0..din {
            wt[i * dout + col..i * dout + col + d.dout].copy_from_slice(&t[i * d.dout..(i + 1) * d.dout]);
        }
        b.extend_from_slice(&d.b);
        col += d.dout;
    }
    dense_from(name, &wt, &b, din, dout, q, rng)
}

pub(crate) fn norm_shares(
    name: &str,
    n: &Norm,
    q: &QuantConfig,
    rng: &mut impl Rng,
) -> Result<[NormShare; 2], ModelError> {
    let h = n.g.len();
    let [g0, g1] = split(enc::<u64>(name, &n.g, q.nl_frac)?, &[h], q.nl_frac, rng);
    let [b0, b1] = split(enc::<u64>(name, &n.b, q.nl_frac)?, &[h], q.nl_frac, rng);
    Ok([NormShare { g: g0, b: b0 }, NormShare { g: g1, b: b1 }])
}

/// The model owner's step: encodes every tensor at its scale and splits it into two shares.
pub fn share_bert(bert: &Bert, q: &QuantConfig, rng: &mut impl Rng) -> Result<[BertShare; 2], ModelError> {
    let c = &bert.cfg;
    let h = c.hidden_size;
    let wf = q.weight_frac;
    let [word0, word1] =
        split(enc::<u32>("word_embeddings", &bert.emb.word, wf)?, &[c.vocab_size, h], wf, rng);
    let [pos0, pos1] = split(
        enc::<u32>("position_embeddings", &bert.emb.position, wf)?,
        &[c.max_position_embeddings, h],
        wf,
        rng,
    );
    let [typ0, typ1] = split(
        enc::<u32>("token_type_embeddings", &bert.emb.token_type, wf)?,
        &[c.type_vocab_size, h],
        wf,
        rng,
    );
    let [eln0, eln1] = norm_shares("embeddings.LayerNorm", &bert.emb.norm, q, rng)?;
    let mut layers: [Vec<LayerShare>; 2] = [Vec::new(), Vec::new()];
    for (i, l) in bert.layers.iter().enumerate() {
        let name = |s: &str| format!("encoder.layer.{i}.{s}");
        let [qkv0, qkv1] = dense_shares(&name("attention.self"), &[&l.q, &l.k, &l.v], q, rng)?;
        let [o0, o1] = dense_shares(&name("attention.output.dense"), &[&l.o], q, rng)?;
        let [a0, a1] = norm_shares(&name("attention.output.LayerNorm"), &l.norm1, q, rng)?;
        let [u0, u1] = dense_shares(&name("intermediate.dense"), &[&l.up], q, rng)?;
        let [d0, d1] = dense_shares(&name("output.dense"), &[&l.down], q, rng)?;
        let [n0, n1] = norm_shares(&name("output.LayerNorm"), &l.norm2, q, rng)?;
        layers[0].push(LayerShare { qkv: qkv0, o: o0, ln1: a0, up: u0, down: d0, ln2: n0 });
        layers[1].push(LayerShare { qkv: qkv1, o: o1, ln1: a1, up: u1, down: d1, ln2: n1 });
    }
    let [l0, l1] = layers;
    let [h0, h1] = match &bert.head {
        Some(hd) => {
            let [p0, p1] = dense_shares("pooler.dense", &[&hd.pooler], q, rng)?;
            let [c0, c1] = dense_shares("classifier", &[&hd.classifier], q, rng)?;
            [Some((p0, c0)), Some((p1, c1))]
        }
        None => [None, None],
    };
    let share_id = new_share_id(rng);
    let mk = |word, pos, typ, emb_ln, layers, head| BertShare {
        share_id,
        cfg: c.clone(),
        q: q.clone(),
        word,
        pos,
        typ,
        emb_ln,
        layers,
        head,
    };
    Ok([mk(word0, pos0, typ0, eln0, l0, h0), mk(word1, pos1, typ1, eln1, l1, h1)])
}

impl BertShare {
    /// The id of the sharing this share belongs to (both parties' shares carry it).
    pub fn share_set(&self) -> ditto_core::prg::ShareSetId {
        ditto_core::prg::ShareSetId(self.share_id)
    }

    /// The model config.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// The quantization config.
    pub fn quant(&self) -> &QuantConfig {
        &self.q
    }

    /// Visits every tensor in a fixed order with its name.
    pub(crate) fn visit(
        &mut self,
        f: &mut dyn FnMut(&str, crate::share_file::TensorMut<'_>) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        use crate::share_file::TensorMut::{U32, U64};
        f("word_embeddings", U32(&mut self.word))?;
        f("position_embeddings", U32(&mut self.pos))?;
        f("token_type_embeddings", U32(&mut self.typ))?;
        f("embeddings.LayerNorm.weight", U64(&mut self.emb_ln.g))?;
        f("embeddings.LayerNorm.bias", U64(&mut self.emb_ln.b))?;
        for (i, l) in self.layers.iter_mut().enumerate() {
            let n = |s: &str| format!("encoder.layer.{i}.{s}");
            f(&n("qkv.weight"), U32(&mut l.qkv.w))?;
            f(&n("qkv.bias"), U32(&mut l.qkv.b))?;
            f(&n("attention.output.dense.weight"), U32(&mut l.o.w))?;
            f(&n("attention.output.dense.bias"), U32(&mut l.o.b))?;
            f(&n("attention.output.LayerNorm.weight"), U64(&mut l.ln1.g))?;
            f(&n("attention.output.LayerNorm.bias"), U64(&mut l.ln1.b))?;
            f(&n("intermediate.dense.weight"), U32(&mut l.up.w))?;
            f(&n("intermediate.dense.bias"), U32(&mut l.up.b))?;
            f(&n("output.dense.weight"), U32(&mut l.down.w))?;
            f(&n("output.dense.bias"), U32(&mut l.down.b))?;
            f(&n("output.LayerNorm.weight"), U64(&mut l.ln2.g))?;
            f(&n("output.LayerNorm.bias"), U64(&mut l.ln2.b))?;
        }
        if let Some((p, c)) = &mut self.head {
            f("pooler.dense.weight", U32(&mut p.w))?;
            f("pooler.dense.bias", U32(&mut p.b))?;
            f("classifier.weight", U32(&mut c.w))?;
            f("classifier.bias", U32(&mut c.b))?;
        }
        Ok(())
    }

    /// Zero tensors of the model's shapes: enough to record the plan (`Engine::planner`)
    /// from the config alone, without weights.
    pub fn zeros(cfg: &BertConfig, q: &QuantConfig) -> Self {
        let (h, f, wf) = (cfg.hidden_size, cfg.intermediate_size, q.weight_frac);
        let norm = || NormShare { g: Shared::zeros(&[h], q.nl_frac), b: Shared::zeros(&[h], q.nl_frac) };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let dense = |s: &str, din: usize, dout: usize| {
                    zero_dense(q, &format!("encoder.layer.{i}.{s}"), din, dout)
                };
                LayerShare {
                    qkv: dense("attention.self", h, 3 * h),
                    o: dense("attention.output.dense", h, h),
                    ln1: norm(),
                    up: dense("intermediate.dense", h, f),
                    down: dense("output.dense", f, h),
                    ln2: norm(),
                }
            })
            .collect();
        BertShare {
            share_id: [0; 16],
            cfg: cfg.clone(),
            q: q.clone(),
            word: Shared::zeros(&[cfg.vocab_size, h], wf),
            pos: Shared::zeros(&[cfg.max_position_embeddings, h], wf),
            typ: Shared::zeros(&[cfg.type_vocab_size, h], wf),
            emb_ln: norm(),
            layers,
            head: cfg
                .num_labels()
                .map(|n| (zero_dense(q, "pooler.dense", h, h), zero_dense(q, "classifier", h, n))),
        }
    }

    /// The plaintext model as "shares" held by P0 alone (for `Engine::plaintext`).
    pub fn plaintext(bert: &Bert, q: &QuantConfig) -> Result<Self, ModelError> {
        // With a zero "random" share, P0's share is the value itself.
        let [_, p] = share_bert(bert, q, &mut Zero)?;
        Ok(p)
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

/// A dense layer after setup.
pub(crate) struct SecDense {
    pub(crate) w: Weight<u32>,
    pub(crate) b: Shared<u32>,
}

/// x W + b, truncated back to the activation scale.
pub(crate) async fn linear(e: &mut Engine, x: &Shared<u32>, d: &SecDense) -> Result<Shared<u32>, MpcError> {
    e.set_tag(Tag::Linear);
    let y = e.matmul_fixed(x, &d.w).await?;
    let (n, m) = (y.shape[0], y.shape[1]);
    let bias =
        Shared { data: (0..n * m).map(|i| d.b.data[i % m]).collect(), shape: vec![n, m], frac: d.b.frac };
    let y = e.add(&y, &bias)?;
    e.trunc_a(&y, d.w.frac).await
}

/// Upcast to Z_2^64 and bring to `nl_frac` (shift up, or truncate when x has more bits).
pub(crate) async fn up64(e: &mut Engine, q: &QuantConfig, x: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
    e.set_tag(Tag::Conversion);
    let x64 = e.upcast_a(x).await?;
    let nl = q.nl_frac;
    if nl >= x.frac { Ok(e.rescale_up(&x64, nl - x.frac)) } else { e.trunc_a(&x64, x.frac - nl).await }
}

/// LayerNorm of a Z_2^32 tensor: upcast, rescale, normalise in Z_2^64.
pub(crate) async fn norm64(
    e: &mut Engine,
    q: &QuantConfig,
    x: &Shared<u32>,
    n: &NormShare,
    eps: f64,
) -> Result<Shared<u64>, MpcError> {
    let x64 = up64(e, q, x).await?;
    e.set_tag(Tag::LayerNorm);
    e.layernorm(&x64, &n.g, &n.b, eps, q.ln_octaves).await
}

/// Downcast from Z_2^64 at `nl_frac` to Z_2^32 at `act_frac`.
pub(crate) async fn down(e: &mut Engine, q: &QuantConfig, x: &Shared<u64>) -> Result<Shared<u32>, MpcError> {
    e.set_tag(Tag::Conversion);
    e.downcast_a(x, q.nl_frac - q.act_frac).await
}

/// GeLU of a Z_2^32 activation per the config (quad in Z_2^32, or PUMA's in Z_2^64).
pub(crate) async fn gelu(e: &mut Engine, q: &QuantConfig, u: &Shared<u32>) -> Result<Shared<u32>, MpcError> {
    match q.gelu {
        Gelu::Quad => {
            e.set_tag(Tag::Gelu(GeluApprox::Quad));
            e.gelu_quad(u).await
        }
        Gelu::Poly => {
            let u64v = up64(e, q, u).await?;
            e.set_tag(Tag::Gelu(GeluApprox::Poly));
            let g = e.gelu_poly(&u64v).await?;
            down(e, q, &g).await
        }
    }
}

/// Multi-head attention of new queries (n) over keys and values (t), scores in Z_2^64.
pub(crate) async fn attention(
    e: &mut Engine,
    q: &QuantConfig,
    (qm, km, vm): (&Shared<u32>, &Shared<u32>, &Shared<u32>),
    heads_n: usize,
    keep: Option<&[bool]>,
) -> Result<Shared<u32>, MpcError> {
    let (n, t, h) = (qm.shape[0], km.shape[0], qm.shape[1]);
    let inv_sqrt = fx64(1.0 / ((h / heads_n) as f64).sqrt(), q.nl_frac)?;
    e.set_tag(Tag::Attention);
    let s = e.matmul_aa(&heads(qm, heads_n, false), &heads(km, heads_n, true)).await?;
    let s64 = up64(e, q, &s).await?;
    e.set_tag(Tag::Softmax { exp_iters: u8::try_from(q.exp_iters).unwrap_or(u8::MAX) });
    let scaled = e.mul_const(&s64, inv_sqrt, q.nl_frac);
    let s64 = e.trunc_a(&scaled, q.nl_frac).await?;
    // The upcast admits |score| 2^(2 act) < 2^30, so after the 1/sqrt(dh) scaling at nl_frac bits
    // any two scores differ by less than 2^(31 - 2 act + nl) / sqrt(dh) + 2, below 2^31 when
    // 2^(nl - 2 act + 1) <= sqrt(dh) (Ditto's 18 / 8 bits and dh = 64; accurate mode too): then
    // the softmax's comparisons run on 32 bits.
    let dh = (h / heads_n) as f64;
    let narrow = f64::from(q.nl_frac + 1) - f64::from(2 * q.act_frac) <= dh.log2() / 2.0;
    let p = e.softmax(&s64.reshape(&[heads_n * n, t])?, keep, q.exp_iters, narrow).await?;
    let p = down(e, q, &p).await?.reshape(&[heads_n, n, t])?;
    e.set_tag(Tag::Attention);
    let ctx = e.matmul_aa(&p, &heads(vm, heads_n, false)).await?;
    let ctx = e.trunc_a(&ctx, q.act_frac).await?;
    Ok(merge(&ctx))
}

/// One party's model after setup (weights opened once as F = W - B_W).
pub struct SecureBert {
    cfg: BertConfig,
    q: QuantConfig,
    word: Weight<u32>,
    pos: Shared<u32>,
    typ: Shared<u32>,
    emb_ln: NormShare,
    layers: Vec<(SecDense, SecDense, NormShare, SecDense, SecDense, NormShare)>,
    head: Option<(SecDense, SecDense)>,
}

impl std::fmt::Debug for SecureBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecureBert {{ layers: {} }}", self.layers.len())
    }
}

pub(crate) fn cols<R: Ring>(x: &Shared<R>, c0: usize, c1: usize) -> Shared<R> {
    let (n, m) = (x.shape[0], x.shape[1]);
    let mut d = Vec::with_capacity(n * (c1 - c0));
    for i in 0..n {
        d.extend_from_slice(&x.data[i * m + c0..i * m + c1]);
    }
    Shared { data: d, shape: vec![n, c1 - c0], frac: x.frac }
}

/// [n, H*dh] -> [H, n, dh] (or its transpose per head, [H, dh, n]).
pub(crate) fn heads<R: Ring>(x: &Shared<R>, h: usize, transpose: bool) -> Shared<R> {
    let (n, m) = (x.shape[0], x.shape[1]);
    let dh = m / h;
    let mut d = vec![R::ZERO; n * m];
    for hd in 0..h {
        for i in 0..n {
            for k in 0..dh {
                let v = x.data[i * m + hd * dh + k];
                let at = if transpose { hd * dh * n + k * n + i } else { hd * n * dh + i * dh + k };
                d[at] = v;
            }
        }
    }
    let shape = if transpose { vec![h, dh, n] } else { vec![h, n, dh] };
    Shared { data: d, shape, frac: x.frac }
}

/// [H, n, dh] -> [n, H*dh].
pub(crate) fn merge<R: Ring>(x: &Shared<R>) -> Shared<R> {
    let (h, n, dh) = (x.shape[0], x.shape[1], x.shape[2]);
    let mut d = vec![R::ZERO; n * h * dh];
    for hd in 0..h {
        for i in 0..n {
            for k in 0..dh {
                d[i * h * dh + hd * dh + k] = x.data[hd * n * dh + i * dh + k];
            }
        }
    }
    Shared { data: d, shape: vec![n, h * dh], frac: x.frac }
}

impl SecureBert {
    /// Setup: opens F = W - B_W for every weight matrix (outside the plan).
    pub async fn setup(e: &mut Engine, s: BertShare) -> Result<Self, MpcError> {
        e.begin_weight_setup(s.share_id).await?;
        let mut id = 0u32;
        let mut dense = async |e: &mut Engine, d: DenseShare| -> Result<SecDense, MpcError> {
            id += 1;
            Ok(SecDense { w: e.setup_weight(id, &d.w).await?, b: d.b })
        };
        let word = dense(e, DenseShare { w: s.word.clone(), b: Shared::zeros(&[0], 0) }).await?.w;
        let mut layers = Vec::new();
        for l in s.layers {
            let qkv = dense(e, l.qkv).await?;
            let o = dense(e, l.o).await?;
            let up = dense(e, l.up).await?;
            let down = dense(e, l.down).await?;
            layers.push((qkv, o, l.ln1, up, down, l.ln2));
        }
        let head = match s.head {
            Some((p, c)) => Some((dense(e, p).await?, dense(e, c).await?)),
            None => None,
        };
        e.end_weight_setup()?;
        Ok(SecureBert { cfg: s.cfg, q: s.q, word, pos: s.pos, typ: s.typ, emb_ln: s.emb_ln, layers, head })
    }

    async fn linear(&self, e: &mut Engine, x: &Shared<u32>, d: &SecDense) -> Result<Shared<u32>, MpcError> {
        linear(e, x, d).await
    }

    async fn norm64(&self, e: &mut Engine, x: &Shared<u32>, n: &NormShare) -> Result<Shared<u64>, MpcError> {
        norm64(e, &self.q, x, n, self.cfg.layer_norm_eps).await
    }

    async fn down(&self, e: &mut Engine, x: &Shared<u64>) -> Result<Shared<u32>, MpcError> {
        down(e, &self.q, x).await
    }

    /// Final hidden states (n x h, Z_2^64 at `nl_frac`) for a shared one-hot input (n x vocab,
    /// Z_2^32, scale 0).
    pub async fn forward(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
        let (n, h, heads_n) = (onehot.shape[0], self.cfg.hidden_size, self.cfg.num_attention_heads);
        let q = &self.q;
        // Embeddings: one-hot x table (private ids), plus public position / type rows.
        e.context(Tag::Embedding, 0);
        let x = e.matmul_fixed(onehot, &self.word).await?;
        let pt: Vec<u32> = (0..n * h).map(|i| self.pos.data[i].wrapping_add(self.typ.data[i % h])).collect();
        let x = e.add(&x, &Shared { data: pt, shape: vec![n, h], frac: q.weight_frac })?;
        let mut x64 = self.norm64(e, &x, &self.emb_ln).await?;
        let mut x = self.down(e, &x64).await?;
        for (l, (qkv, o, ln1, up, down, ln2)) in self.layers.iter().enumerate() {
            e.set_layer(u16::try_from(l + 1).unwrap_or(u16::MAX));
            let span = crate::LayerSpan::begin(e, "bert", l + 1);
            let y = self.linear(e, &x, qkv).await?;
            let (qm, km, vm) = (cols(&y, 0, h), cols(&y, h, 2 * h), cols(&y, 2 * h, 3 * h));
            let ctx = attention(e, q, (&qm, &km, &vm), heads_n, None).await?;
            let a = self.linear(e, &ctx, o).await?;
            let x1 = e.add(&x, &a)?;
            let n1 = self.norm64(e, &x1, ln1).await?;
            let x1 = self.down(e, &n1).await?;
            let u = self.linear(e, &x1, up).await?;
            let g = gelu(e, q, &u).await?;
            let d = self.linear(e, &g, down).await?;
            let x2 = e.add(&x1, &d)?;
            x64 = self.norm64(e, &x2, ln2).await?;
            x = self.down(e, &x64).await?;
            span.end(e);
        }
        Ok(x64)
    }

    /// The model's task: [`Self::classify`] for a classification model, else
    /// [`Self::pooled_sum`].
    pub async fn infer(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<BertOutput, MpcError> {
        Ok(if self.head.is_some() {
            BertOutput::Logits(self.classify(e, onehot).await?)
        } else {
            BertOutput::PooledSum(self.pooled_sum(e, onehot).await?)
        })
    }

    /// Classification logits (1 x labels, Z_2^32 at `act_frac`): classifier(tanh(pooler(h_CLS))),
    /// the tanh in Z_2^64 with the softmax's exp iterations.
    pub async fn classify(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<Shared<u32>, MpcError> {
        let Some((pooler, classifier)) = &self.head else {
            return Err(MpcError::Scale {
                what: "classify",
                detail: "the model has no classification head".into(),
            });
        };
        let c = self.cls(e, onehot).await?;
        let c = self.down(e, &Shared { shape: vec![1, c.len()], ..c }).await?;
        e.context(Tag::Other, u16::try_from(self.layers.len() + 1).unwrap_or(u16::MAX));
        let p = self.linear(e, &c, pooler).await?;
        let p = up64(e, &self.q, &p).await?;
        e.set_tag(Tag::Other);
        let t = e.tanh(&p, self.q.exp_iters).await?;
        let t = self.down(e, &t).await?;
        self.linear(e, &t, classifier).await
    }

    /// The final hidden state of the first token ([CLS] pooling; Z_2^64, `nl_frac`).
    pub async fn cls(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
        let x = self.forward(e, onehot).await?;
        let h = x.shape[1];
        Ok(Shared { data: x.data[..h].to_vec(), shape: vec![h], frac: x.frac })
    }

    /// Sum over tokens of the final hidden states (h, Z_2^64): the client divides by the token
    /// count and normalises to get the sentence embedding (mean pooling is public arithmetic).
    pub async fn pooled_sum(&self, e: &mut Engine, onehot: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
        let x = self.forward(e, onehot).await?;
        let (n, h) = (x.shape[0], x.shape[1]);
        let data = (0..h).map(|j| (0..n).fold(0u64, |a, i| a.wrapping_add(x.data[i * h + j]))).collect();
        Ok(Shared { data, shape: vec![h], frac: x.frac })
    }
}

/// An RNG that yields zeros: "sharing" with it puts the whole value in the second share
/// (value - 0), which the `plaintext()` constructors hand to the plaintext engine.
pub(crate) struct Zero;

impl ditto_core::rand_core::TryRng for Zero {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> {
        d.fill(0);
        Ok(())
    }
}

/// A dense layer's zero share at the layer's scales (for plans).
pub(crate) fn zero_dense(q: &QuantConfig, name: &str, din: usize, dout: usize) -> DenseShare {
    let wf = q.weight_frac_of(name);
    DenseShare { w: Shared::zeros(&[din, dout], wf), b: Shared::zeros(&[dout], wf + q.act_frac) }
}

/// Shares of a dense layer given W as [in, out].
pub(crate) fn dense_from(
    name: &str,
    w_in_out: &[f32],
    b: &[f32],
    din: usize,
    dout: usize,
    q: &QuantConfig,
    rng: &mut impl Rng,
) -> Result<[DenseShare; 2], ModelError> {
    let wf = q.weight_frac_of(name);
    let [w0, w1] = split(enc::<u32>(name, w_in_out, wf)?, &[din, dout], wf, rng);
    let bf = wf + q.act_frac;
    let [b0, b1] = split(enc::<u32>(name, b, bf)?, &[dout], bf, rng);
    Ok([DenseShare { w: w0, b: b0 }, DenseShare { w: w1, b: b1 }])
}

/// A public real at `frac` bits in Z_2^64.
pub fn fx64(v: f64, frac: u32) -> Result<u64, MpcError> {
    Ok(ditto_core::fixed::encode::<u64>(v, frac)?)
}

/// The client's one-hot encoding of token ids (n x vocab, scale 0).
pub fn one_hot(ids: &[u32], vocab: usize) -> Result<Vec<u32>, ModelError> {
    let mut x = vec![0u32; ids.len() * vocab];
    for (i, &id) in ids.iter().enumerate() {
        if id as usize >= vocab {
            return Err(ModelError::UnknownToken { id, vocab });
        }
        x[i * vocab + id as usize] = 1;
    }
    Ok(x)
}
