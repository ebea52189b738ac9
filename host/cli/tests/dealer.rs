//! `ditto provision` and `ditto dealer` as a user runs them: files with the right modes, streams
//! written to disk and served over loopback TCP that each party opens and verifies against the
//! library's generator, refusals (wrong plan, a party served twice, a reused session, a party
//! asking for the other's stream, a stranger). The served links are TLS with pinned identities.

#![allow(clippy::cast_possible_truncation)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::Error;
use ditto_dealer::host::{
    Io, PlanParams, connect, request_new_session_on, request_stream_on, stream_file_name,
};
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::party::PartyStream;
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};

const TEST_MASTER: &str = "0123456789abcdef0123456789abcdef";

fn ditto() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ditto"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ditto-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Identities for the dealer and both parties in `d/tls`.
fn keygen(d: &Path) {
    let out = ditto()
        .args(["keygen", "--name", "dealer", "--name", "p0", "--name", "p1", "--out"])
        .arg(d.join("tls"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `role`'s side of a TLS link to the dealer.
fn security(d: &Path, role: &str) -> ditto_net::tls::Security {
    let id = ditto_net::tls::Identity::load(&d.join(format!("tls/{role}.identity"))).unwrap();
    let pins = ditto_net::tls::Pins::parse(&std::fs::read_to_string(d.join("tls/trust")).unwrap()).unwrap();
    ditto_net::tls::Security::tls(id, pins)
}

/// Asks the dealer at `addr` for `party`'s stream over a TLS link with `role`'s identity.
fn request_stream(
    d: &Path,
    role: &str,
    addr: &str,
    party: Party,
    session: SessionId,
    hash: &[u8; 32],
) -> Result<Box<dyn ditto_net::tls::BlockingStream>, String> {
    let sock = connect(addr, Duration::from_secs(20)).map_err(|e| e.to_string())?;
    let s = security(d, role).connect_blocking(sock, "dealer").map_err(|e| e.to_string())?;
    request_stream_on(s, party, (session, ShareSetId::default()), hash, PlanParams::default()).map_err(|e| {
        match e {
            Error::Refused { reason } => format!("refused: {reason}"),
            e => e.to_string(),
        }
    })
}

fn provision(dir: &Path) {
    let out = ditto().args(["provision", "--out"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn key(dir: &Path, name: &str) -> [u8; 16] {
    let t = std::fs::read_to_string(dir.join(name)).unwrap();
    let t = t.trim();
    core::array::from_fn(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap())
}

/// The salt at the head of a sealed stream (its first frame, in clear).
fn salt_of(stream: &[u8]) -> Salt {
    assert_eq!(stream[3], ditto_core::frame::FrameKind::Salt as u8, "a stream starts with its salt");
    Salt(stream[36..52].try_into().unwrap())
}

/// The stream the library generates for the same inputs (the salt, fresh from the OS RNG at
/// every generation, read from the stream under test).
fn expected(keys: &Path, session: SessionId, salt: Salt, party: Party) -> Vec<u8> {
    let plan =
        ditto_core::plan::Plan::from_bytes(include_bytes!("../../../testdata/plans/bert-tiny-seq8.plan"))
            .unwrap();
    let master: [u8; 16] =
        core::array::from_fn(|i| u8::from_str_radix(&TEST_MASTER[2 * i..2 * i + 2], 16).unwrap());
    let seeds = DealerSeeds::new(Seed::from_bytes(master), Seed::from_bytes(key(keys, "model.seed")));
    let generation = Generation { session, share_set: ShareSetId::default(), salt };
    let spec = SessionSpec::new(generation, &seeds);
    let k = PartyKey::from_bytes(key(keys, &format!("p{}.key", party.index())));
    let mut out = Vec::new();
    let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
    write_stream(party, &mut src, &spec, &k, &mut out, &mut vec![0u8; scratch_len(spec.chunk)]).unwrap();
    out
}

/// Opens a stream as the party and reads it to the end.
fn consume<R: embedded_io::Read>(r: R, keys: &Path, session: SessionId, party: Party) -> Result<u64, Error> {
    let plan =
        ditto_core::plan::Plan::from_bytes(include_bytes!("../../../testdata/plans/bert-tiny-seq8.plan"))
            .unwrap();
    open_stream(r, keys, (session, ShareSetId::default()), party, &plan)
}

/// Opens `party`'s sealed stream of `plan` for `session` and the share set, reads each step's
/// correction and returns the correction bytes read.
fn open_stream<R: embedded_io::Read>(
    r: R,
    keys: &Path,
    (session, share_set): (SessionId, ShareSetId),
    party: Party,
    plan: &ditto_core::plan::Plan,
) -> Result<u64, Error> {
    let hash = plan.hash().unwrap();
    let k = PartyKey::from_bytes(key(keys, &format!("p{}.key", party.index())));
    let mut buf = vec![0u8; scratch_len(ditto_dealer::DEFAULT_CHUNK)];
    let (mut s, _) = PartyStream::open(r, &k, session, party, &hash, &share_set, &mut buf)?;
    let mut total = 0;
    if party == Party::P1 {
        for (i, st) in plan.steps.iter().enumerate() {
            let mut out = vec![0u8; st.p1_correction_bytes() as usize];
            s.read_step(i as u32, st, &mut out, &mut buf)?;
            total += out.len() as u64;
        }
    }
    s.finish(&mut buf)?;
    Ok(total)
}

const SID: &str = "00112233445566778899aabbccddeeff";

fn sid() -> SessionId {
    SessionId(core::array::from_fn(|i| u8::from_str_radix(&SID[2 * i..2 * i + 2], 16).unwrap()))
}

#[test]
fn provision_writes_private_files_and_never_overwrites() {
    let d = tmp("prov");
    provision(&d.join("k"));
    for f in ["p0.key", "p1.key", "model.seed", "relay.key"] {
        let meta = std::fs::metadata(d.join("k").join(f)).unwrap();
        #[cfg(unix)]
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600, "{f}");
        assert_eq!(std::fs::read_to_string(d.join("k").join(f)).unwrap().trim().len(), 32);
    }
    assert_ne!(key(&d.join("k"), "p0.key"), key(&d.join("k"), "p1.key"));
    // The board's key page holds the same four secrets.
    let page = std::fs::read(d.join("k/board-keys.bin")).unwrap();
    let prov = ditto_dealer::keys::Provisioning::from_page(&page).unwrap();
    assert_eq!(prov.keys[0].expose(), &key(&d.join("k"), "p0.key"));
    assert_eq!(prov.keys[1].expose(), &key(&d.join("k"), "p1.key"));
    assert_eq!(prov.relay.expose(), &key(&d.join("k"), "relay.key"));
    assert_ne!(key(&d.join("k"), "relay.key"), key(&d.join("k"), "p0.key"));
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.join("k/board-keys.bin")).unwrap().permissions()
        ) & 0o777,
        0o600
    );
    let seed = std::fs::read_to_string(d.join("k/model.seed")).unwrap();
    assert_eq!(prov.model.expose().iter().map(|b| format!("{b:02x}")).collect::<String>(), seed.trim());
    let again = ditto().args(["provision", "--out"]).arg(d.join("k")).output().unwrap();
    assert!(!again.status.success());
    // A malformed key file is a clear error naming the file.
    std::fs::write(d.join("k/p1.key"), "xyz\n").unwrap();
    let out = ditto()
        .args(["dealer", "--arch", "bert-tiny", "--seq", "8", "--quant", "ditto", "--keys"])
        .arg(d.join("k"))
        .arg("--out")
        .arg(d.join("s"))
        .arg("--state")
        .arg(d.join("state"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("p1.key") && err.contains("32 hex digits"), "{err}");
}

#[test]
fn streams_written_to_files_open_at_each_party_and_sessions_are_never_reused() {
    let d = tmp("files");
    let keys = d.join("k");
    provision(&keys);
    let run = |out: &str, state: &str| {
        ditto()
            .args([
                "dealer",
                "--arch",
                "bert-tiny",
                "--seq",
                "8",
                "--quant",
                "ditto",
                "--session",
                SID,
                "--insecure-test-master-seed",
                TEST_MASTER,
                "--keys",
            ])
            .arg(&keys)
            .arg("--out")
            .arg(d.join(out))
            .arg("--state")
            .arg(d.join(state))
            .output()
            .unwrap()
    };
    let out = run("s", "state");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("test-only"), "the test switch announces itself");
    let read = |dir: &str, p: Party| std::fs::read(d.join(dir).join(stream_file_name(&sid(), p))).unwrap();
    let salt = salt_of(&read("s", Party::P0));
    assert_eq!(salt_of(&read("s", Party::P1)), salt, "both streams of a generation carry its salt");
    for p in [Party::P0, Party::P1] {
        assert_eq!(read("s", p), expected(&keys, sid(), salt, p), "{p:?}");
        let f = std::fs::File::open(d.join("s").join(stream_file_name(&sid(), p))).unwrap();
        let n = consume(Io(f), &keys, sid(), p).unwrap();
        assert_eq!(n > 0, p == Party::P1);
    }
    let again = run("s2", "state");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already used"));
    // The same session from another state directory, with the same (test) master seed: a second
    // generation. Its salt is fresh, so nothing is sealed under the first one's key and nonces:
    // its frames do not open under the first generation's salt.
    let out = run("s3", "state3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second = read("s3", Party::P1);
    assert_ne!(salt_of(&second), salt);
    let mut spliced = read("s", Party::P1)[..52].to_vec();
    spliced.extend_from_slice(&second[52..]);
    let e = consume(&spliced[..], &keys, sid(), Party::P1).unwrap_err();
    assert!(matches!(e, Error::Auth { seq: 1, .. }), "{e:?}");
}

#[test]
fn two_processes_claiming_one_session_at_once_exactly_one_wins() {
    let d = tmp("race");
    let keys = d.join("k");
    provision(&keys);
    for round in 0..6 {
        let sid = format!("{round:032x}");
        let spawn = |out: &str| {
            ditto()
                .args([
                    "dealer",
                    "--arch",
                    "bert-tiny",
                    "--seq",
                    "4",
                    "--quant",
                    "ditto",
                    "--session",
                    &sid,
                    "--keys",
                ])
                .arg(&keys)
                .arg("--out")
                .arg(d.join(format!("{out}-{round}")))
                .arg("--state")
                .arg(d.join("state"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("a"), spawn("b"));
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "round {round}: {} processes claimed the session", won);
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        println!("race, round {round}, the loser: {}", String::from_utf8_lossy(&lost.stderr).trim());
        assert!(String::from_utf8_lossy(&lost.stderr).contains("already used"), "round {round}");
    }
    // One marker per session in the record.
    assert_eq!(std::fs::read_dir(d.join("state/served-sessions.d")).unwrap().count(), 6);
}

/// The dealer process and its stdout (kept open: the dealer must not see a closed pipe).
struct Server(Child, #[allow(dead_code)] std::io::Lines<BufReader<std::process::ChildStdout>>);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(d: &Path, keys: &Path) -> (Server, String) {
    let mut child = ditto()
        .args([
            "dealer",
            "--arch",
            "bert-tiny",
            "--seq",
            "8",
            "--quant",
            "ditto",
            "--listen",
            "127.0.0.1:0",
            "--wait",
            "60",
            "--session",
            SID,
        ])
        .args(["--insecure-test-master-seed", TEST_MASTER, "--keys"])
        .arg(keys)
        .arg("--state")
        .arg(d.join("state"))
        .arg("--identity")
        .arg(d.join("tls/dealer.identity"))
        .arg("--trust")
        .arg(d.join("tls/trust"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("listening ").unwrap_or_else(|| panic!("{first}")).to_string();
    (Server(child, lines), addr)
}

#[test]
fn serves_both_parties_over_tcp_and_refuses_bad_requests() {
    let d = tmp("tcp");
    let keys = d.join("k");
    provision(&keys);
    keygen(&d);
    let (mut server, addr) = serve(&d, &keys);
    let plan =
        ditto_core::plan::Plan::from_bytes(include_bytes!("../../../testdata/plans/bert-tiny-seq8.plan"))
            .unwrap();
    let hash = plan.hash().unwrap();
    // A request for another plan is refused with the reason.
    let mut other = hash;
    other[0] ^= 1;
    let e = request_stream(&d, "p1", &addr, Party::P1, sid(), &other).err().unwrap();
    assert!(e.contains("refused") && e.contains("plan hash mismatch"), "{e}");
    // P0's identity never gets P1's stream.
    let e = request_stream(&d, "p0", &addr, Party::P1, sid(), &hash).err().unwrap();
    assert!(e.contains("identity p0 asked for P1's stream"), "{e}");
    // A stranger (its own identity, trusting the real dealer) is refused in the handshake.
    let stranger = tmp("stranger");
    keygen(&stranger);
    std::fs::copy(d.join("tls/trust"), stranger.join("tls/trust")).unwrap();
    assert!(request_stream(&stranger, "p1", &addr, Party::P1, sid(), &hash).is_err());
    // Both parties fetch concurrently and verify their streams.
    let got = std::thread::scope(|s| {
        let hs = [Party::P0, Party::P1].map(|p| {
            let (addr, keys, d) = (&addr, &keys, &d);
            s.spawn(move || {
                let role = if p == Party::P0 { "p0" } else { "p1" };
                let sock = request_stream(d, role, addr, p, sid(), &hash).unwrap();
                consume(Io(sock), keys, sid(), p).unwrap()
            })
        });
        hs.map(|h| h.join().unwrap())
    });
    assert_eq!(got[0], 0);
    assert_eq!(got[1], plan.steps.iter().map(|s| s.p1_correction_bytes()).sum::<u64>());
    // Both served: the dealer exits successfully.
    let status = server.0.wait().unwrap();
    assert!(status.success());
    // Serving the same session again from the same state is refused at start.
    let out = ditto()
        .args([
            "dealer",
            "--arch",
            "bert-tiny",
            "--seq",
            "8",
            "--quant",
            "ditto",
            "--listen",
            "127.0.0.1:0",
            "--session",
            SID,
            "--keys",
        ])
        .arg(&keys)
        .arg("--state")
        .arg(d.join("state"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already used"));
}

#[test]
fn a_party_is_served_once_per_session() {
    let d = tmp("twice");
    let keys = d.join("k");
    provision(&keys);
    keygen(&d);
    let (_server, addr) = serve(&d, &keys);
    let hash =
        ditto_core::plan::Plan::from_bytes(include_bytes!("../../../testdata/plans/bert-tiny-seq8.plan"))
            .unwrap()
            .hash()
            .unwrap();
    let sock = request_stream(&d, "p0", &addr, Party::P0, sid(), &hash).unwrap();
    consume(Io(sock), &keys, sid(), Party::P0).unwrap();
    let e = request_stream(&d, "p0", &addr, Party::P0, sid(), &hash).err().unwrap();
    assert!(e.contains("refused") && e.contains("already served"), "{e}");
    // A request for another session is not answered with a stream.
    let e = request_stream(&d, "p1", &addr, Party::P1, SessionId([9; 16]), &hash).err().unwrap();
    assert!(!e.contains("refused"), "{e}");
}

#[test]
fn a_session_whose_claim_failed_is_never_served_on_retry() {
    // The model dealer's record already holds session S (served by an earlier process). Its
    // first request for S fails to claim it; a retry must fail too, not find a half-made entry.
    let d = tmp("retry");
    let keys = d.join("k");
    provision(&keys);
    let state = d.join("state");
    let s = SessionId([0x3d; 16]);
    std::fs::create_dir_all(state.join("served-sessions.d")).unwrap();
    std::fs::write(state.join("served-sessions.d").join(format!("{:032x}", s.as_u128())), b"").unwrap();
    let (server, addr) = model_dealer(&keys, &state);
    let hash = seq3_plan_hash();
    let ask = |sid: SessionId, p: Party| {
        let sock = connect(&addr, Duration::from_secs(20)).unwrap();
        request_stream_on(sock, p, (sid, ShareSetId([1; 16])), &hash, seq3())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    for attempt in 0..3 {
        for p in [Party::P0, Party::P1] {
            let e = ask(s, p).unwrap_err();
            println!("retry after a failed claim, attempt {attempt}, {p:?}: {e}");
            assert!(e.contains("already used"), "attempt {attempt}, {p:?}: {e}");
        }
    }
    // A fresh session is served, and a second sharing for it is refused.
    assert!(ask(SessionId([0x3e; 16]), Party::P0).is_ok());
    let sock = connect(&addr, Duration::from_secs(20)).unwrap();
    let e = request_stream_on(sock, Party::P1, (SessionId([0x3e; 16]), ShareSetId([2; 16])), &hash, seq3())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    println!("second sharing for a session: {e}");
    assert!(e.contains("dealt for sharing"), "{e}");
    drop(server);
}

#[test]
fn a_session_the_dealer_created_is_never_dealt_again_by_id() {
    // `Deal::NewSession` claims a fresh id in the dealer's record and deals both halves on one
    // connection. A later `Deal::Stream` for that id (a party, or anyone holding an identity,
    // naming it) must be refused by the same record, before and after a dealer restart.
    let d = tmp("created");
    let keys = d.join("k");
    provision(&keys);
    let state = d.join("state");
    let plan = seq3_plan();
    let hash = plan.hash().unwrap();
    let share_set = ShareSetId([1; 16]);
    let (server, addr) = model_dealer(&keys, &state);
    let sock = connect(&addr, Duration::from_secs(20)).unwrap();
    let (created, mut both) = request_new_session_on(sock, share_set, &hash, seq3()).unwrap();
    // Both sealed streams follow on the connection, P0's then P1's; each opens at its party.
    let ids = (created, share_set);
    assert_eq!(open_stream(Io(&mut both), &keys, ids, Party::P0, &plan).unwrap(), 0);
    assert!(open_stream(Io(&mut both), &keys, ids, Party::P1, &plan).unwrap() > 0);
    let ask = |addr: &str, p: Party| {
        let sock = connect(addr, Duration::from_secs(20)).unwrap();
        request_stream_on(sock, p, (created, share_set), &hash, seq3()).map(|_| ()).map_err(|e| e.to_string())
    };
    for p in [Party::P0, Party::P1] {
        let e = ask(&addr, p).unwrap_err();
        println!("stream request for a dealer-created session, {p:?}: {e}");
        assert!(e.contains("already used"), "{p:?}: {e}");
    }
    // A second created session has another id.
    let sock = connect(&addr, Duration::from_secs(20)).unwrap();
    let (second, _) = request_new_session_on(sock, share_set, &hash, seq3()).unwrap();
    assert_ne!(second, created);
    drop(server);
    // A restarted dealer on the same state refuses it too.
    let (server, addr) = model_dealer(&keys, &state);
    for p in [Party::P0, Party::P1] {
        let e = ask(&addr, p).unwrap_err();
        assert!(e.contains("already used"), "after a restart, {p:?}: {e}");
    }
    drop(server);
}

/// A `ditto dealer --model seeded` process on `state` (plaintext loopback) and its address.
fn model_dealer(keys: &Path, state: &Path) -> (Server, String) {
    let mut child = ditto()
        .args(["dealer", "--model", "seeded", "--listen", "127.0.0.1:0", "--insecure-plaintext", "--keys"])
        .arg(keys)
        .arg("--state")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines.next().unwrap().unwrap().strip_prefix("listening ").unwrap().to_string();
    (Server(child, lines), addr)
}

/// The plan hash of a 3-token request to the seeded model (`seq3`).
fn seq3_plan_hash() -> [u8; 32] {
    seq3_plan().hash().unwrap()
}

/// The plan of a 3-token request to the seeded model.
fn seq3_plan() -> ditto_core::plan::Plan {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let cfg = ditto_models::seeded::config();
    let q = ditto_models::quant::QuantConfig::accurate();
    rt.block_on(ditto_models::plans::bert("party", &cfg, &q, 3)).unwrap()
}

/// The plan parameters of a 3-token BERT request.
fn seq3() -> PlanParams {
    PlanParams { seq: 3, ..PlanParams::default() }
}
