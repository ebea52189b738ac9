//! The transformer blocks every architecture is built from, on the MPC engine (one program for
//! the secure run, the plaintext fixed-point reference and the planner): linear layers,
//! ring conversions, LayerNorm, GeLU, multi-head attention and the head split and merge.
//!
//! Rings and scales follow the [`QuantConfig`]: linear layers in Z_2^32 (activations with
//! `act_frac`, weights and biases with `weight_frac`, one truncation after each product);
//! attention scores are upcast to Z_2^64 for softmax; LayerNorm (and the PUMA GeLU) run in
//! Z_2^64 with `nl_frac` between an upcast and a downcast.

use ditto_core::Ring;
use ditto_core::plan::{GeluApprox, Tag};
use ditto_mpc::ops::arith::Weight;
use ditto_mpc::{Engine, MpcError, Shared};

use crate::ModelError;
use crate::quant::{Gelu, QuantConfig};
use crate::sharing::Source;

/// A dense layer: W [in, out] (a [`Weight`] after setup) and its bias [out].
#[derive(Clone)]
pub struct Dense<W> {
    pub(crate) w: W,
    pub(crate) b: Shared<u32>,
}

impl<W> Dense<W> {
    /// `{name}.weight` [din, dout] at the weight scale of linear layer `key` (see
    /// [`QuantConfig::weight_frac_of`]) and `{name}.bias` [dout] at that scale plus `act_frac`.
    pub(crate) fn build<S: Source<W = W>>(
        s: &mut S,
        q: &QuantConfig,
        (key, name): (&str, &str),
        din: usize,
        dout: usize,
    ) -> Result<Self, MpcError> {
        let wf = q.weight_frac_of(key);
        Ok(Dense {
            w: s.weight(&format!("{name}.weight"), [din, dout], wf)?,
            b: s.u32(&format!("{name}.bias"), &[dout], wf + q.act_frac)?,
        })
    }
}

/// A LayerNorm's gain and bias (Z_2^64 at `nl_frac`).
#[derive(Clone)]
pub struct Norm64 {
    pub(crate) g: Shared<u64>,
    pub(crate) b: Shared<u64>,
}

impl Norm64 {
    /// `{name}.weight` and `{name}.bias`, [h] each.
    pub(crate) fn build<S: Source>(
        s: &mut S,
        q: &QuantConfig,
        name: &str,
        h: usize,
    ) -> Result<Self, MpcError> {
        Ok(Norm64 {
            g: s.u64(&format!("{name}.weight"), &[h], q.nl_frac)?,
            b: s.u64(&format!("{name}.bias"), &[h], q.nl_frac)?,
        })
    }
}

/// x W + b, truncated back to the activation scale.
pub(crate) async fn linear(
    e: &mut Engine,
    x: &Shared<u32>,
    d: &Dense<Weight<u32>>,
) -> Result<Shared<u32>, MpcError> {
    let y = linear_pre(e, x, d).await?;
    e.trunc_a(&y, d.w.frac).await
}

/// x W + b before its truncation (scale act + weight, truncated by the weight's `frac`),
/// for a caller that fuses the truncation. When x is the output of the truncate-then-downcast just before (a LayerNorm's), the
/// product opens nothing ([`Engine::matmul_after_down`]).
pub(crate) async fn linear_pre(
    e: &mut Engine,
    x: &Shared<u32>,
    d: &Dense<Weight<u32>>,
) -> Result<Shared<u32>, MpcError> {
    e.set_tag(Tag::Linear);
    let y = matmul(e, x, &d.w).await?;
    let (n, m) = (y.shape[0], y.shape[1]);
    let bias =
        Shared { data: (0..n * m).map(|i| d.b.data[i % m]).collect(), shape: vec![n, m], frac: d.b.frac };
    e.add(&y, &bias)
}

/// x W, without an opening when x is the output of the truncate-then-downcast just before.
pub(crate) async fn matmul(
    e: &mut Engine,
    x: &Shared<u32>,
    w: &Weight<u32>,
) -> Result<Shared<u32>, MpcError> {
    if e.follows_downcast(x) { e.matmul_after_down(x, w).await } else { e.matmul_fixed(x, w).await }
}

/// Upcast to Z_2^64 and bring to `nl_frac` (shift up, or truncate when x has more bits).
pub(crate) async fn up64(e: &mut Engine, q: &QuantConfig, x: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
    let x64 = upcast(e, x).await?;
    to_nl(e, q, &x64).await
}

/// The residual sum x + a / 2^k in Z_2^64 at `act_frac`, for x in Z_2^32 at `act_frac` and a
/// linear layer's output a before its truncation (at `act_frac` + k): one round, the
/// truncation and the upcast together (`Engine::upcast_trunc` of a + x 2^k, since
/// round((a + x 2^k) / 2^k) = round(a / 2^k) + x). Its Z_2^32 shares ([`low32`]) are the sum
/// the two steps apart would give.
pub(crate) async fn residual64(
    e: &mut Engine,
    x: &Shared<u32>,
    a: &Shared<u32>,
    k: u32,
) -> Result<Shared<u64>, MpcError> {
    let sum = e.add(a, &e.rescale_up(x, k))?;
    e.set_tag(Tag::Conversion);
    e.upcast_trunc(&sum, 1, 0, k).await
}

/// Z_2^32 shares of a Z_2^64 tensor whose values fit: each party reduces its share.
pub(crate) fn low32(x: &Shared<u64>) -> Shared<u32> {
    let data = x.data.iter().map(|v| ditto_core::ring::reduce::<u64, u32>(*v)).collect();
    Shared { data, shape: x.shape.clone(), frac: x.frac }
}

/// A Z_2^64 tensor at `act_frac` brought to `nl_frac` (a local shift up, or a truncation).
pub(crate) async fn to_nl(
    e: &mut Engine,
    q: &QuantConfig,
    x64: &Shared<u64>,
) -> Result<Shared<u64>, MpcError> {
    let nl = q.nl_frac;
    if nl >= x64.frac { Ok(e.rescale_up(x64, nl - x64.frac)) } else { e.trunc_a(x64, x64.frac - nl).await }
}

/// LayerNorm of a Z_2^32 tensor: upcast, rescale, normalise in Z_2^64.
pub(crate) async fn norm64(
    e: &mut Engine,
    q: &QuantConfig,
    x: &Shared<u32>,
    n: &Norm64,
    eps: f64,
) -> Result<Shared<u64>, MpcError> {
    let x64 = upcast(e, x).await?;
    norm64_of(e, q, &x64, n, eps).await
}

/// The upcast of x to Z_2^64 (same scale), tagged as a conversion.
async fn upcast(e: &mut Engine, x: &Shared<u32>) -> Result<Shared<u64>, MpcError> {
    e.set_tag(Tag::Conversion);
    e.upcast_a(x).await
}

/// [`norm64`] of a residual sum already in Z_2^64 at `act_frac` ([`residual64`]).
pub(crate) async fn norm64_of(
    e: &mut Engine,
    q: &QuantConfig,
    x64: &Shared<u64>,
    n: &Norm64,
    eps: f64,
) -> Result<Shared<u64>, MpcError> {
    let x64 = to_nl(e, q, x64).await?;
    e.set_tag(Tag::LayerNorm);
    e.layernorm(&x64, &n.g, &n.b, eps, q.ln_octaves).await
}

/// Downcast from Z_2^64 at `nl_frac` to Z_2^32 at `act_frac`.
pub(crate) async fn down(e: &mut Engine, q: &QuantConfig, x: &Shared<u64>) -> Result<Shared<u32>, MpcError> {
    e.set_tag(Tag::Conversion);
    e.downcast_a(x, q.nl_frac - q.act_frac).await
}

/// [`norm64`] then [`down`]: a LayerNorm whose output feeds a linear layer; its last
/// truncation and the downcast share one round.
pub(crate) async fn norm(
    e: &mut Engine,
    q: &QuantConfig,
    x: &Shared<u32>,
    n: &Norm64,
    eps: f64,
) -> Result<Shared<u32>, MpcError> {
    let x64 = upcast(e, x).await?;
    norm_of(e, q, &x64, n, eps).await
}

/// [`norm`] of a residual sum already in Z_2^64 at `act_frac` ([`residual64`]).
pub(crate) async fn norm_of(
    e: &mut Engine,
    q: &QuantConfig,
    x64: &Shared<u64>,
    n: &Norm64,
    eps: f64,
) -> Result<Shared<u32>, MpcError> {
    let x64 = to_nl(e, q, x64).await?;
    e.set_tag(Tag::LayerNorm);
    let (pre, k) = e.layernorm_pre(&x64, &n.g, &n.b, eps, q.ln_octaves).await?;
    down_from(e, q, &pre, k).await
}

/// Whether [`down_from`] by `k` is one truncate-then-downcast (k + nl - act <= 32).
pub(crate) fn down_fuses(q: &QuantConfig, k: u32) -> bool {
    k + (q.nl_frac - q.act_frac) <= ditto_core::chain::MAX_TRUNC_DOWN
}

/// [`down`] of `x / 2^k` (x at `nl_frac + k`): one round when [`down_fuses`].
pub(crate) async fn down_from(
    e: &mut Engine,
    q: &QuantConfig,
    x: &Shared<u64>,
    k: u32,
) -> Result<Shared<u32>, MpcError> {
    e.set_tag(Tag::Conversion);
    if down_fuses(q, k) {
        return e.trunc_downcast(x, k, q.nl_frac - q.act_frac).await;
    }
    let t = e.trunc_a(x, k).await?;
    down(e, q, &t).await
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

/// The feed-forward block down(gelu(up(x))) before the down-projection's truncation (by its
/// weight's `frac`), which the residual sum takes ([`residual64`]).
pub(crate) async fn mlp_pre(
    e: &mut Engine,
    q: &QuantConfig,
    x: &Shared<u32>,
    (up, down): (&Dense<Weight<u32>>, &Dense<Weight<u32>>),
) -> Result<Shared<u32>, MpcError> {
    let g = match q.gelu {
        // The up-projection's truncation carries the Quad GeLU's square, and its last
        // truncation ends in a downcast, so the down-projection opens nothing.
        Gelu::Quad => {
            let u = linear_pre(e, x, up).await?;
            e.set_tag(Tag::Gelu(GeluApprox::Quad));
            e.gelu_quad_down(&u, up.w.frac).await?
        }
        Gelu::Poly => {
            let u = linear(e, x, up).await?;
            gelu(e, q, &u).await?
        }
    };
    linear_pre(e, &g, down).await
}

/// A key's score penalty for padding (Z_2^32, raw): 2^28 at the scores' 2 act_frac bits is 4096
/// (512 after 1/sqrt(dh) for dh = 64), far below the exp's clamp at -14 from any row's max, and
/// a real score minus it stays inside the upcast's |s| < 2^30 for |s| < 3 * 2^28.
pub const PAD_PENALTY: u32 = 1 << 28;

/// The secret row mask of a shared one-hot input (n x vocab): its row sums, 1 for a real token
/// and 0 for a padding row (all zero), scale 0; local.
pub(crate) fn row_mask(onehot: &Shared<u32>) -> Shared<u32> {
    // Rows of a batch (B x n x vocab) one input after the other.
    let v = onehot.shape.last().copied().unwrap_or(1).max(1);
    let n = onehot.len() / v;
    let m = (0..n)
        .map(|i| onehot.data[i * v..(i + 1) * v].iter().fold(0u32, |a, x| a.wrapping_add(*x)))
        .collect();
    Shared { data: m, shape: vec![n], frac: 0 }
}

/// The per-key penalties PAD_PENALTY (1 - m_j) for the row mask m of [`row_mask`], local.
pub(crate) fn pad_penalties(e: &Engine, onehot: &Shared<u32>) -> Shared<u32> {
    let one_minus = e.add_const(&e.neg(&row_mask(onehot)), 1);
    e.mul_const(&one_minus, PAD_PENALTY, 0)
}

/// Multi-head attention of new queries (n) over keys and values (t), scores in Z_2^64, for
/// `batch` inputs at once (their rows one input after the other: queries [batch n, h], keys and
/// values [batch t, h]; each input's queries see its own keys only).
/// `keep[r * t + j]`, when given, says whether query row r (over all heads) sees key j (a
/// public mask); `pad[b t + j]`, when given, is subtracted from every score of input b's key j
/// (a secret mask, [`pad_penalties`]: padded keys get exp 0, exactly as if they were not there).
pub(crate) async fn attention(
    e: &mut Engine,
    q: &QuantConfig,
    (qm, km, vm): (&Shared<u32>, &Shared<u32>, &Shared<u32>),
    (batch, heads_n): (usize, usize),
    (keep, pad): (Option<&[bool]>, Option<&Shared<u32>>),
) -> Result<Shared<u32>, MpcError> {
    let b = batch.max(1);
    let (n, t, h) = (qm.shape[0] / b, km.shape[0] / b, qm.shape[1]);
    if n * b != qm.shape[0] || t * b != km.shape[0] {
        return Err(MpcError::Shape {
            what: "batched attention",
            expected: vec![b * n, b * t],
            got: vec![qm.shape[0], km.shape[0]],
        });
    }
    let inv_sqrt = fx64(1.0 / ((h / heads_n) as f64).sqrt(), q.nl_frac)?;
    e.set_tag(Tag::Attention);
    // When the softmax ends in a truncate-then-downcast (its shift is nl_frac), P V opens
    // nothing: V - B travels beside Q K^T and the steps after it.
    let vh = heads(vm, b, heads_n, false);
    let v_open = if down_fuses(q, q.nl_frac) { Some(e.open_beside(&vh).await?) } else { None };
    let s = e.matmul_aa(&heads(qm, b, heads_n, false), &heads(km, b, heads_n, true)).await?;
    let s = match pad {
        Some(p) if p.len() == b * t => {
            // Input i's penalties under each of its heads' n query rows.
            let data = p.data.chunks(t).flat_map(|pi| pi.repeat(heads_n * n)).collect();
            e.sub(&s, &Shared { data, shape: s.shape.clone(), frac: s.frac })?
        }
        Some(p) => {
            return Err(MpcError::Shape { what: "key padding", expected: vec![b * t], got: p.shape.clone() });
        }
        None => s,
    };
    let softmax_tag = Tag::Softmax { exp_iters: u8::try_from(q.exp_iters).unwrap_or(u8::MAX) };
    // The upcast admits |score| 2^(2 act) < 2^30, so after the 1/sqrt(dh) scaling at nl_frac bits
    // any two scores differ by less than 2^(31 - 2 act + nl) / sqrt(dh) + 2, below 2^31 when
    // 2^(nl - 2 act + 1) <= sqrt(dh) (Ditto's 18 / 8 bits and dh = 64; accurate mode too): then
    // the softmax's comparisons run on 32 bits.
    let dh = (h / heads_n) as f64;
    let narrow = f64::from(q.nl_frac + 1) - f64::from(2 * q.act_frac) <= dh.log2() / 2.0;
    let (p, k) = if q.nl_frac >= s.frac {
        // Upcast, rescale to nl_frac and 1/sqrt(dh), truncate: one round, which the max's first
        // level shares.
        let up = q.nl_frac - s.frac;
        let scale = (inv_sqrt << up, q.nl_frac + up, q.nl_frac);
        let s = s.reshape(&[b * heads_n * n, t])?;
        e.softmax_pre_upcast(&s, scale, keep, q.exp_iters, (narrow, (Tag::Conversion, softmax_tag))).await?
    } else {
        let s64 = up64(e, q, &s).await?;
        e.set_tag(softmax_tag);
        let scaled = e.mul_const(&s64, inv_sqrt, q.nl_frac);
        let s64 = e.trunc_a(&scaled, q.nl_frac).await?;
        e.softmax_pre(&s64.reshape(&[b * heads_n * n, t])?, keep, q.exp_iters, narrow).await?
    };
    if v_open.is_some() != down_fuses(q, k) {
        return Err(MpcError::Scale {
            what: "attention",
            detail: format!("softmax shift {k}, nl_frac {}", q.nl_frac),
        });
    }
    let p = down_from(e, q, &p, k).await?.reshape(&[b * heads_n, n, t])?;
    e.set_tag(Tag::Attention);
    let ctx = match v_open {
        Some(o) => e.matmul_aa_after_down(&p, &vh, o).await?,
        None => e.matmul_aa(&p, &vh).await?,
    };
    let ctx = e.trunc_a(&ctx, q.act_frac).await?;
    Ok(merge(&ctx, b))
}

/// Columns c0..c1 of a matrix (the Q, K and V parts of a fused projection).
pub(crate) fn cols<R: Ring>(x: &Shared<R>, c0: usize, c1: usize) -> Shared<R> {
    let (n, m) = (x.shape[0], x.shape[1]);
    let mut d = Vec::with_capacity(n * (c1 - c0));
    for i in 0..n {
        d.extend_from_slice(&x.data[i * m + c0..i * m + c1]);
    }
    Shared { data: d, shape: vec![n, c1 - c0], frac: x.frac }
}

/// The Q, K and V thirds of a fused [n, 3h] projection.
pub(crate) fn qkv<R: Ring>(y: &Shared<R>) -> (Shared<R>, Shared<R>, Shared<R>) {
    let h = y.shape[1] / 3;
    (cols(y, 0, h), cols(y, h, 2 * h), cols(y, 2 * h, 3 * h))
}

/// [B n, H*dh] -> [B H, n, dh] (or its transpose per head, [B H, dh, n]): input b's head hd
/// is matrix b H + hd.
pub(crate) fn heads<R: Ring>(x: &Shared<R>, batch: usize, h: usize, transpose: bool) -> Shared<R> {
    let (rows, m) = (x.shape[0], x.shape[1]);
    let (n, dh) = (rows / batch, m / h);
    let mut d = vec![R::ZERO; rows * m];
    for b in 0..batch {
        for hd in 0..h {
            let base = (b * h + hd) * n * dh;
            for i in 0..n {
                for k in 0..dh {
                    let v = x.data[(b * n + i) * m + hd * dh + k];
                    d[base + if transpose { k * n + i } else { i * dh + k }] = v;
                }
            }
        }
    }
    let shape = if transpose { vec![batch * h, dh, n] } else { vec![batch * h, n, dh] };
    Shared { data: d, shape, frac: x.frac }
}

/// [B H, n, dh] -> [B n, H*dh], the inverse of [`heads`].
pub(crate) fn merge<R: Ring>(x: &Shared<R>, batch: usize) -> Shared<R> {
    let (bh, n, dh) = (x.shape[0], x.shape[1], x.shape[2]);
    let h = bh / batch;
    let mut d = vec![R::ZERO; bh * n * dh];
    for b in 0..batch {
        for hd in 0..h {
            for i in 0..n {
                for k in 0..dh {
                    d[(b * n + i) * h * dh + hd * dh + k] = x.data[((b * h + hd) * n + i) * dh + k];
                }
            }
        }
    }
    Shared { data: d, shape: vec![batch * n, h * dh], frac: x.frac }
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

/// A tracing span per model layer that records, when the layer ends, its wall time and the
/// bytes and rounds this party spent in it (shown with `RUST_LOG=ditto=info`).
pub(crate) struct LayerSpan {
    span: tracing::Span,
    start: std::time::Instant,
    sent: u64,
    rounds: u32,
}

impl LayerSpan {
    /// Sets the engine's layer index and opens its span.
    pub(crate) fn begin(e: &mut Engine, model: &'static str, index: usize) -> Self {
        e.set_layer(u16::try_from(index).unwrap_or(u16::MAX));
        let c = e.counters().map(ditto_net::counters::Counters::total).unwrap_or_default();
        let role = if e.is_planning() {
            "planner"
        } else if e.is_plaintext() {
            "fixed-point"
        } else if e.party().is_p0() {
            "P0"
        } else {
            "P1"
        };
        let span = tracing::info_span!(
            target: "ditto::layer",
            "layer",
            model,
            role,
            index,
            ms = tracing::field::Empty,
            bytes_sent = tracing::field::Empty,
            rounds = tracing::field::Empty
        );
        LayerSpan { span, start: std::time::Instant::now(), sent: c.sent, rounds: c.rounds }
    }

    pub(crate) fn end(self, e: &Engine) {
        let c = e.counters().map(ditto_net::counters::Counters::total).unwrap_or_default();
        self.span.record("ms", self.start.elapsed().as_secs_f64() * 1e3);
        self.span.record("bytes_sent", c.sent - self.sent);
        self.span.record("rounds", c.rounds - self.rounds);
    }
}
