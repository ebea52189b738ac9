//! The language-model recipe: a small GPT-2 pre-trained on Jane Austen's novels (a byte-level
//! BPE and GPT-2's initialisation; Persuasion held out), its quantization-aware distillation
//! (stage 1 on every layer's scores and hidden states, stage 2 on the logits), loading and
//! saving GPT-2 directories, and the negative log-likelihood perplexity is made of.

use std::path::Path;

use candle_core::{DType, Device};
use ditto_models::config::Gpt2Config;
use ditto_models::gpt2::Gpt2;
use ditto_models::quant::QuantConfig;
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;

use crate::data;
use crate::gpt2::CandleGpt2;
use crate::student::Mode;
use crate::train::{self, Checkpoint, Stages, State, TrainOptions, Windows};
use crate::{DistillError, io};

fn json<T: serde::Serialize>(v: &T) -> Result<String, DistillError> {
    serde_json::to_string_pretty(v).map_err(|e| DistillError::Data(e.to_string()))
}

/// Loads an HF GPT-2 directory as a candle model (f32) and its tokenizer.
pub fn load(dir: &Path) -> Result<(CandleGpt2, Tokenizer), DistillError> {
    let cfg = Gpt2Config::load(&dir.join("config.json"))?;
    let m = Gpt2::load(&cfg, &Weights::load(&dir.join("model.safetensors"))?)?;
    let tok = Tokenizer::load(&dir.join("tokenizer.json"))?;
    Ok((CandleGpt2::from_model(&m, DType::F32, &Device::Cpu)?, tok))
}

/// Writes config.json and model.safetensors of `m` to `out`: its f32 parameters, or (a student,
/// with its QuantConfig `q`) its fixed-point model, the values it was trained to use, and
/// quant.json.
pub fn save(m: &CandleGpt2, out: &Path, q: Option<&QuantConfig>) -> Result<(), DistillError> {
    let mut cfg = serde_json::to_value(&m.cfg).map_err(|e| DistillError::Data(e.to_string()))?;
    cfg["model_type"] = "gpt2".into();
    cfg["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    let path = out.join("config.json");
    std::fs::write(&path, json(&cfg)?).map_err(io(&path))?;
    match q {
        Some(q) => {
            crate::params::Params::save_tensors(&m.fixed_point_tensors(q)?, &out.join("model.safetensors"))?
        }
        None => m.params.save(&out.join("model.safetensors"), DType::F32)?,
    }
    if let Some(q) = q {
        let path = out.join("quant.json");
        std::fs::write(&path, json(q)?).map_err(io(&path))?;
    }
    Ok(())
}

/// Token ids of a whole text (no length limit).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, DistillError> {
    Ok(tok.encode(text, usize::MAX)?)
}

/// Pre-training of a GPT-2 on the novels in `data` (the teacher of the shipped model).
pub struct Pretraining<'a> {
    /// Austen's novels as `scripts/fetch-data` writes them.
    pub data: &'a Path,
    /// Output directory: config.json, tokenizer.json, model.safetensors, checkpoint.
    pub out: &'a Path,
    /// BPE vocabulary size.
    pub vocab: usize,
    /// The model's shape (its vocabulary is the tokenizer's).
    pub shape: Gpt2Config,
    /// The training run.
    pub train: TrainOptions,
}

/// What a pre-training or distillation reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// The data: training and held-out tokens, vocabulary.
    Data {
        /// Training tokens.
        train: usize,
        /// Held-out tokens.
        held_out: usize,
        /// Vocabulary.
        vocab: usize,
    },
    /// Resumed from a checkpoint.
    Resumed(State),
    /// Pre-training done: its steps, last loss and the held-out perplexity.
    Trained {
        /// Steps trained.
        steps: usize,
        /// The last step's loss.
        loss: f64,
        /// Held-out perplexity.
        perplexity: f64,
    },
    /// Distillation done: held-out perplexity of the float teacher and the student (fixed-point
    /// emulation) over `tokens` predicted tokens.
    Distilled {
        /// Tokens scored.
        tokens: usize,
        /// The teacher's perplexity.
        teacher: f64,
        /// The student's.
        student: f64,
    },
}

impl Pretraining<'_> {
    /// Trains the tokenizer (kept if `out` has one) and the model, resuming from the checkpoint.
    pub fn run(
        &self,
        progress: &mut dyn FnMut(&str, usize, usize, f64),
        note: &mut dyn FnMut(Note),
    ) -> Result<(), DistillError> {
        let (train_text, test_text) = data::austen(self.data)?;
        std::fs::create_dir_all(self.out).map_err(io(self.out))?;
        let tok_path = self.out.join("tokenizer.json");
        if !tok_path.exists() {
            std::fs::write(&tok_path, data::train_bpe(&train_text, self.vocab)?).map_err(io(&tok_path))?;
        }
        let tok = Tokenizer::load(&tok_path)?;
        let (tokens, test) = (encode(&tok, &train_text)?, encode(&tok, &test_text)?);
        note(Note::Data { train: tokens.len(), held_out: test.len(), vocab: tok.vocab_size() });
        let cfg = Gpt2Config { vocab_size: tok.vocab_size(), ..self.shape.clone() };
        cfg.check().map_err(DistillError::Options)?;
        // GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 layers).
        let m = ditto_models::seeded::gpt2_init(cfg, self.train.seed);
        let model = CandleGpt2::from_model(&m, DType::F32, &Device::Cpu)?;
        let o = &self.train;
        let ckpt = Checkpoint::new(&self.out.join("checkpoint"));
        if let Some(s) = ckpt.state()? {
            note(Note::Resumed(s));
        }
        let mut windows = Windows::new(&tokens, o.seed);
        let dev = Device::Cpu;
        let loss = train::run(
            "lm",
            &model.params,
            o,
            Some(&ckpt),
            &mut |_| train::lm_loss(&model, &Mode::Float, &windows.batch(o.batch, o.seq, &dev)?),
            progress,
        )?;
        let perplexity = train::perplexity(&model, &Mode::Float, &test, o.seq)?;
        note(Note::Trained { steps: o.steps, loss, perplexity });
        save(&model, self.out, None)
    }
}

/// A distillation of a GPT-2 into a QuantConfig.
pub struct Distillation<'a> {
    /// Teacher, output, data, QuantConfig and stages.
    pub stages: Stages<'a>,
    /// Held-out windows scored at the end.
    pub eval_windows: usize,
}

impl Distillation<'_> {
    /// Runs both stages (a finished stage 1 is not rerun when stage 2 resumes), scores the
    /// teacher and the student on held-out text, and writes the student.
    pub fn run(
        &self,
        progress: &mut dyn FnMut(&str, usize, usize, f64),
        note: &mut dyn FnMut(Note),
    ) -> Result<(), DistillError> {
        let mode = Mode::fixed(self.stages.q)?;
        let (teacher, tok) = load(self.stages.teacher)?;
        let (student, _) = load(self.stages.teacher)?;
        let (train_text, test_text) = data::austen(self.stages.data)?;
        let (tokens, test) = (encode(&tok, &train_text)?, encode(&tok, &test_text)?);
        std::fs::create_dir_all(self.stages.out).map_err(io(self.stages.out))?;
        let ckpt = Checkpoint::new(&self.stages.out.join("checkpoint"));
        let state = ckpt.state()?;
        if let Some(s) = &state {
            note(Note::Resumed(s.clone()));
        }
        let dev = Device::Cpu;
        let seq = self.stages.stage1.seq.min(teacher.cfg.n_positions);
        let mut stage = |name: &str, o: &TrainOptions, seed: u64, k: u8| -> Result<f64, DistillError> {
            let mut w = Windows::new(&tokens, seed);
            train::run(
                name,
                &student.params,
                o,
                Some(&ckpt),
                &mut |_| {
                    train::gpt2_stage_loss(&teacher, &student, &mode, &w.batch(o.batch, seq - 1, &dev)?, k)
                },
                progress,
            )
        };
        if state.as_ref().is_some_and(|s| s.phase == "stage2") {
            ckpt.restore(&student.params)?;
        } else {
            stage("stage1", &self.stages.stage1, self.stages.stage1.seed, 1)?;
        }
        stage("stage2", &self.stages.stage2, self.stages.stage2.seed ^ 2, 2)?;
        let test = &test[..test.len().min(self.eval_windows * seq + 1)];
        note(Note::Distilled {
            tokens: test.len() - 1,
            teacher: train::perplexity(&teacher, &Mode::Float, test, seq)?,
            student: train::perplexity(&student, &mode, test, seq)?,
        });
        save(&student, self.stages.out, Some(self.stages.q))?;
        let path = self.stages.out.join("tokenizer.json");
        std::fs::copy(self.stages.teacher.join("tokenizer.json"), &path).map_err(io(&path))?;
        Ok(())
    }
}

/// The negative log-likelihood of token `next` under `logits` (natural log).
pub fn nll(logits: &[f64], next: u32) -> f64 {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + logits.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    lse - logits[next as usize]
}
