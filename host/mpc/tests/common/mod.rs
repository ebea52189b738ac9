//! Runs one program at both parties, over the in-memory duplex or loopback TCP, with dealer
//! streams generated for the plan the program records in planning mode. Every run checks that
//! each step's bytes and rounds equal the plan's stated costs (DESIGN.md §5).
#![allow(dead_code, clippy::cast_possible_truncation)]

use std::sync::Arc;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::plan::Plan;
use ditto_core::prg::{Prg, Seed, SessionId, ShareSetId};
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};
use ditto_mpc::{Engine, MpcError};
use ditto_net::counters::Counters;
use ditto_net::dealer::Source;
use ditto_net::link::{Config, Link};
use ditto_net::tls::Security;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    Memory,
    Tcp,
}

pub const NETS: [Net; 2] = [Net::Memory, Net::Tcp];
pub const SID: SessionId = SessionId([0x42; 16]);
/// The session and (absent) sharing of the tests' engines.
pub const IDS: (SessionId, ShareSetId) = (SID, ShareSetId([0; 16]));
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn keys() -> [PartyKey; 2] {
    [PartyKey::from_bytes([0x10; 16]), PartyKey::from_bytes([0x11; 16])]
}

/// Both parties' dealer streams for `plan` (test seeds; no model weights).
pub fn dealer_streams(plan: &Plan, session: SessionId) -> [Vec<u8>; 2] {
    dealer_streams_salted(plan, session, Salt([0x5a; 16]))
}

/// [`dealer_streams`] of the generation with `salt`.
pub fn dealer_streams_salted(plan: &Plan, session: SessionId, salt: Salt) -> [Vec<u8>; 2] {
    let seeds = DealerSeeds::new(Seed::from_bytes([0x20; 16]), Seed::from_bytes([0x21; 16]));
    let spec = SessionSpec::new(Generation { session, share_set: ShareSetId::default(), salt }, &seeds);
    [Party::P0, Party::P1].map(|p| {
        let mut out = Vec::new();
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        write_stream(
            p,
            &mut src,
            &spec,
            &keys()[p.index()],
            &mut out,
            &mut vec![0u8; scratch_len(spec.chunk)],
        )
        .unwrap();
        out
    })
}

pub async fn links(net: Net) -> (Link, Link) {
    let c = Config { timeout: TIMEOUT };
    match net {
        Net::Memory => Link::memory_pair(c),
        Net::Tcp => {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            let (a, b) = tokio::join!(
                Link::accept(&l, Party::P0, c, &Security::Plaintext),
                Link::connect(&addr, Party::P1, c, &Security::Plaintext)
            );
            (a.unwrap(), b.unwrap())
        }
    }
}

/// The plan a program records.
pub async fn plan_of<T>(program: &impl AsyncFn(&mut Engine, Party) -> Result<T, MpcError>) -> Plan {
    let mut e = Engine::planner();
    program(&mut e, Party::P0).await.unwrap();
    e.into_plan("test").unwrap()
}

/// Runs `program` at both parties; returns both results, both counters and the plan.
pub async fn run2<T>(
    net: Net,
    program: impl AsyncFn(&mut Engine, Party) -> Result<T, MpcError>,
) -> ([T; 2], [Counters; 2], Plan) {
    let plan = plan_of(&program).await;
    let streams = dealer_streams(&plan, SID);
    let (l0, l1) = links(net).await;
    let go = async |p: Party, link: Link| -> Result<(T, Counters), MpcError> {
        let src = Source::Memory(Arc::new(streams[p.index()].clone()));
        let mut e =
            Engine::start(p, link, src, keys()[p.index()].clone(), plan.clone(), IDS, TIMEOUT).await?;
        let out = program(&mut e, p).await?;
        let c = e.finish().await?;
        Ok((out, c))
    };
    let (r0, r1) = tokio::join!(go(Party::P0, l0), go(Party::P1, l1));
    let ((o0, c0), (o1, c1)) = (r0.unwrap(), r1.unwrap());
    for (i, s) in plan.steps.iter().enumerate() {
        for c in [&c0, &c1] {
            let got = c.step(i as u32);
            assert_eq!(got.sent, s.online_bytes_per_party(), "bytes of step {i} {s:?}");
            assert_eq!(got.received, s.online_bytes_per_party(), "bytes received in step {i}");
            assert_eq!(got.rounds, s.rounds(), "rounds of step {i} {s:?}");
        }
    }
    ([o0, o1], [c0, c1], plan)
}

/// A deterministic test RNG.
pub fn rng(tag: u8) -> Prg {
    Prg::with_counter(&[tag; 16], 0)
}
