//! The README's multi-process walk-through as a test: provision, share the model, a dealer
//! serving the model, P0 and P1 as separate processes, and a client that gets an embedding equal
//! to the one-process demo's (same model, same text), twice: the second session reads the weight
//! masks from the parties' state directories.

mod common;

use common::{dealer, demo_embedding, ditto, embedding_line, party, path, port, provision_and_share, tls};

/// Runs provision, share-model, a dealer, P0, P1 and a client for `model`, `sessions` times
/// (new party processes each time); returns each client's and P0's standard output.
fn walk(tag: &str, model: &str, client_extra: &[&str], sessions: usize) -> Vec<(String, String)> {
    let d = std::env::temp_dir().join(format!("ditto-walk-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    provision_and_share(&d, model);
    let (mut dealer, dealer_addr) =
        dealer(&d, model, &d.join("state"), &["--sessions", &sessions.to_string()]);
    let mut runs = Vec::new();
    for _ in 0..sessions {
        let (peer, c0, c1) = (port(), port(), port());
        let mut p0 = party(&d, 0, &peer, &dealer_addr, &c0, &[]);
        let p1 = party(&d, 1, &peer, &dealer_addr, &c1, &[]);
        // The parties need a moment to bind their client ports.
        let mut out = None;
        for _ in 0..50 {
            let o = ditto()
                .args(["client", "--model", model, "--p0", &c0, "--p1", &c1])
                .args(tls(&d, "client", &[]))
                .args(client_extra)
                .output()
                .unwrap();
            if o.status.success() {
                out = Some(String::from_utf8_lossy(&o.stdout).into_owned());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = out.expect("the client got an answer");
        // P0 ends after its one inference (bounded wait); its last line has its costs.
        let mut ended = false;
        for _ in 0..300 {
            if p0.0.try_wait().unwrap().is_some() {
                ended = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(ended, "P0 ends after the inference");
        let mut p0_out = String::new();
        std::io::Read::read_to_string(&mut p0.0.stdout.take().unwrap(), &mut p0_out).unwrap();
        drop((p0, p1));
        runs.push((out, p0_out));
    }
    // The dealer stops after its one session (bounded wait: a failure must not hang the test).
    let mut stopped = None;
    for _ in 0..300 {
        if let Some(st) = dealer.0.try_wait().unwrap() {
            stopped = Some(st);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(stopped.is_some_and(|s| s.success()), "the dealer stops after its sessions");
    let _ = std::fs::remove_dir_all(&d);
    runs
}

#[test]
fn four_processes_generate_the_same_tokens_as_the_demo() {
    let out = walk("gpt2", "seeded-gpt2", &["--text", "Hello", "--gen", "10"], 1).remove(0).0;
    let tokens = out
        .lines()
        .find(|l| l.starts_with("tokens "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim_start_matches("tokens ")
        .to_string();
    let demo =
        ditto().args(["demo", "--model", "seeded-gpt2", "--gen", "10", "--text", "Hello"]).output().unwrap();
    let demo = String::from_utf8_lossy(&demo.stdout).into_owned();
    let line = demo.lines().find(|l| l.starts_with("secure ")).unwrap_or_else(|| panic!("{demo}"));
    assert!(line.contains(&tokens), "{tokens} vs demo {line}");
}

#[test]
fn four_processes_reveal_only_the_tokens_and_generate_the_demos() {
    // --reveal token: the parties pick each token with a secure argmax; the client gets ids only.
    let out = walk("gpt2-token", "seeded-gpt2", &["--text", "Hello", "--gen", "10", "--reveal", "token"], 1)
        .remove(0)
        .0;
    let tokens =
        out.lines().find_map(|l| l.strip_prefix("tokens ")).unwrap_or_else(|| panic!("{out}")).to_string();
    let demo = ditto()
        .args(["demo", "--model", "seeded-gpt2", "--gen", "10", "--text", "Hello", "--reveal", "token"])
        .output()
        .unwrap();
    let demo = String::from_utf8_lossy(&demo.stdout).into_owned();
    let line = demo.lines().find(|l| l.starts_with("secure ")).unwrap_or_else(|| panic!("{demo}"));
    assert!(line.contains(&tokens), "{tokens} vs demo {line}");
}

#[test]
fn four_processes_compute_the_same_embedding_as_the_demo() {
    let text = "secure inference keeps the input private.";
    let runs = walk("bert", "seeded", &["--text", text], 2);
    // The first session opens the weight masks F; the second reads them from the state directory.
    assert!(runs[0].1.contains("weight setup") && !runs[0].1.contains("masks from"), "{}", runs[0].1);
    assert!(runs[1].1.contains("weight setup 48 bytes, masks from the state directory"), "{}", runs[1].1);
    let got = embedding_line(&runs[0].0);
    let again = embedding_line(&runs[1].0);
    let want = demo_embedding("seeded", text);
    assert_eq!((want.len(), got.len()), (6, 8), "{want:?} {got:?}");
    for ((g, a), w) in got.iter().zip(&again).zip(&want) {
        assert!((g - w).abs() <= 2e-3 && (a - w).abs() <= 2e-3, "{got:?}, {again:?} vs demo {want:?}");
    }
}

#[test]
fn four_processes_classify_like_the_demo() {
    let text = "what a great film";
    let out = walk("cls", "seeded-classifier", &["--text", text], 1).remove(0).0;
    let label = out.lines().find_map(|l| l.strip_prefix("label  ")).unwrap_or_else(|| panic!("{out}"));
    let logits = out.lines().find(|l| l.starts_with("logits ")).unwrap_or_else(|| panic!("{out}"));
    let demo = ditto().args(["demo", "--model", "seeded-classifier", "--text", text]).output().unwrap();
    assert!(demo.status.success());
    let demo = String::from_utf8_lossy(&demo.stdout).into_owned();
    let line = demo.lines().find(|l| l.starts_with("label   secure ")).unwrap_or_else(|| panic!("{demo}"));
    assert!(line.starts_with(&format!("label   secure {label},")), "{label} vs demo {line}; {logits}");
    assert!(["negative", "positive"].contains(&label));
}

/// A party records every session it consumes (in its state directory, synced before anything
/// of the session is fetched or opened) and refuses one it has seen, across restarts: here a
/// client replays a session id to freshly started parties (with a fresh dealer that would
/// serve it), and the parties refuse it before contacting the dealer.
#[test]
fn restarted_parties_refuse_a_replayed_session() {
    let d = std::env::temp_dir().join(format!("ditto-walk-{}-replay", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    provision_and_share(&d, "seeded");
    let sid = "00112233445566778899aabbccddeeff";
    let mut outcomes = Vec::new();
    for round in 0..2 {
        // A fresh dealer state each time: only the parties' records can refuse the replay.
        let (_dealer, dealer_addr) = dealer(&d, "seeded", &d.join(format!("dealer-{round}")), &[]);
        let (peer, c0, c1) = (port(), port(), port());
        let state = |id: u8| path(&d.join(format!("state{id}")));
        let mut p0 = party(&d, 0, &peer, &dealer_addr, &c0, &["--state", &state(0)]);
        let _p1 = party(&d, 1, &peer, &dealer_addr, &c1, &["--state", &state(1)]);
        let mut ok = false;
        for _ in 0..50 {
            let o = ditto()
                .args(["client", "--model", "seeded", "--text", "replay", "--session", sid])
                .args(tls(&d, "client", &[]))
                .args(["--p0", &c0, "--p1", &c1])
                .output()
                .unwrap();
            if o.status.success() {
                ok = true;
                break;
            }
            // Connected but refused: the parties ended; stop retrying.
            if p0.0.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let status = (0..300).find_map(|_| {
            let st = p0.0.try_wait().unwrap();
            if st.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            st
        });
        let mut err = String::new();
        std::io::Read::read_to_string(&mut p0.0.stderr.take().unwrap(), &mut err).unwrap();
        outcomes.push((ok, status.map(|s| s.success()), err));
    }
    let _ = std::fs::remove_dir_all(&d);
    assert_eq!((outcomes[0].0, outcomes[0].1), (true, Some(true)), "{:?}", outcomes[0]);
    assert_eq!((outcomes[1].0, outcomes[1].1), (false, Some(false)), "{:?}", outcomes[1]);
    assert!(outcomes[1].2.contains(&format!("session {sid} was already used")), "{}", outcomes[1].2);
}
