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
}

impl Default for Local {
    fn default() -> Self {
        Local {
            net: Net::Memory,
            timeout: Duration::from_secs(30),
            threads: 1,
            test_seeds: None,
            share_set: ShareSetId::default(),
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
    /// Online time (both parties, handshake to finish).
    pub online_time: Duration,
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

/// Runs `program` at both parties for `plan` with a fresh session and fresh dealer seeds.
pub async fn run<T>(
    plan: &Plan,
    cfg: &Local,
    program: impl AsyncFn(&mut Engine, Party) -> Result<T, MpcError>,
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
            os_seed()?,
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
    let (l0, l1) = match cfg.net {
        Net::Memory => Link::memory_pair(c),
        Net::Tcp | Net::Tls => {
            let sec = if cfg.net == Net::Tls {
                Security::ephemeral(&["p0", "p1"])?
            } else {
                vec![Security::Plaintext, Security::Plaintext]
            };
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| ditto_net::NetError::Io { what: "binding", source: e })?;
            let addr = l
                .local_addr()
                .map_err(|e| ditto_net::NetError::Io { what: "binding", source: e })?
                .to_string();
            let (a, b) = tokio::join!(
                Link::accept(&l, Party::P0, c, &sec[0]),
                Link::connect(&addr, Party::P1, c, &sec[1])
            );
            (a?, b?)
        }
    };
    let t = std::time::Instant::now();
    let go = async |p: Party, link: Link, stream: Vec<u8>| -> Result<(T, Counters), MpcError> {
        let mut e = Engine::start(
            p,
            link,
            Source::Memory(Arc::new(stream)),
            keys[p.index()].clone(),
            plan.clone(),
            (session, cfg.share_set),
            cfg.timeout,
        )
        .await?;
        e.set_threads(cfg.threads);
        let r = program(&mut e, p).await;
        if let Err(err) = &r {
            e.abort(&err.to_string()).await;
        }
        let out = r?;
        Ok((out, e.finish().await?))
    };
    let [s0, s1] = streams;
    let (r0, r1) = tokio::join!(go(Party::P0, l0, s0), go(Party::P1, l1, s1));
    let ((o0, c0), (o1, c1)) = (r0?, r1?);
    Ok(Outcome { out: [o0, o1], counters: [c0, c1], dealer_bytes, dealer_time, online_time: t.elapsed() })
}
