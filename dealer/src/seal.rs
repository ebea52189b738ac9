//! Sealed frames: AES-128-GCM under a per-generation key derived from the party's provisioned
//! key, the session and the generation's salt ([`PartyKey::stream_key`]).
//!
//! A sealed stream opens with one clear frame of kind `Salt` (sequence 0, the 16-byte salt);
//! every later frame is sealed. nonce = seq (u32 LE) || step (u32 LE) || kind || party || 0 0;
//! associated data = the frame header bytes 0..32 (magic, version, kind, session, seq, step,
//! length), followed by a binding the caller names (the plan step a correction frame was dealt
//! for; empty otherwise). The payload on the wire is ciphertext || 16-byte tag; the frame CRC
//! covers both. A relay sees only ciphertext; altering any header field or byte, the salt, or
//! the step a frame is bound to fails the tag ([`Error::Auth`]), and the frame reader's sequence
//! check catches dropped, replayed and reordered frames before decryption is tried. Since the
//! key binds the salt, two generations of one (session, party) never share a key and nonce.

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::array::Array;
use aes_gcm::{Aes128Gcm, KeyInit};
use embedded_io::{Read, Write};

use ditto_core::Party;
use ditto_core::frame::{FrameHeader, FrameKind, FrameReader, FrameWriter, header_prefix};
use ditto_core::prg::SessionId;

use crate::Error;
use crate::keys::{PartyKey, Salt};

/// Bytes the tag adds to each payload.
pub const TAG_LEN: usize = 16;
/// Longest binding a frame's associated data may carry after its header.
pub const MAX_BIND: usize = 128;

/// The associated data: the header prefix, then `bind`.
fn associated(prefix: &[u8; 32], bind: &[u8], out: &mut [u8; 32 + MAX_BIND]) -> Result<usize, Error> {
    let n = 32 + bind.len();
    if bind.len() > MAX_BIND {
        return Err(Error::Plan { index: 0, reason: "frame binding too long" });
    }
    out[..32].copy_from_slice(prefix);
    out[32..n].copy_from_slice(bind);
    Ok(n)
}

fn nonce(seq: u32, step: u32, kind: FrameKind, party: Party) -> Array<u8, aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[0..4].copy_from_slice(&seq.to_le_bytes());
    n[4..8].copy_from_slice(&step.to_le_bytes());
    n[8] = kind as u8;
    n[9] = u8::from(!party.is_p0());
    Array::from(n)
}

fn cipher(key: &PartyKey, session: &SessionId, salt: &Salt) -> Aes128Gcm {
    let k = key.stream_key(session, salt);
    Aes128Gcm::new(&Array::from(*k.expose()))
}

/// Writes sealed frames of one party's stream.
pub struct SealedWriter<W> {
    frames: FrameWriter<W>,
    aead: Aes128Gcm,
    party: Party,
    session: SessionId,
}

impl<W> core::fmt::Debug for SealedWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SealedWriter {{ party: {:?}, session: {:?} }}", self.party, self.session)
    }
}

impl<W: Write> SealedWriter<W> {
    /// Starts `party`'s stream of `session` sealed under its provisioned key and `salt`: writes
    /// the clear salt frame.
    pub fn begin(w: W, key: &PartyKey, session: SessionId, salt: &Salt, party: Party) -> Result<Self, Error> {
        let mut frames = FrameWriter::new(w, session);
        frames.write_frame(FrameKind::Salt, 0, &salt.0)?;
        Ok(SealedWriter { frames, aead: cipher(key, &session, salt), party, session })
    }

    /// Seals `buf[..len]` in place (`buf` needs `len + TAG_LEN` bytes) and writes it as one frame.
    pub fn write_sealed(
        &mut self,
        kind: FrameKind,
        step: u32,
        buf: &mut [u8],
        len: usize,
    ) -> Result<(), Error> {
        self.write_sealed_bound(kind, step, buf, len, &[])
    }

    /// [`Self::write_sealed`] with `bind` (at most [`MAX_BIND`] bytes) in the associated data:
    /// the reader must name the same bytes to open the frame.
    pub fn write_sealed_bound(
        &mut self,
        kind: FrameKind,
        step: u32,
        buf: &mut [u8],
        len: usize,
        bind: &[u8],
    ) -> Result<(), Error> {
        let total = len + TAG_LEN;
        if buf.len() < total {
            return Err(Error::Chunk { chunk: len, max: buf.len().saturating_sub(TAG_LEN) });
        }
        let seq = self.frames.seq();
        let mut ad = [0u8; 32 + MAX_BIND];
        let n = associated(&header_prefix(kind, self.session, seq, step, total)?, bind, &mut ad)?;
        let (pt, rest) = buf.split_at_mut(len);
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce(seq, step, kind, self.party), &ad[..n], pt.into())
            .map_err(|_| Error::Auth { seq, step })?;
        rest[..TAG_LEN].copy_from_slice(&tag);
        self.frames.write_frame(kind, step, &buf[..total])?;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), Error> {
        Ok(self.frames.flush()?)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.frames.into_inner()
    }
}

/// Reads and opens sealed frames of one party's stream.
pub struct SealedReader<R> {
    frames: FrameReader<R>,
    aead: Aes128Gcm,
    party: Party,
    session: SessionId,
    salt: Salt,
}

impl<R> core::fmt::Debug for SealedReader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SealedReader {{ party: {:?}, session: {:?} }}", self.party, self.session)
    }
}

impl<R: Read> SealedReader<R> {
    /// Opens `party`'s stream of `session`: reads the clear salt frame and derives the key;
    /// payloads up to `limit` bytes (tag included). `buf` holds the salt frame's payload.
    pub fn open(
        r: R,
        key: &PartyKey,
        session: SessionId,
        party: Party,
        limit: usize,
        buf: &mut [u8],
    ) -> Result<Self, Error> {
        let mut frames = FrameReader::new(r, session, limit);
        let h = frames.read_frame(buf)?;
        if h.kind != FrameKind::Salt || h.step != 0 || h.len != 16 {
            return Err(Error::Unexpected {
                expected: "salt",
                expected_step: 0,
                got: h.kind,
                got_step: h.step,
            });
        }
        let mut s = [0u8; 16];
        s.copy_from_slice(&buf[..16]);
        let salt = Salt(s);
        Ok(SealedReader { frames, aead: cipher(key, &session, &salt), party, session, salt })
    }

    /// The stream's salt.
    pub fn salt(&self) -> Salt {
        self.salt
    }

    /// Reads, checks and opens the next frame into `buf`; the plaintext is
    /// `&buf[..returned length]`.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<(FrameHeader, usize), Error> {
        self.read_bound(buf, &[])
    }

    /// [`Self::read`] where a `Corrections` frame must have been sealed with `bind` in its
    /// associated data (other kinds are read unbound, so that an early end frame is reported
    /// as such, not as a failed tag).
    pub fn read_bound(&mut self, buf: &mut [u8], bind: &[u8]) -> Result<(FrameHeader, usize), Error> {
        let h = self.frames.read_frame(buf)?;
        let bind = if h.kind == FrameKind::Corrections { bind } else { &[] };
        let total = h.len as usize;
        let auth = Error::Auth { seq: h.seq, step: h.step };
        if total < TAG_LEN {
            return Err(auth);
        }
        let len = total - TAG_LEN;
        let mut ad = [0u8; 32 + MAX_BIND];
        let n = associated(&header_prefix(h.kind, self.session, h.seq, h.step, total)?, bind, &mut ad)?;
        let (ct, tag) = buf[..total].split_at_mut(len);
        let tag = Array::try_from(&*tag).map_err(|_| auth.clone())?;
        self.aead
            .decrypt_inout_detached(&nonce(h.seq, h.step, h.kind, self.party), &ad[..n], ct.into(), &tag)
            .map_err(|_| auth)?;
        Ok((h, len))
    }
}
