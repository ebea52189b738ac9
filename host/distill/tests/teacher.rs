//! The candle teachers (`Mode::Float`) compute what ditto-models' f32 float models compute, on
//! the shipped GPT-2 and on a seeded BERT classifier: the distillation trains against the same
//! function the float reference (and its numpy check) defines.

use candle_core::{DType, Device, Tensor};
use ditto_distill::bert::CandleBert;
use ditto_distill::gpt2::CandleGpt2;
use ditto_distill::student::Mode;
use ditto_models::gpt2::KvCache;

fn max_diff(a: &[f64], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - f64::from(*y)).abs()).fold(0.0, f64::max)
}

#[test]
fn candle_gpt2_teacher_equals_the_float_model() {
    let (m, _, _) = ditto_models::shipped::gpt2().unwrap();
    let cm = CandleGpt2::from_model(&m, DType::F64, &Device::Cpu).unwrap();
    let ids: Vec<u32> = vec![101, 5, 300, 42, 7, 900, 17, 64, 1000];
    let n = ids.len();
    let t = Tensor::from_slice(&ids, (1, n), &Device::Cpu).unwrap();
    let (logits, _) = cm.forward(&t, &Mode::Float, false).unwrap();
    let logits = logits.get(0).unwrap();
    // The float model's logits after each prefix (through its KV cache) against candle's at
    // each position of the whole sequence.
    let mut cache = KvCache::default();
    for (i, id) in ids.iter().enumerate() {
        let want = m.forward(&[*id], &mut cache).unwrap();
        let got: Vec<f64> = logits.get(i).unwrap().to_vec1().unwrap();
        assert_eq!(got.len(), want.len());
        let d = max_diff(&got, &want);
        assert!(d < 1e-3, "position {i}: logits differ by {d}");
    }
}

#[test]
fn candle_bert_teacher_equals_the_float_model() {
    let m = ditto_models::seeded::classifier(3);
    let cm = CandleBert::from_model(&m, DType::F64, &Device::Cpu).unwrap();
    let ids = ditto_models::seeded::tokenize("a fine, witty film");
    let t = Tensor::from_slice(&ids, (1, ids.len()), &Device::Cpu).unwrap();
    let (logits, _) = cm.forward(&t, &[ids.len()], &Mode::Float, false).unwrap();
    let got: Vec<f64> = logits.get(0).unwrap().to_vec1().unwrap();
    let want = m.classify(&ids).unwrap();
    assert_eq!(got.len(), 2);
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "classifier logits differ by {d}: {got:?} vs {want:?}");
}
