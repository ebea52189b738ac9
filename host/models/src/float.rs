//! f32 building blocks of the float reference models.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // f64 accumulators back to f32

/// y (n x out) = x (n x in) W^T + b, W stored [out, in] as in Hugging Face `nn.Linear`.
pub fn linear(x: &[f32], n: usize, w: &[f32], b: &[f32], din: usize, dout: usize) -> Vec<f32> {
    let mut y = vec![0f32; n * dout];
    for i in 0..n {
        let xi = &x[i * din..(i + 1) * din];
        for o in 0..dout {
            let wo = &w[o * din..(o + 1) * din];
            y[i * dout + o] = b[o] + xi.iter().zip(wo).map(|(a, c)| a * c).sum::<f32>();
        }
    }
    y
}

/// y (n x out) = x (n x in) W + b, W stored [in, out] (GPT-2's Conv1D).
pub fn conv1d(x: &[f32], n: usize, w: &[f32], b: &[f32], din: usize, dout: usize) -> Vec<f32> {
    let mut y = vec![0f32; n * dout];
    for i in 0..n {
        let yi = &mut y[i * dout..(i + 1) * dout];
        yi.copy_from_slice(b);
        for k in 0..din {
            let a = x[i * din + k];
            for (o, wv) in yi.iter_mut().zip(&w[k * dout..(k + 1) * dout]) {
                *o += a * wv;
            }
        }
    }
    y
}

/// Row-wise LayerNorm with affine parameters.
pub fn layernorm(x: &mut [f32], h: usize, g: &[f32], b: &[f32], eps: f64) {
    for row in x.chunks_mut(h) {
        let mean = row.iter().map(|v| f64::from(*v)).sum::<f64>() / h as f64;
        let var = row.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum::<f64>() / h as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for (j, v) in row.iter_mut().enumerate() {
            *v = ((f64::from(*v) - mean) * inv) as f32 * g[j] + b[j];
        }
    }
}

/// Exact GeLU, x Phi(x).
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2))
}

/// GPT-2's tanh GeLU ("gelu_new").
pub fn gelu_new(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
}

/// Row-wise softmax over `cols`, entries where `keep` is false get 0.
pub fn softmax(x: &mut [f32], cols: usize, keep: impl Fn(usize, usize) -> bool) {
    for (r, row) in x.chunks_mut(cols).enumerate() {
        let mx =
            row.iter().enumerate().filter(|(c, _)| keep(r, *c)).map(|(_, v)| *v).fold(f32::MIN, f32::max);
        let mut sum = 0f32;
        for (c, v) in row.iter_mut().enumerate() {
            *v = if keep(r, c) { (*v - mx).exp() } else { 0.0 };
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// Multi-head attention of q, k, v (n x h each, heads of size h / heads), optionally causal.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
    h: usize,
    heads: usize,
    causal: bool,
) -> Vec<f32> {
    attention_past(q, k, v, n, 0, h, heads, causal)
}

/// Attention of n new queries (positions past..past+n) over past + n keys and values
/// ((past + n) x h each); causal: query i sees keys 0..=past+i.
#[allow(clippy::too_many_arguments)]
pub fn attention_past(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
    past: usize,
    h: usize,
    heads: usize,
    causal: bool,
) -> Vec<f32> {
    let (dh, t) = (h / heads, past + n);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut out = vec![0f32; n * h];
    for hd in 0..heads {
        let mut s = vec![0f32; n * t];
        for i in 0..n {
            for j in 0..t {
                s[i * t + j] =
                    (0..dh).map(|d| q[i * h + hd * dh + d] * k[j * h + hd * dh + d]).sum::<f32>() * scale;
            }
        }
        softmax(&mut s, t, |i, j| !causal || j <= past + i);
        for i in 0..n {
            for d in 0..dh {
                out[i * h + hd * dh + d] = (0..t).map(|j| s[i * t + j] * v[j * h + hd * dh + d]).sum();
            }
        }
    }
    out
}
