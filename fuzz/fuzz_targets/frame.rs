//! Correlation frames as a party reads them: the frame layer (header, length limit, checksum)
//! over arbitrary bytes, and a party opening an arbitrary "dealer stream".
#![no_main]

use ditto_core::Party;
use ditto_core::frame::FrameReader;
use ditto_core::plan::Plan;
use ditto_core::prg::{SessionId, ShareSetId};
use ditto_dealer::host::Io;
use ditto_dealer::keys::PartyKey;
use ditto_dealer::party::PartyStream;
use libfuzzer_sys::fuzz_target;

/// The plan of the seed streams (`dealer/examples/fuzz_seeds.rs`).
fn plan() -> &'static Plan {
    static PLAN: std::sync::OnceLock<Plan> = std::sync::OnceLock::new();
    PLAN.get_or_init(|| ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq2.plan")).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let session = SessionId([7; 16]);
    let mut buf = vec![0u8; 4096 + 64];
    let mut r = FrameReader::new(Io(data), session, 4096);
    for _ in 0..64 {
        if r.read_frame(&mut buf).is_err() {
            break;
        }
    }
    let key = PartyKey::from_bytes([1; 16]);
    for party in [Party::P0, Party::P1] {
        // The seeds' plan hash and share set, so that inputs reach the correction frames.
        let (hash, set) = (plan().hash().unwrap(), ShareSetId([0x5e; 16]));
        if let Ok((mut s, _)) = PartyStream::open(Io(data), &key, session, party, &hash, &set, &mut buf) {
            let step = &plan().steps[0];
            let mut out = vec![0u8; usize::try_from(step.p1_correction_bytes()).unwrap().min(1 << 16)];
            if s.read_step(0, step, &mut out, &mut buf).is_ok() {
                let _ = s.finish(&mut buf);
            }
        }
    }
});
