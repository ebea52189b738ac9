//! P1's pool on disk: what a restart keeps (finished sessions, oldest first) and deletes
//! (unfinished files, halves, sessions already consumed); taking claims the session durably
//! before anything of it is read, skips one claimed elsewhere, and deletes its files when the
//! request is done; the pool's metrics; the command line's budgets and buckets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ditto_core::prg::{SessionId, ShareSetId};
use ditto_dealer::host::PlanParams;
use ditto_node::files::SessionRecord;
use ditto_node::metrics::Metrics;
use ditto_node::pool::{Pool, PoolKey, parse_buckets, parse_size};

const SET: ShareSetId = ShareSetId([0x5e; 16]);

fn key(seq: u32, hash: u8) -> PoolKey {
    let params = PlanParams { seq, generate: 0, reveal_token: false, batch: 1 };
    PoolKey { params, plan_hash: [hash; 32], label: seq.to_string(), estimate: 1000 }
}

fn dir_of(state: &Path, hash: u8) -> PathBuf {
    let label = if hash == 0xaa { "32" } else { "128" };
    state.join("pool").join("5e".repeat(16)).join(format!("{label}-{}", format!("{hash:02x}").repeat(8)))
}

fn sid(i: u8) -> SessionId {
    SessionId([i; 16])
}

fn name(s: SessionId) -> String {
    format!("{:032x}", s.as_u128())
}

/// Writes a pooled session's two files (P1's `len` bytes) and waits a little, so the next
/// one is newer.
fn put(dir: &Path, s: SessionId, len: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{}.p0", name(s))), [s.0[0]; 10]).unwrap();
    std::fs::write(dir.join(format!("{}.p1", name(s))), vec![7u8; len]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn open(state: &Path, budget: u64) -> Arc<Pool> {
    let consumed = SessionRecord::open_named(state, "consumed-sessions-p1").unwrap();
    Pool::open(state, SET, vec![key(32, 0xaa), key(128, 0xbb)], budget, consumed).unwrap()
}

#[test]
fn a_restart_keeps_finished_sessions_and_deletes_the_rest() {
    let state = std::env::temp_dir().join(format!("ditto-pool-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let (a, b) = (dir_of(&state, 0xaa), dir_of(&state, 0xbb));
    put(&a, sid(3), 100);
    put(&a, sid(1), 200);
    put(&b, sid(2), 300);
    // Unfinished, a half, a consumed one, a stranger.
    std::fs::write(a.join(format!("{}.p1.tmp", name(sid(4)))), b"x").unwrap();
    std::fs::write(a.join(format!("{}.p0", name(sid(5)))), b"x").unwrap();
    put(&a, sid(6), 50);
    SessionRecord::open_named(&state, "consumed-sessions-p1").unwrap().claim(&sid(6)).unwrap();
    std::fs::write(a.join("notes.txt"), b"x").unwrap();
    let pool = open(&state, 1 << 20);
    assert_eq!(pool.depths(), (vec![2, 1], 100 + 200 + 300 + 3 * 10));
    let want: Vec<String> =
        [3, 1].iter().flat_map(|&i| [".p0", ".p1"].map(|e| format!("{}{e}", name(sid(i))))).collect();
    let mut want = want;
    want.sort();
    assert_eq!(files(&a), want);
    // Oldest first; the session is claimed before anything of it is read.
    let t = pool.take(0).unwrap().unwrap();
    assert_eq!((t.session, t.p0_stream.clone()), (sid(3), vec![3u8; 10]));
    let consumed = SessionRecord::open_named(&state, "consumed-sessions-p1").unwrap();
    assert!(consumed.contains(&sid(3)).unwrap());
    assert!(t.p1_path.exists());
    // Still on disk (and counted) while the request runs; gone after.
    assert_eq!(pool.depths(), (vec![1, 1], 630));
    drop(t);
    assert_eq!(pool.depths(), (vec![1, 1], 630 - 110));
    assert_eq!(files(&a).len(), 2);
    // A session another process sharing the state claimed is skipped (and deleted).
    consumed.claim(&sid(1)).unwrap();
    assert!(pool.take(0).unwrap().is_none());
    assert!(files(&a).is_empty());
    assert_eq!(pool.depths(), (vec![0, 1], 310));
    // A restart after a taken session's files outlived their request (a crash): deleted,
    // never taken again.
    let t = pool.take(1).unwrap().unwrap();
    std::mem::forget(t);
    let again = open(&state, 1 << 20);
    assert_eq!(again.depths(), (vec![0, 0], 0));
    assert!(files(&b).is_empty());
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn the_pools_metrics() {
    let state = std::env::temp_dir().join(format!("ditto-pool-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    put(&dir_of(&state, 0xbb), sid(9), 90);
    let m = Metrics::default();
    m.set_pool(open(&state, 1 << 20));
    let text = m.render(1);
    for want in [
        "ditto_pool_sessions{party=\"1\",bucket=\"32\"} 0",
        "ditto_pool_sessions{party=\"1\",bucket=\"128\"} 1",
        "ditto_pool_bytes{party=\"1\"} 100",
        "ditto_pool_filled_total{party=\"1\"} 0",
        "ditto_pool_taken_total{party=\"1\"} 0",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} in\n{text}");
    }
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn budgets_and_buckets_from_the_command_line() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("3K"), Ok(3 << 10));
    assert_eq!(parse_size("2g"), Ok(2 << 30));
    assert_eq!(parse_size("1T"), Ok(1 << 40));
    for bad in ["", "G", "1.5G", "4Q", "-1", "99999999999T"] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
    let p = |seq, generate, reveal_token| PlanParams { seq, generate, reveal_token, batch: 1 };
    assert_eq!(parse_buckets("16, 128,16", 512, false), Ok(vec![p(16, 0, false), p(128, 0, false)]));
    let batch8 = PlanParams { batch: 8, ..p(128, 0, false) };
    assert_eq!(parse_buckets("128x8,128", 512, false), Ok(vec![batch8, p(128, 0, false)]));
    assert_eq!(
        parse_buckets("32+8,32+8:token,5", 64, true),
        Ok(vec![p(32, 8, false), p(32, 8, true), p(5, 0, false)])
    );
    for (bad, why) in [
        ("", "no pool buckets"),
        ("0", "outside 1..=512"),
        ("513", "outside 1..=512"),
        ("32+8", "generates no tokens"),
        ("x", "expected N, NxB, N+G"),
        ("3+", "expected N, NxB, N+G"),
        ("16x0", "1 to 64 inputs"),
        ("16x65", "1 to 64 inputs"),
        ("128x33", "4096 tokens in all"),
    ] {
        let e = parse_buckets(bad, 512, false).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    assert!(parse_buckets("60+8", 64, true).unwrap_err().contains("outside 1..=64"));
    assert!(parse_buckets("6:token", 64, true).unwrap_err().contains("none to reveal"));
    assert!(parse_buckets("6x2", 64, true).unwrap_err().contains("batches are for encoders"));
}

/// Products beside pooled sessions (`SESSION.af`, [`ditto_node::ahead`]): a restart keeps
/// those of kept sessions (counted in the pool's bytes, handed to the request that takes the
/// session and deleted with it) and deletes orphans, half-written ones and those of consumed
/// sessions.
#[test]
fn a_restart_keeps_the_products_of_kept_sessions_only() {
    let state = std::env::temp_dir().join(format!("ditto-pool-products-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let a = dir_of(&state, 0xaa);
    put(&a, sid(1), 100);
    put(&a, sid(2), 100);
    put(&a, sid(3), 100);
    std::fs::write(a.join(format!("{}.af", name(sid(1)))), [1u8; 40]).unwrap();
    std::fs::write(a.join(format!("{}.af", name(sid(3)))), [3u8; 40]).unwrap();
    std::fs::write(a.join(format!("{}.af.tmp", name(sid(2)))), [2u8; 40]).unwrap();
    std::fs::write(a.join(format!("{}.af", name(sid(9)))), [9u8; 40]).unwrap();
    SessionRecord::open_named(&state, "consumed-sessions-p1").unwrap().claim(&sid(3)).unwrap();
    let pool = open(&state, 1 << 20);
    assert_eq!(pool.depths(), (vec![2, 0], 2 * 110 + 40));
    let mut want: Vec<String> =
        [".af", ".p0", ".p1"].iter().map(|e| format!("{}{e}", name(sid(1)))).collect();
    want.extend([".p0", ".p1"].iter().map(|e| format!("{}{e}", name(sid(2)))));
    assert_eq!(files(&a), want);
    let t = pool.take(0).unwrap().unwrap();
    assert_eq!(t.session, sid(1));
    assert_eq!(t.products, Some(a.join(format!("{}.af", name(sid(1))))));
    drop(t);
    assert_eq!(pool.depths(), (vec![1, 0], 110));
    let t = pool.take(0).unwrap().unwrap();
    assert_eq!((t.session, t.products.clone()), (sid(2), None));
    drop(t);
    assert!(files(&a).is_empty(), "{:?}", files(&a));
    let _ = std::fs::remove_dir_all(&state);
}
