//! The plaintext reference's range checks at the edges of every admitted range (core's `trunc`
//! and `convert` module docs): the last admitted value on each side passes, the first value
//! outside is reported with its operation, step, layer, tag, count, worst value and bound; the
//! planning and secure engines report nothing.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use ditto_core::plan::Tag;
use ditto_mpc::range::Bound;
use ditto_mpc::{Engine, Shared};

fn i32s(v: &[i64]) -> Shared<u32> {
    Shared { data: v.iter().map(|x| *x as u32).collect(), shape: vec![v.len()], frac: 8 }
}

fn i64s(v: &[i64], frac: u32) -> Shared<u64> {
    Shared { data: v.iter().map(|x| *x as u64).collect(), shape: vec![v.len()], frac }
}

#[tokio::test]
async fn each_admitted_range_is_checked_at_its_edges() {
    let mut e = Engine::plaintext();
    e.context(Tag::LayerNorm, 3);
    // Truncation in Z_2^32: [-2^30, 2^30).
    e.trunc_a(&i32s(&[(1 << 30) - 1, -(1 << 30), 0]), 4).await.unwrap();
    e.trunc_a(&i32s(&[1 << 30, 5, -(1 << 30) - 7]), 4).await.unwrap();
    // Truncation in Z_2^64: [-2^62, 2^62).
    e.trunc_a(&i64s(&[(1 << 62) - 1, -(1 << 62)], 20), 10).await.unwrap();
    e.trunc_a(&i64s(&[1 << 62], 20), 10).await.unwrap();
    // Upcast: [-2^30, 2^30] (2^30 itself admitted).
    e.upcast_a(&i32s(&[1 << 30, -(1 << 30)])).await.unwrap();
    e.upcast_a(&i32s(&[(1 << 30) + 1])).await.unwrap();
    // Downcast by 10: [-2^41, 2^41).
    e.downcast_a(&i64s(&[(1 << 41) - 1, -(1 << 41)], 18), 10).await.unwrap();
    e.downcast_a(&i64s(&[-(1 << 41) - 1], 18), 10).await.unwrap();
    // Narrow sign: [-2^31, 2^31).
    e.sign_low_a(&i64s(&[(1 << 31) - 1, -(1 << 31)], 18)).await.unwrap();
    e.sign_low_a(&i64s(&[1 << 31], 18)).await.unwrap();
    let r = e.range_report();
    let got: Vec<(&str, u32, usize, f64)> =
        r.issues.iter().map(|i| (i.op, i.step, i.count, i.worst)).collect();
    assert_eq!(
        got,
        vec![
            ("trunc_a", 1, 2, -(((1u64 << 30) + 7) as f64) / 256.0),
            ("trunc_a", 3, 1, (1u64 << 62) as f64 / 1048576.0),
            ("upcast_a", 5, 1, ((1u64 << 30) + 1) as f64 / 256.0),
            ("downcast_a", 7, 1, -(((1u64 << 41) + 1) as f64) / 262144.0),
            ("sign_low_a", 9, 1, (1u64 << 31) as f64 / 262144.0),
        ],
        "{r:#?}"
    );
    assert!(r.issues.iter().all(|i| i.layer == 3 && i.tag == Tag::LayerNorm));
    assert_eq!(r.issues[0].bound, Bound::Int { min: -(1 << 30), max: (1 << 30) - 1 });
    assert_eq!(r.issues[2].bound, Bound::Int { min: -(1 << 30), max: 1 << 30 });
    let line = r.issues[0].to_string();
    assert!(
        line.starts_with(
            "trunc_a at step 1 (layer 3, LayerNorm): 2 of 3 values outside [-4194304, 4194303.99609375]"
        ),
        "{line}"
    );
}

#[tokio::test]
async fn reciprocal_and_rsqrt_report_inputs_outside_their_octaves() {
    let mut e = Engine::plaintext();
    let f = 18;
    let fx = |v: f64| (v * f64::from(1u32 << f)) as i64;
    // Octaves [2^-2, 2^3): 0.25 and just under 8 are inside, 0.24 and 8 are not.
    e.reciprocal(&i64s(&[fx(0.25), fx(7.99)], f), -2, 3).await.unwrap();
    e.rsqrt(&i64s(&[fx(0.25), fx(7.99)], f), -2, 3).await.unwrap();
    assert!(e.range_report().is_clean(), "{:#?}", e.range_report());
    e.reciprocal(&i64s(&[fx(0.24), fx(1.0), fx(9.0)], f), -2, 3).await.unwrap();
    e.rsqrt(&i64s(&[fx(100.0)], f), -2, 3).await.unwrap();
    let r = e.range_report();
    // rsqrt's Newton steps diverge from 100 (outside its octaves): its own truncations then
    // overflow too, and are reported after it.
    assert!(r.issues.len() >= 2, "{r:#?}");
    let trunc = |op: &str| op == "trunc_a" || op == "trunc_mul";
    assert!(r.issues[2..].iter().all(|i| trunc(i.op) && i.step > r.issues[1].step), "{r:#?}");
    assert_eq!((r.issues[0].op, r.issues[0].count, r.issues[0].worst), ("reciprocal", 2, 9.0));
    assert_eq!((r.issues[1].op, r.issues[1].count, r.issues[1].worst), ("rsqrt", 1, 100.0));
    assert_eq!(r.issues[1].bound_text(), "[2^-2, 2^3)");
}

#[tokio::test]
async fn only_the_plaintext_reference_checks() {
    let mut e = Engine::planner();
    e.trunc_a(&i32s(&[1 << 30]), 4).await.unwrap();
    assert!(e.range_report().is_clean());
}
