//! Dealer figures: `cargo bench -p ditto-dealer --features std --bench dealer [-- PLAN...]`
//! (plan files from `ditto plan --out`; default the committed BERT-base/128 and GPT-2 32 + 1
//! plans of `testdata/plans`). For each plan: steps, P1 correction bytes, bytes on the wire to P0 and to P1 (sealed
//! frames), and P1 generation time: bounded-memory generator, parallel generator with 1 and 2
//! worker threads.
#![allow(missing_docs, clippy::cast_precision_loss)]

use std::time::Instant;

use ditto_core::Party;
use ditto_core::plan::Plan;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::host::CountingSink;
use ditto_dealer::host::with_parallel;
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{
    SessionSpec, SlicePlan, dealer_streams, scratch_len, write_stream, write_stream_with,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/plans/");
    let files: Vec<String> = if args.is_empty() {
        vec![format!("{dir}bert-base-seq128.plan"), format!("{dir}gpt2-seq32-gen1.plan")]
    } else {
        args
    };
    let seeds = DealerSeeds::new(Seed::from_bytes([1; 16]), Seed::from_bytes([2; 16]));
    let keys = [PartyKey::from_bytes([3; 16]), PartyKey::from_bytes([4; 16])];
    for file in files {
        let plan = match std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|b| Plan::from_bytes(&b).map_err(|e| e.to_string()))
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{file}: {e}");
                continue;
            }
        };
        let spec = SessionSpec::new(
            Generation {
                session: SessionId([5; 16]),
                share_set: ShareSetId([0x5e; 16]),
                salt: Salt([0x5a; 16]),
            },
            &seeds,
        );
        let mut scratch = vec![0u8; scratch_len(spec.chunk)];
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        let mut p0 = CountingSink(0);
        write_stream(Party::P0, &mut src, &spec, &keys[0], &mut p0, &mut scratch).unwrap();
        let t = Instant::now();
        let mut p1 = CountingSink(0);
        let s = write_stream(Party::P1, &mut src, &spec, &keys[1], &mut p1, &mut scratch).unwrap();
        let bounded = t.elapsed().as_secs_f64();
        let mut par = Vec::new();
        for threads in [1, 2] {
            let ds = dealer_streams(&spec);
            let t = Instant::now();
            let n = with_parallel(&ds, &plan, threads, |p| {
                let mut c = CountingSink(0);
                write_stream_with(Party::P1, &mut src, &spec, &keys[1], &mut c, &mut scratch, p).unwrap();
                c.0
            });
            assert_eq!(n, p1.0);
            par.push(t.elapsed().as_secs_f64());
        }
        println!(
            "{:<24} steps {:5}  P1 corrections {:7.1} MB  wire: P0 {} B, P1 {:7.1} MB  P1 time: bounded {:5.2} s, 1 thread {:5.2} s, 2 threads {:5.2} s",
            plan.header.name.as_str(),
            plan.steps.len(),
            s.correction_bytes as f64 / 1e6,
            p0.0,
            p1.0 as f64 / 1e6,
            bounded,
            par[0],
            par[1],
        );
    }
}
