//! BERT (encoder): weights by their Hugging Face names (with or without the `bert.` prefix),
//! one struct per block with `load` and `forward`; the f32 float reference.

pub mod local;
pub mod secure;

use crate::ModelError;
use crate::config::BertConfig;
use crate::float;
use crate::weights::Weights;

/// A dense layer: W [out, in], b [out].
#[derive(Clone, Debug)]
pub struct Dense {
    /// Weight, row-major [out, in].
    pub w: Vec<f32>,
    /// Bias.
    pub b: Vec<f32>,
    /// Input size.
    pub din: usize,
    /// Output size.
    pub dout: usize,
}

/// LayerNorm parameters.
#[derive(Clone, Debug)]
pub struct Norm {
    /// Gain.
    pub g: Vec<f32>,
    /// Bias.
    pub b: Vec<f32>,
}

fn names(name: &str) -> Vec<String> {
    vec![name.to_string(), format!("bert.{name}")]
}

impl Dense {
    fn load(w: &Weights, prefix: &str, din: usize, dout: usize) -> Result<Self, ModelError> {
        Ok(Dense {
            w: w.get(&names(&format!("{prefix}.weight")), &[dout, din])?.to_vec(),
            b: w.get(&names(&format!("{prefix}.bias")), &[dout])?.to_vec(),
            din,
            dout,
        })
    }

    fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        float::linear(x, n, &self.w, &self.b, self.din, self.dout)
    }
}

impl Norm {
    fn load(w: &Weights, prefix: &str, h: usize) -> Result<Self, ModelError> {
        Ok(Norm {
            g: w.get(&names(&format!("{prefix}.weight")), &[h])?.to_vec(),
            b: w.get(&names(&format!("{prefix}.bias")), &[h])?.to_vec(),
        })
    }
}

/// Word, position and token-type embeddings and their LayerNorm.
#[derive(Clone, Debug)]
pub struct Embeddings {
    /// Word embeddings [vocab, h].
    pub word: Vec<f32>,
    /// Position embeddings [max_pos, h].
    pub position: Vec<f32>,
    /// Token-type embeddings [types, h].
    pub token_type: Vec<f32>,
    /// LayerNorm.
    pub norm: Norm,
}

/// One encoder layer.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Query, key, value projections.
    pub q: Dense,
    /// Key.
    pub k: Dense,
    /// Value.
    pub v: Dense,
    /// Attention output projection.
    pub o: Dense,
    /// LayerNorm after attention.
    pub norm1: Norm,
    /// FFN up.
    pub up: Dense,
    /// FFN down.
    pub down: Dense,
    /// LayerNorm after the FFN.
    pub norm2: Norm,
}

/// The classification head of `BertForSequenceClassification`: logits =
/// classifier(tanh(pooler(h_CLS))).
#[derive(Clone, Debug)]
pub struct Head {
    /// Pooler dense (h -> h), followed by tanh.
    pub pooler: Dense,
    /// Classifier (h -> labels).
    pub classifier: Dense,
}

/// A BERT encoder.
#[derive(Clone, Debug)]
pub struct Bert {
    /// Config.
    pub cfg: BertConfig,
    /// Embeddings.
    pub emb: Embeddings,
    /// Layers.
    pub layers: Vec<Layer>,
    /// Classification head (when the config says `BertForSequenceClassification`).
    pub head: Option<Head>,
}

impl Bert {
    /// Loads every tensor by name, checking shapes.
    pub fn load(cfg: &BertConfig, w: &Weights) -> Result<Self, ModelError> {
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        let emb = Embeddings {
            word: w.get(&names("embeddings.word_embeddings.weight"), &[cfg.vocab_size, h])?.to_vec(),
            position: w
                .get(&names("embeddings.position_embeddings.weight"), &[cfg.max_position_embeddings, h])?
                .to_vec(),
            token_type: w
                .get(&names("embeddings.token_type_embeddings.weight"), &[cfg.type_vocab_size, h])?
                .to_vec(),
            norm: Norm::load(w, "embeddings.LayerNorm", h)?,
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| {
                let p = format!("encoder.layer.{l}");
                Ok(Layer {
                    q: Dense::load(w, &format!("{p}.attention.self.query"), h, h)?,
                    k: Dense::load(w, &format!("{p}.attention.self.key"), h, h)?,
                    v: Dense::load(w, &format!("{p}.attention.self.value"), h, h)?,
                    o: Dense::load(w, &format!("{p}.attention.output.dense"), h, h)?,
                    norm1: Norm::load(w, &format!("{p}.attention.output.LayerNorm"), h)?,
                    up: Dense::load(w, &format!("{p}.intermediate.dense"), h, f)?,
                    down: Dense::load(w, &format!("{p}.output.dense"), f, h)?,
                    norm2: Norm::load(w, &format!("{p}.output.LayerNorm"), h)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let head = match cfg.num_labels() {
            Some(labels) => Some(Head {
                pooler: Dense::load(w, "pooler.dense", h, h)?,
                classifier: Dense::load(w, "classifier", h, labels)?,
            }),
            None => None,
        };
        Ok(Bert { cfg: cfg.clone(), emb, layers, head })
    }

    /// The last hidden states (n x h) for token ids (token type 0).
    pub fn forward(&self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        self.forward_ranges(ids, None)
    }

    /// [`Bert::forward`], recording value ranges for calibration.
    pub fn forward_ranges(
        &self,
        ids: &[u32],
        mut r: Option<&mut crate::quant::Ranges>,
    ) -> Result<Vec<f32>, ModelError> {
        let (h, n) = (self.cfg.hidden_size, ids.len());
        if n > self.cfg.max_position_embeddings {
            return Err(ModelError::TooLong { max: self.cfg.max_position_embeddings, got: n });
        }
        let mut x = vec![0f32; n * h];
        for (i, &tid) in ids.iter().enumerate() {
            let id = tid as usize;
            if id >= self.cfg.vocab_size {
                return Err(ModelError::UnknownToken { id: tid, vocab: self.cfg.vocab_size });
            }
            for j in 0..h {
                x[i * h + j] =
                    self.emb.word[id * h + j] + self.emb.position[i * h + j] + self.emb.token_type[j];
            }
        }
        if let Some(r) = r.as_deref_mut() {
            r.see_embedding(&x);
        }
        float::layernorm(&mut x, h, &self.emb.norm.g, &self.emb.norm.b, self.cfg.layer_norm_eps);
        for (i, l) in self.layers.iter().enumerate() {
            let name = |s: &str| format!("encoder.layer.{i}.{s}");
            let (q, k, v) = (l.q.forward(&x, n), l.k.forward(&x, n), l.v.forward(&x, n));
            if let Some(r) = r.as_deref_mut() {
                r.see_dense(&name("attention.self"), &q);
                r.see_dense(&name("attention.self"), &k);
                r.see_dense(&name("attention.self"), &v);
                r.see_scores(&q, &k, n, h, self.cfg.num_attention_heads);
            }
            let a = float::attention(&q, &k, &v, n, h, self.cfg.num_attention_heads, false);
            let o = l.o.forward(&a, n);
            x.iter_mut().zip(&o).for_each(|(xv, ov)| *xv += ov);
            if let Some(r) = r.as_deref_mut() {
                r.see_dense(&name("attention.output.dense"), &o);
                r.see_residual(&x, h);
            }
            float::layernorm(&mut x, h, &l.norm1.g, &l.norm1.b, self.cfg.layer_norm_eps);
            let mut u = l.up.forward(&x, n);
            if let Some(r) = r.as_deref_mut() {
                r.see_dense(&name("intermediate.dense"), &u);
            }
            u.iter_mut().for_each(|v| *v = float::gelu(*v));
            let d = l.down.forward(&u, n);
            x.iter_mut().zip(&d).for_each(|(xv, dv)| *xv += dv);
            if let Some(r) = r.as_deref_mut() {
                r.see_dense(&name("output.dense"), &d);
                r.see_residual(&x, h);
            }
            float::layernorm(&mut x, h, &l.norm2.g, &l.norm2.b, self.cfg.layer_norm_eps);
        }
        if let (Some(r), Some(hd)) = (r, &self.head) {
            let mut p = hd.pooler.forward(&x[..h], 1);
            r.see_dense("pooler.dense", &p);
            p.iter_mut().for_each(|v| *v = v.tanh());
            r.see_dense("classifier", &hd.classifier.forward(&p, 1));
        }
        Ok(x)
    }

    /// [CLS] pooling: the first token's final hidden state.
    pub fn cls(&self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        let x = self.forward(ids)?;
        Ok(x[..self.cfg.hidden_size].to_vec())
    }

    /// Classification logits: classifier(tanh(pooler(h_CLS))).
    pub fn classify(&self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        let head = self.head.as_ref().ok_or(ModelError::NoHead)?;
        let mut p = head.pooler.forward(&self.cls(ids)?, 1);
        p.iter_mut().for_each(|v| *v = v.tanh());
        Ok(head.classifier.forward(&p, 1))
    }

    /// Sentence embedding: mean pooling over tokens, then L2 normalisation
    /// (sentence-transformers' all-MiniLM-L6-v2 recipe).
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        let x = self.forward(ids)?;
        Ok(mean_pool_normalize(&x, ids.len(), self.cfg.hidden_size))
    }
}

/// Mean over rows, then L2 normalisation.
#[allow(clippy::cast_precision_loss)] // token counts are far below 2^24
pub fn mean_pool_normalize(x: &[f32], n: usize, h: usize) -> Vec<f32> {
    let mut e = vec![0f32; h];
    for row in x.chunks(h) {
        e.iter_mut().zip(row).for_each(|(a, b)| *a += b / n as f32);
    }
    let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    e.iter_mut().for_each(|v| *v /= norm);
    e
}

impl Bert {
    /// Calibration ranges holding the weights' largest magnitudes (overall and per linear
    /// layer); [`Self::forward_ranges`] adds the activations'.
    pub fn weight_ranges(&self) -> crate::quant::Ranges {
        let mut r = crate::quant::Ranges::default();
        r.see_weight(&self.emb.word);
        r.see_weight(&self.emb.position);
        r.see_weight(&self.emb.token_type);
        for (i, l) in self.layers.iter().enumerate() {
            let name = |s: &str| format!("encoder.layer.{i}.{s}");
            r.see_dense_params(&name("attention.self"), &[&l.q.w, &l.k.w, &l.v.w], &[&l.q.b, &l.k.b, &l.v.b]);
            r.see_dense_params(&name("attention.output.dense"), &[&l.o.w], &[&l.o.b]);
            r.see_dense_params(&name("intermediate.dense"), &[&l.up.w], &[&l.up.b]);
            r.see_dense_params(&name("output.dense"), &[&l.down.w], &[&l.down.b]);
        }
        if let Some(hd) = &self.head {
            r.see_dense_params("pooler.dense", &[&hd.pooler.w], &[&hd.pooler.b]);
            r.see_dense_params("classifier", &[&hd.classifier.w], &[&hd.classifier.b]);
        }
        r
    }
}
