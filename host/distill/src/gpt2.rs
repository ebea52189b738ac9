//! GPT-2 in candle, as the float teacher and as the fake-quantized Ditto student: one forward
//! over whole sequences (causal mask, batch x positions), the student's values equal to the
//! fixed-point reference of `ditto_models::gpt2::secure` and its gradients those of the float
//! functions it approximates (straight-through).

use candle_core::{D, DType, Device, Tensor};
use ditto_models::config::Gpt2Config;
use ditto_models::gpt2::{Block, Conv1D, Gpt2};

use crate::DistillError;
use crate::params::Params;
use crate::student::{Mode, Trace};

/// GPT-2 with candle parameters under their Hugging Face names.
#[derive(Clone, Debug)]
pub struct CandleGpt2 {
    /// Config.
    pub cfg: Gpt2Config,
    /// Parameters.
    pub params: Params,
}

const CONVS: [&str; 4] = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"];

impl CandleGpt2 {
    /// From a loaded model (names and shapes already checked by `Gpt2::load`).
    pub fn from_model(m: &Gpt2, dtype: DType, dev: &Device) -> Result<Self, DistillError> {
        let (h, v, p) = (m.cfg.n_embd, m.cfg.vocab_size, m.cfg.n_positions);
        let mut items: Vec<(String, &[f32], Vec<usize>)> = vec![
            ("wte.weight".into(), &m.wte, vec![v, h]),
            ("wpe.weight".into(), &m.wpe, vec![p, h]),
            ("ln_f.weight".into(), &m.ln_f.g, vec![h]),
            ("ln_f.bias".into(), &m.ln_f.b, vec![h]),
        ];
        for (i, b) in m.blocks.iter().enumerate() {
            for (s, n) in [("ln_1", &b.ln1), ("ln_2", &b.ln2)] {
                items.push((format!("h.{i}.{s}.weight"), &n.g, vec![h]));
                items.push((format!("h.{i}.{s}.bias"), &n.b, vec![h]));
            }
            for (s, c) in CONVS.iter().zip([&b.attn, &b.proj, &b.fc, &b.fc_proj]) {
                items.push((format!("h.{i}.{s}.weight"), &c.w, vec![c.din, c.dout]));
                items.push((format!("h.{i}.{s}.bias"), &c.b, vec![c.dout]));
            }
        }
        Ok(CandleGpt2 { cfg: m.cfg.clone(), params: Params::from_f32(items, dtype, dev)? })
    }

    /// Back to the f32 model of `ditto-models` (for the secure engine and its references).
    pub fn to_model(&self) -> Result<Gpt2, DistillError> {
        let p = &self.params;
        let norm = |n: &str| -> Result<ditto_models::bert::Norm, DistillError> {
            Ok(ditto_models::bert::Norm {
                g: p.f32_data(&format!("{n}.weight"))?,
                b: p.f32_data(&format!("{n}.bias"))?,
            })
        };
        let conv = |n: &str| -> Result<Conv1D, DistillError> {
            let w = p.get(&format!("{n}.weight"))?;
            let (din, dout) = w.dims2()?;
            Ok(Conv1D {
                w: p.f32_data(&format!("{n}.weight"))?,
                b: p.f32_data(&format!("{n}.bias"))?,
                din,
                dout,
            })
        };
        let blocks = (0..self.cfg.n_layer)
            .map(|i| {
                Ok(Block {
                    ln1: norm(&format!("h.{i}.ln_1"))?,
                    attn: conv(&format!("h.{i}.attn.c_attn"))?,
                    proj: conv(&format!("h.{i}.attn.c_proj"))?,
                    ln2: norm(&format!("h.{i}.ln_2"))?,
                    fc: conv(&format!("h.{i}.mlp.c_fc"))?,
                    fc_proj: conv(&format!("h.{i}.mlp.c_proj"))?,
                })
            })
            .collect::<Result<Vec<_>, DistillError>>()?;
        Ok(Gpt2 {
            cfg: self.cfg.clone(),
            wte: p.f32_data("wte.weight")?,
            wpe: p.f32_data("wpe.weight")?,
            blocks,
            ln_f: norm("ln_f")?,
        })
    }

    /// Logits [batch, positions, vocab] for token ids [batch, positions] (from position 0,
    /// causal), with the hidden states (embedding and every block's output) and the scaled
    /// attention scores of every layer when `trace` is set.
    pub fn forward(&self, ids: &Tensor, mode: &Mode, trace: bool) -> Result<(Tensor, Trace), DistillError> {
        let c = &self.cfg;
        let (b, t) = ids.dims2()?;
        let (h, heads) = (c.n_embd, c.n_head);
        if t > c.n_positions {
            return Err(DistillError::Data(format!("{t} positions, the model has {}", c.n_positions)));
        }
        let wq = mode.weight_frac();
        let wte = mode.weight(self.params.get("wte.weight")?, wq)?;
        let wpe = mode.weight(self.params.get("wpe.weight")?, wq)?;
        let x = wte.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, h))?;
        let x = x.broadcast_add(&wpe.narrow(0, 0, t)?)?;
        let mut x = mode.embedding_scale(&x)?;
        let dev = x.device().clone();
        let keep = Tensor::tril2(t, x.dtype(), &dev)?;
        let mut tr = Trace::default();
        if trace {
            tr.hidden.push(x.clone());
        }
        let eps = c.layer_norm_epsilon;
        for l in 0..c.n_layer {
            let n = |s: &str| format!("h.{l}.{s}");
            let a = mode.layernorm(
                &x,
                self.params.get(&n("ln_1.weight"))?,
                self.params.get(&n("ln_1.bias"))?,
                eps,
            )?;
            let qkv = self.linear(mode, &a, &n("attn.c_attn"))?;
            let split = |i: usize| -> Result<Tensor, DistillError> {
                Ok(qkv
                    .narrow(D::Minus1, i * h, h)?
                    .reshape((b, t, heads, h / heads))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let s = q.matmul(&k.t()?.contiguous()?)?;
            let s = mode.scale_scores(&s, h / heads)?;
            if trace {
                tr.scores.push(s.broadcast_mul(&keep)?);
            }
            let p = mode.softmax(&s, Some(&keep))?;
            let ctx = mode.act(&p.matmul(&v)?)?;
            let ctx = ctx.transpose(1, 2)?.reshape((b, t, h))?;
            x = (x + self.linear(mode, &ctx, &n("attn.c_proj"))?)?;
            let m = mode.layernorm(
                &x,
                self.params.get(&n("ln_2.weight"))?,
                self.params.get(&n("ln_2.bias"))?,
                eps,
            )?;
            let u = self.linear(mode, &m, &n("mlp.c_fc"))?;
            let g = mode.gelu(&u, &c.activation_function)?;
            x = (x + self.linear(mode, &g, &n("mlp.c_proj"))?)?;
            if trace {
                tr.hidden.push(x.clone());
            }
        }
        let f = mode.layernorm(&x, self.params.get("ln_f.weight")?, self.params.get("ln_f.bias")?, eps)?;
        let logits = f.reshape((b * t, h))?.matmul(&wte.t()?)?.reshape((b, t, c.vocab_size))?;
        Ok((logits, tr))
    }

    /// The student's parameters as its fixed-point model holds them ([`Params::fixed_point`]).
    pub fn fixed_point_tensors(
        &self,
        q: &ditto_models::quant::QuantConfig,
    ) -> Result<std::collections::BTreeMap<String, Tensor>, DistillError> {
        self.params.fixed_point(|name| {
            let layer = name.rsplit_once('.').map_or(name, |(l, _)| l);
            if name.contains("ln_") {
                q.nl_frac
            } else if name.ends_with(".bias") {
                q.weight_frac_of(layer) + q.act_frac
            } else if name.starts_with("wte") || name.starts_with("wpe") {
                q.weight_frac
            } else {
                q.weight_frac_of(layer)
            }
        })
    }

    fn linear(&self, mode: &Mode, x: &Tensor, name: &str) -> Result<Tensor, DistillError> {
        let w = self.params.get(&format!("{name}.weight"))?;
        let b = self.params.get(&format!("{name}.bias"))?;
        mode.linear(x, w, b, name)
    }
}
