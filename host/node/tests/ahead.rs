//! P0's store of products of sessions handed ahead (`STATE/ahead/`): a restart keeps those of
//! unconsumed sessions and deletes the rest; a session's products are taken once; a session
//! handed ahead with no worker running is refused (its request computes A_0 F online).

use ditto_core::prg::SessionId;
use ditto_dealer::host::PlanParams;
use ditto_node::ahead::{Ahead, Job};
use ditto_node::files::SessionRecord;

#[test]
fn p0_keeps_the_products_of_unconsumed_sessions_and_takes_each_once() {
    let state = std::env::temp_dir().join(format!("ditto-ahead-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let dir = state.join("ahead");
    std::fs::create_dir_all(&dir).unwrap();
    let name = |i: u8| format!("{:032x}.af", SessionId([i; 16]).as_u128());
    // Not products files (garbage is read as none, and deleted when taken).
    for f in [name(1), name(2), format!("{}.tmp", name(3)), "stray".into()] {
        std::fs::write(dir.join(f), b"not products").unwrap();
    }
    let consumed = SessionRecord::open_named(&state, "consumed-sessions-p0").unwrap();
    consumed.claim(&SessionId([2; 16])).unwrap();
    let ahead = Ahead::open(&state, 1 << 20, consumed).unwrap();
    let mut left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, vec![name(1)]);
    // Unreadable products are none, and gone once taken.
    assert!(ahead.take(SessionId([1; 16])).is_none());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // No worker: a session handed ahead is refused.
    let job = Job { session: SessionId([4; 16]), params: PlanParams::default(), p0_stream: vec![1; 10] };
    assert!(!ahead.offer(job));
    let _ = std::fs::remove_dir_all(&state);
}
