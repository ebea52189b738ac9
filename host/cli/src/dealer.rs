//! `ditto dealer`: one session's correlated randomness for a plan, served to P0 and P1 over TCP
//! or written to files (`--out DIR`) for offline pre-generation.

use std::io::{IsTerminal, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ditto_core::Party;
use ditto_core::corr::Tile;
use ditto_core::plan::{PLAN_VERSION, Plan};
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::host::{
    Io, Request, Response, read_request, reason, stream_file_name, with_parallel, write_response,
};
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{
    SessionSpec, SlicePlan, dealer_streams, scratch_len, write_stream, write_stream_with,
};
use ditto_dealer::{DEFAULT_CHUNK, HashHex, plans};

use crate::files::CliError;
use crate::identity::LinkArgs;
use ditto_net::tls::{BlockingStream, Security};
use ditto_node::files::SessionRecord;

/// Arguments of `ditto dealer`.
#[derive(clap::Args, Debug)]
pub struct DealerArgs {
    /// Plan from a model shape: bert-tiny, minilm, bert-base, bert-large, gpt2, gpt2-medium.
    #[arg(long, conflicts_with = "plan")]
    pub arch: Option<String>,
    /// Sequence length (with --arch).
    #[arg(long, default_value_t = 128)]
    pub seq: u32,
    /// Generated tokens after the prompt (with a decoder --arch).
    #[arg(long = "gen", default_value_t = 0)]
    pub generate: u32,
    /// Plan file (postcard encoding of a plan).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Serve a BERT model (directory or `seeded`): every request names its session and sequence
    /// length, and the dealer derives the plan from the model's config (with --listen).
    #[arg(long, conflicts_with_all = ["arch", "plan"])]
    pub model: Option<String>,
    /// Quantization for --model: accurate, ditto, or a QuantConfig file.
    #[arg(long, default_value = "accurate")]
    pub quant: String,
    /// With --model: stop after this many complete sessions (0: serve until stopped).
    #[arg(long, default_value_t = 0)]
    pub sessions: usize,
    /// Directory holding p0.key, p1.key and model.seed (see `ditto provision`).
    #[arg(long, required_unless_present = "serial")]
    pub keys: Option<PathBuf>,
    /// With --model: relay the streams of a dealer board instead of generating them here:
    /// `tcp:HOST:PORT` (QEMU's UART bridge) or a serial device. The board holds the seeds and
    /// keys; this process sees only sealed streams.
    #[arg(long, requires = "model")]
    pub serial: Option<String>,
    /// Session id, 32 hex digits (default: fresh from the OS RNG).
    #[arg(long)]
    pub session: Option<String>,
    /// With --arch or --plan: the share-set id (32 hex digits, the `share_id` of the parties'
    /// share files) whose weight masks the streams carry; default all zero (no model weights).
    /// A party asking for another is refused.
    #[arg(long, conflicts_with = "model")]
    pub share_set: Option<String>,
    /// Write the two sealed streams into this directory instead of serving them.
    #[arg(long, conflicts_with = "listen")]
    pub out: Option<PathBuf>,
    /// Serve P0 and P1 on this address (e.g. 127.0.0.1:7100; port 0 picks one and prints it).
    #[arg(long)]
    pub listen: Option<String>,
    /// Generation threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Correction bytes per frame (both ends must agree; the parties read it from the stream).
    #[arg(long, default_value_t = DEFAULT_CHUNK)]
    pub chunk: usize,
    /// Inner-dimension tile of the matmul dealer: 16, 32, 64 or 128 (memory only).
    #[arg(long, default_value_t = 64)]
    pub tile: u32,
    /// State directory (the record of served sessions).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Serve mode: seconds to wait for both parties before giving up.
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
    /// TEST ONLY: master seed (32 hex digits) instead of the OS RNG. Never use in deployment.
    #[arg(long, hide = true)]
    pub insecure_test_master_seed: Option<String>,
    /// Link security with --listen (pins: p0, p1; a party gets only its own stream).
    #[command(flatten)]
    pub links: LinkArgs,
}

fn build_plan(a: &DealerArgs) -> Result<Plan, CliError> {
    if let Some(path) = &a.plan {
        let bytes = std::fs::read(path).map_err(|source| CliError::File { path: path.clone(), source })?;
        return Ok(Plan::from_bytes(&bytes)?);
    }
    let name = a.arch.as_deref().ok_or_else(|| CliError::Usage("give --arch NAME or --plan FILE".into()))?;
    let shape = plans::by_name(name).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown --arch {name}: expected bert-tiny, minilm, bert-base, bert-large, gpt2 or gpt2-medium"
        ))
    })?;
    if a.seq == 0 {
        return Err(CliError::Usage("--seq must be at least 1".into()));
    }
    Ok(plans::plan(name, &shape, a.seq, a.generate)?)
}

struct Setup {
    plan: Plan,
    hash: [u8; 32],
    keys: [PartyKey; 2],
    spec: SessionSpec,
    threads: usize,
}

fn setup(a: &DealerArgs) -> Result<Setup, CliError> {
    let plan = build_plan(a)?;
    let hash = plan.hash()?;
    let dir = keys_dir(a)?;
    let keys = [
        ditto_node::files::read_key(&dir.join("p0.key"))?,
        ditto_node::files::read_key(&dir.join("p1.key"))?,
    ];
    let model = ditto_node::files::read_seed(&dir.join("model.seed"))?;
    let master = match &a.insecure_test_master_seed {
        Some(h) => {
            eprintln!("dealer: WARNING: test-only fixed master seed in use; this session is not secure");
            Seed::from_bytes(
                ditto_node::files::parse_hex16(h)
                    .ok_or_else(|| CliError::Usage("bad test master seed".into()))?,
            )
        }
        None => Seed::from_bytes(ditto_node::files::os_random16()?),
    };
    let session = match &a.session {
        Some(h) => SessionId(
            ditto_node::files::parse_hex16(h)
                .ok_or_else(|| CliError::Usage(format!("--session: expected 32 hex digits, got {h:?}")))?,
        ),
        None => SessionId(ditto_node::files::os_random16()?),
    };
    let share_set = match &a.share_set {
        Some(h) => ShareSetId(
            ditto_node::files::parse_hex16(h)
                .ok_or_else(|| CliError::Usage(format!("--share-set: expected 32 hex digits, got {h:?}")))?,
        ),
        None => ShareSetId::default(),
    };
    // The salt is fresh from the OS even with a test master seed: a generation is never repeated.
    let generation = Generation { session, share_set, salt: Salt(ditto_node::files::os_random16()?) };
    let mut spec = SessionSpec::new(generation, &DealerSeeds::new(master, model));
    spec.chunk = a.chunk;
    spec.tile = match a.tile {
        16 => Tile::K16,
        32 => Tile::K32,
        64 => Tile::K64,
        128 => Tile::K128,
        t => return Err(CliError::Usage(format!("--tile {t}: expected 16, 32, 64 or 128"))),
    };
    let threads =
        a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1);
    Ok(Setup { plan, hash, keys, spec, threads })
}

/// Progress on stderr when it is a terminal: bytes, steps are implied by bytes, ETA.
struct Progress<W> {
    inner: W,
    done: u64,
    total: u64,
    start: Instant,
    last: Instant,
    on: bool,
}

impl<W: Write> Progress<W> {
    fn new(inner: W, total: u64) -> Self {
        let now = Instant::now();
        Progress { inner, done: 0, total, start: now, last: now, on: std::io::stderr().is_terminal() }
    }
    fn show(&self, end: bool) {
        #[allow(clippy::cast_precision_loss)]
        let (d, t) = (self.done as f64 / 1e6, self.total.max(1) as f64 / 1e6);
        let el = self.start.elapsed().as_secs_f64();
        let eta = if d > 0.0 { el * (t - d).max(0.0) / d } else { 0.0 };
        eprint!("\rdealer: {d:9.1} / {t:.1} MB  {:3.0}%  {el:6.1} s  ETA {eta:5.1} s ", 100.0 * d / t);
        if end {
            eprintln!();
        }
    }
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if self.on && self.last.elapsed() > Duration::from_millis(200) {
            self.last = Instant::now();
            self.show(false);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.on {
            self.show(true);
        }
        self.inner.flush()
    }
}

/// Writes `party`'s stream to `w`; P1's corrections come from `threads` workers.
fn generate<W: Write>(s: &Setup, party: Party, w: W) -> Result<ditto_dealer::stream::Summary, CliError> {
    let mut src = SlicePlan { header: &s.plan.header, steps: &s.plan.steps };
    let mut scratch = vec![0u8; scratch_len(s.spec.chunk)];
    let key = &s.keys[party.index()];
    if party == Party::P0 {
        return Ok(write_stream(party, &mut src, &s.spec, key, Io(w), &mut scratch)?);
    }
    // Bytes on the wire: corrections plus a header and a tag per frame (hello, seeds and end
    // frames are a few hundred bytes more).
    let chunk = s.spec.chunk as u64;
    let frame = (ditto_core::frame::HEADER_LEN + ditto_dealer::seal::TAG_LEN) as u64;
    let total = s
        .plan
        .steps
        .iter()
        .map(|st| {
            let b = st.p1_correction_bytes();
            b + b.div_ceil(chunk) * frame
        })
        .sum();
    let ds = dealer_streams(&s.spec);
    let r = with_parallel(&ds, &s.plan, s.threads, |p| {
        write_stream_with(party, &mut src, &s.spec, key, Io(Progress::new(w, total)), &mut scratch, p)
    });
    Ok(r?)
}

fn keys_dir(a: &DealerArgs) -> Result<&std::path::Path, CliError> {
    a.keys.as_deref().ok_or_else(|| CliError::Usage("give --keys DIR (or --serial for a board)".into()))
}

/// Runs `ditto dealer`.
pub fn run(a: &DealerArgs) -> Result<(), CliError> {
    if let Some(model) = &a.model {
        let listen =
            a.listen.as_deref().ok_or_else(|| CliError::Usage("--model needs --listen ADDR".into()))?;
        let state = a.state.clone().unwrap_or_else(ditto_node::files::default_state_dir);
        let threads =
            a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1);
        let streams = match &a.serial {
            Some(spec) => crate::model_dealer::open_board(spec)?,
            None => {
                let keys = keys_dir(a)?;
                crate::model_dealer::Streams::Local {
                    keys: [
                        ditto_node::files::read_key(&keys.join("p0.key"))?,
                        ditto_node::files::read_key(&keys.join("p1.key"))?,
                    ],
                    seeds: ditto_dealer::keys::DealerSeeds::new(
                        ditto_core::prg::Seed::from_bytes(ditto_node::files::os_random16()?),
                        ditto_node::files::read_seed(&keys.join("model.seed"))?,
                    ),
                    threads,
                }
            }
        };
        return crate::model_dealer::serve_model(crate::model_dealer::ModelDealer {
            model,
            quant: &a.quant,
            streams,
            listen,
            sessions: a.sessions,
            state: &state,
            sec: a.links.security()?,
        });
    }
    let s = setup(a)?;
    let record = SessionRecord::open(&a.state.clone().unwrap_or_else(ditto_node::files::default_state_dir))?;
    let sid = format!("{:032x}", s.spec.generation.session.as_u128());
    record.claim(&s.spec.generation.session)?;
    if let Some(dir) = &a.out {
        return write_files(&s, dir, &sid);
    }
    let addr = a.listen.clone().ok_or_else(|| CliError::Usage("give --out DIR or --listen ADDR".into()))?;
    serve(s, &addr, &sid, Duration::from_secs(a.wait), a.links.security()?)
}

fn write_files(s: &Setup, dir: &Path, sid: &str) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|source| CliError::File { path: dir.to_path_buf(), source })?;
    say!("session {sid}");
    say!("plan {} ({} steps, hash {})", s.plan.header.name, s.plan.steps.len(), HashHex::of(&s.hash));
    for party in [Party::P0, Party::P1] {
        let path = dir.join(stream_file_name(&s.spec.generation.session, party));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| CliError::File { path: path.clone(), source })?;
        let t = Instant::now();
        let sum = generate(s, party, std::io::BufWriter::with_capacity(1 << 20, f))?;
        say!(
            "wrote {} ({} frames, {} correction bytes, {:.2} s)",
            path.display(),
            sum.frames,
            sum.correction_bytes,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// How one connection ended.
enum Outcome {
    /// The party's whole stream was sent.
    Served(Party, u64),
    /// The request was refused or unreadable; the dealer keeps serving.
    Refused(CliError),
    /// Sending an accepted party's stream failed; the session cannot be served again.
    Failed(Party, CliError),
}

/// Serves one party's request on `sock` (blocking; every read and write has a time-out).
fn serve_one(s: &Setup, served: &Mutex<[bool; 2]>, sock: TcpStream, sec: &Security) -> Outcome {
    let mut link = match open_party_link(sock, sec) {
        Ok(l) => l,
        Err(e) => return Outcome::Refused(e),
    };
    match accept_one(s, served, &mut link) {
        Err(e) => Outcome::Refused(e),
        Ok(party) => match generate(s, party, std::io::BufWriter::with_capacity(1 << 16, &mut link.1)) {
            Ok(sum) => Outcome::Served(party, sum.correction_bytes),
            Err(e) => Outcome::Failed(party, e),
        },
    }
}

/// A party's connection with time-outs on every read and write, secured as `sec` says; the
/// role its identity proves (None in plaintext).
pub(crate) fn open_party_link(
    sock: TcpStream,
    sec: &Security,
) -> Result<(Option<String>, Box<dyn BlockingStream>), CliError> {
    let net = |e: std::io::Error| CliError::Net(e.to_string());
    sock.set_nonblocking(false).map_err(net)?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(net)?;
    sock.set_write_timeout(Some(Duration::from_secs(60))).map_err(net)?;
    let _ = sock.set_nodelay(true);
    let (stream, role) = sec.accept_blocking(sock, &["p0", "p1"])?;
    Ok((role, stream))
}

/// Refuses a party whose identity is the other party's.
pub(crate) fn check_role(role: Option<&str>, party: Party) -> Result<(), String> {
    match role {
        Some(r) if r != ditto_net::tls::role(party) => {
            Err(format!("identity {r} asked for {party:?}'s stream; each party gets only its own"))
        }
        _ => Ok(()),
    }
}

/// Reads and checks a request; on acceptance marks the party served and answers `Accepted`.
fn accept_one(
    s: &Setup,
    served: &Mutex<[bool; 2]>,
    link: &mut (Option<String>, Box<dyn BlockingStream>),
) -> Result<Party, CliError> {
    let (role, sock) = (link.0.as_deref(), &mut link.1);
    let session = s.spec.generation.session;
    let req: Request = read_request(Io(&mut *sock), session)?;
    let mut refuse = |why: String| -> Result<Party, CliError> {
        write_response(Io(&mut *sock), session, &Response::Refused(reason(&why)))?;
        Err(CliError::Net(format!("refused {:?}: {why}", req.party)))
    };
    if let Err(why) = check_role(role, req.party) {
        return refuse(why);
    }
    if req.version != PLAN_VERSION {
        return refuse(format!("plan format version {} (dealer speaks {PLAN_VERSION})", req.version));
    }
    if req.plan_hash != s.hash {
        return refuse(format!(
            "plan hash mismatch: dealer has {}, request has {}",
            HashHex::of(&s.hash),
            HashHex::of(&req.plan_hash)
        ));
    }
    if req.share_set != s.spec.generation.share_set {
        return refuse(format!(
            "share set mismatch: dealer serves {} (--share-set), request asks {}",
            HashHex::of_id(&s.spec.generation.share_set.0),
            HashHex::of_id(&req.share_set.0)
        ));
    }
    {
        let mut g = served.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if g[req.party.index()] {
            drop(g);
            return refuse(format!("{:?}'s stream of this session was already served", req.party));
        }
        g[req.party.index()] = true;
    }
    write_response(Io(&mut *sock), session, &Response::Accepted)?;
    Ok(req.party)
}

fn serve(s: Setup, addr: &str, sid: &str, wait: Duration, sec: Security) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Net(e.to_string()))?;
    let s = Arc::new(s);
    rt.block_on(async move {
        let net = |e: std::io::Error| CliError::Net(e.to_string());
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(net)?;
        // stdout may be a pipe its reader closed: report, never panic.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening {}", listener.local_addr().map_err(net)?);
        let _ = writeln!(out, "session {sid}");
        let _ = out.flush();
        let served = Arc::new(Mutex::new([false; 2]));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let deadline = tokio::time::Instant::now() + wait;
        let mut done = [false; 2];
        let mut failures = Vec::new();
        while !(done[0] && done[1]) {
            tokio::select! {
                acc = listener.accept() => {
                    let (sock, peer) = acc.map_err(net)?;
                    let std_sock = sock.into_std().map_err(net)?;
                    let (s, served, tx, sec) = (Arc::clone(&s), Arc::clone(&served), tx.clone(), sec.clone());
                    tokio::task::spawn_blocking(move || {
                        let t = Instant::now();
                        let r = serve_one(&s, &served, std_sock, &sec);
                        let _ = tx.send((peer, r, t.elapsed()));
                    });
                }
                Some((peer, r, el)) = rx.recv() => match r {
                    Outcome::Served(p, bytes) => {
                        eprintln!("dealer: served {p:?} at {peer}: {bytes} correction bytes in {:.2} s", el.as_secs_f64());
                        done[p.index()] = true;
                    }
                    Outcome::Refused(e) => {
                        eprintln!("dealer: {peer}: {e}");
                        failures.push(e.to_string());
                    }
                    Outcome::Failed(p, e) => {
                        return Err(CliError::Net(format!("sending {p:?}'s stream to {peer} failed: {e}")));
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(CliError::Net(format!(
                        "timed out after {} s waiting for the parties (P0 served: {}, P1 served: {}){}",
                        wait.as_secs(), done[0], done[1],
                        if failures.is_empty() { String::new() } else { format!("; errors: {}", failures.join("; ")) }
                    )));
                }
            }
        }
        Ok(())
    })
}
