//! `ditto train-lm` (a float GPT-2 on public-domain text: the teacher of the default model) and
//! `ditto distill` (quantization-aware distillation of a GPT-2 into Ditto mode), both with a
//! progress bar and a checkpoint they resume from.

use std::path::{Path, PathBuf};

use ditto_distill::student::Mode;
use ditto_distill::train::{self, Checkpoint, TrainOptions};
use ditto_distill::{data, lm};
use ditto_models::config::Gpt2Config;
use ditto_models::quant::QuantConfig;

use crate::files::CliError;

/// A command-line count no smaller than `min`.
fn at_least(min: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s| match s.parse::<usize>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(format!("{s} is not a whole number of at least {min}")),
    }
}

/// A command-line learning rate: a finite number above 0.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s} is not a positive number")),
    }
}

/// Options shared by the training commands.
#[derive(clap::Args, Debug, Clone)]
pub struct LoopArgs {
    /// Sequences per step.
    #[arg(long, default_value_t = 16, value_parser = at_least(1))]
    pub batch: usize,
    /// Positions per sequence (at most the model's n_positions).
    #[arg(long, default_value_t = 128, value_parser = at_least(2))]
    pub seq: usize,
    /// Peak learning rate (warm-up, then cosine decay to a tenth).
    #[arg(long, value_parser = positive)]
    pub lr: Option<f64>,
    /// Seed of the batch sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Save a checkpoint (in OUT/checkpoint; a rerun resumes from it) every this many steps.
    #[arg(long, default_value_t = 50)]
    pub every: usize,
}

impl LoopArgs {
    pub(crate) fn options(&self, steps: usize, lr: f64) -> TrainOptions {
        TrainOptions {
            steps,
            batch: self.batch,
            seq: self.seq,
            lr: self.lr.unwrap_or(lr),
            warmup: (steps / 20).max(1),
            seed: self.seed,
            every: self.every,
        }
    }
}

/// `ditto train-lm`.
#[derive(clap::Args, Debug)]
pub struct TrainLmArgs {
    /// Jane Austen's novels as `scripts/fetch-data` writes them (default: the cache's).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory: config.json, tokenizer.json, model.safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// BPE vocabulary size (byte-level, trained on the training novels).
    #[arg(long, default_value_t = 2048)]
    pub vocab: usize,
    /// Layers.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Width.
    #[arg(long, default_value_t = 192)]
    pub embd: usize,
    /// Heads.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Positions.
    #[arg(long, default_value_t = 128)]
    pub positions: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    #[command(flatten)]
    pub train: LoopArgs,
}

/// `ditto distill`.
#[derive(clap::Args, Debug)]
pub struct DistillArgs {
    /// The float teacher: an HF GPT-2 or BERT classifier directory (config.json,
    /// model.safetensors, tokenizer.json).
    #[arg(long)]
    pub teacher: PathBuf,
    /// The student's QuantConfig: `ditto` (the preset) or a JSON file; Quad GeLU only.
    #[arg(long, default_value = "ditto")]
    pub quant: String,
    /// Training data as `scripts/fetch-data` writes it (default: the cache's): Austen's novels
    /// for a GPT-2, polarity.tsv for a BERT classifier (its training split).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory: the student in the teacher's layout, plus quant.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Stage-1 steps (attention scores and hidden states, MSE).
    #[arg(long = "stage1-steps", default_value_t = 200)]
    pub stage1: usize,
    /// Stage-2 steps (logits, soft cross-entropy).
    #[arg(long = "stage2-steps", default_value_t = 300)]
    pub stage2: usize,
    /// Held-out windows scored at the end (float teacher and fixed-point student).
    #[arg(long, default_value_t = 64)]
    pub eval_windows: usize,
    /// BERT: the share of each batch that is perturbed copies of training sentences (tokens
    /// deleted or replaced; the teacher labels them), a larger transfer set against
    /// over-fitting the 3200 training sentences (default 0.5).
    #[arg(long)]
    pub augment: Option<f64>,
    /// BERT: report the fixed-point student's validation accuracy every this many steps of
    /// either stage and at the start of stage 2, i.e. after stage 1 (0: never).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// BERT: keep the student with the best validation accuracy among those reported (every
    /// `--eval-every` steps and at the end) instead of the last one (early stopping).
    #[arg(long)]
    pub keep_best: bool,
    /// BERT: weight in [0, 1] of the cross-entropy against the gold labels of the unperturbed
    /// training sentences in stage 2's loss (the soft cross-entropy against the teacher gets
    /// the rest; default 0: the teacher alone).
    #[arg(long)]
    pub hard_label: Option<f64>,
    /// Peak learning rate of stage 2 alone (default: `--lr` if given, else the stage's own
    /// default, lower than stage 1's).
    #[arg(long = "stage2-lr", value_parser = positive)]
    pub stage2_lr: Option<f64>,
    #[command(flatten)]
    pub train: LoopArgs,
}

impl DistillArgs {
    /// Stage 1's options (`default_lr` unless `--lr`).
    pub(crate) fn stage1_options(&self, default_lr: f64) -> TrainOptions {
        self.train.options(self.stage1, default_lr)
    }

    /// Stage 2's options: `--stage2-lr`, else `--lr`, else `default_lr`.
    pub(crate) fn stage2_options(&self, default_lr: f64) -> TrainOptions {
        let mut o = self.train.options(self.stage2, default_lr);
        if let Some(lr) = self.stage2_lr {
            o.lr = lr;
        }
        o
    }
}

pub(crate) fn err(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// `d`, else `name` in the data cache that `scripts/fetch-data` fills.
pub(crate) fn data_path(d: Option<&Path>, name: &str) -> PathBuf {
    d.map_or_else(|| ditto_models::cache_dir().join("data").join(name), Path::to_path_buf)
}

pub(crate) fn bar(label: &'static str) -> impl FnMut(&str, usize, usize, f64) {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(s) = ProgressStyle::with_template("{prefix:>8} [{bar:32}] {pos}/{len} {msg} {elapsed}/{eta}") {
        bar.set_style(s.progress_chars("=> "));
    }
    bar.set_prefix(label);
    let mut logged = std::time::Instant::now();
    move |phase, done, total, loss| {
        bar.set_prefix(phase.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("loss {loss:.4}"));
        // Without a terminal, one line every 30 s (and at the end).
        if bar.is_hidden() && (logged.elapsed().as_secs() >= 30 || done == total) {
            eprintln!("{phase}: step {done}/{total}, loss {loss:.4}");
            logged = std::time::Instant::now();
        }
        if done == total {
            bar.finish_and_clear();
        }
    }
}

/// Prints a training run's reports.
fn say_note(n: lm::Note) {
    match n {
        lm::Note::Data { train, held_out, vocab } => {
            say!("data    {train} training tokens, {held_out} held-out (vocabulary {vocab})");
        }
        lm::Note::Resumed(s) => say!("resume  {} from step {} (checkpoint)", s.phase, s.step),
        lm::Note::Trained { steps, loss, perplexity } => {
            say!("trained {steps} steps, last loss {loss:.3}; held-out perplexity {perplexity:.2}");
        }
        lm::Note::Distilled { tokens, teacher, student } => say!(
            "held-out perplexity ({tokens} tokens): float teacher {teacher:.2}, Ditto-mode student (fixed-point) {student:.2}"
        ),
    }
}

/// `ditto train-lm`.
pub fn train_lm(a: &TrainLmArgs) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let p = lm::Pretraining {
        data: &data_path(a.data.as_deref(), "austen"),
        out: &a.out,
        vocab: a.vocab,
        shape: Gpt2Config {
            vocab_size: a.vocab,
            n_positions: a.positions,
            n_embd: a.embd,
            n_layer: a.layers,
            n_head: a.heads,
            n_inner: None,
            activation_function: "gelu_new".into(),
            layer_norm_epsilon: 1e-5,
        },
        train: a.train.options(a.steps, 1e-3),
    };
    p.run(&mut bar("lm"), &mut |n| match n {
        lm::Note::Trained { steps, loss, perplexity } => say!(
            "trained {steps} steps in {:.0} s, last loss {loss:.3}; held-out perplexity {perplexity:.2}",
            started.elapsed().as_secs_f64()
        ),
        n => say_note(n),
    })?;
    Ok(())
}

pub(crate) fn resumed(ckpt: &Checkpoint) -> Result<(), CliError> {
    if let Some(s) = ckpt.state().map_err(err)? {
        say!("resume  {} from step {} (checkpoint)", s.phase, s.step);
    }
    Ok(())
}

/// `ditto distill`.
pub fn distill(a: &DistillArgs) -> Result<(), CliError> {
    let q = QuantConfig::from_spec(&a.quant)?;
    Mode::fixed(&q)?;
    if !ditto_models::spec::ModelSpec::Dir(a.teacher.clone()).is_gpt2()? {
        return crate::classifier::distill_bert(a, &q);
    }
    if a.augment.is_some() || a.eval_every > 0 || a.keep_best || a.hard_label.is_some() {
        return Err(CliError::Usage(
            "--augment, --eval-every, --keep-best and --hard-label are for a BERT classifier teacher; a \
             GPT-2 student is scored by held-out perplexity at the end"
                .into(),
        ));
    }
    let d = lm::Distillation {
        teacher: &a.teacher,
        out: &a.out,
        data: &data_path(a.data.as_deref(), "austen"),
        q: &q,
        stage1: a.stage1_options(1e-4),
        stage2: a.stage2_options(5e-5),
        eval_windows: a.eval_windows,
    };
    d.run(&mut bar("distill"), &mut say_note)?;
    Ok(())
}

/// `ditto eval-lm`.
#[derive(clap::Args, Debug)]
pub struct EvalLmArgs {
    /// An HF GPT-2 directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Also run the model securely (dealer, P0, P1 and the scoring client in one process) under
    /// these QuantConfigs: presets (accurate, ditto) or JSON files; repeatable.
    #[arg(long)]
    pub quant: Vec<String>,
    /// Austen's novels as `scripts/fetch-data` writes them (default: the cache's); the held-out
    /// novel is scored.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Windows of the held-out text to score (each starts afresh).
    #[arg(long, default_value_t = 4)]
    pub windows: usize,
    /// Predicted positions per window.
    #[arg(long, default_value_t = 127, value_parser = at_least(1))]
    pub seq: usize,
}

/// `ditto eval-lm`: held-out perplexity of the float model and of secure runs.
pub fn eval_lm(a: &EvalLmArgs) -> Result<(), CliError> {
    let (model, tok) = lm::load(&a.model)?;
    let seq = a.seq.min(model.cfg.n_positions - 1);
    let (_, test_text) = data::austen(&data_path(a.data.as_deref(), "austen")).map_err(err)?;
    let test = lm::encode(&tok, &test_text)?;
    let windows: Vec<&[u32]> = test.windows(seq + 1).step_by(seq).take(a.windows).collect();
    #[allow(clippy::cast_precision_loss)]
    let total = (windows.len() * seq) as f64;
    // The same windows: consecutive, `seq` apart, from the start.
    let scored = &test[..windows.len() * seq + 1];
    let float_ppl = train::perplexity(&model, &Mode::Float, scored, seq).map_err(err)?;
    say!(
        "held-out: {} windows of {seq} predicted tokens ({} tokens of {})",
        windows.len(),
        windows.len() * (seq + 1),
        data::AUSTEN_HELD_OUT
    );
    say!("perplexity float            {float_ppl:.3}");
    let m = model.to_model().map_err(err)?;
    let rt = crate::util::runtime()?;
    for spec in &a.quant {
        let q = QuantConfig::from_spec(spec)?;
        let started = std::time::Instant::now();
        let mut s = 0.0;
        for w in &windows {
            let mut rng = ditto_core::prg::Prg::with_counter(&ditto_node::files::os_random16()?, 0);
            let local = ditto_mpc::local::Local::default();
            let logits =
                rt.block_on(ditto_models::generate::score_local(&m, &q, w, &local, &mut rng))?.logits;
            for (l, next) in logits.iter().zip(&w[1..]) {
                let v: Vec<f64> =
                    l.iter().map(|x| ditto_core::fixed::decode(*x, q.act_frac + q.weight_frac)).collect();
                s += lm::nll(&v, *next);
            }
        }
        say!(
            "perplexity secure {spec:<10} {:.3} ({:.1} s)",
            (s / total).exp(),
            started.elapsed().as_secs_f64()
        );
        let inputs: Vec<Vec<u32>> = windows.iter().map(|w| w.to_vec()).collect();
        crate::util::say_range(&rt.block_on(ditto_models::range::gpt2(&m, &q, &inputs))?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{Cli, Command};

    fn distill_args(extra: &[&str]) -> super::DistillArgs {
        let mut argv = vec!["ditto", "distill", "--teacher", "t", "--out", "o"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("valid command line").command {
            Command::Distill(a) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn stage2_lr_overrides_lr_for_stage_2_only() {
        let (s1, s2) = (2e-5, 1e-5);
        let a = distill_args(&["--stage1-steps", "7", "--stage2-steps", "9"]);
        let (o1, o2) = (a.stage1_options(s1), a.stage2_options(s2));
        assert_eq!((o1.steps, o1.lr, o2.steps, o2.lr), (7, s1, 9, s2));
        let a = distill_args(&["--lr", "3e-4"]);
        assert_eq!((a.stage1_options(s1).lr, a.stage2_options(s2).lr), (3e-4, 3e-4));
        let a = distill_args(&["--lr", "3e-4", "--stage2-lr", "2e-6"]);
        assert_eq!((a.stage1_options(s1).lr, a.stage2_options(s2).lr), (3e-4, 2e-6));
        let a = distill_args(&["--stage2-lr", "2e-6"]);
        assert_eq!((a.stage1_options(s1).lr, a.stage2_options(s2).lr), (s1, 2e-6));
    }

    /// Rates and sizes a run cannot use are refused at parsing, with the value named.
    #[test]
    fn unusable_rates_and_sizes_are_refused() {
        let bad = [
            ("--lr", "0"),
            ("--lr", "-1e-4"),
            ("--lr", "nan"),
            ("--lr", "inf"),
            ("--stage2-lr", "0"),
            ("--batch", "0"),
            ("--seq", "1"),
        ];
        for (flag, value) in bad {
            let arg = format!("{flag}={value}");
            let argv = ["ditto", "distill", "--teacher", "t", "--out", "o", &arg];
            let e = Cli::try_parse_from(argv).expect_err(&format!("{arg} accepted"));
            assert!(e.to_string().contains(value), "{arg}: {e}");
        }
        assert!(Cli::try_parse_from(["ditto", "eval-lm", "--model", "m", "--seq", "0"]).is_err());
        assert!(Cli::try_parse_from(["ditto", "eval-lm", "--model", "m", "--seq", "1"]).is_ok());
        assert_eq!(distill_args(&["--batch", "1", "--seq", "2"]).train.seq, 2);
    }
}
