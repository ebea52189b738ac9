//! Static dyadic quantization settings (DESIGN.md §1, §6): which ring and how many fractional
//! bits each kind of tensor gets, and which approximation each non-linear function uses.

use serde::{Deserialize, Serialize};

/// GeLU approximation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gelu {
    /// 0.125x^2 + 0.25x + 0.5 in Z_2^32 (needs a QAD-trained model).
    Quad,
    /// PUMA's piecewise polynomial in Z_2^64.
    Poly,
}

/// Per-model quantization config (JSON beside the model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantConfig {
    /// Fractional bits of activations in Z_2^32 (linear layers).
    pub act_frac: u32,
    /// Fractional bits of weights and biases of linear layers (Z_2^32).
    pub weight_frac: u32,
    /// Fractional bits in Z_2^64 (softmax, LayerNorm, accurate GeLU).
    pub nl_frac: u32,
    /// GeLU approximation.
    pub gelu: Gelu,
    /// Squarings of the exp limit form.
    pub exp_iters: u32,
    /// LayerNorm: var + eps lies in [2^lo, 2^hi).
    pub ln_octaves: (i32, i32),
}

impl QuantConfig {
    /// Ditto mode (for QAD-distilled models): FXP32_8 linear, FXP64_18 non-linear, Quad GeLU.
    pub fn ditto() -> Self {
        QuantConfig {
            act_frac: 8,
            weight_frac: 8,
            nl_frac: 18,
            gelu: Gelu::Quad,
            exp_iters: 5,
            ln_octaves: (-17, 15),
        }
    }

    /// Accurate mode (default for an unmodified model): activations with 10 and weights with 12
    /// fractional bits in Z_2^32 (so outputs of linear layers must stay below
    /// 2^(30 - 10 - 12) = 256 and attention scores below 2^(30 - 20) = 1024), exp with 8
    /// squarings, PUMA's GeLU in Z_2^64. On all-MiniLM-L6-v2 the fixed-point embedding keeps a
    /// cosine above 0.9995 with the float one (Ditto's 8 / 8 bits and 5 squarings give 0.9987).
    pub fn accurate() -> Self {
        QuantConfig {
            act_frac: 10,
            weight_frac: 12,
            nl_frac: 18,
            gelu: Gelu::Poly,
            exp_iters: 8,
            ln_octaves: (-17, 15),
        }
    }
}
