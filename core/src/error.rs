//! The error type of ditto-core. No variant carries a secret value: errors name bounds,
//! shapes and header fields (all public), never the offending share or plaintext.

use crate::frame::FrameKind;

/// Everything that can go wrong in ditto-core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A real number does not fit the ring at this scale (the value itself is not reported).
    #[error("fixed-point value out of range for a {bits}-bit ring with {frac} fractional bits")]
    FixedOutOfRange {
        /// Ring width in bits.
        bits: u32,
        /// Fractional bits.
        frac: u32,
    },
    /// NaN or infinity cannot be encoded.
    #[error("fixed-point encoding of a non-finite number")]
    FixedNotFinite,
    /// A fractional-bit count the ring cannot hold.
    #[error("{frac} fractional bits do not fit a {bits}-bit ring")]
    BadScale {
        /// Ring width in bits.
        bits: u32,
        /// Requested fractional bits.
        frac: u32,
    },
    /// Two slices that must agree in length do not.
    #[error("length mismatch in {what}: expected {expected}, got {got}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Length required.
        expected: usize,
        /// Length supplied.
        got: usize,
    },
    /// A plan step whose parameters are invalid.
    #[error("invalid plan step {step}: {reason}")]
    BadStep {
        /// Index of the step in its plan.
        step: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A plan whose header does not match its steps.
    #[error("plan declares {declared} steps but holds {actual}")]
    PlanStepCount {
        /// Count in the header.
        declared: u32,
        /// Steps present.
        actual: u32,
    },
    /// A plan or protocol version this build does not speak.
    #[error("unsupported version: expected {expected}, got {got}")]
    Version {
        /// Version this build speaks.
        expected: u16,
        /// Version received.
        got: u16,
    },
    /// The correction stream ended before the step's corrections were complete.
    #[error("correction stream exhausted: needed {needed} more bytes, {available} available")]
    CorrectionsShort {
        /// Bytes still needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The correction stream for a step holds more bytes than the step consumes.
    #[error("correction stream has {extra} bytes beyond the step's need")]
    CorrectionsLong {
        /// Bytes left over.
        extra: usize,
    },
    /// A serialization error (postcard) on a wire type.
    #[error("encoding error: {0}")]
    Encoding(&'static str),
    /// A frame that does not begin with the frame magic.
    #[error("bad frame magic: expected {expected:#06x}, got {got:#06x}")]
    FrameMagic {
        /// The magic.
        expected: u16,
        /// What came.
        got: u16,
    },
    /// An unknown frame kind byte.
    #[error("unknown frame kind {0}")]
    FrameKindUnknown(u8),
    /// A frame of a kind not allowed at this point of the stream.
    #[error("unexpected frame kind: expected {expected:?}, got {got:?}")]
    FrameKindUnexpected {
        /// Kind the reader expected.
        expected: FrameKind,
        /// Kind that came.
        got: FrameKind,
    },
    /// A frame for another session.
    #[error("frame for the wrong session: expected {expected:032x}, got {got:032x}")]
    FrameSession {
        /// Session id of this stream.
        expected: u128,
        /// Session id in the frame.
        got: u128,
    },
    /// A frame out of sequence: dropped, replayed or reordered.
    #[error("frame out of sequence: expected frame {expected}, got {got}")]
    FrameSequence {
        /// Sequence number due.
        expected: u32,
        /// Sequence number received.
        got: u32,
    },
    /// A frame whose step index goes backwards.
    #[error("frame step out of order: step {got} after step {previous}")]
    FrameStep {
        /// Step of the previous frame.
        previous: u32,
        /// Step in this frame.
        got: u32,
    },
    /// A frame whose declared payload exceeds the limit.
    #[error("frame payload too large: limit {limit} bytes, declared {declared}")]
    FrameOversized {
        /// The reader's limit.
        limit: usize,
        /// Declared payload length.
        declared: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream truncated inside a frame ({part})")]
    FrameTruncated {
        /// Header or payload.
        part: &'static str,
    },
    /// A frame whose CRC-32 does not match its bytes.
    #[error("frame checksum mismatch: header says {expected:#010x}, computed {computed:#010x}")]
    FrameCrc {
        /// CRC in the header.
        expected: u32,
        /// CRC of the bytes received.
        computed: u32,
    },
    /// An I/O error of the underlying byte stream.
    #[error("i/o error: {0:?}")]
    Io(embedded_io::ErrorKind),
}
