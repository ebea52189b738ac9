//! PRG and reference-dealer throughput. Run: `cargo bench -p ditto-core --bench prg`.
//! Prints MB/s of keystream (bulk bytes, u32 and u64 ring elements) and of P1 corrections
//! produced by the reference dealing formulas.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use ditto_core::Party;
use ditto_core::corr::{DealerStreams, Streams};
use ditto_core::deal::deal_step;
use ditto_core::plan::{Op, Step};
use ditto_core::prg::{Prg, Purpose, Seed, SessionId, ShareSetId, model_share_seed};
use ditto_core::ring::RingId;

/// Runs `f` (which processes `bytes` bytes) until ~1 s has passed; returns MB/s.
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    let mut n = 0usize;
    while t.elapsed().as_secs_f64() < 1.0 {
        f();
        n += 1;
    }
    (n * bytes) as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// A sink that counts bytes.
struct Count(usize);
impl embedded_io::ErrorType for Count {
    type Error = core::convert::Infallible;
}
impl embedded_io::Write for Count {
    fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {
    let seed = Seed::from_bytes([1; 16]);
    let sid = SessionId([2; 16]);
    println!("aes hardware acceleration: {}", aes_hw());
    let mut prg = Prg::for_stream(&seed, &sid, 0, Purpose::A);
    let mut buf = vec![0u8; 1 << 20];
    println!("prg bulk bytes      {:8.0} MB/s", rate(buf.len(), || prg.fill(black_box(&mut buf))));
    let mut v32 = vec![0u32; 1 << 18];
    println!("prg u32 elements    {:8.0} MB/s", rate(v32.len() * 4, || prg.fill_ring(black_box(&mut v32))));
    let mut v64 = vec![0u64; 1 << 17];
    println!("prg u64 elements    {:8.0} MB/s", rate(v64.len() * 8, || prg.fill_ring(black_box(&mut v64))));
    let mut small = [0u8; 16];
    let t = Instant::now();
    let k = 200_000;
    for i in 0..k {
        let mut p = Prg::for_stream(&seed, &sid, i, Purpose::R);
        p.fill(&mut small);
        black_box(&small);
    }
    println!("stream derivation   {:8.0} ns/stream", t.elapsed().as_nanos() as f64 / f64::from(k));

    let model = Seed::from_bytes([3; 16]);
    let set = ShareSetId([9; 16]);
    let (m0, m1) = (model_share_seed(&model, &set, Party::P0), model_share_seed(&model, &set, Party::P1));
    let s1 = Seed::from_bytes([4; 16]);
    let d =
        DealerStreams::new(Streams::new(Party::P0, &seed, &m0, sid), Streams::new(Party::P1, &s1, &m1, sid));
    for (name, op) in [
        ("deal mul   Z32", Op::MulAA { ring: RingId::Z32, len: 1 << 16 }),
        ("deal trunc Z64", Op::TruncA { ring: RingId::Z64, len: 1 << 15, shift: 18 }),
        ("deal sign  Z64", Op::SignA { ring: RingId::Z64, len: 1 << 14 }),
    ] {
        let step = Step::bare(op);
        let bytes = step.p1_correction_bytes() as usize;
        let r = rate(bytes, || {
            let mut c = Count(0);
            deal_step(&d, 0, &step, &mut c).unwrap();
            black_box(c.0);
        });
        println!("{name}      {r:8.0} MB/s of P1 corrections");
    }
}

fn aes_hw() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("aes") {
        return "AES-NI";
    }
    "none (software backend)"
}
