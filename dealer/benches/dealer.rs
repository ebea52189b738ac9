//! Dealer figures: `cargo bench -p ditto-dealer --features std --bench dealer [-- ARCH...]`.
//! For each plan: steps, P1 correction bytes, bytes on the wire to P0 and to P1 (sealed
//! frames), and generation time of the bounded-memory generator.
#![allow(missing_docs, clippy::cast_precision_loss)]

use std::time::Instant;

use ditto_core::Party;
use ditto_core::prg::{Seed, SessionId};
use ditto_dealer::keys::{DealerSeeds, PartyKey};
use ditto_dealer::plans;
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};

/// Counts bytes written.
struct Count(u64);
impl embedded_io::ErrorType for Count {
    type Error = core::convert::Infallible;
}
impl embedded_io::Write for Count {
    fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let archs: Vec<(&str, u32, u32)> = if args.is_empty() {
        vec![("bert-base", 128, 0), ("gpt2", 32, 1)]
    } else {
        args.iter()
            .map(|a| {
                (a.as_str(), if a.starts_with("gpt") { 32 } else { 128 }, u32::from(a.starts_with("gpt")))
            })
            .collect()
    };
    let seeds = DealerSeeds::new(Seed::from_bytes([1; 16]), Seed::from_bytes([2; 16]));
    let keys = [PartyKey::from_bytes([3; 16]), PartyKey::from_bytes([4; 16])];
    for (name, seq, generate) in archs {
        let Some(shape) = plans::by_name(name) else {
            eprintln!("unknown architecture {name}");
            continue;
        };
        let plan = plans::plan(name, &shape, seq, generate).unwrap();
        let spec = SessionSpec::new(SessionId([5; 16]), &seeds);
        let mut scratch = vec![0u8; scratch_len(spec.chunk)];
        let mut out = [0u64; 2];
        let t = Instant::now();
        let mut corr = 0;
        for p in [Party::P0, Party::P1] {
            let mut sink = Count(0);
            let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
            let s = write_stream(p, &mut src, &spec, &keys[p.index()], &mut sink, &mut scratch).unwrap();
            out[p.index()] = sink.0;
            corr += s.correction_bytes;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{:<28} steps {:5}  P1 corrections {:>10.1} MB  wire P0 {:>5} B  wire P1 {:>10.1} MB  time {:7.2} s  ({:.0} MB/s)",
            plan.header.name.as_str(),
            plan.steps.len(),
            corr as f64 / 1e6,
            out[0],
            out[1] as f64 / 1e6,
            secs,
            out[1] as f64 / 1e6 / secs
        );
    }
}
