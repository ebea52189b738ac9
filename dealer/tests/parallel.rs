//! Parallel generation produces byte-identical streams for every thread count, and errors
//! from the sink stop it cleanly.
#![cfg(feature = "std")]

use ditto_core::Party;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::host::{jobs, with_parallel};
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{
    SessionSpec, SlicePlan, dealer_streams, scratch_len, write_stream, write_stream_with,
};

#[test]
fn parallel_streams_are_byte_identical() {
    let plan =
        ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq16.plan"))
            .unwrap();
    let seeds = DealerSeeds::new(Seed::from_bytes([7; 16]), Seed::from_bytes([8; 16]));
    let spec = SessionSpec::new(
        Generation { session: SessionId([9; 16]), share_set: ShareSetId([0x5e; 16]), salt: Salt([0x5a; 16]) },
        &seeds,
    );
    let key = PartyKey::from_bytes([1; 16]);
    let mut scratch = vec![0u8; scratch_len(spec.chunk)];
    let mut serial = Vec::new();
    let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
    write_stream(Party::P1, &mut src, &spec, &key, &mut serial, &mut scratch).unwrap();
    // Jobs cover every unit of every step exactly once, in order.
    let js = jobs(&plan.steps);
    for (i, s) in plan.steps.iter().enumerate() {
        let mine: Vec<_> = js.iter().filter(|j| j.step as usize == i).collect();
        assert_eq!(mine.first().unwrap().units.start, 0);
        assert_eq!(mine.last().unwrap().units.end, s.units());
        assert!(mine.windows(2).all(|w| w[0].units.end == w[1].units.start));
    }
    for threads in [1, 2, 3] {
        let ds = dealer_streams(&spec);
        let out = with_parallel(&ds, &plan, threads, |p| {
            let mut out = Vec::new();
            let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
            write_stream_with(Party::P1, &mut src, &spec, &key, &mut out, &mut scratch.clone(), p).unwrap();
            out
        });
        assert_eq!(out.len(), serial.len(), "threads {threads}");
        assert!(out == serial, "threads {threads}: streams differ");
    }
}

/// A sink that fails after `left` bytes.
struct Failing {
    left: usize,
}
impl embedded_io::ErrorType for Failing {
    type Error = embedded_io::ErrorKind;
}
impl embedded_io::Write for Failing {
    fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> {
        if self.left == 0 {
            return Err(embedded_io::ErrorKind::BrokenPipe);
        }
        let n = b.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn a_failing_sink_stops_generation_with_an_io_error() {
    let plan =
        ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq16.plan"))
            .unwrap();
    let seeds = DealerSeeds::new(Seed::from_bytes([7; 16]), Seed::from_bytes([8; 16]));
    let spec = SessionSpec::new(
        Generation { session: SessionId([9; 16]), share_set: ShareSetId([0x5e; 16]), salt: Salt([0x5a; 16]) },
        &seeds,
    );
    let key = PartyKey::from_bytes([1; 16]);
    let ds = dealer_streams(&spec);
    let e = with_parallel(&ds, &plan, 2, |p| {
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        let mut scratch = vec![0u8; scratch_len(spec.chunk)];
        write_stream_with(Party::P1, &mut src, &spec, &key, Failing { left: 100_000 }, &mut scratch, p)
            .unwrap_err()
    });
    assert_eq!(e, ditto_dealer::Error::Core(ditto_core::Error::Io(embedded_io::ErrorKind::BrokenPipe)));
}
