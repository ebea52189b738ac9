//! The P0 <-> P1 link.
//!
//! Frame: 16-byte header (magic 0xD171, kind, 0, step u32, round u32, length u32, little-endian)
//! and the payload. Kinds: hello (handshake), data (one party's message of one exchange), abort
//! (the peer stopped, with a reason). Every exchange writes this party's message and reads the
//! peer's concurrently, both under the configured time-out.

use std::time::Duration;

use ditto_core::{Party, Ring};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

mod hello;

pub use hello::{Hello, MAX_RELAYED, Route, RouteKind};

use crate::NetError;
use crate::counters::Counters;
use crate::tls::{CHUNK, FrameSeal, Security, Stream, TAG, chunks, peer_role};

const MAGIC: u16 = 0xD171;
/// Frame header bytes.
pub const HEADER: usize = 16;
/// Largest message one exchange may carry.
pub const MAX_MESSAGE: usize = 1 << 30;
const KIND_HELLO: u8 = 1;
const KIND_DATA: u8 = 2;
const KIND_ABORT: u8 = 3;

/// Link settings.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Longest wait for the peer (connect, handshake, each exchange).
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { timeout: Duration::from_secs(20) }
    }
}

/// One party's end of the P0 <-> P1 connection.
pub struct Link {
    rd: ReadHalf<Box<dyn Stream>>,
    wr: WriteHalf<Box<dyn Stream>>,
    cfg: Config,
    party: Party,
    counters: Counters,
    /// (step, next round) of the recent steps (a step may exchange beside another's rounds).
    at: Vec<(u32, u32)>,
    /// Where received step payloads are copied (tests of what a party sees).
    tap: Option<Tap>,
    /// Frame encryption (TLS-agreed keys), unless the link is plaintext or in memory.
    seal: Option<FrameSeal>,
}

/// A copy of every step payload a party receives (its view), for statistical tests.
pub type Tap = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Link {{ party: {:?}, at: {:?} }}", self.party, self.at)
    }
}

fn io_err(what: &'static str) -> impl FnOnce(std::io::Error) -> NetError {
    move |e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => NetError::Closed { what },
        _ => NetError::Io { what, source: e },
    }
}

/// Writes `a` then `b` with as few system calls as the socket allows (vectored writes).
async fn write_both<W: AsyncWrite + Unpin>(w: &mut W, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() {
        let n = w.write_vectored(&[std::io::IoSlice::new(a), std::io::IoSlice::new(b)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[(n - from_a).min(b.len())..];
    }
    w.write_all(b).await
}

fn header(kind: u8, step: u32, round: u32, len: usize) -> Result<[u8; HEADER], NetError> {
    let len = u32::try_from(len)
        .ok()
        .filter(|&l| l as usize <= MAX_MESSAGE)
        .ok_or(NetError::Malformed("message too large"))?;
    let mut h = [0u8; HEADER];
    h[0..2].copy_from_slice(&MAGIC.to_le_bytes());
    h[2] = kind;
    h[4..8].copy_from_slice(&step.to_le_bytes());
    h[8..12].copy_from_slice(&round.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    Ok(h)
}

struct Head {
    kind: u8,
    step: u32,
    round: u32,
    len: usize,
}

fn parse(h: &[u8; HEADER]) -> Result<Head, NetError> {
    if u16::from_le_bytes([h[0], h[1]]) != MAGIC {
        return Err(NetError::Malformed("bad magic"));
    }
    if !(KIND_HELLO..=KIND_ABORT).contains(&h[2]) || h[3] != 0 {
        return Err(NetError::Malformed("unknown frame kind"));
    }
    let u = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let len = u(12) as usize;
    if len > MAX_MESSAGE {
        return Err(NetError::Malformed("message too large"));
    }
    Ok(Head { kind: h[2], step: u(4), round: u(8), len })
}

impl Link {
    /// A link over any stream.
    pub fn new(stream: impl Stream, party: Party, cfg: Config) -> Self {
        let boxed: Box<dyn Stream> = Box::new(stream);
        let (rd, wr) = tokio::io::split(boxed);
        Link { rd, wr, cfg, party, counters: Counters::default(), at: Vec::new(), tap: None, seal: None }
    }

    fn sealed(stream: impl Stream, seal: Option<FrameSeal>, party: Party, cfg: Config) -> Self {
        Link { seal, ..Link::new(stream, party, cfg) }
    }

    /// Whether frames are encrypted and authenticated.
    pub fn is_sealed(&self) -> bool {
        self.seal.is_some()
    }

    /// Two linked parties in memory (P0's end, P1's end), for tests.
    pub fn memory_pair(cfg: Config) -> (Link, Link) {
        let (a, b) = tokio::io::duplex(1 << 20);
        (Link::new(a, Party::P0, cfg), Link::new(b, Party::P1, cfg))
    }

    /// Connects to the peer at `addr`, retrying until the time-out (the peer may start later),
    /// and secures the connection as `sec` says (the peer must prove the other party's role).
    pub async fn connect(addr: &str, party: Party, cfg: Config, sec: &Security) -> Result<Self, NetError> {
        let deadline = tokio::time::Instant::now() + cfg.timeout;
        loop {
            match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(addr)).await {
                Err(_) => {
                    return Err(NetError::Timeout {
                        what: "connecting to the peer",
                        secs: cfg.timeout.as_secs_f64(),
                    });
                }
                Ok(Ok(s)) => {
                    s.set_nodelay(true).map_err(io_err("configuring the socket"))?;
                    let (s, seal) = sec.link(s, peer_role(party), true, cfg.timeout).await?;
                    return Ok(Link::sealed(s, seal, party, cfg));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(e)) => return Err(NetError::Io { what: "connecting to the peer", source: e }),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NetError::Timeout {
                    what: "connecting to the peer",
                    secs: cfg.timeout.as_secs_f64(),
                });
            }
        }
    }

    /// Accepts the peer's connection on `listener` and secures it as `sec` says.
    pub async fn accept(
        listener: &tokio::net::TcpListener,
        party: Party,
        cfg: Config,
        sec: &Security,
    ) -> Result<Self, NetError> {
        let (s, _) = tokio::time::timeout(cfg.timeout, listener.accept())
            .await
            .map_err(|_| NetError::Timeout {
                what: "waiting for the peer to connect",
                secs: cfg.timeout.as_secs_f64(),
            })?
            .map_err(io_err("accepting the peer"))?;
        Self::accept_stream(s, party, cfg, sec).await
    }

    /// Secures a connection already accepted from the peer as `sec` says (a server accepting
    /// its peer's connections in a loop secures each apart, so one slow connection does not
    /// hold up the next).
    pub async fn accept_stream(
        s: tokio::net::TcpStream,
        party: Party,
        cfg: Config,
        sec: &Security,
    ) -> Result<Self, NetError> {
        s.set_nodelay(true).map_err(io_err("configuring the socket"))?;
        let (s, seal) = sec.link(s, peer_role(party), false, cfg.timeout).await?;
        Ok(Link::sealed(s, seal, party, cfg))
    }

    /// This end's role.
    pub fn party(&self) -> Party {
        self.party
    }

    /// Bytes and rounds so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Copies every step payload received from now on into `tap` (the party's view).
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// Adds wall time to `step` in the counters.
    pub fn record_time(&mut self, step: u32, d: std::time::Duration) {
        self.counters.record_time(step, d);
    }

    /// One flight: writes this party's frames (kind, step, round each) and reads the peer's,
    /// which must be the same frames in the same order, concurrently, under the time-out;
    /// returns the peer's bodies. A sealed link encrypts the frames in place (they are the
    /// caller's scratch).
    async fn swap_many(
        &mut self,
        kind: u8,
        frames: &mut [(u32, u32, &mut [u8])],
        what: &'static str,
    ) -> Result<Vec<(Head, Vec<u8>)>, NetError> {
        let heads = frames
            .iter()
            .map(|(step, round, body)| header(kind, *step, *round, body.len()))
            .collect::<Result<Vec<_>, _>>()?;
        let (rd, wr) = (&mut self.rd, &mut self.wr);
        let (mut tx, mut rx) = match &mut self.seal {
            Some(s) => (Some(&mut s.tx), Some(&mut s.rx)),
            None => (None, None),
        };
        let tag = if tx.is_some() { TAG } else { 0 };
        let expect: Vec<(u32, u32, usize)> = frames.iter().map(|(s, r, b)| (*s, *r, b.len())).collect();
        let write = async {
            for (h, (_, _, mine)) in heads.iter().zip(frames.iter_mut()) {
                let len = mine.len();
                wr.write_all(h).await.map_err(io_err(what))?;
                match tx.as_mut() {
                    None => wr.write_all(mine).await.map_err(io_err(what))?,
                    // Chunk by chunk, in place: each is encrypted while the previous one is on its way.
                    Some(tx) => {
                        for i in 0..chunks(len) {
                            let c = &mut mine[i * CHUNK..((i + 1) * CHUNK).min(len)];
                            let t = tx.seal(h, c)?;
                            write_both(wr, c, &t).await.map_err(io_err(what))?;
                        }
                    }
                }
            }
            wr.flush().await.map_err(io_err(what))
        };
        let read = async {
            let mut out = Vec::with_capacity(expect.len());
            for &(step, round, len) in &expect {
                let mut hb = [0u8; HEADER];
                rd.read_exact(&mut hb).await.map_err(io_err(what))?;
                let head = parse(&hb)?;
                // Reads `len` payload bytes (opening each sealed chunk).
                let mut body = async |len: usize| -> Result<Vec<u8>, NetError> {
                    let mut body = vec![0u8; len];
                    match rx.as_mut() {
                        None => rd.read_exact(&mut body).await.map(|_| ()).map_err(io_err(what))?,
                        Some(rx) => {
                            for i in 0..chunks(len) {
                                let c = &mut body[i * CHUNK..((i + 1) * CHUNK).min(len)];
                                rd.read_exact(c).await.map_err(io_err(what))?;
                                let mut t = [0u8; TAG];
                                rd.read_exact(&mut t).await.map_err(io_err(what))?;
                                rx.open(&hb, c, t)?;
                            }
                        }
                    }
                    Ok(body)
                };
                if head.kind == KIND_ABORT {
                    if tag > 0 && head.len > 4096 {
                        return Err(NetError::Malformed("abort reason too long"));
                    }
                    let msg = body(head.len.min(4096)).await?;
                    return Err(NetError::PeerAbort(String::from_utf8_lossy(&msg).into_owned()));
                }
                if head.kind != kind {
                    return Err(NetError::Malformed("unexpected frame kind"));
                }
                if kind == KIND_DATA && (head.step != step || head.round != round) {
                    return Err(NetError::WrongStep {
                        step,
                        round,
                        got_step: head.step,
                        got_round: head.round,
                    });
                }
                if head.len != len {
                    return Err(NetError::Length { step, expected: len, got: head.len });
                }
                let b = body(head.len).await?;
                out.push((head, b));
            }
            Ok(out)
        };
        let secs = self.cfg.timeout.as_secs_f64();
        // Both halves run to completion: when the peer aborted and closed, our write fails but
        // its abort frame is still there to read, and its reason is the error worth reporting.
        let (w, r) = tokio::time::timeout(self.cfg.timeout, async { tokio::join!(write, read) })
            .await
            .map_err(|_| NetError::Timeout { what, secs })?;
        let r = match (w, r) {
            (_, Err(e @ NetError::PeerAbort(_))) | (Err(e), _) | (Ok(()), Err(e)) => return Err(e),
            (Ok(()), Ok(r)) => r,
        };
        for (_, _, len) in &expect {
            self.counters.header_bytes += (HEADER + tag * chunks(*len)) as u64;
        }
        Ok(r)
    }

    /// [`Link::swap_many`] of one frame.
    async fn swap(
        &mut self,
        kind: u8,
        step: u32,
        round: u32,
        mine: &mut [u8],
        what: &'static str,
    ) -> Result<(Head, Vec<u8>), NetError> {
        let mut r = self.swap_many(kind, &mut [(step, round, mine)], what).await?;
        r.pop().ok_or(NetError::Malformed("empty flight"))
    }

    /// One symmetric exchange of plan step `step`: sends this party's whole-step message and
    /// returns the peer's (of the same length). Counted as one round of the step.
    pub async fn exchange(&mut self, step: u32, mine: &[u8]) -> Result<Vec<u8>, NetError> {
        self.exchange_scratch(step, &mut mine.to_vec()).await
    }

    /// [`Link::exchange`] of a message the link may overwrite (encrypted in place on a sealed
    /// link, which saves a copy of large messages).
    pub async fn exchange_scratch(&mut self, step: u32, mine: &mut [u8]) -> Result<Vec<u8>, NetError> {
        let round = self.round_of(step);
        let len = mine.len();
        let (_, body) = self.swap(KIND_DATA, step, round, mine, "exchange").await?;
        self.bump(step);
        self.counters.record(step, len, body.len());
        self.tapped(&body);
        Ok(body)
    }

    /// One flight carrying several steps' messages: `frames[0]` is the host step's (counted
    /// as one round of it), the others are steps running beside it (their bytes counted, no
    /// round: they wait on the host's round trip). The peer sends the same steps in the same
    /// order; returns its messages in that order.
    pub async fn exchange_flight(&mut self, frames: &mut [(u32, Vec<u8>)]) -> Result<Vec<Vec<u8>>, NetError> {
        let mut list: Vec<(u32, u32, &mut [u8])> =
            frames.iter_mut().map(|(s, m)| (*s, 0, &mut m[..])).collect();
        for f in &mut list {
            f.1 = self.round_of(f.0);
        }
        let lens: Vec<(u32, usize)> = list.iter().map(|f| (f.0, f.2.len())).collect();
        let got = self.swap_many(KIND_DATA, &mut list, "exchange").await?;
        let mut out = Vec::with_capacity(got.len());
        for (i, ((step, len), (_, body))) in lens.into_iter().zip(got).enumerate() {
            self.bump(step);
            if i == 0 {
                self.counters.record(step, len, body.len());
            } else {
                self.counters.record_beside(step, len, body.len());
            }
            self.tapped(&body);
            out.push(body);
        }
        Ok(out)
    }

    /// The next round number of `step`.
    fn round_of(&self, step: u32) -> u32 {
        self.at.iter().find(|(s, _)| *s == step).map_or(0, |&(_, r)| r)
    }

    /// Counts a round of `step` (the last few steps are remembered).
    fn bump(&mut self, step: u32) {
        match self.at.iter_mut().find(|(s, _)| *s == step) {
            Some(e) => e.1 += 1,
            None => {
                if self.at.len() >= 8 {
                    self.at.remove(0);
                }
                self.at.push((step, 1));
            }
        }
    }

    fn tapped(&self, body: &[u8]) {
        if let Some(t) = &self.tap {
            t.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(body);
        }
    }

    /// [`Link::exchange`] of ring elements.
    pub async fn exchange_ring<R: Ring>(&mut self, step: u32, mine: &[R]) -> Result<Vec<R>, NetError> {
        let mut bytes = vec![0u8; mine.len() * R::BYTES];
        ditto_core::ring::encode_slice(mine, &mut bytes).map_err(|_| NetError::Malformed("encoding"))?;
        let theirs = self.exchange_scratch(step, &mut bytes).await?;
        let mut out = vec![R::ZERO; mine.len()];
        ditto_core::ring::decode_slice(&theirs, &mut out)
            .map_err(|_| NetError::Malformed("ring elements"))?;
        Ok(out)
    }

    /// Tells the peer this party stops (best effort, bounded by the time-out).
    pub async fn abort(&mut self, reason: &str) {
        let msg = reason.as_bytes();
        let mut msg = msg[..msg.len().min(4096)].to_vec();
        if let Ok(h) = header(KIND_ABORT, 0, 0, msg.len()) {
            if let Some(s) = &mut self.seal {
                match s.tx.seal(&h, &mut msg) {
                    Ok(tag) => msg.extend_from_slice(&tag),
                    Err(_) => return,
                }
            }
            let wr = &mut self.wr;
            let _ = tokio::time::timeout(self.cfg.timeout, async {
                wr.write_all(&h).await?;
                wr.write_all(&msg).await?;
                wr.flush().await
            })
            .await;
        }
    }
}
