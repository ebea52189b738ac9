//! The plaintext reference's range report on whole models: the built-in BERT and GPT-2 run clean
//! under their presets, and a config whose activations overflow (too many fractional bits for
//! the ring) is reported operation by operation instead of silently computing garbage.

use ditto_models::quant::QuantConfig;
use ditto_models::{range, seeded};

fn hot(mut q: QuantConfig) -> QuantConfig {
    // 14 + 14 fractional bits: values above 4 leave truncation's [-2^30, 2^30) and upcast's
    // [-2^30, 2^30].
    (q.act_frac, q.weight_frac) = (14, 14);
    q.check().unwrap();
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_activations_are_reported_and_the_presets_run_clean() {
    let bert = seeded::model(1);
    let inputs = vec![seeded::tokenize("the quick brown fox"), seeded::tokenize("jumps over the lazy dog")];
    for q in [QuantConfig::accurate(), QuantConfig::ditto()] {
        let r = range::bert(&bert, &q, &inputs).await.unwrap();
        assert!(r.is_clean(), "{q:?}: {:#?}", r.lines(10));
    }
    let r = range::bert(&bert, &hot(QuantConfig::accurate()), &inputs).await.unwrap();
    println!("{}", r.lines(5).join("\n"));
    assert!(!r.is_clean());
    // Attention scores (2 x 14 fractional bits) are upcast with |x| <= 2^30, i.e. 4.
    let first = &r.issues[0];
    assert_eq!(first.op, "upcast_a", "{first}");
    assert!(first.count > 0 && first.worst.abs() > 4.0, "{first}");
    assert!(first.to_string().contains("values outside [-4, 4]"), "{first}");
    assert!(r.issues.iter().any(|i| i.op == "trunc_a"), "linear outputs overflow too");

    let gpt2 = seeded::gpt2(1);
    let ids: Vec<Vec<u32>> = vec!["Hello there".bytes().map(u32::from).collect()];
    let r = range::gpt2(&gpt2, &QuantConfig::accurate(), &ids).await.unwrap();
    assert!(r.is_clean(), "{:#?}", r.lines(10));
    let r = range::gpt2(&gpt2, &hot(QuantConfig::accurate()), &ids).await.unwrap();
    assert!(!r.is_clean());
}
