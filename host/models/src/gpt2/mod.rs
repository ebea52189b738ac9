//! GPT-2 (decoder) in the Hugging Face layout: `wte`, `wpe`, `h.N.ln_1`, `h.N.attn.c_attn`
//! (Conv1D, stored [in, out]), `h.N.attn.c_proj`, `h.N.ln_2`, `h.N.mlp.c_fc`, `h.N.mlp.c_proj`,
//! `ln_f`, names with or without the `transformer.` prefix; the LM head is tied to `wte`.
//! The f32 float reference with a KV cache.

pub mod secure;

use crate::ModelError;
use crate::bert::Norm;
use crate::config::Gpt2Config;
use crate::float;
use crate::weights::Weights;

/// A Conv1D layer: W [in, out], b [out].
#[derive(Clone, Debug)]
pub struct Conv1D {
    /// Weight [in, out].
    pub w: Vec<f32>,
    /// Bias.
    pub b: Vec<f32>,
    /// Input size.
    pub din: usize,
    /// Output size.
    pub dout: usize,
}

fn names(n: &str) -> Vec<String> {
    vec![n.to_string(), format!("transformer.{n}")]
}

impl Conv1D {
    fn load(w: &Weights, p: &str, din: usize, dout: usize) -> Result<Self, ModelError> {
        Ok(Conv1D {
            w: w.get(&names(&format!("{p}.weight")), &[din, dout])?.to_vec(),
            b: w.get(&names(&format!("{p}.bias")), &[dout])?.to_vec(),
            din,
            dout,
        })
    }

    /// x W + b.
    pub fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        float::conv1d(x, n, &self.w, &self.b, self.din, self.dout)
    }
}

fn norm(w: &Weights, p: &str, h: usize) -> Result<Norm, ModelError> {
    Ok(Norm {
        g: w.get(&names(&format!("{p}.weight")), &[h])?.to_vec(),
        b: w.get(&names(&format!("{p}.bias")), &[h])?.to_vec(),
    })
}

/// One block.
#[derive(Clone, Debug)]
pub struct Block {
    /// LayerNorm before attention.
    pub ln1: Norm,
    /// Q, K, V projection [h, 3h].
    pub attn: Conv1D,
    /// Attention output projection.
    pub proj: Conv1D,
    /// LayerNorm before the MLP.
    pub ln2: Norm,
    /// MLP up.
    pub fc: Conv1D,
    /// MLP down.
    pub fc_proj: Conv1D,
}

/// A GPT-2 model.
#[derive(Clone, Debug)]
pub struct Gpt2 {
    /// Config.
    pub cfg: Gpt2Config,
    /// Token embeddings [vocab, h] (also the LM head).
    pub wte: Vec<f32>,
    /// Position embeddings [n_positions, h].
    pub wpe: Vec<f32>,
    /// Blocks.
    pub blocks: Vec<Block>,
    /// Final LayerNorm.
    pub ln_f: Norm,
}

/// Keys and values of earlier positions, per layer (n x h each).
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    /// Per layer: keys.
    pub k: Vec<Vec<f32>>,
    /// Per layer: values.
    pub v: Vec<Vec<f32>>,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self, h: usize) -> usize {
        self.k.first().map_or(0, |k| k.len() / h)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.k.first().is_none_or(Vec::is_empty)
    }
}

impl Gpt2 {
    /// Loads every tensor by name, checking shapes.
    pub fn load(cfg: &Gpt2Config, w: &Weights) -> Result<Self, ModelError> {
        let (h, f) = (cfg.n_embd, cfg.inner());
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                let p = format!("h.{i}");
                Ok(Block {
                    ln1: norm(w, &format!("{p}.ln_1"), h)?,
                    attn: Conv1D::load(w, &format!("{p}.attn.c_attn"), h, 3 * h)?,
                    proj: Conv1D::load(w, &format!("{p}.attn.c_proj"), h, h)?,
                    ln2: norm(w, &format!("{p}.ln_2"), h)?,
                    fc: Conv1D::load(w, &format!("{p}.mlp.c_fc"), h, f)?,
                    fc_proj: Conv1D::load(w, &format!("{p}.mlp.c_proj"), f, h)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Gpt2 {
            cfg: cfg.clone(),
            wte: w.get(&names("wte.weight"), &[cfg.vocab_size, h])?.to_vec(),
            wpe: w.get(&names("wpe.weight"), &[cfg.n_positions, h])?.to_vec(),
            blocks,
            ln_f: norm(w, "ln_f", h)?,
        })
    }

    fn gelu(&self, x: f32) -> f32 {
        if self.cfg.activation_function == "gelu" { float::gelu(x) } else { float::gelu_new(x) }
    }

    /// Logits of the last position after feeding `ids` (positions continue the cache).
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, ModelError> {
        self.forward_ranges(ids, cache, None)
    }

    /// [`Gpt2::forward`], recording value ranges for calibration.
    pub fn forward_ranges(
        &self,
        ids: &[u32],
        cache: &mut KvCache,
        mut r: Option<&mut crate::quant::Ranges>,
    ) -> Result<Vec<f32>, ModelError> {
        let (h, heads) = (self.cfg.n_embd, self.cfg.n_head);
        let (n, past) = (ids.len(), cache.len(h));
        if past + n > self.cfg.n_positions {
            return Err(ModelError::TooLong { max: self.cfg.n_positions, got: past + n });
        }
        if cache.k.is_empty() {
            cache.k = vec![Vec::new(); self.cfg.n_layer];
            cache.v = vec![Vec::new(); self.cfg.n_layer];
        }
        let mut x = vec![0f32; n * h];
        for (i, &tid) in ids.iter().enumerate() {
            let id = tid as usize;
            if id >= self.cfg.vocab_size {
                return Err(ModelError::UnknownToken { id: tid, vocab: self.cfg.vocab_size });
            }
            for j in 0..h {
                x[i * h + j] = self.wte[id * h + j] + self.wpe[(past + i) * h + j];
            }
        }
        let eps = self.cfg.layer_norm_epsilon;
        if let Some(r) = r.as_deref_mut() {
            r.see_embedding(&x);
            r.see_residual(&x, h);
        }
        for (l, b) in self.blocks.iter().enumerate() {
            let mut a = x.clone();
            float::layernorm(&mut a, h, &b.ln1.g, &b.ln1.b, eps);
            let qkv = b.attn.forward(&a, n);
            let (mut q, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..n {
                q.extend_from_slice(&qkv[i * 3 * h..i * 3 * h + h]);
                k.extend_from_slice(&qkv[i * 3 * h + h..i * 3 * h + 2 * h]);
                v.extend_from_slice(&qkv[i * 3 * h + 2 * h..(i + 1) * 3 * h]);
            }
            cache.k[l].extend_from_slice(&k);
            cache.v[l].extend_from_slice(&v);
            if let Some(r) = r.as_deref_mut() {
                r.see_dense(&format!("h.{l}.attn.c_attn"), &qkv);
                // Scores of the new queries against every cached key.
                r.see_scores_past(&q, &cache.k[l], n, h, heads);
            }
            let att = float::attention_past(&q, &cache.k[l], &cache.v[l], n, past, h, heads, true);
            let o = b.proj.forward(&att, n);
            x.iter_mut().zip(&o).for_each(|(xv, ov)| *xv += ov);
            if let Some(r) = r.as_deref_mut() {
                r.see_dense(&format!("h.{l}.attn.c_proj"), &o);
                r.see_residual(&x, h);
            }
            let mut m = x.clone();
            float::layernorm(&mut m, h, &b.ln2.g, &b.ln2.b, eps);
            let mut u = b.fc.forward(&m, n);
            if let Some(r) = r.as_deref_mut() {
                r.see_dense(&format!("h.{l}.mlp.c_fc"), &u);
            }
            u.iter_mut().for_each(|v| *v = self.gelu(*v));
            let d = b.fc_proj.forward(&u, n);
            x.iter_mut().zip(&d).for_each(|(xv, dv)| *xv += dv);
            if let Some(r) = r.as_deref_mut() {
                r.see_dense(&format!("h.{l}.mlp.c_proj"), &d);
                r.see_residual(&x, h);
            }
        }
        let mut last = x[(n - 1) * h..].to_vec();
        float::layernorm(&mut last, h, &self.ln_f.g, &self.ln_f.b, eps);
        let logits: Vec<f32> =
            (0..self.cfg.vocab_size).map(|t| (0..h).map(|j| last[j] * self.wte[t * h + j]).sum()).collect();
        if let Some(r) = r {
            r.see_linear(&logits);
        }
        Ok(logits)
    }
}

/// Index of the largest logit (ties: the lowest index).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    u32::try_from(best).unwrap_or(u32::MAX)
}

impl Gpt2 {
    /// Calibration ranges holding the weights' largest magnitudes (overall and per linear
    /// layer); [`Self::forward_ranges`] adds the activations'.
    pub fn weight_ranges(&self) -> crate::quant::Ranges {
        let mut r = crate::quant::Ranges::default();
        r.see_weight(&self.wte);
        r.see_weight(&self.wpe);
        for (i, b) in self.blocks.iter().enumerate() {
            for (c, s) in [
                (&b.attn, "attn.c_attn"),
                (&b.proj, "attn.c_proj"),
                (&b.fc, "mlp.c_fc"),
                (&b.fc_proj, "mlp.c_proj"),
            ] {
                r.see_dense_params(&format!("h.{i}.{s}"), &[&c.w], &[&c.b]);
            }
        }
        r
    }
}
