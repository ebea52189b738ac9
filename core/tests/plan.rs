//! Plans: validation errors, a hash that changes with every field and survives encoding, and
//! the committed test vector (seed, session, plan -> P1's correction stream) that the host
//! dealer and the firmware must reproduce byte for byte.
//!
//! Regenerate the vector file (only when the formats change on purpose, with a version bump):
//! `DITTO_WRITE_VECTORS=1 cargo test -p ditto-core --test plan`.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]

mod common;

use common::Harness;
use ditto_core::Error;
use ditto_core::plan::{GeluApprox, Op, PLAN_VERSION, PlanHasher, PlanHeader, Scale, Step, Tag, plan_hash};
use ditto_core::ring::RingId::{Z32, Z64};
use sha2::{Digest, Sha256};

fn header(name: &str, n: usize) -> PlanHeader {
    PlanHeader { version: PLAN_VERSION, name: name.try_into().unwrap(), n_steps: n as u32 }
}

/// One step of every kind in both rings, small shapes.
fn vector_plan() -> Vec<Step> {
    let mut steps = Vec::new();
    for ring in [Z32, Z64] {
        steps.push(Step::bare(Op::MulAA { ring, len: 70 }));
        steps.push(Step::bare(Op::SquareA { ring, len: 33 }));
        steps.push(Step::bare(Op::MatMulFixed { ring, n: 4, k: 6, m: 18, weight: 3 }));
        steps.push(Step::bare(Op::MatMulAA { ring, batch: 2, n: 3, k: 5, m: 4 }));
        steps.push(Step::bare(Op::TruncA { ring, len: 65, shift: 8 }));
        steps.push(Step::bare(Op::SignA { ring, len: 100 }));
    }
    steps.push(Step::bare(Op::UpcastA { len: 40 }));
    steps.push(Step::bare(Op::DowncastA { len: 40, shift: 10 }));
    steps.push(Step::bare(Op::SignLowA { len: 100 }));
    steps.push(Step::bare(Op::SignRadixA { ring: Z32, out: Z32, len: 100, mul: false }));
    steps.push(Step::bare(Op::SignRadixA { ring: Z64, out: Z64, len: 100, mul: true }));
    steps.push(Step::bare(Op::SignRadixA { ring: Z32, out: Z64, len: 100, mul: true }));
    steps.push(Step::bare(Op::TruncMulA {
        ring: Z32,
        len: 66,
        shift: 8,
        square: true,
        mul: true,
        pair: true,
    }));
    steps.push(Step::bare(Op::TruncMulA {
        ring: Z64,
        len: 66,
        shift: 18,
        square: true,
        mul: true,
        pair: true,
    }));
    steps.push(Step::bare(Op::TruncDowncastA { len: 40, shift: 18, down: 10 }));
    steps.push(Step::bare(Op::UpcastTruncA { len: 40, scale: 131_072, shift: 18 }));
    steps.push(Step::bare(Op::SignRadixTopA { ring: Z32, out: Z32, len: 100, mul: false }));
    steps.push(Step::bare(Op::SignRadixTopA { ring: Z32, out: Z64, len: 100, mul: true }));
    steps.push(Step::bare(Op::SignRadixTopA { ring: Z64, out: Z64, len: 100, mul: true }));
    steps.push(Step::bare(Op::SignRadixBesideA { ring: Z32, out: Z64, len: 100, mul: false }));
    steps.push(Step::bare(Op::TruncDowncastA { len: 3 * 40, shift: 18, down: 10 }));
    steps.push(Step::bare(Op::MatMulDownA { n: 3, k: 40, m: 20, weight: 2, shift: 28 }));
    steps.push(Step::bare(Op::TruncCenterSquareA { ring: Z64, rows: 3, cols: 10, shift: 18 }));
    steps.push(Step::bare(Op::TruncCenterSquareA { ring: Z32, rows: 2, cols: 7, shift: 8 }));
    let open = steps.len() as u32;
    steps.push(Step::bare(Op::OpenBesideA { len: 2 * 20 * 15 }));
    steps.push(Step::bare(Op::TruncDowncastA { len: 2 * 3 * 20, shift: 18, down: 10 }));
    steps.push(Step::bare(Op::MatMulDownAA { batch: 2, n: 3, k: 20, m: 15, shift: 28, open }));
    steps.push(Step::bare(Op::TruncMulNarrowA {
        len: 40,
        shift: 5,
        open: 24,
        out: 39,
        square: true,
        mul: false,
    }));
    steps.push(Step::bare(Op::TruncMulNarrowA {
        len: 40,
        shift: 18,
        open: 39,
        out: 64,
        square: true,
        mul: true,
    }));
    steps.push(Step::bare(Op::TruncMulRowsA { ring: Z64, rows: 3, cols: 10, shift: 18 }));
    steps.push(Step::bare(Op::TruncMulRowsA { ring: Z32, rows: 2, cols: 7, shift: 8 }));
    steps.push(Step::bare(Op::TruncMulColsA { ring: Z64, rows: 3, cols: 10, shift: 18 }));
    steps.push(Step::bare(Op::TruncMulColsA { ring: Z32, rows: 2, cols: 7, shift: 8 }));
    let center = steps.len() as u32;
    steps.push(Step::bare(Op::TruncCenterSquareA { ring: Z64, rows: 3, cols: 10, shift: 18 }));
    steps.push(Step::bare(Op::TruncMulRowsCenteredA {
        ring: Z64,
        rows: 3,
        cols: 10,
        shift: 19,
        center,
        center_shift: 18,
    }));
    steps.push(Step::bare(Op::SignRadixTopBesideA { ring: Z64, out: Z64, len: 100, mul: true }));
    steps.push(Step::bare(Op::SignRadixTopBesideA { ring: Z32, out: Z32, len: 100, mul: true }));
    steps.push(Step::bare(Op::TruncDowncastNarrowA { len: 3 * 40, shift: 11, down: 0, open: 43 }));
    steps.push(Step::bare(Op::MatMulDownA { n: 3, k: 40, m: 20, weight: 2, shift: 11 }));
    steps
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn committed_dealer_vectors() {
    let h = Harness::new(0x5e);
    let steps = vector_plan();
    let hash = plan_hash(&header("test-vectors", steps.len()), &steps).unwrap();
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let c = h.deal(i as u32, s);
        out.push(serde_json::json!({
            "index": i,
            "step": s,
            "p1_correction_bytes": c.len(),
            "first_bytes": hex(&c[..c.len().min(32)]),
            "sha256": hex(&Sha256::digest(&c)),
        }));
    }
    let doc = serde_json::json!({
        "about": "ditto-core dealer test vector v2: seeds, share set, session and plan -> P1 correction \
                  stream per step (v2: weight masks bound to the share set). Tests: core/tests/plan.rs. \
                  Seeds are test-only constants.",
        "plan_version": PLAN_VERSION,
        "seed_p0": hex(h.seeds[0].expose()),
        "seed_p1": hex(h.seeds[1].expose()),
        "model_seed": hex(h.model_seed.expose()),
        "share_set": hex(&h.share_set.0),
        "session": hex(&h.session.0),
        "plan_name": "test-vectors",
        "plan_hash": hex(&hash),
        "steps": out,
    });
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/dealer-v2.json");
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("DITTO_WRITE_VECTORS").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(path).expect("committed vector file");
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
    if committed != doc {
        let diff: Vec<usize> =
            (0..steps.len()).filter(|&i| committed["steps"][i] != doc["steps"][i]).collect();
        panic!(
            "dealer output or plan hash changed (plan hash equal: {}, steps differing: {diff:?}): \
             bump PLAN_VERSION and regenerate",
            committed["plan_hash"] == doc["plan_hash"]
        );
    }
}

#[test]
fn hash_depends_on_every_field() {
    let base = Step {
        op: Op::TruncA { ring: Z64, len: 10, shift: 10 },
        scale: Scale { frac_in: 28, frac_out: 18 },
        tag: Tag::Softmax { exp_iters: 5 },
        layer: 3,
    };
    let h0 = plan_hash(&header("p", 1), &[base]).unwrap();
    let variants = [
        Step { op: Op::TruncA { ring: Z32, len: 10, shift: 10 }, ..base },
        Step { op: Op::TruncA { ring: Z64, len: 11, shift: 10 }, ..base },
        Step { op: Op::TruncA { ring: Z64, len: 10, shift: 11 }, ..base },
        Step { scale: Scale { frac_in: 27, frac_out: 18 }, ..base },
        Step { scale: Scale { frac_in: 28, frac_out: 17 }, ..base },
        Step { tag: Tag::Softmax { exp_iters: 6 }, ..base },
        Step { tag: Tag::Gelu(GeluApprox::Quad), ..base },
        Step { layer: 4, ..base },
    ];
    for v in variants {
        assert_ne!(plan_hash(&header("p", 1), &[v]).unwrap(), h0, "{v:?}");
    }
    assert_ne!(plan_hash(&header("q", 1), &[base]).unwrap(), h0);
    // Order matters.
    let other = Step::bare(Op::UpcastA { len: 3 });
    assert_ne!(
        plan_hash(&header("p", 2), &[base, other]).unwrap(),
        plan_hash(&header("p", 2), &[other, base]).unwrap()
    );
    // Incremental and one-shot agree; postcard round trip keeps the hash.
    let mut inc = PlanHasher::new(&header("p", 1)).unwrap();
    let bytes = postcard::to_allocvec(&base).unwrap();
    inc.push(&postcard::from_bytes::<Step>(&bytes).unwrap()).unwrap();
    assert_eq!(inc.finish().unwrap(), h0);
}

#[test]
fn invalid_plans_are_typed_errors() {
    let bad = |op| plan_hash(&header("p", 1), &[Step::bare(op)]).unwrap_err();
    assert_eq!(bad(Op::MulAA { ring: Z32, len: 0 }), Error::BadStep { step: 0, reason: "zero dimension" });
    assert_eq!(
        bad(Op::MatMulFixed { ring: Z32, n: 1 << 15, k: 1 << 14, m: 1, weight: 0 }),
        Error::BadStep { step: 0, reason: "too many elements" }
    );
    assert!(matches!(bad(Op::TruncA { ring: Z32, len: 1, shift: 0 }), Error::BadStep { .. }));
    assert!(matches!(bad(Op::TruncA { ring: Z32, len: 1, shift: 31 }), Error::BadStep { .. }));
    assert!(matches!(bad(Op::DowncastA { len: 1, shift: 33 }), Error::BadStep { .. }));
    assert!(plan_hash(&header("p", 1), &[Step::bare(Op::TruncA { ring: Z32, len: 1, shift: 30 })]).is_ok());
    let s = Step::bare(Op::UpcastA { len: 1 });
    assert_eq!(
        plan_hash(&header("p", 2), &[s]).unwrap_err(),
        Error::PlanStepCount { declared: 2, actual: 1 }
    );
    let mut hd = header("p", 1);
    hd.version = 9;
    assert_eq!(plan_hash(&hd, &[s]).unwrap_err(), Error::Version { expected: PLAN_VERSION, got: 9 });
    // Garbage never decodes to a step silently... or if it does, it validates.
    for b in [&[0xffu8; 3][..], &[7, 0, 0], &[]] {
        if let Ok(step) = postcard::from_bytes::<Step>(b) {
            let _ = step.validate(0);
        }
    }
}

#[test]
fn stated_costs_match_design_table() {
    // DESIGN.md §5 per element, l = 32: mul 2l bits/party and l to P1; square l and l;
    // truncation l and l + k (DESIGN says 2l; the msb share only matters mod 2^k);
    // upcast 32 and 64 + 32 (DESIGN: 128); downcast (k = 10) 42 bits -> 6 bytes, and 32.
    let n = 1000;
    let cost = |op| {
        let s = Step::bare(op);
        (s.online_bytes_per_party(), s.p1_correction_bytes(), s.rounds())
    };
    assert_eq!(cost(Op::MulAA { ring: Z32, len: n }), (8000, 4000, 1));
    assert_eq!(cost(Op::SquareA { ring: Z64, len: n }), (8000, 8000, 1));
    assert_eq!(cost(Op::TruncA { ring: Z32, len: n, shift: 8 }), (4000, 5000, 1));
    assert_eq!(cost(Op::TruncA { ring: Z64, len: n, shift: 18 }), (8000, 11000, 1));
    assert_eq!(cost(Op::UpcastA { len: n }), (4000, 12000, 1));
    assert_eq!(cost(Op::DowncastA { len: n, shift: 10 }), (6000, 4000, 1));
    assert_eq!(
        cost(Op::MatMulFixed { ring: Z32, n: 128, k: 768, m: 3072, weight: 0 }),
        (128 * 768 * 4, 128 * 3072 * 4, 1)
    );
    assert_eq!(
        cost(Op::MatMulAA { ring: Z32, batch: 12, n: 128, k: 64, m: 128 }),
        (12 * 2 * 128 * 64 * 4, 12 * 128 * 128 * 4, 1)
    );
    // Sign, l = 32, 64 values (one group): y 256 B, 55 ANDs x 2 words, 1 B2A word; dealer: 32 bit
    // words + 55 AND words + 64 D elements.
    assert_eq!(cost(Op::SignA { ring: Z32, len: 64 }), (256 + 110 * 8 + 8, (32 + 55) * 8 + 256, 7));
}

#[cfg(feature = "alloc")]
#[test]
fn owned_plan_round_trip_and_rejects_garbage() {
    use ditto_core::plan::Plan;
    let plan = Plan::new("test-vectors", vector_plan()).unwrap();
    assert_eq!(
        plan.hash().unwrap(),
        plan_hash(&header("test-vectors", plan.steps.len()), &plan.steps).unwrap()
    );
    let bytes = plan.to_bytes().unwrap();
    assert_eq!(Plan::from_bytes(&bytes).unwrap(), plan);
    // Truncated or corrupted encodings are typed errors, never a different valid plan.
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(Plan::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
    }
    let mut bad = bytes.clone();
    bad[0] = 9; // version
    assert!(matches!(Plan::from_bytes(&bad), Err(Error::Version { .. } | Error::Encoding(_))));
    // A step with zero length inside an otherwise valid plan.
    let mut p = plan.clone();
    p.steps[3] = Step::bare(Op::MulAA { ring: Z32, len: 0 });
    assert_eq!(
        Plan::from_bytes(&p.to_bytes().unwrap()).unwrap_err(),
        Error::BadStep { step: 3, reason: "zero dimension" }
    );
}
