//! A step's constructor for tests, its checks and its costs: which shapes an op admits, its P1 correction bytes, its online
//! bytes per party and its rounds, each from the protocol module that runs it.

use super::{MAX_STEP_ELEMS, Op, Scale, Step, Tag};
use crate::ring::RingId;
use crate::{Error, beaver, center, chain, compare, convert, fuse, radix, rows, trunc};

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
            Op::TruncDowncastNarrowA { len, shift, down, open } => {
                elems(index, &[len])?;
                if !chain::trunc_down_fits(u32::from(shift), u32::from(down), u32::from(open)) {
                    return bad(
                        "narrow truncate-then-downcast: shift >= 1, shift + 3 <= open <= 64 and shift + down + 32 <= open",
                    );
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
            Op::TruncMulRowsCenteredA { ring, rows, cols, shift, center, center_shift } => {
                elems(index, &[rows, cols])?;
                let (k, kc) = (u32::from(shift), u32::from(center_shift));
                if shift == 0 || k >= ring.bits() - 2 || center_shift == 0 || kc >= ring.bits() - 2 {
                    return bad("centred row products: both shifts in 1..l-2");
                }
                if k + kc > ring.bits() {
                    return bad("centred row products: the two shifts add up to at most l");
                }
                if center >= index {
                    return bad("centred row products: the centring must come before");
                }
                Ok(())
            }
            Op::TruncMulColsA { ring, rows, cols, shift } => {
                elems(index, &[rows, cols])?;
                if shift == 0 || u32::from(shift) >= ring.bits() - 2 {
                    return bad("column products: the shift in 1..l-2");
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
            Op::SignRadixBesideA { .. } | Op::SignRadixTopBesideA { .. } => {
                Step { op: self.op.protocol(), ..*self }.validate(index)
            }
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
            Op::TruncDowncastA { len, .. } | Op::TruncDowncastNarrowA { len, .. } => {
                chain::trunc_down_correction_bytes(len)
            }
            Op::UpcastTruncA { len, shift, .. } => chain::up_trunc_correction_bytes(len, shift),
            Op::SignRadixTopA { ring, out, len, mul } => radix::top::correction_bytes(ring, out, len, mul),
            Op::SignRadixBesideA { ring, out, len, mul } => radix::correction_bytes(ring, out, len, mul),
            Op::SignRadixTopBesideA { .. } => Step { op: self.op.protocol(), ..*self }.p1_correction_bytes(),
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
            Op::TruncMulRowsCenteredA { ring, rows, cols, shift, center_shift, .. } => {
                rows::centred_correction_bytes(ring, rows, cols, (shift, center_shift))
            }
            Op::TruncMulColsA { ring, rows, cols, shift } => {
                let p = fuse::Products { mul: true, ..fuse::Products::default() };
                fuse::correction_bytes(ring, rows.saturating_mul(cols), shift, p)
            }
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
            Op::TruncDowncastA { len, .. } => chain::trunc_down_online_bytes(len, 64),
            Op::TruncDowncastNarrowA { len, open, .. } => {
                chain::trunc_down_online_bytes(len, u32::from(open))
            }
            Op::UpcastTruncA { len, .. } => chain::up_trunc_online_bytes(len),
            Op::SignRadixTopA { ring, out, len, mul } => radix::top::online_bytes(ring, out, len, mul),
            Op::SignRadixBesideA { ring, out, len, mul } => radix::online_bytes(ring, out, len, mul),
            Op::SignRadixTopBesideA { .. } => {
                Step { op: self.op.protocol(), ..*self }.online_bytes_per_party()
            }
            Op::MatMulDownA { .. } | Op::MatMulDownAA { .. } => 0,
            Op::OpenBesideA { len } => beaver::open_beside_online_bytes(len),
            Op::TruncMulNarrowA { len, open, out, square, mul, .. } => {
                let w = fuse::Width { open: u32::from(open), out: u32::from(out) };
                fuse::online_bytes_w(len, fuse::Products { square, mul, pair: false }, w)
            }
            Op::TruncCenterSquareA { ring, rows, cols, .. } => center::online_bytes(ring, rows, cols),
            Op::TruncMulRowsA { ring, rows, cols, .. } => rows::online_bytes(ring, rows, cols),
            Op::TruncMulColsA { ring, rows, cols, .. } => fuse::cols_online_bytes(ring, rows, cols),
            Op::TruncMulRowsCenteredA { ring, rows, .. } => rows::centred_online_bytes(ring, rows),
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
            Op::TruncMulA { .. } | Op::TruncMulNarrowA { .. } | Op::TruncMulColsA { .. } => fuse::ROUNDS,
            Op::TruncDowncastA { .. } | Op::TruncDowncastNarrowA { .. } | Op::UpcastTruncA { .. } => {
                chain::ROUNDS
            }
            Op::SignRadixTopA { .. } => radix::top::ROUNDS,
            // Its rounds travel in the following steps' flights.
            Op::SignRadixBesideA { .. } => 0,
            // Its first round travels in the next step's flight.
            Op::SignRadixTopBesideA { .. } => radix::top::ROUNDS - 1,
            // E is the value the truncate-then-downcast before it opened (and F, for the
            // batched form, the value its earlier opening opened).
            Op::MatMulDownA { .. } | Op::MatMulDownAA { .. } => 0,
            // Its round travels in the following steps' flights.
            Op::OpenBesideA { .. } => 0,
            Op::TruncCenterSquareA { .. } => center::ROUNDS,
            Op::TruncMulRowsA { .. } | Op::TruncMulRowsCenteredA { .. } => rows::ROUNDS,
        }
    }
}
