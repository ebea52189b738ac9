//! `ditto dealer --model`: serves any session and sequence length of one model to P0 and P1,
//! generating the sealed streams here from the provisioned seeds, or relaying them from a dealer
//! board (`--serial`: a serial device or QEMU's UART bridged to TCP; the relay sees only sealed
//! bytes and the public plan).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ditto_core::Party;
use ditto_core::plan::Plan;
use ditto_core::prg::ShareSetId;
use ditto_dealer::host::{Io, Response, read_request_any, reason, with_parallel, write_response};
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{
    SessionSpec, SlicePlan, dealer_streams, scratch_len, write_stream, write_stream_with,
};
use ditto_dealer::{DEFAULT_CHUNK, HashHex};

use crate::dealer::{check_role, open_party_link};
use crate::files::CliError;
use crate::session::{net, runtime};
use ditto_models::generate::Reveal;
use ditto_models::spec::{ModelConfig, ModelSpec};
use ditto_net::tls::{BlockingStream, Security};
use ditto_node::files::SessionRecord;

/// A byte link to a dealer board.
pub trait BoardLink: std::io::Read + std::io::Write + Send {}
impl<T: std::io::Read + std::io::Write + Send> BoardLink for T {}

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
        /// The link to the board (one request at a time).
        link: Mutex<Box<dyn BoardLink>>,
        /// Streams fetched and not yet served, by session.
        pending: Mutex<HashMap<u128, [Option<Vec<u8>>; 2]>>,
    },
}

/// Opens `--serial`: `tcp:HOST:PORT` (e.g. QEMU's `-serial tcp:...,server=on`) or a serial
/// device path (set its line speed beforehand, e.g. with `stty`).
pub fn open_board(spec: &str) -> Result<Streams, CliError> {
    let link: Box<dyn BoardLink> = match spec.strip_prefix("tcp:") {
        Some(addr) => {
            let s = std::net::TcpStream::connect(addr).map_err(|e| net(format!("board at {addr}: {e}")))?;
            s.set_nodelay(true).map_err(net)?;
            s.set_read_timeout(Some(Duration::from_secs(600))).map_err(net)?;
            Box::new(s)
        }
        None => Box::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(spec)
                .map_err(|source| CliError::File { path: PathBuf::from(spec), source })?,
        ),
    };
    Ok(Streams::Board { link: Mutex::new(link), pending: Mutex::default() })
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
    ) -> Result<(), CliError> {
        let session = generation.session;
        match self {
            Streams::Local { keys, seeds, threads } => {
                let spec = SessionSpec::new(generation, seeds);
                let w = std::io::BufWriter::with_capacity(1 << 16, out);
                let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
                let mut scratch = vec![0u8; scratch_len(spec.chunk)];
                if party == Party::P0 {
                    write_stream(Party::P0, &mut src, &spec, &keys[0], Io(w), &mut scratch)?;
                } else {
                    let ds = dealer_streams(&spec);
                    with_parallel(&ds, plan, *threads, |p| {
                        write_stream_with(Party::P1, &mut src, &spec, &keys[1], Io(w), &mut scratch, p)
                    })?;
                }
                Ok(())
            }
            Streams::Board { link, pending } => {
                let bytes = {
                    let mut g = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let entry = match g.entry(session.as_u128()) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let mut l = link.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            let [a, b] = ditto_dealer::board::request(
                                &mut *l,
                                session,
                                generation.share_set,
                                plan,
                                DEFAULT_CHUNK,
                            )?;
                            v.insert([Some(a), Some(b)])
                        }
                    };
                    let mine = entry[party.index()].take();
                    if entry.iter().all(Option::is_none) {
                        g.remove(&session.as_u128());
                    }
                    mine
                };
                let bytes = bytes.ok_or_else(|| net("stream already relayed"))?;
                let mut out = out;
                out.write_all(&bytes).map_err(net)?;
                out.flush().map_err(net)
            }
        }
    }
}

/// Arguments of the model-serving dealer (`ditto dealer --model`).
pub struct ModelDealer<'a> {
    /// Model directory or `seeded` (only the config is used).
    pub model: &'a str,
    /// Quantization.
    pub quant: &'a str,
    /// Where the streams come from.
    pub streams: Streams,
    /// Listen address.
    pub listen: &'a str,
    /// Stop after this many complete sessions (0: never).
    pub sessions: usize,
    /// State directory.
    pub state: &'a std::path::Path,
    /// How the parties' links are secured.
    pub sec: Security,
}

/// Serves any session and sequence length for one model: each request names its session (in
/// the frame header) and sequence length; the dealer derives the plan from the model config and
/// checks the party's plan hash against it.
pub fn serve_model(d: ModelDealer<'_>) -> Result<(), CliError> {
    let cfg = ModelSpec::parse(d.model).config()?;
    let streams = Arc::new(d.streams);
    let q = crate::calibrate::load_quant(d.quant)?;
    let record = Arc::new(SessionRecord::open(d.state)?);
    let served: Arc<Mutex<HashMap<u128, Served>>> = Arc::default();
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(d.listen).await.map_err(net)?;
        say!("listening {}", listener.local_addr().map_err(net)?);
        let mut done = 0;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<bool, CliError>>();
        loop {
            tokio::select! {
                acc = listener.accept() => {
                    let (sock, peer) = acc.map_err(net)?;
                    let sock = sock.into_std().map_err(net)?;
                    let (cfg, q, streams, record, served, tx) = (cfg.clone(), q.clone(), Arc::clone(&streams), Arc::clone(&record), Arc::clone(&served), tx.clone());
                    let handle = tokio::runtime::Handle::current();
                    let sec = d.sec.clone();
                    tokio::task::spawn_blocking(move || {
                        let r = open_party_link(sock, &sec).and_then(|mut link| {
                            serve_one(&handle, &mut link, &cfg, &q, &streams, &record, &served)
                        });
                        if let Err(e) = &r {
                            eprintln!("dealer: {peer}: {e}");
                        }
                        let _ = tx.send(r);
                    });
                }
                Some(r) = rx.recv() => {
                    if let Ok(true) = r {
                        done += 1;
                        if d.sessions > 0 && done >= d.sessions {
                            return Ok(());
                        }
                    }
                }
            }
        }
    })
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
            let salt = Salt(ditto_node::files::os_random16().map_err(|e| e.to_string())?);
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

/// Serves one request; Ok(true) when it completed a session (both parties served).
#[allow(clippy::too_many_arguments)]
fn serve_one(
    rt: &tokio::runtime::Handle,
    link: &mut (Option<String>, Box<dyn BlockingStream>),
    cfg: &ModelConfig,
    q: &ditto_models::quant::QuantConfig,
    streams: &Streams,
    record: &SessionRecord,
    served: &Mutex<HashMap<u128, Served>>,
) -> Result<bool, CliError> {
    let (role, sock) = (link.0.as_deref(), &mut link.1);
    let (session, req) = read_request_any(Io(&mut *sock))?;
    let mut refuse = |why: String| -> Result<bool, CliError> {
        write_response(Io(&mut *sock), session, &Response::Refused(reason(&why)))?;
        Err(net(format!("refused {:?}: {why}", req.party)))
    };
    if let Err(why) = check_role(role, req.party) {
        return refuse(why);
    }
    let max = cfg.positions();
    let p = req.params;
    if p.seq == 0 || u64::from(p.seq) + u64::from(p.generate) > max as u64 {
        return refuse(format!("{} + {} tokens outside 1..={max}", p.seq, p.generate));
    }
    let plan = match cfg {
        ModelConfig::Bert(_) if p.reveal_token => {
            return refuse("a BERT model has no tokens to reveal".into());
        }
        ModelConfig::Bert(c) => rt.block_on(ditto_models::plans::bert("party", c, q, p.seq as usize))?,
        ModelConfig::Gpt2(c) => {
            let reveal = Reveal::of_flag(p.reveal_token);
            rt.block_on(ditto_models::plans::gpt2(
                "party",
                c,
                q,
                (p.seq as usize, p.generate as usize),
                reveal,
            ))?
        }
    };
    let hash = plan.hash()?;
    if hash != req.plan_hash {
        return refuse(format!(
            "plan hash mismatch: dealer has {}, request has {}",
            HashHex::of(&hash),
            HashHex::of(&req.plan_hash)
        ));
    }
    let (generation, complete) = match admit(served, record, session, req.share_set, req.party) {
        Ok(v) => v,
        Err(why) => return refuse(why),
    };
    write_response(Io(&mut *sock), session, &Response::Accepted)?;
    streams.write(req.party, generation, &plan, &mut *sock)?;
    std::io::Write::flush(sock).map_err(net)?;
    Ok(complete)
}
