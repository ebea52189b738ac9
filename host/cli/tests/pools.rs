//! Sessions dealt ahead (`ditto party --serve --pool`): P1 fills its pool from the dealer;
//! with the dealer killed, requests are served from the pool until it runs dry, then refused
//! with the reason; the dealer restarted, the pool refills; P1 killed in the middle of a
//! request, the client gets an error, P0 keeps serving, and P1 restarted never runs the
//! session the killed request took. Every answer equals the fixed-point demo's; at both
//! parties every request ran its own session, the same one.

mod common;

use std::path::Path;
use std::time::Duration;

use common::serving::{Log, client, exit_code, field, http_get, same_sessions, serving, sigterm};
use common::{dealer_on, demo_embedding, port, provision_and_share};

/// Pooled-session lines: `pooled ... depth=N`.
fn depth_is(n: usize) -> impl Fn(&str) -> bool {
    move |l: &str| l.starts_with("pooled ") && field(l, "depth") == n.to_string()
}

fn markers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default()
}

fn close_to_demo(text: &str, got: &[f64]) {
    let want = demo_embedding("seeded", text);
    assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 2e-3), "{text:?}: {got:?} vs demo {want:?}");
}

#[test]
fn pools_outlive_the_dealer_and_a_restarted_party_never_reuses_a_session() {
    let d = std::env::temp_dir().join(format!("ditto-pools-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    provision_and_share(&d, "seeded");
    let dealer_addr = port();
    let start_dealer = || dealer_on(&d, "seeded", &d.join("dealer"), &dealer_addr, &[]).0;
    let mut the_dealer = start_dealer();
    let (peer, c0, c1, m1) = (port(), port(), port(), port());
    // Room for three sessions of the 32-token bucket (about 10.7 MB each), not four.
    let pool = ["--pool", "33M", "--pool-buckets", "32", "--metrics", m1.as_str()];
    let (mut p0, out0) = serving(&d, 0, (&peer, &dealer_addr, &c0), &[]);
    let log0 = Log::new(out0);
    let (p1, out1) = serving(&d, 1, (&peer, &dealer_addr, &c1), &pool);
    let log1 = Log::new(out1);
    assert!(log1.wait_for(300, depth_is(3)), "pool not filled: {:?}", log1.lines());
    let cs = (c0.as_str(), c1.as_str());
    let sid = |i: usize| format!("c{i:031x}");
    let texts = ["pooled requests, number one", "and this is number two..", "a third one, from the pool"];

    // The dealer dies: the three pooled sessions still serve, the fourth request is refused.
    drop(the_dealer);
    for (i, t) in texts.iter().enumerate() {
        let got = client(&d, cs, t, &sid(i)).unwrap_or_else(|e| panic!("request {i} from the pool: {e}"));
        close_to_demo(t, &got);
    }
    let e = client(&d, cs, texts[0], &sid(3)).unwrap_err();
    assert!(e.contains("no dealt session") && e.contains("did not deal one"), "{e}");
    let m = http_get(&m1, "/metrics");
    for want in [
        "ditto_pool_sessions{party=\"1\",bucket=\"32\"} 0",
        "ditto_pool_taken_total{party=\"1\"} 3",
        "ditto_pool_filled_total{party=\"1\"} 3",
        "ditto_requests_served_total{party=\"1\"} 3",
        "ditto_sessions_on_demand_total{party=\"1\"} 0",
    ] {
        assert!(m.lines().any(|l| l == want), "{want} in {m}");
    }

    // The dealer restarted: the pool refills.
    the_dealer = start_dealer();
    let before = log1.lines().len();
    let refilled = || log1.lines()[before..].iter().filter(|l| depth_is(3)(l)).count() > 0;
    for _ in 0..3000 {
        if refilled() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(refilled(), "pool not refilled: {:?}", log1.lines());

    // P1 is killed while a request runs (both parties have claimed its session).
    let consumed0 = d.join("state0/consumed-sessions-p0.d");
    let n0 = markers(&consumed0).len();
    let mut p1 = p1;
    let killed = std::thread::scope(|s| {
        let h = s.spawn(|| client(&d, cs, texts[1], &sid(4)));
        for _ in 0..3000 {
            if markers(&consumed0).len() >= n0 + 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        p1.0.kill().unwrap();
        h.join().unwrap()
    });
    assert!(killed.is_err(), "a request whose party was killed answered");
    let _ = p1.0.wait();
    let first_log1 = log1.lines();
    let used_by_p1 = markers(&d.join("state1/consumed-sessions-p1.d"));

    // Restarted, P1 drops the session the killed request took (two are left), and P0, which
    // kept serving, pairs with it again.
    let (mut p1, out1) = serving(&d, 1, (&peer, &dealer_addr, &c1), &pool);
    let log1b = Log::new(out1);
    assert!(log1b.wait_for(60, |l| l.contains("party 1 pool:")), "{:?}", log1b.lines());
    assert!(log1b.lines().iter().any(|l| l.contains("in 2 sessions")), "{:?}", log1b.lines());
    let got = client(&d, cs, texts[2], &sid(5)).unwrap_or_else(|e| panic!("after the restart: {e}"));
    close_to_demo(texts[2], &got);
    let served = log1b.lines().into_iter().find(|l| l.starts_with("served ")).unwrap();
    assert_eq!(field(&served, "source"), "pool", "{served}");
    assert!(
        !used_by_p1.contains(&field(&served, "session").to_string()),
        "a claimed session ran again: {served}"
    );

    sigterm(&p0);
    sigterm(&p1);
    let codes = (exit_code(&mut p0), exit_code(&mut p1));
    std::thread::sleep(Duration::from_millis(300));
    let logs = vec![log0.lines(), [first_log1, log1b.lines()].concat()];
    assert_eq!(codes, (Some(0), Some(0)), "{logs:?}");
    let dealt = same_sessions(&logs);
    assert_eq!(dealt.len(), 4, "{logs:?}");
    assert!(logs[0].iter().any(|l| l.starts_with("failed ") && field(l, "request") == sid(4)), "{logs:?}");
    drop(the_dealer);
    let _ = std::fs::remove_dir_all(&d);
}

/// Lines `prepared party=N ...` in `lines`.
fn prepared(lines: &[String], party: u8) -> usize {
    lines.iter().filter(|l| l.starts_with(&format!("prepared party={party} "))).count()
}

#[test]
fn pooled_sessions_are_prepared_ahead_at_both_parties() {
    // Once a first request has set the weights up, P1 computes its products A_1 F of each
    // pooled session and hands P0 the session's stream ahead; P0 (`--pool`: room for its
    // products) computes A_0 F. A request then runs with both parties' products (`prepared=1`
    // at both), with the same answer; the products of a used session are gone at both.
    let d = std::env::temp_dir().join(format!("ditto-ahead-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    provision_and_share(&d, "seeded");
    let dealer_addr = port();
    let (_dealer, _) = dealer_on(&d, "seeded", &d.join("dealer"), &dealer_addr, &[]);
    let (peer, c0, c1, m0, m1) = (port(), port(), port(), port(), port());
    let (mut p0, out0) = serving(&d, 0, (&peer, &dealer_addr, &c0), &["--pool", "20M", "--metrics", &m0]);
    let log0 = Log::new(out0);
    let pool = ["--pool", "40M", "--pool-buckets", "32", "--metrics", &m1];
    let (mut p1, out1) = serving(&d, 1, (&peer, &dealer_addr, &c1), &pool);
    let log1 = Log::new(out1);
    assert!(log1.wait_for(300, depth_is(3)), "pool not filled: {:?}", log1.lines());
    assert_eq!(prepared(&log1.lines(), 1), 0, "prepared before any weights were set up");
    let cs = (c0.as_str(), c1.as_str());
    // Both in the 32-token bucket (byte tokens, [CLS] and [SEP]).
    let texts = ["the first sets weights up", "the second finds products"];
    let got = client(&d, cs, texts[0], &format!("a{:031x}", 0)).unwrap();
    close_to_demo(texts[0], &got);
    // The pooled sessions (two left, and the one that refills the pool) get prepared.
    for (log, party) in [(&log1, 1), (&log0, 0)] {
        assert!(
            log.wait_for(300, |_| prepared(&log.lines(), party) >= 3),
            "party {party} prepared no sessions: {:?}",
            log.lines()
        );
    }
    let ahead0 = d.join("state0/ahead");
    let before = markers(&ahead0);
    assert!(before.len() >= 3 && before.iter().all(|f| f.ends_with(".af")), "{before:?}");
    let got = client(&d, cs, texts[1], &format!("a{:031x}", 1)).unwrap();
    close_to_demo(texts[1], &got);
    for (log, party) in [(&log0, 0), (&log1, 1)] {
        let served: Vec<String> = log.lines().into_iter().filter(|l| l.starts_with("served ")).collect();
        assert_eq!(served.len(), 2, "{served:?}");
        assert_eq!(field(&served[0], "prepared"), "0", "party {party}: {}", served[0]);
        assert_eq!(field(&served[1], "prepared"), "1", "party {party}: {:?}", log.lines());
        let source = if party == 0 { "relayed" } else { "pool" };
        assert!(served.iter().all(|l| field(l, "source") == source), "{served:?}");
    }
    for (m, party) in [(&m0, 0), (&m1, 1)] {
        let want = format!("ditto_requests_prepared_total{{party=\"{party}\"}} 1");
        let got = http_get(m, "/metrics");
        assert!(got.lines().any(|l| l == want), "{want} in {got}");
    }
    // The used session's products are gone at P0 (P1's go with its pooled files).
    let second = log0.lines().into_iter().filter(|l| l.starts_with("served ")).nth(1).unwrap();
    let used = field(&second, "session").to_string();
    assert!(!markers(&ahead0).iter().any(|f| f.starts_with(&used)), "{used} {:?}", markers(&ahead0));
    let pool1 = d.join("state1/pool");
    let all: Vec<String> = std::fs::read_dir(&pool1)
        .unwrap()
        .flat_map(|s| std::fs::read_dir(s.unwrap().path()).unwrap())
        .flat_map(|b| markers(&b.unwrap().path()))
        .collect();
    assert!(!all.iter().any(|f| f.starts_with(&used)), "{used} {all:?}");
    assert!(all.iter().any(|f| f.ends_with(".af")), "{all:?}");
    sigterm(&p0);
    sigterm(&p1);
    assert_eq!((exit_code(&mut p0), exit_code(&mut p1)), (Some(0), Some(0)));
    let _ = std::fs::remove_dir_all(&d);
}
