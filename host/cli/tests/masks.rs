//! The weight-mask attack of issue 18, end to end with the README's processes: one provisioning,
//! three `ditto share-model` runs of the built-in BERT (accurate preset, Ditto preset, Ditto
//! preset again), one client request each through a dealer and two party processes, then P0's
//! weight caches (the opened F = W - B_W of every weight matrix) read back.
//!
//! Were B_W derived from the provisioned model-mask seed alone, every sharing would open F
//! under the same mask, and F - F' = W - W' would lie next to zero (equal weights, two sharings
//! of one preset: exactly zero; two presets: (2^12 - 2^8) W plus rounding, within 2^20). With
//! masks bound to the share set, F - F' is uniform over Z_2^32: the test checks its top byte
//! against the uniform distribution (chi-square, 255 degrees of freedom) and that no more of it
//! lies within 2^20 of zero than chance allows.

mod common;

use std::path::{Path, PathBuf};

use common::{dealer, ditto, party, path, port, tls};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// One sharing of `seeded` at `quant` in `base/name` (with the provisioning's keys and
/// identities), served for one client request; returns P0's weight cache.
fn share_and_serve(base: &Path, name: &str, quant: &str) -> Vec<(u32, Vec<u32>)> {
    let d = base.join(name);
    copy_dir(&base.join("keys"), &d.join("keys"));
    copy_dir(&base.join("tls"), &d.join("tls"));
    let o = ditto()
        .args(["share-model", "--model", "seeded", "--quant", quant, "--out", &path(&d.join("shares"))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_dealer, addr) = dealer(&d, "seeded", &d.join("dealer"), &["--quant", quant]);
    let (peer, c0, c1) = (port(), port(), port());
    let (s0, s1) = (path(&d.join("state-p0")), path(&d.join("state-p1")));
    let mut p0 = party(&d, 0, &peer, &addr, &c0, &["--state", &s0]);
    let _p1 = party(&d, 1, &peer, &addr, &c1, &["--state", &s1]);
    let mut answered = false;
    for _ in 0..50 {
        let o = ditto()
            .args([
                "client",
                "--model",
                "seeded",
                "--text",
                "the weights stay private",
                "--p0",
                &c0,
                "--p1",
                &c1,
            ])
            .args(tls(&d, "client", &[]))
            .output()
            .unwrap();
        if o.status.success() {
            answered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(answered, "the client got an answer ({name})");
    for _ in 0..300 {
        if p0.0.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let caches: Vec<PathBuf> = std::fs::read_dir(d.join("state-p0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("f-"))
        .collect();
    assert_eq!(caches.len(), 1, "P0 keeps one weight cache ({name})");
    read_cache(&std::fs::read(&caches[0]).unwrap())
}

/// The weight cache format (host/mpc/src/wcache.rs): magic, then per weight its id, element
/// width, element count and elements. Every weight matrix here is in Z_2^32.
fn read_cache(b: &[u8]) -> Vec<(u32, Vec<u32>)> {
    assert_eq!(&b[..8], b"DITTOFC1");
    let (mut at, mut out) = (8, Vec::new());
    while at < b.len() {
        let id = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(b[at + 4], 4, "weight {id} in Z_2^32");
        let n = usize::try_from(u64::from_le_bytes(b[at + 5..at + 13].try_into().unwrap())).unwrap();
        at += 13;
        let v =
            b[at..at + 4 * n].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        out.push((id, v));
        at += 4 * n;
    }
    out
}

/// F - F' for every weight matrix element of two sharings of one architecture.
fn difference(a: &[(u32, Vec<u32>)], b: &[(u32, Vec<u32>)]) -> Vec<u32> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|((ia, fa), (ib, fb))| {
            assert_eq!((ia, fa.len()), (ib, fb.len()));
            fa.iter().zip(fb).map(|(x, y)| x.wrapping_sub(*y))
        })
        .collect()
}

/// One-sample chi-square of the top byte against the uniform distribution (255 degrees of
/// freedom: mean 255, standard deviation 22.6).
fn chi2_top_byte(d: &[u32]) -> f64 {
    let mut bins = [0u64; 256];
    d.iter().for_each(|x| bins[(x >> 24) as usize] += 1);
    let e = d.len() as f64 / 256.0;
    bins.iter().map(|&o| (o as f64 - e).powi(2) / e).sum()
}

/// The share of elements within 2^20 of zero (uniform: 2^21 / 2^32, about 0.05%).
fn near_zero(d: &[u32]) -> f64 {
    d.iter().filter(|x| x.wrapping_add(1 << 20) < 1 << 21).count() as f64 / d.len() as f64
}

#[test]
fn two_sharings_under_one_provisioning_open_independent_masks() {
    let base = std::env::temp_dir().join(format!("ditto-masks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    common::keygen(&base);
    let o = ditto().args(["provision", "--out", &path(&base.join("keys"))]).output().unwrap();
    assert!(o.status.success());
    let acc = share_and_serve(&base, "accurate", "accurate");
    let dit = share_and_serve(&base, "ditto", "ditto");
    let dit2 = share_and_serve(&base, "ditto-again", "ditto");
    for (what, d) in
        [("accurate - ditto", difference(&acc, &dit)), ("ditto - ditto again", difference(&dit, &dit2))]
    {
        let (c, z) = (chi2_top_byte(&d), near_zero(&d));
        println!("{what}: {} elements, chi-square {c:.1}, within 2^20 of zero {:.4}%", d.len(), 100.0 * z);
        assert!(c < 420.0, "{what}: F - F' is not uniform (chi-square {c:.1}): the masks are shared");
        assert!(z < 0.002, "{what}: {:.2}% of F - F' within 2^20 of zero", 100.0 * z);
    }
    // The statistics do see shared masks: F - F' under one mask is W - W', all near zero.
    let w: Vec<u32> = (0..50_000u32).map(|i| (i % 512).wrapping_sub(256).wrapping_mul(3840)).collect();
    assert!(chi2_top_byte(&w) > 10_000.0 && near_zero(&w) > 0.9);
    let _ = std::fs::remove_dir_all(&base);
}
