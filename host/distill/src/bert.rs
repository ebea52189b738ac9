//! BERT with a classification head in candle, as the float teacher and as the fake-quantized
//! Ditto student (values equal to `ditto_models::bert::secure`'s fixed-point reference of
//! `classify`, gradients straight-through). Batches are padded: padded keys are masked, which
//! leaves every real position's values as in an unpadded run.

use candle_core::{D, DType, Device, Tensor};
use ditto_models::bert::{Bert, Dense, Embeddings, Head, Layer, Norm};

use crate::params::Params;
use crate::student::{Mode, Trace};
use crate::{DistillError, fixed};

/// BERT with candle parameters under their Hugging Face names (no `bert.` prefix).
#[derive(Clone, Debug)]
pub struct CandleBert {
    /// Config (its `architectures` and `id2label` describe the head).
    pub cfg: ditto_models::config::BertConfig,
    /// Parameters.
    pub params: Params,
}

const DENSES: [&str; 6] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

impl CandleBert {
    /// From a loaded model with a classification head.
    pub fn from_model(m: &Bert, dtype: DType, dev: &Device) -> Result<Self, DistillError> {
        let c = &m.cfg;
        let h = c.hidden_size;
        let head = m.head.as_ref().ok_or(ditto_models::ModelError::NoHead)?;
        let mut all: Vec<(String, &[f32], Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight".into(), &m.emb.word, vec![c.vocab_size, h]),
            (
                "embeddings.position_embeddings.weight".into(),
                &m.emb.position,
                vec![c.max_position_embeddings, h],
            ),
            ("embeddings.token_type_embeddings.weight".into(), &m.emb.token_type, vec![c.type_vocab_size, h]),
        ];
        let mut denses: Vec<(String, &Dense)> = Vec::new();
        for (l, layer) in m.layers.iter().enumerate() {
            for (s, d) in DENSES.iter().zip([&layer.q, &layer.k, &layer.v, &layer.o, &layer.up, &layer.down])
            {
                denses.push((format!("encoder.layer.{l}.{s}"), d));
            }
        }
        denses.push(("pooler.dense".into(), &head.pooler));
        denses.push(("classifier".into(), &head.classifier));
        for (n, d) in denses {
            all.push((format!("{n}.weight"), &d.w, vec![d.dout, d.din]));
            all.push((format!("{n}.bias"), &d.b, vec![d.dout]));
        }
        let mut norms: Vec<(String, &Norm)> = vec![("embeddings.LayerNorm".into(), &m.emb.norm)];
        for (l, layer) in m.layers.iter().enumerate() {
            norms.push((format!("encoder.layer.{l}.attention.output.LayerNorm"), &layer.norm1));
            norms.push((format!("encoder.layer.{l}.output.LayerNorm"), &layer.norm2));
        }
        for (n, v) in norms {
            all.push((format!("{n}.weight"), &v.g, vec![h]));
            all.push((format!("{n}.bias"), &v.b, vec![h]));
        }
        Ok(CandleBert { cfg: c.clone(), params: Params::from_f32(all, dtype, dev)? })
    }

    /// Back to the f32 model of `ditto-models`.
    pub fn to_model(&self) -> Result<Bert, DistillError> {
        let p = &self.params;
        let dense = |n: &str| -> Result<Dense, DistillError> {
            let (dout, din) = p.get(&format!("{n}.weight"))?.dims2()?;
            Ok(Dense {
                w: p.f32_data(&format!("{n}.weight"))?,
                b: p.f32_data(&format!("{n}.bias"))?,
                din,
                dout,
            })
        };
        let norm = |n: &str| -> Result<Norm, DistillError> {
            Ok(Norm { g: p.f32_data(&format!("{n}.weight"))?, b: p.f32_data(&format!("{n}.bias"))? })
        };
        let layers = (0..self.cfg.num_hidden_layers)
            .map(|l| {
                let n = |s: &str| format!("encoder.layer.{l}.{s}");
                Ok(Layer {
                    q: dense(&n(DENSES[0]))?,
                    k: dense(&n(DENSES[1]))?,
                    v: dense(&n(DENSES[2]))?,
                    o: dense(&n(DENSES[3]))?,
                    norm1: norm(&n("attention.output.LayerNorm"))?,
                    up: dense(&n(DENSES[4]))?,
                    down: dense(&n(DENSES[5]))?,
                    norm2: norm(&n("output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, DistillError>>()?;
        Ok(Bert {
            cfg: self.cfg.clone(),
            emb: Embeddings {
                word: p.f32_data("embeddings.word_embeddings.weight")?,
                position: p.f32_data("embeddings.position_embeddings.weight")?,
                token_type: p.f32_data("embeddings.token_type_embeddings.weight")?,
                norm: norm("embeddings.LayerNorm")?,
            },
            layers,
            head: Some(Head { pooler: dense("pooler.dense")?, classifier: dense("classifier")? }),
        })
    }

    fn linear(&self, mode: &Mode, x: &Tensor, name: &str, frac_name: &str) -> Result<Tensor, DistillError> {
        let w = self.params.get(&format!("{name}.weight"))?.t()?;
        let b = self.params.get(&format!("{name}.bias"))?;
        mode.linear(x, &w, b, frac_name)
    }

    fn norm(&self, mode: &Mode, x: &Tensor, name: &str) -> Result<Tensor, DistillError> {
        let g = self.params.get(&format!("{name}.weight"))?;
        let b = self.params.get(&format!("{name}.bias"))?;
        mode.layernorm(x, g, b, self.cfg.layer_norm_eps)
    }

    /// Classification logits [batch, labels] for token ids [batch, positions] whose real
    /// lengths are `lengths` (the rest padding), with the hidden states after the embeddings
    /// and every layer and every layer's scaled scores (padded keys zero) when `trace` is set.
    pub fn forward(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        mode: &Mode,
        trace: bool,
    ) -> Result<(Tensor, Trace), DistillError> {
        let c = &self.cfg;
        let (b, t) = ids.dims2()?;
        let (h, heads) = (c.hidden_size, c.num_attention_heads);
        if t > c.max_position_embeddings || lengths.len() != b || lengths.iter().any(|&n| n == 0 || n > t) {
            return Err(DistillError::Data(format!("batch {b} x {t} with lengths {lengths:?}")));
        }
        let wf = mode.weight_frac();
        let word = mode.weight(self.params.get("embeddings.word_embeddings.weight")?, wf)?;
        let pos = mode.weight(self.params.get("embeddings.position_embeddings.weight")?, wf)?;
        let typ = mode.weight(self.params.get("embeddings.token_type_embeddings.weight")?, wf)?;
        let x = word.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, h))?;
        let x = x.broadcast_add(&pos.narrow(0, 0, t)?)?.broadcast_add(&typ.narrow(0, 0, 1)?)?;
        let dev = x.device().clone();
        let keep: Vec<f32> =
            lengths.iter().flat_map(|&n| (0..t).map(move |j| if j < n { 1.0 } else { 0.0 })).collect();
        let keep = Tensor::from_vec(keep, (b, 1, 1, t), &dev)?.to_dtype(x.dtype())?;
        let mut x = self.norm(mode, &x, "embeddings.LayerNorm")?;
        let mut tr = Trace::default();
        if trace {
            tr.hidden.push(x.clone());
        }
        for l in 0..c.num_hidden_layers {
            let n = |s: &str| format!("encoder.layer.{l}.{s}");
            let qkv_frac = n("attention.self");
            let split = |y: Tensor| -> Result<Tensor, DistillError> {
                Ok(y.reshape((b, t, heads, h / heads))?.transpose(1, 2)?.contiguous()?)
            };
            let q = split(self.linear(mode, &x, &n(DENSES[0]), &qkv_frac)?)?;
            let k = split(self.linear(mode, &x, &n(DENSES[1]), &qkv_frac)?)?;
            let v = split(self.linear(mode, &x, &n(DENSES[2]), &qkv_frac)?)?;
            let s = mode.scale_scores(&q.matmul(&k.t()?.contiguous()?)?, h / heads)?;
            if trace {
                tr.scores.push(s.broadcast_mul(&keep)?);
            }
            let p = mode.softmax(&s, Some(&keep))?;
            let ctx = mode.act(&p.matmul(&v)?)?.transpose(1, 2)?.reshape((b, t, h))?;
            let a = self.linear(mode, &ctx, &n(DENSES[3]), &n(DENSES[3]))?;
            let x1 = self.norm(mode, &(x + a)?, &n("attention.output.LayerNorm"))?;
            let u = self.linear(mode, &x1, &n(DENSES[4]), &n(DENSES[4]))?;
            let g = mode.gelu(&u, &c.hidden_act)?;
            let d = self.linear(mode, &g, &n(DENSES[5]), &n(DENSES[5]))?;
            x = self.norm(mode, &(x1 + d)?, &n("output.LayerNorm"))?;
            if trace {
                tr.hidden.push(x.clone());
            }
        }
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        let p = self.linear(mode, &cls, "pooler.dense", "pooler.dense")?;
        let t = tanh(mode, &p)?;
        Ok((self.linear(mode, &t, "classifier", "classifier")?, tr))
    }
}

/// tanh: the float function, or the engine's `tanh` at the non-linear bits (downcast).
fn tanh(mode: &Mode, x: &Tensor) -> Result<Tensor, DistillError> {
    let float = x.tanh()?;
    match mode {
        Mode::Float => Ok(float),
        Mode::Fixed(q) => {
            let f = q.nl_frac;
            let x0 = x.detach();
            let s = x0.ge(0.0)?.to_dtype(x0.dtype())?.affine(2.0, -1.0)?;
            let a = (&x0 * &s)?;
            let e = fixed::exp_neg(&a.affine(-2.0, 0.0)?, q.exp_iters, f)?;
            let r = fixed::reciprocal(&e.affine(1.0, fixed::fxr(1.0, f))?, 0, 2, f)?;
            let th = (r.affine(2.0, fixed::fxr(-1.0, f))? * s)?;
            Ok(fixed::ste(&float, &fixed::rnd(&th, q.act_frac)?)?)
        }
    }
}

/// Mean cross-entropy of logits [batch, labels] against labels.
pub fn class_loss(logits: &Tensor, labels: &[u32]) -> Result<Tensor, DistillError> {
    let y = Tensor::from_slice(labels, labels.len(), logits.device())?;
    Ok(candle_nn::loss::cross_entropy(logits, &y)?)
}

/// Stage 2 with gold labels: `(1 - w)` times the soft cross-entropy against the teacher's
/// logits over every row, plus `w` times the cross-entropy of the first `labels.len()` rows
/// (the sentences whose labels are known) against `labels`.
pub fn labelled_stage2_loss(
    student: &Tensor,
    teacher: &Tensor,
    labels: &[u32],
    w: f64,
) -> Result<Tensor, DistillError> {
    let soft = crate::train::stage2_loss(student, teacher)?;
    if labels.is_empty() || w == 0.0 {
        return Ok(soft);
    }
    let hard = class_loss(&student.narrow(0, 0, labels.len())?, labels)?;
    Ok(((soft * (1.0 - w))? + (hard * w)?)?)
}

/// Index of the largest logit per row.
pub fn predictions(logits: &Tensor) -> Result<Vec<u32>, DistillError> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}

impl CandleBert {
    /// The student's parameters as its fixed-point model holds them ([`Params::fixed_point`]).
    pub fn fixed_point_tensors(
        &self,
        q: &ditto_models::quant::QuantConfig,
    ) -> Result<std::collections::BTreeMap<String, Tensor>, DistillError> {
        self.params.fixed_point(|name| {
            let layer = name.rsplit_once('.').map_or(name, |(l, _)| l);
            // Q, K and V share the scale of `encoder.layer.N.attention.self`.
            let layer = layer
                .strip_suffix(".query")
                .or(layer.strip_suffix(".key"))
                .or(layer.strip_suffix(".value"))
                .unwrap_or(layer);
            if name.contains("LayerNorm") {
                q.nl_frac
            } else if name.starts_with("embeddings.") {
                q.weight_frac
            } else if name.ends_with(".bias") {
                q.weight_frac_of(layer) + q.act_frac
            } else {
                q.weight_frac_of(layer)
            }
        })
    }
}
