//! The GPT-2 shipped in ditto loads with its Ditto-mode QuantConfig and, run by the fixed-point
//! reference (what the secure run computes), predicts held-out Austen far better than chance.

use ditto_models::gpt2::secure::{Gpt2Share, SecCache, SecureGpt2};
use ditto_models::quant::QuantConfig;
use ditto_mpc::{Engine, Shared};

#[test]
fn shipped_gpt2_predicts_held_out_austen_in_ditto_mode() {
    let (m, tok, q) = ditto_models::shipped::gpt2().unwrap();
    assert_eq!(q, QuantConfig::ditto());
    // From Persuasion, the novel held out of training (chapter 4).
    let text = "She had been forced into prudence in her youth, she learned romance as she grew older: \
                the natural sequel of an unnatural beginning.";
    let mut ids = tok.encode(text, usize::MAX).unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), text);
    ids.truncate(m.cfg.n_positions);
    let v = m.cfg.vocab_size;
    let nll = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
        let mut e = Engine::plaintext();
        let pm = SecureGpt2::setup(&mut e, Gpt2Share::plaintext(&m, &q).unwrap()).await.unwrap();
        let mut cache = SecCache::default();
        let mut total = 0.0;
        for w in ids.windows(2) {
            let x = Shared::new(ditto_models::blocks::one_hot(&w[..1], v).unwrap(), &[1, v], 0).unwrap();
            let y = pm.forward(&mut e, &x, &mut cache).await.unwrap();
            let l: Vec<f64> = y.data.iter().map(|r| ditto_core::fixed::decode(*r, y.frac)).collect();
            let mx = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + l.iter().map(|a| (a - mx).exp()).sum::<f64>().ln();
            total += lse - l[w[1] as usize];
        }
        total / (ids.len() - 1) as f64
    });
    let ppl = nll.exp();
    // A uniform guess over the vocabulary scores ppl = vocab (1024); the float teacher run in
    // Ditto mode without distillation scores thousands on held-out text.
    eprintln!("shipped model, Ditto-mode fixed-point perplexity on the sentence: {ppl:.1}");
    assert!(ppl < 200.0, "perplexity {ppl:.1} on held-out Austen");
}
