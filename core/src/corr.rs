//! Correlation formats: the streams each party expands and the dealer's correction stream.
//!
//! Seed compression (DESIGN.md §4): every value P0 holds is expanded from its 16-byte session
//! seed (and, for model-fixed weight masks, its model share seed). P1 expands its *random*
//! components from its own seeds and reads the *dependent* ones (e.g. its share of C = A*B)
//! from the correction stream, which the dealer computes as "true value minus P0's share".
//! Each component comes from its own [`Purpose`] stream, so any element can be regenerated alone.
//!
//! Correction streams are little-endian ring elements (and little-endian 64-bit words for
//! bit-sliced boolean values) laid out per kind as each protocol module documents.

use core::ops::Range;

use embedded_io::Write;

use crate::plan::{Op, Step};
use crate::prg::{Prg, Purpose, Seed, SessionId};
use crate::ring::RingId;
use crate::{Error, Party, Ring, beaver, compare, convert, trunc};

/// Elements generated per batch by the dealing formulas (bounds their stack use).
pub const CHUNK: usize = 64;

/// The seeds one party expands its correlations from.
pub struct Streams<'a> {
    /// Whose streams these are.
    pub party: Party,
    seed: &'a Seed,
    model: &'a Seed,
    session: SessionId,
}

impl core::fmt::Debug for Streams<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Streams {{ party: {:?}, session: {:?} }}", self.party, self.session)
    }
}

impl<'a> Streams<'a> {
    /// `seed`: the party's session seed; `model`: its model share seed
    /// ([`crate::prg::model_share_seed`]); `session`: the session id.
    pub fn new(party: Party, seed: &'a Seed, model: &'a Seed, session: SessionId) -> Self {
        Streams { party, seed, model, session }
    }

    /// The stream of `purpose` for plan step `step`.
    pub fn prg(&self, step: u32, purpose: Purpose) -> Prg {
        Prg::for_stream(self.seed, &self.session, step, purpose)
    }

    /// The stream of this party's share of weight mask B_`weight`.
    pub fn model_prg(&self, weight: u32) -> Prg {
        Prg::for_model(self.model, weight)
    }

    /// The session id.
    pub fn session(&self) -> SessionId {
        self.session
    }
}

/// P1's correction bytes for one step, consumed front to back. P0 uses [`Corrections::none`].
#[derive(Debug)]
pub struct Corrections<'a> {
    bytes: &'a [u8],
}

impl<'a> Corrections<'a> {
    /// Corrections from a byte slice (a step's payload, reassembled from its frames).
    pub fn new(bytes: &'a [u8]) -> Self {
        Corrections { bytes }
    }

    /// No corrections (P0).
    pub fn none() -> Corrections<'static> {
        Corrections { bytes: &[] }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.bytes.len() < n {
            return Err(Error::CorrectionsShort { needed: n, available: self.bytes.len() });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// Takes the next `n` raw bytes.
    pub fn read_bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        self.take(n)
    }

    /// Reads `out.len()` ring elements.
    pub fn read_ring<R: Ring>(&mut self, out: &mut [R]) -> Result<(), Error> {
        let b = self.take(out.len() * R::BYTES)?;
        crate::ring::decode_slice(b, out)
    }

    /// Reads `out.len()` 64-bit words.
    pub fn read_words(&mut self, out: &mut [u64]) -> Result<(), Error> {
        self.read_ring(out)
    }

    /// Checks that every byte was consumed.
    pub fn finish(self) -> Result<(), Error> {
        if self.bytes.is_empty() { Ok(()) } else { Err(Error::CorrectionsLong { extra: self.bytes.len() }) }
    }
}

/// Maps a writer's error to [`Error::Io`].
pub fn io_err<E: embedded_io::Error>(e: E) -> Error {
    Error::Io(e.kind())
}

/// Writes ring elements little-endian to `w`.
pub fn put_ring<R: Ring, W: Write>(w: &mut W, xs: &[R]) -> Result<(), Error> {
    let mut buf = [0u8; CHUNK * 8];
    for part in xs.chunks(CHUNK) {
        let b = &mut buf[..part.len() * R::BYTES];
        crate::ring::encode_slice(part, b)?;
        w.write_all(b).map_err(io_err)?;
    }
    Ok(())
}

/// Fills `out` from `prg` for P0, or from the corrections for P1.
pub fn fill_or_read<R: Ring>(
    party: Party,
    prg: impl FnOnce() -> Prg,
    corr: &mut Corrections<'_>,
    out: &mut [R],
) -> Result<(), Error> {
    match party {
        Party::P0 => {
            prg().fill_ring(out);
            Ok(())
        }
        Party::P1 => corr.read_ring(out),
    }
}

/// The dealer's view: both parties' streams, and the working tile of the matmul dealer.
pub struct DealerStreams<'a> {
    /// P0's streams.
    pub p0: Streams<'a>,
    /// P1's streams.
    pub p1: Streams<'a>,
    /// Inner-dimension slice of the matmul dealer (the output bytes do not depend on it).
    pub tile: Tile,
}

impl<'a> DealerStreams<'a> {
    /// Both parties' streams with the default tile.
    pub fn new(p0: Streams<'a>, p1: Streams<'a>) -> Self {
        DealerStreams { p0, p1, tile: Tile::default() }
    }
}

/// How many columns of A (rows of B) the matmul dealer holds at once. Its working state is
/// about 2 x 16 x K ring elements plus one 16 x 16 block: 4.5 KiB (K16) to 34 KiB (K128) for
/// Z_2^64. Every tile gives the same bytes; bigger tiles seek less.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tile {
    /// K = 16.
    K16,
    /// K = 32.
    K32,
    /// K = 64 (default).
    #[default]
    K64,
    /// K = 128.
    K128,
}

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
    }
}

/// A stream positioned at element `index` (elements of ring `R`).
pub fn at<R: Ring>(mut p: Prg, index: usize) -> Prg {
    p.seek_elem::<R>(index as u64);
    p
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
            | Op::UpcastA { len }
            | Op::DowncastA { len, .. } => len as usize,
            Op::SignA { len, .. } | Op::SignLowA { len } => crate::bits::groups(len as usize),
            Op::MatMulFixed { n, m, .. } => blocks(n, m),
            Op::MatMulAA { batch, n, m, .. } => batch as usize * blocks(n, m),
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
            | Op::SignA { ring, .. } => ring,
            Op::UpcastA { .. } | Op::SignLowA { .. } => RingId::Z32,
            Op::DowncastA { .. } => RingId::Z64,
        }
    }
}
