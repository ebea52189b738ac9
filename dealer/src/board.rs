//! The dealer appliance's serial protocol: a host asks a board for one session's two sealed
//! streams over a byte link (a UART, or QEMU's UART bridged to TCP), and the board pulls the
//! plan from the host one step at a time, so that its memory does not grow with the model.
//!
//! Over Ethernet the same bytes go over a TCP connection to [`TCP_PORT`] (the firmware's
//! `net` module).
//!
//! Host -> board, the request: `DTFW`, version (1 byte), session id (16), share-set id (16),
//! chunk (u32 LE), plan header length (u16 LE), plan header (postcard), then a 16-byte tag of
//! all of that under the relay key ([`RelayKey::tag`]). The board refuses a request whose tag
//! does not verify (only its relay can make it deal) and a session it has served before under
//! its current master seed ([`ServedSessions`]), draws a fresh salt for the generation, then
//! sends frames `kind (1) | length (u32 LE) | payload`:
//!
//! * [`NEED_STEP`] (first step index u32 LE, count u16 LE, at most [`BATCH`]): the host
//!   answers `length (u16 LE) | step (postcard)` for each, in one write; the board reads the plan
//!   in such batches twice per stream (to hash it, then to deal it) and keeps one batch;
//! * [`DATA`] (party, then stream bytes) and [`END`] (party): P0's stream, then P1's;
//! * [`FAIL`] (reason, UTF-8): the board gives up on this request.
//!
//! The link carries only what a relay may see: the plan (public) and sealed frames. The board
//! waits for each answer before it sends more, so a host that reads at its own pace loses
//! nothing (flow control by request and answer). The tag authenticates the request, not the
//! step answers: a host that alters steps gets streams for another plan, which the parties
//! refuse (they check the plan's hash). A recorded request replayed is refused as a served
//! session until the board draws a new master seed (at a reboot, or after [`ServedSessions`]
//! fills); after that it is dealt again, sealed to the parties, for nobody: it costs the board
//! time and yields nothing.

use core::cell::RefCell;

use embedded_io::{Read, Write};

use ditto_core::Party;
use ditto_core::plan::{PlanHeader, Step};
use ditto_core::prg::{SessionId, ShareSetId};

use crate::Error;
use crate::keys::{DealerSeeds, Generation, PartyKey, RelayKey, SaltSource};
use crate::stream::{MAX_CHUNK, PlanSource, SessionSpec, write_stream};

/// The TCP port a board with Ethernet serves this protocol on.
pub const TCP_PORT: u16 = 7300;
/// Request magic.
pub const MAGIC: [u8; 4] = *b"DTFW";
/// Protocol version (3: requests carry a tag under the relay key).
pub const VERSION: u8 = 3;
/// Request bytes before the plan header: magic, version, session, share set, chunk, length.
const REQUEST_HEAD: usize = 4 + 1 + 16 + 16 + 4 + 2;
/// The request's tag, after the plan header.
pub const TAG: usize = 16;
/// Board -> host: send me step `index`.
pub const NEED_STEP: u8 = 1;
/// Board -> host: stream bytes of a party.
pub const DATA: u8 = 2;
/// Board -> host: a party's stream is complete.
pub const END: u8 = 3;
/// Board -> host: the request failed.
pub const FAIL: u8 = 4;
/// Largest encoded plan header or step.
pub const MAX_ITEM: usize = 256;
/// Steps per [`NEED_STEP`] request (the board's whole plan buffer).
pub const BATCH: usize = 32;

fn io<E: embedded_io::Error>(e: E) -> Error {
    Error::Core(ditto_core::Error::Io(e.kind()))
}

fn read_exact<U: Read>(u: &mut U, buf: &mut [u8]) -> Result<(), Error> {
    let mut at = 0;
    while at < buf.len() {
        match u.read(&mut buf[at..]).map_err(io)? {
            0 => return Err(Error::Core(ditto_core::Error::Io(embedded_io::ErrorKind::BrokenPipe))),
            n => at += n,
        }
    }
    Ok(())
}

fn frame<U: Write>(u: &mut U, kind: u8, head: &[u8], body: &[u8]) -> Result<(), Error> {
    let len = u32::try_from(head.len() + body.len())
        .map_err(|_| Error::Plan { index: 0, reason: "frame too long" })?;
    u.write_all(&[kind]).map_err(io)?;
    u.write_all(&len.to_le_bytes()).map_err(io)?;
    u.write_all(head).map_err(io)?;
    u.write_all(body).map_err(io)?;
    Ok(())
}

/// The plan, pulled from the host a batch of steps at a time.
struct Pulled<'a, U> {
    link: &'a RefCell<U>,
    header: PlanHeader,
    /// Steps `first..first + batch.len()`.
    first: u32,
    batch: heapless::Vec<Step, BATCH>,
}

impl<U: Read + Write> PlanSource for Pulled<'_, U> {
    fn header(&self) -> &PlanHeader {
        &self.header
    }
    fn step(&mut self, index: u32) -> Result<Step, Error> {
        if let Some(s) = index.checked_sub(self.first).and_then(|i| self.batch.get(i as usize)) {
            return Ok(*s);
        }
        let count = (self.header.n_steps.saturating_sub(index) as usize).min(BATCH);
        if count == 0 {
            return Err(Error::Plan { index, reason: "step past the plan" });
        }
        let mut u = self.link.borrow_mut();
        let mut req = [0u8; 6];
        req[..4].copy_from_slice(&index.to_le_bytes());
        req[4..].copy_from_slice(&u16::try_from(count).unwrap_or(0).to_le_bytes());
        frame(&mut *u, NEED_STEP, &req, &[])?;
        u.flush().map_err(io)?;
        self.batch.clear();
        self.first = index;
        for at in (index..).take(count) {
            let mut len = [0u8; 2];
            read_exact(&mut *u, &mut len)?;
            let n = usize::from(u16::from_le_bytes(len));
            let mut buf = [0u8; MAX_ITEM];
            let item = buf.get_mut(..n).ok_or(Error::Plan { index: at, reason: "step encoding too long" })?;
            read_exact(&mut *u, item)?;
            let step = postcard::from_bytes(item)
                .map_err(|_| Error::Plan { index: at, reason: "step does not decode" })?;
            let _ = self.batch.push(step);
        }
        self.batch.first().copied().ok_or(Error::Plan { index, reason: "empty batch" })
    }
}

/// One party's stream bytes as DATA frames.
struct Framed<'a, U> {
    link: &'a RefCell<U>,
    party: u8,
}

impl<U: Write> embedded_io::ErrorType for Framed<'_, U> {
    type Error = embedded_io::ErrorKind;
}

impl<U: Write> Write for Framed<'_, U> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let mut u = self.link.borrow_mut();
        frame(&mut *u, DATA, &[self.party], buf).map_err(|e| match e {
            Error::Core(ditto_core::Error::Io(k)) => k,
            _ => embedded_io::ErrorKind::Other,
        })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.link.borrow_mut().flush().map_err(|e| embedded_io::Error::kind(&e))
    }
}

/// The sessions a board has dealt under its current master seed, each refused a second time.
/// Bounded: when [`Self::is_full`], the board draws a new master seed and starts a new set,
/// exactly as a reboot would (every seed derives from the master seed, so a session dealt
/// before is dealt from independent seeds after).
pub struct ServedSessions<const N: usize> {
    ids: heapless::Vec<[u8; 16], N>,
}

impl<const N: usize> Default for ServedSessions<N> {
    fn default() -> Self {
        ServedSessions { ids: heapless::Vec::new() }
    }
}

impl<const N: usize> core::fmt::Debug for ServedSessions<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ServedSessions {{ {} of {N} }}", self.ids.len())
    }
}

impl<const N: usize> ServedSessions<N> {
    /// Records `session`, refusing one already recorded (and any while the set is full).
    pub fn claim(&mut self, session: &SessionId) -> Result<(), Error> {
        if self.ids.contains(&session.0) {
            return Err(Error::SessionServed { session: session.as_u128() });
        }
        self.ids.push(session.0).map_err(|_| Error::ServedSetFull { capacity: N })
    }

    /// Whether no further session can be recorded.
    pub fn is_full(&self) -> bool {
        self.ids.is_full()
    }

    /// Forgets every session: only after the master seed was drawn anew.
    pub fn clear(&mut self) {
        self.ids.clear();
    }
}

/// A board's dealing state: its seeds, the party keys, its salt source and the sessions it
/// has served under the current master seed.
pub struct BoardDealer<'a, const N: usize> {
    /// The dealer's seeds.
    pub seeds: &'a DealerSeeds,
    /// P0's and P1's keys.
    pub keys: &'a [PartyKey; 2],
    /// The key the relay tags its requests with.
    pub relay: &'a RelayKey,
    /// Salts, one per generation.
    pub salts: &'a mut SaltSource,
    /// Sessions served.
    pub served: &'a mut ServedSessions<N>,
}

/// Reads up to and including the request magic, discarding whatever comes before it (line
/// noise, the rest of a request cut short, a step answer the board no longer waits for): this
/// is how a board resynchronises with its host. A link that falls silent (its read fails, e.g.
/// a UART's time-out between bytes) before a magic ends the hunt with [`Error::NoRequest`].
fn hunt<U: Read>(u: &mut U) -> Result<(), Error> {
    let mut window = [0u8; 4];
    let mut seen = 0u32;
    loop {
        let mut b = [0u8; 1];
        if read_exact(u, &mut b).is_err() {
            return Err(Error::NoRequest { skipped: seen });
        }
        window = [window[1], window[2], window[3], b[0]];
        seen = seen.saturating_add(1);
        if seen >= 4 && window == MAGIC {
            return Ok(());
        }
    }
}

/// Board side: reads one request from `link` (after whatever noise precedes its magic) and
/// answers it with both streams (P0's, then P1's) dealt by `d`; `scratch` must hold
/// [`crate::stream::scratch_len`] of the requested chunk. The session is claimed before
/// anything is dealt and stays claimed whatever happens next. A failure is reported to the
/// host as a [`FAIL`] frame and returned; bytes that held no request are discarded unanswered
/// ([`Error::NoRequest`]).
pub fn serve<U: Read + Write, const N: usize>(
    link: &RefCell<U>,
    d: &mut BoardDealer<'_, N>,
    scratch: &mut [u8],
) -> Result<(), Error> {
    serve_settling(link, d, scratch, |_| {})
}

/// [`serve`], calling `settle` on the link after a failure and before the FAIL frame: a UART
/// board drains its line there until the host is quiet, so that nothing the host sent for the
/// failed request is left to be taken for the next one (the host sends its next request only
/// after the FAIL frame).
pub fn serve_settling<U: Read + Write, const N: usize>(
    link: &RefCell<U>,
    d: &mut BoardDealer<'_, N>,
    scratch: &mut [u8],
    settle: impl FnOnce(&mut U),
) -> Result<(), Error> {
    hunt(&mut *link.borrow_mut())?;
    let r = serve_inner(link, d, scratch);
    if let Err(e) = &r {
        settle(&mut *link.borrow_mut());
        let mut reason = Reason(heapless::String::new());
        let _ = core::fmt::write(&mut reason, format_args!("{e}"));
        let reason = reason.0;
        let mut u = link.borrow_mut();
        let _ = frame(&mut *u, FAIL, reason.as_bytes(), &[]);
        let _ = u.flush();
    }
    r
}

/// A FAIL frame's reason: as much of the error's text as fits (a `heapless::String` alone
/// refuses a piece that does not fit whole, which left long reasons empty).
struct Reason(heapless::String<96, u8>);

impl core::fmt::Write for Reason {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

fn serve_inner<U: Read + Write, const N: usize>(
    link: &RefCell<U>,
    d: &mut BoardDealer<'_, N>,
    scratch: &mut [u8],
) -> Result<(), Error> {
    // The magic was read by `hunt`.
    let mut head = [0u8; REQUEST_HEAD];
    head[..4].copy_from_slice(&MAGIC);
    read_exact(&mut *link.borrow_mut(), &mut head[4..])?;
    if head[4] != VERSION {
        return Err(Error::Plan {
            index: 0,
            reason: "not a DTFW v3 request (a relay without the relay key?)",
        });
    }
    let mut sid = [0u8; 16];
    sid.copy_from_slice(&head[5..21]);
    let mut set = [0u8; 16];
    set.copy_from_slice(&head[21..37]);
    let chunk = u32::from_le_bytes([head[37], head[38], head[39], head[40]]) as usize;
    let n = usize::from(u16::from_le_bytes([head[41], head[42]]));
    // The request as tagged: head, plan header; then the tag.
    let mut buf = [0u8; REQUEST_HEAD + MAX_ITEM + TAG];
    buf[..REQUEST_HEAD].copy_from_slice(&head);
    let tagged = REQUEST_HEAD + n;
    let rest = buf
        .get_mut(REQUEST_HEAD..tagged + TAG)
        .ok_or(Error::Plan { index: 0, reason: "plan header too long" })?;
    read_exact(&mut *link.borrow_mut(), rest)?;
    let (request, tag) = buf.split_at(tagged);
    let mut t = [0u8; TAG];
    t.copy_from_slice(&tag[..TAG]);
    if !d.relay.verify(request, &t) {
        return Err(Error::NotAuthenticated);
    }
    let header: PlanHeader = postcard::from_bytes(&request[REQUEST_HEAD..])
        .map_err(|_| Error::Plan { index: 0, reason: "plan header does not decode" })?;
    if chunk == 0 || chunk > MAX_CHUNK {
        return Err(Error::Chunk { chunk, max: MAX_CHUNK });
    }
    let session = SessionId(sid);
    d.served.claim(&session)?;
    let generation = Generation { session, share_set: ShareSetId(set), salt: d.salts.next_salt() };
    let mut spec = SessionSpec::new(generation, d.seeds);
    spec.chunk = chunk;
    for (p, party) in [(0u8, Party::P0), (1, Party::P1)] {
        let mut plan = Pulled { link, header: header.clone(), first: 0, batch: heapless::Vec::new() };
        let out = Framed { link, party: p };
        write_stream(party, &mut plan, &spec, &d.keys[usize::from(p)], out, scratch)?;
        let mut u = link.borrow_mut();
        frame(&mut *u, END, &[p], &[])?;
        u.flush().map_err(io)?;
    }
    Ok(())
}

/// The request for `session`'s streams of the plan whose header encodes as `header`, with the
/// masks of sharing `share_set`, tagged under `relay` (see the module docs).
#[cfg(feature = "std")]
pub fn encode_request(
    relay: &RelayKey,
    session: SessionId,
    share_set: ShareSetId,
    header: &[u8],
    chunk: usize,
) -> Result<std::vec::Vec<u8>, Error> {
    let mut req = std::vec::Vec::new();
    req.extend_from_slice(&MAGIC);
    req.push(VERSION);
    req.extend_from_slice(&session.0);
    req.extend_from_slice(&share_set.0);
    req.extend_from_slice(
        &u32::try_from(chunk).map_err(|_| Error::Chunk { chunk, max: MAX_CHUNK })?.to_le_bytes(),
    );
    let n =
        u16::try_from(header.len()).map_err(|_| Error::Plan { index: 0, reason: "plan header too long" })?;
    req.extend_from_slice(&n.to_le_bytes());
    req.extend_from_slice(header);
    let tag = relay.tag(&req);
    req.extend_from_slice(&tag);
    Ok(req)
}

/// Host side: asks the board on `link` for `session`'s streams of `plan` with the masks of
/// sharing `share_set` (answering its step requests), the request tagged under `relay`, and
/// returns P0's and P1's streams as the board sent them (sealed; the host sees nothing else).
/// `link` should time out its reads (a silent board is an error, not a hang); over TCP (QEMU's
/// UART bridge) set no-delay, as every step is a small request and answer.
#[cfg(feature = "std")]
pub fn request<L: std::io::Read + std::io::Write>(
    link: &mut L,
    relay: &RelayKey,
    session: SessionId,
    share_set: ShareSetId,
    plan: &ditto_core::plan::Plan,
    chunk: usize,
) -> Result<[std::vec::Vec<u8>; 2], Error> {
    use std::vec::Vec;
    let ioe = |e: std::io::Error| Error::Core(ditto_core::Error::Io(embedded_io::Error::kind(&e)));
    let enc = |v: &dyn erased::Enc| {
        v.enc().map_err(|_| Error::Plan { index: 0, reason: "plan item does not encode" })
    };
    let req = encode_request(relay, session, share_set, &enc(&plan.header)?, chunk)?;
    link.write_all(&req).map_err(ioe)?;
    link.flush().map_err(ioe)?;
    let mut out = [Vec::new(), Vec::new()];
    let mut ended = [false; 2];
    while !(ended[0] && ended[1]) {
        let mut h = [0u8; 5];
        link.read_exact(&mut h).map_err(ioe)?;
        let len = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize;
        if len > MAX_CHUNK + 4096 {
            return Err(Error::Plan { index: 0, reason: "board frame too long" });
        }
        let mut body = std::vec![0u8; len];
        link.read_exact(&mut body).map_err(ioe)?;
        match (h[0], body.first().copied()) {
            (NEED_STEP, _) if len == 6 => {
                let first = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                let count = usize::from(u16::from_le_bytes([body[4], body[5]]));
                let last =
                    (first as usize).checked_add(count).filter(|&e| count <= BATCH && e <= plan.steps.len());
                let Some(last) = last else {
                    return Err(Error::Plan { index: first, reason: "board asked past the plan" });
                };
                // The whole batch in one write (a TCP bridge would otherwise hold parts back).
                let mut answer = Vec::new();
                for step in &plan.steps[first as usize..last] {
                    let s = enc(step)?;
                    answer.extend_from_slice(&u16::try_from(s.len()).unwrap_or(u16::MAX).to_le_bytes());
                    answer.extend_from_slice(&s);
                }
                link.write_all(&answer).map_err(ioe)?;
                link.flush().map_err(ioe)?;
            }
            (DATA, Some(p @ (0 | 1))) if !ended[usize::from(p)] => {
                out[usize::from(p)].extend_from_slice(&body[1..])
            }
            (END, Some(p @ (0 | 1))) if len == 1 => ended[usize::from(p)] = true,
            (FAIL, _) => {
                let text = core::str::from_utf8(&body).unwrap_or("(not UTF-8)");
                let mut reason: heapless::String<96, u8> = heapless::String::new();
                for c in text.chars() {
                    if reason.push(c).is_err() {
                        break;
                    }
                }
                return Err(Error::Refused { reason });
            }
            _ => return Err(Error::Plan { index: 0, reason: "unexpected frame from the board" }),
        }
    }
    Ok(out)
}

#[cfg(feature = "std")]
mod erased {
    /// Postcard encoding of plan items (header or step).
    pub trait Enc {
        fn enc(&self) -> Result<std::vec::Vec<u8>, postcard::Error>;
    }
    impl<T: serde::Serialize> Enc for T {
        fn enc(&self) -> Result<std::vec::Vec<u8>, postcard::Error> {
            postcard::to_allocvec(self)
        }
    }
}
