//! A party serving requests until it is told to stop (`ditto party --serve`): every request
//! is its own session with its own P0 <-> P1 link, up to `concurrency` at once, and one that
//! fails (client gone, bad request, session replayed, peer or dealer error) fails alone.
//!
//! The parties must agree on which request each link is for: the client sends the same
//! session id to both, P1 opens one link per request and names its session in the link's
//! routing frame ([`Link::route`], sealed, before the handshake, which checks the session
//! again), and P0 hands each link to the request of that session, whichever of the two
//! arrived first. A link or a request that waits longer than the time-out for its other half
//! is dropped. On `stop`, no new connection is accepted and the requests under way finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::SessionId;
use ditto_models::share_file::ModelShare;
use ditto_net::link::{Config, Link};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;

use crate::metrics::Metrics;
use crate::party::{PartyConfig, Peer, Report, Request, claim, read_request, run_request};
use crate::{NodeError, io};

/// What one served request came to, for the log line.
#[derive(Debug)]
pub struct Served {
    /// The request's session (zero when the request could not be read).
    pub session: SessionId,
    /// Its costs, or why it failed.
    pub result: Result<Report, NodeError>,
}

impl Served {
    /// One line: `served session=.. online_s=.. sent=.. rounds=..`, or `failed session=..
    /// error=".."`.
    pub fn line(&self, party: Party) -> String {
        let (p, s) = (party.index(), self.session.as_u128());
        match &self.result {
            Ok(r) => format!(
                "served party={p} session={s:032x} online_s={:.3} sent={} rounds={} setup_sent={}",
                r.online.as_secs_f64(),
                r.sent,
                r.rounds,
                r.setup_sent
            ),
            Err(e) => format!("failed party={p} session={s:032x} error={:?}", e.to_string()),
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

/// P0's meeting point of links and requests, by session.
#[derive(Default)]
struct Rendezvous {
    slots: Mutex<HashMap<SessionId, Slot>>,
}

enum Slot {
    /// The link came first.
    Link(Box<Link>),
    /// The request came first and waits.
    Waiting(oneshot::Sender<Link>),
}

impl Rendezvous {
    /// A link for `session`: to its waiting request, or kept (dropped after `wait` unless a
    /// request takes it).
    fn offer(self: &Arc<Self>, session: SessionId, link: Link, wait: Duration) {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let link = match slots.remove(&session) {
            Some(Slot::Waiting(tx)) => match tx.send(link) {
                Ok(()) => return,
                Err(link) => link,
            },
            // A second link for one session: the first one stays, this one is dropped.
            Some(first @ Slot::Link(_)) => {
                slots.insert(session, first);
                return;
            }
            None => link,
        };
        slots.insert(session, Slot::Link(Box::new(link)));
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let mut slots = me.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if matches!(slots.get(&session), Some(Slot::Link(_))) {
                slots.remove(&session);
            }
        });
    }

    /// The link for `session`, waiting up to `wait` for P1 to open it.
    async fn take(&self, session: SessionId, wait: Duration) -> Result<Link, NodeError> {
        let rx = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match slots.remove(&session) {
                Some(Slot::Link(l)) => return Ok(*l),
                // A second request of one session is refused by its claim before it gets here.
                Some(Slot::Waiting(_)) | None => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(session, Slot::Waiting(tx));
                    rx
                }
            }
        };
        let got = tokio::time::timeout(wait, rx).await;
        if got.is_err() {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if matches!(slots.get(&session), Some(Slot::Waiting(_))) {
                slots.remove(&session);
            }
        }
        match got {
            Ok(Ok(link)) => Ok(link),
            _ => Err(ditto_net::NetError::Timeout {
                what: "the peer's link for this session",
                secs: wait.as_secs_f64(),
            }
            .into()),
        }
    }
}

/// Serves requests accepted on `clients` until `stop` completes, then lets the requests under
/// way finish; `log` gets one line per request (and per refused connection). P0 accepts its
/// peer's links on its `--listen` address for the whole run.
pub async fn serve_until(
    cfg: Arc<PartyConfig>,
    share: Arc<ModelShare>,
    clients: TcpListener,
    (concurrency, metrics): (usize, Arc<Metrics>),
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
                let (cfg, share, meet, slots, log) =
                    (Arc::clone(&cfg), Arc::clone(&share), Arc::clone(&meet), Arc::clone(&slots), Arc::clone(&log));
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
                    let result = one(cfg, share, req, (meet, slots)).await;
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
                let (cfg, meet, log) = (Arc::clone(&cfg), Arc::clone(&meet), Arc::clone(&log));
                links.spawn(async move {
                    let c = Config { timeout: cfg.timeout };
                    let routed = async {
                        let mut link = Link::accept_stream(tcp, Party::P0, c, &cfg.security).await?;
                        let session = link.route(None).await?;
                        Ok::<_, ditto_net::NetError>((session, link))
                    };
                    match routed.await {
                        Ok((session, link)) => meet.offer(session, link, cfg.timeout),
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

/// One request: claims its session, gets its link (P0: from P1 through the rendezvous, before
/// taking a slot, so a request waiting for its peer holds none; P1: opens it once it has a
/// slot, naming the session), and runs it on a thread of its own with a runtime of its own (its
/// compute is long and synchronous; sockets accepted by the serving loop stay with that loop's
/// driver, which keeps running).
async fn one(
    cfg: Arc<PartyConfig>,
    share: Arc<ModelShare>,
    req: Request,
    (meet, slots): (Arc<Rendezvous>, Arc<Semaphore>),
) -> Result<Report, NodeError> {
    claim(&cfg, &req)?;
    let session = req.head.session;
    let link = match &cfg.peer {
        Peer::Listen(_) => Some(meet.take(session, cfg.timeout).await?),
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
            let link = match (link, &cfg.peer) {
                (Some(l), _) => l,
                (None, Peer::Connect(addr)) => {
                    let c = Config { timeout: cfg.timeout };
                    let mut l = Link::connect(addr, Party::P1, c, &cfg.security).await?;
                    l.route(Some(session)).await?;
                    l
                }
                (None, Peer::Listen(_)) => {
                    return Err(NodeError::Config("P0 without its peer's link".into()));
                }
            };
            run_request(&cfg, (*share).clone(), req, link, None).await
        })
    });
    run.await.unwrap_or_else(|e| Err(NodeError::Config(format!("the request's thread failed: {e}"))))
}
