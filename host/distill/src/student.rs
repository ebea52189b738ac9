//! The operations a model is built from, in two modes: the float teacher's, and the Ditto
//! student's, whose values are the fixed-point reference's ([`crate::fixed`]) and whose
//! gradients are those of the float functions they approximate (straight-through estimators:
//! weights and activations are quantized in the forward pass and the rounding is invisible to
//! the backward pass; Quad GeLU is the student's own function, its gradient exact).

use candle_core::{D, Tensor};
use ditto_models::quant::{Gelu, QuantConfig};

use crate::DistillError;
use crate::fixed::{self, ste};

/// How a forward pass computes.
#[derive(Clone, Debug)]
pub enum Mode {
    /// The float model (the teacher): exact GeLU, float softmax and LayerNorm.
    Float,
    /// The fake-quantized student under a QuantConfig (Quad GeLU only).
    Fixed(QuantConfig),
}

/// What a forward pass records for stage 1 of the distillation.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The residual stream after the embeddings and after every block.
    pub hidden: Vec<Tensor>,
    /// Every layer's scaled attention scores (masked entries zero).
    pub scores: Vec<Tensor>,
}

const NEG: f64 = -1e9;

impl Mode {
    /// The student's mode, refusing a QuantConfig it cannot emulate.
    pub fn fixed(q: &QuantConfig) -> Result<Self, DistillError> {
        if q.gelu != Gelu::Quad {
            return Err(DistillError::Quant(
                "the student trains Ditto mode (\"gelu\": \"quad\"); accurate mode needs no distillation"
                    .into(),
            ));
        }
        q.check().map_err(DistillError::Quant)?;
        Ok(Mode::Fixed(q.clone()))
    }

    /// Fractional bits of embedding tables (0 in float mode).
    pub fn weight_frac(&self) -> u32 {
        match self {
            Mode::Float => 0,
            Mode::Fixed(q) => q.weight_frac,
        }
    }

    /// A weight as the student sees it: encoded at `f` bits (straight-through).
    pub fn weight(&self, w: &Tensor, f: u32) -> Result<Tensor, DistillError> {
        match self {
            Mode::Float => Ok(w.clone()),
            Mode::Fixed(_) => Ok(ste(w, &fixed::encode(w, f)?)?),
        }
    }

    /// Embedding sums (at the weights' scale) brought to the activations' scale.
    pub fn embedding_scale(&self, x: &Tensor) -> Result<Tensor, DistillError> {
        match self {
            Mode::Fixed(q) if q.weight_frac > q.act_frac => Ok(ste(x, &fixed::rnd(x, q.act_frac)?)?),
            _ => Ok(x.clone()),
        }
    }

    /// An activation truncated to the activations' scale (after a product of activations).
    pub fn act(&self, x: &Tensor) -> Result<Tensor, DistillError> {
        match self {
            Mode::Float => Ok(x.clone()),
            Mode::Fixed(q) => Ok(ste(x, &fixed::rnd(x, q.act_frac)?)?),
        }
    }

    /// x W + b for W [in, out] (layer `name` picks the weights' fractional bits).
    pub fn linear(&self, x: &Tensor, w: &Tensor, b: &Tensor, name: &str) -> Result<Tensor, DistillError> {
        let (din, dout) = w.dims2()?;
        let lead: Vec<usize> = x.dims()[..x.rank() - 1].to_vec();
        let (w, b) = match self {
            Mode::Float => (w.clone(), b.clone()),
            Mode::Fixed(q) => {
                let wf = q.weight_frac_of(name);
                (ste(w, &fixed::encode(w, wf)?)?, ste(b, &fixed::encode(b, wf + q.act_frac)?)?)
            }
        };
        let rows: usize = lead.iter().product();
        let y = x.reshape((rows, din))?.matmul(&w)?.broadcast_add(&b)?;
        let mut shape = lead;
        shape.push(dout);
        self.act(&y.reshape(shape)?)
    }

    /// LayerNorm over the last dimension (the student's result downcast to the activations).
    pub fn layernorm(&self, x: &Tensor, g: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor, DistillError> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let d = x.broadcast_sub(&mean)?;
        let var = d.sqr()?.mean_keepdim(D::Minus1)?;
        let float = |g: &Tensor, b: &Tensor| -> Result<Tensor, candle_core::Error> {
            d.broadcast_div(&var.affine(1.0, eps)?.sqrt()?)?.broadcast_mul(g)?.broadcast_add(b)
        };
        match self {
            Mode::Float => Ok(float(g, b)?),
            Mode::Fixed(q) => {
                let (gq, bq) =
                    (ste(g, &fixed::encode(g, q.nl_frac)?)?, ste(b, &fixed::encode(b, q.nl_frac)?)?);
                let y =
                    fixed::layernorm(&x.detach(), &gq.detach(), &bq.detach(), eps, q.ln_octaves, q.nl_frac)?;
                Ok(ste(&float(&gq, &bq)?, &fixed::rnd(&y, q.act_frac)?)?)
            }
        }
    }

    /// Attention scores Q K^T (at twice the activations' bits) times 1/sqrt(dh), at the
    /// non-linear bits.
    pub fn scale_scores(&self, s: &Tensor, dh: usize) -> Result<Tensor, DistillError> {
        #[allow(clippy::cast_precision_loss)]
        let c = 1.0 / (dh as f64).sqrt();
        let float = s.affine(c, 0.0)?;
        match self {
            Mode::Float => Ok(float),
            Mode::Fixed(q) => {
                let nl = q.nl_frac;
                let s0 = s.detach();
                let s0 = if 2 * q.act_frac > nl { fixed::rnd(&s0, nl)? } else { s0 };
                Ok(ste(&float, &fixed::rnd(&s0.affine(fixed::fxr(c, nl), 0.0)?, nl)?)?)
            }
        }
    }

    /// Row-wise softmax with an optional 0/1 keep mask (the student's result downcast to the
    /// activations).
    pub fn softmax(&self, s: &Tensor, keep: Option<&Tensor>) -> Result<Tensor, DistillError> {
        let masked = match keep {
            Some(k) => {
                let k = k.broadcast_as(s.shape())?.ne(0.0)?;
                k.where_cond(s, &s.ones_like()?.affine(NEG, 0.0)?)?
            }
            None => s.clone(),
        };
        let float = candle_nn::ops::softmax_last_dim(&masked)?;
        match self {
            Mode::Float => Ok(float),
            Mode::Fixed(q) => {
                let p = fixed::softmax(&s.detach(), keep, q.exp_iters, q.nl_frac)?;
                Ok(ste(&float, &fixed::rnd(&p, q.act_frac)?)?)
            }
        }
    }

    /// GeLU: the teacher's (`gelu_new`/`gelu_pytorch_tanh` or the exact `gelu`), the student's Quad.
    pub fn gelu(&self, x: &Tensor, activation: &str) -> Result<Tensor, DistillError> {
        match self {
            Mode::Float if activation == "gelu" => Ok(x.gelu_erf()?),
            Mode::Float => Ok(x.gelu()?),
            Mode::Fixed(q) => {
                Ok(ste(&fixed::gelu_quad_float(x)?, &fixed::gelu_quad(&x.detach(), q.act_frac)?)?)
            }
        }
    }
}
