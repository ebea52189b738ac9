//! A party answering one client request: [`accept_request`] waits for a well-formed request
//! from the pinned client (refusing others, and telling a client whose request does not fit
//! the model why), [`serve`] claims the session, opens the link to the peer and the dealer
//! stream, runs the model and answers. Messages: [`ditto_net::client`].

use std::path::PathBuf;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::SessionId;
use ditto_dealer::host::PlanParams;
use ditto_dealer::keys::PartyKey;
use ditto_models::bert::secure::{BertOutput, BertShare, SecureBert};
use ditto_models::generate::{Client, ClientEnd, Reveal, generate};
use ditto_models::gpt2::secure::{Gpt2Share, SecureGpt2};
use ditto_models::share_file::ModelShare;
use ditto_mpc::{Engine, Shared};
use ditto_net::client::{
    LOGITS, ONE_HOT, RequestHead, TOKEN, answer_frame, read_u32_frame, refusal_frame, u32_frame,
};
use ditto_net::dealer::Source;
use ditto_net::link::{Config, Link};
use ditto_net::tls::{Security, Stream};
use tokio::io::AsyncReadExt;

use crate::files::SessionRecord;
use crate::{NodeError, io, write_t};

/// How this party reaches its peer.
#[derive(Clone, Debug)]
pub enum Peer {
    /// P0 accepts P1 on this address.
    Listen(String),
    /// P1 connects to P0 at this address.
    Connect(String),
}

/// What a party needs to serve requests.
pub struct PartyConfig {
    /// P0 or P1.
    pub party: Party,
    /// The peer.
    pub peer: Peer,
    /// The dealer server's address.
    pub dealer: String,
    /// This party's dealer key.
    pub key: PartyKey,
    /// State directory: consumed sessions and the weight cache.
    pub state: PathBuf,
    /// GEMM threads.
    pub threads: usize,
    /// Longest single wait (peer, dealer, client).
    pub timeout: Duration,
    /// Link security (pins: the other party, `dealer`, `client`).
    pub security: Security,
    /// Weights prepared by an earlier request of this process (a serving party's sessions
    /// after the first take them instead of setting their weights up again).
    pub weights: ditto_mpc::WeightStore,
}

/// A checked request and the connection it came on.
pub struct Request {
    /// The client's connection.
    pub conn: Box<dyn Stream>,
    /// Its head.
    pub head: RequestHead,
    /// Its one-hot shares (prompt tokens x vocabulary).
    pub input: Shared<u32>,
}

/// Where a request's session came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The client named it and each party fetched its stream (one-shot mode).
    Client,
    /// P1 took it from its pool.
    Pool,
    /// P1's pool had none: the dealer created it while the request waited.
    OnDemand,
    /// P0: relayed by P1 (from its pool or on demand).
    Relayed,
}

impl Origin {
    /// Its name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Client => "client",
            Origin::Pool => "pool",
            Origin::OnDemand => "on-demand",
            Origin::Relayed => "relayed",
        }
    }
}

/// The session a request runs and where its dealer stream comes from.
pub struct Dealt {
    /// The session.
    pub session: SessionId,
    /// This party's stream of it.
    pub source: Source,
    /// Where it came from.
    pub origin: Origin,
    /// This party's products A_i F of it, prepared before the request ([`crate::ahead`]).
    pub products: Option<std::sync::Arc<ditto_mpc::precompute::Products>>,
}

/// What a served request cost this party.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// The session it ran (the client's in one-shot mode).
    pub session: SessionId,
    /// Where that session came from.
    pub origin: Origin,
    /// Whether this party's products A_i F were prepared before the request.
    pub prepared: bool,
    /// Online time (steps of the plan, weight setup excluded).
    pub online: Duration,
    /// From the request's plan to the answer sent: the online time plus opening the dealer
    /// stream, the handshake and the weight setup.
    pub total: Duration,
    /// Bytes sent to the peer, setup included.
    pub sent: u64,
    /// Rounds, setup included.
    pub rounds: u32,
    /// Bytes of the weight setup.
    pub setup_sent: u64,
    /// Rounds of the weight setup (at most 1 when the masks came from the state directory).
    pub setup_rounds: u32,
}

/// The party's checks of a request head: it fits the model.
fn check(
    share: &ModelShare,
    head: &[u8; ditto_net::client::HEAD],
) -> Result<(RequestHead, usize), NodeError> {
    let cfg = share.config();
    let (vocab, positions) = (cfg.vocab(), cfg.positions());
    let h = RequestHead::parse(head, vocab, positions)?;
    if h.reveal_token && matches!(share, ModelShare::Bert(_)) {
        return Err(NodeError::Request(
            "a BERT model has no tokens to reveal (--reveal token is for GPT-2)".into(),
        ));
    }
    if h.batch > 1 && matches!(share, ModelShare::Gpt2(_)) {
        return Err(NodeError::Request(format!(
            "a batch of {} inputs: batches are for BERT models",
            h.batch
        )));
    }
    Ok((h, vocab))
}

/// Reads one request on `conn`; a request that does not fit the model is refused with its reason.
pub(crate) async fn read_request(
    mut conn: Box<dyn Stream>,
    share: &ModelShare,
    wait: Duration,
) -> Result<Request, NodeError> {
    let mut head = [0u8; ditto_net::client::HEAD];
    read_t(&mut conn, &mut head, wait, "the client's request").await?;
    let (head, vocab) = match check(share, &head) {
        Ok(h) => h,
        Err(e) => {
            // Best effort: the client learns why; the error stands either way.
            let _ = write_t(&mut conn, &refusal_frame(&e.to_string()), wait, "the refusal").await;
            return Err(e);
        }
    };
    let mut data = vec![0u8; head.count * 4];
    read_t(&mut conn, &mut data, wait, "the client's input").await?;
    let input = data.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let shape = match head.batch {
        1 => vec![head.seq as usize, vocab],
        b => vec![b as usize, head.seq as usize, vocab],
    };
    let input = Shared::new(input, &shape, 0)?;
    Ok(Request { conn, head, input })
}

async fn read_t(
    c: &mut Box<dyn Stream>,
    buf: &mut [u8],
    wait: Duration,
    what: &'static str,
) -> Result<(), NodeError> {
    match tokio::time::timeout(wait, c.read_exact(buf)).await {
        Err(_) => Err(ditto_net::NetError::Timeout { what, secs: wait.as_secs_f64() }.into()),
        Ok(r) => r.map(|_| ()).map_err(io(what)),
    }
}

/// Accepts on `listener` until a well-formed request from the pinned client arrives; a probe,
/// a stranger or a request that does not fit is skipped (and reported to `skipped`).
pub async fn accept_request(
    listener: &tokio::net::TcpListener,
    cfg: &PartyConfig,
    share: &ModelShare,
    mut skipped: impl FnMut(std::net::SocketAddr, &NodeError),
) -> Result<Request, NodeError> {
    loop {
        let (tcp, peer) = listener.accept().await.map_err(io("accepting the client"))?;
        let conn = match cfg.security.accept(tcp, &["client"], cfg.timeout).await {
            Ok((c, _)) => c,
            Err(e) => {
                skipped(peer, &e.into());
                continue;
            }
        };
        match read_request(conn, share, cfg.timeout).await {
            Ok(r) => return Ok(r),
            Err(e) => skipped(peer, &e),
        }
    }
}

/// Serves one request: claims its session (never twice, across restarts: recorded before
/// anything of it is fetched or opened), links to the peer, fetches the dealer stream, runs
/// the model and answers the client.
pub async fn serve(
    cfg: &PartyConfig,
    share: ModelShare,
    req: Request,
    progress: Option<Box<dyn FnMut(u32, u32) + Send>>,
) -> Result<Report, NodeError> {
    claim(cfg, &req.head.session)?;
    let c2 = Config { timeout: cfg.timeout };
    let link = match (&cfg.peer, cfg.party) {
        (Peer::Listen(l), Party::P0) => {
            let lst = tokio::net::TcpListener::bind(l).await.map_err(io("binding the peer address"))?;
            Link::accept(&lst, Party::P0, c2, &cfg.security).await?
        }
        (Peer::Connect(addr), Party::P1) => Link::connect(addr, Party::P1, c2, &cfg.security).await?,
        _ => return Err(NodeError::Config("P0 listens for its peer, P1 connects to P0".into())),
    };
    let session = req.head.session;
    let source = Source::Tcp(cfg.dealer.clone(), plan_params(&req.head), cfg.security.clone());
    run_request(
        cfg,
        share,
        req,
        link,
        Dealt { session, source, origin: Origin::Client, products: None },
        progress,
    )
    .await
}

/// What a request's plan is made for.
pub fn plan_params(head: &RequestHead) -> PlanParams {
    PlanParams { seq: head.seq, generate: head.generate, reveal_token: head.reveal_token, batch: head.batch }
}

/// The plan of a request to `share`'s model.
pub async fn plan_of(share: &ModelShare, head: &RequestHead) -> Result<ditto_core::plan::Plan, NodeError> {
    plan_for(&share.config(), share.quant(), &plan_params(head)).await
}

/// The plan a party runs (and the dealer deals) for model `cfg` under `q`, made for `p`.
pub async fn plan_for(
    cfg: &ditto_models::spec::ModelConfig,
    q: &ditto_models::quant::QuantConfig,
    p: &PlanParams,
) -> Result<ditto_core::plan::Plan, NodeError> {
    let lengths = (p.seq as usize, p.generate as usize, p.batch.max(1) as usize);
    Ok(ditto_models::plans::of("party", cfg, q, lengths, Reveal::of_flag(p.reveal_token)).await?)
}

/// This party's record of consumed sessions (see [`SessionRecord`]).
pub fn consumed(cfg: &PartyConfig) -> Result<SessionRecord, NodeError> {
    SessionRecord::open_named(&cfg.state, &format!("consumed-sessions-p{}", cfg.party.index()))
}

/// Records `session` (a client's request id or a dealt session) as consumed by this party
/// (atomic and durable: an id is refused the second time, across restarts and concurrent
/// requests alike).
pub fn claim(cfg: &PartyConfig, session: &SessionId) -> Result<(), NodeError> {
    consumed(cfg)?.claim(session)
}

/// Runs a claimed request over `link` to the peer with the dealt session `dealt`: opens the
/// dealer stream, runs the model and answers the client.
pub async fn run_request(
    cfg: &PartyConfig,
    share: ModelShare,
    req: Request,
    link: Link,
    dealt: Dealt,
    progress: Option<Box<dyn FnMut(u32, u32) + Send>>,
) -> Result<Report, NodeError> {
    let began = std::time::Instant::now();
    let plan = plan_of(&share, &req.head).await?;
    let Request { conn, head, input } = req;
    let gen_n = head.generate as usize;
    let reveal = Reveal::of_flag(head.reveal_token);
    let Dealt { session, source, origin, products } = dealt;
    let key = cfg.key.clone();
    let mut e =
        Engine::start(cfg.party, link, source, key, plan, (session, share.share_set()), cfg.timeout).await?;
    e.set_threads(cfg.threads);
    // Products of another plan (P1 named other parameters ahead) are not used.
    let prepared = products.is_some_and(|p| e.set_products(p).is_ok());
    if let Some(f) = progress {
        e.set_progress(f);
    }
    e.set_weight_cache(&cfg.state);
    e.set_weight_store(cfg.weights.clone());
    let vocab = input.shape[1];
    let result = match share {
        ModelShare::Bert(b) => serve_bert(&mut e, *b, &input, conn, cfg.timeout).await,
        ModelShare::Gpt2(g) => {
            serve_gpt2(&mut e, *g, &input, (gen_n, vocab), reveal, conn, cfg.timeout).await
        }
    };
    if let Err(err) = &result {
        e.abort(&err.to_string()).await;
    }
    result?;
    let counters = e.finish().await?;
    let (t, setup) = (counters.total(), counters.step(ditto_mpc::engine::SETUP_STEP));
    let online = counters.times().filter(|(s, _)| *s != ditto_mpc::engine::SETUP_STEP).map(|(_, d)| d).sum();
    Ok(Report {
        session,
        origin,
        prepared,
        online,
        total: began.elapsed(),
        sent: t.sent,
        rounds: t.rounds,
        setup_sent: setup.sent,
        setup_rounds: setup.rounds,
    })
}

async fn serve_bert(
    e: &mut Engine,
    share: BertShare,
    input: &Shared<u32>,
    mut c: Box<dyn Stream>,
    wait: Duration,
) -> Result<(), NodeError> {
    let m = SecureBert::setup(e, share).await?;
    // A failed run answers nothing (the client sees the connection close): only a request the
    // party refuses before its session starts is told why.
    let resp = match m.infer(e, input).await? {
        BertOutput::PooledSum(s) => answer_frame(&s.data, s.frac),
        BertOutput::Logits(l) => answer_frame(&l.data, l.frac),
    };
    write_t(&mut c, &resp, wait, "the output").await
}

/// The tag of a party's per-token message to the client.
pub fn output_tag(reveal: Reveal) -> &'static [u8; 4] {
    match reveal {
        Reveal::Logits => &LOGITS,
        Reveal::Token => &TOKEN,
    }
}

/// Longest a party waits for the client to choose the next token.
pub const CLIENT_TURN: Duration = Duration::from_secs(600);

async fn serve_gpt2(
    e: &mut Engine,
    share: Gpt2Share,
    input: &Shared<u32>,
    (steps, vocab): (usize, usize),
    reveal: Reveal,
    c: Box<dyn Stream>,
    wait: Duration,
) -> Result<(), NodeError> {
    let m = SecureGpt2::setup(e, share).await?;
    // Bridge the engine's client channels to the client's connection.
    let (to_client, mut logits_rx) = tokio::sync::mpsc::channel::<Vec<u32>>(2);
    let (next_tx, from_client) = tokio::sync::mpsc::channel::<Vec<u32>>(2);
    let mut end = ClientEnd { tx: to_client, rx: from_client };
    let (mut rd, mut wr) = tokio::io::split(c);
    let bridge = tokio::spawn(async move {
        while let Some(l) = logits_rx.recv().await {
            write_t(&mut wr, &u32_frame(output_tag(reveal), &l), wait, "the output").await?;
            let next = read_u32_frame(&mut rd, &ONE_HOT, vocab, CLIENT_TURN, "the next token").await?;
            if next_tx.send(next).await.is_err() {
                break;
            }
        }
        Ok::<(), NodeError>(())
    });
    let r = generate(e, &m, input, (steps, vocab), reveal, Client::Remote(&mut end)).await;
    drop(end);
    r?;
    bridge.await.map_err(|e| NodeError::Config(format!("the client bridge stopped: {e}")))??;
    Ok(())
}
