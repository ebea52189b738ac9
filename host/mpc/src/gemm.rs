//! Fast wrapping ring GEMM: C += A B over Z_2^32 or Z_2^64, row-major.
//!
//! B is packed once into panels of [`NR`] columns (zero-padded), so the micro-kernel streams
//! one contiguous panel while it keeps an [`MR`] x [`NR`] block of C in registers; the inner
//! dimension is blocked by [`KC`] to keep a panel slice in L1. The kernel is plain Rust
//! compiled three times: for AVX-512, for AVX2 (chosen at run time by CPU feature detection)
//! and portable. Rows of C are split over an optional number of threads.
#![allow(unsafe_code)] // calling the target-feature variants after run-time detection

use ditto_core::Ring;
use ditto_core::beaver::{Dims, Gemm};

/// Columns of a packed panel (one AVX-512 register of u32).
pub const NR: usize = 16;
/// Rows of C per micro-kernel call.
pub const MR: usize = 4;
/// Inner-dimension block.
pub const KC: usize = 256;

/// The instruction set a GEMM runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F.
    Avx512,
    /// AVX2.
    Avx2,
    /// Whatever the compiler's baseline target allows.
    Portable,
}

impl Isa {
    /// The best this CPU offers.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx512() {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }
}

/// The fast GEMM with a thread count (1 = the calling thread only).
#[derive(Clone, Copy, Debug)]
pub struct FastGemm {
    /// Worker threads.
    pub threads: usize,
    /// Instruction set.
    pub isa: Isa,
}

impl Default for FastGemm {
    fn default() -> Self {
        FastGemm { threads: 1, isa: Isa::detect() }
    }
}

impl FastGemm {
    /// With `threads` workers and the detected instruction set.
    pub fn new(threads: usize) -> Self {
        FastGemm { threads: threads.max(1), isa: Isa::detect() }
    }
}

/// B (k x m) packed as panels of NR columns: panel p holds rows 0..k, each NR wide.
fn pack_b<R: Ring>(b: &[R], k: usize, m: usize) -> Vec<R> {
    let panels = m.div_ceil(NR);
    let mut out = vec![R::ZERO; panels * k * NR];
    for p in 0..panels {
        let (j0, w) = (p * NR, NR.min(m - p * NR));
        let dst = &mut out[p * k * NR..(p + 1) * k * NR];
        for kk in 0..k {
            dst[kk * NR..kk * NR + w].copy_from_slice(&b[kk * m + j0..kk * m + j0 + w]);
        }
    }
    out
}

/// acc[r][j] += sum_kk a[r][kk] * panel[kk][j] for ROWS rows.
#[inline(always)]
fn kernel<R: Ring, const ROWS: usize>(a: [&[R]; ROWS], panel: &[R], acc: &mut [[R; NR]; ROWS]) {
    for (kk, brow) in panel.chunks_exact(NR).enumerate() {
        let Ok(brow) = <&[R; NR]>::try_from(brow) else { continue };
        for r in 0..ROWS {
            let av = a[r][kk];
            for j in 0..NR {
                acc[r][j] = acc[r][j].add(av.mul(brow[j]));
            }
        }
    }
}

/// C rows [r0, r1) += A rows x packed B.
#[inline(always)]
fn rows<R: Ring>(c: &mut [R], a: &[R], packed: &[R], d: Dims, r0: usize) {
    let panels = d.m.div_ceil(NR);
    let nrows = c.len() / d.m;
    for k0 in (0..d.k).step_by(KC) {
        let kc = KC.min(d.k - k0);
        // Panels outside, row blocks inside: each packed panel (kc x NR) is loaded once per
        // k-slab and reused by every row block while it is in L1 (B is the large operand).
        for p in 0..panels {
            let panel = &packed[(p * d.k + k0) * NR..(p * d.k + k0 + kc) * NR];
            let (j0, w) = (p * NR, NR.min(d.m - p * NR));
            let mut i = 0;
            while i < nrows {
                let mr = MR.min(nrows - i);
                let arow = |r: usize| &a[(r0 + i + r) * d.k + k0..(r0 + i + r) * d.k + k0 + kc];
                if mr == MR {
                    let mut acc = [[R::ZERO; NR]; MR];
                    kernel::<R, MR>([arow(0), arow(1), arow(2), arow(3)], panel, &mut acc);
                    for (r, row) in acc.iter().enumerate() {
                        let cr = &mut c[(i + r) * d.m + j0..(i + r) * d.m + j0 + w];
                        for (o, v) in cr.iter_mut().zip(row) {
                            *o = o.add(*v);
                        }
                    }
                } else {
                    for r in 0..mr {
                        let mut acc = [[R::ZERO; NR]; 1];
                        kernel::<R, 1>([arow(r)], panel, &mut acc);
                        let cr = &mut c[(i + r) * d.m + j0..(i + r) * d.m + j0 + w];
                        for (o, v) in cr.iter_mut().zip(&acc[0]) {
                            *o = o.add(*v);
                        }
                    }
                }
                i += mr;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2")]
fn rows_avx512<R: Ring>(c: &mut [R], a: &[R], packed: &[R], d: Dims, r0: usize) {
    rows(c, a, packed, d, r0);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_avx2<R: Ring>(c: &mut [R], a: &[R], packed: &[R], d: Dims, r0: usize) {
    rows(c, a, packed, d, r0);
}

fn rows_dispatch<R: Ring>(isa: Isa, c: &mut [R], a: &[R], packed: &[R], d: Dims, r0: usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if has_avx512() => {
            // SAFETY: every feature `rows_avx512` enables was detected on this CPU just now.
            unsafe { rows_avx512(c, a, packed, d, r0) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if std::is_x86_feature_detected!("avx2") => {
            // SAFETY: AVX2 was detected on this CPU just now.
            unsafe { rows_avx2(c, a, packed, d, r0) }
        }
        _ => rows(c, a, packed, d, r0),
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx2")
}

/// A right-hand matrix (k x m) packed once for repeated products: the model's weights, whose
/// F = W - B_W and B_W shares are the same in every inference.
pub struct PackedB<R> {
    data: Vec<R>,
    k: usize,
    m: usize,
}

impl<R> PackedB<R> {
    /// Rows and columns of the matrix packed.
    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.m)
    }
}

impl<R: Ring> PackedB<R> {
    /// Packs `b` (k x m, row-major).
    pub fn new(b: &[R], k: usize, m: usize) -> Self {
        PackedB { data: pack_b(b, k, m), k, m }
    }
}

impl FastGemm {
    /// out (n x m) += a (n x k) * b, with b packed beforehand.
    pub fn gemm_acc_packed<R: Ring>(&self, out: &mut [R], a: &[R], b: &PackedB<R>, n: usize) {
        let d = Dims { n, k: b.k, m: b.m };
        if d.n == 0 || d.m == 0 || d.k == 0 {
            return;
        }
        self.run_packed(out, a, &b.data, d);
    }

    fn run<R: Ring>(&self, out: &mut [R], a: &[R], b: &[R], d: Dims) {
        if d.n == 0 || d.m == 0 || d.k == 0 {
            return;
        }
        self.run_packed(out, a, &pack_b(b, d.k, d.m), d);
    }

    fn run_packed<R: Ring>(&self, out: &mut [R], a: &[R], packed: &[R], d: Dims) {
        let threads = self.threads.min(d.n.div_ceil(MR)).max(1);
        if threads == 1 {
            rows_dispatch(self.isa, out, a, packed, d, 0);
            return;
        }
        let band = d.n.div_ceil(threads).div_ceil(MR) * MR;
        std::thread::scope(|s| {
            for (t, chunk) in out.chunks_mut(band * d.m).enumerate() {
                let isa = self.isa;
                s.spawn(move || rows_dispatch(isa, chunk, a, packed, d, t * band));
            }
        });
    }
}

impl<R: Ring> Gemm<R> for FastGemm {
    fn gemm_acc(&self, out: &mut [R], a: &[R], b: &[R], d: Dims) {
        self.run(out, a, b, d);
    }
}
