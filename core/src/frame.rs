//! Frames: how the dealer's streams (and later other byte streams) are cut into checked units.
//!
//! A frame is a fixed 36-byte header followed by `len` payload bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | magic `0xD1 0x70` |
//! | 2 | protocol version ([`FRAME_VERSION`]) |
//! | 3 | kind ([`FrameKind`]) |
//! | 4..20 | session id |
//! | 20..24 | sequence number (u32 LE; 0, 1, 2, ... within a stream) |
//! | 24..28 | plan step index (u32 LE; never decreases within a stream) |
//! | 28..32 | payload length (u32 LE) |
//! | 32..36 | CRC-32 (IEEE) of header bytes 0..32 and the payload |
//!
//! Payloads are postcard encodings for control messages and raw little-endian ring elements
//! for corrections. The reader checks each field in turn and reports the first problem as its
//! own [`Error`] variant: magic, version, kind, length limit, session, sequence, step order,
//! truncation, checksum. The CRC catches accidents; tampering is the AEAD's job (dealer issue).

use embedded_io::{Read, ReadExactError, Write};
use serde::{Deserialize, Serialize};

use crate::prg::SessionId;
use crate::{Error, corr::io_err};

/// Frame magic.
pub const MAGIC: u16 = 0xD170;
/// Version of the frame format.
pub const FRAME_VERSION: u8 = 2;
/// Header length in bytes.
pub const HEADER_LEN: usize = 36;
/// Largest payload any frame may declare (a reader may set a smaller limit).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum FrameKind {
    /// A postcard-encoded control message (plan, parameters, handshake).
    Control = 1,
    /// A party's sealed seed material.
    Seed = 2,
    /// A piece of a step's correction stream.
    Corrections = 3,
    /// End of stream (empty payload, or a digest of what was sent).
    End = 4,
    /// A stream's public per-generation salt, in clear (the first frame of a sealed stream).
    Salt = 5,
}

impl FrameKind {
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(FrameKind::Control),
            2 => Ok(FrameKind::Seed),
            3 => Ok(FrameKind::Corrections),
            4 => Ok(FrameKind::End),
            5 => Ok(FrameKind::Salt),
            other => Err(Error::FrameKindUnknown(other)),
        }
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Kind.
    pub kind: FrameKind,
    /// Session id.
    pub session: SessionId,
    /// Sequence number within the stream.
    pub seq: u32,
    /// Plan step index.
    pub step: u32,
    /// Payload length.
    pub len: u32,
    /// CRC-32 of header bytes 0..32 and payload.
    pub crc: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Header bytes 0..32 (everything but the CRC) of a frame with a `len`-byte payload. Sealed
/// streams use them as the AEAD's associated data.
pub fn header_prefix(
    kind: FrameKind,
    session: SessionId,
    seq: u32,
    step: u32,
    len: usize,
) -> Result<[u8; 32], Error> {
    let oversized = Error::FrameOversized { limit: MAX_PAYLOAD, declared: len };
    if len > MAX_PAYLOAD {
        return Err(oversized);
    }
    let len32 = u32::try_from(len).map_err(|_| oversized)?;
    let mut h = [0u8; 32];
    h[0..2].copy_from_slice(&MAGIC.to_be_bytes());
    h[2] = FRAME_VERSION;
    h[3] = kind as u8;
    h[4..20].copy_from_slice(&session.0);
    h[20..24].copy_from_slice(&seq.to_le_bytes());
    h[24..28].copy_from_slice(&step.to_le_bytes());
    h[28..32].copy_from_slice(&len32.to_le_bytes());
    Ok(h)
}

/// Encodes a header for `payload` (computes the CRC).
pub fn encode_header(
    kind: FrameKind,
    session: SessionId,
    seq: u32,
    step: u32,
    payload: &[u8],
) -> Result<[u8; HEADER_LEN], Error> {
    let mut h = [0u8; HEADER_LEN];
    h[..32].copy_from_slice(&header_prefix(kind, session, seq, step, payload.len())?);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..32]);
    crc.update(payload);
    h[32..36].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(h)
}

/// Writes frames of one stream, numbering them.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    session: SessionId,
    seq: u32,
}

impl<W: Write> FrameWriter<W> {
    /// A writer for session `session`, starting at sequence number 0.
    pub fn new(inner: W, session: SessionId) -> Self {
        FrameWriter { inner, session, seq: 0 }
    }

    /// Writes one frame.
    pub fn write_frame(&mut self, kind: FrameKind, step: u32, payload: &[u8]) -> Result<(), Error> {
        let h = encode_header(kind, self.session, self.seq, step, payload)?;
        self.inner.write_all(&h).map_err(io_err)?;
        self.inner.write_all(payload).map_err(io_err)?;
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }

    /// Writes a postcard-encoded message as one frame, using `scratch` for the encoding.
    pub fn write_message<T: Serialize>(
        &mut self,
        kind: FrameKind,
        step: u32,
        msg: &T,
        scratch: &mut [u8],
    ) -> Result<(), Error> {
        let used = postcard::to_slice(msg, scratch)
            .map_err(|_| Error::Encoding("message does not fit the frame buffer"))?;
        let n = used.len();
        let h = encode_header(kind, self.session, self.seq, step, &scratch[..n])?;
        self.inner.write_all(&h).map_err(io_err)?;
        self.inner.write_all(&scratch[..n]).map_err(io_err)?;
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush().map_err(io_err)
    }

    /// The next sequence number.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Reads and checks the frames of one stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    session: SessionId,
    next_seq: u32,
    last_step: Option<u32>,
    limit: usize,
}

fn read_err<E: embedded_io::Error>(e: ReadExactError<E>, part: &'static str) -> Error {
    match e {
        ReadExactError::UnexpectedEof => Error::FrameTruncated { part },
        ReadExactError::Other(e) => io_err(e),
    }
}

impl<R: Read> FrameReader<R> {
    /// A reader expecting session `session`, frames from sequence 0, payloads of at most
    /// `limit` bytes (capped at [`MAX_PAYLOAD`]).
    pub fn new(inner: R, session: SessionId, limit: usize) -> Self {
        FrameReader { inner, session, next_seq: 0, last_step: None, limit: limit.min(MAX_PAYLOAD) }
    }

    /// Reads the next frame into `buf` (at least the reader's limit is needed only for frames
    /// that large); returns its header. The payload is `&buf[..header.len as usize]`.
    pub fn read_frame(&mut self, buf: &mut [u8]) -> Result<FrameHeader, Error> {
        let mut h = [0u8; HEADER_LEN];
        self.inner.read_exact(&mut h).map_err(|e| read_err(e, "header"))?;
        let magic = u16::from_be_bytes([h[0], h[1]]);
        if magic != MAGIC {
            return Err(Error::FrameMagic { expected: MAGIC, got: magic });
        }
        if h[2] != FRAME_VERSION {
            return Err(Error::Version { expected: u16::from(FRAME_VERSION), got: u16::from(h[2]) });
        }
        let kind = FrameKind::from_u8(h[3])?;
        let len = u32_at(&h, 28);
        let declared = len as usize;
        let limit = self.limit.min(buf.len());
        if declared > limit {
            return Err(Error::FrameOversized { limit, declared });
        }
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&h[4..20]);
        let session = SessionId(sid);
        if session != self.session {
            return Err(Error::FrameSession { expected: self.session.as_u128(), got: session.as_u128() });
        }
        let seq = u32_at(&h, 20);
        if seq != self.next_seq {
            return Err(Error::FrameSequence { expected: self.next_seq, got: seq });
        }
        let step = u32_at(&h, 24);
        if let Some(prev) = self.last_step
            && step < prev
        {
            return Err(Error::FrameStep { previous: prev, got: step });
        }
        let payload = &mut buf[..declared];
        self.inner.read_exact(payload).map_err(|e| read_err(e, "payload"))?;
        let expected = u32_at(&h, 32);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[..32]);
        crc.update(payload);
        let computed = crc.finalize();
        if computed != expected {
            return Err(Error::FrameCrc { expected, computed });
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        self.last_step = Some(step);
        Ok(FrameHeader { kind, session, seq, step, len, crc: expected })
    }

    /// Reads a frame that must be of `kind` and decodes its postcard payload.
    pub fn read_message<'b, T: Deserialize<'b>>(
        &mut self,
        kind: FrameKind,
        buf: &'b mut [u8],
    ) -> Result<(FrameHeader, T), Error> {
        let h = self.read_frame(buf)?;
        if h.kind != kind {
            return Err(Error::FrameKindUnexpected { expected: kind, got: h.kind });
        }
        let msg = postcard::from_bytes(&buf[..h.len as usize])
            .map_err(|_| Error::Encoding("malformed message payload"))?;
        Ok((h, msg))
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}
