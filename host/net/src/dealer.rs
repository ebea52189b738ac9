//! The dealer stream at a party: opened (salt, hello, plan hash, share set, seeds) on a
//! blocking thread, then read step by step ahead of the computation and handed over through a
//! bounded channel, then its end frame checked (P0 at once, P1 after its last step).

use std::io::Read;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::plan::Plan;
use ditto_core::prg::{SessionId, ShareSetId};
use ditto_dealer::host::{Io, PlanParams, connect, request_stream_on};
use ditto_dealer::keys::{PartyKey, PartySeeds};
use ditto_dealer::party::PartyStream;
use ditto_dealer::stream::scratch_len;

use crate::NetError;
use crate::tls::Security;

/// Steps read ahead of the computation at most.
pub const READ_AHEAD: usize = 8;

/// Where a party's dealer stream comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A dealer server (`ditto dealer --listen`), what the plan was made for (all zero for a
    /// dealer serving one fixed plan), and how the link is secured (the dealer must prove the
    /// `dealer` role).
    Tcp(String, PlanParams, Security),
    /// A file written by `ditto dealer --out`.
    File(std::path::PathBuf),
    /// Bytes in memory (tests; P0's stream relayed by P1).
    Memory(std::sync::Arc<Vec<u8>>),
    /// A connection already positioned at the stream (P1's part of a session the dealer
    /// created on demand, [`ditto_dealer::host::request_new_session_on`]).
    Open(Opened),
}

/// A reader handed over once ([`Source::Open`]).
#[derive(Clone)]
pub struct Opened(std::sync::Arc<std::sync::Mutex<Option<Box<dyn Read + Send>>>>);

impl Opened {
    /// Wraps `r`.
    pub fn new(r: Box<dyn Read + Send>) -> Self {
        Opened(std::sync::Arc::new(std::sync::Mutex::new(Some(r))))
    }

    fn take(&self) -> Result<Box<dyn Read + Send>, NetError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or(NetError::Malformed("an opened dealer stream read twice"))
    }
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened(..)")
    }
}

/// An opened dealer stream: the party's seeds, and (P1) each step's corrections in order.
pub struct DealerFeed {
    seeds: PartySeeds,
    /// The generation's commitment ([`ditto_dealer::keys::Salt::commitment`]).
    generation: [u8; 32],
    rx: tokio::sync::mpsc::Receiver<Result<(u32, Vec<u8>), NetError>>,
    timeout: Duration,
    /// Whether the end frame has been checked.
    ended: bool,
}

impl std::fmt::Debug for DealerFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DealerFeed { .. }")
    }
}

fn open_reader(
    src: &Source,
    party: Party,
    ids: (SessionId, ShareSetId),
    hash: &[u8; 32],
    timeout: Duration,
) -> Result<Box<dyn Read + Send>, NetError> {
    Ok(match src {
        Source::Tcp(addr, params, sec) => {
            let sock = sec.connect_blocking(connect(addr, timeout)?, "dealer")?;
            Box::new(request_stream_on(sock, party, ids, hash, *params)?)
        }
        Source::File(p) => Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(p)
                .map_err(|e| NetError::Io { what: "opening the dealer stream file", source: e })?,
        )),
        Source::Memory(b) => Box::new(std::io::Cursor::new(b.as_ref().clone())),
        Source::Open(o) => Box::new(std::io::BufReader::with_capacity(1 << 20, o.take()?)),
    })
}

impl DealerFeed {
    /// Opens `party`'s stream of `session` with the masks of sharing `share_set`, for `plan`,
    /// and starts reading it ahead.
    pub async fn open(
        src: Source,
        key: PartyKey,
        party: Party,
        (session, share_set): (SessionId, ShareSetId),
        plan: &Plan,
        timeout: Duration,
    ) -> Result<Self, NetError> {
        let hash = plan.hash().map_err(|e| NetError::Dealer(e.into()))?;
        let steps = plan.steps.clone();
        let (seed_tx, seed_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        std::thread::spawn(move || {
            let opened = open_reader(&src, party, (session, share_set), &hash, timeout).and_then(|r| {
                let mut buf = vec![0u8; scratch_len(ditto_dealer::stream::MAX_CHUNK)];
                let (s, seeds) = PartyStream::open(Io(r), &key, session, party, &hash, &share_set, &mut buf)?;
                Ok((s, seeds, buf))
            });
            let (mut s, seeds, mut buf) = match opened {
                Ok(v) => v,
                Err(e) => {
                    let _ = seed_tx.send(Err(e));
                    return;
                }
            };
            let generation = s.salt().commitment(&session);
            if seed_tx.send(Ok((seeds, generation))).is_err() {
                return;
            }
            if party == Party::P1 {
                for (i, step) in steps.iter().enumerate() {
                    let n = step.p1_correction_bytes();
                    let mut out = vec![0u8; usize::try_from(n).unwrap_or(usize::MAX)];
                    let i = u32::try_from(i).unwrap_or(u32::MAX);
                    let r =
                        s.read_step(i, step, &mut out, &mut buf).map(|()| (i, out)).map_err(NetError::from);
                    let failed = r.is_err();
                    if tx.blocking_send(r).is_err() || failed {
                        return;
                    }
                }
            }
            let end = s.finish(&mut buf).map(|_| (u32::MAX, Vec::new())).map_err(NetError::from);
            let _ = tx.blocking_send(end);
        });
        let (seeds, generation) = tokio::time::timeout(timeout + Duration::from_secs(1), seed_rx)
            .await
            .map_err(|_| NetError::Timeout {
                what: "opening the dealer stream",
                secs: timeout.as_secs_f64(),
            })?
            .map_err(|_| NetError::Closed { what: "dealer stream reader" })??;
        Ok(DealerFeed { seeds, generation, rx, timeout, ended: false })
    }

    /// This party's seeds.
    pub fn seeds(&self) -> &PartySeeds {
        &self.seeds
    }

    /// The commitment to the stream's generation, which both parties compare
    /// ([`crate::link::Link::agree_generation`]).
    pub fn generation(&self) -> &[u8; 32] {
        &self.generation
    }

    /// Whether the end frame has been checked ([`Self::finish`]).
    pub fn is_finished(&self) -> bool {
        self.ended
    }

    /// P1: the corrections of step `index` (steps in order).
    pub async fn step(&mut self, index: u32) -> Result<Vec<u8>, NetError> {
        let (i, bytes) = self.next().await?;
        if i != index {
            return Err(NetError::WrongStep { step: index, round: 0, got_step: i, got_round: 0 });
        }
        Ok(bytes)
    }

    /// Checks the end of the stream (P1 after its last step; P0 at once): counts, and the hash
    /// of the plan as dealt. Once only.
    pub async fn finish(&mut self) -> Result<(), NetError> {
        if self.ended {
            return Err(NetError::Malformed("dealer stream end read twice"));
        }
        let (i, _) = self.next().await?;
        if i != u32::MAX {
            return Err(NetError::Malformed("dealer stream has steps beyond the plan"));
        }
        self.ended = true;
        Ok(())
    }

    async fn next(&mut self) -> Result<(u32, Vec<u8>), NetError> {
        tokio::time::timeout(self.timeout, self.rx.recv())
            .await
            .map_err(|_| NetError::Timeout { what: "the dealer stream", secs: self.timeout.as_secs_f64() })?
            .ok_or(NetError::Closed { what: "dealer stream" })?
    }
}
