//! Host conveniences (`std`): parallel generation, std I/O adapters, stream files.
//!
//! Parallel generation cuts every step into jobs of whole units (elements, groups of 64,
//! output blocks; see `Step::units`) of about [`JOB_BYTES`] bytes, lets `threads` workers
//! generate them, and writes them back in plan order. The bytes are identical to the
//! bounded-memory generator's whatever the thread count; at most [`WINDOW`] jobs are in flight.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::vec::Vec;

use ditto_core::corr::DealerStreams;
use ditto_core::deal::deal_step_part;
use ditto_core::plan::{Plan, Step};

use crate::stream::Producer;

/// Target size of one job's corrections.
pub const JOB_BYTES: u64 = 1 << 20;
/// Jobs in flight at most (bounds memory to about WINDOW * JOB_BYTES).
pub const WINDOW: usize = 64;

/// One job: units `units` of step `step`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Step index.
    pub step: u32,
    /// Unit range.
    pub units: Range<usize>,
}

/// Multiply-adds of one matmul job.
pub const JOB_MACS: u64 = 1 << 22;

/// Cuts a plan into jobs in plan order: about `JOB_BYTES` of corrections each, and for
/// matmuls (whose cost is in the multiply-adds) about `JOB_MACS` multiply-adds each.
pub fn jobs(steps: &[Step]) -> Vec<Job> {
    use ditto_core::plan::Op;
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let units = s.units().max(1);
        let per_unit = (s.p1_correction_bytes() / units as u64).max(1);
        let take = match s.op {
            Op::MatMulFixed { k, .. } | Op::MatMulAA { k, .. } => {
                let block_macs =
                    (ditto_core::beaver::BLOCK * ditto_core::beaver::BLOCK) as u64 * u64::from(k);
                (JOB_MACS / block_macs).max(1)
            }
            _ => (JOB_BYTES / per_unit).max(1),
        };
        let take = usize::try_from(take).unwrap_or(usize::MAX);
        let mut u = 0;
        while u < units {
            let hi = units.min(u.saturating_add(take));
            out.push(Job { step: u32::try_from(i).unwrap_or(u32::MAX), units: u..hi });
            u = hi;
        }
    }
    out
}

struct Shared {
    next: AtomicUsize,
    written: Mutex<usize>,
    cv: Condvar,
    stop: AtomicBool,
}

/// A producer fed by worker threads (see the module docs). Create it with [`with_parallel`].
pub struct Parallel<'a> {
    jobs: &'a [Job],
    rx: mpsc::Receiver<(usize, Result<Vec<u8>, ditto_core::Error>)>,
    pending: BTreeMap<usize, Result<Vec<u8>, ditto_core::Error>>,
    next: usize,
    shared: &'a Shared,
}

impl Producer for Parallel<'_> {
    fn produce<W: embedded_io::Write>(
        &mut self,
        index: u32,
        _step: &Step,
        w: &mut W,
    ) -> Result<(), ditto_core::Error> {
        while self.next < self.jobs.len() && self.jobs[self.next].step == index {
            let bytes = loop {
                if let Some(b) = self.pending.remove(&self.next) {
                    break b;
                }
                let (j, b) =
                    self.rx.recv().map_err(|_| ditto_core::Error::Encoding("dealer worker stopped"))?;
                self.pending.insert(j, b);
            }?;
            w.write_all(&bytes).map_err(ditto_core::corr::io_err)?;
            self.next += 1;
            let mut done = self.shared.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *done = self.next;
            self.shared.cv.notify_all();
        }
        Ok(())
    }
}

/// Writes `party`'s stream of `plan` under `spec` to `w`: P0's in place, P1's corrections from
/// `threads` workers. Not generic (a `dyn` writer): the stream's dealing and sealing are
/// compiled once, here, with this crate's optimisation, rather than in every caller.
pub fn write_party_stream(
    party: ditto_core::Party,
    plan: &Plan,
    spec: &crate::stream::SessionSpec,
    key: &crate::keys::PartyKey,
    w: &mut dyn std::io::Write,
    threads: usize,
) -> Result<crate::stream::Summary, crate::Error> {
    use crate::stream::{SlicePlan, dealer_streams, scratch_len, write_stream, write_stream_with};
    let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
    let mut scratch = std::vec![0u8; scratch_len(spec.chunk)];
    if party == ditto_core::Party::P0 {
        return write_stream(party, &mut src, spec, key, Io(w), &mut scratch);
    }
    let ds = dealer_streams(spec);
    with_parallel(&ds, plan, threads, |p| {
        write_stream_with(party, &mut src, spec, key, Io(w), &mut scratch, p)
    })
}

/// Runs `f` with a parallel producer of `plan`'s corrections on `threads` workers.
pub fn with_parallel<T>(
    ds: &DealerStreams<'_>,
    plan: &Plan,
    threads: usize,
    f: impl FnOnce(&mut Parallel<'_>) -> T,
) -> T {
    let jobs = jobs(&plan.steps);
    let shared = Shared {
        next: AtomicUsize::new(0),
        written: Mutex::new(0),
        cv: Condvar::new(),
        stop: AtomicBool::new(false),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let tx = tx.clone();
            let (jobs, shared) = (&jobs, &shared);
            s.spawn(move || {
                loop {
                    let j = shared.next.fetch_add(1, Ordering::Relaxed);
                    if j >= jobs.len() {
                        break;
                    }
                    {
                        let mut done =
                            shared.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        while j >= *done + WINDOW && !shared.stop.load(Ordering::Relaxed) {
                            done = shared.cv.wait(done).unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                    }
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let job = &jobs[j];
                    let mut buf = Vec::new();
                    let r = deal_step_part(
                        ds,
                        job.step,
                        &plan.steps[job.step as usize],
                        job.units.clone(),
                        &mut buf,
                    );
                    if tx.send((j, r.map(|()| buf))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut p = Parallel { jobs: &jobs, rx, pending: BTreeMap::new(), next: 0, shared: &shared };
        let out = f(&mut p);
        // Release workers blocked on the window (early exit on error) and drain the channel.
        shared.stop.store(true, Ordering::Relaxed);
        shared.cv.notify_all();
        while p.rx.recv().is_ok() {}
        out
    })
}

/// A sink that only counts the bytes written (benchmarks, sizing).
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingSink(pub u64);

impl embedded_io::ErrorType for CountingSink {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for CountingSink {
    fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Adapts a `std::io` reader or writer to `embedded-io`.
#[derive(Debug)]
pub struct Io<T>(pub T);

impl<T> embedded_io::ErrorType for Io<T> {
    type Error = std::io::Error;
}

impl<T: std::io::Read> embedded_io::Read for Io<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        self.0.read(buf)
    }
}

impl<T: std::io::Write> embedded_io::Write for Io<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, std::io::Error> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> Result<(), std::io::Error> {
        self.0.flush()
    }
}

// ------------------------------------------------------------------ session requests over TCP

use ditto_core::Party;
use ditto_core::frame::{FrameKind, FrameReader, FrameWriter};
use ditto_core::plan::PLAN_VERSION;
use ditto_core::prg::{SessionId, ShareSetId};
use serde::{Deserialize, Serialize};

use crate::Error;

/// What a model dealer's plan depends on besides the model: the prompt length, the tokens
/// generated after it and what the client learns of each, the inputs in a batch (all zero: the
/// dealer's fixed plan).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanParams {
    /// Prompt tokens.
    pub seq: u32,
    /// Tokens generated after the prompt (decoders; 0 otherwise).
    pub generate: u32,
    /// Decoders: the parties pick each token in MPC and reveal only its id (else the logits).
    pub reveal_token: bool,
    /// Encoders: inputs of `seq` tokens in the one session (0 counts as 1).
    pub batch: u32,
}

/// What a request asks to be dealt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deal {
    /// The requesting party's stream of the session named in the frame header.
    Stream,
    /// A session the dealer creates (its id fresh from the dealer's RNG, the header's unused):
    /// both parties' sealed streams, P0's first, to P1, which keeps them (a serving party's
    /// pool) and relays P0's to P0 when it uses the session. P0's stream is sealed to P0's
    /// key, so P1 can neither read nor alter it; P0 refuses it for any other session.
    NewSession,
}

/// What a party asks the dealer server for (an unsealed control frame of the session).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Plan format version.
    pub version: u16,
    /// What to deal.
    pub deal: Deal,
    /// Which party's stream ([`Deal::Stream`]), or who asks ([`Deal::NewSession`]: P1).
    pub party: Party,
    /// The party's plan hash.
    pub plan_hash: [u8; 32],
    /// The sharing the party's model share belongs to (its weight masks are dealt).
    pub share_set: ShareSetId,
    /// What the plan was made for.
    pub params: PlanParams,
}

/// The server's answer (an unsealed control frame), followed on acceptance by the sealed stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The sealed stream follows.
    Accepted,
    /// [`Deal::NewSession`]: the session created; P0's sealed stream follows, then P1's.
    Created(SessionId),
    /// Refused, with the reason.
    Refused(heapless::String<96, u8>),
}

/// Largest request or response frame.
pub const CONTROL_LIMIT: usize = 512;

/// Server side: reads a request of `session`.
pub fn read_request<R: embedded_io::Read>(r: R, session: SessionId) -> Result<Request, Error> {
    let mut buf = [0u8; CONTROL_LIMIT];
    let (_, req): (_, Request) =
        FrameReader::new(r, session, CONTROL_LIMIT).read_message(FrameKind::Control, &mut buf)?;
    Ok(req)
}

/// Server side: reads a request of any session; returns the session id from its header.
pub fn read_request_any<R: embedded_io::Read>(mut r: R) -> Result<(SessionId, Request), Error> {
    let mut head = [0u8; ditto_core::frame::HEADER_LEN];
    r.read_exact(&mut head).map_err(|e| match e {
        embedded_io::ReadExactError::UnexpectedEof => {
            Error::Core(ditto_core::Error::FrameTruncated { part: "header" })
        }
        embedded_io::ReadExactError::Other(e) => Error::Core(ditto_core::corr::io_err(e)),
    })?;
    let mut sid = [0u8; 16];
    sid.copy_from_slice(&head[4..20]);
    let session = SessionId(sid);
    let req = read_request(Chain { head: &head, pos: 0, rest: r }, session)?;
    Ok((session, req))
}

/// Bytes already read, then the rest of a stream.
struct Chain<'a, R> {
    head: &'a [u8],
    pos: usize,
    rest: R,
}

impl<R: embedded_io::Read> embedded_io::ErrorType for Chain<'_, R> {
    type Error = R::Error;
}

impl<R: embedded_io::Read> embedded_io::Read for Chain<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, R::Error> {
        if self.pos < self.head.len() {
            let n = buf.len().min(self.head.len() - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.rest.read(buf)
    }
}

/// Server side: writes the response.
pub fn write_response<W: embedded_io::Write>(w: W, session: SessionId, resp: &Response) -> Result<(), Error> {
    let mut buf = [0u8; CONTROL_LIMIT];
    let mut fw = FrameWriter::new(w, session);
    fw.write_message(FrameKind::Control, 0, resp, &mut buf)?;
    fw.flush()?;
    Ok(())
}

/// A reason string, cut to fit.
pub fn reason(text: &str) -> heapless::String<96, u8> {
    let mut s = heapless::String::new();
    for c in text.chars() {
        if s.push(c).is_err() {
            break;
        }
    }
    s
}

/// A TCP connection to `addr` whose connect, reads and writes are bounded by `timeout`.
pub fn connect(addr: &str, timeout: std::time::Duration) -> Result<std::net::TcpStream, Error> {
    use std::net::ToSocketAddrs;
    let io = |e: std::io::Error| Error::Core(ditto_core::Error::Io(embedded_io::Error::kind(&e)));
    let sa = addr
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or(Error::Core(ditto_core::Error::Io(embedded_io::ErrorKind::InvalidInput)))?;
    let sock = std::net::TcpStream::connect_timeout(&sa, timeout).map_err(io)?;
    sock.set_read_timeout(Some(timeout)).map_err(io)?;
    sock.set_write_timeout(Some(timeout)).map_err(io)?;
    sock.set_nodelay(true).map_err(io)?;
    Ok(sock)
}

/// Party side, over an open connection to the dealer server ([`connect`], plain or under TLS):
/// asks for `party`'s stream of `session` with the masks of sharing `share_set`, for the plan
/// with `plan_hash` (made for `params`, all zero for the dealer's fixed plan) and returns the
/// connection positioned at the sealed stream (read it with [`crate::party::PartyStream`] over
/// [`Io`]).
pub fn request_stream_on<S: std::io::Read + std::io::Write>(
    mut sock: S,
    party: Party,
    (session, share_set): (SessionId, ShareSetId),
    plan_hash: &[u8; 32],
    params: PlanParams,
) -> Result<S, Error> {
    let req = Request {
        version: PLAN_VERSION,
        deal: Deal::Stream,
        party,
        plan_hash: *plan_hash,
        share_set,
        params,
    };
    match ask(&mut sock, session, &req)? {
        Response::Accepted => Ok(sock),
        Response::Created(_) => {
            Err(Error::Core(ditto_core::Error::Encoding("dealer created a session unasked")))
        }
        Response::Refused(reason) => Err(Error::Refused { reason }),
    }
}

/// P1 over an open connection to the dealer server: asks for a new session of the plan with
/// `plan_hash` (made for `params`) and the masks of sharing `share_set`
/// ([`Deal::NewSession`]); returns the session the dealer created and the connection positioned
/// at P0's sealed stream, which P1's own follows (split them with [`copy_stream`]).
pub fn request_new_session_on<S: std::io::Read + std::io::Write>(
    mut sock: S,
    share_set: ShareSetId,
    plan_hash: &[u8; 32],
    params: PlanParams,
) -> Result<(SessionId, S), Error> {
    let req = Request {
        version: PLAN_VERSION,
        deal: Deal::NewSession,
        party: Party::P1,
        plan_hash: *plan_hash,
        share_set,
        params,
    };
    match ask(&mut sock, SessionId([0; 16]), &req)? {
        Response::Created(s) => Ok((s, sock)),
        Response::Accepted => {
            Err(Error::Core(ditto_core::Error::Encoding("dealer did not create a session")))
        }
        Response::Refused(reason) => Err(Error::Refused { reason }),
    }
}

/// Sends `req` under `session` and reads the answer.
fn ask<S: std::io::Read + std::io::Write>(
    sock: &mut S,
    session: SessionId,
    req: &Request,
) -> Result<Response, Error> {
    let mut buf = [0u8; CONTROL_LIMIT];
    FrameWriter::new(Io(&mut *sock), session).write_message(FrameKind::Control, 0, req, &mut buf)?;
    std::io::Write::flush(sock)
        .map_err(|e| Error::Core(ditto_core::Error::Io(embedded_io::Error::kind(&e))))?;
    let (_, resp): (_, Response) = FrameReader::new(Io(&mut *sock), session, CONTROL_LIMIT)
        .read_message(FrameKind::Control, &mut buf)?;
    Ok(resp)
}

/// Copies one whole sealed stream of `session` from `r` to `w`, frame by frame, up to and with
/// its end frame, checking each frame's header, sequence and checksum (not its seal: the party
/// that opens the stream checks that). A stream cut short or garbled is an error, so a copy
/// that returns is complete. Returns the bytes copied.
pub fn copy_stream<R: embedded_io::Read, W: embedded_io::Write>(
    r: R,
    w: W,
    session: SessionId,
) -> Result<u64, Error> {
    let mut tee = Tee { r, w, n: 0, err: None };
    let mut buf = std::vec![0u8; ditto_core::frame::MAX_PAYLOAD];
    let read = {
        let mut frames = FrameReader::new(&mut tee, session, ditto_core::frame::MAX_PAYLOAD);
        loop {
            match frames.read_frame(&mut buf) {
                Ok(h) if h.kind == FrameKind::End => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        }
    };
    // A write error ends reading; it is the one to report.
    match (tee.err, read) {
        (Some(k), _) => Err(Error::Core(ditto_core::Error::Io(k))),
        (None, Err(e)) => Err(Error::Core(e)),
        (None, Ok(())) => Ok(tee.n),
    }
}

/// A reader that writes what it reads to `w` (the first write error is kept and ends reading).
struct Tee<R, W> {
    r: R,
    w: W,
    n: u64,
    err: Option<embedded_io::ErrorKind>,
}

impl<R: embedded_io::Read, W: embedded_io::Write> embedded_io::ErrorType for Tee<R, W> {
    type Error = embedded_io::ErrorKind;
}

impl<R: embedded_io::Read, W: embedded_io::Write> embedded_io::Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.r.read(buf).map_err(|e| embedded_io::Error::kind(&e))?;
        if let Err(e) = self.w.write_all(&buf[..n]) {
            let k = embedded_io::Error::kind(&e);
            self.err = Some(k);
            return Err(k);
        }
        self.n += n as u64;
        Ok(n)
    }
}

/// File name of a party's stream written by `ditto dealer --out DIR`.
pub fn stream_file_name(session: &SessionId, party: Party) -> std::string::String {
    std::format!("{:032x}.p{}.dstream", session.as_u128(), party.index())
}
