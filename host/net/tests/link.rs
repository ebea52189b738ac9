//! The P0 <-> P1 link over the in-memory duplex and real loopback TCP: handshake mismatches
//! name both values; exchanges swap whole-step messages and are counted per step; wrong step,
//! wrong length, a stalled peer, a closed peer and an aborting peer are each their own error,
//! within the time-out, never a hang.

#![allow(clippy::cast_possible_truncation)]

use std::time::{Duration, Instant};

use ditto_core::Party;
use ditto_core::prg::{SessionId, ShareSetId};
use ditto_dealer::host::PlanParams;
use ditto_net::NetError;
use ditto_net::link::{Config, Hello, Link, MAX_RELAYED, Route, RouteKind};
use ditto_net::tls::Security;

const SID: SessionId = SessionId([7; 16]);

fn cfg(ms: u64) -> Config {
    Config { timeout: Duration::from_millis(ms) }
}

/// Every kind of link pair: in memory, over loopback TCP, and over loopback TLS.
async fn pairs(c: Config) -> Vec<(Link, Link)> {
    let mut out = vec![Link::memory_pair(c)];
    let tls = Security::ephemeral(&["p0", "p1"]).unwrap();
    for (s0, s1) in [(Security::Plaintext, Security::Plaintext), (tls[0].clone(), tls[1].clone())] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (a, b) =
            tokio::join!(Link::accept(&listener, Party::P0, c, &s0), Link::connect(&addr, Party::P1, c, &s1));
        let (a, b) = (a.unwrap(), b.unwrap());
        // Frames are sealed exactly when the link was set up with TLS.
        let tls = matches!(s0, Security::Tls(_));
        assert_eq!((a.is_sealed(), b.is_sealed()), (tls, tls));
        out.push((a, b));
    }
    out
}

fn hello(p: Party) -> Hello {
    Hello::new(p, [3; 32], SID, ShareSetId([4; 16]))
}

#[tokio::test]
async fn handshake_and_exchanges_are_counted_per_step() {
    for (mut a, mut b) in pairs(cfg(5000)).await {
        let (h0, h1) = (hello(Party::P0), hello(Party::P1));
        let (ha, hb) = tokio::join!(a.handshake(&h0), b.handshake(&h1));
        assert_eq!(ha.unwrap().party, Party::P1);
        assert_eq!(hb.unwrap().party, Party::P0);
        // Step 4: two rounds of 3 MB (bigger than any socket buffer: writes and reads overlap).
        let big_a: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let big_b: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
        for _ in 0..2 {
            let (ra, rb) = tokio::join!(a.exchange(4, &big_a), b.exchange(4, &big_b));
            assert!(ra.unwrap() == big_b);
            assert!(rb.unwrap() == big_a);
        }
        let (ra, rb) =
            tokio::join!(a.exchange_ring::<u64>(9, &[1, 2, 3]), b.exchange_ring::<u64>(9, &[4, 5, 6]));
        assert_eq!(ra.unwrap(), vec![4, 5, 6]);
        assert_eq!(rb.unwrap(), vec![1, 2, 3]);
        let c = a.counters();
        assert_eq!((c.step(4).sent, c.step(4).received, c.step(4).rounds), (6_000_000, 6_000_000, 2));
        assert_eq!((c.step(9).sent, c.step(9).rounds), (24, 1));
        assert_eq!(c.total().rounds, 3);
        assert_eq!(c.step(5).rounds, 0);
    }
}

/// A flight carries a host step's round and the rounds of steps beside it: each step gets its
/// own message back, the host counts a round, the others only their bytes; frames are checked
/// per step and round, so two parties that disagree on the steps of a flight stop with an error.
#[tokio::test]
async fn flights_carry_steps_beside_the_host() {
    for (mut a, mut b) in pairs(cfg(5000)).await {
        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 3) as u8).collect();
        for round in 0..3u8 {
            let mut fa = vec![(10, vec![round; 5]), (7, big.clone())];
            let mut fb = vec![(10, vec![round + 100; 5]), (7, vec![round; big.len()])];
            let (ra, rb) = tokio::join!(a.exchange_flight(&mut fa), b.exchange_flight(&mut fb));
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            assert_eq!(ra[0], vec![round + 100; 5]);
            assert!(ra[1] == vec![round; big.len()] && rb[1] == big);
            assert_eq!(rb[0], vec![round; 5]);
        }
        // The rider's later rounds continue its own round count.
        let (ra, rb) = tokio::join!(a.exchange(7, &[1]), b.exchange(7, &[2]));
        assert_eq!((ra.unwrap(), rb.unwrap()), (vec![2], vec![1]));
        let c = a.counters();
        assert_eq!((c.step(10).sent, c.step(10).rounds), (15, 3));
        assert_eq!((c.step(7).sent, c.step(7).rounds), (3 * 2_000_000 + 1, 1));
        assert_eq!(c.total().rounds, 4);
        // One party sends the steps in another order: a typed error at both, no hang.
        let mut fa = vec![(11, vec![0; 4]), (12, vec![0; 4])];
        let mut fb = vec![(12, vec![0; 4]), (11, vec![0; 4])];
        let (ra, rb) = tokio::join!(a.exchange_flight(&mut fa), b.exchange_flight(&mut fb));
        assert!(matches!(ra, Err(NetError::WrongStep { .. })), "{ra:?}");
        assert!(matches!(rb, Err(NetError::WrongStep { .. })), "{rb:?}");
    }
}

#[tokio::test]
async fn handshake_mismatches_name_both_values() {
    let cases: Vec<(Hello, &str)> = vec![
        (
            Hello { version: 99, ..hello(Party::P1) },
            "protocol version mismatch: this party speaks 2, the peer 99",
        ),
        (hello(Party::P0), "role mismatch"),
        (
            Hello { plan_hash: [4; 32], ..hello(Party::P1) },
            "plan hash mismatch: this party has 0303030303030303.., the peer 0404040404040404..",
        ),
        (
            Hello { session: SessionId([8; 16]), ..hello(Party::P1) },
            "session mismatch: this party runs 07070707",
        ),
        (
            Hello { share_set: ShareSetId([5; 16]), ..hello(Party::P1) },
            "share set mismatch: this party holds sharing 04040404040404040404040404040404, the peer 0505",
        ),
    ];
    for (theirs, want) in cases {
        let (mut a, mut b) = Link::memory_pair(cfg(2000));
        let mine = hello(Party::P0);
        let (ra, _) = tokio::join!(a.handshake(&mine), b.handshake(&theirs));
        let msg = ra.unwrap_err().to_string();
        assert!(msg.contains(want), "{msg}");
    }
}

#[tokio::test]
async fn streams_of_two_dealer_generations_are_refused_naming_both() {
    let (mut a, mut b) = Link::memory_pair(cfg(2000));
    let (ra, rb) = tokio::join!(a.agree_generation(&[1; 32]), b.agree_generation(&[1; 32]));
    ra.unwrap();
    rb.unwrap();
    let (ra, rb) = tokio::join!(a.agree_generation(&[1; 32]), b.agree_generation(&[2; 32]));
    let msg = ra.unwrap_err().to_string();
    assert!(
        msg.contains("dealer generation mismatch") && msg.contains("0101") && msg.contains("0202"),
        "{msg}"
    );
    assert!(rb.is_err());
}

#[tokio::test]
async fn wrong_step_and_wrong_length_are_errors() {
    for (mut a, mut b) in pairs(cfg(2000)).await {
        let (ra, rb) = tokio::join!(a.exchange(3, &[1, 2]), b.exchange(4, &[1, 2]));
        assert!(matches!(ra.unwrap_err(), NetError::WrongStep { step: 3, got_step: 4, .. }));
        assert!(matches!(rb.unwrap_err(), NetError::WrongStep { step: 4, got_step: 3, .. }));
    }
    for (mut a, mut b) in pairs(cfg(2000)).await {
        let (ra, _) = tokio::join!(a.exchange(3, &[1, 2]), b.exchange(3, &[1, 2, 3]));
        assert!(matches!(ra.unwrap_err(), NetError::Length { step: 3, expected: 2, got: 3 }));
    }
}

#[tokio::test]
async fn a_stalled_peer_times_out_and_a_closed_peer_is_reported() {
    for (mut a, b) in pairs(cfg(300)).await {
        let t = Instant::now();
        let e = a.exchange(1, &[0; 10]).await.unwrap_err();
        assert!(matches!(e, NetError::Timeout { what: "exchange", .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        drop(b);
        let t = Instant::now();
        let e = a.exchange(2, &[0; 10]).await.unwrap_err();
        assert!(matches!(e, NetError::Closed { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}

#[tokio::test]
async fn an_aborting_peer_is_reported_with_its_reason() {
    for (mut a, mut b) in pairs(cfg(2000)).await {
        let (ra, ()) = tokio::join!(a.exchange(1, &[0; 4]), b.abort("dealer stream corrupted"));
        let e = ra.unwrap_err();
        assert!(matches!(&e, NetError::PeerAbort(m) if m == "dealer stream corrupted"), "{e}");
    }
}

#[tokio::test]
async fn garbage_from_the_peer_is_malformed() {
    let (a, mut raw) = tokio::io::duplex(1 << 16);
    let mut link = Link::new(a, Party::P0, cfg(1000));
    use tokio::io::AsyncWriteExt;
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let e = link.exchange(0, &[1]).await.unwrap_err();
    assert!(matches!(e, NetError::Malformed("bad magic")), "{e}");
}

#[tokio::test]
async fn connecting_to_nobody_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let t = Instant::now();
    let e = Link::connect(&addr, Party::P1, cfg(400), &Security::Plaintext).await.unwrap_err();
    assert!(matches!(e, NetError::Timeout { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

/// Serving parties' routing frame: P0 learns the session P1 names (on every kind of link, the
/// handshake following on the same link); a P1 that skips it (not serving) gets P0 a clear
/// error, not a garbled handshake.
#[tokio::test]
async fn routing_names_the_request_and_session_and_relays_p0s_stream() {
    let sent = Route {
        request: SessionId([0xa1; 16]),
        session: SID,
        p0_stream: (0..300u16).map(|i| i as u8).collect(),
        kind: RouteKind::Session,
    };
    for (mut a, mut b) in pairs(cfg(5000)).await {
        let (ra, rb) = tokio::join!(a.route_recv(), b.route_send(&sent));
        rb.unwrap();
        assert_eq!(ra.unwrap(), sent);
        let (h0, h1) = (hello(Party::P0), hello(Party::P1));
        let (ha, hb) = tokio::join!(a.handshake(&h0), b.handshake(&h1));
        assert!(ha.is_ok() && hb.is_ok());
    }
    // A request P1 gives up: P0 learns why.
    for (mut a, mut b) in pairs(cfg(5000)).await {
        let no = Route::refusal(SessionId([0xa2; 16]), "no dealt session");
        let (ra, rb) = tokio::join!(a.route_recv(), b.route_send(&no));
        rb.unwrap();
        let got = ra.unwrap();
        assert!(
            got.kind == RouteKind::Refusal
                && got.request == SessionId([0xa2; 16])
                && got.reason() == "no dealt session"
        );
    }
    // A session handed ahead: P0 learns its plan parameters, and no request.
    let params = PlanParams { seq: 32, generate: 0, reveal_token: false, batch: 8 };
    for gen_params in [params, PlanParams { seq: 7, generate: 9, reveal_token: true, batch: 1 }] {
        let (mut a, mut b) = pairs(cfg(5000)).await.into_iter().next().unwrap();
        let ahead = Route::ahead(SID, gen_params, vec![5; 328]);
        let (ra, rb) = tokio::join!(a.route_recv(), b.route_send(&ahead));
        rb.unwrap();
        let got = ra.unwrap();
        assert_eq!(got, ahead);
        assert_eq!((got.kind, got.request), (RouteKind::Ahead(gen_params), SessionId([0; 16])));
    }
    // A peer that does not route.
    for (mut a, mut b) in pairs(cfg(2000)).await {
        let h1 = hello(Party::P1);
        let (ra, _) = tokio::join!(a.route_recv(), b.handshake(&h1));
        let e = ra.unwrap_err().to_string();
        assert!(e.contains("routing frame") && e.contains("--serve"), "{e}");
    }
    // Nothing, or too much, to relay is refused before anything is sent.
    for (_, mut b) in pairs(cfg(2000)).await {
        for len in [0, MAX_RELAYED + 1] {
            let r = Route { p0_stream: vec![0; len], ..sent.clone() };
            let e = b.route_send(&r).await.unwrap_err().to_string();
            assert!(e.contains("1 to 65536 bytes"), "{e}");
        }
    }
}
