//! Sealed frames: AES-128-GCM under a per-session key derived from the party's provisioned key.
//!
//! nonce = seq (u32 LE) || step (u32 LE) || kind || party || 0 0; associated data = the frame
//! header bytes 0..32 (magic, version, kind, session, seq, step, length). The payload on the
//! wire is ciphertext || 16-byte tag; the frame CRC covers both. A relay sees only ciphertext;
//! altering any header field or byte fails the tag ([`Error::Auth`]), and the frame reader's
//! sequence check catches dropped, replayed and reordered frames before decryption is tried.

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::array::Array;
use aes_gcm::{Aes128Gcm, KeyInit};
use embedded_io::{Read, Write};

use ditto_core::Party;
use ditto_core::frame::{FrameHeader, FrameKind, FrameReader, FrameWriter, header_prefix};
use ditto_core::prg::SessionId;

use crate::Error;
use crate::keys::PartyKey;

/// Bytes the tag adds to each payload.
pub const TAG_LEN: usize = 16;

fn nonce(seq: u32, step: u32, kind: FrameKind, party: Party) -> Array<u8, aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[0..4].copy_from_slice(&seq.to_le_bytes());
    n[4..8].copy_from_slice(&step.to_le_bytes());
    n[8] = kind as u8;
    n[9] = u8::from(!party.is_p0());
    Array::from(n)
}

fn cipher(key: &PartyKey, session: &SessionId) -> Aes128Gcm {
    let k = key.session_key(session);
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
    /// A writer sealing for `party` in `session` under its provisioned key.
    pub fn new(w: W, key: &PartyKey, session: SessionId, party: Party) -> Self {
        SealedWriter { frames: FrameWriter::new(w, session), aead: cipher(key, &session), party, session }
    }

    /// Seals `buf[..len]` in place (`buf` needs `len + TAG_LEN` bytes) and writes it as one frame.
    pub fn write_sealed(
        &mut self,
        kind: FrameKind,
        step: u32,
        buf: &mut [u8],
        len: usize,
    ) -> Result<(), Error> {
        let total = len + TAG_LEN;
        if buf.len() < total {
            return Err(Error::Chunk { chunk: len, max: buf.len().saturating_sub(TAG_LEN) });
        }
        let seq = self.frames.seq();
        let ad = header_prefix(kind, self.session, seq, step, total)?;
        let (pt, rest) = buf.split_at_mut(len);
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce(seq, step, kind, self.party), &ad, pt.into())
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
}

impl<R> core::fmt::Debug for SealedReader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SealedReader {{ party: {:?}, session: {:?} }}", self.party, self.session)
    }
}

impl<R: Read> SealedReader<R> {
    /// A reader for `party`'s stream of `session`; payloads up to `limit` bytes (tag included).
    pub fn new(r: R, key: &PartyKey, session: SessionId, party: Party, limit: usize) -> Self {
        SealedReader {
            frames: FrameReader::new(r, session, limit),
            aead: cipher(key, &session),
            party,
            session,
        }
    }

    /// Reads, checks and opens the next frame into `buf`; the plaintext is
    /// `&buf[..returned length]`.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<(FrameHeader, usize), Error> {
        let h = self.frames.read_frame(buf)?;
        let total = h.len as usize;
        let auth = Error::Auth { seq: h.seq, step: h.step };
        if total < TAG_LEN {
            return Err(auth);
        }
        let len = total - TAG_LEN;
        let ad = header_prefix(h.kind, self.session, h.seq, h.step, total)?;
        let (ct, tag) = buf[..total].split_at_mut(len);
        let tag = Array::try_from(&*tag).map_err(|_| auth.clone())?;
        self.aead
            .decrypt_inout_detached(&nonce(h.seq, h.step, h.kind, self.party), &ad, ct.into(), &tag)
            .map_err(|_| auth)?;
        Ok((h, len))
    }
}
