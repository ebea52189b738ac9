//! What goes wrong at a party is a specific error, never a panic or a hang: a program that
//! departs from the plan, parties with different plans, a dealer stream for another session (a
//! replayed, reused session), a corrupted correlation frame, a peer that aborts or vanishes.
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{IDS, Net, SID, TIMEOUT, dealer_streams, dealer_streams_salted, keys, links, plan_of};
use ditto_core::Party;
use ditto_core::prg::SessionId;
use ditto_dealer::keys::Salt;
use ditto_mpc::{Engine, MpcError, Shared};
use ditto_net::NetError;
use ditto_net::dealer::Source;

async fn program(e: &mut Engine, _p: Party) -> Result<Vec<u32>, MpcError> {
    let x = Shared::<u32>::zeros(&[50], 8);
    let y = e.mul_aa(&x, &x).await?;
    let z = e.trunc_a(&y, 8).await?;
    Ok(z.data)
}

async fn start(
    p: Party,
    link: ditto_net::link::Link,
    stream: Vec<u8>,
    plan: ditto_core::plan::Plan,
) -> Result<Engine, MpcError> {
    Engine::start(p, link, Source::Memory(Arc::new(stream)), keys()[p.index()].clone(), plan, IDS, TIMEOUT)
        .await
}

type Output = Result<Vec<u32>, MpcError>;

/// Runs [`program`] at both parties over the in-memory link with `streams`; a party that fails
/// tells its peer. Bounded: a hang fails the test.
async fn run_both(plan: &ditto_core::plan::Plan, streams: &[Vec<u8>; 2]) -> (Output, Output) {
    let (l0, l1) = links(Net::Memory).await;
    let run = async |p: Party, l, st| {
        let mut e = start(p, l, st, plan.clone()).await?;
        let r = program(&mut e, p).await;
        if let Err(err) = &r {
            e.abort(&err.to_string()).await;
        }
        r
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(run(Party::P0, l0, streams[0].clone()), run(Party::P1, l1, streams[1].clone()))
    })
    .await
    .expect("no hang")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_departs_from_the_plan_is_refused() {
    let plan = plan_of(&program).await;
    let s = dealer_streams(&plan, SID);
    let (l0, l1) = links(Net::Memory).await;
    let run = async |p: Party, l, st| {
        let mut e = start(p, l, st, plan.clone()).await?;
        let x = Shared::<u32>::zeros(&[50], 8);
        e.square_a(&x).await?; // the plan says mul here
        Ok::<_, MpcError>(())
    };
    let (a, b) = tokio::join!(run(Party::P0, l0, s[0].clone()), run(Party::P1, l1, s[1].clone()));
    for r in [a, b] {
        let e = r.unwrap_err();
        assert!(matches!(&e, MpcError::PlanMismatch { step: 0, .. }), "{e}");
        assert!(e.to_string().contains("MulAA") && e.to_string().contains("SquareA"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_with_different_plans_stop_at_the_handshake() {
    let plan = plan_of(&program).await;
    let other = plan_of(&async |e: &mut Engine, _p| {
        let x = Shared::<u32>::zeros(&[51], 8);
        e.mul_aa(&x, &x).await
    })
    .await;
    let (s, so) = (dealer_streams(&plan, SID), dealer_streams(&other, SID));
    for net in [Net::Memory, Net::Tcp] {
        let (l0, l1) = links(net).await;
        let (a, b) = tokio::join!(
            start(Party::P0, l0, s[0].clone(), plan.clone()),
            start(Party::P1, l1, so[1].clone(), other.clone())
        );
        for r in [a.map(|_| ()), b.map(|_| ())] {
            let e = r.unwrap_err();
            assert!(matches!(e, MpcError::Net(NetError::PlanHash { .. })), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dealer_stream_of_another_session_is_refused() {
    let plan = plan_of(&program).await;
    let old = dealer_streams(&plan, SessionId([0x99; 16]));
    let (l0, l1) = links(Net::Memory).await;
    let (a, _b) = tokio::join!(
        start(Party::P0, l0, old[0].clone(), plan.clone()),
        start(Party::P1, l1, old[1].clone(), plan.clone())
    );
    let e = a.unwrap_err();
    assert!(e.to_string().contains("wrong session"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_correlation_frame_stops_the_run() {
    let plan = plan_of(&program).await;
    let mut s = dealer_streams(&plan, SID);
    // Flip a byte inside P1's first correction frame (after hello and seed frames).
    let n = s[1].len();
    s[1][n / 2] ^= 0x40;
    let (a, b) = run_both(&plan, &s).await;
    let eb = b.unwrap_err();
    assert!(eb.to_string().contains("checksum") || eb.to_string().contains("authentication"), "{eb}");
    let ea = a.unwrap_err();
    assert!(matches!(ea, MpcError::Net(NetError::PeerAbort(_))), "{ea}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_is_an_error_within_the_timeout() {
    let plan = plan_of(&program).await;
    let s = dealer_streams(&plan, SID);
    let (l0, l1) = links(Net::Tcp).await;
    let t = std::time::Instant::now();
    let (a, b) = tokio::join!(
        async {
            let mut e = start(Party::P0, l0, s[0].clone(), plan.clone()).await?;
            program(&mut e, Party::P0).await
        },
        async {
            let e = start(Party::P1, l1, s[1].clone(), plan.clone()).await?;
            drop(e); // P1 disappears after the handshake
            Ok::<Vec<u32>, MpcError>(Vec::new())
        }
    );
    b.unwrap();
    let e = a.unwrap_err();
    assert!(matches!(e, MpcError::Net(NetError::Closed { .. })), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_fed_by_two_dealer_generations_stop_before_computing() {
    // Two generations of one session (a dealer restarted, a board rebooted): each party's stream
    // is valid on its own, but they do not fit together.
    let plan = plan_of(&program).await;
    let (g1, g2) =
        (dealer_streams_salted(&plan, SID, Salt([1; 16])), dealer_streams_salted(&plan, SID, Salt([2; 16])));
    let (l0, l1) = links(Net::Memory).await;
    let (a, b) = tokio::join!(
        start(Party::P0, l0, g1[0].clone(), plan.clone()),
        start(Party::P1, l1, g2[1].clone(), plan.clone())
    );
    for r in [a.map(|_| ()), b.map(|_| ())] {
        let e = r.unwrap_err();
        println!("two generations: {e}");
        assert!(matches!(e, MpcError::Net(NetError::Generation { .. })), "{e}");
        assert!(e.to_string().contains("two dealer instances"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_checks_the_end_of_its_stream_before_its_last_step_computes() {
    // P1's stream without its end frame: the last step fails when it begins (before any output
    // of the run can exist), not at `finish` after the program returned.
    let plan = plan_of(&program).await;
    let mut s = dealer_streams(&plan, SID);
    // Walk the frames (header, then the length at bytes 28..32) to the last one.
    let (mut at, mut last) = (0, 0);
    while at < s[1].len() {
        last = at;
        at += ditto_core::frame::HEADER_LEN
            + u32::from_le_bytes(s[1][at + 28..at + 32].try_into().unwrap()) as usize;
    }
    assert_eq!(s[1][last + 3], ditto_core::frame::FrameKind::End as u8, "the last frame is the end frame");
    s[1].truncate(last);
    let (_a, b) = run_both(&plan, &s).await;
    let e = b.unwrap_err();
    println!("P1's stream without its end frame: {e}");
    assert!(e.to_string().contains("truncated"), "{e}");
}
