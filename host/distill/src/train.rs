//! Training loops: language-model pre-training of a float GPT-2 (the teacher of the default
//! model) and the two QAD stages, with AdamW, warm-up and cosine decay, and checkpoints a run
//! resumes from.

use std::path::{Path, PathBuf};

use candle_core::{D, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use crate::DistillError;
use crate::data::SplitMix;
use crate::gpt2::CandleGpt2;
use crate::params::Params;
use crate::student::{Mode, Trace};

/// Optimizer and schedule settings.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Optimizer steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Positions per sequence.
    pub seq: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// Seed of the batch sampling.
    pub seed: u64,
    /// Save a checkpoint every this many steps (and at the end).
    pub every: usize,
}

impl TrainOptions {
    /// The learning rate at `step`: linear warm-up, then cosine decay to a tenth.
    pub fn lr_at(&self, step: usize) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let (s, w, n) = (step as f64, self.warmup.max(1) as f64, self.steps.max(1) as f64);
        if s < w {
            return self.lr * (s + 1.0) / w;
        }
        let t = ((s - w) / (n - w).max(1.0)).min(1.0);
        self.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
    }
}

/// Where a run keeps its checkpoint: `params.safetensors` and `state.json` in a directory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
}

/// A checkpoint's progress record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// What is being trained ("lm", "stage1", "stage2").
    pub phase: String,
    /// Steps of that phase done.
    pub step: usize,
}

/// The best student seen so far by a held-out score (higher is better): where it was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Phase and steps done when it was taken.
    pub at: State,
    /// Its score (e.g. validation accuracy in percent).
    pub score: f64,
}

impl Checkpoint {
    /// A checkpoint in `dir` (created when first saved).
    pub fn new(dir: &Path) -> Self {
        Checkpoint { dir: dir.to_path_buf() }
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The saved state, if any.
    pub fn state(&self) -> Result<Option<State>, DistillError> {
        read_json(&self.state_path())
    }

    /// Loads the saved parameters into `params` and returns the state.
    pub fn restore(&self, params: &Params) -> Result<Option<State>, DistillError> {
        let Some(s) = self.state()? else { return Ok(None) };
        params.load_values(&self.dir.join("params.safetensors"))?;
        Ok(Some(s))
    }

    /// Saves the parameters (f32) and the state.
    pub fn save(&self, params: &Params, state: &State) -> Result<(), DistillError> {
        self.save_params(params, "params.safetensors")?;
        write_json(&self.state_path(), state)
    }

    fn save_params(&self, params: &Params, name: &str) -> Result<(), DistillError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| DistillError::Io { path: self.dir.clone(), source: e })?;
        params.save(&self.dir.join(name), candle_core::DType::F32)
    }

    fn best_path(&self) -> PathBuf {
        self.dir.join("best.json")
    }

    /// The best student recorded so far, if any.
    pub fn best(&self) -> Result<Option<Best>, DistillError> {
        read_json(&self.best_path())
    }

    /// Keeps `params` (in `best.safetensors`) when `score` beats the best recorded so far
    /// (strictly, so ties keep the earlier student); returns whether it did. The record
    /// lives beside the checkpoint, so a resumed run goes on comparing against it.
    pub fn offer_best(&self, params: &Params, at: &State, score: f64) -> Result<bool, DistillError> {
        if !score.is_finite() || self.best()?.is_some_and(|b| b.score >= score) {
            return Ok(false);
        }
        self.save_params(params, "best.safetensors")?;
        write_json(&self.best_path(), &Best { at: at.clone(), score })?;
        Ok(true)
    }

    /// Loads the best student's parameters into `params` and returns its record.
    pub fn restore_best(&self, params: &Params) -> Result<Option<Best>, DistillError> {
        let Some(b) = self.best()? else { return Ok(None) };
        params.load_values(&self.dir.join("best.safetensors"))?;
        Ok(Some(b))
    }
}

/// A JSON record, or `None` when the file does not exist.
fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>, DistillError> {
    match std::fs::read_to_string(p) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| DistillError::Checkpoint { path: p.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DistillError::Io { path: p.to_path_buf(), source: e }),
    }
}

/// Writes a JSON record through a temporary file and a rename, so a crash leaves the old one.
fn write_json<T: Serialize>(p: &Path, value: &T) -> Result<(), DistillError> {
    let io = |e| DistillError::Io { path: p.to_path_buf(), source: e };
    let tmp = p.with_extension("json.part");
    std::fs::write(&tmp, serde_json::to_string(value).unwrap_or_default()).map_err(io)?;
    std::fs::rename(&tmp, p).map_err(io)
}

/// Random windows of `seq + 1` tokens from a token stream, `batch` at a time.
#[derive(Clone, Debug)]
pub struct Windows<'a> {
    tokens: &'a [u32],
    rng: SplitMix,
}

impl<'a> Windows<'a> {
    /// Windows of `tokens` sampled with `seed`.
    pub fn new(tokens: &'a [u32], seed: u64) -> Self {
        Windows { tokens, rng: SplitMix::new(seed) }
    }

    /// [batch, seq + 1] token ids.
    pub fn batch(&mut self, batch: usize, seq: usize, dev: &Device) -> Result<Tensor, DistillError> {
        if self.tokens.len() <= seq + 1 {
            return Err(DistillError::Data(format!(
                "{} tokens, fewer than a window of {}",
                self.tokens.len(),
                seq + 1
            )));
        }
        let mut ids = Vec::with_capacity(batch * (seq + 1));
        for _ in 0..batch {
            let s = self.rng.below(self.tokens.len() - seq - 1);
            ids.extend_from_slice(&self.tokens[s..s + seq + 1]);
        }
        Ok(Tensor::from_vec(ids, (batch, seq + 1), dev)?)
    }
}

/// Mean next-token cross-entropy (nats) of `model` on windows [batch, seq + 1].
pub fn lm_loss(model: &CandleGpt2, mode: &Mode, ids: &Tensor) -> Result<Tensor, DistillError> {
    let (b, t1) = ids.dims2()?;
    let t = t1 - 1;
    let (logits, _) = model.forward(&ids.narrow(1, 0, t)?, mode, false)?;
    let tgt = ids.narrow(1, 1, t)?.flatten_all()?;
    Ok(candle_nn::loss::cross_entropy(&logits.reshape((b * t, model.cfg.vocab_size))?, &tgt)?)
}

/// Perplexity of `model` on `tokens` in consecutive windows of `seq` predicted positions
/// (each window starts afresh, as the secure model does with an empty cache).
pub fn perplexity(model: &CandleGpt2, mode: &Mode, tokens: &[u32], seq: usize) -> Result<f64, DistillError> {
    let dev = Device::Cpu;
    let (mut sum, mut n) = (0f64, 0usize);
    for w in tokens.windows(seq + 1).step_by(seq) {
        let ids = Tensor::from_slice(w, (1, seq + 1), &dev)?;
        let l: f64 = lm_loss(model, mode, &ids)?.to_dtype(candle_core::DType::F64)?.to_scalar()?;
        sum += l * seq as f64;
        n += seq;
    }
    if n == 0 {
        return Err(DistillError::Data("no full window to evaluate".into()));
    }
    #[allow(clippy::cast_precision_loss)]
    Ok((sum / n as f64).exp())
}

/// The stage-1 loss: mean over layers of the MSE between student and teacher attention scores
/// plus the MSE between their hidden states.
pub fn stage1_loss(student: &Trace, teacher: &Trace) -> Result<Tensor, DistillError> {
    let mut terms = Vec::new();
    for (s, t) in student.scores.iter().zip(&teacher.scores) {
        terms.push(candle_nn::loss::mse(s, &t.detach())?);
    }
    for (s, t) in student.hidden.iter().zip(&teacher.hidden) {
        terms.push(candle_nn::loss::mse(s, &t.detach())?);
    }
    let n = terms.len();
    Ok((Tensor::stack(&terms, 0)?.sum_all()? / (n.max(1) as f64))?)
}

/// The stage-2 loss: soft cross-entropy of the student's logits against the teacher's
/// distribution (temperature 1), averaged over positions.
pub fn stage2_loss(student: &Tensor, teacher: &Tensor) -> Result<Tensor, DistillError> {
    let p = candle_nn::ops::softmax_last_dim(&teacher.detach())?;
    let ls = candle_nn::ops::log_softmax(student, D::Minus1)?;
    let per = (p * ls)?.sum(D::Minus1)?.neg()?;
    Ok(per.mean_all()?)
}

/// Progress reports: (phase, step done, steps, loss).
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize, f64);

/// Runs `opts.steps` AdamW steps of `loss` (given the step index) over `params` under the
/// phase name `phase`, resuming from and saving to `ckpt`; returns the last loss.
pub fn run(
    phase: &str,
    params: &Params,
    opts: &TrainOptions,
    ckpt: Option<&Checkpoint>,
    loss: &mut dyn FnMut(usize) -> Result<Tensor, DistillError>,
    progress: Progress<'_>,
) -> Result<f64, DistillError> {
    let mut start = 0;
    if let Some(c) = ckpt
        && let Some(s) = c.state()?
        && s.phase == phase
    {
        c.restore(params)?;
        start = s.step;
    }
    let mut opt = AdamW::new(
        params.vars(),
        ParamsAdamW { lr: opts.lr_at(start), weight_decay: 0.01, ..ParamsAdamW::default() },
    )?;
    let mut last = f64::NAN;
    for step in start..opts.steps {
        opt.set_learning_rate(opts.lr_at(step));
        let l = loss(step)?;
        last = l.to_dtype(candle_core::DType::F64)?.to_scalar()?;
        if !last.is_finite() {
            return Err(DistillError::Data(format!("{phase}: the loss diverged at step {step}")));
        }
        opt.backward_step(&l)?;
        progress(phase, step + 1, opts.steps, last);
        if let Some(c) = ckpt
            && ((step + 1) % opts.every.max(1) == 0 || step + 1 == opts.steps)
        {
            c.save(params, &State { phase: phase.into(), step: step + 1 })?;
        }
    }
    Ok(last)
}

/// One distillation loss of a GPT-2 student on token ids [batch, positions]: stage 1 (scores
/// and hidden states) or stage 2 (logits).
pub fn gpt2_stage_loss(
    teacher: &CandleGpt2,
    student: &CandleGpt2,
    mode: &Mode,
    ids: &Tensor,
    stage: u8,
) -> Result<Tensor, DistillError> {
    let (tl, tt) = teacher.forward(ids, &Mode::Float, stage == 1)?;
    let (sl, st) = student.forward(ids, mode, stage == 1)?;
    if stage == 1 { stage1_loss(&st, &tt) } else { stage2_loss(&sl, &tl) }
}

/// What every distillation names: the float teacher's directory, where the student and its
/// checkpoint go, the training data, the student's QuantConfig, and the two stages (stage 1 on
/// every layer's scores and hidden states, stage 2 on the logits).
pub struct Stages<'a> {
    /// The teacher's directory.
    pub teacher: &'a Path,
    /// Where the student and its checkpoint go.
    pub out: &'a Path,
    /// The training data.
    pub data: &'a Path,
    /// The student's QuantConfig.
    pub q: &'a ditto_models::quant::QuantConfig,
    /// Stage 1.
    pub stage1: TrainOptions,
    /// Stage 2.
    pub stage2: TrainOptions,
}
