//! Plans with the shapes of published models, for dealer sizing, benchmarks and tests until
//! the models crate emits each model's exact plan. The step sequence follows DESIGN.md §6
//! (Ditto mode): linear layers in Z_2^32 (f = 8) with a truncation after each product;
//! softmax, LayerNorm in Z_2^64 (f = 18) between an upcast and a downcast; Quad GeLU in
//! Z_2^32; embeddings as one-hot times the shared table.

use std::vec::Vec;

use ditto_core::plan::{GeluApprox, Op, Plan, Scale, Step, Tag};
use ditto_core::ring::RingId::{Z32, Z64};

/// Shape of a Transformer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Layers.
    pub layers: u32,
    /// Hidden size.
    pub hidden: u32,
    /// Attention heads.
    pub heads: u32,
    /// FFN inner size.
    pub ffn: u32,
    /// Vocabulary size.
    pub vocab: u32,
    /// Decoder (causal, tied LM head) rather than encoder.
    pub decoder: bool,
}

/// BERT-base: 12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522.
pub const BERT_BASE: Shape =
    Shape { layers: 12, hidden: 768, heads: 12, ffn: 3072, vocab: 30522, decoder: false };
/// BERT-large: 24 layers, hidden 1024, 16 heads, FFN 4096.
pub const BERT_LARGE: Shape =
    Shape { layers: 24, hidden: 1024, heads: 16, ffn: 4096, vocab: 30522, decoder: false };
/// all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, FFN 1536.
pub const MINILM: Shape =
    Shape { layers: 6, hidden: 384, heads: 12, ffn: 1536, vocab: 30522, decoder: false };
/// BERT-tiny: 2 layers, hidden 128, 2 heads, FFN 512.
pub const BERT_TINY: Shape =
    Shape { layers: 2, hidden: 128, heads: 2, ffn: 512, vocab: 30522, decoder: false };
/// GPT-2 (124M): 12 layers, hidden 768, 12 heads, FFN 3072, vocab 50257.
pub const GPT2: Shape = Shape { layers: 12, hidden: 768, heads: 12, ffn: 3072, vocab: 50257, decoder: true };
/// GPT-2 medium: 24 layers, hidden 1024, 16 heads.
pub const GPT2_MEDIUM: Shape =
    Shape { layers: 24, hidden: 1024, heads: 16, ffn: 4096, vocab: 50257, decoder: true };

/// Looks a shape up by name (bert-tiny, minilm, bert-base, bert-large, gpt2, gpt2-medium).
pub fn by_name(name: &str) -> Option<Shape> {
    Some(match name {
        "bert-tiny" => BERT_TINY,
        "minilm" => MINILM,
        "bert-base" => BERT_BASE,
        "bert-large" => BERT_LARGE,
        "gpt2" => GPT2,
        "gpt2-medium" => GPT2_MEDIUM,
        _ => return None,
    })
}

struct B {
    steps: Vec<Step>,
    layer: u16,
    weight: u32,
}

const LIN: Scale = Scale { frac_in: 16, frac_out: 8 };
const NL: Scale = Scale { frac_in: 18, frac_out: 18 };
const EXP_ITERS: u8 = 5;
const NEWTON: usize = 3;

impl B {
    fn push(&mut self, op: Op, scale: Scale, tag: Tag) {
        self.steps.push(Step { op, scale, tag, layer: self.layer });
    }
    /// X (n x k) W (k x m) then truncation by 8 in Z_2^32.
    fn linear(&mut self, n: u32, k: u32, m: u32, tag: Tag) {
        let weight = self.weight;
        self.weight += 1;
        self.push(Op::MatMulFixed { ring: Z32, n, k, m, weight }, LIN, tag);
        self.push(Op::TruncA { ring: Z32, len: n * m, shift: 8 }, LIN, tag);
    }
    fn mul64(&mut self, len: u32, tag: Tag) {
        self.push(Op::MulAA { ring: Z64, len }, NL, tag);
        self.push(Op::TruncA { ring: Z64, len, shift: 18 }, NL, tag);
    }
    fn square64(&mut self, len: u32, tag: Tag) {
        self.push(Op::SquareA { ring: Z64, len }, NL, tag);
        self.push(Op::TruncA { ring: Z64, len, shift: 18 }, NL, tag);
    }
    fn upcast(&mut self, len: u32) {
        self.push(Op::UpcastA { len }, Scale { frac_in: 8, frac_out: 18 }, Tag::Conversion);
    }
    fn downcast(&mut self, len: u32) {
        self.push(Op::DowncastA { len, shift: 10 }, Scale { frac_in: 18, frac_out: 8 }, Tag::Conversion);
    }
    /// Row-wise max over `rows` rows of `cols` by a tree of comparisons and selections.
    fn max(&mut self, rows: u32, cols: u32, tag: Tag) {
        let mut cnt = cols;
        while cnt > 1 {
            let pairs = rows * (cnt / 2);
            // Score differences fit 31 bits: comparisons on the low 32 bits.
            self.push(Op::SignLowA { len: pairs }, NL, tag);
            self.push(Op::MulAA { ring: Z64, len: pairs }, NL, tag);
            cnt = cnt.div_ceil(2);
        }
    }
    fn softmax(&mut self, rows: u32, cols: u32) {
        let tag = Tag::Softmax { exp_iters: EXP_ITERS };
        let len = rows * cols;
        self.upcast(len);
        self.max(rows, cols, tag);
        // Mask below -14, then exp = (1 + x / 2^5)^(2^5).
        self.push(Op::SignLowA { len }, NL, tag);
        self.push(Op::MulAA { ring: Z64, len }, NL, tag);
        self.push(Op::TruncA { ring: Z64, len, shift: EXP_ITERS }, NL, tag);
        for _ in 0..EXP_ITERS {
            self.square64(len, tag);
        }
        // Reciprocal of the row sums (Newton), then the product.
        for _ in 0..NEWTON {
            self.mul64(rows, tag);
            self.mul64(rows, tag);
        }
        self.mul64(len, tag);
        self.downcast(len);
    }
    fn layernorm(&mut self, n: u32, h: u32) {
        let tag = Tag::LayerNorm;
        let len = n * h;
        self.upcast(len);
        self.square64(len, tag);
        self.push(Op::TruncA { ring: Z64, len: n, shift: 10 }, NL, tag);
        // Bit-length initial guess of rsqrt: comparisons against powers of two.
        self.push(Op::SignA { ring: Z64, len: n * 16 }, NL, tag);
        self.push(Op::MulAA { ring: Z64, len: n * 16 }, NL, tag);
        // Rsqrt: Newton steps, [w^2, z w] batched, then z w^3.
        for _ in 0..NEWTON {
            self.mul64(2 * n, tag);
            self.mul64(n, tag);
        }
        self.mul64(len, tag);
        self.mul64(len, tag);
        self.downcast(len);
    }
    /// One layer over `n` new tokens attending to `ctx` positions.
    fn layer(&mut self, s: &Shape, n: u32, ctx: u32) {
        let (h, heads) = (s.hidden, s.heads);
        let dh = h / heads;
        self.linear(n, h, 3 * h, Tag::Linear);
        self.push(Op::MatMulAA { ring: Z32, batch: heads, n, k: dh, m: ctx }, LIN, Tag::Attention);
        self.softmax(heads * n, ctx);
        self.push(Op::MatMulAA { ring: Z32, batch: heads, n, k: ctx, m: dh }, LIN, Tag::Attention);
        self.push(Op::TruncA { ring: Z32, len: n * h, shift: 8 }, LIN, Tag::Attention);
        self.linear(n, h, h, Tag::Linear);
        self.layernorm(n, h);
        self.linear(n, h, s.ffn, Tag::Linear);
        let g = Tag::Gelu(GeluApprox::Quad);
        self.push(Op::SquareA { ring: Z32, len: n * s.ffn }, LIN, g);
        self.push(Op::TruncA { ring: Z32, len: n * s.ffn, shift: 8 }, LIN, g);
        self.linear(n, s.ffn, h, Tag::Linear);
        self.layernorm(n, h);
    }
    fn pass(&mut self, s: &Shape, n: u32, ctx: u32) {
        self.layer = 0;
        self.weight = 0;
        self.linear(n, s.vocab, s.hidden, Tag::Embedding);
        for l in 0..s.layers {
            self.layer = u16::try_from(l + 1).unwrap_or(u16::MAX);
            self.layer(s, n, ctx);
        }
        self.layer = 0;
        if s.decoder {
            // Tied LM head on the last position.
            self.weight = 0;
            self.linear(1, s.hidden, s.vocab, Tag::Other);
        }
    }
}

/// The plan of one inference over `seq` tokens, plus `generate` generated tokens for a decoder
/// (each attends to all earlier positions; keys and values of earlier tokens are kept).
pub fn plan(name: &str, s: &Shape, seq: u32, generate: u32) -> Result<Plan, ditto_core::Error> {
    let mut b = B { steps: Vec::new(), layer: 0, weight: 0 };
    b.pass(s, seq, seq);
    if s.decoder {
        for t in 0..generate {
            b.pass(s, 1, seq + t + 1);
        }
    }
    Plan::new(&std::format!("{name}/seq{seq}+{generate}/ditto"), b.steps)
}
