//! `ditto party --serve`: two long-running parties answer many clients at once, each request
//! its own session routed to the same session at the peer (single inputs and batches, pooled or
//! made on demand); a replayed request fails alone; P0's metrics count them; SIGTERM lets a
//! request under way finish and both parties exit 0.

mod common;

use std::time::Duration;

use common::serving::{
    Log, client, client_batch, exit_code, field, http_get, same_sessions, serving, sigterm,
};
use common::{dealer, demo_embedding, port, provision_and_share};

#[test]
fn serving_parties_answer_clients_concurrently_and_stop_on_sigterm() {
    let d = std::env::temp_dir().join(format!("ditto-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    provision_and_share(&d, "seeded");
    let (_dealer, dealer_addr) = dealer(&d, "seeded", &d.join("dealer"), &["--sessions", "5"]);
    let (peer, c0, c1) = (port(), port(), port());
    let metrics = port();
    let (mut p0, out0) = serving(&d, 0, (&peer, &dealer_addr, &c0), &["--metrics", &metrics]);
    let (mut p1, out1) = serving(&d, 1, (&peer, &dealer_addr, &c1), &[]);
    let texts =
        ["the first of many requests.", "a second one at the same time.", "then a third.", "and the last."];
    let sids = [
        "a0000000000000000000000000000001",
        "a0000000000000000000000000000002",
        "a0000000000000000000000000000003",
        "a0000000000000000000000000000004",
    ];
    let cs = (c0.as_str(), c1.as_str());
    // Two at once, then one alone.
    let (r0, r1) = std::thread::scope(|s| {
        let a = s.spawn(|| client(&d, cs, texts[0], sids[0]));
        let b = s.spawn(|| client(&d, cs, texts[1], sids[1]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let r2 = client(&d, cs, texts[2], sids[2]);
    // A replayed session fails alone: both parties refuse it before fetching anything.
    let replay = client(&d, cs, texts[2], sids[0]);
    assert!(replay.is_err(), "a replayed session was served");
    // P0's metrics: three served, one failed, none under way; other paths are not served.
    let m = http_get(&metrics, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
    for want in [
        "ditto_requests_served_total{party=\"0\"} 3",
        "ditto_requests_failed_total{party=\"0\"} 1",
        "ditto_requests_in_flight{party=\"0\"} 0",
        "ditto_online_seconds_bucket{party=\"0\",le=\"+Inf\"} 3",
        "ditto_online_seconds_count{party=\"0\"} 3",
    ] {
        assert!(m.lines().any(|l| l == want), "{want} in {m}");
    }
    assert!(http_get(&metrics, "/").starts_with("HTTP/1.1 404"));
    // The last request is under way when both parties get SIGTERM: it finishes.
    let marker = |id: u8| d.join(format!("state{id}/consumed-sessions-p{id}.d/{}", sids[3]));
    let r3 = std::thread::scope(|s| {
        let h = s.spawn(|| client(&d, cs, texts[3], sids[3]));
        for _ in 0..600 {
            if marker(0).exists() && marker(1).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        sigterm(&p0);
        sigterm(&p1);
        h.join().unwrap()
    });
    let codes = (exit_code(&mut p0), exit_code(&mut p1));
    let logs: Vec<Vec<String>> =
        [out0, out1].into_iter().map(|l| l.map_while(Result::ok).collect()).collect();
    assert_eq!(codes, (Some(0), Some(0)), "{logs:?}");
    for (i, r) in [r0, r1, r2, r3].into_iter().enumerate() {
        let got = r.unwrap_or_else(|e| panic!("request {i}: {e}"));
        let want = demo_embedding("seeded", texts[i]);
        assert_eq!((want.len(), got.len()), (6, 8), "{want:?} {got:?}");
        assert!(
            got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 2e-3),
            "request {i}: {got:?} vs demo {want:?}"
        );
    }
    let dealt = same_sessions(&logs);
    assert_eq!(dealt.len(), 4, "{logs:?}");
    for (id, log) in logs.iter().enumerate() {
        for sid in sids {
            assert!(dealt.contains_key(sid), "{sid}: {log:?}");
        }
        let failed: Vec<&String> = log.iter().filter(|l| l.starts_with("failed ")).collect();
        assert!(failed.len() == 1 && failed[0].contains("was already used"), "party {id}: {log:?}");
        assert!(log.last().is_some_and(|l| l.contains("stopped: 4 served, 1 failed")), "party {id}: {log:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Load: 200 requests from 8 clients at once against parties serving 4 at a time, of two
/// length buckets and batches of 1, 2 and 3 inputs, P1 pooling some of them (the rest are made
/// on demand): every answer equals the demo's for its text, and every request ran its own
/// session, the same at both parties, recorded once as consumed by each.
#[test]
fn serving_parties_pair_many_concurrent_requests() {
    let d = std::env::temp_dir().join(format!("ditto-serve-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    provision_and_share(&d, "seeded");
    let (_dealer, dealer_addr) = dealer(&d, "seeded", &d.join("dealer"), &[]);
    let (peer, c0, c1) = (port(), port(), port());
    let (mut p0, out0) = serving(&d, 0, (&peer, &dealer_addr, &c0), &["--concurrency", "4"]);
    // Read as they come: a full pipe would hold P0's log lines, and with them its serving loop.
    let log0 = Log::new(out0);
    let pool = ["--concurrency", "4", "--pool", "60M", "--pool-buckets", "16,32,32x3"];
    let (mut p1, out1) = serving(&d, 1, (&peer, &dealer_addr, &c1), &pool);
    // One session of each bucket pooled before the clients start (the rest on demand).
    let log1 = Log::new(out1);
    for b in ["16", "32", "32x3"] {
        let pooled = |l: &str| l.starts_with("pooled ") && field(l, "bucket") == b;
        assert!(log1.wait_for(300, pooled), "bucket {b} not pooled: {:?}", log1.lines());
    }
    // Bucket 16 (12 tokens), bucket 32 (26 tokens), and batches padded to bucket 32.
    let (short, long) = ("many clients", "many clients, longer text");
    let requests: [&[&str]; 4] = [&[short], &[long], &[long, short], &[short, long, short]];
    let sid = |i: usize| format!("b{i:031x}");
    // Request k of client c is request PER * c + k, of kind (c + k) % 4.
    const CLIENTS: usize = 8;
    const PER: usize = 25;
    let kind_of = |i: usize| (i / PER + i % PER) % 4;
    let cs = (c0.as_str(), c1.as_str());
    // (kind of request, each input's embedding or the client's error)
    type Answer = (usize, Result<Vec<Vec<f64>>, String>);
    let results: Vec<Answer> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let d = &d;
                s.spawn(move || {
                    (0..PER)
                        .map(|k| {
                            let i = PER * c + k;
                            let texts = requests[kind_of(i)];
                            let r = match texts {
                                [t] => client(d, cs, t, &sid(i)).map(|e| vec![e]),
                                many => client_batch(d, cs, many, &sid(i)),
                            };
                            (kind_of(i), r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    sigterm(&p0);
    sigterm(&p1);
    let codes = (exit_code(&mut p0), exit_code(&mut p1));
    std::thread::sleep(Duration::from_millis(300));
    let logs: Vec<Vec<String>> = vec![log0.lines(), log1.lines()];
    assert_eq!(codes, (Some(0), Some(0)), "{logs:?}");
    let want = [demo_embedding("seeded", short), demo_embedding("seeded", long)];
    let failed: Vec<&String> = logs.iter().flatten().filter(|l| l.starts_with("failed")).collect();
    for (i, (kind, r)) in results.into_iter().enumerate() {
        let got = r.unwrap_or_else(|e| panic!("request {i}: {e}; {failed:?}"));
        assert_eq!(got.len(), requests[kind].len(), "request {i}");
        for (g, t) in got.iter().zip(requests[kind]) {
            let w = &want[usize::from(*t == long)];
            assert!(
                g.iter().zip(w).all(|(g, w)| (g - w).abs() <= 2e-3),
                "request {i}, {t:?}: {g:?} vs {w:?}"
            );
        }
    }
    let dealt = same_sessions(&logs);
    for kind in [1, 3] {
        let from_pool = |(r, (_, src)): (&String, &(String, String))| {
            src == "pool" && (0..CLIENTS * PER).any(|i| sid(i) == *r && requests[kind_of(i)].len() == kind)
        };
        assert!(dealt.iter().any(from_pool), "no {kind}-input request from the pool: {logs:?}");
    }
    for (id, log) in logs.iter().enumerate() {
        for i in 0..CLIENTS * PER {
            assert!(dealt.contains_key(&sid(i)), "party {id}, request {}: {log:?}", sid(i));
        }
        let end = format!("stopped: {} served, 0 failed", CLIENTS * PER);
        assert!(log.last().is_some_and(|l| l.contains(&end)), "party {id}: {log:?}");
        // Each party's record of consumed ids: every request and every session, nothing else.
        let record = d.join(format!("state{id}/consumed-sessions-p{id}.d"));
        let mut ids: Vec<String> = std::fs::read_dir(&record)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        ids.sort();
        let mut want: Vec<String> = dealt.iter().flat_map(|(r, (s, _))| [r.clone(), s.clone()]).collect();
        want.sort();
        assert_eq!(ids, want, "party {id}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
