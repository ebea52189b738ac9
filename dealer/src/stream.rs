//! Generating one party's stream for a plan, with bounded memory.
//!
//! Layout ([`crate::seal`]):
//! 0. `Salt` frame, step 0, in clear: the generation's salt (16 bytes);
//! 1. `Control` frame, step 0: [`Hello`] (postcard; names the plan hash and the share set);
//! 2. `Seed` frame, step 0: the party's [`PartySeeds`] (32 bytes);
//! 3. P1 only: for each step i in order, its corrections in `Corrections` frames of step i, each
//!    holding `chunk` bytes except the step's last (the step's size is
//!    `Step::p1_correction_bytes`, so frame boundaries are fixed by (plan, chunk)), each sealed
//!    with the postcard encoding of step i in its associated data;
//! 4. `End` frame, step n_steps: [`End`], with the hash of the plan as it was dealt.
//!
//! The plan is read twice through [`PlanSource`]: once to validate it and compute its hash (so
//! a plan the dealer cannot serve is an error before any byte is written), once to generate.
//! A microcontroller can therefore receive the plan twice instead of storing it. A relay that
//! serves the plan (a host bridging a board) could answer the two passes differently, so the
//! dealing pass is hashed too and every correction frame is bound to the step it was dealt
//! for: P1 cannot open corrections dealt for another step than its own, and the end frame's
//! hash must equal the hello's.

use embedded_io::Write;
use serde::{Deserialize, Serialize};

use ditto_core::Party;
use ditto_core::corr::{DealerStreams, Streams, Tile};
use ditto_core::deal::deal_step;
use ditto_core::frame::FrameKind;
use ditto_core::plan::{PLAN_VERSION, PlanHasher, PlanHeader, Step};
use ditto_core::prg::ShareSetId;

use crate::keys::{DealerSeeds, Generation, PartyKey, PartySeeds};
use crate::seal::{MAX_BIND, SealedWriter, TAG_LEN};
use crate::{DEFAULT_CHUNK, Error};

/// First message of every stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Plan and correlation format version.
    pub version: u16,
    /// Whose stream this is.
    pub party: Party,
    /// Hash of the plan the stream serves.
    pub plan_hash: [u8; 32],
    /// The sharing whose weight masks the model share seed expands.
    pub share_set: ShareSetId,
    /// Steps in the plan.
    pub n_steps: u32,
    /// Correction bytes per frame.
    pub chunk: u32,
}

/// Last message of every stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Correction bytes sent (0 for P0).
    pub correction_bytes: u64,
    /// Frames before this one (the clear salt frame not counted).
    pub frames: u32,
    /// Hash of the plan as it was dealt (computed over the steps the corrections were made
    /// for); equal to the hello's unless the plan source changed between the two passes.
    pub plan_hash: [u8; 32],
}

/// A plan the dealer can read (at least twice, in order).
pub trait PlanSource {
    /// The plan header.
    fn header(&self) -> &PlanHeader;
    /// Step `index` (0-based, < n_steps).
    fn step(&mut self, index: u32) -> Result<Step, Error>;
}

/// A plan held in memory.
#[derive(Debug, Clone, Copy)]
pub struct SlicePlan<'a> {
    /// Header.
    pub header: &'a PlanHeader,
    /// Steps.
    pub steps: &'a [Step],
}

impl PlanSource for SlicePlan<'_> {
    fn header(&self) -> &PlanHeader {
        self.header
    }
    fn step(&mut self, index: u32) -> Result<Step, Error> {
        self.steps.get(index as usize).copied().ok_or(Error::Plan { index, reason: "step missing from plan" })
    }
}

/// What a step's correction frames are bound to (their associated data after the header): the
/// step's postcard encoding.
pub fn step_binding<'b>(step: &Step, buf: &'b mut [u8; MAX_BIND]) -> Result<&'b [u8], Error> {
    Ok(postcard::to_slice(step, buf).map_err(|_| ditto_core::Error::Encoding("plan step"))?)
}

/// Validates every step and returns the plan hash.
pub fn check_plan(plan: &mut impl PlanSource) -> Result<[u8; 32], Error> {
    let mut h = PlanHasher::new(plan.header())?;
    for i in 0..plan.header().n_steps {
        h.push(&plan.step(i)?)?;
    }
    Ok(h.finish()?)
}

/// What was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Frames written, the end frame included.
    pub frames: u32,
    /// Correction bytes (payload before sealing).
    pub correction_bytes: u64,
}

/// Session parameters of one generation.
#[derive(Debug)]
pub struct SessionSpec {
    /// The session, sharing and salt the streams are bound to.
    pub generation: Generation,
    /// P0's and P1's seeds for this generation.
    pub seeds: [PartySeeds; 2],
    /// Correction bytes per frame ([`DEFAULT_CHUNK`] unless both ends agree otherwise).
    pub chunk: usize,
    /// Working tile of the matmul dealer (memory only; the bytes do not depend on it).
    pub tile: Tile,
}

impl SessionSpec {
    /// The generation's seeds derived from the dealer's seeds, with the default chunk size.
    pub fn new(generation: Generation, seeds: &DealerSeeds) -> Self {
        SessionSpec {
            generation,
            seeds: [seeds.party(&generation, Party::P0), seeds.party(&generation, Party::P1)],
            chunk: DEFAULT_CHUNK,
            tile: Tile::default(),
        }
    }
}

/// Largest chunk a stream may use (a party sizes its buffer for it before reading the hello).
pub const MAX_CHUNK: usize = 1 << 16;

/// Scratch bytes [`write_stream`] needs for a chunk size.
pub const fn scratch_len(chunk: usize) -> usize {
    let c = if chunk < 128 { 128 } else { chunk };
    c + TAG_LEN
}

/// Adapts a step's correction bytes into sealed frames of `chunk` bytes.
struct ChunkSink<'s, W> {
    out: &'s mut SealedWriter<W>,
    buf: &'s mut [u8],
    chunk: usize,
    fill: usize,
    step: u32,
    /// The step's encoding, bound into each of its frames.
    bind: &'s [u8],
    summary: &'s mut Summary,
    failed: Option<Error>,
}

#[derive(Debug, thiserror::Error)]
#[error("dealer stream sink failed")]
struct SinkError;

impl embedded_io::Error for SinkError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

impl<W> embedded_io::ErrorType for ChunkSink<'_, W> {
    type Error = SinkError;
}

impl<W: Write> ChunkSink<'_, W> {
    fn emit(&mut self) -> Result<(), Error> {
        if self.fill > 0 {
            self.out.write_sealed_bound(FrameKind::Corrections, self.step, self.buf, self.fill, self.bind)?;
            self.summary.frames += 1;
            self.summary.correction_bytes += self.fill as u64;
            self.fill = 0;
        }
        Ok(())
    }
}

impl<W: Write> Write for ChunkSink<'_, W> {
    fn write(&mut self, data: &[u8]) -> Result<usize, SinkError> {
        let n = data.len().min(self.chunk - self.fill);
        self.buf[self.fill..self.fill + n].copy_from_slice(&data[..n]);
        self.fill += n;
        if self.fill == self.chunk
            && let Err(e) = self.emit()
        {
            self.failed = Some(e);
            return Err(SinkError);
        }
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Produces the correction bytes of each step, in plan order.
pub trait Producer {
    /// Writes step `index`'s corrections (exactly `step.p1_correction_bytes()` bytes) to `w`.
    fn produce<W: Write>(&mut self, index: u32, step: &Step, w: &mut W) -> Result<(), ditto_core::Error>;
}

/// The bounded-memory producer: [`deal_step`] on the spot.
pub struct InPlace<'a>(pub DealerStreams<'a>);

impl Producer for InPlace<'_> {
    fn produce<W: Write>(&mut self, index: u32, step: &Step, w: &mut W) -> Result<(), ditto_core::Error> {
        deal_step(&self.0, index, step, w)
    }
}

/// Both parties' dealer streams of a session.
pub fn dealer_streams(spec: &SessionSpec) -> DealerStreams<'_> {
    let [s0, s1] = &spec.seeds;
    DealerStreams {
        p0: Streams::new(Party::P0, &s0.session, &s0.model, spec.generation.session),
        p1: Streams::new(Party::P1, &s1.session, &s1.model, spec.generation.session),
        tile: spec.tile,
    }
}

/// Writes party `party`'s whole stream for `plan` to `w`. `scratch` must hold
/// [`scratch_len`]`(spec.chunk)` bytes; nothing else is allocated.
pub fn write_stream<W: Write>(
    party: Party,
    plan: &mut impl PlanSource,
    spec: &SessionSpec,
    key: &PartyKey,
    w: W,
    scratch: &mut [u8],
) -> Result<Summary, Error> {
    write_stream_with(party, plan, spec, key, w, scratch, &mut InPlace(dealer_streams(spec)))
}

/// [`write_stream`] with another producer of the corrections (e.g. a parallel one); the bytes
/// are the same whatever the producer.
pub fn write_stream_with<W: Write>(
    party: Party,
    plan: &mut impl PlanSource,
    spec: &SessionSpec,
    key: &PartyKey,
    w: W,
    scratch: &mut [u8],
    producer: &mut impl Producer,
) -> Result<Summary, Error> {
    let max = MAX_CHUNK;
    if spec.chunk == 0 || spec.chunk > max {
        return Err(Error::Chunk { chunk: spec.chunk, max });
    }
    if scratch.len() < scratch_len(spec.chunk) {
        return Err(Error::Chunk { chunk: spec.chunk, max: scratch.len().saturating_sub(TAG_LEN) });
    }
    let plan_hash = check_plan(plan)?;
    let n_steps = plan.header().n_steps;
    let chunk32 = u32::try_from(spec.chunk).map_err(|_| Error::Chunk { chunk: spec.chunk, max })?;
    let g = &spec.generation;
    let mut out = SealedWriter::begin(w, key, g.session, &g.salt, party)?;
    let mut summary = Summary::default();

    let hello =
        Hello { version: PLAN_VERSION, party, plan_hash, share_set: g.share_set, n_steps, chunk: chunk32 };
    let n = postcard::to_slice(&hello, scratch).map_err(|_| ditto_core::Error::Encoding("hello"))?.len();
    out.write_sealed(FrameKind::Control, 0, scratch, n)?;
    scratch[..PartySeeds::LEN].copy_from_slice(&spec.seeds[party.index()].to_bytes());
    out.write_sealed(FrameKind::Seed, 0, scratch, PartySeeds::LEN)?;
    summary.frames += 2;

    // P0's stream deals nothing per step: the first pass was its dealing pass.
    let mut dealt_hash = plan_hash;
    if party == Party::P1 {
        let mut dealt = PlanHasher::new(plan.header())?;
        for i in 0..n_steps {
            let step = plan.step(i)?;
            dealt.push(&step)?;
            let mut enc = [0u8; MAX_BIND];
            let bind = step_binding(&step, &mut enc)?;
            let mut sink = ChunkSink {
                out: &mut out,
                buf: scratch,
                chunk: spec.chunk,
                fill: 0,
                step: i,
                bind,
                summary: &mut summary,
                failed: None,
            };
            let r = producer.produce(i, &step, &mut sink);
            if let Some(e) = sink.failed.take() {
                return Err(e);
            }
            r?;
            sink.emit()?;
        }
        dealt_hash = dealt.finish()?;
    }
    let end =
        End { correction_bytes: summary.correction_bytes, frames: summary.frames, plan_hash: dealt_hash };
    let n = postcard::to_slice(&end, scratch).map_err(|_| ditto_core::Error::Encoding("end"))?.len();
    out.write_sealed(FrameKind::End, n_steps, scratch, n)?;
    summary.frames += 1;
    out.flush()?;
    Ok(summary)
}
