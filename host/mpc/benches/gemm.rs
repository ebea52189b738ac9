//! GEMM throughput (criterion): `cargo bench -p ditto-mpc --bench gemm`. Throughput is in
//! elements = multiply-adds, so criterion's "Gelem/s" reads as GMAC/s.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ditto_core::Ring;
use ditto_core::beaver::{Dims, Gemm, NaiveGemm};
use ditto_mpc::gemm::{FastGemm, Isa};

fn data<R: Ring>(n: usize, seed: u64) -> Vec<R> {
    (0..n as u64).map(|i| R::from_u64((i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect()
}

fn bench<R: Ring>(c: &mut Criterion, ring: &str) {
    let mut g = c.benchmark_group(format!("gemm_{ring}"));
    g.sample_size(10);
    for (n, k, m) in [(128, 768, 768), (128, 768, 3072)] {
        let d = Dims { n, k, m };
        let (a, b) = (data::<R>(n * k, 1), data::<R>(k * m, 2));
        let mut out = vec![R::ZERO; n * m];
        g.throughput(Throughput::Elements((n * k * m) as u64));
        let shape = format!("{n}x{k}x{m}");
        g.bench_function(BenchmarkId::new("naive", &shape), |bch| {
            bch.iter(|| NaiveGemm.gemm_acc(&mut out, &a, &b, d))
        });
        for (name, gemm) in [
            ("fast-1thread", FastGemm::new(1)),
            ("fast-2threads", FastGemm::new(2)),
            ("avx2-1thread", FastGemm { threads: 1, isa: Isa::Avx2 }),
            ("portable-1thread", FastGemm { threads: 1, isa: Isa::Portable }),
        ] {
            g.bench_function(BenchmarkId::new(name, &shape), |bch| {
                bch.iter(|| gemm.gemm_acc(&mut out, &a, &b, d))
            });
        }
    }
    g.finish();
}

fn gemm(c: &mut Criterion) {
    println!("detected instruction set: {:?}", Isa::detect());
    bench::<u32>(c, "u32");
    bench::<u64>(c, "u64");
}

criterion_group!(benches, gemm);
criterion_main!(benches);
