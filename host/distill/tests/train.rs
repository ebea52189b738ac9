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

/// The best-student record: strictly better scores replace it (ties keep the earlier), it
/// survives a new `Checkpoint` on the same directory (a resumed run), and restoring it brings
/// back the parameters offered with it, not the later ones.
#[test]
fn the_best_student_is_kept_and_restored() {
    use ditto_distill::params::Params;
    use ditto_distill::train::{Checkpoint, State};
    let dir = std::env::temp_dir().join(format!("ditto-best-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = |v: f32| {
        Params::from_f32([("w".to_string(), &[v, -v][..], vec![2])], DType::F32, &Device::Cpu).unwrap()
    };
    let at = |step| State { phase: "stage2".into(), step };
    let ckpt = Checkpoint::new(&dir);
    assert!(ckpt.best().unwrap().is_none());
    assert!(ckpt.offer_best(&p(1.0), &at(1), 50.0).unwrap());
    assert!(!ckpt.offer_best(&p(2.0), &at(2), 40.0).unwrap());
    assert!(!ckpt.offer_best(&p(3.0), &at(3), 50.0).unwrap());
    assert!(!ckpt.offer_best(&p(9.0), &at(9), f64::NAN).unwrap());
    let resumed = Checkpoint::new(&dir);
    assert!(resumed.offer_best(&p(4.0), &at(4), 62.5).unwrap());
    assert!(!resumed.offer_best(&p(5.0), &at(5), 60.0).unwrap());
    let live = p(5.0);
    let b = resumed.restore_best(&live).unwrap().unwrap();
    assert_eq!((b.at, b.score), (at(4), 62.5));
    assert_eq!(live.f32_data("w").unwrap(), vec![4.0, -4.0]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stage 2 with gold labels mixes the soft cross-entropy (over every row) with the hard one (over
/// the labelled first rows), checked against the formula in plain f64.
#[test]
fn the_labelled_stage2_loss_is_the_weighted_mix() {
    let s = [[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]];
    let t = [[1.0, 0.0], [-0.5, 0.5], [0.0, 3.0]];
    let labels = [1u32, 0];
    let dev = Device::Cpu;
    let tensor = |x: &[[f64; 2]; 3]| Tensor::new(x, &dev).unwrap();
    let log_softmax = |r: &[f64; 2]| {
        let m = r[0].max(r[1]);
        let z = ((r[0] - m).exp() + (r[1] - m).exp()).ln() + m;
        [r[0] - z, r[1] - z]
    };
    let soft = s.iter().zip(&t).map(|(si, ti)| {
        let (ls, lt) = (log_softmax(si), log_softmax(ti));
        -(lt[0].exp() * ls[0] + lt[1].exp() * ls[1])
    });
    let soft = soft.sum::<f64>() / 3.0;
    let hard = labels.iter().zip(&s).map(|(&l, si)| -log_softmax(si)[l as usize]).sum::<f64>() / 2.0;
    for w in [0.0, 0.3, 1.0] {
        let got = ditto_distill::bert::labelled_stage2_loss(&tensor(&s), &tensor(&t), &labels, w)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let want = (1.0 - w) * soft + w * hard;
        assert!((got - want).abs() < 1e-12, "w {w}: {got} vs {want}");
    }
    // No labelled rows: the teacher's term alone, whatever the weight.
    let got = ditto_distill::bert::labelled_stage2_loss(&tensor(&s), &tensor(&t), &[], 0.7).unwrap();
    assert!((got.to_scalar::<f64>().unwrap() - soft).abs() < 1e-12);
}

/// A uniform soup: every parameter becomes the element-wise mean of the models', and models
/// that lack a tensor or disagree on its shape are refused.
#[test]
fn set_mean_averages_every_parameter() {
    use ditto_distill::params::Params;
    let p = |w: &[f32], b: &[f32]| {
        Params::from_f32(
            [("w".to_string(), w, vec![2, 2]), ("b".to_string(), b, vec![b.len()])],
            DType::F64,
            &Device::Cpu,
        )
        .unwrap()
    };
    let (x, y, z) = (
        p(&[1.0, -2.0, 0.5, 8.0], &[3.0, 0.0]),
        p(&[0.0, 1.0, 0.25, -8.0], &[0.0, 1.5]),
        p(&[2.0, 4.0, 0.0, 3.0], &[-3.0, 1.5]),
    );
    let out = p(&[0.0; 4], &[0.0; 2]);
    out.set_mean(&[&x, &y, &z]).unwrap();
    let want_w = [1.0, 1.0, 0.25, 1.0];
    assert_eq!(out.f32_data("w").unwrap(), want_w);
    assert_eq!(out.f32_data("b").unwrap(), vec![0.0, 1.0]);
    let short = p(&[0.0; 4], &[0.0; 3]);
    assert!(out.set_mean(&[&x, &short]).unwrap_err().to_string().contains("b has shape [3], expected [2]"));
    assert!(out.set_mean(&[]).is_err());
}
