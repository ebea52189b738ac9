//! The same secure run across separate processes: `ditto share-model` (model owner),
//! `ditto dealer --model` (plans per request), `ditto party --id 0|1`, `ditto client`.
//!
//! Client <-> party messages (TLS with pinned identities unless `--insecure-plaintext`, every
//! wait under a time-out):
//! request  = "DTCL" | version 3 | session id (16) | prompt length u32 | element count u32 | tokens to
//!            generate u32 | reveal u8 (0 logits, 1 token) | u32 LE one-hot shares
//! BERT:  response = "DTOU" | scale u32 | element count u32 | u64 LE shares of the pooled sum
//! GPT-2: per token, party -> client "DTLG" | count u32 | u32 LE logit shares (or, revealing the
//!        token only, "DTTK" | 1 | the u32 share of its id), and
//!        client -> party "DTOH" | count u32 | u32 LE shares of the chosen token's one-hot

use std::path::PathBuf;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::{Prg, SessionId};
use ditto_dealer::host::PlanParams;
use ditto_models::bert::Bert;
use ditto_models::bert::secure::{BertOutput, BertShare, SecureBert, share_bert};
use ditto_models::blocks::one_hot;
use ditto_models::config::BertConfig;
use ditto_models::generate::Reveal;
use ditto_models::seeded;
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;
use ditto_mpc::tensor::{reveal, share};
use ditto_mpc::{Engine, Shared};
use ditto_net::client::RequestHead;
use ditto_net::dealer::Source;
use ditto_net::link::{Config, Link, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::files::{self, CliError, SessionRecord};
use crate::identity::LinkArgs;
use crate::plan::Arch;

const TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn net(e: impl std::fmt::Display) -> CliError {
    CliError::Net(e.to_string())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(net)
}

/// A model: a directory holding an HF BERT or GPT-2, `seeded` (built-in BERT-shaped) or
/// `seeded-gpt2` (built-in GPT-2-shaped, byte tokens).
enum Model {
    Bert(Box<Bert>),
    Gpt2(Box<ditto_models::gpt2::Gpt2>),
}

pub(crate) fn is_gpt2_dir(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("config.json")).is_ok_and(|t| ditto_models::config::is_gpt2_config(&t))
}

/// A published shape with seeded random weights (`arch:bert-base`, ...), for benchmarks across
/// processes: the name after `arch:` as in `ditto bench --arch`.
fn published_arch(model: &str) -> Result<Option<Arch>, CliError> {
    model.strip_prefix("arch:").map(crate::plan::published).transpose()
}

/// The config of a model name: `seeded`, `seeded-classifier`, `seeded-gpt2`, `arch:NAME`, or a
/// Hugging Face directory.
pub(crate) fn config_of(model: &str) -> Result<Arch, CliError> {
    Ok(match model {
        "seeded" => Arch::Bert(seeded::config()),
        "seeded-classifier" => Arch::Bert(seeded::classifier(1).cfg),
        "seeded-gpt2" => Arch::Gpt2(seeded::gpt2(1).cfg),
        m if m.starts_with("arch:") => published_arch(m)?.ok_or_else(|| CliError::Usage(m.into()))?,
        dir if is_gpt2_dir(&PathBuf::from(dir)) => {
            Arch::Gpt2(ditto_models::config::Gpt2Config::load(&PathBuf::from(dir).join("config.json"))?)
        }
        dir => Arch::Bert(BertConfig::load(&PathBuf::from(dir).join("config.json"))?),
    })
}

fn load_model(model: &str) -> Result<Model, CliError> {
    match model {
        "seeded" => return Ok(Model::Bert(Box::new(seeded::model(1)))),
        "seeded-classifier" => return Ok(Model::Bert(Box::new(seeded::classifier(1)))),
        "seeded-gpt2" => return Ok(Model::Gpt2(Box::new(seeded::gpt2(1)))),
        _ => {}
    }
    match published_arch(model)? {
        Some(Arch::Bert(c)) => return Ok(Model::Bert(Box::new(seeded::bert_of(c, 7)))),
        Some(Arch::Gpt2(c)) => return Ok(Model::Gpt2(Box::new(seeded::gpt2_of(c, 7)))),
        None => {}
    }
    let dir = PathBuf::from(model);
    if is_gpt2_dir(&dir) {
        let cfg = ditto_models::config::Gpt2Config::load(&dir.join("config.json"))?;
        return Ok(Model::Gpt2(Box::new(ditto_models::gpt2::Gpt2::load(
            &cfg,
            &Weights::load(&dir.join("model.safetensors"))?,
        )?)));
    }
    let cfg = BertConfig::load(&dir.join("config.json"))?;
    Ok(Model::Bert(Box::new(Bert::load(&cfg, &Weights::load(&dir.join("model.safetensors"))?)?)))
}

/// The public tokenizer side of a model (the client's): ids, vocabulary size, decoder.
enum ClientTok {
    BertBytes,
    Gpt2Bytes,
    Hf(Box<Tokenizer>, usize),
    /// A seeded published shape: one id per byte of the text, spread over the vocabulary.
    Synthetic(usize),
}

fn client_tokenizer(model: &str) -> Result<ClientTok, CliError> {
    match model {
        "seeded" | "seeded-classifier" => return Ok(ClientTok::BertBytes),
        "seeded-gpt2" => return Ok(ClientTok::Gpt2Bytes),
        _ => {}
    }
    match published_arch(model)? {
        Some(Arch::Bert(c)) => return Ok(ClientTok::Synthetic(c.vocab_size)),
        Some(Arch::Gpt2(c)) => return Ok(ClientTok::Synthetic(c.vocab_size)),
        None => {}
    }
    let dir = PathBuf::from(model);
    if is_gpt2_dir(&dir) {
        let cfg = ditto_models::config::Gpt2Config::load(&dir.join("config.json"))?;
        let tok = Tokenizer::gpt2_dir(&dir)?;
        return Ok(ClientTok::Hf(Box::new(tok), cfg.vocab_size));
    }
    let cfg = BertConfig::load(&dir.join("config.json"))?;
    Ok(ClientTok::Hf(Box::new(Tokenizer::load(&dir.join("tokenizer.json"))?), cfg.vocab_size))
}

impl ClientTok {
    fn encode(&self, text: &str) -> Result<(Vec<u32>, usize), CliError> {
        Ok(match self {
            ClientTok::BertBytes => (seeded::tokenize(text), seeded::VOCAB),
            ClientTok::Gpt2Bytes => (text.bytes().map(u32::from).collect(), 256),
            ClientTok::Hf(t, v) => (t.encode(text, 4096)?, *v),
            ClientTok::Synthetic(v) => {
                (text.bytes().enumerate().map(|(i, b)| synthetic_id(i, b, *v)).collect(), *v)
            }
        })
    }
    fn decode(&self, ids: &[u32]) -> String {
        match self {
            ClientTok::BertBytes | ClientTok::Gpt2Bytes => String::from_utf8_lossy(
                &ids.iter().map(|&i| u8::try_from(i).unwrap_or(b'?')).collect::<Vec<_>>(),
            )
            .into_owned(),
            ClientTok::Hf(t, _) => t.decode(ids).unwrap_or_default(),
            ClientTok::Synthetic(_) => format!("{ids:?}"),
        }
    }
}

/// Arguments of `ditto share-model`.
#[derive(clap::Args, Debug)]
pub struct ShareArgs {
    /// HF BERT or GPT-2 directory, or `seeded` / `seeded-gpt2` for the built-in models.
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
    let q = crate::calibrate::load_quant(&a.quant)?;
    let mut rng = Prg::with_counter(&files::os_random16()?, 0);
    std::fs::create_dir_all(&a.out).map_err(|source| CliError::File { path: a.out.clone(), source })?;
    let path = |i: usize| a.out.join(format!("p{i}.share"));
    match load_model(&a.model)? {
        Model::Bert(b) => {
            for (i, s) in share_bert(&b, &q, &mut rng)?.into_iter().enumerate() {
                s.save(&path(i), u8::try_from(i).unwrap_or(0))?;
            }
        }
        Model::Gpt2(g) => {
            for (i, s) in ditto_models::gpt2::secure::share_gpt2(&g, &q, &mut rng)?.into_iter().enumerate() {
                s.save(&path(i), u8::try_from(i).unwrap_or(0))?;
            }
        }
    }
    say!("wrote {} and {}", path(0).display(), path(1).display());
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
    /// State directory: the record of consumed sessions (a session id is refused the second
    /// time, across restarts) and the opened weight masks F = W - B_W (sessions after the first
    /// with the same share files and dealer model seed skip opening them). Default: the share
    /// file's directory.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Seconds any single wait (peer, dealer, client) may take before the party gives up with
    /// an error. Raise it for slow links: the one-time weight setup is one large message.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Link security (pins: the other party, `dealer`, `client`).
    #[command(flatten)]
    pub links: LinkArgs,
}

async fn read_exact_t<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8], what: &str) -> Result<(), CliError> {
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
    let (share, owner) = ditto_models::share_file::ModelShare::load(&a.share)?;
    if owner != a.id {
        return Err(CliError::Usage(format!(
            "{} is party {owner}'s share, not party {}'s",
            a.share.display(),
            a.id
        )));
    }
    let key = files::read_key(&a.key)?;
    let state = match &a.state {
        Some(d) => d.clone(),
        None => a.share.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
    };
    let sec = a.links.security()?;
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.client).await.map_err(net)?;
        say!("party {} waiting for the client on {}", a.id, listener.local_addr().map_err(net)?);
        // Accept until a well-formed request from the pinned client arrives (a probe, a stranger
        // or a client that gave up is skipped).
        let (mut c, head, vocab, data) = loop {
            let (tcp, peer) = listener.accept().await.map_err(net)?;
            let mut c = match sec.accept(tcp, &["client"], TIMEOUT).await {
                Ok((c, _)) => c,
                Err(e) => {
                    eprintln!("party {}: refusing {peer}: {e}", a.id);
                    continue;
                }
            };
            match read_client_request(&mut c, &share).await {
                Ok((head, vocab, data)) => break (c, head, vocab, data),
                Err(e) => eprintln!("party {}: ignoring {peer}: {e}", a.id),
            }
        };
        let (session, seq, gen_n) = (head.session, head.seq, head.generate);
        let reveal = Reveal::of_flag(head.reveal_token);
        // Never twice the same session (its correlations), across restarts: recorded before
        // anything of it is fetched or opened.
        SessionRecord::open_named(&state, &format!("consumed-sessions-p{}", a.id))?.claim(&session)?;
        let input: Vec<u32> =
            data.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let input = Shared::new(input, &[seq as usize, vocab], 0)?;
        let plan = match &share {
            ditto_models::share_file::ModelShare::Bert(b) => {
                ditto_models::plans::bert("party", b.config(), b.quant(), seq as usize).await?
            }
            ditto_models::share_file::ModelShare::Gpt2(g) => {
                ditto_models::plans::gpt2(
                    "party",
                    g.config(),
                    g.quant(),
                    (seq as usize, gen_n as usize),
                    reveal,
                )
                .await?
            }
        };
        let timeout = Duration::from_secs(a.timeout.max(1));
        let c2 = Config { timeout };
        let link = match (party, &a.listen, &a.connect) {
            (Party::P0, Some(l), _) => {
                let lst = tokio::net::TcpListener::bind(l).await.map_err(net)?;
                Link::accept(&lst, Party::P0, c2, &sec).await?
            }
            (Party::P1, _, Some(addr)) => Link::connect(addr, Party::P1, c2, &sec).await?,
            _ => return Err(CliError::Usage("P0 needs --listen ADDR, P1 needs --connect ADDR".into())),
        };
        let params = PlanParams { seq, generate: gen_n, reveal_token: reveal.is_token() };
        let source = Source::Tcp(a.dealer.clone(), params, sec.clone());
        let mut e =
            Engine::start(party, link, source, key, plan, (session, share.share_set()), timeout).await?;
        e.set_threads(a.threads);
        e.set_progress(crate::progress::plan_steps("inference"));
        e.set_weight_cache(&state);
        let result = match share {
            ditto_models::share_file::ModelShare::Bert(b) => serve_bert(&mut e, *b, &input, &mut c).await,
            ditto_models::share_file::ModelShare::Gpt2(g) => {
                serve_gpt2(&mut e, *g, &input, (gen_n as usize, vocab), reveal, c).await
            }
        };
        if let Err(err) = &result {
            e.abort(&err.to_string()).await;
        }
        result?;
        let counters = e.finish().await?;
        let (t, setup) = (counters.total(), counters.step(ditto_mpc::engine::SETUP_STEP));
        let online: Duration =
            counters.times().filter(|(s, _)| *s != ditto_mpc::engine::SETUP_STEP).map(|(_, d)| d).sum();
        say!(
            "party {} done: online {:.3} s, sent {} bytes in {} rounds (weight setup {} bytes{})",
            a.id,
            online.as_secs_f64(),
            t.sent,
            t.rounds,
            setup.sent,
            if setup.rounds <= 1 { ", masks from the state directory" } else { "" }
        );
        Ok(())
    })
}

/// Reads and checks one client request: its head (session, prompt length, tokens to
/// generate, what to reveal), the vocabulary, and the raw one-hot share bytes.
async fn read_client_request(
    c: &mut Box<dyn Stream>,
    share: &ditto_models::share_file::ModelShare,
) -> Result<(RequestHead, usize, Vec<u8>), CliError> {
    let mut head = [0u8; ditto_net::client::HEAD];
    read_exact_t(c, &mut head, "the client's request").await?;
    let (vocab, max_pos) = match share {
        ditto_models::share_file::ModelShare::Bert(b) => {
            (b.config().vocab_size, b.config().max_position_embeddings)
        }
        ditto_models::share_file::ModelShare::Gpt2(g) => (g.config().vocab_size, g.config().n_positions),
    };
    let h = RequestHead::parse(&head, vocab, max_pos)?;
    let mut data = vec![0u8; h.count * 4];
    read_exact_t(c, &mut data, "the client's input").await?;
    if h.reveal_token && matches!(share, ditto_models::share_file::ModelShare::Bert(_)) {
        return Err(CliError::Usage(
            "a BERT model has no tokens to reveal (--reveal token is for GPT-2)".into(),
        ));
    }
    Ok((h, vocab, data))
}

async fn write_t(c: &mut (impl AsyncWriteExt + Unpin), b: &[u8], what: &str) -> Result<(), CliError> {
    tokio::time::timeout(TIMEOUT, c.write_all(b))
        .await
        .map_err(|_| net(format!("timed out sending {what}")))?
        .map_err(net)
}

fn frame_u32(tag: &[u8; 4], v: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + v.len() * 4);
    out.extend_from_slice(tag);
    out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(0).to_le_bytes());
    v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    out
}

async fn read_u32s(
    c: &mut (impl AsyncReadExt + Unpin),
    tag: &[u8; 4],
    max: usize,
    what: &str,
) -> Result<Vec<u32>, CliError> {
    let mut head = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(600), c.read_exact(&mut head))
        .await
        .map_err(|_| net(format!("timed out waiting for {what}")))?
        .map_err(|e| net(format!("{what}: {e}")))?;
    let n = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if &head[..4] != tag || n > max {
        return Err(net(format!("malformed {what}")));
    }
    let mut d = vec![0u8; n * 4];
    tokio::time::timeout(TIMEOUT, c.read_exact(&mut d))
        .await
        .map_err(|_| net(format!("timed out reading {what}")))?
        .map_err(net)?;
    Ok(d.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

async fn serve_bert(
    e: &mut Engine,
    share: BertShare,
    input: &Shared<u32>,
    c: &mut Box<dyn Stream>,
) -> Result<(), CliError> {
    let m = SecureBert::setup(e, share).await?;
    // Answer: "DTOU", ring bits, fractional bits, element count, elements (ring/8 bytes each).
    fn answer<R: ditto_core::Ring>(out: &Shared<R>) -> Vec<u8> {
        let mut resp = Vec::with_capacity(16 + out.data.len() * R::BYTES);
        resp.extend_from_slice(b"DTOU");
        resp.extend_from_slice(&(8 * u32::try_from(R::BYTES).unwrap_or(0)).to_le_bytes());
        resp.extend_from_slice(&out.frac.to_le_bytes());
        resp.extend_from_slice(&u32::try_from(out.data.len()).unwrap_or(0).to_le_bytes());
        let mut b = vec![0u8; R::BYTES];
        for v in &out.data {
            v.write_le(&mut b);
            resp.extend_from_slice(&b);
        }
        resp
    }
    let resp = match m.infer(e, input).await? {
        BertOutput::PooledSum(s) => answer(&s),
        BertOutput::Logits(l) => answer(&l),
    };
    write_t(c, &resp, "the output").await
}

async fn serve_gpt2(
    e: &mut Engine,
    share: ditto_models::gpt2::secure::Gpt2Share,
    input: &Shared<u32>,
    (steps, vocab): (usize, usize),
    reveal: Reveal,
    c: Box<dyn Stream>,
) -> Result<(), CliError> {
    use ditto_models::generate::{Client, ClientEnd, generate};
    let m = ditto_models::gpt2::secure::SecureGpt2::setup(e, share).await?;
    // Bridge the engine's client channels to the client's TCP connection.
    let (to_client, mut logits_rx) = tokio::sync::mpsc::channel::<Vec<u32>>(2);
    let (next_tx, from_client) = tokio::sync::mpsc::channel::<Vec<u32>>(2);
    let mut end = ClientEnd { tx: to_client, rx: from_client };
    let (mut rd, mut wr) = tokio::io::split(c);
    let bridge = tokio::spawn(async move {
        while let Some(l) = logits_rx.recv().await {
            write_t(&mut wr, &frame_u32(output_tag(reveal), &l), "the output").await?;
            let next = read_u32s(&mut rd, b"DTOH", vocab, "the next token").await?;
            if next_tx.send(next).await.is_err() {
                break;
            }
        }
        Ok::<(), CliError>(())
    });
    let r = generate(e, &m, input, (steps, vocab), reveal, Client::Remote(&mut end)).await;
    drop(end);
    r?;
    bridge.await.map_err(net)??;
    Ok(())
}

/// The tag of a party's per-token message to the client.
fn output_tag(reveal: Reveal) -> &'static [u8; 4] {
    match reveal {
        Reveal::Logits => b"DTLG",
        Reveal::Token => b"DTTK",
    }
}

/// Parses `--reveal`.
pub(crate) fn parse_reveal(s: &str) -> Result<Reveal, String> {
    match s {
        "logits" => Ok(Reveal::Logits),
        "token" => Ok(Reveal::Token),
        other => Err(format!("{other:?}: expected logits or token")),
    }
}

/// Arguments of `ditto client`.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// HF BERT or GPT-2 directory (its tokenizer and config; the weights are not read), or
    /// `seeded` / `seeded-gpt2`.
    #[arg(long)]
    pub model: String,
    /// Tokens to generate (GPT-2).
    #[arg(long = "gen", default_value_t = 0)]
    pub generate: usize,
    /// The private text.
    #[arg(long)]
    pub text: String,
    /// P0's client address.
    #[arg(long)]
    pub p0: String,
    /// P1's client address.
    #[arg(long)]
    pub p1: String,
    /// Session id (32 hex digits) instead of a fresh random one: for tests and replays (the
    /// dealer and both parties refuse a session id they have seen).
    #[arg(long)]
    pub session: Option<String>,
    /// GPT-2: what the parties reveal per generated token: `logits` (the client picks) or
    /// `token` (the parties pick the greedy token in MPC; the client learns only the ids).
    #[arg(long, default_value = "logits", value_parser = parse_reveal)]
    pub reveal: Reveal,
    /// Link security (pins: p0, p1).
    #[command(flatten)]
    pub links: LinkArgs,
}

/// `ditto client`: tokenizes, shares, sends; reconstructs the embedding (BERT) or runs greedy
/// generation (GPT-2, `--gen N`).
pub fn client(a: &ClientArgs) -> Result<(), CliError> {
    let tok = client_tokenizer(&a.model)?;
    let (ids, vocab) = tok.encode(&a.text)?;
    let n = ids.len();
    let mut rng = Prg::with_counter(&files::os_random16()?, 0);
    let x = one_hot(&ids, vocab)?;
    let shares = share(&x, &mut rng);
    let session = match &a.session {
        Some(hex) => SessionId(
            u128::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() == 32)
                .ok_or_else(|| CliError::Usage(format!("--session {hex:?}: expected 32 hex digits")))?
                .to_be_bytes(),
        ),
        None => SessionId(files::os_random16()?),
    };
    let gen_n = u32::try_from(a.generate).map_err(net)?;
    let sec = a.links.security()?;
    say!("session {:032x}, {n} tokens", session.as_u128());
    runtime()?.block_on(async {
        // Connect to both parties first; send a request only when both are reachable, so that
        // a party never starts a session its peer will not join.
        let connect = async |addr: &str, role: &str| -> Result<Box<dyn Stream>, CliError> {
            let tcp = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| net(format!("timed out connecting to {addr}")))?
                .map_err(|e| net(format!("{addr}: {e}")))?;
            Ok(sec.connect(tcp, role, TIMEOUT).await?)
        };
        let (c0, c1) = tokio::join!(connect(&a.p0, "p0"), connect(&a.p1, "p1"));
        let mut cs = [c0?, c1?];
        for (c, s) in cs.iter_mut().zip(&shares) {
            let head = RequestHead {
                session,
                seq: u32::try_from(n).map_err(net)?,
                generate: gen_n,
                count: s.len(),
                reveal_token: a.reveal.is_token(),
            };
            let mut req = Vec::with_capacity(ditto_net::client::HEAD + s.len() * 4);
            req.extend_from_slice(&head.encode());
            s.iter().for_each(|v| req.extend_from_slice(&v.to_le_bytes()));
            write_t(c, &req, "the request").await?;
        }
        if a.generate == 0 {
            return bert_answer(&mut cs, n, &client_labels(&a.model)?).await;
        }
        let mut tokens = Vec::new();
        for _ in 0..a.generate {
            let [s0, s1] = &mut cs;
            let (tag, max) = (output_tag(a.reveal), a.reveal.message_len(vocab));
            let (l0, l1) =
                tokio::join!(read_u32s(s0, tag, max, "an output"), read_u32s(s1, tag, max, "an output"));
            let (l0, l1) = (l0?, l1?);
            if l0.len() != max || l1.len() != max {
                return Err(net(format!("{} and {} output elements, expected {max}", l0.len(), l1.len())));
            }
            let opened: Vec<u32> = l0.iter().zip(&l1).map(|(p, q)| p.wrapping_add(*q)).collect();
            let t = match a.reveal {
                Reveal::Logits => ditto_models::generate::argmax_signed(&opened),
                Reveal::Token => opened[0],
            };
            if t as usize >= vocab {
                return Err(net(format!(
                    "the parties revealed token {t}, outside the vocabulary of {vocab}"
                )));
            }
            tokens.push(t);
            let mut one = vec![0u32; vocab];
            one[t as usize] = 1;
            let [o0, o1] = share(&one, &mut rng);
            let (f0, f1) = (frame_u32(b"DTOH", &o0), frame_u32(b"DTOH", &o1));
            let (w0, w1) = tokio::join!(write_t(s0, &f0, "a token"), write_t(s1, &f1, "a token"));
            w0?;
            w1?;
        }
        say!("tokens {tokens:?}");
        say!("text   {:?}", tok.decode(&tokens));
        Ok(())
    })
}

/// The label names of a BERT classification model (empty for an encoder).
fn client_labels(model: &str) -> Result<Vec<String>, CliError> {
    Ok(match config_of(model)? {
        Arch::Bert(cfg) => (0..cfg.num_labels().unwrap_or(0)).map(|i| cfg.label(i)).collect(),
        Arch::Gpt2(_) => Vec::new(),
    })
}

/// Token `i` of a synthetic input: byte `b` spread over the vocabulary.
fn synthetic_id(i: usize, b: u8, vocab: usize) -> u32 {
    u32::try_from((1000 + 7919 * i + 131 * usize::from(b)) % vocab).unwrap_or(0)
}

/// Reads both parties' answers to a BERT request and prints the embedding or the label.
async fn bert_answer(cs: &mut [Box<dyn Stream>; 2], n: usize, labels: &[String]) -> Result<(), CliError> {
    let read = async |c: &mut Box<dyn Stream>| -> Result<(u32, u32, Vec<u8>), CliError> {
        let mut head = [0u8; 16];
        tokio::time::timeout(Duration::from_secs(600), c.read_exact(&mut head))
            .await
            .map_err(|_| net("no answer"))?
            .map_err(|e| net(format!("a party closed without an answer ({e}); see its log")))?;
        let u = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let (ring, frac, m) = (u(4), u(8), u(12) as usize);
        if &head[..4] != b"DTOU" || !matches!(ring, 32 | 64) || m > 1 << 20 {
            return Err(net("a party answered something else"));
        }
        let mut d = vec![0u8; m * ring as usize / 8];
        read_exact_t(c, &mut d, "the output").await?;
        Ok((ring, frac, d))
    };
    let [c0, c1] = cs;
    let (r0, r1) = tokio::join!(read(c0), read(c1));
    let ((ring, frac, d0), (ring1, frac1, d1)) = (r0?, r1?);
    if (ring, frac, d0.len()) != (ring1, frac1, d1.len()) {
        return Err(net("the parties' answers do not match"));
    }
    fn open<R: ditto_core::Ring>(a: &[u8], b: &[u8], frac: u32) -> Vec<f64> {
        let (a, b): (Vec<R>, Vec<R>) = (
            a.chunks_exact(R::BYTES).map(R::from_le).collect(),
            b.chunks_exact(R::BYTES).map(R::from_le).collect(),
        );
        reveal(&a, &b).iter().map(|x| ditto_core::fixed::decode(*x, frac)).collect()
    }
    if ring == 32 {
        let logits = open::<u32>(&d0, &d1, frac);
        if logits.len() != labels.len() {
            return Err(net(format!("{} logits for {} labels", logits.len(), labels.len())));
        }
        let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
        say!("logits {:?}", logits.iter().map(|x| (x * 1e4).round() / 1e4).collect::<Vec<_>>());
        say!("label  {}", labels[best]);
        return Ok(());
    }
    #[allow(clippy::cast_precision_loss)]
    let v: Vec<f64> = open::<u64>(&d0, &d1, frac).iter().map(|x| x / n as f64).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    let e: Vec<f64> = v.iter().map(|x| (x / norm * 1e4).round() / 1e4).collect();
    say!("embedding ({} dims) starts {:?}", e.len(), &e[..e.len().min(8)]);
    Ok(())
}
