//! The sentiment recipe: a BERT classifier (e.g. all-MiniLM-L6-v2 with a two-label head) on
//! the polarity sentences (80/10/10 splits), its batches and their augmentation, predictions and
//! accuracy, loading and saving classifier directories, and its quantization-aware distillation
//! (stage 1 on every layer's scores and hidden states, stage 2 on the logits; validation reports
//! and early stopping on them).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ditto_models::bert::Bert;
use ditto_models::config::BertConfig;
use ditto_models::quant::QuantConfig;
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;

use crate::bert::{self, CandleBert};
use crate::data::{self, SplitMix};
use crate::student::Mode;
use crate::train::{self, Checkpoint, Stages, State, TrainOptions};
use crate::{DistillError, io};

/// A tokenized, labelled sentence.
pub type Example = (Vec<u32>, u32);

/// Token ids of every sentence, at most `max` tokens (longer ones keep their first max - 1
/// tokens and the final [SEP]).
pub fn tokenize(tok: &Tokenizer, rows: &data::Labelled, max: usize) -> Result<Vec<Example>, DistillError> {
    rows.iter()
        .map(|(label, text)| {
            let mut ids = tok.encode(text, usize::MAX)?;
            if ids.len() > max {
                let sep = ids[ids.len() - 1];
                ids.truncate(max - 1);
                ids.push(sep);
            }
            Ok((ids, *label))
        })
        .collect()
}

/// The polarity splits (training, validation, test) from `path`, tokenized (64 tokens at most).
pub fn splits(tok: &Tokenizer, path: &Path) -> Result<[Vec<Example>; 3], DistillError> {
    let s = data::polarity(path)?;
    Ok([tokenize(tok, &s.train, 64)?, tokenize(tok, &s.valid, 64)?, tokenize(tok, &s.test, 64)?])
}

/// A padded batch: ids [n, longest], lengths, labels.
pub fn batch(items: &[&Example]) -> Result<(Tensor, Vec<usize>, Vec<u32>), DistillError> {
    let t = items.iter().map(|(ids, _)| ids.len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(items.len() * t);
    for (s, _) in items {
        ids.extend(s);
        ids.extend(std::iter::repeat_n(0, t - s.len()));
    }
    let lengths = items.iter().map(|(s, _)| s.len()).collect();
    let labels = items.iter().map(|(_, l)| *l).collect();
    Ok((Tensor::from_vec(ids, (items.len(), t), &Device::Cpu)?, lengths, labels))
}

/// The `k`-th batch of an epoch-wise shuffled pass over `items` (shuffle seeded per epoch).
pub fn nth_batch(items: &[Example], size: usize, seed: u64, k: usize) -> Vec<&Example> {
    let per = items.len().div_ceil(size).max(1);
    let mut order: Vec<usize> = (0..items.len()).collect();
    SplitMix::new(seed ^ (k / per) as u64).shuffle(&mut order);
    let i = (k % per) * size;
    order[i..(i + size).min(items.len())].iter().map(|&j| &items[j]).collect()
}

/// The tokens between a sentence's [CLS] and [SEP] (none for a shorter list).
fn inner(ids: &[u32]) -> &[u32] {
    ids.get(1..ids.len().saturating_sub(1)).unwrap_or(&[])
}

/// [`nth_batch`] with its last `share` of sentences replaced by [`data::perturb`]ed copies
/// (drawn deterministically from `seed`, `k` and `stage`, so a resumed run sees the same
/// batches), and the number of unperturbed sentences (the first ones; their labels hold).
fn augmented_batch(
    items: &[Example],
    pool: &[u32],
    share: f64,
    (size, seed): (usize, u64),
    k: usize,
    stage: u8,
) -> (Vec<Example>, usize) {
    let mut out: Vec<Example> = nth_batch(items, size, seed, k).into_iter().cloned().collect();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let perturbed = ((share * out.len() as f64).round() as usize).min(out.len());
    let mut rng = SplitMix::new(seed ^ 0xA5A5_0000 ^ ((k as u64) << 8) ^ u64::from(stage));
    let n = out.len();
    for (ids, _) in &mut out[n - perturbed..] {
        *ids = data::perturb(ids, pool, &mut rng);
    }
    (out, n - perturbed)
}

/// Predicted labels of `items` under `mode`.
pub fn predict(m: &CandleBert, mode: &Mode, items: &[Example]) -> Result<Vec<u32>, DistillError> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(32) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let (ids, lengths, _) = batch(&refs)?;
        let (logits, _) = m.forward(&ids, &lengths, mode, false)?;
        out.extend(bert::predictions(&logits)?);
    }
    Ok(out)
}

/// Percentage of `pred` equal to the labels of `items`.
pub fn accuracy(pred: &[u32], items: &[Example]) -> f64 {
    let ok = pred.iter().zip(items).filter(|(p, (_, l))| *p == l).count();
    #[allow(clippy::cast_precision_loss)]
    let a = 100.0 * ok as f64 / items.len().max(1) as f64;
    a
}

/// A directory's config as a two-label classifier (a model without a head gets one).
fn labelled_config(dir: &Path) -> Result<BertConfig, DistillError> {
    let mut cfg = BertConfig::load(&dir.join("config.json"))?;
    if cfg.num_labels().is_none() {
        cfg.architectures = vec!["BertForSequenceClassification".into()];
        cfg.id2label =
            [("0", "negative"), ("1", "positive")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    }
    Ok(cfg)
}

/// Loads a BERT classifier directory (a model without a head gets a fresh one, seeded).
pub fn load(dir: &Path, dtype: DType, seed: u64) -> Result<(CandleBert, Tokenizer), DistillError> {
    let cfg = labelled_config(dir)?;
    let mut w = Weights::load(&dir.join("model.safetensors"))?;
    let (h, labels) = (cfg.hidden_size, cfg.num_labels().unwrap_or(2));
    if !w.names().any(|n| n.ends_with("classifier.weight")) {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let mut rng = ditto_core::prg::Prg::with_counter(&key, 7);
        let a = 0.02 * 3f32.sqrt();
        w.insert("pooler.dense.weight", &[h, h], ditto_models::seeded::uniform(&mut rng, h * h, a));
        w.insert("pooler.dense.bias", &[h], vec![0.0; h]);
        w.insert("classifier.weight", &[labels, h], ditto_models::seeded::uniform(&mut rng, labels * h, a));
        w.insert("classifier.bias", &[labels], vec![0.0; labels]);
    }
    let m = Bert::load(&cfg, &w)?;
    let tok = Tokenizer::load(&dir.join("tokenizer.json"))?;
    Ok((CandleBert::from_model(&m, dtype, &Device::Cpu)?, tok))
}

/// Writes a classifier directory: config.json, model.safetensors (`tensors`, else the model's
/// f32 parameters), and the tokenizer of `from`.
pub fn save(
    m: &CandleBert,
    from: &Path,
    out: &Path,
    tensors: Option<std::collections::BTreeMap<String, Tensor>>,
) -> Result<(), DistillError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let cfg = serde_json::to_string_pretty(&m.cfg).map_err(|e| DistillError::Data(e.to_string()))?;
    let path = out.join("config.json");
    std::fs::write(&path, cfg).map_err(io(&path))?;
    match tensors {
        Some(t) => crate::params::Params::save_tensors(&t, &out.join("model.safetensors"))?,
        None => m.params.save(&out.join("model.safetensors"), DType::F32)?,
    }
    if from != out {
        let path = out.join("tokenizer.json");
        std::fs::copy(from.join("tokenizer.json"), &path).map_err(io(&path))?;
    }
    Ok(())
}

/// Writes a distilled student: its weights encoded at `q`'s fixed-point scales, and quant.json.
pub fn save_student(m: &CandleBert, from: &Path, out: &Path, q: &QuantConfig) -> Result<(), DistillError> {
    save(m, from, out, Some(m.fixed_point_tensors(q)?))?;
    let qp = out.join("quant.json");
    let text = serde_json::to_string_pretty(q).map_err(|e| DistillError::Data(e.to_string()))?;
    std::fs::write(&qp, text).map_err(io(&qp))
}

/// A distillation of a classifier: teacher directory, output, data, the student's QuantConfig
/// and the two stages.
pub struct Distillation<'a> {
    /// Teacher, output, data, QuantConfig and stages.
    pub stages: Stages<'a>,
    /// Share of each batch that is perturbed training sentences the teacher labels, in [0, 1].
    pub augment: f64,
    /// Weight of the gold labels (of the unperturbed sentences) in stage 2's loss, in [0, 1].
    pub hard_label: f64,
    /// Report the student's validation accuracy every this many steps (0: never).
    pub eval_every: usize,
    /// Keep the student with the best validation accuracy among the reports and the last.
    pub keep_best: bool,
}

/// What a distillation reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// Resumed from a checkpoint.
    Resumed(State),
    /// The student's validation accuracy at a step of a stage.
    Validation {
        /// 1 or 2.
        stage: u8,
        /// The step.
        step: usize,
        /// Accuracy in percent.
        accuracy: f64,
    },
    /// The student kept: the best reported (Some, with its score) or the last.
    Kept {
        /// Where the best was, if not the last.
        best: Option<(State, f64)>,
        /// The last student's validation accuracy.
        last: f64,
    },
    /// Test accuracies at the end: the float teacher, the student in its mode, the teacher
    /// undistilled in that mode.
    Test {
        /// The float teacher.
        teacher: f64,
        /// The student.
        student: f64,
        /// The teacher under the student's QuantConfig.
        undistilled: f64,
    },
}

impl Distillation<'_> {
    /// Runs both stages (resuming from the checkpoint in `out`), then writes the student.
    pub fn run(
        &self,
        progress: &mut dyn FnMut(&str, usize, usize, f64),
        note: &mut dyn FnMut(Note),
    ) -> Result<(), DistillError> {
        if !(0.0..=1.0).contains(&self.augment) {
            return Err(DistillError::Options(format!(
                "--augment {} is not a share in [0, 1]",
                self.augment
            )));
        }
        if !(0.0..=1.0).contains(&self.hard_label) {
            return Err(DistillError::Options(format!(
                "--hard-label {} is not a weight in [0, 1]",
                self.hard_label
            )));
        }
        if self.keep_best && self.eval_every == 0 {
            return Err(DistillError::Options(
                "--keep-best chooses by validation accuracy: it needs --eval-every N (N > 0)".into(),
            ));
        }
        let mode = Mode::fixed(self.stages.q)?;
        let (teacher, tok) = load(self.stages.teacher, DType::F32, 0)?;
        let (student, _) = load(self.stages.teacher, DType::F32, 0)?;
        let [tr, va, te] = splits(&tok, self.stages.data)?;
        let ckpt = Checkpoint::new(&self.stages.out.join("checkpoint"));
        let state = ckpt.state()?;
        if let Some(s) = &state {
            note(Note::Resumed(s.clone()));
        }
        let pool: Vec<u32> = tr.iter().flat_map(|(s, _)| inner(s).iter().copied()).collect();
        let mut step = |stage: u8, k: usize, o: &TrainOptions, seed: u64| -> Result<Tensor, DistillError> {
            let (items, clean) = augmented_batch(&tr, &pool, self.augment, (o.batch, seed), k, stage);
            let (ids, lengths, labels) = batch(&items.iter().collect::<Vec<_>>())?;
            // Stage 2's step 0 is the student stage 1 left.
            if self.eval_every > 0 && (k > 0 || stage == 2) && k.is_multiple_of(self.eval_every) {
                let accuracy = accuracy(&predict(&student, &mode, &va)?, &va);
                note(Note::Validation { stage, step: k, accuracy });
                if self.keep_best {
                    ckpt.offer_best(
                        &student.params,
                        &State { phase: format!("stage{stage}"), step: k },
                        accuracy,
                    )?;
                }
            }
            let (tl, tt) = teacher.forward(&ids, &lengths, &Mode::Float, stage == 1)?;
            let (sl, st) = student.forward(&ids, &lengths, &mode, stage == 1)?;
            if stage == 1 {
                train::stage1_loss(&st, &tt)
            } else {
                bert::labelled_stage2_loss(&sl, &tl, &labels[..clean], self.hard_label)
            }
        };
        if state.as_ref().is_some_and(|s| s.phase == "stage2") {
            ckpt.restore(&student.params)?;
        } else {
            let o1 = &self.stages.stage1;
            train::run(
                "stage1",
                &student.params,
                o1,
                Some(&ckpt),
                &mut |k| step(1, k, o1, o1.seed),
                progress,
            )?;
        }
        let o2 = &self.stages.stage2;
        train::run(
            "stage2",
            &student.params,
            o2,
            Some(&ckpt),
            &mut |k| step(2, k, o2, o2.seed ^ 2),
            progress,
        )?;
        if self.keep_best {
            note(keep_best(&ckpt, &student, &mode, &va, o2.steps)?);
        }
        let acc = |m: &CandleBert, md: &Mode| -> Result<f64, DistillError> {
            Ok(accuracy(&predict(m, md, &te)?, &te))
        };
        note(Note::Test {
            teacher: acc(&teacher, &Mode::Float)?,
            student: acc(&student, &mode)?,
            undistilled: acc(&teacher, &mode)?,
        });
        save_student(&student, self.stages.teacher, self.stages.out, self.stages.q)
    }
}

/// Offers the last student too, then loads the best one reported (ties keep the earlier).
fn keep_best(
    ckpt: &Checkpoint,
    student: &CandleBert,
    mode: &Mode,
    va: &[Example],
    steps: usize,
) -> Result<Note, DistillError> {
    let last = accuracy(&predict(student, mode, va)?, va);
    let end = State { phase: "stage2".into(), step: steps };
    ckpt.offer_best(&student.params, &end, last)?;
    if let Some(b) = ckpt.best()?
        && b.at != end
    {
        ckpt.restore_best(&student.params)?;
        return Ok(Note::Kept { best: Some((b.at, b.score)), last });
    }
    Ok(Note::Kept { best: None, last })
}
