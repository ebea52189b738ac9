//! GPT-2 on the MPC engine (one definition for secure, fixed-point reference and planning),
//! with a shared KV cache for generation: the client reconstructs the logits of the last
//! position, picks the next token and feeds it back as a private one-hot input.

use ditto_core::rand_core::Rng;
use ditto_mpc::ops::arith::Weight;
use ditto_mpc::{Engine, MpcError, Shared};

use crate::ModelError;
use crate::config::Gpt2Config;
use crate::gpt2::Gpt2;
use crate::quant::QuantConfig;
use crate::secure_bert::{
    DenseShare, NormShare, SecDense, Zero, attention, cols, dense_from, down, enc, gelu, linear, norm_shares,
    norm64, split, zero_dense,
};

/// One party's shares of a block.
#[derive(Clone)]
pub struct BlockShare {
    ln1: NormShare,
    attn: DenseShare,
    proj: DenseShare,
    ln2: NormShare,
    fc: DenseShare,
    fc_proj: DenseShare,
}

/// One party's shares of a GPT-2 model.
#[derive(Clone)]
pub struct Gpt2Share {
    /// Random id common to both parties' shares of one sharing (checked at setup).
    pub(crate) share_id: [u8; 16],
    cfg: Gpt2Config,
    q: QuantConfig,
    wte: Shared<u32>,
    head: Shared<u32>,
    wpe: Shared<u32>,
    blocks: Vec<BlockShare>,
    ln_f: NormShare,
}

impl std::fmt::Debug for Gpt2Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpt2Share {{ blocks: {} }}", self.blocks.len())
    }
}

/// The model owner's step: encodes and splits every tensor.
pub fn share_gpt2(m: &Gpt2, q: &QuantConfig, rng: &mut impl Rng) -> Result<[Gpt2Share; 2], ModelError> {
    let c = &m.cfg;
    let (h, v, wf) = (c.n_embd, c.vocab_size, q.weight_frac);
    let [wte0, wte1] = split(enc::<u32>("wte", &m.wte, wf)?, &[v, h], wf, rng);
    // The tied LM head needs wte^T [h, vocab] as a weight of its own (its own mask B).
    let mut t = vec![0f32; v * h];
    for r in 0..v {
        for j in 0..h {
            t[j * v + r] = m.wte[r * h + j];
        }
    }
    let [hd0, hd1] = split(enc::<u32>("wte (LM head)", &t, wf)?, &[h, v], wf, rng);
    let [wpe0, wpe1] = split(enc::<u32>("wpe", &m.wpe, wf)?, &[c.n_positions, h], wf, rng);
    let [lf0, lf1] = norm_shares("ln_f", &m.ln_f, q, rng)?;
    let mut blocks: [Vec<BlockShare>; 2] = [Vec::new(), Vec::new()];
    for (i, b) in m.blocks.iter().enumerate() {
        let n = |s: &str| format!("h.{i}.{s}");
        let [a0, a1] = norm_shares(&n("ln_1"), &b.ln1, q, rng)?;
        let [c0, c1] = dense_from(&n("attn.c_attn"), &b.attn.w, &b.attn.b, b.attn.din, b.attn.dout, q, rng)?;
        let [p0, p1] = dense_from(&n("attn.c_proj"), &b.proj.w, &b.proj.b, b.proj.din, b.proj.dout, q, rng)?;
        let [l0, l1] = norm_shares(&n("ln_2"), &b.ln2, q, rng)?;
        let [f0, f1] = dense_from(&n("mlp.c_fc"), &b.fc.w, &b.fc.b, b.fc.din, b.fc.dout, q, rng)?;
        let [g0, g1] =
            dense_from(&n("mlp.c_proj"), &b.fc_proj.w, &b.fc_proj.b, b.fc_proj.din, b.fc_proj.dout, q, rng)?;
        blocks[0].push(BlockShare { ln1: a0, attn: c0, proj: p0, ln2: l0, fc: f0, fc_proj: g0 });
        blocks[1].push(BlockShare { ln1: a1, attn: c1, proj: p1, ln2: l1, fc: f1, fc_proj: g1 });
    }
    let [b0, b1] = blocks;
    let share_id = crate::secure_bert::new_share_id(rng);
    let mk = |wte, head, wpe, blocks, ln_f| Gpt2Share {
        share_id,
        cfg: c.clone(),
        q: q.clone(),
        wte,
        head,
        wpe,
        blocks,
        ln_f,
    };
    Ok([mk(wte0, hd0, wpe0, b0, lf0), mk(wte1, hd1, wpe1, b1, lf1)])
}

impl Gpt2Share {
    /// Zero tensors of the model's shapes (plans from the config alone).
    pub fn zeros(cfg: &Gpt2Config, q: &QuantConfig) -> Self {
        let (h, f, v, wf) = (cfg.n_embd, cfg.inner(), cfg.vocab_size, q.weight_frac);
        let norm = || NormShare { g: Shared::zeros(&[h], q.nl_frac), b: Shared::zeros(&[h], q.nl_frac) };
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                let dense =
                    |s: &str, din: usize, dout: usize| zero_dense(q, &format!("h.{i}.{s}"), din, dout);
                BlockShare {
                    ln1: norm(),
                    attn: dense("attn.c_attn", h, 3 * h),
                    proj: dense("attn.c_proj", h, h),
                    ln2: norm(),
                    fc: dense("mlp.c_fc", h, f),
                    fc_proj: dense("mlp.c_proj", f, h),
                }
            })
            .collect();
        Gpt2Share {
            share_id: [0; 16],
            cfg: cfg.clone(),
            q: q.clone(),
            wte: Shared::zeros(&[v, h], wf),
            head: Shared::zeros(&[h, v], wf),
            wpe: Shared::zeros(&[cfg.n_positions, h], wf),
            blocks,
            ln_f: norm(),
        }
    }

    /// The plaintext model as P0's "share" (for `Engine::plaintext`).
    pub fn plaintext(m: &Gpt2, q: &QuantConfig) -> Result<Self, ModelError> {
        let [_, p] = share_gpt2(m, q, &mut Zero)?;
        Ok(p)
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

fn append(a: Option<&Shared<u32>>, b: &Shared<u32>) -> Shared<u32> {
    match a {
        None => b.clone(),
        Some(a) => {
            let mut d = a.data.clone();
            d.extend_from_slice(&b.data);
            Shared { data: d, shape: vec![a.shape[0] + b.shape[0], b.shape[1]], frac: b.frac }
        }
    }
}

/// One party's GPT-2 after setup.
pub struct SecureGpt2 {
    cfg: Gpt2Config,
    q: QuantConfig,
    wte: Weight<u32>,
    head: Weight<u32>,
    wpe: Shared<u32>,
    blocks: Vec<(NormShare, SecDense, SecDense, NormShare, SecDense, SecDense)>,
    ln_f: NormShare,
}

impl std::fmt::Debug for SecureGpt2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecureGpt2 {{ blocks: {} }}", self.blocks.len())
    }
}

impl SecureGpt2 {
    /// Setup: opens F = W - B_W for every weight matrix (outside the plan).
    pub async fn setup(e: &mut Engine, s: Gpt2Share) -> Result<Self, MpcError> {
        e.begin_weight_setup(s.share_id).await?;
        let mut id = 0u32;
        let mut w = async |e: &mut Engine, x: &Shared<u32>| -> Result<Weight<u32>, MpcError> {
            id += 1;
            e.setup_weight(id, x).await
        };
        let wte = w(e, &s.wte).await?;
        let head = w(e, &s.head).await?;
        let mut blocks = Vec::new();
        for b in s.blocks {
            let attn = SecDense { w: w(e, &b.attn.w).await?, b: b.attn.b };
            let proj = SecDense { w: w(e, &b.proj.w).await?, b: b.proj.b };
            let fc = SecDense { w: w(e, &b.fc.w).await?, b: b.fc.b };
            let fcp = SecDense { w: w(e, &b.fc_proj.w).await?, b: b.fc_proj.b };
            blocks.push((b.ln1, attn, proj, b.ln2, fc, fcp));
        }
        e.end_weight_setup()?;
        Ok(SecureGpt2 { cfg: s.cfg, q: s.q, wte, head, wpe: s.wpe, blocks, ln_f: s.ln_f })
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
        let (q, eps) = (&self.q, self.cfg.layer_norm_epsilon);
        if past + n > self.cfg.n_positions {
            return Err(MpcError::Shape {
                what: "positions",
                expected: vec![self.cfg.n_positions],
                got: vec![past + n],
            });
        }
        e.context(ditto_core::plan::Tag::Embedding, 0);
        let x = e.matmul_fixed(onehot, &self.wte).await?;
        let pos = Shared {
            data: self.wpe.data[past * h..(past + n) * h].to_vec(),
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
            cache.k = vec![Shared::zeros(&[0, h], q.act_frac); self.blocks.len()];
            cache.v = vec![Shared::zeros(&[0, h], q.act_frac); self.blocks.len()];
        }
        for (l, (ln1, attn, proj, ln2, fc, fcp)) in self.blocks.iter().enumerate() {
            e.set_layer(u16::try_from(l + 1).unwrap_or(u16::MAX));
            let span = crate::LayerSpan::begin(e, "gpt2", l + 1);
            let a64 = norm64(e, q, &x, ln1, eps).await?;
            let a = down(e, q, &a64).await?;
            let y = linear(e, &a, attn).await?;
            let (qm, km, vm) = (cols(&y, 0, h), cols(&y, h, 2 * h), cols(&y, 2 * h, 3 * h));
            cache.k[l] = append(Some(&cache.k[l]), &km);
            cache.v[l] = append(Some(&cache.v[l]), &vm);
            let ctx = attention(e, q, (&qm, &cache.k[l], &cache.v[l]), heads, Some(&keep)).await?;
            let o = linear(e, &ctx, proj).await?;
            x = e.add(&x, &o)?;
            let m64 = norm64(e, q, &x, ln2, eps).await?;
            let m = down(e, q, &m64).await?;
            let u = linear(e, &m, fc).await?;
            let g = gelu(e, q, &u).await?;
            let d = linear(e, &g, fcp).await?;
            x = e.add(&x, &d)?;
            span.end(e);
        }
        e.context(ditto_core::plan::Tag::Other, 0);
        let last = Shared { data: x.data[(n - 1) * h..].to_vec(), shape: vec![1, h], frac: x.frac };
        let last64 = norm64(e, q, &last, &self.ln_f, eps).await?;
        let last = down(e, q, &last64).await?;
        e.set_tag(ditto_core::plan::Tag::Other);
        e.matmul_fixed(&last, &self.head).await
    }
}

impl crate::share_file::ShareTensors for Gpt2Share {
    const ARCH: &'static str = "gpt2";
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.cfg).unwrap_or_default()
    }
    fn quant_config(&self) -> &QuantConfig {
        &self.q
    }
    fn share_id(&mut self) -> &mut [u8; 16] {
        &mut self.share_id
    }
    fn zeros_from(config: serde_json::Value, q: &QuantConfig) -> Result<Self, String> {
        let c: Gpt2Config = serde_json::from_value(config).map_err(|e| e.to_string())?;
        c.check()?;
        Ok(Gpt2Share::zeros(&c, q))
    }
    fn visit_tensors(
        &mut self,
        f: &mut dyn FnMut(&str, crate::share_file::TensorMut<'_>) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        use crate::share_file::TensorMut::{U32, U64};
        f("wte", U32(&mut self.wte))?;
        f("lm_head", U32(&mut self.head))?;
        f("wpe", U32(&mut self.wpe))?;
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let n = |s: &str| format!("h.{i}.{s}");
            f(&n("ln_1.weight"), U64(&mut b.ln1.g))?;
            f(&n("ln_1.bias"), U64(&mut b.ln1.b))?;
            f(&n("attn.c_attn.weight"), U32(&mut b.attn.w))?;
            f(&n("attn.c_attn.bias"), U32(&mut b.attn.b))?;
            f(&n("attn.c_proj.weight"), U32(&mut b.proj.w))?;
            f(&n("attn.c_proj.bias"), U32(&mut b.proj.b))?;
            f(&n("ln_2.weight"), U64(&mut b.ln2.g))?;
            f(&n("ln_2.bias"), U64(&mut b.ln2.b))?;
            f(&n("mlp.c_fc.weight"), U32(&mut b.fc.w))?;
            f(&n("mlp.c_fc.bias"), U32(&mut b.fc.b))?;
            f(&n("mlp.c_proj.weight"), U32(&mut b.fc_proj.w))?;
            f(&n("mlp.c_proj.bias"), U32(&mut b.fc_proj.b))?;
        }
        f("ln_f.weight", U64(&mut self.ln_f.g))?;
        f("ln_f.bias", U64(&mut self.ln_f.b))
    }
}

impl Gpt2Share {
    /// The id of the sharing this share belongs to (both parties' shares carry it).
    pub fn share_set(&self) -> ditto_core::prg::ShareSetId {
        ditto_core::prg::ShareSetId(self.share_id)
    }

    /// Writes party `party`'s share.
    pub fn save(&mut self, path: &std::path::Path, party: u8) -> Result<(), ModelError> {
        crate::share_file::save(self, path, party)
    }

    /// The model config.
    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    /// The quantization config.
    pub fn quant(&self) -> &QuantConfig {
        &self.q
    }
}
