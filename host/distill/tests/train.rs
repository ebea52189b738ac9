//! Training steps reduce their losses on a fixed batch.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ditto_distill::gpt2::CandleGpt2;
use ditto_distill::student::Mode;
use ditto_distill::train;

fn batch() -> Tensor {
    let ids: Vec<u32> =
        b"It is a truth universally acknowledged, that a single man in possession of a good fortune"
            .iter()
            .map(|&b| u32::from(b))
            .collect();
    Tensor::from_vec(ids[..64].to_vec(), (2, 32), &Device::Cpu).unwrap()
}

#[test]
fn lm_steps_fit_a_fixed_batch() {
    let m = ditto_models::seeded::gpt2_init(ditto_models::seeded::gpt2(1).cfg, 7);
    let model = CandleGpt2::from_model(&m, DType::F32, &Device::Cpu).unwrap();
    let mut opt =
        AdamW::new(model.params.vars(), ParamsAdamW { lr: 3e-3, ..ParamsAdamW::default() }).unwrap();
    let ids = batch();
    let mut losses = Vec::new();
    for _ in 0..40 {
        let l = train::lm_loss(&model, &Mode::Float, &ids).unwrap();
        losses.push(l.to_scalar::<f32>().unwrap());
        opt.backward_step(&l).unwrap();
    }
    eprintln!("{losses:?}");
    assert!(losses[39] < 0.5 * losses[0], "{losses:?}");
}

/// One AdamW step on a distillation loss lowers that loss on the same batch (the student is
/// the fake-quantized copy of the teacher, so the gradients pass the straight-through
/// estimators).
fn one_step_lowers(stage: u8) -> (f64, f64) {
    let m = ditto_models::seeded::gpt2(2);
    let teacher = CandleGpt2::from_model(&m, DType::F64, &Device::Cpu).unwrap();
    let student = CandleGpt2::from_model(&m, DType::F64, &Device::Cpu).unwrap();
    let mode = Mode::fixed(&ditto_models::quant::QuantConfig::ditto()).unwrap();
    let ids = batch();
    let loss = || train::gpt2_stage_loss(&teacher, &student, &mode, &ids, stage).unwrap();
    let before = loss();
    let mut opt =
        AdamW::new(student.params.vars(), ParamsAdamW { lr: 1e-3, ..ParamsAdamW::default() }).unwrap();
    opt.backward_step(&before).unwrap();
    (before.to_scalar::<f64>().unwrap(), loss().to_scalar::<f64>().unwrap())
}

#[test]
fn one_stage1_step_lowers_the_loss() {
    let (before, after) = one_step_lowers(1);
    assert!(before > 0.0 && after < before, "stage 1: {before} -> {after}");
}

#[test]
fn one_stage2_step_lowers_the_loss() {
    let (before, after) = one_step_lowers(2);
    assert!(before > 0.0 && after < before, "stage 2: {before} -> {after}");
}
