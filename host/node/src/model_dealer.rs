//! The model-serving dealer: serves any session and lengths of one model to P0 and P1,
//! generating the sealed streams here from the provisioned seeds, or relaying them from a dealer
//! board (a serial device or QEMU's UART bridged to TCP; the relay sees only sealed bytes and
//! the public plan).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ditto_core::Party;
use ditto_core::plan::Plan;
use ditto_core::prg::ShareSetId;
use ditto_dealer::host::{Deal, Io, Response, read_request_any, reason, write_party_stream, write_response};
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, RelayKey, Salt};
use ditto_dealer::stream::SessionSpec;
use ditto_dealer::{DEFAULT_CHUNK, HashHex};

use ditto_models::quant::QuantConfig;
use ditto_models::spec::ModelConfig;
use ditto_net::tls::Security;

use crate::NodeError;
use crate::dealer::{Event, PartyLink, check_role, open_party_link};
use crate::files::SessionRecord;

/// A byte link to a dealer board.
pub trait BoardLink: std::io::Read + std::io::Write + Send {
    /// Drops whatever the board sent that nobody read (the tail of a request given up on), so
    /// that it is not taken for the start of the next answer.
    fn discard_input(&mut self) -> std::io::Result<()>;
}

impl BoardLink for std::net::TcpStream {
    fn discard_input(&mut self) -> std::io::Result<()> {
        self.set_nonblocking(true)?;
        let mut buf = [0u8; 4096];
        let r = loop {
            match std::io::Read::read(self, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.set_nonblocking(false)?;
        r
    }
}

impl BoardLink for crate::serial::Serial {
    fn discard_input(&mut self) -> std::io::Result<()> {
        crate::serial::Serial::discard_input(self)
    }
}

/// Where the sessions' streams come from.
pub enum Streams {
    /// Generated here from the provisioned seeds and keys.
    Local {
        /// P0's and P1's keys.
        keys: [PartyKey; 2],
        /// The dealer's seeds.
        seeds: DealerSeeds,
        /// Generation threads.
        threads: usize,
    },
    /// Asked of a dealer board (which holds the seeds and keys); each session's two streams are
    /// kept until both parties have fetched theirs.
    Board {
        /// Where the board is (`--serial`), to connect again after a failed request.
        spec: String,
        /// The key this relay tags its requests with (the board's `relay.key`).
        relay: RelayKey,
        /// The link to the board (one request at a time); none after a failed request, whose
        /// leftovers must not be read as the next answer (a board on Ethernet also resets the
        /// connection then).
        link: Mutex<Option<Box<dyn BoardLink>>>,
        /// Streams fetched and not yet served, by session.
        pending: Mutex<HashMap<u128, [Option<Vec<u8>>; 2]>>,
    },
}

/// Longest wait for the board's next bytes.
const BOARD_TIMEOUT: Duration = Duration::from_secs(600);
/// After a failed request, the wait before the next: the board's time-out between bytes (2 s)
/// and its drain until the line is idle, so that it is listening for a request again and has
/// sent everything it will send for the failed one (then discarded here).
const BOARD_SETTLE: Duration = Duration::from_secs(3);

/// Opens `--serial`: `tcp:HOST:PORT` (e.g. QEMU's `-serial tcp:...,server=on`) or a serial
/// device path (set its line speed beforehand, e.g. with `stty`); requests are tagged under
/// `relay`, the relay key provisioned with the board.
pub fn open_board(spec: &str, relay: RelayKey) -> Result<Streams, NodeError> {
    let link = connect_board(spec)?;
    Ok(Streams::Board {
        spec: spec.to_owned(),
        relay,
        link: Mutex::new(Some(link)),
        pending: Mutex::default(),
    })
}

/// The link to the board at `spec`: a TCP connection (a board's Ethernet, or QEMU's UART
/// bridge) or a serial device.
fn connect_board(spec: &str) -> Result<Box<dyn BoardLink>, NodeError> {
    Ok(match spec.strip_prefix("tcp:") {
        Some(addr) => {
            let what = "connecting to the dealer board";
            let s = std::net::TcpStream::connect(addr).map_err(crate::io(what))?;
            s.set_nodelay(true).map_err(crate::io(what))?;
            s.set_read_timeout(Some(BOARD_TIMEOUT)).map_err(crate::io(what))?;
            Box::new(s)
        }
        None => Box::new(crate::serial::Serial::open(Path::new(spec), BOARD_TIMEOUT)?),
    })
}

impl Streams {
    /// Writes `party`'s stream of generation `g` for `plan` to `out` (a board draws its own
    /// salt for each session it deals; `g.salt` is then unused).
    fn write(
        &self,
        party: Party,
        generation: Generation,
        plan: &Plan,
        out: impl std::io::Write,
    ) -> Result<(), NodeError> {
        let session = generation.session;
        match self {
            Streams::Local { keys, seeds, threads } => {
                let spec = SessionSpec::new(generation, seeds);
                let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
                write_party_stream(party, plan, &spec, &keys[party.index()], &mut w, *threads)?;
                std::io::Write::flush(&mut w).map_err(crate::io("writing a dealer stream"))
            }
            Streams::Board { spec, relay, link, pending } => {
                let bytes = {
                    let mut g = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let entry = match g.entry(session.as_u128()) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let mut l = link.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            let mut conn = match l.take() {
                                Some(c) => c,
                                None => {
                                    std::thread::sleep(BOARD_SETTLE);
                                    connect_board(spec)?
                                }
                            };
                            conn.discard_input().map_err(crate::io("clearing the board link"))?;
                            let r = ditto_dealer::board::request(
                                &mut conn,
                                relay,
                                session,
                                generation.share_set,
                                plan,
                                DEFAULT_CHUNK,
                            );
                            // Kept only after a complete answer.
                            let [a, b] = r?;
                            *l = Some(conn);
                            v.insert([Some(a), Some(b)])
                        }
                    };
                    let mine = entry[party.index()].take();
                    if entry.iter().all(Option::is_none) {
                        g.remove(&session.as_u128());
                    }
                    mine
                };
                let bytes = bytes.ok_or_else(|| NodeError::Request("stream already relayed".into()))?;
                let mut out = out;
                out.write_all(&bytes).map_err(crate::io("relaying a board's stream"))?;
                out.flush().map_err(crate::io("relaying a board's stream"))
            }
        }
    }
}

/// The model-serving dealer.
pub struct ModelDealer {
    /// The model's config (no weights are needed).
    pub cfg: ModelConfig,
    /// Quantization.
    pub q: QuantConfig,
    /// Where the streams come from.
    pub streams: Streams,
    /// Stop after this many complete sessions (0: never).
    pub sessions: usize,
    /// How the parties' links are secured.
    pub sec: Security,
}

impl ModelDealer {
    /// Serves any session and lengths for the model on `listener`: each request names its
    /// session (in the frame header) and lengths; the dealer derives the plan from the model
    /// config and checks the party's plan hash against it. Sessions are claimed in the record of
    /// `state` before the first byte is dealt. A refused request is reported to `log` and the
    /// dealer keeps serving.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        state: &Path,
        mut log: impl FnMut(&Event),
    ) -> Result<(), NodeError> {
        let record = Arc::new(SessionRecord::open(state)?);
        let served: Arc<Mutex<HashMap<u128, Served>>> = Arc::default();
        let (sessions, sec) = (self.sessions, self.sec.clone());
        let d = Arc::new(self);
        let mut done = 0;
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(std::net::SocketAddr, Result<bool, NodeError>)>();
        loop {
            tokio::select! {
                acc = listener.accept() => {
                    let (sock, peer) = acc.map_err(crate::io("accepting a party"))?;
                    let sock = sock.into_std().map_err(crate::io("accepting a party"))?;
                    let (d, record, served, tx, sec) = (Arc::clone(&d), Arc::clone(&record), Arc::clone(&served), tx.clone(), sec.clone());
                    let handle = tokio::runtime::Handle::current();
                    tokio::task::spawn_blocking(move || {
                        let r = open_party_link(sock, &sec)
                            .and_then(|mut link| d.serve_one(&handle, &mut link, &record, &served));
                        let _ = tx.send((peer, r));
                    });
                }
                Some((peer, r)) = rx.recv() => match r {
                    Ok(complete) => {
                        if complete {
                            done += 1;
                            if sessions > 0 && done >= sessions {
                                return Ok(());
                            }
                        }
                    }
                    Err(e) => log(&Event::Refused { peer, why: e.to_string() }),
                },
            }
        }
    }

    /// Serves one request; Ok(true) when it completed a session (both parties served).
    fn serve_one(
        &self,
        rt: &tokio::runtime::Handle,
        link: &mut PartyLink,
        record: &SessionRecord,
        served: &Mutex<HashMap<u128, Served>>,
    ) -> Result<bool, NodeError> {
        let (role, sock) = (link.0.as_deref(), &mut link.1);
        let (session, req) = read_request_any(Io(&mut *sock))?;
        let mut refuse = |why: String| -> Result<bool, NodeError> {
            write_response(Io(&mut *sock), session, &Response::Refused(reason(&why)))?;
            Err(NodeError::Request(format!("refused {:?}: {why}", req.party)))
        };
        if let Err(why) = check_role(role, req.party) {
            return refuse(why);
        }
        if req.deal == Deal::NewSession && req.party != Party::P1 {
            return refuse("a new session is dealt to P1, which relays P0's sealed stream".into());
        }
        let max = self.cfg.positions();
        let p = req.params;
        if p.seq == 0 || u64::from(p.seq) + u64::from(p.generate) > max as u64 {
            return refuse(format!("{} + {} tokens outside 1..={max}", p.seq, p.generate));
        }
        if p.reveal_token && matches!(self.cfg, ModelConfig::Bert(_)) {
            return refuse("a BERT model has no tokens to reveal".into());
        }
        if p.batch > ditto_net::client::MAX_BATCH
            || u64::from(p.batch.max(1)) * u64::from(p.seq) > ditto_net::client::MAX_ROWS
        {
            return refuse(format!("a batch of {} inputs of {} tokens is over the limits", p.batch, p.seq));
        }
        let plan = rt.block_on(crate::party::plan_for(&self.cfg, &self.q, &p))?;
        let hash = plan.hash()?;
        if hash != req.plan_hash {
            return refuse(format!(
                "plan hash mismatch: dealer has {}, request has {}",
                HashHex::of(&hash),
                HashHex::of(&req.plan_hash)
            ));
        }
        if req.deal == Deal::NewSession {
            let generation = match create(record, req.share_set) {
                Ok(g) => g,
                Err(why) => return refuse(why),
            };
            write_response(Io(&mut *sock), session, &Response::Created(generation.session))?;
            self.streams.write(Party::P0, generation, &plan, &mut *sock)?;
            self.streams.write(Party::P1, generation, &plan, &mut *sock)?;
            std::io::Write::flush(sock).map_err(crate::io("sending a new session"))?;
            return Ok(true);
        }
        let (generation, complete) = match admit(served, record, session, req.share_set, req.party) {
            Ok(v) => v,
            Err(why) => return refuse(why),
        };
        write_response(Io(&mut *sock), session, &Response::Accepted)?;
        self.streams.write(req.party, generation, &plan, &mut *sock)?;
        std::io::Write::flush(sock).map_err(crate::io("sending a stream"))?;
        Ok(complete)
    }
}

/// A session created here ([`Deal::NewSession`]): its id and salt fresh from the OS RNG, claimed
/// in the durable record before anything of it is dealt (both streams go out on the one
/// connection, so nothing of it is kept).
fn create(record: &SessionRecord, share_set: ShareSetId) -> Result<Generation, String> {
    let session = ditto_core::prg::SessionId(crate::files::os_random16().map_err(|e| e.to_string())?);
    let salt = Salt(crate::files::os_random16().map_err(|e| e.to_string())?);
    record.claim(&session).map_err(|e| e.to_string())?;
    Ok(Generation { session, share_set, salt })
}

/// A session this process has begun to serve: its generation (sharing and salt, fixed by the
/// first party's request) and which parties have been served.
pub(crate) struct Served {
    share_set: ShareSetId,
    salt: Salt,
    done: [bool; 2],
}

/// Marks `party` served in `session` and returns the generation to deal and whether both
/// parties are now served. The first request of a session claims it in the durable record
/// before anything is inserted, so a failed claim (a session served by an earlier process, an
/// I/O error) leaves nothing behind that a retry could be served from.
pub(crate) fn admit(
    served: &Mutex<HashMap<u128, Served>>,
    record: &SessionRecord,
    session: ditto_core::prg::SessionId,
    share_set: ShareSetId,
    party: Party,
) -> Result<(Generation, bool), String> {
    let mut g = served.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = match g.entry(session.as_u128()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let salt = Salt(crate::files::os_random16().map_err(|e| e.to_string())?);
            record.claim(&session).map_err(|e| e.to_string())?;
            v.insert(Served { share_set, salt, done: [false; 2] })
        }
    };
    if entry.share_set != share_set {
        return Err(format!(
            "share set mismatch: session dealt for sharing {}, {party:?} asks {}",
            HashHex::of_id(&entry.share_set.0),
            HashHex::of_id(&share_set.0)
        ));
    }
    if entry.done[party.index()] {
        return Err(format!("{party:?}'s stream of this session was already served"));
    }
    entry.done[party.index()] = true;
    Ok((Generation { session, share_set, salt: entry.salt }, entry.done[0] && entry.done[1]))
}
