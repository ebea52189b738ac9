//! The same secure run across separate processes: `ditto share-model` (model owner),
//! `ditto dealer --model` (plans per request), `ditto party --id 0|1`, `ditto client`.
//!
//! Client <-> party messages (TCP, every wait under a time-out):
//! request  = "DTCL" | version u8 | session id (16) | sequence length u32 | element count u32 | u32 LE one-hot shares
//! response = "DTOU" | scale u32 | element count u32 | u64 LE output shares (the pooled sum)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::{Prg, SessionId};
use ditto_dealer::HashHex;
use ditto_dealer::host::{Io, Response, read_request_any, reason, with_parallel, write_response};
use ditto_dealer::keys::{DealerSeeds, PartyKey};
use ditto_dealer::stream::{
    SessionSpec, SlicePlan, dealer_streams, scratch_len, write_stream, write_stream_with,
};
use ditto_models::bert::Bert;
use ditto_models::config::BertConfig;
use ditto_models::secure_bert::{BertShare, SecureBert, one_hot, share_bert};
use ditto_models::seeded;
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;
use ditto_mpc::tensor::{reveal, share};
use ditto_mpc::{Engine, Shared};
use ditto_net::dealer::Source;
use ditto_net::link::{Config, Link};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::files::{self, CliError, SessionRecord};

const TIMEOUT: Duration = Duration::from_secs(60);

fn net(e: impl std::fmt::Display) -> CliError {
    CliError::Net(e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(net)
}

/// A BERT model from a directory, or the seeded one (`seeded`).
fn load_model(model: &str) -> Result<(Bert, Option<Tokenizer>), CliError> {
    if model == "seeded" {
        return Ok((seeded::model(1), None));
    }
    let dir = PathBuf::from(model);
    let cfg = BertConfig::load(&dir.join("config.json"))?;
    let bert = Bert::load(&cfg, &Weights::load(&dir.join("model.safetensors"))?)?;
    let tok = Tokenizer::load(&dir.join("tokenizer.json"))?;
    Ok((bert, Some(tok)))
}

/// Arguments of `ditto share-model`.
#[derive(clap::Args, Debug)]
pub struct ShareArgs {
    /// HF BERT directory, or `seeded` for the built-in model.
    #[arg(long)]
    pub model: String,
    /// Quantization: accurate, ditto, or a QuantConfig file.
    #[arg(long, default_value = "accurate")]
    pub quant: String,
    /// Directory for p0.share and p1.share (give each party its file).
    #[arg(long)]
    pub out: PathBuf,
}

/// `ditto share-model`: encodes the model and splits it into the two parties' shares.
pub fn share_model(a: &ShareArgs) -> Result<(), CliError> {
    let (bert, _) = load_model(&a.model)?;
    let q = crate::calibrate::load_quant(&a.quant)?;
    let mut rng = Prg::with_counter(&files::os_random16()?, 0);
    let shares = share_bert(&bert, &q, &mut rng)?;
    std::fs::create_dir_all(&a.out).map_err(|source| CliError::File { path: a.out.clone(), source })?;
    for (i, mut s) in shares.into_iter().enumerate() {
        let p = a.out.join(format!("p{i}.share"));
        s.save(&p, u8::try_from(i).unwrap_or(0))?;
        say!("wrote {}", p.display());
    }
    Ok(())
}

/// Arguments of `ditto party`.
#[derive(clap::Args, Debug)]
pub struct PartyArgs {
    /// 0 or 1.
    #[arg(long)]
    pub id: u8,
    /// This party's model share (`ditto share-model`).
    #[arg(long)]
    pub share: PathBuf,
    /// P0: address to accept P1 on.
    #[arg(long)]
    pub listen: Option<String>,
    /// P1: P0's address.
    #[arg(long)]
    pub connect: Option<String>,
    /// The dealer server.
    #[arg(long)]
    pub dealer: String,
    /// This party's dealer key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Address to accept the client on.
    #[arg(long)]
    pub client: String,
    /// GEMM threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

async fn read_exact_t(s: &mut tokio::net::TcpStream, buf: &mut [u8], what: &str) -> Result<(), CliError> {
    tokio::time::timeout(TIMEOUT, s.read_exact(buf))
        .await
        .map_err(|_| net(format!("timed out reading {what}")))?
        .map_err(|e| net(format!("reading {what}: {e}")))?;
    Ok(())
}

/// `ditto party`: one secure inference for one client.
pub fn party(a: &PartyArgs) -> Result<(), CliError> {
    let party = match a.id {
        0 => Party::P0,
        1 => Party::P1,
        other => return Err(CliError::Usage(format!("--id {other}: expected 0 or 1"))),
    };
    let (share, owner) = BertShare::load(&a.share)?;
    if owner != a.id {
        return Err(CliError::Usage(format!(
            "{} is party {owner}'s share, not party {}'s",
            a.share.display(),
            a.id
        )));
    }
    let key = files::read_key(&a.key)?;
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.client).await.map_err(net)?;
        say!("party {} waiting for the client on {}", a.id, listener.local_addr().map_err(net)?);
        let (mut c, _) = listener.accept().await.map_err(net)?;
        let mut head = [0u8; 4 + 1 + 16 + 4 + 4];
        read_exact_t(&mut c, &mut head, "the client's request").await?;
        if &head[..4] != b"DTCL" || head[4] != 1 {
            return Err(net("the client sent something else than a request"));
        }
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&head[5..21]);
        let session = SessionId(sid);
        let seq = u32::from_le_bytes([head[21], head[22], head[23], head[24]]);
        let count = u32::from_le_bytes([head[25], head[26], head[27], head[28]]) as usize;
        let (cfg, q) = (share.config().clone(), share.quant().clone());
        if seq == 0 || seq as usize > cfg.max_position_embeddings || count != seq as usize * cfg.vocab_size {
            return Err(net(format!(
                "bad request: {seq} tokens, {count} elements for vocabulary {}",
                cfg.vocab_size
            )));
        }
        let mut data = vec![0u8; count * 4];
        read_exact_t(&mut c, &mut data, "the client's input").await?;
        let input: Vec<u32> =
            data.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let plan = ditto_models::plans::bert("party", &cfg, &q, seq as usize).await?;
        let c2 = Config { timeout: TIMEOUT };
        let link = match (party, &a.listen, &a.connect) {
            (Party::P0, Some(l), _) => {
                let lst = tokio::net::TcpListener::bind(l).await.map_err(net)?;
                Link::accept(&lst, Party::P0, c2).await?
            }
            (Party::P1, _, Some(addr)) => Link::connect(addr, Party::P1, c2).await?,
            _ => return Err(CliError::Usage("P0 needs --listen ADDR, P1 needs --connect ADDR".into())),
        };
        let mut e =
            Engine::start(party, link, Source::Tcp(a.dealer.clone(), seq), key, plan, session, TIMEOUT)
                .await?;
        e.set_threads(a.threads);
        let run = async {
            let m = SecureBert::setup(&mut e, share).await?;
            m.pooled_sum(&mut e, &Shared::new(input, &[seq as usize, cfg.vocab_size], 0)?).await
        };
        let out = match run.await {
            Ok(o) => o,
            Err(err) => {
                e.abort(&err.to_string()).await;
                return Err(err.into());
            }
        };
        let counters = e.finish().await?;
        let mut resp = Vec::with_capacity(12 + out.data.len() * 8);
        resp.extend_from_slice(b"DTOU");
        resp.extend_from_slice(&out.frac.to_le_bytes());
        resp.extend_from_slice(&u32::try_from(out.data.len()).unwrap_or(0).to_le_bytes());
        out.data.iter().for_each(|v| resp.extend_from_slice(&v.to_le_bytes()));
        tokio::time::timeout(TIMEOUT, c.write_all(&resp))
            .await
            .map_err(|_| net("timed out answering the client"))?
            .map_err(net)?;
        let t = counters.total();
        say!("party {} done: sent {} bytes in {} rounds", a.id, t.sent, t.rounds);
        Ok(())
    })
}

/// Arguments of `ditto client`.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// HF BERT directory (its tokenizer and config; the weights are not read), or `seeded`.
    #[arg(long)]
    pub model: String,
    /// The private text.
    #[arg(long)]
    pub text: String,
    /// P0's client address.
    #[arg(long)]
    pub p0: String,
    /// P1's client address.
    #[arg(long)]
    pub p1: String,
}

/// `ditto client`: tokenizes, shares, sends, reconstructs the sentence embedding.
pub fn client(a: &ClientArgs) -> Result<(), CliError> {
    let (ids, vocab) = if a.model == "seeded" {
        (seeded::tokenize(&a.text), seeded::VOCAB)
    } else {
        let dir = PathBuf::from(&a.model);
        let cfg = BertConfig::load(&dir.join("config.json"))?;
        (
            Tokenizer::load(&dir.join("tokenizer.json"))?.encode(&a.text, cfg.max_position_embeddings)?,
            cfg.vocab_size,
        )
    };
    let n = ids.len();
    let mut rng = Prg::with_counter(&files::os_random16()?, 0);
    let x = one_hot(&ids, vocab)?;
    let shares = share(&x, &mut rng);
    let session = SessionId(files::os_random16()?);
    say!("session {:032x}, {n} tokens", session.as_u128());
    let out = runtime()?.block_on(async {
        let ask = async |addr: &str, s: &Vec<u32>| -> Result<(u32, Vec<u64>), CliError> {
            let mut c = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| net(format!("timed out connecting to {addr}")))?
                .map_err(|e| net(format!("{addr}: {e}")))?;
            let mut req = Vec::with_capacity(29 + s.len() * 4);
            req.extend_from_slice(b"DTCL");
            req.push(1);
            req.extend_from_slice(&session.0);
            req.extend_from_slice(&u32::try_from(n).map_err(net)?.to_le_bytes());
            req.extend_from_slice(&u32::try_from(s.len()).map_err(net)?.to_le_bytes());
            s.iter().for_each(|v| req.extend_from_slice(&v.to_le_bytes()));
            tokio::time::timeout(TIMEOUT, c.write_all(&req))
                .await
                .map_err(|_| net("timed out sending"))?
                .map_err(net)?;
            let mut head = [0u8; 12];
            tokio::time::timeout(Duration::from_secs(600), c.read_exact(&mut head))
                .await
                .map_err(|_| net(format!("{addr}: no answer")))?
                .map_err(|e| net(format!("{addr} closed without an answer ({e}); see its log")))?;
            if &head[..4] != b"DTOU" {
                return Err(net(format!("{addr} answered something else")));
            }
            let frac = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            let m = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
            if m > 1 << 20 {
                return Err(net(format!("{addr}: implausible answer of {m} elements")));
            }
            let mut d = vec![0u8; m * 8];
            read_exact_t(&mut c, &mut d, "the output").await?;
            Ok((
                frac,
                d.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect(),
            ))
        };
        let (r0, r1) = tokio::join!(ask(&a.p0, &shares[0]), ask(&a.p1, &shares[1]));
        Ok::<_, CliError>((r0?, r1?))
    })?;
    let ((f0, s0), (f1, s1)) = out;
    if f0 != f1 || s0.len() != s1.len() {
        return Err(net("the parties' answers do not match"));
    }
    #[allow(clippy::cast_precision_loss)]
    let v: Vec<f64> = reveal(&s0, &s1).iter().map(|x| ditto_core::fixed::decode(*x, f0) / n as f64).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    let e: Vec<f64> = v.iter().map(|x| (x / norm * 1e4).round() / 1e4).collect();
    say!("embedding ({} dims) starts {:?}", e.len(), &e[..e.len().min(8)]);
    Ok(())
}

/// Arguments of the model-serving dealer (`ditto dealer --model`).
pub struct ModelDealer<'a> {
    /// Model directory or `seeded` (only the config is used).
    pub model: &'a str,
    /// Quantization.
    pub quant: &'a str,
    /// Key directory.
    pub keys: &'a std::path::Path,
    /// Listen address.
    pub listen: &'a str,
    /// Stop after this many complete sessions (0: never).
    pub sessions: usize,
    /// State directory.
    pub state: &'a std::path::Path,
    /// Generation threads.
    pub threads: usize,
}

/// Serves any session and sequence length for one model: each request names its session (in
/// the frame header) and sequence length; the dealer derives the plan from the model config and
/// checks the party's plan hash against it.
pub fn serve_model(d: &ModelDealer<'_>) -> Result<(), CliError> {
    let cfg = if d.model == "seeded" {
        seeded::config()
    } else {
        BertConfig::load(&PathBuf::from(d.model).join("config.json"))?
    };
    let q = crate::calibrate::load_quant(d.quant)?;
    let keys = Arc::new([files::read_key(&d.keys.join("p0.key"))?, files::read_key(&d.keys.join("p1.key"))?]);
    let seeds = Arc::new(DealerSeeds::new(
        ditto_core::prg::Seed::from_bytes(files::os_random16()?),
        files::read_seed(&d.keys.join("model.seed"))?,
    ));
    let record = Arc::new(SessionRecord::open(d.state)?);
    let served: Arc<std::sync::Mutex<std::collections::HashMap<u128, [bool; 2]>>> = Arc::default();
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
                    let (cfg, q, keys, seeds, record, served, tx) = (cfg.clone(), q.clone(), Arc::clone(&keys), Arc::clone(&seeds), Arc::clone(&record), Arc::clone(&served), tx.clone());
                    let threads = d.threads;
                    let handle = tokio::runtime::Handle::current();
                    tokio::task::spawn_blocking(move || {
                        let r = serve_one(&handle, &sock, &cfg, &q, &keys, &seeds, &record, &served, threads);
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

/// Serves one request; Ok(true) when it completed a session (both parties served).
#[allow(clippy::too_many_arguments)]
fn serve_one(
    rt: &tokio::runtime::Handle,
    sock: &std::net::TcpStream,
    cfg: &BertConfig,
    q: &ditto_models::quant::QuantConfig,
    keys: &[PartyKey; 2],
    seeds: &DealerSeeds,
    record: &SessionRecord,
    served: &std::sync::Mutex<std::collections::HashMap<u128, [bool; 2]>>,
    threads: usize,
) -> Result<bool, CliError> {
    sock.set_nonblocking(false).map_err(net)?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(net)?;
    sock.set_write_timeout(Some(TIMEOUT)).map_err(net)?;
    let (session, req) = read_request_any(Io(sock))?;
    let refuse = |why: String| -> Result<bool, CliError> {
        write_response(Io(sock), session, &Response::Refused(reason(&why)))?;
        Err(net(format!("refused {:?}: {why}", req.party)))
    };
    if req.seq == 0 || req.seq as usize > cfg.max_position_embeddings {
        return refuse(format!("sequence length {} outside 1..={}", req.seq, cfg.max_position_embeddings));
    }
    let plan = rt.block_on(ditto_models::plans::bert("party", cfg, q, req.seq as usize))?;
    let hash = plan.hash()?;
    if hash != req.plan_hash {
        return refuse(format!(
            "plan hash mismatch: dealer has {}, request has {}",
            HashHex::of(&hash),
            HashHex::of(&req.plan_hash)
        ));
    }
    let complete = {
        let mut g = served.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = !g.contains_key(&session.as_u128());
        let entry = g.entry(session.as_u128()).or_default();
        if entry[req.party.index()] {
            drop(g);
            return refuse(format!("{:?}'s stream of this session was already served", req.party));
        }
        if fresh && let Err(e) = record.claim(&session) {
            drop(g);
            return refuse(e.to_string());
        }
        entry[req.party.index()] = true;
        entry[0] && entry[1]
    };
    write_response(Io(sock), session, &Response::Accepted)?;
    let spec = SessionSpec::new(session, seeds);
    let w = std::io::BufWriter::with_capacity(1 << 16, sock);
    let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
    let mut scratch = vec![0u8; scratch_len(spec.chunk)];
    if req.party == Party::P0 {
        write_stream(Party::P0, &mut src, &spec, &keys[0], Io(w), &mut scratch)?;
    } else {
        let ds = dealer_streams(&spec);
        with_parallel(&ds, &plan, threads, |p| {
            write_stream_with(Party::P1, &mut src, &spec, &keys[1], Io(w), &mut scratch, p)
        })?;
    }
    Ok(complete)
}
