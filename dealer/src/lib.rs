//! ditto-dealer: correlated randomness for a plan, streamed, seed-compressed and sealed.
//!
//! For one session the dealer writes two streams of frames ([`ditto_core::frame`]):
//!
//! * **P0's stream:** the generation's salt (in clear), a hello (plan hash, share set, party,
//!   chunk size), P0's seeds (its 16-byte session seed and its model share seed), an end frame.
//!   Nothing else: P0 expands every correlation from its seeds.
//! * **P1's stream:** the same salt, hello and seeds, then P1's correction stream, step by step
//!   in plan order, cut into frames of at most `chunk` bytes, then the end frame.
//!
//! Every payload after the salt is sealed with AES-128-GCM under a key derived from the party's
//! provisioned key, the session id and the salt; the nonce is (sequence, step, kind, party) and
//! the associated data is the frame header (and, for corrections, the step they were dealt
//! for), so a relay learns nothing and cannot alter, drop, replay or reorder a frame
//! undetected ([`seal`]). Generation needs no allocator and a few KiB of state whatever the
//! model size ([`stream`]); the `std` feature adds host conveniences.
#![no_std]
#![deny(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod board;
#[cfg(feature = "std")]
pub mod host;
pub mod keys;
pub mod party;
pub mod seal;
pub mod stream;

pub use ditto_core::deal::deal_step;

/// Default correction bytes per frame: small enough for a microcontroller's buffers, large
/// enough that framing and sealing cost about 1.3% (52 bytes per frame).
pub const DEFAULT_CHUNK: usize = 4096;

/// Everything that can go wrong while dealing or reading a dealer stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A core error (plan validation, framing, corrections).
    #[error(transparent)]
    Core(#[from] ditto_core::Error),
    /// A frame whose authentication tag does not verify: tampered, or sealed under another key.
    #[error("dealer frame {seq} (step {step}) failed authentication: tampered, or wrong party key")]
    Auth {
        /// Sequence number of the frame.
        seq: u32,
        /// Step index in its header.
        step: u32,
    },
    /// The stream was made for another plan.
    #[error("plan hash mismatch: this party's plan is {expected}, the dealer's stream is for {got}")]
    PlanHash {
        /// This party's plan hash (hex prefix).
        expected: HashHex,
        /// The stream's plan hash (hex prefix).
        got: HashHex,
    },
    /// The stream carries the weight masks of another sharing than the party's model share.
    #[error(
        "the dealer's stream is for share set {got}, this party holds share set {expected}: the \
         dealer was asked for another sharing's masks"
    )]
    ShareSet {
        /// This party's share-set id.
        expected: ditto_core::prg::ShareSetId,
        /// The stream's.
        got: ditto_core::prg::ShareSetId,
    },
    /// The dealer dealt for another plan than its hello announced (the plan source changed
    /// between its hashing and dealing passes, e.g. a relay answering them differently).
    #[error(
        "the dealer's stream announced plan {announced} but was dealt for plan {dealt}: the plan \
         changed between the dealer's two passes (a tampering relay?)"
    )]
    DealtPlan {
        /// The hello's plan hash.
        announced: HashHex,
        /// The hash of the steps the corrections were dealt for.
        dealt: HashHex,
    },
    /// A board's link carried bytes that held no request magic before it fell silent (line
    /// noise, the tail of a request cut short): discarded, nothing answered.
    #[error("{skipped} bytes on the link held no request (noise or a request cut short): discarded")]
    NoRequest {
        /// Bytes discarded.
        skipped: u32,
    },
    /// A board's request whose tag does not verify under the board's relay key: not from its
    /// relay, or the relay holds another board's key.
    #[error(
        "request not authenticated: its tag does not verify under this board's relay key (give \
         the relay the relay.key provisioned with this board's key page)"
    )]
    NotAuthenticated,
    /// A session this dealer has served already (a board, under its current master seed).
    #[error("session {session:032x} was already served by this dealer")]
    SessionServed {
        /// The session id.
        session: u128,
    },
    /// A board's set of served sessions is full (it draws a new master seed before the next).
    #[error("the set of {capacity} sessions served under this master seed is full")]
    ServedSetFull {
        /// Sessions the set holds.
        capacity: usize,
    },
    /// The stream was made for the other party.
    #[error("stream is for {got:?}, this is {expected:?}")]
    WrongParty {
        /// This party.
        expected: ditto_core::Party,
        /// The stream's party.
        got: ditto_core::Party,
    },
    /// A frame of the wrong kind or step at this point of the stream.
    #[error("unexpected frame: expected {expected} at step {expected_step}, got {got:?} at step {got_step}")]
    Unexpected {
        /// What the reader expected.
        expected: &'static str,
        /// Step expected.
        expected_step: u32,
        /// Kind that came.
        got: ditto_core::frame::FrameKind,
        /// Step that came.
        got_step: u32,
    },
    /// The end frame disagrees with what was received.
    #[error("stream summary mismatch: end frame says {declared} correction bytes, received {received}")]
    Summary {
        /// Bytes the dealer says it sent.
        declared: u64,
        /// Bytes received.
        received: u64,
    },
    /// A chunk size that does not fit the frame format or the buffer given.
    #[error("bad chunk size {chunk}: must be 1..={max}")]
    Chunk {
        /// Requested.
        chunk: usize,
        /// Largest allowed here.
        max: usize,
    },
    /// The dealer refused the request.
    #[error("dealer refused the request: {reason}")]
    Refused {
        /// The dealer's reason.
        reason: heapless::String<96, u8>,
    },
    /// A board's key page that cannot be used.
    #[error("key page: {problem}")]
    KeyPage {
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A plan step the dealer cannot serve.
    #[error("plan step {index}: {reason}")]
    Plan {
        /// Step index.
        index: u32,
        /// Why.
        reason: &'static str,
    },
}

/// The first 8 bytes of a 256-bit hash, shown as hex in errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashHex(pub [u8; 8]);

impl HashHex {
    /// The prefix of `h`.
    pub fn of(h: &[u8; 32]) -> Self {
        let mut p = [0u8; 8];
        p.copy_from_slice(&h[..8]);
        HashHex(p)
    }

    /// The prefix of a 16-byte id (a share set, in messages that must stay short).
    pub fn of_id(id: &[u8; 16]) -> Self {
        let mut p = [0u8; 8];
        p.copy_from_slice(&id[..8]);
        HashHex(p)
    }
}

impl core::fmt::Display for HashHex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..")
    }
}

impl core::fmt::Debug for HashHex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}
