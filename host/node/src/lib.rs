//! ditto-node: the roles of a deployment as library functions, which the command line, the
//! tests and a serving process call alike.
//!
//! * [`party`]: a party (P0 or P1) answering one client request: it reads and checks the
//!   request, claims its session, fetches the plan's correlations from the dealer, runs the
//!   model with its peer and answers (or tells the client why it refuses);
//! * [`client`]: the client: tokenizes, shares, sends, and reconstructs the answer;
//! * [`dealer`], [`model_dealer`]: the host dealer of one session (files, or served to both
//!   parties), and the dealer that serves any session of a model (generating, or relaying a
//!   dealer board's sealed streams);
//! * [`files`]: key and seed files and the crash-safe records of used sessions.
#![deny(missing_docs)]

pub mod ahead;
pub mod client;
pub mod dealer;
pub mod files;
pub mod log;
pub mod metrics;
pub mod model_dealer;
pub mod party;
pub mod pool;
pub mod serial;
pub mod serve;

use std::path::PathBuf;

/// Errors of the roles. Names the file, session or peer at fault.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key or seed file that is not 32 hex digits.
    #[error("{path}: expected 32 hex digits (a 16-byte key), found {found}")]
    KeyFormat {
        /// The file.
        path: PathBuf,
        /// What was there (length only, never the content).
        found: String,
    },
    /// The session was already used (served by this dealer, or consumed by this party).
    #[error("session {session:032x} was already used (record {record}); a session id is never used twice")]
    SessionReused {
        /// Session id.
        session: u128,
        /// The record file.
        record: PathBuf,
    },
    /// The OS random number generator failed.
    #[error("OS random number generator: {0}")]
    Rng(String),
    /// A configuration the role cannot run with.
    #[error("{0}")]
    Config(String),
    /// The client's request does not fit this party's model.
    #[error("{0}")]
    Request(String),
    /// The answer the parties sent does not make sense.
    #[error("the parties' answers: {0}")]
    Answer(String),
    /// A model could not be loaded or an input not encoded.
    #[error(transparent)]
    Model(#[from] ditto_models::ModelError),
    /// The link between the parties, to the dealer or to the client failed.
    #[error(transparent)]
    Net(#[from] ditto_net::NetError),
    /// The secure computation failed.
    #[error(transparent)]
    Mpc(#[from] ditto_mpc::MpcError),
    /// A dealer error.
    #[error(transparent)]
    Dealer(#[from] ditto_dealer::Error),
    /// A core error.
    #[error(transparent)]
    Core(#[from] ditto_core::Error),
}

/// A network I/O error outside the framed protocols (binding, accepting, connecting).
pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> NodeError {
    move |source| NodeError::Net(ditto_net::NetError::Io { what, source })
}

/// Writes all of `b` and flushes it within `wait` (`what` names it in the error). The flush
/// matters: a TLS stream whose socket is full when the last bytes are written keeps their
/// records (up to 64 KiB) in its buffer and reports them written, so a peer waiting for the
/// whole message and a writer waiting for the reply would wait for each other until time-out.
pub(crate) async fn write_t(
    c: &mut (impl tokio::io::AsyncWriteExt + Unpin),
    b: &[u8],
    wait: std::time::Duration,
    what: &'static str,
) -> Result<(), NodeError> {
    let all = async {
        c.write_all(b).await?;
        c.flush().await
    };
    match tokio::time::timeout(wait, all).await {
        Err(_) => Err(ditto_net::NetError::Timeout { what, secs: wait.as_secs_f64() }.into()),
        Ok(r) => r.map_err(io(what)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    /// Through a writer that buffers (as a TLS stream does when its socket is full), what
    /// `write_t` wrote has reached the other end when it returns.
    #[tokio::test]
    async fn written_means_sent_through_a_buffering_writer() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut w = tokio::io::BufWriter::with_capacity(1 << 12, a);
        // Shorter than the buffer: without a flush it would stay there.
        super::write_t(&mut w, b"the request", Duration::from_secs(5), "the request").await.unwrap();
        let mut got = [0u8; 11];
        let read = tokio::time::timeout(Duration::from_secs(2), b.read_exact(&mut got)).await;
        assert!(matches!(read, Ok(Ok(11))), "the request's bytes did not arrive: {read:?}");
        assert_eq!(&got, b"the request");
    }
}
