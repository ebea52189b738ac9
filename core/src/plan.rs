//! Plans: the public, ordered list of correlation-consuming steps of one inference.
//!
//! P0, P1 and the dealer derive the same plan from public data (architecture, sequence length,
//! quantization config). Its hash — SHA-256 over a domain label and the postcard encodings of
//! the header and of every step, each length-prefixed — is compared at connection time.
//! Postcard's encoding is canonical (minimal varints, fixed field order), so the hash is
//! stable across machines and versions of this crate that keep `PLAN_VERSION`.

use serde::{Deserialize, Serialize};

#[cfg(feature = "alloc")]
use crate::Error;
use crate::ring::RingId;

mod cost;
mod hash;

pub use hash::{PlanHasher, plan_hash};

/// Version of the plan format and of the correlation formats it implies.
pub const PLAN_VERSION: u16 = 1;

/// Largest element count of one step (keeps every size computation far from overflow and
/// every per-step buffer addressable on 32-bit targets).
pub const MAX_STEP_ELEMS: u64 = 1 << 28;

/// A correlation-consuming operation with its shapes. Shares in `ring` unless stated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Elementwise product of two shared vectors (Beaver triple).
    MulAA {
        /// Ring of the shares.
        ring: RingId,
        /// Elements.
        len: u32,
    },
    /// Elementwise square (square pair).
    SquareA {
        /// Ring of the shares.
        ring: RingId,
        /// Elements.
        len: u32,
    },
    /// X (n x k) times a model weight W (k x m) with the model-fixed mask B_W.
    MatMulFixed {
        /// Ring of the shares.
        ring: RingId,
        /// Rows of X.
        n: u32,
        /// Inner dimension.
        k: u32,
        /// Columns of W.
        m: u32,
        /// Which weight matrix (selects B_W).
        weight: u32,
    },
    /// `batch` products X_b (n x k) times Y_b (k x m) of two fresh shared tensors.
    MatMulAA {
        /// Ring of the shares.
        ring: RingId,
        /// Independent products (e.g. heads).
        batch: u32,
        /// Rows of X.
        n: u32,
        /// Inner dimension.
        k: u32,
        /// Columns of Y.
        m: u32,
    },
    /// Truncation by `shift` bits (|x| < 2^(l-2)).
    TruncA {
        /// Ring of the shares.
        ring: RingId,
        /// Elements.
        len: u32,
        /// Bits dropped.
        shift: u8,
    },
    /// Upcast Z_2^32 -> Z_2^64 (|x| < 2^30).
    UpcastA {
        /// Elements.
        len: u32,
    },
    /// Downcast Z_2^64 -> Z_2^32 with truncation by `shift` bits (truncate-reduce).
    DowncastA {
        /// Elements.
        len: u32,
        /// Bits dropped.
        shift: u8,
    },
    /// Sign bit (x < 0) as an arithmetic share in the same ring.
    SignA {
        /// Ring of the shares.
        ring: RingId,
        /// Elements.
        len: u32,
    },
    /// Sign bit of Z_2^64 values known to satisfy |x| < 2^31, computed on their low 32 bits
    /// (each party reduces its share locally; the circuit runs in Z_2^32), as a Z_2^64 share:
    /// about half the bytes and one round fewer than `SignA` in Z_2^64.
    SignLowA {
        /// Elements.
        len: u32,
    },
    /// Sign bit (x < 0) by the radix comparison ([`crate::radix`], 4 rounds). The circuit
    /// runs on `ring` (for `ring` narrower than `out`, each party reduces its `out` share: the
    /// values must satisfy |x| < 2^(bits of ring - 1)); the result is a share in `out`. With
    /// `mul`, the result is multiplied by a second operand (in `out`) in the last round.
    SignRadixA {
        /// Ring of the circuit.
        ring: RingId,
        /// Ring of the result (and of the multiplicand).
        out: RingId,
        /// Elements.
        len: u32,
        /// Multiplied by a second operand.
        mul: bool,
    },
    /// Truncation by `shift` bits fused with products of its output ([`crate::fuse`]), one
    /// round: its square, its product with a second operand, the products of its two halves.
    TruncMulA {
        /// Ring of the shares.
        ring: RingId,
        /// Elements truncated.
        len: u32,
        /// Bits dropped.
        shift: u8,
        /// t^2.
        square: bool,
        /// t v.
        mul: bool,
        /// t_i t_(i + len/2).
        pair: bool,
    },
    /// Truncation by `shift` in Z_2^64, then downcast by `down` to Z_2^32, in one round
    /// ([`crate::chain`]; `shift + down <= 32`).
    TruncDowncastA {
        /// Elements.
        len: u32,
        /// Bits dropped in Z_2^64.
        shift: u8,
        /// Bits dropped by the downcast.
        down: u8,
    },
    /// Upcast Z_2^32 -> Z_2^64, times the public integer `scale`, truncated by `shift`, in one
    /// round ([`crate::chain`]; |x| <= 2^30, |scale x| < 2^62).
    UpcastTruncA {
        /// Elements.
        len: u32,
        /// The public multiplier.
        scale: u64,
        /// Bits dropped.
        shift: u8,
    },
    /// Sign bit (x < 0) in 3 rounds ([`crate::radix::top`]): the radix comparison whose last
    /// level and B2A are one round with an arithmetic output. The circuit runs on `ring` (for
    /// `ring` narrower than `out`, each party reduces its `out` share: |x| < 2^(bits of ring -
    /// 1)). With `mul`, the result is multiplied by a second operand (in `out`) in the same
    /// rounds.
    SignRadixTopA {
        /// Ring of the circuit.
        ring: RingId,
        /// Ring of the result (and of the multiplicand).
        out: RingId,
        /// Elements.
        len: u32,
        /// Multiplied by a second operand.
        mul: bool,
    },
    /// `SignRadixA` run beside the steps that follow it: each of its rounds travels in the
    /// flight of one of theirs, so it adds bytes but no round of its own (the engine's
    /// `beside` module; e.g. the exp's clamp beside the exp's squarings).
    SignRadixBesideA {
        /// Ring of the circuit.
        ring: RingId,
        /// Ring of the result (and of the multiplicand).
        out: RingId,
        /// Elements.
        len: u32,
        /// Multiplied by a second operand.
        mul: bool,
    },
    /// A fixed-mask matmul (as `MatMulFixed`, Z_2^32) of the output of the step just before,
    /// a `TruncDowncastA` by `shift` = its shift + down over n x k elements: that step opened
    /// the output plus a mask the dealer knows, so this product takes minus that mask as its A
    /// and opens nothing ([`crate::chain`]): no round, no online bytes.
    MatMulDownA {
        /// Rows of the input.
        n: u32,
        /// Inner dimension.
        k: u32,
        /// Columns of the output.
        m: u32,
        /// Which model weight.
        weight: u32,
        /// k1 + k2 of the truncate-then-downcast before.
        shift: u8,
    },
    /// A LayerNorm's mean truncation fused with the centring and square of its rows
    /// ([`crate::center`], one round): t = u / 2^shift per row, d = x - t, d^2.
    TruncCenterSquareA {
        /// Ring of the shares.
        ring: RingId,
        /// Rows (means).
        rows: u32,
        /// Columns per row.
        cols: u32,
        /// Bits dropped from the means.
        shift: u8,
    },
    /// Opens y - B for a later `MatMulDownAA` (Z_2^32, [`crate::beaver`]): B = B0 + B1 from
    /// this step's B streams, no corrections. It rides on the following steps' flights, so it
    /// adds bytes but no round of its own.
    OpenBesideA {
        /// Elements.
        len: u32,
    },
    /// A batched product X Y (as `MatMulAA`, Z_2^32) of X, the output of the step just before
    /// (a `TruncDowncastA` by `shift` over batch x n x k elements, which opened X plus a mask
    /// the dealer knows), and Y, whose Y - B step `open` (an `OpenBesideA` of batch x k x m
    /// elements, the last one before and used by no other product) opened: A is minus the
    /// downcast's mask and B that step's, so this product opens nothing: no round, no online
    /// bytes.
    MatMulDownAA {
        /// Products.
        batch: u32,
        /// Rows of X.
        n: u32,
        /// Inner dimension.
        k: u32,
        /// Columns of Y.
        m: u32,
        /// k1 + k2 of the truncate-then-downcast before.
        shift: u8,
        /// The `OpenBesideA` step that opened Y - B.
        open: u32,
    },
    /// `TruncMulA` in Z_2^64 at narrower widths ([`crate::fuse::Width`]): the input, in
    /// [-2^(open-2), 2^(open-2)), is opened modulo 2^`open`, and the outputs are right modulo
    /// 2^`out` (k + 3 <= open <= out <= 64). No pairs.
    TruncMulNarrowA {
        /// Elements.
        len: u32,
        /// Bits dropped.
        shift: u8,
        /// Bits of the opened masked input.
        open: u8,
        /// Bits modulo which the outputs are right.
        out: u8,
        /// t^2.
        square: bool,
        /// t v.
        mul: bool,
    },
    /// A value per row truncated once and multiplied by every element of its row
    /// ([`crate::rows`], one round): t_i = x_i / 2^shift, t_i v_ij.
    TruncMulRowsA {
        /// Ring of the shares.
        ring: RingId,
        /// Rows (values truncated).
        rows: u32,
        /// Elements per row.
        cols: u32,
        /// Bits dropped.
        shift: u8,
    },
    /// Each element of rows x cols truncated and multiplied by its column's value v_j
    /// ([`crate::fuse`], one round): t_ij = x_ij / 2^shift, t_ij v_j. The operand's v - a
    /// opens once per column (LayerNorm's gamma), not once per element.
    TruncMulColsA {
        /// Ring of the shares.
        ring: RingId,
        /// Rows.
        rows: u32,
        /// Columns (values of the operand).
        cols: u32,
        /// Bits dropped.
        shift: u8,
    },
    /// `TruncMulRowsA` whose operand is the d of the centring step `center` (a
    /// `TruncCenterSquareA` of the same rows x cols, the last one before and used by no other
    /// product): d is public plus a dealer-known mask already, so the round opens y alone
    /// ([`crate::rows`]). Needs shift + center_shift <= l.
    TruncMulRowsCenteredA {
        /// Ring of the shares.
        ring: RingId,
        /// Rows (values truncated).
        rows: u32,
        /// Elements per row.
        cols: u32,
        /// Bits dropped.
        shift: u8,
        /// The centring step.
        center: u32,
        /// Its mean's shift.
        center_shift: u8,
    },
    /// `SignRadixTopA` started beside the one step that follows it: its first round travels
    /// in that step's flight, its other two run after it (2 rounds of its own). With a
    /// multiplicand, v - a opens in its last round, so v may be an output of that step
    /// (LayerNorm's octaves of var compare var's untruncated sum and take var itself).
    SignRadixTopBesideA {
        /// Ring of the circuit.
        ring: RingId,
        /// Ring of the result (and of the multiplicand).
        out: RingId,
        /// Elements.
        len: u32,
        /// Multiplied by a second operand.
        mul: bool,
    },
    /// `TruncDowncastA` opening `open` bits ([`crate::chain`], narrow): the input, in
    /// [-2^(open-2), 2^(open-2)), has shares right modulo 2^open only; y travels in
    /// ceil(open/8) bytes. Needs shift >= 1 and shift + down + 32 <= open <= 64.
    TruncDowncastNarrowA {
        /// Elements.
        len: u32,
        /// Bits dropped by the truncation.
        shift: u8,
        /// Bits dropped by the downcast.
        down: u8,
        /// Bits of the opened masked input.
        open: u8,
    },
}

impl Op {
    /// The op whose correlation and messages this one has: `SignRadixBesideA` runs
    /// `SignRadixA`'s protocol, `SignRadixTopBesideA` `SignRadixTopA`'s; every other op is its
    /// own.
    pub const fn protocol(self) -> Op {
        match self {
            Op::SignRadixBesideA { ring, out, len, mul } => Op::SignRadixA { ring, out, len, mul },
            Op::SignRadixTopBesideA { ring, out, len, mul } => Op::SignRadixTopA { ring, out, len, mul },
            op => op,
        }
    }

    /// (elements, shift + down) of a truncate-then-downcast at any width, whose opened value a
    /// following `MatMulDownA` / `MatMulDownAA` takes as its E; `None` for every other op.
    pub const fn trunc_down(self) -> Option<(u32, u32)> {
        match self {
            Op::TruncDowncastA { len, shift, down } | Op::TruncDowncastNarrowA { len, shift, down, .. } => {
                Some((len, shift as u32 + down as u32))
            }
            _ => None,
        }
    }
}

/// Approximation used by a GeLU step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GeluApprox {
    /// Ditto / MPCFormer 0.125x^2 + 0.25x + 0.5 in Z_2^32.
    Quad,
    /// PUMA piecewise polynomial.
    Poly,
}

/// Which part of the model a step belongs to, with its approximation choice. Used for the
/// per-operation cost breakdown; part of the hash, so both parties agree on approximations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tag {
    /// Token embedding lookup.
    Embedding,
    /// Linear layers.
    Linear,
    /// Attention products Q K^T and P V.
    Attention,
    /// Softmax with exp (1 + x/2^n)^(2^n).
    Softmax {
        /// n of the exp limit form.
        exp_iters: u8,
    },
    /// GeLU.
    Gelu(GeluApprox),
    /// LayerNorm.
    LayerNorm,
    /// Ring and scale conversions between layers.
    Conversion,
    /// Anything else (tests, output head).
    Other,
}

/// Fractional bits of a step's input and output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scale {
    /// Fractional bits of the input.
    pub frac_in: u8,
    /// Fractional bits of the output.
    pub frac_out: u8,
}

/// One plan step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Operation and shapes.
    pub op: Op,
    /// Scales.
    pub scale: Scale,
    /// What the step belongs to.
    pub tag: Tag,
    /// Layer index (0 for steps outside the layers).
    pub layer: u16,
}

/// Plan header: version, a public name, and the step count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanHeader {
    /// Must equal [`PLAN_VERSION`].
    pub version: u16,
    /// Public description (e.g. "bert-base/seq128/ditto").
    pub name: heapless::String<64>,
    /// Number of steps.
    pub n_steps: u32,
}

/// An owned plan (needs the `alloc` feature).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Header.
    pub header: PlanHeader,
    /// Steps in execution order.
    pub steps: alloc::vec::Vec<Step>,
}

#[cfg(feature = "alloc")]
impl Plan {
    /// Builds a plan from a name and its steps (the name is cut to 64 bytes).
    pub fn new(name: &str, steps: alloc::vec::Vec<Step>) -> Result<Self, Error> {
        let mut n = heapless::String::new();
        for c in name.chars() {
            if n.push(c).is_err() {
                break;
            }
        }
        let n_steps = u32::try_from(steps.len())
            .map_err(|_| Error::PlanStepCount { declared: u32::MAX, actual: u32::MAX })?;
        let plan = Plan { header: PlanHeader { version: PLAN_VERSION, name: n, n_steps }, steps };
        plan.hash()?;
        Ok(plan)
    }

    /// The plan hash (validates the plan).
    pub fn hash(&self) -> Result<[u8; 32], Error> {
        plan_hash(&self.header, &self.steps)
    }

    /// Decodes a plan from postcard bytes and validates it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let plan: Plan = postcard::from_bytes(bytes).map_err(|_| Error::Encoding("plan"))?;
        plan.hash()?;
        Ok(plan)
    }

    /// Encodes the plan with postcard.
    pub fn to_bytes(&self) -> Result<alloc::vec::Vec<u8>, Error> {
        postcard::to_allocvec(self).map_err(|_| Error::Encoding("plan"))
    }
}
