//! Writes seed inputs for the fuzz targets that read dealer-side formats (fuzz/corpus): a plan,
//! a party's request, P0's stream and the head of P1's.
//! `cargo run -p ditto-dealer --features std --example fuzz_seeds -- fuzz/corpus`
#![allow(missing_docs)]

use std::path::PathBuf;

use ditto_core::Party;
use ditto_core::frame::{FrameKind, FrameWriter};
use ditto_core::plan::PLAN_VERSION;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::DEFAULT_CHUNK;
use ditto_dealer::host::{Io, PlanParams, Request};
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let put = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(dir.join(target)).unwrap();
        std::fs::write(dir.join(target).join(name), bytes).unwrap();
    };
    let plan = ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq2.plan"))
        .unwrap();
    put("plan", "bert-tiny-2", &plan.to_bytes().unwrap());
    let session = SessionId([7; 16]);
    let share_set = ShareSetId([0x5e; 16]);
    let req = Request {
        version: PLAN_VERSION,
        deal: ditto_dealer::host::Deal::Stream,
        party: Party::P1,
        plan_hash: [3; 32],
        share_set,
        params: PlanParams { seq: 2, generate: 0, reveal_token: false, batch: 1 },
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    FrameWriter::new(Io(&mut out), session).write_message(FrameKind::Control, 0, &req, &mut buf).unwrap();
    put("dealer_request", "p1-seq2", &out);
    // The frame target opens streams of this plan and share set for session [7; 16] under key
    // [1; 16], so the seeds reach the correction frames.
    let seeds = DealerSeeds::new(Seed::from_bytes([5; 16]), Seed::from_bytes([6; 16]));
    let spec = SessionSpec::new(Generation { session, share_set, salt: Salt([0x5a; 16]) }, &seeds);
    let key = PartyKey::from_bytes([1; 16]);
    for p in [Party::P0, Party::P1] {
        let mut s = Vec::new();
        let mut scratch = vec![0u8; scratch_len(DEFAULT_CHUNK)];
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        write_stream(p, &mut src, &spec, &key, Io(&mut s), &mut scratch).unwrap();
        s.truncate(8192);
        put("frame", &format!("stream-{p:?}"), &s);
    }
}
