//! Both parties and the dealer in one process (tests, `ditto demo`, benchmarks): the dealer
//! streams are generated in memory for the program's plan, the parties talk over an in-memory
//! duplex or loopback TCP, and each runs the same program.

use std::sync::Arc;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::plan::Plan;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::host::with_parallel;
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{
    SessionSpec, SlicePlan, dealer_streams, scratch_len, write_stream, write_stream_with,
};
use ditto_net::counters::Counters;
use ditto_net::dealer::Source;
use ditto_net::link::{Config, Link};
use ditto_net::tls::Security;

use crate::{Engine, MpcError};

/// How the two parties are connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// In-memory duplex.
    Memory,
    /// Loopback TCP, plaintext.
    Tcp,
    /// Loopback TCP under TLS with fresh identities pinned to each other (what deployed
    /// parties run).
    Tls,
}

/// Settings of a local run.
#[derive(Clone, Debug)]
pub struct Local {
    /// Link kind.
    pub net: Net,
    /// Time-out of every wait.
    pub timeout: Duration,
    /// GEMM and dealer threads.
    pub threads: usize,
    /// TEST ONLY: fixed (master, model-mask) dealer seeds instead of the OS RNG; the session id,
    /// salt and party keys are then fixed too, so runs are reproducible.
    pub test_seeds: Option<([u8; 16], [u8; 16])>,
    /// The sharing whose model share the program sets up (its id, `share_id()` of the share);
    /// the default (all zero) suits programs without model weights.
    pub share_set: ShareSetId,
    /// Each party's weight store: before the online phase, each party computes its session's
    /// products A_i F from its stream and the weights its store holds ([`crate::precompute`]),
    /// as a serving party does with a pooled session. The program must give the engine the same
    /// store ([`Engine::set_weight_store`]).
    pub precompute: Option<[crate::WeightStore; 2]>,
    /// The dealer's model-mask seed (a dealer keeps one for all its sessions, so that the
    /// parties' weight stores fit each of them); fresh from the OS RNG per run when `None`.
    /// Sessions stay fresh either way.
    pub model_seed: Option<[u8; 16]>,
    /// With `precompute`: the products' computation holds back before each step while this
    /// returns true, as a serving party's does while a request is under way.
    pub hold: Option<fn() -> bool>,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            net: Net::Memory,
            timeout: Duration::from_secs(30),
            threads: 1,
            test_seeds: None,
            share_set: ShareSetId::default(),
            precompute: None,
            model_seed: None,
            hold: None,
        }
    }
}

/// What a local run produced.
#[derive(Debug)]
pub struct Outcome<T> {
    /// Each party's result.
    pub out: [T; 2],
    /// Each party's counters.
    pub counters: [Counters; 2],
    /// Bytes of each party's dealer stream.
    pub dealer_bytes: [u64; 2],
    /// Dealer generation time.
    pub dealer_time: Duration,
    /// Online time: the slower party's, from its link's handshake to its finish (each party on
    /// its own thread).
    pub online_time: Duration,
    /// Steps whose product A_i F each party precomputed ([`Local::precompute`]).
    pub precomputed: [usize; 2],
}

fn os_seed() -> Result<[u8; 16], MpcError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| MpcError::Rng(e.to_string()))?;
    Ok(b)
}

/// The plan a program records (run on the planner as P0).
pub async fn plan_of<T>(
    name: &str,
    program: &impl AsyncFn(&mut Engine, Party) -> Result<T, MpcError>,
) -> Result<Plan, MpcError> {
    let mut e = Engine::planner();
    program(&mut e, Party::P0).await?;
    e.into_plan(name)
}

/// One party's end of the link before its thread starts.
enum End {
    /// An in-memory end.
    Ready(Box<Link>),
    /// P0: accepts on this listener, secured so.
    Accept(std::net::TcpListener, Security),
    /// P1: connects to this address, secured so.
    Connect(String, Security),
}

impl End {
    /// The link, made in the runtime of the thread that uses it (sockets belong to the runtime
    /// that registered them).
    async fn link(self, p: Party, c: Config) -> Result<Link, MpcError> {
        Ok(match self {
            End::Ready(l) => *l,
            End::Accept(l, sec) => {
                let l = tokio::net::TcpListener::from_std(l)
                    .map_err(|source| ditto_net::NetError::Io { what: "binding", source })?;
                Link::accept(&l, p, c, &sec).await?
            }
            End::Connect(addr, sec) => Link::connect(&addr, p, c, &sec).await?,
        })
    }
}

/// Runs `program` at both parties for `plan` with a fresh session and fresh dealer seeds, each
/// party on its own thread with its own runtime (blocking: call it where blocking is allowed).
pub fn run<T: Send>(
    plan: &Plan,
    cfg: &Local,
    program: impl AsyncFn(&mut Engine, Party) -> Result<T, MpcError> + Sync,
) -> Result<Outcome<T>, MpcError> {
    let (master, model, session, salt, keys) = match cfg.test_seeds {
        Some((m, w)) => (
            m,
            w,
            SessionId([0x5e; 16]),
            Salt([0x5a; 16]),
            [PartyKey::from_bytes([0xa0; 16]), PartyKey::from_bytes([0xa1; 16])],
        ),
        None => (
            os_seed()?,
            match cfg.model_seed {
                Some(s) => s,
                None => os_seed()?,
            },
            SessionId(os_seed()?),
            Salt(os_seed()?),
            [PartyKey::from_bytes(os_seed()?), PartyKey::from_bytes(os_seed()?)],
        ),
    };
    let seeds = DealerSeeds::new(Seed::from_bytes(master), Seed::from_bytes(model));
    let spec = SessionSpec::new(Generation { session, share_set: cfg.share_set, salt }, &seeds);
    let t = std::time::Instant::now();
    let mut streams = [Vec::new(), Vec::new()];
    let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
    let mut scratch = vec![0u8; scratch_len(spec.chunk)];
    write_stream(Party::P0, &mut src, &spec, &keys[0], &mut streams[0], &mut scratch)
        .map_err(ditto_net::NetError::from)?;
    let ds = dealer_streams(&spec);
    let mut p1 = Vec::new();
    with_parallel(&ds, plan, cfg.threads, |p| {
        write_stream_with(Party::P1, &mut src, &spec, &keys[1], &mut p1, &mut scratch, p)
    })
    .map_err(ditto_net::NetError::from)?;
    streams[1] = p1;
    let dealer_time = t.elapsed();
    let dealer_bytes = [streams[0].len() as u64, streams[1].len() as u64];
    let c = Config { timeout: cfg.timeout };
    // Each party runs on its own thread with its own runtime, as deployed parties run on their
    // own machines: polled from one task, both would share one core and the online time would
    // be the sum of both parties' work instead of the slower party's.
    let ends: [End; 2] = match cfg.net {
        Net::Memory => {
            let (a, b) = Link::memory_pair(c);
            [End::Ready(Box::new(a)), End::Ready(Box::new(b))]
        }
        Net::Tcp | Net::Tls => {
            let sec = if cfg.net == Net::Tls {
                Security::ephemeral(&["p0", "p1"])?
            } else {
                vec![Security::Plaintext, Security::Plaintext]
            };
            let mut sec = sec.into_iter();
            let (Some(s0), Some(s1)) = (sec.next(), sec.next()) else {
                return Err(MpcError::LocalParty { party: 1, what: "no TLS identity".into() });
            };
            let io = |source| ditto_net::NetError::Io { what: "binding", source };
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
            l.set_nonblocking(true).map_err(io)?;
            let addr = l.local_addr().map_err(io)?.to_string();
            [End::Accept(l, s0), End::Connect(addr, s1)]
        }
    };
    let go =
        async |p: Party, end: End, stream: Vec<u8>| -> Result<(T, Counters, Duration, usize), MpcError> {
            let stream = Arc::new(stream);
            let products = match &cfg.precompute {
                Some(stores) => crate::precompute::Products::compute(
                    p,
                    (Source::Memory(Arc::clone(&stream)), keys[p.index()].clone()),
                    plan,
                    (session, cfg.share_set),
                    &stores[p.index()],
                    crate::precompute::Pace {
                        threads: cfg.threads,
                        timeout: cfg.timeout,
                        hold: &cfg.hold.unwrap_or(|| false),
                    },
                )
                .await?
                .map(Arc::new),
                None => None,
            };
            let link = end.link(p, c).await?;
            let t = std::time::Instant::now();
            let mut e = Engine::start(
                p,
                link,
                Source::Memory(stream),
                keys[p.index()].clone(),
                plan.clone(),
                (session, cfg.share_set),
                cfg.timeout,
            )
            .await?;
            e.set_threads(cfg.threads);
            let precomputed = products.as_ref().map_or(0, |p| p.len());
            if let Some(pr) = products {
                e.set_products(pr)?;
            }
            let r = program(&mut e, p).await;
            if let Err(err) = &r {
                e.abort(&err.to_string()).await;
            }
            let out = r?;
            let counters = e.finish().await?;
            Ok((out, counters, t.elapsed(), precomputed))
        };
    let on_thread = |p: Party, end: End, stream: Vec<u8>| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
            MpcError::LocalParty { party: p.index(), what: format!("could not start a runtime: {e}") }
        })?;
        rt.block_on(go(p, end, stream))
    };
    let [s0, s1] = streams;
    let [e0, e1] = ends;
    // The caller's thread may be driving a runtime of its own, so both parties get new threads.
    let (r0, r1) = std::thread::scope(|sc| {
        let spawn = |p: Party, end: End, stream: Vec<u8>| {
            std::thread::Builder::new()
                .name(format!("party-{}", p.index()))
                .spawn_scoped(sc, move || on_thread(p, end, stream))
        };
        let join = |p: Party, h: std::io::Result<std::thread::ScopedJoinHandle<'_, _>>| match h {
            Ok(h) => h.join().unwrap_or_else(|_| {
                Err(MpcError::LocalParty { party: p.index(), what: "its thread panicked".into() })
            }),
            Err(e) => {
                Err(MpcError::LocalParty { party: p.index(), what: format!("could not start a thread: {e}") })
            }
        };
        let (h0, h1) = (spawn(Party::P0, e0, s0), spawn(Party::P1, e1, s1));
        (join(Party::P0, h0), join(Party::P1, h1))
    });
    let ((o0, c0, t0, n0), (o1, c1, t1, n1)) = (r0?, r1?);
    let online_time = t0.max(t1);
    Ok(Outcome {
        out: [o0, o1],
        counters: [c0, c1],
        dealer_bytes,
        dealer_time,
        online_time,
        precomputed: [n0, n1],
    })
}
