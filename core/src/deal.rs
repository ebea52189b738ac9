//! The dealer's dispatch: which protocol deals each kind of plan step, and how a step splits
//! into independent units (for parallel or resumed generation). The protocols' dealing halves
//! live beside their party halves (`beaver`, `trunc`, `convert`, `compare`); this module only
//! routes a step to its protocol.

use core::ops::Range;

use embedded_io::Write;

use crate::corr::DealerStreams;
use crate::plan::{Op, Step};
use crate::ring::RingId;
use crate::{Error, beaver, center, chain, compare, convert, fuse, radix, rows, trunc};

/// Writes P1's corrections for plan step `index` to `w`, exactly
/// `step.p1_correction_bytes()` bytes. This is the reference dealer: bounded memory (a few
/// KiB of stack), straightforward loops.
pub fn deal_step<W: Write>(d: &DealerStreams<'_>, index: u32, step: &Step, w: &mut W) -> Result<(), Error> {
    deal_step_part(d, index, step, 0..step.units(), w)
}

/// Writes the corrections of units `units` of a step (see [`Step::units`]). Concatenating the
/// parts of any split of `0..units()` gives exactly [`deal_step`]'s bytes, so a dealer may
/// generate parts in parallel, or resume from any unit.
pub fn deal_step_part<W: Write>(
    d: &DealerStreams<'_>,
    index: u32,
    step: &Step,
    units: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    step.validate(index)?;
    if units.start > units.end || units.end > step.units() {
        return Err(Error::BadStep { step: index, reason: "unit range outside the step" });
    }
    let u = units;
    match (step.op, step.op_ring()) {
        (Op::MulAA { .. }, RingId::Z32) => beaver::deal_mul::<u32, W>(d, index, u, w),
        (Op::MulAA { .. }, RingId::Z64) => beaver::deal_mul::<u64, W>(d, index, u, w),
        (Op::SquareA { .. }, RingId::Z32) => beaver::deal_square::<u32, W>(d, index, u, w),
        (Op::SquareA { .. }, RingId::Z64) => beaver::deal_square::<u64, W>(d, index, u, w),
        (Op::MatMulFixed { n, k, m, weight, .. }, RingId::Z32) => {
            beaver::deal_matmul_fixed::<u32, W>(d, index, beaver::Dims::new(n, k, m), weight, u, w)
        }
        (Op::MatMulFixed { n, k, m, weight, .. }, RingId::Z64) => {
            beaver::deal_matmul_fixed::<u64, W>(d, index, beaver::Dims::new(n, k, m), weight, u, w)
        }
        (Op::MatMulAA { n, k, m, .. }, RingId::Z32) => {
            beaver::deal_matmul_aa::<u32, W>(d, index, beaver::Dims::new(n, k, m), u, w)
        }
        (Op::MatMulAA { n, k, m, .. }, RingId::Z64) => {
            beaver::deal_matmul_aa::<u64, W>(d, index, beaver::Dims::new(n, k, m), u, w)
        }
        (Op::TruncA { shift, .. }, RingId::Z32) => {
            trunc::deal_trunc::<u32, W>(d, index, u, u32::from(shift), w)
        }
        (Op::TruncA { shift, .. }, RingId::Z64) => {
            trunc::deal_trunc::<u64, W>(d, index, u, u32::from(shift), w)
        }
        (Op::UpcastA { .. }, _) => convert::deal_upcast(d, index, u, w),
        (Op::DowncastA { shift, .. }, _) => convert::deal_downcast(d, index, u, u32::from(shift), w),
        (Op::SignA { len, .. }, RingId::Z32) => {
            compare::deal_sign::<u32, u32, W>(d, index, len as usize, u, w)
        }
        (Op::SignA { len, .. }, RingId::Z64) => {
            compare::deal_sign::<u64, u64, W>(d, index, len as usize, u, w)
        }
        (Op::SignLowA { len }, _) => compare::deal_sign::<u32, u64, W>(d, index, len as usize, u, w),
        (Op::SignRadixA { ring, out, len, mul } | Op::SignRadixBesideA { ring, out, len, mul }, _) => {
            match (ring, out) {
                (RingId::Z32, RingId::Z32) => {
                    radix::deal_radix::<u32, u32, W>(d, index, len as usize, mul, u, w)
                }
                (RingId::Z32, RingId::Z64) => {
                    radix::deal_radix::<u32, u64, W>(d, index, len as usize, mul, u, w)
                }
                (RingId::Z64, RingId::Z64) => {
                    radix::deal_radix::<u64, u64, W>(d, index, len as usize, mul, u, w)
                }
                _ => Err(Error::BadStep { step: index, reason: "radix sign ring pair" }),
            }
        }
        (Op::TruncMulA { len, shift, square, mul, pair, .. }, ring) => {
            let p = fuse::Products { square, mul, pair };
            let (n, k) = (len as usize, u32::from(shift));
            let kw = (k, fuse::Width::full(ring.bits()));
            match ring {
                RingId::Z32 => fuse::deal_fuse::<u32, W>(d, index, (n, n), kw, p, u, w),
                RingId::Z64 => fuse::deal_fuse::<u64, W>(d, index, (n, n), kw, p, u, w),
            }
        }
        (Op::TruncMulNarrowA { len, shift, open, out, square, mul }, _) => {
            let p = fuse::Products { square, mul, pair: false };
            let kw = (u32::from(shift), fuse::Width { open: u32::from(open), out: u32::from(out) });
            fuse::deal_fuse::<u64, W>(d, index, (len as usize, len as usize), kw, p, u, w)
        }
        (Op::TruncMulRowsCenteredA { cols, shift, center, center_shift, .. }, ring) => {
            let (ck, ckc) = ((cols as usize, u32::from(shift)), (center, u32::from(center_shift)));
            match ring {
                RingId::Z32 => rows::deal_centred::<u32, W>(d, index, ckc, ck, u, w),
                RingId::Z64 => rows::deal_centred::<u64, W>(d, index, ckc, ck, u, w),
            }
        }
        (Op::TruncMulColsA { rows, cols, shift, .. }, ring) => {
            let p = fuse::Products { mul: true, ..fuse::Products::default() };
            let (n, c, k) = (rows as usize * cols as usize, cols as usize, u32::from(shift));
            let kw = (k, fuse::Width::full(ring.bits()));
            match ring {
                RingId::Z32 => fuse::deal_fuse::<u32, W>(d, index, (n, c), kw, p, u, w),
                RingId::Z64 => fuse::deal_fuse::<u64, W>(d, index, (n, c), kw, p, u, w),
            }
        }
        // The narrow form's mask bits lie below its opening: the full width's correction.
        (Op::TruncDowncastA { shift, down, .. } | Op::TruncDowncastNarrowA { shift, down, .. }, _) => {
            chain::deal_trunc_down(d, index, u, u32::from(shift) + u32::from(down), w)
        }
        (Op::SignRadixTopA { ring, out, len, mul } | Op::SignRadixTopBesideA { ring, out, len, mul }, _) => {
            let n = len as usize;
            match (ring, out) {
                (RingId::Z32, RingId::Z32) => {
                    radix::top::deal_radix_top::<u32, u32, W>(d, index, n, mul, u, w)
                }
                (RingId::Z32, RingId::Z64) => {
                    radix::top::deal_radix_top::<u32, u64, W>(d, index, n, mul, u, w)
                }
                (RingId::Z64, RingId::Z64) => {
                    radix::top::deal_radix_top::<u64, u64, W>(d, index, n, mul, u, w)
                }
                _ => Err(Error::BadStep { step: index, reason: "radix sign ring pair" }),
            }
        }
        (Op::MatMulDownA { n, k, m, weight, shift }, _) => {
            let dims = beaver::Dims::new(n, k, m);
            beaver::deal_matmul_after_down::<u32, W>(d, index, dims, (weight, u32::from(shift)), u, w)
        }
        // Both parties' B come from their own streams.
        (Op::OpenBesideA { .. }, _) => Ok(()),
        (Op::MatMulDownAA { n, k, m, shift, open, .. }, _) => {
            let dims = beaver::Dims::new(n, k, m);
            beaver::deal_matmul_down_aa(d, index, dims, (open, u32::from(shift)), u, w)
        }
        (Op::TruncCenterSquareA { cols, shift, .. }, ring) => {
            let (c, k) = (cols as usize, u32::from(shift));
            match ring {
                RingId::Z32 => center::deal_center::<u32, W>(d, index, c, k, u, w),
                RingId::Z64 => center::deal_center::<u64, W>(d, index, c, k, u, w),
            }
        }
        (Op::TruncMulRowsA { cols, shift, .. }, ring) => {
            let (c, k) = (cols as usize, u32::from(shift));
            match ring {
                RingId::Z32 => rows::deal_rows::<u32, W>(d, index, c, k, u, w),
                RingId::Z64 => rows::deal_rows::<u64, W>(d, index, c, k, u, w),
            }
        }
        (Op::UpcastTruncA { scale, shift, .. }, _) => {
            chain::deal_up_trunc(d, index, u, (scale, u32::from(shift)), w)
        }
    }
}

impl Step {
    /// Independent units of a step's corrections: elements for elementwise kinds, groups of 64
    /// for sign, BLOCK x BLOCK output blocks (across the batch) for matmuls.
    pub fn units(&self) -> usize {
        let blocks = |n: u32, m: u32| {
            let (bn, bm) = beaver::block_grid(beaver::Dims::new(n, 1, m));
            bn * bm
        };
        match self.op {
            Op::MulAA { len, .. }
            | Op::SquareA { len, .. }
            | Op::TruncA { len, .. }
            | Op::TruncMulA { len, .. }
            | Op::TruncMulNarrowA { len, .. }
            | Op::TruncDowncastA { len, .. }
            | Op::TruncDowncastNarrowA { len, .. }
            | Op::UpcastTruncA { len, .. }
            | Op::UpcastA { len }
            | Op::DowncastA { len, .. } => len as usize,
            Op::TruncMulColsA { rows, cols, .. } => rows as usize * cols as usize,
            Op::SignA { len, .. }
            | Op::SignLowA { len }
            | Op::SignRadixA { len, .. }
            | Op::SignRadixTopA { len, .. }
            | Op::SignRadixBesideA { len, .. }
            | Op::SignRadixTopBesideA { len, .. } => crate::bits::groups(len as usize),
            Op::MatMulFixed { n, m, .. } | Op::MatMulDownA { n, m, .. } => blocks(n, m),
            Op::TruncCenterSquareA { rows, .. }
            | Op::TruncMulRowsA { rows, .. }
            | Op::TruncMulRowsCenteredA { rows, .. } => rows as usize,
            Op::MatMulAA { batch, n, m, .. } | Op::MatMulDownAA { batch, n, m, .. } => {
                batch as usize * blocks(n, m)
            }
            // No corrections; one (empty) unit, as every step has at least one.
            Op::OpenBesideA { .. } => 1,
        }
    }

    /// The ring a step's correlation lives in (the source ring for conversions).
    pub fn op_ring(&self) -> RingId {
        match self.op {
            Op::MulAA { ring, .. }
            | Op::SquareA { ring, .. }
            | Op::MatMulFixed { ring, .. }
            | Op::MatMulAA { ring, .. }
            | Op::TruncA { ring, .. }
            | Op::SignA { ring, .. }
            | Op::SignRadixA { ring, .. }
            | Op::SignRadixBesideA { ring, .. }
            | Op::SignRadixTopBesideA { ring, .. }
            | Op::SignRadixTopA { ring, .. }
            | Op::TruncCenterSquareA { ring, .. }
            | Op::TruncMulRowsA { ring, .. }
            | Op::TruncMulColsA { ring, .. }
            | Op::TruncMulRowsCenteredA { ring, .. }
            | Op::TruncMulA { ring, .. } => ring,
            Op::UpcastA { .. }
            | Op::SignLowA { .. }
            | Op::UpcastTruncA { .. }
            | Op::MatMulDownA { .. }
            | Op::MatMulDownAA { .. }
            | Op::OpenBesideA { .. } => RingId::Z32,
            Op::DowncastA { .. }
            | Op::TruncDowncastA { .. }
            | Op::TruncDowncastNarrowA { .. }
            | Op::TruncMulNarrowA { .. } => RingId::Z64,
        }
    }
}
