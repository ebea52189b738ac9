//! `ditto dealer`: one session's correlated randomness for a plan, served to P0 and P1 over TCP
//! or written to files (`--out DIR`) for offline pre-generation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ditto_core::Party;
use ditto_core::corr::Tile;
use ditto_core::plan::Plan;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::host::stream_file_name;
use ditto_dealer::keys::{DealerSeeds, Generation, Salt};
use ditto_dealer::stream::SessionSpec;
use ditto_dealer::{DEFAULT_CHUNK, HashHex};
use ditto_node::dealer::{Event, SessionDealer};

use crate::files::CliError;
use crate::identity::LinkArgs;
use ditto_net::tls::Security;
use ditto_node::files::SessionRecord;

/// Arguments of `ditto dealer`.
#[derive(clap::Args, Debug)]
pub struct DealerArgs {
    /// Plan of a published shape (as `ditto plan --arch`, under --quant): bert-tiny, minilm,
    /// bert-base, bert-large, gpt2, gpt2-medium.
    #[arg(long, conflicts_with = "plan")]
    pub arch: Option<String>,
    /// Sequence length (with --arch).
    #[arg(long, default_value_t = 128)]
    pub seq: u32,
    /// Generated tokens after the prompt (with a decoder --arch; as `ditto plan --gen`).
    #[arg(long = "gen", default_value_t = 1)]
    pub generate: u32,
    /// Plan file (postcard encoding of a plan).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Serve a model (a BERT or GPT-2 directory, `seeded`, `seeded-gpt2`, `shipped`, `arch:NAME`):
    /// every request names its session and lengths, and the dealer derives the plan from the
    /// model's config (with --listen).
    #[arg(long, conflicts_with_all = ["arch", "plan"])]
    pub model: Option<String>,
    /// Quantization for --model and --arch: accurate, ditto, or a QuantConfig file.
    #[arg(long, default_value = "accurate")]
    pub quant: String,
    /// With --model: stop after this many complete sessions (0: serve until stopped).
    #[arg(long, default_value_t = 0)]
    pub sessions: usize,
    /// Directory holding p0.key, p1.key and model.seed (see `ditto provision`).
    #[arg(long, required_unless_present = "serial")]
    pub keys: Option<PathBuf>,
    /// With --model: relay the streams of a dealer board instead of generating them here:
    /// `tcp:HOST:PORT` (a board's Ethernet, port 7300, or QEMU's UART bridge) or a serial
    /// device. The board holds the seeds and keys; this process sees only sealed streams.
    #[arg(long, visible_alias = "board", requires_all = ["model", "relay_key"])]
    pub serial: Option<String>,
    /// With --board: the relay key provisioned with the board (`relay.key` from `ditto
    /// provision`); the board deals only for requests tagged with it.
    #[arg(long, requires = "serial")]
    pub relay_key: Option<PathBuf>,
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
    let arch = a.arch.as_deref().ok_or_else(|| CliError::Usage("give --arch NAME or --plan FILE".into()))?;
    let (seq, generate) = (a.seq as usize, a.generate as usize);
    crate::plan::build(
        (None, Some(arch)),
        (seq, generate, 1),
        ditto_models::generate::Reveal::Logits,
        &a.quant,
    )
}

fn setup(a: &DealerArgs) -> Result<SessionDealer, CliError> {
    let plan = build_plan(a)?;
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
    Ok(SessionDealer::new(plan, keys, spec, threads)?)
}

/// Writes `party`'s stream to `w`, showing progress of P1's on a terminal.
fn generate<W: Write>(
    s: &SessionDealer,
    party: Party,
    w: W,
) -> Result<ditto_dealer::stream::Summary, CliError> {
    Ok(match party {
        Party::P0 => s.generate(party, w)?,
        Party::P1 => s.generate(party, crate::progress::bytes("dealer", s.p1_wire_bytes()).wrap_write(w))?,
    })
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
            Some(spec) => {
                let relay = a.relay_key.as_deref().ok_or_else(|| {
                    CliError::Usage(
                        "--board needs --relay-key FILE (relay.key from `ditto provision`)".into(),
                    )
                })?;
                ditto_node::model_dealer::open_board(spec, ditto_node::files::read_relay_key(relay)?)?
            }
            None => {
                let keys = keys_dir(a)?;
                ditto_node::model_dealer::Streams::Local {
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
        let d = ditto_node::model_dealer::ModelDealer {
            cfg: ditto_models::spec::ModelSpec::parse(model).config()?,
            q: ditto_models::quant::QuantConfig::from_spec(&a.quant)?,
            streams,
            sessions: a.sessions,
            sec: a.links.security()?,
        };
        return crate::util::runtime()?.block_on(async {
            let listener = tokio::net::TcpListener::bind(listen).await.map_err(crate::util::net)?;
            say!("listening {}", listener.local_addr().map_err(crate::util::net)?);
            // A long-running dealer's lines go through a writer thread: a stalled stderr
            // never holds its connections up.
            let lines = ditto_node::log::Log::spawn(std::io::stderr());
            let r = d.serve(listener, &state, |e| lines.line(event_line(e))).await;
            lines.close();
            Ok(r?)
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

fn write_files(s: &SessionDealer, dir: &Path, sid: &str) -> Result<(), CliError> {
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

fn serve(s: SessionDealer, addr: &str, sid: &str, wait: Duration, sec: Security) -> Result<(), CliError> {
    crate::util::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(crate::util::net)?;
        // stdout may be a pipe its reader closed: report, never panic.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening {}", listener.local_addr().map_err(crate::util::net)?);
        let _ = writeln!(out, "session {sid}");
        let _ = out.flush();
        Arc::new(s).serve(listener, wait, sec, log_event).await?;
        Ok(())
    })
}

/// A dealer's account of one connection, on stderr.
pub(crate) fn log_event(e: &Event) {
    eprintln!("{}", event_line(e));
}

/// The line of a dealer's event.
fn event_line(e: &Event) -> String {
    match e {
        Event::Served { peer, party, bytes, took } => {
            format!(
                "dealer: served {party:?} at {peer}: {bytes} correction bytes in {:.2} s",
                took.as_secs_f64()
            )
        }
        Event::Refused { peer, why } => format!("dealer: {peer}: {why}"),
    }
}
