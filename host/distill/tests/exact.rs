//! The candle student's forward pass equals the plaintext fixed-point reference of
//! ditto-models on the same weights, bit for bit (f64).

use candle_core::{DType, Device, Tensor};
use ditto_distill::gpt2::CandleGpt2;
use ditto_distill::student::Mode;
use ditto_models::gpt2::secure::{Gpt2Share, SecCache, SecureGpt2};
use ditto_models::quant::QuantConfig;
use ditto_mpc::{Engine, Shared};

fn reference_gpt2(m: &ditto_models::gpt2::Gpt2, q: &QuantConfig, ids: &[u32]) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let mut e = Engine::plaintext();
        let pm = SecureGpt2::setup(&mut e, Gpt2Share::plaintext(m, q).unwrap()).await.unwrap();
        let v = m.cfg.vocab_size;
        let x = Shared::new(ditto_models::blocks::one_hot(ids, v).unwrap(), &[ids.len(), v], 0).unwrap();
        let y = pm.forward(&mut e, &x, &mut SecCache::default()).await.unwrap();
        y.data.iter().map(|r| ditto_core::fixed::decode(*r, y.frac)).collect()
    })
}

#[test]
fn gpt2_student_equals_fixed_point_reference() {
    let m = ditto_models::seeded::gpt2(5);
    let q = QuantConfig::ditto();
    let cm = CandleGpt2::from_model(&m, DType::F64, &Device::Cpu).unwrap();
    let ids: Vec<u32> = b"Mr. Darcy, 17!".iter().map(|&b| u32::from(b)).collect();
    let mode = Mode::fixed(&q).unwrap();
    for n in [1, 5, ids.len()] {
        let t = Tensor::from_slice(&ids[..n], (1, n), &Device::Cpu).unwrap();
        let (logits, _) = cm.forward(&t, &mode, false).unwrap();
        let last: Vec<f64> = logits.get(0).unwrap().get(n - 1).unwrap().to_vec1().unwrap();
        let r = reference_gpt2(&m, &q, &ids[..n]);
        let diff = last.iter().zip(&r).filter(|(a, b)| a != b).count();
        assert_eq!(
            diff,
            0,
            "{n} tokens: {diff} of {} logits differ, e.g. {:?} vs {:?}",
            r.len(),
            &last[..4],
            &r[..4]
        );
    }
}

fn reference_bert(m: &ditto_models::bert::Bert, q: &QuantConfig, ids: &[u32]) -> Vec<f64> {
    use ditto_models::bert::secure::{BertShare, SecureBert};
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let mut e = Engine::plaintext();
        let pm = SecureBert::setup(&mut e, BertShare::plaintext(m, q).unwrap()).await.unwrap();
        let v = m.cfg.vocab_size;
        let x = Shared::new(ditto_models::blocks::one_hot(ids, v).unwrap(), &[ids.len(), v], 0).unwrap();
        let y = pm.classify(&mut e, &x).await.unwrap();
        y.data.iter().map(|r| ditto_core::fixed::decode(*r, y.frac)).collect()
    })
}

#[test]
fn bert_student_equals_fixed_point_reference_padded_or_not() {
    use ditto_distill::bert::CandleBert;
    let m = ditto_models::seeded::classifier(4);
    let q = QuantConfig::ditto();
    let cm = CandleBert::from_model(&m, DType::F64, &Device::Cpu).unwrap();
    let mode = Mode::fixed(&q).unwrap();
    let a = ditto_models::seeded::tokenize("a fine, witty film");
    let b = ditto_models::seeded::tokenize("dull!");
    // Two sentences in one padded batch: each row equals its own unpadded reference.
    let t = a.len();
    let mut ids = a.clone();
    ids.extend(&b);
    ids.resize(2 * t, 0);
    let batch = Tensor::from_vec(ids, (2, t), &Device::Cpu).unwrap();
    let (logits, _) = cm.forward(&batch, &[a.len(), b.len()], &mode, false).unwrap();
    for (row, s) in [&a, &b].into_iter().enumerate() {
        let got: Vec<f64> = logits.get(row).unwrap().to_vec1().unwrap();
        let want = reference_bert(&m, &q, s);
        assert_eq!(want.len(), 2);
        assert_eq!(got, want, "sentence {row}");
    }
}
