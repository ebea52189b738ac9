//! The shipped GPT-2 (models/austen-gpt2) through the Rust loader and f32 float model with its KV
//! cache, against an independent float64 numpy implementation that reruns the whole sequence at
//! every step (scripts/reference/gpt2_numpy.py, committed vectors): logits within 1e-3 at every
//! step and the same greedy tokens.
#![allow(clippy::cast_possible_truncation)]

use ditto_models::gpt2::KvCache;

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn shipped_gpt2_float_matches_the_numpy_reference() {
    let (m, _, _) = ditto_models::shipped::gpt2().unwrap();
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/gpt2-float.json")).unwrap();
    let mut checked = 0;
    for p in v["prompts"].as_array().unwrap() {
        let (prompt, greedy) = (ids(&p["prompt"]), ids(&p["greedy"]));
        let mut cache = KvCache::default();
        let mut logits = m.forward(&prompt, &mut cache).unwrap();
        for (k, step) in p["steps"].as_array().unwrap().iter().enumerate() {
            let near = |i: usize, want: f64| {
                let d = (f64::from(logits[i]) - want).abs();
                assert!(d < 1e-3, "prompt {prompt:?} step {k}: logit {i} is {} not {want} ({d})", logits[i]);
            };
            for (i, want) in step["first"].as_array().unwrap().iter().enumerate() {
                near(i, want.as_f64().unwrap());
            }
            for t in step["top"].as_array().unwrap() {
                near(t[0].as_u64().unwrap() as usize, t[1].as_f64().unwrap());
            }
            let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
            assert_eq!(best as u32, greedy[k], "prompt {prompt:?} step {k}: greedy token");
            checked += 1;
            // The next position goes through the KV cache (the reference reran the sequence).
            logits = m.forward(&[greedy[k]], &mut cache).unwrap();
        }
    }
    assert_eq!(checked, 12);
}
