//! Correlation plumbing shared by every protocol: the streams each party expands, the
//! dealer's correction stream, and the dealer's view of both parties' streams. The per-step
//! dispatch over the protocols is the `deal` module.
//!
//! Seed compression (DESIGN.md §4): every value P0 holds is expanded from its 16-byte session
//! seed (and, for model-fixed weight masks, its model share seed). P1 expands its *random*
//! components from its own seeds and reads the *dependent* ones (e.g. its share of C = A*B)
//! from the correction stream, which the dealer computes as "true value minus P0's share".
//! Each component comes from its own [`Purpose`] stream, so any element can be regenerated alone.
//!
//! Correction streams are little-endian ring elements (and little-endian 64-bit words for
//! bit-sliced boolean values) laid out per kind as each protocol module documents.

use embedded_io::Write;

use crate::prg::{Prg, Purpose, Seed, SessionId};
use crate::{Error, Party, Ring};

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
/// about 2 x 16 x K ring elements plus one 16 x 16 block: 6 KiB (K16) to 34 KiB (K128) for
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

/// A stream positioned at element `index` (elements of ring `R`).
pub fn at<R: Ring>(mut p: Prg, index: usize) -> Prg {
    p.seek_elem::<R>(index as u64);
    p
}
