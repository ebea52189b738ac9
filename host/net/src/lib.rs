//! ditto-net: how the two parties talk, and how each reads its dealer stream.
//!
//! * [`link::Link`]: one length-framed P0 <-> P1 connection (tokio TCP, or an in-memory duplex
//!   with the same code path for tests). A handshake checks protocol version, party roles, plan
//!   hash and session id. Every opening is one symmetric [`link::Link::exchange`]: both parties
//!   send their whole-step message and receive the peer's, concurrently, under a time-out.
//!   Frames name their step and round, so a frame for the wrong step is an error, not a silent
//!   wrong answer. [`counters::Counters`] record bytes and rounds per plan step and in total.
//! * [`dealer`]: the dealer stream at a party (TCP or a file), read on a blocking thread and
//!   handed over step by step, so dealer I/O overlaps computation.
#![deny(missing_docs)]

pub mod client;
pub mod counters;
pub mod dealer;
pub mod link;
pub mod shape;
pub mod tls;

/// Version of the P0 <-> P1 protocol.
pub const NET_VERSION: u16 = 2;

/// Errors of the transport. Values named are public (versions, hashes, session ids, sizes).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The peer did not answer in time.
    #[error("timed out after {secs:.1} s waiting for the peer ({what})")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The time-out.
        secs: f64,
    },
    /// The peer closed the connection.
    #[error("the peer closed the connection ({what})")]
    Closed {
        /// What was awaited.
        what: &'static str,
    },
    /// An I/O error.
    #[error("network i/o ({what}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Different protocol versions.
    #[error("protocol version mismatch: this party speaks {ours}, the peer {theirs}")]
    Version {
        /// Ours.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// Both ends claim the same role.
    #[error("role mismatch: this party is {ours:?} and so is the peer")]
    Role {
        /// Ours.
        ours: ditto_core::Party,
    },
    /// Different plans.
    #[error("plan hash mismatch: this party has {ours}, the peer {theirs}")]
    PlanHash {
        /// Ours (hex prefix).
        ours: ditto_dealer::HashHex,
        /// The peer's (hex prefix).
        theirs: ditto_dealer::HashHex,
    },
    /// Different sessions.
    #[error("session mismatch: this party runs {ours:032x}, the peer {theirs:032x}")]
    Session {
        /// Ours.
        ours: u128,
        /// The peer's.
        theirs: u128,
    },
    /// Shares of different sharings.
    #[error(
        "share set mismatch: this party holds sharing {ours:032x}, the peer {theirs:032x}; give both \
         parties the files of one `ditto share-model` run"
    )]
    ShareSet {
        /// Ours.
        ours: u128,
        /// The peer's.
        theirs: u128,
    },
    /// The two parties' dealer streams come from different generations.
    #[error(
        "dealer generation mismatch: this party's stream is generation {ours}, the peer's {theirs}; \
         the parties were fed by two dealer instances (or two dealings of one session) and would \
         compute garbage"
    )]
    Generation {
        /// Our stream's commitment (hex prefix).
        ours: ditto_dealer::HashHex,
        /// The peer's (hex prefix).
        theirs: ditto_dealer::HashHex,
    },
    /// A frame that is not a frame of this protocol.
    #[error("malformed frame from the peer: {0}")]
    Malformed(&'static str),
    /// A frame for another step or round.
    #[error("peer frame for step {got_step} round {got_round}, expected step {step} round {round}")]
    WrongStep {
        /// Step expected.
        step: u32,
        /// Round expected.
        round: u32,
        /// Step received.
        got_step: u32,
        /// Round received.
        got_round: u32,
    },
    /// A peer message of the wrong size.
    #[error("peer message for step {step} has {got} bytes, expected {expected}")]
    Length {
        /// Step.
        step: u32,
        /// Expected bytes.
        expected: usize,
        /// Received bytes.
        got: usize,
    },
    /// The peer reported an error and stopped.
    #[error("the peer aborted: {0}")]
    PeerAbort(String),
    /// The party refused the request and said why.
    #[error("the party refused the request: {0}")]
    Refused(String),
    /// A client request that does not fit the party's model.
    #[error("bad client request: {0}")]
    Request(String),
    /// An identity or pin that cannot be used (file, format, missing pin).
    #[error("identity: {0}")]
    Identity(String),
    /// The TLS handshake failed, e.g. the peer presented an identity that is not pinned.
    #[error("{what}: {detail}")]
    Tls {
        /// What was being done.
        what: &'static str,
        /// rustls's account (names the expected and presented fingerprints for a refused peer).
        detail: String,
    },
    /// The dealer stream failed.
    #[error("dealer stream: {0}")]
    Dealer(#[from] ditto_dealer::Error),
}
