//! A party serving requests until it is told to stop (`ditto party --serve`): every request
//! is its own session with its own P0 <-> P1 link, up to `concurrency` at once, and one that
//! fails (client gone, bad request, request replayed, peer or dealer error) fails alone.
//!
//! Sessions are the dealer's: P1 takes one from its pool ([`crate::pool`]) or, with the pool
//! empty, has the dealer create one on demand; either way it holds both parties' sealed
//! streams. The client sends the same request id to both parties; P1 opens one link per
//! request and, before the handshake, names the request and the session in the link's routing
//! frames and relays P0's sealed stream ([`Link::route_send`]); P0 hands each link to the
//! request of that id, whichever of the two arrived first. Each party claims the request id
//! and the session in its record of consumed sessions before using them. A link or a request
//! that waits longer than the time-out for its other half is dropped. On `stop`, no new
//! connection is accepted and the requests under way finish.

use std::sync::Arc;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::SessionId;
use ditto_models::share_file::ModelShare;
use ditto_net::dealer::{Opened, Source};
use ditto_net::link::{Config, Link, Route, RouteKind};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::metrics::Metrics;
use crate::party::{
    Dealt, Origin, PartyConfig, Peer, Report, Request, claim, plan_of, read_request, run_request,
};
use crate::pool::{Dealer, Pool, fetch_new};
use crate::{NodeError, io};
use rendezvous::Rendezvous;

mod rendezvous;

/// What one served request came to, for the log line.
#[derive(Debug)]
pub struct Served {
    /// The client's request id.
    pub session: SessionId,
    /// Its costs, or why it failed.
    pub result: Result<Report, NodeError>,
}

impl Served {
    /// One line: `served request=.. session=.. source=.. online_s=.. sent=.. rounds=..`, or
    /// `failed request=.. error=".."`.
    pub fn line(&self, party: Party) -> String {
        let (p, s) = (party.index(), self.session.as_u128());
        match &self.result {
            Ok(r) => format!(
                "served party={p} request={s:032x} session={:032x} source={} prepared={} online_s={:.3} total_s={:.3} sent={} rounds={} setup_sent={}",
                r.session.as_u128(),
                r.origin.name(),
                u8::from(r.prepared),
                r.online.as_secs_f64(),
                r.total.as_secs_f64(),
                r.sent,
                r.rounds,
                r.setup_sent
            ),
            Err(e) => format!("failed party={p} request={s:032x} error={:?}", e.to_string()),
        }
    }
}

/// Totals of a serving run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests answered.
    pub served: u64,
    /// Requests that failed (after a well-formed request arrived).
    pub failed: u64,
}

/// What the requests of a serving run share.
#[derive(Clone)]
struct Run {
    /// P0: where links meet their requests.
    meet: Arc<Rendezvous>,
    /// Requests at once.
    slots: Arc<Semaphore>,
    /// P1's pool.
    pool: Option<Arc<Pool>>,
    /// P0's products of sessions handed ahead.
    ahead: Option<Arc<crate::ahead::Ahead>>,
}

/// Serves requests accepted on `clients` until `stop` completes, then lets the requests under
/// way finish; `log` gets one line per request (and per refused connection). P0 accepts its
/// peer's links on its `--listen` address for the whole run.
pub async fn serve_until(
    cfg: Arc<PartyConfig>,
    share: Arc<ModelShare>,
    clients: TcpListener,
    opts: Options,
    stop: impl std::future::Future<Output = ()>,
    log: Arc<dyn Fn(String) + Send + Sync>,
) -> Result<Totals, NodeError> {
    let Options { concurrency, metrics, pool, ahead } = opts;
    if pool.is_some() && cfg.party.is_p0() {
        return Err(NodeError::Config("P1 keeps the pool of dealt sessions, not P0".into()));
    }
    if ahead.is_some() && !cfg.party.is_p0() {
        return Err(NodeError::Config("P0 keeps the products of sessions handed ahead, not P1".into()));
    }
    let filler = pool.as_ref().map(|p| {
        let prepare = crate::ahead::Preparer {
            cfg: Arc::clone(&cfg),
            share: Arc::clone(&share),
            log: Arc::clone(&log),
            busy: {
                let m = Arc::clone(&metrics);
                Arc::new(move || m.busy())
            },
        };
        spawn_filler(Arc::clone(p), (&cfg, prepare), Arc::clone(&metrics), Arc::clone(&log))
    });
    let worker = ahead.as_ref().map(|a| {
        let m = Arc::clone(&metrics);
        let busy: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || m.busy());
        crate::ahead::spawn_worker(a, Arc::clone(&cfg), Arc::clone(&share), busy, Arc::clone(&log))
    });
    let r = serve_loop(cfg, share, clients, (concurrency, metrics, pool), ahead.clone(), stop, log).await;
    if let Some((stop, t)) = filler {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let (Some(a), Some(t)) = (ahead, worker) {
        crate::ahead::stop_worker(&a);
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    r
}

/// How a party serves.
pub struct Options {
    /// Requests at once.
    pub concurrency: usize,
    /// Its counters.
    pub metrics: Arc<Metrics>,
    /// P1: its pool of dealt sessions (none: every session on demand).
    pub pool: Option<Arc<Pool>>,
    /// P0: where it keeps the products of sessions P1 hands it ahead (none: it ignores them
    /// and computes A_0 F online).
    pub ahead: Option<Arc<crate::ahead::Ahead>>,
}

/// How P1 reaches the dealer.
fn dealer_of(cfg: &PartyConfig) -> Dealer {
    Dealer { addr: cfg.dealer.clone(), security: cfg.security.clone(), timeout: cfg.timeout }
}

/// Starts the thread that keeps `pool` filled while no request is under way.
fn spawn_filler(
    pool: Arc<Pool>,
    (cfg, prepare): (&PartyConfig, crate::ahead::Preparer),
    metrics: Arc<Metrics>,
    log: Arc<dyn Fn(String) + Send + Sync>,
) -> (Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, dealer) = (Arc::clone(&stop), dealer_of(cfg));
    let t = std::thread::spawn(move || {
        crate::pool::fill(&pool, &dealer, &|| metrics.busy(), &s, &*log, Some(&prepare));
    });
    (stop, t)
}

async fn serve_loop(
    cfg: Arc<PartyConfig>,
    share: Arc<ModelShare>,
    clients: TcpListener,
    (concurrency, metrics, pool): (usize, Arc<Metrics>, Option<Arc<Pool>>),
    ahead: Option<Arc<crate::ahead::Ahead>>,
    stop: impl std::future::Future<Output = ()>,
    log: Arc<dyn Fn(String) + Send + Sync>,
) -> Result<Totals, NodeError> {
    let meet = Arc::new(Rendezvous::default());
    let peers = match (&cfg.peer, cfg.party) {
        (Peer::Listen(l), Party::P0) => {
            Some(TcpListener::bind(l).await.map_err(io("binding the peer address"))?)
        }
        (Peer::Connect(_), Party::P1) => None,
        _ => return Err(NodeError::Config("P0 listens for its peer, P1 connects to P0".into())),
    };
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let run = Run { meet: Arc::clone(&meet), slots, pool, ahead: ahead.clone() };
    let mut work: JoinSet<Option<Served>> = JoinSet::new();
    let mut links: JoinSet<()> = JoinSet::new();
    let mut totals = Totals::default();
    let mut clients = Some(clients);
    tokio::pin!(stop);
    // Stopping closes the client port; the requests under way finish (each bounded by its
    // time-outs), P0 still taking their links.
    while clients.is_some() || !work.is_empty() {
        tokio::select! {
            () = &mut stop, if clients.is_some() => clients = None,
            c = accept_on(clients.as_ref()) => {
                let (tcp, from) = match c {
                    Ok(v) => v,
                    Err(e) => {
                        // Out of descriptors, say: log, pause, go on.
                        log(format!("refused party={} error={:?}", cfg.party.index(), e.to_string()));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (cfg, share, run, log) = (Arc::clone(&cfg), Arc::clone(&share), run.clone(), Arc::clone(&log));
                let metrics = Arc::clone(&metrics);
                work.spawn(async move {
                    let req = match read_client(&cfg, &share, tcp).await {
                        Ok(r) => r,
                        Err(e) => {
                            metrics.refused();
                            log(format!("refused party={} from={from} error={:?}", cfg.party.index(), e.to_string()));
                            return None;
                        }
                    };
                    metrics.started();
                    let session = req.head.session;
                    let result = one(cfg, share, req, run).await;
                    metrics.finished(result.as_ref().map_err(|_| ()));
                    Some(Served { session, result })
                });
            }
            p = accept_on(peers.as_ref()) => {
                let tcp = match p {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        log(format!("refused party=0 peer error={:?}", e.to_string()));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (cfg, meet, log, ahead) = (Arc::clone(&cfg), Arc::clone(&meet), Arc::clone(&log), ahead.clone());
                links.spawn(async move {
                    let c = Config { timeout: cfg.timeout };
                    let routed = async {
                        let mut link = Link::accept_stream(tcp, Party::P0, c, &cfg.security).await?;
                        let route = link.route_recv().await?;
                        Ok::<_, ditto_net::NetError>((link, route))
                    };
                    match routed.await {
                        Ok((_, route)) if matches!(route.kind, RouteKind::Ahead(_)) => {
                            let RouteKind::Ahead(params) = route.kind else { return };
                            let job = crate::ahead::Job { session: route.session, params, p0_stream: route.p0_stream };
                            if !ahead.as_ref().is_some_and(|a| a.offer(job)) {
                                log(format!(
                                    "ahead-ignored party=0 session={:032x} reason=\"no --pool for products, or its queue is full\"",
                                    route.session.as_u128()
                                ));
                            }
                        }
                        Ok((link, route)) => meet.offer(route.request, (link, route), cfg.timeout),
                        Err(e) => log(format!("refused party=0 peer error={:?}", e.to_string())),
                    }
                });
            }
            Some(done) = work.join_next(), if !work.is_empty() => {
                count(done, &mut totals, cfg.party, &*log);
            }
            Some(_) = links.join_next(), if !links.is_empty() => {}
        }
    }
    links.abort_all();
    Ok(totals)
}

fn count(
    done: Result<Option<Served>, tokio::task::JoinError>,
    totals: &mut Totals,
    party: Party,
    log: &(dyn Fn(String) + Send + Sync),
) {
    match done {
        Ok(Some(s)) => {
            if s.result.is_ok() {
                totals.served += 1;
            } else {
                totals.failed += 1;
            }
            log(s.line(party));
        }
        Ok(None) => {}
        Err(e) => {
            totals.failed += 1;
            log(format!("failed party={} error={:?}", party.index(), format!("request task: {e}")));
        }
    }
}

/// The next connection on `l`, or never when there is none (a closed client port; P1, which
/// opens its peer links itself).
async fn accept_on(
    l: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Secures a client connection (the pinned client only) and reads its request.
async fn read_client(
    cfg: &PartyConfig,
    share: &ModelShare,
    tcp: tokio::net::TcpStream,
) -> Result<Request, NodeError> {
    let (conn, _) = cfg.security.accept(tcp, &["client"], cfg.timeout).await?;
    read_request(conn, share, cfg.timeout).await
}

/// One request: claims its id, gets its link and session (P0: link, session and P0's sealed
/// stream from P1 through the rendezvous, before taking a slot, so a request waiting for its
/// peer holds none; P1: once it has a slot, a session from its pool or the dealer, then the
/// link, naming both), claims the session, and runs it on a thread of its own with a runtime
/// of its own (its compute is long and synchronous; sockets accepted by the serving loop stay
/// with that loop's driver, which keeps running).
async fn one(
    cfg: Arc<PartyConfig>,
    share: Arc<ModelShare>,
    mut req: Request,
    Run { meet, slots, pool, ahead }: Run,
) -> Result<Report, NodeError> {
    claim(&cfg, &req.head.session)?;
    let request = req.head.session;
    let relayed = match &cfg.peer {
        // P0 waits as long as the client does: P1 opens the link once it has a slot for the
        // request (it may queue behind others), or tells P0 at once that it gave it up.
        Peer::Listen(_) => {
            let (link, route) = meet.take(request, crate::party::CLIENT_TURN).await?;
            if route.kind == RouteKind::Refusal {
                return Err(NodeError::Request(format!("P1 gave this request up: {}", route.reason())));
            }
            Some((link, route))
        }
        Peer::Connect(_) => None,
    };
    let permit =
        slots.acquire_owned().await.map_err(|_| NodeError::Config("the server is stopping".into()))?;
    let run = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting a request's runtime"))?;
        rt.block_on(async {
            // P1's pooled session, kept until the run ends (its files go with it).
            let mut _taken = None;
            let (link, dealt) = match (relayed, &cfg.peer) {
                (Some((link, route)), _) => {
                    claim(&cfg, &route.session)?;
                    let source = Source::Memory(Arc::new(route.p0_stream));
                    let products = ahead.as_ref().and_then(|a| a.take(route.session)).map(Arc::new);
                    (link, Dealt { session: route.session, source, origin: Origin::Relayed, products })
                }
                (None, Peer::Connect(addr)) => {
                    let (dealt, p0_stream, taken) = match p1_session(&cfg, &share, &req, pool.as_ref()).await
                    {
                        Ok(v) => v,
                        Err(e) => {
                            // Before the session starts: the client and P0 are told why.
                            let why = e.to_string();
                            let frame = ditto_net::client::refusal_frame(&why);
                            let tell_p0 = async {
                                let c = Config { timeout: cfg.timeout };
                                let mut l = Link::connect(addr, Party::P1, c, &cfg.security).await?;
                                l.route_send(&Route::refusal(request, &why)).await
                            };
                            let _ = tokio::join!(
                                crate::write_t(&mut req.conn, &frame, cfg.timeout, "the refusal"),
                                tell_p0
                            );
                            return Err(e);
                        }
                    };
                    _taken = taken;
                    let c = Config { timeout: cfg.timeout };
                    let mut l = Link::connect(addr, Party::P1, c, &cfg.security).await?;
                    l.route_send(&Route {
                        request,
                        session: dealt.session,
                        p0_stream,
                        kind: RouteKind::Session,
                    })
                    .await?;
                    (l, dealt)
                }
                (None, Peer::Listen(_)) => {
                    return Err(NodeError::Config("P0 without its peer's link".into()));
                }
            };
            run_request(&cfg, (*share).clone(), req, link, dealt, None).await
        })
    });
    run.await.unwrap_or_else(|e| Err(NodeError::Config(format!("the request's thread failed: {e}"))))
}

/// P1: the session of a request (claimed) and P0's sealed stream of it, from the pool of the
/// request's plan, or created by the dealer now when that pool is empty or there is none.
async fn p1_session(
    cfg: &PartyConfig,
    share: &ModelShare,
    req: &Request,
    pool: Option<&Arc<Pool>>,
) -> Result<(Dealt, Vec<u8>, Option<crate::pool::Taken>), NodeError> {
    let plan = plan_of(share, &req.head).await?;
    let hash = plan.hash()?;
    if let Some(p) = pool
        && let Some(key) = p.key_of(&hash)
        && let Some(mut t) = p.take(key)?
    {
        let p0 = std::mem::take(&mut t.p0_stream);
        let products = t.products.as_deref().and_then(|p| crate::ahead::read(p).ok()).map(Arc::new);
        let source = Source::File(t.p1_path.clone());
        let dealt = Dealt { session: t.session, source, origin: Origin::Pool, products };
        return Ok((dealt, p0, Some(t)));
    }
    let key = crate::pool::PoolKey::new(crate::party::plan_params(&req.head), &plan)?;
    let (dealer, share_set) = (dealer_of(cfg), share.share_set());
    let addr = dealer.addr.clone();
    let new = tokio::task::spawn_blocking(move || fetch_new(&dealer, share_set, &key))
        .await
        .map_err(|e| NodeError::Config(format!("fetching a session: {e}")))?
        .map_err(|e| {
            let pooled = if pool.is_some() { "P1 has no pooled session of this length and " } else { "" };
            NodeError::Request(format!(
                "no dealt session for this request: {pooled}the dealer at {addr} did not deal one: {e}"
            ))
        })?;
    claim(cfg, &new.session)?;
    let dealt = Dealt {
        session: new.session,
        source: Source::Open(Opened::new(new.p1)),
        origin: Origin::OnDemand,
        products: None,
    };
    Ok((dealt, new.p0_stream, None))
}
