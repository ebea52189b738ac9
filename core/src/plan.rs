//! Plans: the public, ordered list of correlation-consuming steps of one inference.
//!
//! P0, P1 and the dealer derive the same plan from public data (architecture, sequence length,
//! quantization config). Its hash — SHA-256 over a domain label and the postcard encodings of
//! the header and of every step, each length-prefixed — is compared at connection time.
//! Postcard's encoding is canonical (minimal varints, fixed field order), so the hash is
//! stable across machines and versions of this crate that keep `PLAN_VERSION`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ring::RingId;
use crate::{Error, beaver, center, chain, compare, convert, fuse, radix, rows, trunc};

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
}

impl Op {
    /// The op whose correlation and messages this one has: `SignRadixBesideA` runs
    /// `SignRadixA`'s protocol; every other op is its own.
    pub const fn protocol(self) -> Op {
        match self {
            Op::SignRadixBesideA { ring, out, len, mul } => Op::SignRadixA { ring, out, len, mul },
            op => op,
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

fn elems(step: u32, dims: &[u32]) -> Result<u64, Error> {
    let mut p: u64 = 1;
    for &d in dims {
        if d == 0 {
            return Err(Error::BadStep { step, reason: "zero dimension" });
        }
        p = p.saturating_mul(u64::from(d));
    }
    if p > MAX_STEP_ELEMS {
        return Err(Error::BadStep { step, reason: "too many elements" });
    }
    Ok(p)
}

impl Step {
    /// A step with the given op, tagged `Other`, scale 0 -> 0, layer 0 (tests and tools).
    pub const fn bare(op: Op) -> Self {
        Step { op, scale: Scale { frac_in: 0, frac_out: 0 }, tag: Tag::Other, layer: 0 }
    }

    /// Checks shapes and parameters; `index` is the step's position (for the error).
    pub fn validate(&self, index: u32) -> Result<(), Error> {
        let bad = |reason| Err(Error::BadStep { step: index, reason });
        match self.op {
            Op::MulAA { len, .. }
            | Op::SquareA { len, .. }
            | Op::UpcastA { len }
            | Op::SignA { len, .. }
            | Op::SignLowA { len } => elems(index, &[len]).map(|_| ()),
            Op::MatMulFixed { n, k, m, .. } => {
                elems(index, &[n, k])?;
                elems(index, &[k, m])?;
                elems(index, &[n, m]).map(|_| ())
            }
            Op::MatMulAA { batch, n, k, m, .. } => {
                elems(index, &[batch, n, k])?;
                elems(index, &[batch, k, m])?;
                elems(index, &[batch, n, m]).map(|_| ())
            }
            Op::TruncA { ring, len, shift } => {
                elems(index, &[len])?;
                if shift == 0 || u32::from(shift) > ring.bits() - 2 {
                    return bad("truncation shift must be in 1..=l-2");
                }
                Ok(())
            }
            Op::TruncMulA { ring, len, shift, square, mul, pair } => {
                elems(index, &[len])?;
                if shift == 0 || u32::from(shift) > ring.bits() - 2 {
                    return bad("truncation shift must be in 1..=l-2");
                }
                if !(square || mul || pair) {
                    return bad("a fused truncation computes at least one product");
                }
                if pair && (len % 2 == 1 || 2 * u32::from(shift) > ring.bits()) {
                    return bad("pair products need an even length and a shift of at most l/2");
                }
                Ok(())
            }
            Op::DowncastA { len, shift } => {
                elems(index, &[len])?;
                if u32::from(shift) > convert::MAX_DOWNCAST_SHIFT {
                    return bad("downcast shift must be at most 32");
                }
                Ok(())
            }
            Op::TruncDowncastA { len, shift, down } => {
                elems(index, &[len])?;
                if shift == 0 || u32::from(shift) + u32::from(down) > chain::MAX_TRUNC_DOWN {
                    return bad("truncate-then-downcast: shift >= 1 and shift + down <= 32");
                }
                Ok(())
            }
            Op::UpcastTruncA { len, scale, shift } => {
                elems(index, &[len])?;
                if shift == 0 || shift > 62 || scale == 0 {
                    return bad("upcast-then-truncate: shift in 1..=62 and a non-zero scale");
                }
                Ok(())
            }
            Op::SignRadixTopA { ring, out, len, .. } => {
                elems(index, &[len])?;
                if out.bits() < ring.bits() {
                    return bad("radix sign: the result ring must be at least as wide as the circuit's");
                }
                Ok(())
            }
            Op::TruncCenterSquareA { ring, rows, cols, shift } => {
                elems(index, &[rows, cols])?;
                if shift == 0 || u32::from(shift) >= ring.bits() - 2 {
                    return bad("centring: the mean's shift in 1..l-2");
                }
                Ok(())
            }
            Op::TruncMulRowsA { ring, rows, cols, shift } => {
                elems(index, &[rows, cols])?;
                if shift == 0 || u32::from(shift) >= ring.bits() - 2 {
                    return bad("row products: the shift in 1..l-2");
                }
                Ok(())
            }
            Op::MatMulDownA { n, k, m, shift, .. } => {
                elems(index, &[n, k])?;
                elems(index, &[k, m])?;
                if shift == 0 || u32::from(shift) > chain::MAX_TRUNC_DOWN {
                    return bad("matmul after a downcast: the downcast's shift in 1..=32");
                }
                Ok(())
            }
            Op::OpenBesideA { len } => elems(index, &[len]).map(|_| ()),
            Op::TruncMulNarrowA { len, shift, open, out, .. } => {
                elems(index, &[len])?;
                let w = fuse::Width { open: u32::from(open), out: u32::from(out) };
                if !w.fits(64, u32::from(shift)) {
                    return bad("narrow fused truncation: shift + 3 <= open <= out <= 64");
                }
                Ok(())
            }
            Op::MatMulDownAA { batch, n, k, m, shift, open } => {
                elems(index, &[batch, n, k])?;
                elems(index, &[batch, k, m])?;
                elems(index, &[batch, n, m])?;
                if shift == 0 || u32::from(shift) > chain::MAX_TRUNC_DOWN {
                    return bad("matmul after a downcast: the downcast's shift in 1..=32");
                }
                if open >= index {
                    return bad("matmul after a downcast: its opening must come before it");
                }
                Ok(())
            }
            Op::SignRadixBesideA { .. } => Step { op: self.op.protocol(), ..*self }.validate(index),
            Op::SignRadixA { ring, out, len, .. } => {
                elems(index, &[len])?;
                if out.bits() < ring.bits() {
                    return bad("radix sign: the result ring must be at least as wide as the circuit's");
                }
                Ok(())
            }
        }
    }

    /// Bytes of P1's correction stream for this step (P0 receives none).
    pub fn p1_correction_bytes(&self) -> u64 {
        match self.op {
            Op::MulAA { ring, len } | Op::SquareA { ring, len } => {
                beaver::elementwise_correction_bytes(ring, len)
            }
            Op::MatMulFixed { ring, n, m, .. } => beaver::matmul_correction_bytes(ring, 1, n, m),
            Op::MatMulAA { ring, batch, n, m, .. } => beaver::matmul_correction_bytes(ring, batch, n, m),
            Op::TruncA { ring, len, shift } => trunc::correction_bytes(ring, len, shift),
            Op::UpcastA { len } => convert::upcast_correction_bytes(len),
            Op::DowncastA { len, .. } => convert::downcast_correction_bytes(len),
            Op::SignA { ring, len } => compare::correction_bytes(ring, len),
            Op::SignLowA { len } => compare::correction_bytes_into(RingId::Z32, RingId::Z64, len),
            Op::SignRadixA { ring, out, len, mul } => radix::correction_bytes(ring, out, len, mul),
            Op::TruncMulA { ring, len, shift, square, mul, pair } => {
                fuse::correction_bytes(ring, len, shift, fuse::Products { square, mul, pair })
            }
            Op::TruncDowncastA { len, .. } => chain::trunc_down_correction_bytes(len),
            Op::UpcastTruncA { len, shift, .. } => chain::up_trunc_correction_bytes(len, shift),
            Op::SignRadixTopA { ring, out, len, mul } => radix::top::correction_bytes(ring, out, len, mul),
            Op::SignRadixBesideA { ring, out, len, mul } => radix::correction_bytes(ring, out, len, mul),
            Op::MatMulDownA { n, m, .. } => beaver::matmul_correction_bytes(RingId::Z32, 1, n, m),
            Op::OpenBesideA { .. } => 0,
            Op::TruncMulNarrowA { len, shift, open, out, square, mul } => {
                let w = fuse::Width { open: u32::from(open), out: u32::from(out) };
                fuse::correction_bytes_w(len, shift, fuse::Products { square, mul, pair: false }, w)
            }
            Op::MatMulDownAA { batch, n, m, .. } => beaver::matmul_correction_bytes(RingId::Z32, batch, n, m),
            Op::TruncCenterSquareA { ring, rows, cols, shift } => {
                center::correction_bytes(ring, rows, cols, shift)
            }
            Op::TruncMulRowsA { ring, rows, cols, shift } => rows::correction_bytes(ring, rows, cols, shift),
        }
    }

    /// Bytes each party sends online for this step.
    pub fn online_bytes_per_party(&self) -> u64 {
        match self.op {
            Op::MulAA { ring, len } => beaver::mul_online_bytes(ring, len),
            Op::SquareA { ring, len } => beaver::square_online_bytes(ring, len),
            Op::MatMulFixed { ring, n, k, .. } => beaver::matmul_fixed_online_bytes(ring, n, k),
            Op::MatMulAA { ring, batch, n, k, m } => beaver::matmul_aa_online_bytes(ring, batch, n, k, m),
            Op::TruncA { ring, len, .. } => trunc::online_bytes(ring, len),
            Op::UpcastA { len } => convert::upcast_online_bytes(len),
            Op::DowncastA { len, shift } => convert::downcast_online_bytes(len, shift),
            Op::SignA { ring, len } => compare::online_bytes(ring, len),
            Op::SignLowA { len } => compare::online_bytes(RingId::Z32, len),
            Op::SignRadixA { ring, out, len, mul } => radix::online_bytes(ring, out, len, mul),
            Op::TruncMulA { ring, len, square, mul, pair, .. } => {
                fuse::online_bytes(ring, len, fuse::Products { square, mul, pair })
            }
            Op::TruncDowncastA { len, .. } => chain::trunc_down_online_bytes(len),
            Op::UpcastTruncA { len, .. } => chain::up_trunc_online_bytes(len),
            Op::SignRadixTopA { ring, out, len, mul } => radix::top::online_bytes(ring, out, len, mul),
            Op::SignRadixBesideA { ring, out, len, mul } => radix::online_bytes(ring, out, len, mul),
            Op::MatMulDownA { .. } | Op::MatMulDownAA { .. } => 0,
            Op::OpenBesideA { len } => beaver::open_beside_online_bytes(len),
            Op::TruncMulNarrowA { len, open, out, square, mul, .. } => {
                let w = fuse::Width { open: u32::from(open), out: u32::from(out) };
                fuse::online_bytes_w(len, fuse::Products { square, mul, pair: false }, w)
            }
            Op::TruncCenterSquareA { ring, rows, cols, .. } => center::online_bytes(ring, rows, cols),
            Op::TruncMulRowsA { ring, rows, cols, .. } => rows::online_bytes(ring, rows, cols),
        }
    }

    /// Communication rounds of this step.
    pub fn rounds(&self) -> u32 {
        match self.op {
            Op::MulAA { .. } | Op::SquareA { .. } => beaver::ROUNDS,
            Op::MatMulFixed { .. } | Op::MatMulAA { .. } => beaver::ROUNDS,
            Op::TruncA { .. } => trunc::ROUNDS,
            Op::UpcastA { .. } | Op::DowncastA { .. } => convert::ROUNDS,
            Op::SignA { ring, .. } => compare::rounds(ring),
            Op::SignLowA { .. } => compare::rounds(RingId::Z32),
            Op::SignRadixA { ring, .. } => radix::rounds(ring),
            Op::TruncMulA { .. } | Op::TruncMulNarrowA { .. } => fuse::ROUNDS,
            Op::TruncDowncastA { .. } | Op::UpcastTruncA { .. } => chain::ROUNDS,
            Op::SignRadixTopA { .. } => radix::top::ROUNDS,
            // Its rounds travel in the following steps' flights.
            Op::SignRadixBesideA { .. } => 0,
            // E is the value the truncate-then-downcast before it opened (and F, for the
            // batched form, the value its earlier opening opened).
            Op::MatMulDownA { .. } | Op::MatMulDownAA { .. } => 0,
            // Its round travels in the following steps' flights.
            Op::OpenBesideA { .. } => 0,
            Op::TruncCenterSquareA { .. } => center::ROUNDS,
            Op::TruncMulRowsA { .. } => rows::ROUNDS,
        }
    }
}

const HASH_LABEL: &[u8] = b"ditto plan v1\0";

/// Incremental plan hash, for a dealer that receives the plan one step at a time.
pub struct PlanHasher {
    sha: Sha256,
    steps: u32,
    declared: u32,
    /// The step before (a matmul after a downcast must follow its downcast).
    prev: Option<Step>,
    /// The last `OpenBesideA` not yet used by a product: (step, elements).
    open: Option<(u32, u32)>,
}

impl PlanHasher {
    /// Starts a hash with the plan header (checks the version).
    pub fn new(header: &PlanHeader) -> Result<Self, Error> {
        if header.version != PLAN_VERSION {
            return Err(Error::Version { expected: PLAN_VERSION, got: header.version });
        }
        let mut h =
            PlanHasher { sha: Sha256::new(), steps: 0, declared: header.n_steps, prev: None, open: None };
        h.sha.update(HASH_LABEL);
        h.absorb(header)?;
        Ok(h)
    }

    fn absorb<T: Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let mut buf = [0u8; 128];
        let used = postcard::to_slice(v, &mut buf).map_err(|_| Error::Encoding("plan item"))?;
        let len = u32::try_from(used.len()).map_err(|_| Error::Encoding("plan item"))?;
        self.sha.update(len.to_le_bytes());
        self.sha.update(&*used);
        Ok(())
    }

    /// Adds the next step (validated).
    pub fn push(&mut self, step: &Step) -> Result<(), Error> {
        step.validate(self.steps)?;
        if let Op::MatMulDownA { n, k, shift, .. } = step.op {
            let fits = matches!(self.prev.map(|p| p.op), Some(Op::TruncDowncastA { len, shift: s, down })
                if u64::from(len) == u64::from(n) * u64::from(k) && u32::from(s) + u32::from(down) == u32::from(shift));
            if !fits {
                return Err(Error::BadStep {
                    step: self.steps,
                    reason: "a matmul after a downcast must follow a truncate-then-downcast of its input",
                });
            }
        }
        self.check_opening(step)?;
        self.absorb(step)?;
        self.steps += 1;
        self.prev = Some(*step);
        Ok(())
    }

    /// A product's opening is used once: a `MatMulDownAA` must follow a truncate-then-downcast
    /// of its X and name the last `OpenBesideA` not yet used, of its Y's size (one pending at a
    /// time: a second opening before the first is used is refused).
    fn check_opening(&mut self, step: &Step) -> Result<(), Error> {
        let bad = |reason| Err(Error::BadStep { step: self.steps, reason });
        match step.op {
            Op::OpenBesideA { len } => {
                if self.open.is_some() {
                    return bad("an opening beside others before the last one was used");
                }
                self.open = Some((self.steps, len));
            }
            Op::MatMulDownAA { batch, n, k, m, shift, open } => {
                let x_len = u64::from(batch) * u64::from(n) * u64::from(k);
                let follows = matches!(self.prev.map(|p| p.op), Some(Op::TruncDowncastA { len, shift: s, down })
                    if u64::from(len) == x_len && u32::from(s) + u32::from(down) == u32::from(shift));
                if !follows {
                    return bad(
                        "a matmul after a downcast must follow a truncate-then-downcast of its input",
                    );
                }
                let y_len = u64::from(batch) * u64::from(k) * u64::from(m);
                if self.open.take().is_none_or(|(at, len)| at != open || u64::from(len) != y_len) {
                    return bad("a matmul after a downcast must use the last unused opening of its Y");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The 256-bit plan hash; fails if the step count differs from the header's.
    pub fn finish(self) -> Result<[u8; 32], Error> {
        if self.steps != self.declared {
            return Err(Error::PlanStepCount { declared: self.declared, actual: self.steps });
        }
        Ok(self.sha.finalize().into())
    }
}

/// The hash of a plan given as a header and a slice of steps (validates every step).
pub fn plan_hash(header: &PlanHeader, steps: &[Step]) -> Result<[u8; 32], Error> {
    let mut h = PlanHasher::new(header)?;
    for s in steps {
        h.push(s)?;
    }
    h.finish()
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
