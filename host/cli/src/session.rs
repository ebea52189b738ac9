//! The same secure run across separate processes: `ditto share-model` (model owner),
//! `ditto dealer --model` (plans per request), `ditto party --id 0|1`, `ditto client`. The
//! roles themselves are library functions of `ditto-node`; this module parses their flags and
//! prints.

use std::path::PathBuf;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::{Prg, SessionId};
use ditto_models::bert::secure::share_bert;
use ditto_models::generate::Reveal;
use ditto_models::gpt2::secure::share_gpt2;
use ditto_models::share_file::ModelShare;
use ditto_models::spec::{Model, ModelSpec};
use ditto_node::client::{ClientRequest, Outcome};
use ditto_node::files::os_random16;
use ditto_node::party::{PartyConfig, Peer, accept_request, serve};

use crate::files::CliError;
use crate::identity::LinkArgs;
use crate::util::{net, runtime};
use ditto_models::quant::QuantConfig;

/// Longest single wait of the client.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of `ditto share-model`.
#[derive(clap::Args, Debug)]
pub struct ShareArgs {
    /// HF BERT or GPT-2 directory, `seeded` / `seeded-gpt2` / `shipped` for the built-in models,
    /// or `arch:NAME` for a published shape with seeded weights.
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
    let q = QuantConfig::from_spec(&a.quant)?;
    let mut rng = Prg::with_counter(&os_random16()?, 0);
    std::fs::create_dir_all(&a.out).map_err(|source| CliError::File { path: a.out.clone(), source })?;
    let path = |i: u8| a.out.join(format!("p{i}.share"));
    match ModelSpec::parse(&a.model).load()? {
        Model::Bert(b) => {
            let [s0, s1] = share_bert(&b, &q, &mut rng)?;
            s0.save(&path(0), 0)?;
            s1.save(&path(1), 1)?;
        }
        Model::Gpt2(g) => {
            let [s0, s1] = share_gpt2(&g, &q, &mut rng)?;
            s0.save(&path(0), 0)?;
            s1.save(&path(1), 1)?;
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
    /// Keep serving requests until SIGTERM or SIGINT (then finish those under way and exit 0),
    /// instead of serving one and exiting. Both parties must serve, or neither.
    #[arg(long)]
    pub serve: bool,
    /// With --serve: requests run at once (each its own session and link to the peer).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// With --serve: serve Prometheus metrics (`GET /metrics`, plain HTTP: counts and times
    /// only) on this address; bind it to a private interface.
    #[arg(long)]
    pub metrics: Option<String>,
    /// With --serve, P1: keep sessions dealt ahead on disk, up to this many bytes in all
    /// (e.g. `4G`; K, M, G, T are powers of 1024), so a request finds its correlations ready;
    /// with the pool empty the dealer creates one while the request waits. Filled while no
    /// request is under way. Once its weights are set up (its first request), P1 also prepares
    /// each pooled session (its products A_1 F) and hands P0 the session's stream ahead.
    /// P0: the disk for its products of the sessions P1 hands it (about 43 MB per BERT-base
    /// session of 128 tokens); without it P0 computes A_0 F online.
    #[arg(long)]
    pub pool: Option<String>,
    /// With --pool: the plans to pool, comma-separated: `N` (tokens, a BERT length bucket), or
    /// for GPT-2 `N+G` (prompt and generated tokens) or `N+G:token`. Default for BERT: the
    /// length buckets up to 128.
    #[arg(long)]
    pub pool_buckets: Option<String>,
    /// Link security (pins: the other party, `dealer`, `client`).
    #[command(flatten)]
    pub links: LinkArgs,
}

/// `ditto party`: one secure inference for one client, or (`--serve`) any number.
pub fn party(a: &PartyArgs) -> Result<(), CliError> {
    let (party, peer) = match (a.id, &a.listen, &a.connect) {
        (0, Some(l), _) => (Party::P0, Peer::Listen(l.clone())),
        (1, _, Some(c)) => (Party::P1, Peer::Connect(c.clone())),
        (0 | 1, _, _) => {
            return Err(CliError::Usage("P0 needs --listen ADDR, P1 needs --connect ADDR".into()));
        }
        (other, _, _) => return Err(CliError::Usage(format!("--id {other}: expected 0 or 1"))),
    };
    let (share, owner) = ModelShare::load(&a.share)?;
    if owner != a.id {
        return Err(CliError::Usage(format!(
            "{} is party {owner}'s share, not party {}'s",
            a.share.display(),
            a.id
        )));
    }
    let cfg = PartyConfig {
        party,
        peer,
        dealer: a.dealer.clone(),
        key: ditto_node::files::read_key(&a.key)?,
        state: a
            .state
            .clone()
            .unwrap_or_else(|| a.share.parent().map(std::path::Path::to_path_buf).unwrap_or_default()),
        threads: a.threads,
        timeout: Duration::from_secs(a.timeout.max(1)),
        security: a.links.security()?,
        weights: ditto_mpc::WeightStore::default(),
    };
    if a.serve {
        return serve_party(a, cfg, share);
    }
    if a.concurrency != 1 || a.metrics.is_some() || a.pool.is_some() {
        return Err(CliError::Usage("--concurrency, --metrics and --pool need --serve".into()));
    }
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.client).await.map_err(net)?;
        say!("party {} waiting for the client on {}", a.id, listener.local_addr().map_err(net)?);
        let req = accept_request(&listener, &cfg, &share, |peer, e| {
            eprintln!("party {}: refusing {peer}: {e}", a.id);
        })
        .await?;
        let r = serve(&cfg, share, req, Some(Box::new(crate::progress::plan_steps("inference")))).await?;
        say!(
            "party {} done: online {:.3} s, sent {} bytes in {} rounds (weight setup {} bytes{})",
            a.id,
            r.online.as_secs_f64(),
            r.sent,
            r.rounds,
            r.setup_sent,
            if r.setup_rounds <= 1 { ", masks from the state directory" } else { "" }
        );
        Ok(())
    })
}

/// `ditto party --serve`: serves until SIGTERM or SIGINT, one log line per request on stdout.
fn serve_party(a: &PartyArgs, cfg: PartyConfig, share: ModelShare) -> Result<(), CliError> {
    if a.concurrency == 0 {
        return Err(CliError::Usage("--concurrency 0: expected at least 1".into()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.concurrency.clamp(2, 64))
        .enable_all()
        .build()
        .map_err(net)?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&a.client).await.map_err(net)?;
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(net)?;
        say!(
            "party {} serving clients on {} ({} at once; SIGTERM or SIGINT stops it)",
            a.id,
            listener.local_addr().map_err(net)?,
            a.concurrency
        );
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let metrics = std::sync::Arc::new(ditto_node::metrics::Metrics::default());
        let ahead = match (&a.pool, a.id) {
            (Some(size), 0) => {
                let budget =
                    ditto_node::pool::parse_size(size).map_err(|e| CliError::Usage(format!("--pool {e}")))?;
                let consumed = ditto_node::party::consumed(&cfg)?;
                say!("party 0 products of sessions handed ahead: up to {budget} bytes");
                Some(ditto_node::ahead::Ahead::open(&cfg.state, budget, consumed)?)
            }
            _ => None,
        };
        let pool = match pool_of(a, &cfg, &share).await? {
            Some(p) => {
                let (d, bytes) = p.depths();
                say!(
                    "party 1 pool: {bytes} bytes in {} sessions, buckets {}",
                    d.iter().sum::<usize>(),
                    p.keys().iter().map(|k| k.label.as_str()).collect::<Vec<_>>().join(",")
                );
                metrics.set_pool(std::sync::Arc::clone(&p));
                Some(p)
            }
            None => None,
        };
        let exporter = match &a.metrics {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr).await.map_err(net)?;
                say!("party {} metrics on http://{}/metrics", a.id, l.local_addr().map_err(net)?);
                let m = std::sync::Arc::clone(&metrics);
                let wait = Duration::from_secs(5);
                Some(tokio::spawn(ditto_node::metrics::serve_metrics(l, m, usize::from(a.id), wait)))
            }
            None => None,
        };
        // Through a writer thread: a slow or paused standard output never holds requests up.
        let lines = ditto_node::log::Log::spawn(std::io::stdout());
        let log = lines.sink();
        let t = ditto_node::serve::serve_until(
            std::sync::Arc::new(cfg),
            std::sync::Arc::new(share),
            listener,
            ditto_node::serve::Options { concurrency: a.concurrency, metrics, pool, ahead },
            stop,
            log,
        )
        .await;
        lines.close();
        let t = t?;
        if let Some(x) = exporter {
            x.abort();
        }
        say!("party {} stopped: {} served, {} failed", a.id, t.served, t.failed);
        Ok(())
    })
}

/// P1's pool (`--pool`, `--pool-buckets`), opened.
async fn pool_of(
    a: &PartyArgs,
    cfg: &PartyConfig,
    share: &ModelShare,
) -> Result<Option<std::sync::Arc<ditto_node::pool::Pool>>, CliError> {
    use ditto_node::pool::{default_buckets, open_for, parse_buckets, parse_size};
    let Some(size) = &a.pool else {
        if a.pool_buckets.is_some() {
            return Err(CliError::Usage("--pool-buckets needs --pool SIZE".into()));
        }
        return Ok(None);
    };
    if a.id != 1 {
        if a.pool_buckets.is_some() {
            return Err(CliError::Usage(
                "--pool-buckets is P1's: P1 keeps the pool of dealt sessions".into(),
            ));
        }
        return Ok(None);
    }
    let budget = parse_size(size).map_err(|e| CliError::Usage(format!("--pool {e}")))?;
    let mc = share.config();
    let spec = match (a.pool_buckets.clone(), default_buckets(&mc)) {
        (Some(b), _) | (None, Some(b)) => b,
        (None, None) => return Err(CliError::Usage("a GPT-2 pool needs --pool-buckets N+G,...".into())),
    };
    let buckets =
        parse_buckets(&spec, mc.positions(), matches!(mc, ditto_models::spec::ModelConfig::Gpt2(_)))
            .map_err(|e| CliError::Usage(format!("--pool-buckets {e}")))?;
    let consumed = ditto_node::party::consumed(cfg)?;
    Ok(Some(open_for(share, &cfg.state, &buckets, budget, consumed).await?))
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
    /// HF BERT or GPT-2 directory (its tokenizer and config; the weights are not read),
    /// `seeded` / `seeded-gpt2` / `shipped`, or `arch:NAME`.
    #[arg(long)]
    pub model: String,
    /// Tokens to generate (GPT-2).
    #[arg(long = "gen", default_value_t = 0)]
    pub generate: usize,
    /// The private text.
    #[arg(long, required_unless_present = "batch", conflicts_with = "batch")]
    pub text: Option<String>,
    /// BERT: a file of private texts, one per line (blank lines skipped), sent as one batch (one
    /// session; up to 64 inputs, 4096 tokens in all); one result per input is printed.
    #[arg(long)]
    pub batch: Option<PathBuf>,
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

/// `ditto client`: tokenizes, shares, sends; prints the embedding or label (BERT) or the
/// generated text (GPT-2, `--gen N`).
pub fn client(a: &ClientArgs) -> Result<(), CliError> {
    let session = match &a.session {
        Some(hex) => SessionId(
            ditto_node::files::parse_hex16(hex)
                .ok_or_else(|| CliError::Usage(format!("--session {hex:?}: expected 32 hex digits")))?,
        ),
        None => SessionId(os_random16()?),
    };
    let model = ModelSpec::parse(&a.model);
    let security = a.links.security()?;
    let texts: Vec<String> = match (&a.text, &a.batch) {
        (Some(t), _) => vec![t.clone()],
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| CliError::Usage(format!("--batch {}: {e}", f.display())))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        (None, None) => return Err(CliError::Usage("give --text TEXT or --batch FILE".into())),
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let req = ClientRequest {
        model: &model,
        texts: &refs,
        generate: a.generate,
        reveal: a.reveal,
        session,
        parties: [&a.p0, &a.p1],
        security: &security,
        timeout: TIMEOUT,
    };
    let mut rng = Prg::with_counter(&os_random16()?, 0);
    say!("session {:032x}", session.as_u128());
    let round4 = |v: &[f64]| v.iter().map(|x| (x * 1e4).round() / 1e4).collect::<Vec<_>>();
    let outcomes = runtime()?.block_on(ditto_node::client::run(&req, &mut rng))?;
    for (i, o) in outcomes.iter().enumerate() {
        let at = if a.batch.is_some() { format!("input {}: ", i + 1) } else { String::new() };
        match o {
            Outcome::Embedding(e) => {
                say!("{at}embedding ({} dims) starts {:?}", e.len(), round4(&e[..e.len().min(8)]))
            }
            Outcome::Label { logits, label } => {
                say!("{at}logits {:?}", round4(logits));
                say!("{at}label  {label}");
            }
            Outcome::Tokens { ids, text } => {
                say!("tokens {ids:?}");
                say!("text   {text:?}");
            }
        }
    }
    Ok(())
}
